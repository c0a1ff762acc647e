"""Cache keys that cannot go stale.

A key is a digest of the normalised input plus every parameter that changes the
result, the retrieval index version included: any ingest or delete moves the
version, so dependent entries are simply never looked up again (no scan, no flush).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata


def normalise_query(text: str) -> str:
    """Fold case, Unicode form and white space, which never change the answer's meaning."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def cache_key(*parts: object) -> str:
    """A short stable digest of the given parts (JSON-encoded in order)."""
    encoded = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.blake2b(encoded.encode("utf-8"), digest_size=20).hexdigest()
