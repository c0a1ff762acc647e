"""``likeopt up`` stopped while ``likeopt ingest`` is uploading: every process drains and exits by itself, the client
is told what was stored, and what was stored is whole and searchable after the next start.

retrieval_svc used to wait for the batch it was embedding (a minute on two busy cores) past the launcher's grace,
and was killed; its client was cut off with "Cancelling all calls".
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import ROOT, MeshProcess, mesh_environment

FILES = 400
"""Documents in the folder: many batches of about 200 chunks, so the stop always comes in the middle."""
HANG_S = 600.0
"""A bound only a hang exceeds (no timing is asserted): the first batch to be stored, the launcher's exit."""


def write_corpus(folder: Path) -> None:
    """FILES Markdown files of varied words, each ending with a word of its own (closingN) in its last chunk."""
    rng = random.Random(7)
    vocabulary = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9))) for _ in range(3000)]
    folder.mkdir()
    for n in range(FILES):
        body = " ".join(rng.choices(vocabulary, k=1200))
        (folder / f"doc{n:04d}.md").write_text(f"# Document {n}\n\n{body} closing{n}\n")


def retrieval_log(env: dict[str, str]) -> Path:
    return Path(env["LIKEOPT_RUN_DIR"]) / "logs" / "retrieval_svc.log"


def started_ingest(env: dict[str, str], folder: Path, output: Path) -> subprocess.Popen[str]:
    """``likeopt ingest folder`` against the mesh's retrieval_svc (ids: folder/docN.md), its output in output."""
    command = [sys.executable, "-m", "likeopt.ops.cli", "ingest", "--quiet", folder.name]
    return subprocess.Popen(
        command,
        cwd=folder.parent,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=output.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_a_stored_batch(env: dict[str, str], ingest: subprocess.Popen[str]) -> None:
    """Until retrieval_svc has stored one batch of the upload: the stop then comes while later ones are sent."""
    deadline = time.monotonic() + HANG_S
    while '"msg": "upserted"' not in retrieval_log(env).read_text():
        assert ingest.poll() is None, "the upload ended before the stop"
        assert time.monotonic() < deadline, "no batch was stored"
        time.sleep(0.5)


def test_ctrl_c_during_an_ingest_drains_every_process_and_keeps_whole_documents(tmp_path: Path) -> None:
    write_corpus(tmp_path / "corpus")
    env = mesh_environment(tmp_path)
    mesh = MeshProcess(env=env, args=[])
    mesh.start()
    try:
        mesh.wait_ready()
        ingest = started_ingest(env, tmp_path / "corpus", tmp_path / "ingest.out")
        wait_for_a_stored_batch(env, ingest)
        assert mesh.process is not None
        mesh.process.send_signal(signal.SIGINT)
        code = mesh.wait_exit(HANG_S)
    finally:
        mesh.stop()
    assert code == 0 and "did not stop in time" not in "".join(mesh.output), "".join(mesh.output[-20:])
    assert ingest.wait(HANG_S) == 1
    said = (tmp_path / "ingest.out").read_text()
    assert "retrieval_svc is stopping" in said and "Traceback" not in said, said
    confirmed = re.search(r"(\d+) documents of this run were confirmed stored", said)
    assert confirmed is not None and 0 < int(confirmed[1]) < FILES, said

    with MeshProcess(env=env, args=[]).running() as again:
        headers = {"Authorization": f"Bearer {again.api_key}"}
        with httpx.Client(base_url=again.base_url, headers=headers, timeout=60) as client:
            index = client.get("/api/v1/index").json()
            listed = client.get("/api/v1/documents", params={"limit": FILES}).json()["documents"]
            assert index["documents"] == len(listed) == int(confirmed[1]), (index, said)
            assert index["chunks"] == sum(d["chunks"] for d in listed)
            for doc in listed[:3] + listed[-3:]:  # each stored whole: its last chunk is found
                n = int(doc["id"].removeprefix("corpus/doc").removesuffix(".md"))
                hits = client.post("/api/v1/search", json={"query": f"closing{n}", "mode": "bm25"}).json()["hits"]
                assert [h["doc_id"] for h in hits[:1]] == [doc["id"]], hits
