"""Whether a near-cache miss is worth a lookup in cache_svc: asked while lookups answer, sampled while they do not.

A lookup in cache_svc before an uncached search costs about 4.5 CPU-ms across the processes (both ends of a
gRPC call and Redis) and answers only for a result another replica wrote, one written before a restart, or one
the near cache evicted. Switched off entirely it took the mesh from 0.63 to 0.78 of the in-process floor's
throughput (benchmarks/README.md, "The cache hop, measured by switching it off"). A missed hit costs the search
again, about 20 CPU-ms, so lookups pay while more than about a fifth of them answer. The policy keeps a moving
share of answered lookups; below ``threshold`` it asks one miss in ``sample_every``, which keeps the share
current, so lookups resume as soon as cache_svc starts answering again. Writes are not affected: cache_svc still
stores every result, for as long as its policy says.
"""

from __future__ import annotations

from prometheus_client import Counter

SKIPPED = Counter(
    "likeopt_cache_lookups_skipped_total",
    "Near-cache misses not looked up in cache_svc because too few recent lookups answered, by namespace.",
    ["namespace"],
)


class LookupPolicy:
    """A moving hit share of one namespace's lookups, and the decision it implies for the next miss."""

    def __init__(self, namespace: str, threshold: float = 0.1, weight: float = 1 / 64, sample_every: int = 8):
        if not (0 <= threshold <= 1 and 0 < weight <= 1 and sample_every >= 1):
            raise ValueError("threshold in [0, 1], weight in (0, 1], sample_every >= 1")
        self.namespace = namespace
        self.threshold = threshold
        self.weight = weight
        self.sample_every = sample_every
        self.hit_share = 1.0
        """Optimistic at start: a fresh process (a restart over a warm Redis) asks until lookups stop answering."""
        self._skipped_in_a_row = 0
        self._skipped = SKIPPED.labels(namespace)

    def should_ask(self) -> bool:
        """Whether to look this miss up: always while lookups answer, else one miss in ``sample_every``."""
        if self.hit_share >= self.threshold or self._skipped_in_a_row + 1 >= self.sample_every:
            self._skipped_in_a_row = 0
            return True
        self._skipped_in_a_row += 1
        self._skipped.inc()
        return False

    def record(self, answered: bool) -> None:
        """Fold one lookup's outcome into the moving share."""
        self.hit_share += self.weight * ((1.0 if answered else 0.0) - self.hit_share)
