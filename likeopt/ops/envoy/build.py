"""Envoy's whole configuration for a set of settings, written where Envoy reads it: the template filled (values),
then, on the parsed document, what varies with the settings: replicas and the metrics listener (clusters), untraced
probes (tracing), requests it cannot read (protocol_errors), who may call what (keys or jwt, grpc_only), methods
it does not recognize (methods) and TLS (tls)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from likeopt.ops.envoy.clusters import add_replicas, remove_stats_listener
from likeopt.ops.envoy.grpc_only import refuse_other_protocols
from likeopt.ops.envoy.jwt import add_jwt
from likeopt.ops.envoy.keys import make_room_for, require_grpc_key
from likeopt.ops.envoy.methods import refuse_unrecognized_methods
from likeopt.ops.envoy.protocol_errors import shape_unreadable_requests
from likeopt.ops.envoy.tls import add_collector_tls, add_ingress_tls
from likeopt.ops.envoy.tracing import untrace_probes
from likeopt.ops.envoy.values import envoy_values, render_envoy_config
from likeopt.runtime.addresses import address_list, otlp_collector
from likeopt.runtime.api_key import key_pattern
from likeopt.runtime.config import Config

RENDERED_NAME = "envoy.yaml"
ACCESS_LOG_NAME = "envoy-access.log"


def envoy_document(config: Config, access_log_path: str) -> dict:
    """The configuration, parsed, for these settings: the template holds no conditionals, so what varies with
    them is added to (or taken from) the parsed document."""
    doc = yaml.safe_load(render_envoy_config(envoy_values(config, access_log_path)))
    untrace_probes(doc)
    shape_unreadable_requests(doc)
    replicas = {
        "retrieval": address_list(config.retrieval_addr)[1:],
        "generation": address_list(config.generation_addr)[1:],
    }
    if any(replicas.values()):
        add_replicas(doc, replicas)
    if not config.envoy_metrics_port:
        remove_stats_listener(doc)
    api_key = config.api_key.get_secret_value()
    if config.jwt:
        add_jwt(doc, config)
    else:
        require_grpc_key(doc, api_key, reads_too=config.reads_need_key)
    refuse_other_protocols(doc)  # after them: its filter and its mapper go ahead of theirs
    refuse_unrecognized_methods(doc)  # last: its filter and its mappers go ahead of the other refusals
    if api_key:
        make_room_for(doc, key_pattern(api_key))
    if config.tls_cert_file:
        add_ingress_tls(doc, config.tls_cert_file, config.tls_key_file)
    if (collector := otlp_collector(config.otlp_endpoint)).tls:
        add_collector_tls(doc, collector.host)
    return doc


def write_envoy_config(config: Config, run_dir: Path, access_log_path: str | None = None) -> Path:
    """Render the configuration into ``run_dir/envoy.yaml`` and return that path.

    The access log goes to ``access_log_path`` (e.g. ``/dev/stdout``), by default
    ``run_dir/envoy-access.log``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if access_log_path is None:
        access_log_path = str((run_dir / ACCESS_LOG_NAME).resolve())
    text = yaml.safe_dump(envoy_document(config, access_log_path), sort_keys=False)
    target = run_dir / RENDERED_NAME
    tmp = target.with_name(target.name + ".tmp")
    tmp.touch(mode=0o600)  # it may hold the API key
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target
