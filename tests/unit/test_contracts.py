"""The contracts stay true: generated stubs match the protos; every proto field is documented, its stated bounds
the checked ones."""

from __future__ import annotations

import re
from pathlib import Path

from likeopt.ops.protos import PROTO_DIR, ROOT, generate
from likeopt.runtime.contract import ANSWER_TOP_K, LIST_LIMIT, SEARCH_TOP_K


def test_committed_stubs_match_the_protos(tmp_path: Path) -> None:
    generate(tmp_path)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*"))
    assert generated, "protoc produced nothing"
    stale = [str(p) for p in generated if (ROOT / p).read_bytes() != (tmp_path / p).read_bytes()]
    assert not stale, f"stale stubs, run `make protos`: {stale}"


def test_every_proto_field_and_rpc_has_a_comment() -> None:
    declaration = re.compile(r"^\s*(rpc\s+\w+|(optional\s+|repeated\s+)?[\w.<>, ]+\s+\w+\s*=\s*\d+;)")
    missing = []
    for proto in PROTO_DIR.rglob("*.proto"):
        lines = proto.read_text().splitlines()
        for number, line in enumerate(lines):
            if declaration.match(line) and not lines[number - 1].strip().startswith("//"):
                missing.append(f"{proto.name}:{number + 1}: {line.strip()}")
    assert not missing, "undocumented declarations:\n" + "\n".join(missing)


RANGES = {
    ("SearchRequest", "top_k"): SEARCH_TOP_K,
    ("AnswerRequest", "top_k"): ANSWER_TOP_K,
    ("ListDocumentsRequest", "limit"): LIST_LIMIT,
    ("ListFeedbackRequest", "limit"): LIST_LIMIT,
}
"""Every proto field whose comment states bounds, with the Range the services check it against."""


def documented_ranges() -> dict[tuple[str, str], tuple[int, int, int]]:
    """(message, field) -> (low, high, default) read from comments like "1..20; 0 means the default (5)"."""
    bounds = re.compile(r"(\d[\d,]*)\.\.(\d[\d,]*);? 0 means (?:the default )?\(?(\d[\d,]*)\)?")
    field = re.compile(r"^\s*[\w.]+\s+(\w+)\s*=\s*\d+;")
    found: dict[tuple[str, str], tuple[int, int, int]] = {}
    for proto in PROTO_DIR.rglob("*.proto"):
        message, comment = "", ""
        for line in proto.read_text().splitlines():
            if opened := re.match(r"^message (\w+)", line):
                message = opened[1]
            if line.strip().startswith("//"):
                comment += line
                continue
            if (declared := field.match(line)) and (stated := bounds.search(comment)):
                low, high, default = (int(number.replace(",", "")) for number in stated.groups())
                found[(message, declared[1])] = (low, high, default)
            comment = ""
    return found


def test_the_ranges_proto_comments_state_are_the_ones_checked() -> None:
    """A bound changed in contract.py but not in the proto would mislead every gRPC client that reads it."""
    checked = {key: (limit.low, limit.high, limit.default) for key, limit in RANGES.items()}
    assert documented_ranges() == checked
