"""Word (.docx), PowerPoint (.pptx) and Excel (.xlsx) files as text, each zip checked against a zip bomb before it is
parsed (packages.unpackable)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

from likeopt.runtime.loaders.documents import scalar_text
from likeopt.runtime.loaders.packages import unpackable
from likeopt.runtime.loaders.tables import sheets_to_text
from likeopt.runtime.loaders.tidy import BLOCK_BREAK, given_title, tidy

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
    return title, tidy(BLOCK_BREAK.join(lines))


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
    return title, tidy(BLOCK_BREAK.join(slides))


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
    return title, sheets_to_text(sheets)


def _cells(row: Sequence[object]) -> list[str]:
    """A worksheet row's values as text, an empty cell as ""; a date as 2024-05-01, not Python's 00:00:00."""
    return ["" if value is None else scalar_text(value) for value in row]
