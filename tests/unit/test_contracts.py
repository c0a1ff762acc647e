"""The contracts stay true: generated stubs match the protos; every proto field is documented."""

from __future__ import annotations

import re
from pathlib import Path

from likeopt.ops.protos import PROTO_DIR, ROOT, generate


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
