"""Writing a stored document again with another access list, against a real retrieval_svc process: ``likeopt
ingest`` run twice refuses, document by document, to open what an earlier run restricted (or to move it to another
tenant) unless told to with ``--change-access``, and names every change it made; a REST write names them in its
reply; retrieval_svc logs each one at WARNING, without the text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gateway.app import build_app
from likeopt.ops.evaluate import wait_serving
from likeopt.runtime.config import Config
from tests.integration.test_retrieval_persistence import start, stop
from tests.support import ROOT, free_port

SECRET = "The vault combination is 31-41-59."
KEY = "access-change-test-key"


@pytest.fixture(scope="module")
def retrieval(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """retrieval_svc's address and its log file."""
    data_dir, port = tmp_path_factory.mktemp("access-changes") / "data", free_port()
    process = start(data_dir, port)
    try:
        wait_serving(f"127.0.0.1:{port}", process)
        yield f"127.0.0.1:{port}", data_dir.parent / "retrieval_svc.log"
    finally:
        stop(process)


def likeopt_ingest(folder: Path, address: str, *args: str) -> tuple[int, list[str]]:
    """Run ``likeopt ingest ARGS`` in folder (ids are paths from it); its exit status and report lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIKEOPT_")}
    env.update(LIKEOPT_RETRIEVAL_ADDR=address, PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "likeopt.ops.cli", "ingest", *args]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout.splitlines()


def test_ingest_run_again_names_reader_changes_and_widens_only_when_told(
    retrieval: tuple[str, Path], tmp_path: Path
) -> None:
    """The audit's case: ``likeopt ingest plans`` after ``--tenant acme --allow-group ops`` opened plans/vault.md to
    every tenant, and ``--tenant globex`` with a record of its id moved it to globex, both reported as "ingested"."""
    address, log_file = retrieval
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "vault.md").write_text(f"# Vault\n\n{SECRET}\n")
    (tmp_path / "open.md").write_text("# Open\n\nThe canteen opens at nine.\n")
    (tmp_path / "hijack.json").write_text(json.dumps([{"id": "plans/vault.md", "text": "Globex owns this."}]))
    assert likeopt_ingest(tmp_path, address, "plans", "--tenant", "acme", "--allow-group", "ops")[0] == 0
    assert likeopt_ingest(tmp_path, address, "open.md")[0] == 0
    status, lines = likeopt_ingest(tmp_path, address, "open.md", "--tenant", "acme")
    assert status == 0 and lines[1:] == ['  readers changed for open.md: "everyone" → "everyone in acme"'], lines

    status, lines = likeopt_ingest(tmp_path, address, "plans")
    assert status == 1 and lines[0].startswith("ingested 0 documents"), lines
    assert lines[1].startswith("  refused plans/vault.md: this write would let in readers")
    assert lines[1].endswith('"acme: group ops" → "everyone"') and "--change-access" in lines[2]

    status, lines = likeopt_ingest(tmp_path, address, "hijack.json", "--tenant", "globex")
    assert status == 1 and lines[1].endswith('"acme: group ops" → "everyone in globex"'), lines

    status, lines = likeopt_ingest(tmp_path, address, "open.md", "--tenant", "acme", "--allow-group", "ops")
    assert status == 0 and lines[1:] == ['  readers changed for open.md: "everyone in acme" → "acme: group ops"']

    status, lines = likeopt_ingest(tmp_path, address, "plans", "--change-access")
    changed = '  readers changed for plans/vault.md: "acme: group ops" → "everyone" (more readers now)'
    assert status == 0 and lines[1:] == [changed], lines
    status, lines = likeopt_ingest(tmp_path, address, "plans")  # the same list again: nothing to say
    assert status == 0 and len(lines) == 1 and lines[0].startswith("ingested 1 documents"), lines

    lines = [json.loads(line) for line in log_file.read_text().splitlines() if "document access changed" in line]
    logged = [(e["level"], e["doc_id"], e["before"], e["after"], e["widened"]) for e in lines]
    assert [entry for entry in logged if entry[1] in {"open.md", "plans/vault.md"}] == [
        ("WARNING", "open.md", "everyone", "everyone in acme", False),
        ("WARNING", "open.md", "everyone in acme", "acme: group ops", False),
        ("WARNING", "plans/vault.md", "acme: group ops", "everyone", True),
    ]
    assert "31-41-59" not in log_file.read_text()


def test_a_rest_write_names_each_document_whose_readers_it_changed(retrieval: tuple[str, Path]) -> None:
    address, _ = retrieval
    unused = {f"LIKEOPT_{name}_ADDR": "127.0.0.1:1" for name in ("GENERATION", "CACHE")}
    config = Config.from_env({"LIKEOPT_API_KEY": KEY, "LIKEOPT_RETRIEVAL_ADDR": address, **unused})
    handbook = {"id": "handbook", "title": "Handbook", "text": "Holidays are booked in the portal."}
    with TestClient(build_app(config)) as client:

        def write(access: dict | None) -> dict:
            body = {"documents": [{**handbook, **({"access": access} if access is not None else {})}]}
            reply = client.post("/api/v1/documents", json=body, headers={"Authorization": f"Bearer {KEY}"})
            assert reply.status_code == 200, reply.text
            return reply.json()

        assert write({"tenant": "acme"})["access_changes"] == []
        opened = write(None)
        assert opened["upserted"] == 1 and opened["access_changes"] == [
            {"id": "handbook", "before": "everyone in acme", "after": "everyone", "widened": True}
        ]
        assert write(None)["access_changes"] == []
