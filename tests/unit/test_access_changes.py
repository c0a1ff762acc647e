"""A write that changes who may read a stored document says so: in words an operator reads, in every write's reply
and in a WARNING line of retrieval_svc's log; a write that asks for it is refused, document by document, where it
would let in readers who may not read the document now (another tenant included)."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest

from likeopt.ops import ingest
from likeopt.runtime.config import Config
from likeopt.runtime.principal import PRINCIPAL_HEADER, tenant_reader_header
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from retrieval_svc.access import Access
from retrieval_svc.document_checks import UNCHECKABLE_WIDENING, UNSEEN_READERS
from tests.unit.test_ingest_cli import JWT
from tests.unit.test_retrieval_harness import DictCache, FakeEmbedder, retrieval_port, retrieval_server

OPS = Access.of("acme", [], ["ops"])


@pytest.mark.parametrize(
    ("access", "words"),
    [
        (Access(), "everyone"),
        (Access.of("acme", [], []), "everyone in acme"),
        (OPS, "acme: group ops"),
        (Access.of("acme", ["bob", "alice"], ["ops", "eng"]), "acme: groups eng, ops; users alice, bob"),
        (Access.of("", ["alice"], []), "user alice (any tenant)"),
        (Access.of("acme", [], [f"g{n:02d}" for n in range(12)]), "acme: groups g00, g01, g02, g03, g04 and 7 more"),
        (Access.of("big co", [], ["R&D, ops"]), "'big co': group 'R&D, ops'"),
        (Access.of("acme", ["eve\nrefused x"], []), "acme: user 'eve\\nrefused x'"),
    ],
)
def test_an_access_list_reads_as_words(access: Access, words: str) -> None:
    assert access.described() == words


@pytest.mark.parametrize(
    ("before", "after", "widens"),
    [
        (OPS, Access(), True),  # the audit's case: a run without options opened acme's ops document to all
        (OPS, Access.of("acme", [], []), True),
        (OPS, Access.of("globex", [], ["ops"]), True),  # moved to another tenant
        (OPS, Access.of("", [], ["ops"]), True),  # every tenant's ops group
        (OPS, Access.of("acme", [], ["eng", "ops"]), True),
        (OPS, Access.of("acme", ["bob"], []), True),  # whether bob is in ops is not known
        (OPS, OPS, False),
        (Access.of("acme", ["bob"], ["eng", "ops"]), OPS, False),
        (Access(), OPS, False),
        (Access(), Access.of("globex", [], []), False),
        (Access.of("acme", [], []), OPS, False),
        (Access.of("", ["alice"], []), Access.of("acme", ["alice"], []), False),
        (Access.of("", ["alice"], []), Access.of("acme", [], []), True),
    ],
)
def test_widening_is_letting_in_someone_who_may_not_read_it_now(before: Access, after: Access, widens: bool) -> None:
    assert after.widens(before) is widens


def doc(doc_id: str, access: Access | None = None, guarded: bool = False) -> retrieval_pb2.Document:
    message = retrieval_pb2.Document(id=doc_id, title=doc_id, text=f"Secret text of {doc_id}.")
    if access is not None:
        message.access.CopyFrom(retrieval_pb2.Access(tenant=access.tenant, users=access.users, groups=access.groups))
    message.refuse_wider_access = guarded
    return message


async def test_a_write_names_each_document_whose_readers_it_changed_and_logs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same upsert that opened acme's ops document to every tenant answered only "upserted 3"."""
    async with retrieval_server(tmp_path, FakeEmbedder(), DictCache()) as (_, stub):
        await stub.UpsertDocuments(iter([doc("vault", OPS), doc("same", OPS), doc("open")]))
        with caplog.at_level(logging.WARNING, logger="retrieval_svc.document_checks"):
            summary = await stub.UpsertDocuments(iter([doc("vault"), doc("same", OPS), doc("open", OPS), doc("new")]))
    assert summary.upserted == 4 and not summary.skipped
    changes = {c.id: (c.before, c.after, c.widened) for c in summary.access_changes}
    assert changes == {"vault": ("acme: group ops", "everyone", True), "open": ("everyone", "acme: group ops", False)}
    logged = [r for r in caplog.records if r.getMessage() == "document access changed"]
    assert [(r.levelno, r.fields["doc_id"], r.fields["before"], r.fields["after"]) for r in logged] == [  # type: ignore[attr-defined]
        (logging.WARNING, "vault", "acme: group ops", "everyone"),
        (logging.WARNING, "open", "everyone", "acme: group ops"),
    ]
    assert "Secret text" not in caplog.text


async def test_a_guarded_write_refuses_widening_document_by_document(tmp_path: Path) -> None:
    async with retrieval_server(tmp_path, FakeEmbedder(), DictCache()) as (_, stub):
        await stub.UpsertDocuments(iter([doc("vault", OPS), doc("plan", OPS), doc("open")]))
        run = [doc("vault", guarded=True), doc("plan", Access.of("globex", [], []), True)]
        run += [doc("open", OPS, True), doc("new", guarded=True)]
        summary = await stub.UpsertDocuments(iter(run))
        progress = [p async for p in stub.IngestDocuments(iter([doc("vault", guarded=True)]))]
    refused = {s.id: s.reason for s in summary.skipped}
    assert set(refused) == {"vault", "plan"} and summary.upserted == 2  # narrowing one, adding one: stored
    assert refused["vault"].endswith('"acme: group ops" → "everyone"')
    assert refused["plan"].endswith('"acme: group ops" → "everyone in globex"')
    assert [(c.id, c.widened) for c in summary.access_changes] == [("open", False)]
    assert [s.id for p in progress for s in p.skipped] == ["vault"] and not any(p.ids for p in progress)


