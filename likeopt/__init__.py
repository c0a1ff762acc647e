"""Like-Opt's shared package, laid out by role.

- ``likeopt.runtime``: what every service process runs on: settings, the input contract, the gRPC
  server and client life cycle, telemetry, logs, metrics, the principal, text handling and loaders.
- ``likeopt.caching``: the cache client and keys, the near caches, single flight, batched writes
  and the one hit-rate rule.
- ``likeopt.ops``: the operator's tools behind the ``likeopt`` command: the launcher and its
  process table, Envoy's config, ingest, migrate, eval and bench.
- ``likeopt.v1``: the generated gRPC stubs (``make protos``).
"""
