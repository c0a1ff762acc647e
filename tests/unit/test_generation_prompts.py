"""The local model's prompt: few passages, each cut to the sentences that answer, rules in a fixed preamble."""

from __future__ import annotations

from generation_svc.backends import Passage, Turn
from generation_svc.prompts import (
    LOCAL_HISTORY_ANSWER_CHARS,
    LOCAL_PASSAGE_CHARS,
    LOCAL_PASSAGES,
    build_local_messages,
    focus,
    focus_passages,
)
from likeopt.text import tokenize

ABSTRACT = (
    "Envoy is a proxy written in C++. "
    "It was first built at Lyft. "
    "The admin interface listens on port 9901. "
    "Its listeners accept HTTP/2 and gRPC-web on port 8080. "
    "Configuration is rendered from one template."
)


def passage(n: int, text: str = ABSTRACT) -> Passage:
    return Passage(n, f"d{n}", f"d{n}#0", f"Title {n}", text)


def terms(question: str) -> set[str]:
    return set(tokenize(question))


def test_a_long_passage_keeps_its_most_relevant_sentences_in_their_order() -> None:
    focused = focus(passage(1), terms("Which port does the Envoy admin interface listen on?"), 90)
    assert focused.text == "Envoy is a proxy written in C++. The admin interface listens on port 9901."
    assert (focused.n, focused.doc_id, focused.title) == (1, "d1", "Title 1")


def test_sentences_that_do_not_fit_give_way_to_shorter_ones_that_do() -> None:
    focused = focus(passage(1), terms("Which port do listeners and the admin interface use?"), 60)
    assert focused.text == "The admin interface listens on port 9901."


def test_a_short_passage_is_kept_whole_with_its_spacing_tidied() -> None:
    assert focus(passage(1, "Short  text\nhere."), terms("anything"), 100).text == "Short text here."


def test_a_single_sentence_longer_than_the_budget_is_clipped_at_a_word() -> None:
    long = "The admin interface " + "listens " * 30 + "on port 9901."
    text = focus(passage(1, long), terms("admin interface"), 50).text
    assert text.startswith("The admin interface listens") and text.endswith(" …") and len(text) <= 52


def test_a_question_without_terms_keeps_the_opening_sentences() -> None:
    opening = "Envoy is a proxy written in C++. It was first built at Lyft."
    assert focus(passage(1), terms("what is it?"), 65).text == opening


def test_only_the_first_passages_are_kept_and_keep_their_numbers() -> None:
    passages = [passage(n) for n in range(1, 6)]
    focused = focus_passages("admin port", passages, 3, 50)
    assert [p.n for p in focused] == [1, 2, 3]
    assert all(len(p.text) <= 50 and "9901" in p.text for p in focused)


def test_the_local_prompt_is_short_titleless_and_asks_last() -> None:
    passages = [passage(n, ABSTRACT * 5) for n in range(1, 6)]
    messages = build_local_messages("Which port does the admin interface listen on?", passages, [])
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[-1]["content"]
    assert user.startswith("[1] ") and "Title" not in user and f"[{LOCAL_PASSAGES + 1}]" not in user
    assert user.endswith("Question: Which port does the admin interface listen on?")
    assert len(user) < LOCAL_PASSAGES * (LOCAL_PASSAGE_CHARS + 10) + 100


def test_the_local_system_message_is_the_same_for_every_question() -> None:
    """llama.cpp reads only what follows the prefix it already holds: the fixed rules come first."""
    first = build_local_messages("Which port?", [passage(1)], [])
    second = build_local_messages("Who built Envoy?", [passage(2, "Lyft did.")], [Turn("Hi?", "Hello.")])
    assert first[0] == second[0] and "[1]" in first[0]["content"]


def test_the_local_prompt_carries_only_the_last_turn_clipped() -> None:
    history = [Turn("First?", "One."), Turn("Second?", "word " * 200)]
    messages = build_local_messages("and then?", [passage(1)], history)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "Second?" and len(messages[2]["content"]) <= LOCAL_HISTORY_ANSWER_CHARS + 2
