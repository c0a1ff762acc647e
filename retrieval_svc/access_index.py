"""The embedded engine's index of who may read which chunk rows (the Milvus backend filters in Milvus)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from likeopt.runtime.principal import Reader
from retrieval_svc.access import Access, RowMask, reader_keys
from retrieval_svc.per_version import PerVersion

READER_MASKS = 256
"""Readers whose row masks are kept for the current index version (a write starts them afresh)."""


class AccessIndex:
    """Which rows each reader may see, kept so that a search pays nothing per hidden document.

    Documents with the same access list share an access class (a small integer); each chunk row records its
    document's class, and each reader key (retrieval_svc.access) lists the classes it opens. A reader's mask
    is then one gather over the rows' classes, built once per index version and kept for READER_MASKS readers:
    with 100 groups a new reader costs about 200 dictionary lookups and one pass over an integer array.
    A class is forgotten once no document or row carries it, and its number is given to the next new class,
    so classes follow the access lists stored, not every list ever written.
    """

    def __init__(self) -> None:
        self._class_of: dict[tuple[str, ...], int] = {}
        self._keys_of: dict[int, tuple[str, ...]] = {}
        """Each class's reader keys (the inverse of _class_of)."""
        self._classes_by_key: dict[str, set[int]] = {}
        self._holders: dict[int, int] = {}
        """How many documents and rows carry each class; a class no longer carried is forgotten."""
        self._free: list[int] = []
        """Numbers of forgotten classes, handed out again before new ones."""
        self._doc_class: dict[str, int] = {}
        self._row_class = np.zeros(1024, dtype=np.int32)
        """Class of each row's document; 0 for rows that hold no chunk (never readable)."""
        self._masks: PerVersion[Reader, tuple[np.ndarray, RowMask]] = PerVersion(READER_MASKS)
        """Searches share the engine's lock and each may build or reorder the kept masks."""

    @property
    def size(self) -> int:
        """Rows a mask covers."""
        return len(self._row_class)

    def set(self, doc_id: str, access: Access) -> None:
        """Record a document's access (before its chunks are placed). Its keys are interned: documents naming the
        same groups then hold one copy of each key rather than one per document (5,000 lists of 300 groups out of
        86,000 took 440 MB apart, most of retrieval_svc's memory)."""
        keys = tuple(map(sys.intern, access.keys()))
        number = self._class_of.get(keys) or self._new_class(keys)
        self._carry(number, 1)  # before the old class is let go: it may be this one
        self.forget(doc_id)
        self._doc_class[doc_id] = number

    def forget(self, doc_id: str) -> None:
        number = self._doc_class.pop(doc_id, None)
        if number is not None:
            self._carry(number, -1)
        self._masks.clear()

    def access_of(self, doc_id: str) -> Access:
        """The access recorded for a document (writes compare it with theirs); an unrecorded one is open."""
        number = self._doc_class.get(doc_id)
        return Access() if number is None else Access.from_keys(self._keys_of[number])

    def place(self, rows: list[tuple[int, str]]) -> None:
        """Give new chunk rows their document's class (an unrecorded document is open: class of Access())."""
        if not rows:
            return
        doc_of = dict(rows)  # a row named twice takes the last, as an assignment would
        for doc_id in {doc_id for doc_id in doc_of.values() if doc_id not in self._doc_class}:
            self.set(doc_id, Access())  # not set - keys(), which copies every document id (each page of a load)
        placed = np.fromiter(doc_of, np.int64, len(doc_of))
        top = int(placed.max()) + 1
        if top > len(self._row_class):
            grown = np.zeros(max(top, 2 * len(self._row_class)), dtype=np.int32)
            grown[: len(self._row_class)] = self._row_class
            self._row_class = grown
        classes = np.fromiter((self._doc_class[doc_id] for doc_id in doc_of.values()), np.int32, len(doc_of))
        self._carry_rows(classes, 1)
        self._carry_rows(self._row_class[placed], -1)
        self._row_class[placed] = classes
        self._masks.clear()

    def unplace(self, rows: list[int]) -> None:
        if rows:
            unplaced = np.unique(np.asarray(rows, dtype=np.int64))
            self._carry_rows(self._row_class[unplaced], -1)
            self._row_class[unplaced] = 0
            self._masks.clear()

    def _new_class(self, keys: tuple[str, ...]) -> int:
        """A number for the documents opened by keys (not yet a class), listed under each key."""
        number = self._free.pop() if self._free else len(self._class_of) + 1
        self._class_of[keys] = number
        self._keys_of[number] = keys
        for key in keys:
            self._classes_by_key.setdefault(key, set()).add(number)
        return number

    def _carry_rows(self, classes: np.ndarray, change: int) -> None:
        """_carry for rows of these classes (0, no class, is none)."""
        numbers, counts = np.unique(classes[classes > 0], return_counts=True)
        for number, count in zip(numbers.tolist(), counts.tolist(), strict=True):
            self._carry(number, change * count)

    def _carry(self, number: int, change: int) -> None:
        """Count change more documents or rows carrying class number; one carried by none is forgotten (no row
        holds its number when it is handed out again, so no row is opened to another list's readers)."""
        left = self._holders.get(number, 0) + change
        if left:
            self._holders[number] = left
            return
        del self._holders[number]
        keys = self._keys_of.pop(number)
        del self._class_of[keys]
        for key in keys:
            classes = self._classes_by_key[key]
            classes.discard(number)
            if not classes:
                del self._classes_by_key[key]
        self._free.append(number)

    def _scope(self, reader: Reader, version: int) -> tuple[np.ndarray, RowMask]:
        """The reader's readable classes (one flag each) and rows, built once per version."""
        if (kept := self._masks.get(reader, version)) is not None:
            return kept
        flags = np.zeros(len(self._class_of) + len(self._free) + 1, dtype=bool)  # every number handed out
        for key in reader_keys(reader):
            flags[list(self._classes_by_key.get(key, ()))] = True
        flags[0] = False
        scope = (flags, RowMask.of_flags(flags[self._row_class]))
        self._masks.put(reader, version, scope)
        return scope

    def mask(self, reader: Reader, version: int) -> RowMask:
        """The rows reader may see."""
        return self._scope(reader, version)[1]

    def readable(self, reader: Reader, version: int) -> Callable[[str], bool]:
        """Whether reader may read a document, by id."""
        flags = self._scope(reader, version)[0]
        return lambda doc_id: doc_id in self._doc_class and bool(flags[self._doc_class[doc_id]])
