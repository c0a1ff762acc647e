"""A text file's bytes as characters: UTF-8, or the encoding a byte-order mark (or an HTML file's own declaration)
names, never a guessed code page; and the reason given when they are not text."""

from __future__ import annotations

import codecs
import re

from bs4.dammit import EncodingDetector

from likeopt.runtime.loaders.formats import NOT_TEXT, NOT_UTF8

NUL_IN_TEXT = "NUL character"
"""Why decode_text refuses bytes that decode: UTF-8 and UTF-16 can spell NUL, but no text holds one."""


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
"""Longest first: UTF-32 LE's mark begins with UTF-16 LE's."""


def decode_text(data: bytes) -> str:
    """A text file's characters: UTF-8, or the UTF-16 or UTF-32 its byte-order mark names (what Windows tools
    such as PowerShell's ``>`` write). Without a mark, anything but UTF-8 raises UnicodeDecodeError: a guessed
    legacy code page turns accented and non-Latin letters into wrong ones that would then be searched and cited.
    NUL characters raise it too (reason NUL_IN_TEXT): HTML and Markdown parsers would turn them into U+FFFD and
    index the rest, and ASCII text in UTF-16 without its mark is valid UTF-8 with a NUL after every letter."""
    encoding = next((encoding for mark, encoding in _BOMS if data.startswith(mark)), "utf-8")
    text = data.decode(encoding)
    if "\x00" in text:
        nul = data.find(b"\x00")
        raise UnicodeDecodeError(encoding, data, nul, nul + 1, NUL_IN_TEXT)
    return text


_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
"""A C0 control or DEL: never in text, whose only controls are tab, line breaks and form feed."""


def utf16_without_mark(data: bytes) -> str | None:
    """The encoding, UTF-16LE or UTF-16BE, of data that reads as UTF-16 text without a byte-order mark, else None.
    Every character below U+0100 (spaces, line breaks, Latin letters) has a NUL high byte, second in little-endian
    and first in big-endian, so such text has its NULs at odd or at even offsets; decoding it in that byte order
    without an unpaired surrogate or a control character confirms it, where a binary file fails."""
    even, odd = data[0::2].count(0), data[1::2].count(0)
    if len(data) % 2 or even == odd:
        return None
    encoding = "UTF-16LE" if odd > even else "UTF-16BE"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None
    return None if _CONTROL_CHARACTER.search(text) else encoding


def not_text_reason(data: bytes) -> str:
    """Why a text file is not read, with the command that converts it: UTF-16 without its mark (what some Windows
    tools write) is named so, anything else holding a NUL byte is binary, not text, and the rest is taken for a legacy
    code page."""
    if encoding := utf16_without_mark(data):
        return (
            f"probably {encoding} text without a byte-order mark (convert it first, e.g. iconv -f {encoding} -t UTF-8)"
        )
    return NOT_TEXT if b"\x00" in data else NOT_UTF8


UNDECLARED_8BIT = "windows-1252"
"""What 8-bit bytes are read as where a format's own default is ASCII and its writers put them in without declaring
a character set (an e-mail's headers and bodies, RFC 2045's default us-ascii): the Latin-1 superset HTML5 also reads
a declared ISO-8859-1 as, and the fallback mail programs use in Western locales."""


def decode_undeclared(data: bytes) -> str:
    """Text whose format defaults to ASCII but whose bytes are 8-bit without a declared character set: as
    decode_text (UTF-8, byte-order marks, no NUL), else UNDECLARED_8BIT. UnicodeDecodeError for a NUL (reason
    NUL_IN_TEXT) and for bytes neither reads: binary, never stored as replacement characters."""
    try:
        return decode_text(data)
    except UnicodeDecodeError as error:
        if error.reason == NUL_IN_TEXT:
            raise
        return data.decode(UNDECLARED_8BIT)


def decode_html(data: bytes) -> str:
    """An HTML file's characters: as decode_text, else in the encoding its own ``<meta charset>`` declares (a
    statement, not a guess; HTML5 reads ISO-8859-1 as its superset windows-1252)."""
    try:
        return decode_text(data)
    except UnicodeDecodeError as error:
        declared = EncodingDetector.find_declared_encoding(data, is_html=True)
        if not declared or error.reason == NUL_IN_TEXT:
            raise
        encoding = "windows-1252" if codecs.lookup(declared).name == "iso8859-1" else declared
        return data.decode(encoding)
