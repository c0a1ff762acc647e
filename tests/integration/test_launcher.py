"""``likeopt up`` as a process supervisor: clean stop, no orphans, clear start-up failures."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import time
from pathlib import Path

import grpc
import httpx
import pytest

from likeopt.ops import envoy_drain
from likeopt.ops.dir_lock import release
from likeopt.ops.launcher import locked_folders
from likeopt.runtime.config import Config
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from tests.support import MeshProcess, alive, descendants, mesh_environment


def envoy_requests_in_flight(mesh: MeshProcess) -> int:
    return envoy_drain.serving(f"127.0.0.1:{mesh.port('envoy_admin')}", timeout_s=5)


def started_upload(mesh: MeshProcess, body: bytes) -> http.client.HTTPConnection:
    """An upload whose headers and first half of body are sent, the rest held back: a request in flight."""
    host, port = mesh.address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.putrequest("POST", "/api/v1/documents")
    for name, value in (
        ("Authorization", f"Bearer {mesh.api_key}"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
    ):
        connection.putheader(name, value)
    connection.endheaders()
    connection.send(body[: len(body) // 2])
    return connection


def test_sigterm_serves_what_is_in_flight_then_stops_every_child_and_leaves_no_orphan(tmp_path: Path) -> None:
    mesh = MeshProcess(env=mesh_environment(tmp_path), args=[])
    mesh.start()
    try:
        mesh.wait_ready()
        assert mesh.process is not None
        assert mesh.api_key not in "".join(mesh.output), "a key the user chose is never printed"
        children = descendants(mesh.process.pid)
        assert len(children) >= 6, "expected redis, three services, gateway and envoy"
        document = {"id": "in-flight.md", "title": "In flight", "text": "Sent while the mesh was told to stop."}
        body = json.dumps({"documents": [document]}).encode()
        upload = started_upload(mesh, body)
        deadline = time.monotonic() + 30
        while envoy_requests_in_flight(mesh) < 1:
            assert time.monotonic() < deadline, "Envoy never saw the upload"
            time.sleep(0.05)
        mesh.process.send_signal(signal.SIGTERM)
        time.sleep(1.0)  # Envoy used to exit at once, cutting the upload here
        upload.send(body[len(body) // 2 :])
        reply = upload.getresponse()
        assert reply.status == 200 and json.loads(reply.read())["upserted"] == 1
    finally:
        code = mesh.stop()
    assert code == 0, "".join(mesh.output[-30:])
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)]


def test_a_generated_api_key_opens_grpc_writes_through_envoy(tmp_path: Path) -> None:
    mesh = MeshProcess(env=mesh_environment(tmp_path, LIKEOPT_API_KEY=""), args=[])
    mesh.start()
    try:
        mesh.wait_ready()
        banner = next(line for line in mesh.output if "API key for writes (generated" in line)
        key = banner.rsplit(": ", 1)[1].strip()
        with grpc.insecure_channel(mesh.address) as channel:
            delete = retrieval_pb2_grpc.RetrievalServiceStub(channel).DeleteDocuments
            request = retrieval_pb2.DeleteDocumentsRequest(ids=["nothing-here"])
            assert delete(request, metadata=[("authorization", f"Bearer {key}")], timeout=30).deleted == 0
            with pytest.raises(grpc.RpcError) as refused:
                delete(request, metadata=[("authorization", "Bearer not-the-key")], timeout=30)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        mesh.stop()


@pytest.mark.parametrize(
    ("setting", "process"),
    [("CACHE_PORT", "cache_svc"), ("ENVOY_PORT", "envoy"), ("ENVOY_METRICS_PORT", "envoy (metrics)")],
)
def test_a_port_in_use_names_the_process_and_fails_before_anything_starts(
    tmp_path: Path, setting: str, process: str
) -> None:
    """Envoy starts last: its busy port was found only after the four services had started, about 40 s in."""
    env = mesh_environment(tmp_path)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", int(env[f"LIKEOPT_{setting}"])))
        blocker.listen()
        mesh = MeshProcess(env=env, args=[])
        mesh.start()
        code = mesh.wait_exit(timeout_s=60)
    output = "".join(mesh.output)
    assert code == 1 and f"{process}: port {env[f'LIKEOPT_{setting}']} on 127.0.0.1 is already in use" in output
    assert "is up on port" not in output


def test_a_launcher_on_folders_another_holds_stops_before_starting_anything(tmp_path: Path) -> None:
    env = mesh_environment(tmp_path)
    held = locked_folders(Config.from_env({k: v for k, v in env.items() if k.startswith("LIKEOPT_")}))
    try:
        mesh = MeshProcess(env=env, args=[])
        mesh.start()
        code = mesh.wait_exit(timeout_s=60)
    finally:
        release(held)
    output = "".join(mesh.output)
    assert code == 1 and f"LIKEOPT_DATA_DIR={tmp_path / 'data'} is in use by another `likeopt up`" in output
    assert "is up on port" not in output and not (tmp_path / "run" / "redis").exists()


def process_of(mesh: MeshProcess, module: str) -> int:
    """The pid of the child running ``python -m module``."""
    assert mesh.process is not None
    for pid in descendants(mesh.process.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-m" in argv and module.encode() in argv:
            return pid
    raise AssertionError(f"no {module} process")


def test_a_killed_gateway_is_restarted_and_envoy_recovers_by_itself(tmp_path: Path) -> None:
    mesh = MeshProcess(env=mesh_environment(tmp_path), args=[])
    mesh.start()
    try:
        mesh.wait_ready()
        statuses: list[int] = []
        with httpx.Client(base_url=mesh.base_url, timeout=5) as client:
            os.kill(process_of(mesh, "gateway"), signal.SIGKILL)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                statuses.append(client.get("/healthz").status_code)
                if statuses[-1] == 200 and 503 in statuses:
                    break
                time.sleep(0.05)
        assert 503 in statuses, "Envoy should answer 503 while the gateway is down"
        assert statuses[-1] == 200, "the mesh did not recover"
        assert set(statuses) <= {200, 503}
        assert any("gateway exited" in line and "restarting" in line for line in mesh.output)
    finally:
        assert mesh.stop() == 0
