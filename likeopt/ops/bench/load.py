"""The asyncio load generator: closed loop (N workers) or open loop (a fixed arrival rate).

One client with keep-alive connections (likeopt/ops/bench/http.py), bounded by the connection limit, the
run's duration and an optional request count. Open-loop latency is measured from the
time a request was *scheduled*, not from when it was sent, so a server that falls
behind cannot hide its queue (coordinated omission): the wait counts as latency.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO
from urllib.parse import urlsplit

import httptools

from likeopt.ops.bench.http import HttpClient, Reply
from likeopt.ops.bench.scenarios import Scenario
from likeopt.ops.bench.sse import SseParser
from likeopt.runtime.percentiles import percentile

PROGRESS_INTERVAL_S = 0.5
PROGRESS_LOG_INTERVAL_S = 5.0
CACHED_MARK = b'"cached":true'
"""How a search reply says it came from the cache (the gateway writes compact JSON)."""


@dataclass(frozen=True)
class Sample:
    """One request's outcome; times are seconds, ``start_s`` from the start of the run."""

    start_s: float
    latency_s: float
    ttft_s: float | None = None
    error: str | None = None
    cached: bool | None = None


@dataclass(frozen=True)
class LoadSettings:
    """How hard and how long to push."""

    duration_s: float
    concurrency: int
    rate: float = 0.0
    """Requests per second (open loop); 0 means closed loop with ``concurrency`` workers."""
    max_requests: int = 0
    """Stop after this many requests (0: only the duration bounds the run)."""
    timeout_s: float = 30.0


@dataclass
class Progress:
    """The progress line on stderr: totals so far and the last interval's rate and p95.

    On a terminal one line is redrawn twice a second; into a file or pipe a plain line goes
    every few seconds instead, so logs stay readable.
    """

    label: str
    duration_s: float
    samples: list[Sample]
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    _seen: int = 0
    _errors: int = 0

    @property
    def interval_s(self) -> float:
        return PROGRESS_INTERVAL_S if self.stream.isatty() else PROGRESS_LOG_INTERVAL_S

    def show(self, elapsed: float) -> None:
        fresh = self.samples[self._seen :]
        self._seen += len(fresh)
        self._errors += sum(1 for s in fresh if s.error)
        p95 = percentile([s.latency_s for s in fresh], 95)
        line = (
            f"{self.label}: {elapsed:5.1f}/{self.duration_s:.0f} s  {self._seen} requests  "
            f"{len(fresh) / self.interval_s:7.1f} req/s  p95 {'-' if p95 is None else f'{p95 * 1000:.1f}'} ms  "
            f"errors {self._errors}"
        )
        if self.stream.isatty():
            print(f"\r{line}   ", end="", file=self.stream, flush=True)
        else:
            print(line, file=self.stream, flush=True)

    def finish(self) -> None:
        if self.stream.isatty():
            print(file=self.stream, flush=True)


class LoadGenerator:
    """Sends a scenario's requests to one base URL and collects a :class:`Sample` for each."""

    def __init__(self, base_url: str, scenario: Scenario, settings: LoadSettings) -> None:
        self.url = base_url.rstrip("/") + scenario.path
        self.path = urlsplit(self.url).path
        self.scenario = scenario
        self.settings = settings
        self.samples: list[Sample] = []
        self.elapsed_s = 0.0

    async def warm_up(self, client: HttpClient) -> list[Sample]:
        """Send the scenario's warm-up queries one by one; their samples are returned, not kept."""
        return [await self._one(client, query, time.perf_counter(), 0.0) for query in self.scenario.warmup]

    async def run(self, client: HttpClient, progress: Progress | None = None) -> list[Sample]:
        """The measured run; returns every sample, in completion order."""
        started = time.perf_counter()
        deadline = started + self.settings.duration_s
        budget: Iterator[int] = (
            iter(range(self.settings.max_requests)) if self.settings.max_requests else itertools.count()
        )
        reporter = asyncio.create_task(self._report(progress, started)) if progress else None
        try:
            if self.settings.rate > 0:
                await self._open_loop(client, started, deadline, budget)
            else:
                await self._closed_loop(client, started, deadline, budget)
        finally:
            self.elapsed_s = time.perf_counter() - started
            if progress is not None and reporter is not None:
                reporter.cancel()
                progress.finish()
        return self.samples

    async def _closed_loop(self, client: HttpClient, started: float, deadline: float, budget: Iterator[int]) -> None:
        async def worker() -> None:
            for _ in budget:
                now = time.perf_counter()
                if now >= deadline:
                    return
                self.samples.append(await self._one(client, next(self.scenario.queries), now, started))

        await asyncio.gather(*(worker() for _ in range(self.settings.concurrency)))

    async def _open_loop(self, client: HttpClient, started: float, deadline: float, budget: Iterator[int]) -> None:
        interval = 1 / self.settings.rate
        in_flight: set[asyncio.Task[None]] = set()

        async def send(query: str, scheduled: float) -> None:
            self.samples.append(await self._one(client, query, scheduled, started))

        for n in budget:
            scheduled = started + n * interval
            if scheduled >= deadline:
                break
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            task = asyncio.create_task(send(next(self.scenario.queries), scheduled))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.gather(*in_flight)

    async def _one(self, client: HttpClient, query: str, sent: float, started: float) -> Sample:
        """One request; latency runs from ``sent`` (the scheduled time in open loop) to the last byte."""
        request = client.prepare("POST", self.path, json.dumps({"query": query}).encode())
        read: Callable[[Reply, float], Awaitable[Sample]] = (
            self._read_stream if self.scenario.streaming else self._read_body
        )
        remaining = self.settings.timeout_s - (time.perf_counter() - sent)
        try:
            if remaining <= 0:
                raise TimeoutError
            async with asyncio.timeout(remaining), client.request(request) as reply:
                if reply.status != 200:
                    await reply.read()
                    return Sample(sent - started, time.perf_counter() - sent, error=f"http_{reply.status}")
                outcome = await read(reply, sent)
        except TimeoutError:
            return Sample(sent - started, time.perf_counter() - sent, error="timeout")
        except OSError:  # ConnectionError included: refused, reset, closed mid-reply
            return Sample(sent - started, time.perf_counter() - sent, error="connection")
        except httptools.HttpParserError:
            return Sample(sent - started, time.perf_counter() - sent, error="client")
        return Sample(sent - started, outcome.latency_s, outcome.ttft_s, outcome.error, outcome.cached)

    @staticmethod
    async def _read_body(reply: Reply, sent: float) -> Sample:
        body = await reply.read()
        return Sample(0.0, time.perf_counter() - sent, cached=CACHED_MARK in body)

    @staticmethod
    async def _read_stream(reply: Reply, sent: float) -> Sample:
        """Read SSE until ``done`` or ``error``: time to the first ``delta``, and to the end."""
        parser = SseParser()
        ttft: float | None = None
        async for chunk in reply.iter_any():
            for event in parser.feed(chunk):
                now = time.perf_counter()
                if event.event == "delta" and ttft is None:
                    ttft = now - sent
                elif event.event == "done":
                    return Sample(0.0, now - sent, ttft, cached=bool(json.loads(event.data).get("cached")))
                elif event.event == "error":
                    return Sample(0.0, now - sent, ttft, error="stream_error")
        return Sample(0.0, time.perf_counter() - sent, ttft, error="stream_incomplete")

    async def _report(self, progress: Progress, started: float) -> None:
        while True:
            await asyncio.sleep(progress.interval_s)
            progress.show(time.perf_counter() - started)
