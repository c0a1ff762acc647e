"""``likeopt ingest`` against a retrieval_svc whose index is still loading: it waits (saying so) and then stores
everything, rather than failing with "the index is still loading"; past ``--wait`` it ends with an error naming
what the loading waits for (its Milvus unreachable), having read no file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from likeopt.ops.cli import main
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from retrieval_svc.backend import BackendUnavailable
from retrieval_svc.service import RetrievalServicer
from tests.unit.test_retrieval_harness import DictCache, FakeEmbedder, fake_engine, retrieval_port


@asynccontextmanager
async def loading_server(data_dir: Path) -> AsyncIterator[tuple[RetrievalServicer, str]]:
    """A retrieval_svc whose port is open and whose index is not loaded yet (as at every start), and its address."""
    async with retrieval_port(data_dir, FakeEmbedder(), DictCache(), loaded=False) as (servicer, port):
        yield servicer, f"127.0.0.1:{port}"


def ingest_command(*args: str) -> int | str | None:
    """``likeopt ingest`` as run from a shell: its exit code (SystemExit must not cross the event loop)."""
    try:
        main(["ingest", *args])
    except SystemExit as ended:
        return ended.code
    return None


def corpus(folder: Path) -> str:
    folder.mkdir()
    for n in range(3):
        (folder / f"note-{n}.md").write_text(f"# Note {n}\n\nThe harbour log of day {n}.\n")
    return str(folder)


async def test_an_index_still_loading_is_waited_for_and_then_everything_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with loading_server(tmp_path / "data") as (servicer, address):
        monkeypatch.setenv("LIKEOPT_RETRIEVAL_ADDR", address)
        running = asyncio.create_task(asyncio.to_thread(ingest_command, corpus(tmp_path / "kb")))
        await asyncio.sleep(1.5)
        assert not running.done()
        engine = fake_engine(tmp_path / "data", FakeEmbedder())
        try:
            await asyncio.to_thread(engine.load)
            servicer.serve(engine)
            assert await running == 0
            assert engine.stats(None).documents == 3
        finally:
            engine.close()
    printed = capsys.readouterr()
    assert f"retrieval_svc at {address} is still loading its index; waiting up to 600 s" in printed.err
    assert "ingested 3 documents" in printed.out


async def test_past_the_wait_the_error_names_what_the_loading_waits_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with loading_server(tmp_path / "data") as (servicer, address):
        servicer.reachable.failed(BackendUnavailable("milvus at http://10.0.0.9:19530 unreachable: connection refused"))
        async with grpc.aio.insecure_channel(address) as channel:
            status = await retrieval_pb2_grpc.RetrievalServiceStub(channel).GetIndexStatus(
                retrieval_pb2.GetIndexStatusRequest()
            )
        assert not status.ready and "10.0.0.9:19530 unreachable" in status.waiting_for
        monkeypatch.setenv("LIKEOPT_RETRIEVAL_ADDR", address)
        code = await asyncio.to_thread(ingest_command, "--quiet", "--wait", "1", corpus(tmp_path / "kb"))
    assert code == (
        f"likeopt ingest: retrieval_svc at {address} has not loaded its index in 1 s (it waits for: milvus at"
        " http://10.0.0.9:19530 unreachable: connection refused)"
    )


def test_a_negative_wait_is_refused_before_anything_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ingest_command("--wait", "-1", corpus(tmp_path / "kb")) == 2
    assert "--wait: -1 seconds; give 0 or more" in capsys.readouterr().err


async def rest_of_output(process: asyncio.subprocess.Process, timeout_s: float) -> bytes:
    """What process writes to stderr until it exits; one that has not exited within timeout_s fails the test with
    every thread's Python stack (faulthandler, on SIGABRT), so a rare hang says where it hangs."""
    assert process.stderr is not None
    try:
        return await asyncio.wait_for(process.stderr.read(), timeout_s)
    except TimeoutError:
        process.send_signal(signal.SIGABRT)
        dump = await asyncio.wait_for(process.stderr.read(), 10)
        pytest.fail(f"still running {timeout_s:.0f} s after SIGINT; its threads:\n{dump.decode(errors='replace')}")


async def test_ctrl_c_while_waiting_ends_with_a_line_not_a_traceback(tmp_path: Path) -> None:
    async with loading_server(tmp_path / "data") as (_, address):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "likeopt.ops.cli",
            "ingest",
            corpus(tmp_path / "kb"),
            env={**os.environ, "LIKEOPT_RETRIEVAL_ADDR": address, "PYTHONFAULTHANDLER": "1"},
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        try:
            seen = b""
            while b"still loading" not in seen:
                line = await asyncio.wait_for(process.stderr.readline(), 60)
                assert line, f"ended before waiting: {seen!r}"
                seen += line
            process.send_signal(signal.SIGINT)
            rest = await rest_of_output(process, 60)
        except BaseException:
            # Only a failing test kills: after stderr's end the child may have exited unseen by asyncio, and kill()
            # would reap it first (Popen.send_signal polls), leaving process.wait() to report 255.
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise
        code = await process.wait()
    assert code == 130
    assert (
        rest.decode()
        .strip()
        .endswith(
            "likeopt ingest: interrupted. none of this run's documents was confirmed stored; run the command again to"
            " store the rest (a document stored already is replaced, not duplicated)"
        )
    )
    assert b"Traceback" not in rest
