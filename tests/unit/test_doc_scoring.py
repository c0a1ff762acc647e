"""benchmarks/doc_scoring reads the store likeopt eval wrote for a collection, wherever the store's shape puts it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.doc_scoring import load
from likeopt.ops.evaluate import Dataset, store_shape
from likeopt.runtime.config import Config
from retrieval_svc.store import NewDocument, Store
from tests.unit.test_retrieval_harness import FakeEmbedder


def test_the_chunks_come_from_the_store_likeopt_eval_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "title": "", "text": "apt installs packages"}) + "\n")
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "package manager"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    monkeypatch.chdir(tmp_path)
    where = Dataset.load(folder).data_dir(Path("var/eval"), store_shape(Config.from_env()))
    where.mkdir(parents=True)
    embedder = FakeEmbedder()
    store = Store(where / "store.sqlite3")
    store.upsert([NewDocument("d1", "", {}, ["apt installs packages"], embedder.encode(["apt installs packages"]))])
    store.close()
    collection = load(folder, embedder)
    assert collection.doc_ids == ["d1"]
    assert collection.chunk_vectors.shape == (1, embedder.dim)
