"""The builder of the collections from this machine's text: what it reads as a query and as a document,
and the rules that leave each query one right answer."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.local_collections import (
    MAX_PAGES_PER_PACKAGE,
    Pair,
    debian_pairs,
    description,
    long_queries,
    page_owners,
    readme_pair,
    split_name,
    stanzas,
    unique_pairs,
    write_pairs,
)

STATUS = """Package: git
Status: install ok installed
Version: 1:2.39.2-1.1
Description: fast, scalable, distributed revision control system
 Git is popular version control system designed to handle very large
 projects with speed and efficiency.
 .
 This package provides the git main components with minimal dependencies.
Homepage: https://git-scm.com/

Package: gone
Status: deinstall ok config-files
Description: a package removed but for its configuration
 Its configuration files are still on the disk but the package is gone and
 its description should not be asked for by any query.

Package: libc6
Status: install ok installed
Description: C Library
 Contains the standard libraries that are used by nearly all programs on
 the system, including the C library and the math library.
"""


def test_a_stanza_keeps_its_continuation_lines_in_its_field() -> None:
    first = next(stanzas(STATUS))
    assert first["Package"] == "git"
    assert first["Version"] == "1:2.39.2-1.1"
    assert first["Homepage"] == "https://git-scm.com/"
    second_line = " Git is popular version control system designed to handle very large"
    assert first["Description"].splitlines()[1] == second_line


def test_a_description_splits_into_synopsis_and_paragraphs() -> None:
    synopsis, text = description(next(stanzas(STATUS))["Description"])
    assert synopsis == "fast, scalable, distributed revision control system"
    assert text == (
        "Git is popular version control system designed to handle very large\n"
        "projects with speed and efficiency.\n\n"
        "This package provides the git main components with minimal dependencies."
    )


def test_only_installed_packages_with_a_descriptive_synopsis_are_asked_for() -> None:
    assert [p.name for p in debian_pairs(STATUS)] == ["git"]


def test_a_shared_query_or_document_leaves_no_pair_that_shares_it() -> None:
    pairs = [
        Pair("a", "a library", "the text of a"),
        Pair("a-dev", "development files", "The text  of A"),
        Pair("b", "tool for b", "the text of b"),
        Pair("c", "Tool for  B", "the text of c"),
        Pair("d", "tool for d", "the text of d"),
        Pair("d", "tool for d again", "the text of d, listed twice"),
    ]
    assert unique_pairs(pairs) == [Pair("d", "tool for d", "the text of d")]


def test_the_sample_order_is_the_name_hash_not_the_input_order() -> None:
    pairs = [Pair(name, f"query {name}", f"text {name}") for name in "abcdefgh"]
    assert unique_pairs(pairs) == unique_pairs(reversed(pairs))
    assert [p.name for p in unique_pairs(pairs)] != sorted("abcdefgh")


def test_a_readme_is_the_body_of_the_metadata_and_its_query_the_summary() -> None:
    words = " ".join(["word"] * 300)
    headers = "Metadata-Version: 2.1\nName: Sorted-Things\nSummary: Sorted  containers\n for Python\n"
    metadata = f"{headers}\n# Title\n\n{words}\n"
    assert readme_pair(metadata) == Pair("sorted-things", "Sorted containers for Python", f"# Title\n\n{words}")
    assert readme_pair(metadata.replace(words, "too short")) is None
    assert readme_pair(metadata.replace("Summary: Sorted  containers\n for Python\n", "")) is None


PAGE = """LS(1)                          User Commands                          LS(1)

NAME
       ls - list directory
       contents

SYNOPSIS
       ls [OPTION]... [FILE]...

DESCRIPTION
       List information about the FILEs.

GNU coreutils 9.1                 September 2022                          LS(1)

"""


def test_a_man_page_loses_its_name_section_header_and_footer() -> None:
    query, text = split_name(PAGE)
    assert query == "list directory contents"
    assert text == (
        "SYNOPSIS\n       ls [OPTION]... [FILE]...\n\nDESCRIPTION\n       List information about the FILEs."
    )
    assert split_name(PAGE.replace(" - ", " ")) == ("", "")
    assert split_name("no sections at all") == ("", "")


def test_each_asked_document_is_judged_relevant_to_its_own_query_only(tmp_path: Path) -> None:
    docs = [Pair(name, f"query {name}", f"text {name}") for name in "abc"]
    sizes = write_pairs(tmp_path, "X", docs, 2)
    corpus = [json.loads(line) for line in (tmp_path / "corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(line) for line in (tmp_path / "queries.jsonl").read_text().splitlines()]
    assert corpus[0] == {"_id": "X0000", "title": "", "text": "text a"}
    assert queries == [{"_id": "QX0000", "text": "query a"}, {"_id": "QX0001", "text": "query b"}]
    qrels = (tmp_path / "qrels" / "test.tsv").read_text().splitlines()
    assert qrels == ["query-id\tcorpus-id\tscore", "QX0000\tX0000\t1", "QX0001\tX0001\t1"]
    assert sizes["documents"] == 3 and sizes["queries"] == 2


def test_a_page_belongs_to_the_package_whose_file_list_holds_it() -> None:
    lists = [
        ("coreutils:amd64", "/usr/share/man/man1/ls.1.gz\n/usr/share/man/man8/chroot.8.gz\n/usr/bin/ls"),
        ("diffutils", "/usr/share/man/man1/diff.1.gz\n/usr/share/man/man1/cmp.1.gz\n/usr/share/man/de/man1/diff.1.gz"),
    ]
    assert page_owners(lists) == {"ls.1": "coreutils", "diff.1": "diffutils", "cmp.1": "diffutils"}


def test_a_long_query_asks_for_its_package_s_pages_unless_the_package_has_too_many() -> None:
    packages = [
        Pair("diffutils", "file comparison utilities", "The diffutils package provides diff and cmp."),
        Pair("coreutils", "GNU core utilities", "The basic file, shell and text utilities."),
        Pair("zsh", "shell with lots of features", "Zsh is a UNIX command interpreter."),
    ]
    many = [f"tool{n}.1" for n in range(MAX_PAGES_PER_PACKAGE + 1)]
    pages = [Pair(name, f"about {name}", f"page {name}") for name in ["diff.1", "cmp.1", "ls.1", *many]]
    owners = {"diff.1": "diffutils", "cmp.1": "diffutils", **dict.fromkeys(["ls.1", *many], "coreutils")}
    queries, qrels = long_queries(packages, pages, owners)
    assert queries == [{"_id": "QL0000", "text": "The diffutils package provides diff and cmp."}]
    assert qrels == {"QL0000": {"M0000": 1, "M0001": 1}}
