"""EPUB books as text: the package document (OPF) their zip's container names gives the chapters in reading order
(its spine), each an XHTML page read as an HTML page is, and the book's title and authors."""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from likeopt.runtime.loaders.documents import Unreadable
from likeopt.runtime.loaders.html import html_to_text
from likeopt.runtime.loaders.packages import opened, part_bytes, part_xml
from likeopt.runtime.loaders.plain_text import decode_html
from likeopt.runtime.loaders.tidy import BLOCK_BREAK, given_title

CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
OPF = "{http://www.idpf.org/2007/opf}"
DC = "{http://purl.org/dc/elements/1.1/}"
"""The namespaces of an EPUB's container and package documents (EPUB 2 and 3 alike), as lxml spells its tags."""
CHAPTER_TYPES = frozenset({"application/xhtml+xml", "text/html"})
"""The media types of the spine's items read as chapters; an image or an SVG page in the spine holds no text."""
EPUB = "EPUB book"
"""How a refusal names the type."""


def epub_document(data: bytes) -> tuple[str, str, dict[str, str]]:
    """(title, text, metadata) of an EPUB book: its chapters' text in reading order (a navigation page's <nav> left
    out, as on any page), its title from its package document and its authors (dc:creator) as metadata "author"."""
    with opened(data) as archive:
        package_path = _package_path(archive)
        package = part_xml(archive, package_path, EPUB)
        pages = [part_bytes(archive, path, EPUB) for path in _spine(package, package_path)]
    chapters = [html_to_text(decode_html(page))[1] for page in pages]
    authors = [" ".join("".join(creator.itertext()).split()) for creator in package.iterfind(f".//{DC}creator")]
    metadata = {"author": ", ".join(filter(None, authors))} if any(authors) else {}
    title = given_title(package.findtext(f".//{DC}title"))
    return title, BLOCK_BREAK.join(chapter for chapter in chapters if chapter), metadata


def _package_path(archive: zipfile.ZipFile) -> str:
    """Where the book's package document lies in its zip, as META-INF/container.xml says."""
    rootfile = part_xml(archive, "META-INF/container.xml", EPUB).find(f"{CONTAINER}rootfiles/{CONTAINER}rootfile")
    if rootfile is None or not rootfile.get("full-path"):
        raise Unreadable(f"not a complete {EPUB}: its META-INF/container.xml names no package document")
    return str(rootfile.get("full-path"))


def _spine(package: Any, package_path: str) -> Iterator[str]:
    """The paths in the zip of the spine's chapters, in reading order, but for the navigation page: each item's href
    is relative to the package document and percent-encoded, as a URL is."""
    items = {item.get("id"): item for item in package.iterfind(f"{OPF}manifest/{OPF}item")}
    folder = posixpath.dirname(package_path)
    for reference in package.iterfind(f"{OPF}spine/{OPF}itemref"):
        item = items.get(reference.get("idref"))
        if item is not None and item.get("media-type") in CHAPTER_TYPES and not _is_navigation(item):
            yield posixpath.normpath(posixpath.join(folder, unquote(item.get("href", ""))))


def _is_navigation(item: Any) -> bool:
    """Whether a manifest item is the book's navigation page (EPUB 3's properties="nav"): its table of contents
    repeats the chapters' titles, not their text, and editors put it in the spine."""
    return "nav" in str(item.get("properties", "")).split()
