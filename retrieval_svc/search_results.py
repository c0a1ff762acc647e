"""Search results computed once and kept: the searches asking for the same result together share one computation
(single flight), and a repeat is answered from recent results in process, else from cache_svc. Query embeddings
are kept in process only; an uncached search embeds its query in the same thread as it searches.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from likeopt.caching.cache_client import CacheClient
from likeopt.caching.cache_keys import cache_key
from likeopt.caching.lookup_policy import LookupPolicy
from likeopt.caching.near_cache import VersionedLRU
from likeopt.caching.single_flight import SingleFlight
from likeopt.runtime.config import Config
from likeopt.runtime.principal import Reader
from likeopt.runtime.text import TOKENIZER_VERSION
from likeopt.v1 import retrieval_pb2
from retrieval_svc.backend import RetrievalBackend, SearchParams
from retrieval_svc.search_messages import search_response
from retrieval_svc.search_threads import in_pool

EMBEDDING_VERSION = 0
"""Query embeddings do not change with the index: all are stored under this one version."""


class SearchResults:
    """The result of each search and the embedding of each query, computed in pool and kept for repeats."""

    def __init__(self, config: Config, cache: CacheClient, pool: ThreadPoolExecutor) -> None:
        self.cache = cache
        self.pool = pool
        self.flights: SingleFlight[retrieval_pb2.SearchResponse] = SingleFlight()
        """One computation per concurrent identical search: (query, params, use_cache, version)."""
        self._lookups = LookupPolicy("search")
        self._embeddings: SingleFlight[np.ndarray] = SingleFlight()
        self.recent: VersionedLRU[retrieval_pb2.SearchResponse] = VersionedLRU(
            "search", config.near_cache_entries, config.near_cache_bytes
        )
        """Recent results in process, in front of cache_svc: a repeated search skips that hop."""
        self._vectors: VersionedLRU[np.ndarray] = VersionedLRU(
            "embedding", config.near_cache_entries, config.near_cache_bytes // 4
        )
        """Query embeddings in process only, by (reader, query): they do not depend on the index (one constant
        version), so one serves its reader's repeats after a write; a miss in cache_svc as well would have cost two
        more round trips on every uncached search. Never another reader's: how fast a search came back would tell
        whether someone else had just asked the same question."""

    async def query_vectors(
        self, engine: RetrievalBackend, queries: list[str], reader: Reader | None
    ) -> list[np.ndarray | None]:
        """Each query's embedding: those remembered in process for reader, the others computed in one task."""
        known = {query: self._vectors.get((reader, query), EMBEDDING_VERSION) for query in queries}
        missing = [query for query, vector in known.items() if vector is None]
        if missing:
            computed = await in_pool(self.pool, lambda: [engine.embed_query(query) for query in missing])
            for query, vector in zip(missing, computed, strict=True):
                self._vectors.put((reader, query), EMBEDDING_VERSION, vector, vector.nbytes + len(query))
                known[query] = vector
        return [known[query] for query in queries]

    async def result(
        self, engine: RetrievalBackend, query: str, params: SearchParams, use_cache: bool
    ) -> retrieval_pb2.SearchResponse:
        """The response from the result cache, else computed (and cached); run once per concurrent identical search."""
        version = engine.version
        # The tokenizer too: during a rolling upgrade (or after a roll-back) releases of two tokenizers share the
        # store's version and cache_svc, and must not be served each other's BM25 rankings.
        key = cache_key(query, params, version, TOKENIZER_VERSION)
        if use_cache and (cached := await self._looked_up(key)) is not None:
            response = retrieval_pb2.SearchResponse.FromString(cached)
            response.cached = True
            self._remember(query, params, response, len(cached))
            return response
        response = await self._computed(engine, query, params)
        if use_cache and response.index_version == version:
            serialized = response.SerializeToString()
            self.cache.set_later("search", key, serialized)
            self._remember(query, params, response, len(serialized))
        return response

    async def _looked_up(self, key: str) -> bytes | None:
        """The result cache_svc holds for key, when a lookup is worth asking for (likeopt/caching/lookup_policy.py)."""
        if not self._lookups.should_ask():
            return None
        cached = await self.cache.get("search", key)
        self._lookups.record(cached is not None)
        return cached

    def _remember(self, query: str, params: SearchParams, response: retrieval_pb2.SearchResponse, size: int) -> None:
        """Keep a result near for repeats, marked cached as a repeat will see it (a fresh one is copied to be
        marked: its flight's callers still copy it as it is; nobody changes either afterwards)."""
        recent = response
        if not response.cached:
            recent = retrieval_pb2.SearchResponse()
            recent.CopyFrom(response)
            recent.cached = True
        self.recent.put((query, params), response.index_version, recent, size)

    async def _computed(
        self, engine: RetrievalBackend, query: str, params: SearchParams
    ) -> retrieval_pb2.SearchResponse:
        """The search done in the pool, the query embedded in the same task when it is new: one hand-over to a
        thread and back per uncached search instead of two."""
        if params.mode == "bm25":
            return await in_pool(self.pool, search_now, engine, query, params, None)
        if (vector := self._vectors.get((params.reader, query), EMBEDDING_VERSION)) is not None:
            return await in_pool(self.pool, search_now, engine, query, params, vector)
        vector, response = await in_pool(self.pool, embed_and_search, engine, query, params)
        self._vectors.put((params.reader, query), EMBEDDING_VERSION, vector, vector.nbytes + len(query))
        return response

    async def query_vector(self, engine: RetrievalBackend, query: str, reader: Reader | None) -> np.ndarray:
        """The query's embedding, remembered in process for reader; computed once per concurrent query of one."""
        key = (reader, query)
        if (vector := self._vectors.get(key, EMBEDDING_VERSION)) is not None:
            return vector

        async def compute() -> np.ndarray:
            vector = await in_pool(self.pool, engine.embed_query, query)
            self._vectors.put(key, EMBEDDING_VERSION, vector, vector.nbytes + len(query))
            return vector

        return await self._embeddings.run(key, compute)


def embed_and_search(
    engine: RetrievalBackend, query: str, params: SearchParams
) -> tuple[np.ndarray, retrieval_pb2.SearchResponse]:
    """Both in one thread: an uncached search hands over to the pool once, not twice."""
    vector = engine.embed_query(query)
    return vector, search_now(engine, query, params, vector)


def search_now(
    engine: RetrievalBackend, query: str, params: SearchParams, vector: np.ndarray | None
) -> retrieval_pb2.SearchResponse:
    """The search in the calling thread, under the version read before it (a write meanwhile makes it older)."""
    version = engine.version
    return search_response(version, engine.search(query, params, vector))


def search_batch_now(
    engine: RetrievalBackend, queries: list[str], params: SearchParams, vectors: list[np.ndarray | None]
) -> list[retrieval_pb2.SearchResponse]:
    """The batch's searches in the calling thread, under the version read before them."""
    version = engine.version
    return [search_response(version, hits) for hits in engine.search_batch(queries, params, vectors)]
