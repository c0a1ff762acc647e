"""``likeopt ingest`` of a folder whose files are also stored under other ids, against a real retrieval_svc process:
uploaded through the gateway (their names alone) or left by a release before ids were paths (other text)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gateway.app import build_app
from likeopt.ops.evaluate import wait_serving
from likeopt.runtime.config import Config
from tests.integration.test_reingest_access import likeopt_ingest
from tests.integration.test_retrieval_persistence import start, stop
from tests.support import free_port

KEY = "ingest-copies-test-key"
REPORT = "# Quellbrunn report\n\nThe Quellbrunn aquifer recharged by eleven percent.\n"
ROTA = "# Rota\n\nMira is on call this week.\n"


@pytest.fixture
def retrieval(tmp_path: Path) -> Iterator[str]:
    data_dir, port = tmp_path / "data", free_port()
    process = start(data_dir, port)
    try:
        wait_serving(f"127.0.0.1:{port}", process)
        yield f"127.0.0.1:{port}"
    finally:
        stop(process)


@contextmanager
def gateway(address: str) -> Iterator[TestClient]:
    """The gateway in front of retrieval_svc, as the web UI reaches it."""
    unused = {f"LIKEOPT_{name}_ADDR": "127.0.0.1:1" for name in ("GENERATION", "CACHE")}
    config = Config.from_env({"LIKEOPT_API_KEY": KEY, "LIKEOPT_RETRIEVAL_ADDR": address, **unused})
    with TestClient(build_app(config), headers={"Authorization": f"Bearer {KEY}"}) as client:
        yield client


def test_files_uploaded_then_ingested_are_the_same_file_twice_not_an_earlier_releases_copy(
    retrieval: str, tmp_path: Path
) -> None:
    """The probe's case: each uploaded file, ingested from its folder, was "also stored as 'report.md' by an earlier
    release, which named files differently: that copy keeps its old text"."""
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "report.md").write_text(REPORT)
    (tmp_path / "files" / "rota.md").write_text(ROTA)
    uploaded = {"report.md": REPORT, "rota.md": "# Rota\n\nAna is on call this week.\n"}
    with gateway(retrieval) as client:
        files = [("files", (name, text.encode(), "text/markdown")) for name, text in uploaded.items()]
        reply = client.post("/api/v1/documents", files=files)
        assert reply.status_code == 200 and reply.json()["upserted"] == 2, reply.text

    status, lines = likeopt_ingest(tmp_path, retrieval, "files")
    assert status == 0 and lines[0].startswith("ingested 2 documents"), lines
    assert lines[1:] == [
        "  the same file is also stored as 'report.md' (its name alone, as an upload through the API or web UI names"
        " a file, and releases before ids were paths did): searches show both until you delete one"
        " (DELETE /api/v1/documents/report.md)",
        "  also stored as 'rota.md' with other text (its name alone, as an upload through the API or web UI names a"
        " file, and releases before ids were paths did): that copy keeps its text and readers beside 'files/rota.md'"
        " until you delete it (DELETE /api/v1/documents/rota.md)",
    ]
    assert not any("earlier release" in line for line in lines)

    with gateway(retrieval) as client:  # as the report says
        assert all(client.delete(f"/api/v1/documents/{name}").status_code == 200 for name in uploaded)
    status, lines = likeopt_ingest(tmp_path, retrieval, "files")
    assert status == 0 and len(lines) == 1, lines  # once deleted, nothing to point out
