"""Loaders: source code, configuration, logs and prose markup from a repository or a shared drive are read as text,
code keeping its lines and indentation."""

from __future__ import annotations

import pytest

from likeopt.runtime.loaders import Skipped, load_content
from tests.unit.test_loaders import chunked, one

SCRIPT = b'def migrate(bird):\n    """Move a tired bird."""\n    if bird.tired:\n        rest(bird)\n'
CONFIG = b"server:\n  port: 8080\n  host: 127.0.0.1\nname: demo\n"


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("tools/migrate.py", SCRIPT, "python"),
        ("deploy/values.yml", CONFIG, "yaml"),
        ("deploy/values.yaml", CONFIG, "yaml"),
        ("src/App.TSX", b"export const port = 8080;\nexport const host = 'localhost';\n", "typescript"),
        ("pom.xml", b"<project>\n  <artifactId>cache</artifactId>\n  <version>1.2</version>\n</project>\n", "xml"),
        ("server.log", b"10:00 INFO started\n10:01 WARN cache cold\n", "log"),
        ("setup.cfg", b"[tool]\nname = demo\nport = 8080\n", "config"),
    ],
)
def test_code_and_configuration_keep_their_lines_and_say_their_language(name: str, data: bytes, kind: str) -> None:
    """They were refused as unsupported types; read as plain text, lines of one indentation would be joined into a
    sentence ("port: 8080 host: 127.0.0.1"). XML is read as written, its element names kept: they say what a
    configuration's values are."""
    doc = one(name, data)
    assert chunked(doc.text) == data.decode().rstrip("\n")
    assert doc.metadata == {"source": name.rsplit("/", 1)[-1], "file_type": kind}


def test_prose_markup_is_read_as_prose_its_wrapped_lines_joined() -> None:
    doc = one("paper/intro.tex", b"\\section{Intro}\n\nGlaciers retreat\nfaster each year.\n")
    assert chunked(doc.text) == "\\section{Intro}\n\nGlaciers retreat faster each year."
    assert doc.metadata["file_type"] == "latex" and one("a.adoc", b"= Guide\n").metadata["file_type"] == "asciidoc"


def test_a_binary_file_under_a_code_name_is_refused_as_binary() -> None:
    """.ts is TypeScript in a repository and a video on a drive: a video is no text, and says so."""
    [video] = load_content("clip.ts", b"G@\x00\x10\x00\x00\xb0\r\x00\x01\xc1\x00\x00", doc_id="clip.ts")
    assert isinstance(video, Skipped) and video.reason.startswith("contains NUL characters")
