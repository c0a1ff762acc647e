"""OpenDocument files, LibreOffice's own (.odt text, .ods spreadsheet, .odp presentation), as text: the content.xml
of their zip walked in document order, titled by meta.xml's title."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

from likeopt.runtime.loaders.documents import Unreadable, scalar_text
from likeopt.runtime.loaders.packages import opened, part_xml
from likeopt.runtime.loaders.tables import sheets_to_text
from likeopt.runtime.loaders.tidy import BLOCK_BREAK, given_title, tidy

OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
DRAW = "{urn:oasis:names:tc:opendocument:xmlns:drawing:1.0}"
PRESENTATION = "{urn:oasis:names:tc:opendocument:xmlns:presentation:1.0}"
DC = "{http://purl.org/dc/elements/1.1/}"
"""The namespaces of OpenDocument's XML, as lxml spells its tags."""

ODF_KINDS = {".odt": "OpenDocument text", ".ods": "OpenDocument spreadsheet", ".odp": "OpenDocument presentation"}
"""How a refusal names each type."""
NOT_CONTENT = frozenset(
    {
        TEXT + "tracked-changes",  # the text of tracked deletions, no longer the document's
        TEXT + "note",  # a footnote or endnote: read after the body
        OFFICE + "annotation",  # a comment, about the text rather than of it
        *(TEXT + index for index in ("table-of-content", "illustration-index", "table-index", "object-index")),
        *(TEXT + index for index in ("alphabetical-index", "user-index", "bibliography")),
    }
)
"""Elements whose text is not read where they stand: deleted text, notes, comments, and indexes (a copy of the
headings or captions they list)."""
TABLE_ROW_GROUPS = frozenset(TABLE + name for name in ("table-header-rows", "table-rows", "table-row-group"))
"""What holds a table's rows besides the table itself."""
MAX_SHEET_COLUMNS = 16384
MAX_SPREADSHEET_CELLS = 5_000_000
"""A spreadsheet writes a run of alike cells or rows once with a count (LibreOffice pads every sheet to its last
column and row so): the columns a row may reach (LibreOffice's own limit) and the cells with values the counts may
expand to, past which a file is refused rather than grown (a few bytes can claim a billion cells)."""


def odf_to_text(suffix: str, data: bytes) -> tuple[str, str]:
    """(title, text) of an OpenDocument file of the type suffix names: a text's paragraphs, lists and table rows in
    order with its text boxes' paragraphs after the paragraph holding them, then its notes; a presentation's slides
    (their shapes' text, tables and speaker notes); a spreadsheet's sheets as tables. The title is meta.xml's, else
    the first heading or slide title."""
    kind = ODF_KINDS[suffix]
    with opened(data) as archive:
        content = part_xml(archive, "content.xml", kind)
        meta = part_xml(archive, "meta.xml", kind) if "meta.xml" in archive.namelist() else None
    body = content.find(OFFICE + "body")
    if body is None:
        raise Unreadable(f"not a complete {kind}: its content.xml has no office:body")
    title = given_title(meta.findtext(f"{OFFICE}meta/{DC}title") if meta is not None else None)
    if suffix == ".ods":
        return title, _spreadsheet_text(body)
    notes = ("\n".join(_lines(note)) for note in body.iter(TEXT + "note-body"))
    return title or _first_heading(body), tidy(BLOCK_BREAK.join([*_lines(body), *notes]))


def _lines(container: Any) -> Iterator[str]:
    """The lines of a body, a slide, a shape, a list or a cell: each paragraph's or heading's text, then its text
    boxes', and each table row's. libxml2 bounds the depth of the tree, and so this recursion."""
    for child in container:
        if child.tag in (TEXT + "p", TEXT + "h"):
            yield _inline_text(child)
            for box in _text_boxes(child):
                yield from _lines(box)
        elif child.tag == TABLE + "table":
            for row in _rows(child):
                yield " ".join("\n".join(_lines(cell)) for cell in row if cell.tag == TABLE + "table-cell")
        elif child.tag not in NOT_CONTENT:
            yield from _lines(child)


