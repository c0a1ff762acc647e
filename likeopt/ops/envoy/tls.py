"""TLS: for clients on the ingress listener (LIKEOPT_TLS_CERT_FILE), and to upstreams whose certificate Envoy checks
against the CA bundle (an ``https://`` OTLP collector, an identity provider's JWKS)."""

from __future__ import annotations

import ipaddress

from likeopt.ops.envoy.ingress import ingress_listener
from likeopt.runtime.addresses import ca_file

TLS_SOCKET = "envoy.transport_sockets.tls"
COLLECTOR_ALPN = ("h2",)
"""What Envoy offers a TLS collector, as the services' exporters speak it: gRPC servers refuse TLS without h2."""


def add_ingress_tls(doc: dict, cert_file: str, key_file: str) -> None:
    """TLS on the ingress listener, HTTP/2 and HTTP/1.1 chosen by ALPN; added to the parsed document rather than
    templated, so the one template stays free of conditionals."""
    for chain in ingress_listener(doc)["filter_chains"]:
        chain["transport_socket"] = {
            "name": TLS_SOCKET,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {
                    "alpn_protocols": ["h2", "http/1.1"],
                    "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                    "tls_certificates": [
                        {"certificate_chain": {"filename": cert_file}, "private_key": {"filename": key_file}}
                    ],
                },
            },
        }


def verified_tls(host: str, alpn: tuple[str, ...] = ()) -> dict:
    """TLS to an upstream with its certificate checked against the CA bundle and for ``host``, which a name also
    sends as SNI (an IP address is never SNI); alpn, the protocols offered (Envoy checks nothing by default)."""
    try:
        ipaddress.ip_address(host)
        san_type, name = "IP_ADDRESS", {}
    except ValueError:
        san_type, name = "DNS", {"sni": host}
    validation = {
        "trusted_ca": {"filename": ca_file()},
        "match_typed_subject_alt_names": [{"san_type": san_type, "matcher": {"exact": host}}],
    }
    return {
        "name": TLS_SOCKET,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            **name,
            "common_tls_context": {
                **({"alpn_protocols": list(alpn)} if alpn else {}),
                "validation_context": validation,
            },
        },
    }


def add_collector_tls(doc: dict, host: str) -> None:
    """TLS to the collector (an ``https://`` LIKEOPT_OTLP_ENDPOINT)."""
    cluster = next(x for x in doc["static_resources"]["clusters"] if x["name"] == "otel_collector")
    cluster["transport_socket"] = verified_tls(host, COLLECTOR_ALPN)
