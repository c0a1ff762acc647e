"""The gateway's long-lived channels to the services it translates for."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.errors import name_upstreams
from likeopt.runtime.addresses import address_list
from likeopt.runtime.config import Config
from likeopt.runtime.grpc_client import HEALTH_SERVICE_NAME, open_channel, open_probe_channel
from likeopt.v1 import cache_pb2_grpc, generation_pb2_grpc, retrieval_pb2, retrieval_pb2_grpc

HEALTH_TIMEOUT_S = 1.0
SERVING = health_pb2.HealthCheckResponse.ServingStatus.Name(health_pb2.HealthCheckResponse.SERVING)
NOT_SERVING = health_pb2.HealthCheckResponse.ServingStatus.Name(health_pb2.HealthCheckResponse.NOT_SERVING)


@dataclass(frozen=True)
class UpstreamHealth:
    """One upstream's health as each of its replicas answered (address → status name)."""

    replicas: dict[str, str]
    why: dict[str, str] = field(default_factory=dict)
    """Why a replica answering NOT_SERVING does, where it says (retrieval_svc: retrieval_waits)."""

    @property
    def serving(self) -> bool:
        """The upstream can serve while any replica can: the channels send calls only to replicas SERVING."""
        return SERVING in self.replicas.values()

    @property
    def status(self) -> str:
        """SERVING when any replica is, else the first replica's status."""
        return SERVING if self.serving else next(iter(self.replicas.values()))

    def detail(self, name: str) -> str | None:
        """A line naming the replicas that are not SERVING ('generation_svc: 1 of 2 replicas serving;
        127.0.0.1:25574 DEADLINE_EXCEEDED'); None when every replica is."""
        failing = [
            f"{address} {status}" + (f" ({self.why[address]})" if address in self.why else "")
            for address, status in self.replicas.items()
            if status != SERVING
        ]
        if not failing:
            return None
        serving = len(self.replicas) - len(failing)
        return f"{name}: {serving} of {len(self.replicas)} replicas serving; " + ", ".join(failing)


