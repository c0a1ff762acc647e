"""The semantic answer cache (opt-in): a question close enough in meaning to an answered one gets its answer.

With ``LIKEOPT_SEMANTIC_CACHE_THRESHOLD`` set, each answered question's embedding is remembered
with its answer-cache key, per scope (answer_cache.AnswerScope: index version, backend, top_k, mode, the caller's
permission fingerprint and the answer's bounds), in this process.
A new question whose embedding is within that cosine similarity of a remembered one, in the
same scope, is answered from the remembered key. 0.75 is the lowest threshold at which no
SciFact test claim found a claim with different evidence (benchmarks/README.md, "Semantic
answer cache threshold"); but a claim and its reversal ("increases" / "reduces") embed almost
identically, so a hit also requires both questions to share every word of direction or
negation. Conversational follow-ups never use it.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
from prometheus_client import Counter

DIRECTION_WORDS = frozenset(
    """
    not no never none without neither nor cannot lack lacks absence absent fail fails failed
    increase increases increased increasing decrease decreases decreased decreasing
    reduce reduces reduced reducing raise raises raised lower lowers lowered higher
    more less fewer greater smaller larger improve improves improved impair impairs impaired
    worsen worsens worse better promote promotes promoted inhibit inhibits inhibited
    enhance enhances enhanced suppress suppresses suppressed prevent prevents prevented
    cause causes caused block blocks blocked activate activates activated positive negative up down
    """.split()
)
"""Words that flip a claim's meaning while barely moving its embedding ("n't" counts as "not")."""
_WORD = re.compile(r"[a-z]+")
SEMANTIC_HITS = Counter("likeopt_semantic_cache_hits_total", "Answers replayed for a similar, not identical, question.")


@dataclass(frozen=True)
class Remembered:
    key: str
    direction: frozenset[str]


def direction_of(question: str) -> frozenset[str]:
    words = set(_WORD.findall(question.lower().replace("n't", " not")))
    return frozenset(words & DIRECTION_WORDS)


class SemanticIndex:
    """Embeddings of answered questions, newest kept, searched by cosine within a scope."""

    def __init__(self, threshold: float, capacity: int = 10_000) -> None:
        self.threshold = threshold
        self.capacity = capacity
        self._entries: OrderedDict[tuple[Hashable, str], tuple[np.ndarray, Remembered]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, scope: Hashable, vector: np.ndarray, question: str, key: str) -> None:
        self._entries[(scope, key)] = (vector.astype(np.float32), Remembered(key, direction_of(question)))
        self._entries.move_to_end((scope, key))
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def find(self, scope: Hashable, vector: np.ndarray, question: str) -> str | None:
        """The key of the most similar remembered question in scope, if similar enough and of the same direction."""
        candidates = [entry for (entry_scope, _), entry in self._entries.items() if entry_scope == scope]
        if not candidates:
            return None
        similarities = np.stack([v for v, _ in candidates]) @ vector.astype(np.float32)
        direction = direction_of(question)
        for index in np.argsort(-similarities):
            if similarities[index] < self.threshold:
                return None
            remembered = candidates[index][1]
            if remembered.direction == direction:
                return remembered.key
        return None
