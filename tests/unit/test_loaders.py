"""Loaders: what a reader sees is what gets indexed, from HTML, Markdown, Office files and tables."""

from __future__ import annotations

import codecs
import io
import json
import re
import subprocess
import sys
import zipfile
from typing import Any

import pytest
from docx import Document

from likeopt.runtime import loaders
from likeopt.runtime.loaders import (
    LoadedDocument,
    Skipped,
    html_to_text,
    load_content,
    markdown_to_text,
    packages,
    rich_text,
)
from tests.pdfs import pdf_bytes
from tests.support import ROOT

PAGE = """<!doctype html>
<html><head><title> Port  map </title><style>td { color: red }</style><script>var secret = 1;</script></head>
<body>
<header><a href="/">Site name</a></header>
<nav><ul><li><a href="/a">Home</a></li><li><a href="/b">Blog</a></li></ul></nav>
<h1>Ports</h1>
<table><tr><th>Port</th><th>Process</th></tr><tr><td>8080</td><td>Envoy</td></tr></table>
<p>Envoy <b>list</b>ens on one port &amp; speaks HTTP/2.<!-- an editor's note --></p>
<aside>Subscribe to our newsletter</aside>
<footer>Copyright</footer>
</body></html>"""


def one(name: str, data: bytes) -> LoadedDocument:
    [item] = load_content(name, data, doc_id=name)
    assert isinstance(item, LoadedDocument), item
    return item


def test_html_table_cells_stay_separate_words() -> None:
    _, text = html_to_text("<table><tr><td>alpha</td><td>beta</td></tr><tr><td>gamma</td><td>delta</td></tr></table>")
    assert text.split("\n\n") == ["alpha beta", "gamma delta"]


def test_html_navigation_scripts_styles_and_page_furniture_are_dropped() -> None:
    title, text = html_to_text(PAGE)
    for furniture in ("Site name", "Home", "Blog", "secret", "color", "newsletter", "Copyright", "editor's note"):
        assert furniture not in text
    assert "Envoy listens on one port & speaks HTTP/2." in text  # inline tags join, entities decoded
    assert "Port Process" in text and "8080 Envoy" in text
    assert title == "Port map"


def test_html_title_falls_back_to_the_first_h1() -> None:
    assert html_to_text("<body><h1>Cache <em>layers</em></h1><h1>Later</h1><p>x</p></body>")[0] == "Cache layers"
    assert html_to_text("<p>no heading</p>")[0] == ""


BLOG_POST = """<html><head><title>How we cut latency | Acme Engineering Blog</title></head><body>
<header><h1>Acme Engineering Blog</h1></header>
<main><article>
<header><h1>How we cut latency by 40%</h1><p>By Dana, 3 May 2024</p></header>
<p>We replaced the JSON encoder.</p>
<section><header><h2>Results</h2></header><p>p99 fell.</p><footer>Measured in production.</footer></section>
</article></main>
<footer>Copyright Acme</footer>
</body></html>"""


def test_an_article_s_own_header_and_footer_are_content_and_its_headline_is_the_title() -> None:
    """HTML5 scopes a <header> or <footer> to its article, section or main: there it holds the headline and byline,
    and only the page's own banner and footer are furniture."""
    title, text = html_to_text(BLOG_POST)
    assert title == "How we cut latency by 40%"
    assert text.split("\n\n") == [
        "How we cut latency by 40%",
        "By Dana, 3 May 2024",
        "We replaced the JSON encoder.",
        "Results",
        "p99 fell.",
        "Measured in production.",
    ]


def test_a_page_of_several_articles_is_titled_by_its_title_element_not_by_one_of_them() -> None:
    index = "<title>All posts</title><main><article><h1>First</h1></article><article><h1>Second</h1></article></main>"
    assert html_to_text(index)[0] == "All posts"
    assert html_to_text("<header><h1>Site</h1></header><main><h1>Install</h1><p>x</p></main>")[0] == "Install"


def test_deeply_nested_html_is_read_without_recursion() -> None:
    _, text = html_to_text("<div>" * 50_000 + "deep words" + "</div>" * 50_000)
    assert text == "deep words"


MARKDOWN = """\
```sh
# install first
make up
```

Real *title*
============

Some **bold** and _emphasised_ words, a [link text](https://example.com/secret-url) and `inline code`.

## Second heading

- first item
- second item
  1. nested

| Port | Process |
|------|---------|
| 8080 | Envoy   |

> quoted ~~struck~~<br>after
"""


def test_markdown_title_is_the_first_real_heading_not_a_comment_in_a_code_fence() -> None:
    title, _ = markdown_to_text(MARKDOWN)
    assert title == "Real title"
    assert markdown_to_text("```\n# only code\n```\n")[0] == ""
    assert markdown_to_text("text\n\n### Deep *one*\n")[0] == "Deep one"


def chunked(text: str) -> str:
    """text as the chunker stores it, in one chunk: what a reader sees of it."""
    from retrieval_svc.chunking import chunk_text

    [chunk] = chunk_text(text, lambda piece: len(piece.split()), 10_000, 0)
    return chunk


def test_markdown_code_keeps_its_layout() -> None:
    """Code blocks reach the chunker fenced, the one mark that keeps their lines: same-indented lines are
    otherwise read as a wrapped paragraph and joined."""
    _, text = markdown_to_text(
        "Before  the   code:\n\n```\n+---+   +---+\n| a |-->| b |\n```\n\n    indented   block\n"
    )
    assert text == "Before the code:\n\n```\n+---+   +---+\n| a |-->| b |\n```\n\n```\nindented   block\n```"
    assert chunked(text) == "Before the code:\n\n+---+   +---+\n| a |-->| b |\n\nindented   block"


def test_markdown_syntax_stays_out_of_the_text_and_words_and_code_stay_in() -> None:
    text = chunked(markdown_to_text(MARKDOWN)[1])  # a code block's fence is the chunker's, and stays out of chunks
    for syntax in ("**", "_emphasised_", "#", "](", "https://", "secret-url", "`", "- ", "1.", "|", "---", ">", "~~"):
        assert syntax not in text.replace("# install", ""), syntax  # the fenced line is code, kept as written
    assert "# install first\nmake up" in text
    assert "Some bold and emphasised words, a link text and inline code." in text
    assert "first item\n\nsecond item\n\nnested" in text
    assert "Port Process\n\n8080 Envoy" in text
    assert "quoted struck after" in " ".join(text.split())
    assert "Second heading" in text


def test_markdown_files_load_with_their_heading_as_title_and_plain_text() -> None:
    doc = one("notes/guide.md", b"# The **guide**\n\nRead [this](http://x.example).\n")
    assert (doc.title, doc.text) == ("The guide", "The guide\n\nRead this.")
    assert one("untitled.md", b"just words").title == "untitled"
    assert one("plain.txt", b"# stays as written").text == "# stays as written"


def docx_bytes() -> bytes:
    document = Document()
    document.add_heading("Release notes", level=1)
    document.add_paragraph("The cache has four layers.")
    table = document.add_table(rows=2, cols=2)
    for row, cells in zip(table.rows, (("Layer", "Where"), ("L2", "Redis")), strict=True):
        for cell, value in zip(row.cells, cells, strict=True):
            cell.text = value
    document.add_paragraph("Closing words.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_docx_paragraphs_and_table_rows_in_order_with_a_heading_title() -> None:
    doc = one("release.docx", docx_bytes())
    assert doc.title == "Release notes"
    assert doc.text == "Release notes\n\nThe cache has four layers.\n\nLayer Where\n\nL2 Redis\n\nClosing words."
    assert doc.metadata == {"source": "release.docx", "file_type": "docx"}


def test_broken_and_bomb_docx_files_are_skipped_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    [broken] = load_content("broken.docx", b"PK not a zip", doc_id="broken.docx")
    assert isinstance(broken, Skipped) and broken.reason.startswith("unreadable")
    monkeypatch.setattr(packages, "MAX_UNPACKED_BYTES", 1000)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\0" * 2000)  # 2 kB stands in for gigabytes
    [bomb] = load_content("bomb.docx", buffer.getvalue(), doc_id="bomb.docx")
    assert isinstance(bomb, Skipped) and "unpacks to" in bomb.reason


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("x.exe", b"MZ", "unsupported file type .exe"),
        ("old.doc", b"\xd0\xcf\x11\xe0", "unsupported file type .doc (save it as .docx)"),
        ("old.XLS", b"\xd0\xcf\x11\xe0", "unsupported file type .xls (save it as .xlsx)"),
        ("latin1.md", "caf\xe9".encode("latin-1"), loaders.NOT_UTF8),
        ("binary.md", b"# Title\x00\x01\x02\x00\x00\x03", loaders.NOT_TEXT),
        ("empty.html", b"<nav>only navigation</nav>", "no text found"),
    ],
)
def test_unreadable_files_are_skipped_with_the_reason(name: str, data: bytes, reason: str) -> None:
    [item] = load_content(name, data, doc_id=name)
    assert isinstance(item, Skipped) and item.reason.startswith(reason)


