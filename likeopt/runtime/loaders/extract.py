"""One file's bytes as its documents: the type its bytes show, else its name's, picks the reader, and what cannot be
read is skipped with the reason, never silently dropped."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from likeopt.runtime.loaders.documents import LoadedDocument, Skipped, Unreadable, skipped_file
from likeopt.runtime.loaders.epub import epub_document
from likeopt.runtime.loaders.formats import (
    CODE_TYPES,
    HTML_SUFFIXES,
    JSON_SUFFIXES,
    JSONL_SUFFIXES,
    LEGACY_OFFICE,
    MARKDOWN_SUFFIXES,
    MAX_FILE_BYTES,
    NAMED_CODE,
    NAMED_FILES,
    NOT_TEXT,
    ODF_SUFFIXES,
    SUPPORTED,
    TABLE_SUFFIXES,
    TOO_LARGE,
    file_type,
    named_kind,
)
from likeopt.runtime.loaders.html import html_to_text
from likeopt.runtime.loaders.json_text import json_document
from likeopt.runtime.loaders.mail import ATTACHMENT_NOT_READ, mail_attachments, mail_document
from likeopt.runtime.loaders.mailbox_file import mailbox_messages
from likeopt.runtime.loaders.markdown import markdown_document
from likeopt.runtime.loaders.notebook import notebook_document
from likeopt.runtime.loaders.office import docx_to_text, pptx_to_text, xlsx_to_text
from likeopt.runtime.loaders.opendocument import odf_to_text
from likeopt.runtime.loaders.pdf import PDF_WARNINGS, pdf_to_text
from likeopt.runtime.loaders.plain_text import decode_html, decode_text, not_text_reason
from likeopt.runtime.loaders.records import document_records, load_jsonl, record_document
from likeopt.runtime.loaders.rich_text import rtf_to_text
from likeopt.runtime.loaders.sniffing import marked_suffix, older_office_reason, sniffed_suffix
from likeopt.runtime.loaders.tables import table_to_text
from likeopt.runtime.text_layout import fenced

log = logging.getLogger(__package__)  # the package's name, whichever of its modules reads the file


def load_content(name: str, data: bytes, doc_id: str) -> Iterator[LoadedDocument | Skipped]:
    """The documents in one file's bytes (one, or one per line for JSON Lines); name gives the type, unless the
    bytes say they are another type read here (sniffed_suffix), whatever the name's suffix or without one: an
    upload named "report" or "scan.bin" that is a PDF is read as one. A file every repository keeps (a Dockerfile,
    a LICENSE, a .gitignore) is known by its whole name (named_kind)."""
    suffix = Path(name).suffix.lower()
    if len(data) > MAX_FILE_BYTES:  # before anything parses it: a zip's directory, a compound document's
        yield skipped_file(name, doc_id, TOO_LARGE, marked_suffix(data) or named_kind(name) or "")
        return
    kind = sniffed_suffix(data) or named_kind(name) or suffix
    if older := older_office_reason(suffix, data):
        yield skipped_file(name, doc_id, older)
    elif kind not in SUPPORTED and kind not in NAMED_FILES:
        advice = f" (save it as {LEGACY_OFFICE[suffix]})" if suffix in LEGACY_OFFICE else ""
        yield Skipped(name, f"unsupported file type {suffix or '(none)'}{advice}")
    elif kind in JSONL_SUFFIXES:
        yield from load_jsonl(name, data.split(b"\n"))
    elif kind in JSON_SUFFIXES and (records := document_records(data)) is not None:
        yield from (record_document(f"{name}[{n}]", record) for n, record in enumerate(records))
    elif kind == ".mbox":
        yield from _mailbox_documents(name, data, doc_id)
    else:
        yield _one_document(name, kind, data, doc_id)
        if kind == ".eml":
            yield from (Skipped(f"{name}: {attached}", ATTACHMENT_NOT_READ) for attached in mail_attachments(data))


def _mailbox_documents(name: str, data: bytes, doc_id: str) -> Iterator[LoadedDocument | Skipped]:
    """Each message of a mailbox as a document, as an .eml file is read, under the mailbox's id and its place in it
    (``inbox.mbox/3``, a path inside it: mail programs add to a mailbox at its end, so earlier messages keep their
    ids; a ``#`` would read as a chunk's id), with the mailbox's name as its source: a search finds the one message
    that answers it, with its own subject, sender and date, where one document of them all would cite the whole
    mailbox."""
    try:
        messages = mailbox_messages(data)
    except Unreadable as unreadable:
        yield Skipped(name, str(unreadable))
        return
    for number, message in enumerate(messages, start=1):
        where = f"{name}/{number}"
        loaded = _one_document(where, ".eml", message, f"{doc_id}/{number}", f"{Path(name).name}, message {number}")
        if isinstance(loaded, LoadedDocument):
            loaded.metadata.update(source=Path(name).name, file_type=file_type(".mbox"))
        yield loaded
        yield from (Skipped(f"{where}: {attached}", ATTACHMENT_NOT_READ) for attached in mail_attachments(message))


def extract(suffix: str, data: bytes) -> tuple[str, str, dict[str, str]]:
    """(title, text, metadata) of one file's bytes by its type; an empty title lets the caller use the file name.
    Markdown (its front matter), EPUB books (their authors) and e-mail (sender and date) carry metadata of their
    own, and so do notebooks (their language); a JSON file that holds no documents is read here as one."""
    if suffix in MARKDOWN_SUFFIXES:
        return markdown_document(decode_text(data))
    if suffix == ".epub":
        return epub_document(data)
    if suffix == ".eml":
        return mail_document(data)
    if suffix in JSON_SUFFIXES:
        return json_document(data)
    if suffix == ".ipynb":
        return notebook_document(data)
    return *_title_and_text(suffix, data), {}


def _title_and_text(suffix: str, data: bytes) -> tuple[str, str]:
    """(title, text) of a file type without metadata of its own."""
    if suffix == ".pdf":
        return pdf_to_text(data)
    if suffix == ".docx":
        return docx_to_text(data)
    if suffix == ".rtf":
        return rtf_to_text(data)
    if suffix == ".pptx":
        return pptx_to_text(data)
    if suffix == ".xlsx":
        return xlsx_to_text(data)
    if suffix in ODF_SUFFIXES:
        return odf_to_text(suffix, data)
    if suffix in HTML_SUFFIXES:
        return html_to_text(decode_html(data))
    raw = decode_text(data)
    if suffix in TABLE_SUFFIXES:
        return "", table_to_text(raw, suffix)
    return "", fenced(raw) if suffix in CODE_TYPES or suffix in NAMED_CODE else raw


TYPESETTING_HINTS = str.maketrans(dict.fromkeys(map(ord, "\u00ad\u200b\u2060\ufeff")))
"""Invisible characters a file's text holds only as hints to whoever sets it, taken out of every loaded file's text
and title: a soft hyphen (where a word may break), a zero-width space or word joiner (where a line may or may not)
and a zero-width no-break space (a byte-order mark inside the text). Left in, they split a word for search
("flows\u00adfast" was "flows" and "fast") and showed in citations. Zero-width joiners and non-joiners stay: they
change how emoji and Persian or Indic words are written."""


def _one_document(name: str, suffix: str, data: bytes, doc_id: str, untitled: str = "") -> LoadedDocument | Skipped:
    """The document a file of a type that holds one is, or why it is skipped; untitled is its title when the file
    gives none (else the file's name says it)."""
    extracted = _extracted(name, suffix, data, doc_id)
    if isinstance(extracted, Skipped):
        return extracted
    title, text, metadata = extracted
    title, text = title.translate(TYPESETTING_HINTS), text.translate(TYPESETTING_HINTS)
    if "\x00" in text:  # from a PDF or an Office file: a text file's NUL is caught as it is decoded
        return skipped_file(name, doc_id, NOT_TEXT, suffix)
    if not text.strip():
        return skipped_file(name, doc_id, "no text found", suffix)
    facts = {"source": Path(name).name, "file_type": file_type(suffix)}
    untitled = untitled or (Path(name).name if suffix in NAMED_FILES else Path(name).stem)  # .env.example, not .env
    return LoadedDocument(doc_id, title or untitled, text, {**metadata, **facts})


def _extracted(name: str, suffix: str, data: bytes, doc_id: str) -> tuple[str, str, dict[str, str]] | Skipped:
    """(title, text, metadata) of one file, or why it is skipped. What pypdf warned of while reading it is said
    with the file's name: in the reason when the file is not read, else logged."""
    with PDF_WARNINGS.collected() as warnings:
        try:
            extracted = extract(suffix, data)
        except UnicodeDecodeError:
            return skipped_file(name, doc_id, not_text_reason(data), suffix)
        except Unreadable as unreadable:
            return skipped_file(name, doc_id, str(unreadable), suffix)
        except Exception as exc:  # a malformed PDF or Office file can raise anything from deep inside its parser
            return skipped_file(name, doc_id, f"unreadable: {type(exc).__name__}: {exc}{_warned(warnings)}", suffix)
    if warnings:
        log.warning("%s: read%s", name, _warned(warnings))
    return extracted


def _warned(warnings: list[str]) -> str:
    """What pypdf warned of, its first three warnings (a damaged PDF can give one per object), or ""."""
    distinct = list(dict.fromkeys(warnings))
    more = f" and {len(distinct) - 3} more" if len(distinct) > 3 else ""
    return f", after pypdf warned: {'; '.join(distinct[:3])}{more}" if distinct else ""
