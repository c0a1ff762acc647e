"""tokenize: the BM25 term pipeline (NFKC, casefold, words with their marks, CJK characters and bigrams, identifiers'
parts, stop words, Snowball)."""

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
    assert tokenize("p53 levels in 2019: 3 doses") == ["p53", "level", "2019", "3", "dose", "53"]


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


def test_chinese_runs_become_characters_and_overlapping_bigrams_so_a_word_inside_a_sentence_matches() -> None:
    assert tokenize("吸烟增加") == ["吸", "吸烟", "烟", "烟增", "增", "增加", "加"]
    assert set(tokenize("吸烟")) <= set(tokenize("长期吸烟增加风险"))


def test_a_one_character_word_and_a_character_a_query_has_only_inside_bigrams_match() -> None:
    assert set(tokenize("茶")) <= set(tokenize("我每天喝茶。"))
    question, answer = set(tokenize("熊猫吃什么\uff1f")), set(tokenize("它们主要吃竹子。"))  # no bigram in common
    assert question & answer == {"吃"}


def test_a_lone_cjk_character_is_a_term_and_latin_runs_inside_cjk_text_stay_whole() -> None:
    assert tokenize("肺 p53蛋白 Studies") == ["肺", "p53", "蛋", "蛋白", "白", "studi", "53"]


def test_japanese_and_korean_runs_become_characters_and_bigrams_half_width_kana_folded_first() -> None:
    assert tokenize("東京です") == ["東", "東京", "京", "京で", "で", "です", "す"]
    assert tokenize("\uff83\uff7d\uff84") == tokenize("テスト") == ["テ", "テス", "ス", "スト", "ト"]  # half-width
    assert tokenize("한국어 문장") == ["한", "한국", "국", "국어", "어", "문", "문장", "장"]


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("REQUEST_TIMEOUT_MS", ["request_timeout_m", "request", "timeout", "ms", "requesttimeoutm"]),
        ("get_user_by_id", ["get_user_by_id", "get", "user", "id", "getuserbyid"]),  # "by" is a stop word
        ("deleteUserAccount", ["deleteuseraccount", "delet", "user", "account"]),
        ("XMLHttpRequest", ["xmlhttprequest", "xml", "http", "request"]),
        ("__init__", ["__init__", "init"]),
        ("x86_64", ["x86_64", "86", "64", "x8664"]),
        ("IL6 COVID19", ["il6", "covid19", "il", "6", "covid", "19"]),  # words first, then the parts
    ],
)
def test_an_identifier_is_a_term_and_so_are_its_parts(text: str, terms: list[str]) -> None:
    assert tokenize(text) == terms


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("mRNA", ["mrna", "rna"]),  # no single letters: "m", "p" and "i" would match nearly everything
        ("p53", ["p53", "53"]),
        ("iPhone", ["iphon", "phone"]),
        ("pH", ["ph"]),
        ("PDFs DNA Studies", ["pdfs", "dna", "studi"]),  # capitals, a plural acronym, a capitalised word: whole
        ("IL-6 COVID-19", ["il", "6", "covid", "19"]),  # already words apart
    ],
)
def test_words_of_prose_with_capitals_or_digits_split_only_where_a_part_can_match(text: str, terms: list[str]) -> None:
    assert tokenize(text) == terms


@pytest.mark.parametrize(
    ("query", "document", "shared"),
    [
        ("request timeout", "Set REQUEST_TIMEOUT_MS to 30000.", {"request", "timeout"}),
        ("delete user account", "Call deleteUserAccount() first.", {"delet", "user", "account"}),
        ("getUserById", "def get_user_by_id(user_id):", {"getuserbyid"}),
        ("get_user_by_id", "user = repo.getUserById(42)", {"getuserbyid", "get", "user", "id"}),
        ("IL6", "IL-6 levels rose.", {"il", "6"}),
        ("COVID-19", "COVID19 patients", {"covid", "19"}),
    ],
)
def test_a_query_finds_an_identifier_by_its_words_or_in_another_spelling(
    query: str, document: str, shared: set[str]
) -> None:
    """As asked, and as the service searches: with normalise_query's casefolded text ("getuserbyid")."""
    for asked in (query, normalise_query(query)):
        assert set(tokenize(asked)) & set(tokenize(document)) >= shared, asked


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
    text += " 肺癌风险 Straße λόγος हिन्दी İstanbul REQUEST_TIMEOUT_MS mRNA"
    expected = ["studi", "tnf", "\u03b1", "2019", "find", "p53", "il", "6", "dose", "repeat", "repeat"]
    cjk = ["肺", "肺癌", "癌", "癌风", "风", "风险", "险"]
    others = ["strass", "λόγοσ", "हिन्दी", "istanbul", "request_timeout_m", "mrna"]
    parts = ["53", "request", "timeout", "ms", "requesttimeoutm", "rna"]
    assert (TOKENIZER_VERSION, tokenize(text)) == (4, expected + cjk + others + parts)


PLAIN = "The Studies of TNF-\u03b1 in 2019: \ufb01nding P-53 and IL-6 dosing, PDFs of DNA at pH 7,"
PLAIN += " caf\u00e9s na\u00efve \u00fcber \u00c9cole"
FLAGGED = ["肺癌风险", "Straße", "λόγος", "ΛΌΓΟΣ", "हिन्दी", "தமிழ்", "مُحَمَّد", "İstanbul", "q\u0307"]
FLAGGED += ["p53", "mRNA", "getUserById", "REQUEST_TIMEOUT_MS", "_private"]


def test_earlier_versions_said_to_differ_only_in_flagged_text_do() -> None:
    """Stores and Milvus collections of those versions keep the terms of text terms_may_differ does not flag."""
    assert SAME_TERMS_UNLESS_FLAGGED == {1, 2, 3}
    assert not terms_may_differ(PLAIN)
    assert tokenize(PLAIN) == _version_1(PLAIN)  # versions 2's and 3's too: they changed only flagged text
    for text in FLAGGED:
        assert terms_may_differ(f"{PLAIN} {text}"), text
        assert tokenize(text) != _version_1(text), text


def _version_1(text: str) -> list[str]:
    """Version 1's pipeline, before CJK bigrams and identifiers' parts."""
    words = re.findall(r"\w+", unicodedata.normalize("NFKC", text).lower())
    return Stemmer.Stemmer("english").stemWords([w for w in words if w not in STOP_WORDS])
