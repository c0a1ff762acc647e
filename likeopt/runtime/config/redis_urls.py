"""LIKEOPT_REDIS_URL taken apart: the URL redis-py connects with and the cluster nodes listed after it."""

from __future__ import annotations

from urllib.parse import urlsplit

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
"""How the URLs redis-py connects with begin."""


def redis_seed_nodes(value: str) -> tuple[str, list[tuple[str, int]]]:
    """LIKEOPT_REDIS_URL's first URL (scheme, credentials and options for every node) and the cluster nodes
    listed after it as ``host:port``; messages never repeat a part, which may hold a password."""
    from likeopt.runtime.config.settings import env_name  # deferred: Config's module imports this one

    first, *others = [part.strip() for part in value.split(",")]
    nodes = []
    for number, other in enumerate(others, start=2):
        split = urlsplit(other if "://" in other else f"//{other}")
        try:
            port = split.port
        except ValueError:
            port = None
        if not split.hostname or port is None:
            raise ValueError(f"{env_name('redis_url')}: node {number} must be host:port")
        nodes.append((split.hostname, port))
    return first, nodes