@pytest.mark.parametrize(("name", "text"), [("notes.txt", "Port 8080, then 9901.\r\n"), ("page.html", "<p>Café</p>")])
@pytest.mark.parametrize("encoding", ["UTF-16LE", "UTF-16BE"])
def test_utf16_without_its_mark_is_named_with_the_command_that_converts_it(name: str, text: str, encoding: str) -> None:
    """ASCII in UTF-16 is valid UTF-8 with a NUL beside each letter, Greek is not UTF-8 at all: either way the file
    is UTF-16 whose mark is missing, not binary and not a legacy code page, and an HTML parser must not index it."""
    for words in (text, "Καλημέρα κόσμε"):
        [item] = load_content(name, words.encode(encoding), doc_id=name)
        assert isinstance(item, Skipped) and item.reason.startswith(f"probably {encoding} text without a byte-order")
        assert f"iconv -f {encoding} -t UTF-8" in item.reason


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_text_whose_byte_order_mark_names_its_encoding_is_read_without_the_mark(encoding: str) -> None:
    """PowerShell's ``>`` and Notepad's "Unicode" write UTF-16 with a mark; a UTF-8 mark must not reach the title."""
    data = "# Café menu\n\nCrème brûlée, 4 €.".encode(encoding)
    if encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    [doc] = load_content("menu.md", data, doc_id="menu.md")
    assert isinstance(doc, LoadedDocument) and (doc.title, doc.text) == ("Café menu", "Café menu\n\nCrème brûlée, 4 €.")


@pytest.mark.parametrize(
    ("declared", "encoding"), [("windows-1252", "cp1252"), ("iso-8859-1", "cp1252"), ("windows-1251", "cp1251")]
)
def test_html_in_a_legacy_encoding_is_read_in_the_one_it_declares(declared: str, encoding: str) -> None:
    """iso-8859-1 is read as windows-1252, as browsers do: the euro sign sits where Latin-1 has a control."""
    words = "Вход" if encoding == "cp1251" else "Café: 4 €"
    page = f'<html><head><meta charset="{declared}"><title>T</title></head><body><p>{words}</p></body></html>'
    [doc] = load_content("page.html", page.encode(encoding), doc_id="page.html")
    assert isinstance(doc, LoadedDocument) and doc.text == words
    [undeclared] = load_content("page.html", f"<p>{words}</p>".encode(encoding), doc_id="page.html")
    assert isinstance(undeclared, Skipped) and undeclared.reason.startswith(loaders.NOT_UTF8)


def test_beir_records_need_an_id_and_a_title_or_text_and_keep_numeric_ids() -> None:
    lines = [
        '{"_id": "d1", "title": "Zebras", "text": "Striped."}',
        '{"_id": "d2", "title": "Household transmission of influenza", "text": ""}',
        '{"_id": 0, "title": 1918, "text": "Pandemic."}',
        '{"_id": "d4", "title": "", "text": "  "}',
        '{"id": "", "text": "no id"}',
        '{"_id": "d6", "text": ["not", "text"]}',
    ]
    items = list(loaders.load_jsonl("corpus.jsonl", lines))
    loaded = [(d.id, d.title, d.text) for d in items if isinstance(d, LoadedDocument)]
    assert loaded == [
        ("d1", "Zebras", "Striped."),
        ("d2", "Household transmission of influenza", ""),
        ("0", "1918", "Pandemic."),
    ]
    assert [s.source for s in items if isinstance(s, Skipped)] == [f"corpus.jsonl:{n}" for n in (4, 5, 6)]


def test_a_json_lines_file_with_a_byte_order_mark_loses_no_line() -> None:
    data = '\ufeff{"_id": "d1", "text": "First."}\n{"_id": "d2", "text": "Second."}\n'.encode()
    assert [d.id for d in load_content("corpus.jsonl", data, doc_id="corpus.jsonl")] == ["d1", "d2"]


@pytest.mark.parametrize(
    ("name", "table"),
    [
        ("faq.csv", 'question,answer,notes\nWhich port?,"Envoy listens on 8080, always.",\n,,\nAdmin?,9901,loopback\n'),
        ("faq.csv", "question;answer;notes\nWhich port?;Envoy listens on 8080, always.;\nAdmin?;9901;loopback\n"),
        ("faq.tsv", "question\tanswer\tnotes\nWhich port?\tEnvoy listens on 8080, always.\t\nAdmin?\t9901\tloopback\n"),
    ],
)
def test_a_table_is_one_document_whose_rows_are_paragraphs_of_named_values(name: str, table: str) -> None:
    """A row's values stay together and keep their column's name; empty cells and rows are left out."""
    [doc] = load_content(name, table.encode(), doc_id=name)
    assert isinstance(doc, LoadedDocument) and doc.title == "faq"
    first, second = "question: Which port?\nanswer: Envoy listens on 8080, always.", "question: Admin?\nanswer: 9901"
    assert doc.text == f"{first}\n\n{second}\nnotes: loopback"


def test_a_table_row_longer_than_its_header_names_the_extra_columns_by_number() -> None:
    [doc] = load_content("t.csv", b"name\nEnvoy,8080\n", doc_id="t.csv")
    assert isinstance(doc, LoadedDocument) and doc.text == "name: Envoy\ncolumn 2: 8080"
    [header_only] = load_content("t.csv", b"name,port\n", doc_id="t.csv")
    assert isinstance(header_only, Skipped) and header_only.reason.startswith("no text found")


def test_a_json_file_holds_an_array_of_documents_or_the_rest_apis_body() -> None:
    records = [{"id": "a", "title": "A", "text": "First."}, {"id": "b", "text": "Second."}, {"text": "no id"}]
    for data in (json.dumps(records), json.dumps({"documents": records})):
        items = list(load_content("docs.json", data.encode(), doc_id="docs.json"))
        assert [(d.id, d.title, d.text) for d in items if isinstance(d, LoadedDocument)] == [
            ("a", "A", "First."),
            ("b", "", "Second."),
        ]
        assert [(s.source, s.reason) for s in items if isinstance(s, Skipped)] == [
            ("docs.json[2]", "needs an id, and a title or text")
        ]
    [skipped] = load_content("x.json", b"[1,", doc_id="x.json")
    assert isinstance(skipped, Skipped) and skipped.reason.startswith("invalid JSON")


def pptx_bytes() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
    first.shapes.title.text = "Cache tour"
    first.placeholders[1].text_frame.text = "Four layers keep answers."
    first.notes_slide.notes_text_frame.text = "Mention Redis here."
    second = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    second.shapes.title.text = "Ports"
    table = second.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    for row, cells in enumerate((("Process", "Port"), ("Envoy", "8080"))):
        for column, value in enumerate(cells):
            table.cell(row, column).text = value
    group = second.shapes.add_group_shape()
    group.shapes.add_textbox(Inches(1), Inches(4), Inches(2), Inches(1)).text_frame.text = "Grouped note."
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def test_a_slide_deck_reads_slide_by_slide_with_tables_groups_and_speaker_notes() -> None:
    doc = one("tour.pptx", pptx_bytes())
    assert doc.title == "Cache tour"
    blocks = doc.text.split("\n\n")
    assert blocks == [
        *("Cache tour", "Four layers keep answers.", "Mention Redis here."),
        *("Ports", "Process Port", "Envoy 8080", "Grouped note."),
    ]


