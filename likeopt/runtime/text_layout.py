"""Which of a text's line breaks are the writer's and which only wrap a paragraph.

One line break means two things. In hard-wrapped prose (an RFC, a licence, a PDF's text) it falls
mid-sentence and reads as a space; in code or a YAML file it is part of what is written. Chunks join
the first kind and keep the second, so an extractive answer quotes whole sentences and code keeps its
lines (retrieval_svc.chunking reads a text through ``pieces``).

- Text between Markdown code fences (lines of three or more backticks or tildes) is code: each line is
  kept as written, the fence lines are not. Loaders write every block they know to be preformatted (a
  Markdown code block, HTML's ``<pre>``) with ``fenced``. A fence rather than an invisible marker,
  because a document reaches retrieval_svc as one string, from loaders or as a caller's own text (a
  JSON record, a .txt file), and a fence is the marker people write too, so their Markdown reads the
  same as a loaded file's; an unclosed fence runs to the end, as CommonMark reads it.
- Any other paragraph (lines between blank lines) is prose when its lines share one indentation,
  the first line aside when it is indented deeper or hangs out by a list marker ("4. ", "(a) ", "- ")
  with its text where the other lines start. Its lines join into one line, as its script writes
  words in a row. A paragraph indented otherwise ("def f(x):" then its body) keeps its lines, less
  the indentation they all share.

Lines that each open with a list marker or a "label: " (a list, a table's row as the loaders write it, a flat
YAML mapping) keep their lines too. Other unfenced code whose lines share one indentation (shell commands) is
read as prose:
layout alone cannot tell it from a wrapped paragraph, and a wrapped paragraph cut into lines harms
answers far more than commands run together harm search.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

from likeopt.runtime.text import sentence_gap

CHUNKING_VERSION = 2
"""Raise it with any change to how a text is cut into chunks (this module, retrieval_svc.chunking): `likeopt
eval` keeps a collection's store per version, so it never measures chunks cut the old way. 1 joined every
single line break; 2 reads layout (prose joined, code, lists and records by their lines)."""
PARAGRAPH_BREAK = "\n\n"
_FENCE = re.compile(r" {0,3}(?P<fence>`{3,}|~{3,})(?P<info>.*)")
_LIST_MARKER = re.compile(
    r"(?:[-*+o\u2022\u2023\u25e6]|\(?(?:\d{1,3}|[A-Za-z]|[ivxIVX]{2,5})[.)]|\[[^\]\s]{1,20}\])\s+"
)
"""A bullet, a number or letter ("4.", "(a)", "iv)") or a reference label ("[RFC2119]") opening a list item."""


@dataclass(frozen=True)
class Piece:
    """A run of text with its layout: prose to split into sentences, or a line kept as written."""

    text: str
    prose: bool
    after: str
    """What follows it: a paragraph break, or line breaks between the lines of one block."""


def fenced(code: str) -> str:
    """code between fence lines, so that pieces keeps its lines as written: a fence of more backticks than any
    run in code, which therefore cannot close it early. "" for blank code, which has no lines to keep."""
    if not code.strip():
        return ""
    longest = max((len(run) for run in re.findall("`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{code.strip(chr(10))}\n{fence}"


def pieces(text: str) -> list[Piece]:
    """text's paragraphs and code blocks as pieces, in order; the last one's ``after`` is ""."""
    found: list[Piece] = []
    for lines, code in _blocks(text):
        found += _code_pieces(lines) if code else _paragraph_pieces(lines)
    if found:
        found[-1] = Piece(found[-1].text, found[-1].prose, "")
    return found


def _blocks(text: str) -> Iterator[tuple[list[str], bool]]:
    """(lines, whether fenced code) of each paragraph and code block of text, lines without trailing white
    space; a code block keeps its blank lines, and fences interrupt a paragraph as in CommonMark."""
    paragraph: list[str] = []
    code: list[str] | None = None
    fence = ""
    for line in (raw.rstrip() for raw in text.split("\n")):
        if code is not None:
            if _closes(line, fence):
                yield code, True
                code = None
            else:
                code.append(line)
        elif (opening := _opening_fence(line)) is not None:
            if paragraph:
                yield paragraph, False
            paragraph, code, fence = [], [], opening
        elif line.strip():
            paragraph.append(line)
        elif paragraph:
            yield paragraph, False
            paragraph = []
    if code is not None:
        yield code, True
    if paragraph:
        yield paragraph, False


def _opening_fence(line: str) -> str | None:
    """The fence line opens (its backticks or tildes), or None; a backtick fence's info string has no backtick."""
    match = _FENCE.fullmatch(line)
    if match is None or (match["fence"][0] == "`" and "`" in match["info"]):
        return None
    return match["fence"]


