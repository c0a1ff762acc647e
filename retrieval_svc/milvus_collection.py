"""The Milvus collections a ``milvus`` backend's corpus lives in, and the one connection every part of
MilvusBackend (milvus_backend) calls them through: creating and checking them, and the shared index version.

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
snapshot (milvus_reads.snapshot_of).
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
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from pymilvus import DataType, Function, FunctionType, MilvusClient
from pymilvus.exceptions import MilvusException

from likeopt.runtime.principal import Reader
from likeopt.runtime.text import SAME_TERMS_UNLESS_FLAGGED, STOP_WORDS, TOKENIZER_VERSION, tokenize
from retrieval_svc.embedder import Embedder
from retrieval_svc.milvus_access import CLASS_FIELD, access_schema, add_access_fields
from retrieval_svc.milvus_errors import Breaker, route_pymilvus_logs, unavailable
from retrieval_svc.milvus_expressions import quoted
from retrieval_svc.milvus_reader_filters import AccessClasses

log = logging.getLogger(__name__)

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
METRICS = {"sparse": "BM25", "dense": "COSINE"}
META_VERSION, META_MODEL = "index_version", "model"
COLLECTION_NOT_LOADED = 101
"""Milvus's error code for a search or query on a released collection."""
SEARCH_DEPTH_LIMIT = 16_384
"""Milvus's largest limit per search (topk) or query: the most rows one call returns."""


def _older_terms_mostly_same(theirs: dict[str, Any], mine: dict[str, Any]) -> bool:
    """Whether a collection's record differs from this backend's only by an earlier tokenizer whose terms are
    this one's outside the text likeopt.runtime.text.terms_may_differ flags: such a collection still serves
    everything else."""
    older = {f"terms:{version}" for version in SAME_TERMS_UNLESS_FLAGGED}
    return theirs.get("bm25") in older and {**theirs, "bm25": mine["bm25"]} == mine


