"""Turn files into documents: plain text, Markdown, HTML, Word (.docx), Rich Text (.rtf), PowerPoint (.pptx), Excel
(.xlsx), PDF, CSV/TSV tables, JSON Lines, JSON arrays of documents and BEIR folders.

Each loader yields ``(id, title, text, metadata)`` records; what cannot be read is
reported as skipped with the reason, never silently dropped.

The indexed text is what a reader sees, because it is what search matches and what
citations quote: HTML goes through a real parser (BeautifulSoup on lxml) so table cells
stay separate words and navigation, scripts and the page's own header and footer stay out
(an article's header and footer are its headline, byline and notes, and stay in); Markdown
goes through a CommonMark parser (markdown-it-py) so ``**``, ``#``, bullets and link URLs
stay out while link text and code stay in, and the title is a real heading, never a
``# comment`` inside a code fence.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime
import io
import json
import logging
import os
import re
import threading
import tomllib
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice, pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

import yaml
from bs4 import BeautifulSoup, CData, NavigableString, PageElement, Tag
from bs4.dammit import EncodingDetector
from markdown_it import MarkdownIt
from markdown_it.token import Token

from likeopt.runtime import rich_text
from likeopt.runtime.text_layout import PARAGRAPH_BREAK, fenced, field_line
from likeopt.v1 import retrieval_pb2

if TYPE_CHECKING:
    from pypdf import PdfReader

log = logging.getLogger(__name__)

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
NOT_DOCUMENTS_JSON = 'a .json file must hold an array of documents ({"id", "title", "text"}) or {"documents": [...]}'

LEGACY_OFFICE = {".doc": ".docx", ".ppt": ".pptx", ".xls": ".xlsx"}
"""Older formats no loader reads, and the one to save them as (every Office version writes it)."""
OLE2_SIGNATURE = bytes.fromhex("d0cf11e0a1b11ae1")
"""The first bytes of a compound document (OLE2): a Word, Excel or PowerPoint file from before Office 2007, a .docx,
.xlsx or .pptx encrypted with a password to open it, and other programs' files (Outlook's .msg, an installer)."""
OLE2_OFFICE_STREAMS = {"WordDocument": ".doc", "Workbook": ".xls", "Book": ".xls", "PowerPoint Document": ".ppt"}
"""The stream of a compound document that holds an older Office file's content, and that file's type (Excel 5 and 95
named it Book)."""
OLE2_ENCRYPTED_STREAM = "EncryptedPackage"
"""The stream that holds an encrypted .docx, .xlsx or .pptx: its zip, encrypted."""
LEGACY_OFFICE_APPS = {".doc": "Word", ".xls": "Excel", ".ppt": "PowerPoint"}
"""The application that opens each older Office type, and saves it as the type LEGACY_OFFICE names."""
OLDER_OFFICE = (
    "an older Word, Excel or PowerPoint file (OLE2 .doc, .xls or .ppt): save it as .docx, .xlsx or .pptx, or PDF"
)
"""Why a compound document named as an Office file is not read when its streams name no one application."""
ENCRYPTED_OFFICE = (
    "encrypted Word, Excel or PowerPoint file: needs a password (open it, clear the password under"
    " File > Info > Protect > Encrypt with Password, and save it)"
)
"""Why a .docx, .xlsx or .pptx encrypted with a password to open it is not read: it is no zip until decrypted."""

MAX_FILE_BYTES = 50 * 1024 * 1024
TOO_LARGE = f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB"
NOT_UTF8 = "not valid UTF-8 text (convert it first, e.g. iconv -f WINDOWS-1252 -t UTF-8)"
NOT_TEXT = "contains NUL characters: not a text file"
NUL_IN_TEXT = "NUL character"
"""Why decode_text refuses bytes that decode: UTF-8 and UTF-16 can spell NUL, but no text holds one."""
MAX_OFFICE_UNPACKED_BYTES = 256 * 1024 * 1024
"""A .docx, .pptx or .xlsx is a zip: refuse one that would unpack past this (a zip bomb) before parsing it."""


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


# -- HTML ------------------------------------------------------------------

HTML_DROPPED = frozenset({"script", "style", "noscript", "template", "svg", "iframe", "nav", "aside", "title"})
"""Elements whose text is not the page's content: code, navigation and page furniture."""
HTML_CONTROLS = frozenset({"button", "datalist", "input", "option", "select", "textarea"})
"""Form controls: their text is a choice, a value or an action ("Weekly", "Sign up"), not what the page says. A
<button> inside a heading stays: it is how an accordion (a FAQ's questions) shows its heading."""
HTML_PAGE_FURNITURE = frozenset({"header", "footer"})
"""Dropped only at page level (a site's banner and copyright line): inside HTML_CONTENT they are the content's own,
an article's headline and byline or a section's closing note."""
HTML_CONTENT = frozenset({"article", "section", "main"})
"""Elements that hold the page's content, as HTML5 scopes a <header> or <footer> to the nearest of them."""
HTML_FURNITURE_ROLES = frozenset({"navigation", "complementary"})
"""ARIA roles that mark an element as <nav> and <aside> do."""
HTML_PAGE_FURNITURE_ROLES = frozenset({"banner", "contentinfo"})
"""ARIA roles that mark an element as a page-level <header> and <footer> do: dropped at page level only."""
HTML_FURNITURE_WORDS = frozenset(
    {"breadcrumb", "breadcrumbs", "consent", "cookie", "cookies", "menu", "nav", "navbar", "navigation", "sidebar"}
)
"""Words of class names and ids that mark the furniture sites build of <div>s (menus, cookie banners, sidebars):
whole words ("site-nav", "cookieBanner", not "navigator"), and never on an element holding the page's main content
(_content_holders)."""
HTML_PAGE_FURNITURE_WORDS = frozenset({"footer"})
"""As HTML_FURNITURE_WORDS, dropped at page level only, as a <footer> is."""
_CLASS_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
"""A word of a class name or an id, split at hyphens, underscores, digits and camelCase humps."""
HTML_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
HTML_WORDS = frozenset({"td", "th", "label"})
HTML_LINES = frozenset({"br"})
HTML_ITEMS = frozenset({"dd", "dt", "li", "tr"})
HTML_BLOCKS = HTML_HEADINGS | frozenset(
    {
        "address", "article", "blockquote", "caption", "center", "details", "dialog", "div", "dl", "fieldset",
        "figcaption", "figure", "footer", "form", "header", "hgroup", "hr", "legend", "main", "menu", "ol", "p",
        "search", "section", "summary", "table", "ul",
    }
)  # fmt: skip
"""Blocks start and end a line, an item (row, list item) ends a paragraph, a ``<br>`` a line, a cell or a form's
label a word; inline elements join their text as written, so ``<b>wo</b>rd`` stays one word, and an image is its
alt text. A ``<pre>`` is a code block (_html_visible_text)."""

