"""Choose the semantic answer cache's cosine threshold from measured figures (not a test: prints figures).

Why: with ``LIKEOPT_SEMANTIC_CACHE_THRESHOLD`` set, generation_svc answers a question
from the cache when its embedding is at least that cosine-similar to a cached
question's. Too low a threshold serves one claim's answer to a different claim (a
false hit, which is a wrong answer); too high a threshold never fires on real
re-wordings. This script measures both sides with the service's own embedding model
(all-MiniLM-L6-v2, loaded in process, offline) so the default is chosen from figures:

* paraphrase hit rate: hand-written paraphrases of SciFact test claims
  (``benchmarks/data/scifact_paraphrases.jsonl``), the share of (claim, paraphrase)
  pairs whose cosine is at or above the threshold;
* false-hit rate: every pair of different SciFact test queries whose relevant
  document sets (qrels/test.tsv) do not intersect, the share at or above it;
* nearest neighbour: for each test query, the most similar other test query, which is
  what a cache lookup would return, and whether its relevant documents differ;
* shared-evidence pairs: different test queries citing the same documents (often the
  same claim with one word flipped, "increases" / "reduces"); they are not counted as
  false hits, but a cache hit between them would still answer the opposite claim.

The recommendation is the lowest threshold whose false-hit rate is at most 0.1 %.
Results are printed and written as the section "Semantic answer cache threshold" of
benchmarks/README.md (``--no-readme`` to skip).

Usage, from the repository root:
    python -m benchmarks.semantic_cache_threshold [--data /work/shared/data/scifact] [--no-readme]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval_svc.embedder import Embedder

PAIRS_FILE = Path(__file__).parent / "data" / "scifact_paraphrases.jsonl"
README = Path(__file__).parent / "README.md"
SECTION_TITLE = "## Semantic answer cache threshold"
README_INTRO = "# Like-Opt benchmarks\n"
THRESHOLDS = [round(0.70 + 0.01 * step, 2) for step in range(29)]  # 0.70 .. 0.98
MAX_FALSE_HIT_RATE = 0.001
MAX_NEGATIVE_PAIRS = 20_000
"""Negative pairs are sampled (fixed seed) only if there are more than this and --sample is given."""


@dataclass(frozen=True)
class Row:
    threshold: float
    paraphrase_hits: int
    lookup_correct: int
    lookup_wrong: int
    negative_hits: int
    nearest_false_hits: int
    shared_evidence_hits: int


def read_qrels(path: Path) -> dict[str, set[str]]:
    """Relevant corpus ids per query id, from a BEIR qrels TSV with a header row."""
    relevant: dict[str, set[str]] = {}
    with path.open(encoding="utf-8", newline="") as rows:
        reader = csv.reader(rows, delimiter="\t")
        next(reader)
        for query_id, corpus_id, score, *_ in reader:
            if int(score) > 0:
                relevant.setdefault(query_id, set()).add(corpus_id)
    return relevant


def read_jsonl(path: Path) -> list[dict]:
    """One record a non-blank line: the BEIR queries file and the paraphrase pairs are both JSON lines."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def pct(count: int, total: int) -> str:
    """A share to one decimal, or n/a when there is nothing to divide by."""
    return f"{100.0 * count / total:.1f} %" if total else "n/a"


def pct_fine(count: int, total: int) -> str:
    """A share to three decimals, fine enough to tell a false-hit rate from the 0.1 % target."""
    return f"{100.0 * count / total:.3f} %" if total else "n/a"


@dataclass(frozen=True)
class Cosines:
    """The similarity arrays every per-threshold count is taken from, so a count is one comparison."""

    pair: np.ndarray
    """Each paraphrase against its own claim."""
    top: np.ndarray
    """Each paraphrase against its best-matching test claim (all test claims cached)."""
    top_index: np.ndarray
    """The position in the test ids of that best match."""
    top_is_own: np.ndarray
    """Whether that best match is the paraphrase's own claim."""
    negative: np.ndarray
    """Pairs of different test queries whose relevant documents do not intersect (sampled with --sample)."""
    shared: np.ndarray
    """Pairs of different test queries whose relevant documents intersect."""
    nearest: np.ndarray
    """Each test query against the most similar other test query."""
    nearest_differs: np.ndarray
    """Whether that nearest other query has different relevant documents."""


