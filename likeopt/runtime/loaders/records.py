"""JSON Lines and JSON arrays of ``{"_id"|"id", "title", "text", "metadata"}`` records (BEIR's corpus format, and the
body ``POST /api/v1/documents`` takes): each record a document with an id of its own."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from likeopt.runtime.loaders.documents import LoadedDocument, Skipped, is_scalar, scalar_text
from likeopt.runtime.loaders.formats import NOT_UTF8
from likeopt.runtime.loaders.plain_text import not_text_reason

NOT_DOCUMENTS_JSON = 'a .json file must hold an array of documents ({"id", "title", "text"}) or {"documents": [...]}'


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


def load_json(source: str, data: bytes) -> Iterator[LoadedDocument | Skipped]:
    """Documents from a JSON array of records as JSON Lines holds them, or from ``{"documents": [...]}`` (the
    body ``POST /api/v1/documents`` takes)."""
    try:
        parsed = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        yield Skipped(source, not_text_reason(data))
        return
    except (json.JSONDecodeError, RecursionError) as exc:
        yield Skipped(source, f"invalid JSON: {exc}")
        return
    records = parsed.get("documents") if isinstance(parsed, dict) else parsed
    if not isinstance(records, list):
        yield Skipped(source, NOT_DOCUMENTS_JSON)
        return
    for position, record in enumerate(records):
        yield record_document(f"{source}[{position}]", record)


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
