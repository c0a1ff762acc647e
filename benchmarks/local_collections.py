"""Build evaluation collections from this machine's own text, deterministically (not a test).

Every retrieval default was chosen on SciFact and two collections made from it; the product is judged
on collections of other domains (financial questions, argument retrieval, duplicate questions,
technical manuals), none of which can be downloaded here. This machine holds real text of other
domains with a natural query-to-document pairing, one right answer per query:

- ``debian-descriptions``: the installed Debian packages (``/var/lib/dpkg/status``): query = the
  synopsis (the Description line), document = the long description. Short technical documents, short
  queries. The Packages lists under /var/lib/apt/lists carry only the synopsis (the long text lives in
  Translation files that are not here), hence the installed packages.
- ``python-readmes``: the installed Python distributions' METADATA: query = Summary, document = the long
  description (a README, mostly Markdown) of at least MIN_README_WORDS words. Long manual-like documents.
- ``man-pages``: section 1 manual pages: query = the NAME line's description, document = the page as
  ``man`` renders it, NAME section removed. Reference documents with option lists (Google Cloud SDK's
  generated pages left out: they are nine in ten of the pages here). A second split, ``packages``, asks
  for them by a Debian package's whole long description (long queries, as in ArguAna): the package's
  pages are the right answers.

Documents have no title: a package or command name in the title would let a query match by name, not by
what the text says. A query whose text occurs twice is dropped, and so is every document whose text
another shares, so each query has exactly one right answer. Samples are deterministic: items are ordered
by the SHA-256 of their name.

Usage, from the repository root (writes corpus.jsonl, queries.jsonl and qrels/test.tsv beside each
collection's SOURCE.md under benchmarks/data/):
    python -m benchmarks.local_collections
"""

from __future__ import annotations

import argparse
import email.parser
import gzip
import hashlib
import json
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.scifact_variants import OUT, write_collection

DPKG_STATUS = Path("/var/lib/dpkg/status")
SITE_PACKAGES = Path("/work/main/.venv/lib/python3.11/site-packages")
MAN1 = Path("/usr/share/man/man1")
MIN_README_WORDS = 300
"""A Python distribution's long description shorter than this is a blurb, not a manual."""
MIN_DOC_WORDS = 15
"""A Debian long description shorter than this says no more than its synopsis."""
MIN_QUERY_WORDS = 3
"""Shorter synopses ("GNU C library") are names, not descriptions."""
MAN_WORDS = (150, 3000)
"""Man pages kept: at least a page of text, at most about 15 chunks (longer ones are hours to embed here)."""
MAN_PAGES = 600
MAN_EXCLUDED = "gcloud"
"""Pages left out by name prefix: Google Cloud SDK's generated reference is 16,631 of the 18,103 pages and
would make the collection one product's templated pages."""
DEBIAN_QUERIES = 300
MAN_WIDTH = "100"
DPKG_INFO = Path("/var/lib/dpkg/info")
LONG_SPLIT = "packages"
MAX_PAGES_PER_PACKAGE = 5
"""A package with more pages in the collection (coreutils, git) is a topic, not one answer to look for."""


@dataclass(frozen=True)
class Pair:
    """One item of a source: its name, the query that describes it and the document it describes."""

    name: str
    query: str
    text: str


def name_order(name: str) -> str:
    """The sample order: a hash of the name, so a sample does not follow the alphabet or the source file."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def normalized(text: str) -> str:
    """Text compared for duplicates: case and runs of white space do not count."""
    return " ".join(text.lower().split())


def unique_pairs(pairs: Iterable[Pair]) -> list[Pair]:
    """The pairs whose query and whose document no other pair shares, in name-hash order; of pairs with the
    same name (a package listed twice) the first is kept."""
    by_name: dict[str, Pair] = {}
    for pair in pairs:
        by_name.setdefault(pair.name, pair)
    kept = list(by_name.values())
    queries = Counter(normalized(p.query) for p in kept)
    texts = Counter(normalized(p.text) for p in kept)
    single = [p for p in kept if queries[normalized(p.query)] == 1 and texts[normalized(p.text)] == 1]
    return sorted(single, key=lambda p: name_order(p.name))


def document_ids(docs: list[Pair], prefix: str) -> dict[str, str]:
    """Each document's id in the written collection: the prefix and its place in docs."""
    return {p.name: f"{prefix}{n:04d}" for n, p in enumerate(docs)}


