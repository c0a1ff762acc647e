"""A real Prometheus (Debian's package) scraping a test's mesh with deploy/prometheus's jobs and alert rules.

The jobs, metrics paths and rules are those of deploy/prometheus; only the targets change, from compose's service
names to the mesh's loopback ports, and the intervals shrink so a test sees scrapes and rule evaluations in
seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from likeopt.ops.protos import ROOT
from likeopt.ops.supervisor import guarded
from likeopt.runtime.config import LISTENING_PORTS, Config
from tests.support import MeshProcess, distinct_free_ports

DEPLOYED = ROOT / "deploy" / "prometheus"
PROMETHEUS_BINARY = shutil.which("prometheus")
NO_PROMETHEUS = "prometheus is not installed (Debian's prometheus package ships it; .ci/run installs it)"
INTERVAL = "1s"
T = TypeVar("T")


def port_setting(default_port: int) -> str:
    """The LIKEOPT_*_PORT setting whose default a job of prometheus.yml scrapes (tests/unit/test_monitoring.py
    checks that each job names its service's default port)."""
    defaults = Config.from_env({})
    (name,) = [name for name in LISTENING_PORTS if getattr(defaults, name) == default_port]
    return f"LIKEOPT_{name.upper()}"


def mesh_config(mesh: MeshProcess) -> dict[str, Any]:
    """prometheus.yml with every job's targets the mesh's own ports."""
    config = yaml.safe_load((DEPLOYED / "prometheus.yml").read_text())
    config["global"].update(scrape_interval=INTERVAL, evaluation_interval=INTERVAL)
    for job in config["scrape_configs"]:
        ports = {found["port"] for found in job.pop("dns_sd_configs")}
        job["static_configs"] = [{"targets": [f"127.0.0.1:{mesh.env[port_setting(port)]}" for port in ports]}]
    return config


class PrometheusServer:
    """``prometheus`` on a free loopback port, with its storage and configuration in work_dir."""

    def __init__(self, mesh: MeshProcess, work_dir: Path) -> None:
        if PROMETHEUS_BINARY is None:
            raise RuntimeError(NO_PROMETHEUS)
        self.work_dir = work_dir
        self.config = work_dir / "prometheus.yml"
        config = mesh_config(mesh)
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self.targets = [
            f"http://{target}{job.get('metrics_path', '/metrics')}"
            for job in config["scrape_configs"]
            for target in job["static_configs"][0]["targets"]
        ]
        """The URL of every target it scrapes."""
        for rule_file in yaml.safe_load(self.config.read_text())["rule_files"]:
            shutil.copy(DEPLOYED / rule_file, work_dir / rule_file)
        self.port = distinct_free_ports(1)[0]
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert PROMETHEUS_BINARY is not None
        argv = [
            PROMETHEUS_BINARY,
            f"--config.file={self.config}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--storage.tsdb.path={self.work_dir / 'data'}",
        ]
        with (self.work_dir / "prometheus.log").open("wb") as log:
            self._process = subprocess.Popen(guarded(argv), stdout=log, stderr=subprocess.STDOUT)
        self.wait_for(lambda: self._ready(), "Prometheus did not become ready")

    def _ready(self) -> bool:
        try:
            return self.api.get("/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)
            self._process = None
        self.api.close()

    def get(self, path: str, **params: Any) -> Any:
        """The data of a /api/v1 reply, which must have succeeded."""
        reply = self.api.get(f"/api/v1/{path}", params=params).json()
        assert reply["status"] == "success", reply
        return reply["data"]

    def wait_for(self, found: Callable[[], T], what: str, timeout_s: float = 60.0) -> T:
        """found()'s first true value; fails with what and Prometheus's log when none comes within timeout_s."""
        deadline = time.monotonic() + timeout_s
        while not (value := found()):
            if time.monotonic() > deadline or (self._process is not None and self._process.poll() is not None):
                raise AssertionError(f"{what}:\n{(self.work_dir / 'prometheus.log').read_text()[-3000:]}")
            time.sleep(0.2)
        return value
