from likeopt.v1 import retrieval_pb2 as _retrieval_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AnswerRequest(_message.Message):
    __slots__ = ("query", "conversation_id", "top_k", "mode", "history", "max_tokens", "stop", "turn_id", "after_turn_id", "min_index_version", "ephemeral")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_TURN_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    EPHEMERAL_FIELD_NUMBER: _ClassVar[int]
    query: str
    conversation_id: str
    top_k: int
    mode: _retrieval_pb2.SearchMode
    history: _containers.RepeatedCompositeFieldContainer[Turn]
    max_tokens: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    turn_id: str
    after_turn_id: str
    min_index_version: int
    ephemeral: bool
    def __init__(self, query: _Optional[str] = ..., conversation_id: _Optional[str] = ..., top_k: _Optional[int] = ..., mode: _Optional[_Union[_retrieval_pb2.SearchMode, str]] = ..., history: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ..., max_tokens: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., turn_id: _Optional[str] = ..., after_turn_id: _Optional[str] = ..., min_index_version: _Optional[int] = ..., ephemeral: _Optional[bool] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("query", "contexts", "max_tokens", "stop")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    query: str
    contexts: _containers.RepeatedCompositeFieldContainer[_retrieval_pb2.SearchHit]
    max_tokens: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, query: _Optional[str] = ..., contexts: _Optional[_Iterable[_Union[_retrieval_pb2.SearchHit, _Mapping]]] = ..., max_tokens: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ...) -> None: ...

class RetrievalEvent(_message.Message):
    __slots__ = ("hits", "index_version", "conversation_id", "another_question")
    HITS_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    ANOTHER_QUESTION_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[_retrieval_pb2.SearchHit]
    index_version: int
    conversation_id: str
    another_question: bool
    def __init__(self, hits: _Optional[_Iterable[_Union[_retrieval_pb2.SearchHit, _Mapping]]] = ..., index_version: _Optional[int] = ..., conversation_id: _Optional[str] = ..., another_question: _Optional[bool] = ...) -> None: ...

