"""The answer cache: complete answers in cache_svc's ``answer`` namespace, replayed as events.

The key holds everything that changes an answer: the normalised question, the
retrieval index version (any ingest or delete moves it, so an entry can never be
served stale), the passages' parameters, the backend's fingerprint (model, prompt,
limits), the grounding check's rules (a cached answer carries their verdicts) and the
conversation so far, so a follow-up is only ever served an answer given after the very
same turns.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from generation_svc import grounding
from generation_svc.backends import Turn
from generation_svc.bounds import UNBOUNDED, AnswerBounds
from likeopt.caching.cache_client import CacheClient
from likeopt.caching.cache_keys import cache_key, normalise_query
from likeopt.v1 import generation_pb2

NAMESPACE = "answer"


@dataclass(frozen=True)
class AnswerScope:
    """Everything besides the question (and its turns) that makes two answers differ, so one is replayed, or found
    similar by the semantic cache, only within its scope. readers, the caller's permission fingerprint
    (LIKEOPT_AUTH=jwt), keeps an answer built from one reader's documents from ever reaching another; bounds keeps
    one cut short by max_tokens or a stop sequence from being replayed for a whole one."""

    index_version: int
    backend_fingerprint: str
    top_k: int
    mode: int
    readers: str = ""
    bounds: AnswerBounds = UNBOUNDED


def answer_key(question: str, scope: AnswerScope, history: list[Turn]) -> str:
    """The cache key of one answer: the question and its turns within its scope."""
    turns = [(normalise_query(t.question), t.answer) for t in history]
    parts: list[object] = ["answer/2", grounding.RULES, normalise_query(question), scope.index_version]
    parts.append(scope.backend_fingerprint)
    parts += [scope.top_k, scope.mode, turns]
    if scope.readers:
        parts.append(scope.readers)
    parts.extend(scope.bounds.key_parts())
    return cache_key(*parts)


def cacheable(events: list[generation_pb2.AnswerEvent]) -> bool:
    """Only answers that ended normally are worth replaying."""
    return bool(events) and events[-1].HasField("done") and events[-1].done.finish_reason in ("stop", "length")


class AnswerCache:
    """Reads and writes complete answers; every failure is a miss and never slows the answer."""

    def __init__(self, cache: CacheClient, ttl_s: int) -> None:
        self.cache = cache
        self.ttl_s = ttl_s

    async def get(self, key: str) -> list[generation_pb2.AnswerEvent] | None:
        """The recorded delta, citation and done events, done marked as cached; None on a miss."""
        raw = await self.cache.get(NAMESPACE, key)
        if raw is None:
            return None
        record = generation_pb2.CachedAnswer()
        try:
            record.ParseFromString(raw)
        except DecodeError:  # a corrupt entry is a miss, never a failure
            return None
        events = list(record.events)
        if not cacheable(events):
            return None
        events[-1].done.cached = True
        return events

    def put(self, key: str, events: list[generation_pb2.AnswerEvent]) -> None:
        """Store a finished answer in the background."""
        if cacheable(events):
            record = generation_pb2.CachedAnswer(events=events)
            self.cache.set_later(NAMESPACE, key, record.SerializeToString(), self.ttl_s)
