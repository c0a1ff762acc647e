"""Turn files into documents: plain text, Markdown, HTML, PDF, JSON Lines and BEIR folders.

Each loader yields ``(id, title, text, metadata)`` records; what cannot be read is
reported as skipped with the reason, never silently dropped.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | JSONL_SUFFIXES | {".pdf"}
MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass
class LoadedDocument:
    id: str
    title: str
    text: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Skipped:
    source: str
    reason: str


class _TextExtractor(HTMLParser):
    """Visible text of an HTML page, and its <title>."""

    SKIP = frozenset({"script", "style", "noscript", "template", "svg"})
    BLOCK = frozenset({"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skipping = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag == "title":
            self._in_title = True
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skipping:
            self._skipping -= 1
        elif tag == "title":
            self._in_title = False
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> tuple[str, str]:
    """(title, text) of an HTML document."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = re.sub(r"[ \t]+", " ", "".join(parser.parts))
    text = re.sub(r"\n\s*\n+", "\n\n", text).strip()
    return parser.title.strip(), text


def markdown_title(text: str) -> str:
    """The first Markdown heading, if any."""
    match = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)
    return match.group(1).strip() if match else ""


def pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return "\n\n".join((page.extract_text() or "") for page in reader.pages).strip()


def load_content(name: str, data: bytes, doc_id: str) -> Iterator[LoadedDocument | Skipped]:
    """The documents in one file's bytes (one, or one per line for JSON Lines); name gives the type."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED:
        yield Skipped(name, f"unsupported file type {suffix or '(none)'}")
        return
    if len(data) > MAX_FILE_BYTES:
        yield Skipped(name, f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        return
    if suffix in JSONL_SUFFIXES:
        yield from load_jsonl(name, data.decode("utf-8", errors="replace").splitlines())
        return
    try:
        if suffix == ".pdf":
            text, title = pdf_text(data), ""
        else:
            raw = data.decode("utf-8")
            title, text = html_to_text(raw) if suffix in HTML_SUFFIXES else (markdown_title(raw), raw)
    except UnicodeDecodeError:
        yield Skipped(name, "not valid UTF-8 text")
        return
    except Exception as exc:  # a malformed PDF can raise anything from deep inside the parser
        yield Skipped(name, f"unreadable: {type(exc).__name__}: {exc}")
        return
    if "\x00" in text:
        yield Skipped(name, "contains NUL characters: not a text file")
        return
    if not text.strip():
        yield Skipped(name, "no text found")
        return
    yield LoadedDocument(doc_id, title or Path(name).stem, text, {"source": Path(name).name})


def load_file(path: Path, doc_id: str) -> Iterator[LoadedDocument | Skipped]:
    """The documents in one file on disk."""
    if path.stat().st_size > MAX_FILE_BYTES:
        yield Skipped(str(path), f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        return
    yield from load_content(str(path), path.read_bytes(), doc_id)


def load_jsonl(source: str, lines: Iterable[str]) -> Iterator[LoadedDocument | Skipped]:
    """One document per line: ``{"_id"|"id", "title", "text", "metadata"}`` (BEIR's corpus format)."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            yield Skipped(where, f"invalid JSON: {exc}")
            continue
        if not isinstance(record, dict):
            yield Skipped(where, "line is not a JSON object")
            continue
        doc_id = str(record.get("_id") or record.get("id") or "")
        text = record.get("text")
        if not doc_id or not isinstance(text, str) or not text.strip():
            yield Skipped(where, "needs an id and a non-empty text")
            continue
        metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
        yield LoadedDocument(
            doc_id,
            str(record.get("title") or ""),
            text,
            {str(k): str(v) for k, v in metadata.items() if isinstance(v, str | int | float | bool)},
        )


def load_paths(paths: list[str]) -> Iterator[LoadedDocument | Skipped]:
    """Documents from files and folders; a folder with corpus.jsonl is read as a BEIR dataset."""
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            yield Skipped(raw, "no such file or folder")
        elif root.is_file():
            yield from load_file(root, root.name)
        elif (corpus := root / "corpus.jsonl").is_file():
            with corpus.open(encoding="utf-8", errors="replace") as lines:
                yield from load_jsonl(str(corpus), lines)
        else:
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                if any(part.startswith(".") for part in path.relative_to(root).parts):
                    continue
                yield from load_file(path, path.relative_to(root).as_posix())
