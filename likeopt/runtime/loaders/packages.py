"""Files that are zips of XML parts (Word, PowerPoint, Excel, OpenDocument, EPUB): opened only once they are known to
unpack within bounds (a zip bomb is refused before anything parses it), their parts read by name and parsed without
entities, DTDs or network access."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lxml import etree

from likeopt.runtime.loaders.documents import Unreadable

MAX_UNPACKED_BYTES = 256 * 1024 * 1024
"""A zip-based file is refused when its parts would unpack past this (a zip bomb, or more than a document holds)."""

SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
"""How a part's XML is parsed: no entity is expanded (a billion laughs), no DTD or URL fetched, and libxml2's own
limits on depth and text size kept, so a walk over the tree may recurse."""


def unpackable(data: bytes) -> io.BytesIO:
    """A zip-based file's bytes to parse, once its parts are known to unpack to at most MAX_UNPACKED_BYTES. The sizes
    its directory declares bound what zipfile unpacks: a part that inflates past its declared size fails its check
    instead of growing."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unpacked = sum(member.file_size for member in archive.infolist())
    if unpacked > MAX_UNPACKED_BYTES:
        raise Unreadable(
            f"a zip that unpacks to {unpacked} bytes, over the {MAX_UNPACKED_BYTES} read (a zip bomb, or more"
            " than one document holds)"
        )
    return io.BytesIO(data)


@contextmanager
def opened(data: bytes) -> Iterator[zipfile.ZipFile]:
    """A zip-based file opened to read its parts, once unpackable allows it."""
    with zipfile.ZipFile(unpackable(data)) as archive:
        yield archive


def part_xml(archive: zipfile.ZipFile, name: str, kind: str) -> Any:
    """The root element of a part's XML, parsed with SAFE_XML; a part that is missing or no XML is a kind (the
    file's type, as a reader names it) that cannot be read, said so."""
    data = part_bytes(archive, name, kind)
    try:
        return etree.fromstring(data, SAFE_XML)
    except etree.XMLSyntaxError as error:
        raise Unreadable(f"not a complete {kind}: its {name} is no well-formed XML ({error})") from None


def part_bytes(archive: zipfile.ZipFile, name: str, kind: str) -> bytes:
    """A part's bytes; a part that is missing makes the file a kind (its type, as a reader names it) that cannot
    be read, said so."""
    try:
        return archive.read(name)
    except KeyError:
        raise Unreadable(f"not a complete {kind}: it has no {name}") from None
