"""gRPC peers for health-checking tests: one whose health says a given status (a retrieval_svc telling its index
status, too), one that never answers."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent import futures
from contextlib import AbstractContextManager, contextmanager

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc


@contextmanager
def health_server(status: int, retrieval: retrieval_pb2_grpc.RetrievalServiceServicer | None = None) -> Iterator[str]:
    """A replica whose whole-server health says status (serving retrieval too, if given); yields its address."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set("", status)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if retrieval is not None:
        retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(retrieval, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


@contextmanager
def frozen_server() -> Iterator[str]:
    """A replica that takes connections and never answers, as a frozen (SIGSTOPped) or hung process does."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        yield f"127.0.0.1:{listening.getsockname()[1]}"


class IndexStatusServicer(retrieval_pb2_grpc.RetrievalServiceServicer):
    """GetIndexStatus answers the status given, or fails with the code given (naming a backend's address, as
    retrieval_svc's errors do)."""

    def __init__(self, status: retrieval_pb2.IndexStatus | grpc.StatusCode) -> None:
        self.status = status

    def GetIndexStatus(self, request: object, context: grpc.ServicerContext) -> retrieval_pb2.IndexStatus:
        if isinstance(self.status, grpc.StatusCode):
            context.abort(self.status, "Milvus at LIKEOPT_MILVUS_URI=http://10.0.0.9:19530 is unavailable")
        return self.status


def retrieval_not_serving(status: retrieval_pb2.IndexStatus | grpc.StatusCode) -> AbstractContextManager[str]:
    """A retrieval_svc replica whose health says NOT_SERVING and whose GetIndexStatus says status."""
    return health_server(health_pb2.HealthCheckResponse.NOT_SERVING, IndexStatusServicer(status))
