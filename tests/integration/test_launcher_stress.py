"""``likeopt up`` started and stopped many times in a row: every start finishes within a deadline,
every stop exits 0, and no process outlives the launcher (issue: a fork deadlock once hung a start)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support import MeshProcess, alive, descendants, mesh_environment

PLAIN_STARTS = 30
REPLICA_STARTS = 3
START_DEADLINE_S = 180.0


def start_and_stop(env: dict[str, str], args: list[str], expected_children: int) -> None:
    """One start under the deadline, a check that every child is there, a stop that exits 0, no orphans."""
    mesh = MeshProcess(env=env, args=args)
    mesh.start()
    children: set[int] = set()
    try:
        mesh.wait_ready(timeout_s=START_DEADLINE_S)
        assert mesh.process is not None
        children = descendants(mesh.process.pid)
        assert len(children) >= expected_children, "".join(mesh.output[-20:])
    finally:
        code = mesh.stop()
    assert code == 0, "likeopt up did not exit cleanly:\n" + "".join(mesh.output[-30:])
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)], "processes outlived the launcher"


@pytest.mark.parametrize("run", range(PLAIN_STARTS))
def test_the_mesh_starts_and_stops_cleanly_again_and_again(tmp_path_factory: pytest.TempPathFactory, run: int) -> None:
    work_dir = tmp_path_factory.getbasetemp() / "stress-mesh"
    start_and_stop(mesh_environment(work_dir), [], expected_children=6)


@pytest.mark.parametrize("run", range(REPLICA_STARTS))
def test_the_mesh_with_replicas_starts_and_stops_cleanly(tmp_path: Path, run: int) -> None:
    start_and_stop(mesh_environment(tmp_path), ["--replicas", "retrieval=2,generation=2"], expected_children=8)