def xlsx_bytes(*sheets: tuple[str, list[tuple[object, ...]]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets:
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_a_workbook_s_sheets_are_tables_of_named_values_led_by_their_names() -> None:
    ports = ("Ports", [("process", "port", "note"), ("Envoy", 8080, None), ("admin", 9901, "loopback only")])
    owners = ("Owners", [("service", "team"), ("cache_svc", "platform")])
    empty = ("Empty", [])
    doc = one("ops.xlsx", xlsx_bytes(ports, owners, empty))
    assert doc.title == "ops"
    assert doc.text == (
        "Ports\n\nprocess: Envoy\nport: 8080\n\nprocess: admin\nport: 9901\nnote: loopback only"
        "\n\nOwners\n\nservice: cache_svc\nteam: platform"
    )
    alone = one("ports.xlsx", xlsx_bytes(ports))
    assert alone.text.startswith("process: Envoy")  # one sheet: no name before it


def test_broken_and_empty_office_files_are_skipped_with_a_reason() -> None:
    for name in ("deck.pptx", "book.xlsx"):
        [broken] = load_content(name, b"PK not a zip", doc_id=name)
        assert isinstance(broken, Skipped) and broken.reason.startswith("unreadable"), broken
    [empty] = load_content("empty.xlsx", xlsx_bytes(("Sheet", [])), doc_id="empty.xlsx")
    assert isinstance(empty, Skipped) and empty.reason.startswith("no text found")


FRONT_MATTER_KEYS = "".join(f"key{n}: value {n}\n" for n in range(15))


@pytest.mark.parametrize(
    ("markdown", "title", "metadata"),
    [
        (
            "---\ntitle: Quarterly Report\nauthor: Jane Doe\ndate: 2024-05-01\ndraft: false\ntags: [a, b]\n"
            f"{FRONT_MATTER_KEYS}---\n\n# Revenue Overview\n\nRevenue grew by a tenth.\n",
            "Quarterly Report",
            {"author": "Jane Doe", "date": "2024-05-01", "draft": "false", "key14": "value 14"},
        ),
        (
            "+++\ntitle = 'Hugo page'\nweight = 3\n+++\n\n# Revenue Overview\n\nRevenue grew by a tenth.\n",
            "Hugo page",
            {"weight": "3"},
        ),
        (
            "---\nauthor: Jane Doe\n...\n# Revenue Overview\n\nRevenue grew by a tenth.\n",
            "Revenue Overview",
            {"author": "Jane Doe"},
        ),
    ],
)
def test_front_matter_gives_the_title_and_simple_values_and_stays_out_of_the_text(
    markdown: str, title: str, metadata: dict[str, str]
) -> None:
    """Its closing --- would otherwise underline it as a heading: every key in the title, and in every chunk."""
    doc = one("report.md", markdown.encode())
    assert (doc.title, doc.text) == (title, "Revenue Overview\n\nRevenue grew by a tenth.")
    assert metadata.items() <= doc.metadata.items() and "tags" not in doc.metadata and "title" not in doc.metadata
    prose = one("notes.md", b"---\n\nJust prose, said twice.\n\n---\n\n# Notes\n\nText.\n")
    assert prose.title == "Notes" and prose.text.startswith("Just prose, said twice.")  # a break, not front matter


def roadmap_deck() -> bytes:
    from pptx import Presentation

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Roadmap 2025"
    slide.placeholders[1].text_frame.text = "Launch the Falconer module in March"
    slide.notes_slide.notes_text_frame.text = "Speaker note: budget is 2 million"
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def roadmap_document() -> bytes:
    document = Document()
    for line in ("Roadmap 2025", "Launch the Falconer module in March", "Speaker note: budget is 2 million"):
        document.add_paragraph(line)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


ROADMAP = "Roadmap 2025\n\nLaunch the Falconer module in March\n\nSpeaker note: budget is 2 million"


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("roadmap.pptx", roadmap_deck(), ROADMAP),
        ("roadmap.docx", roadmap_document(), ROADMAP),
        (
            "roadmap.html",
            b"<ul><li>Roadmap 2025</li><li>Launch the Falconer module in March</li></ul>",
            "Roadmap 2025\n\nLaunch the Falconer module in March",
        ),
        (
            "code.md",
            b"Intro words.\n\n```\ndef f(x):\n    # comment\n    return x\n```\n\n"
            b"| Port | Process |\n|---|---|\n| 8080 | Envoy |\n",
            "Intro words.\n\ndef f(x):\n    # comment\n    return x\n\nPort Process\n\n8080 Envoy",
        ),
        (
            "install.md",
            b"Run\nthese:\n\n```sh\napt-get update\napt-get install -y frobnicator\n```\n\n"
            b"```yaml\nserver:\n  port: 8080\nname: demo\n```\n",
            "Run these:\n\napt-get update\napt-get install -y frobnicator\n\nserver:\n  port: 8080\nname: demo",
        ),
        (
            "page.html",
            b"<p>Before\n  the code:</p><pre><code>def migrate(bird):\n    if bird.tired:\n        rest(bird)\n"
            b"</code></pre><p>After.</p>",
            "Before the code:\n\ndef migrate(bird):\n    if bird.tired:\n        rest(bird)\n\nAfter.",
        ),
    ],
)
def test_blocks_stay_apart_in_chunks(name: str, data: bytes, expected: str) -> None:
    """The chunker joins lines of one indentation as wrapped prose; a slide's title, body and notes, a document's
    paragraphs, list items and table rows are blocks, and code keeps its lines and indentation (a Markdown fence
    and HTML's <pre>, whose commands were joined on one line, "port: 8080 name: demo" and "if bird.tired:
    rest(bird)")."""
    assert chunked(one(name, data).text) == expected


def test_values_are_spelt_as_json_and_iso_8601_write_them_not_as_python_does() -> None:
    """A filter {"ok": "true"} must find {"ok": true}; a date cell is a date, its time only when it has one."""
    import datetime

    rows = [("day", "at", "ok", "ratio"), (datetime.date(2024, 5, 1), datetime.datetime(2024, 5, 1, 13, 30), True, 0.5)]
    doc = one("days.xlsx", xlsx_bytes(("Days", rows)))
    assert doc.text == "day: 2024-05-01\nat: 2024-05-01 13:30:00\nok: true\nratio: 0.5"
    record = {"id": "a", "text": "A.", "metadata": {"ok": True, "gone": None, "n": 3, "x": 1.5, "s": "True", "l": [1]}}
    [loaded] = load_content("a.json", json.dumps([record]).encode(), doc_id="a.json")
    assert isinstance(loaded, LoadedDocument)
    assert loaded.metadata == {"ok": "true", "gone": "null", "n": "3", "x": "1.5", "s": "True"}


SURVEY = [
    "Glacier Survey Results",
    "The Aletsch glacier retreated fifty meters in the year to September, the",
    "largest loss since the survey began.",
    "Methods",
    "Each summer a plane flies the whole tongue of the glacier with its sensor.",
]


def test_a_pdf_is_titled_by_its_document_information_and_its_headings_stand_alone() -> None:
    """A heading is a short line: it ends its own block instead of running into the next sentence."""
    doc = one("survey.pdf", pdf_bytes(SURVEY, title="Glacier Survey 2023"))
    assert doc.title == "Glacier Survey 2023"
    assert doc.text.split("\n\n") == [
        "Glacier Survey Results",
        f"{SURVEY[1]}\n{SURVEY[2]}",
        "Methods",
        "Each summer a plane flies the whole tongue of the glacier with its sensor.",
    ]


@pytest.mark.parametrize(
    "title", [None, "", "  ", "untitled", "Untitled-1", "Document1", "Microsoft Word - survey.docx", "paper.dvi"]
)
def test_a_pdf_whose_title_is_a_tool_s_placeholder_is_titled_by_its_file_name(title: str | None) -> None:
    assert one("survey-2023.pdf", pdf_bytes(SURVEY, title=title)).title == "survey-2023"


