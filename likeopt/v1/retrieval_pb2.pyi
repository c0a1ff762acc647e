from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HYBRID: _ClassVar[SearchMode]
    BM25: _ClassVar[SearchMode]
    DENSE: _ClassVar[SearchMode]

class FusionMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FUSION_DEFAULT: _ClassVar[FusionMethod]
    RRF: _ClassVar[FusionMethod]
    CONVEX: _ClassVar[FusionMethod]
HYBRID: SearchMode
BM25: SearchMode
DENSE: SearchMode
FUSION_DEFAULT: FusionMethod
RRF: FusionMethod
CONVEX: FusionMethod

class SearchRequest(_message.Message):
    __slots__ = ("query", "top_k", "mode", "fusion", "rrf_k", "alpha", "filters", "no_cache", "per_document", "return_query_embedding", "min_index_version")
    class FiltersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    RRF_K_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    PER_DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    RETURN_QUERY_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    MIN_INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    query: str
    top_k: int
    mode: SearchMode
    fusion: FusionMethod
    rrf_k: float
    alpha: float
    filters: _containers.ScalarMap[str, str]
    no_cache: bool
    per_document: bool
    return_query_embedding: bool
    min_index_version: int
    def __init__(self, query: _Optional[str] = ..., top_k: _Optional[int] = ..., mode: _Optional[_Union[SearchMode, str]] = ..., fusion: _Optional[_Union[FusionMethod, str]] = ..., rrf_k: _Optional[float] = ..., alpha: _Optional[float] = ..., filters: _Optional[_Mapping[str, str]] = ..., no_cache: _Optional[bool] = ..., per_document: _Optional[bool] = ..., return_query_embedding: _Optional[bool] = ..., min_index_version: _Optional[int] = ...) -> None: ...

class SearchBatchRequest(_message.Message):
    __slots__ = ("queries", "parameters")
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedScalarFieldContainer[str]
    parameters: SearchRequest
    def __init__(self, queries: _Optional[_Iterable[str]] = ..., parameters: _Optional[_Union[SearchRequest, _Mapping]] = ...) -> None: ...

class SearchBatchResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[SearchResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[SearchResponse, _Mapping]]] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("doc_id", "chunk_id", "title", "text", "score", "bm25_score", "dense_score", "bm25_rank", "dense_rank", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BM25_SCORE_FIELD_NUMBER: _ClassVar[int]
    DENSE_SCORE_FIELD_NUMBER: _ClassVar[int]
    BM25_RANK_FIELD_NUMBER: _ClassVar[int]
    DENSE_RANK_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    doc_id: str
    chunk_id: str
    title: str
    text: str
    score: float
    bm25_score: float
    dense_score: float
    bm25_rank: int
    dense_rank: int
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, doc_id: _Optional[str] = ..., chunk_id: _Optional[str] = ..., title: _Optional[str] = ..., text: _Optional[str] = ..., score: _Optional[float] = ..., bm25_score: _Optional[float] = ..., dense_score: _Optional[float] = ..., bm25_rank: _Optional[int] = ..., dense_rank: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "index_version", "cached", "took_ms", "query_embedding")
    HITS_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    TOOK_MS_FIELD_NUMBER: _ClassVar[int]
    QUERY_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    index_version: int
    cached: bool
    took_ms: float
    query_embedding: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., index_version: _Optional[int] = ..., cached: _Optional[bool] = ..., took_ms: _Optional[float] = ..., query_embedding: _Optional[_Iterable[float]] = ...) -> None: ...

class Document(_message.Message):
    __slots__ = ("id", "title", "text", "metadata", "access", "refuse_wider_access")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ACCESS_FIELD_NUMBER: _ClassVar[int]
    REFUSE_WIDER_ACCESS_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    text: str
    metadata: _containers.ScalarMap[str, str]
    access: Access
    refuse_wider_access: bool
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., text: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., access: _Optional[_Union[Access, _Mapping]] = ..., refuse_wider_access: _Optional[bool] = ...) -> None: ...

class Access(_message.Message):
    __slots__ = ("tenant", "users", "groups")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    users: _containers.RepeatedScalarFieldContainer[str]
    groups: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tenant: _Optional[str] = ..., users: _Optional[_Iterable[str]] = ..., groups: _Optional[_Iterable[str]] = ...) -> None: ...

