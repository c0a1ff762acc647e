"""Network settings: where each process listens and where the others reach it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationInfo, field_validator

from likeopt.runtime.addresses import address_list, replica_family, split_host_port, unresolvable
from likeopt.runtime.config.fields import MetricsPort, Port, setting
from likeopt.runtime.config.processes import CACHE, ENVOY, EVERY, GATEWAY, GENERATION, RETRIEVAL

if TYPE_CHECKING:
    from likeopt.runtime.config.settings import Config


LISTENING_PORTS = (
    "envoy_port",
    "envoy_admin_port",
    "gateway_port",
    "retrieval_port",
    "generation_port",
    "cache_port",
    "retrieval_metrics_port",
    "generation_metrics_port",
    "cache_metrics_port",
    "envoy_metrics_port",
)
"""The port settings of the processes ``likeopt up`` starts on one host."""


def metrics_port(service: str, config: Config) -> int:
    """The Prometheus port of a gRPC service by its name (0 when it has none)."""
    ports = {
        "retrieval_svc": config.retrieval_metrics_port,
        "generation_svc": config.generation_metrics_port,
        "cache_svc": config.cache_metrics_port,
    }
    return ports.get(service, 0)


class NetworkSettings(BaseModel):
    """Where each process listens and where the others reach it: host, ports, metrics ports, addresses."""

    host: str = setting(
        "127.0.0.1",
        "Address every process binds to, IPv4 or IPv6 (`::1`), or a name that resolves to one; Redis: 127.0.0.1.",
        EVERY,
        min_length=1,
    )
    envoy_port: Port = setting(8080, "Envoy ingress: REST, SSE, gRPC, gRPC-web and the web UI.", (ENVOY,))
    envoy_admin_port: Port = setting(9901, "Envoy admin interface (always bound to 127.0.0.1).", (ENVOY,))
    envoy_workers: int = setting(
        1,
        "Envoy's worker threads (`--concurrency`; docker-compose.yml and the Kubernetes ConfigMap set it too)."
        " One serves about 11,000 cached searches a second on two cores, more than the one gateway process feeds"
        " it; each more is one more thread to wake per request on cores the services share (benchmarks/README.md,"
        ' "Envoy with one worker").',
        (),
        ge=1,
        le=64,
    )
    gateway_port: Port = setting(8000, "HTTP gateway.", (GATEWAY, ENVOY))
    retrieval_port: Port = setting(50051, "retrieval_svc gRPC port.", (RETRIEVAL, GENERATION, GATEWAY, ENVOY))
    generation_port: Port = setting(50052, "generation_svc gRPC port.", (GENERATION, GATEWAY, ENVOY))
    cache_port: Port = setting(50053, "cache_svc gRPC port.", (CACHE, RETRIEVAL, GENERATION, GATEWAY))
    retrieval_metrics_port: MetricsPort = setting(
        9101, "retrieval_svc Prometheus metrics (HTTP); `0` turns it off.", (RETRIEVAL, GATEWAY)
    )
    generation_metrics_port: MetricsPort = setting(
        9102, "generation_svc Prometheus metrics (HTTP); `0` turns it off.", (GENERATION, GATEWAY)
    )
    cache_metrics_port: MetricsPort = setting(
        9103, "cache_svc Prometheus metrics (HTTP); `0` turns it off.", (CACHE, GATEWAY)
    )
    envoy_metrics_port: MetricsPort = setting(
        9104,
        "Envoy's Prometheus metrics (HTTP, `/stats/prometheus` and no other admin path): the requests Envoy answers"
        " itself, such as the rate limit's 429, which the gateway never sees; `0` turns it off.",
        (ENVOY,),
    )
    retrieval_addr: str = setting(
        "",
        "Address (host:port) clients use for retrieval_svc, or a comma-separated list of replicas (IP literals"
        " of one family) whose first takes the writes; default: host and port above.",
        (GENERATION, GATEWAY, ENVOY),
    )
    generation_addr: str = setting(
        "",
        "Address clients use for generation_svc, or a comma-separated list of replicas (IP literals of one family);"
        " default: host and port above.",
        (GATEWAY, ENVOY),
    )
    cache_addr: str = setting(
        "", "Address clients use for cache_svc; default: host and port above.", (RETRIEVAL, GENERATION, GATEWAY)
    )
    gateway_addr: str = setting("", "Address Envoy uses for the gateway; default: host and port above.", (ENVOY,))

    @field_validator("host")
    @classmethod
    def _resolvable(cls, value: str) -> str:
        """Every process binds to it and clients reach the services there by default: a name that does not resolve
        would stop each process only at its bind."""
        if problem := unresolvable(value):
            raise ValueError(f"must be an IP address or a host name that resolves ({problem})")
        return value

    @field_validator("retrieval_addr", "generation_addr", "cache_addr", "gateway_addr", mode="after")
    @classmethod
    def _addresses(cls, value: str, info: ValidationInfo) -> str:
        """Envoy's config and the clients take each address apart into host and port, so one without both would
        stop them only once the mesh is starting; gRPC balances call by call only over IP literals of one family."""
        from likeopt.runtime.config.settings import env_name  # deferred: Config's module imports this one

        name = env_name(info.field_name or "")
        addresses = address_list(value)
        for address in addresses:
            _, port = split_host_port(address, name)
            if not 1 <= int(port) <= 65535:
                raise ValueError(f"{name} {address!r}: the port must be from 1 to 65535")
        if len(addresses) > 1 and info.field_name == "gateway_addr":
            raise ValueError(f"{name} must be one host:port (Envoy balances over what that name resolves to)")
        if len(addresses) > 1:
            replica_family(addresses, name)
        return value