async def retrieval_waits(probe: grpc.aio.Channel) -> str:
    """Why a retrieval_svc replica says NOT_SERVING, in words for the public readyz: never its backend's address
    or error, which GetIndexStatus's waiting_for holds and only callers with the API key see; "" if it does not say.
    """
    stub = retrieval_pb2_grpc.RetrievalServiceStub(probe)
    try:
        status = await stub.GetIndexStatus(retrieval_pb2.GetIndexStatusRequest(), timeout=HEALTH_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:  # loaded, then its backend went away: the status cannot be counted
        return "its retrieval backend is unavailable" if exc.code() is grpc.StatusCode.UNAVAILABLE else ""
    if status.ready:  # stopping, or its backend away but the counts still at hand: not told apart here
        return ""
    return "waiting for its retrieval backend" if status.waiting_for else "loading the index"


@dataclass
class Upstreams:
    """One channel per upstream, opened at start-up and reused by every request."""

    channels: dict[str, grpc.aio.Channel]
    retrieval: retrieval_pb2_grpc.RetrievalServiceStub
    """Searches, balanced over every retrieval_svc replica."""
    retrieval_writer: retrieval_pb2_grpc.RetrievalServiceStub
    """Writes and index status: the first replica, the only one that accepts writes."""
    generation: generation_pb2_grpc.GenerationServiceStub
    cache: cache_pb2_grpc.CacheServiceStub
    replicas: dict[str, list[str]]
    """Each upstream's replica addresses, as its channel balances over them."""
    probes: dict[str, grpc.aio.Channel]
    """A channel to each replica address alone, for asking its health (readyz)."""
    written: int = 0
    """The highest index version a write (upsert, delete) through this gateway produced."""
    heard: int = 0
    """The index version the near cache last followed (NearSearchReplies.current, kept while its stream is down):
    what the writer's WatchIndex stream tells of, whatever made the write (a gRPC client, another gateway, likeopt
    ingest); a new stream's first replaces it even when lower (a data folder restored)."""
    acknowledged: int = 0
    """How many writes through this gateway were acknowledged."""
    acknowledged_at_open: int = 0
    """How many had been when the near cache's stream was last opened."""

    @property
    def least_version(self) -> int:
        """The version every search and answer asks for at least (min_index_version), so a read-only retrieval
        replica that has not followed the writer yet catches up before answering: what was uploaded, deleted or
        given another access list is what the next search and chat see, at once after a write through this
        gateway, and once the stream has told of it after any other."""
        return max(self.written, self.heard)

    def wrote(self, version: int) -> None:
        """A write through this gateway was acknowledged at version."""
        self.written = max(self.written, version)
        self.acknowledged += 1

    def stream_opened(self) -> None:
        self.acknowledged_at_open = self.acknowledged

    def heard_of(self, version: int, first: bool) -> None:
        """The near cache follows version from now (NearSearchReplies). A new stream's first version below a
        write acknowledged before it opened means the writer's store went back (restored from a backup, or
        started afresh): the versions those writes produced will never come, so searches stop asking for them
        (else every search would go upstream, the near cache unused, until this gateway restarted)."""
        self.heard = version
        if first and self.acknowledged == self.acknowledged_at_open:
            self.written = min(self.written, version)

    @classmethod
    def connect(cls, config: Config) -> Upstreams:
        retrieval = address_list(config.retrieval_addr)
        replicas = {
            "retrieval_svc": retrieval,
            "retrieval_writer": retrieval[:1],
            "generation_svc": address_list(config.generation_addr),
            "cache_svc": address_list(config.cache_addr),
        }
        for name in ("retrieval_svc", "generation_svc", "cache_svc"):
            name_upstreams(name, replicas[name])
        channels = {name: open_channel(",".join(addresses)) for name, addresses in replicas.items()}
        return cls(
            channels=channels,
            retrieval=retrieval_pb2_grpc.RetrievalServiceStub(channels["retrieval_svc"]),
            retrieval_writer=retrieval_pb2_grpc.RetrievalServiceStub(channels["retrieval_writer"]),
            generation=generation_pb2_grpc.GenerationServiceStub(channels["generation_svc"]),
            cache=cache_pb2_grpc.CacheServiceStub(channels["cache_svc"]),
            replicas=replicas,
            probes={address: open_probe_channel(address) for addresses in replicas.values() for address in addresses},
        )

    async def health(self) -> dict[str, UpstreamHealth]:
        """Each upstream's health, every replica asked by its own address at once.

        Asking the balanced channel would reach one replica per call, so with one replica away the answer would
        alternate between that replica's and the others'.
        """
        addresses = list(self.probes)
        statuses = dict(zip(addresses, await asyncio.gather(*(self._check(a) for a in addresses)), strict=True))
        waiting = [address for address in self.replicas["retrieval_svc"] if statuses[address] == NOT_SERVING]
        reasons = await asyncio.gather(*(retrieval_waits(self.probes[address]) for address in waiting))
        why = {address: reason for address, reason in zip(waiting, reasons, strict=True) if reason}
        return {
            name: UpstreamHealth(
                {address: statuses[address] for address in replica_addresses},
                {address: why[address] for address in replica_addresses if address in why},
            )
            for name, replica_addresses in self.replicas.items()
        }

    async def _check(self, address: str) -> str:
        """The replica's health status name, or the gRPC code of the failed check (DEADLINE_EXCEEDED…)."""
        try:
            reply = await health_pb2_grpc.HealthStub(self.probes[address]).Check(
                health_pb2.HealthCheckRequest(service=HEALTH_SERVICE_NAME), timeout=HEALTH_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    async def close(self) -> None:
        channels = [*self.channels.values(), *self.probes.values()]
        await asyncio.gather(*(channel.close() for channel in channels))
