"""``POST /api/v1/search``: the hot path. A repeated search is answered with the reply rendered the first time
(gateway/near_search.py), so a cache hit costs a key lookup and one byte concatenation, no JSON rendering."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends
from starlette.responses import Response

from gateway.auth import Reader, reader
from gateway.bodies import json_body, request_body
from gateway.convert import hit_json
from gateway.direct_route import DirectRoute
from gateway.errors import BODY_STATUSES, UPSTREAM_STATUSES, upstream_call
from gateway.fast_json import hits_json, search_body, search_head
from gateway.models import SearchRequest, SearchResponse
from gateway.routes import api_router
from gateway.state import Running
from likeopt.caching.cache_keys import normalise_query
from likeopt.runtime.contract import MODES
from likeopt.runtime.principal import forwarded, scope_of
from likeopt.runtime.telemetry import note_near_hit
from likeopt.v1 import retrieval_pb2

SEARCH_TIMEOUT_S = 10.0

router = api_router("search", reader, 401, *BODY_STATUSES, *UPSTREAM_STATUSES, route_class=DirectRoute)
"""Direct (gateway/direct_route.py): a cache hit must cost no more than it did before FastAPI."""


@router.post(
    "/search",
    summary="Rank passages for a query",
    response_model=SearchResponse,
    openapi_extra=request_body({"application/json": SearchRequest}),
)
async def search(
    body: Annotated[SearchRequest, Depends(json_body(SearchRequest))], principal: Reader, gateway: Running
) -> Response:
    """The top passages, each with its fused, BM25 and dense scores; ``cached`` when no search was needed."""
    started = time.perf_counter()
    filters = tuple(sorted(body.filters.items()))
    key = (normalise_query(body.query), body.top_k, body.mode, filters, body.per_document, scope_of(principal))
    head = gateway.near.lookup(key, body.min_index_version)
    if head is not None:
        note_near_hit("search")
    else:
        request = retrieval_pb2.SearchRequest(
            query=body.query,
            top_k=body.top_k,
            mode=MODES[body.mode],
            filters=body.filters,
            per_document=body.per_document,
            min_index_version=max(body.min_index_version, gateway.upstreams.least_version),
        )
        call = gateway.upstreams.retrieval.Search(request, timeout=SEARCH_TIMEOUT_S, metadata=forwarded(principal))
        reply = await upstream_call(call)
        hits = hits_json([hit_json(h) for h in reply.hits])
        gateway.near.remember(key, reply.index_version, hits)
        head = search_head(hits, reply.index_version, reply.cached)
    return Response(search_body(head, (time.perf_counter() - started) * 1000), media_type="application/json")
