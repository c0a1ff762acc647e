"""One bench run from start to finish: check the target, warm up, measure, read the processes, summarise."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from likeopt.caching.hit_rate import Readings, hit_rate
from likeopt.ops.bench import probes, scenarios
from likeopt.ops.bench.floor import BracketingFloor, FloorWork
from likeopt.ops.bench.hit_rate import read_lookups
from likeopt.ops.bench.http import HttpClient
from likeopt.ops.bench.load import LoadGenerator, LoadSettings, Progress, Sample
from likeopt.ops.bench.report import build_result, floor_result

MEMORY_SAMPLE_S = 1.0
WARMUP_ROUNDS = 5
WARMUP_PAUSE_S = 0.2


class BenchError(RuntimeError):
    """The run cannot start or its target does not answer; the message says why."""


@dataclass(frozen=True)
class BenchOptions:
    scenario: str
    url: str
    data_dir: Path
    load: LoadSettings
    seed: int | None = None
    progress: bool = True
    floor: bool = False
    """Also run the same work in this process (likeopt/ops/bench/floor.py) and report mesh/floor."""
    warmup_s: float = 0.0
    """Seconds of the same load, unmeasured, before the measured run (a soak's warm-up: caches fill)."""
    token: str = ""
    """Sent as ``Authorization: Bearer`` with every request: a mesh with LIKEOPT_AUTH=jwt searches as that
    token's principal (its permission scope and caches), as a signed-in user would."""


def loopback_port(url: str) -> int:
    """The port of a loopback http:// URL; anything else is refused (a load test must never leave the machine)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise BenchError(f"--url must be http://HOST:PORT, got {url!r}")
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise BenchError(f"refusing to load-test {host}: likeopt bench only targets loopback (127.0.0.1, ::1)")
    return parts.port or 80


@dataclass
class ProcessReadings:
    """CPU seconds at the start and end of a run, and the largest RSS seen during it, per process name: replicas
    of a service (``likeopt up --replicas``) share its name, so their figures are added up under it."""

    processes: list[probes.MeshProcess]
    cpu_before: dict[int, float]
    peak_rss_mb: dict[str, float]
    start_rss_mb: dict[str, float]
    last_rss_mb: dict[str, float]
    own_cpu_before: float = 0.0

    @classmethod
    def start(cls, processes: list[probes.MeshProcess]) -> ProcessReadings:
        readings = cls(processes, {}, {}, {}, {}, probes.own_cpu_seconds())
        for process in processes:
            if (seconds := probes.cpu_seconds(process.pid)) is not None:
                readings.cpu_before[process.pid] = seconds
        readings.sample_memory()
        readings.start_rss_mb = dict(readings.last_rss_mb)
        return readings

    def sample_memory(self) -> None:
        """Each name's resident memory now (its processes' together) and the largest such sum so far."""
        now: dict[str, float] = {}
        for process in self.processes:
            if (rss := probes.rss_mb(process.pid)) is not None:
                now[process.name] = now.get(process.name, 0.0) + rss
        self.last_rss_mb.update(now)
        for name, rss in now.items():
            self.peak_rss_mb[name] = max(rss, self.peak_rss_mb.get(name, 0.0))

    def cpu_used(self) -> dict[str, float]:
        """CPU seconds each name's processes used since the start; one that ended meanwhile counts for nothing."""
        used = {process.name: 0.0 for process in self.processes}
        for process in self.processes:
            seconds, before = probes.cpu_seconds(process.pid), self.cpu_before.get(process.pid)
            if seconds is not None and before is not None:
                used[process.name] += seconds - before
        used["load_generator"] = probes.own_cpu_seconds() - self.own_cpu_before
        return used

    async def watch_memory(self) -> None:
        while True:
            await asyncio.sleep(MEMORY_SAMPLE_S)
            self.sample_memory()


async def warm_up(generator: LoadGenerator, client: HttpClient) -> None:
    """Send the warm-up queries until every reply says it came from the cache (caches are written in the
    background, so one round may not be enough), or raise when the mesh fails them."""
    for _ in range(WARMUP_ROUNDS):
        samples = await generator.warm_up(client)
        failed = sorted({s.error for s in samples if s.error})
        if failed:
            raise BenchError(f"warm-up requests to {generator.url} failed: {', '.join(failed)}")
        if all(s.cached for s in samples):
            return
        await asyncio.sleep(WARMUP_PAUSE_S)


@dataclass
class MeshRun:
    """What the measured run through the mesh saw."""

    samples: list[Sample]
    elapsed_s: float
    readings: ProcessReadings
    cpu_s: dict[str, float]
    lookups_before: Readings
    lookups_after: Readings


