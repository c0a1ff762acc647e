"""Markdown as the text a reader sees: a CommonMark parser (markdown-it-py) leaves ``**``, ``#``, bullets and link URLs
out while link text and code stay in, the title is a real heading (never a ``# comment`` inside a code fence), and
front matter gives the title and metadata."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from typing import Any

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from likeopt.runtime.loaders.documents import is_scalar, scalar_text
from likeopt.runtime.loaders.html import html_to_text
from likeopt.runtime.loaders.tidy import BLOCK_BREAK, lines_tidied, spaces_tidied
from likeopt.runtime.text_layout import fenced

_MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
_MARKDOWN_BREAKS = {
    "heading_close": "\n\n",
    "blockquote_close": "\n\n",
    "bullet_list_close": "\n",
    "ordered_list_close": "\n",
    "th_close": " ",
    "td_close": " ",
    "tr_close": BLOCK_BREAK,
    "table_close": "\n",
    "hr": "\n",
}
"""What each closing block token leaves in the text: its syntax never, a block, line or word break always (a table
row is a block, BLOCK_BREAK)."""


def _inline_text(children: Sequence[Token]) -> str:
    """The words of an inline run: text, code and image alt text; emphasis marks, link URLs and tags dropped."""
    pieces = []
    for child in children:
        if child.type in ("text", "code_inline", "image"):
            pieces.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            pieces.append("\n")
        elif child.type == "html_inline":
            pieces.append(" ")  # <br>, <kbd>…: a tag is never a word, and may separate two
    return "".join(pieces)


def markdown_to_text(markdown: str) -> tuple[str, str]:
    """(title, text) of a Markdown document: its front matter's title else its first heading's words, and the
    words a reader sees (front matter is not among them)."""
    title, text, _ = markdown_document(markdown)
    return title, text


def markdown_document(markdown: str) -> tuple[str, str, dict[str, str]]:
    """(title, text, metadata) of a Markdown document: the front matter's title and simple values, else the first
    heading; CommonMark alone would read a YAML block's closing ``---`` as a heading underline, every key a title."""
    fields, body = front_matter(markdown)
    heading, text = _markdown_body(body)
    metadata = {str(key): scalar_text(value) for key, value in fields.items() if is_scalar(value)}
    return metadata.pop("title", "").strip() or heading, text, metadata


def _markdown_body(markdown: str) -> tuple[str, str]:
    """(first heading, text) of Markdown without front matter."""
    title, parts = "", []
    tokens = _MARKDOWN.parse(markdown)
    for position, token in enumerate(tokens):
        if token.type == "inline":
            parts.append(spaces_tidied(_inline_text(token.children or [])))
        elif token.type in ("fence", "code_block"):
            parts.append(fenced(token.content) + BLOCK_BREAK)  # as written: a code block's spacing is its layout
        elif token.type == "html_block":
            parts.append(html_to_text(token.content)[1] + "\n\n")
        elif token.type == "paragraph_close":
            parts.append(BLOCK_BREAK)
        else:
            parts.append(_MARKDOWN_BREAKS.get(token.type, ""))
        if not title and token.type == "heading_open" and position + 1 < len(tokens):
            title = " ".join(_inline_text(tokens[position + 1].children or []).split())
    return title, lines_tidied("".join(parts))


_FRONT_MATTER = re.compile(
    r"\A\ufeff?(?P<fence>---|\+\+\+)[ \t]*\r?\n(?P<body>(?:.*\r?\n)*?)(?P<close>---|\.\.\.|\+\+\+)[ \t]*(?:\r?\n|\Z)"
)
"""A block of settings before a Markdown file's text, as Jekyll, Hugo and Obsidian write it: YAML between ``---``
lines (closed by ``---`` or ``...``), or TOML between ``+++`` lines."""


def front_matter(markdown: str) -> tuple[dict[str, Any], str]:
    """(fields, the rest) of Markdown that opens with front matter, else ({}, markdown): a block that is not a
    mapping in its language (a thematic break, then prose) is the document's own text."""
    match = _FRONT_MATTER.match(markdown)
    if match is None or match["close"] not in (match["fence"], "..." if match["fence"] == "---" else ""):
        return {}, markdown
    try:
        fields = yaml.safe_load(match["body"]) if match["fence"] == "---" else tomllib.loads(match["body"])
    except (yaml.YAMLError, tomllib.TOMLDecodeError, RecursionError):
        return {}, markdown
    return (fields, markdown[match.end() :]) if isinstance(fields, dict) else ({}, markdown)
