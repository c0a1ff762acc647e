"""``likeopt ingest`` and ``up`` end with a clear error, never a hang or success, when they cannot do their work."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from likeopt.ops import cli, ingest
from likeopt.ops.cli import main
from likeopt.ops.dir_lock import FolderUnusable, release
from likeopt.ops.launch_error import LaunchError
from likeopt.ops.launcher import ingest_once_up, locked_folders
from likeopt.runtime.config import Config
from likeopt.runtime.loaders import load_content, to_message
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from tests.unit.test_retrieval_harness import DictCache, FakeEmbedder, retrieval_port


def unused_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def test_a_path_that_does_not_exist_is_an_error_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "real.md").write_text("# Real\n\nA document.")
    with pytest.raises(SystemExit) as ended:
        main(["ingest", str(tmp_path / "real.md"), str(tmp_path / "typo.md")])
    assert ended.value.code == 2 and "no such file or folder" in capsys.readouterr().err


def test_an_unreachable_retrieval_svc_ends_the_run_with_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "real.md").write_text("# Real\n\nA document.")
    monkeypatch.setattr(ingest, "CONNECT_TIMEOUT_S", 0.5)
    monkeypatch.setenv("LIKEOPT_RETRIEVAL_ADDR", unused_address())
    with pytest.raises(SystemExit) as ended:
        main(["ingest", "--quiet", str(tmp_path / "real.md")])
    assert isinstance(ended.value.code, str) and "did not answer" in ended.value.code


def test_an_access_list_retrieval_svc_would_refuse_is_an_error_before_anything_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every document of the run carries the options' list, so one too long was refused once per file, after each
    was read and sent."""
    (tmp_path / "real.md").write_text("# Real\n\nA document.")
    monkeypatch.setattr(ingest, "CONNECT_TIMEOUT_S", 0.5)
    monkeypatch.setenv("LIKEOPT_RETRIEVAL_ADDR", unused_address())
    groups = [arg for n in range(1001) for arg in ("--allow-group", f"group-{n}")]
    for options in (["--tenant", "acme", *groups], ["--allow-group", "g" * 257], ["--allow-user", " "]):
        with pytest.raises(SystemExit) as ended:
            main(["ingest", "--quiet", *options, str(tmp_path / "real.md")])
        error = capsys.readouterr().err
        assert ended.value.code == 2 and "--allow-group" in error and "nothing was ingested" in error, error


def test_up_refuses_an_ingest_path_that_does_not_exist_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as ended:
        main(["up", "--ingest", str(tmp_path / "typo")])
    error = capsys.readouterr().err
    assert ended.value.code == 2 and "--ingest: no such file or folder" in error and "nothing was started" in error


class RefusesUploads(retrieval_pb2_grpc.RetrievalServiceServicer):
    def IngestDocuments(self, request_iterator, context):  # type: ignore[no-untyped-def]
        next(request_iterator)
        context.abort(grpc.StatusCode.UNAVAILABLE, "the store is read-only")


