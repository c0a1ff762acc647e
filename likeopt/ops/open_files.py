"""The open-file limit the mesh runs under, and how many client connections Envoy may hold within it.

Envoy that runs out of file descriptors crashes (a failed upstream socket(2) is an "envoy bug", then SIGSEGV) and
drops every connection: any client could bring it down by opening idle connections. So the launcher raises its soft
limit to the hard one (its children inherit it), and Envoy's overload manager refuses connections well before the
limit, keeping a descriptor for each one's upstream request and some for listeners, logs and pools.
"""

from __future__ import annotations

import resource

RESERVED = 256
"""Descriptors kept aside for Envoy's listeners, log files, admin and upstream pools."""
MOST_CONNECTIONS = 50_000
"""Envoy's cap on client connections when the limit is high enough not to matter."""
FEWEST_CONNECTIONS = 16
FEW_CONNECTIONS = 1_000
"""Below this cap `likeopt up` says the limit is low."""


def raise_open_file_limit() -> int:
    """Raise this process's soft open-file limit to its hard limit (children inherit it); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
        return hard
    return soft


def open_file_limit() -> int:
    """This process's soft open-file limit (what a child started now gets)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return MOST_CONNECTIONS * 4 if soft == resource.RLIM_INFINITY else soft


def downstream_connection_cap(open_files: int) -> int:
    """Client connections Envoy may hold: half of what the limit leaves beyond RESERVED (each may need an upstream
    socket too), at most MOST_CONNECTIONS."""
    return max(FEWEST_CONNECTIONS, min(MOST_CONNECTIONS, (open_files - RESERVED) // 2))
