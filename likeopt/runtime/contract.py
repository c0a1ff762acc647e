"""The input contract every entry point shares: limits, retrieval modes, the checks of a request, and the one
gRPC status a bad request gets.

The gateway (its pydantic models and OpenAPI document), retrieval_svc, generation_svc, cache_svc and
``likeopt eval`` read these names, so a limit changed here changes everywhere at once and a request the gateway
lets through is one the services accept.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import grpc

from likeopt.v1 import retrieval_pb2

T = TypeVar("T")

MAX_QUERY_CHARS = 4096
"""Longest question or search query, in characters."""
QUERY_BLANKS = "".join(char for char in map(chr, range(0x3001)) if char.isspace()) + "\ufeff"
"""The characters a query of nothing else is empty of: Python's whitespace and the byte-order mark, named one by
one because regular-expression engines disagree on ``\\s`` (JSON Schema's has no ``\\x1c``-``\\x1f`` or ``\\x85``)."""
QUERY_PATTERN = f"^[^\\x00]*[^\\x00{QUERY_BLANKS}][^\\x00]*$"
"""What check_query accepts, as a regular expression (for the OpenAPI document): a non-blank character, no NUL."""
NOT_BLANK = re.compile(f"[^{QUERY_BLANKS}]")
MAX_ID_CHARS = 512
"""Longest document id retrieval_svc stores; a longer one is skipped with the reason."""
SHOWN_ID_CHARS = 80
"""Most of an id a message quotes: an error about a 1 MB id must not be 1 MB (gRPC refuses such metadata)."""


MAX_ACCESS_NAME_CHARS = 256
"""Longest tenant, user or group name a document's access list may carry."""
MAX_ACCESS_READERS = 1000
"""Most users and groups one document's access list may name (Milvus keeps them in an ARRAY field of bounded
capacity)."""


def access_problem(tenant: str, users: Sequence[str], groups: Sequence[str]) -> str | None:
    """Why an access list cannot be stored, or None: retrieval_svc skips such a document, and ``likeopt ingest``
    refuses such options before reading a file."""
    names = [tenant, *users, *groups]
    if len(set(users)) + len(set(groups)) > MAX_ACCESS_READERS:
        return f"access names more than {MAX_ACCESS_READERS} users and groups"
    if len(tenant) > MAX_ACCESS_NAME_CHARS:  # named apart: it may come from the writer's token, not the request
        return f"the tenant's name is {len(tenant)} characters; the limit is {MAX_ACCESS_NAME_CHARS}"
    if any(len(n) > MAX_ACCESS_NAME_CHARS for n in names[1:]):
        return f"access has a user or group name longer than {MAX_ACCESS_NAME_CHARS} characters"
    if any(not n.strip() or "\x00" in n for n in names[1:]) or "\x00" in tenant:
        return "access has an empty name or a NUL character"
    return None


def shown_id(doc_id: str) -> str:
    """A document id quoted for a message, cut to SHOWN_ID_CHARS with an ellipsis."""
    return repr(doc_id) if len(doc_id) <= SHOWN_ID_CHARS else f"{doc_id[:SHOWN_ID_CHARS]!r}…"


MAX_DOCUMENT_CHARS = 10_000_000
"""Longest document text retrieval_svc stores; a longer one is skipped with the reason."""
WIDER_ACCESS_REFUSED = "this write would let in readers who may not read the stored document now"
"""How the reason begins when a write that asked for it (Document.refuse_wider_access) is refused for widening who
may read a stored document; ``likeopt ingest`` recognises it to say how to go ahead."""
MAX_COMMENT_CHARS = 2000
"""Longest feedback comment."""
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""Conversation, answer and trace ids: what generation_svc hands out and accepts."""
ID_RE = re.compile(ID_PATTERN)
RATINGS = ("up", "down")
MAX_UPLOAD_FILES = 100
"""Files one multipart upload may hold (POST /api/v1/documents); the web UI sends more in batches of this size."""

Mode = Literal["hybrid", "bm25", "dense"]
MODES: dict[str, int] = {"hybrid": retrieval_pb2.HYBRID, "bm25": retrieval_pb2.BM25, "dense": retrieval_pb2.DENSE}
"""Retrieval modes by the name clients use; the first is the default."""
MODE_NAMES: dict[int, str] = {number: name for name, number in MODES.items()}
"""The same modes by SearchRequest.mode number, as the retrieval engine names them."""

INVALID_INPUT_STATUS = grpc.StatusCode.INVALID_ARGUMENT
"""The status of every request the caller must fix, whichever service refuses it."""


@dataclass(frozen=True)
class Range:
    """An integer request field's bounds, and the value 0 (protobuf's unset) stands for."""

    name: str
    low: int
    high: int
    default: int

    def check(self, value: int) -> int:
        """The value, the default for 0 (unset), or InvalidInput naming the field and its bounds."""
        value = value or self.default
        if not self.low <= value <= self.high:
            raise InvalidInput(f"{self.name} must be between {self.low} and {self.high}, got {value}")
        return value


SEARCH_TOP_K = Range("top_k", 1, 100, 10)
SEARCH_BATCH = Range("queries", 1, 100, 0)
"""Queries per SearchBatch call (a count: none is refused)."""
ANSWER_TOP_K = Range("top_k", 1, 20, 5)
ANSWER_MAX_TOKENS = Range("max_tokens", 0, 1 << 20, 0)
"""Tokens an answer may have as a caller asks; 0 is the configured limit, which no request raises."""
MAX_STOP_SEQUENCES = 4
MAX_STOP_CHARS = 256
LIST_LIMIT = Range("limit", 1, 1000, 100)
"""Documents per page of ListDocuments, and feedback items per listing."""
MAX_LISTED_IDS = LIST_LIMIT.high
"""Most ids one ListDocuments may name (ListDocumentsRequest.ids): a page's worth, so its filter stays small."""
INT64_MAX = (1 << 63) - 1
MIN_INDEX_VERSION = Range("min_index_version", 0, INT64_MAX, 0)
"""The index version a read must reflect, as a write's reply gave it (an int64 in the protos); 0 asks for none."""
FEEDBACK_CURSOR = Range("before_feedback_id", 0, INT64_MAX, 0)
"""The feedback listing's next page: items older than this id (an int64 in the protos); 0: the newest."""


