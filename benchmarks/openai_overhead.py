"""What the OpenAI-compatible layer adds: time to first token through ``/v1/chat/completions`` against
``/api/v1/chat``, the same questions, through Envoy of a running mesh.

Both endpoints make the same Answer call to generation_svc; the difference is the layer (FastAPI
request validation, messages to question, chunk rendering). Each round asks every question through
both, alternating which goes first, on one keep-alive connection, at concurrency 1:

- ``cached`` (default): every question is answered once beforehand, so both replay it from the answer
  cache: the model and retrieval are out of the way and the layer's own cost is what differs;
- ``--fresh``: every request carries a token of its own, so each answer is computed (retrieval and the
  configured backend).

The first token is the first SSE line with answer text: ``event: delta`` for /api/v1/chat, a chunk with
``"delta":{"content":"…"}`` for /v1 (its first, role-only chunk does not count). Both are found by a
substring test, so the client spends the same on either.

Usage, from the repository root, with a mesh running (``likeopt up``, same LIKEOPT_* settings):
    python -m benchmarks.openai_overhead [--url URL] [--data DIR] [--questions 50] [--rounds 4] [--fresh] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

import httpx

from likeopt.runtime.addresses import host_port, reachable_host
from likeopt.runtime.config import Config
from likeopt.runtime.percentiles import percentile

DATA = Path("/work/shared/data/scifact")
OPENAI_DELTA = b'"delta":{"content":"'
"""Only text chunks start their delta with content (the first chunk starts with the role)."""


def questions(data: Path, count: int) -> list[str]:
    """The first ``count`` queries of a BEIR folder."""
    with (data / "queries.jsonl").open(encoding="utf-8") as lines:
        texts = [json.loads(line)["text"] for line in lines if line.strip()]
    return texts[:count]


async def first_token_s(client: httpx.AsyncClient, path: str, body: dict, marker: bytes) -> float:
    """Seconds from sending the request to the first line holding ``marker``; the rest is read too
    (as a real client would), outside the measurement."""
    started = time.perf_counter()
    first = None
    async with client.stream("POST", path, json=body) as reply:
        reply.raise_for_status()
        async for line in reply.aiter_lines():
            if first is None and marker in line.encode():
                first = time.perf_counter() - started
    if first is None:
        raise RuntimeError(f"{path}: no answer text for {body}")
    return first


def asked(question: str, fresh: bool) -> str:
    """The question as sent: with a token of its own when every answer must be computed."""
    return f"{question} ({uuid.uuid4().hex[:8]})" if fresh else question


async def ask_both(client: httpx.AsyncClient, question: str, openai_first: bool, fresh: bool) -> tuple[float, float]:
    """(REST, OpenAI) seconds to first token for one question, in the given order."""
    rest = {"query": asked(question, fresh)}
    message = {"role": "user", "content": asked(question, fresh)}
    openai = {"model": "like-opt", "messages": [message], "stream": True}
    asks = [
        ("rest", lambda: first_token_s(client, "/api/v1/chat", rest, b"event: delta")),
        ("openai", lambda: first_token_s(client, "/v1/chat/completions", openai, OPENAI_DELTA)),
    ]
    if openai_first:
        asks.reverse()
    took = {name: await ask() for name, ask in asks}
    return took["rest"], took["openai"]


def summary(rest: list[float], openai: list[float]) -> dict[str, float]:
    """Percentiles in milliseconds, of each endpoint and of the paired differences (OpenAI minus REST)."""
    paired = [o - r for r, o in zip(rest, openai, strict=True)]
    figures: dict[str, float] = {"pairs": len(paired)}
    for name, values in (("rest", rest), ("openai", openai), ("paired_added", paired)):
        for q in (50, 95):
            figures[f"{name}_p{q}_ms"] = round((percentile(values, q) or 0.0) * 1000, 2)
    for q in (50, 95):
        figures[f"added_p{q}_ms"] = round(figures[f"openai_p{q}_ms"] - figures[f"rest_p{q}_ms"], 2)
    return figures


async def run(url: str, texts: list[str], rounds: int, fresh: bool, key: str) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    rest: list[float] = []
    openai: list[float] = []
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        if not fresh:  # every answer into the cache first, untimed
            for question in texts:
                await first_token_s(client, "/api/v1/chat", {"query": question}, b"event: delta")
        for n in range(rounds):
            for i, question in enumerate(texts):
                r, o = await ask_both(client, question, openai_first=(n + i) % 2 == 1, fresh=fresh)
                rest.append(r)
                openai.append(o)
    return summary(rest, openai)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="Envoy's URL (default: LIKEOPT_HOST, or loopback, at LIKEOPT_ENVOY_PORT)")
    parser.add_argument("--data", type=Path, default=DATA, help="BEIR folder whose queries.jsonl to ask")
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--fresh", action="store_true", help="compute every answer (no answer-cache hits)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    config = Config.from_env()
    url = args.url or f"http://{host_port(reachable_host(config.host), config.envoy_port)}"
    key = os.environ.get("LIKEOPT_API_KEY", "")
    figures = asyncio.run(run(url, questions(args.data, args.questions), args.rounds, args.fresh, key))
    figures["mode"] = "fresh" if args.fresh else "cached"  # type: ignore[assignment]
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:>22}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
