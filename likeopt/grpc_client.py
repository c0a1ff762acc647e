"""Long-lived client channels with keepalive and trace propagation."""

from __future__ import annotations

import grpc

from likeopt.grpc_tracing import client_interceptors

CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 1),
)


def open_channel(address: str) -> grpc.aio.Channel:
    """One channel per upstream, reused for every call; W3C trace context rides along."""
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS, interceptors=client_interceptors())
