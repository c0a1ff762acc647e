"""The run's summary as a dict (the ``--json`` object), as text, and as a self-contained HTML page.

The HTML report draws its charts as inline SVG: no script, no external asset, so it
opens anywhere and can be attached to an issue as one file.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from likeopt.caching.hit_rate import HitRate
from likeopt.ops.bench.load import LoadSettings, Sample
from likeopt.ops.bench.scenarios import Scenario
from likeopt.ops.bench.stats import histogram, summary_ms
from likeopt.runtime.percentiles import percentile

MAX_POINTS = 4000
"""Most dots in the latency-over-time chart (evenly thinned beyond it)."""


def build_result(
    *,
    scenario: Scenario,
    settings: LoadSettings,
    url: str,
    samples: Sequence[Sample],
    elapsed_s: float,
    hits: HitRate | None,
    metrics_urls: dict[str, list[str]],
    peak_rss_mb: dict[str, float],
    cpu_s: dict[str, float],
) -> dict[str, Any]:
    """The figures of one run. Throughput, latency and CPU per request count the requests that succeeded only: a
    refused connection is answered in microseconds, and counting it would report a mesh that is down as fast.
    ``requests`` is every request sent; ``errors`` and ``error_share`` say how many of them failed."""
    ok = [s for s in samples if s.error is None]
    result: dict[str, Any] = {
        "scenario": scenario.name,
        "how": scenario.how,
        "url": url,
        "load": "open" if settings.rate > 0 else "closed",
        "concurrency": settings.concurrency,
        "rate": settings.rate or None,
        "duration_s": round(elapsed_s, 3),
        "requests": len(samples),
        "succeeded": len(ok),
        "rps": round(len(ok) / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "latency_ms": summary_ms([s.latency_s for s in ok]),
        "errors": dict(Counter(s.error for s in samples if s.error)),
        "error_share": round(1 - len(ok) / len(samples), 4) if samples else None,
    }
    if scenario.streaming:
        result["ttft_ms"] = summary_ms([s.ttft_s for s in ok if s.ttft_s is not None], quantiles=(50, 95))
    cached = [s.latency_s for s in ok if s.cached]
    uncached = [s.latency_s for s in ok if s.cached is False]
    result["cache_hit_rate"] = None if hits is None or hits.rate is None else round(hits.rate, 4)
    result["cache"] = {
        "namespace": scenario.cache_namespace,
        "hits": None if hits is None else hits.hits,
        "lookups": None if hits is None else hits.lookups,
        "hits_by_layer": None if hits is None else hits.by_layer,
        "sources": metrics_urls,
        "replies_marked_cached": round(len(cached) / len(ok), 4) if ok else None,
        "latency_ms_cached": summary_ms(cached, quantiles=(50, 95)),
        "latency_ms_uncached": summary_ms(uncached, quantiles=(50, 95)),
        "uncached_over_cached_p50": _ratio(percentile(uncached, 50), percentile(cached, 50)),
    }
    result["rss_mb"] = {name: round(mb, 1) for name, mb in peak_rss_mb.items()}
    result["rss_mb"]["total"] = round(sum(peak_rss_mb.values()), 1)
    result["cpu_ms_per_request"] = {
        name: round(1000 * seconds / len(ok), 3) if ok else None for name, seconds in cpu_s.items()
    }
    result["cpu_ms_outside_retrieval"] = outside_retrieval(result["cpu_ms_per_request"])
    result["cores_busy"] = {
        name: round(seconds / elapsed_s, 2) if elapsed_s > 0 else None for name, seconds in cpu_s.items()
    }
    return result


MAX_ERROR_SHARE = 0.01
"""More failed requests than this share, and the run measured a failing mesh: ``likeopt bench`` exits 1."""


def run_failure(result: dict[str, Any]) -> str | None:
    """Why a run's figures do not measure a working mesh (nothing succeeded, or more than MAX_ERROR_SHARE of
    the requests failed), or None when they do."""
    share, failed = result["error_share"], result["requests"] - result["succeeded"]
    if share is None:
        return "no request finished within the run"
    if share <= MAX_ERROR_SHARE:
        return None
    kinds = _pairs(result["errors"])
    if not result["succeeded"]:
        return f"all {failed} requests to {result['url']} failed ({kinds}); is the mesh up?"
    return f"{failed} of {result['requests']} requests failed ({share:.1%}: {kinds}), more than {MAX_ERROR_SHARE:.0%}"


def outside_retrieval(cpu_ms: dict[str, float | None]) -> float | None:
    """CPU-ms per request of everything but retrieval_svc (load generator included): what the mesh adds
    around a search's own work, the figure issue 20's target is set on."""
    others = _total({name: ms for name, ms in cpu_ms.items() if name != "retrieval_svc"})
    return None if "retrieval_svc" not in cpu_ms or others is None else round(others, 3)


def floor_result(samples: Sequence[Sample], elapsed_s: float, cpu_s: float, mesh: dict[str, Any]) -> dict[str, Any]:
    """The floor's figures (likeopt/ops/bench/floor.py) and the mesh's over them: latency quantile by quantile,
    and CPU per request and cores busy, whose quotient is the throughput ratio: they tell whether the mesh
    loses its throughput to more work per request or to cores left idle."""
    ok = [s for s in samples if s.error is None]
    floor: dict[str, Any] = {
        "requests": len(samples),
        "rps": round(len(ok) / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "latency_ms": summary_ms([s.latency_s for s in ok]),
        "cpu_ms_per_request": round(1000 * cpu_s / len(ok), 3) if ok else None,
        "cores_busy": round(cpu_s / elapsed_s, 2) if elapsed_s > 0 else None,
    }
    pairs = [("latency_ms", q) for q in ("p50", "p95", "p99")]
    if "ttft_ms" in mesh:
        floor["ttft_ms"] = summary_ms([s.ttft_s for s in ok if s.ttft_s is not None], quantiles=(50, 95))
        pairs += [("ttft_ms", q) for q in ("p50", "p95")]
    floor["mesh_over_floor"] = {
        "throughput": _ratio(mesh["rps"], floor["rps"]),
        **{f"{kind.removesuffix('_ms')}_{q}": _ratio(mesh[kind][q], floor[kind][q]) for kind, q in pairs},
        "cpu_per_request": _ratio(_total(mesh["cpu_ms_per_request"]), floor["cpu_ms_per_request"]),
        "cores_busy": _ratio(_total(mesh["cores_busy"]), floor["cores_busy"]),
    }
    return floor


def _total(figures: dict[str, float | None]) -> float | None:
    """The sum over the mesh's processes, when every one was read."""
    values = [value for value in figures.values() if value is not None]
    return None if len(values) < len(figures) else sum(values)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 2) if numerator is not None and denominator else None


