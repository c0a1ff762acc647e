"""Text handling shared by every service: BM25 terms and sentence splitting.

retrieval_svc indexes and parses queries with ``tokenize``; generation_svc uses the same
terms and sentences to choose extractive answers, so both agree on what a word is.

Text to BM25 terms: the same function indexes chunks and parses queries.

Each choice below moves BM25 quality by several points, so change them only
with an evaluation run (`likeopt eval --mode bm25`):

- Unicode NFKC folds compatibility forms (ligatures, full-width letters,
  superscript digits) so that visually equal words match.
- Case folding (``str.casefold``, as query cache keys fold), so "Straße" and
  "STRASSE" meet and a Greek final sigma is the sigma inside a word; the dot
  above that "İ" folds to is dropped after "i", so "İstanbul" is "istanbul".
- Words are runs of letters, digits, underscores and combining marks: Python's
  `\\w` leaves out marks (Devanagari and Tamil vowel signs and viramas, Arabic
  vowels), which would cut "हिन्दी" into single letters. Accents are kept
  ("café" is not "cafe"): in those scripts a mark is part of the spelling.
  Pure-digit tokens are kept because numbers (years, doses, gene and protein
  names such as "p53" or "IL 6") carry meaning in queries.
- The classic 127-word English stop list drops function words that add
  noise and posting-list length but almost no evidence.
- Snowball ("Porter2") English stemming conflates inflections
  ("studies", "studied" -> "studi"), which helps recall on short queries.
- Chinese, Japanese and Korean write words without spaces between them, so a
  `\\w+` run there is a whole phrase or sentence that no query repeats. Such
  runs become their characters and overlapping character bigrams, as Lucene's
  CJKBigramFilter with outputUnigrams does: no dictionary to ship, a
  two-character word inside a sentence matches, and so does a one-character
  word ("茶") or a character a query holds only inside bigrams the document
  lacks. A document holding a query's bigram also holds both its characters,
  so at equal frequencies it outscores one holding the characters apart:
  bigrams still rank first.
- Identifiers keep their whole word as a term and add their parts after all
  the words, as Elasticsearch's word_delimiter_graph with preserve_original
  does: "REQUEST_TIMEOUT_MS" is also "request", "timeout" and "ms", and
  "getUserById" meets "get_user_by_id". Parts are split at underscores, case
  changes and between letters and digits, so "IL6" meets "IL-6" and "COVID19"
  "COVID-19"; single letters are no part ("mRNA" adds "rna", "p53" adds "53",
  "iPhone" "phone"); an identifier with underscores is also its parts joined,
  as the service's casefolded query "getuserbyid" asks. SciFact (`likeopt
  eval`): BM25 nDCG@10 0.6814 -> 0.6980, hybrid 0.7241 -> 0.7290. Whole
  abstracts under BM25 alone, claims casefolded: test 0.688 -> 0.700, train
  0.695 -> 0.708, of which splitting at case changes gives 0.003 and between
  letters and digits the rest; single letters as parts would cost 0.004 and
  0.001.
"""

from __future__ import annotations

import re
import sys
import threading
import unicodedata

import Stemmer

STOP_WORDS = frozenset(
    """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves what which who whom
    this that these those am is are was were be been being have has had having do does did
    doing a an the and but if or because as until while of at by for with about against between
    into through during before after above below to from up down in out on off over under again
    further then once here there when where why how all any both each few more most other some
    such no nor not only own same so than too very s t can will just don should now
    """.split()
)


