"""Clients holding more connections than Envoy's open files allow are refused; Envoy itself stays up."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from likeopt.ops.open_files import FEWEST_CONNECTIONS, MOST_CONNECTIONS, RESERVED, downstream_connection_cap
from tests.support import ROOT, MeshProcess, mesh_environment

LIMIT = 512
HELD = 700
"""Idle client connections opened at once: more than the limit, as a careless or hostile client may."""


def test_the_cap_keeps_a_descriptor_for_each_connection_s_upstream_and_the_reserve() -> None:
    assert downstream_connection_cap(LIMIT) == (LIMIT - RESERVED) // 2
    assert downstream_connection_cap(1 << 20) == MOST_CONNECTIONS
    assert downstream_connection_cap(64) == FEWEST_CONNECTIONS


def test_the_launcher_raises_its_soft_limit_to_the_hard_one_for_its_children() -> None:
    script = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 1024))\n"
        "from likeopt.ops.open_files import raise_open_file_limit\n"
        "print(raise_open_file_limit(), resource.getrlimit(resource.RLIMIT_NOFILE))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split(None, 1) == ["1024", "(1024, 1024)\n"]


def held_requests(address: tuple[str, int], count: int) -> tuple[list[socket.socket], int]:
    """Open count connections, each sending one keep-alive request; returns them and how many were answered."""
    held: list[socket.socket] = []
    for _ in range(count):
        with contextlib.suppress(OSError):
            held.append(socket.create_connection(address, timeout=5))
    answered = 0
    for sock in held:
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /api/v1/readyz HTTP/1.1\r\nHost: likeopt\r\n\r\n")
            answered += sock.recv(64).startswith(b"HTTP/1.1 200")
    return held, answered


def test_envoy_refuses_connections_past_its_cap_and_keeps_serving(tmp_path: Path) -> None:
    mesh = MeshProcess(env=mesh_environment(tmp_path), args=[], open_files=LIMIT)
    with mesh.running():
        assert any("Envoy will hold at most" in line for line in mesh.output)
        held, answered = held_requests(("127.0.0.1", mesh.port("envoy")), HELD)
        try:
            assert 0 < answered <= downstream_connection_cap(LIMIT)
        finally:
            for sock in held:
                sock.close()
        reply = httpx.post(f"{mesh.base_url}/api/v1/search", json={"query": "anything"}, timeout=30)
        assert reply.status_code == 200
        assert not [line for line in mesh.output if "exited with code" in line], "".join(mesh.output[-20:])
