"""AccessIndex: access classes follow the documents stored, and a reused class number opens no old row."""

from __future__ import annotations

import json
import random
import tracemalloc
from dataclasses import replace
from pathlib import Path

from likeopt.runtime.principal import Reader
from retrieval_svc.access import Access
from retrieval_svc.access_index import AccessIndex
from retrieval_svc.backend import DocumentInput
from tests.unit.test_retrieval_engine import engine_at, ingest, params

ACME = Access.of("acme", [], [])


def reader(n: int) -> Reader:
    return Reader.of("acme", f"user-{n}", [])


def private(n: int) -> Access:
    return Access.of("acme", [f"user-{n}"], [])


def visible_rows(index: AccessIndex, who: Reader, version: int) -> set[int]:
    mask = index.mask(who, version)
    return {row for row in range(index.size) if mask.contains([row])[0]}


def assert_classes_are(index: AccessIndex, lists: set[Access]) -> None:
    """The index knows these access lists' classes and nothing of any other."""
    assert set(index._class_of) == {tuple(access.keys()) for access in lists}
    assert set(index._keys_of) == set(index._holders) == set(index._class_of.values())
    assert set(index._classes_by_key) == {key for access in lists for key in access.keys()}


def test_classes_of_deleted_documents_are_forgotten_and_their_numbers_reused() -> None:
    index = AccessIndex()
    index.set("shared", ACME)
    index.place([(0, "shared")])
    for n in range(1, 200):
        index.set(f"doc-{n}", private(n))
        index.place([(2 * n, f"doc-{n}"), (2 * n + 1, f"doc-{n}")])
        if n > 2:  # keep two at a time, as a tenant replacing its documents would
            index.unplace([2 * n - 4, 2 * n - 3])
            index.forget(f"doc-{n - 2}")
    assert_classes_are(index, {ACME, private(198), private(199)})
    assert len(index._class_of) + len(index._free) <= 4  # class numbers handed out: at most ever held at once
    assert visible_rows(index, reader(199), 1) == {0, 398, 399}
    assert visible_rows(index, reader(5), 1) == {0}
    index.set("shared", private(199))  # its row keeps the class it was placed with until it is unplaced
    assert_classes_are(index, {ACME, private(198), private(199)})
    index.unplace([0])
    assert_classes_are(index, {private(198), private(199)})


def test_a_reused_class_number_opens_no_row_of_the_list_it_belonged_to() -> None:
    index = AccessIndex()
    index.set("old", private(1))
    index.place([(3, "old")])
    index.set("old", private(2))  # re-recorded while its row is still placed: the row keeps user-1's class
    index.set("new", private(3))
    index.place([(4, "new")])
    assert visible_rows(index, reader(1), 1) == {3}
    assert visible_rows(index, reader(3), 1) == {4}
    index.unplace([3])
    index.set("newer", private(4))  # takes the number user-1's class had
    index.place([(5, "newer")])
    assert visible_rows(index, reader(1), 2) == set()
    assert visible_rows(index, reader(4), 2) == {5}
    assert index.readable(reader(2), 2)("old") and not index.readable(reader(1), 2)("old")


def test_the_engine_forgets_the_access_lists_of_deleted_documents(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    ingest(engine, DocumentInput("kept", "Kept", "Zebras graze.", {}, private(0)))
    for n in range(1, 6):
        ingest(engine, DocumentInput(f"doc-{n}", "Note", f"Zebras run {n}.", {}, private(n)))
        ingest(engine, DocumentInput(f"doc-{n}", "Note", f"Zebras walk {n}.", {}, private(n + 100)))
        engine.delete([f"doc-{n}"])
    assert_classes_are(engine.access, {private(0)})
    ingest(engine, DocumentInput("late", "Late", "Zebras sleep.", {}, private(7)))
    for n, expected in [(0, ["kept"]), (7, ["late"]), (3, []), (103, [])]:
        hits = engine.search("zebras", replace(params("bm25"), reader=reader(n)), None)
        assert [hit.doc_id for hit in hits] == expected


def test_documents_naming_the_same_groups_share_their_keys_memory() -> None:
    """A key is held once however many documents name it: 400 lists of 300 groups out of 600 took 15 MB with a
    string per group per document (125 bytes each, 440 MB for 5,000 such documents), 6 MB shared (the class
    numbers listed under each key remain, one a document and group)."""
    rng = random.Random(3)
    names = [f"group-{n:04d}" for n in range(600)]
    lists = [Access.of("acme", [], rng.sample(names, 300)) for _ in range(400)]
    tracemalloc.start()
    try:
        index = AccessIndex()
        for n, access in enumerate(lists):
            index.set(f"doc-{n}", access)
        index.place([(n, f"doc-{n}") for n in range(len(lists))])
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 80 * 400 * 300, f"{held} bytes for 400 lists of 300 groups"
    reader_of_one = Reader.of("acme", "someone", [names[0]])
    assert visible_rows(index, reader_of_one, 1) == {n for n, access in enumerate(lists) if names[0] in access.groups}


def test_reader_keys_are_written_as_json_arrays_whatever_the_names_hold() -> None:
    """Keys are stored (Milvus's ARRAY field, the embedded index) and compared by their text, so the fast writing of
    them must give json.dumps's text exactly, for quotes, backslashes, control and non-BMP characters alike."""
    odd = ['a"b', "back\\slash", "line\nbreak", "\x00\x1f\x7f", "\u2028", "é", "😀", "\ud800", "", ",]"]

    def dumped(*parts: str) -> str:
        return json.dumps(list(parts), ensure_ascii=False, separators=(",", ":"))

    for tenant in odd:
        access = Access.of(tenant, [n for n in odd if n], [n + "g" for n in odd])
        expected = [dumped("u", tenant, n) for n in access.users] + [dumped("g", tenant, g) for g in access.groups]
        assert access.keys() == expected
        assert Access.from_keys(access.keys()) == access
        assert Access.of(tenant, [], []).keys() == [dumped("t", tenant)]
