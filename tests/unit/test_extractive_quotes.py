"""What the extractive answer quotes of tables and code, read from files as the loaders and the chunker write them."""

from __future__ import annotations

import io

from openpyxl import Workbook

from generation_svc.backends import Passage
from generation_svc.extractive import choose_sentences, code_within, compose, count_pieces
from generation_svc.grounding import check, claims
from likeopt.runtime.loaders import LoadedDocument, load_content
from retrieval_svc.chunking import chunk_text


def passage(name: str, data: bytes) -> Passage:
    """The first chunk of a file as retrieval_svc would store it, as passage 1."""
    (document,) = load_content(name, data, name)
    assert isinstance(document, LoadedDocument)
    chunk = chunk_text(document.text, lambda text: len(text.split()), 256, 1)[0]
    return Passage(1, name, f"{name}#0", document.title, chunk)


def workbook(rows: list[list[object]]) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


STOCK = [["Item", "Quantity", "Warehouse"], ["Glimmerbolt", 42, "Tarnhollow"], ["Sprocketwheel", 7, "Ostmark"]]


def test_a_spreadsheet_row_is_quoted_with_all_its_cells_and_is_supported() -> None:
    """Each cell is a short "column: value" line, which was taken for a heading: no answer at all."""
    stock = passage("stock.xlsx", workbook(STOCK))
    answer, _ = compose(choose_sentences("How many Glimmerbolt are in stock?", [stock]))
    assert answer == "Item: Glimmerbolt; Quantity: 42; Warehouse: Tarnhollow. [1]"
    assert check(answer, [stock]).support == 1.0


def test_a_tsv_row_answers_with_its_value() -> None:
    planets = passage("planets.tsv", b"planet\tmoons\nZephyrion\t14\nKalthos\t2\n")
    chosen = choose_sentences("How many moons does Zephyrion have?", [planets])
    assert chosen[0] == ("planet: Zephyrion; moons: 14", 1)


def test_headings_are_still_not_quoted() -> None:
    notes = passage("pump.md", b"# Pump notes\n\n## Pressure\n\nThe pump runs at 40 bar of pressure.\n")
    assert choose_sentences("What pressure does the pump run at?", [notes]) == [
        ("The pump runs at 40 bar of pressure.", 1)
    ]


EMAIL = b"""Subject: Pump maintenance

The Corvallis pump station needs its impeller
replaced before the winter storms arrive.

```
sudo systemctl restart pumpd
    --force
```

Thanks, Mira
"""


def test_a_command_in_a_text_file_is_quoted_whole_as_written_and_fenced() -> None:
    """Its lines were quoted as sentences: "sudo systemctl restart pumpd. [1]", the --force line dropped."""
    email = passage("email.txt", EMAIL)
    answer, cut = compose(choose_sentences("How do I restart pumpd?", [email]))
    assert answer == "```\nsudo systemctl restart pumpd\n    --force\n```\n[1]" and not cut
    assert check(answer, [email]).support == 1.0


PYTHON = b"""# Zanfirov Toolkit

The Zanfirov toolkit calibrates quarzelite sensors in under four minutes.

```python
def calibrate(sensor):
    if sensor.ready:
        return sensor.offset * 2
    return None
```
"""
CALIBRATE = "def calibrate(sensor):\n    if sensor.ready:\n        return sensor.offset * 2\n    return None"


def test_markdown_code_is_one_quote_never_given_a_full_stop() -> None:
    """Its lines were quoted one by one as sentences: "def calibrate(sensor). [1] if sensor.ready. [1]"."""
    guide = passage("guide.md", PYTHON)
    answer, _ = compose(choose_sentences("How does calibrate check that the sensor is ready?", [guide]))
    assert answer.startswith(f"```\n{CALIBRATE}\n```\n[1]\n\nThe Zanfirov toolkit")
    assert "calibrate(sensor)." not in answer and "ready." not in answer


def test_code_after_a_sentence_sits_on_lines_of_its_own_and_is_checked_as_one_claim() -> None:
    guide = passage("guide.md", PYTHON)
    other = Passage(2, "b.md", "b.md#0", "B", "The toolkit calibrates sensors with a magnet.")
    answer, _ = compose([("The toolkit calibrates sensors with a magnet.", 2), (f"```\n{CALIBRATE}\n```", 1)])
    assert answer == f"The toolkit calibrates sensors with a magnet. [2]\n\n```\n{CALIBRATE}\n```\n[1]"
    found = [(claim.text, claim.cited) for claim in claims(answer, 2)]
    assert found == [("The toolkit calibrates sensors with a magnet.", [2]), (" ".join(CALIBRATE.split()), [1])]
    assert check(answer, [guide, other]).support == 1.0


def test_a_limit_cuts_code_inside_its_fences_and_keeps_its_marker() -> None:
    chosen = [(f"```\n{CALIBRATE}\n```", 1)]
    full = count_pieces(compose(chosen)[0])
    for limit in range(1, full):
        text, cut = compose(chosen, limit)
        assert cut and count_pieces(text) <= limit
        if text.startswith("```"):
            assert text.endswith("\n```\n[1]") and CALIBRATE.startswith(text[4:-8])
    assert compose(chosen, 15) == ("```\ndef calibrate(sensor):\n```\n[1]", True)


def test_long_code_is_quoted_as_whole_lines_from_the_one_that_matches() -> None:
    lines = [f"step_{i} = run({i})" for i in range(60)] + ["restart_pumpd(force=True)", "done = True"]
    code = "\n".join(lines)
    kept = code_within(code, {"restart", "pumpd"}, 200)
    assert kept.startswith("restart_pumpd(force=True)\n") and kept.endswith("done = True")
    assert code_within(code, {"restart"}, len(code)) == code


DIAGRAM_TAIL = """  | 4. Redis L2 (50 ms deadline) |-----------------------------------------> answer
  +-----+------------------------+
        | miss
  BM25 + dense search and fusion; the result is kept by both near caches at once
  and written to cache_svc (L1 and Redis) in the background"""


def test_a_diagram_is_not_quoted_as_code_even_where_its_words_outnumber_its_marks() -> None:
    """A chunk of docs/caching.md held the diagram's last box and its line of text: all of it was quoted for "What
    is the deadline of a Redis call?". Its lines are read one by one, as before, and those that draw left out."""
    caching = Passage(1, "docs/caching.md", "docs/caching.md#4", "Caching", f"{DIAGRAM_TAIL}\n\nThe L1 cache is small.")
    chosen = choose_sentences("What is the deadline of a Redis call?", [caching])
    assert chosen == [("and written to cache_svc (L1 and Redis) in the background", 1)]
