"""Which ports are free: the launcher checks the configured ones before anything starts, and picks free ones for
what it adds itself (a private Redis, replicas); tests pick theirs here too."""

from __future__ import annotations

import errno
import random
import socket
from pathlib import Path

from likeopt.ops.launch_error import LaunchError
from likeopt.runtime.addresses import host_port
from likeopt.runtime.config import CACHE, ENVOY, GATEWAY, GENERATION, LISTENING_PORTS, RETRIEVAL, Config


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on host:port already. Any other reason the port cannot be bound (a name that does
    not resolve, an address not on this machine, a port below 1024) is a LaunchError that says it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise LaunchError(f"cannot listen on {host_port(host, port)}: {exc.strerror or exc}") from None
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, chosen below the kernel's ephemeral range.

    Ports the kernel hands out (bind to 0) come from the range outgoing connections use too,
    so one can be taken again before the child binds it; ports below that range cannot.
    """
    low = ephemeral_range()[0]
    for port in random.sample(range(10_000, low), 200):
        if not port_in_use(host, port):
            return port
    raise LaunchError(f"no free port found below {low} on {host}")


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


PROCESS_OF_PORT = {"envoy": ENVOY, "gateway": GATEWAY, "retrieval": RETRIEVAL, "generation": GENERATION, "cache": CACHE}


def refuse_busy_ports(config: Config) -> None:
    """Every configured port checked before anything starts: a busy Envoy port used to be found only after the
    four services had started (about 40 s). Each child's own port is checked again as it starts."""
    for setting in LISTENING_PORTS:
        service, _, role = setting.removesuffix("_port").partition("_")
        name = PROCESS_OF_PORT[service] + (f" ({role})" if role else "")
        host = "127.0.0.1" if setting == "envoy_admin_port" else config.host
        port = getattr(config, setting)
        try:
            busy = bool(port) and port_in_use(host, port)
        except LaunchError as exc:
            raise LaunchError(f"{name}: {exc}") from None
        if busy:
            raise LaunchError(f"{name}: port {port} on {host} is already in use")
