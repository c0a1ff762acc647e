"""In-process harness for generation tests: a real grpc.aio server with a small fake retrieval_svc.

Holds no tests itself; the test_generation_* modules import it.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc
import numpy as np

from generation_svc.answer_cache import AnswerCache
from generation_svc.backends import Backend
from generation_svc.conversations import ConversationStore
from generation_svc.feedback import FeedbackStore
from generation_svc.relevance import RelevanceFloor
from generation_svc.semantic_cache import SemanticIndex
from generation_svc.service import GenerationServicer
from likeopt.runtime.config import Config
from likeopt.runtime.text import tokenize
from likeopt.v1 import generation_pb2, generation_pb2_grpc, retrieval_pb2, retrieval_pb2_grpc

CORPUS = {
    "envoy.md": "Envoy listens on port 8080. Its admin interface listens on port 9901.",
    "cache.md": "The answer cache keeps complete answers in Redis. Each entry has a time to live.",
    "costs.md": "Running the answer cache costs little memory. A cache hit costs under a millisecond.",
    "gateway.md": "The gateway translates HTTP requests into gRPC calls and streams answers as events.",
}


class FakeCache:
    """Stands in for CacheClient: a dict, written at once so tests need not wait."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], bytes] = {}

    async def get(self, namespace: str, key: str) -> bytes | None:
        return self.values.get((namespace, key))

    async def lookup(self, namespace: str, key: str) -> bytes | None:
        return await self.get(namespace, key)

    def set_later(self, namespace: str, key: str, value: bytes, ttl_s: int = 0) -> None:
        self.values[(namespace, key)] = value

    async def set(self, namespace: str, key: str, value: bytes, ttl_s: int = 0) -> None:
        self.values[(namespace, key)] = value

    async def delete(self, namespace: str, keys: list[str]) -> int:
        return sum(self.values.pop((namespace, key), None) is not None for key in keys)

    def keys(self, namespace: str) -> list[str]:
        return [k for ns, k in self.values if ns == namespace]


class FakeRetrieval(retrieval_pb2_grpc.RetrievalServiceServicer):
    """Ranks CORPUS documents by shared terms and records every query it was sent; lists those not withdrawn."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.least_versions: list[int] = []
        """Each search's min_index_version."""
        self.index_version = 1
        self.withdrawn: set[str] = set()
        """Documents the caller may no longer read (re-scoped or deleted): never listed."""
        self.listings: list[list[str]] = []
        """The ids each ListDocuments was limited to."""

    async def ListDocuments(
        self, request: retrieval_pb2.ListDocumentsRequest, context: grpc.aio.ServicerContext
    ) -> retrieval_pb2.ListDocumentsResponse:
        self.listings.append(list(request.ids))
        listed = [doc_id for doc_id in sorted(set(request.ids) or CORPUS) if doc_id in CORPUS]
        readable = [doc_id for doc_id in listed if doc_id not in self.withdrawn]
        page = [retrieval_pb2.DocumentSummary(id=doc_id, title=doc_id, chunks=1) for doc_id in readable]
        return retrieval_pb2.ListDocumentsResponse(
            documents=page[: request.limit or 100], total=len(readable), index_version=self.index_version
        )

    async def Search(
        self, request: retrieval_pb2.SearchRequest, context: grpc.aio.ServicerContext
    ) -> retrieval_pb2.SearchResponse:
        self.queries.append(request.query)
        self.least_versions.append(request.min_index_version)
        terms = set(tokenize(request.query))
        scored = sorted(
            ((len(terms & set(tokenize(text))), doc_id) for doc_id, text in CORPUS.items()), key=lambda s: (-s[0], s[1])
        )
        hits = [
            retrieval_pb2.SearchHit(
                doc_id=doc_id, chunk_id=f"{doc_id}#0", title=doc_id, text=CORPUS[doc_id], score=score
            )
            for score, doc_id in scored[: request.top_k or 5]
            if score > 0
        ]
        response = retrieval_pb2.SearchResponse(hits=hits, index_version=self.index_version)
        if request.return_query_embedding:
            response.query_embedding.extend(bag_of_words(request.query))
        return response


def bag_of_words(text: str, dim: int = 64) -> list[float]:
    """A unit vector per set of terms: the same words in any order embed identically."""
    vector = np.zeros(dim, dtype=np.float32)
    for term in set(tokenize(text)):
        vector += np.random.default_rng(zlib.crc32(term.encode())).standard_normal(dim).astype(np.float32)
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm else vector).tolist()


@dataclass
class Harness:
    stub: generation_pb2_grpc.GenerationServiceStub
    retrieval: FakeRetrieval
    cache: FakeCache
    servicer: GenerationServicer
    events: list[generation_pb2.AnswerEvent] = field(default_factory=list)
    address: str = ""

    async def answer(self, query: str, **fields: object) -> list[generation_pb2.AnswerEvent]:
        """Every event of one Answer call (which must end OK)."""
        call = self.stub.Answer(generation_pb2.AnswerRequest(query=query, **fields), timeout=30)  # type: ignore[arg-type]
        return [event async for event in call]


async def collect(call: AsyncIterator[generation_pb2.AnswerEvent]) -> list[generation_pb2.AnswerEvent]:
    """The events a call streamed before it ended, however it ended."""
    events: list[generation_pb2.AnswerEvent] = []
    try:
        async for event in call:
            events.append(event)
    except grpc.aio.AioRpcError:
        pass
    return events


def text_of(events: list[generation_pb2.AnswerEvent]) -> str:
    return "".join(e.delta.text for e in events if e.HasField("delta"))


@asynccontextmanager
async def generation_server(
    backend: Backend,
    semantic: SemanticIndex | None = None,
    floor: RelevanceFloor | None = None,
    feedback: FeedbackStore | None = None,
    **config: object,
) -> AsyncIterator[Harness]:
    """generation_svc and a fake retrieval_svc on one in-process server on a free port."""
    settings = Config.from_env({}).replace(**config)
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    retrieval, cache = FakeRetrieval(), FakeCache()
    servicer = GenerationServicer(
        settings,
        backend,
        retrieval_pb2_grpc.RetrievalServiceStub(channel),
        AnswerCache(cache, 60),  # type: ignore[arg-type]
        ConversationStore(cache, 60),  # type: ignore[arg-type]
        semantic,
        floor=floor,
        feedback=feedback,
    )
    retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(retrieval, server)
    generation_pb2_grpc.add_GenerationServiceServicer_to_server(servicer, server)
    await server.start()
    try:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        yield Harness(stub, retrieval, cache, servicer, address=f"127.0.0.1:{port}")
    finally:
        await channel.close()
        await server.stop(None)