async def test_a_tenant_s_writer_is_refused_another_tenant_s_id_and_told_of_its_own_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wendy = ((PRINCIPAL_HEADER, tenant_reader_header("acme", "tenant", "wendy")),)
    async with retrieval_port(tmp_path, FakeEmbedder(), DictCache(), Config.from_env(JWT)) as (_, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            await stub.UpsertDocuments(iter([doc("theirs", Access.of("globex", [], [])), doc("shift", OPS)]))
            with caplog.at_level(logging.WARNING, logger="retrieval_svc.document_checks"):
                summary = await stub.UpsertDocuments(iter([doc("theirs"), doc("shift")]), metadata=wendy)
    assert [(s.id, s.reason) for s in summary.skipped] == [
        ("theirs", "a document of another tenant than 'acme' has this id")
    ]
    assert [(c.id, c.before, c.after) for c in summary.access_changes] == [
        ("shift", UNSEEN_READERS, "everyone in acme")  # wendy is not in ops: see the test below
    ]
    [logged] = [r.fields for r in caplog.records if r.getMessage() == "document access changed"]  # type: ignore[attr-defined]
    assert (logged["doc_id"], logged["writer"], logged["writer_tenant"]) == ("shift", "wendy", "acme")


async def test_a_tenant_s_writer_is_not_told_who_may_read_a_document_it_replaced_and_may_not_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Wendy (acme, in no group) manages acme's documents, ones hidden from her too, but a write's reply must not
    name who may read one she may not: not in access_changes, nor in the refusal of a guarded write, which is
    refused whatever its access (refused only when it widened, each probe would tell her one more name). The
    audit line keeps the whole list; a document she may read is told as before."""
    wendy = ((PRINCIPAL_HEADER, tenant_reader_header("acme", "tenant", "wendy")),)
    hidden = Access.of("acme", ["alice"], ["hr-secret"])
    async with retrieval_port(tmp_path, FakeEmbedder(), DictCache(), Config.from_env(JWT)) as (_, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            await stub.UpsertDocuments(iter([doc("pay", hidden), doc("vault", hidden), doc("rota", OPS)]))
            await stub.UpsertDocuments(iter([doc("open", Access.of("acme", [], []))]))
            with caplog.at_level(logging.WARNING, logger="retrieval_svc.document_checks"):
                run = [doc("pay", OPS), doc("open", OPS), doc("vault", hidden, guarded=True)]
                summary = await stub.UpsertDocuments(iter(run), metadata=wendy)
                probe = await stub.UpsertDocuments(iter([doc("rota", Access.of("acme", [], []), True)]), metadata=wendy)
    changes = {c.id: (c.before, c.after, c.widened) for c in summary.access_changes}
    assert changes == {
        "pay": (UNSEEN_READERS, "acme: group ops", True),
        "open": ("everyone in acme", "acme: group ops", False),  # she could read it: told as it was
    }
    assert [(s.id, s.reason) for s in [*summary.skipped, *probe.skipped]] == [
        ("vault", UNCHECKABLE_WIDENING),
        ("rota", UNCHECKABLE_WIDENING),
    ]
    assert "alice" not in str(summary) and "hr-secret" not in str(summary) and "ops" not in str(probe)
    audit = [r.fields for r in caplog.records if r.getMessage() == "document access changed"]  # type: ignore[attr-defined]
    logged = {fields["doc_id"]: fields["before"] for fields in audit}
    assert logged == {"pay": "acme: group hr-secret; user alice", "open": "everyone in acme"}


def test_the_ingest_report_names_changes_and_widening_refusals_within_a_cap(capsys: pytest.CaptureFixture) -> None:
    summary = retrieval_pb2.UpsertSummary(upserted=25)
    for n in range(25):
        summary.access_changes.add(id=f"d{n}", before="acme: group ops", after="everyone", widened=True)
    summary.skipped.add(id="vault", reason=f'{ingest.WIDER_ACCESS_REFUSED}: "acme: group ops" → "everyone"')
    summary.skipped.add(id="", reason="id is empty")
    ingest.report(summary, [], [])
    lines = capsys.readouterr().out.splitlines()
    assert '  refused vault: this write would let in readers who may not read the stored document now: "acme:' in (
        "\n".join(lines)
    )
    assert "  refused (no id): id is empty" in lines and any("--change-access" in line for line in lines)
    changed = [line for line in lines if line.startswith("  readers changed for ")]
    assert changed[0] == '  readers changed for d0: "acme: group ops" → "everyone" (more readers now)'
    assert len(changed) == ingest.ACCESS_LINES
    assert lines[-1] == "  … and 5 more documents had their readers changed (retrieval_svc's log names each)"
