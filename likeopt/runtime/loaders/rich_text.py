"""Rich Text (.rtf) read as text: striprtf does the reading; this module feeds it only what a reader sees, names
the code pages it would not find, and gives the loaders the file's title and text (rtf_to_text).

striprtf (BSD-3, no dependencies) reads the text with its \\uN escapes and \\'hh bytes in the code page the
header or a font declares, and leaves out font and style tables, document information and pictures; it reads
about a megabyte a second, so the groups it shows nothing of are dropped here first (by a str.find scan, since a
picture's hex is most of a large file). The names imported from striprtf beyond its rtf_to_text are its own
reading rules (its ignored destinations, hyperlink and font-table patterns), used so that what is dropped is
what it drops.
"""

from __future__ import annotations

import codecs
import functools
import re

from likeopt.runtime.loaders.documents import Unreadable
from likeopt.runtime.loaders.tidy import BLOCK_BREAK, given_title, tidy

RTF_SIGNATURE = b"{\\rtf"
"""How a Rich Text file begins, as the RTF specification's header says."""
RTF_DEFAULT_CODE_PAGE = "cp1252"
"""The code page of a Rich Text file's 8-bit characters when its header declares none (\\ansi: Windows-1252)."""
_RTF_CODE_PAGE = re.compile(rb"\\ansicpg(\d+)")
_RTF_TITLE = re.compile(r"\{\\title\b ?((?:\\[\\{}]|[^{}])*)\}")
"""The \\title group of a Rich Text file's document information (\\info), its text with its escapes."""


MAC_CODE_PAGE_STAND_INS = {
    "mac_ce": "mac_latin2",
    "mac_rumanian": "mac_romanian",
    "mac_ukrainian": "mac_cyrillic",
    "mac_hebrew": "iso8859_8",
    "mac_thai": "cp874",
    "mac_japanese": "cp932",
    "mac_chinesetrad": "cp950",
    "mac_chinesesimp": "cp936",
    "mac_korean": "cp949",
}
"""striprtf names a Mac font's code page (\\fcharset 77-89) by codecs Python lacks, and the whole file then failed
with LookupError; each stands in for the nearest Python has: the same letters at the same bytes (Hebrew's and Thai's
as ISO 8859-8 and TIS-620 place them, the CJK ones as their Windows supersets)."""


def _mac_code_page(name: str) -> codecs.CodecInfo | None:
    """codecs' search function for MAC_CODE_PAGE_STAND_INS (given the name lower-cased, as codecs passes it)."""
    stand_in = MAC_CODE_PAGE_STAND_INS.get(name)
    return codecs.lookup(stand_in) if stand_in else None


codecs.register(_mac_code_page)


NOT_RTF = "not Rich Text: an .rtf file begins with {\\rtf (save it again as Rich Text, or as .docx)"


def rtf_to_text(data: bytes) -> tuple[str, str]:
    """(title, text) of a Rich Text file (WordPad, TextEdit, Outlook) as read() reads it: each paragraph a block,
    the title its document information's unless a placeholder."""
    if not data.startswith(RTF_SIGNATURE):
        raise Unreadable(NOT_RTF)
    title, paragraphs = read(data)
    return given_title(title), tidy(BLOCK_BREAK.join(paragraphs))


def read(data: bytes) -> tuple[str, list[str]]:
    """(title, paragraphs) of a Rich Text file: striprtf reads its text, escaped characters included, and leaves out
    what a reader does not see (font and style tables, document information, pictures). The groups no reader sees
    are dropped first: striprtf reads about a megabyte a second, and an upload may be 50 MiB of pictures."""
    data = without_binary_data(data)
    code_page = declared_code_page(data)
    rtf = data.decode(code_page, errors="replace")  # RTF escapes 8-bit characters; some writers put them raw
    return info_title(rtf, code_page), paragraphs(without_unseen_groups(rtf), code_page)


def paragraphs(rtf: str, code_page: str) -> list[str]:
    """The text striprtf reads in Rich Text, a paragraph a line."""
    from striprtf.striprtf import rtf_to_text

    return whole_characters(rtf_to_text(rtf, encoding=code_page, errors="replace")).splitlines()


_RTF_BINARY = re.compile(rb"\\bin(\d+) ?")
"""A \\bin control word: as many raw bytes as it counts follow it (a picture's or an object's, written unencoded)."""


def without_binary_data(data: bytes) -> bytes:
    """data without its \\bin control words and the bytes each counts: no reader sees them, and striprtf would read
    them as text, a brace among them as a group's. A count past the file's end is left as it is (the file is cut
    short: striprtf reads what there is, as it did)."""
    if b"\\bin" not in data:
        return data
    kept: list[bytes] = []
    kept_from = searched_from = 0
    while (found := _RTF_BINARY.search(data, searched_from)) is not None:
        binary_end = found.end() + int(found[1])
        if _escaped(data, found.start()) or binary_end > len(data):
            searched_from = found.end()
            continue
        kept.append(data[kept_from : found.start()])
        kept_from = searched_from = binary_end
    kept.append(data[kept_from:])
    return b"".join(kept)