BLOCK_BREAK = PARAGRAPH_BREAK
"""What loaders put between blocks (paragraphs, list items, table rows, slides' text frames, notes): the chunker
keeps a blank line as a boundary, while lines of one indentation are read as hard-wrapped prose and joined with a
space, so two blocks would run together into one sentence in a chunk and in an extractive answer. Code is written
``fenced`` instead, which keeps its lines."""


def _html_separators(name: str) -> tuple[str, str]:
    """What an element leaves before and after its text."""
    if name in HTML_WORDS:
        return "", " "
    if name in HTML_LINES:
        return "", "\n"
    if name in HTML_ITEMS:
        return "", BLOCK_BREAK
    return ("\n", "\n") if name in HTML_BLOCKS else ("", "")


def _html_title(soup: BeautifulSoup) -> str:
    """The main content's heading, else <title>, else the first <h1>. The headline a reader sees over an article
    names it better than <title>, which sites pad with their own name ("How we cut latency | Acme Blog"), and
    better than a banner's <h1>, which names the site on every page of it."""
    for tag in (_main_content_heading(soup), soup.find("title"), soup.find("h1")):
        if isinstance(tag, Tag) and (title := " ".join(tag.get_text().split())):
            return title
    return ""


def _main_content_heading(soup: BeautifulSoup) -> Tag | None:
    """The first <h1> of the page's one <article>, else of its one <main>. None on a page of several articles (a
    blog's index): no one of their headlines names the page, nor does the first of them inside its <main>."""
    articles = soup.find_all("article", limit=2)
    if len(articles) > 1:
        return None
    for found in (articles, soup.find_all("main", limit=2)):
        if len(found) == 1 and isinstance(heading := found[0].find("h1"), Tag):
            return heading
    return None


class _Scope(NamedTuple):
    """Where an element lies: inside HTML_CONTENT (an article, a section, the main content), inside a heading."""

    content: bool = False
    heading: bool = False


def _html_visible_text(root: Tag) -> str:
    """The text of root without what _left_out leaves out, a line break around blocks and a space around cells;
    each ``<pre>`` a code block as written (fenced), the text between them tidied as prose.

    An explicit stack rather than recursion or tree edits: a page nested 200,000 levels deep
    must neither overflow Python's stack nor cost a walk to the bottom per inserted separator.
    """
    holders = _content_holders(root)
    blocks: list[str] = []
    parts: list[str] = []
    stack: list[tuple[PageElement | str, _Scope]] = [(root, _Scope())]
    while stack:
        node, scope = stack.pop()
        if isinstance(node, Tag):
            if _left_out(node, scope, holders):
                continue
            if node.name == "pre":  # tidying would collapse its indentation, the chunker join its lines
                blocks += [_tidy("".join(parts)), fenced(node.get_text())]
                parts = []
                continue
            opening, closing = _html_separators(node.name)
            parts += (opening, str(node.get("alt") or "") if node.name == "img" else "")
            if closing:
                stack.append((closing, scope))  # a plain str: emitted when the element's contents are done
            scope = _Scope(scope.content or node.name in HTML_CONTENT, scope.heading or node.name in HTML_HEADINGS)
            stack.extend((child, scope) for child in reversed(node.contents))
        elif type(node) in (NavigableString, CData) or type(node) is str:
            parts.append(str(node))  # comments, doctypes and processing instructions are other subclasses
    blocks.append(_tidy("".join(parts)))
    return BLOCK_BREAK.join(block for block in blocks if block)


def _left_out(tag: Tag, scope: _Scope, holders: set[int]) -> bool:
    """Whether an element's text is not the page's: code, navigation, page furniture and form controls, by their
    elements, roles and class words, unless it holds the page's main content."""
    if tag.name in HTML_DROPPED or (tag.name in HTML_PAGE_FURNITURE and not scope.content):
        return True
    if tag.name in HTML_CONTROLS:
        return not (tag.name == "button" and scope.heading)
    if id(tag) in holders:
        return False
    roles, words = set(str(tag.get("role") or "").split()), _class_words(tag)
    if roles & HTML_FURNITURE_ROLES or words & HTML_FURNITURE_WORDS:
        return True
    return not scope.content and bool(roles & HTML_PAGE_FURNITURE_ROLES or words & HTML_PAGE_FURNITURE_WORDS)


