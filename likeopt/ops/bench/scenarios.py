"""What each scenario sends, and why its cache behaviour is what it claims to be.

Queries come from a BEIR ``queries.jsonl`` (SciFact by default). Every run gets a
random run number; scenarios that must start cold mark each query with it, so no
earlier run (or any other client) can have cached their keys. The mark is written in
zero-width characters (Unicode format characters, category Cf): the cache keys keep
them, so they differ from every other run's, while the embedding model's tokenizer and
BM25's drop them, so a marked query costs exactly what the real question costs. (A
visible token such as ``zqabcdef12`` is eight more word pieces for the encoder: a
SciFact query of 22 word pieces on average became one of 30, a third more work.)

Chat is the exception: its question also reaches the language model, whose byte-level
tokenizer reads every character, zero-width ones at two tokens each (32 tokens for a run
mark against 5 for a short word). There the mark is a visible word, ``zq`` and letters.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from likeopt.runtime.loaders.files import BEIR_QUERIES

SEARCH_PATH = "/api/v1/search"
CHAT_PATH = "/api/v1/chat"
CACHED_SET_SIZE = 16
ZIPF_S = 1.1
RETYPED_SHARE = 1 / 3
INVISIBLE_DIGITS = "\u200b\u200c\u200d\u2060"
"""Zero-width space, non-joiner, joiner and word joiner: base-4 digits nobody sees and no tokenizer reads."""
RUN_DIGITS = 16
"""A run number (32 bits) is written with this many digits, so a count after it reads unambiguously."""


@dataclass(frozen=True)
class Scenario:
    """One workload: the endpoint, the query stream, and which cache namespace answers it."""

    name: str
    path: str
    queries: Iterator[str]
    cache_namespace: str
    """The namespace of the first cache lookup each request makes (its hit rate is the scenario's)."""
    how: str
    """How the queries are chosen and why they hit or miss the cache, for the report."""
    warmup: tuple[str, ...] = ()
    """Sent once, unmeasured, before the run."""

    @property
    def streaming(self) -> bool:
        return self.path == CHAT_PATH


def load_queries(data_dir: Path) -> list[str]:
    """The query texts of a BEIR dataset folder, in file order."""
    path = data_dir / BEIR_QUERIES
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --data must be a BEIR folder with {BEIR_QUERIES}")
    with path.open(encoding="utf-8") as lines:
        texts = [json.loads(line)["text"] for line in lines if line.strip()]
    if not texts:
        raise ValueError(f"{path} holds no queries")
    return texts


class ZipfSampler:
    """Draws ranks 0…n-1 with probability proportional to 1/(rank+1)^s (inverse CDF by bisection)."""

    def __init__(self, n: int, s: float, rng: random.Random) -> None:
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        self._cumulative = list(itertools.accumulate(k**-s for k in range(1, n + 1)))
        self._rng = rng

    def __call__(self) -> int:
        point = self._rng.random() * self._cumulative[-1]
        return min(bisect.bisect_right(self._cumulative, point), len(self._cumulative) - 1)


def retype(text: str, rng: random.Random) -> str:
    """The same question as someone else might type it: other case and spacing, same normalised form."""
    case: Callable[[str], str] = rng.choice((str.upper, str.lower, str.title, str.swapcase))
    gaps = [rng.choice((" ", "  ", " \t", "   ")) for _ in text.split()]
    words = [case(word) + gap for word, gap in zip(text.split(), gaps, strict=True)]
    return rng.choice(("", " ", "\t")) + "".join(words).rstrip() + rng.choice(("", " ", "  "))


def invisible(number: int, digits: int = 0) -> str:
    """number in base 4 with INVISIBLE_DIGITS, zero-padded to at least ``digits`` characters."""
    written = ""
    while number or len(written) < max(digits, 1):
        number, digit = divmod(number, len(INVISIBLE_DIGITS))
        written = INVISIBLE_DIGITS[digit] + written
    return written


def marked(query: str, run: int, request: int | None = None) -> str:
    """query with an invisible mark of the run (and of one request in it): a cache key of its own, the same work."""
    return query + invisible(run, RUN_DIGITS) + ("" if request is None else invisible(request))


def run_word(run: int) -> str:
    """The run number as one short visible word (``zq`` and letters): the cheapest mark a language model reads."""
    letters = ""
    while run or not letters:
        run, letter = divmod(run, 26)
        letters = chr(ord("a") + letter) + letters
    return "zq" + letters


def build(name: str, queries: list[str], rng: random.Random, run: int) -> Scenario:
    """The named scenario over these queries; the ``run`` number keeps cold scenarios cold."""
    if name == "search-cached":
        fixed = tuple(queries[:CACHED_SET_SIZE])
        return Scenario(
            name,
            SEARCH_PATH,
            itertools.cycle(fixed),
            "search",
            f"the first {len(fixed)} queries in turn, each searched once before measuring, "
            "so every measured request is answered from the result cache",
            warmup=fixed,
        )
    if name == "search-uncached":
        return Scenario(
            name,
            SEARCH_PATH,
            (marked(rng.choice(queries), run, n) for n in itertools.count()),
            "search",
            f"a random query with an invisible mark unique to the request (run {run:08x}, request 0, 1, …), "
            "so neither the result cache nor the embedding cache can answer it",
        )
    if name == "chat":
        order = rng.sample(queries, len(queries))
        return Scenario(
            name,
            CHAT_PATH,
            (f"{query} {run_word(run)}" for query in itertools.cycle(order)),
            "answer",
            f"every query once in random order, then again, each with the run word {run_word(run)} "
            "so answers cached by earlier runs cannot be served; repeats after the first pass may hit",
        )
    if name == "mixed":
        zipf = ZipfSampler(len(queries), ZIPF_S, rng)

        def stream() -> Iterator[str]:
            while True:
                text = marked(queries[zipf()], run)
                yield retype(text, rng) if rng.random() < RETYPED_SHARE else text

        return Scenario(
            name,
            SEARCH_PATH,
            stream(),
            "search",
            f"queries drawn Zipf-distributed (s = {ZIPF_S}, rank = file order) over all {len(queries)}, "
            f"about {RETYPED_SHARE:.0%} re-typed with other case and spacing, each with the invisible mark "
            f"of run {run:08x} so the cache starts cold: a hit is a repeat within this run",
        )
    raise ValueError(f"unknown scenario {name!r}")


SCENARIOS = ("search-cached", "search-uncached", "chat", "mixed")
