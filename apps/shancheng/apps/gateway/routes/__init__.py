"""The gateway's API routers: each module exports ``router`` (a FastAPI ``APIRouter``)."""
