"""Long-lived client channels with keepalive and trace propagation."""

from __future__ import annotations

import json
import re

import grpc

from likeopt.runtime.addresses import address_list, replica_family
from likeopt.runtime.grpc_tracing import client_interceptors

KEEPALIVE_TIME_MS = 5_000
"""How often a client pings each connection, between calls too: a peer that stopped answering (frozen, its host
gone) is declared dead after this plus KEEPALIVE_TIMEOUT_MS, and its calls go to the other replicas. Servers
accept pings this often (likeopt/runtime/grpc_server.py)."""
KEEPALIVE_TIMEOUT_MS = 5_000

HEALTH_SERVICE_NAME = ""
"""The health-checking name a channel watches on each replica: the whole server, NOT_SERVING until the process's
start-up is done, while a server it needs is away, and from the start of a graceful shutdown."""

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""The largest gRPC message either end takes or sends (an upload's batch, a long answer's retrieval event)."""

MAX_METADATA_BYTES = 64 * 1024
"""The most metadata either end takes: room for every header Envoy admits (60 KiB), so a token's payload that
Envoy passes on as the principal (a user of many groups) is read. gRPC's own limits are 8 KiB, above which a call
is refused at random, and 16 KiB, above which every call is."""
METADATA_LIMITS = (
    ("grpc.max_metadata_size", MAX_METADATA_BYTES),
    ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
)

CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    *METADATA_LIMITS,
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    # What ends a connection whose keepalive ping went unanswered in grpcio 1.85 (60 s by default); without it a
    # frozen peer's connection stayed open with the keepalive timeout alone.
    ("grpc.http2.ping_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 1),
)


SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        # Client-side health checking: each replica's health is watched, and round robin skips one that is not
        # SERVING (gRPC's C-core honours this with round_robin).
        "healthCheckConfig": {"serviceName": HEALTH_SERVICE_NAME},
        # Search is idempotent: a replica that dies mid-call is retried on another, as Envoy does.
        "methodConfig": [
            {
                "name": [{"service": "likeopt.v1.RetrievalService", "method": "Search"}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.02s",
                    "maxBackoff": "0.2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)


CHANNEL_FAILURE = re.compile(
    "(?:[a-z ]+: )?(?:connections to all backends failing|failed to connect to all addresses|errors resolving"
    "|DNS resolution failed|empty address list|Socket closed|(?:recvmsg:)?Connection reset|Broken pipe|GOAWAY"
    "|keepalive watchdog|Received RST_STREAM|Stream removed)"
)
"""How gRPC's channel begins what it says, in place of a service's own words, when it could not reach a server or
lost it: what a client must not read (it names addresses and says nothing it can act on)."""


SERVER_STOPPED = "Cancelling all calls"
"""gRPC's words (UNAVAILABLE) for a call its server ended on stopping, its grace for the calls in flight over."""


def cut_off_by_stop(code: grpc.StatusCode, details: str) -> bool:
    """Whether a call failed because its server stopped while it ran (what it asked may or may not have happened)."""
    return code is grpc.StatusCode.UNAVAILABLE and details == SERVER_STOPPED


NOT_SERVING = re.compile(r"last error: (?:[A-Z_]+: )?\S+: backend unhealthy")
"""How it ends when the last replica it tried is reachable but answers health checks NOT_SERVING (client-side
health checking drops it), e.g. a retrieval_svc whose Milvus is down: not a service out of reach."""


def channel_failure_words(details: str, service: str) -> str:
    """What a client reads in place of gRPC's words about its channel to service (CHANNEL_FAILURE matched them)."""
    if NOT_SERVING.search(details):
        return (
            f"{service} is not serving now (it is starting or stopping, or its own backend, such as Milvus,"
            " is unavailable); try again shortly"
        )
    return f"{service} cannot be reached now; try again shortly"


def channel_target(address: str) -> str:
    """The gRPC target of one address or of a comma-separated list of replicas.

    Replicas are balanced call by call (round robin) over IP literals of one family (checked
    with the settings), which is what ``likeopt up --replicas`` hands out. One address, a DNS
    name among them, resolves as usual, and round robin spreads calls over all it resolves to.
    """
    addresses = address_list(address)
    if len(addresses) == 1:
        return addresses[0]
    return f"{replica_family(addresses, 'replica list')}:" + ",".join(addresses)


def open_channel(address: str) -> grpc.aio.Channel:
    """One channel per upstream, reused for every call; W3C trace context rides along.

    Calls go only to replicas that are connected and SERVING, so a replica that is starting, draining, frozen
    or dead loses its share of the calls until it answers again.
    """
    return grpc.aio.insecure_channel(
        channel_target(address),
        options=[*CHANNEL_OPTIONS, ("grpc.service_config", SERVICE_CONFIG)],
        interceptors=client_interceptors(),
    )


def open_probe_channel(address: str) -> grpc.aio.Channel:
    """A channel to one replica for asking its health: without client-side health checking, which would fail a
    NOT_SERVING replica's Check with UNAVAILABLE before it was sent, rather than let it answer NOT_SERVING."""
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
