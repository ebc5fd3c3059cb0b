"""The gateway of a member organisation: FastAPI app, authentication, audit, domain APIs, web UI."""