def _class_words(tag: Tag) -> set[str]:
    """The words of an element's class names and id, lowercase: "navbar navbar-expand-lg" and "cookieBanner" name
    what the element holds as a tag name would."""
    names = [*tag.get_attribute_list("class"), str(tag.get("id") or "")]
    return {word.lower() for name in names if name for word in _CLASS_WORD.findall(name)}


def _content_holders(root: Tag) -> set[int]:
    """The ids of the elements that are or hold the page's main content (its <body>, <main>, an <article>, an
    <h1>, an element of role main): never left out for a class word or role, which a wrapper such as
    ``<body class="has-sidebar">`` or ``<div class="menu-open">`` around everything may carry."""
    holders: set[int] = set()
    for held in [*root.find_all(["body", "main", "article", "h1"]), *root.find_all(attrs={"role": "main"})]:
        element: Tag | None = held
        while element is not None and id(element) not in holders:  # stops where another's walk up passed
            holders.add(id(element))
            element = element.parent
    return holders


def _spaces_tidied(text: str) -> str:
    """Runs of spaces and tabs as one space, none around a line break: how prose reads."""
    return re.sub(r" ?\n ?", "\n", re.sub(r"[ \t\r\f\v]+", " ", text))


def _lines_tidied(text: str) -> str:
    """No space at line ends, at most one blank line in a row, none at either end; spaces inside lines kept."""
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t\r\f\v]+\n", "\n", text)).strip("\n")


def _tidy(text: str) -> str:
    return _lines_tidied(_spaces_tidied(text)).strip()


def html_to_text(html: str) -> tuple[str, str]:
    """(title, text) of an HTML document."""
    soup = BeautifulSoup(html, "lxml")
    return _html_title(soup), _html_visible_text(soup)


# -- Markdown --------------------------------------------------------------

_MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
_MARKDOWN_BREAKS = {
    "heading_close": "\n\n",
    "blockquote_close": "\n\n",
    "bullet_list_close": "\n",
    "ordered_list_close": "\n",
    "th_close": " ",
    "td_close": " ",
    "tr_close": BLOCK_BREAK,
    "table_close": "\n",
    "hr": "\n",
}
"""What each closing block token leaves in the text: its syntax never, a block, line or word break always (a table
row is a block, BLOCK_BREAK)."""


def _inline_text(children: Sequence[Token]) -> str:
    """The words of an inline run: text, code and image alt text; emphasis marks, link URLs and tags dropped."""
    pieces = []
    for child in children:
        if child.type in ("text", "code_inline", "image"):
            pieces.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            pieces.append("\n")
        elif child.type == "html_inline":
            pieces.append(" ")  # <br>, <kbd>…: a tag is never a word, and may separate two
    return "".join(pieces)


def markdown_to_text(markdown: str) -> tuple[str, str]:
    """(title, text) of a Markdown document: its front matter's title else its first heading's words, and the
    words a reader sees (front matter is not among them)."""
    title, text, _ = markdown_document(markdown)
    return title, text


def markdown_document(markdown: str) -> tuple[str, str, dict[str, str]]:
    """(title, text, metadata) of a Markdown document: the front matter's title and simple values, else the first
    heading; CommonMark alone would read a YAML block's closing ``---`` as a heading underline, every key a title."""
    fields, body = front_matter(markdown)
    heading, text = _markdown_body(body)
    metadata = {str(key): scalar_text(value) for key, value in fields.items() if is_scalar(value)}
    return metadata.pop("title", "").strip() or heading, text, metadata


def _markdown_body(markdown: str) -> tuple[str, str]:
    """(first heading, text) of Markdown without front matter."""
    title, parts = "", []
    tokens = _MARKDOWN.parse(markdown)
    for position, token in enumerate(tokens):
        if token.type == "inline":
            parts.append(_spaces_tidied(_inline_text(token.children or [])))
        elif token.type in ("fence", "code_block"):
            parts.append(fenced(token.content) + BLOCK_BREAK)  # as written: a code block's spacing is its layout
        elif token.type == "html_block":
            parts.append(html_to_text(token.content)[1] + "\n\n")
        elif token.type == "paragraph_close":
            parts.append(BLOCK_BREAK)
        else:
            parts.append(_MARKDOWN_BREAKS.get(token.type, ""))
        if not title and token.type == "heading_open" and position + 1 < len(tokens):
            title = " ".join(_inline_text(tokens[position + 1].children or []).split())
    return title, _lines_tidied("".join(parts))


_FRONT_MATTER = re.compile(
    r"\A\ufeff?(?P<fence>---|\+\+\+)[ \t]*\r?\n(?P<body>(?:.*\r?\n)*?)(?P<close>---|\.\.\.|\+\+\+)[ \t]*(?:\r?\n|\Z)"
)
"""A block of settings before a Markdown file's text, as Jekyll, Hugo and Obsidian write it: YAML between ``---``
lines (closed by ``---`` or ``...``), or TOML between ``+++`` lines."""


def front_matter(markdown: str) -> tuple[dict[str, Any], str]:
    """(fields, the rest) of Markdown that opens with front matter, else ({}, markdown): a block that is not a
    mapping in its language (a thematic break, then prose) is the document's own text."""
    match = _FRONT_MATTER.match(markdown)
    if match is None or match["close"] not in (match["fence"], "..." if match["fence"] == "---" else ""):
        return {}, markdown
    try:
        fields = yaml.safe_load(match["body"]) if match["fence"] == "---" else tomllib.loads(match["body"])
    except (yaml.YAMLError, tomllib.TOMLDecodeError, RecursionError):
        return {}, markdown
    return (fields, markdown[match.end() :]) if isinstance(fields, dict) else ({}, markdown)


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


# -- Rich Text -------------------------------------------------------------

NOT_RTF = "not Rich Text: an .rtf file begins with {\\rtf (save it again as Rich Text, or as .docx)"


