"""Cache settings: cache_svc's Redis (L2), its sizes and deadlines, and the near caches."""

from __future__ import annotations

from pydantic import BaseModel, field_validator

from likeopt.runtime.config.fields import Flag, setting
from likeopt.runtime.config.processes import CACHE, GATEWAY, GENERATION, RETRIEVAL
from likeopt.runtime.config.redis_urls import REDIS_SCHEMES, redis_seed_nodes


class RedisSettings(BaseModel):
    """The Redis (or Redis Cluster) behind cache_svc's L2."""

    redis_url: str = setting(
        "",
        "Redis for the cache's L2 (`redis://`, `rediss://` or `unix://`); when empty `likeopt up` starts a private"
        " one. With `LIKEOPT_REDIS_CLUSTER=1`, more nodes may follow, comma-separated (`host:port`), so a restarted"
        " cache_svc finds the cluster while the first node is down.",
        (CACHE,),
        repr=False,
    )
    redis_cluster: Flag = setting(
        False,
        "`1`: `LIKEOPT_REDIS_URL` names any node of a Redis/Valkey Cluster, and cache_svc uses the cluster client.",
        (CACHE,),
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        """redis-py takes only these schemes, and would refuse any other only once cache_svc starts. The value
        may hold a password, so the message names the variable and the scheme alone."""
        from likeopt.runtime.config.settings import env_name  # deferred: Config's module imports this one

        first, _ = redis_seed_nodes(value)
        if first and not first.lower().startswith(REDIS_SCHEMES):
            found = first.partition("://")[0] if "://" in first else "none"
            raise ValueError(
                f"{env_name('redis_url')} must start with {', '.join(REDIS_SCHEMES)} (its scheme: {found})"
            )
        return value


class CacheSettings(BaseModel):
    """Who uses cache_svc, its deadlines and sizes, and the near caches in the gateway and retrieval_svc."""

    cache_enabled: Flag = setting(
        True, "Whether retrieval_svc and generation_svc use cache_svc (`0` turns it off).", (RETRIEVAL, GENERATION)
    )
    cache_timeout_ms: float = setting(
        25,
        "Deadline of every call to cache_svc; a slower cache counts as a miss.",
        (RETRIEVAL, GENERATION),
        gt=0,
        le=60_000,
    )
    cache_write_window_ms: float = setting(
        250,
        "retrieval_svc writes search results to cache_svc in batches: the first after a quiet spell at once,"
        " later ones at most one call per this many milliseconds (its near cache answers repeats meanwhile);"
        " `0` sends each at once. Answers and conversations are always written at once.",
        (RETRIEVAL,),
        ge=0,
        le=10_000,
    )
    cache_ttl_s: int = setting(3600, "Default time to live of cache entries, in seconds.", (CACHE, GENERATION), ge=1)
    cache_l1_max_entries: int = setting(10000, "Most entries cache_svc keeps in process.", (CACHE,), ge=1)
    cache_l1_max_bytes: int = setting(
        67108864, "Most bytes (keys and values) cache_svc keeps in process.", (CACHE,), ge=1
    )
    near_cache_entries: int = setting(
        4096,
        "Search results the gateway and retrieval_svc each keep in process for the current index version; `0` off.",
        (GATEWAY, RETRIEVAL),
        ge=0,
    )
    near_cache_bytes: int = setting(
        33554432, "Most bytes of search results each of those near caches keeps.", (GATEWAY, RETRIEVAL), ge=0
    )
    redis_timeout_ms: float = setting(
        50, "Deadline of every Redis call; past it L2 counts as down.", (CACHE,), gt=0, le=60_000
    )

    @property
    def cache_timeout_s(self) -> float:
        """LIKEOPT_CACHE_TIMEOUT_MS in the seconds gRPC deadlines take."""
        return self.cache_timeout_ms / 1000

    @property
    def cache_write_window_s(self) -> float:
        """LIKEOPT_CACHE_WRITE_WINDOW_MS in seconds, as the event loop counts time."""
        return self.cache_write_window_ms / 1000

    @property
    def redis_timeout_s(self) -> float:
        """LIKEOPT_REDIS_TIMEOUT_MS in the seconds redis-py takes."""
        return self.redis_timeout_ms / 1000
