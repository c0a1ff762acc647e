"""``likeopt eval --compare``: several configurations on several collections, one table.

A configuration is a mode, then optional search parameters and service settings, in one string:
``"hybrid"``, ``"hybrid fusion=rrf rrf_k=30"``, ``"dense LIKEOPT_DOCUMENT_WEIGHT=0"``,
``"hybrid LIKEOPT_QUERY_ENCODER=onnx-int8"``. Configurations with the same service settings share one
private retrieval_svc per collection (likeopt.ops.evaluate.run_evals); each collection is ingested once,
into the data directory ``likeopt eval`` keeps for it, so settings that change what is stored (chunking,
the model) are refused: they need a collection of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from likeopt.ops.evaluate import STORE_SHAPE, EvalSettings, run_evals
from likeopt.runtime.config import Config

DEFAULT_CONFIGURATIONS = ("hybrid", "bm25", "dense", "hybrid fusion=rrf")
STORED_SETTINGS = frozenset({f"LIKEOPT_{name.upper()}" for name in STORE_SHAPE} | {"LIKEOPT_DATA_DIR"})
"""Settings that shape the stored index: a comparison across them needs separate ingestions."""
SEARCH_MODES = ("hybrid", "bm25", "dense")


@dataclass(frozen=True)
class Configuration:
    """One row's recipe: its label (the spec as given), search parameters and service settings."""

    label: str
    search: EvalSettings
    overrides: tuple[tuple[str, str], ...] = ()


def parse_configuration(spec: str) -> Configuration:
    """A configuration from ``MODE [fusion=rrf|convex] [rrf_k=K] [alpha=A] [LIKEOPT_NAME=VALUE ...]``."""
    words = spec.split()
    if not words or words[0] not in SEARCH_MODES:
        raise ValueError(f"configuration {spec!r} must start with a mode: {', '.join(SEARCH_MODES)}")
    fusion, rrf_k, alpha = "", 0.0, None
    overrides: dict[str, str] = {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep or not value:
            raise ValueError(f"configuration {spec!r}: {word!r} is not NAME=VALUE")
        if key.startswith("LIKEOPT_"):
            if key in STORED_SETTINGS:
                raise ValueError(f"configuration {spec!r}: {key} changes what is stored; evaluate it on its own")
            overrides[key] = value
        elif key == "fusion" and value in ("rrf", "convex"):
            fusion = value
        elif key in ("rrf_k", "alpha"):
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"configuration {spec!r}: {key} must be a number") from None
            rrf_k, alpha = (number, alpha) if key == "rrf_k" else (rrf_k, number)
        else:
            raise ValueError(f"configuration {spec!r}: unknown parameter {word!r}")
    try:
        search = EvalSettings(words[0], fusion, rrf_k, alpha).check()
    except ValueError as exc:
        raise ValueError(f"configuration {spec!r}: {exc}") from None
    return Configuration(spec, search, tuple(sorted(overrides.items())))


def compare(
    collections: Sequence[Path], configurations: Sequence[Configuration], config: Config, split: str = "test"
) -> list[dict]:
    """Every configuration on every collection (on the queries judged in qrels/<split>.tsv): one row each,
    collections in the order given, then configurations in theirs."""
    rows: list[dict] = []
    for data in collections:
        groups: dict[tuple[tuple[str, str], ...], list[int]] = {}
        for n, configuration in enumerate(configurations):
            groups.setdefault(configuration.overrides, []).append(n)
        figures: dict[int, dict[str, object]] = {}
        for overrides, members in groups.items():
            runs = [configurations[n].search for n in members]
            figures.update(zip(members, run_evals(data, runs, config, dict(overrides), split=split), strict=True))
        for n, configuration in enumerate(configurations):
            rows.append({"collection": data.resolve().name, "configuration": configuration.label, **figures[n]})
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """The rows as one Markdown table: nDCG@10, Recall@100, MRR@10 and p95 latency."""
    lines = [
        "| collection | configuration | nDCG@10 | Recall@100 | MRR@10 | p95 ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        latency = row["latency_ms"]
        lines.append(
            f"| {row['collection']} | `{row['configuration']}` | {row['ndcg@10']:.4f} | {row['recall@100']:.4f} "
            f"| {row['mrr@10']:.4f} | {latency['p95']:.1f} |"
        )
    return "\n".join(lines)
