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


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("app/Dockerfile", b"FROM python:3.12-slim\nRUN pip install --no-cache-dir gunicorn\n", "dockerfile"),
        ("Containerfile", b'FROM alpine:3.20\nCMD ["sh"]\n', "dockerfile"),
        ("GNUmakefile", b"test:\n\tpytest -q\n", "makefile"),
        ("Makefile", b"build:\n\tgo build ./...\n", "makefile"),
        ("Jenkinsfile", b"pipeline {\n  agent any\n}\n", "groovy"),
        ("Procfile", b"web: gunicorn app:app\nworker: celery -A app worker\n", "config"),
        (".gitignore", b"*.pyc\n/build/\n", "config"),
        (".editorconfig", b"[*]\nindent_style = space\n", "config"),
        ("svc/.env.example", b"DATABASE_URL=\nAPI_KEY=\n", "config"),
    ],
)
def test_files_every_repository_keeps_are_read_by_their_whole_name_as_code(name: str, data: bytes, kind: str) -> None:
    """They have no suffix of their type and were refused as "unsupported file type (none)"; their lines are their
    meaning, as a script's are, and their name is their title (.env.example, not ".env")."""
    doc = one(name, data)
    assert chunked(doc.text) == data.decode().rstrip("\n")
    base = name.rsplit("/", 1)[-1]
    assert doc.title == base and doc.metadata == {"source": base, "file_type": kind}


def test_licences_readmes_and_changelogs_without_a_suffix_are_read_as_prose() -> None:
    doc = one("LICENSE", b"MIT License\n\nPermission is hereby granted, free of charge,\nto any person.\n")
    assert chunked(doc.text) == "MIT License\n\nPermission is hereby granted, free of charge, to any person."
    assert doc.metadata["file_type"] == "text"
    assert [one(name, b"Notes.\n").metadata["file_type"] for name in ("readme", "CHANGELOG", "NOTICE")] == ["text"] * 3


def test_a_named_file_gets_the_checks_any_text_file_gets_and_other_names_stay_refused() -> None:
    """A name is no proof of text: a binary Makefile is refused as binary, one in a legacy code page as such; a .env
    (secrets, not an example of them) and a name not on the list stay unsupported."""
    [binary] = load_content("Makefile", b"\x7fELF\x02\x01\x00\x00", doc_id="Makefile")
    assert isinstance(binary, Skipped) and binary.reason.startswith("contains NUL characters")
    [latin1] = load_content("README", "caf\xe9".encode("latin-1"), doc_id="README")
    assert isinstance(latin1, Skipped) and latin1.reason.startswith("not valid UTF-8")
    for name in (".env", ".env.local", "Gemfile.lock", "notes.dev", "notes"):
        [refused] = load_content(name, b"SECRET=1\n", doc_id=name)
        assert isinstance(refused, Skipped) and refused.reason.startswith("unsupported file type")


@pytest.mark.parametrize(
    ("name", "kind", "title"),
    [
        ("deploy/Dockerfile.dev", "dockerfile", "Dockerfile.dev"),
        ("DOCKERFILE.PROD", "dockerfile", "DOCKERFILE.PROD"),
        ("Containerfile.test", "dockerfile", "Containerfile.test"),
        ("services/api.Dockerfile", "dockerfile", "api"),
        ("Makefile.am", "makefile", "Makefile.am"),
        ("GNUmakefile.in", "makefile", "GNUmakefile.in"),
        ("build/rules.mk", "makefile", "rules"),
        ("Jenkinsfile.release", "groovy", "Jenkinsfile.release"),
        ("Procfile.dev", "config", "Procfile.dev"),
        ("docker-compose.override.yml", "yaml", "docker-compose.override"),
    ],
)
def test_variants_of_a_dockerfile_or_makefile_are_read_as_the_file_they_vary(name: str, kind: str, title: str) -> None:
    """Dockerfile.dev, api.Dockerfile and Makefile.am were refused as "unsupported file type .dev" where a plain
    Dockerfile is read: a variant is read by the name it varies (NAMED_VARIANTS) or by a suffix naming that type."""
    data = b"FROM python:3.12-slim\nRUN make -C /src install\n"
    doc = one(name, data)
    assert chunked(doc.text) == data.decode().rstrip("\n")
    assert doc.title == title and doc.metadata == {"source": name.rsplit("/", 1)[-1], "file_type": kind}


def test_a_variant_whose_last_suffix_is_a_type_of_its_own_is_read_as_that_type() -> None:
    doc = one("Dockerfile.md", b"# How we build\n\nThe image is\nbuilt nightly.\n")
    assert doc.metadata["file_type"] == "markdown" and doc.title == "How we build"