_FIELD_BEFORE_GROUP = re.compile(r"\{\\field(?=\{)")
"""A \\field word right before a group, which striprtf's HYPERLINKS pattern looks for ({\\field{\\*\\fldinst{...)."""


@functools.cache
def _unseen_group_start() -> re.Pattern[str]:
    """A group's opening brace and \\* or a destination striprtf ignores (its `destinations`) as its first control
    word (a line break between is nothing to striprtf, and a word is all its letters)."""
    from striprtf.striprtf import destinations

    words = "|".join(sorted(destinations, key=len, reverse=True))
    return re.compile(rf"\{{[\r\n]*\\(?:\*|(?:{words})(?![a-zA-Z]))")


def without_unseen_groups(rtf: str) -> str:
    """rtf with each group striprtf shows nothing of (pictures, objects, themes, bookmarks: a destination it ignores,
    \\* ones included) emptied to {}: striprtf takes every character through a Python loop, and pictures are most of
    a large file's. The rest reads as before: the braces kept still end a \\u escape's stand-in, the font table
    (whose entries striprtf reads by pattern) is left whole, and the hyperlinks' addresses, which striprtf adds by
    a pattern an emptied group could change, are added first, each {\\field{ then made {\\field { (one token to
    striprtf, a control word's space being part of it) so that the pattern finds none a second time."""
    from striprtf.striprtf import HYPERLINKS

    linked = _FIELD_BEFORE_GROUP.sub(r"{\\field ", HYPERLINKS.sub(r"\1(\2)", rtf))
    kept: list[str] = []
    kept_from, searched_from = 0, _font_table_end(linked)
    while (found := _unseen_group_start().search(linked, searched_from)) is not None:
        group_end = _unseen_group_end(linked, found)
        if group_end is None:
            searched_from = found.end()
            continue
        kept += [linked[kept_from : found.start()], "{}"]
        kept_from = searched_from = group_end
    kept.append(linked[kept_from:])
    return "".join(kept)


def _unseen_group_end(rtf: str, found: re.Match[str]) -> int | None:
    """Where the group _unseen_group_start() found ends if striprtf shows nothing of it and nothing in it changes how
    striprtf reads the rest (an \\ansicpg sets the code page for the whole file), else None."""
    if _escaped(rtf, found.start()):
        return None
    end = _group_end(rtf, found.start())
    if end is None or rtf.find("\\ansicpg", found.start(), end) >= 0:
        return None
    return end


def _group_end(rtf: str, start: int) -> int | None:
    """The index after the brace closing the group opened at start, an escaped brace (\\{ \\}) not one; None if
    the file ends first. Found with str.find, which passes over a picture's megabytes of hex at memory speed (a
    pattern's search takes a hundred times longer), each character's next place looked for again only once passed."""
    depth, at = 0, start
    nearest = dict.fromkeys("{}\\", -1)
    while True:
        for char, index in nearest.items():
            if index < at:
                found = rtf.find(char, at)
                nearest[char] = found if found >= 0 else len(rtf)
        char = min(nearest, key=nearest.__getitem__)
        if nearest[char] == len(rtf):
            return None
        if char == "\\":
            at = nearest[char] + 2
            continue
        depth, at = depth + (1 if char == "{" else -1), nearest[char] + 1
        if depth == 0:
            return at


def _font_table_end(rtf: str) -> int:
    """Where the font table striprtf reads ends (0 without one): striprtf finds its entries by pattern."""
    from striprtf.striprtf import FONTTABLE_START, font_table_group

    found = FONTTABLE_START.search(rtf)
    return found.start() + len(font_table_group(rtf)) if found else 0


def _escaped(rtf: str | bytes, at: int) -> bool:
    """Whether the character at `at` is escaped: an odd run of backslashes before it (\\{ is a brace of the text,
    \\\\{ a backslash and a group)."""
    run = at
    while run > 0 and rtf[run - 1] in ("\\", ord("\\")):
        run -= 1
    return (at - run) % 2 == 1


def declared_code_page(data: bytes) -> str:
    """The code page a Rich Text file's header declares (\\ansicpg), else RTF_DEFAULT_CODE_PAGE, as for one Python
    does not know."""
    declared = _RTF_CODE_PAGE.search(data)
    code_page = f"cp{int(declared[1])}" if declared else RTF_DEFAULT_CODE_PAGE
    try:
        codecs.lookup(code_page)
    except LookupError:
        return RTF_DEFAULT_CODE_PAGE
    return code_page


def info_title(rtf: str, code_page: str) -> str:
    """The title a Rich Text file's document information gives, its escapes read as in the text, else ""."""
    from striprtf.striprtf import rtf_to_text as rtf_text

    found = _RTF_TITLE.search(rtf)
    if found is None:
        return ""
    return whole_characters(rtf_text(f"{{\\rtf1 {found[1]}}}", encoding=code_page, errors="replace"))


def whole_characters(text: str) -> str:
    """Text with each pair of UTF-16 surrogates made the one character it stands for: RTF writes a character beyond
    U+FFFF (an emoji, a rare CJK character) as two \\u escapes, which striprtf gives as they are, and a lone
    surrogate, no character, as U+FFFD (neither can be stored: protobuf strings are UTF-8)."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