def format_text(result: dict[str, Any]) -> str:
    """A few lines for a terminal."""
    latency = result["latency_ms"]
    lines = [
        f"scenario {result['scenario']}: {result['how']}",
        f"  load        {result['load']} loop, concurrency {result['concurrency']}"
        + (f", {result['rate']} req/s offered" if result["rate"] else "")
        + f", {result['duration_s']} s",
        f"  requests    {result['requests']} sent, {result['succeeded']} succeeded ({result['rps']} req/s)",
        f"  latency ms  p50 {latency['p50']}  p95 {latency['p95']}  p99 {latency['p99']}  max {latency['max']}",
        f"  errors      {_pairs(result['errors']) or 'none'}",
    ]
    if "ttft_ms" in result:
        lines.append(f"  first token ms  p50 {result['ttft_ms']['p50']}  p95 {result['ttft_ms']['p95']}")
    cache = result["cache"]
    rate = result["cache_hit_rate"]
    lines.append(
        f"  cache       hit rate {'n/a' if rate is None else f'{rate:.1%}'} "
        f"({cache['hits']}/{cache['lookups']} '{cache['namespace']}' lookups; hits by cache: "
        f"{_pairs(cache['hits_by_layer'] or {}) or 'n/a'}); "
        f"replies marked cached {cache['replies_marked_cached']}"
    )
    cached, uncached = cache["latency_ms_cached"], cache["latency_ms_uncached"]
    if cached["p50"] is not None and uncached["p50"] is not None:
        lines.append(
            f"  cached vs uncached replies  p50 {cached['p50']} vs {uncached['p50']} ms "
            f"(x{cache['uncached_over_cached_p50']}), p95 {cached['p95']} vs {uncached['p95']} ms"
        )
    lines.append(f"  memory MB   {_pairs(result['rss_mb'])}")
    if "rss_growth" in result:
        growth = {name: f"{g['percent']:+}%" for name, g in result["rss_growth"].items() if g["percent"] is not None}
        lines.append(f"  memory growth during the run  {_pairs(growth)}")
    lines.append(f"  CPU ms/req  {_pairs(result['cpu_ms_per_request'])}")
    if result.get("cpu_ms_outside_retrieval") is not None:
        lines.append(f"  CPU ms/req outside retrieval_svc  {result['cpu_ms_outside_retrieval']}")
    if "floor" in result:
        floor = result["floor"]
        lines.append(
            f"  floor       in process: {floor['rps']} req/s, p50 {floor['latency_ms']['p50']} "
            f"p95 {floor['latency_ms']['p95']} ms, CPU ms/req {floor['cpu_ms_per_request']}, "
            f"cores busy {floor['cores_busy']}; mesh/floor {_pairs(floor['mesh_over_floor'])}"
        )
    lines.append(f"  cores busy  {_pairs(result['cores_busy'])}")
    return "\n".join(lines)


