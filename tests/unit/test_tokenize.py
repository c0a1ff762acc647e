"""tokenize: the BM25 term pipeline (NFKC, lowercase, \\w+, stop words, Snowball)."""

from likeopt.runtime.text import STOP_WORDS, TOKENIZER_VERSION, tokenize


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


def test_the_tokenizer_version_names_this_output() -> None:
    """Stores keep chunks' terms under TOKENIZER_VERSION: a change to the output above must raise it."""
    text = "The Studies of TNF-\u03b1 in 2019: \ufb01nding p53 and IL-6 dosing, repeatedly repeated."
    expected = ["studi", "tnf", "\u03b1", "2019", "find", "p53", "il", "6", "dose", "repeat", "repeat"]
    assert (TOKENIZER_VERSION, tokenize(text)) == (1, expected)
