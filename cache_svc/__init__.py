"""cache_svc: a two-layer cache (in-process LRU with TTL in front of Redis) behind gRPC."""
