"""Every field of a REST search or chat request reaches the gRPC request the gateway sends for it.

The gateway builds each gRPC request field by field, so a field added to the REST model alone is accepted, shown in
the OpenAPI document and silently ignored; these tests send every field with a value other than its default and
find each in the request a real gRPC server receives (CONTRIBUTING.md, "A new field on an RPC")."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from pydantic import BaseModel
from starlette.testclient import TestClient

from gateway.app import build_app
from gateway.models import ChatRequest, SearchRequest
from likeopt.runtime.config import Config
from likeopt.v1 import generation_pb2, generation_pb2_grpc, retrieval_pb2, retrieval_pb2_grpc

SEARCH = {
    "query": "what is asked",
    "top_k": 3,
    "mode": "bm25",
    "filters": {"team": "search"},
    "per_document": True,
    "min_index_version": 7,
}
CHAT = {
    "query": "what is asked",
    "conversation_id": "c-1",
    "top_k": 3,
    "mode": "dense",
    "max_tokens": 40,
    "stop": ["END"],
    "min_index_version": 7,
}


class Recorder(retrieval_pb2_grpc.RetrievalServiceServicer, generation_pb2_grpc.GenerationServiceServicer):
    """Keeps every Search and Answer request it is sent, and answers each with nothing."""

    def __init__(self) -> None:
        self.requests: list[Message] = []

    def Search(self, request: retrieval_pb2.SearchRequest, context: Any) -> retrieval_pb2.SearchResponse:
        self.requests.append(request)
        return retrieval_pb2.SearchResponse(index_version=request.min_index_version)

    def Answer(self, request: generation_pb2.AnswerRequest, context: Any) -> Iterator[generation_pb2.AnswerEvent]:
        self.requests.append(request)
        return iter(())


@contextmanager
def gateway_over(recorder: Recorder) -> Iterator[TestClient]:
    """The gateway app whose retrieval_svc and generation_svc are the recorder on a real loopback gRPC server."""
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(recorder, server)
    generation_pb2_grpc.add_GenerationServiceServicer_to_server(recorder, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    settings = {"LIKEOPT_RETRIEVAL_ADDR": address, "LIKEOPT_GENERATION_ADDR": address, "LIKEOPT_CACHE_ADDR": address}
    try:
        with TestClient(build_app(Config.from_env(settings))) as client:
            yield client
    finally:
        server.stop(0)


def unforwarded(model: type[BaseModel], sent: Message) -> list[str]:
    """The model's fields whose value is not in the gRPC request sent: no field of that name, or left unset."""
    fields = sent.DESCRIPTOR.fields_by_name
    return [name for name in model.model_fields if name not in fields or not is_set(sent, fields[name])]


def is_set(sent: Message, field: FieldDescriptor) -> bool:
    """Whether sent carries a value for field: present, or (without presence) not empty and not zero."""
    return sent.HasField(field.name) if field.has_presence else bool(getattr(sent, field.name))


def test_every_search_field_reaches_retrieval_svc() -> None:
    assert set(SEARCH) == set(SearchRequest.model_fields), "give SEARCH a value other than the default of each field"
    recorder = Recorder()
    with gateway_over(recorder) as client:
        assert client.post("/api/v1/search", json=SEARCH).status_code == 200
    (sent,) = recorder.requests
    assert not unforwarded(SearchRequest, sent), (
        f"{unforwarded(SearchRequest, sent)} of POST /api/v1/search never reach retrieval_svc: copy each"
        " into the SearchRequest built in gateway/routes/search.py"
    )


def test_every_chat_field_reaches_generation_svc() -> None:
    assert set(CHAT) == set(ChatRequest.model_fields), "give CHAT a value other than the default of each field"
    recorder = Recorder()
    with gateway_over(recorder) as client:
        client.post("/api/v1/chat", json=CHAT)
    (sent,) = recorder.requests
    assert not unforwarded(ChatRequest, sent), (
        f"{unforwarded(ChatRequest, sent)} of POST /api/v1/chat never reach generation_svc: copy each into"
        " the AnswerRequest built in gateway/routes/chat.py"
    )
