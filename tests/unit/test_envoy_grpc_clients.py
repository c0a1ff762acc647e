"""What gRPC clients other than Python's put on the wire, through a real Envoy to a real gRPC server.

grpcio's clients send every header gRPC's HTTP/2 mapping asks for; clients in other languages, and the proxies and
hand-written HTTP/2 clients in front of them, do not always. gRPC calls are written frame by frame with h2, so
each test sends exactly the headers such a client does.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.events
import httpx
import pytest

from likeopt.ops.envoy.grpc_only import NOT_GRPC_WORDS
from likeopt.runtime.config import Config
from likeopt.runtime.grpc_server import SERVER_OPTIONS
from tests.unit.test_envoy_config import (  # gateway: the fake gateway's fixture, used by name
    ENVOY,
    NO_ENVOY,
    EnvoyProcess,
    envoy_environment,
    gateway,  # noqa: F401
    start_envoy,
)

EMPTY_MESSAGE = b"\0\0\0\0\0"
"""One gRPC message frame holding an empty protobuf message (no compression, length 0)."""
UNIMPLEMENTED = str(grpc.StatusCode.UNIMPLEMENTED.value[0])
"""What a gRPC server with no services answers any method: the proof that the call reached it."""
INTERNAL = str(grpc.StatusCode.INTERNAL.value[0])
GRPC_ROUTES = (
    "/likeopt.v1.RetrievalService/Search",
    "/likeopt.v1.RetrievalService/SearchBatch",
    "/likeopt.v1.RetrievalService/GetIndexStatus",
    "/likeopt.v1.GenerationService/Answer",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/grpc.health.v1.Health/Check",
)
"""A path of each route Envoy sends to the gRPC services (the writer's needs the API key)."""
API_KEY = "s3cret"
WITH_KEY = [("authorization", f"Bearer {API_KEY}")]


@pytest.fixture(scope="module")
def envoy_to_bare_servers(gateway, tmp_path_factory) -> Iterator[EnvoyProcess]:  # noqa: F811
    """Envoy whose retrieval and generation upstreams are one real gRPC server that serves no service, set up as the
    services' servers are."""
    if ENVOY is None:
        pytest.skip(NO_ENVOY)
    bare = grpc.server(ThreadPoolExecutor(max_workers=2), options=SERVER_OPTIONS)
    address = f"127.0.0.1:{bare.add_insecure_port('127.0.0.1:0')}"
    bare.start()
    upstreams = {"LIKEOPT_RETRIEVAL_ADDR": address, "LIKEOPT_GENERATION_ADDR": address, "LIKEOPT_API_KEY": API_KEY}
    config = Config.from_env(envoy_environment(gateway.port, **upstreams))
    proc = start_envoy(config, Path(tmp_path_factory.mktemp("envoy-grpc-clients")))
    try:
        yield proc
    finally:
        proc.stop()
        bare.stop(0)


def h2c_grpc_status(port: int, path: str, headers: list[tuple[str, str]]) -> str | None:
    """The grpc-status of one gRPC call over cleartext HTTP/2 with exactly these headers besides the pseudo-headers
    and content-type (from the trailers, or from the headers of a trailers-only reply); None if the stream was reset.
    """
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    request = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", f"127.0.0.1:{port}")]
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        connection.initiate_connection()
        connection.send_headers(1, [*request, ("content-type", "application/grpc"), *headers])
        connection.send_data(1, EMPTY_MESSAGE, end_stream=True)
        sock.sendall(connection.data_to_send())
        while data := sock.recv(65536):
            for event in connection.receive_data(data):
                if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    status = dict(event.headers).get("grpc-status")
                    if status is not None:
                        return status
                elif isinstance(event, h2.events.StreamReset):
                    return None
            sock.sendall(connection.data_to_send())
    return None


@pytest.mark.parametrize("path", GRPC_ROUTES)
def test_a_call_without_te_trailers_reaches_the_service(envoy_to_bare_servers, path):
    """gRPC servers reset a request without ``te: trailers``, which a client that leaves it out (or a proxy that drops
    it, as a hop-by-hop header) read as UNAVAILABLE, "the service cannot be reached", and retried, while the service
    was up: Envoy sends it to the services on every gRPC route."""
    port = envoy_to_bare_servers.port
    assert h2c_grpc_status(port, path, [("te", "trailers"), *WITH_KEY]) == UNIMPLEMENTED  # answered upstream
    assert h2c_grpc_status(port, path, WITH_KEY) == UNIMPLEMENTED


BROWSER_ORIGIN = {"origin": "http://localhost:5173"}
"""An origin the default CORS policy allows (a web app's dev server)."""
NOT_GRPC = {
    "Connect, JSON": {"content-type": "application/json", "connect-protocol-version": "1"},
    "Connect, binary": {"content-type": "application/proto", "connect-protocol-version": "1"},
    "no content type": {},
}
"""Requests on a gRPC method's path in what the port does not speak: Connect's unary calls, a hand-made POST."""


@pytest.mark.parametrize("headers", NOT_GRPC.values(), ids=NOT_GRPC.keys())
@pytest.mark.parametrize("path", GRPC_ROUTES)
def test_a_call_in_another_protocol_is_told_what_the_port_speaks(envoy_to_bare_servers, path, headers):
    """The services read any body as gRPC frames: a Connect call's bare message hung until Envoy gave up on it (or
    was reset and read as "the service cannot be reached"). It is refused at once, readable from a browser, ahead of
    the API key's refusal (no key is sent)."""
    url = f"{envoy_to_bare_servers.url}{path}"
    reply = httpx.post(url, content=b'{"query": "q"}', headers={**headers, **BROWSER_ORIGIN}, timeout=15)
    assert reply.status_code == 415, reply.text
    assert reply.json() == {"code": "unimplemented", "message": NOT_GRPC_WORDS}  # what Connect's clients read
    assert reply.headers.get("access-control-allow-origin") == BROWSER_ORIGIN["origin"]


def test_one_client_s_bad_binary_metadata_leaves_the_next_calls_alone(envoy_to_bare_servers):
    """gRPC's HPACK decoder keeps a -bin value's parse error with the header's dynamic-table entry: after one client
    sent a value that is not base64, every later call on Envoy's shared connection to the service that carried the
    same header (grpc-trace-bin from an OpenCensus client, say), from any client, failed INTERNAL."""
    port, path = envoy_to_bare_servers.port, GRPC_ROUTES[0]
    assert h2c_grpc_status(port, path, [("grpc-trace-bin", "not base64!")]) == INTERNAL
    for value in ("AAEC/w", "AAECAw==", "AAECBA"):  # unpadded (as grpc-go sends it) and padded
        assert h2c_grpc_status(port, path, [("grpc-trace-bin", value)]) == UNIMPLEMENTED, value