def test_a_failed_ingest_in_up_is_a_launch_error_that_names_the_cause(tmp_path: Path) -> None:
    """`likeopt up --ingest` stops the mesh with the reason (exit 1), not a traceback beside a running mesh."""
    (tmp_path / "real.md").write_text("# Real\n\nA document.")
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(RefusesUploads(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with pytest.raises(LaunchError) as failed:
            ingest_once_up([str(tmp_path / "real.md")], f"127.0.0.1:{port}")
    finally:
        server.stop(0)
    assert str(failed.value).startswith("ingest: retrieval_svc at 127.0.0.1:")
    assert "UNAVAILABLE: the store is read-only" in str(failed.value)


class HoldsUploads(retrieval_pb2_grpc.RetrievalServiceServicer):
    """Reads the first document, then holds the call open until the server stops."""

    def __init__(self) -> None:
        self.reading = threading.Event()

    def IngestDocuments(self, request_iterator, context):  # type: ignore[no-untyped-def]
        next(request_iterator)
        self.reading.set()
        while context.is_active():
            time.sleep(0.05)
        return iter(())


def test_an_upload_cut_off_by_retrieval_svcs_stop_says_so_not_in_grpcs_words(tmp_path: Path) -> None:
    """A stop whose grace ends mid-upload ends the call with gRPC's "Cancelling all calls": the operator must read
    that retrieval_svc stopped and that running the command again is safe."""
    (tmp_path / "real.md").write_text("# Real\n\nA document.")
    holding = HoldsUploads()
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(holding, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with ThreadPoolExecutor(max_workers=1) as client:
        upload = client.submit(ingest.ingest_paths, [str(tmp_path / "real.md")], f"127.0.0.1:{port}", True)
        assert holding.reading.wait(30), "the upload never reached the server"
        server.stop(0).wait(30)
        with pytest.raises(ingest.IngestFailed) as failed:
            upload.result(30)
    said = str(failed.value)
    assert "retrieval_svc at 127.0.0.1:" in said and "stopped before it answered" in said, said
    assert "Cancelling" not in said and "run the command again" in said, said


def test_a_second_launcher_on_the_same_folders_is_refused_at_once(tmp_path: Path) -> None:
    """Two meshes on one store diverged, and one restarted its Envoy from the other's rendered configuration."""
    config = Config.from_env({"LIKEOPT_DATA_DIR": str(tmp_path / "data"), "LIKEOPT_RUN_DIR": str(tmp_path / "run")})
    held = locked_folders(config)
    try:
        with pytest.raises(
            FolderUnusable, match=rf"LIKEOPT_DATA_DIR={tmp_path / 'data'} is in use .*pid {os.getpid()}"
        ):
            locked_folders(config)
        other_data = config.replace(data_dir=tmp_path / "other")
        with pytest.raises(FolderUnusable, match="LIKEOPT_RUN_DIR="):
            locked_folders(other_data)
    finally:
        release(held)
    release(locked_folders(config))  # free again once the first let go
    same = Config.from_env({"LIKEOPT_DATA_DIR": str(tmp_path / "one"), "LIKEOPT_RUN_DIR": str(tmp_path / "one")})
    release(locked_folders(same))  # one folder given as both is one lock, not a conflict with itself


def test_a_folder_that_cannot_be_made_is_named_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    config = Config.from_env({"LIKEOPT_DATA_DIR": str(tmp_path / "a-file" / "data")})
    with pytest.raises(FolderUnusable, match=r"LIKEOPT_DATA_DIR=.*a-file/data cannot be used"):
        locked_folders(config)


async def test_a_file_an_earlier_release_stored_under_its_bare_name_is_pointed_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Re-ingested after an upgrade, it was stored again beside its old copy, which kept its old text and readers
    (restricting it by ingesting it again left the old copy readable) without a word."""
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "salaries.md").write_text("# Salaries\n\nThe bands for 2026.\n")
    (tmp_path / "kb" / "rota.md").write_text("# Rota\n\nWho is on call.\n")
    async with retrieval_port(tmp_path / "data", FakeEmbedder(), DictCache()) as (_, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            old = retrieval_pb2.Document(id="salaries.md", title="Salaries", text="The bands for 2025.")
            await retrieval_pb2_grpc.RetrievalServiceStub(channel).UpsertDocuments(iter([old]))
        await asyncio.to_thread(ingest.ingest_paths, [str(tmp_path / "kb")], f"127.0.0.1:{port}")
    printed = capsys.readouterr().out
    assert "ingested 2 documents" in printed
    assert "also stored as 'salaries.md' with other text" in printed and "beside 'kb/salaries.md'" in printed
    assert "DELETE /api/v1/documents/salaries.md" in printed and "'rota.md'" not in printed


async def test_a_file_also_uploaded_under_its_name_is_called_the_same_file_not_an_earlier_releases_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Files uploaded through the web UI, then ingested from their folder, were each reported as "also stored as
    'report.md' by an earlier release, which named files differently: that copy keeps its old text". Stored here
    as the gateway stores an upload (report.md) and as an earlier release stored a folder's file (docs/guide.md)."""
    (tmp_path / "kb" / "docs").mkdir(parents=True)
    (tmp_path / "kb" / "report.md").write_text("# Report\n\nThe aquifer recharged by eleven percent.\n")
    (tmp_path / "kb" / "docs" / "guide.md").write_text("# Guide\n\nOpen the valve slowly.\n")
    stored = [
        message
        for name in ("report.md", "docs/guide.md")
        for message in map(to_message, load_content(name, (tmp_path / "kb" / name).read_bytes(), doc_id=name))
    ]
    async with retrieval_port(tmp_path / "data", FakeEmbedder(), DictCache()) as (_, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await retrieval_pb2_grpc.RetrievalServiceStub(channel).UpsertDocuments(iter(stored))
        await asyncio.to_thread(ingest.ingest_paths, [str(tmp_path / "kb")], f"127.0.0.1:{port}")
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == [
        "  the same file is also stored as 'report.md' (its name alone, as an upload through the API or web UI names"
        " a file, and releases before ids were paths did): searches show both until you delete one"
        " (DELETE /api/v1/documents/report.md)",
        "  the same file is also stored as 'docs/guide.md' (its path inside the folder, as releases before ids were"
        " paths named a folder's files): searches show both until you delete one"
        " (DELETE /api/v1/documents/docs/guide.md)",
    ]


JWT = {
    "LIKEOPT_AUTH": "jwt",
    "LIKEOPT_JWT_ISSUER": "https://idp",
    "LIKEOPT_JWT_AUDIENCE": "a",
    "LIKEOPT_JWT_JWKS_URI": "https://idp/keys",
}


async def test_another_tenants_document_of_the_earlier_id_is_not_called_this_files_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ids are one namespace per deployment: globex's salaries.md is not acme's file, and must not be offered for
    deletion to whoever ingests acme's."""
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "salaries.md").write_text("# Salaries\n\nThe bands for 2026.\n")
    (tmp_path / "kb" / "rota.md").write_text("# Rota\n\nWho is on call.\n")
    config = Config.from_env(JWT)
    async with retrieval_port(tmp_path / "data", FakeEmbedder(), DictCache(), config) as (_, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            theirs = retrieval_pb2.Document(id="salaries.md", text="Globex bands.", access={"tenant": "globex"})
            ours = retrieval_pb2.Document(id="rota.md", text="Old rota.", access={"tenant": "acme"})
            await retrieval_pb2_grpc.RetrievalServiceStub(channel).UpsertDocuments(iter([theirs, ours]))
        run = ingest.access_of("acme", [], [])
        await asyncio.to_thread(ingest.ingest_paths, [str(tmp_path / "kb")], f"127.0.0.1:{port}", access=run)
    printed = capsys.readouterr().out
    assert "also stored as 'rota.md'" in printed and "'salaries.md'" not in printed


def test_the_report_names_twenty_files_stored_twice_and_counts_the_rest() -> None:
    """A folder uploaded whole and then ingested gave a line per file."""
    copies = [ingest.OtherCopy(f"kb/{number}.md", f"{number}.md", same_text=True) for number in range(25)]
    lines = ingest.copy_lines(copies)
    assert len(lines) == 21 and lines[19].startswith("  the same file is also stored as '19.md'")
    assert lines[-1] == "  … and 5 more documents are also stored under another id"


def test_ctrl_c_in_any_command_ends_with_a_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.RUNS, "migrate", interrupted)
    monkeypatch.setenv("LIKEOPT_MILVUS_URI", "http://127.0.0.1:1")
    with pytest.raises(SystemExit) as ended:
        main(["migrate", "--to", "milvus"])
    assert ended.value.code == 130 and capsys.readouterr().err == "likeopt migrate: interrupted\n"