class UpsertSummary(_message.Message):
    __slots__ = ("upserted", "chunks", "index_version", "skipped", "access_changes")
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    ACCESS_CHANGES_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    chunks: int
    index_version: int
    skipped: _containers.RepeatedCompositeFieldContainer[SkippedDocument]
    access_changes: _containers.RepeatedCompositeFieldContainer[AccessChange]
    def __init__(self, upserted: _Optional[int] = ..., chunks: _Optional[int] = ..., index_version: _Optional[int] = ..., skipped: _Optional[_Iterable[_Union[SkippedDocument, _Mapping]]] = ..., access_changes: _Optional[_Iterable[_Union[AccessChange, _Mapping]]] = ...) -> None: ...

class IngestProgress(_message.Message):
    __slots__ = ("ids", "chunks", "index_version", "skipped", "access_changes")
    IDS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    ACCESS_CHANGES_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    chunks: int
    index_version: int
    skipped: _containers.RepeatedCompositeFieldContainer[SkippedDocument]
    access_changes: _containers.RepeatedCompositeFieldContainer[AccessChange]
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., chunks: _Optional[int] = ..., index_version: _Optional[int] = ..., skipped: _Optional[_Iterable[_Union[SkippedDocument, _Mapping]]] = ..., access_changes: _Optional[_Iterable[_Union[AccessChange, _Mapping]]] = ...) -> None: ...

class AccessChange(_message.Message):
    __slots__ = ("id", "before", "after", "widened")
    ID_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    WIDENED_FIELD_NUMBER: _ClassVar[int]
    id: str
    before: str
    after: str
    widened: bool
    def __init__(self, id: _Optional[str] = ..., before: _Optional[str] = ..., after: _Optional[str] = ..., widened: _Optional[bool] = ...) -> None: ...

class SkippedDocument(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DeleteDocumentsRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteDocumentsResponse(_message.Message):
    __slots__ = ("deleted", "index_version", "skipped")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    index_version: int
    skipped: _containers.RepeatedCompositeFieldContainer[SkippedDocument]
    def __init__(self, deleted: _Optional[int] = ..., index_version: _Optional[int] = ..., skipped: _Optional[_Iterable[_Union[SkippedDocument, _Mapping]]] = ...) -> None: ...

class GetIndexStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchIndexRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IndexVersion(_message.Message):
    __slots__ = ("index_version",)
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    index_version: int
    def __init__(self, index_version: _Optional[int] = ...) -> None: ...

class IndexStatus(_message.Message):
    __slots__ = ("documents", "chunks", "index_version", "embedding_model", "embedding_dim", "vector_index", "ready", "bm25_chunks", "vector_chunks", "load_seconds", "waiting_for")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    VECTOR_INDEX_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    BM25_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    VECTOR_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    LOAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    documents: int
    chunks: int
    index_version: int
    embedding_model: str
    embedding_dim: int
    vector_index: str
    ready: bool
    bm25_chunks: int
    vector_chunks: int
    load_seconds: float
    waiting_for: str
    def __init__(self, documents: _Optional[int] = ..., chunks: _Optional[int] = ..., index_version: _Optional[int] = ..., embedding_model: _Optional[str] = ..., embedding_dim: _Optional[int] = ..., vector_index: _Optional[str] = ..., ready: _Optional[bool] = ..., bm25_chunks: _Optional[int] = ..., vector_chunks: _Optional[int] = ..., load_seconds: _Optional[float] = ..., waiting_for: _Optional[str] = ...) -> None: ...

class ListDocumentsRequest(_message.Message):
    __slots__ = ("limit", "after_id", "ids")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    limit: int
    after_id: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, limit: _Optional[int] = ..., after_id: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DocumentSummary(_message.Message):
    __slots__ = ("id", "title", "metadata", "chunks")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    metadata: _containers.ScalarMap[str, str]
    chunks: int
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., chunks: _Optional[int] = ...) -> None: ...

class ListDocumentsResponse(_message.Message):
    __slots__ = ("documents", "next_after_id", "total", "index_version")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[DocumentSummary]
    next_after_id: str
    total: int
    index_version: int
    def __init__(self, documents: _Optional[_Iterable[_Union[DocumentSummary, _Mapping]]] = ..., next_after_id: _Optional[str] = ..., total: _Optional[int] = ..., index_version: _Optional[int] = ...) -> None: ...

class GetDocumentRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DocumentChunk(_message.Message):
    __slots__ = ("chunk_id", "text")
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    chunk_id: str
    text: str
    def __init__(self, chunk_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class StoredDocument(_message.Message):
    __slots__ = ("id", "title", "metadata", "chunks", "index_version")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    metadata: _containers.ScalarMap[str, str]
    chunks: _containers.RepeatedCompositeFieldContainer[DocumentChunk]
    index_version: int
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., chunks: _Optional[_Iterable[_Union[DocumentChunk, _Mapping]]] = ..., index_version: _Optional[int] = ...) -> None: ...