def _pairs(figures: dict[str, Any]) -> str:
    return "  ".join(f"{name} {value}" for name, value in figures.items())


def write_outputs(out_dir: Path, result: dict[str, Any], samples: Sequence[Sample]) -> tuple[Path, Path]:
    """``<scenario>.json`` and ``<scenario>.html`` in out_dir; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{result['scenario']}.json"
    html_path = out_dir / f"{result['scenario']}.html"
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    html_path.write_text(html_report(result, samples), encoding="utf-8")
    return json_path, html_path


def html_report(result: dict[str, Any], samples: Sequence[Sample]) -> str:
    """A standalone page: the text summary, latency over time and the latency histogram."""
    title = f"likeopt bench: {result['scenario']}"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}"
        "pre{background:#f4f4f4;padding:1em;white-space:pre-wrap}svg{display:block;margin:1em 0}"
        "text{font:11px system-ui,sans-serif}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><pre>{html.escape(format_text(result))}</pre>"
        f"<h2>Latency over time</h2>{latency_over_time_svg(samples)}"
        f"<h2>Latency histogram</h2>{histogram_svg(samples)}"
        f"<h2>All figures</h2><pre>{html.escape(json.dumps(result, indent=2))}</pre>"
        "</body></html>\n"
    )


WIDTH, HEIGHT, MARGIN = 720, 260, 48


def _frame(x_label: str, y_label: str, x_max: float, y_max: float, body: str) -> str:
    """Axes with end labels around a chart body drawn in the plot area."""
    right, bottom = WIDTH - 10, HEIGHT - 30
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' role='img'>"
        f"<line x1='{MARGIN}' y1='10' x2='{MARGIN}' y2='{bottom}' stroke='#444'/>"
        f"<line x1='{MARGIN}' y1='{bottom}' x2='{right}' y2='{bottom}' stroke='#444'/>"
        f"<text x='{MARGIN - 4}' y='14' text-anchor='end'>{y_max:.4g}</text>"
        f"<text x='{MARGIN - 4}' y='{bottom}' text-anchor='end'>0</text>"
        f"<text x='{right}' y='{HEIGHT - 12}' text-anchor='end'>{x_max:.4g}</text>"
        f"<text x='{(MARGIN + right) / 2}' y='{HEIGHT - 4}' text-anchor='middle'>{html.escape(x_label)}</text>"
        f"<text x='12' y='{(10 + bottom) / 2}' transform='rotate(-90 12 {(10 + bottom) / 2})' "
        f"text-anchor='middle'>{html.escape(y_label)}</text>{body}</svg>"
    )


def _scale(value: float, top: float, low: float, high: float) -> float:
    return low + (high - low) * (value / top if top else 0.0)


def latency_over_time_svg(samples: Sequence[Sample]) -> str:
    """One dot per request (thinned evenly past MAX_POINTS) at its start time; failures in red."""
    if not samples:
        return "<p>No requests.</p>"
    step = max(1, len(samples) // MAX_POINTS)
    shown = sorted(samples, key=lambda s: s.start_s)[::step]
    x_max = max(s.start_s for s in samples) or 1.0
    y_max = max(s.latency_s for s in samples) * 1000 or 1.0
    dots = "".join(
        f"<circle cx='{_scale(s.start_s, x_max, MARGIN, WIDTH - 10):.1f}' "
        f"cy='{_scale(s.latency_s * 1000, y_max, HEIGHT - 30, 10):.1f}' r='1.5' "
        f"fill='{'#c0392b' if s.error else '#2c6fbb'}' fill-opacity='0.5'/>"
        for s in shown
    )
    return _frame("seconds into the run", "latency ms", x_max, y_max, dots)


def histogram_svg(samples: Sequence[Sample], bins: int = 40) -> str:
    """Requests per latency bin, linear scale, from the fastest to the slowest request."""
    counts = histogram([s.latency_s * 1000 for s in samples], bins)
    if not counts:
        return "<p>No requests.</p>"
    x_min, x_max = counts[0][0], counts[-1][1]
    y_max = max(c for _, _, c in counts)
    span = (x_max - x_min) or 1.0
    bars = "".join(
        f"<rect x='{_scale(low - x_min, span, MARGIN, WIDTH - 10):.1f}' "
        f"y='{_scale(count, y_max, HEIGHT - 30, 10):.1f}' "
        f"width='{max(1.0, (WIDTH - 10 - MARGIN) / bins - 1):.1f}' "
        f"height='{_scale(count, y_max, 0, HEIGHT - 40):.1f}' fill='#2c6fbb'>"
        f"<title>{low:.2f}-{high:.2f} ms: {count}</title></rect>"
        for low, high, count in counts
    )
    axis = f"latency ms (from {x_min:.3g})"
    return _frame(axis, "requests", x_max, y_max, bars)
