"""The file types the loaders read, the limits they keep to, and the refusal words more than one of them gives."""

from __future__ import annotations

TEXT_SUFFIXES = {".txt", ".text", ".rst"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
TABLE_SUFFIXES = {".csv", ".tsv"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
OFFICE_SUFFIXES = {".docx", ".pptx", ".xlsx"}
SUPPORTED = (
    TEXT_SUFFIXES
    | MARKDOWN_SUFFIXES
    | HTML_SUFFIXES
    | TABLE_SUFFIXES
    | JSONL_SUFFIXES
    | OFFICE_SUFFIXES
    | {
        ".json",
        ".pdf",
        ".rtf",
    }
)
ONE_DOCUMENT_SUFFIXES = SUPPORTED - JSONL_SUFFIXES - {".json"}
"""The file types that are one document each, stored under the file's id (JSON and JSON Lines hold records with
ids of their own)."""

LEGACY_OFFICE = {".doc": ".docx", ".ppt": ".pptx", ".xls": ".xlsx"}
"""Older formats no loader reads, and the one to save them as (every Office version writes it)."""

MAX_FILE_BYTES = 50 * 1024 * 1024
TOO_LARGE = f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB"
NOT_UTF8 = "not valid UTF-8 text (convert it first, e.g. iconv -f WINDOWS-1252 -t UTF-8)"
NOT_TEXT = "contains NUL characters: not a text file"


def file_type(suffix: str) -> str:
    """What a file was read as, as its document's metadata says it: one name for each type whichever of its suffixes
    the file has (.htm and .html are html), so a search filter {"file_type": "pdf"} finds every PDF. A file whose
    bytes show another type than its name is that type (sniffed_suffix)."""
    named = ((TEXT_SUFFIXES, "text"), (MARKDOWN_SUFFIXES, "markdown"), (HTML_SUFFIXES, "html"))
    return next((name for suffixes, name in named if suffix in suffixes), suffix.removeprefix("."))
