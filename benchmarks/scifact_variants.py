"""Build evaluation collections of other shapes from SciFact, deterministically (not a test).

Every retrieval default was chosen on SciFact: short abstracts, claims as queries, one binary
judgement each. No registry reachable here ships another IR test collection with its corpus and
judgements, so these variants change the shape of SciFact honestly and say how (each folder's
SOURCE.md):

- ``scifact-long``: documents of 2 to 6 topically related abstracts (nearest neighbours by TF-IDF
  over our BM25 terms, never by the embedding model under test), in a seeded random order, so the
  abstract a claim needs sits anywhere in a document of several chunks. Only the documents holding a
  test claim's relevant abstract are kept (a judged pool: embedding all 1,278, about 11,000 chunks,
  takes hours on this shared machine). Graded judgements: 2 when the claim's relevant abstracts make
  up at least a third of the document's words, else 1.
- ``scifact-titles``: abstracts without their titles (the judged ones and 170 others), and as
  queries the titles of the abstracts relevant to the test claims: short topical phrases instead of
  claims. Graded: 2 for the abstract the title belongs to, 1 for the other abstracts relevant to the
  same claims.

Usage, from the repository root (writes corpus.jsonl, queries.jsonl and qrels/test.tsv beside each
collection's SOURCE.md under benchmarks/data/):
    python -m benchmarks.scifact_variants [--scifact /work/shared/data/scifact]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from likeopt.ops.evaluate import read_qrels
from likeopt.runtime.text import tokenize

HERE = Path(__file__).resolve().parent
OUT = HERE / "data"
SEED = 21
SIZES = (2, 3, 4, 5, 6)
"""Abstracts per long document, drawn uniformly."""
TITLE_DISTRACTORS = 170
"""Unjudged abstracts kept beside scifact-titles' judged ones (every abstract would be 10,500 chunks to embed)."""
MAIN_SHARE = 1 / 3
"""Share of a long document's words that its relevant abstracts must hold for grade 2."""

Record = dict[str, str]


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def write_collection(folder: Path, corpus: Iterable[Record], queries: Iterable[Record], qrels: dict) -> None:
    """Write a BEIR-layout collection: corpus.jsonl, queries.jsonl and qrels/test.tsv (query-id order kept)."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    for name, records in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        with (folder / name).open("w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    with (folder / "qrels" / "test.tsv").open("w", encoding="utf-8") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for query_id, judged in qrels.items():
            for doc_id, grade in judged.items():
                out.write(f"{query_id}\t{doc_id}\t{grade}\n")


def topical_groups(docs: list[Record], seed: int = SEED) -> list[list[int]]:
    """Partition the documents into groups of 2 to 6 neighbours: each group starts at the next unassigned
    document in a seeded order and takes its most similar unassigned documents (TF-IDF cosine)."""
    vectorizer = TfidfVectorizer(analyzer=lambda text: tokenize(text), sublinear_tf=True, min_df=2)
    matrix = vectorizer.fit_transform([f"{d['title']} {d['text']}" for d in docs])
    similarity = (matrix @ matrix.T).toarray().astype(np.float32)
    rng = np.random.default_rng(seed)
    free = np.ones(len(docs), dtype=bool)
    groups: list[list[int]] = []
    for start in rng.permutation(len(docs)):
        if not free[start]:
            continue
        free[start] = False
        size = int(rng.choice(SIZES))
        scores = np.where(free, similarity[start], -1.0)
        nearest = [int(i) for i in np.argsort(-scores, kind="stable")[: size - 1] if free[i]]
        free[nearest] = False
        group = [int(start), *nearest]
        groups.append([group[i] for i in rng.permutation(len(group))])
    return groups


def long_documents(docs: list[Record], groups: list[list[int]]) -> list[Record]:
    """One document per group: the first abstract's title and text, then each further abstract as a
    paragraph led by its own title."""
    out = []
    for n, group in enumerate(groups):
        first, rest = docs[group[0]], [docs[i] for i in group[1:]]
        paragraphs = [first["text"], *(f"{d['title']} {d['text']}" for d in rest)]
        out.append({"_id": f"L{n:04d}", "title": first["title"], "text": "\n\n".join(paragraphs)})
    return out


def long_qrels(docs: list[Record], groups: list[list[int]], qrels: dict[str, dict[str, int]]) -> dict:
    """Each test claim's judgements carried to the long documents holding its relevant abstracts, graded by
    the share of the document's words those abstracts hold."""
    words = [len(f"{d['title']} {d['text']}".split()) for d in docs]
    position = {docs[i]["_id"]: (n, i) for n, group in enumerate(groups) for i in group}
    carried: dict[str, dict[str, int]] = {}
    for query_id, judged in qrels.items():
        relevant_words: dict[int, int] = {}
        for doc_id, grade in judged.items():
            if grade > 0 and doc_id in position:
                n, i = position[doc_id]
                relevant_words[n] = relevant_words.get(n, 0) + words[i]
        for n, held in sorted(relevant_words.items()):
            share = held / sum(words[i] for i in groups[n])
            carried.setdefault(query_id, {})[f"L{n:04d}"] = 2 if share >= MAIN_SHARE else 1
    return carried


