"""Envoy's configuration: the one template (envoy.tmpl.yaml, package data) and the code that fills and extends it
for ``likeopt up``, docker-compose and Kubernetes alike (their command line: likeopt.ops.envoy_config)."""