def rtf_to_text(data: bytes) -> tuple[str, str]:
    """(title, text) of a Rich Text file (WordPad, TextEdit, Outlook), read by likeopt/runtime/rich_text.py: each
    paragraph a block, the title its document information's unless a placeholder."""
    if not data.startswith(rich_text.RTF_SIGNATURE):
        raise Unreadable(NOT_RTF)
    title, paragraphs = rich_text.read(data)
    return given_title(title), _tidy(BLOCK_BREAK.join(paragraphs))


# -- Word and PDF ----------------------------------------------------------


PLACEHOLDER_TITLE = re.compile(
    r"microsoft \w+ - .*|.*\.(?:docx?|pptx?|xlsx?|odt|odp|rtf|txt|md|html?|tex|dvi|ps|pdf|indd|qxd|pages|key)"
    r"|(?:(?:microsoft )?(?:word|powerpoint|excel) )?"
    r"(?:untitled|no title|title|document|presentation|book|workbook|slide)[\s_-]*\d*",
    re.IGNORECASE,
)
"""A title in a PDF's, Word document's, deck's or workbook's properties that a tool wrote in place of one the author
gave: the name of the file it was made from ("Microsoft Word - report.docx", "C:\\tmp\\paper.dvi") or an
application's default ("Untitled-1", "Document1", "PowerPoint Presentation", "Book1"); the file's own name, or its
first heading, says more."""


def given_title(title: object) -> str:
    """A title from a file's properties with its spaces tidied, "" when it is missing, a placeholder or no word."""
    title = " ".join(title.split()) if isinstance(title, str) else ""
    if PLACEHOLDER_TITLE.fullmatch(title) or not any(character.isalpha() for character in title):
        return ""
    return title


WORD = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
"""The namespace of a Word document's XML, as lxml spells its tags."""
MARKUP_COMPATIBILITY = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
"""The namespace of mc:AlternateContent: the same content written for readers of several versions, read once."""
DOCX_NOT_CURRENT = frozenset({WORD + "del", WORD + "moveFrom"})
"""What holds runs that are no longer the document's: a tracked deletion, the origin of a tracked move."""
DOCX_BLOCK_WRAPPERS = frozenset(WORD + name for name in ("sdt", "sdtContent", "customXml"))
"""What holds paragraphs and tables in place of the body: a content control (a template's cover page, a form's
fields) or custom XML. python-docx reads only the paragraphs and tables directly in the body, a cell or a note."""
DOCX_RUN_WRAPPERS = frozenset(
    WORD + name for name in ("hyperlink", "sdt", "sdtContent", "smartTag", "fldSimple", "customXml", "ins", "moveTo")
)
"""What holds runs inside a paragraph: a link, a content control, a smart tag, a field, custom XML, a tracked
insertion or move (its text is the document's now; a deletion's or a move's origin is not, and is not held here)."""


def docx_to_text(data: bytes) -> tuple[str, str]:
    """(title, text) of a Word document: paragraphs and table rows in document order, cells as separate words,
    content controls' text where they stand, each text box's paragraphs after the paragraph it is anchored in, and
    its footnotes, then its endnotes, after the body. Headers and footers stay out, being the same boilerplate on
    every page (page numbers, the company's name), and so do comments, which are about the text, not of it.

    The title is the document's own (its properties), else its first Title or Heading 1 paragraph.
    """
    from docx import Document

    document = Document(unpackable(data))
    title = given_title(document.core_properties.title) or _docx_heading(document)
    lines = [*_docx_lines(document.element.body, document), *_docx_notes(document)]
    return title, _tidy(BLOCK_BREAK.join(lines))


def _docx_blocks(container: Any) -> Iterator[Any]:
    """The paragraph (w:p) and table (w:tbl) elements of a body, a cell or a note in document order, those inside
    content controls included."""
    for child in container:
        if child.tag in (WORD + "p", WORD + "tbl"):
            yield child
        elif child.tag in DOCX_BLOCK_WRAPPERS:
            yield from _docx_blocks(child)


def _docx_lines(container: Any, parent: Any) -> Iterator[str]:
    """The lines of a body, a cell or a note: each paragraph's text and each table row's (parent, the document or
    a cell, is what python-docx reaches the document's parts through)."""
    from docx.table import Table

    for element in _docx_blocks(container):
        if element.tag == WORD + "tbl":
            for row in Table(element, parent).rows:
                cells = {id(cell._tc): "\n".join(_docx_lines(cell._tc, cell)) for cell in row.cells}  # merged once
                yield " ".join(cells.values())
        else:
            yield _docx_runs_text(element)
            for box in _docx_text_boxes(element):
                yield from _docx_lines(box, parent)


def _docx_text_boxes(element: Any) -> Iterator[Any]:
    """The text boxes (w:txbxContent) in a paragraph's runs, each once: Word writes one twice, as a DrawingML shape
    (mc:Choice) and as VML for older readers (mc:Fallback), and only the first choice is read. A box inside a box is
    found as the outer box's paragraphs are read; a deleted run's box is not the document's."""
    for child in element:
        if child.tag == WORD + "txbxContent":
            yield child
        elif child.tag == MARKUP_COMPATIBILITY + "AlternateContent":
            choices = child.iterchildren(MARKUP_COMPATIBILITY + "Choice", MARKUP_COMPATIBILITY + "Fallback")
            yield from _docx_text_boxes(islice(choices, 1))
        elif child.tag not in DOCX_NOT_CURRENT:
            yield from _docx_text_boxes(child)


