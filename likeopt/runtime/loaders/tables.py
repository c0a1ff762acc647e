"""CSV and TSV tables, and a workbook's sheets, as text: each row a paragraph of "column: value" lines named by the
header row."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from itertools import chain, islice

from likeopt.runtime.text_layout import field_line


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


def sheets_to_text(sheets: Sequence[tuple[str, Iterable[Sequence[str]]]]) -> str:
    """A workbook's sheets (name, rows) as text: each a table as rows_to_text writes one, led by the sheet's name
    when there are several, so a row's values can be told apart from another sheet's."""
    several = len(sheets) > 1
    parts = [f"{name}\n\n{text}" if several else text for name, rows in sheets if (text := rows_to_text(rows))]
    return "\n\n".join(parts)


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
