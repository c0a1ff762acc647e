"""Redis is optional at run time: searches survive its death and L2 is used again when it returns."""

from __future__ import annotations

import time

import httpx

from tests.support import MeshProcess, ValkeyServer


def cache_state(mesh: MeshProcess) -> dict:
    return httpx.get(f"{mesh.base_url}/api/v1/dashboard", timeout=5).json()["cache"]


def test_searches_succeed_while_redis_is_down_and_l2_recovers(mesh: MeshProcess, valkey: ValkeyServer) -> None:
    statuses = []
    with httpx.Client(base_url=mesh.base_url, timeout=30) as client:
        for n in range(60):
            if n == 20:
                valkey.stop()
            reply = client.post("/api/v1/search", json={"query": f"redis outage probe {n}", "top_k": 3})
            statuses.append(reply.status_code)
        assert statuses == [200] * 60
        assert cache_state(mesh)["l2_healthy"] is False

        valkey.start()
        deadline = time.monotonic() + 20
        with valkey.client() as redis_client:
            n = 0
            while not redis_client.keys("likeopt:search:*"):
                assert time.monotonic() < deadline, "L2 was not used again after Redis came back"
                assert client.post("/api/v1/search", json={"query": f"after recovery {n}"}).status_code == 200
                n += 1
                time.sleep(0.2)
    assert cache_state(mesh)["l2_healthy"] is True
