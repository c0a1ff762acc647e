"""Loaders: Jupyter notebooks (.ipynb), built here as Jupyter writes nbformat 4 (one JSON object, each cell's source a
list of lines, images base64 in their outputs)."""

from __future__ import annotations

import base64
import json

from likeopt.runtime.loaders import Skipped, load_content
from likeopt.runtime.loaders.notebook import MAX_OUTPUT_CHARS, NOT_A_NOTEBOOK
from tests.unit.test_loaders import chunked, one

TB = ["\u001b[0;31mZeroDivisionError\u001b[0m Traceback (most recent call last)"]
"""An error's traceback as IPython saves it: terminal colour codes around the code the cell already shows."""
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode()


def lines(text: str) -> list[str]:
    """A cell's source as Jupyter saves it: its lines, each but the last with its line break."""
    return text.splitlines(keepends=True)


def notebook(cells: list[dict], language: str = "python") -> bytes:
    metadata = {"kernelspec": {"name": "ir", "display_name": "R", "language": language}}
    return json.dumps({"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}, indent=1).encode()


def markdown(text: str) -> dict:
    return {"cell_type": "markdown", "id": "m", "metadata": {}, "source": lines(text)}


def code(text: str, *outputs: dict) -> dict:
    cell = {"cell_type": "code", "execution_count": 1, "id": "c", "metadata": {}, "outputs": list(outputs)}
    return {**cell, "source": lines(text)}


def result(**data: object) -> dict:
    return {"output_type": "execute_result", "execution_count": 1, "data": data, "metadata": {}}


SURVEY = notebook(
    [
        markdown("# Heron survey\n\nCounts from the **Skerryvane** colony."),
        code(
            "counts = load('herons.csv')\nfor year in counts:\n    print(year)",
            {"output_type": "stream", "name": "stdout", "text": ["2023\n", "2024\n"]},
        ),
        code("plot(counts)", {"output_type": "display_data", "data": {"image/png": PNG, "text/plain": ["<Figure>"]}}),
        code("counts.mean()", result(**{"text/plain": ["41.5"], "text/html": ["<b>41.5</b>"]})),
        code(
            "1/0", {"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": TB}
        ),
        {"cell_type": "raw", "id": "r", "metadata": {}, "source": ["Raw words for a converter."]},
    ],
    language="R",
)


def test_a_notebook_is_its_cells_in_order_with_their_outputs_text_and_its_kernel_s_language() -> None:
    """It was refused as an unsupported type; Markdown reads as prose, code keeps its lines, an output's text
    follows its cell, and an image (base64 in the file) is left out: its text/plain stands for it."""
    doc = one("analysis/survey.ipynb", SURVEY)
    assert doc.title == "Heron survey"
    assert doc.metadata == {"language": "r", "source": "survey.ipynb", "file_type": "notebook"}
    assert chunked(doc.text) == (
        "Heron survey\n\nCounts from the Skerryvane colony.\n\n"
        "counts = load('herons.csv')\nfor year in counts:\n    print(year)\n\n2023\n2024\n\n"
        "plot(counts)\n\n<Figure>\n\ncounts.mean()\n\n41.5\n\n1/0\n\nZeroDivisionError: division by zero\n\n"
        "Raw words for a converter."
    )
    assert PNG[:20] not in doc.text and "<b>" not in doc.text and "\u001b" not in doc.text


def test_a_long_output_is_cut_and_what_is_no_notebook_is_refused_with_why() -> None:
    """A training loop's printout of megabytes is not a reader's text: each output is cut at MAX_OUTPUT_CHARS, the
    code and the rest kept. A JSON file named .ipynb without cells, or one that is no JSON, says so."""
    printed = "".join(f"epoch {n} loss 0.{n:04d}\n" for n in range(100_000))
    doc = one("train.ipynb", notebook([code("train()", {"output_type": "stream", "name": "stdout", "text": printed})]))
    assert "train()" in doc.text and "epoch 0 loss" in doc.text and "epoch 99999" not in doc.text
    assert len(doc.text) < MAX_OUTPUT_CHARS + 200 and doc.text.rstrip("`\n").endswith("[… output cut]")
    for data, reason in ((b'{"worksheets": []}', NOT_A_NOTEBOOK), (b"{", "invalid JSON")):
        [refused] = load_content("old.ipynb", data, doc_id="old.ipynb")
        assert isinstance(refused, Skipped) and refused.reason.startswith(reason), refused
