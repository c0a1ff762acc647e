"""What the gateway holds while it runs, built at start-up and handed to every request as typed lifespan state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, TypedDict

from fastapi import Depends
from starlette.requests import Request

from gateway.dashboard import Dashboard
from gateway.mcp_http import mesh_of
from gateway.mcp_server import Mesh
from gateway.near_search import NearSearchReplies
from gateway.upstreams import Upstreams
from likeopt.caching.near_cache import VersionedLRU
from likeopt.runtime.config import Config, metrics_port


def service_metrics_urls(config: Config) -> dict[str, str]:
    """Where each gRPC service serves its Prometheus metrics (the host of its gRPC address)."""
    addresses = {
        "retrieval_svc": config.retrieval_addr,
        "generation_svc": config.generation_addr,
        "cache_svc": config.cache_addr,
    }
    return {
        name: f"http://{addr.rpartition(':')[0]}:{port}/metrics"
        for name, addr in addresses.items()
        if (port := metrics_port(name, config))
    }


@dataclass(frozen=True)
class Gateway:
    """The settings, the upstream channels and what is built on them, for the life of the process."""

    config: Config
    upstreams: Upstreams
    near: NearSearchReplies
    """Rendered search replies of the current index version (gateway/near_search.py)."""
    dashboard: Dashboard
    mesh: Mesh
    """The MCP tools' stubs on the same channels."""

    @classmethod
    def start(cls, config: Config, upstreams: Upstreams) -> Gateway:
        replies = VersionedLRU[bytes]("search", config.near_cache_entries, config.near_cache_bytes)
        return cls(
            config=config,
            upstreams=upstreams,
            near=NearSearchReplies(upstreams.retrieval_writer, replies, upstreams),
            dashboard=Dashboard(upstreams, service_metrics_urls(config)),
            mesh=mesh_of(upstreams, config),
        )

    def wrote(self, version: int) -> None:
        """A write through this gateway was acknowledged at version: later reads reflect it, from any replica,
        and rendered replies of older versions are stale from now."""
        self.upstreams.wrote(version)
        self.near.saw_write(version)


class State(TypedDict):
    """The lifespan state every request's ``request.state`` starts from."""

    gateway: Gateway


Lifespan = Callable[[object], AbstractAsyncContextManager["State"]]


class Lifecycle:
    """Starts the gateway's parts with the app and stops them with it; the sub-apps (/v1, /mcp) read them here."""

    def __init__(self, config: Config, upstreams: Upstreams | None = None) -> None:
        self.config = config
        self._given = upstreams
        self._running: Gateway | None = None

    def current(self) -> Gateway:
        if self._running is None:
            raise RuntimeError("the gateway has not started")
        return self._running

    def upstreams(self) -> Upstreams:
        return self.current().upstreams

    def lifespan(self, inside: Callable[[], AbstractAsyncContextManager[object]]) -> Lifespan:
        """The app's lifespan: start, run within inside() (the MCP session manager's run), stop."""

        @asynccontextmanager
        async def run(app: object) -> AsyncIterator[State]:
            gateway = Gateway.start(self.config, self._given or Upstreams.connect(self.config))
            self._running = gateway
            watching = asyncio.create_task(gateway.near.watch())
            try:
                async with inside():
                    yield {"gateway": gateway}
            finally:
                watching.cancel()
                await gateway.dashboard.close()
                await gateway.upstreams.close()
                self._running = None

        return run


async def running(request: Request) -> Gateway:
    """The dependency handing a request the running gateway."""
    return request.state.gateway


Running = Annotated[Gateway, Depends(running)]