class MilvusCollection:
    """A corpus's chunk collection, with its meta and access collections beside it, on one connection of our own:
    every call of MilvusBackend's parts goes through ``call`` inside ``guarded``, and reads the version kept here."""

    def __init__(
        self,
        embedder: Embedder,
        uri: str,
        token: str,
        name: str,
        shards: int,
        replicas: int,
        *,
        consistency_level: str,
        dense_index: str,
        timeout_s: float,
        bm25_terms: bool,
    ) -> None:
        self.embedder = embedder
        self.uri, self._token = uri, token
        self.name, self.meta_name = name, f"{name}_meta"
        self.shards, self.replicas = shards, replicas
        self.consistency_level = consistency_level
        self.dense_index = dense_index
        self.timeout_s = timeout_s
        self.bm25_terms = bm25_terms
        """Store and query likeopt.runtime.text.tokenize's terms instead of raw text: the embedded engine's exact BM25
        terms on any Milvus, whatever analyzers it has (milvus-lite has no stemmer). Fixed per collection."""
        self.load_seconds = 0.0
        self._version = 0
        self._client: MilvusClient | None = None
        self._breaker = Breaker(uri)
        self.read_timeout_s = min(timeout_s, READ_TIMEOUT_S)
        self.access = AccessClasses(self.call, name, quoted, consistency_level)
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
        with self.guarded():
            # Connects at once: refused, or no answer within timeout_s, raises (no endless retry). Dedicated:
            # pymilvus otherwise shares one connection per address in a process, and a shared one handed out
            # after Milvus restarted kept failing where a connection of our own reconnects.
            self._client = MilvusClient(uri=self.uri, token=self._token, timeout=self.timeout_s, dedicated=True)
            self._create(self.name, self._chunk_schema, self._chunk_indexes)
            self._check_dimension()
            self._load_collection(self.name, self.replicas)
            self._create(self.meta_name, _meta_schema, self._meta_indexes)
            self._load_collection(self.meta_name, 1)
            self._create(self.access.collection, access_schema, self._meta_indexes)
            self._load_collection(self.access.collection, 1)
            self._check_model()
            self._version = self._stored_version()
        self.embedder.warm_up()
        self.load_seconds = time.perf_counter() - started
        log.info(
            "milvus collection ready",
            extra={"fields": {"collection": self.name, "index_version": self._version, "load_s": self.load_seconds}},
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

    def guarded(self) -> AbstractContextManager[None]:
        """Milvus errors as BackendUnavailable, failing fast for a moment after one (Breaker)."""
        return self._breaker.guard()

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
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
            self._load_collection(self.name, self.replicas)
            self._load_collection(self.meta_name, 1)
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
        fields = self.client.describe_collection(self.name, timeout=self.timeout_s)["fields"]
        if CLASS_FIELD not in {f["name"] for f in fields}:
            raise ValueError(
                f"LIKEOPT_MILVUS_COLLECTION={self.name} was made before documents had access lists:"
                " migrate the corpus into a new collection"
            )
        dims = [int(f["params"].get("dim", 0)) for f in fields if f["name"] == "dense"]
        if dims != [self.embedder.dim]:
            raise ValueError(
                f"LIKEOPT_MILVUS_COLLECTION={self.name} holds {dims[0] if dims else 'no'}-dimensional vectors"
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
                extra={"fields": {"collection": self.name, "bm25": theirs.get("bm25")}},
            )
        elif theirs != mine:
            raise ValueError(
                f"LIKEOPT_MILVUS_COLLECTION={self.name} was made by model {theirs.get('model')}"
                f" (dim {theirs.get('dim')}, BM25 {theirs.get('bm25', 'analyzer')}), not by {mine['model']}"
                f" (dim {mine['dim']}, BM25 {bm25}): use another collection or migrate the corpus again"
            )

    # -- shared state: the meta collection ----------------------------------

    def _meta(self, key: str) -> str | None:
        """A value of the meta collection, read with Strong consistency (every process's last write)."""
        rows = self.call(
            "query",
            self.meta_name,
            filter=f"key == {quoted(key)}",
            output_fields=["value"],
            consistency_level="Strong",
            timeout=self.timeout_s,
        )
        return str(rows[0]["value"]) if rows else None

    def _set_meta(self, key: str, value: str) -> None:
        self.call("upsert", self.meta_name, [{"key": key, "value": value, "vec": [0.0, 0.0]}], timeout=self.timeout_s)

    def _stored_version(self) -> int:
        stored = self._meta(META_VERSION)
        return int(stored) if stored is not None else 0

    def bump_version(self) -> int:
        """Make a new version every process will see: after the last stored one, and at least the current
        time in microseconds, so two processes bumping at once (both reading the same stored version)
        still each make a version no process has seen before."""
        version = max(self._stored_version() + 1, time.time_ns() // 1_000)
        self._set_meta(META_VERSION, str(version))
        self._version = version
        return version

    def meta(self, key: str) -> str | None:
        """A value other tools keep beside the index (the migration's progress marker)."""
        with self.guarded():
            return self._meta(key)

    def set_meta(self, key: str, value: str) -> None:
        with self.guarded():
            self._set_meta(key, value)

    def refresh(self) -> bool:
        """Read the shared version; True when another process (or this one) changed it since last seen."""
        with self.guarded():
            stored = self._stored_version()
        changed = stored != self._version
        self._version = stored
        return changed

    # -- what every part asks of it ------------------------------------------

    def readable(self, reader: Reader | None) -> str | None:
        """The filter of the chunks reader may read: empty for every chunk (no reader), NOTHING for none."""
        if reader is None:
            return ""
        with self.guarded():
            return self.access.condition(reader, self._version, self.read_timeout_s)

    def bm25_text(self, text: str) -> str:
        """What Milvus's BM25 reads for text: the text, or with ``bm25_terms`` its terms."""
        return " ".join(tokenize(text)) if self.bm25_terms else text

    def close(self) -> None:
        """Close the connection (a later load() opens a new one, perhaps to another Milvus: nothing read is kept)."""
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