def read_inputs(data: Path, pairs_file: Path) -> tuple[dict[str, set[str]], dict[str, str], list[str], list[dict]]:
    """Relevant documents by query, query texts, the test query ids in a stable order and the paraphrase pairs.

    A pair whose claim is not a test query, or whose text drifted from queries.jsonl, would measure
    something else without saying so, so it stops the run instead.
    """
    relevant = read_qrels(data / "qrels" / "test.tsv")
    texts = {record["_id"]: record["text"] for record in read_jsonl(data / "queries.jsonl")}
    test_ids = sorted(relevant, key=lambda qid: (len(qid), qid))
    pairs = read_jsonl(pairs_file)
    known = set(test_ids)
    for pair in pairs:
        if pair["query_id"] not in known:
            raise SystemExit(f"{pairs_file}: query {pair['query_id']} is not a SciFact test query")
        if pair["query"] != texts[pair["query_id"]]:
            raise SystemExit(f"{pairs_file}: query {pair['query_id']} text differs from queries.jsonl")
    return relevant, texts, test_ids, pairs


def embed(questions: list[str], paraphrases: list[str]) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Both sets of unit vectors from the service's own model, and the seconds its load and the encoding took."""
    started = time.perf_counter()
    embedder = Embedder()
    loaded = time.perf_counter()
    question_vectors = embedder.encode(questions)
    paraphrase_vectors = embedder.encode(paraphrases)
    embedded = time.perf_counter()
    return question_vectors, paraphrase_vectors, {"load": loaded - started, "embed": embedded - loaded}


def disjoint_evidence(relevant: dict[str, set[str]], first: list[str], second: list[str]) -> np.ndarray:
    """For each (first[k], second[k]) pair of query ids, whether their relevant documents do not intersect.

    Queries with disjoint evidence are different claims, so a cache hit between them is a wrong answer.
    """
    return np.array([not (relevant[a] & relevant[b]) for a, b in zip(first, second, strict=True)])


