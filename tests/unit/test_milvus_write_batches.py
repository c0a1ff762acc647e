"""How a Milvus write is cut into upserts: a document's rows go in one call unless it alone has more than a call
holds, and each document's stale chunks are deleted right after the call that holds its last rows, so a process
killed between calls leaves every other document whole (either version, never a mix)."""

from __future__ import annotations

from retrieval_svc.milvus_writes import WRITE_BATCH_ROWS, write_batches


def spans(sizes: list[int], limit: int) -> list[tuple[int, int, dict[str, int]]]:
    ids = [f"d{n}" for n in range(len(sizes))]
    return [(b.rows.start, b.rows.stop, b.finished) for b in write_batches(ids, sizes, limit)]


def test_documents_that_fit_are_never_cut_between_two_calls() -> None:
    assert spans([300, 300], 500) == [(0, 300, {"d0": 300}), (300, 600, {"d1": 300})]
    assert spans([200, 200, 100, 1], 500) == [(0, 500, {"d0": 200, "d1": 200, "d2": 100}), (500, 501, {"d3": 1})]


def test_a_document_larger_than_a_call_is_cut_and_deleted_from_after_its_last_piece() -> None:
    assert spans([2, 1200, 3], 500) == [
        (0, 2, {"d0": 2}),
        (2, 502, {}),
        (502, 1002, {}),
        (1002, 1205, {"d1": 1200, "d2": 3}),
    ]


def test_every_row_is_sent_once_in_order_within_the_limit() -> None:
    sizes = [(n * 37) % 230 + 1 for n in range(60)]
    batches = write_batches([f"d{n}" for n in range(60)], sizes)
    assert [b.rows.start for b in batches[1:]] == [b.rows.stop for b in batches[:-1]]
    assert batches[0].rows.start == 0 and batches[-1].rows.stop == sum(sizes)
    assert all(0 < b.rows.stop - b.rows.start <= WRITE_BATCH_ROWS for b in batches)
    finished = {doc: count for b in batches for doc, count in b.finished.items()}
    assert finished == {f"d{n}": size for n, size in enumerate(sizes)}


def test_a_document_without_chunks_still_has_its_old_chunks_deleted() -> None:
    assert spans([0], 500) == [(0, 0, {"d0": 0})]
    assert spans([3, 0], 500) == [(0, 3, {"d0": 3, "d1": 0})]
