"""Hypothesis-generated messages to every gRPC method: clear client errors at worst, never INTERNAL.

Messages are built from the protobuf descriptors, so a new field or method is
fuzzed without touching this file. Document ids are prefixed so the fuzzing
never touches the corpus the other tests rely on, and every document it stored
is deleted afterwards (random text can outrank real documents in later tests).
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import descriptor as d
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from likeopt.v1 import cache_pb2, generation_pb2, retrieval_pb2, retrieval_pb2_grpc
from tests.support import MeshProcess

CLIENT_ERRORS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.UNAUTHENTICATED,  # an administrative read without the API key (ListFeedback)
}
FUZZ_PREFIX = "fuzz-"
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
SCALARS = {
    d.FieldDescriptor.TYPE_STRING: TEXT,
    d.FieldDescriptor.TYPE_BYTES: st.binary(max_size=300),
    d.FieldDescriptor.TYPE_BOOL: st.booleans(),
    d.FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    d.FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    d.FieldDescriptor.TYPE_FLOAT: st.floats(width=32),
    d.FieldDescriptor.TYPE_DOUBLE: st.floats(),
}
SERVICES = [
    ("retrieval", retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalService"]),
    ("generation", generation_pb2.DESCRIPTOR.services_by_name["GenerationService"]),
    ("cache", cache_pb2.DESCRIPTOR.services_by_name["CacheService"]),
]
METHODS = [(port, method) for port, service in SERVICES for method in service.methods]
ENDLESS = {"WatchIndex"}
"""Server streams that never end by themselves: the first reply shows the request was understood."""


def field_values(field: d.FieldDescriptor, depth: int) -> st.SearchStrategy:
    if field.name in ("id", "ids", "doc_id"):
        return TEXT.map(lambda text: FUZZ_PREFIX + text)
    if field.type == d.FieldDescriptor.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1)
    if field.type == d.FieldDescriptor.TYPE_ENUM:
        return st.integers(-3, 8)  # open enums: unknown values must be refused cleanly
    return SCALARS[field.type]


def messages(descriptor: d.Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of any shape the descriptor allows (nested up to depth 2)."""
    cls = GetMessageClass(descriptor)
    if depth > 2:
        return st.just(cls())
    fields = {}
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            fields[field.name] = st.dictionaries(field_values(key, depth), field_values(value, depth), max_size=3)
        elif field.is_repeated:
            fields[field.name] = st.lists(field_values(field, depth), max_size=3)
        else:
            fields[field.name] = field_values(field, depth)
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: cls(**values))


STORED_IDS: set[str] = set()
"""Ids of every document sent to the mesh, deleted when the module is done."""


def call(channel: grpc.Channel, service: d.ServiceDescriptor, method: d.MethodDescriptor, request: object) -> None:
    """Call the method with request (a list of messages for client streams); raise on a bad status."""
    path = f"/{service.full_name}/{method.name}"
    if method.input_type.full_name == retrieval_pb2.Document.DESCRIPTOR.full_name:
        STORED_IDS.update(doc.id for doc in request)  # type: ignore[attr-defined]
    output = GetMessageClass(method.output_type)
    kwargs = {"request_serializer": lambda m: m.SerializeToString(), "response_deserializer": output.FromString}
    if method.client_streaming:
        channel.stream_unary(path, **kwargs)(iter(request), timeout=30)  # type: ignore[arg-type]
    elif method.server_streaming:
        replies = channel.unary_stream(path, **kwargs)(request, timeout=60)
        if method.name in ENDLESS:
            next(replies)
            replies.cancel()
            return
        for _ in replies:
            pass
    else:
        channel.unary_unary(path, **kwargs)(request, timeout=30)


@pytest.fixture(scope="module")
def channels(mesh: MeshProcess) -> Iterator[dict[str, grpc.Channel]]:
    opened = {name: grpc.insecure_channel(f"127.0.0.1:{mesh.port(name)}") for name, _ in SERVICES}
    yield opened
    if STORED_IDS:
        retrieval_pb2_grpc.RetrievalServiceStub(opened["retrieval"]).DeleteDocuments(
            retrieval_pb2.DeleteDocumentsRequest(ids=sorted(STORED_IDS)), timeout=60
        )
    for channel in opened.values():
        channel.close()


@pytest.mark.parametrize(("service_name", "method"), METHODS, ids=[m.full_name for _, m in METHODS])
def test_any_message_gets_a_clear_answer(
    channels: dict[str, grpc.Channel], service_name: str, method: d.MethodDescriptor
) -> None:
    service = method.containing_service
    channel = channels[service_name]
    strategy = messages(method.input_type)
    if method.client_streaming:
        strategy = st.lists(strategy, max_size=3)

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(request=strategy)
    def check(request: object) -> None:
        try:
            call(channel, service, method, request)
        except grpc.RpcError as exc:
            assert exc.code() in CLIENT_ERRORS, f"{exc.code().name}: {exc.details()}"

    check()
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
