"""Shared fixtures: a Redis-protocol server, a Milvus server, an identity provider and running meshes for the
integration tests."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.identity import IdentityProvider
from tests.support import MeshProcess, MilvusServer, ValkeyServer, mesh_environment

DEMO_CORPUS = Path(__file__).resolve().parent.parent / "docs"


def pytest_configure(config: pytest.Config) -> None:
    """Children get Ctrl-C as from a terminal: a non-interactive shell starts a background job (`make test &`)
    with SIGINT ignored, every child inherits that, and a test that interrupts a command would wait forever."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def valkey() -> Iterator[ValkeyServer]:
    server = ValkeyServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    """A ``milvus-lite server`` of the module's own, so one module's collections never meet another's."""
    server = MilvusServer(tmp_path_factory.mktemp("milvus") / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> IdentityProvider:
    """A key pair and its JWKS file: the issuer of the module's tokens."""
    return IdentityProvider(tmp_path_factory.mktemp("idp"))


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory, valkey: ValkeyServer) -> Iterator[MeshProcess]:
    """``likeopt up`` with the demo corpus ingested, using the session's Redis as L2."""
    work_dir = tmp_path_factory.mktemp("mesh")
    process = MeshProcess(
        env=mesh_environment(work_dir, LIKEOPT_REDIS_URL=valkey.url), args=["--ingest", str(DEMO_CORPUS)]
    )
    with process.running():
        yield process


@pytest.fixture(scope="session")
def local_mesh(tmp_path_factory: pytest.TempPathFactory, valkey: ValkeyServer) -> Iterator[MeshProcess]:
    """A mesh answering with the local model (SmolLM2 through llama.cpp): answers take seconds, so
    tests can stop, disconnect or signal in the middle of one."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (make install adds it)")
    work_dir = tmp_path_factory.mktemp("local-mesh")
    env = mesh_environment(work_dir, LIKEOPT_REDIS_URL=valkey.url, LIKEOPT_GENERATION_BACKEND="local")
    process = MeshProcess(env=env, args=["--ingest", str(DEMO_CORPUS)])
    with process.running():
        if any("local model unavailable" in line for line in process.output):
            pytest.skip("the local model could not run here: " + "".join(process.output[-5:]))
        yield process
