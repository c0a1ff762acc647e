"""Time to first token and tokens per second of the local backend, and what generation_svc adds.

1. Direct: LocalBackend.stream in process on SciFact questions with their top 5 BM25
   passages (of which its prompt keeps short excerpts of three), at concurrency 1 and 4
   (at 4, answers queue fairly for the one model, so time to first token includes the
   wait; tokens/s is the total over the wall time).
2. Mesh overhead: the same backend object served by GenerationServicer on a loopback
   grpc.aio server whose retrieval_svc is a stub answering from memory. Each round asks
   one new question directly and one through Answer (order alternating), and the
   overhead is Answer's first delta at the client minus the direct first token. The
   same is repeated with the extractive backend, whose own time is negligible, which
   isolates the mesh's share from the model's run-to-run noise.
   Retrieval's own time is measured by the retrieval benchmarks; cache_svc is
   disabled here (its calls count as misses at once).

Usage, from the repository root:
    python -m benchmarks.generation [--answers 8] [--pairs 30] [--extractive-pairs 200] [--max-tokens N]
        [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import grpc

from benchmarks.citations import DATA, load
from generation_svc.answer_cache import AnswerCache
from generation_svc.backends import Backend, Passage, Usage
from generation_svc.conversations import ConversationStore
from generation_svc.extractive import ExtractiveBackend
from generation_svc.local import LocalBackend, resolve_model_path
from generation_svc.service import GenerationServicer
from likeopt.caching.cache_client import CacheClient
from likeopt.runtime.config import LOCAL_MAX_TOKENS, Config
from likeopt.runtime.percentiles import percentile
from likeopt.runtime.text import tokenize
from likeopt.v1 import generation_pb2, generation_pb2_grpc, retrieval_pb2, retrieval_pb2_grpc
from retrieval_svc.bm25 import BM25Index


def summary(values: list[float], unit: str = "ms") -> str:
    """p50 and p95 as every other figure in the project computes them (likeopt.runtime.percentiles)."""
    p50, p95 = percentile(values, 50) or 0.0, percentile(values, 95) or 0.0
    return f"p50 {p50:.1f} {unit}, p95 {p95:.1f} {unit} (n={len(values)})"


class StubRetrieval(retrieval_pb2_grpc.RetrievalServiceServicer):
    """Answers every search with the hits set for the next question."""

    def __init__(self) -> None:
        self.hits: list[retrieval_pb2.SearchHit] = []

    async def Search(self, request: retrieval_pb2.SearchRequest, context: object) -> retrieval_pb2.SearchResponse:
        return retrieval_pb2.SearchResponse(hits=self.hits, index_version=1)


async def direct(backend: Backend, question: str, passages: list[Passage]) -> tuple[float, float, int]:
    """(first token ms, total s, tokens) of one answer straight from the backend."""
    started = time.perf_counter()
    first = 0.0
    usage = Usage()
    async for _ in backend.stream(question, passages, [], usage):
        first = first or (time.perf_counter() - started) * 1000
    return first, time.perf_counter() - started, usage.completion_tokens


async def through_grpc(stub: generation_pb2_grpc.GenerationServiceStub, question: str) -> float:
    """Milliseconds from sending Answer to the first delta, seen by the client."""
    started = time.perf_counter()
    call = stub.Answer(generation_pb2.AnswerRequest(query=question, top_k=5), timeout=600)
    first = 0.0
    async for event in call:
        if event.HasField("delta") and not first:
            first = (time.perf_counter() - started) * 1000
        if event.HasField("error"):
            raise RuntimeError(event.error.message)
    return first


async def concurrency(backend: LocalBackend, work: list[tuple[str, list[Passage]]], level: int) -> None:
    started = time.perf_counter()
    results: list[tuple[float, float, int]] = []
    for start in range(0, len(work), level):
        batch = work[start : start + level]
        results += await asyncio.gather(*(direct(backend, q, p) for q, p in batch))
    wall = time.perf_counter() - started
    firsts = [r[0] for r in results]
    wholes = [r[1] for r in results]
    tokens = sum(r[2] for r in results)
    per_answer = [r[2] / max(r[1] - r[0] / 1000, 1e-9) for r in results if r[2] > 1]
    print(
        f"concurrency {level}: time to first token {summary(firsts)}; whole answer {summary(wholes, 's')}; "
        f"decode {statistics.median(per_answer):.1f} tokens/s per answer (median); "
        f"aggregate {tokens / wall:.1f} tokens/s ({tokens} tokens in {wall:.1f} s)"
    )


async def overhead(backend: Backend, work: list[tuple[str, list[Passage]]]) -> None:
    config = Config.from_env({})
    stub_retrieval = StubRetrieval()
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    no_cache = CacheClient("", config.cache_timeout_s, enabled=False)
    servicer = GenerationServicer(
        config,
        backend,
        retrieval_pb2_grpc.RetrievalServiceStub(channel),
        AnswerCache(no_cache, 60),
        ConversationStore(no_cache, 60),
    )
    retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(stub_retrieval, server)
    generation_pb2_grpc.add_GenerationServiceServicer_to_server(servicer, server)
    await server.start()
    stub = generation_pb2_grpc.GenerationServiceStub(channel)
    own, mesh, added = [], [], []
    for n, (question, passages) in enumerate(work):
        stub_retrieval.hits = [
            retrieval_pb2.SearchHit(doc_id=p.doc_id, chunk_id=p.chunk_id, title=p.title, text=p.text) for p in passages
        ]
        # A warm-up leaves the shared prefix (rules and passages) in llama.cpp's cache; the two timed
        # runs then differ from it only in their own wording of the question, so both reuse it equally.
        await direct(backend, f"Warm-up {n}: {question}", passages)
        first_q, second_q = f"{question}", f"Question {n}: {question}"
        if n % 2:
            mesh_ms = await through_grpc(stub, first_q)
            own_ms = (await direct(backend, second_q, passages))[0]
        else:
            own_ms = (await direct(backend, first_q, passages))[0]
            mesh_ms = await through_grpc(stub, second_q)
        own.append(own_ms)
        mesh.append(mesh_ms)
        added.append(mesh_ms - own_ms)
    await channel.close()
    await server.stop(None)
    print(f"{backend.name}: backend's own first token: {summary(own)}")
    print(f"{backend.name}: first delta through generation_svc (gRPC Answer): {summary(mesh)}")
    print(f"{backend.name}: added by the mesh: {summary(added)}; mean {statistics.fmean(added):.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=8, help="answers per concurrency level")
    parser.add_argument("--pairs", type=int, default=30, help="direct/mesh pairs for the overhead")
    parser.add_argument("--extractive-pairs", type=int, default=200, help="direct/mesh pairs with extractive")
    parser.add_argument("--max-tokens", type=int, default=LOCAL_MAX_TOKENS)
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: the backend's default)")
    args = parser.parse_args()
    corpus, queries, _ = load(DATA)
    ids = list(corpus)
    index = BM25Index()
    for key, doc_id in enumerate(ids):
        index.add(key, tokenize(f"{corpus[doc_id].get('title', '')} {corpus[doc_id]['text']}"))
    work = []
    for question in list(queries.values())[: max(2 * args.answers, args.pairs, args.extractive_pairs)]:
        hits = index.search(tokenize(question), 5)
        work.append(
            (
                question,
                [
                    Passage(n, ids[k], ids[k], corpus[ids[k]].get("title", ""), corpus[ids[k]]["text"])
                    for n, (k, _) in enumerate(hits, start=1)
                ],
            )
        )
    backend = LocalBackend(resolve_model_path(""), max_tokens=args.max_tokens, queue_limit=8, threads=args.threads)
    print(f"model {backend.model_path.name}, {backend.threads} thread(s), max {args.max_tokens} tokens, top 5")
    # Different questions at each level, so no answer reuses another's prompt from llama.cpp's cache.
    await concurrency(backend, work[: args.answers], 1)
    await concurrency(backend, work[args.answers : 2 * args.answers], 4)
    # Overhead pairs: one short passage each, so the model's own time (and its noise) stays small.
    short = [(q, [Passage(1, p[0].doc_id, p[0].chunk_id, p[0].title, p[0].text[:300])]) for q, p in work]
    await overhead(backend, short[: args.pairs])
    # The extractive backend takes no CPU to speak of, so this isolates what the mesh itself adds.
    await overhead(ExtractiveBackend(), work[: args.extractive_pairs])


if __name__ == "__main__":
    asyncio.run(main())
