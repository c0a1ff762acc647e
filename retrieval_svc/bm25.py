"""Incremental BM25Okapi over integer keys, scoring exactly like rank_bm25.BM25Okapi.

rank_bm25 is built once from the whole corpus and scores every document in
Python per query term. This index is updated one document at a time and a
query touches only the posting lists of its own terms, with numpy.

Layout, chosen so that adds are cheap and searches stay fast:

- Postings are CSR: term-major arrays of (slot, term frequency) plus an
  offset per term id. Slots are dense internal row numbers; callers only
  ever see their own keys.
- New documents land in a pending buffer that searches scan directly. When
  it outgrows a fraction of the CSR, the next search merges it in with one
  stable sort (cheap: the CSR part is already sorted).
- Removed documents are tombstones filtered out at query time, dropped (and
  slots renumbered) by the same rebuild once they are a large enough share.
  Terms no live document has any more are forgotten (the rest renumbered)
  by a rebuild once they are a large share of the vocabulary, so memory
  follows the live vocabulary, not every term ever added.
- Document frequencies, the live document count and total length are kept
  exact on every change, so idf and the average document length always
  describe the live corpus, as a fresh rank_bm25 build would.
- A search may name the part of the index its caller may read: it is then
  scored with that part's statistics (worked out once per part and kept
  until the index changes), as an index of only that part would score it,
  so no score depends on a chunk the caller may not read.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retrieval_svc.access import RowMask

_PENDING_SHARE = 8
"""Rebuild when pending postings exceed 1/8 of the indexed ones: bounds the per-search scan."""
_DEAD_SHARE = 4
"""Rebuild when tombstoned postings exceed 1/4 of the indexed ones, and forget unused terms in a rebuild once
they are 1/4 of the vocabulary: bounds wasted work and memory (renumbering terms costs as much again as a
rebuild, so not every rebuild does it)."""


def _grown(array: np.ndarray, size: int) -> np.ndarray:
    """array with room for at least size items, doubling so appends are amortised O(1)."""
    if size <= len(array):
        return array
    bigger = np.zeros(max(size, 2 * len(array)), dtype=array.dtype)
    bigger[: len(array)] = array
    return bigger


def raw_idf(n: int, df: np.ndarray | int) -> np.ndarray:
    """rank_bm25's idf before its floor: log((n - df + 0.5) / (df + 0.5)), negative for terms in over half the
    n documents."""
    return np.log(n - df + 0.5) - np.log(df + 0.5)


PARTS_KEPT = 64
"""Statistics of this many parts (readers' readable sets) are kept between changes of the index."""


@dataclass
class PartStats:
    """The corpus statistics of part of the index: which slots are in it (live ones only), how many, their
    mean length, and (worked out on first need) the mean idf of its vocabulary."""

    member: np.ndarray
    size: int
    average_length: float
    mean_idf: float | None = None


class BM25Index:
    """BM25Okapi (k1 1.5, b 0.75, epsilon 0.25 by default) with add, remove and filtered search."""

    def __init__(self, k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25) -> None:
        self.k1, self.b, self.epsilon = k1, b, epsilon
        self._term_ids: dict[str, int] = {}
        self._df = np.zeros(0, np.int64)  # term id -> live documents containing it
        self._slot_of: dict[int, int] = {}  # key -> slot, live documents only
        self._n_slots = 0
        self._keys = np.zeros(0, np.int64)  # slot -> key
        self._lengths = np.zeros(0, np.int64)  # slot -> document length in tokens
        self._alive = np.zeros(0, bool)
        self._doc_terms: list[np.ndarray | None] = []  # slot -> its distinct term ids, to undo df
        self._total_length = 0
        self._offsets = np.zeros(1, np.int64)  # CSR: term id -> start of its postings
        self._post_slots = np.zeros(0, np.int32)  # int32 halves memory: ~6M postings per 100k chunks
        self._post_tfs = np.zeros(0, np.int32)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (term ids, slots, tfs)
        self._pending_postings = 0
        self._dead_postings = 0
        self._average_idf: float | None = None  # cached; depends on every df and the corpus size
        self._parts: dict[int, tuple[RowMask, PartStats]] = {}  # id(part) -> it and its statistics

    def __len__(self) -> int:
        return len(self._slot_of)

    def add(self, key: int, tokens: list[str]) -> None:
        """Index a document under key, replacing any document already there."""
        self.add_many([(key, tokens)])

    def add_many(self, documents: Sequence[tuple[int, list[str]]]) -> None:
        """Index documents under distinct keys, as ``add`` would one by one, with the array work done once
        (a start adds its chunks a page at a time: 36 µs a chunk one by one)."""
        if not documents:
            return
        if len({key for key, _ in documents}) != len(documents):
            raise ValueError("add_many needs distinct keys")
        term_ids = self._term_ids
        flat_terms: list[int] = []
        flat_tfs: list[int] = []
        sizes: list[int] = []
        lengths: list[int] = []
        for key, tokens in documents:
            self.remove(key)
            counts = Counter(tokens)
            flat_terms.extend(term_ids.setdefault(term, len(term_ids)) for term in counts)
            flat_tfs.extend(counts.values())
            sizes.append(len(counts))
            lengths.append(len(tokens))
        terms = np.array(flat_terms, np.int32)
        ends = list(itertools.accumulate(sizes))
        each = [terms[end - size : end] for end, size in zip(ends, sizes, strict=True)]
        slots = self._new_slots([key for key, _ in documents], lengths, each)
        self._df = _grown(self._df, len(term_ids))
        np.add.at(self._df, terms, 1)  # a term occurs once per document, but in several documents here
        self._pending.append((terms, np.repeat(slots, sizes), np.array(flat_tfs, np.int32)))
        self._pending_postings += len(terms)
        self._total_length += sum(lengths)
        self._changed()

    def remove(self, key: int) -> None:
        """Forget the document under key; unknown keys are ignored."""
        slot = self._slot_of.pop(key, None)
        if slot is None:
            return
        terms = self._doc_terms[slot]
        assert terms is not None
        self._doc_terms[slot] = None
        self._df[terms] -= 1
        self._alive[slot] = False
        self._total_length -= int(self._lengths[slot])
        self._dead_postings += len(terms)
        self._changed()

    def _changed(self) -> None:
        self._average_idf = None
        self._parts = {}

    def search(
        self,
        query_tokens: list[str],
        top_k: int,
        allowed: np.ndarray | RowMask | None = None,
        part: RowMask | None = None,
    ) -> list[tuple[int, float]]:
        """The top_k (key, score) pairs, best first, ties by key.

        Only documents containing at least one query term are returned. allowed,
        if given, holds the keys that may be returned (metadata filters, access
        lists): an integer array or a RowMask, the same convention as the vector index.
        part, if given, holds the keys the caller may read (allowed must lie within it):
        the scores are then those of an index holding only them.
        """
        if top_k <= 0:
            return []
        slots, scores = self._score(query_tokens) if part is None else self._score_within(query_tokens, part)
        keys = self._keys[slots]
        if allowed is not None:
            keep = allowed.contains(keys) if isinstance(allowed, RowMask) else np.isin(keys, allowed)
            keys, scores = keys[keep], scores[keep]
        if len(scores) > top_k:
            # Keep everything tied with the k-th score so the final cut is deterministic.
            kth = np.partition(scores, len(scores) - top_k)[len(scores) - top_k]
            keep = scores >= kth
            keys, scores = keys[keep], scores[keep]
        order = np.lexsort((keys, -scores))[:top_k]
        return list(zip(keys[order].tolist(), scores[order].tolist(), strict=True))

    def scores(self, query_tokens: list[str]) -> dict[int, float]:
        """Score of every document containing a query term; absent keys score 0, as in rank_bm25."""
        slots, scores = self._score(query_tokens)
        return dict(zip(self._keys[slots].tolist(), scores.tolist(), strict=True))

    def _new_slots(self, keys: list[int], lengths: list[int], terms: list[np.ndarray]) -> np.ndarray:
        """Slots for new documents (keys not indexed), in order; terms are each one's distinct term ids."""
        first = self._n_slots
        self._n_slots += len(keys)
        self._keys = _grown(self._keys, self._n_slots)
        self._lengths = _grown(self._lengths, self._n_slots)
        self._alive = _grown(self._alive, self._n_slots)
        self._keys[first : self._n_slots] = keys
        self._lengths[first : self._n_slots] = lengths
        self._alive[first : self._n_slots] = True
        self._doc_terms.extend(terms)
        self._slot_of.update(zip(keys, range(first, self._n_slots), strict=True))
        return np.arange(first, self._n_slots, dtype=np.int32)

    def _score(self, query_tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Live slots containing a query term, and their BM25 scores.

        A token repeated in the query counts once per occurrence, as rank_bm25
        loops over the query; tokens unknown to the live corpus add nothing.
        """
        self._refresh()
        weights: dict[int, float] = {}
        for token, count in Counter(query_tokens).items():
            term = self._term_ids.get(token)
            if term is not None and self._df[term] > 0:
                weights[term] = count * self._idf(term)
        if not weights:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        terms = np.fromiter(weights, np.int64, len(weights))
        slots, tfs, which = self._postings(terms)
        term_weights = np.fromiter(weights.values(), np.float64, len(weights))
        totals = self._totals(slots, tfs, term_weights[which], self._average_length())
        hit = np.zeros(self._n_slots, bool)
        hit[slots] = True
        hits = np.flatnonzero(hit & self._alive[: self._n_slots])
        return hits, totals[hits]

    def _score_within(self, query_tokens: list[str], part: RowMask) -> tuple[np.ndarray, np.ndarray]:
        """As _score, with the document count, lengths and frequencies of part only."""
        self._refresh()
        counts = Counter(self._term_ids.get(token) for token in query_tokens)
        terms = np.array([t for t in counts if t is not None and self._df[t] > 0], np.int64)
        stats = self._part_stats(part)
        if len(terms) == 0 or stats.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        slots, tfs, which = self._postings(terms)
        inside = stats.member[slots]
        slots, tfs, which = slots[inside], tfs[inside], which[inside]
        idf = raw_idf(stats.size, np.bincount(which, minlength=len(terms)))
        if np.any(idf < 0):
            idf = np.where(idf < 0, self.epsilon * self._part_mean_idf(stats), idf)
        weights = np.array([counts[t] for t in terms.tolist()], np.float64) * idf
        totals = self._totals(slots, tfs, weights[which], stats.average_length)
        hits = np.unique(slots)
        return hits, totals[hits]

    def _totals(self, slots: np.ndarray, tfs: np.ndarray, weights: np.ndarray, average_length: float) -> np.ndarray:
        """Each slot's score: the sum over its postings of the term's weight times BM25's saturated frequency."""
        norm = self.k1 * (1 - self.b + self.b * self._lengths[slots] / average_length)
        contributions = weights * (tfs * (self.k1 + 1) / (tfs + norm))
        return np.bincount(slots, weights=contributions, minlength=self._n_slots)

    def _part_stats(self, part: RowMask) -> PartStats:
        """part's statistics, kept until the index changes (several searches may ask at once: any may fill)."""
        kept = self._parts.get(id(part))
        if kept is not None and kept[0] is part:
            return kept[1]
        n = self._n_slots
        member = self._alive[:n] & part.contains(self._keys[:n])
        size = int(member.sum())
        average_length = float(self._lengths[:n][member].sum() / size) if size else 0.0
        stats = PartStats(member, size, average_length)
        if len(self._parts) >= PARTS_KEPT:
            self._parts = {}
        self._parts[id(part)] = (part, stats)
        return stats

    def _part_mean_idf(self, stats: PartStats) -> float:
        """Mean idf over the vocabulary of a part (only needed when a query term is in over half of it)."""
        if stats.mean_idf is None:
            n_indexed = len(self._offsets) - 1
            inside = np.concatenate([[0], np.cumsum(stats.member[self._post_slots], dtype=np.int64)])
            df = np.zeros(len(self._term_ids), np.int64)
            df[:n_indexed] = inside[self._offsets[1:]] - inside[self._offsets[:-1]]
            if self._pending:
                pending_terms, pending_slots, _ = self._pending_block()
                df += np.bincount(pending_terms[stats.member[pending_slots]], minlength=len(df))
            stats.mean_idf = float(np.mean(raw_idf(stats.size, df[df > 0])))
        return stats.mean_idf

    def _postings(self, terms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(slots, tfs, index into terms) of all postings of terms, which must have live documents."""
        n_indexed = len(self._offsets) - 1
        indexed = terms[terms < n_indexed]
        starts, ends = self._offsets[indexed], self._offsets[indexed + 1]
        parts = [(self._post_slots[s:e], self._post_tfs[s:e]) for s, e in zip(starts, ends, strict=True)]
        which = np.repeat(np.flatnonzero(terms < n_indexed), ends - starts)
        if self._pending:
            pending_terms, pending_slots, pending_tfs = self._pending_block()
            index_of = np.full(len(self._term_ids), -1, np.int64)
            index_of[terms] = np.arange(len(terms))
            found = index_of[pending_terms]
            wanted = found >= 0
            parts.append((pending_slots[wanted], pending_tfs[wanted]))
            which = np.concatenate([which, found[wanted]])
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), which

    def _pending_block(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pending postings as three arrays, concatenated once and kept until the next add."""
        if len(self._pending) > 1:
            self._pending = [tuple(np.concatenate(column) for column in zip(*self._pending, strict=True))]
        return self._pending[0]

    def _idf(self, term: int) -> float:
        """rank_bm25's idf: negative values (terms in over half the documents) become epsilon * mean idf."""
        idf = float(raw_idf(len(self._slot_of), int(self._df[term])))
        return idf if idf >= 0 else self.epsilon * self._mean_idf()

    def _mean_idf(self) -> float:
        """Mean raw idf over the live vocabulary, recomputed only after a change."""
        if self._average_idf is None:
            df = self._df[: len(self._term_ids)]
            self._average_idf = float(np.mean(raw_idf(len(self._slot_of), df[df > 0])))
        return self._average_idf

    def _average_length(self) -> float:
        return self._total_length / len(self._slot_of)

    def compact(self) -> None:
        """Fold every pending posting in and drop every tombstone and unused term now (after a bulk load, say)."""
        if self._pending or self._dead_postings or not self._used_terms().all():
            self._rebuild(every_unused_term=True)

    def settle(self) -> None:
        """Do now what the first search after a change would do (fold pending postings in when due, join the rest
        into one block, the mean idf), so that searches only read and several can run at once."""
        self._refresh()
        if self._pending:
            self._pending_block()
        if self._average_idf is None and self._used_terms().any():
            self._mean_idf()

    def _refresh(self) -> None:
        """Fold pending postings in and drop tombstones once either is a large share of the index."""
        indexed = len(self._post_slots)
        if self._pending_postings * _PENDING_SHARE > indexed or self._dead_postings * _DEAD_SHARE > indexed:
            self._rebuild()

    def _rebuild(self, every_unused_term: bool = False) -> None:
        """One CSR from the indexed and pending postings of live documents; unused terms are forgotten when they
        are a large share of the vocabulary, or every_unused_term."""
        n_indexed = len(self._offsets) - 1
        indexed_terms = np.repeat(np.arange(n_indexed, dtype=np.int32), np.diff(self._offsets))
        terms = np.concatenate([indexed_terms] + [p[0] for p in self._pending])
        slots = np.concatenate([self._post_slots] + [p[1] for p in self._pending])
        tfs = np.concatenate([self._post_tfs] + [p[2] for p in self._pending])
        live = self._alive[slots]
        terms, slots, tfs = terms[live], slots[live], tfs[live]
        if self._n_slots > len(self._slot_of):
            slots = self._renumber_slots()[slots]
        used = self._used_terms()
        unused = len(used) - int(np.count_nonzero(used))
        if unused and (every_unused_term or unused * _DEAD_SHARE > len(used)):
            terms = self._renumber_terms(used)[terms]
        order = np.argsort(terms, kind="stable")
        self._post_slots, self._post_tfs = slots[order], tfs[order]
        counts = np.bincount(terms, minlength=len(self._term_ids))
        self._offsets = np.concatenate([[0], np.cumsum(counts)])
        self._pending, self._pending_postings, self._dead_postings = [], 0, 0
        self._parts = {}  # slots were renumbered

    def _renumber_slots(self) -> np.ndarray:
        """Pack live documents into slots 0..n-1; returns the new slot of each old one."""
        live = np.flatnonzero(self._alive[: self._n_slots])
        new_slot = np.full(self._n_slots, -1, np.int32)
        new_slot[live] = np.arange(len(live))
        self._keys, self._lengths = self._keys[live], self._lengths[live]
        self._alive = np.ones(len(live), bool)
        self._doc_terms = [self._doc_terms[s] for s in live]
        self._slot_of = dict(zip(self._keys.tolist(), range(len(live)), strict=True))
        self._n_slots = len(live)
        return new_slot

    def _used_terms(self) -> np.ndarray:
        """Whether each term id is in a live document."""
        return self._df[: len(self._term_ids)] > 0

    def _renumber_terms(self, used: np.ndarray) -> np.ndarray:
        """Forget the terms not used (no live document has them) and number the rest 0..n-1 in their old order;
        returns the new id of each old one (-1 if forgotten). Documents must all be live (slots packed)."""
        kept = np.flatnonzero(used)
        new_id = np.full(len(used), -1, np.int32)
        new_id[kept] = np.arange(len(kept), dtype=np.int32)
        self._term_ids = dict(zip(itertools.compress(self._term_ids, used.tolist()), range(len(kept)), strict=True))
        self._df = self._df[kept]
        self._doc_terms = _mapped(self._doc_terms, new_id)
        return new_id


def _mapped(arrays: list[np.ndarray | None], new_id: np.ndarray) -> list[np.ndarray | None]:
    """Each array's items through new_id, gathered at once (one array per chunk: a large index has many)."""
    sizes = [len(a) for a in arrays if a is not None]
    if len(sizes) < len(arrays):
        raise ValueError("every document must be live")
    flat = new_id[np.concatenate(arrays)] if arrays else new_id[:0]
    ends = list(itertools.accumulate(sizes))
    return [flat[end - size : end] for end, size in zip(ends, sizes, strict=True)]
