"""Loaders: EPUB books, built here as the zips of XHTML chapters they are, read in reading order."""

from __future__ import annotations

import io
import warnings
import zipfile

import pytest

from likeopt.runtime.loaders import Skipped, html_to_text, load_content, packages
from tests.unit.test_loaders import chunked, one

CONTAINER = """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"""
PACKAGE = """<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">urn:uuid:1</dc:identifier>
<dc:title>Herons of the Fens</dc:title><dc:creator>Ana Lopes</dc:creator><dc:creator>Bo Ek</dc:creator>
<dc:language>en</dc:language></metadata>
<manifest>
<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
<item id="c2" href="text/chapter%202.xhtml" media-type="application/xhtml+xml"/>
<item id="c1" href="text/chapter1.xhtml" media-type="application/xhtml+xml"/>
<item id="cover" href="images/cover.jpg" media-type="image/jpeg"/>
<item id="css" href="style.css" media-type="text/css"/>
</manifest>
<spine><itemref idref="nav"/><itemref idref="c1"/><itemref idref="cover"/><itemref idref="c2"/></spine>
</package>"""


def chapter(title: str, body: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE html><html xmlns="http://www.w3.org/1999/xhtml">'
        f"<head><title>{title}</title><link rel='stylesheet' href='../style.css'/></head><body>{body}</body></html>"
    )


NAVIGATION = """<?xml version='1.0' encoding='utf-8'?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" lang="en" xml:lang="en">
<head><title>Herons of the Fens</title></head>
<body><h1>Contents</h1><nav epub:type="toc" id="id" role="doc-toc"><h2>Herons of the Fens</h2>
<ol><li><a href="text/chapter1.xhtml">Nesting</a></li><li><a href="text/chapter%202.xhtml">Feeding</a></li>
<li><a href="text/chapter%202.xhtml#dawn">Wading at dawn</a></li><li><a href="text/chapter%202.xhtml#eels">Eels</a></li>
</ol></nav></body></html>"""
"""A navigation page as EbookLib writes it, and puts in the spine, with a heading as some editors give it; its
first 500 characters hold no "</html", as no real page's do."""
CHAPTERS = {
    "OEBPS/nav.xhtml": NAVIGATION,
    "OEBPS/text/chapter1.xhtml": chapter("One", "<h1>Nesting</h1><p>Herons nest in March&#160;and April.</p>"),
    "OEBPS/text/chapter 2.xhtml": chapter("Two", "<h1>Feeding</h1><p>They wade at dawn.</p>"),
}


def epub_file(parts: dict[str, str], mimetype: str = "application/epub+zip") -> bytes:
    """An EPUB as a book's editor writes one: its mimetype first and stored, its container, then parts."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), mimetype, compress_type=zipfile.ZIP_STORED)
        for name, text in {"META-INF/container.xml": CONTAINER, **parts}.items():
            archive.writestr(name, text)
        archive.writestr("OEBPS/images/cover.jpg", b"\xff\xd8\xff\xe0 a picture")
    return buffer.getvalue()


BOOK = epub_file({"OEBPS/content.opf": PACKAGE, **CHAPTERS})


def test_an_epub_book_is_its_chapters_in_reading_order_with_its_title_and_authors() -> None:
    """The spine's order, not the manifest's; a navigation page's contents and a picture add nothing."""
    doc = one("books/herons.epub", BOOK)
    assert doc.title == "Herons of the Fens"
    assert chunked(doc.text) == "Nesting\n\nHerons nest in March\u00a0and April.\n\nFeeding\n\nThey wade at dawn."
    assert doc.metadata == {"author": "Ana Lopes, Bo Ek", "source": "herons.epub", "file_type": "epub"}


def test_a_book_s_navigation_page_in_its_spine_is_not_read_as_a_chapter() -> None:
    """Its table of contents, and any heading over it, name the chapters; they are not what the book says."""
    assert "Contents" not in one("herons.epub", BOOK).text


def test_an_xhtml_chapter_is_read_without_a_warning_that_it_looks_like_xml() -> None:
    """Beautiful Soup warned so of every XHTML page longer than 500 characters (any warning is an error here, so
    such a book was refused)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, text = html_to_text(NAVIGATION.replace("<h1>Contents</h1>", "<p>Read me.</p>"))
    assert text == "Read me."


@pytest.mark.parametrize("name", ["herons.zip", "herons", "herons.odt"])
def test_an_epub_book_under_another_name_is_read_as_its_mimetype_entry_says(name: str) -> None:
    assert one(name, BOOK).metadata["file_type"] == "epub"


def test_a_zip_with_another_mimetype_entry_is_refused_for_its_name() -> None:
    [refused] = load_content("a.zip", epub_file({}, mimetype="application/x-other"), doc_id="a.zip")
    assert isinstance(refused, Skipped) and refused.reason.startswith("unsupported file type .zip")


@pytest.mark.parametrize(
    ("parts", "reason"),
    [
        ({}, "not a complete EPUB book: it has no OEBPS/content.opf"),
        ({"OEBPS/content.opf": PACKAGE}, "not a complete EPUB book: it has no OEBPS/text/chapter1.xhtml"),
        ({"OEBPS/content.opf": "<package"}, "not a complete EPUB book: its OEBPS/content.opf is no well-formed XML"),
    ],
)
def test_an_incomplete_epub_is_refused_naming_what_it_lacks(parts: dict[str, str], reason: str) -> None:
    [refused] = load_content("cut.epub", epub_file(parts), doc_id="cut.epub")
    assert isinstance(refused, Skipped) and refused.reason.startswith(reason), refused


def test_an_epub_that_would_unpack_past_the_bound_is_refused_before_it_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(packages, "MAX_UNPACKED_BYTES", len(PACKAGE))
    [bomb] = load_content("bomb.epub", BOOK, doc_id="bomb.epub")
    assert isinstance(bomb, Skipped) and bomb.reason.startswith("a zip that unpacks to"), bomb