def write_pairs(folder: Path, prefix: str, docs: list[Pair], queries: int) -> dict[str, int]:
    """Write docs as a collection whose first `queries` documents (name-hash order) are asked for by their
    query; every document is judged relevant (1) to its own query only."""
    ids = document_ids(docs, prefix)
    corpus = [{"_id": ids[p.name], "title": "", "text": p.text} for p in docs]
    asked = docs[:queries]
    records = [{"_id": f"Q{ids[p.name]}", "text": p.query} for p in asked]
    qrels = {f"Q{ids[p.name]}": {ids[p.name]: 1} for p in asked}
    write_collection(folder, corpus, records, qrels)
    words = sorted(len(p.text.split()) for p in docs)
    return {
        "documents": len(docs),
        "queries": len(asked),
        "words_median": words[len(words) // 2] if words else 0,
        "words_max": words[-1] if words else 0,
        "query_words_median": sorted(len(p.query.split()) for p in asked)[len(asked) // 2] if asked else 0,
    }


# -- Debian package descriptions -------------------------------------------


def stanzas(text: str) -> Iterator[dict[str, str]]:
    """The stanzas of a Debian control file (dpkg status, Packages) as field -> value; a continuation line
    (leading space or tab) is kept in its field's value with its leading white space."""
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        field = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and field:
                fields[field] += "\n" + line
            elif ":" in line:
                field, _, value = line.partition(":")
                fields[field] = value.strip()
        if fields:
            yield fields


def description(value: str) -> tuple[str, str]:
    """A Description field as (synopsis, long description): continuation lines lose their leading space and
    a line of a single '.' is a paragraph break (Debian Policy 5.6.13)."""
    synopsis, _, rest = value.partition("\n")
    lines = []
    for line in rest.splitlines():
        line = line[1:] if line[:1] in (" ", "\t") else line
        lines.append("" if line.strip() == "." else line.rstrip())
    return synopsis.strip(), re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def debian_pairs(status: str) -> list[Pair]:
    """Installed packages' (synopsis, long description) pairs worth asking for (see MIN_* above)."""
    pairs = []
    for fields in stanzas(status):
        if "Package" not in fields or "Description" not in fields:
            continue
        if not fields.get("Status", "install ok installed").endswith(" installed"):
            continue
        synopsis, text = description(fields["Description"])
        if len(synopsis.split()) >= MIN_QUERY_WORDS and len(text.split()) >= MIN_DOC_WORDS:
            pairs.append(Pair(fields["Package"], synopsis, text))
    return pairs


# -- Python distributions' READMEs ------------------------------------------


def readme_pair(metadata: str) -> Pair | None:
    """A distribution's METADATA as (Summary, long description), or None when either is missing or the
    description is shorter than MIN_README_WORDS words."""
    message = email.parser.Parser().parsestr(metadata)
    body = message.get_payload()
    text = (body if isinstance(body, str) and body.strip() else message.get("Description") or "").strip()
    summary = " ".join((message.get("Summary") or "").split())
    name = (message.get("Name") or "").strip()
    if not name or len(summary.split()) < MIN_QUERY_WORDS or len(text.split()) < MIN_README_WORDS:
        return None
    return Pair(name.lower(), summary, text)


def readme_pairs(site_packages: Path) -> list[Pair]:
    """Every installed distribution's pair (readme_pair), in file-name order."""
    found = (readme_pair(p.read_text(encoding="utf-8")) for p in sorted(site_packages.glob("*.dist-info/METADATA")))
    return [pair for pair in found if pair]


# -- man pages ----------------------------------------------------------------

SECTION = re.compile(r"^[A-Z][A-Z0-9 ,/&()-]*$")
"""A rendered section heading: upper case, at the start of the line."""


def split_name(rendered: str) -> tuple[str, str]:
    """A rendered page as (NAME's description, the page without its NAME section and without the header and
    footer lines that repeat the page's name); ('', '') when it has no "name - description" NAME."""
    lines = rendered.strip().splitlines()
    try:
        start = next(n for n, line in enumerate(lines) if line.strip() == "NAME" and not line[:1].isspace())
    except StopIteration:
        return "", ""
    end = next((n for n in range(start + 1, len(lines)) if SECTION.match(lines[n])), len(lines))
    name_text = " ".join(" ".join(lines[start + 1 : end]).split())
    _, dash, what = name_text.partition(" - ")
    if not dash or not what.strip():
        return "", ""
    body = lines[1:start] + lines[end:-1]
    return what.strip(), re.sub(r"\n{3,}", "\n\n", "\n".join(body)).strip()


def render(page: Path) -> str:
    """The page as man-db formats it for a terminal MAN_WIDTH wide, without hyphenation or justification,
    overstrikes removed."""
    env = {**os.environ, "MANWIDTH": MAN_WIDTH, "MAN_KEEP_FORMATTING": "0", "LC_ALL": "C.UTF-8"}
    shown = subprocess.run(
        ["man", "-l", "-E", "UTF-8", "--nh", "--nj", str(page)], capture_output=True, env=env, timeout=60, check=False
    )
    plain = subprocess.run(["col", "-bx"], input=shown.stdout, capture_output=True, timeout=60, check=False)
    return plain.stdout.decode("utf-8", errors="replace")


def man_candidates(man1: Path) -> list[Path]:
    """Section 1 pages that are files of their own (not links, not '.so' redirections), but MAN_EXCLUDED's,
    in name-hash order."""
    pages = []
    for page in man1.iterdir():
        if page.is_symlink() or not page.name.endswith(".gz") or page.name.startswith(MAN_EXCLUDED):
            continue
        with gzip.open(page, "rt", encoding="utf-8", errors="replace") as source:
            if source.read(200).lstrip().startswith(".so "):
                continue
        pages.append(page)
    return sorted(pages, key=lambda p: name_order(p.name))


def man_pairs(man1: Path, wanted: int = MAN_PAGES) -> list[Pair]:
    """Render pages in name-hash order until `wanted` pairs with a description of MIN_QUERY_WORDS words and a
    body within MAN_WORDS are found, then drop shared descriptions and bodies (unique_pairs)."""
    pairs: list[Pair] = []
    for page in man_candidates(man1):
        if len(pairs) >= wanted:
            break
        query, text = split_name(render(page))
        if len(query.split()) >= MIN_QUERY_WORDS and MAN_WORDS[0] <= len(text.split()) <= MAN_WORDS[1]:
            pairs.append(Pair(page.name.removesuffix(".gz"), query, text))
    return unique_pairs(pairs)


# -- long queries: a package's long description against its man pages ------------


def page_owners(lists: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Section 1 page name ("ls.1") -> the package that installed it, from (package, file list) pairs as in
    /var/lib/dpkg/info/<package>[:<arch>].list."""
    owners: dict[str, str] = {}
    prefix = str(MAN1) + "/"
    for package, listing in lists:
        for path in listing.splitlines():
            if path.startswith(prefix) and path.endswith(".gz"):
                owners[path.removeprefix(prefix).removesuffix(".gz")] = package.split(":")[0]
    return owners


def long_queries(packages: list[Pair], pages: list[Pair], owners: dict[str, str]) -> tuple[list[dict], dict]:
    """Each package whose man pages in the collection number 1 to MAX_PAGES_PER_PACKAGE, asked for by its
    whole long description (queries QL0000..., the packages' name-hash order); its pages are judged 1."""
    ids = document_ids(pages, "M")
    owned: dict[str, list[str]] = {}
    for page in pages:
        if page.name in owners:
            owned.setdefault(owners[page.name], []).append(ids[page.name])
    asked = [p for p in packages if 1 <= len(owned.get(p.name, ())) <= MAX_PAGES_PER_PACKAGE]
    queries = [{"_id": f"QL{n:04d}", "text": p.text} for n, p in enumerate(asked)]
    qrels = {f"QL{n:04d}": dict.fromkeys(owned[p.name], 1) for n, p in enumerate(asked)}
    return queries, qrels


def add_split(folder: Path, split: str, queries: list[dict], qrels: dict[str, dict[str, int]]) -> dict[str, int]:
    """Add queries to a written collection's queries.jsonl and their judgements as qrels/<split>.tsv (likeopt
    eval --split reads only the queries its split judges)."""
    with (folder / "queries.jsonl").open("a", encoding="utf-8") as out:
        for record in queries:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    with (folder / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for query_id, judged in qrels.items():
            for doc_id, grade in judged.items():
                out.write(f"{query_id}\t{doc_id}\t{grade}\n")
    words = sorted(len(q["text"].split()) for q in queries)
    return {
        "queries": len(queries),
        "judgements": sum(map(len, qrels.values())),
        "query_words_median": words[len(words) // 2],
    }


def build(out: Path = OUT) -> dict[str, dict[str, int]]:
    """Write the three collections (and man-pages' split of long queries) under out; returns their sizes for
    SOURCE.md."""
    debian = unique_pairs(debian_pairs(DPKG_STATUS.read_text(encoding="utf-8")))
    readmes = unique_pairs(readme_pairs(SITE_PACKAGES))
    pages = man_pairs(MAN1)
    lists = ((p.name.removesuffix(".list"), p.read_text(encoding="utf-8")) for p in DPKG_INFO.glob("*.list"))
    queries, qrels = long_queries(debian, pages, page_owners(lists))
    return {
        "debian-descriptions": write_pairs(out / "debian-descriptions", "D", debian, DEBIAN_QUERIES),
        "python-readmes": write_pairs(out / "python-readmes", "P", readmes, len(readmes)),
        "man-pages": write_pairs(out / "man-pages", "M", pages, len(pages) // 2),
        "man-pages --split packages": add_split(out / "man-pages", LONG_SPLIT, queries, qrels),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    print(json.dumps(build(args.out), indent=2))


if __name__ == "__main__":
    main()
