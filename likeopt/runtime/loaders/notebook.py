"""Jupyter notebooks (.ipynb, nbformat 4) as the text a reader of one sees: markdown cells read as Markdown, code
cells as code, in order, each code cell followed by its outputs' text, cut to a bound (a loop's printout can be
megabytes), while images and other binary outputs (base64 in the file) stay out."""

from __future__ import annotations

from collections.abc import Iterator

from likeopt.runtime.loaders.documents import Unreadable
from likeopt.runtime.loaders.json_text import parsed_json
from likeopt.runtime.loaders.markdown import markdown_to_text
from likeopt.runtime.loaders.tidy import BLOCK_BREAK
from likeopt.runtime.text_layout import fenced

MAX_OUTPUT_CHARS = 2_000
"""How much of one output's text is read: enough for a result or an error, not a training loop's every line."""
OUTPUT_TEXT_TYPES = ("text/markdown", "text/plain")
"""The text an execute_result or display_data output is read as, in order of preference; its images, HTML and
widgets are not text a reader searches."""
NOT_A_NOTEBOOK = "not a Jupyter notebook of nbformat 4 (no list of cells): open and save it in Jupyter to upgrade it"


def notebook_document(data: bytes) -> tuple[str, str, dict[str, str]]:
    """(title, text, metadata) of a notebook: titled by its first markdown heading, its kernel's language as the
    metadata ``language`` (python, r, julia) when the notebook names it."""
    notebook = parsed_json(data)
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(notebook, dict) or not isinstance(cells, list):
        raise Unreadable(NOT_A_NOTEBOOK)
    title, blocks = "", list[str]()
    for cell in (cell for cell in cells if isinstance(cell, dict)):
        kind, source = cell.get("cell_type"), _joined(cell.get("source"))
        if kind == "markdown":
            heading, text = markdown_to_text(source)
            title = title or heading
            blocks.append(text)
        elif kind == "code":
            blocks += [fenced(source), *(fenced(text) for text in _outputs_text(cell.get("outputs")))]
        else:  # raw: written as it is, for a converter
            blocks.append(source)
    language = _language(notebook.get("metadata"))
    text = BLOCK_BREAK.join(block for block in blocks if block.strip())
    return title, text, {"language": language} if language else {}


def _joined(source: object) -> str:
    """A cell's or output's text: nbformat writes it as one string or as a list of lines."""
    if isinstance(source, list):
        return "".join(part for part in source if isinstance(part, str))
    return source if isinstance(source, str) else ""


def _outputs_text(outputs: object) -> Iterator[str]:
    """Each output's text, MAX_OUTPUT_CHARS at most: a stream's, a result's text (OUTPUT_TEXT_TYPES), an error's
    name and message (its traceback is terminal colour codes around the code shown above it)."""
    for output in outputs if isinstance(outputs, list) else []:
        if not isinstance(output, dict):
            continue
        kind = output.get("output_type")
        if kind == "stream":
            text = _joined(output.get("text"))
        elif kind == "error":
            text = f"{output.get('ename', '')}: {output.get('evalue', '')}"
        else:
            data = output.get("data") if isinstance(output.get("data"), dict) else {}
            text = next((_joined(data[media]) for media in OUTPUT_TEXT_TYPES if media in data), "")
        yield text if len(text) <= MAX_OUTPUT_CHARS else f"{text[:MAX_OUTPUT_CHARS]}\n[… output cut]"


def _language(metadata: object) -> str:
    """The notebook's language as its metadata names it: the kernel's, else language_info's; "" when neither."""
    if not isinstance(metadata, dict):
        return ""
    for section in ("kernelspec", "language_info"):
        named = metadata.get(section)
        key = "language" if section == "kernelspec" else "name"
        if isinstance(named, dict) and isinstance(named.get(key), str):
            return named[key].lower()
    return ""