def _docx_runs_text(element: Any) -> str:
    """A paragraph's text: its runs', those inside DOCX_RUN_WRAPPERS included (python-docx's reads only the runs
    and links directly in it)."""
    return "".join(
        child.text if child.tag == WORD + "r" else _docx_runs_text(child)
        for child in element
        if child.tag == WORD + "r" or child.tag in DOCX_RUN_WRAPPERS
    )


def _docx_heading(document: Any) -> str:
    """The text of a Word document's first Title or Heading 1 paragraph with words, else "": text boxes' included,
    as a cover page sets its title in one."""
    from docx.text.paragraph import Paragraph

    for element in _docx_paragraphs(document.element.body):
        style = Paragraph(element, document).style
        if style is not None and style.name in ("Title", "Heading 1") and (text := _docx_runs_text(element).strip()):
            return text
    return ""


def _docx_paragraphs(container: Any) -> Iterator[Any]:
    """The paragraphs (w:p) of a body or a text box outside tables, in the order _docx_lines reads them: each one,
    then those of the text boxes anchored in it."""
    for element in _docx_blocks(container):
        if element.tag == WORD + "p":
            yield element
            for box in _docx_text_boxes(element):
                yield from _docx_paragraphs(box)


def _docx_notes(document: Any) -> Iterator[str]:
    """The text of a Word document's footnotes, then its endnotes, a block each: Word prints them at a page's or
    the document's end, and what they say is as much the document's as its body."""
    from docx.opc.constants import RELATIONSHIP_TYPE
    from docx.oxml.parser import parse_xml

    for reltype in (RELATIONSHIP_TYPE.FOOTNOTES, RELATIONSHIP_TYPE.ENDNOTES):
        for relationship in document.part.rels.values():
            if relationship.reltype == reltype and not relationship.is_external:
                for note in parse_xml(relationship.target_part.blob):
                    if note.get(WORD + "type", "normal") == "normal":  # not a separator line
                        yield "\n".join(_docx_lines(note, document))


def unpackable(data: bytes) -> io.BytesIO:
    """An Office file's bytes to parse, once its zip is known to unpack to less than MAX_OFFICE_UNPACKED_BYTES."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unpacked = sum(member.file_size for member in archive.infolist())
    if unpacked > MAX_OFFICE_UNPACKED_BYTES:
        raise ValueError(f"unpacks to {unpacked} bytes, over {MAX_OFFICE_UNPACKED_BYTES}")
    return io.BytesIO(data)


def pptx_to_text(data: bytes) -> tuple[str, str]:
    """(title, text) of a slide deck: each slide a paragraph block of its shapes' text (tables row by row, groups
    opened) and its speaker notes, in slide order. The title is the deck's own, else the first slide's title."""
    from pptx import Presentation

    deck = Presentation(unpackable(data))
    title, slides = given_title(deck.core_properties.title), []
    for slide in deck.slides:
        lines = [line for shape in slide.shapes for line in _shape_lines(shape)]
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            lines += (paragraph.text for paragraph in slide.notes_slide.notes_text_frame.paragraphs)
        if not title and slide.shapes.title is not None:
            title = slide.shapes.title.text_frame.text.strip()
        slides.append(BLOCK_BREAK.join(lines))
    return title, _tidy(BLOCK_BREAK.join(slides))


def _shape_lines(shape: Any) -> Iterator[str]:
    """A slide shape's text: a text frame's paragraphs, a table's rows (cells as separate words), a group's parts."""
    if shape.has_text_frame:
        yield from (paragraph.text for paragraph in shape.text_frame.paragraphs)
    elif getattr(shape, "has_table", False):
        for row in shape.table.rows:
            yield " ".join(cell.text for cell in row.cells)
    elif hasattr(shape, "shapes"):  # a group
        for part in shape.shapes:
            yield from _shape_lines(part)


def xlsx_to_text(data: bytes) -> tuple[str, str]:
    """(title, text) of a workbook: each sheet a table as table_to_text writes one (its header row naming the
    columns), led by the sheet's name when there are several. Formulas give the value last saved with them."""
    from openpyxl import load_workbook

    book = load_workbook(unpackable(data), read_only=True, data_only=True)
    try:
        title = given_title(book.properties.title)
        sheets = [(sheet.title, [_cells(row) for row in sheet.iter_rows(values_only=True)]) for sheet in book]
    finally:
        book.close()
    several = len(sheets) > 1
    parts = [f"{name}\n\n{text}" if several else text for name, rows in sheets if (text := rows_to_text(rows))]
    return title, "\n\n".join(parts)


def _cells(row: Sequence[object]) -> list[str]:
    """A worksheet row's values as text, an empty cell as ""; a date as 2024-05-01, not Python's 00:00:00."""
    return ["" if value is None else scalar_text(value) for value in row]


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
    return _tidy(BLOCK_BREAK.join(texts))


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


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
"""Longest first: UTF-32 LE's mark begins with UTF-16 LE's."""


def decode_text(data: bytes) -> str:
    """A text file's characters: UTF-8, or the UTF-16 or UTF-32 its byte-order mark names (what Windows tools
    such as PowerShell's ``>`` write). Without a mark, anything but UTF-8 raises UnicodeDecodeError: a guessed
    legacy code page turns accented and non-Latin letters into wrong ones that would then be searched and cited.
    NUL characters raise it too (reason NUL_IN_TEXT): HTML and Markdown parsers would turn them into U+FFFD and
    index the rest, and ASCII text in UTF-16 without its mark is valid UTF-8 with a NUL after every letter."""
    encoding = next((encoding for mark, encoding in _BOMS if data.startswith(mark)), "utf-8")
    text = data.decode(encoding)
    if "\x00" in text:
        nul = data.find(b"\x00")
        raise UnicodeDecodeError(encoding, data, nul, nul + 1, NUL_IN_TEXT)
    return text