def nearest_other(
    similarity: np.ndarray, relevant: dict[str, set[str]], test_ids: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Each test query's cosine to the most similar *other* test query, and whether their evidence differs.

    That nearest query is what a lookup would hit with every other test answer cached.
    """
    masked = similarity.copy()
    np.fill_diagonal(masked, -np.inf)
    nearest = masked.argmax(axis=1)
    nearest_cosine = masked[np.arange(len(test_ids)), nearest]
    differs = disjoint_evidence(relevant, test_ids, [test_ids[int(k)] for k in nearest])
    return nearest_cosine, differs


def threshold_rows(cosines: Cosines) -> list[Row]:
    """The counts at every scanned threshold: hits wanted (paraphrases) against hits that answer wrongly."""
    return [
        Row(
            threshold=t,
            paraphrase_hits=int((cosines.pair >= t).sum()),
            lookup_correct=int(((cosines.top >= t) & cosines.top_is_own).sum()),
            lookup_wrong=int(((cosines.top >= t) & ~cosines.top_is_own).sum()),
            negative_hits=int((cosines.negative >= t).sum()),
            nearest_false_hits=int(((cosines.nearest >= t) & cosines.nearest_differs).sum()),
            shared_evidence_hits=int((cosines.shared >= t).sum()),
        )
        for t in THRESHOLDS
    ]


def wrong_lookups(
    cosines: Cosines, pairs: list[dict], texts: dict[str, str], relevant: dict[str, set[str]], test_ids: list[str]
) -> list[tuple[float, float, str, str, bool]]:
    """The paraphrases whose best match is another claim, most similar first, for the report to quote.

    Each is (best-match cosine, own-claim cosine, paraphrase, matched claim, whether the two share evidence).
    """
    found = []
    for k, pair in enumerate(pairs):
        if cosines.top_is_own[k]:
            continue
        matched = test_ids[int(cosines.top_index[k])]
        shares = bool(relevant[pair["query_id"]] & relevant[matched])
        found.append((float(cosines.top[k]), float(cosines.pair[k]), pair["paraphrase"], texts[matched], shares))
    return sorted(found, reverse=True)


def measure(data: Path, pairs_file: Path, sample: bool) -> dict:
    """Embed everything once and compute the per-threshold figures."""
    relevant, texts, test_ids, pairs = read_inputs(data, pairs_file)
    queries, paraphrases, seconds = embed([texts[qid] for qid in test_ids], [pair["paraphrase"] for pair in pairs])
    similarity = queries @ queries.T
    upper_i, upper_j = np.triu_indices(len(test_ids), k=1)
    disjoint = disjoint_evidence(relevant, [test_ids[i] for i in upper_i], [test_ids[j] for j in upper_j])
    negative = similarity[upper_i[disjoint], upper_j[disjoint]]
    negatives_total = int(negative.size)
    if sample and negative.size > MAX_NEGATIVE_PAIRS:
        negative = np.random.default_rng(20_261_126).choice(negative, MAX_NEGATIVE_PAIRS, replace=False)
    nearest_cosine, nearest_differs = nearest_other(similarity, relevant, test_ids)
    position = {qid: index for index, qid in enumerate(test_ids)}
    own = np.array([position[pair["query_id"]] for pair in pairs])
    lookup = paraphrases @ queries.T
    top = lookup.argmax(axis=1)
    cosines = Cosines(
        pair=np.einsum("ij,ij->i", queries[own], paraphrases),
        top=lookup[np.arange(len(pairs)), top],
        top_index=top,
        top_is_own=top == own,
        negative=negative,
        shared=similarity[upper_i[~disjoint], upper_j[~disjoint]],
        nearest=nearest_cosine,
        nearest_differs=nearest_differs,
    )
    shared_pairs = zip(upper_i[~disjoint], upper_j[~disjoint], strict=True)
    closest_shared = sorted(
        ((float(similarity[i, j]), test_ids[i], test_ids[j]) for i, j in shared_pairs), reverse=True
    )
    lowest = int(cosines.pair.argmin())
    return {
        "pairs": len(pairs),
        "queries": len(test_ids),
        "negatives_total": negatives_total,
        "negatives_used": int(negative.size),
        "shared_total": int(cosines.shared.size),
        "rows": threshold_rows(cosines),
        "pair_cosine": cosines.pair,
        "negative_max": float(negative.max()),
        "negative_p999": float(np.quantile(negative, 0.999)),
        "nearest_cosine": nearest_cosine,
        "nearest_differs": nearest_differs,
        "top_is_own": cosines.top_is_own,
        "shared_examples": [(c, texts[a], texts[b]) for c, a, b in closest_shared[:5]],
        "wrong_lookups": wrong_lookups(cosines, pairs, texts, relevant, test_ids),
        "lowest_pair": (float(cosines.pair[lowest]), pairs[lowest]["query"], pairs[lowest]["paraphrase"]),
        "seconds": seconds,
    }


def recommend(result: dict) -> tuple[Row | None, str]:
    """The recommended threshold and the paragraph that explains it.

    First the brief's rule: the lowest threshold whose false-hit rate on negative pairs
    is at most 0.1 %. But a lookup compares a question with every cached question, so
    the per-lookup rate (nearest other test query has different evidence and is at or
    above the threshold) is higher than the per-pair rate; the recommendation is the
    lowest threshold that also keeps that one at or below 0.1 % of test queries.
    """
    pairs, negatives, n = result["pairs"], result["negatives_used"], result["queries"]
    rows = result["rows"]
    by_pairs = next((r for r in rows if r.negative_hits <= MAX_FALSE_HIT_RATE * negatives), None)
    by_lookup = next(
        (
            r
            for r in rows
            if r.negative_hits <= MAX_FALSE_HIT_RATE * negatives and r.nearest_false_hits <= MAX_FALSE_HIT_RATE * n
        ),
        None,
    )
    if by_pairs is None:
        last = rows[-1]
        return None, (
            f"No threshold up to {last.threshold:.2f} keeps the false-hit rate at or below 0.1 %: at "
            f"{last.threshold:.2f} it is {pct_fine(last.negative_hits, negatives)} with a paraphrase hit rate of "
            f"{pct(last.paraphrase_hits, pairs)}; a semantic cache on this model trades wrong answers for hits."
        )
    lines = [
        f"Lowest threshold with a false-hit rate ≤ 0.1 % on negative pairs: {by_pairs.threshold:.2f} (paraphrase "
        f"hit rate {pct(by_pairs.paraphrase_hits, pairs)}, false-hit rate "
        f"{pct_fine(by_pairs.negative_hits, negatives)}, {by_pairs.negative_hits}/{negatives})"
        + (", the bottom of the scanned range, so this rule alone does not bind." if by_pairs is rows[0] else ".")
    ]
    if by_lookup is None:
        lines.append(
            "No threshold in the range keeps nearest-neighbour false hits at or below 0.1 % of queries; "
            f"recommended default: **{by_pairs.threshold:.2f}** by the pair rule alone."
        )
        return by_pairs, " ".join(lines)
    if by_lookup is not by_pairs:
        lines.append(
            f"Per lookup it is worse: at {by_pairs.threshold:.2f}, {by_pairs.nearest_false_hits}/{n} test queries "
            f"({pct(by_pairs.nearest_false_hits, n)}) have a nearest other query with different relevant documents "
            f"at or above it. The lowest threshold with no such nearest-neighbour false hit is "
            f"{by_lookup.threshold:.2f}."
        )
    lines.append(
        f"Recommended default: **{by_lookup.threshold:.2f}**: paraphrase hit rate "
        f"{pct(by_lookup.paraphrase_hits, pairs)} ({by_lookup.paraphrase_hits}/{pairs}), false-hit rate "
        f"{pct_fine(by_lookup.negative_hits, negatives)} ({by_lookup.negative_hits}/{negatives} negative pairs) and "
        f"{by_lookup.nearest_false_hits}/{n} nearest-neighbour false hits (0 of {n} bounds the per-lookup rate below "
        f"about {100 * 3 / n:.1f} % at 95 % confidence, not 0.1 %). The margin is thin: the most similar negative "
        f"pair is at {result['negative_max']:.3f}."
    )
    return by_lookup, " ".join(lines)


def table(result: dict) -> list[str]:
    """One Markdown row a threshold, so both sides of the trade (hits and false hits) read across."""
    pairs, negatives, n = result["pairs"], result["negatives_used"], result["queries"]
    lines = [
        "| threshold | paraphrase hit rate | lookup: own claim / other claim | false-hit rate (negative pairs) "
        "| nearest neighbour false hits | shared-evidence pairs ≥ t |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row.threshold:.2f} | {pct(row.paraphrase_hits, pairs)} ({row.paraphrase_hits}) "
            f"| {row.lookup_correct} / {row.lookup_wrong} "
            f"| {pct_fine(row.negative_hits, negatives)} ({row.negative_hits}) "
            f"| {row.nearest_false_hits}/{n} | {row.shared_evidence_hits}/{result['shared_total']} |"
        )
    return lines


def report_intro(result: dict, data: Path) -> list[str]:
    """The section's title, what was measured on which data, and what each table column means."""
    sampled = "" if result["negatives_used"] == result["negatives_total"] else " (fixed-seed sample)"
    return [
        SECTION_TITLE,
        "",
        "`python -m benchmarks.semantic_cache_threshold` (all-MiniLM-L6-v2 in process, cosine of unit vectors). "
        f"Data: {data.name} test split, {result['queries']} queries; {result['pairs']} hand-written (claim, "
        "paraphrase) pairs in `benchmarks/data/scifact_paraphrases.jsonl`; negative pairs = every pair of different "
        "test queries whose relevant documents (qrels/test.tsv) do not intersect: "
        f"{result['negatives_used']}{sampled} of {result['negatives_total']}.",
        "",
        "- *paraphrase hit rate*: share of pairs with cosine(claim, paraphrase) ≥ threshold;",
        "- *lookup*: with all test claims cached, paraphrases whose best match is ≥ threshold and is their own claim "
        "/ another claim;",
        "- *false-hit rate*: share of negative pairs with cosine ≥ threshold;",
        "- *nearest neighbour false hits*: test queries whose most similar other test query is ≥ threshold and has "
        "different relevant documents (a cache holding every other test answer would serve the wrong one);",
        "- *shared-evidence pairs*: different test queries with overlapping relevant documents (not counted as "
        "false hits), at or above the threshold.",
    ]


def statistic(values: np.ndarray, how: Callable[[np.ndarray], float]) -> float:
    """``how(values)`` as a float, or NaN when nothing was selected (numpy's median and max reject an empty array)."""
    return float(how(values)) if values.size else float("nan")


def similarity_findings(result: dict) -> list[str]:
    """How similar paraphrases, negative pairs and nearest neighbours are: the distributions behind the table."""
    quartiles = np.quantile(result["pair_cosine"], [0.0, 0.25, 0.5, 0.75, 1.0])
    nearest_cosine, differs = result["nearest_cosine"], result["nearest_differs"]
    lowest_cosine, lowest_claim, lowest_paraphrase = result["lowest_pair"]
    return [
        f"- Claim-paraphrase cosine: min {quartiles[0]:.3f}, quartiles {quartiles[1]:.3f} / {quartiles[2]:.3f} / "
        f"{quartiles[3]:.3f}, max {quartiles[4]:.3f}. Hardest pair ({lowest_cosine:.3f}): "
        f"“{lowest_claim}” vs “{lowest_paraphrase}”.",
        f"- Negative pairs: highest cosine {result['negative_max']:.3f}, 99.9th percentile "
        f"{result['negative_p999']:.3f}.",
        f"- Nearest other test query: {int(differs.sum())}/{result['queries']} have different relevant documents "
        f"(median cosine {statistic(nearest_cosine[differs], np.median):.3f}, "
        f"max {statistic(nearest_cosine[differs], np.max):.3f}); the other "
        f"{int((~differs).sum())} share evidence with their nearest neighbour "
        f"(median cosine {statistic(nearest_cosine[~differs], np.median):.3f}).",
    ]


def lookup_findings(result: dict) -> list[str]:
    """Which paraphrases a full cache would answer with another claim's answer, quoted one by one."""
    lines = [
        f"- With all test claims cached, {int(result['top_is_own'].sum())}/{result['pairs']} paraphrases have their "
        "own claim as best match."
    ]
    for top_cosine, own_cosine, paraphrase, matched, shared in result["wrong_lookups"]:
        lines.append(
            f"  - “{paraphrase}” matches “{matched}” at {top_cosine:.3f} (its own claim: {own_cosine:.3f}; "
            + ("same relevant documents, but another claim)." if shared else "different relevant documents).")
        )
    return lines


def risk_findings(result: dict, row: Row | None) -> list[str]:
    """The wrong answers a semantic hit can still give, overall and at the recommended threshold."""
    lines: list[str] = []
    if result["shared_examples"]:
        cosine, first, second = result["shared_examples"][0]
        lines.append(
            f"- Shared-evidence pairs are mostly the same claim with its direction flipped, up to {cosine:.3f} "
            f"(“{first}” vs “{second}”); the embedding does not separate them at any threshold in the range, and "
            "they are excluded from the false-hit rate. With such claims cached, a semantic hit can answer the "
            "opposite claim: that risk is why the semantic cache stays opt-in; the exact-match cache has none."
        )
    if row is not None:
        lines.append(
            f"- At {row.threshold:.2f}: {row.nearest_false_hits}/{result['queries']} nearest-neighbour false hits, "
            f"{row.shared_evidence_hits}/{result['shared_total']} shared-evidence pairs at or above it, and "
            f"{row.lookup_wrong}/{result['pairs']} paraphrase lookups would return another claim's answer."
        )
    return lines


def report(result: dict, data: Path) -> str:
    """The README section, in Markdown; also what is printed."""
    row, recommendation = recommend(result)
    lines = [
        *report_intro(result, data),
        "",
        *table(result),
        "",
        recommendation,
        "",
        "Findings:",
        "",
        *similarity_findings(result),
        *lookup_findings(result),
        *risk_findings(result, row),
    ]
    return "\n".join(lines) + "\n"


def write_section(section: str, readme: Path) -> None:
    """Put the section at the end of the README in one write, leaving other sections alone.

    Other sections are written concurrently by other people, so the file is re-read just
    before writing. A first run appends with a single O_APPEND write (which cannot clobber
    a concurrent append); a re-run replaces only this section via a same-directory
    temporary file and an atomic rename.
    """
    readme.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(readme, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(f"{README_INTRO}\n{section}")
        return
    current = readme.read_text(encoding="utf-8")
    start = current.find(f"\n{SECTION_TITLE}\n")
    if start < 0:
        separator = "" if current.endswith("\n\n") else ("\n" if current.endswith("\n") else "\n\n")
        fd = os.open(readme, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, f"{separator}{section}".encode())
        finally:
            os.close(fd)
        return
    end = current.find("\n## ", start + len(SECTION_TITLE) + 1)
    rest = current[end + 1 :] if end >= 0 else ""
    updated = current[: start + 1] + section + ("\n" + rest if rest else "")
    temporary = readme.with_name(f".{readme.name}.{os.getpid()}.tmp")
    temporary.write_text(updated, encoding="utf-8")
    os.replace(temporary, readme)


def main() -> None:
    """Measure, print the section, and write it into the README unless --no-readme."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--pairs", type=Path, default=PAIRS_FILE)
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--no-readme", action="store_true", help="print only; leave benchmarks/README.md alone")
    parser.add_argument("--sample", action="store_true", help=f"use at most {MAX_NEGATIVE_PAIRS} negative pairs")
    args = parser.parse_args()

    result = measure(args.data, args.pairs, args.sample)
    section = report(result, args.data)
    print(section)
    seconds = result["seconds"]
    print(f"(model load {seconds['load']:.1f} s, embedding {seconds['embed']:.1f} s)")
    if not args.no_readme:
        write_section(section, args.readme)
        print(f"wrote section to {args.readme}")


if __name__ == "__main__":
    main()
