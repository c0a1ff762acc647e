"""The extractive backend: an answer made of the passages' most relevant sentences.

No model is needed and the output is deterministic, so it serves when no language
model is available and in tests that need exact text. Each chosen sentence is
followed by the marker of the passage it came from.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal

from generation_svc.backends import Passage, Turn, Usage
from likeopt.runtime.text import ends_sentence, split_sentences, tokenize
from likeopt.runtime.text_layout import fenced, is_record, opens_list_item

NO_ANSWER = "I found nothing in the documents that answers this."

_PIECE = re.compile(r"\w+|[^\w\s]")
_LINK_TO_BEFORE = re.compile(
    r"(?:moreover|furthermore|however|in addition|additionally|thus|therefore|consequently|hence|also|"
    r"in contrast|by contrast|similarly|likewise|nevertheless|nonetheless|conversely|accordingly|besides|"
    r"finally|importantly|notably|interestingly|specifically|in particular|indeed|meanwhile|here|overall|"
    r"in summary|in conclusion|taken together|collectively|as a result|on the other hand|to this end),\s+",
    re.IGNORECASE,
)
"""Openings that lean on the sentence before, which an extracted sentence does not bring along."""
_PLAIN_WORD = re.compile(r"[a-z]+\b")
_SECTION_LABEL = re.compile(r"(?:(?:[A-Z]{2,}(?:\s*[,&/]\s*|\s+))+[A-Z]{4,}|[A-Z]{5,}):?\s+(?=[A-Z][a-z]|[AI]\s)")
"""A structured abstract's or report's heading run into its first sentence ("RESULTS We found...", "DESIGN,
SETTING, AND PARTICIPANTS A cohort..."): capitals ending in a word of four letters or more, or one such word of
five, so that an acronym opening a sentence ("DNA Methylation", "NASA Scientists", "FUNDING UK Medical") stays."""


def standalone(sentence: str) -> str:
    """sentence without a section heading run into it or an opening that refers to what came before it
    ("RESULTS Moreover, gene expression..." becomes "Gene expression..."); every word left is the passage's."""
    label = _SECTION_LABEL.match(sentence)
    if label is not None:
        sentence = sentence[label.end() :]
    link = _LINK_TO_BEFORE.match(sentence)
    if link is None or link.end() == len(sentence):
        return sentence
    rest = sentence[link.end() :]
    return rest[0].upper() + rest[1:] if _PLAIN_WORD.match(rest) else rest  # "mRNA" and "p53" keep their case


def count_pieces(text: str) -> int:
    """Words and punctuation marks in text: this backend has no model tokenizer, and a client's usage figures
    (OpenAI's ``usage``, the done event's token counts) should still say how much it read and wrote."""
    return len(_PIECE.findall(text))


def first_pieces(text: str, limit: int) -> str:
    """text up to the end of its limit-th piece (as count_pieces counts them); all of it when it has fewer."""
    for count, piece in enumerate(_PIECE.finditer(text), start=1):
        if count == limit:
            return text[: piece.end()]
    return text


HEADING_WORDS = 4
"""A line of fewer words with no sentence end is a heading ("Envoy notes", "Caching"), which says nothing."""
SENTENCE_ENDS = tuple(".!?;:)\"'\u201d\u3002\uff01\uff1f")


def is_heading(sentence: str, title: str = "") -> bool:
    """A short line without a sentence end, or the document's own title (which its text opens with): neither says
    anything ("Network ports of the lab projects. [1]" was quoted as a claim)."""
    if title and sentence.strip().rstrip(".:").casefold() == title.strip().rstrip(".:").casefold():
        return True
    return len(sentence.split()) < HEADING_WORDS and not sentence.rstrip().endswith(SENTENCE_ENDS)


MIN_LETTER_SHARE = 0.6
"""Prose is mostly letters and digits; a line of a diagram or table rule ("cache |------> answer") is not."""


def is_drawing(sentence: str) -> bool:
    marks = [ch for ch in sentence if not ch.isspace()]
    return sum(ch.isalnum() for ch in marks) < MIN_LETTER_SHARE * len(marks)


_RULE = re.compile(r"([-=_~*+])\1{3,}")
"""A run of one mark ("-----", "===="): a box's or arrow's line in a diagram, or a table's rule."""


def is_diagram(lines: str) -> bool:
    """Whether lines kept as written draw something: mostly marks, or a rule in any line. A diagram's words can
    outnumber its marks (a chunk holding its last box and a line of text), and it is no answer as a whole."""
    return is_drawing(lines) or _RULE.search(lines) is not None


MIN_SHARE_OF_BEST = 0.6
"""A passage is quoted only when it holds at least this part of the question's words that the best passage
holds: one word in common ("week", "layer") with a passage about something else does not make it an answer."""


def passages_about(terms: set[str], passages: list[Passage]) -> set[int]:
    """The numbers of the passages whose words cover the question nearly as well as the best one's do."""
    shares = {passage.n: len(terms & set(tokenize(f"{passage.title} {passage.text}"))) for passage in passages}
    enough = MIN_SHARE_OF_BEST * max(shares.values(), default=0)
    return {n for n, share in shares.items() if share and share >= enough}


QuoteKind = Literal["sentence", "row", "code"]


@dataclass(frozen=True)
class ScoredSentence:
    score: float
    passage_rank: int
    position: int
    text: str
    n: int
    kind: QuoteKind = "sentence"

    def quoted(self) -> str:
        """The text as the answer quotes it: code fenced, a sentence standalone, a row as it is."""
        if self.kind == "code":
            return fenced(self.text)
        return standalone(self.text) if self.kind == "sentence" else self.text


def term_share(terms: set[str], text: str) -> float:
    """The share of the question's terms that text contains; 0 without terms.

    The extractive answer ranks its quotes and the local model's trimmed passages their sentences by it, so the
    two agree on what is relevant."""
    return len(terms & set(tokenize(text))) / max(len(terms), 1)


def sentence_scores(terms: set[str], text: str) -> list[tuple[float, str]]:
    """Each sentence of text, in order, with its term_share."""
    return [(term_share(terms, sentence), sentence) for sentence in split_sentences(text)]


_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def quotes(text: str) -> list[tuple[QuoteKind, str]]:
    """A passage's quotable units in order, each with its kind. A chunk joins the lines of a paragraph
    (likeopt.runtime.text_layout), so lines it keeps apart are a record, a list or lines meant as written: a table
    row's cells make one quote, so a value ("Quantity: 42") comes with its row ("Item: Glimmerbolt"), though each
    line is only a heading's length; code is one quote, as a line of it means little alone; a list's items, prose
    and a diagram's lines (is_drawing leaves out those that draw) are quoted sentence by sentence."""
    found: list[tuple[QuoteKind, str]] = []
    for block in _BLANK_LINE.split(text):
        lines = [line.rstrip() for line in block.split("\n") if line.strip()]
        if len(lines) > 1 and is_record(lines):
            found.append(("row", "; ".join(line.strip() for line in lines)))
        elif len(lines) > 1 and is_preformatted(lines) and not is_diagram(block):
            found.append(("code", "\n".join(lines)))
        else:
            found += [("sentence", sentence) for sentence in split_sentences(block)]
    return found


def is_preformatted(lines: list[str]) -> bool:
    """Whether lines a chunk keeps apart are meant as written (code, a shell command and its options): not a list's
    items, and no line ends a sentence, as a heading over its sentence or a hard-wrapped paragraph of a caller's
    own context does."""
    return not opens_list_item(lines[0]) and not any(ends_sentence(line) for line in lines)


def code_within(code: str, terms: set[str], max_chars: int) -> str:
    """code whole when it has at most max_chars characters, else as many of its whole lines as fit from the first
    one sharing the most of the question's terms: quoted as written, never cut inside a line."""
    if len(code) <= max_chars:
        return code
    lines = code.split("\n")
    best = max(range(len(lines)), key=lambda i: (term_share(terms, lines[i]), -i))
    kept = [lines[best]]
    for line in lines[best + 1 :]:
        if len("\n".join([*kept, line])) > max_chars:
            break
        kept.append(line)
    return "\n".join(kept)


def passage_candidates(terms: set[str], rank: int, passage: Passage, max_chars: int) -> list[ScoredSentence]:
    """The passage's quotes sharing a term with the question, scored; never a drawing, nor a sentence that is a
    heading or the title."""
    found = []
    for position, (kind, text) in enumerate(quotes(passage.text)):
        if kind == "sentence" and is_heading(text, passage.title):
            continue
        if kind == "code":
            text = code_within(text, terms, max_chars)
        if (share := term_share(terms, text)) and not is_drawing(text):
            found.append(ScoredSentence(share - 0.02 * rank, rank, position, text, passage.n, kind))
    return found


def choose_sentences(
    question: str, passages: list[Passage], max_sentences: int = 3, max_chars: int = 700
) -> list[tuple[str, int]]:
    """The (quote, passage number) pairs that best cover the question, best first: sentences, table rows, and code
    as a fenced block (is_code)."""
    terms = set(tokenize(question))
    if not terms:
        return []
    about = passages_about(terms, passages)
    candidates = [
        candidate
        for rank, passage in enumerate(passages)
        if passage.n in about
        for candidate in passage_candidates(terms, rank, passage, max_chars)
    ]
    candidates.sort(key=lambda c: (-c.score, c.passage_rank, c.position))
    chosen: list[tuple[str, int]] = []
    seen: set[str] = set()
    used_chars = 0
    for candidate in candidates:
        fingerprint = " ".join(tokenize(candidate.text))
        if fingerprint in seen or (used_chars + len(candidate.text) > max_chars and chosen):
            continue
        seen.add(fingerprint)
        chosen.append((candidate.quoted(), candidate.n))
        used_chars += len(candidate.text)
        if len(chosen) == max_sentences:
            break
    return chosen


_FENCED = re.compile(r"(`{3,})\n.*\n\1", re.DOTALL)


def is_code(quote: str) -> bool:
    """Whether a chosen quote is code, which choose_sentences writes as a fenced block."""
    return _FENCED.fullmatch(quote) is not None


def ended(sentence: str) -> str:
    """sentence with a full stop when it has no sentence end ("rated at 40 bar", a table row "price: 40"): the
    answer is read back sentence by sentence (grounding), and one run into the next would cite both passages."""
    return sentence if ends_sentence(sentence) else f"{sentence.rstrip(' ,;:')}."


def cited(quote: str, n: int) -> str:
    """quote as the answer writes it, followed by its marker: a sentence ended; code as written, the marker on the
    line after its closing fence (inside it, it would read as code)."""
    return f"{quote}\n[{n}]" if is_code(quote) else f"{ended(quote)} [{n}]"


def cut_short(quote: str, n: int, room: int) -> str:
    """As much of quote as fits in room pieces with its marker ("" when nothing does): code keeps its fences, so
    what follows is not read as code."""
    if not is_code(quote):
        room -= count_pieces(f"[{n}]")
        return f"{first_pieces(quote, room)} [{n}]" if room > 0 else ""
    fence, code = code_parts(quote)
    room -= count_pieces(f"{fence}{fence}[{n}]")
    return f"{fence}\n{first_pieces(code, room)}\n{fence}\n[{n}]" if room > 0 else ""


def code_parts(quote: str) -> tuple[str, str]:
    """The fence and the code of a quote is_code holds."""
    fence, rest = quote.split("\n", 1)
    return fence, rest.rsplit("\n", 1)[0]


def joined(parts: list[tuple[str, bool]]) -> str:
    """Cited quotes, each with whether it is code, in a row: code on lines of its own, a blank line around it."""
    text = ""
    for position, (part, code) in enumerate(parts):
        after_code = position > 0 and parts[position - 1][1]
        text += ("\n\n" if code or after_code else " ") + part if text else part
    return text


def compose(chosen: list[tuple[str, int]], limit: int = 0) -> tuple[str, bool]:
    """Join chosen quotes, each ended (code as written) and followed by its citation marker, in at most limit pieces
    when it is set; and whether the limit cut the answer short. A cut quote keeps its marker, so its passage is
    still cited."""
    if not chosen:
        text = first_pieces(NO_ANSWER, limit) if limit else NO_ANSWER
        return text, text != NO_ANSWER
    parts: list[tuple[str, bool]] = []
    used = 0
    for quote, n in chosen:
        part = cited(quote, n)
        size = count_pieces(part)
        if limit and used + size > limit:
            if short := cut_short(quote, n, limit - used):
                parts.append((short, is_code(quote)))
            plain = code_parts(quote)[1] if is_code(quote) else part
            return joined(parts) or first_pieces(plain, limit - used), True
        parts.append((part, is_code(quote)))
        used += size
    return joined(parts), False


class ExtractiveBackend:
    """Streams the composed answer a few words at a time, as a model would."""

    name = "extractive"
    fingerprint = "extractive/8"

    def __init__(self, words_per_delta: int = 4) -> None:
        self.words_per_delta = words_per_delta

    async def stream(
        self, question: str, passages: list[Passage], history: list[Turn], usage: Usage, limit: int = 0
    ) -> AsyncGenerator[str, None]:
        chosen = choose_sentences(question, passages)
        usage.no_answer = not chosen
        answer, cut = compose(chosen, limit)
        if cut:
            usage.finish_reason = "length"
        usage.prompt_tokens = count_pieces(question) + sum(count_pieces(f"{p.title}\n{p.text}") for p in passages)
        words = answer.split(" ")
        for start in range(0, len(words), self.words_per_delta):
            piece = " ".join(words[start : start + self.words_per_delta])
            usage.completion_tokens += count_pieces(piece)  # what was written, when a stop sequence ends it early
            yield piece if start == 0 else " " + piece
            await asyncio.sleep(0)
