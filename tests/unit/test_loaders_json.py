"""Loaders: a .json file that holds documents is read as records (test_loaders.py holds that shape), and any other
JSON (a package.json, an API's reply saved to disk) as one document of its keys and values."""

from __future__ import annotations

import json

import pytest

from likeopt.runtime.contract import MAX_DOCUMENT_CHARS
from likeopt.runtime.loaders import LoadedDocument, Skipped, load_content
from tests.unit.test_loaders import chunked, one

PACKAGE = {
    "name": "@acme/heron-counter",
    "version": "1.2.0",
    "keywords": ["birds", "census"],
    "scripts": {"build": "tsc -p .", "test": "vitest"},
    "dependencies": {"react": "^18.2.0"},
    "files": [],
    "contributors": [{"name": "Ana Lopes", "email": "ana@example.org"}],
    "private": True,
}


def test_a_json_file_that_holds_no_documents_is_one_document_of_its_keys_and_values() -> None:
    """It was refused ("a .json file must hold an array of documents"); each value is on a line with the path of
    keys it is under, so a search for it finds the file and the passage says what it is; a top-level entry is a
    block, a list of scalars one line."""
    doc = one("web/package.json", json.dumps(PACKAGE, indent=2).encode())
    assert doc.title == "@acme/heron-counter"
    assert doc.metadata == {"source": "package.json", "file_type": "json"}
    assert chunked(doc.text) == (
        "name: @acme/heron-counter\n\nversion: 1.2.0\n\nkeywords: birds, census\n\n"
        "scripts.build: tsc -p .\nscripts.test: vitest\n\ndependencies.react: ^18.2.0\n\n"
        "contributors[0].name: Ana Lopes\ncontributors[0].email: ana@example.org\n\nprivate: true"
    )


def test_an_api_reply_of_objects_that_are_not_document_records_is_read_whole_not_as_titles() -> None:
    """Issues with an id and a title look like records, but their body is no record's field: read as records they
    were each stored as a title alone. Records (a text, or only a record's fields) are still records."""
    issues = [{"id": 7, "title": "Crash on start", "body": "The heron counter crashes when the lake is frozen."}]
    doc = one("issues.json", json.dumps(issues).encode())
    assert doc.id == "issues.json" and "[0].body: The heron counter crashes when the lake is frozen." in doc.text
    titles = [{"id": "a", "title": "Only a title"}]
    [record] = load_content("titles.json", json.dumps(titles).encode(), doc_id="titles.json")
    assert isinstance(record, LoadedDocument) and (record.id, record.title) == ("a", "Only a title")


def test_json_that_is_no_text_or_too_much_as_text_is_refused_with_the_reason() -> None:
    """A JSON file gets the checks any text file gets, a malformed one says where it breaks, and one whose paths
    would write out past what a document holds is refused, not cut: counted as it is written, never built whole."""
    [latin1] = load_content("a.json", '{"caf\xe9": 1}'.encode("latin-1"), doc_id="a.json")
    assert isinstance(latin1, Skipped) and latin1.reason.startswith("not valid UTF-8")
    [broken] = load_content("tsconfig.json", b'{\n  "strict": true\n  "noEmit": true\n}', doc_id="tsconfig.json")
    assert isinstance(broken, Skipped) and broken.reason.startswith("invalid JSON: Expecting ',' delimiter")
    assert "line 3 column 3" in broken.reason
    inner: object = {str(n): n for n in range(2_000)}  # 2,000 values under one path of 20 keys of 500 letters
    for _ in range(20):
        inner = {"k" * 500: inner}
    wide = json.dumps(inner).encode()
    assert len(wide) * 100 < MAX_DOCUMENT_CHARS < 2_000 * 20 * 500  # 30 kB that would write out as 20 MB
    [huge] = load_content("wide.json", wide, doc_id="wide.json")
    assert isinstance(huge, Skipped) and "over the 10000000 characters a document holds" in huge.reason
    [nested] = load_content("deep.json", b"[" * 100_000 + b"]" * 100_000, doc_id="deep.json")
    assert isinstance(nested, Skipped) and nested.reason.startswith("invalid JSON: nested deeper")


TSCONFIG = b"""{
  // what tsc checks
  "compilerOptions": {
    "strict": true, /* never loosened */
    "paths": {"@app/*": ["src/*"]},
    "baseUrl": "https://cdn.example.org/a,]",
    "note": "a // b /* c */ \\" d",
    "empty": "",
  },
  "include": ["src", "tests",],
}
"""


@pytest.mark.parametrize(
    "name", ["tsconfig.json", ".vscode/settings.json", ".devcontainer/devcontainer.json", "x.jsonc"]
)
def test_json_with_comments_and_trailing_commas_is_read_as_the_json_it_holds(name: str) -> None:
    """tsconfig.json, VS Code's settings and devcontainer.json hold comments and trailing commas, and were refused as
    invalid JSON; a comment's marks and a comma inside a string stay as written."""
    doc = one(name, TSCONFIG)
    assert doc.metadata == {"source": name.rsplit("/", 1)[-1], "file_type": "json"}
    assert doc.text == (
        "compilerOptions.strict: true\ncompilerOptions.paths.@app/*: src/*\n"
        "compilerOptions.baseUrl: https://cdn.example.org/a,]\n"
        'compilerOptions.note: a // b /* c */ " d\ncompilerOptions.empty: \n\ninclude: src, tests'
    )


def test_a_syntax_error_in_json_with_comments_is_refused_at_its_own_line_and_column() -> None:
    """Comments are blanked, not cut out, so the parser's line and column are the file's; a comment never closed is
    refused where it opens."""
    [broken] = load_content("c.jsonc", b'{\n  /* a */ "a": 1,\n  // b\n  "b": tru\n}', doc_id="c.jsonc")
    assert isinstance(broken, Skipped)
    assert broken.reason.startswith("invalid JSON: Expecting value: line 4 column 8 (char 34)")
    [unclosed] = load_content("d.json", b'{"a": 1, /* b\n}', doc_id="d.json")
    assert isinstance(unclosed, Skipped)
    assert unclosed.reason.startswith("invalid JSON: a /* comment is never closed: line 1 column 10;")