def test_a_word_hyphenated_at_a_line_end_is_whole_again_and_a_real_hyphen_stays() -> None:
    """Both halves lowercase: the typesetter's hyphen goes, unless the word before it holds a hyphen already or the
    document writes the pair hyphenated elsewhere. Before a capital or a digit a hyphen is real."""
    page = [
        "The survey used lidar-based imaging and state-of-the-",
        "art sensors over the gla-",
        "cier, with lidar-",
        "based passes before and after the pre-",
        "COVID gap and COVID-",
        "19 closures, and a clean soft\u00ad",
        "hyphen.",
    ]
    assert loaders.pdf_pages_text(["\n".join(page)]) == (
        "The survey used lidar-based imaging and state-of-the-art sensors over the glacier, with lidar-based passes"
        " before and after the pre-COVID gap and COVID-19 closures, and a clean softhyphen."
    )


def test_a_pdf_s_blank_pages_add_nothing_and_its_text_pages_are_stored() -> None:
    """A blank or picture-only page (a cover, a page left empty for printing) is not a reason to refuse the rest."""
    doc = one("guild.pdf", pdf_bytes([], ["The lamplighter guild was founded in 1702."], [], ["It still meets."]))
    assert doc.text == "The lamplighter guild was founded in 1702.\n\nIt still meets."


def test_a_pdf_without_a_text_layer_is_refused_as_needing_ocr() -> None:
    [scan] = load_content("scan.pdf", pdf_bytes([], []), doc_id="scan.pdf")
    assert isinstance(scan, Skipped) and scan.reason.startswith(loaders.NO_TEXT_LAYER)


def test_a_quote_written_twice_inside_a_quoted_csv_value_is_one_quote_of_that_value() -> None:
    """RFC 4180, as Excel writes it: the sniffer saw no such quote in the values it guessed from, and split the motto
    at its second quote into two more columns."""
    table = 'city,motto,population\nVellmar,"Strength, honour, and bread","12,400"\n'
    table += 'Osterkamp,"He said ""never, ever"" twice","8,100"\n'
    doc = one("cities.csv", table.encode())
    assert doc.text.split("\n\n")[1] == 'city: Osterkamp\nmotto: He said "never, ever" twice\npopulation: 8,100'


def word_xml(xml: str) -> str:
    """XML of a Word document written with the w: prefix, its first element declaring the namespace."""
    from docx.oxml.ns import nsdecls

    tag_end = xml.index(">")
    return f"{xml[:tag_end]} {nsdecls('w')}{xml[tag_end:]}"


def word_element(xml: str) -> Any:
    from docx.oxml import parse_xml

    return parse_xml(word_xml(xml))


def word_notes(kind: str, *texts: str) -> bytes:
    """A footnotes or endnotes part as Word writes one: its separator note first, then a note per text."""
    separator = f'<w:{kind} w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:{kind}>'
    notes = (f'<w:{kind} w:id="{n}"><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:{kind}>' for n, text in enumerate(texts))
    return word_xml(f"<w:{kind}s>{separator}{''.join(notes)}</w:{kind}s>").encode()


def word_form() -> bytes:
    """A Word document as templates and forms are made: content controls around a paragraph, inside a paragraph and
    in a table cell, a tracked insertion, a footnote and an endnote."""
    from docx.opc.constants import CONTENT_TYPE, RELATIONSHIP_TYPE
    from docx.opc.packuri import PackURI
    from docx.opc.part import Part

    document = Document()
    signed = document.add_paragraph("Inspected by")
    signed._p.append(
        word_element("<w:sdt><w:sdtContent><w:r><w:t> Radomila Petkova</w:t></w:r></w:sdtContent></w:sdt>")
    )
    signed._p.append(word_element("<w:ins w:id='1' w:author='A'><w:r><w:t>, in 2019</w:t></w:r></w:ins>"))
    signed._p.append(word_element("<w:del w:id='2' w:author='A'><w:r><w:delText>, in 2018</w:delText></w:r></w:del>"))
    closing = document.add_paragraph("Closing words.")
    grade = "<w:sdt><w:sdtPr/><w:sdtContent><w:p><w:r><w:t>Grade Ochre-4.</w:t></w:r></w:p></w:sdtContent></w:sdt>"
    closing._p.addprevious(word_element(grade))
    cell = document.add_table(rows=1, cols=2).rows[0].cells
    cell[0].text = "Bridge"
    cell[1].paragraphs[0]._p.addnext(word_element(grade.replace("Grade Ochre-4.", "Tessaline")))
    cell[1]._tc.remove(cell[1].paragraphs[0]._p)  # the control is the cell's one paragraph
    for kind, text in (("footnote", "The load test used two lorries."), ("endnote", "Sources: the 2019 survey.")):
        part = Part(
            PackURI(f"/word/{kind}s.xml"), getattr(CONTENT_TYPE, f"WML_{kind.upper()}S"), word_notes(kind, text)
        )
        document.part.relate_to(part, getattr(RELATIONSHIP_TYPE, f"{kind.upper()}S"))
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_a_word_document_s_content_controls_are_read_where_they_stand_and_its_notes_after_it() -> None:
    """Content controls fill templates' cover pages and forms' fields; python-docx reads only what lies directly in
    the body, a paragraph or a cell, and no notes."""
    assert one("inspection.docx", word_form()).text.split("\n\n") == [
        "Inspected by Radomila Petkova, in 2019",
        "Grade Ochre-4.",
        "Closing words.",
        "Bridge Tessaline",
        "The load test used two lorries.",
        "Sources: the 2019 survey.",
    ]


DIV_SITE = """<html><head><title>Quarry Notes</title></head><body>
<div class="navbar navbar-expand-lg"><a href="/">Home</a> <a href="/blog">Blog</a></div>
<div id="cookie-consent">We use cookies. <button>Accept all</button></div>
<div role="banner">Quarry Notes banner</div>
<ol class="breadcrumb"><li>Home</li><li>Wetlands</li></ol>
<div class="container">
<h1>Restoring the Brindlecombe Quarry</h1>
<p>The quarry closed in 1968.</p>
<div id="mainMenu"><a href="/x">Menu link</a></div>
<form><label>Subscribe</label><label>Frequency</label><input type="email" value="you@example.com">
<select><option>Daily</option><option>Weekly</option></select><textarea>Your note</textarea>
<button>Sign up</button></form>
</div>
<div class="col sidebar-left">Popular posts</div>
<div role="complementary">Related</div><div role="navigation">Pages</div>
<div class="site-footer">© 2026 Quarry Notes</div><div role="contentinfo">Imprint</div>
</body></html>"""


def test_furniture_built_of_divs_and_form_controls_stay_out_and_labels_stay_words() -> None:
    """Navigation, cookie banners, sidebars and footers marked by role or class words are page furniture as their
    HTML5 elements are; a control's options, value and action are not what the page says."""
    assert (
        html_to_text(DIV_SITE)[1]
        == "Restoring the Brindlecombe Quarry\n\nThe quarry closed in 1968.\n\nSubscribe Frequency"
    )


@pytest.mark.parametrize(
    "page",
    [
        "<body class='has-sidebar menu-open'><h1>Wetland</h1><p>Natterjack toads.</p></body>",
        "<div class='with-sidebar'><main><p>Wetland</p><p>Natterjack toads.</p></main></div>",
        "<div class='layout-nav'><article><h2>Wetland</h2><p>Natterjack toads.</p></article></div>",
        "<article><p>Wetland</p><div class='post-footer'>Natterjack toads.</div></article>",
        "<div class='navigator'><p>Wetland</p><p class='menubar-free'>Natterjack toads.</p></div>",
    ],
)
def test_a_class_word_never_drops_the_main_content_nor_a_word_it_only_contains(page: str) -> None:
    """A wrapper around the content may carry a furniture word (a layout's "has-sidebar"); a footer inside an
    article is the article's own; "navigator" is not "nav"."""
    assert " ".join(html_to_text(page)[1].split()) == "Wetland Natterjack toads."


