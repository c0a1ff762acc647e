"""Loaders: LibreOffice's OpenDocument text, spreadsheet and presentation files, built here as the zips of XML they
are, read as what their bytes show and refused with a reason when damaged or inflated."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from likeopt.runtime.loaders import Skipped, load_content, packages
from tests.unit.test_loaders import chunked, one

NAMESPACES = " ".join(
    f'xmlns:{prefix}="urn:oasis:names:tc:opendocument:xmlns:{name}"'
    for prefix, name in (
        ("office", "office:1.0"),
        ("text", "text:1.0"),
        ("table", "table:1.0"),
        ("draw", "drawing:1.0"),
        ("presentation", "presentation:1.0"),
        ("meta", "meta:1.0"),
    )
)
MIMETYPES = {
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation",
}


def odf_file(kind: str, body: str, title: str | None = None, doctype: str = "") -> bytes:
    """An OpenDocument file as LibreOffice writes one: its mimetype first and stored, then content.xml whose
    office:body holds body, and meta.xml with a title when one is given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), MIMETYPES[kind], compress_type=zipfile.ZIP_STORED)
        archive.writestr(
            "content.xml",
            f'<?xml version="1.0" encoding="UTF-8"?>{doctype}<office:document-content {NAMESPACES}>'
            f"<office:body>{body}</office:body></office:document-content>",
        )
        if title is not None:
            archive.writestr(
                "meta.xml",
                f'<office:document-meta {NAMESPACES} xmlns:dc="http://purl.org/dc/elements/1.1/">'
                f"<office:meta><dc:title>{title}</dc:title></office:meta></office:document-meta>",
            )
    return buffer.getvalue()


FIELD_NOTES = """<office:text>
<text:tracked-changes><text:changed-region><text:deletion><text:p>OLD WORDS</text:p></text:deletion>
</text:changed-region></text:tracked-changes>
<text:table-of-content><text:index-body><text:p>Heron survey 1</text:p></text:index-body></text:table-of-content>
<text:h text:outline-level="1">Heron survey</text:h>
<text:p>He<text:span>rons</text:span> nest<text:s text:c="3"/>in March<text:note text:note-class="footnote">
<text:note-citation>1</text:note-citation><text:note-body><text:p>Counted by Ana.</text:p></text:note-body>
</text:note>.<office:annotation><text:p>check this</text:p></office:annotation></text:p>
<text:p>See the map<draw:frame><draw:text-box><text:p>Boxed fact: 40 nests.</text:p></draw:text-box>
</draw:frame></text:p>
<text:list><text:list-item><text:p>first pond</text:p></text:list-item>
<text:list-item><text:p>second pond</text:p></text:list-item></text:list>
<table:table><table:table-header-rows><table:table-row><table:table-cell><text:p>Pond</text:p></table:table-cell>
<table:table-cell><text:p>Nests</text:p></table:table-cell></table:table-row></table:table-header-rows>
<table:table-row><table:table-cell><text:p>North</text:p></table:table-cell>
<table:table-cell><text:p>12</text:p></table:table-cell></table:table-row></table:table>
</office:text>"""


def test_an_opendocument_text_is_read_in_order_with_its_notes_after_it() -> None:
    """Deleted text, comments and a table of contents stay out; a text box follows its paragraph."""
    doc = one("survey.odt", odf_file("odt", FIELD_NOTES, title="Field notes"))
    assert doc.title == "Field notes"
    assert chunked(doc.text) == (
        "Heron survey\n\nHerons nest in March.\n\nSee the map\n\nBoxed fact: 40 nests.\n\nfirst pond\n\n"
        "second pond\n\nPond Nests\n\nNorth 12\n\nCounted by Ana."
    )
    assert doc.metadata == {"source": "survey.odt", "file_type": "odt"}
    assert one("untitled.odt", odf_file("odt", FIELD_NOTES, title="Untitled 1")).title == "Heron survey"


DECK = """<office:presentation>
<draw:page draw:name="page1"><draw:frame presentation:class="title"><draw:text-box><text:p>Roadmap 2025</text:p>
</draw:text-box></draw:frame><draw:frame presentation:class="outline"><draw:text-box><text:list><text:list-item>
<text:p>Launch in March</text:p></text:list-item></text:list></draw:text-box></draw:frame>
<presentation:notes><draw:page-thumbnail/><draw:frame><draw:text-box><text:p>Say it slowly.</text:p></draw:text-box>
</draw:frame></presentation:notes></draw:page>
<draw:page draw:name="page2"><draw:frame><table:table><table:table-row><table:table-cell><text:p>Q1</text:p>
</table:table-cell><table:table-cell><text:p>beta</text:p></table:table-cell></table:table-row></table:table>
</draw:frame><draw:custom-shape><text:p>Shape words</text:p></draw:custom-shape></draw:page>
</office:presentation>"""


def test_an_opendocument_presentation_is_its_slides_tables_and_notes_titled_by_its_first_slide() -> None:
    doc = one("roadmap.odp", odf_file("odp", DECK))
    assert doc.title == "Roadmap 2025"
    assert chunked(doc.text) == "Roadmap 2025\n\nLaunch in March\n\nSay it slowly.\n\nQ1 beta\n\nShape words"
    assert doc.metadata["file_type"] == "odp"


