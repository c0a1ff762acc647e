"""Writes of one id by two tenants at once: the one checked first may not replace the other's document once that is
stored, whichever finishes embedding last. Both were told "upserted" while only one document survived, in the other
tenant's hands and with no access change named: an id is one namespace per deployment, so a write of an id another
tenant's document holds is skipped with that reason, however long its own embedding took."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import grpc
import numpy as np

from likeopt.runtime.config import Config
from likeopt.runtime.principal import PRINCIPAL_HEADER, tenant_reader_header
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from tests.unit.test_ingest_cli import JWT
from tests.unit.test_retrieval_harness import DictCache, FakeEmbedder, retrieval_port

TAKEN = "a document of another tenant than 'globex' has this id"


class HeldEmbedder(FakeEmbedder):
    """A FakeEmbedder that holds the embedding of any text holding ``word`` until released: a write caught between
    its checks and its store, while others go on."""

    def __init__(self, word: str) -> None:
        super().__init__()
        self.word = word
        self.held = threading.Event()
        """Set once such an embedding waits."""
        self.released = threading.Event()

    def encode(self, texts: list[str]) -> np.ndarray:
        if any(self.word in text for text in texts):
            self.held.set()
            if not self.released.wait(timeout=30):
                raise TimeoutError("the test never released the held embedding")
        return super().encode(texts)


def writer(tenant: str, subject: str) -> tuple[tuple[str, str], ...]:
    return ((PRINCIPAL_HEADER, tenant_reader_header(tenant, "tenant", subject)),)


def plan(text: str) -> retrieval_pb2.Document:
    return retrieval_pb2.Document(id="plan", title="Plan", text=text)


async def test_a_write_checked_before_another_tenant_stored_its_id_does_not_replace_that_document(
    tmp_path: Path,
) -> None:
    embedder = HeldEmbedder("globex")
    async with retrieval_port(tmp_path, embedder, DictCache(), Config.from_env(JWT)) as (_, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            gary = asyncio.ensure_future(
                stub.UpsertDocuments(iter([plan("The globex plan.")]), metadata=writer("globex", "gary"))
            )
            assert await asyncio.to_thread(embedder.held.wait, 30), "gary's write never reached its embedding"
            wendy = await stub.UpsertDocuments(iter([plan("The acme plan.")]), metadata=writer("acme", "wendy"))
            embedder.released.set()
            garys = await gary
            stored = await stub.GetDocument(retrieval_pb2.GetDocumentRequest(id="plan"))
    assert wendy.upserted == 1 and not wendy.skipped
    assert garys.upserted == 0 and [(s.id, s.reason) for s in garys.skipped] == [("plan", TAKEN)]
    assert [c.text for c in stored.chunks] == ["The acme plan."]


class HeldCheck:
    """Wraps an engine's ``accesses_of`` so that the next call after ``hold()`` reads, then waits until released: a
    delete caught between its check of whose the ids are and the delete itself."""

    def __init__(self, accesses_of: object) -> None:
        self.accesses_of = accesses_of
        self.holding = False
        self.held = threading.Event()
        self.released = threading.Event()

    def hold(self) -> None:
        self.holding = True

    def __call__(self, ids: list[str]) -> object:
        found = self.accesses_of(ids)  # type: ignore[operator]
        if self.holding:
            self.holding = False
            self.held.set()
            if not self.released.wait(timeout=30):
                raise TimeoutError("the test never released the held check")
        return found


async def test_a_delete_checked_before_another_tenant_stored_its_id_does_not_delete_that_document(
    tmp_path: Path,
) -> None:
    """globex's writer deletes "plan" while no document holds it; acme's writer stores its plan between that delete's
    check and the delete itself. The delete may not take acme's document with it."""
    async with retrieval_port(tmp_path, FakeEmbedder(), DictCache(), Config.from_env(JWT)) as (servicer, port):
        engine = servicer.engine
        check = HeldCheck(engine.accesses_of)
        engine.accesses_of = check  # type: ignore[method-assign,union-attr]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            check.hold()
            gary = asyncio.ensure_future(
                stub.DeleteDocuments(
                    retrieval_pb2.DeleteDocumentsRequest(ids=["plan"]), metadata=writer("globex", "gary")
                )
            )
            assert await asyncio.to_thread(check.held.wait, 30), "gary's delete never reached its check"
            wendy = asyncio.ensure_future(
                stub.UpsertDocuments(iter([plan("The acme plan.")]), metadata=writer("acme", "wendy"))
            )
            await asyncio.wait([wendy], timeout=2)  # done here only when writes do not wait for the delete
            check.released.set()
            await gary
            assert (await wendy).upserted == 1
            stored = await stub.GetDocument(retrieval_pb2.GetDocumentRequest(id="plan"))
    assert [c.text for c in stored.chunks] == ["The acme plan."]
