"""The embedded engine's index of who may read which chunk rows (the Milvus backend filters in Milvus)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from likeopt.runtime.principal import Reader
from retrieval_svc.access import Access, RowMask, reader_keys

READER_MASKS = 256
"""Readers whose row masks are kept for the current index version (a write starts them afresh)."""


class AccessIndex:
    """Which rows each reader may see, kept so that a search pays nothing per hidden document.

    Documents with the same access list share an access class (a small integer); each chunk row records its
    document's class, and each reader key (retrieval_svc.access) lists the classes it opens. A reader's mask
    is then one gather over the rows' classes, built once per index version and kept for READER_MASKS readers:
    with 100 groups a new reader costs about 200 dictionary lookups and one pass over an integer array.
    """

    def __init__(self) -> None:
        self._class_of: dict[tuple[str, ...], int] = {}
        self._classes_by_key: dict[str, list[int]] = {}
        self._doc_class: dict[str, int] = {}
        self.tenant: dict[str, str] = {}
        """Each document's tenant (writes check it)."""
        self._row_class = np.zeros(1024, dtype=np.int32)
        """Class of each row's document; 0 for rows that hold no chunk (never readable)."""
        self._masks: OrderedDict[Reader, tuple[np.ndarray, RowMask]] = OrderedDict()
        self._masks_version = -1
        self._masks_lock = threading.Lock()
        """Searches share the engine's lock and each may build or reorder the kept masks."""

    @property
    def size(self) -> int:
        """Rows a mask covers."""
        return len(self._row_class)

    def set(self, doc_id: str, access: Access) -> None:
        """Record a document's access (before its chunks are placed)."""
        keys = tuple(access.keys())
        if keys not in self._class_of:
            self._class_of[keys] = number = len(self._class_of) + 1
            for key in keys:
                self._classes_by_key.setdefault(key, []).append(number)
        self._doc_class[doc_id] = self._class_of[keys]
        self.tenant[doc_id] = access.tenant
        self._masks.clear()

    def forget(self, doc_id: str) -> None:
        self._doc_class.pop(doc_id, None)
        self.tenant.pop(doc_id, None)
        self._masks.clear()

    def place(self, rows: list[tuple[int, str]]) -> None:
        """Give new chunk rows their document's class (an unrecorded document is open: class of Access())."""
        if not rows:
            return
        top = max(row for row, _ in rows) + 1
        if top > len(self._row_class):
            grown = np.zeros(max(top, 2 * len(self._row_class)), dtype=np.int32)
            grown[: len(self._row_class)] = self._row_class
            self._row_class = grown
        for doc_id in {doc_id for _, doc_id in rows} - self._doc_class.keys():
            self.set(doc_id, Access())
        for row, doc_id in rows:
            self._row_class[row] = self._doc_class[doc_id]
        self._masks.clear()

    def unplace(self, rows: list[int]) -> None:
        if rows:
            self._row_class[np.asarray(rows, dtype=np.int64)] = 0
            self._masks.clear()

    def _scope(self, reader: Reader, version: int) -> tuple[np.ndarray, RowMask]:
        """The reader's readable classes (one flag each) and rows, built once per version."""
        with self._masks_lock:
            return self._kept_scope(reader, version)

    def _kept_scope(self, reader: Reader, version: int) -> tuple[np.ndarray, RowMask]:
        if self._masks_version != version:
            self._masks.clear()
            self._masks_version = version
        if (kept := self._masks.get(reader)) is not None:
            self._masks.move_to_end(reader)
            return kept
        flags = np.zeros(len(self._class_of) + 1, dtype=bool)
        for key in reader_keys(reader):
            flags[self._classes_by_key.get(key, [])] = True
        flags[0] = False
        scope = (flags, RowMask.of_flags(flags[self._row_class]))
        self._masks[reader] = scope
        while len(self._masks) > READER_MASKS:
            self._masks.popitem(last=False)
        return scope

    def mask(self, reader: Reader, version: int) -> RowMask:
        """The rows reader may see."""
        return self._scope(reader, version)[1]

    def readable(self, reader: Reader, version: int) -> Callable[[str], bool]:
        """Whether reader may read a document, by id."""
        flags = self._scope(reader, version)[0]
        return lambda doc_id: doc_id in self._doc_class and bool(flags[self._doc_class[doc_id]])
