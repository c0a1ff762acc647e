"""The operator's tools behind the ``likeopt`` command: up, ingest, migrate, eval, bench, mcp.

Services never import from here at request time; the launcher, probes and Envoy's config do.
"""
