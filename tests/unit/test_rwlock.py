"""ReadWriteLock: readers share, a writer is alone, a waiting writer holds new readers back; and the engine's
searches share its index."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from retrieval_svc.backend import DocumentInput
from retrieval_svc.bm25 import BM25Index
from retrieval_svc.engine import RetrievalEngine
from retrieval_svc.rwlock import ReadWriteLock
from tests.unit.test_retrieval_engine import engine_at, ingest, params

WAIT_S = 10.0
"""How long a step that must happen is waited for; only a broken lock ever waits this long."""


def in_thread(body: Callable[[], None]) -> tuple[threading.Thread, threading.Event]:
    """Run body in a thread; the event is set once body has returned."""
    done = threading.Event()

    def run() -> None:
        body()
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done


def hold(lock_side: Callable[[], object], entered: threading.Event, release: threading.Event) -> Callable[[], None]:
    def body() -> None:
        with lock_side():  # type: ignore[attr-defined]
            entered.set()
            assert release.wait(WAIT_S)

    return body


def test_readers_share_the_lock() -> None:
    lock = ReadWriteLock()
    entered, release = threading.Event(), threading.Event()
    first, _ = in_thread(hold(lock.reading, entered, release))
    assert entered.wait(WAIT_S)
    second_entered, second_release = threading.Event(), threading.Event()
    second_release.set()
    _, second_done = in_thread(hold(lock.reading, second_entered, second_release))
    assert second_done.wait(WAIT_S)  # entered and left while the first reader was still inside
    release.set()
    first.join(WAIT_S)


@pytest.mark.parametrize(
    "first_side, second_side", [("reading", "writing"), ("writing", "reading"), ("writing", "writing")]
)
def test_a_writer_excludes_everyone_else(first_side: str, second_side: str) -> None:
    lock = ReadWriteLock()
    entered, release = threading.Event(), threading.Event()
    in_thread(hold(getattr(lock, first_side), entered, release))
    assert entered.wait(WAIT_S)
    second_entered, second_release = threading.Event(), threading.Event()
    second_release.set()
    _, second_done = in_thread(hold(getattr(lock, second_side), second_entered, second_release))
    assert not second_entered.wait(0.2)
    release.set()
    assert second_done.wait(WAIT_S)


def test_a_waiting_writer_holds_new_readers_back() -> None:
    lock = ReadWriteLock()
    order: list[str] = []
    reader_in, reader_release = threading.Event(), threading.Event()
    in_thread(hold(lock.reading, reader_in, reader_release))
    assert reader_in.wait(WAIT_S)

    def write() -> None:
        with lock.writing():
            order.append("writer")

    def read() -> None:
        with lock.reading():
            order.append("late reader")

    _, writer_done = in_thread(write)
    while not lock._writers_waiting:  # the writer is queued behind the first reader
        threading.Event().wait(0.01)
    _, late_done = in_thread(read)
    assert not late_done.wait(0.2)  # held back although only a reader is inside
    reader_release.set()
    assert writer_done.wait(WAIT_S) and late_done.wait(WAIT_S)
    assert order == ["writer", "late reader"]


class GatedVectors:
    """Wraps the engine's vector index so that a search can be held inside the engine's lock."""

    def __init__(self, vectors: object) -> None:
        self._vectors = vectors
        self.gate = threading.Event()
        self.inside = threading.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._vectors, name)

    def search(self, *args: object, **kwargs: object) -> object:
        if threading.current_thread().name == "held":
            self.inside.set()
            assert self.gate.wait(WAIT_S)
        return self._vectors.search(*args, **kwargs)  # type: ignore[attr-defined]


def test_a_search_does_not_wait_for_another_inside_the_index(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    ingest(
        engine,
        DocumentInput("zebra", "Zebras", "Zebras have stripes.", {}),
        DocumentInput("car", "Cars", "Wheels.", {}),
    )
    gated = GatedVectors(engine.vectors)
    engine.vectors = gated  # type: ignore[assignment]
    vector = engine.embed_query("zebras")

    def search() -> None:
        engine.search("zebras", params(), vector)

    held = threading.Thread(target=search, name="held", daemon=True)
    held.start()
    assert gated.inside.wait(WAIT_S)
    _, done = in_thread(search)
    assert done.wait(WAIT_S)  # the second search finished while the first held the index
    gated.gate.set()
    held.join(WAIT_S)


def test_a_write_waits_for_a_search_inside_the_index(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    ingest(engine, DocumentInput("zebra", "Zebras", "Zebras have stripes.", {}))
    gated = GatedVectors(engine.vectors)
    engine.vectors = gated  # type: ignore[assignment]
    vector = engine.embed_query("zebras")
    held = threading.Thread(target=lambda: engine.search("zebras", params(), vector), name="held", daemon=True)
    held.start()
    assert gated.inside.wait(WAIT_S)
    _, written = in_thread(lambda: ingest(engine, DocumentInput("car", "Cars", "Wheels.", {})))
    assert not written.wait(0.2)
    gated.gate.set()
    assert written.wait(WAIT_S)
    assert engine.get_document("car") is not None


def test_after_settling_a_bm25_search_changes_nothing() -> None:
    index, twin = BM25Index(), BM25Index()
    documents = [(key, f"term{key % 7} term{key % 3} shared".split()) for key in range(40)]
    for bm25 in (index, twin):
        bm25.add_many(documents[:30])
        bm25.compact()
        bm25.add_many(documents[30:34])
        bm25.add_many(documents[34:])
        bm25.remove(3)
    index.settle()
    state = (index._post_slots, index._offsets, list(index._pending), index._average_idf)
    assert index.search(["term1", "shared"], 10) == twin.search(["term1", "shared"], 10)
    assert index._post_slots is state[0] and index._offsets is state[1]
    assert [id(block) for block in index._pending] == [id(block) for block in state[2]]
    assert index._average_idf == state[3] is not None


def test_engine_writes_leave_bm25_settled(tmp_path: Path) -> None:
    engine: RetrievalEngine = engine_at(tmp_path)
    ingest(
        engine,
        DocumentInput("zebra", "Zebras", "Zebras have stripes.", {}),
        DocumentInput("car", "Cars", "Wheels.", {}),
    )
    ingest(engine, DocumentInput("horse", "Horses", "Horses have manes.", {}))
    engine.delete(["car"])
    assert len(engine.bm25._pending) <= 1 and engine.bm25._average_idf is not None
