"""The caches a request meets before the work: cache_svc's client and keys, near caches, single flight."""
