"""Shared fakes for the test_retrieval_* modules (holds no tests): a model stand-in, a cache, an in-process server.

Texts sharing words get similar vectors (a bag of per-word random unit vectors),
which is all the dense index and fusion need to be exercised; it counts its calls.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import numpy as np

from likeopt.runtime.config import Config
from likeopt.v1 import retrieval_pb2_grpc
from retrieval_svc.engine import RetrievalEngine
from retrieval_svc.service import RetrievalServicer


class FakeEmbedder:
    """Embedder's interface: model_path, model_name, dim, max_tokens, encode, encode_query, warm_up, count_tokens."""

    model_path = model_name = "fake-bag-of-words"

    def __init__(self, dim: int = 32, max_tokens: int = 256) -> None:
        self.dim = dim
        self.max_tokens = max_tokens
        self.encoded = 0
        """Texts embedded so far."""

    def encode(self, texts: list[str]) -> np.ndarray:
        self.encoded += len(texts)
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                vectors[i] += np.random.default_rng(zlib.crc32(word.encode())).standard_normal(self.dim)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def warm_up(self) -> None:
        self.encode_query("warm-up")

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2


class GatedEmbedder(FakeEmbedder):
    """A FakeEmbedder whose encode waits for gate: lets a test hold a computation while requests pile up."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()
        """Set once an encode has reached the gate."""

    def encode(self, texts: list[str]) -> np.ndarray:
        self.waiting.set()
        if not self.gate.wait(timeout=30):
            raise TimeoutError("the test never opened the gate")
        return super().encode(texts)


class DictCache:
    """CacheClient's interface over a dict, recording which namespaces were read."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], bytes] = {}
        self.reads: list[str] = []

    async def get(self, namespace: str, key: str) -> bytes | None:
        self.reads.append(namespace)
        return self.values.get((namespace, key))

    def set_later(self, namespace: str, key: str, value: bytes, ttl_s: int = 0) -> None:
        self.values[(namespace, key)] = value

    async def close(self) -> None:
        pass


def fake_engine(data_dir: Path, embedder: FakeEmbedder, **options: int) -> RetrievalEngine:
    """A RetrievalEngine over the fake model, in small chunks, not loaded yet."""
    return RetrievalEngine(data_dir, embedder, chunk_tokens=32, chunk_overlap=0, **options)  # type: ignore[arg-type]


@asynccontextmanager
async def retrieval_port(
    data_dir: Path,
    embedder: FakeEmbedder,
    cache: DictCache,
    config: Config | None = None,
    port: int = 0,
    loaded: bool = True,
    **options: int,
) -> AsyncIterator[tuple[RetrievalServicer, int]]:
    """A real grpc.aio server on a loopback port (yielded: port, else a free one) serving RetrievalServicer over a
    fake-model engine, with config's settings (the defaults when None). Not loaded, its index is still loading, as
    at every start, until the caller serves (and closes) an engine of its own."""
    servicer = RetrievalServicer(config or Config.from_env({}), cache)  # type: ignore[arg-type]
    engine = fake_engine(data_dir, embedder, **options) if loaded else None
    if engine is not None:
        engine.load()
        servicer.serve(engine)
    server = grpc.aio.server()
    retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield servicer, port
    finally:
        await server.stop(0)
        if engine is not None:
            engine.store.close()


@asynccontextmanager
async def retrieval_server(
    data_dir: Path, embedder: FakeEmbedder, cache: DictCache, **options: int
) -> AsyncIterator[tuple[RetrievalServicer, retrieval_pb2_grpc.RetrievalServiceStub]]:
    """retrieval_port's server with a client of it."""
    async with retrieval_port(data_dir, embedder, cache, **options) as (servicer, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield servicer, retrieval_pb2_grpc.RetrievalServiceStub(channel)