class InvalidInput(ValueError):
    """A request the caller must fix; answered with INVALID_INPUT_STATUS and this message."""


def check_query(query: str, name: str = "query") -> str:
    """The query, or InvalidInput explaining why it cannot be searched or answered (naming it as the caller's
    request does: "query", or an OpenAI-style client's "messages[2].content")."""
    if not NOT_BLANK.search(query):
        raise InvalidInput(f"{name} must contain a non-space character")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"{name} is {len(query)} characters; the limit is {MAX_QUERY_CHARS}")
    if "\x00" in query:
        raise InvalidInput(f"{name} must not contain NUL characters")
    return query


def check_stop(stop: Sequence[str]) -> tuple[str, ...]:
    """An answer's stop sequences without the empty ones (which would end every answer before it began), or
    InvalidInput: OpenAI takes up to MAX_STOP_SEQUENCES, and a bounded length bounds the text held back."""
    sequences = tuple(dict.fromkeys(sequence for sequence in stop if sequence))
    if len(sequences) > MAX_STOP_SEQUENCES:
        raise InvalidInput(f"stop takes at most {MAX_STOP_SEQUENCES} sequences, got {len(sequences)}")
    for sequence in sequences:
        if len(sequence) > MAX_STOP_CHARS:
            raise InvalidInput(f"a stop sequence is {len(sequence)} characters; the limit is {MAX_STOP_CHARS}")
    return sequences


def check_listed_ids(ids: Sequence[str]) -> list[str]:
    """The ids a listing is limited to, each once, or InvalidInput: at most MAX_LISTED_IDS, none longer than a
    stored id may be (such an id could match nothing, and would only swell the filter)."""
    unique = list(dict.fromkeys(ids))
    if len(unique) > MAX_LISTED_IDS:
        raise InvalidInput(f"ids takes at most {MAX_LISTED_IDS} document ids, got {len(unique)}")
    if any(len(doc_id) > MAX_ID_CHARS for doc_id in unique):
        raise InvalidInput(f"a document id in ids is longer than {MAX_ID_CHARS} characters")
    return unique


def check_mode(mode: int) -> str:
    """The engine's name of a SearchRequest mode number, or InvalidInput."""
    try:
        return MODE_NAMES[mode]
    except KeyError:
        raise InvalidInput(f"unknown mode {mode}") from None


def check_fusion(alpha: float, rrf_k: float) -> None:
    """InvalidInput unless alpha (convex fusion's dense weight) is within [0, 1] and rrf_k finite, not negative."""
    if not 0.0 <= alpha <= 1.0:
        raise InvalidInput(f"alpha must be within [0, 1], got {alpha}")
    if not 0 <= rrf_k < math.inf:  # NaN fails both comparisons
        raise InvalidInput(f"rrf_k must be a finite number, not negative, got {rrf_k}")


def check_optional_id(value: str, field: str) -> str:
    """An optional id ("" when not given) of the field named, or InvalidInput."""
    if value and not ID_RE.match(value):
        raise InvalidInput(f"{field} must be 1 to 64 letters, digits, '-' or '_'")
    return value


def check_conversation_id(conversation_id: str) -> str:
    """A conversation id to continue ("" starts a new one), or InvalidInput."""
    return check_optional_id(conversation_id, "conversation_id")


def rejects_invalid_input(
    method: Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[T]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[T]]:
    """Wraps a unary gRPC method: InvalidInput raised inside ends the call with INVALID_INPUT_STATUS."""

    @functools.wraps(method)
    async def call(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
        try:
            return await method(self, request, context)
        except InvalidInput as exc:
            await context.abort(INVALID_INPUT_STATUS, str(exc))
            raise  # abort raises; this only tells the type checker

    return call


REPLAYABLE_BACKENDS = frozenset({"extractive"})
"""Answer backends (done.backend) whose answer to the same question over the same passages is the same every time,
so a stream resumed with Last-Event-ID may skip the events the client has (gateway/routes/chat.py)."""
