"""The web dashboard's figures: the gateway's own traffic plus each service's memory, CPU and cache stats.

Memory and CPU are read from each service's Prometheus endpoint (the standard
process collector), so the dashboard shows what a Prometheus server would.
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
from likeopt.v1 import cache_pb2

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
        if previous is None or now <= previous[0]:
            return None
        return 100 * (cpu_seconds - previous[1]) / (now - previous[0])


def milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class Dashboard:
    """Collects one dashboard snapshot on request."""

    def __init__(self, upstreams: Upstreams, metrics_urls: dict[str, str]) -> None:
        self.upstreams = upstreams
        self.metrics_urls = metrics_urls
        self.cpu = CpuMeter()
        self.http = httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_S)

    async def snapshot(self) -> dict[str, Any]:
        services, cache = await asyncio.gather(self._services(), self._cache())
        return {
            "services": services,
            "requests": {
                "rps": round(API_LATENCY.rate(), 3),
                "p50_ms": milliseconds(API_LATENCY.percentile(50)),
                "p95_ms": milliseconds(API_LATENCY.percentile(95)),
            },
            "chat": {
                "ttft_p50_ms": milliseconds(CHAT_FIRST_TOKEN.percentile(50)),
                "ttft_p95_ms": milliseconds(CHAT_FIRST_TOKEN.percentile(95)),
            },
            "cache": cache,
        }

    async def _services(self) -> dict[str, dict[str, float | None]]:
        names = list(self.metrics_urls)
        texts = await asyncio.gather(*(self._scrape(self.metrics_urls[n]) for n in names))
        readings = {name: process_figures(text) for name, text in zip(names, texts, strict=True) if text}
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

    async def _cache(self) -> dict[str, Any]:
        try:
            stats = await self.upstreams.cache.Stats(cache_pb2.StatsRequest(), timeout=SCRAPE_TIMEOUT_S)
        except grpc.aio.AioRpcError:
            return {}
        return {
            "hit_ratio": stats.hit_ratio,
            "hits": stats.hits,
            "misses": stats.misses,
            "l2_healthy": stats.l2_healthy,
        }

    async def close(self) -> None:
        await self.http.aclose()
