"""Settings that name other processes: addresses, replica lists, and the cache write window."""

from __future__ import annotations

from pathlib import Path

import pytest

from likeopt.runtime.addresses import host_port, reachable_host, replica_family
from likeopt.runtime.config import Config
from likeopt.runtime.grpc_client import channel_target


@pytest.mark.parametrize(
    ("addresses", "target"),
    [
        ("retrieval-svc:50051", "retrieval-svc:50051"),  # one name: DNS, all it resolves to
        ("127.0.0.1:7001, 127.0.0.2:7002", "ipv4:127.0.0.1:7001,127.0.0.2:7002"),
        ("[::1]:7001,[fd00::7]:7002", "ipv6:[::1]:7001,[fd00::7]:7002"),
    ],
)
def test_replicas_are_balanced_over_ip_literals_of_one_family(addresses: str, target: str) -> None:
    Config.from_env({"LIKEOPT_RETRIEVAL_ADDR": addresses})  # accepted
    assert channel_target(addresses) == target


@pytest.mark.parametrize(
    ("addresses", "problem"),
    [
        ("retrieval-0:50051,retrieval-1:50051", "not an IP literal"),
        ("127.0.0.1:7001,127.0.0.2", "not host:port"),
        ("127.0.0.1:7001,::1:7002", "in brackets"),
        ("127.0.0.1:7001,[::1]:7002", "all be IPv4 or all IPv6"),
    ],
)
def test_a_replica_list_gRPC_cannot_balance_is_refused_naming_the_setting(addresses: str, problem: str) -> None:
    for name in ("LIKEOPT_RETRIEVAL_ADDR", "LIKEOPT_GENERATION_ADDR", "LIKEOPT_CACHE_ADDR"):
        with pytest.raises(ValueError, match=f"{name}.*{problem}"):
            Config.from_env({name: addresses})
    with pytest.raises(ValueError, match=problem):
        replica_family(addresses.split(","), "test")


def test_the_cache_write_window_is_milliseconds_within_bounds() -> None:
    assert Config.from_env({}).cache_write_window_s == 0.25
    assert Config.from_env({"LIKEOPT_CACHE_WRITE_WINDOW_MS": "0"}).cache_write_window_s == 0
    for bad in ("-1", "10001", "soon"):
        with pytest.raises(ValueError, match="LIKEOPT_CACHE_WRITE_WINDOW_MS"):
            Config.from_env({"LIKEOPT_CACHE_WRITE_WINDOW_MS": bad})


def test_ipv6_hosts_get_brackets_and_all_address_binds_are_reached_on_loopback() -> None:
    assert host_port("127.0.0.1", 80) == "127.0.0.1:80"
    assert host_port("::1", 80) == host_port("[::1]", 80) == "[::1]:80"
    assert host_port("gateway", "8000") == "gateway:8000"
    assert [reachable_host(h) for h in ("0.0.0.0", "::", "::1", "10.0.0.7")] == ["127.0.0.1", "::1", "::1", "10.0.0.7"]
    assert Config.from_env({"LIKEOPT_HOST": "::1", "LIKEOPT_RETRIEVAL_PORT": "7001"}).retrieval_addr == "[::1]:7001"


def test_a_model_folder_under_home_is_given_to_the_services_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sentence-transformers reads "~/models/x" as a Hub repository id, not a folder."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "models" / "minilm").mkdir(parents=True)
    assert Config.from_env({"LIKEOPT_EMBEDDING_MODEL": "~/models/minilm"}).embedding_model == str(
        tmp_path / "models" / "minilm"
    )


def test_model_paths_that_are_not_there_are_refused_naming_the_setting(tmp_path: Path) -> None:
    """They failed only inside the service: retrieval_svc in sentence-transformers' words about repository ids, the
    local backend by falling back to extractive answers."""
    with pytest.raises(ValueError, match=r"LIKEOPT_EMBEDDING_MODEL.*no folder '/nonexistent'"):
        Config.from_env({"LIKEOPT_EMBEDDING_MODEL": "/nonexistent"})
    with pytest.raises(ValueError, match=r"LIKEOPT_LOCAL_MODEL_PATH.*no file"):
        Config.from_env({"LIKEOPT_LOCAL_MODEL_PATH": str(tmp_path)})  # a folder, not the GGUF file in it
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    assert Config.from_env({"LIKEOPT_EMBEDDING_MODEL": str(tmp_path)}).embedding_model == str(tmp_path)
    assert Config.from_env({"LIKEOPT_LOCAL_MODEL_PATH": str(tmp_path / "model.gguf")}).local_model_path
