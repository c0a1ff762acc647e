"""The grounding check: is each answer sentence supported by the passage it cites?

A citation is a promise that the passage says what the sentence says. This module
checks the promise at answer time, for every backend, so that an unsupported
citation is marked rather than shown as proof.

How a sentence is scored: the share of its content words (likeopt.runtime.text's BM25 terms:
stemmed, stop words dropped) that occur in the cited passage (title and text). No
embedding model is loaded in generation_svc, and on SciFact's claim/evidence pairs one
would not help: MiniLM cosine separated supporting abstracts from the top-ranked
non-supporting ones with AUC 0.65, word recall with 0.79 (train) and 0.82 (test), and
their mean 0.78 (benchmarks/grounding_threshold.py; benchmarks/README.md "Answers").
``SUPPORTED`` was chosen there. The check tests whether the passage is about what the
sentence states, not whether it agrees: a contradicting passage scores like a supporting one,
except for figures: a sentence is scored down by the share of its numbers the passage does not state
near the sentence's other words.

Which passage a sentence cites: its own [n] markers. Backends place them differently
("Sentence. [1]" from the extractive backend, "[1] Sentence." from the local model, which
is made to begin with "[", "Sentence [1]." from chat models). An answer that opens with a
marker puts markers before what they cite; otherwise markers that open a sentence belong
to the sentence before when that one has none of its own. A sentence without markers
continues the last cited one (else the next one); an answer that cites nothing has
nothing supported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Set
from dataclasses import dataclass, field

from prometheus_client import Histogram

from generation_svc.backends import Passage
from likeopt.runtime.text import MARKER, cited_numbers, split_sentences, tokenize

RULES = "3"
"""Names the rules of this module: part of every answer-cache key, as a cached answer carries their verdicts; change
it whenever they change."""
SUPPORTED = 0.63
"""A sentence is supported by a passage holding at least this share of its content words: the threshold
that best separates SciFact train claims' evidence from their best-ranked unrelated passages (highest
Youden's J, benchmarks/grounding_threshold.py); 0.55 to 0.70 are within 0.04 of it."""
MIN_TERMS = 2
"""Sentences with fewer content words ("Yes.", "In short:") are not checked: one word proves nothing."""
FIGURE_COMPANY = 0.34
"""Share of a sentence's other content words that must stand near one of its figures in the passage."""
FIGURE_REACH = 3
"""Near a figure: within this many times the sentence's count of content words, either side. With 0.34 it keeps
the SciFact evidence pairs' supported share within 1.5 points of word recall alone, where the sentence's own
length and half its words cost 5 (benchmarks/README.md, session 26), and still refuses a port the passage gives
another service."""
MIN_FIGURE_REACH = 8
"""Near a figure, at least (a short sentence's words may sit further)."""

_NAMED = re.compile(r"\w*[^\W\d_]\w*")
"""A word with a letter in it: its digits name (BM25, L2, v1, 2nd), they state no figure."""
_LEADING = re.compile(r"^\s*(?:\[\d{1,3}\]\s*)+")
_SPACE_BEFORE_STOP = re.compile(r"\s+([.,;:!?])")
_MARKER_THEN_WORD = re.compile(r"\w[ \t]*\[\d{1,3}\][ \t]+(?=[^\W\d_])")
"""A marker after a word (not one opening a sentence, as answers that cite first write them) and before one."""
_CODE_BLOCK = re.compile(
    r"^ {0,3}(?P<fence>`{3,}|~{3,})[^\n]*\n(?P<code>.*?)(?:^ {0,3}(?P=fence)[ \t]*$|\Z)", re.M | re.S
)
"""A fenced code block of an answer, as Markdown writes one; unclosed, it runs to the end (an answer cut short)."""

SUPPORT_SCORES = Histogram(
    "likeopt_answer_support",
    "Per answer: the share of its checked sentences supported by the passage they cite (no-answers excluded).",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
)
SENTENCE_SCORES = Histogram(
    "likeopt_sentence_support_score",
    "Per checked answer sentence: the share of its content words found in the passage it cites.",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
)


@dataclass
class Claim:
    """One answer sentence (markers removed) and the passage numbers it cites."""

    text: str
    cited: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Grounding:
    """The check's verdict on one answer."""

    support: float
    """Share of checked sentences supported (0 when none could be checked)."""
    passage_support: dict[int, float]
    """Per cited passage number: the best score of a sentence citing it."""
    sentences: list[tuple[str, list[int], float]]
    """Each checked sentence, what it cites and its score (for evaluation and tests)."""

    def supported(self, n: int) -> bool:
        return self.passage_support.get(n, 0.0) >= SUPPORTED