_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
"""A C0 control or DEL: never in text, whose only controls are tab, line breaks and form feed."""


def utf16_without_mark(data: bytes) -> str | None:
    """The encoding, UTF-16LE or UTF-16BE, of data that reads as UTF-16 text without a byte-order mark, else None.
    Every character below U+0100 (spaces, line breaks, Latin letters) has a NUL high byte, second in little-endian
    and first in big-endian, so such text has its NULs at odd or at even offsets; decoding it in that byte order
    without an unpaired surrogate or a control character confirms it, where a binary file fails."""
    even, odd = data[0::2].count(0), data[1::2].count(0)
    if len(data) % 2 or even == odd:
        return None
    encoding = "UTF-16LE" if odd > even else "UTF-16BE"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None
    return None if _CONTROL_CHARACTER.search(text) else encoding


def not_text_reason(data: bytes) -> str:
    """Why a text file is not read, with the command that converts it: UTF-16 without its mark (what some Windows
    tools write) is named so, anything else holding a NUL byte is binary, not text, and the rest is taken for a legacy
    code page."""
    if encoding := utf16_without_mark(data):
        return (
            f"probably {encoding} text without a byte-order mark (convert it first, e.g. iconv -f {encoding} -t UTF-8)"
        )
    return NOT_TEXT if b"\x00" in data else NOT_UTF8


def decode_html(data: bytes) -> str:
    """An HTML file's characters: as decode_text, else in the encoding its own ``<meta charset>`` declares (a
    statement, not a guess; HTML5 reads ISO-8859-1 as its superset windows-1252)."""
    try:
        return decode_text(data)
    except UnicodeDecodeError as error:
        declared = EncodingDetector.find_declared_encoding(data, is_html=True)
        if not declared or error.reason == NUL_IN_TEXT:
            raise
        encoding = "windows-1252" if codecs.lookup(declared).name == "iso8859-1" else declared
        return data.decode(encoding)


def table_to_text(raw: str, suffix: str) -> str:
    """A table as text, its header row naming the columns: each row a paragraph of "column: value" lines (empty
    cells left out), so a row's values stay together in one chunk and each keeps its column's name."""
    return rows_to_text(csv.reader(io.StringIO(raw), csv.excel_tab if suffix == ".tsv" else _sniffed_dialect(raw)))


def rows_to_text(rows: Iterable[Sequence[str]]) -> str:
    """Rows of cells as table_to_text writes them: the header row (_header_position) naming the columns, and any
    title above it first, a line each."""
    rows = iter(rows)
    head = list(islice(rows, HEADER_SEARCH_ROWS))
    position = _header_position(head)
    titles = [" ".join(cell.strip() for cell in row if cell.strip()) for row in head[:position]]
    header = head[position] if head else []
    names = [name.strip() or f"column {number}" for number, name in enumerate(header, start=1)]
    paragraphs = [title for title in titles if title]
    for row in chain(head[position + 1 :], rows):
        cells = [(names[i] if i < len(names) else f"column {i + 1}", cell.strip()) for i, cell in enumerate(row)]
        if lines := [field_line(name, value) for name, value in cells if value]:
            paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


HEADER_SEARCH_ROWS = 20
"""How many of a table's first rows its header is looked for in."""
_NUMBER = re.compile(r"[-+]?[\d.,\s]*\d%?")


def _header_position(rows: Sequence[Sequence[str]]) -> int:
    """Which row is a table's header: the first, unless it and those after it hold one value or none (a sheet's
    title, a blank row) above one with values in most columns, none of them a number (the header a spreadsheet's
    title sits over; "name" over "Envoy, 8080" is a header over a data row longer than it)."""
    counts = [sum(1 for cell in row if cell.strip()) for row in rows]
    width = max(counts, default=0)
    for position, count in enumerate(counts):
        if 2 * count > width:
            numbers = any(_NUMBER.fullmatch(cell.strip()) for cell in rows[position])
            return 0 if numbers else position
        if count > 1:
            break
    return 0


def _sniffed_dialect(raw: str) -> type[csv.Dialect]:
    """The CSV's delimiter (comma, semicolon, tab or bar) and quote character, as its first lines show them. A quote
    inside a quoted value is written twice, as RFC 4180 says and every spreadsheet writes it: the sniffer guesses
    otherwise when no such value is among those it looks at, and a value's second quote then ended it."""
    try:
        dialect = csv.Sniffer().sniff(raw[:8192], delimiters=",;\t|")
    except csv.Error:  # one column, or too little to tell
        return csv.excel
    dialect.doublequote = True
    return dialect


def extract(suffix: str, data: bytes) -> tuple[str, str, dict[str, str]]:
    """(title, text, metadata) of one file's bytes by its type; an empty title lets the caller use the file name.
    Only Markdown carries metadata of its own (its front matter)."""
    if suffix in MARKDOWN_SUFFIXES:
        return markdown_document(decode_text(data))
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
    if suffix in HTML_SUFFIXES:
        return html_to_text(decode_html(data))
    raw = decode_text(data)
    if suffix in TABLE_SUFFIXES:
        return "", table_to_text(raw, suffix)
    return "", raw


