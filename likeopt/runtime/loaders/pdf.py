"""PDF as text (pypdf): words broken at a line's end made whole again, headings kept apart from the prose after them,
and pypdf's warnings kept to be said with the file's name."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from itertools import pairwise
from typing import TYPE_CHECKING

from likeopt.runtime.loaders.documents import Unreadable
from likeopt.runtime.loaders.sniffing import PDF_HEADER, PDF_MARK_WINDOW
from likeopt.runtime.loaders.tidy import BLOCK_BREAK, given_title, tidy

if TYPE_CHECKING:
    from pypdf import PdfReader

NO_TEXT_LAYER = "no text layer: a scanned PDF needs OCR first (e.g. ocrmypdf scan.pdf searchable.pdf)"
"""Why a PDF whose pages are all images (a scan, a photographed page) gives no text: pypdf reads the text a PDF
holds as text, and recognising letters in pictures is another tool's work."""

ENCRYPTED_PDF = "encrypted PDF: needs a password (decrypt it first, e.g. qpdf --decrypt --password=… in.pdf out.pdf)"
"""Why a PDF encrypted with a password to open it gives no text (one that opens without a password is read)."""


def pdf_to_text(data: bytes) -> tuple[str, str]:
    """(title, text) of a PDF: the title its document information gives (unless a tool's placeholder), and its
    pages' lines with words broken at a line end whole again and short lines (headings, a paragraph's last line)
    ending their blocks, so that a heading does not run into the sentence after it."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError

    start = data.find(PDF_HEADER, 0, PDF_MARK_WINDOW)
    reader = PdfReader(io.BytesIO(data[max(start, 0) :]))  # the offsets inside count from the header
    try:
        pages = [page.extract_text() or "" for page in reader.pages]
    except FileNotDecryptedError:
        raise Unreadable(ENCRYPTED_PDF) from None
    if pages and not any(page.strip() for page in pages):
        raise Unreadable(NO_TEXT_LAYER)
    return _pdf_title(reader), pdf_pages_text(pages)


def _pdf_title(reader: PdfReader) -> str:
    """The /Title of a PDF's document information, "" when it is missing, a placeholder or unreadable."""
    try:
        return given_title(reader.metadata.title if reader.metadata is not None else None)
    except Exception:  # a damaged information dictionary costs the title, never the text
        return ""


class _PdfWarnings(logging.Handler):
    """pypdf's warnings about the PDF this thread is reading, kept for _extracted to say with the file's name: pypdf
    logs them bare ("EOF marker not found"), naming no file. Any logged outside a read go on to the root logger."""

    def __init__(self) -> None:
        super().__init__()
        self._reading = threading.local()

    @contextlib.contextmanager
    def collected(self) -> Iterator[list[str]]:
        """The warnings pypdf logs in this thread until the block ends."""
        self._reading.found = found = []
        try:
            yield found
        finally:
            self._reading.found = None

    def emit(self, record: logging.LogRecord) -> None:
        found = getattr(self._reading, "found", None)
        if found is None:
            logging.getLogger().handle(record)
        else:
            found.append(record.getMessage())


PDF_WARNINGS = _PdfWarnings()
logging.getLogger("pypdf").addHandler(PDF_WARNINGS)
logging.getLogger("pypdf").propagate = False  # PDF_WARNINGS passes on what it does not keep


PDF_SHORT_LINE = 0.6
"""A line shorter than this share of the text's width stands alone: wrapped prose fills three quarters of its
column or more, even ragged, so only a heading, a paragraph's last line, a list item or a table row is shorter."""
_LINE_END_HYPHEN = re.compile(r"(\w+(?:-\w+)*)([-\u00ad])$")
_LINE_START_WORD = re.compile(r"\w+")
_HYPHENATED_WORD = re.compile(r"\w+(?:-\w+)+")
_SENTENCE_END = re.compile(r"[.!?:][\"'\u00bb\u201d\u2019)\]]*$")


def pdf_pages_text(pages: Sequence[str]) -> str:
    """The text of a PDF's pages as extracted line by line, each page a block. The width is the longest lines'
    length (the 95th percentile, so one overlong line does not make every other short), over the whole document
    so that a page of few lines is measured as its neighbours. A page without text (blank, or a picture) adds
    nothing."""
    page_lines = [lines for page in pages if any(lines := [line.strip() for line in page.splitlines()])]
    lengths = sorted((len(line) for lines in page_lines for line in lines if line), reverse=True)
    width = lengths[len(lengths) // 20] if lengths else 0
    hyphenated = {word.casefold() for page in pages for word in _HYPHENATED_WORD.findall(page)}
    texts = [_pdf_page_text(lines, width, hyphenated) for lines in page_lines]
    return tidy(BLOCK_BREAK.join(texts))


def _pdf_page_text(lines: list[str], width: int, hyphenated: set[str]) -> str:
    """One page's lines joined: a blank line between blocks, a line break within one (the chunker reads it as
    wrapped prose), nothing where a word was broken."""
    parts: list[str] = []
    for line, following in pairwise([*lines, ""]):
        broken, next_word = _LINE_END_HYPHEN.search(line), _LINE_START_WORD.match(following)
        if broken and next_word:
            parts.append(_rejoinable(line, broken, next_word.group(), hyphenated))
        elif following and (_ends_block(line, following, width) or _starts_block(following, line, width)):
            parts += (line, BLOCK_BREAK)
        else:
            parts += (line, "\n")
    return "".join(parts)


def _rejoinable(line: str, broken: re.Match[str], next_word: str, hyphenated: set[str]) -> str:
    """A line ending in a hyphen, to be followed directly by the next line's first word: without the hyphen when it
    broke one word, with it when it is a real one. A soft hyphen always broke a word. A hyphen between two
    lowercase halves did too ("gla-" "cier"), unless the first half holds a hyphen already ("state-of-the-" "art")
    or the document writes the pair hyphenated elsewhere ("lidar-based"): no dictionary tells a compound from a
    hyphenated word, but typesetters break words far more often than they break compounds. Before a capital or a
    digit ("pre-" "COVID", "COVID-" "19") a hyphen is always real."""
    first, mark = broken.groups()
    if mark == "\u00ad":
        return line[:-1]
    if not (first[-1].islower() and next_word[0].islower()) or "-" in first:
        return line
    return line if f"{first}-{next_word}".casefold() in hyphenated else line[:-1]


def _is_short(line: str, width: int) -> bool:
    return len(line) < PDF_SHORT_LINE * width


def _ends_block(line: str, following: str, width: int) -> bool:
    """A short line before one that does not go on a sentence: a heading, or a paragraph's last line."""
    return _is_short(line, width) and not following[0].islower()


def _starts_block(line: str, previous: str, width: int) -> bool:
    """A short line without closing punctuation after a finished sentence: a heading, not a paragraph's end."""
    return _is_short(line, width) and not line.endswith(tuple(".,;:!?")) and bool(_SENTENCE_END.search(previous))
