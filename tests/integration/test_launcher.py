"""``likeopt up`` as a process supervisor: clean stop, no orphans, clear start-up failures."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.support import MeshProcess, alive, descendants, mesh_environment


def test_sigterm_stops_every_child_and_leaves_no_orphan(tmp_path: Path) -> None:
    mesh = MeshProcess(env=mesh_environment(tmp_path), args=[])
    mesh.start()
    try:
        mesh.wait_ready()
        assert mesh.process is not None
        children = descendants(mesh.process.pid)
        assert len(children) >= 6, "expected redis, three services, gateway and envoy"
    finally:
        code = mesh.stop()
    assert code == 0, "".join(mesh.output[-30:])
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)]


def test_a_port_in_use_names_the_process_and_fails(tmp_path: Path) -> None:
    env = mesh_environment(tmp_path)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", int(env["LIKEOPT_CACHE_PORT"])))
        blocker.listen()
        mesh = MeshProcess(env=env, args=[])
        mesh.start()
        code = mesh.wait_exit(timeout_s=60)
    output = "".join(mesh.output)
    assert code != 0
    assert f"cache_svc: port {env['LIKEOPT_CACHE_PORT']}" in output and "in use" in output