def load_content(name: str, data: bytes, doc_id: str) -> Iterator[LoadedDocument | Skipped]:
    """The documents in one file's bytes (one, or one per line for JSON Lines); name gives the type, unless the
    bytes say they are another type read here (sniffed_suffix), whatever the name's suffix or without one: an
    upload named "report" or "scan.bin" that is a PDF is read as one."""
    suffix = Path(name).suffix.lower()
    if len(data) > MAX_FILE_BYTES:  # before anything parses it: a zip's directory, a compound document's
        yield skipped_file(name, doc_id, TOO_LARGE, marked_suffix(data))
        return
    kind = sniffed_suffix(data) or suffix
    if older := older_office_reason(suffix, data):
        yield skipped_file(name, doc_id, older)
    elif kind not in SUPPORTED:
        advice = f" (save it as {LEGACY_OFFICE[suffix]})" if suffix in LEGACY_OFFICE else ""
        yield Skipped(name, f"unsupported file type {suffix or '(none)'}{advice}")
    elif kind in JSONL_SUFFIXES:
        yield from load_jsonl(name, data.split(b"\n"))
    elif kind == ".json":
        yield from load_json(name, data)
    else:
        yield _one_document(name, kind, data, doc_id)


OFFICE_MAIN_PARTS = {"word/document.xml": ".docx", "ppt/presentation.xml": ".pptx", "xl/workbook.xml": ".xlsx"}
"""The part inside its zip that makes a file a Word document, a slide deck or a workbook."""


def sniffed_suffix(data: bytes) -> str | None:
    """The suffix of the type a file's first bytes show, when they show a PDF or Rich Text (marked_suffix) or a Word,
    PowerPoint or Excel file (a zip of their parts): a PDF named memo.txt is read as the PDF it is, not refused as
    text in a legacy code page or stored as PDF syntax, and a Word file named report.pdf as a Word file. None for
    anything else."""
    if marked := marked_suffix(data):
        return marked
    if not data.startswith(b"PK\x03\x04"):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except ZIP_DIRECTORY_ERRORS:
        return None  # the loader its name picks says why it is not read
    return next((suffix for part, suffix in OFFICE_MAIN_PARTS.items() if part in names), None)


ZIP_DIRECTORY_ERRORS = (zipfile.BadZipFile, NotImplementedError, UnicodeDecodeError)
"""What zipfile raises listing a damaged zip's names: BadZipFile for a cut or garbled directory, NotImplementedError
for a zip version it does not know, UnicodeDecodeError for a name flagged UTF-8 that is not (its own reading errors
it raises as BadZipFile)."""


def marked_suffix(data: bytes) -> str | None:
    """The suffix of the type a file's marks show without parsing it: a PDF's (pdf_start) or Rich Text's, else None."""
    if pdf_start(data) is not None:
        return ".pdf"
    return ".rtf" if data.startswith(rich_text.RTF_SIGNATURE) else None


PDF_HEADER = b"%PDF-"
PDF_END = b"%%EOF"
PDF_MARK_WINDOW = 1024
"""Acrobat reads a PDF whose header lies within its first 1,024 bytes and whose %%EOF lies within its last 1,024
(PDF 1.7, annex H): scanners, mail gateways and MacBinary or HTTP wrappers put bytes before the header."""


def pdf_start(data: bytes) -> int | None:
    """Where a PDF's own bytes begin (its header), None for a file that is no PDF. A header after other bytes counts
    only when the file ends as a PDF does, so a note that mentions "%PDF-1.7" near its start stays a note."""
    start = data.find(PDF_HEADER, 0, PDF_MARK_WINDOW)
    if start == 0 or (start > 0 and PDF_END in data[-PDF_MARK_WINDOW:]):
        return start
    return None


def older_office_reason(suffix: str, data: bytes) -> str | None:
    """Why a compound document (OLE2) is not read, naming its format: an older Word, Excel or PowerPoint file or an
    encrypted .docx, .xlsx or .pptx, either of which is often named .docx or .xlsx (the zip-based loaders then failed
    with a bare BadZipFile). None for any other file, and for another program's compound document not named as an
    Office file (an Outlook .msg): its suffix says why it is not read."""
    if not data.startswith(OLE2_SIGNATURE):
        return None
    streams = _ole2_streams(data)
    if OLE2_ENCRYPTED_STREAM in streams:
        return ENCRYPTED_OFFICE
    formats = {OLE2_OFFICE_STREAMS[stream] for stream in streams if stream in OLE2_OFFICE_STREAMS}
    if len(formats) == 1:  # several: one file embeds another (a chart's workbook in a Word file)
        [legacy] = formats
        return f"an older {LEGACY_OFFICE_APPS[legacy]} file (OLE2 {legacy}): save it as {LEGACY_OFFICE[legacy]} or PDF"
    return OLDER_OFFICE if formats or suffix in OFFICE_SUFFIXES | LEGACY_OFFICE.keys() else None


def _ole2_entry(stream: str) -> re.Pattern[bytes]:
    """A compound document's directory entry for a stream: 128 bytes, the name in UTF-16 with a closing NUL in the
    first 64, then the name's length in bytes (two, little-endian) and its type (2, a stream)."""
    name = stream.encode("utf-16-le") + b"\0\0"
    length = len(name).to_bytes(2, "little")
    return re.compile(re.escape(name) + b".{%d}" % (64 - len(name)) + re.escape(length + b"\x02"), re.DOTALL)


_OLE2_ENTRIES = {stream: _ole2_entry(stream) for stream in [*OLE2_OFFICE_STREAMS, OLE2_ENCRYPTED_STREAM]}


def _ole2_streams(data: bytes) -> set[str]:
    """Which streams of _OLE2_ENTRIES a compound document's directory lists: its entries lie at multiples of 128
    bytes from the start (the directory's sectors are whole multiples of 512 after the 512-byte header), so they are
    found by search instead of by following the file's chains of sectors, which a name is not worth."""
    return {
        stream for stream, entry in _OLE2_ENTRIES.items() if any(m.start() % 128 == 0 for m in entry.finditer(data))
    }