def test_an_accordion_s_heading_button_stays_and_images_are_their_alt_text() -> None:
    """An accordion (a FAQ) shows each question as a button in a heading; a figure's alt text is what it shows."""
    page = (
        "<h3><button aria-expanded='false'>How deep is the lake?</button></h3><div><p>Nine metres.</p></div>"
        "<p>See figure <img src='x.png' alt='cross-section of the pump'>.</p><p><img src='spacer.gif' alt=''>End.</p>"
    )
    assert html_to_text(page)[1].split("\n\n") == [
        "How deep is the lake?",
        "Nine metres.",
        "See figure cross-section of the pump.",
        "End.",
    ]


@pytest.mark.parametrize(
    ("name", "data", "text"),
    [
        ("memo.txt", pdf_bytes(["A PDF saved as text."]), "A PDF saved as text."),
        ("notes.md", pdf_bytes(["A PDF saved as Markdown."]), "A PDF saved as Markdown."),
        ("records.json", pdf_bytes(["A PDF saved as JSON."]), "A PDF saved as JSON."),
        ("report.pdf", roadmap_document(), ROADMAP),
        ("deck.docx", roadmap_deck(), ROADMAP),
        ("ops.csv", xlsx_bytes(("Owners", [("service", "team"), ("cache_svc", "platform")])), "service: cache_svc"),
    ],
)
def test_a_pdf_or_office_file_under_another_type_s_name_is_read_as_what_it_is(
    name: str, data: bytes, text: str
) -> None:
    """Its first bytes say what it is: an uncompressed PDF named .txt was stored as PDF syntax, a compressed one
    refused with advice to convert it from a code page, a Word file named .pdf refused for a broken PDF stream."""
    assert one(name, data).text.startswith(text)


def test_a_binary_file_under_a_text_name_is_refused_as_binary_not_as_a_code_page() -> None:
    [binary] = load_content("image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", doc_id="image.md")
    assert isinstance(binary, Skipped) and binary.reason.startswith(loaders.NOT_TEXT)


QUARTER = [("Quarterly report, unaudited",), (), ("Region", "Sales", "Tax"), ("North", 100, 20), ("South", 200, None)]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("q1.xlsx", xlsx_bytes(("Q1", QUARTER))),
        ("q1.csv", b'"Quarterly report, unaudited",,\n,,\nRegion,Sales,Tax\nNorth,100,20\nSouth,200,\n'),
    ],
)
def test_a_title_and_blank_rows_above_a_table_s_header_are_a_line_of_their_own(name: str, data: bytes) -> None:
    """The title named the first column and the header was read as a row of data."""
    assert one(name, data).text.split("\n\n") == [
        "Quarterly report, unaudited",
        "Region: North\nSales: 100\nTax: 20",
        "Region: South\nSales: 200",
    ]
    short_header = one("t.csv", b"name\nEnvoy,8080\nadmin,9901\n")  # a header of one name over longer data rows
    assert short_header.text == "name: Envoy\ncolumn 2: 8080\n\nname: admin\ncolumn 2: 9901"


def saved(office: Any) -> bytes:
    """The bytes of a python-docx document, python-pptx deck or openpyxl workbook."""
    buffer = io.BytesIO()
    office.save(buffer)
    return buffer.getvalue()


def titled_deck(title: str) -> bytes:
    from pptx import Presentation

    deck = Presentation(io.BytesIO(roadmap_deck()))
    deck.core_properties.title = title
    return saved(deck)


def titled_document(title: str) -> bytes:
    """roadmap_document with its first paragraph a Heading 1."""
    document = Document(io.BytesIO(roadmap_document()))
    document.core_properties.title = title
    document.paragraphs[0].style = "Heading 1"
    return saved(document)


def titled_workbook(title: str) -> bytes:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(xlsx_bytes(("Ports", [("process", "port"), ("Envoy", 8080)]))))
    book.properties.title = title
    return saved(book)


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("roadmap.pptx", titled_deck("PowerPoint Presentation"), "Roadmap 2025"),
        ("roadmap.pptx", titled_deck("Presentation1"), "Roadmap 2025"),
        ("roadmap.docx", titled_document("Microsoft Word - roadmap.docx"), "Roadmap 2025"),
        ("roadmap.docx", titled_document("Document1"), "Roadmap 2025"),
        ("ports.xlsx", titled_workbook("Book1"), "ports"),
        ("roadmap.pptx", titled_deck("Falconer launch plan"), "Falconer launch plan"),
    ],
)
def test_an_office_file_whose_title_is_a_tool_s_placeholder_is_titled_by_its_heading_or_name(
    name: str, data: bytes, expected: str
) -> None:
    """The rule a PDF's title follows: a tool's default or the file it was made from says less than the heading."""
    assert one(name, data).title == expected


def encrypted_pdf(password: str) -> bytes:
    """The SURVEY PDF encrypted, needing password to open (none: it opens, changes need the owner's)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(pdf_bytes(SURVEY))))
    writer.encrypt(user_password=password, owner_password="owner")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_a_pdf_that_needs_a_password_is_refused_with_how_to_decrypt_it() -> None:
    [locked] = load_content("survey.pdf", encrypted_pdf("hunter2"), doc_id="survey.pdf")
    assert isinstance(locked, Skipped) and locked.reason.startswith("encrypted PDF: needs a password (decrypt it first")
    assert one("survey.pdf", encrypted_pdf("")).text.startswith("Glacier Survey Results")


def test_soft_hyphens_and_zero_width_spaces_leave_a_file_s_words_whole() -> None:
    """They are typesetting hints, invisible where the text is shown, but split the word they sit in for search."""
    page = "<title>Pump\u00adhouse</title><p>Water flows\u00adfast through the pump\u200bhouse\u2060s.</p>".encode()
    doc = one("pumps.html", page)
    assert (doc.title, doc.text) == ("Pumphouse", "Water flowsfast through the pumphouses.")
    joined = "\U0001f468\u200d\U0001f469 \u067e\u06cc\u0627\u0645\u200c\u0647\u0627"  # a family emoji; Persian
    assert one("family.txt", joined.encode()).text == joined


LOAD_STDIN = """import sys
from likeopt.runtime.loaders import Skipped, load_content
for item in load_content(sys.argv[1], sys.stdin.buffer.read(), sys.argv[1]):
    print(item.reason if isinstance(item, Skipped) else "read")
"""


def loaded_in_a_process(name: str, data: bytes) -> tuple[str, str]:
    """(stdout, stderr) of a Python process of its own loading data as the file name, with no logging set up, as
    `likeopt ingest` runs: it prints "read" or the reason for each item. Within pytest, every logger's records go
    to pytest's own handlers, whatever their propagation."""
    done = subprocess.run(
        [sys.executable, "-c", LOAD_STDIN, name], input=data, capture_output=True, check=True, cwd=ROOT
    )
    return done.stdout.decode(), done.stderr.decode()


def test_what_pypdf_warns_of_is_said_with_the_file_s_name() -> None:
    """pypdf logs "EOF marker not found" bare: `likeopt ingest` printed it naming no file."""
    survey = pdf_bytes(SURVEY)
    misplaced = re.sub(rb"startxref\n(\d+)", lambda found: b"startxref\n%d" % (int(found[1]) + 7), survey)
    read, warned = loaded_in_a_process("survey.pdf", misplaced)
    assert read == "read\n" and warned.startswith("survey.pdf: read, after pypdf warned: ") and warned.count("\n") == 1
    skipped, warned = loaded_in_a_process("cut.pdf", survey[:400])
    assert ", after pypdf warned: EOF marker not found" in skipped and not warned


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("notes/a.htm", b"<p>words</p>", "html"),
        ("a.markdown", b"words", "markdown"),
        ("a.rst", b"words", "text"),
        ("a.tsv", b"k\tv\nx\ty\n", "tsv"),
        ("memo.txt", pdf_bytes(["A PDF saved as text."]), "pdf"),
    ],
)
def test_a_file_s_document_says_what_the_file_was_read_as(name: str, data: bytes, kind: str) -> None:
    """Beside its file name, so a search can be filtered to PDFs or slide decks."""
    assert one(name, data).metadata == {"source": name.rsplit("/", 1)[-1], "file_type": kind}


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("report", pdf_bytes(SURVEY), "pdf"),
        ("scan.bin", pdf_bytes(SURVEY), "pdf"),
        ("minutes", roadmap_document(), "docx"),
        ("ops.zip", xlsx_bytes(("Owners", [("service", "team"), ("cache_svc", "platform")])), "xlsx"),
        ("deck.dat", roadmap_deck(), "pptx"),
    ],
)
def test_a_pdf_or_office_file_without_its_suffix_is_read_as_what_its_bytes_show(
    name: str, data: bytes, kind: str
) -> None:
    """An upload named "report" or "scan.bin" was refused as an unsupported type, though its first bytes say what
    it is and the loaders read that type whatever suffix it is named with."""
    doc = one(name, data)
    assert doc.metadata == {"source": name, "file_type": kind} and doc.title
    assert doc.text.startswith(("Glacier Survey Results", ROADMAP, "service: cache_svc"))


