"""Long-lived client channels with keepalive and trace propagation."""

from __future__ import annotations

import json

import grpc

from likeopt.runtime.config import address_list, replica_family
from likeopt.runtime.grpc_tracing import client_interceptors

CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 1),
)


SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
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
    """One channel per upstream, reused for every call; W3C trace context rides along."""
    return grpc.aio.insecure_channel(
        channel_target(address),
        options=[*CHANNEL_OPTIONS, ("grpc.service_config", SERVICE_CONFIG)],
        interceptors=client_interceptors(),
    )
