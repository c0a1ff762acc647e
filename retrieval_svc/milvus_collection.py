"""The ``milvus`` retrieval backend: chunks live in a Milvus server or cluster, so replicas hold no state.

One row per chunk in ``LIKEOPT_MILVUS_COLLECTION``: the chunk as shown in hits (``text``), the text it is
BM25-indexed and embedded as (``search_text``, ``embedding_text(title, chunk)`` as the embedded engine uses),
a BM25 Function turning ``search_text`` into a sparse vector, the unit-normalised ``dense`` vector (COSINE)
and the document's ``metadata`` (JSON). A second, tiny collection ``<collection>_meta`` holds what every
process must agree on: the index version, the embedding model that made the vectors, and a migration marker.

Consistency: every read uses ``consistency_level="Strong"`` (by default), so a write acknowledged through one
replica is visible through every other at once, which index versions and cache keys rely on. Its cost cannot
be measured here: milvus-lite ignores consistency levels (hybrid p50 28.9 ms Eventually against 29.1 ms Strong,
SciFact 1,500 documents, benchmarks/milvus_backend.py). On a real Milvus, Strong makes the serving node wait
until it has consumed every write up to "now", which Milvus marks with sync timestamps (time ticks, 200 ms
apart by default): up to that much more per search while writes stream in, little on an idle collection.
A deployment that cannot pay it can pass ``consistency_level="Bounded"`` and accept slightly stale reads.
A read of many pages (a listing, a long document) pays it on its first page only: the rest read that page's
snapshot (snapshot_of).
``refresh()`` is one Strong query of the meta collection (p50 2.4 ms on milvus-lite).

Analyzer: likeopt.runtime.text.tokenize casefolds words (letters, digits and combining marks), drops a 127-word
stop list, then Snowball-stems. The analyzer below asks Milvus for nearly the same (standard tokenizer, lowercase,
that stop list, then the english stemmer: Milvus's own ``english`` analyzer stems *before* a different stop list);
Milvus has no case-folding filter, so there a word with ß or a final ς, indexed lowercased, misses the query,
which the service has casefolded: ``bm25_terms`` finds it. milvus-lite 3.x knows only
the standard tokenizer and stop filters and ignores the stemmer, so there BM25 matches unstemmed words: its
top 10 share 0.67 with the embedded engine's (0.65 with the plain standard analyzer), nDCG@10 0.735 against
0.774. With ``bm25_terms`` the backend stores and queries likeopt.runtime.text.tokenize's terms instead, so any Milvus
sees the embedded engine's exact terms: overlap 0.95, nDCG@10 0.768 (the rest is Milvus's IDF formula and
per-segment statistics), and with them single CJK characters and bigrams and identifiers' parts, which no
analyzer option gives.

Errors: a Milvus that cannot be reached, or does not answer within ``timeout_s``, raises
:class:`BackendUnavailable` (the service maps it to UNAVAILABLE), and any error Milvus answers raises
:class:`BackendRefused` (INTERNAL); a write returns only after Milvus acknowledged it, and the version is
bumped only after that.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from functools import partial
from typing import Any

import numpy as np
from pymilvus import AnnSearchRequest, DataType, Function, FunctionType, MilvusClient, RRFRanker, WeightedRanker
from pymilvus.client.constants import ITERATOR_SESSION_TS_FIELD
from pymilvus.exceptions import MilvusException

from likeopt.runtime.contract import shown_id
from likeopt.runtime.principal import Reader
from likeopt.runtime.text import SAME_TERMS_UNLESS_FLAGGED, STOP_WORDS, TOKENIZER_VERSION, tokenize
from retrieval_svc.access import Access
from retrieval_svc.backend import (
    ChunkHit,
    DocumentChunks,
    DocumentInput,
    DocumentSummary,
    IndexStats,
    SearchParams,
    UnfitDocument,
    best_per_document,
    chunk_document,
    embedding_text,
)
from retrieval_svc.cancellable_writes import raise_if_stopped
from retrieval_svc.embedder import Embedder
from retrieval_svc.milvus_access import (
    CLASS_FIELD,
    NOTHING,
    READERS_FIELD,
    AccessClasses,
    access_row_fields,
    access_schema,
    add_access_fields,
    both,
)
from retrieval_svc.milvus_errors import Breaker, route_pymilvus_logs, unavailable
from retrieval_svc.milvus_expressions import id_batches, ids_filter, ids_filters, metadata_filter, quoted
from retrieval_svc.milvus_ranking import Candidate, best_first, bm25_candidates, chunk_hit, fuse_candidates
from retrieval_svc.milvus_vectors import VECTOR_READS, Passing, VectorCache

log = logging.getLogger(__name__)

CANDIDATE_DEPTH = 100
"""How many candidates each retriever contributes to hybrid fusion (as the embedded engine's)."""
TIMEOUT_S = 10.0
"""Longest any one Milvus write may take, retries included; past it the call raises BackendUnavailable."""
READ_TIMEOUT_S = 3.0
"""Longest a read (search, query, version) may take: well inside the gateway's 10 s search deadline, so a
hung Milvus answers UNAVAILABLE (HTTP 503), not a gateway timeout."""
READS = frozenset({"search", "hybrid_search", "query", "describe_index"})
MAX_VARCHAR = 65_535
"""Milvus's largest VARCHAR, in UTF-8 bytes."""
MAX_ID_BYTES = 2_048
"""A document id's largest size in bytes (retrieval_svc takes ids of up to 512 characters)."""
VARCHAR_BYTES = {
    "chunk_id": MAX_ID_BYTES + 24,
    "doc_id": MAX_ID_BYTES,
    "title": MAX_VARCHAR,
    "text": MAX_VARCHAR,
    "search_text": MAX_VARCHAR,
}
"""Each VARCHAR field of a chunk row and its max_length. Milvus counts UTF-8 bytes (milvus-lite counts characters,
a looser limit): a document with a longer field is refused before any write, so the rest of its batch is stored."""
MAX_JSON_BYTES = 65_536
"""The most a JSON field (a chunk's metadata) holds in Milvus, in bytes of its JSON text."""
WRITE_BATCH_ROWS = 500
"""Rows sent per insert call: bounds one message's size (a chunk and its vector are a few KB)."""
ANALYZER: dict[str, Any] = {
    "tokenizer": "standard",
    "filter": [
        "lowercase",
        {"type": "stop", "stop_words": sorted(STOP_WORDS)},
        {"type": "stemmer", "language": "english"},
    ],
}
"""Milvus's equivalent of likeopt.runtime.text.tokenize (module docstring)."""
TERMS_ANALYZER: dict[str, Any] = {"tokenizer": "standard"}
"""With ``bm25_terms``: search_text already holds likeopt.runtime.text.tokenize's terms, which only need splitting
(Milvus's standard tokenizer splits only at characters that are not alphanumeric, so CJK characters and bigrams
stay whole; an identifier with underscores is split there, and its parts are terms of their own anyway)."""
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}
"""The embedded engine's BM25Okapi parameters (Milvus's default k1 is 1.2)."""
HIT_FIELDS = ["doc_id", "ordinal", "title", "text", "metadata"]
METRICS = {"sparse": "BM25", "dense": "COSINE"}
META_VERSION, META_MODEL = "index_version", "model"
COLLECTION_NOT_LOADED = 101
"""Milvus's error code for a search or query on a released collection."""
SEARCH_DEPTH_LIMIT = 16_384
"""Milvus's largest limit per search (topk) or query: the most rows one call returns."""
LIST_BATCH_ROWS = 1_000
"""Rows per page of a read that pages (_batches): listing documents, reading one document's chunks."""
SUMMARY = ["doc_id", "title", "metadata"]
"""The fields of a document's first chunk a listing reads."""
GRAPH_INDEXES = frozenset({"AUTOINDEX", "HNSW"})
"""Dense index types searched by walking a graph (milvus-lite's and standalone Milvus's AUTOINDEX is HNSW), whose
``ef`` bounds how many rows a search can return: milvus-lite's default of 64 returned 433 of 602 rows asked for."""
GRAPH_EF = 64
"""The least ef a graph search is given; more when more rows are asked for, or few rows pass the filter."""
EXACT_ROWS = 2_000
"""A dense search whose filter passes at most this many chunks scores each of them in process (their vectors
read once per index version, milvus_vectors): a graph walk that skips the rows the filter refuses can miss every
row it passes (milvus-lite's HNSW found none of a small tenant's chunks among 602). Larger filtered sets get an ef
scaled by how few rows pass."""
COUNTS_KEPT = 1_024
"""Filters whose row counts are kept for the current index version."""


