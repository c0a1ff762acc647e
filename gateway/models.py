"""The REST API's request and response bodies (DESIGN.md's HTTP contract) as pydantic models.

The OpenAPI document at /api/v1/openapi.json, and the docs page rendered from it, are generated from these, and
request bodies are checked by them, so what the document promises is what the gateway does. Limits and modes
come from likeopt.runtime.contract, as every service's do. Requests are strict (``"5"`` is not a number, ``true`` not
1), and an unknown field is refused: a misspelt ``access`` would store a document for its whole tenant, a misspelt
``filters`` would search everything.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from likeopt.runtime.contract import (
    ANSWER_MAX_TOKENS,
    ANSWER_TOP_K,
    ID_PATTERN,
    ID_RE,
    MAX_COMMENT_CHARS,
    MAX_QUERY_CHARS,
    MAX_STOP_CHARS,
    MAX_STOP_SEQUENCES,
    MIN_INDEX_VERSION,
    QUERY_PATTERN,
    SEARCH_TOP_K,
    InvalidInput,
    Mode,
    Range,
    check_conversation_id,
    check_query,
)

OPTIONAL_ID_PATTERN = f"^({ID_PATTERN[1:-1]})?$"
STRICT = ConfigDict(strict=True, extra="forbid")


def query_text(name: str) -> Any:
    """The type of a query or question sent as name (a body field, a tool argument): its checks are check_query's,
    whose messages name it, and its document declares them."""
    return Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            description="Words or a question: at least one non-space character, no NUL.",
            json_schema_extra={"pattern": QUERY_PATTERN},
        ),
        AfterValidator(functools.partial(check_query, name=name)),
    ]


Query = query_text("query")
StringMap = dict[str, str]
ConversationId = Annotated[
    str, Field(json_schema_extra={"pattern": OPTIONAL_ID_PATTERN}), AfterValidator(check_conversation_id)
]
"""A conversation to continue, "" for a new one: the REST, OpenAI and MCP documents declare the pattern it is held
to."""


def whole(value: object) -> object:
    """JSON Schema's integer: 28.0 is one, as much as 28 (a string or a boolean still is not)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def whole_number(**bounds: int) -> Any:
    """An integer as JSON Schema's (see whole), within bounds. They come before the validator: after it, or outside
    an optional, pydantic writes them into the document as ``ge`` and ``le``, words JSON Schema does not know."""
    return Annotated[int, Field(**bounds), BeforeValidator(whole)]


WholeNumber = whole_number()


def top_k_field(limits: Range, what: str) -> Any:
    """A top_k field with the contract's bounds and default."""
    return Field(limits.default, ge=limits.low, le=limits.high, description=what)


def min_index_version_field(read: str) -> Any:
    """The optional min_index_version of a read: what a write made another way returned, for read-your-writes."""
    return Field(
        MIN_INDEX_VERSION.default,
        ge=MIN_INDEX_VERSION.low,
        le=MIN_INDEX_VERSION.high,
        description=f"The index_version a write's reply gave: the {read} reflects that write whichever replica"
        " answers. Writes through this gateway need none, nor those the index has told the gateway of (tens of"
        " milliseconds later); name it after a write made another way (gRPC, another gateway, likeopt ingest)."
        " A version no store holds is answered from the newest one the store holds. 0: none.",
    )


def no_nul(text: str) -> str:
    """Refuses NUL characters, which generation_svc and SQLite would refuse later."""
    if "\x00" in text:
        raise InvalidInput("must not contain NUL characters")
    return text


def known_id(value: str) -> str:
    """An answer or trace id as generation_svc hands them out, or "" (not given)."""
    if value and not ID_RE.match(value):
        raise InvalidInput("must be 1 to 64 letters, digits, '-' or '_'")
    return value


class SearchRequest(BaseModel):
    """``POST /api/v1/search``."""

    model_config = STRICT

    query: Query
    top_k: WholeNumber = top_k_field(SEARCH_TOP_K, "Passages to return.")
    mode: Mode = Field("hybrid", description="hybrid (BM25 and dense, fused), bm25 or dense.")
    filters: StringMap = Field(default_factory=dict, description="Document metadata that must match exactly.")
    per_document: bool = Field(
        False, description="At most one hit per document, its best chunk: top_k then counts documents, not chunks."
    )
    min_index_version: WholeNumber = min_index_version_field("search")