def test_a_file_whose_bytes_show_no_type_read_here_is_still_refused_for_its_suffix() -> None:
    """Text is never guessed from bytes: a file named "NOTES" (no name a repository keeps, as README is) or
    "photo.png" is refused as before, as is another
    program's compound document (an Outlook message) though older Office files are compound documents, and a PDF named
    "report" that is not read says, as a report.pdf would, that a version stored earlier under its id is kept."""
    for name, data in (
        ("NOTES", b"Plain words."),
        ("photo.png", b"\x89PNG\r\n\x1a\n\x00\x00"),
        ("a.zip", b"PK\x03\x04"),
        ("mail.msg", ole2_file("__properties_version1.0")),  # a compound document, but Outlook's
    ):
        [refused] = load_content(name, data, doc_id=name)
        assert isinstance(refused, Skipped) and refused.reason.startswith("unsupported file type"), refused
    [locked] = load_content("report", encrypted_pdf("hunter2"), doc_id="report")
    assert isinstance(locked, Skipped) and locked.reason.startswith(loaders.ENCRYPTED_PDF)
    assert "any version stored earlier as 'report' is kept" in locked.reason


def misnamed_zip() -> bytes:
    """A zip whose member's name is flagged as UTF-8 but is not: zipfile raised UnicodeDecodeError listing it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("caf\u00e9.txt", "words")
    return buffer.getvalue().replace("\u00e9".encode(), b"\xff\xff")


def ole2_file(*streams: str) -> bytes:
    """A compound document (OLE2) reduced to what shows which program's it is: the signature, the header padded to
    its 512 bytes, and a directory sector of 128-byte entries, the root's and then one per stream named."""

    def entry(name: str, kind: int) -> bytes:
        encoded = name.encode("utf-16-le") + b"\0\0"
        return encoded.ljust(64, b"\0") + len(encoded).to_bytes(2, "little") + bytes([kind]).ljust(62, b"\0")

    return loaders.OLE2_SIGNATURE.ljust(512, b"\0") + entry("Root Entry", 5) + b"".join(entry(s, 2) for s in streams)


KEPT = "; any version stored earlier as"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("minutes.doc", ole2_file("1Table", "WordDocument"), "an older Word file (OLE2 .doc): save it as .docx or PDF"),
        ("minutes.docx", ole2_file("WordDocument"), f"an older Word file (OLE2 .doc): save it as .docx or PDF{KEPT}"),
        ("minutes", ole2_file("WordDocument"), "an older Word file (OLE2 .doc): save it as .docx or PDF"),
        ("budget.xlsx", ole2_file("Workbook"), f"an older Excel file (OLE2 .xls): save it as .xlsx or PDF{KEPT}"),
        ("budget.xls", ole2_file("Book"), "an older Excel file (OLE2 .xls): save it as .xlsx or PDF"),
        ("deck.pptx", ole2_file("Current User", "PowerPoint Document"), "an older PowerPoint file (OLE2 .ppt)"),
        ("report.docx", ole2_file(), f"{loaders.OLDER_OFFICE}{KEPT}"),
        ("chart.doc", ole2_file("WordDocument", "Workbook"), loaders.OLDER_OFFICE),
        ("locked.xlsx", ole2_file("EncryptionInfo", "EncryptedPackage"), f"{loaders.ENCRYPTED_OFFICE}{KEPT}"),
    ],
)
def test_an_older_or_encrypted_office_file_is_refused_naming_its_format(name: str, data: bytes, reason: str) -> None:
    """A compound document (OLE2) named .docx or .xlsx was refused for a bare "BadZipFile: File is not a zip file",
    and an older Office file of another name as an unsupported type: its streams say which format it is, and an
    encrypted .docx or .xlsx, also a compound document, needs its password cleared, not another format."""
    [refused] = load_content(name, data, doc_id=name)
    assert isinstance(refused, Skipped) and refused.reason.startswith(reason), refused


WORD_PACKAGE_TYPES = (
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml"'
    ' ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    '<Override PartName="/word/header1.xml"'
    ' ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.header+xml"/>'
    '<Override PartName="/word/comments.xml"'
    ' ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.comments+xml"/></Types>'
)
RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
WORD_NAMESPACES = (
    'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    ' xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"'
    ' xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing"'
    ' xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"'
    ' xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape"'
    f' xmlns:v="urn:schemas-microsoft-com:vml" xmlns:r="{RELATIONSHIPS}"'
)


def word_package(body: str) -> bytes:
    """A .docx written part by part, its body's XML as given (w:, mc:, wp:, a:, wps:, v: and r: declared), with a
    header and a comments part beside it."""

    def relationships(*targets: tuple[str, str]) -> str:
        listed = "".join(
            f'<Relationship Id="rId{n}" Type="{RELATIONSHIPS}/{kind}" Target="{target}"/>'
            for n, (kind, target) in enumerate(targets, start=1)
        )
        return f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{listed}</Relationships>'

    header = "<w:p><w:r><w:t>Acme Corporation, page 1</w:t></w:r></w:p>"
    comment = '<w:comment w:id="0" w:author="A"><w:p><w:r><w:t>Check this figure</w:t></w:r></w:p></w:comment>'
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("[Content_Types].xml", WORD_PACKAGE_TYPES)
        package.writestr("_rels/.rels", relationships(("officeDocument", "word/document.xml")))
        package.writestr(
            "word/_rels/document.xml.rels", relationships(("header", "header1.xml"), ("comments", "comments.xml"))
        )
        package.writestr("word/header1.xml", f"<w:hdr {WORD_NAMESPACES}>{header}</w:hdr>")
        package.writestr("word/comments.xml", f"<w:comments {WORD_NAMESPACES}>{comment}</w:comments>")
        section = '<w:sectPr><w:headerReference w:type="default" r:id="rId1"/></w:sectPr>'
        package.writestr(
            "word/document.xml", f"<w:document {WORD_NAMESPACES}><w:body>{body}{section}</w:body></w:document>"
        )
    return buffer.getvalue()


