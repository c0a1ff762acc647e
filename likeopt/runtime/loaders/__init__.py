"""Turn files into documents: plain text, Markdown, HTML, Word (.docx), Rich Text (.rtf), PowerPoint (.pptx), Excel
(.xlsx), OpenDocument (.odt, .ods, .odp), EPUB, Jupyter notebooks, e-mail (.eml, .mbox), PDF, CSV/TSV tables, JSON
Lines, JSON arrays of documents (any other JSON as its keys and values), source code and configuration (as text,
also the files every repository keeps by their name: a Dockerfile, a LICENSE), and BEIR folders.

Each loader yields ``(id, title, text, metadata)`` records; what cannot be read is reported as skipped with the
reason, never silently dropped. The indexed text is what a reader sees, because it is what search matches and what
citations quote.

One module a job: files walks files and folders and gives their ids; extract picks a file's reader by the type its
bytes show (sniffing) or its name (formats); each format has its reader (plain_text, html, markdown, rich_text,
office, opendocument, epub, notebook, mail, mailbox_file, pdf, tables, records, json_text), packages opening the
zip-based ones within bounds; documents and tidy hold what they all share. The names below are the ones the rest
of the project takes from here.
"""

from __future__ import annotations

from likeopt.runtime.loaders.documents import LoadedDocument, Skipped, document_path, to_message
from likeopt.runtime.loaders.extract import load_content
from likeopt.runtime.loaders.files import earlier_ids, file_id, id_base, load_paths
from likeopt.runtime.loaders.formats import (
    MAX_FILE_BYTES,
    NAMED_FILES,
    NAMED_VARIANTS,
    NOT_TEXT,
    NOT_UTF8,
    SUPPORTED,
    TOO_LARGE,
)
from likeopt.runtime.loaders.html import html_to_text
from likeopt.runtime.loaders.markdown import markdown_to_text
from likeopt.runtime.loaders.pdf import ENCRYPTED_PDF, NO_TEXT_LAYER, pdf_pages_text
from likeopt.runtime.loaders.records import load_jsonl
from likeopt.runtime.loaders.rich_text import NOT_RTF
from likeopt.runtime.loaders.sniffing import ENCRYPTED_OFFICE, OLDER_OFFICE, OLE2_SIGNATURE

__all__ = [
    "ENCRYPTED_OFFICE",
    "ENCRYPTED_PDF",
    "MAX_FILE_BYTES",
    "NAMED_FILES",
    "NAMED_VARIANTS",
    "NOT_RTF",
    "NOT_TEXT",
    "NOT_UTF8",
    "NO_TEXT_LAYER",
    "OLDER_OFFICE",
    "OLE2_SIGNATURE",
    "SUPPORTED",
    "TOO_LARGE",
    "LoadedDocument",
    "Skipped",
    "document_path",
    "earlier_ids",
    "file_id",
    "html_to_text",
    "id_base",
    "load_content",
    "load_jsonl",
    "load_paths",
    "markdown_to_text",
    "pdf_pages_text",
    "to_message",
]
