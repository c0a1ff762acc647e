"""tokenize: the BM25 term pipeline (NFKC, casefold, words with their marks, CJK bigrams, stop words, Snowball)."""

import re
import unicodedata

import pytest
import Stemmer

from likeopt.caching.cache_keys import normalise_query
from likeopt.runtime.text import (
    SAME_TERMS_UNLESS_FLAGGED,
    STOP_WORDS,
    TOKENIZER_VERSION,
    terms_may_differ,
    tokenize,
)


def test_lowercases_and_stems() -> None:
    assert tokenize("Running STUDIES Studied") == ["run", "studi", "studi"]


def test_drops_stop_words_but_keeps_repeats() -> None:
    assert tokenize("The cat and the hat, the cat.") == ["cat", "hat", "cat"]


def test_keeps_numbers_and_alphanumerics() -> None:
    assert tokenize("p53 levels in 2019: 3 doses") == ["p53", "level", "2019", "3", "dose"]


def test_splits_on_punctuation() -> None:
    assert tokenize("TNF-\u03b1/IL-6 (in vivo)") == ["tnf", "\u03b1", "il", "6", "vivo"]


def test_nfkc_folds_compatibility_forms() -> None:
    # The "fi" ligature and full-width "DNA".
    assert tokenize("\ufb01nding \uff24\uff2e\uff21") == tokenize("finding DNA") == ["find", "dna"]


def test_empty_and_stop_word_only_text() -> None:
    assert tokenize("") == []
    assert tokenize("  \n ") == []
    assert tokenize("It is what it is.") == []


def test_stop_list_is_the_classic_english_list() -> None:
    assert len(STOP_WORDS) == 127
    assert {"the", "and", "not", "s", "t"} <= STOP_WORDS
    assert "cancer" not in STOP_WORDS


def test_chinese_runs_become_overlapping_bigrams_so_a_word_inside_a_sentence_matches() -> None:
    assert tokenize("吸烟增加风险") == ["吸烟", "烟增", "增加", "加风", "风险"]
    assert set(tokenize("吸烟")) <= set(tokenize("长期吸烟增加风险"))


def test_a_lone_cjk_character_is_a_term_and_latin_runs_inside_cjk_text_stay_whole() -> None:
    assert tokenize("肺 p53蛋白 Studies") == ["肺", "p53", "蛋白", "studi"]


def test_japanese_and_korean_runs_become_bigrams_half_width_kana_folded_first() -> None:
    assert tokenize("東京です") == ["東京", "京で", "です"]
    assert tokenize("\uff83\uff7d\uff84") == tokenize("テスト") == ["テス", "スト"]  # half-width テスト
    assert tokenize("한국어 문장") == ["한국", "국어", "문장"]


@pytest.mark.parametrize(
    ("spellings", "term"),
    [
        (["Hauptstraße", "HAUPTSTRASSE", "hauptstrasse"], "hauptstrass"),
        (["Weißenburg", "WEISSENBURG"], "weissenburg"),
        (["λόγος", "ΛΌΓΟΣ", "λόγοσ"], "λόγοσ"),
        (["σοφός", "ΣΟΦΌΣ"], "σοφόσ"),
        (["İstanbul", "ISTANBUL", "istanbul", "Istanbul"], "istanbul"),
    ],
)
def test_case_is_folded_so_every_spelling_and_the_cache_normalised_query_meet(spellings: list[str], term: str) -> None:
    """retrieval_svc searches with normalise_query's casefolded text: the index must fold the same way."""
    for spelling in spellings:
        assert tokenize(spelling) == tokenize(normalise_query(spelling)) == [term], spelling


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("हिन्दी भाषा", ["हिन्दी", "भाषा"]),  # vowel signs and the virama are marks
        ("தமிழ் மொழி", ["தமிழ்", "மொழி"]),
        ("مُحَمَّد", ["مُحَمَّد"]),  # voweled Arabic
        ("q\u0307uark", ["q\u0307uark"]),  # a combining mark with no precomposed letter stays in its word
    ],
)
def test_combining_marks_belong_to_their_word(text: str, terms: list[str]) -> None:
    assert tokenize(text) == terms


def test_accents_are_not_folded_away() -> None:
    assert tokenize("café cafe Über uber") == ["café", "cafe", "über", "uber"]


def test_the_tokenizer_version_names_this_output() -> None:
    """Stores keep chunks' terms under TOKENIZER_VERSION: a change to the output above must raise it."""
    text = "The Studies of TNF-\u03b1 in 2019: \ufb01nding p53 and IL-6 dosing, repeatedly repeated."
    text += " 肺癌风险 Straße λόγος हिन्दी İstanbul"
    expected = ["studi", "tnf", "\u03b1", "2019", "find", "p53", "il", "6", "dose", "repeat", "repeat"]
    cjk = ["肺癌", "癌风", "风险"]
    assert (TOKENIZER_VERSION, tokenize(text)) == (3, expected + cjk + ["strass", "λόγοσ", "हिन्दी", "istanbul"])


PLAIN = "The Studies of TNF-\u03b1 in 2019: \ufb01nding p53 and IL-6 dosing, caf\u00e9s na\u00efve \u00fcber \u00c9cole"
FLAGGED = ["肺癌风险", "Straße", "λόγος", "ΛΌΓΟΣ", "हिन्दी", "தமிழ்", "مُحَمَّد", "İstanbul", "q\u0307"]


def test_earlier_versions_said_to_differ_only_in_flagged_text_do() -> None:
    """Stores and Milvus collections of those versions keep the terms of text terms_may_differ does not flag."""
    assert SAME_TERMS_UNLESS_FLAGGED == {1, 2}
    assert not terms_may_differ(PLAIN)
    assert tokenize(PLAIN) == _version_1(PLAIN)  # version 2's too: it changed only CJK terms
    for text in FLAGGED:
        assert terms_may_differ(f"{PLAIN} {text}"), text
        assert tokenize(text) != _version_1(text), text


def _version_1(text: str) -> list[str]:
    """Version 1's pipeline, before CJK bigrams."""
    words = re.findall(r"\w+", unicodedata.normalize("NFKC", text).lower())
    return Stemmer.Stemmer("english").stemWords([w for w in words if w not in STOP_WORDS])
