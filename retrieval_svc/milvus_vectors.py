"""The dense vectors of the few chunks a selective filter passes (a tenant's reader), kept per index version.

A dense search whose filter passes at most EXACT_ROWS chunks scores every one of them in process. Reading their
vectors from Milvus took 0.5-2 s per search on a loaded milvus-lite; kept here, a reader's next search at the same
index version reads from Milvus only the hit fields of each query's top chunks. Only what scoring needs is kept
(chunk ids and one float32 matrix), never texts: whatever is shown is read again, under the reader's filter.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import Counter

VECTORS_KEPT_BYTES = 32 * 2**20
"""Vector bytes kept over all filters: about ten filters of EXACT_ROWS (2,000) chunks at all-MiniLM-L6-v2's 384
dimensions (3 MB each), so the busiest tenants' readers stay cached while memory stays bounded whatever the
model's dimension; past it the least recently searched filter is dropped."""
VECTOR_FILTERS_KEPT = 256
"""Filters kept at most, however few chunks each passes: a filter's text alone can be tens of KB (a reader of a
thousand access classes), and many small tenants would otherwise keep one each without end."""
VECTOR_READS = Counter(
    "likeopt_milvus_vector_reads_total",
    "Reads of the dense vectors a selective filter passes, to score them in retrieval_svc: one per filter and index"
    " version while they stay cached.",
)

Row = dict[str, Any]
"""A chunk's fields as Milvus returns them."""
ReadRows = Callable[[list[str]], dict[str, Row]]
"""Reads the rows of those of some chunk ids that are still there and readable, by chunk id."""
Shown = tuple[str, float, Row]
"""A chunk shown: its id, its score and its row."""


@dataclass(frozen=True)
class Passing:
    """The chunks a filter passes, in chunk id order, and their unit vectors as one float32 matrix (a row each)."""

    chunk_ids: list[str]
    vectors: np.ndarray

    def top(self, queries: np.ndarray, limit: int) -> list[list[tuple[str, float]]]:
        """Each query's best ``limit`` chunks and cosine scores (stored vectors and queries are unit vectors), best
        first and ties by chunk id as milvus_ranking.best_first orders: a stable sort of rows in chunk id order."""
        if not self.chunk_ids:
            return [[] for _ in queries]
        scores = self.vectors @ queries.T  # one column per query
        ranked = []
        for column in scores.T:
            order = np.argsort(-column, kind="stable")[:limit]
            ranked.append([(self.chunk_ids[i], float(column[i])) for i in order.tolist()])
        return ranked

    def readable_top(self, queries: np.ndarray, limit: int, read: ReadRows) -> list[list[Shown]]:
        """Each query's best ``limit`` chunks that ``read`` still finds, with the rows it found: a chunk deleted or
        moved out of the filter's reach since the vectors were read is skipped and the next one shown in its place.
        Only the top chunks are read; a read that misses some asks for twice as many next (a deleted document of
        many chunks costs a few reads, not one per chunk), and no chunk is read twice."""
        found: dict[str, Row] = {}
        gone: set[str] = set()
        want = limit
        while True:
            ranked = self.top(queries, want + len(gone))
            heads = {chunk_id for top in ranked for chunk_id, _ in top if chunk_id not in gone}
            unread = sorted(heads - found.keys())
            found.update(read(unread) if unread else {})
            missing = set(unread) - found.keys()
            if not missing:
                return [[(c, score, found[c]) for c, score in top if c in found][:limit] for top in ranked]
            gone |= missing
            want *= 2


@dataclass
class _Read:
    """One read of a filter's vectors under way, which searches of the same filter and version wait for instead of
    reading them again (searches run on retrieval_svc's thread pool)."""

    done: threading.Event = field(default_factory=threading.Event)
    passing: Passing | None = None
    error: BaseException | None = None

    def result(self) -> Passing:
        """What the read found, once it is done; its error, raised again, if it failed."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.passing is not None
        return self.passing


class VectorCache:
    """Passing per filter, for one index version at a time (a new version empties it, as row counts are kept);
    the least recently searched filters are dropped past VECTORS_KEPT_BYTES or VECTOR_FILTERS_KEPT. Searches
    run on several threads: every access holds the lock, and searches of a filter not kept yet share one read."""

    def __init__(self, most_bytes: int = VECTORS_KEPT_BYTES, most_filters: int = VECTOR_FILTERS_KEPT) -> None:
        self.most_bytes, self.most_filters = most_bytes, most_filters
        self._kept: OrderedDict[str, Passing] = OrderedDict()
        self._version = -1
        self._bytes = 0
        self._lock = threading.Lock()
        self._reads: dict[tuple[str, int], _Read] = {}
        """The reads under way, by filter and index version."""

    def get(self, condition: str, version: int) -> Passing | None:
        """What condition passes at version, if kept."""
        with self._lock:
            return self._kept_at(condition, version)

    def _kept_at(self, condition: str, version: int) -> Passing | None:
        """get, for a caller holding the lock."""
        passing = self._kept.get(condition) if version == self._version else None
        if passing is not None:
            self._kept.move_to_end(condition)
        return passing

    def get_or_read(self, condition: str, version: int, read: Callable[[], Passing]) -> Passing:
        """What condition passes at version: kept, or read once however many searches ask for it meanwhile. A read
        that fails raises in every search that waited for it and keeps nothing, so the next search reads again."""
        key = (condition, version)
        with self._lock:
            if (passing := self._kept_at(condition, version)) is not None:
                return passing
            under_way = self._reads.get(key)
            if under_way is None:
                self._reads[key] = mine = _Read()
        if under_way is not None:
            return under_way.result()
        try:
            mine.passing = read()
            self.put(condition, version, mine.passing)
        except BaseException as exc:
            mine.error = exc
            raise
        finally:
            with self._lock:
                del self._reads[key]
            mine.done.set()
        return mine.passing

    def put(self, condition: str, version: int, passing: Passing) -> None:
        """Keep what condition passes at version (read at that version or later), dropping another version's."""
        with self._lock:
            if version != self._version:
                self._kept.clear()
                self._version, self._bytes = version, 0
            if (earlier := self._kept.pop(condition, None)) is not None:
                self._bytes -= earlier.vectors.nbytes
            self._kept[condition] = passing
            self._bytes += passing.vectors.nbytes
            while self._kept and (self._bytes > self.most_bytes or len(self._kept) > self.most_filters):
                _, dropped = self._kept.popitem(last=False)
                self._bytes -= dropped.vectors.nbytes

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._version, self._bytes = -1, 0
