"""JSON Lines and JSON arrays of ``{"_id"|"id", "title", "text", "metadata"}`` records (BEIR's corpus format, and the
body ``POST /api/v1/documents`` takes): each record a document with an id of its own."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from likeopt.runtime.loaders.documents import LoadedDocument, Skipped, Unreadable, is_scalar, scalar_text
from likeopt.runtime.loaders.formats import NOT_UTF8
from likeopt.runtime.loaders.json_text import parsed_json

RECORD_FIELDS = {"_id", "id", "title", "text", "metadata"}
"""The fields a document record has: a JSON array of objects with no other field is one of records."""


def load_jsonl(source: str, lines: Iterable[str | bytes]) -> Iterator[LoadedDocument | Skipped]:
    """One document per line: ``{"_id"|"id", "title", "text", "metadata"}`` (BEIR's corpus format).

    Lines are decoded one by one, so a line that is not UTF-8 is skipped with NOT_UTF8 as a bad line of JSON is,
    and the good lines around it still load (a corpus of millions is not refused for one line, nor stored with
    U+FFFD in place of the letters a reader would search for)."""
    for number, line in enumerate(lines, start=1):
        where = f"{source}:{number}"
        try:
            text = line.decode("utf-8-sig" if number == 1 else "utf-8") if isinstance(line, bytes) else line
        except UnicodeDecodeError:
            yield Skipped(where, NOT_UTF8)
            continue
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            yield Skipped(where, f"invalid JSON: {exc}")
            continue
        yield record_document(where, record)


def document_records(data: bytes) -> list[object] | None:
    """The records of a .json file that holds documents: an array of them as JSON Lines holds them, or ``{"documents":
    [...]}`` (the body ``POST /api/v1/documents`` takes). None for any other JSON, read as one document of its keys
    and values (json_text), and for a file that is no JSON, which that reading refuses with the reason."""
    try:
        parsed = parsed_json(data)
    except (UnicodeDecodeError, Unreadable):
        return None
    records = parsed.get("documents") if isinstance(parsed, dict) else parsed
    return records if isinstance(records, list) and are_records(records) else None


def are_records(items: list[object]) -> bool:
    """Whether a JSON array is one of document records: objects each, one at least with a text, or none with a field
    a record has not (titles alone). An API's reply (issues with an id, a title and a body) is not: read as records,
    it would store each title and lose the rest."""
    objects = [item for item in items if isinstance(item, dict)]
    if len(objects) < len(items):
        return False
    return any(isinstance(o.get("text"), str) for o in objects) or all(o.keys() <= RECORD_FIELDS for o in objects)


def record_document(where: str, record: object) -> LoadedDocument | Skipped:
    """One ``{"_id"|"id", "title", "text", "metadata"}`` record as a document, or why it is skipped."""
    if not isinstance(record, dict):
        return Skipped(where, "not a JSON object")
    doc_id = next((str(record[key]) for key in ("_id", "id") if record.get(key) not in (None, "")), "")
    title, text = str(record.get("title") or ""), record.get("text") or ""
    if not doc_id or not isinstance(text, str) or not (title + text).strip():
        return Skipped(where, "needs an id, and a title or text")
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    scalars = {str(k): scalar_text(v) for k, v in metadata.items() if v is None or is_scalar(v)}
    return LoadedDocument(doc_id, title, text, scalars)
