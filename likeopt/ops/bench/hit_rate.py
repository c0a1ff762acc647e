"""Reading the mesh's lookup counters over HTTP, for the bench's hit rate (computed in likeopt.caching.hit_rate).

Counters are read before and after the run and only the difference is used, so the
figure covers the run and nothing else.
"""

from __future__ import annotations

import sys

import aiohttp

from likeopt.caching.hit_rate import Readings, parse_lookups


async def read_lookups(session: aiohttp.ClientSession, urls: dict[str, list[str]]) -> Readings:
    """Every source's counters, summed over its replicas; a source that cannot be read is left out (and said)."""
    readings: Readings = {}
    for source, addresses in urls.items():
        for url in addresses:
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as reply:
                    reply.raise_for_status()
                    counts = parse_lookups(await reply.text())
            except (aiohttp.ClientError, TimeoutError) as exc:
                print(f"likeopt bench: cannot read {source} metrics at {url}: {exc}", file=sys.stderr)
                continue
            total = readings.setdefault(source, {})
            for key, value in counts.items():
                total[key] = total.get(key, 0) + value
    return readings
