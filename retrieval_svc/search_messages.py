"""Search messages to and from the backends' types: a request's validated SearchParams, ranked chunks as the
SearchResponse clients receive."""

from __future__ import annotations

from likeopt.runtime.config import Config
from likeopt.runtime.contract import SEARCH_TOP_K, check_fusion, check_mode
from likeopt.runtime.principal import Reader
from likeopt.v1 import retrieval_pb2
from retrieval_svc.backend import ChunkHit, SearchParams


def search_params(request: retrieval_pb2.SearchRequest, config: Config, reader: Reader | None = None) -> SearchParams:
    """Validated parameters of a search request, defaults filled in; reader restricts it to what it may read."""
    top_k = SEARCH_TOP_K.check(request.top_k)
    mode = check_mode(request.mode)
    fusion = {retrieval_pb2.RRF: "rrf", retrieval_pb2.CONVEX: "convex"}.get(request.fusion, config.fusion)
    alpha = request.alpha if request.HasField("alpha") else config.fusion_alpha
    rrf_k = request.rrf_k or config.rrf_k
    check_fusion(alpha, rrf_k)
    return SearchParams(
        top_k=top_k,
        mode=mode,
        fusion=fusion,
        rrf_k=rrf_k,
        alpha=alpha,
        filters=tuple(sorted(request.filters.items())),
        per_document=request.per_document,
        reader=reader,
        document_weight=config.document_weight,
    )


def hit_message(hit: ChunkHit) -> retrieval_pb2.SearchHit:
    """A ranked chunk as the SearchHit clients receive, text and document fields included."""
    return retrieval_pb2.SearchHit(
        doc_id=hit.doc_id,
        chunk_id=f"{hit.doc_id}#{hit.ordinal}",
        title=hit.title,
        text=hit.text,
        score=hit.score,
        bm25_score=hit.bm25_score,
        dense_score=hit.dense_score,
        bm25_rank=hit.bm25_rank,
        dense_rank=hit.dense_rank,
        metadata=hit.metadata,
    )


def search_response(version: int, hits: list[ChunkHit]) -> retrieval_pb2.SearchResponse:
    return retrieval_pb2.SearchResponse(index_version=version, hits=[hit_message(hit) for hit in hits])