def _closes(line: str, fence: str) -> bool:
    """Whether line closes a block opened by fence: the same character, at least as many, nothing after."""
    match = _FENCE.fullmatch(line)
    if match is None or match["info"].strip():
        return False
    return match["fence"][0] == fence[0] and len(match["fence"]) >= len(fence)


def _code_pieces(lines: list[str]) -> list[Piece]:
    """Each non-blank line of a code block as written, followed by as many line breaks as the text has there."""
    found: list[Piece] = []
    for line in lines:
        if line.strip():
            found.append(Piece(line, False, "\n"))
        elif found:
            found[-1] = Piece(found[-1].text, False, found[-1].after + "\n")
    if found:
        found[-1] = Piece(found[-1].text, False, PARAGRAPH_BREAK)
    return found


def _paragraph_pieces(lines: list[str]) -> list[Piece]:
    """A paragraph as one piece of prose when it reads as prose, else its lines less their shared indentation."""
    if _reads_as_prose(lines):
        words = [line.strip() for line in lines]
        joined = words[0] + "".join(sentence_gap(before, after) + after for before, after in pairwise(words))
        return [Piece(joined, True, PARAGRAPH_BREAK)]
    margin = min(_indentation(line) for line in lines)
    return [Piece(line[margin:], False, "\n") for line in lines[:-1]] + [
        Piece(lines[-1][margin:], False, PARAGRAPH_BREAK)
    ]


def field_line(label: str, value: str) -> str:
    """A record's field as the loaders write a table's cell, the shape _FIELD reads back as a line to keep."""
    return f"{label}: {value}"


_FIELD = re.compile(r"[^\s:]+(?: [^\s:]+){0,3}:\s")
"""A line that opens with a label of up to four words and a colon ("Qty: 3", "Date received: 2024-03-05"), as the
loaders write a table's cells: a record's field."""


def is_record(lines: list[str]) -> bool:
    """Whether each line is a record's field ("Qty: 3"), as the loaders write a table's row, one cell a line."""
    return all(_FIELD.match(line.lstrip()) for line in lines)


def opens_list_item(line: str) -> bool:
    """Whether line opens with a list marker ("- ", "4. ", "(a) ", "[RFC2119] ")."""
    return _LIST_MARKER.match(line.lstrip()) is not None


def _reads_as_prose(lines: list[str]) -> bool:
    """Whether lines share one indentation, the first line aside when it is indented deeper (a paragraph indent)
    or hangs out by a list marker with its text where the others start ("(a) You must" over "    Derivative").
    Lines that each open with a list marker or a field's label are items of a list or a record (a table's row
    is written as "column: value" lines), not a wrapped paragraph."""
    if len(lines) > 1 and (is_record(lines) or all(opens_list_item(line) for line in lines)):
        return False
    following = {_indentation(line) for line in lines[1:]}
    if len(following) > 1:
        return False
    if not following:
        return True
    (margin,) = following
    first = _indentation(lines[0])
    marker = _LIST_MARKER.match(lines[0], first)
    return first >= margin or (marker is not None and marker.end() == margin)


def _indentation(line: str) -> int:
    """Leading white space in characters: a tab counts as one, as writers rarely mix tabs and spaces in a block."""
    return len(line) - len(line.lstrip())
