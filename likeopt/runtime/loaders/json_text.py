"""Any JSON file that does not hold documents (a package.json, a tsconfig.json, an API's reply saved to disk) as one
document: its keys and values as ``path: value`` lines, each top-level entry a block, so a search for a value finds
the file and a citation shows what the value is of."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from likeopt.runtime.contract import MAX_DOCUMENT_CHARS
from likeopt.runtime.loaders.documents import Unreadable, is_scalar, scalar_text
from likeopt.runtime.loaders.plain_text import decode_text
from likeopt.runtime.loaders.tidy import BLOCK_BREAK, given_title

TOO_MUCH_JSON = f"its keys and values, as text, are over the {MAX_DOCUMENT_CHARS} characters a document holds"
"""Why a JSON file is not read as one document: written out with its keys' paths, it could be many times its size
(a deep object's path on every value), so the text is counted as it is written and stopped past the bound."""


def parsed_json(data: bytes) -> object:
    """A JSON file's value, its bytes first checked as any text file's are (UTF-8 or a byte-order mark's encoding,
    no NUL); UnicodeDecodeError when they are not text, Unreadable when they are no JSON, saying where. JSON with
    comments and trailing commas (a tsconfig.json, VS Code's settings.json, a devcontainer.json, .jsonc) is read as
    the JSON it holds (without_comments)."""
    text = decode_text(data)
    try:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return json.loads(without_comments(text))  # where a real error lies is said at its own line and column
    except json.JSONDecodeError as error:
        raise Unreadable(f"invalid JSON: {error}") from None
    except RecursionError:
        raise Unreadable("invalid JSON: nested deeper than a parser here reads") from None


_STRING = r'"(?:[^"\\\n]|\\.)*"'
"""A JSON string, escapes and all: what a comment's or comma's pattern steps over, so "http://x" and "a,]" stay."""
_COMMENT = re.compile(rf"({_STRING})|//[^\n]*|/\*(?:.*?\*/|(?P<unclosed>.*))", re.DOTALL)
"""A string, kept, or a comment; an unclosed ``/*`` runs to the end (and is refused), scanned once."""
_TRAILING_COMMA = re.compile(rf"({_STRING})|,(?=\s*[\]}}])")


def without_comments(text: str) -> str:
    """JSON with comments (JSONC, as TypeScript and VS Code read their settings) as plain JSON: ``//`` and ``/* */``
    comments and a comma before a closing bracket blanked, strings left as they are. Each is replaced by as many
    spaces (a comment's line breaks kept), so a syntax error the parser then finds is at its line and column in the
    file. The json5 package would read it too but is pure Python, many times slower than json on a file of 50 MiB,
    and reads JSON5's other forms (unquoted keys, single quotes) no JSONC file has."""
    blanked = _COMMENT.sub(_blank_comment, text)
    return _TRAILING_COMMA.sub(lambda m: " " if m[1] is None else m[1], blanked)


def _blank_comment(match: re.Match[str]) -> str:
    """A string as it is, a comment as spaces and its line breaks; Unreadable for a ``/*`` never closed, saying
    where it opens."""
    if match[1] is not None:
        return match[1]
    if match["unclosed"] is not None:
        line = match.string.count("\n", 0, match.start()) + 1
        column = match.start() - match.string.rfind("\n", 0, match.start())
        raise Unreadable(f"invalid JSON: a /* comment is never closed: line {line} column {column}")
    return re.sub(r"[^\n]", " ", match[0])


def json_document(data: bytes) -> tuple[str, str, dict[str, str]]:
    """(title, text, metadata) of a JSON file read as one document: titled by its own "title" or "name" when it has
    one (a package.json's name), else by the file's name."""
    value = parsed_json(data)
    title = given_title(value.get("title") or value.get("name")) if isinstance(value, dict) else ""
    return title, json_to_text(value), {}


def json_to_text(value: object) -> str:
    """A JSON value's scalars as ``path: value`` lines (``dependencies.react: ^18.2.0``, ``items[0].id: 7``), a list
    of scalars on one line, comma-separated; each top-level entry a block. Raises Unreadable past
    MAX_DOCUMENT_CHARS."""
    if not isinstance(value, dict | list):
        return scalar_text(value)
    entries = value.items() if isinstance(value, dict) else ((f"[{i}]", item) for i, item in enumerate(value))
    blocks, size = [], 0
    for key, item in entries:
        lines = []
        for line in _lines(str(key), item):
            size += len(line) + len(BLOCK_BREAK)
            if size > MAX_DOCUMENT_CHARS:
                raise Unreadable(TOO_MUCH_JSON)
            lines.append(line)
        blocks.extend(["\n".join(lines)] if lines else [])
    return BLOCK_BREAK.join(blocks)


def _lines(path: str, value: object) -> Iterator[str]:
    """The ``path: value`` lines under path, in the order written, without recursion (JSON nests as deep as its
    parser allows, about a thousand levels); an empty object or list gives none."""
    stack: list[tuple[str, object]] = [(path, value)]
    while stack:
        here, item = stack.pop()
        if isinstance(item, dict):
            stack.extend((f"{here}.{key}", child) for key, child in reversed(item.items()))
        elif isinstance(item, list) and item and all(child is None or is_scalar(child) for child in item):
            yield f"{here}: {', '.join(map(scalar_text, item))}"
        elif isinstance(item, list):
            stack.extend((f"{here}[{i}]", child) for i, child in reversed(list(enumerate(item))))
        else:
            yield f"{here}: {scalar_text(item)}"