def _older_terms_mostly_same(theirs: dict[str, Any], mine: dict[str, Any]) -> bool:
    """Whether a collection's record differs from this backend's only by an earlier tokenizer whose terms are
    this one's outside the text likeopt.runtime.text.terms_may_differ flags: such a collection still serves
    everything else."""
    older = {f"terms:{version}" for version in SAME_TERMS_UNLESS_FLAGGED}
    return theirs.get("bm25") in older and {**theirs, "bm25": mine["bm25"]} == mine


class MilvusBackend:
    """RetrievalBackend over a Milvus collection; any number of processes may serve (and write) one corpus.

    ``server_fusion`` ranks hybrid searches with Milvus's own hybrid_search (RRFRanker, or WeightedRanker for
    convex) instead of fusing two candidate lists here with fusion.py. It saves a round trip (milvus-lite,
    SciFact 1,500 documents: hybrid p50 23 ms against 29 ms; per document 23 ms against 60 ms, as Milvus
    groups only the top_k it returns) but its hits carry only the fused score, and WeightedRanker scales
    scores its own way, not min-max: convex results differ from the embedded engine's.
    """

    read_only = False
    """Every replica takes writes: Milvus, not this process, orders them."""
    shared_version = True
    """Other replicas write to the same collection: the service reads the version before each search."""

    def __init__(
        self,
        embedder: Embedder,
        uri: str,
        token: str,
        collection: str,
        chunk_tokens: int,
        chunk_overlap: int,
        shards: int = 1,
        replicas: int = 1,
        *,
        server_fusion: bool = False,
        consistency_level: str = "Strong",
        dense_index: str = "AUTOINDEX",
        timeout_s: float = TIMEOUT_S,
        bm25_terms: bool = True,
    ) -> None:
        if chunk_tokens > embedder.max_tokens:
            raise ValueError(f"LIKEOPT_CHUNK_TOKENS={chunk_tokens} exceeds the model's window of {embedder.max_tokens}")
        self.embedder = embedder
        self.uri, self._token = uri, token
        self.collection, self.meta_collection = collection, f"{collection}_meta"
        self.chunk_tokens, self.chunk_overlap = chunk_tokens, chunk_overlap
        self.shards, self.replicas = shards, replicas
        self.server_fusion = server_fusion
        self.consistency_level = consistency_level
        self.dense_index = dense_index
        self.timeout_s = timeout_s
        self.bm25_terms = bm25_terms
        """Store and query likeopt.runtime.text.tokenize's terms instead of raw text: the embedded engine's exact BM25
        terms on any Milvus, whatever analyzers it has (milvus-lite has no stemmer). Fixed per collection."""
        self.counters: Counter[str] = Counter()
        """Query embeddings and searches computed: what caching and single-flight are meant to save."""
        self.load_seconds = 0.0
        self._version = 0
        self._client: MilvusClient | None = None
        self._breaker = Breaker(uri)
        self.read_timeout_s = min(timeout_s, READ_TIMEOUT_S)
        self._write_lock = threading.Lock()
        self._counts: dict[str, int] = {}
        """Rows each search filter passes, at index version _counts_version (dense search picks its way by it)."""
        self._counts_version = -1
        self._counts_lock = threading.Lock()
        self._vectors = VectorCache()
        """The vectors of the chunks each selective filter passes, at the current index version (_exact_dense)."""
        self.access = AccessClasses(self._call, collection, quoted, consistency_level)
        """Access classes (``<collection>_access``) and each reader's filter."""

    # -- start-up ---------------------------------------------------------

    @property
    def version(self) -> int:
        """The index version last read from or written to the meta collection."""
        return self._version

    @property
    def client(self) -> MilvusClient:
        if self._client is None:
            raise RuntimeError("MilvusBackend.load() has not been called")
        return self._client

    def load(self) -> None:
        """Connect, create the collections and indexes if absent, check the model, read the version."""
        started = time.perf_counter()
        route_pymilvus_logs()
        with self._guarded():
            # Connects at once: refused, or no answer within timeout_s, raises (no endless retry). Dedicated:
            # pymilvus otherwise shares one connection per address in a process, and a shared one handed out
            # after Milvus restarted kept failing where a connection of our own reconnects.
            self._client = MilvusClient(uri=self.uri, token=self._token, timeout=self.timeout_s, dedicated=True)
            self._create(self.collection, self._chunk_schema, self._chunk_indexes)
            self._check_dimension()
            self._load_collection(self.collection, self.replicas)
            self._create(self.meta_collection, _meta_schema, self._meta_indexes)
            self._load_collection(self.meta_collection, 1)
            self._create(self.access.collection, access_schema, self._meta_indexes)
            self._load_collection(self.access.collection, 1)
            self._check_model()
            self._version = self._stored_version()
        self.embedder.encode_query("warm-up")  # the first forward pass allocates; keep it out of a user's search
        self.load_seconds = time.perf_counter() - started
        log.info(
            "milvus collection ready",
            extra={
                "fields": {"collection": self.collection, "index_version": self._version, "load_s": self.load_seconds}
            },
        )

    def _create(self, name: str, schema: Callable[[], Any], indexes: Callable[[], Any]) -> None:
        """Create a collection unless it exists; another replica creating it at the same moment is fine."""
        if self.client.has_collection(name, timeout=self.timeout_s):
            return
        try:
            self.client.create_collection(
                name,
                schema=schema(),
                index_params=indexes(),
                shards_num=self.shards,
                consistency_level=self.consistency_level,
                timeout=self.timeout_s,
            )
        except MilvusException as exc:
            if unavailable(exc) or not self.client.has_collection(name, timeout=self.timeout_s):
                raise
        log.info("created milvus collection", extra={"fields": {"collection": name}})

    def _load_collection(self, name: str, replicas: int) -> None:
        """Load into query nodes' memory, with ``replicas`` copies where the server can place them.

        A server with fewer query nodes than replicas (or milvus-lite, which has none) refuses or ignores
        the replica number: serving from one copy beats not serving, so that is logged, not raised.
        """
        try:
            self.client.load_collection(name, replica_number=replicas, timeout=self.timeout_s)
        except MilvusException as exc:
            if unavailable(exc) or replicas == 1:
                raise
            log.warning(
                "milvus refused LIKEOPT_MILVUS_REPLICAS; loading as it is",
                extra={"fields": {"collection": name, "replicas": replicas, "error": exc.message}},
            )
            self.client.load_collection(name, timeout=self.timeout_s)

    def _guarded(self) -> AbstractContextManager[None]:
        """Milvus errors as BackendUnavailable, failing fast for a moment after one (Breaker)."""
        return self._breaker.guard()

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A data call on the client, reads bounded by the read timeout. A collection Milvus holds released
        (milvus-lite after every restart, a Milvus whose operator released it) is loaded again, once, rather
        than failing every call until a retrieval_svc restart."""
        if method in READS:
            kwargs["timeout"] = min(kwargs.get("timeout", self.read_timeout_s), self.read_timeout_s)
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except MilvusException as exc:
            if exc.code != COLLECTION_NOT_LOADED:
                raise
            log.warning("milvus collection was released; loading it again", extra={"fields": {"error": exc.message}})
            self._load_collection(self.collection, self.replicas)
            self._load_collection(self.meta_collection, 1)
            self._load_collection(self.access.collection, 1)
            return getattr(self.client, method)(*args, **kwargs)

    def _chunk_schema(self) -> Any:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=VARCHAR_BYTES["chunk_id"])
        schema.add_field("doc_id", DataType.VARCHAR, max_length=VARCHAR_BYTES["doc_id"])
        schema.add_field("ordinal", DataType.INT64)
        schema.add_field("title", DataType.VARCHAR, max_length=VARCHAR_BYTES["title"])
        schema.add_field("text", DataType.VARCHAR, max_length=VARCHAR_BYTES["text"])
        schema.add_field(
            "search_text",
            DataType.VARCHAR,
            max_length=VARCHAR_BYTES["search_text"],
            enable_analyzer=True,
            enable_match=True,
            analyzer_params=TERMS_ANALYZER if self.bm25_terms else ANALYZER,
        )
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.embedder.dim)
        schema.add_field("metadata", DataType.JSON)
        add_access_fields(schema)
        schema.add_function(
            Function(
                name="search_text_bm25",
                function_type=FunctionType.BM25,
                input_field_names=["search_text"],
                output_field_names=["sparse"],
            )
        )
        return schema

    def _chunk_indexes(self) -> Any:
        indexes = self.client.prepare_index_params()
        indexes.add_index("dense", index_type=self.dense_index, metric_type=METRICS["dense"])
        indexes.add_index(
            "sparse", index_type="SPARSE_INVERTED_INDEX", metric_type=METRICS["sparse"], params=BM25_PARAMS
        )
        indexes.add_index("doc_id", index_type="INVERTED")  # deletes and existence checks filter on it
        indexes.add_index(CLASS_FIELD, index_type="INVERTED")  # every search of a reader filters on it
        return indexes

    def _meta_indexes(self) -> Any:
        indexes = self.client.prepare_index_params()
        indexes.add_index("vec", index_type="FLAT", metric_type="L2")
        return indexes

    def _check_dimension(self) -> None:
        """Refuse a collection whose vectors have another dimension than this model's, or that was made before
        documents had access lists (it has nowhere to keep them)."""
        fields = self.client.describe_collection(self.collection, timeout=self.timeout_s)["fields"]
        if CLASS_FIELD not in {f["name"] for f in fields}:
            raise ValueError(
                f"LIKEOPT_MILVUS_COLLECTION={self.collection} was made before documents had access lists:"
                " migrate the corpus into a new collection"
            )
        dims = [int(f["params"].get("dim", 0)) for f in fields if f["name"] == "dense"]
        if dims != [self.embedder.dim]:
            raise ValueError(
                f"LIKEOPT_MILVUS_COLLECTION={self.collection} holds {dims[0] if dims else 'no'}-dimensional vectors"
                f" but the embedding model makes {self.embedder.dim}: use another collection or migrate"
            )

    def _check_model(self) -> None:
        """Refuse a collection embedded by another model (or BM25-indexed otherwise: raw text through
        Milvus's analyzer, or another tokenizer version's terms); a new one records this backend's."""
        bm25 = f"terms:{TOKENIZER_VERSION}" if self.bm25_terms else "analyzer"
        mine = {"model": self.embedder.model_name, "dim": self.embedder.dim, "bm25": bm25}
        stored = self._meta(META_MODEL)
        if stored is None:
            self._set_meta(META_MODEL, json.dumps(mine))
            return
        theirs = json.loads(stored)
        if theirs != mine and _older_terms_mostly_same(theirs, mine):
            log.warning(
                "milvus collection holds BM25 terms of an earlier tokenizer: its Chinese, Japanese and Korean text,"
                " words with ß, a final ς or combining marks and identifiers' parts are found by BM25 only once the"
                " corpus is migrated again",
                extra={"fields": {"collection": self.collection, "bm25": theirs.get("bm25")}},
            )
        elif theirs != mine:
            raise ValueError(
                f"LIKEOPT_MILVUS_COLLECTION={self.collection} was made by model {theirs.get('model')}"
                f" (dim {theirs.get('dim')}, BM25 {theirs.get('bm25', 'analyzer')}), not by {mine['model']}"
                f" (dim {mine['dim']}, BM25 {bm25}): use another collection or migrate the corpus again"
            )

    # -- shared state: the meta collection ----------------------------------

    def _meta(self, key: str) -> str | None:
        """A value of the meta collection, read with Strong consistency (every process's last write)."""
        rows = self._call(
            "query",
            self.meta_collection,
            filter=f"key == {quoted(key)}",
            output_fields=["value"],
            consistency_level="Strong",
            timeout=self.timeout_s,
        )
        return str(rows[0]["value"]) if rows else None

    def _set_meta(self, key: str, value: str) -> None:
        self._call(
            "upsert", self.meta_collection, [{"key": key, "value": value, "vec": [0.0, 0.0]}], timeout=self.timeout_s
        )

    def _stored_version(self) -> int:
        stored = self._meta(META_VERSION)
        return int(stored) if stored is not None else 0

    def _bump_version(self) -> int:
        """Make a new version every process will see: after the last stored one, and at least the current
        time in microseconds, so two processes bumping at once (both reading the same stored version)
        still each make a version no process has seen before."""
        version = max(self._stored_version() + 1, time.time_ns() // 1_000)
        self._set_meta(META_VERSION, str(version))
        self._version = version
        return version

    def meta(self, key: str) -> str | None:
        """A value other tools keep beside the index (the migration's progress marker)."""
        with self._guarded():
            return self._meta(key)

    def set_meta(self, key: str, value: str) -> None:
        with self._guarded():
            self._set_meta(key, value)

    def refresh(self) -> bool:
        """Read the shared version; True when another process (or this one) changed it since last seen."""
        with self._guarded():
            stored = self._stored_version()
        changed = stored != self._version
        self._version = stored
        return changed

    # -- writes -----------------------------------------------------------

    def prepare(self, doc: DocumentInput) -> list[str]:
        """Split a document into chunks that fit the model's window with the title, and whose rows fit Milvus's
        fields (UnfitDocument saying why if not)."""
        chunks = chunk_document(doc, self.embedder, self.chunk_tokens, self.chunk_overlap)
        if problem := self.unfit(doc, chunks):
            raise UnfitDocument(problem)
        return chunks

    def unfit(self, doc: DocumentInput, chunks: Sequence[str]) -> str | None:
        """Why doc's rows, cut into chunks, would not fit Milvus's fields (said for the writer); None when they
        fit. A migration asks before writing, since the embedded store holds documents Milvus cannot."""
        if problem := oversized_metadata(doc.metadata):
            return problem
        for ordinal, chunk in enumerate(chunks):
            if problem := oversized(text_fields(doc, ordinal, chunk, self._bm25_text)):
                return problem
        return None

    def upsert(self, docs: Sequence[DocumentInput], chunked: Sequence[list[str]]) -> int:
        """Embed, then store (replacing earlier versions of the same ids); returns the new version."""
        texts = [embedding_text(d.title, c) for d, chunks in zip(docs, chunked, strict=True) for c in chunks]
        embeddings = self.embedder.encode(texts)
        raise_if_stopped()  # the last look before anything is stored (a write of one slice has had none)
        return self.store_embedded(docs, chunked, embeddings)

    def store_embedded(
        self, docs: Sequence[DocumentInput], chunked: Sequence[list[str]], embeddings: np.ndarray, bump: bool = True
    ) -> int:
        """Store documents whose chunks are embedded already (in chunk order); returns the version.

        Rows are upserted by chunk id, then the chunks a document no longer has are deleted: a document
        being replaced is never missing from searches meanwhile (delete-then-insert would leave a gap).
        The version is bumped only once Milvus acknowledged both.
        """
        rows = chunk_rows(docs, chunked, embeddings, self._bm25_text)
        with self._write_lock, self._guarded():
            self.access.record([d.access for d in docs], self.timeout_s)  # before the chunks that name them
            for start in range(0, len(rows), WRITE_BATCH_ROWS):
                self._call("upsert", self.collection, rows[start : start + WRITE_BATCH_ROWS], timeout=self.timeout_s)
            counts = {d.id: len(chunks) for d, chunks in zip(docs, chunked, strict=True)}
            for condition in stale_chunks_filters(counts):
                self._call("delete", self.collection, filter=condition, timeout=self.timeout_s)
            return self._bump_version() if bump else self._version

    def flush(self) -> None:
        """Seal what was written into indexed segments; for the end of a bulk load, not every write.

        Milvus searches rows not yet sealed without their index: milvus-lite rebuilds a BM25 index over them
        for every search (0.7 s against 13 ms after a flush, at 3,000 chunks). A real Milvus seals segments
        on its own and rate-limits flush calls.
        """
        with self._guarded():
            self._call("flush", self.collection, timeout=max(self.timeout_s, 120.0))

    def delete(self, doc_ids: Sequence[str]) -> tuple[int, int]:
        """Delete documents; returns (how many of them existed, the version after)."""
        ids = sorted(set(doc_ids))
        with self._write_lock, self._guarded():
            existing = self.existing(ids)
            if not existing:
                return 0, self._version
            for ids, _ in ids_filters("doc_id", existing):
                self._call("delete", self.collection, filter=ids, timeout=self.timeout_s)
            return len(existing), self._bump_version()

    def existing(self, doc_ids: Sequence[str]) -> list[str]:
        """Which of doc_ids are stored (each stored document has a chunk 0)."""
        return sorted(self._present("doc_id", doc_ids, "ordinal == 0"))

    def stored_chunks(self, chunk_ids: Sequence[str]) -> set[str]:
        """Which of chunk_ids are stored."""
        return self._present("chunk_id", chunk_ids)

    def _present(self, field: str, values: Sequence[str], condition: str = "") -> set[str]:
        """The values of field (unique per row under condition) that some row has."""
        with self._guarded():
            return {str(row[field]) for row in self._rows_by_ids(field, values, [field], condition)}

    def _rows_by_ids(
        self, field: str, values: Sequence[str], output_fields: list[str], condition: str = ""
    ) -> list[dict[str, Any]]:
        """The rows whose field is one of values and that condition passes, a filter's worth of values a query
        (ids_filters: none grows with the number of values), each query asking for a row per value it lists."""
        rows: list[dict[str, Any]] = []
        for ids, count in ids_filters(field, values):
            rows += self._call(
                "query",
                self.collection,
                filter=both(ids, condition),
                output_fields=output_fields,
                limit=count,
                consistency_level=self.consistency_level,
                timeout=self.timeout_s,
            )
        return rows

    # -- reads ------------------------------------------------------------

    def embed_query(self, query: str) -> np.ndarray:
        """The query's unit vector."""
        self.counters["embeddings"] += 1
        return self.embedder.encode_query(query)

    def search(self, query: str, params: SearchParams, query_vector: np.ndarray | None) -> list[ChunkHit]:
        """Rank chunks for the query; query_vector is needed unless mode is bm25."""
        return self.search_batch([query], params, [query_vector])[0]

    def search_batch(
        self, queries: Sequence[str], params: SearchParams, vectors: Sequence[np.ndarray | None]
    ) -> list[list[ChunkHit]]:
        """Rank chunks for each query as ``search`` does, sharing the reader's filter, one Milvus search per
        retriever for every query and, where a dense search scores in process, one read of every query's top
        chunks' hit fields (the vectors it scores are cached per filter and index version: milvus_vectors); one
        hit per document and server-side fusion go query by query."""
        self.counters["searches"] += len(queries)
        readable = self._readable(params.reader)
        if readable is NOTHING:
            return [[] for _ in queries]
        condition = both(metadata_filter(params.filters), readable)
        hybrid = params.mode == "hybrid"
        depth = min(max(params.top_k, CANDIDATE_DEPTH) if hybrid else params.top_k, SEARCH_DEPTH_LIMIT)
        with self._guarded():
            if hybrid and self.server_fusion and not self._scored_here(condition):
                pairs = zip(queries, vectors, strict=True)
                return [self._server_hybrid(query, params, vector, condition, depth) for query, vector in pairs]
            texts = [self._bm25_text(q) if tokenize(q) else None for q in queries]  # no terms: BM25 has nothing
            dense = [v.tolist() if v is not None else None for v in vectors]
            nothing: list[Any | None] = [None] * len(queries)
            lexical = self._rankings("sparse", texts if params.mode != "dense" else nothing, condition, depth, params)
            semantic = self._rankings("dense", dense if params.mode != "bm25" else nothing, condition, depth, params)
        return [fuse_candidates(lex, sem, params) for lex, sem in zip(lexical, semantic, strict=True)]

    def _rankings(
        self, field: str, queries: Sequence[Any | None], condition: str, depth: int, params: SearchParams
    ) -> list[list[Candidate]]:
        """Each query's top depth of one retriever ([] for a None query): one Milvus call for them all, but one
        query at a time with ``per_document`` (``_ranking``)."""
        asked = [n for n, query in enumerate(queries) if query is not None]
        if params.per_document:
            ranked = [
                self._ranking(partial(self._candidates, field, queries[n], condition), depth, params.per_document)
                for n in asked
            ]
        else:
            ranked = self._candidates_each(field, [queries[n] for n in asked], condition, depth) if asked else []
        found: list[list[Candidate]] = [[] for _ in queries]
        for n, candidates in zip(asked, ranked, strict=True):
            found[n] = candidates
        return found

    def _readable(self, reader: Reader | None) -> str | None:
        """The filter of the chunks reader may read: empty for every chunk (no reader), NOTHING for none."""
        if reader is None:
            return ""
        with self._guarded():
            return self.access.condition(reader, self._version, self.read_timeout_s)

    def _bm25_text(self, text: str) -> str:
        """What Milvus's BM25 reads for text: the text, or with ``bm25_terms`` its terms."""
        return " ".join(tokenize(text)) if self.bm25_terms else text

    @staticmethod
    def _ranking(retrieve: Callable[[int], list[Candidate]], depth: int, per_document: bool) -> list[Candidate]:
        """The top depth of a retriever; per document, each document at its best chunk only (fetched as the
        embedded engine does: Milvus's group_by_field took 66-90 ms for 100 groups on milvus-lite where 300
        chunks took 25 ms)."""
        if not per_document:
            return retrieve(depth)
        return best_per_document(retrieve, depth, lambda chunk: chunk.doc_id, most=SEARCH_DEPTH_LIMIT)

    def _candidates(self, field: str, query: Any, condition: str, limit: int) -> list[Candidate]:
        """One retriever's top ``limit`` chunks, best first, scores higher-is-better."""
        return self._candidates_each(field, [query], condition, limit)[0]

    def _candidates_each(self, field: str, queries: Sequence[Any], condition: str, limit: int) -> list[list[Candidate]]:
        """``_candidates`` of each query, from one Milvus call."""
        if field == "dense" and self._scored_here(condition):
            return self._exact_dense(queries, condition, limit)
        result = self._call(
            "search",
            self.collection,
            data=list(queries),
            anns_field=field,
            search_params=self._search_params(field, limit, condition),
            limit=limit,
            filter=condition,
            output_fields=HIT_FIELDS,
            consistency_level=self.consistency_level,
            timeout=self.timeout_s,
        )
        raw = [list(hits) for hits in result] if result else [[] for _ in queries]
        if field == "sparse":
            return [bm25_candidates(hits) for hits in raw]
        return [best_first([Candidate.of(h) for h in hits]) for hits in raw]

    def _search_params(self, field: str, limit: int, condition: str) -> dict[str, Any]:
        """A graph index's dense search reaches at least ``limit`` rows, and as many more as the filter is
        selective (a walk meets about passing/total matching rows per row it visits); BM25 needs nothing."""
        if field != "dense" or self.dense_index not in GRAPH_INDEXES:
            return {"metric_type": METRICS[field]}
        ef = max(limit, GRAPH_EF)
        if condition:
            ef *= -(-self._rows(None) // max(self._rows(condition), 1))
        return {"metric_type": METRICS[field], "params": {"ef": min(ef, SEARCH_DEPTH_LIMIT)}}

    def _scored_here(self, condition: str) -> bool:
        """Whether a dense search under condition scores the rows it passes in process (EXACT_ROWS)."""
        return bool(condition) and self._rows(condition) <= EXACT_ROWS

    def _rows(self, condition: str | None) -> int:
        """How many chunks condition passes (None: all), counted once per index version."""
        key = condition or ""
        with self._counts_lock:
            if self._counts_version != self._version:
                self._counts, self._counts_version = {}, self._version
            if key in self._counts:
                return self._counts[key]
        counted = self._count(key)
        with self._counts_lock:
            if len(self._counts) >= COUNTS_KEPT:
                self._counts.clear()
            self._counts[key] = counted
        return counted

    def _exact_dense(self, queries: Sequence[list[float]], condition: str, limit: int) -> list[list[Candidate]]:
        """Each query's top ``limit`` of the few chunks condition passes, every one scored from their cached vectors,
        so a selective filter never hides a readable chunk. Only the top chunks' hit fields are read, under
        condition again: a chunk deleted or moved out of reach since the vectors were read is dropped, and the next
        best readable chunk shown in its place (Passing.readable_top)."""
        passing = self._passing(condition)
        tops = passing.readable_top(np.asarray(queries, dtype=np.float32), limit, partial(self._hit_rows, condition))
        return [[Candidate.of({"id": c, "distance": score, "entity": row}) for c, score, row in top] for top in tops]

    def _hit_rows(self, condition: str, chunk_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The hit fields of those of chunk_ids that are stored and condition passes, by chunk id (in filters of
        bounded size: ids_filters)."""
        rows = self._rows_by_ids("chunk_id", chunk_ids, [*HIT_FIELDS, "chunk_id"], condition)
        return {str(row["chunk_id"]): row for row in rows}

    def _passing(self, condition: str) -> Passing:
        """The chunks condition passes and their vectors: read from Milvus once per index version while the
        cache keeps them (a write, here or through another replica once refreshed, makes a new version)."""
        version = self._version  # before the read: what it finds is at least as new
        return self._vectors.get_or_read(condition, version, partial(self._read_passing, condition))

    def _read_passing(self, condition: str) -> Passing:
        """The chunks condition passes and their vectors, read from Milvus."""
        rows = self._call(
            "query",
            self.collection,
            filter=condition,
            output_fields=["chunk_id", "dense"],
            limit=EXACT_ROWS,
            consistency_level=self.consistency_level,
            timeout=self.timeout_s,
        )
        VECTOR_READS.inc()
        rows = sorted(rows, key=lambda row: str(row["chunk_id"]))
        vectors = np.asarray([row["dense"] for row in rows], dtype=np.float32).reshape(len(rows), self.embedder.dim)
        return Passing([str(row["chunk_id"]) for row in rows], vectors)

    def _server_hybrid(
        self, query: str, params: SearchParams, vector: np.ndarray | None, condition: str, depth: int
    ) -> list[ChunkHit]:
        """Hybrid ranked by Milvus's hybrid_search: one round trip, fusion on the server."""
        requests, weights = [], []
        if tokenize(query):
            requests.append(
                AnnSearchRequest(
                    [self._bm25_text(query)],
                    "sparse",
                    {"metric_type": METRICS["sparse"]},
                    depth,
                    expr=condition or None,
                )
            )
            weights.append(1.0 - params.alpha)
        if vector is not None:
            requests.append(
                AnnSearchRequest(
                    [vector.tolist()],
                    "dense",
                    self._search_params("dense", depth, condition),
                    depth,
                    expr=condition or None,
                )
            )
            weights.append(params.alpha)
        if not requests:
            return []
        ranker = RRFRanker(round(params.rrf_k)) if params.fusion == "rrf" else WeightedRanker(*weights)
        grouping = {"group_by_field": "doc_id", "group_size": 1} if params.per_document else {}
        result = self._call(
            "hybrid_search",
            self.collection,
            requests,
            ranker,
            limit=params.top_k,
            output_fields=HIT_FIELDS,
            consistency_level=self.consistency_level,
            timeout=self.timeout_s,
            **grouping,
        )
        return [chunk_hit(c) for c in best_first([Candidate.of(h) for h in (result[0] if result else [])])]

    def list_documents(
        self, after_id: str, limit: int, reader: Reader | None = None, ids: Sequence[str] = ()
    ) -> tuple[list[DocumentSummary], int]:
        """Up to limit documents whose ids sort after after_id, in id order, and how many are stored in all;
        with a reader, of those it may read only; with ids, of those documents only.

        Milvus queries have no order: the first chunks after after_id are read in batches and the smallest
        ids kept, so a page costs one pass over the later documents (an administrative read, not a search).
        With ids, whose first chunks are few, one query reads them all (what a conversation read asks).
        """
        readable = self._readable(reader)
        if readable is NOTHING:
            return [], 0
        firsts = both("ordinal == 0", readable)
        with self._guarded():
            if ids:
                rows = self._firsts_of(ids, firsts)
                total = len(rows)
                smallest = sorted((r for r in rows if r["doc_id"] > after_id), key=lambda r: r["doc_id"])[:limit]
            else:
                total, smallest = self._count(firsts), []
                for batch in self._batches(both(firsts, f"doc_id > {quoted(after_id)}" if after_id else ""), SUMMARY):
                    smallest = sorted([*smallest, *batch], key=lambda row: row["doc_id"])[:limit]
            counts = self._chunk_counts([row["doc_id"] for row in smallest])
        page = [
            DocumentSummary(row["doc_id"], row["title"], dict(row["metadata"] or {}), counts.get(row["doc_id"], 0))
            for row in smallest
        ]
        return page, total

    def _firsts_of(self, doc_ids: Sequence[str], condition: str) -> list[dict[str, Any]]:
        """The first chunks (SUMMARY's fields) of those of doc_ids stored under condition: one row each at most."""
        return self._rows_by_ids("doc_id", doc_ids, SUMMARY, condition)

    def document_ids(self) -> set[str]:
        """Every stored document's id: one pass over the first chunks, for a migration to compare with its store."""
        with self._guarded():
            return {str(row["doc_id"]) for batch in self._batches("ordinal == 0", ["doc_id"]) for row in batch}

    def _batches(self, condition: str, fields: list[str]) -> Iterator[list[dict[str, Any]]]:
        """The rows under condition in batches of about LIST_BATCH_ROWS, in chunk id order (call inside _guarded).

        Paged by chunk id as pymilvus's query_iterator pages, but with the last id quoted: its cursor goes
        unescaped into the next filter (milvus-io/pymilvus#1960), so an id holding a quote or a backslash ended
        the listing with an error. Only a query marked ``iterator`` returns the rows of smallest chunk id (a plain
        one returns any rows that match), and with ``reduce_stop_for_best`` Milvus may return fewer rows than asked
        while more follow, or a few more: only an empty batch ends the listing. Pages after the first read the
        first page's snapshot, as query_iterator's do (snapshot_of).
        """
        fields = [*fields, "chunk_id"]
        batch = self._page(condition, fields, None, {})
        snapshot = snapshot_of(batch)
        while batch:
            yield batch
            batch = self._page(condition, fields, max(str(row["chunk_id"]) for row in batch), snapshot)

    def _page(self, condition: str, fields: list[str], after: str | None, snapshot: dict[str, int]) -> Any:
        """The rows under condition whose chunk ids follow after (from the first without it): a page of _batches."""
        return self._call(
            "query",
            self.collection,
            filter=both(f"chunk_id > {quoted(after)}" if after is not None else "", condition),
            output_fields=fields,
            limit=LIST_BATCH_ROWS,
            iterator="True",  # a string, as query_iterator sends it (the request holds strings only)
            reduce_stop_for_best=True,
            consistency_level=self.consistency_level,
            timeout=self.timeout_s,
            **snapshot,
        )

    def _chunk_counts(self, doc_ids: Sequence[str]) -> dict[str, int]:
        """How many chunks each of doc_ids has, a filter's worth of ids at a time (id_batches)."""
        counts: dict[str, int] = {}
        for batch in id_batches(doc_ids):
            counts.update(self._chunks_of(batch))
        return counts

    def _chunks_of(self, doc_ids: list[str]) -> dict[str, int]:
        """How many chunks each of doc_ids has, their rows' doc_id counted here. A query returns at most
        SEARCH_DEPTH_LIMIT rows, so one that returns that many may have left some out: then the ids are counted
        again in halves, and a single document by Milvus's count(*)."""
        ids = ids_filter("doc_id", doc_ids)
        rows = self._call(
            "query",
            self.collection,
            filter=ids,
            output_fields=["doc_id"],
            limit=SEARCH_DEPTH_LIMIT,
            consistency_level=self.consistency_level,
            timeout=self.timeout_s,
        )
        if len(rows) < SEARCH_DEPTH_LIMIT:
            return dict(Counter(str(row["doc_id"]) for row in rows))
        if len(doc_ids) == 1:
            return {doc_ids[0]: self._count(ids)}
        half = len(doc_ids) // 2
        return {**self._chunks_of(doc_ids[:half]), **self._chunks_of(doc_ids[half:])}

    def accesses_of(self, doc_ids: Sequence[str]) -> dict[str, Access]:
        """The access of each of doc_ids that is stored, read from its first chunk's reader keys."""
        with self._guarded():
            rows = self._rows_by_ids("doc_id", doc_ids, ["doc_id", READERS_FIELD], "ordinal == 0")
        return {str(r["doc_id"]): Access.from_keys(r[READERS_FIELD] or ()) for r in rows}

    def get_document(self, doc_id: str, reader: Reader | None = None) -> DocumentChunks | None:
        """The document with all its chunks in order, or None when there is none with that id (that reader may
        read: a hidden document and a missing one look the same). Read page by page (_batches): a long document
        (a 50 MB text makes tens of thousands of chunks) has more than one query returns (SEARCH_DEPTH_LIMIT)."""
        readable = self._readable(reader)
        if readable is NOTHING:
            return None
        condition = both(ids_filter("doc_id", [doc_id]), readable)
        with self._guarded():
            pages = self._batches(condition, ["ordinal", "title", "text", "metadata"])
            rows = [row for page in pages for row in page]
        if not rows:
            return None
        rows.sort(key=lambda row: row["ordinal"])
        first = rows[0]
        return DocumentChunks(
            doc_id, first["title"], dict(first["metadata"] or {}), [(int(r["ordinal"]), r["text"]) for r in rows]
        )

    def stats(self, reader: Reader | None = None) -> IndexStats:
        """Counts for GetIndexStatus: documents are distinct doc ids (each has a chunk 0), chunks are rows; with
        a reader, only those it may read."""
        readable = self._readable(reader)
        with self._guarded():
            chunks = self._count(readable) if readable is not NOTHING else 0
            documents = self._count(both("ordinal == 0", readable)) if readable is not NOTHING else 0
            index = self.client.describe_index(self.collection, "dense", timeout=self.timeout_s) or {}
        kind = f"milvus:{index.get('index_type', self.dense_index)}"
        return IndexStats(documents, chunks, chunks, chunks, kind, self.load_seconds)

    def _count(self, condition: str) -> int:
        rows = self._call(
            "query",
            self.collection,
            filter=condition,
            output_fields=["count(*)"],
            consistency_level=self.consistency_level,
            timeout=self.timeout_s,
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def close(self) -> None:
        """Close the connection (a later load() opens a new one, perhaps to another Milvus: nothing read is kept)."""
        self._vectors.clear()
        if self._client is not None:
            self._client.close()
            self._client = None


def _meta_schema() -> Any:
    """Key-value rows (Milvus wants a vector field in every collection: a 2-dimensional dummy)."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=256)
    schema.add_field("value", DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
    return schema


def snapshot_of(first_page: Any) -> dict[str, int]:
    """The query arguments that read a paged read's later pages at the snapshot its first page was read at.

    Milvus answers an ``iterator`` query that names no timestamp with the one it read at (session_ts, in pymilvus's
    ``extra``), and reads a later one naming it as ``guarantee_timestamp`` at exactly that timestamp: the pages
    are one snapshot, and none waits for newer writes as Strong would (up to a sync interval a page). A server that
    answers none (milvus-lite) gets none back, and each page is read at the consistency level.
    """
    session_ts = int((getattr(first_page, "extra", None) or {}).get(ITERATOR_SESSION_TS_FIELD) or 0)
    return {"guarantee_timestamp": session_ts} if session_ts > 0 else {}


def text_fields(doc: DocumentInput, ordinal: int, chunk: str, bm25_text: Callable[[str], str]) -> dict[str, Any]:
    """A chunk row's VARCHAR fields (and its ordinal); ``search_text`` is bm25_text of the text the chunk is
    embedded as."""
    return {
        "chunk_id": f"{doc.id}#{ordinal}",
        "doc_id": doc.id,
        "ordinal": ordinal,
        "title": doc.title,
        "text": chunk,
        "search_text": bm25_text(embedding_text(doc.title, chunk)),
    }


def oversized(row: dict[str, Any]) -> str | None:
    """Which VARCHAR field of a chunk row is longer than Milvus stores, said for the writer; None if none is."""
    for name, most in VARCHAR_BYTES.items():
        size = len(row[name].encode())
        if size > most:
            where = "" if name in ("doc_id", "title") else f" of chunk {row['ordinal']}"
            return f"{name}{where} is {size:,} bytes in UTF-8; Milvus stores at most {most:,}"
    return None


def oversized_metadata(metadata: dict[str, str]) -> str | None:
    """Why a document's metadata does not fit Milvus's JSON field, said for the writer; None when it fits."""
    size = len(json.dumps(metadata, ensure_ascii=False).encode())
    return (
        f"metadata is {size:,} bytes as JSON; Milvus stores at most {MAX_JSON_BYTES:,}"
        if size > MAX_JSON_BYTES
        else None
    )


def chunk_rows(
    docs: Sequence[DocumentInput],
    chunked: Sequence[list[str]],
    embeddings: np.ndarray,
    bm25_text: Callable[[str], str] = str,
) -> list[dict]:
    """One row per chunk; a document with a field over Milvus's size limits is refused (UnfitDocument naming
    it) before anything is written."""
    if len(embeddings) != sum(len(chunks) for chunks in chunked):
        raise ValueError(f"{len(embeddings)} embeddings for {sum(len(c) for c in chunked)} chunks")
    rows: list[dict] = []
    for doc, chunks in zip(docs, chunked, strict=True):
        if problem := oversized_metadata(doc.metadata):
            raise UnfitDocument(f"document {shown_id(doc.id)}: {problem}")
        for ordinal, chunk in enumerate(chunks):
            row = text_fields(doc, ordinal, chunk, bm25_text)
            if problem := oversized(row):
                raise UnfitDocument(f"document {shown_id(doc.id)}: {problem}")
            row["dense"] = embeddings[len(rows)].astype(np.float32).tolist()
            rows.append({**row, "metadata": doc.metadata, **access_row_fields(doc.access)})
    return rows


def stale_chunks_filters(counts: dict[str, int]) -> list[str]:
    """Delete conditions for the chunks past each document's new chunk count: documents with the same count
    share conditions (ids_filters)."""
    by_count: dict[int, list[str]] = {}
    for doc_id, count in sorted(counts.items()):
        by_count.setdefault(count, []).append(doc_id)
    return [
        f"ordinal >= {count} and {ids}"
        for count, doc_ids in sorted(by_count.items())
        for ids, _ in ids_filters("doc_id", doc_ids)
    ]
