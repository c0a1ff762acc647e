"""Envoy's configuration: the one template (envoy.tmpl.yaml, package data) and the code that fills and extends it
for ``likeopt up``, docker-compose and Kubernetes alike (their command line: likeopt.ops.envoy_config).

build puts it together: values fills the template's placeholders; clusters, tracing, keys or jwt, grpc_only and tls
each add what one kind of setting varies, helped by ingress (where refusing filters go) and replies (refusals in
each client's shape).
"""