def claims(answer: str, count: int) -> list[Claim]:
    """The answer's sentences with the valid passage numbers (1..count) each cites, see the module doc."""
    found: list[Claim] = []
    markers_lead = bool(_LEADING.match(answer))
    for sentence in _sentences(answer):
        leading = _LEADING.match(sentence)
        lead = cited_numbers(leading.group(), count) if leading else []
        rest = sentence[leading.end() :] if leading else sentence
        own = cited_numbers(rest, count)
        words = MARKER.sub(" ", rest).strip()
        if lead and found and not found[-1].cited and not markers_lead:
            found[-1].cited = lead
        elif lead:
            own = lead + [n for n in own if n not in lead]
        if words:
            found.append(Claim(_SPACE_BEFORE_STOP.sub(r"\1", " ".join(words.split())), own))
        elif own and found:  # a sentence of markers only ("[2]") belongs to the one before
            found[-1].cited = found[-1].cited + [n for n in own if n not in found[-1].cited]
    _inherit(found)
    return found


def _sentences(answer: str) -> list[str]:
    """The answer's sentences, a fenced code block being one (its lines without the fences): a line of code says
    little alone, and lines without a marker would take the citations of the sentence before the block."""
    found: list[str] = []
    at = 0
    for block in _CODE_BLOCK.finditer(answer):
        found += _prose_sentences(answer[at : block.start()])
        found += [block["code"].strip()] if block["code"].strip() else []
        at = block.end()
    return found + _prose_sentences(answer[at:])


def _prose_sentences(text: str) -> list[str]:
    """text's sentences, a citation marker followed by a capitalised word ending one too: a model may quote
    "… 40 bar [1] The Beta pump …" without the full stops, while "as shown in [1] and [2]." stays one."""

    def break_before_capital(marker: re.Match[str]) -> str:
        return f"{marker.group().rstrip()}\n" if text[marker.end()].isupper() else marker.group()

    return split_sentences(_MARKER_THEN_WORD.sub(break_before_capital, text))


def _inherit(found: list[Claim]) -> None:
    """Uncited sentences take the citations of the last cited sentence before them, else the next after."""
    last: list[int] = []
    for claim in found:
        if claim.cited:
            last = claim.cited
        else:
            claim.cited = list(last)
    following: list[int] = []
    for claim in reversed(found):
        if claim.cited:
            following = claim.cited
        else:
            claim.cited = list(following)


@dataclass(frozen=True)
class PassageTerms:
    """A passage's content words: as a set, in their order in its text, and those of its title (which heads all)."""

    words: frozenset[str]
    order: tuple[str, ...]
    heading: frozenset[str]

    @classmethod
    def of(cls, title: str, text: str) -> PassageTerms:
        heading, order = frozenset(tokenize(title)), tuple(tokenize(text))
        return cls(heading | frozenset(order), order, heading)

    def beside(self, figure: str, reach: int) -> Iterator[frozenset[str]]:
        """The words within reach of each place the passage states figure (with the title's)."""
        for at, term in enumerate(self.order):
            if term == figure:
                yield self.heading | frozenset(self.order[max(0, at - reach) : at + reach + 1])


NO_TERMS = PassageTerms(frozenset(), (), frozenset())
"""What a passage number the answer cites but no passage has holds."""


def figures_of(sentence: str) -> set[str]:
    """The numbers a sentence states, as tokenize gives them; not the digits of a name such as BM25, L2 or v1."""
    return {term for term in tokenize(_NAMED.sub(" ", sentence)) if term.isdigit()}


def sentence_score(terms: Set[str], passage: PassageTerms, figures: Set[str] = frozenset()) -> float:
    """Share of the sentence's content words that the passage holds, times the share of its figures (figures_of) that
    the passage states of the same thing: a wrong port, default or count changes one word of many, yet it is the
    error a reader cannot spot. A figure counts where the passage has at least FIGURE_COMPANY of the sentence's other
    words near it (a passage listing every service's port holds the wrong one too, beside another service's name);
    a sentence quoted whole always has its own."""
    if not terms:
        return 0.0
    share = len(terms & passage.words) / len(terms)
    if not figures:
        return share
    words, reach = terms - figures, max(MIN_FIGURE_REACH, FIGURE_REACH * len(terms))
    found = {
        figure
        for figure in figures
        if any(len(words & near) >= FIGURE_COMPANY * len(words) for near in passage.beside(figure, reach))
    }
    return share * len(found) / len(figures)


def check(answer: str, passages: list[Passage]) -> Grounding:
    """Score every checkable sentence against each passage it cites; see the module doc."""
    passage_terms = {p.n: PassageTerms.of(p.title, p.text) for p in passages}
    best: dict[int, float] = {}
    checked: list[tuple[str, list[int], float]] = []
    for claim in claims(answer, len(passages)):
        terms = set(tokenize(claim.text))
        if len(terms) < MIN_TERMS:
            continue
        figures = figures_of(claim.text)
        score = 0.0
        for n in claim.cited:
            own = sentence_score(terms, passage_terms.get(n, NO_TERMS), figures)
            best[n] = max(best.get(n, 0.0), own)
            score = max(score, own)
        checked.append((claim.text, claim.cited, score))
    support = sum(score >= SUPPORTED for _, _, score in checked) / len(checked) if checked else 0.0
    return Grounding(support, best, checked)


def observe(grounding: Grounding) -> None:
    """Record one generated answer's scores in Prometheus (replays from the cache are not recorded again)."""
    SUPPORT_SCORES.observe(grounding.support)
    for _, _, score in grounding.sentences:
        SENTENCE_SCORES.observe(score)
