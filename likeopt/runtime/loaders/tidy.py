"""How every loader leaves its text and title: blocks a blank line apart, spaces tidied as prose reads, and a title a
tool wrote in place of the author's left out."""

from __future__ import annotations

import re

from likeopt.runtime.text_layout import PARAGRAPH_BREAK

BLOCK_BREAK = PARAGRAPH_BREAK
"""What loaders put between blocks (paragraphs, list items, table rows, slides' text frames, notes): the chunker
keeps a blank line as a boundary, while lines of one indentation are read as hard-wrapped prose and joined with a
space, so two blocks would run together into one sentence in a chunk and in an extractive answer. Code is written
``fenced`` instead, which keeps its lines."""


def spaces_tidied(text: str) -> str:
    """Runs of spaces and tabs as one space, none around a line break: how prose reads."""
    return re.sub(r" ?\n ?", "\n", re.sub(r"[ \t\r\f\v]+", " ", text))


def lines_tidied(text: str) -> str:
    """No space at line ends, at most one blank line in a row, none at either end; spaces inside lines kept."""
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t\r\f\v]+\n", "\n", text)).strip("\n")


def tidy(text: str) -> str:
    """Text as prose reads, spaces and blank lines tidied (spaces_tidied, then lines_tidied)."""
    return lines_tidied(spaces_tidied(text)).strip()


PLACEHOLDER_TITLE = re.compile(
    r"microsoft \w+ - .*|.*\.(?:docx?|pptx?|xlsx?|odt|odp|rtf|txt|md|html?|tex|dvi|ps|pdf|indd|qxd|pages|key)"
    r"|(?:(?:microsoft )?(?:word|powerpoint|excel) )?"
    r"(?:untitled|no title|title|document|presentation|book|workbook|slide)[\s_-]*\d*",
    re.IGNORECASE,
)
"""A title in a PDF's, Word document's, deck's or workbook's properties that a tool wrote in place of one the author
gave: the name of the file it was made from ("Microsoft Word - report.docx", "C:\\tmp\\paper.dvi") or an
application's default ("Untitled-1", "Document1", "PowerPoint Presentation", "Book1"); the file's own name, or its
first heading, says more."""


def given_title(title: object) -> str:
    """A title from a file's properties with its spaces tidied, "" when it is missing, a placeholder or no word."""
    title = " ".join(title.split()) if isinstance(title, str) else ""
    if PLACEHOLDER_TITLE.fullmatch(title) or not any(character.isalpha() for character in title):
        return ""
    return title
