"""Query embeddings kept in retrieval_svc serve the reader who asked again, never another: whether a search came back
without its embedding's cost would tell a reader that someone else had just asked the same question."""

from __future__ import annotations

from pathlib import Path

import grpc

from likeopt.runtime.config import Config
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from tests.unit.test_concurrent_writes import writer as principal
from tests.unit.test_ingest_cli import JWT
from tests.unit.test_retrieval_harness import DictCache, FakeEmbedder, retrieval_port


async def test_a_query_embedding_is_kept_for_its_reader_alone(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    async with retrieval_port(tmp_path, embedder, DictCache(), Config.from_env(JWT)) as (_, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)

            async def write(doc_id: str) -> None:
                document = retrieval_pb2.Document(id=doc_id, title="Plan", text="The layoffs plan for next year.")
                await stub.UpsertDocuments(iter([document]), metadata=principal("acme", "wendy"))

            async def embeddings_for(subject: str, query: str = "layoffs plan", **options: bool) -> int:
                """How many texts the search as subject embedded."""
                before = embedder.encoded
                request = retrieval_pb2.SearchRequest(query=query, mode=retrieval_pb2.DENSE, **options)
                await stub.Search(request, metadata=principal("acme", subject))
                return embedder.encoded - before

            await write("plan")
            assert await embeddings_for("alice") == 1
            assert await embeddings_for("bob") == 1  # alice's embedding is not bob's to reuse
            await write("plan-2")  # a new index version: results are searched again, embeddings kept
            assert await embeddings_for("alice") == 0 and await embeddings_for("bob") == 0
            assert await embeddings_for("carol", return_query_embedding=True, no_cache=True) == 1
            dense = retrieval_pb2.SearchRequest(mode=retrieval_pb2.DENSE)
            batch = retrieval_pb2.SearchBatchRequest(queries=["layoffs plan", "hiring plan"], parameters=dense)
            before = embedder.encoded
            await stub.SearchBatch(batch, metadata=principal("acme", "dave"))
            assert embedder.encoded - before == 2
