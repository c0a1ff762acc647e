"""The processes that read settings, by the names ``read_by`` uses, and how long each may take to stop."""

from __future__ import annotations

RETRIEVAL = "retrieval_svc"
GENERATION = "generation_svc"
CACHE = "cache_svc"
GATEWAY = "gateway"
ENVOY = "envoy"
"""Envoy's configuration, rendered by ``python -m likeopt.ops.envoy_config`` (and by ``likeopt up``)."""
PROCESSES = (RETRIEVAL, GENERATION, CACHE, GATEWAY, ENVOY)
EVERY = PROCESSES
GRPC_SERVICES = (RETRIEVAL, GENERATION, CACHE)
PRINCIPAL_READERS = (RETRIEVAL, GENERATION, GATEWAY, ENVOY)
"""Who reads the identity settings: the services and the gateway take the principal from them, Envoy makes it."""
LAUNCHER = "likeopt up"
"""Checks every setting before it starts a child; the one setting no child reads (LIKEOPT_RUN_DIR) is its own."""


STOP_GRACE_S = 20
"""How long a process lets the calls and streams in flight finish after SIGTERM (the gRPC services and the
gateway); docker-compose.yml and the Kubernetes manifests wait longer than this before they kill one."""