def xml_attributes(attributes: dict[str, str]) -> str:
    """Keyword arguments as XML attributes: table_number_rows_repeated is table:number-rows-repeated."""
    return " ".join(f'{name.replace("_", ":", 1).replace("_", "-")}="{v}"' for name, v in attributes.items())


def cell(value: str, kind: str = "string", shown: str = "", **attributes: str) -> str:
    names = xml_attributes(attributes)
    typed = f'office:value-type="{kind}"' if kind != "string" else ""
    return f"<table:table-cell {typed} {names}><text:p>{shown or value}</text:p></table:table-cell>"


def row(*cells: str, **attributes: str) -> str:
    return f"<table:table-row {xml_attributes(attributes)}>{''.join(cells)}</table:table-row>"


PADDING = '<table:table-cell table:number-columns-repeated="1020"/>'
"""What LibreOffice writes after a row's last value, to its last column."""
SHEETS = f"""<office:spreadsheet>
<table:table table:name="Q1">{row(cell("Region"), cell("Sales"), cell("Share"), cell("Audited"), cell("Closed"))}
{
    row(
        cell("North"),
        cell("", "float", "1,200.50", office_value="1200.5"),
        cell("", "percentage", "25 %", office_value="0.25"),
        cell("", "boolean", "TRUE", office_boolean_value="true"),
        cell("", "date", "05/01/24", office_date_value="2024-05-01"),
        PADDING,
    )
}
{row(cell("South"), "<table:table-cell/>", cell("", "float", "3", office_value="3"), PADDING)}
{row(cell("Total", table_number_columns_repeated="2"), PADDING, table_number_rows_repeated="2")}
{row(PADDING, table_number_rows_repeated="1048570")}</table:table>
<table:table table:name="Notes">{row(cell("note"))}{row(cell("count in May"))}</table:table>
</office:spreadsheet>"""


def test_an_opendocument_spreadsheet_is_its_sheets_tables_with_values_as_a_workbook_s_read() -> None:
    """Numbers as their value, not as shown; the padding LibreOffice writes to the last column and row adds
    nothing; a repeated row is there as often as it is repeated."""
    doc = one("sales.ods", odf_file("ods", SHEETS))
    assert doc.text == (
        "Q1\n\nRegion: North\nSales: 1200.5\nShare: 0.25\nAudited: true\nClosed: 2024-05-01\n\n"
        "Region: South\nShare: 3\n\nRegion: Total\nSales: Total\n\nRegion: Total\nSales: Total\n\n"
        "Notes\n\nnote: count in May"
    )
    assert doc.metadata["file_type"] == "ods"


def test_a_spreadsheet_whose_repeats_claim_billions_of_cells_is_refused_not_grown() -> None:
    wide = row(cell("x", table_number_columns_repeated="16000"), table_number_rows_repeated="999999999")
    claimed = f"<office:spreadsheet><table:table>{wide}</table:table></office:spreadsheet>"
    [refused] = load_content("huge.ods", odf_file("ods", claimed), doc_id="huge.ods")
    assert isinstance(refused, Skipped) and refused.reason.startswith("a spreadsheet whose repeated rows and cells")


@pytest.mark.parametrize("name", ["report.docx", "report", "notes.txt", "sheet.xlsx"])
def test_an_opendocument_file_under_another_name_is_read_as_its_mimetype_entry_says(name: str) -> None:
    """Its zip holds no Word part, so it was refused as a broken .docx, an unsupported type, or zip bytes as text."""
    doc = one(name, odf_file("odt", FIELD_NOTES))
    assert doc.metadata["file_type"] == "odt" and doc.text.startswith("Heron survey")


def test_damaged_or_inflated_opendocument_files_are_refused_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", MIMETYPES["odt"])
    [incomplete] = load_content("a.odt", buffer.getvalue(), doc_id="a.odt")
    assert isinstance(incomplete, Skipped)
    assert incomplete.reason.startswith("not a complete OpenDocument text: it has no content.xml")
    [broken] = load_content("b.odt", odf_file("odt", "<office:text><text:p>cut"), doc_id="b.odt")
    assert isinstance(broken, Skipped) and "its content.xml is no well-formed XML" in broken.reason
    monkeypatch.setattr(packages, "MAX_UNPACKED_BYTES", 1000)
    [bomb] = load_content("bomb.ods", odf_file("ods", "<office:spreadsheet/>" + " " * 2000), doc_id="bomb.ods")
    assert isinstance(bomb, Skipped) and "unpacks to" in bomb.reason and "zip bomb" in bomb.reason


def test_entities_in_an_opendocument_file_are_never_expanded_nor_fetched(tmp_path: Path) -> None:
    """An external entity would read a file of the server's into the index; nested ones multiply (a billion laughs)."""
    secret = tmp_path / "secret.txt"
    secret.write_text("server secret")
    doctype = (
        f'<!DOCTYPE office:document-content [<!ENTITY leak SYSTEM "file://{secret}">'
        '<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    )
    body = "<office:text><text:p>Before &leak; and &b; after.</text:p></office:text>"
    doc = one("trap.odt", odf_file("odt", body, doctype=doctype))
    assert "secret" not in doc.text and "lol" not in doc.text and doc.text.startswith("Before")