def title_queries(docs: list[Record], qrels: dict[str, dict[str, int]]) -> tuple[list[Record], dict]:
    """The titles of the abstracts relevant to test claims as queries (one per abstract, in qrels order);
    grade 2 for the titled abstract, 1 for the other abstracts relevant to any claim it is relevant to."""
    by_id = {d["_id"]: d for d in docs}
    claims_of: dict[str, list[str]] = {}
    for query_id, judged in qrels.items():
        for doc_id, grade in judged.items():
            if grade > 0 and doc_id in by_id:
                claims_of.setdefault(doc_id, []).append(query_id)
    queries: list[Record] = []
    judgements: dict[str, dict[str, int]] = {}
    for doc_id, claims in claims_of.items():
        query_id = f"T{doc_id}"
        queries.append({"_id": query_id, "text": by_id[doc_id]["title"]})
        related = {d for claim in claims for d, grade in qrels[claim].items() if grade > 0 and d in by_id}
        judgements[query_id] = {d: 2 if d == doc_id else 1 for d in sorted(related)}
    return queries, judgements


def title_pool(docs: list[Record], judgements: dict[str, dict[str, int]], seed: int = SEED) -> list[Record]:
    """The judged abstracts and TITLE_DISTRACTORS others drawn with the seed, in corpus order."""
    judged = {doc_id for judged in judgements.values() for doc_id in judged}
    others = [n for n, d in enumerate(docs) if d["_id"] not in judged]
    drawn = set(np.random.default_rng(seed).choice(others, TITLE_DISTRACTORS, replace=False).tolist())
    return [d for n, d in enumerate(docs) if d["_id"] in judged or n in drawn]


def build(scifact: Path, out: Path = OUT) -> dict[str, dict[str, int]]:
    """Write both collections under out; returns their sizes for SOURCE.md."""
    docs = read_jsonl(scifact / "corpus.jsonl")
    claims = {str(q["_id"]): q for q in read_jsonl(scifact / "queries.jsonl")}
    qrels = read_qrels(scifact / "qrels" / "test.tsv")
    groups = topical_groups(docs)
    carried = long_qrels(docs, groups, qrels)
    judged = {doc_id for judgements in carried.values() for doc_id in judgements}
    long_docs = [d for d in long_documents(docs, groups) if d["_id"] in judged]
    long_claims = [{"_id": q, "text": claims[q]["text"]} for q in carried]
    write_collection(out / "scifact-long", long_docs, long_claims, carried)
    queries, judgements = title_queries(docs, qrels)
    untitled = [{"_id": d["_id"], "title": "", "text": d["text"]} for d in title_pool(docs, judgements)]
    write_collection(out / "scifact-titles", untitled, queries, judgements)
    grades = [g for judged in carried.values() for g in judged.values()]
    return {
        "scifact-long": {
            "documents": len(long_docs),
            "queries": len(long_claims),
            "judgements": len(grades),
            "grade_2": grades.count(2),
        },
        "scifact-titles": {
            "documents": len(untitled),
            "queries": len(queries),
            "judgements": sum(len(j) for j in judgements.values()),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scifact", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    print(json.dumps(build(args.scifact, args.out), indent=2))


if __name__ == "__main__":
    main()
