"""``likeopt ingest PATH…``: which files of the paths given are read, under which ids, and what is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from likeopt.runtime.loaders import NOT_UTF8, LoadedDocument, Skipped, earlier_ids, load_content, load_paths


def ids(paths: list[str]) -> list[str]:
    return [item.id for item in load_paths(paths) if isinstance(item, LoadedDocument)]


@pytest.fixture
def projects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two folders each holding a README.md, the working directory their parent."""
    for name in ("projA", "projB"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "README.md").write_text(f"# {name}\n\nAbout {name}.\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_files_of_the_same_name_in_two_folders_get_two_ids(projects: Path) -> None:
    assert ids(["projA"]) + ids(["projB"]) == ["projA/README.md", "projB/README.md"]
    assert ids(["projA/README.md"]) == ids(["./projA"]) == ids([str(projects / "projA")]) == ["projA/README.md"]


def test_ids_start_from_the_working_directory_else_from_the_parent_of_the_path_given(
    projects: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(projects / "projA")
    assert ids(["."]) == ids(["README.md"]) == ["README.md"]
    assert ids(["../projB"]) == ids([str(projects / "projB")]) == ["projB/README.md"]
    assert ids([str(projects / "projB" / "README.md")]) == ["README.md"]


def test_the_same_file_given_twice_in_one_run_keeps_one_id(projects: Path) -> None:
    """retrieval_svc then reports the second as a repeated id (REPEATED_ID), as it does for any upload."""
    assert ids(["projA", "projA/README.md"]) == ["projA/README.md", "projA/README.md"]


def test_the_ids_releases_before_paths_gave_are_named_where_they_differ(
    projects: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file given was its bare name and a folder's files their path inside it (README.md, 2026-12-05)."""
    (projects / "projA" / "docs").mkdir()
    (projects / "projA" / "docs" / "guide.md").write_text("# Guide\n\nHow to.\n")
    assert earlier_ids(["projA"]) == {"projA/README.md": "README.md", "projA/docs/guide.md": "docs/guide.md"}
    assert earlier_ids(["projB/README.md"]) == {"projB/README.md": "README.md"}
    monkeypatch.chdir(projects / "projA")
    assert earlier_ids(["."]) == earlier_ids(["README.md"]) == {}  # the same ids then as now
    (projects / "beir").mkdir()
    (projects / "beir" / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n')
    assert earlier_ids([str(projects / "beir"), str(projects / "missing")]) == {}


def test_a_beir_folder_s_records_keep_their_own_ids(projects: Path) -> None:
    (projects / "beir").mkdir()
    (projects / "beir" / "corpus.jsonl").write_text('{"_id": "d1", "text": "First."}\n')
    assert ids(["beir"]) == ["d1"]
    assert isinstance(next(load_paths(["missing"])), Skipped)


def test_json_lines_that_are_not_utf8_are_skipped_with_the_reason_and_the_others_load(tmp_path: Path) -> None:
    """As a .json, .txt or .md file with the same bytes is: never stored with U+FFFD for the letters."""
    data = '{"_id": "d1", "text": "Caf\xe9"}\n'.encode("latin-1") + '{"_id": "d2", "text": "Café"}\n'.encode()
    for items in (
        list(load_content("upload.jsonl", data, doc_id="upload.jsonl")),
        list(load_beir_folder(tmp_path, data)),
    ):
        skipped = [(Path(item.source).name, item.reason) for item in items if isinstance(item, Skipped)]
        assert skipped in ([("upload.jsonl:1", NOT_UTF8)], [("corpus.jsonl:1", NOT_UTF8)])
        assert [(d.id, d.text) for d in items if isinstance(d, LoadedDocument)] == [("d2", "Café")]


def load_beir_folder(folder: Path, corpus: bytes) -> list[LoadedDocument | Skipped]:
    (folder / "corpus.jsonl").write_bytes(corpus)
    return list(load_paths([str(folder)]))


def test_hidden_files_broken_links_and_files_beside_a_beir_corpus_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README promises a report of everything not read, with the reason."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f" / ".hidden").mkdir(parents=True)
    (tmp_path / "f" / ".hidden" / "h.txt").write_text("hidden")
    (tmp_path / "f" / ".dotfile.txt").write_text("dot")
    (tmp_path / "f" / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    (tmp_path / "f" / "kept.txt").write_text("Kept.")
    items = list(load_paths(["f"]))
    assert [d.id for d in items if isinstance(d, LoadedDocument)] == ["f/kept.txt"]
    reasons = {Path(s.source).name: s.reason for s in items if isinstance(s, Skipped)}
    assert reasons.keys() == {".hidden", ".dotfile.txt", "dangling.txt"}
    assert reasons[".dotfile.txt"] == "hidden file, skipped" and "broken symbolic link" in reasons["dangling.txt"]

    (tmp_path / "beir" / "sub").mkdir(parents=True)
    (tmp_path / "beir" / "corpus.jsonl").write_text('{"_id": "d1", "text": "First."}\n')
    (tmp_path / "beir" / "notes.txt").write_text("Notes.")
    (tmp_path / "beir" / "sub" / "more.md").write_text("More.")
    items = list(load_paths(["beir"]))
    assert [d.id for d in items if isinstance(d, LoadedDocument)] == ["d1"]
    assert [(s.source, s.reason.split(" (")[0]) for s in items if isinstance(s, Skipped)] == [
        (source, "not part of the BEIR corpus in beir/corpus.jsonl")
        for source in ("beir/notes.txt", "beir/sub/more.md")
    ]


def test_a_repository_s_own_files_are_read_and_its_tools_folders_passed_over_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Dockerfile, a LICENSE and a .gitignore are the project's and were refused or passed over as hidden; .git,
    .venv, node_modules and __pycache__ hold a tool's files by the thousand, each reported once, not read."""
    monkeypatch.chdir(tmp_path)
    repo = tmp_path / "repo"
    for folder in (".git", ".venv", "node_modules/left-pad", "__pycache__"):
        (repo / folder).mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / "node_modules" / "left-pad" / "package.json").write_text('{"name": "left-pad"}')
    (repo / "node_modules" / "left-pad" / "README").write_text("Pads strings.")
    (repo / "__pycache__" / "app.cpython-312.pyc").write_bytes(b"\xcb\r\r\n")
    for name in ("Dockerfile", "LICENSE", ".gitignore"):
        (repo / name).write_text(f"{name} of the project\n")
    (repo / ".env").write_text("API_KEY=secret\n")
    items = list(load_paths(["repo"]))
    assert sorted(d.id for d in items if isinstance(d, LoadedDocument)) == [
        "repo/.gitignore",
        "repo/Dockerfile",
        "repo/LICENSE",
    ]
    reasons = {s.source: s.reason.split(",")[0] for s in items if isinstance(s, Skipped)}
    assert reasons == {
        "repo/.env": "hidden file",
        "repo/.git": "hidden folder",
        "repo/.venv": "hidden folder",
        "repo/__pycache__": "Python's compiled bytecode",
        "repo/node_modules": "packages npm installed",
    }
    assert "README" in {Path(d.id).name for d in load_paths(["repo/node_modules"]) if isinstance(d, LoadedDocument)}


def test_a_file_that_became_empty_or_unreadable_says_its_earlier_version_is_kept_and_how_to_delete_it(
    projects: Path,
) -> None:
    """Ingesting it again replaces nothing, so the old text is still found: the report says so, naming the id that
    holds it (a path, not the name given) and the request that deletes it; it deletes nothing itself."""
    (projects / "projA" / "README.md").write_text("   \n")
    (projects / "projA" / "old notes.txt").write_bytes("caf\xe9".encode("latin-1"))
    reasons = {Path(s.source).name: s.reason for s in load_paths([str(projects / "projA")]) if isinstance(s, Skipped)}
    assert reasons == {
        "README.md": "no text found; any version stored earlier as 'projA/README.md' is kept and still found by"
        " searches (delete it with DELETE /api/v1/documents/projA/README.md)",
        "old notes.txt": f"{NOT_UTF8}; any version stored earlier as 'projA/old notes.txt' is kept and still found by"
        " searches (delete it with DELETE /api/v1/documents/projA/old%20notes.txt)",
    }
    [uploaded] = load_content("empty.md", b"", doc_id="https://example.com/empty.md")
    assert isinstance(uploaded, Skipped)
    assert uploaded.reason.endswith("(delete it with DELETE /api/v1/documents/https%3A%2F%2Fexample.com/empty.md)")
    # records keep ids of their own: no one document to name; a .json that is no JSON may have been one document
    assert all("stored earlier" not in s.reason for s in load_content("x.jsonl", b"[1,", doc_id="x.jsonl"))
    [broken] = load_content("x.json", b"[1,", doc_id="x.json")
    assert isinstance(broken, Skipped) and "any version stored earlier as 'x.json' is kept" in broken.reason
