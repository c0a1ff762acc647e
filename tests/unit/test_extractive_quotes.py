"""What the extractive answer quotes of tables, read from files as the loaders and the chunker write them."""

from __future__ import annotations

import io

from openpyxl import Workbook

from generation_svc.backends import Passage
from generation_svc.extractive import choose_sentences, compose
from generation_svc.grounding import check
from likeopt.runtime.loaders import LoadedDocument, load_content
from retrieval_svc.chunking import chunk_text


def passage(name: str, data: bytes) -> Passage:
    """The first chunk of a file as retrieval_svc would store it, as passage 1."""
    (document,) = load_content(name, data, name)
    assert isinstance(document, LoadedDocument)
    chunk = chunk_text(document.text, lambda text: len(text.split()), 256, 1)[0]
    return Passage(1, name, f"{name}#0", document.title, chunk)


def workbook(rows: list[list[object]]) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


STOCK = [["Item", "Quantity", "Warehouse"], ["Glimmerbolt", 42, "Tarnhollow"], ["Sprocketwheel", 7, "Ostmark"]]


def test_a_spreadsheet_row_is_quoted_with_all_its_cells_and_is_supported() -> None:
    """Each cell is a short "column: value" line, which was taken for a heading: no answer at all."""
    stock = passage("stock.xlsx", workbook(STOCK))
    answer, _ = compose(choose_sentences("How many Glimmerbolt are in stock?", [stock]))
    assert answer == "Item: Glimmerbolt; Quantity: 42; Warehouse: Tarnhollow. [1]"
    assert check(answer, [stock]).support == 1.0


def test_a_tsv_row_answers_with_its_value() -> None:
    planets = passage("planets.tsv", b"planet\tmoons\nZephyrion\t14\nKalthos\t2\n")
    chosen = choose_sentences("How many moons does Zephyrion have?", [planets])
    assert chosen[0] == ("planet: Zephyrion; moons: 14", 1)


def test_headings_are_still_not_quoted() -> None:
    notes = passage("pump.md", b"# Pump notes\n\n## Pressure\n\nThe pump runs at 40 bar of pressure.\n")
    assert choose_sentences("What pressure does the pump run at?", [notes]) == [
        ("The pump runs at 40 bar of pressure.", 1)
    ]