def _inline_text(element: Any) -> str:
    """A paragraph's text: its spans' and links' included, text:s (a run of spaces) as a space, tabs and line breaks
    as written; notes, comments and shapes (text boxes, read after it) left out."""
    parts = [element.text or ""]
    for child in element:
        if child.tag == TEXT + "s":
            parts.append(" ")  # its count of spaces is tidied to one, as every run of spaces is
        elif child.tag == TEXT + "tab":
            parts.append("\t")
        elif child.tag == TEXT + "line-break":
            parts.append("\n")
        elif isinstance(child.tag, str) and child.tag not in NOT_CONTENT and not child.tag.startswith(DRAW):
            parts.append(_inline_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _text_boxes(element: Any) -> Iterator[Any]:
    """The text boxes (draw:text-box) anchored in a paragraph, outside its notes and comments; a box inside a box
    is found as the outer box's paragraphs are read."""
    for child in element:
        if child.tag == DRAW + "text-box":
            yield child
        elif child.tag not in NOT_CONTENT:
            yield from _text_boxes(child)


def _rows(container: Any) -> Iterator[Any]:
    """A table's rows (table:table-row), those in header and row groups included, in order."""
    for child in container:
        if child.tag == TABLE + "table-row":
            yield child
        elif child.tag in TABLE_ROW_GROUPS:
            yield from _rows(child)


def _first_heading(body: Any) -> str:
    """The text of a text's first level-1 heading or a presentation's first slide title with words, else ""."""
    for element in body.iter(TEXT + "h", DRAW + "frame"):
        if element.tag == TEXT + "h" and element.get(TEXT + "outline-level", "1") == "1":
            heading = _inline_text(element)
        elif element.get(PRESENTATION + "class") == "title":
            heading = " ".join(_lines(element))
        else:
            continue
        if heading := " ".join(heading.split()):
            return heading
    return ""


def _spreadsheet_text(body: Any) -> str:
    """A spreadsheet's sheets as tables (sheets_to_text), its cells' counts of repeats expanded within bounds."""
    budget = [MAX_SPREADSHEET_CELLS]
    sheets = [(sheet.get(TABLE + "name", ""), _sheet_rows(sheet, budget)) for sheet in body.iter(TABLE + "table")]
    return sheets_to_text(sheets)


def _sheet_rows(sheet: Any, budget: list[int]) -> list[list[str]]:
    """A sheet's rows as lists of cell values, a row written once for a run of alike rows repeated (an empty one
    once: it adds nothing to a table's text). budget holds the cells left to expand, shared by every sheet."""
    rows: list[list[str]] = []
    for row in _rows(sheet):
        values = _row_values(row)
        repeat = _count(row, TABLE + "number-rows-repeated") if values else 1
        budget[0] -= len(values) * repeat
        if budget[0] < 0:
            raise Unreadable(f"a spreadsheet whose repeated rows and cells expand past {MAX_SPREADSHEET_CELLS} cells")
        rows += [values] * repeat
    return rows


def _row_values(row: Any) -> list[str]:
    """A row's cell values, in their columns (a merged cell's covered ones empty), without the empty ones after the
    last value."""
    values: list[str] = []
    blanks = 0
    for cell in row:
        if cell.tag not in (TABLE + "table-cell", TABLE + "covered-table-cell"):
            continue
        value = _cell_value(cell) if cell.tag == TABLE + "table-cell" else ""
        repeat = _count(cell, TABLE + "number-columns-repeated")
        if not value:
            blanks += repeat
            continue
        if len(values) + blanks + repeat > MAX_SHEET_COLUMNS:
            raise Unreadable(f"a spreadsheet row with values past column {MAX_SHEET_COLUMNS}")
        values += [""] * blanks + [value] * repeat
        blanks = 0
    return values


def _cell_value(cell: Any) -> str:
    """A cell's value as a workbook's are read: a number, percentage or currency as its value (3, 0.25), not as
    shown (3.00, 25 %, 3,00 €), a boolean as JSON writes it, a date in ISO 8601, anything else as its text."""
    shown = "\n".join(_lines(cell))
    kind = cell.get(OFFICE + "value-type")
    if kind in ("float", "percentage", "currency"):
        return cell.get(OFFICE + "value") or shown
    if kind == "boolean":
        return cell.get(OFFICE + "boolean-value") or shown
    if kind == "date":
        try:
            return scalar_text(datetime.datetime.fromisoformat(cell.get(OFFICE + "date-value", "")))
        except ValueError:
            return shown
    return shown


def _count(element: Any, attribute: str) -> int:
    """A repeat count an element carries, 1 when it has none or a count that is no positive number."""
    value = element.get(attribute, "1")
    return max(int(value), 1) if value.isdigit() and len(value) < 10 else 1
