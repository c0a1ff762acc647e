"""Addresses as settings write them: host:port with IPv6 in brackets, replica lists, the OTLP collector's (and the CA
bundle its certificate is checked against when it speaks TLS)."""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import NamedTuple
from urllib.parse import urlsplit


def host_port(host: str, port: int | str) -> str:
    """``host:port``, with an IPv6 literal in brackets (``[::1]:50051``) as gRPC, URLs and Redis need."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def split_host_port(addr: str, name: str = "address") -> tuple[str, str]:
    """``"host:port"`` -> ``("host", "port")``, split on the last colon; ``[v6]`` loses its brackets."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{name} {addr!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


OTLP_DEFAULT_PORT = "4317"
OTLP_SCHEMES = {"http": False, "https": True}
"""The schemes the OTLP endpoint may have, and whether each means TLS; an endpoint without one is plaintext."""
SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"
"""The system's CA bundle on Debian, Ubuntu and Alpine (Envoy's image and ours among them)."""


class Collector(NamedTuple):
    """The OTLP/gRPC collector: where Envoy and every service send spans, and whether all of them speak TLS."""

    host: str
    port: str
    tls: bool

    @property
    def target(self) -> str:
        """``host:port`` as gRPC dials it."""
        return host_port(self.host, self.port)


NO_COLLECTOR = Collector("127.0.0.1", OTLP_DEFAULT_PORT, tls=False)
"""Where Envoy's collector cluster points when there is no endpoint: never used, as nothing is sampled."""


def otlp_collector(endpoint: str) -> Collector:
    """The collector of ``http://host:port`` or ``host:port`` (plaintext), or ``https://host:port`` (TLS); the
    port is 4317 when not given. Any other scheme is a ValueError: Envoy and the services must agree."""
    if not endpoint:
        return NO_COLLECTOR
    scheme = endpoint.partition("://")[0].lower() if "://" in endpoint else "http"
    if scheme not in OTLP_SCHEMES:
        raise ValueError(
            f"LIKEOPT_OTLP_ENDPOINT={endpoint}: must start with http:// (plaintext) or https:// (TLS), not {scheme}://"
        )
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"LIKEOPT_OTLP_ENDPOINT={endpoint}: must have a port from 0 to 65535") from None
    if not parts.hostname:
        raise ValueError(f"LIKEOPT_OTLP_ENDPOINT={endpoint}: must name a host")
    return Collector(parts.hostname, str(port or OTLP_DEFAULT_PORT), OTLP_SCHEMES[scheme])


def ca_file() -> str:
    """The CA bundle a TLS collector's certificate is checked against, by Envoy and every service alike: the file
    ``SSL_CERT_FILE`` names (OpenSSL's own way to name another), else the system's."""
    return os.environ.get("SSL_CERT_FILE") or SYSTEM_CA_FILE


def unresolvable(host: str) -> str | None:
    """Why ``host`` is no address to bind or connect to (the resolver's reason), or None if it is one."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError) as exc:
        return str(exc.args[-1] if isinstance(exc, socket.gaierror) else exc)
    return None


def reachable_host(host: str) -> str:
    """Where a client on this machine reaches a process bound to host: loopback, when it is bound to all."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def address_list(addresses: str) -> list[str]:
    """The host:port entries of an address setting; several mean replicas, the first is primary."""
    return [a.strip() for a in addresses.split(",") if a.strip()]


def replica_family(addresses: list[str], name: str) -> str:
    """``ipv4`` or ``ipv6``: the family of a list of replica addresses, which gRPC balances call by call only
    over IP literals of one family. Anything else is a ValueError that names the setting."""
    families = set()
    for address in addresses:
        host, _ = split_host_port(address, f"{name}: replica")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(
                f"{name}: replica {address!r} is not an IP literal with a port (10.0.0.7:50051, [fd00::7]:50051);"
                " for replicas behind one DNS name give that name alone"
            ) from None
        if literal.version == 6 and not address.startswith("["):
            raise ValueError(f"{name}: replica {address!r}: an IPv6 address goes in brackets ([::1]:50051)")
        families.add(f"ipv{literal.version}")
    if len(families) != 1:
        raise ValueError(f"{name}: replicas must all be IPv4 or all IPv6, not both")
    return families.pop()
