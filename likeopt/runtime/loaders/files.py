"""Files and folders on disk as documents: the walk that reports everything it passes over, a BEIR folder read as its
corpus, and each file's id (its path as the user named it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from likeopt.runtime.loaders.documents import LoadedDocument, Skipped, skipped_file
from likeopt.runtime.loaders.extract import load_content
from likeopt.runtime.loaders.formats import MAX_FILE_BYTES, TOO_LARGE, named_kind
from likeopt.runtime.loaders.records import load_jsonl

BEIR_CORPUS = "corpus.jsonl"
"""A BEIR dataset folder's documents: a folder holding one is read as that dataset."""
BEIR_QUERIES = "queries.jsonl"
"""A BEIR dataset folder's questions, which ``likeopt eval`` and ``likeopt bench`` ask."""
TOOL_FOLDERS = {
    "node_modules": "packages npm installed",
    "__pycache__": "Python's compiled bytecode",
}
"""Folders a tool fills, not the user, and what each holds: other people's files by the thousand (a package.json,
a README in every package) that would crowd a project's own out of search. Hidden ones (.git, .venv) are passed
over as hidden."""


def load_file(path: Path, doc_id: str) -> Iterator[LoadedDocument | Skipped]:
    """The documents in one file on disk."""
    if path.stat().st_size > MAX_FILE_BYTES:
        yield skipped_file(str(path), doc_id, TOO_LARGE)
        return
    yield from load_content(str(path), path.read_bytes(), doc_id)


def load_paths(paths: list[str]) -> Iterator[LoadedDocument | Skipped]:
    """Documents from files and folders; a folder with corpus.jsonl is read as a BEIR dataset (its records keep
    their ids). A file's id is its path from id_base, so README.md in two folders gives two documents."""
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            yield Skipped(raw, "no such file or folder")
        elif root.is_file():
            yield from load_file(root, file_id(root, id_base(root)))
        elif (corpus := root / BEIR_CORPUS).is_file():
            with corpus.open("rb") as lines:
                yield from load_jsonl(str(corpus), lines)
            beside = f"not part of the BEIR corpus in {corpus} (give it as a path of its own to ingest it)"
            for found in folder_files(root):
                if found != corpus:
                    yield found if isinstance(found, Skipped) else Skipped(str(found), beside)
        else:
            base = id_base(root)
            for found in folder_files(root):
                if isinstance(found, Skipped):
                    yield found
                else:
                    yield from load_file(found, file_id(found, base))


def folder_files(root: Path) -> Iterator[Path | Skipped]:
    """The regular files under root in name order, and each entry passed over with why: the README promises a
    report of everything not read. A hidden folder (.git, .venv) or a tool's (TOOL_FOLDERS) is reported once, not
    file by file; a hidden file is passed over unless its name is one every repository keeps (.gitignore)."""
    for folder, folders, files in os.walk(root):
        here = Path(folder)
        for name in sorted(folders):
            if name.startswith(".") or name in TOOL_FOLDERS or (here / name).is_symlink():
                folders.remove(name)
                yield Skipped(str(here / name), _passed_folder(name))
        folders.sort()
        for name in sorted(files):
            path = here / name
            if name.startswith(".") and named_kind(name) is None:
                yield Skipped(str(path), "hidden file, skipped")
            elif path.is_symlink() and not path.exists():
                yield Skipped(str(path), f"broken symbolic link: its target {os.readlink(path)} does not exist")
            elif not path.is_file():
                yield Skipped(str(path), "not a regular file")
            else:
                yield path


def _passed_folder(name: str) -> str:
    """Why a folder inside one being read is not: hidden, or a link (which could lead back into its own folder)."""
    if name.startswith("."):
        return "hidden folder, skipped with everything in it"
    if name in TOOL_FOLDERS:
        return f"{TOOL_FOLDERS[name]}, skipped with everything in it (give it as a path of its own to ingest it)"
    return "symbolic link to a folder, not followed (give its target as a path of its own)"


def id_base(given: Path) -> Path:
    """What the ids of the files under a given path are relative to: the working directory when the path lies in
    it (``projA`` and ``projA/README.md`` both name ``projA/README.md``), else the path's parent (``/data/projA``
    gives ``projA/README.md``), so a file keeps the folder it was found in as the user named it."""
    absolute, cwd = Path(os.path.normpath(given.absolute())), Path.cwd()
    return cwd if absolute.is_relative_to(cwd) else absolute.parent


def file_id(path: Path, base: Path) -> str:
    """The id of the file at path: its path from base, with forward slashes on every system."""
    return Path(os.path.normpath(path.absolute())).relative_to(base).as_posix()


def earlier_ids(paths: list[str]) -> dict[str, str]:
    """For each file of the paths load_paths reads, the id releases before ids were paths gave it, where it differs
    from today's: a file given itself was its bare name, a folder's files their path inside that folder."""
    earlier: dict[str, str] = {}
    for raw in paths:
        root = Path(raw)
        if root.is_file():
            pairs = [(root, root.name)]
        elif root.is_dir() and not (root / BEIR_CORPUS).is_file():
            found = (f for f in folder_files(root) if isinstance(f, Path))
            pairs = [(f, f.relative_to(root).as_posix()) for f in found]
        else:
            continue
        base = id_base(root)
        earlier.update((file_id(f, base), old) for f, old in pairs if file_id(f, base) != old)
    return earlier
