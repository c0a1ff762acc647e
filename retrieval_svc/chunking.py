"""Split documents into sentence-aligned chunks that fit the embedding model's window.

The embedding model silently truncates input beyond its window (256 word
pieces), so every chunk is measured with the caller's token counter and
nothing is ever cut: sentences are packed while they fit, an over-long
sentence is split at word boundaries, and an over-long word at characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import pairwise

from likeopt.runtime.text import sentence_gap, split_sentences
from likeopt.runtime.text_layout import pieces

LONGEST_WORD_CHARS = 100
"""The longest run without white space kept whole. BERT's WordPiece reads a longer word as one [UNK] token, so the
token count cannot bound its size: a 200,000-character word was one chunk, returned whole in hits and citations."""
_LONG_WORD = re.compile(rf"\S{{{LONGEST_WORD_CHARS + 1}}}")


def chunk_text(text: str, count_tokens: Callable[[str], int], max_tokens: int, overlap_sentences: int) -> list[str]:
    """Pack consecutive sentences into chunks of at most max_tokens tokens.

    Consecutive chunks share up to overlap_sentences sentences, so a passage
    cut at a boundary is still whole in one chunk; the overlap shrinks when
    it would leave no room for a new sentence. Sentences within a chunk keep
    the text's paragraph breaks and code's lines, and are otherwise joined as
    their script writes them (likeopt.runtime.text.sentence_gap): a
    hard-wrapped paragraph's line breaks are not kept (text_layout).
    """
    if max_tokens < 1 or overlap_sentences < 0:
        raise ValueError("max_tokens must be >= 1 and overlap_sentences >= 0")

    def fits(candidate: str) -> bool:
        return count_tokens(candidate) <= max_tokens

    units, gaps = _units(text, fits)
    joined = _joiner(units, gaps[:-1])
    chunks: list[str] = []
    start, end = -1, 0
    while end < len(units):
        start = max(end - overlap_sentences, start + 1)
        while start < end and not fits(joined(start, end + 1)):
            start += 1
        end = _longest_fit(len(units), start, end + 1, lambda s, e: fits(joined(s, e)))
        chunks.append(joined(start, end))
    return chunks


def _units(text: str, fits: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """The packing units of text, each fitting (its sentences, and the lines of code it keeps), and the layout
    after each: a paragraph break, a kept line break, else the gap the script writes between sentences.

    A paragraph break stays, so a heading or a paragraph ending without a stop is still a sentence of its own
    when the chunk is split again (an extractive answer read "The processes Envoy listens on port 8080"). The
    layout is read before sentences are split (likeopt.runtime.text_layout), because split_sentences ends one at
    every line break: a hard-wrapped paragraph cut there gave units and answers ending mid-sentence ("...resumes
    the transfer from the last."), and indented wrapped lines kept their breaks and indentation in chunks."""
    units: list[str] = []
    gaps: list[str] = []
    for piece in pieces(text):
        sentences = split_sentences(piece.text) if piece.prose else [piece.text]
        afters = [sentence_gap(before, after) for before, after in pairwise(sentences)] + [piece.after]
        for sentence, after in zip(sentences, afters, strict=True):
            fitted = _fit_sentence(sentence, fits)
            units += fitted
            gaps += [" "] * (len(fitted) - 1) + [after]
    return units, gaps


def _fit_sentence(sentence: str, fits: Callable[[str], bool]) -> list[str]:
    """sentence as one piece if it fits, else word-boundary pieces that each fit, a word over LONGEST_WORD_CHARS
    cut into pieces of at most that many characters."""
    if _LONG_WORD.search(sentence) is None and fits(sentence):
        return [sentence]

    def word_fits(word: str) -> bool:
        return len(word) <= LONGEST_WORD_CHARS and fits(word)

    words = [
        piece
        for word in sentence.split()
        for piece in ([word] if word_fits(word) else _pack(list(word), "", word_fits))
    ]
    return _pack(words, " ", fits)


def _pack(units: list[str], sep: str, fits: Callable[[str], bool]) -> list[str]:
    """Greedy pieces of consecutive units joined by sep, each fitting; no overlap."""
    joined = _joiner(units, [sep] * (len(units) - 1))
    pieces: list[str] = []
    start = 0
    while start < len(units):
        if not fits(units[start]):
            raise ValueError(f"max_tokens is too small to hold even {units[start]!r}")
        end = _longest_fit(len(units), start, start + 1, lambda s, e: fits(joined(s, e)))
        pieces.append(joined(start, end))
        start = end
    return pieces


def _joiner(units: list[str], gaps: list[str]) -> Callable[[int, int], str]:
    """A function of (s, e) giving units[s:e] with gaps[i] between units i and i + 1, in one str.join."""
    followed = [unit + gap for unit, gap in zip(units[:-1], gaps, strict=True)]

    def joined(start: int, end: int) -> str:
        return "".join(followed[start : end - 1]) + units[end - 1]

    return joined


def _longest_fit(count: int, start: int, end: int, fits: Callable[[int, int], bool]) -> int:
    """The largest e <= count, e >= end, such that fits(start, e), the units start to e joined; fits(start, end)
    must hold.

    Gallops then bisects, so a run of n units costs O(log n) token counts
    rather than n (long unpunctuated text would otherwise be quadratic). It
    relies on longer text never having fewer tokens; if a tokenizer breaks
    that, a piece can come out shorter than possible but never over the limit,
    because only measured candidates are accepted.
    """
    step = 1
    while end + step <= count and fits(start, end + step):
        end += step
        step *= 2
    beyond = min(end + step, count + 1)  # smallest end known not to fit, or past the last unit
    while beyond - end > 1:
        middle = (end + beyond) // 2
        if fits(start, middle):
            end = middle
        else:
            beyond = middle
    return end
