"""The web UI's own reads: the dashboard's live figures and who is signed in."""

from __future__ import annotations

from starlette.responses import JSONResponse

from gateway.auth import Reader, reader
from gateway.models import DashboardSnapshot, SignedIn, WhoAmI
from gateway.routes import api_router
from gateway.state import Running
from likeopt.runtime.principal import forwarded

router = api_router("admin", reader, 401)


@router.get("/dashboard", summary="Live figures for the web dashboard", response_model=DashboardSnapshot)
async def dashboard(principal: Reader, gateway: Running) -> JSONResponse:
    """Traffic, latency, time to first token, the four caches' hit rate, each service's memory and CPU; the index
    counts are of what the caller may read. A service that does not answer leaves its figures null."""
    snapshot = DashboardSnapshot.model_validate(await gateway.dashboard.snapshot(forwarded(principal)))
    return JSONResponse(snapshot.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


@router.get(
    "/whoami",
    summary="Who is signed in (LIKEOPT_AUTH=jwt: subject, tenant, groups), and may they write",
    response_model=WhoAmI,
)
async def whoami(principal: Reader, gateway: Running) -> WhoAmI:
    """What the UI shows of the signed-in person; with API keys there is nobody to show."""
    config = gateway.config
    signed_in = SignedIn.model_validate(principal.public()) if principal is not None else None
    writer = principal is not None and principal.may_write(config.jwt_writer_role)
    return WhoAmI(auth=config.auth, principal=signed_in, writer=writer)
