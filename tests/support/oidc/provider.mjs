// A throw-away OpenID provider for the gateway's tests: the npm `oidc-provider` package on a loopback port, one
// registered confidential client, test accounts whose claims carry a role and an organisation, signing keys given by
// the test (so it can also mint tokens the gateway must refuse). Configuration: JSON in $OIDC_CONFIG:
//   {issuer, port, client_id, client_secret, redirect_uris: [...], jwks: {keys: [private JWK]},
//    accounts: {login: {shancheng_role, shancheng_org}}}
// Sign-in uses the package's development interactions (a login form that accepts any password, then consent).
import Provider from 'oidc-provider';

const cfg = JSON.parse(process.env.OIDC_CONFIG);

const provider = new Provider(cfg.issuer, {
  clients: [{
    client_id: cfg.client_id,
    client_secret: cfg.client_secret,
    redirect_uris: cfg.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: cfg.jwks,
  claims: { openid: ['sub', 'shancheng_role', 'shancheng_org'] },
  conformIdTokenClaims: false,
  cookies: { keys: ['shancheng-test-provider-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id, ...(cfg.accounts[id] || {}) }; } };
  },
});

const server = provider.listen(cfg.port, '127.0.0.1', () => { process.stdout.write('ready\n'); });
process.on('SIGTERM', () => server.close(() => process.exit(0)));
