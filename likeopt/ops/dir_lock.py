"""One ``likeopt up`` per data folder and per run folder.

Two launchers on the same folders each started a retrieval_svc writing one store while indexing only its own
writes, two Redis servers appending to one file, and two Envoys reading one rendered configuration: the
indexes diverged and a restart of the first mesh's Envoy came up on the second's ports. An advisory lock
(flock) held for the launcher's life refuses the second at once; the kernel drops it when the process ends,
however it ends, so no stale lock survives a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_NAME = ".likeopt-up.lock"


class FolderUnusable(RuntimeError):
    """Another live process holds the folder's lock, or the folder cannot be made or written; the message names
    the folder and why."""


def lock_folder(folder: Path, setting: str) -> IO[str]:
    """Hold folder's lock (creating the folder) until the returned file is closed or the process ends."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / LOCK_NAME, "a+")
    except OSError as exc:
        raise FolderUnusable(f"{setting}={folder} cannot be used: {exc.strerror or exc}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise FolderUnusable(
            f"{setting}={folder} is in use by another `likeopt up` ({holder}); stop it, or give this one its own"
            f" {setting}"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle


def release(handles: list[IO[str]]) -> None:
    for handle in handles:
        with contextlib.suppress(OSError):
            handle.close()