class Hit(BaseModel):
    """A ranked passage; a score that is not finite is null."""

    doc_id: str
    chunk_id: str
    title: str
    text: str
    score: float | None = Field(description="The ranking score (fused in hybrid mode).")
    bm25_score: float | None
    dense_score: float | None = Field(description="Cosine similarity to the query.")
    bm25_rank: int = Field(description="1-based; 0 when BM25 did not rank it.")
    dense_rank: int = Field(description="1-based; 0 when dense search did not rank it.")
    metadata: StringMap


class SearchResponse(BaseModel):
    hits: list[Hit]
    index_version: int
    cached: bool = Field(description="Served from a cache without searching again.")
    took_ms: float


class ChatRequest(BaseModel):
    """``POST /api/v1/chat``."""

    model_config = STRICT

    query: Query
    conversation_id: Annotated[
        ConversationId,
        Field(description="Continue this conversation (the done event's conversation_id); empty starts a new one."),
    ] = ""
    top_k: WholeNumber = top_k_field(ANSWER_TOP_K, "Passages to ground the answer on.")
    mode: Mode = Field("hybrid", description="How passages are retrieved.")
    max_tokens: WholeNumber = Field(
        ANSWER_MAX_TOKENS.default,
        ge=ANSWER_MAX_TOKENS.low,
        le=ANSWER_MAX_TOKENS.high,
        description="Most tokens in the answer; 0: the configured limit, which this cannot raise. A shortened"
        " answer's done event has finish_reason 'length'.",
    )
    stop: list[Annotated[str, Field(max_length=MAX_STOP_CHARS)]] = Field(
        default_factory=list,
        max_length=MAX_STOP_SEQUENCES,
        description="The answer ends before the first of these (its citations too); empty ones are ignored.",
    )
    min_index_version: WholeNumber = min_index_version_field("answer's retrieval")


class ChatEvent(BaseModel):
    """One Server-Sent Event of an answer (its fields as the stream carries them)."""

    id: str = Field(description="The event's number in the answer, from 1: what Last-Event-ID names.")
    event: Literal["retrieval", "delta", "citation", "done", "error"]
    data: str = Field(description="One line of JSON, its shape by the event (see the operation).")


class Access(BaseModel):
    """Who may read a document (LIKEOPT_AUTH=jwt): a reader of its tenant (any tenant when empty) who is one of the
    users or in one of the groups; with neither, every reader of the tenant. Absent: the writer's tenant. A writer
    whose token names a tenant writes into that tenant only."""

    model_config = STRICT

    tenant: str = ""
    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)


class Document(BaseModel):
    """A document to add or replace. One retrieval_svc cannot store (no id, neither text nor title, an id over 512
    characters or with a control character, NUL characters, or an access list the writer may not give) is skipped
    with the reason, not refused."""

    model_config = STRICT

    id: str = Field("", description="Replaces the document with this id; missing or empty: skipped.")
    title: str = ""
    text: str = Field(
        "", description="The document's text; empty: the title is stored as its text (with neither: skipped)."
    )
    metadata: StringMap = Field(default_factory=dict)
    access: Access | None = None


class UpsertRequest(BaseModel):
    """``POST /api/v1/documents`` as JSON."""

    model_config = STRICT

    documents: list[Document]


class UploadForm(BaseModel):
    """``POST /api/v1/documents`` as multipart: files are read by their names' extensions; one that gives no text
    is skipped with the reason."""

    model_config = ConfigDict(extra="forbid")

    files: list[bytes] = Field(min_length=1)
    access: Access = Field(default_factory=Access, description="As JSON text: who may read every file of it.")


class Skipped(BaseModel):
    id: str
    reason: str


class AccessChange(BaseModel):
    """A stored document this write replaced with another access list (retrieval_svc logs each one too)."""

    id: str
    before: str = Field(description='Who could read it, in words: "everyone", "everyone in acme", "acme: group ops".')
    after: str = Field(description="Who may read it now, in the same words.")
    widened: bool = Field(description="Someone may read it now who could not before (another tenant counts).")