async def run(options: BenchOptions) -> tuple[dict[str, Any], list[Sample]]:
    """Run one scenario; returns the summary (see report.build_result) and the raw samples."""
    port = loopback_port(options.url)
    rng = random.Random(options.seed)
    run_token, floor_token = rng.getrandbits(32), rng.getrandbits(32)  # the floor's keys are its own too
    queries = scenarios.load_queries(options.data_dir)
    scenario = scenarios.build(options.scenario, queries, rng, run_token)
    processes = probes.mesh_processes(port)
    if not processes:
        print(
            f"likeopt bench: no local process listens on port {port}; memory and CPU are not reported", file=sys.stderr
        )
    floor = None
    if options.floor:
        floor_scenario = scenarios.build(options.scenario, queries, random.Random(options.seed), floor_token)
        floor = BracketingFloor(await load_floor_work(processes), floor_scenario, options.load)
    metrics = {
        "gateway": [f"{options.url}/metrics"],  # through Envoy, like the requests
        **{service: probes.metrics_urls(processes, service) for service in ("retrieval_svc", "cache_svc")},
    }
    mesh = await measure_mesh(options, scenario, processes, metrics, floor)
    hits = hit_rate(mesh.lookups_before, mesh.lookups_after, scenario.cache_namespace) if mesh.lookups_after else None
    result = build_result(
        scenario=scenario,
        settings=options.load,
        url=options.url,
        samples=mesh.samples,
        elapsed_s=mesh.elapsed_s,
        hits=hits,
        metrics_urls=metrics,
        peak_rss_mb=mesh.readings.peak_rss_mb,
        cpu_s=mesh.cpu_s,
    )
    result["rss_growth"] = memory_growth(mesh.readings.start_rss_mb, mesh.readings.last_rss_mb)
    if floor is not None:
        await floor.run_half()
        result["floor"] = floor_result(floor.samples, floor.elapsed_s, floor.cpu_s, result)
    return result, mesh.samples


async def measure_mesh(
    options: BenchOptions,
    scenario: scenarios.Scenario,
    processes: list[probes.MeshProcess],
    metrics: dict[str, list[str]],
    floor: BracketingFloor | None,
) -> MeshRun:
    """Warm the mesh up, run the floor's first half (if any), then the measured load with its readings."""
    generator = LoadGenerator(options.url, scenario, options.load)
    headers = {"Authorization": f"Bearer {options.token}"} if options.token else None
    client = HttpClient(options.url, options.load.concurrency, headers)
    async with aiohttp.ClientSession() as session:  # the metrics readings, before and after
        await warm_up(generator, client)
        if options.warmup_s > 0:
            warming = dataclasses.replace(options.load, duration_s=options.warmup_s, max_requests=0)
            await LoadGenerator(options.url, scenario, warming).run(client)  # the same stream, so the same keys
        if floor is not None:
            await floor.run_half()
        lookups_before = await read_lookups(session, metrics)
        readings = ProcessReadings.start(processes)
        watcher = asyncio.create_task(readings.watch_memory())
        progress = Progress(scenario.name, options.load.duration_s, generator.samples) if options.progress else None
        try:
            samples = await generator.run(client, progress)
        finally:
            watcher.cancel()
            client.close()
        cpu_s = readings.cpu_used()
        readings.sample_memory()
        lookups_after = await read_lookups(session, metrics)
    return MeshRun(samples, generator.elapsed_s, readings, cpu_s, lookups_before, lookups_after)


def memory_growth(start_mb: dict[str, float], end_mb: dict[str, float]) -> dict[str, dict[str, float | None]]:
    """Resident memory of each process (and all together) at the start and the end of the measured run."""
    growth: dict[str, dict[str, float | None]] = {}
    for name in [*start_mb, "total"]:
        start = sum(start_mb.values()) if name == "total" else start_mb[name]
        end = sum(end_mb.values()) if name == "total" else end_mb.get(name, start)
        percent = round(100 * (end - start) / start, 1) if start else None
        growth[name] = {"start_mb": round(start, 1), "end_mb": round(end, 1), "percent": percent}
    return growth


async def load_floor_work(processes: list[probes.MeshProcess]) -> FloorWork:
    """The floor's work, loaded from the settings of this mesh's own services."""
    by_name = {p.name: p.pid for p in processes}
    if "retrieval_svc" not in by_name or "generation_svc" not in by_name:
        raise BenchError("the floor needs the mesh's retrieval_svc and generation_svc processes on this machine")
    retrieval = by_name["retrieval_svc"]
    return await asyncio.to_thread(
        FloorWork.load,
        probes.environment(retrieval),
        probes.working_directory(retrieval),
        probes.environment(by_name["generation_svc"]),
    )