def text_box(*paragraphs: str) -> str:
    """A text box's content, a paragraph per text (one given as XML, <w:p>..., as it is): what both ways of drawing
    the box hold."""
    written = (text if text.startswith("<w:p") else f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>" for text in paragraphs)
    return "<w:txbxContent>" + "".join(written) + "</w:txbxContent>"


def styled_paragraph(style: str, text: str) -> str:
    """A paragraph's XML in a style, by its id ("Title", "Heading1")."""
    return f'<w:p><w:pPr><w:pStyle w:val="{style}"/></w:pPr><w:r><w:t>{text}</w:t></w:r></w:p>'


def vml_text_box(*paragraphs: str) -> str:
    """A text box as Word 2003 wrote one, and as later versions write it again for older readers."""
    return f"<w:pict><v:shape><v:textbox>{text_box(*paragraphs)}</v:textbox></v:shape></w:pict>"


def drawn_text_box(*paragraphs: str) -> str:
    """A text box as Word writes one since 2010: a DrawingML shape, then the same box in VML for older readers."""
    shape = (
        '<w:drawing><wp:anchor><a:graphic><a:graphicData uri="http://schemas.microsoft.com/office/word/2010/'
        f'wordprocessingShape"><wps:wsp><wps:txbx>{text_box(*paragraphs)}</wps:txbx></wps:wsp></a:graphicData>'
        "</a:graphic></wp:anchor></w:drawing>"
    )
    fallback = f"<mc:Fallback>{vml_text_box(*paragraphs)}</mc:Fallback>"
    return f'<mc:AlternateContent><mc:Choice Requires="wps">{shape}</mc:Choice>{fallback}</mc:AlternateContent>'


def test_a_word_document_s_text_boxes_are_read_once_each_and_its_header_and_comments_are_not() -> None:
    """A text box (a sidebar, a callout, a form's field) is the document's text, which python-docx never reads;
    Word writes each twice, for new and older readers, and a deleted one is not the document's any more."""
    body = (
        '<w:p><w:r><w:t>Intro.</w:t></w:r><w:commentRangeStart w:id="0"/>'
        f"<w:r>{drawn_text_box('Boxed fact one.', 'Boxed fact two.')}</w:r>"
        '<w:commentRangeEnd w:id="0"/><w:r><w:commentReference w:id="0"/></w:r></w:p>'
        f"<w:p><w:r><w:t>Middle.</w:t></w:r><w:r>{vml_text_box('An old VML box.')}</w:r></w:p>"
        f'<w:p><w:del w:id="1" w:author="A"><w:r>{vml_text_box("A deleted box.")}</w:r></w:del>'
        "<w:r><w:t>Closing.</w:t></w:r></w:p>"
        f"<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Cell</w:t></w:r><w:r>{drawn_text_box('in a box.')}</w:r></w:p></w:tc>"
        "</w:tr></w:tbl>"
    )
    assert one("brochure.docx", word_package(body)).text.split("\n\n") == [
        "Intro.",
        "Boxed fact one.",
        "Boxed fact two.",
        "Middle.",
        "An old VML box.",
        "Closing.",
        "Cell\nin a box.",
    ]


MACBINARY_HEADER = b"\x00\x0bsurvey.pdf".ljust(65, b"\x00") + b"PDF CARO" + bytes(128 - 73)
"""What a Mac mail client puts before a file's bytes: a 128-byte header naming it."""


@pytest.mark.parametrize(
    "before",
    [codecs.BOM_UTF8, MACBINARY_HEADER, b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n\r\n", b"x" * 1000],
    ids=["bom", "macbinary", "http", "1000-bytes"],
)
@pytest.mark.parametrize("name", ["survey.pdf", "scan.bin"])
def test_a_pdf_whose_header_follows_other_bytes_is_read_from_its_header(
    name: str, before: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Acrobat finds the header within the first 1,024 bytes, where scanners and mail gateways leave such files: one
    named "scan.bin" was refused as an unsupported type, and one named survey.pdf read only after pypdf warned of an
    invalid header and rebuilt its cross-reference table from offsets the bytes before had moved."""
    doc = one(name, before + pdf_bytes(SURVEY, title="Glacier Survey 2023"))
    assert doc.metadata["file_type"] == "pdf" and doc.title == "Glacier Survey 2023"
    assert doc.text.startswith("Glacier Survey Results")
    assert not caplog.records, [record.getMessage() for record in caplog.records]


def test_a_note_that_mentions_a_pdf_header_near_its_start_stays_a_note() -> None:
    """A header after other bytes makes a PDF only where the file ends as one does."""
    doc = one("pdf-notes.md", b"# PDF notes\n\nEvery PDF file starts with %PDF-1.7 and a binary comment.\n")
    assert doc.metadata["file_type"] == "markdown" and doc.title == "PDF notes"
    [cut] = load_content("cut.bin", b"x" * 10 + pdf_bytes(SURVEY)[:400], doc_id="cut.bin")
    assert isinstance(cut, Skipped) and cut.reason.startswith("unsupported file type .bin")


def oversized(data: bytes) -> bytes:
    return data.ljust(loaders.MAX_FILE_BYTES + 1, b"\0")


def test_a_file_over_the_size_limit_is_refused_before_anything_parses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its zip directory was listed, and an older Office file's streams searched, before its size was looked at."""
    files = {"minutes.doc": ole2_file("WordDocument"), "deck.pptx": roadmap_deck(), "report": pdf_bytes(SURVEY)}
    listed: list[object] = []
    monkeypatch.setattr(zipfile, "ZipFile", lambda *args, **kwargs: listed.append(args))
    for name, data in files.items():
        [refused] = load_content(name, oversized(data), doc_id=name)
        assert isinstance(refused, Skipped) and refused.reason.startswith(loaders.TOO_LARGE), refused
    assert not listed
    assert f"{KEPT} 'report' is kept" in refused.reason  # its first bytes show a PDF, one document


def zip_of_version(version: int) -> bytes:
    """A zip whose directory says it needs a zip version this many tenths (zipfile reads up to 6.3)."""
    data = bytearray(docx_bytes())
    directory = data.index(b"PK\x01\x02")
    data[directory + 6 : directory + 8] = version.to_bytes(2, "little")
    return bytes(data)


@pytest.mark.parametrize(
    "damaged", [misnamed_zip(), docx_bytes()[:-30], zip_of_version(100)], ids=["name-not-utf8", "cut", "version"]
)
def test_a_damaged_zip_is_refused_with_a_reason_not_an_exception(damaged: bytes) -> None:
    """Each of ZIP_DIRECTORY_ERRORS: BadZipFile, NotImplementedError, UnicodeDecodeError."""
    for name in ("notes.md", "report.docx"):
        [refused] = load_content(name, damaged, doc_id=name)
        assert isinstance(refused, Skipped), refused


def test_a_programming_error_while_sniffing_a_zip_is_raised_not_taken_for_damage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every exception listing a zip was taken for damage: a bug there read every Word file as its name's type."""

    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("a bug")

    monkeypatch.setattr(zipfile, "ZipFile", broken)
    with pytest.raises(TypeError, match="a bug"):
        list(load_content("notes.md", docx_bytes(), doc_id="notes.md"))


WORDPAD_LETTER = b"\r\n".join(
    [
        rb"{\rtf1\ansi\ansicpg1252\deff0\nouicompat",
        rb"{\fonttbl{\f0\fswiss\fcharset0 Calibri;}{\f1\fnil\fcharset128 MS Gothic;}}",
        rb"{\stylesheet{\s0 Normal;}{\s1 heading 1;}}",
        rb"{\info{\title Caf\'e9 \u26085?\u26412? tasting notes}{\author Ana Lopes}{\company Vellmar Roasters}}",
        rb"{\*\generator Riched20 10.0.19041}\viewkind4\uc1",
        rb"\pard\sa200\sl276\slmult1\f0\fs22\lang9 Caf\'e9 au lait in Z\u252?rich costs \'80 4.\par",
        rb"Tokyo: \u26085?\u26412?\u35486? menus, and a \u-10179?\u-8704? for regulars.\par",
        rb"{\pict\pngblip\picw10\pich10 89504e470d0a1a0a0000000d49484452}\par",
        rb"\f1 \'93\'fa\'96\'7b\f0  in the font's own code page.\par",
        rb"}",
    ]
)
"""A letter as WordPad saves it: a code page (\\ansicpg1252), font, style and document information tables, characters
beyond it as \\u escapes (an emoji as a surrogate pair), a picture, and a Japanese font's bytes in its code page."""


def test_a_rich_text_file_is_read_with_its_characters_and_its_title() -> None:
    """Rich Text was refused as an unsupported type, though WordPad, TextEdit and Outlook save it."""
    doc = one("letter.rtf", WORDPAD_LETTER)
    assert doc.title == "Caf\u00e9 \u65e5\u672c tasting notes"
    assert doc.text.split("\n\n") == [
        "Caf\u00e9 au lait in Z\u00fcrich costs \u20ac 4.",
        "Tokyo: \u65e5\u672c\u8a9e menus, and a \U0001f600 for regulars.",
        "\u65e5\u672c in the font's own code page.",
    ]
    assert doc.metadata == {"source": "letter.rtf", "file_type": "rtf"}


def test_rich_text_is_read_in_the_code_page_it_declares_and_titled_by_its_name_without_a_title() -> None:
    cyrillic = rb"{\rtf1\ansi\ansicpg1251 \'cf\'f0\'e8\'e2\'e5\'f2, \'ec\'e8\'f0!\par}"
    doc = one("greeting.rtf", cyrillic)
    assert (doc.title, doc.text) == ("greeting", "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!")


@pytest.mark.parametrize(
    ("charset", "escaped", "read"),
    [
        (78, rb"\'93\'fa\'96\'7b", "\u65e5\u672c"),  # Mac Japanese: Shift JIS bytes
        (89, rb"\'8e\'8b", "\u00e9\u010d"),  # Mac Central European
        (82, rb"\'f9\'ec\'e5\'ed", "\u05e9\u05dc\u05d5\u05dd"),  # Mac Hebrew
        (80, rb"\'c7\'d1", "\ud55c"),  # Mac Korean
    ],
)
def test_rich_text_in_a_mac_font_s_code_page_is_read(charset: int, escaped: bytes, read: str) -> None:
    """TextEdit's fonts name Mac code pages; their codecs' names were unknown to Python and the file was refused."""
    rtf = rb"{\rtf1\mac{\fonttbl{\f0\fnil\fcharset%d Font;}}\f0 Say %s.\par}" % (charset, escaped)
    assert one("note.rtf", rtf).text == f"Say {read}."


@pytest.mark.parametrize("name", ["letter", "letter.txt", "letter.doc"])
def test_rich_text_under_another_name_is_read_as_what_its_bytes_show(name: str) -> None:
    doc = one(name, WORDPAD_LETTER)
    assert doc.metadata["file_type"] == "rtf" and doc.text.startswith("Caf\u00e9 au lait")


def test_a_file_named_rtf_that_is_not_rich_text_is_refused_saying_so() -> None:
    [refused] = load_content("notes.rtf", b"Plain words, saved under the wrong name.", doc_id="notes.rtf")
    assert isinstance(refused, Skipped) and refused.reason.startswith(loaders.NOT_RTF), refused


PHOTO_HEX = b"89504e470d0a1a0a0000000d494844520000000a0000000a08060000008d32cfbd"
"""A picture's bytes as Word writes them, in hex."""
PICTURED_TABLE = b"\r\n".join(
    [
        rb"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0\froman\fcharset0{\*\panose 02020603050405020304}Times;}"
        rb"{\f1\fnil\fcharset128 MS Gothic;}}{\info{\title Roasting notes}}",
        rb"\trowd\cellx4000\cellx8000\pard\intbl Roaster\cell {\rtlch {\*\shppict{\pict{\*\picprop{\sp{\sn shapeType}"
        rb"{\sv 75}}}\pngblip {\*\blipuid 0a1b}",
        PHOTO_HEX,
        PHOTO_HEX + rb"}}{\nonshppict{\pict\wmetafile8 " + PHOTO_HEX + rb"}}}\cell\row",
        rb"\pard {\b Bold {\i both}} Z\u252{\pict " + PHOTO_HEX + rb"}?rich, \u26085?{\pict 00}\'e9 after.\par",
        rb'{\field{\*\fldinst{HYPERLINK "https://a.example/"}}{\fldrslt{\ul the notes}}}{\pict',
        PHOTO_HEX + rb'}{\field{\*\fldinst{HYPERLINK "https://b.example/"}}{\fldrslt more}}\par',
        rb"\f1 \'93\'fa{\*\bkmkstart x}\'96\'7b{\*\bkmkend x}\f0  and {A \{\pict 00\} B} \\{\pict 00ff} end.\par",
        rb"{\object\objemb{\*\objclass Excel.Sheet.12}{\*\objdata " + PHOTO_HEX + rb"}{\result{\pict 00}}}\par",
        rb"{\*\themedata " + PHOTO_HEX + rb"}{\*\datastore 0105}}",
    ]
)
"""Pictures as Word writes them: in a table's cell, inside \\shppict with its properties' groups and a metafile
for older readers, between a \\u escape and its stand-in, between two hyperlinks (on lines of their own), as an
object's result; bookmarks between a character's two bytes, escaped braces, a theme and a data store."""


@pytest.mark.parametrize(
    "rtf",
    [
        WORDPAD_LETTER,
        PICTURED_TABLE,
        rb"{\rtf1\ansi\ansicpg1252{\*\generator {\*\oldcp\ansicpg1251}}\'cf\'f0\par}",
        rb"{\rtf1\ansi Cut short.\par{\pict\bin999 00}}",
        rb"{\rtf1\ansi Unclosed {\pict 00",
    ],
    ids=["wordpad", "pictures", "code-page-inside-a-group", "bin-past-the-end", "unclosed"],
)
def test_rich_text_reads_as_striprtf_reads_the_whole_file(rtf: bytes) -> None:
    """The groups no reader sees are dropped before striprtf reads the rest; what it reads must not change."""
    code_page = rich_text.declared_code_page(rtf)
    whole = rtf.decode(code_page, errors="replace")
    assert rich_text.read(rtf) == (rich_text.info_title(whole, code_page), rich_text.paragraphs(whole, code_page))


def test_striprtf_is_not_handed_a_picture_s_hex(monkeypatch: pytest.MonkeyPatch) -> None:
    """striprtf takes each character through a Python loop (a 5 MB file took 4.5 s), and a large file's characters
    are mostly a picture's hex, which it shows nothing of."""
    import striprtf.striprtf

    handed: list[str] = []
    read = striprtf.striprtf.rtf_to_text

    def recorded(rtf: str, **options: str) -> str:
        handed.append(rtf)
        return read(rtf, **options)

    monkeypatch.setattr(striprtf.striprtf, "rtf_to_text", recorded)
    doc = one("roasts.rtf", PICTURED_TABLE)
    assert doc.title == "Roasting notes"
    assert doc.text.split("\n\n")[:2] == ["Roaster||", "Bold both Z\u00fc?rich, \u65e5\u00e9 after."]
    assert handed and not any(PHOTO_HEX.decode() in rtf or "0105" in rtf for rtf in handed)


def test_raw_picture_bytes_are_skipped_by_their_count_braces_and_all() -> None:
    """\\bin is followed by as many raw bytes as it counts; striprtf read them as text, a brace among them closing
    groups, and the text after the picture was lost."""
    photo, workbook = b"\x89PNG}}{\\x\x00", b"PK\x03\x04}}}y\\bin"
    rtf = (
        rb"{\rtf1\ansi{\fonttbl{\f0 Arial;}}\f0 Before.\par{\*\shppict{\pict\pngblip\bin%d " % len(photo)
        + photo
        + rb"}}After.\par{\object{\*\objdata\bin%d " % len(workbook)
        + workbook
        + rb"}}Last \\bin5 stays.\par}"
    )
    assert one("photo.rtf", rtf).text.split("\n\n") == ["Before.", "After.", "Last \\bin5 stays."]


def covered_document(*cover: str) -> bytes:
    """A Word document whose cover page is a text box of these paragraphs, then a Heading 1 and its text."""
    from docx.oxml import parse_xml

    document = Document()
    document.add_paragraph()._p.append(parse_xml(f"<w:r {WORD_NAMESPACES}>{drawn_text_box(*cover)}</w:r>"))
    document.add_heading("Introduction", level=1)
    document.add_paragraph("Revenue grew by a tenth.")
    return saved(document)


def test_a_word_cover_page_s_title_in_a_text_box_titles_the_document() -> None:
    """Word's cover pages set the title in a text box, which the title was never looked for in: the document was
    titled by its first heading after the cover page."""
    prepared = "Prepared by the finance team."
    doc = one("report.docx", covered_document(styled_paragraph("Title", "Annual Report 2025"), prepared))
    assert doc.title == "Annual Report 2025"
    assert doc.text.split("\n\n") == ["Annual Report 2025", prepared, "Introduction", "Revenue grew by a tenth."]
    assert one("report.docx", covered_document(prepared)).title == "Introduction"