class DeltaEvent(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class CitationEvent(_message.Message):
    __slots__ = ("n", "doc_id", "chunk_id", "title", "text", "supported", "support", "withdrawn")
    N_FIELD_NUMBER: _ClassVar[int]
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWN_FIELD_NUMBER: _ClassVar[int]
    n: int
    doc_id: str
    chunk_id: str
    title: str
    text: str
    supported: bool
    support: float
    withdrawn: bool
    def __init__(self, n: _Optional[int] = ..., doc_id: _Optional[str] = ..., chunk_id: _Optional[str] = ..., title: _Optional[str] = ..., text: _Optional[str] = ..., supported: _Optional[bool] = ..., support: _Optional[float] = ..., withdrawn: _Optional[bool] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("retrieval_ms", "first_token_ms", "total_ms")
    RETRIEVAL_MS_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOKEN_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    retrieval_ms: float
    first_token_ms: float
    total_ms: float
    def __init__(self, retrieval_ms: _Optional[float] = ..., first_token_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class DoneEvent(_message.Message):
    __slots__ = ("conversation_id", "timings", "trace_id", "cached", "finish_reason", "prompt_tokens", "completion_tokens", "backend", "support", "no_answer", "answer_id", "citations", "small_talk", "source_ids")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    NO_ANSWER_FIELD_NUMBER: _ClassVar[int]
    ANSWER_ID_FIELD_NUMBER: _ClassVar[int]
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    SMALL_TALK_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IDS_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    timings: Timings
    trace_id: str
    cached: bool
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    backend: str
    support: float
    no_answer: bool
    answer_id: str
    citations: _containers.RepeatedCompositeFieldContainer[CitationEvent]
    small_talk: bool
    source_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, conversation_id: _Optional[str] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., trace_id: _Optional[str] = ..., cached: _Optional[bool] = ..., finish_reason: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., backend: _Optional[str] = ..., support: _Optional[float] = ..., no_answer: _Optional[bool] = ..., answer_id: _Optional[str] = ..., citations: _Optional[_Iterable[_Union[CitationEvent, _Mapping]]] = ..., small_talk: _Optional[bool] = ..., source_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ErrorEvent(_message.Message):
    __slots__ = ("code", "message", "retry_after_s")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    retry_after_s: float
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., retry_after_s: _Optional[float] = ...) -> None: ...

class AnswerEvent(_message.Message):
    __slots__ = ("retrieval", "delta", "citation", "done", "error")
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    CITATION_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    retrieval: RetrievalEvent
    delta: DeltaEvent
    citation: CitationEvent
    done: DoneEvent
    error: ErrorEvent
    def __init__(self, retrieval: _Optional[_Union[RetrievalEvent, _Mapping]] = ..., delta: _Optional[_Union[DeltaEvent, _Mapping]] = ..., citation: _Optional[_Union[CitationEvent, _Mapping]] = ..., done: _Optional[_Union[DoneEvent, _Mapping]] = ..., error: _Optional[_Union[ErrorEvent, _Mapping]] = ...) -> None: ...

class GetConversationRequest(_message.Message):
    __slots__ = ("conversation_id",)
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    def __init__(self, conversation_id: _Optional[str] = ...) -> None: ...

class DeleteConversationRequest(_message.Message):
    __slots__ = ("conversation_id",)
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    def __init__(self, conversation_id: _Optional[str] = ...) -> None: ...

class DeleteConversationReply(_message.Message):
    __slots__ = ("conversation_id",)
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    def __init__(self, conversation_id: _Optional[str] = ...) -> None: ...

class Turn(_message.Message):
    __slots__ = ("question", "answer", "citations", "created_unix_ms", "interrupted", "turn_id", "withdrawn", "source_ids")
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWN_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IDS_FIELD_NUMBER: _ClassVar[int]
    question: str
    answer: str
    citations: _containers.RepeatedCompositeFieldContainer[CitationEvent]
    created_unix_ms: int
    interrupted: bool
    turn_id: str
    withdrawn: bool
    source_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, question: _Optional[str] = ..., answer: _Optional[str] = ..., citations: _Optional[_Iterable[_Union[CitationEvent, _Mapping]]] = ..., created_unix_ms: _Optional[int] = ..., interrupted: _Optional[bool] = ..., turn_id: _Optional[str] = ..., withdrawn: _Optional[bool] = ..., source_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Conversation(_message.Message):
    __slots__ = ("conversation_id", "turns")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    turns: _containers.RepeatedCompositeFieldContainer[Turn]
    def __init__(self, conversation_id: _Optional[str] = ..., turns: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ...) -> None: ...

class CachedAnswer(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AnswerEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[AnswerEvent, _Mapping]]] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("answer_id", "trace_id", "rating", "comment")
    ANSWER_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    answer_id: str
    trace_id: str
    rating: str
    comment: str
    def __init__(self, answer_id: _Optional[str] = ..., trace_id: _Optional[str] = ..., rating: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class FeedbackReply(_message.Message):
    __slots__ = ("feedback_id", "answer_id")
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWER_ID_FIELD_NUMBER: _ClassVar[int]
    feedback_id: int
    answer_id: str
    def __init__(self, feedback_id: _Optional[int] = ..., answer_id: _Optional[str] = ...) -> None: ...

class ListFeedbackRequest(_message.Message):
    __slots__ = ("rating", "limit", "before_feedback_id")
    RATING_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    rating: str
    limit: int
    before_feedback_id: int
    def __init__(self, rating: _Optional[str] = ..., limit: _Optional[int] = ..., before_feedback_id: _Optional[int] = ...) -> None: ...

class FeedbackItem(_message.Message):
    __slots__ = ("feedback_id", "answer_id", "trace_id", "rating", "comment", "created_unix_ms", "question", "answer", "citations", "backend", "support", "no_answer")
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWER_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    NO_ANSWER_FIELD_NUMBER: _ClassVar[int]
    feedback_id: int
    answer_id: str
    trace_id: str
    rating: str
    comment: str
    created_unix_ms: int
    question: str
    answer: str
    citations: _containers.RepeatedCompositeFieldContainer[CitationEvent]
    backend: str
    support: float
    no_answer: bool
    def __init__(self, feedback_id: _Optional[int] = ..., answer_id: _Optional[str] = ..., trace_id: _Optional[str] = ..., rating: _Optional[str] = ..., comment: _Optional[str] = ..., created_unix_ms: _Optional[int] = ..., question: _Optional[str] = ..., answer: _Optional[str] = ..., citations: _Optional[_Iterable[_Union[CitationEvent, _Mapping]]] = ..., backend: _Optional[str] = ..., support: _Optional[float] = ..., no_answer: _Optional[bool] = ...) -> None: ...

class ListFeedbackReply(_message.Message):
    __slots__ = ("items", "up", "down")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    UP_FIELD_NUMBER: _ClassVar[int]
    DOWN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[FeedbackItem]
    up: int
    down: int
    def __init__(self, items: _Optional[_Iterable[_Union[FeedbackItem, _Mapping]]] = ..., up: _Optional[int] = ..., down: _Optional[int] = ...) -> None: ...
