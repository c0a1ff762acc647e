"""Feedback on answers: every answer kept for a while under its id, and ratings kept for good.

generation_svc owns answers, so it owns their feedback too, in a SQLite file of its own
(``LIKEOPT_FEEDBACK_DB``). Not cache_svc: Redis there evicts by LRU under a memory bound and
may run without persistence, and a thumbs-down that is meant to become a regression test must
not be evicted. Not retrieval_svc's store: that is the corpus. A rating is committed (WAL,
synchronous=FULL) before the caller is told it is stored; the answers it may refer to are
written in batches in the background, on the same single thread, so a rating sent right after
its answer still finds it. While the file takes no write (a full disk), answers wait in memory, up to
``MAX_PENDING``, tried again every ``RETRY_S`` however quiet the service, and ratings are refused as UNAVAILABLE.
An answer may be rated for ``ANSWER_RETENTION_DAYS``; then it is dropped unless rated (pruned while the service
runs, at most every ``PRUNE_INTERVAL_S``), and a rated one is kept with its ratings. Replicas on one host share the
file (SQLite locks it); on several hosts each keeps its own. The file's tables and queries are in
generation_svc.feedback_file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from prometheus_client import Counter

from generation_svc.feedback_file import (
    INSERT_ANSWERS,
    SCHEMA,
    feedback_item,
    find_answer,
    open_feedback_file,
    prune_answers,
)
from likeopt.runtime.contract import ID_RE, MAX_COMMENT_CHARS, RATINGS, InvalidInput
from likeopt.runtime.storage import storage_problem
from likeopt.v1 import generation_pb2

T = TypeVar("T")
Row = tuple[object, ...]
"""An answer as the answers table holds it."""

FEEDBACK_FILE = "generation_svc's feedback file (LIKEOPT_FEEDBACK_DB)"
"""How a caller is told which file refused a write."""
PRUNE_INTERVAL_S = 3600.0
"""How often a running store drops answers past retention: often enough that the file stays about 30 days of
answers, seldom enough that the DELETE (a scan of the created_ms index) is no load."""
MAX_PENDING = 10_000
"""Answers waiting to be written at most (some 30 MB of memory: an answer with its citations is about 3 KB). They wait
while the file takes no write (a full disk); past this the oldest are dropped, counted and logged, never the caller
slowed."""
RETRY_S = 5.0
"""How long a feedback file that could not be opened, or took no write, is left alone before it is tried again: then
by the answers waiting for it (on a timer, so they are written though no other answer comes), the next answer or,
for opening, rating. Space freed is used within seconds, and a full disk is not tried at every answer."""
FEEDBACK = Counter("likeopt_feedback_total", "Ratings of answers stored, by rating.", ["rating"])
for _rating in RATINGS:  # from zero: rate() and increase() miss the first count of a series that appears at 1
    FEEDBACK.labels(_rating)
ANSWERS_DROPPED = Counter(
    "likeopt_feedback_answers_dropped_total",
    "Answers not kept for feedback: the oldest past MAX_PENDING waiting, or those waiting when the service stopped.",
)
WRITES_FAILED = Counter(
    "likeopt_feedback_writes_failed_total",
    "Writes of waiting answers the feedback file did not take (the answers wait and are tried again).",
)
log = logging.getLogger(__name__)


class FeedbackRejected(InvalidInput):
    """The rating or comment is not acceptable (nothing was stored)."""


class UnknownAnswer(LookupError):
    """No kept answer has that id (or trace id)."""


class FeedbackUnavailable(RuntimeError):
    """The feedback file cannot be opened or takes no write now (a full disk; the words say which); nothing of the
    call was stored, and the same call may succeed later (gRPC UNAVAILABLE)."""


def validate(rating: str, comment: str, answer_id: str, trace_id: str) -> None:
    """Raise FeedbackRejected for anything the store must not take."""
    if rating not in RATINGS:
        raise FeedbackRejected(f"rating must be 'up' or 'down', not {rating[:20]!r}")
    if len(comment) > MAX_COMMENT_CHARS:
        raise FeedbackRejected(f"comment is {len(comment)} characters; the limit is {MAX_COMMENT_CHARS}")
    if "\x00" in comment:
        raise FeedbackRejected("comment must not contain NUL characters")
    named = answer_id or trace_id
    if not named:
        raise FeedbackRejected("answer_id or trace_id is required")
    if not ID_RE.match(named):
        raise FeedbackRejected("answer_id and trace_id are 1 to 64 letters, digits, '-' or '_'")


@dataclass(frozen=True)
class Counts:
    up: int
    down: int


class FeedbackStore:
    """The SQLite file, used from one thread of its own so that the event loop never waits on disk. A file that
    cannot be opened (a full disk, a folder not there yet) is opened later, as answers and ratings come and while
    answers wait (RETRY_S): meanwhile ratings are refused with the reason, and no restart is needed once it can be."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedback")
        self._pending: list[Row] = []
        self._lock = threading.Lock()
        self._flushing = False
        self._dropping = False
        """Whether waiting answers were dropped since the file last took some (the first drop is logged)."""
        self._failed_at = -math.inf
        """When the file last could not be opened or took no write (monotonic seconds)."""
        self._db: sqlite3.Connection | None = None
        self._unopened = ""
        """What a caller reads while the file cannot be opened; empty once it is."""
        self._pruned_at = -math.inf
        self._retry: threading.Timer | None = None
        """The timer that tries the waiting answers again once RETRY_S has passed, while one is set."""
        self._closed = False
        with contextlib.suppress(FeedbackUnavailable):  # logged for the operator; tried again later
            self._thread.submit(self._connection).result()

    def _connection(self) -> sqlite3.Connection:
        """The open file (on the store's thread), opened now when it is not and RETRY_S has passed since it last
        could not be; FeedbackUnavailable with the reason otherwise."""
        if self._db is not None:
            return self._db
        if time.monotonic() - self._failed_at < RETRY_S:
            raise FeedbackUnavailable(self._unopened)
        try:
            self._db = open_feedback_file(self._path)
        except (OSError, sqlite3.Error) as exc:
            self._failed_at = time.monotonic()
            if self._unopened != (why := self._cannot_open(exc)):
                retried = "tried again while answers wait and as ratings come"
                notice = f"feedback is off until {self._path} can be opened ({exc}); {retried}"
                log.warning("feedback file cannot be opened", extra={"fields": {"notice": notice}})
            self._unopened = why
            raise FeedbackUnavailable(why) from exc
        if self._unopened:
            log.info("feedback file opened", extra={"fields": {"path": str(self._path)}})
        self._unopened, self._failed_at = "", -math.inf
        self._prune_if_due(self._db)
        return self._db

    def _cannot_open(self, exc: OSError | sqlite3.Error) -> str:
        """What a caller reads while the file cannot be opened: the disk's state where SQLite names it, else the
        reason without the server's paths (which go to the log)."""
        if isinstance(exc, sqlite3.Error) and (refused := storage_problem(exc, FEEDBACK_FILE, self._path)):
            return refused
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return f"{FEEDBACK_FILE} cannot be opened ({why}); nothing was stored: try again later"

    def record_later(
        self,
        question: str,
        answer: str,
        citations: list[generation_pb2.CitationEvent],
        done: generation_pb2.DoneEvent,
        owner: str = "",
    ) -> None:
        """Keep a finished answer under done.answer_id, written in the background; only its owner (who asked it,
        as conversations have one) may rate it."""
        if not done.answer_id:
            return
        turn = generation_pb2.Turn(question=question, answer=answer, citations=citations)
        row = (
            done.answer_id,
            done.trace_id,
            turn.SerializeToString(),
            done.backend,
            done.support,
            int(done.no_answer),
            int(time.time() * 1000),
            owner,
        )
        with self._lock:
            self._pending.append(row)
            self._drop_oldest()
            if self._flushing:
                return
            self._flushing = True
        self._thread.submit(self._flush_in_background)

    def _drop_oldest(self) -> None:
        """Keep MAX_PENDING waiting answers at most (called holding the lock): the oldest go, as the least likely to
        be rated still; they are counted, and the first of a run is logged."""
        over = len(self._pending) - MAX_PENDING
        if over <= 0:
            return
        del self._pending[:over]
        ANSWERS_DROPPED.inc(over)
        if not self._dropping:
            self._dropping = True
            log.warning(
                "answers kept for feedback dropped, oldest first: too many wait for the feedback file",
                extra={"fields": {"waiting": MAX_PENDING}},
            )

    def _flush_in_background(self) -> None:
        """_flush on the store's thread for record_later, which nobody awaits: within RETRY_S of the file failing
        to open or to take a write, the answers just wait (a full disk is not tried at every answer); a failure is
        logged and counted where it happens."""
        if time.monotonic() - self._failed_at < RETRY_S:
            with self._lock:
                self._flushing = False
            self._retry_later()
            return
        with contextlib.suppress(FeedbackUnavailable, sqlite3.Error):
            self._flush()

    def _retry_later(self) -> None:
        """Have the waiting answers tried again on the store's thread once RETRY_S has passed since the file last
        failed, unless a try is set already or the store is closing: on a quiet service no answer may come to try
        them, and they would wait in memory until one did or be lost at shutdown if the disk had filled again."""
        with self._lock:
            if self._closed or self._retry is not None or not self._pending or RETRY_S <= 0:
                return  # with no RETRY_S every answer and rating tries the file, and a timer would spin
            delay = max(self._failed_at + RETRY_S - time.monotonic(), 0.0)
            self._retry = threading.Timer(delay, self._retry_now)
            self._retry.daemon = True
            self._retry.name = "feedback-retry"
            self._retry.start()

    def _retry_now(self) -> None:
        """The timer's work: a background flush queued on the store's thread (unless one is queued already)."""
        with self._lock:
            self._retry = None
            if self._closed or self._flushing:
                return
            self._flushing = True
            self._thread.submit(self._flush_in_background)

    def _flush(self) -> None:
        """Write every waiting answer in one transaction (runs on the store's thread), then prune if it is time:
        only writing answers grows the file, so a store that writes none has nothing to prune. Answers the file
        does not take wait for the next flush, before those that came meanwhile."""
        with self._lock:
            rows, self._pending, self._flushing = self._pending, [], False
        try:
            db = self._connection()
            if rows:
                self._write(db, rows)
        except BaseException:
            with self._lock:
                self._pending[:0] = rows
                self._drop_oldest()
            self._retry_later()
            raise
        self._prune_if_due(db)

    def _write(self, db: sqlite3.Connection, rows: list[Row]) -> None:
        """Write answers in one transaction; a failure is logged and counted, and background flushes leave the file
        alone for RETRY_S."""
        try:
            with self._transaction(db):
                db.executemany(INSERT_ANSWERS, rows)
        except (FeedbackUnavailable, sqlite3.Error) as exc:
            self._failed_at = time.monotonic()
            WRITES_FAILED.inc()
            log.warning(
                "answers kept for feedback wait: the feedback file did not take them",
                extra={"fields": {"answers": len(rows), "error": str(exc)}},
            )
            raise
        self._failed_at = -math.inf
        with self._lock:
            self._dropping = False

    def _prune_if_due(self, db: sqlite3.Connection) -> None:
        """Drop answers past retention at most every PRUNE_INTERVAL_S; a failure (a lock held past busy_timeout) is
        logged and retried at the next flush, as the answers just written are safe."""
        now = time.monotonic()
        if now - self._pruned_at < PRUNE_INTERVAL_S:
            return
        try:
            prune_answers(db)
        except sqlite3.Error:
            log.exception("answers past retention could not be dropped from the feedback file; retried later")
            return
        self._pruned_at = now

    @contextlib.contextmanager
    def _transaction(self, db: sqlite3.Connection) -> Iterator[None]:
        """One write transaction, rolled back on any error (COMMIT's own too); a write the disk refused raises
        FeedbackUnavailable naming the reason, as an internal error would tell the caller nothing."""
        try:
            with db:
                db.execute("BEGIN")
                yield
        except sqlite3.Error as exc:
            refused = storage_problem(exc, FEEDBACK_FILE, self._path)
            if refused is None:
                raise
            raise FeedbackUnavailable(refused) from exc

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    async def rate(self, answer_id: str, trace_id: str, rating: str, comment: str, owner: str = "") -> tuple[int, str]:
        """Store the owner's rating of an answer they were given; (feedback id, answer id). UnknownAnswer (another
        person's answer too, as with conversations: its existence is not told) or FeedbackRejected. An answer kept
        by a release that recorded no owners may be rated by its answer id alone."""
        validate(rating, comment, answer_id, trace_id)
        feedback_id, found = await self._run(lambda: self._rate(answer_id, trace_id, rating, comment, owner))
        FEEDBACK.labels(rating).inc()
        return feedback_id, found

    def _rate(self, answer_id: str, trace_id: str, rating: str, comment: str, owner: str) -> tuple[int, str]:
        """An answer waiting for a file that does not take it is not rated yet (the rating could not be stored
        either): FeedbackUnavailable, and it is rated once the file takes them both."""
        unwritten: Exception | None = None
        try:
            self._flush()  # an answer finished a moment ago may still be waiting
        except (FeedbackUnavailable, sqlite3.Error) as exc:
            unwritten = exc
        db = self._connection()  # or why it cannot be opened
        found = find_answer(db, answer_id, trace_id, owner)
        if found is None and unwritten is not None and self._waits(answer_id, trace_id, owner):
            raise unwritten
        if found is None:
            raise UnknownAnswer(f"no answer {answer_id or trace_id!r} is known")
        with self._transaction(db):
            cursor = db.execute(
                "INSERT INTO feedback (answer_id, rating, comment, created_ms) VALUES (?, ?, ?, ?)",
                (found, rating, comment, int(time.time() * 1000)),
            )
        return int(cursor.lastrowid or 0), found

    def _waits(self, answer_id: str, trace_id: str, owner: str) -> bool:
        """Whether the answer named is among those waiting to be written, found as _find finds one in the file."""
        with self._lock:
            rows = list(self._pending)
        with contextlib.closing(sqlite3.connect(":memory:")) as waiting:
            waiting.executescript(SCHEMA)
            waiting.executemany(INSERT_ANSWERS, rows)
            return find_answer(waiting, answer_id, trace_id, owner) is not None

    async def list(
        self, rating: str = "", limit: int = 100, before: int = 0
    ) -> tuple[list[generation_pb2.FeedbackItem], Counts]:
        """Stored feedback with the answers it rates, newest first (older than feedback id before, when set), and
        the counts of every rating."""
        return await self._run(lambda: self._list(rating, limit, before))

    def _list(self, rating: str, limit: int, before: int) -> tuple[list[generation_pb2.FeedbackItem], Counts]:
        with contextlib.suppress(FeedbackUnavailable, sqlite3.Error):  # no waiting answer is rated: all are listed
            self._flush()
        db = self._connection()  # or why it cannot be opened
        rows = db.execute(
            "SELECT f.feedback_id, f.answer_id, a.trace_id, f.rating, f.comment, f.created_ms, a.turn, a.backend,"
            " a.support, a.no_answer FROM feedback f JOIN answers a USING (answer_id)"
            " WHERE (? = '' OR f.rating = ?) AND (? = 0 OR f.feedback_id < ?)"
            " ORDER BY f.feedback_id DESC LIMIT ?",
            (rating, rating, before, before, limit),
        ).fetchall()
        counts = dict(db.execute("SELECT rating, COUNT(*) FROM feedback GROUP BY rating").fetchall())
        return [feedback_item(row) for row in rows], Counts(int(counts.get("up", 0)), int(counts.get("down", 0)))

    def close(self) -> None:
        """Write the waiting answers and close the file; those it does not take are lost, counted and logged."""
        with self._lock:
            self._closed = True
            retry, self._retry = self._retry, None
        if retry is not None:
            retry.cancel()
        self._thread.submit(self._close).result()
        self._thread.shutdown(wait=True)

    def _close(self) -> None:
        self._failed_at = -math.inf  # a last try, however recent the one before
        try:
            self._flush()
        except (FeedbackUnavailable, sqlite3.Error):
            with self._lock:
                lost, self._pending = len(self._pending), []
            ANSWERS_DROPPED.inc(lost)
            log.error(
                "answers kept for feedback were lost: the feedback file did not take them",
                extra={"fields": {"answers": lost}},
            )
        if self._db is not None:
            self._db.close()
