"""What a loader yields: a document, or a file or record skipped with why it is not read; the metadata values a
document can hold; and a document as retrieval_svc takes it."""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from likeopt.runtime.loaders.formats import ONE_DOCUMENT_SUFFIXES
from likeopt.v1 import retrieval_pb2


@dataclass
class LoadedDocument:
    id: str
    title: str
    text: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Skipped:
    source: str
    reason: str


class Unreadable(Exception):
    """A file of a type the loaders read that holds no text they can take, its message the reason to report as it
    is: a parser's exception ("ValueError: ...") tells the user nothing they can act on."""


def is_scalar(value: object) -> bool:
    """Whether a value is one metadata can hold: a string, number, boolean, date or time, never a list or map."""
    return isinstance(value, str | int | float | bool | datetime.date | datetime.time)


def scalar_text(value: object) -> str:
    """A scalar as metadata and text spell it: strings as they are, dates and times in ISO 8601 (a midnight
    datetime as its date), and numbers, booleans and null as JSON writes them (``true``, not Python's ``True``),
    so a filter written in JSON finds them."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time() else value.isoformat(sep=" ")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return json.dumps(value)


def skipped_file(name: str, doc_id: str, reason: str, kind: str = "") -> Skipped:
    """A file not read, and why. When the file is one document, also that the version stored earlier under its id
    (from before it was emptied or damaged) is kept, and how to delete it: nothing replaces it, so searches would go
    on finding the old text, and deleting it automatically would lose a document over a file saved by mistake. kind
    is the type the file's bytes show (sniffed_suffix), when known: a PDF named "report" is one document too."""
    if (kind or Path(name).suffix.lower()) not in ONE_DOCUMENT_SUFFIXES:
        return Skipped(name, reason)
    kept = f"any version stored earlier as {doc_id!r} is kept and still found by searches"
    return Skipped(name, f"{reason}; {kept} (delete it with DELETE {document_path(doc_id)})")


def document_path(doc_id: str) -> str:
    """The REST path of a document: its id percent-encoded, a slash kept between two other characters and encoded
    elsewhere (a leading slash or ``//`` would reach the gateway as one, as Envoy merges slashes)."""
    return "/api/v1/documents/" + re.sub(r"(?<![^/])/|/(?![^/])", "%2F", quote(doc_id, safe="/"))


def to_message(doc: LoadedDocument, access: retrieval_pb2.Access | None = None) -> retrieval_pb2.Document:
    """A loaded document as retrieval_svc takes it, with who may read it (None: the writer's whole tenant)."""
    message = retrieval_pb2.Document(id=doc.id, title=doc.title, text=doc.text, metadata=doc.metadata)
    if access is not None:
        message.access.CopyFrom(access)
    return message