TYPESETTING_HINTS = str.maketrans(dict.fromkeys(map(ord, "\u00ad\u200b\u2060\ufeff")))
"""Invisible characters a file's text holds only as hints to whoever sets it, taken out of every loaded file's text
and title: a soft hyphen (where a word may break), a zero-width space or word joiner (where a line may or may not)
and a zero-width no-break space (a byte-order mark inside the text). Left in, they split a word for search
("flows\u00adfast" was "flows" and "fast") and showed in citations. Zero-width joiners and non-joiners stay: they
change how emoji and Persian or Indic words are written."""


def _one_document(name: str, suffix: str, data: bytes, doc_id: str) -> LoadedDocument | Skipped:
    """The document a file of a type that holds one is, or why it is skipped."""
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
    return LoadedDocument(doc_id, title or Path(name).stem, text, {**metadata, **facts})


def file_type(suffix: str) -> str:
    """What a file was read as, as its document's metadata says it: one name for each type whichever of its suffixes
    the file has (.htm and .html are html), so a search filter {"file_type": "pdf"} finds every PDF. A file whose
    bytes show another type than its name is that type (sniffed_suffix)."""
    named = ((TEXT_SUFFIXES, "text"), (MARKDOWN_SUFFIXES, "markdown"), (HTML_SUFFIXES, "html"))
    return next((name for suffixes, name in named if suffix in suffixes), suffix.removeprefix("."))


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


def load_file(path: Path, doc_id: str) -> Iterator[LoadedDocument | Skipped]:
    """The documents in one file on disk."""
    if path.stat().st_size > MAX_FILE_BYTES:
        yield skipped_file(str(path), doc_id, TOO_LARGE)
        return
    yield from load_content(str(path), path.read_bytes(), doc_id)


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


def load_paths(paths: list[str]) -> Iterator[LoadedDocument | Skipped]:
    """Documents from files and folders; a folder with corpus.jsonl is read as a BEIR dataset (its records keep
    their ids). A file's id is its path from id_base, so README.md in two folders gives two documents."""
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            yield Skipped(raw, "no such file or folder")
        elif root.is_file():
            yield from load_file(root, file_id(root, id_base(root)))
        elif (corpus := root / "corpus.jsonl").is_file():
            with corpus.open("rb") as lines:
                yield from load_jsonl(str(corpus), lines)
            beside = f"not part of the BEIR corpus in {corpus} (give it as a path of its own to ingest it)"
            for found in folder_files(root):
                if found != corpus:
                    yield found if isinstance(found, Skipped) else Skipped(str(found), beside)
        else:
            base = id_base(root)
            for found in folder_files(root):
                if isinstance(found, Skipped):
                    yield found
                else:
                    yield from load_file(found, file_id(found, base))


def folder_files(root: Path) -> Iterator[Path | Skipped]:
    """The regular files under root in name order, and each entry passed over with why: the README promises a
    report of everything not read. A hidden folder (.git, .venv) is reported once, not file by file."""
    for folder, folders, files in os.walk(root):
        here = Path(folder)
        for name in sorted(folders):
            if name.startswith(".") or (here / name).is_symlink():
                folders.remove(name)
                yield Skipped(str(here / name), _passed_folder(name))
        folders.sort()
        for name in sorted(files):
            path = here / name
            if name.startswith("."):
                yield Skipped(str(path), "hidden file, skipped")
            elif path.is_symlink() and not path.exists():
                yield Skipped(str(path), f"broken symbolic link: its target {os.readlink(path)} does not exist")
            elif not path.is_file():
                yield Skipped(str(path), "not a regular file")
            else:
                yield path


def _passed_folder(name: str) -> str:
    """Why a folder inside one being read is not: hidden, or a link (which could lead back into its own folder)."""
    if name.startswith("."):
        return "hidden folder, skipped with everything in it"
    return "symbolic link to a folder, not followed (give its target as a path of its own)"


def id_base(given: Path) -> Path:
    """What the ids of the files under a given path are relative to: the working directory when the path lies in
    it (``projA`` and ``projA/README.md`` both name ``projA/README.md``), else the path's parent (``/data/projA``
    gives ``projA/README.md``), so a file keeps the folder it was found in as the user named it."""
    absolute, cwd = Path(os.path.normpath(given.absolute())), Path.cwd()
    return cwd if absolute.is_relative_to(cwd) else absolute.parent


def file_id(path: Path, base: Path) -> str:
    """The id of the file at path: its path from base, with forward slashes on every system."""
    return Path(os.path.normpath(path.absolute())).relative_to(base).as_posix()


def earlier_ids(paths: list[str]) -> dict[str, str]:
    """For each file of the paths load_paths reads, the id releases before ids were paths gave it, where it differs
    from today's: a file given itself was its bare name, a folder's files their path inside that folder."""
    earlier: dict[str, str] = {}
    for raw in paths:
        root = Path(raw)
        if root.is_file():
            pairs = [(root, root.name)]
        elif root.is_dir() and not (root / "corpus.jsonl").is_file():
            found = (f for f in folder_files(root) if isinstance(f, Path))
            pairs = [(f, f.relative_to(root).as_posix()) for f in found]
        else:
            continue
        base = id_base(root)
        earlier.update((file_id(f, base), old) for f, old in pairs if file_id(f, base) != old)
    return earlier


def to_message(doc: LoadedDocument, access: retrieval_pb2.Access | None = None) -> retrieval_pb2.Document:
    """A loaded document as retrieval_svc takes it, with who may read it (None: the writer's whole tenant)."""
    message = retrieval_pb2.Document(id=doc.id, title=doc.title, text=doc.text, metadata=doc.metadata)
    if access is not None:
        message.access.CopyFrom(access)
    return message
