"""The check of a JWKS file, which Envoy reads once at start and refuses to start without."""

from __future__ import annotations

import json
from pathlib import Path


def jwks_file_problem(path: Path) -> str | None:
    """Why Envoy could not take keys from ``path`` (it refuses to start then), or None: it reads the file once,
    at start, as a JSON Web Key Set with at least one key."""
    try:
        text = path.read_text()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    try:
        keys = json.loads(text).get("keys")
    except (ValueError, AttributeError):
        return "must be a JSON Web Key Set (a JSON object with a 'keys' list)"
    if not isinstance(keys, list) or not any(isinstance(key, dict) and key.get("kty") for key in keys):
        return "must hold at least one key (an object with 'kty' in its 'keys' list)"
    return None
