"""Text layout: which line breaks a chunk keeps (code's, paragraphs') and which it joins (a wrapped paragraph's)."""

from __future__ import annotations

import pytest

from likeopt.runtime.text_layout import Piece, fenced, pieces


def prose(text: str, after: str = "") -> Piece:
    return Piece(text, True, after)


def line(text: str, after: str = "\n") -> Piece:
    return Piece(text, False, after)


@pytest.mark.parametrize(
    ("text", "joined"),
    [
        ("   A client that loses its\n   connection resumes.", "A client that loses its connection resumes."),
        ("Unindented wrapped\nlines join too.", "Unindented wrapped lines join too."),
        ("    A paragraph indent on\nthe first line only.", "A paragraph indent on the first line only."),
        ("   4. Redistribution. You may\n      reproduce it.", "4. Redistribution. You may reproduce it."),
        ("      (a) You must give the\n          recipients a copy.", "(a) You must give the recipients a copy."),
        ("   o  The client sends\n      a request.", "o  The client sends a request."),
        ('   [RFC2119]  Bradner, S., "Key\n              words".', '[RFC2119]  Bradner, S., "Key words".'),
        ("肺癌是一种\n常见的疾病。", "肺癌是一种常见的疾病。"),
    ],
)
def test_a_paragraph_of_one_indentation_or_a_hanging_list_item_is_prose(text: str, joined: str) -> None:
    """The Apache licence and RFCs wrap indented paragraphs and list items whose text hangs past the marker;
    Chinese and Japanese lines join without a space, as those scripts write words."""
    assert pieces(text) == [prose(joined)]


def test_a_paragraph_indented_otherwise_keeps_its_lines_less_their_shared_indentation() -> None:
    text = "    def f(x):\n        # comment\n        return x\n\n  server:\n    port: 8080\n  name: demo"
    assert pieces(text) == [
        line("def f(x):"),
        line("    # comment"),
        line("    return x", "\n\n"),
        line("server:"),
        line("  port: 8080"),
        line("name: demo", ""),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "name: quokka\nage: 3\nok: true",  # a table's row, as the CSV and workbook loaders write it
        "Item: Trombone\nQty: 3\nReceived: 2024-03-05",
        "- apples\n- pears\n- plums",
        "1. Unpack it.\n2. Run make up.",
    ],
)
def test_a_records_fields_and_a_lists_items_keep_their_lines(text: str) -> None:
    """Read as a wrapped paragraph, a row ran together ("name: quokka age: 3 ok: true")."""
    *items, last = text.split("\n")
    assert pieces(text) == [*(line(item) for item in items), line(last, "")]


def test_a_wrapped_paragraph_that_opens_with_a_label_is_still_prose() -> None:
    assert pieces("Note: this paragraph wraps\nonto a second line.") == [
        prose("Note: this paragraph wraps onto a second line.")
    ]


def test_fenced_code_keeps_every_line_and_its_indentation_and_not_the_fences() -> None:
    """A fence interrupts a paragraph; blank lines inside the code stay; an unclosed fence runs to the end."""
    text = "Install\nit:\n```sh\n  apt-get update\n\n\napt-get install -y frobnicator\n```\nDone.\n~~~\nrun\n```\nstill"
    assert pieces(text) == [
        prose("Install it:", "\n\n"),
        line("  apt-get update", "\n\n\n"),
        line("apt-get install -y frobnicator", "\n\n"),
        prose("Done.", "\n\n"),
        line("run"),
        line("```"),
        line("still", ""),
    ]


def test_a_line_of_backticks_followed_by_a_backtick_is_no_fence() -> None:
    assert pieces("``` not `code`\nwrapped") == [prose("``` not `code` wrapped")]


@pytest.mark.parametrize(
    "code",
    [
        "apt-get update\napt-get install -y frobnicator\n",
        "\n    indented first\nthen\n\n  more\n",
        "Markdown about fences:\n```\nexample\n````\nend",
    ],
)
def test_fenced_code_reads_back_as_its_own_lines(code: str) -> None:
    """Loaders fence every code block; code that holds a fence itself must not close it early."""
    lines = [text for text in code.strip("\n").split("\n") if text]
    assert [piece.text for piece in pieces(f"Before.\n\n{fenced(code)}\n\nAfter.")] == ["Before.", *lines, "After."]


def test_blank_code_is_not_fenced() -> None:
    assert fenced(" \n\n") == ""
    assert pieces("") == []