class UpsertResponse(BaseModel):
    upserted: int
    chunks: int
    index_version: int
    skipped: list[Skipped]
    access_changes: list[AccessChange] = Field(
        description="Documents stored already whose readers this write changed (sending them again with another"
        " access list changes it); empty when it changed none."
    )


class DeleteResponse(BaseModel):
    deleted: int
    index_version: int


class DocumentSummary(BaseModel):
    id: str
    title: str
    metadata: StringMap
    chunks: int = Field(description="How many chunks it was split into.")


class DocumentList(BaseModel):
    """``GET /api/v1/documents``: the documents the caller may read, in id order, a page at a time."""

    documents: list[DocumentSummary]
    next_after_id: str = Field(description="Pass as after_id for the next page; empty on the last page.")
    total: int = Field(description="Documents the caller may read in all.")
    index_version: int


class DocumentChunk(BaseModel):
    chunk_id: str = Field(description="As search hits and citations name it: <doc_id>#<n>.")
    text: str


class StoredDocument(BaseModel):
    """``GET /api/v1/documents/{doc_id}``: a document as the index holds it (neighbouring chunks repeat a sentence
    or so; the original file is not kept)."""

    id: str
    title: str
    metadata: StringMap
    chunks: list[DocumentChunk]
    index_version: int


class IndexStatus(BaseModel):
    documents: int
    chunks: int
    index_version: int
    embedding_model: str
    embedding_dim: int
    vector_index: str
    ready: bool


class Citation(BaseModel):
    n: int = Field(description="The [n] marker in the answer.")
    doc_id: str
    chunk_id: str
    title: str
    text: str
    supported: bool = Field(description="The passage supports a sentence citing it (grounding check).")
    support: float = Field(description="Best support score of a sentence citing it, 0..1.")


class AnswerTimings(BaseModel):
    retrieval_ms: float
    first_token_ms: float
    total_ms: float


class ChatAnswer(BaseModel):
    """``POST /api/v1/chat`` asked for JSON (``Accept: application/json``): the stream's events gathered into one
    reply, for clients that read a whole body rather than Server-Sent Events."""

    answer: str = Field(description="The answer text with its [n] markers (the stream's deltas, joined).")
    citations: list[Citation] = Field(description="The passages the answer cites, in order of first citation.")
    hits: list[Hit] = Field(description="The passages retrieved (the stream's retrieval event).")
    index_version: int
    conversation_id: str = Field(description="Send it again to ask a follow-up.")
    trace_id: str
    answer_id: str = Field(description="What POST /api/v1/feedback rates.")
    cached: bool
    finish_reason: str = Field(description='"stop", or "length" when max_tokens cut the answer.')
    backend: str
    prompt_tokens: int
    completion_tokens: int
    support: float = Field(description="Share of the answer's sentences supported by the passage they cite, 0..1.")
    no_answer: bool = Field(description="The documents do not cover the question.")
    small_talk: bool = Field(description="A greeting or thanks, answered without searching.")
    timings: AnswerTimings


class StoredCitation(Citation):
    withdrawn: bool = Field(
        description="You may no longer read its document (its access list changed, or it was deleted): title and "
        "text are empty."
    )


class Turn(BaseModel):
    question: str
    answer: str
    citations: list[StoredCitation]
    created_unix_ms: int
    interrupted: bool = Field(description="The answer ended early (stopped or failed): answer is what was sent.")
    withdrawn: bool = Field(
        description="A citation is withdrawn: the answer, which may repeat its passage, is empty too."
    )


class Conversation(BaseModel):
    conversation_id: str
    turns: list[Turn]


class ConversationDeleted(BaseModel):
    """The stored turns are gone: a later question under this id starts a new conversation."""

    conversation_id: str
    deleted: Literal[True] = True


OPTIONAL_ID: dict[str, Any] = {"pattern": OPTIONAL_ID_PATTERN}
"""An id that may be empty, as its default is: a default its own pattern refuses makes the document invalid."""
NAMES_AN_ANSWER: dict[str, Any] = {"not": {"properties": {"answer_id": {"maxLength": 0}, "trace_id": {"maxLength": 0}}}}
"""answer_id or trace_id given, in JSON Schema's words: not both missing or empty. Said with ``not`` rather than
an ``anyOf`` of two ``required``, which generated clients read as a union of two untyped bodies (no model)."""


