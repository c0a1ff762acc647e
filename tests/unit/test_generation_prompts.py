"""The local model's prompt: whole sentences that answer, Markdown removed, rules in a fixed preamble."""

from __future__ import annotations

from generation_svc.backends import Passage, Turn
from generation_svc.prompts import (
    LOCAL_HISTORY_ANSWER_CHARS,
    LOCAL_PASSAGE_CHARS,
    LOCAL_PASSAGES,
    build_messages,
    focus_passages,
    local_prompt,
    plain_text,
)

ABSTRACT = (
    "Envoy is a proxy written in C++. "
    "It was first built at Lyft. "
    "The admin interface listens on port 9901. "
    "Its listeners accept HTTP/2 and gRPC-web on port 8080. "
    "Configuration is rendered from one template."
)


def passage(n: int, text: str = ABSTRACT) -> Passage:
    return Passage(n, f"d{n}", f"d{n}#0", f"Title {n}", text)


def test_the_best_whole_sentences_are_kept_in_their_order() -> None:
    [focused] = focus_passages("Which port does the Envoy admin interface listen on?", [passage(1)], 1, 90)
    assert focused.text == "Envoy is a proxy written in C++. The admin interface listens on port 9901."
    assert (focused.n, focused.doc_id, focused.title) == (1, "d1", "Title 1")


def test_sentences_that_do_not_fit_give_way_to_shorter_ones_that_do() -> None:
    [focused] = focus_passages("Which port do listeners and the admin interface use?", [passage(1)], 1, 60)
    assert focused.text == "The admin interface listens on port 9901."


def test_a_sentence_longer_than_the_budget_is_kept_whole_or_not_at_all() -> None:
    long = "The admin interface " + "listens " * 30 + "on port 9901."
    [first] = focus_passages("admin interface", [passage(1, long)], 1, 50)
    assert first.text == " ".join(long.split())  # the best sentence, whole, though over budget
    later = focus_passages("admin interface", [passage(1, "The admin interface is small."), passage(2, long)], 2, 20)
    assert [p.text for p in later] == ["The admin interface is small."]
    assert all(not p.text.endswith("…") for p in [first, *later])


def test_markdown_syntax_is_removed_and_headings_are_not_read() -> None:
    markdown = "# The processes\n\n- **Envoy** listens on port `8080`, see [the docs](http://x).\n| a | b |\n|---|---|"
    assert plain_text(markdown).split("\n")[0] == "The processes"
    [focused] = focus_passages("Which port does Envoy listen on?", [passage(1, markdown)], 1, 200)
    assert focused.text == "Envoy listens on port 8080, see the docs."


def test_identifiers_and_arithmetic_keep_their_underscores_and_asterisks() -> None:
    kept = [
        "The setting QUOKKA_MAX_BATCH_SIZE; cache_svc and retrieval_svc; volume 2*3*4 m3",
        "Set LIKEOPT_API_KEY, then _private_var and snake_case_name.",
        "x*y + 2*z, a * b * c, and every *.md file under docs/**/*.py",
    ]
    for text in kept:
        assert plain_text(text) == text
    emphasis = "**Envoy** listens, _really_ and *truly*; see **`code`**, **_both_** and *Note:* this."
    assert plain_text(emphasis) == "Envoy listens, really and truly; see code, both and Note: this."
    [focused] = focus_passages("Which setting sets the batch size?", [passage(1, kept[0] + ".")], 1, 200)
    assert "QUOKKA_MAX_BATCH_SIZE" in focused.text and "2*3*4" in focused.text


def test_a_link_target_with_parentheses_leaves_only_its_words() -> None:
    # As the web UI's plainText does: the target used to end at its first ")", leaving "Foo) now."
    assert plain_text("See [Foo](https://example.org/wiki/Foo_(bar)) now.") == "See Foo now."
    assert plain_text("[click](javascript:alert(4)) x") == "click x"


def test_a_question_without_terms_reads_the_opening_sentences() -> None:
    [focused] = focus_passages("what is it?", [passage(1)], 1, 32)
    assert focused.text == "Envoy is a proxy written in C++."


def test_only_the_first_passages_are_kept_and_keep_their_numbers() -> None:
    passages = [passage(n) for n in range(1, 6)]
    focused = focus_passages("admin port", passages, 3, 50)
    assert [p.n for p in focused] == [1, 2, 3]
    assert all(len(p.text) <= 50 and "9901" in p.text for p in focused)


def test_the_local_prompt_is_short_titleless_and_asks_last() -> None:
    passages = [passage(n, ABSTRACT * 5) for n in range(1, 6)]
    messages = local_prompt("Which port does the admin interface listen on?", passages, []).messages
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[-1]["content"]
    assert user.startswith("[1] ") and "Title" not in user and f"[{LOCAL_PASSAGES + 1}]" not in user
    assert user.endswith("Question: Which port does the admin interface listen on?")
    assert len(user) < LOCAL_PASSAGES * (LOCAL_PASSAGE_CHARS + 10) + 100


def test_the_local_system_message_is_the_same_for_every_question() -> None:
    """llama.cpp reads only what follows the prefix it already holds: the fixed rules come first."""
    first = local_prompt("Which port?", [passage(1)], []).messages
    second = local_prompt("Who built Envoy?", [passage(2, "Lyft did.")], [Turn("Hi?", "Hello.")]).messages
    assert first[0] == second[0] and "[1]" in first[0]["content"]


def test_the_local_prompt_carries_only_the_last_turn_clipped() -> None:
    history = [Turn("First?", "One."), Turn("Second?", "word " * 200)]
    messages = local_prompt("and then?", [passage(1)], history).messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "Second?" and len(messages[2]["content"]) <= LOCAL_HISTORY_ANSWER_CHARS + 2


def test_earlier_answers_reach_every_prompt_without_their_citation_markers() -> None:
    """An earlier [2] meant that answer's passage 2: copied now, it would cite this prompt's passage 2."""
    history = [Turn("Which port?", "[2] Envoy listens on 8080 [1, 3]. The admin port is 9901 [2].")]
    for messages in (
        build_messages("and the admin port?", [passage(1)], history),
        local_prompt("and the admin port?", [passage(1)], history).messages,
    ):
        assert messages[-2] == {"role": "assistant", "content": "Envoy listens on 8080. The admin port is 9901."}