def _class_texts(first: int, last: int) -> dict[str, str]:
    """The combining marks (Mn, Mc, Me: "M"), uppercase and titlecase letters ("Lu") and lowercase letters ("Ll")
    from code point first to last, each as character-class text of ranges: ``re`` has no ``\\p{M}`` or
    ``\\p{Lu}``. One pass over the code points for all three, as it is most of this module's import time."""
    group = {"Mn": "M", "Mc": "M", "Me": "M", "Lu": "Lu", "Lt": "Lu", "Ll": "Ll"}
    ranges: dict[str, list[list[int]]] = {"M": [], "Lu": [], "Ll": []}
    for code in range(first, last + 1):
        name = group.get(unicodedata.category(chr(code)))
        if name is None:
            continue
        found = ranges[name]
        if found and code == found[-1][1] + 1:
            found[-1][1] = code
        else:
            found.append([code, code])
    return {name: "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in found) for name, found in ranges.items()}


_BMP = _class_texts(0, 0xFFFF)
_ASTRAL = _class_texts(0x10000, sys.maxunicode)
_BMP_MARKS, _ASTRAL_MARKS = _BMP["M"], _ASTRAL["M"]
_WORD = re.compile(f"[\\w{_BMP_MARKS}]+")
"""A word of text within the Basic Multilingual Plane: ``re`` tests a class of such characters in one lookup."""
_ANY_WORD = re.compile(f"[\\w{_BMP_MARKS}{_ASTRAL_MARKS}]+")
"""A word of any text (a class with characters beyond the BMP is a list of ranges: three times slower)."""
_MARK = re.compile(f"[{_BMP_MARKS}{_ASTRAL_MARKS}]")
_BEYOND_BMP = "\U00010000"
_UPPER = _BMP["Lu"] + _ASTRAL["Lu"]
_LOWER = _BMP["Ll"] + _ASTRAL["Ll"]
_PART_BOUNDARY = re.compile(
    f"_+|(?<=[{_LOWER}])(?=[{_UPPER}])|(?<=[{_UPPER}])(?=[{_UPPER}][{_LOWER}]{{2}})"
    "|(?<=[^\\W\\d_])(?=\\d)|(?<=\\d)(?=[^\\W\\d_])"
)
"""Where an identifier splits into parts: underscores, lowercase to uppercase ("delete|User"), the last capital
of an acronym before a lowercase word ("HTTP|Server", but not "PDFs"), and letters to digits ("IL|6", "p|53")."""
MIN_PART_CHARS = 2
"""Letters an identifier's part needs to be a term of its own; a lone digit is one ("IL6" has "6")."""
_DOTTED_I = "i\u0307"
"""What "İ" casefolds to: i and a combining dot above, which Turkish alone writes and "I" never gets."""
_HANGUL = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
_KANA = "\u3040-\u30ff\u31f0-\u31ff"
_HAN = "\u3005\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
"""Han ideographs with 々; these ranges, as character-class text, are as NFKC leaves the scripts."""
_CJK_CHARS = _HANGUL + _KANA + _HAN
_CJK = re.compile(f"[{_CJK_CHARS}]")
_CJK_OR_OTHER_RUN = re.compile(f"[{_CJK_CHARS}]+|[^{_CJK_CHARS}]+")

TOKENIZER_VERSION = 4
"""Raise it with any change to what ``tokenize`` returns: stores keep chunks' terms under this version, and
terms from another are computed again (a unit test pins the output of this version)."""
SAME_TERMS_UNLESS_FLAGGED = frozenset({1, 2, 3})
"""Earlier versions whose terms differ from this one's only in text ``terms_may_differ`` flags: a store of
them recomputes the terms of those chunks alone (version 2 bigrammed CJK runs, version 3 casefolds and keeps
combining marks in words, version 4 adds CJK characters and identifiers' parts)."""

# PyStemmer instances keep internal state and must not be shared between
# threads, and the gRPC server tokenises queries on a thread pool: one each.
_local = threading.local()


def _stemmer() -> Stemmer.Stemmer:
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


def terms_may_differ(text: str) -> bool:
    """Whether text's terms could differ between a version in SAME_TERMS_UNLESS_FLAGGED and this one: it holds
    Chinese, Japanese or Korean characters, a character whose case folding is not its lowercase (ß, ς), a
    combining mark (which "İ" lowercases to) or an identifier with parts. Other text keeps its stored terms."""
    normal = unicodedata.normalize("NFKC", text)
    lowered = normal.lower()
    if _CJK.search(normal) is not None or lowered != normal.casefold() or _MARK.search(lowered) is not None:
        return True
    return bool(_parts_of_identifiers(_words(normal)))


def tokenize(text: str) -> list[str]:
    """The BM25 terms of text: its words in order, then the parts of its identifiers; repeats kept (term
    frequency matters)."""
    normal = unicodedata.normalize("NFKC", text)
    originals = _words(normal)
    if not originals:
        return []
    # Casefolded as a whole, as the words' text: no character of NFKC's output folds into a space or another
    # character class, so these are the words of the casefolded text.
    words = " ".join(originals).casefold().replace(_DOTTED_I, "i").split(" ")
    if _CJK.search(normal):
        words = [term for word in words for term in _cjk_grams(word)]
        originals = [run for word in originals for run in _CJK.split(word) if run]  # identifiers' runs
    parts = _parts_of_identifiers(originals)
    words += " ".join(parts).casefold().replace(_DOTTED_I, "i").split(" ") if parts else []
    return _stemmer().stemWords([w for w in words if w not in STOP_WORDS])


def _words(normal: str) -> list[str]:
    """The words of NFKC-normalised text, their case kept (identifiers split by it)."""
    return (_WORD if normal.isascii() or max(normal) < _BEYOND_BMP else _ANY_WORD).findall(normal)


def _parts_of_identifiers(words: list[str]) -> list[str]:
    """The parts of the identifiers among words (their case kept), in order. Words of lowercase letters, most of
    prose, are passed over at once."""
    return [part for word in words if not (word.islower() and word.isalpha()) for part in _identifier_parts(word)]


def _identifier_parts(word: str) -> list[str]:
    """The parts of a word that is an identifier, split at _PART_BOUNDARY ("request_timeout_ms" has "request",
    "timeout" and "ms"; "mRNA" "RNA"), none for any other word. Single letters are left out as too ambiguous to
    match on their own ("m" of "mRNA", "p" of "p53"; "pH" has no part). The word stays a term too, as with
    Elasticsearch's word_delimiter_graph and preserve_original, so that both the identifier and its words match.

    Words of letters in one case or capitalised, and numbers, are passed over with string methods, which can
    tell that they have no boundary: _PART_BOUNDARY takes about 2 µs a word."""
    if (word.isalpha() and (word.islower() or word.istitle() or word.isupper())) or word.isdigit():
        return []
    pieces = _PART_BOUNDARY.split(word)
    if len(pieces) == 1:
        return []
    parts = [piece for piece in pieces if len(piece) >= MIN_PART_CHARS or piece.isdigit()]
    joined = word.replace("_", "")
    if joined != word and joined and joined not in parts:
        parts.append(joined)  # "get_user_by_id" is "getuserbyid" too, which "getUserById" is casefolded
    return parts


def _cjk_grams(word: str) -> list[str]:
    """word with each run of CJK characters in it replaced by that run's characters and overlapping bigrams, in
    order of position (a bigram after its first character)."""
    terms: list[str] = []
    for run in _CJK_OR_OTHER_RUN.findall(word):
        if not _CJK.match(run):
            terms.append(run)
            continue
        for i, char in enumerate(run):
            terms.append(char)
            if i + 1 < len(run):
                terms.append(run[i : i + 2])
    return terms


_END = re.compile(
    "[.!?\u037e\u0589\u061f\u06d4\u0964\u0965]+[\"'\u201d\u2019)\\]]*(?=\\s)|[\u3002\uff01\uff1f\uff61]+[\u300d\u300f\uff09\u201d\u2019]*|\n"
)
"""A sentence end: terminal punctuation (Latin, and the Greek, Armenian, Arabic, Urdu and Devanagari stops)
with closing quotes or brackets before whitespace, an ideographic full stop, exclamation or question mark
(and closing brackets), or a newline.

Requiring whitespace after Latin punctuation keeps decimals ("3.5") and
identifiers ("e.coli") whole; Chinese and Japanese put no space after "。",
so it ends a sentence as it is. Newlines end sentences because headings, list
items, table rows and lines of code rarely end in punctuation. A hard-wrapped
paragraph's newlines fall mid-sentence, so the chunker joins its lines before
splitting it (likeopt.runtime.text_layout), and a newline left in a chunk is one
its writer meant.
"""


def ends_sentence(text: str) -> bool:
    """Whether text ends as split_sentences ends a sentence (a newline aside), so that what follows starts anew."""
    stripped = text.rstrip()
    return any(end.end() == len(stripped) for end in _END.finditer(f"{stripped} "))


_UNSPACED = re.compile(f"[{_KANA}{_HAN}\u3000-\u303f\uff00-\uffef]")
"""Kana, Han and ideographic or full-width punctuation: Chinese and Japanese put no space between sentences."""


def sentence_gap(before: str, after: str) -> str:
    """What separates two sentences written in a row: nothing between Chinese or Japanese ones, else a space."""
    return "" if _UNSPACED.match(before[-1:]) and _UNSPACED.match(after[:1]) else " "


MARKER = re.compile(r"\[(\d{1,3})\]")
"""A citation marker as answers carry them, one passage each ("[2]"): what generation_svc cites and grounds, the
OpenAI Responses API annotates and the web UI links (a model's lists, "[1, 3]", are written one by one)."""


def cited_numbers(text: str, count: int) -> list[int]:
    """Passage numbers cited by markers in text, in order of first citation, only those of passages 1..count."""
    seen: dict[int, None] = {}
    for match in MARKER.finditer(text):
        if 1 <= (n := int(match.group(1))) <= count:
            seen.setdefault(n)
    return list(seen)


_LAST_WORD = re.compile(r"\S+$")
_CITATION_NEXT = re.compile(r"\s+" + MARKER.pattern)

_ABBREVIATIONS = frozenset(
    """
    e.g i.e al etc vs cf ca approx resp fig figs eq eqs ref refs tab sec ch vol pp
    dr mr mrs ms prof st jr sr inc ltd co
    """.split()
)
"""Words whose trailing period does not end a sentence, lowercased, without the final period."""


def split_sentences(text: str) -> list[str]:
    """The sentences of text, stripped, empty ones dropped."""
    sentences: list[str] = []
    start = 0
    for end in _END.finditer(text):
        if end.group().startswith(".") and _is_abbreviation(text, end.start()):
            continue
        _append_stripped(sentences, text[start : end.end()])
        start = end.end()
    _append_stripped(sentences, text[start:])
    return sentences


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the period at text[dot] closes an abbreviation or an initial ("J. Smith"). Not when a citation
    marker follows: "vitamin D. [1]" ends a sentence of an answer, as nothing abbreviated is cited."""
    word = _LAST_WORD.search(text, max(0, dot - 16), dot)
    if word is None or _CITATION_NEXT.match(text, dot + 1):
        return False
    stem = word.group().lstrip("([{\"'\u201c\u2018").lower()
    return stem in _ABBREVIATIONS or (len(stem) == 1 and stem.isalpha())


def _append_stripped(sentences: list[str], sentence: str) -> None:
    if stripped := sentence.strip():
        sentences.append(stripped)