class FeedbackRequest(BaseModel):
    """``POST /api/v1/feedback``: a rating of an answer, named by its answer_id or trace_id (one at least)."""

    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra=NAMES_AN_ANSWER)

    answer_id: Annotated[
        str,
        Field(description="The done event's answer_id; empty: not given.", json_schema_extra=OPTIONAL_ID),
        AfterValidator(known_id),
    ] = ""
    trace_id: Annotated[
        str,
        Field(description="The done event's trace_id; empty: not given.", json_schema_extra=OPTIONAL_ID),
        AfterValidator(known_id),
    ] = ""
    rating: Literal["up", "down"]
    comment: Annotated[
        str,
        Field(max_length=MAX_COMMENT_CHARS, json_schema_extra={"pattern": "^[^\\x00]*$"}),
        AfterValidator(no_nul),
    ] = ""

    @model_validator(mode="after")
    def names_an_answer(self) -> FeedbackRequest:
        if not self.answer_id and not self.trace_id:
            raise InvalidInput("'answer_id' or 'trace_id' is required")
        return self


class FeedbackResponse(BaseModel):
    feedback_id: int
    answer_id: str


class FeedbackItem(BaseModel):
    feedback_id: int
    answer_id: str
    trace_id: str
    rating: str
    comment: str
    created_unix_ms: int
    question: str
    answer: str
    citations: list[Citation]
    backend: str
    support: float
    no_answer: bool


class FeedbackList(BaseModel):
    """Stored ratings, newest first, with the answers they rate, and the counts per rating."""

    up: int
    down: int
    items: list[FeedbackItem]


class Alive(BaseModel):
    status: Literal["alive"] = "alive"


class Readiness(BaseModel):
    ready: bool
    upstreams: StringMap = Field(
        description="Each upstream's health status: SERVING when any of its replicas is (ready when every upstream is)."
    )
    replicas: dict[str, StringMap] = Field(
        description="Each upstream's replicas by address, each with its own health status (or the gRPC code of a "
        "check that failed: DEADLINE_EXCEEDED, UNAVAILABLE)."
    )
    detail: list[str] = Field(
        description="A line for each upstream with a replica that is not SERVING, naming it: "
        "'generation_svc: 1 of 2 replicas serving; 127.0.0.1:25574 DEADLINE_EXCEEDED'; a retrieval_svc replica adds "
        "why when it can: 'retrieval_svc: 0 of 1 replicas serving; 127.0.0.1:50051 NOT_SERVING (loading the index)'."
    )


class SignedIn(BaseModel):
    subject: str
    tenant: str
    groups: list[str]


class WhoAmI(BaseModel):
    auth: str = Field(description="apikey or jwt (LIKEOPT_AUTH).")
    principal: SignedIn | None = Field(description="Who the token names (jwt); null with API keys.")
    writer: bool = Field(description="The token has the writer role.")


class ServiceFigures(BaseModel):
    rss_mb: float | None
    cpu_percent: float | None


class RequestFigures(BaseModel):
    rps: float
    p50_ms: float | None
    p95_ms: float | None


class ChatFigures(BaseModel):
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None


class IndexCounts(BaseModel):
    documents: int
    chunks: int


class CacheFigures(BaseModel):
    hit_ratio: float | None
    hits: int
    misses: int
    by_layer: dict[str, int]
    l2_healthy: bool | None
    l2_configured: bool | None


class DashboardSnapshot(BaseModel):
    """The web dashboard's live figures; null where a service did not answer or nothing was measured yet."""

    index: IndexCounts | None
    services: dict[str, ServiceFigures]
    requests: RequestFigures
    chat: ChatFigures
    cache: CacheFigures


class ErrorDetail(BaseModel):
    code: str = Field(description="INVALID_ARGUMENT, UNAUTHENTICATED, NOT_FOUND… (a gRPC status name upstream).")
    message: str


class ErrorResponse(BaseModel):
    """Every error's body."""

    error: ErrorDetail
