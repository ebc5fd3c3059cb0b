// The API docs page (/docs): Swagger UI, served by this gateway, over its own OpenAPI schema. A file of its own
// because the Content-Security-Policy runs no inline script.
window.addEventListener('DOMContentLoaded', () => {
  window.SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    // the validator badge would load an image from swagger.io
    validatorUrl: null,
  });
});
