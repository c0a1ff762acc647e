"""The web dashboard's figures: the gateway's own traffic plus each service's memory, CPU and cache stats.

Memory, CPU and the cache lookup counters are read from each service's Prometheus
endpoint (one scrape each per snapshot), so the dashboard shows what a Prometheus
server would. The hit rate counts all four caches on a search's path, as the bench
does (likeopt.caching.hit_rate); L2's health is cache_svc's, which re-checks Redis on its own
schedule rather than waiting for the next request to find out.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.process_collector import PROCESS_COLLECTOR

from gateway.observe import API_LATENCY, CHAT_FIRST_TOKEN
from gateway.upstreams import Upstreams
from likeopt.caching.hit_rate import Lookups, Readings, hit_rate, lookups_of, parse_lookups
from likeopt.caching.near_cache import LOOKUPS as NEAR_CACHE_LOOKUPS
from likeopt.v1 import cache_pb2, retrieval_pb2

SCRAPE_TIMEOUT_S = 1.0


def process_figures(text: str) -> dict[str, float]:
    """Resident memory (bytes) and CPU seconds from a Prometheus exposition."""
    figures: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name in ("process_resident_memory_bytes", "process_cpu_seconds"):
            figures[family.name] = family.samples[0].value
    return figures


@dataclass
class CpuMeter:
    """CPU percent of a process from successive readings of its CPU seconds."""

    last: dict[str, tuple[float, float]] = field(default_factory=dict)

    def percent(self, name: str, cpu_seconds: float) -> float | None:
        now = time.monotonic()
        previous = self.last.get(name)
        self.last[name] = (now, cpu_seconds)
        if previous is None or now <= previous[0] or cpu_seconds < previous[1]:
            return None  # the first reading, or the process restarted and its counter began again
        return 100 * (cpu_seconds - previous[1]) / (now - previous[0])


def search_hit_rate(texts: dict[str, str], gateway: Lookups) -> dict[str, Any]:
    """Searches answered by any of the four caches since the processes started, and by which.

    gateway: this process's own near-cache counters, read in process; the other services'
    come from their scraped expositions (a service that could not be read counts no hits).
    """
    readings: Readings = {name: parse_lookups(text) for name, text in texts.items() if text}
    readings["gateway"] = gateway
    searches = hit_rate({}, readings, "search")
    return {"hit_ratio": searches.rate, "hits": searches.hits, "misses": searches.misses, "by_layer": searches.by_layer}


def milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class Dashboard:
    """Collects one dashboard snapshot on request."""

    def __init__(self, upstreams: Upstreams, metrics_urls: dict[str, str]) -> None:
        self.upstreams = upstreams
        self.metrics_urls = metrics_urls
        self.cpu = CpuMeter()
        self.http = httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_S)

    async def snapshot(self, caller: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
        """The figures; the index's counts are of what caller (gRPC metadata naming the principal) may read."""
        texts, l2, index = await asyncio.gather(self._scrape_all(), self._l2_state(), self._index(caller))
        return {
            "index": index,
            "services": self._services(texts),
            "requests": {
                "rps": round(API_LATENCY.rate(), 3),
                "p50_ms": milliseconds(API_LATENCY.percentile(50)),
                "p95_ms": milliseconds(API_LATENCY.percentile(95)),
            },
            "chat": {
                "ttft_p50_ms": milliseconds(CHAT_FIRST_TOKEN.percentile(50)),
                "ttft_p95_ms": milliseconds(CHAT_FIRST_TOKEN.percentile(95)),
            },
            "cache": {
                **search_hit_rate(texts, lookups_of(NEAR_CACHE_LOOKUPS.collect())),
                "l2_healthy": None if l2 is None else l2.l2_healthy,
                "l2_configured": None if l2 is None else l2.l2_configured,
            },
        }

    async def _scrape_all(self) -> dict[str, str]:
        """Each service's exposition, "" for one that could not be read."""
        names = list(self.metrics_urls)
        texts = await asyncio.gather(*(self._scrape(self.metrics_urls[n]) for n in names))
        return dict(zip(names, texts, strict=True))

    def _services(self, texts: dict[str, str]) -> dict[str, dict[str, float | None]]:
        readings = {name: process_figures(text) for name, text in texts.items() if text}
        readings["gateway"] = {m.name: m.samples[0].value for m in PROCESS_COLLECTOR.collect()}
        services: dict[str, dict[str, float | None]] = {}
        for name, figures in readings.items():
            rss = figures.get("process_resident_memory_bytes")
            cpu = figures.get("process_cpu_seconds")
            services[name] = {
                "rss_mb": None if rss is None else round(rss / 2**20, 1),
                "cpu_percent": None if cpu is None else self.cpu.percent(name, cpu),
            }
        return services

    async def _scrape(self, url: str) -> str:
        try:
            reply = await self.http.get(url)
        except httpx.HTTPError:
            return ""
        return reply.text if reply.status_code == 200 else ""

    async def _l2_state(self) -> cache_pb2.StatsResponse | None:
        """cache_svc's figures, whose l2_* say whether it has a Redis and whether Redis answered its latest probe
        or call; None when cache_svc does not answer."""
        try:
            return await self.upstreams.cache.Stats(cache_pb2.StatsRequest(), timeout=SCRAPE_TIMEOUT_S)
        except grpc.aio.AioRpcError:
            return None

    async def _index(self, caller: tuple[tuple[str, str], ...]) -> dict[str, int] | None:
        """Documents and chunks the caller may read (GetIndexStatus answers per principal); None when
        retrieval_svc does not answer."""
        try:
            status = await self.upstreams.retrieval_writer.GetIndexStatus(
                retrieval_pb2.GetIndexStatusRequest(), timeout=SCRAPE_TIMEOUT_S, metadata=caller
            )
        except grpc.aio.AioRpcError:
            return None
        return {"documents": status.documents, "chunks": status.chunks}

    async def close(self) -> None:
        await self.http.aclose()
