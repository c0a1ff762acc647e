"""Commands Redis answers with an error: told apart from a Redis that cannot be reached, counted, logged without values.

A Redis at its maxmemory with noeviction (OOM), whose disk fails (MISCONF) or that is a replica (READONLY) refuses
writes yet still reads, and deletes too when only its memory is full: L2 stays on for it. Only a failure to reach
Redis (a connection error, a timeout, a cluster slot without a primary) turns L2 off for a back-off.

redis-py writes a pipeline's failed command into the error's message, arguments included, and the arguments of a
cache's writes are cached values (document text, conversations). So lines about refusals carry a command's name, its
namespace, a digest of its key and Redis's error code, and no line shows the message of an error reply (describe).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable

from redis.exceptions import AskError, ClusterError, ResponseError, TryAgainError

log = logging.getLogger(__name__)

REFUSAL_LOG_PERIOD_S = 60.0
"""At most one line per period about refused commands: a full Redis refuses every write, thousands a minute."""

KNOWN_REASONS = ("OOM", "MISCONF", "READONLY")
"""Why a Redis that reads refuses writes: memory full, persistence failing, a replica. Counted from 0 before the
first refusal, so that a rate over them has a start and an alert can name them."""

OTHER_REASON = "other"
"""The reason of an error reply that carries no error code."""

_CLUSTER_STATE = (ClusterError, AskError, TryAgainError)
"""Error replies about which node serves a key's slot, or that none does: the cluster as the client knows it cannot
be reached, so these turn L2 off (and make the layer learn the slot map again) as a connection error does."""

_ERROR_CODE = re.compile(r"[A-Z][A-Z0-9_]*")


def error_code(error: ResponseError) -> str:
    """Redis's code for an error reply (OOM, MISCONF, READONLY, ERR, ...).

    redis-py keeps the code in status_code when it has a class for it (OOM, READONLY) and leaves it at the head of
    the message otherwise (MISCONF).
    """
    if error.status_code:
        return str(error.status_code)
    head = str(error).partition(" ")[0]
    return head if _ERROR_CODE.fullmatch(head) else OTHER_REASON


def refusal_reason(error: BaseException) -> str | None:
    """The error code when Redis refused a command; None when the error says Redis was not reached."""
    if not isinstance(error, ResponseError) or isinstance(error, _CLUSTER_STATE):
        return None
    return error_code(error)


def describe(error: BaseException) -> str:
    """An error as a log line may show it: an error reply by its type and code only (its message may quote a
    command's arguments), any other error with its message (a connection's address and the system's reason)."""
    detail = error_code(error) if isinstance(error, ResponseError) else str(error)
    return f"{type(error).__name__} {detail}".rstrip()


def key_digest(key: str) -> str:
    """What log lines show of a cache key: enough to tell keys apart, nothing of a conversation's id."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:12]


class Refusals:
    """Commands Redis refused, counted by reason for the metrics and logged at most once a period."""

    def __init__(self, period_s: float = REFUSAL_LOG_PERIOD_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._period_s = period_s
        self._clock = clock
        self._counts: Counter[str] = Counter(dict.fromkeys(KNOWN_REASONS, 0))
        self._unlogged = 0
        self._quiet_until = -math.inf

    @property
    def by_reason(self) -> dict[str, int]:
        """How many commands Redis refused since start, by error code (the known ones from 0)."""
        return dict(self._counts)

    def record(self, command: str, shown_key: str, reason: str) -> None:
        """Count one refused command; log it, with those left unlogged since the last line, once the period is over.

        shown_key is the key as a log line may show it (see key_digest).
        """
        self._counts[reason] += 1
        self._unlogged += 1
        now = self._clock()
        if now < self._quiet_until:
            return
        log.warning(
            "Redis refused %d command(s) since the last such line, the latest %s %s: %s (L2 stays on: reads and "
            "deletes still go to Redis; such lines come at most every %.0f s)",
            self._unlogged,
            command,
            shown_key,
            reason,
            self._period_s,
            extra={"fields": {"command": command, "key": shown_key, "reason": reason, "refused": self._unlogged}},
        )
        self._unlogged = 0
        self._quiet_until = now + self._period_s
