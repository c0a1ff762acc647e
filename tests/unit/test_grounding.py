"""The grounding check: which passage each answer sentence cites, and whether that passage supports it."""

from __future__ import annotations

from pathlib import Path

from generation_svc.backends import Passage
from generation_svc.extractive import choose_sentences, compose
from generation_svc.grounding import SUPPORTED, check, claims

PASSAGES = [
    Passage(1, "architecture.md", "architecture.md#0", "Architecture", "Envoy listens on port 8080. It routes /api."),
    Passage(2, "caching.md", "caching.md#0", "Caching", "Redis holds the shared cache layer behind an LRU."),
]


def cited(answer: str) -> list[tuple[str, list[int]]]:
    return [(c.text, c.cited) for c in claims(answer, len(PASSAGES))]


def test_markers_after_the_sentence_cite_it_as_the_extractive_backend_writes_them() -> None:
    assert cited("Envoy listens on port 8080. [1] Redis holds the cache. [2]") == [
        ("Envoy listens on port 8080.", [1]),
        ("Redis holds the cache.", [2]),
    ]


def test_a_sentence_ending_in_a_single_letter_keeps_its_own_citation() -> None:
    """A single letter before "[1]" is not an initial: merged with the next sentence, neither was found supported."""
    assert cited("Envoy listens on plan B. [1] Redis holds the cache. [2]") == [
        ("Envoy listens on plan B.", [1]),
        ("Redis holds the cache.", [2]),
    ]


def test_markers_before_the_sentence_cite_it_when_the_answer_opens_with_one() -> None:
    assert cited("[1] Envoy listens on port 8080. It routes requests. [2] Redis holds the cache.") == [
        ("Envoy listens on port 8080.", [1]),
        ("It routes requests.", [1]),
        ("Redis holds the cache.", [2]),
    ]


def test_markers_inside_the_sentence_and_out_of_range_ones() -> None:
    assert cited("Envoy listens on port 8080 [1][7]. Redis holds it [2].") == [
        ("Envoy listens on port 8080.", [1]),
        ("Redis holds it.", [2]),
    ]


def test_an_uncited_opening_sentence_takes_the_next_citation() -> None:
    assert cited("In short, Envoy is the door. It listens on 8080 [1].")[0][1] == [1]


def test_an_extractive_answer_is_wholly_supported() -> None:
    answer, _ = compose(choose_sentences("Which port does Envoy listen on?", PASSAGES))
    grounding = check(answer, PASSAGES)
    assert grounding.support == 1.0 and grounding.supported(1)


def test_a_sentence_its_passage_does_not_hold_is_unsupported() -> None:
    grounding = check("Envoy listens on port 8080 [1]. Kafka stores every message for a week [2].", PASSAGES)
    assert grounding.supported(1) and not grounding.supported(2)
    assert grounding.support == 0.5
    assert grounding.passage_support[2] < SUPPORTED


def test_a_misattributed_citation_is_caught() -> None:
    grounding = check("Redis holds the shared cache layer [1].", PASSAGES)
    assert not grounding.supported(1) and grounding.support == 0.0


def test_an_answer_citing_nothing_has_nothing_supported() -> None:
    assert check("Envoy listens on port 8080.", PASSAGES).support == 0.0


def test_sentences_too_short_to_check_are_not_counted() -> None:
    grounding = check("Yes. Envoy listens on port 8080 [1].", PASSAGES)
    assert [text for text, _, _ in grounding.sentences] == ["Envoy listens on port 8080."]
    assert grounding.support == 1.0


def test_chinese_answers_are_checked_sentence_by_sentence_against_what_they_cite() -> None:
    passages = [
        Passage(1, "lung.md", "lung.md#0", "肺癌", "肺癌是一种常见的癌症。长期吸烟会增加患肺癌的风险。"),
        Passage(2, "city.md", "city.md#0", "东京", "东京是日本的首都。"),
    ]
    answer, _ = compose(choose_sentences("吸烟会增加什么风险\uff1f", passages))
    assert answer == "长期吸烟会增加患肺癌的风险。 [1]"
    assert check(answer, passages).support == 1.0
    grounding = check("长期吸烟会增加患肺癌的风险。[1] 东京是日本的首都。[1]", passages)
    assert grounding.support == 0.5 and [score >= SUPPORTED for _, _, score in grounding.sentences] == [True, False]


def test_a_passage_sharing_one_word_with_the_question_is_not_quoted() -> None:
    """Found with notes beside SciFact: "The on-call engineer this week is Maria. [1]" went on with an unrelated
    abstract's sentence about mice, which shared only "week" with the question."""
    rota = Passage(1, "rota.md", "rota.md#0", "On-call rota", "The on-call engineer this week is Maria.")
    mice = Passage(2, "123", "123#0", "Adipocytes", "We followed labelled adipocytes in mice for one week.")
    assert choose_sentences("Who is on call this week?", [rota, mice]) == [
        ("The on-call engineer this week is Maria.", 1)
    ]
    layers = Passage(1, "cache.md", "cache.md#0", "Cache notes", "Like-Opt has two cache layers: L1 and L2.")
    retina = Passage(2, "456", "456#0", "Retina", "Circuits in the inner plexiform layer compute motion.")
    assert [n for _, n in choose_sentences("What are the cache layers?", [layers, retina])] == [1]


def test_a_line_of_a_diagram_is_never_chosen_as_an_answer_sentence() -> None:
    """Found in the web UI: "retrieval_svc near cache  |------------> answer. [1]" answered "What does retrieval_svc
    do?" from a fenced diagram in docs/caching.md."""
    text = "retrieval_svc near cache  |----------------------------------> answer\nretrieval_svc searches the index."
    diagram = Passage(1, "caching.md", "caching.md#3", "Caching", text)
    assert choose_sentences("What does retrieval_svc do?", [diagram]) == [("retrieval_svc searches the index.", 1)]


def test_a_heading_is_never_chosen_as_an_answer_sentence() -> None:
    """Found in the web UI: "Envoy notes [1]" (a document's heading) came after the sentence that answered."""
    notes = Passage(1, "envoy.md", "envoy.md#0", "Envoy notes", "Envoy notes\nEnvoy listens on port 8080 for the API.")
    assert choose_sentences("Which port does Envoy listen on?", [notes]) == [
        ("Envoy listens on port 8080 for the API.", 1)
    ]
    short = Passage(2, "a.md", "a.md#0", "A", "Envoy restarts.")  # short, but a sentence
    assert choose_sentences("Does Envoy restart?", [short]) == [("Envoy restarts.", 2)]


PUMPS = [
    Passage(1, "alpha.md", "alpha.md#0", "Alpha", "The Alpha pump is rated at 40 bar maximum pressure"),
    Passage(2, "beta.md", "beta.md#0", "Beta", "The Beta pump is rated at 55 bar maximum pressure"),
    Passage(3, "gamma.csv", "gamma.csv#0", "Gamma", "model: Gamma pump\nmaximum pressure: 70 bar"),
]


def test_quoted_sentences_without_a_full_stop_are_each_their_own_supported_claim() -> None:
    """A sentence or table row with no sentence end ran into the next: one claim citing every passage, unsupported."""
    question = "What maximum pressure are the Alpha, Beta and Gamma pumps rated at?"
    answer, _ = compose(choose_sentences(question, PUMPS))
    assert answer.startswith("The Alpha pump is rated at 40 bar maximum pressure. [1] The Beta pump")
    grounding = check(answer, PUMPS)
    assert [cited for _, cited, _ in grounding.sentences] == [[1], [2], [3]]
    assert grounding.support == 1.0


def test_a_marker_before_a_capitalised_word_ends_a_models_sentence_but_not_one_before_a_lowercase_word() -> None:
    pumps = [(c.text, c.cited) for c in claims("The Alpha pump is rated at 40 bar [1] The Beta pump at 55 bar [2]", 3)]
    assert pumps == [("The Alpha pump is rated at 40 bar", [1]), ("The Beta pump at 55 bar", [2])]
    assert cited("Envoy listens on port 8080 as shown in [1] and [2].") == [
        ("Envoy listens on port 8080 as shown in and.", [1, 2])
    ]


def test_the_documents_own_title_is_never_quoted_as_an_answer() -> None:
    """Markdown text opens with its title: "Network ports of the lab projects. [1]" was quoted as a claim."""
    title = "Network ports of the lab projects"
    text = f"{title}\n\nHeron uses port 8844 for its gateway. Falcon uses port 7311."
    passages = [Passage(1, "ports.md", "ports.md#0", title, text)]
    chosen = [sentence for sentence, _ in choose_sentences("Which ports do the lab projects use?", passages)]
    assert chosen and title not in chosen and all(sentence.endswith(".") for sentence in chosen)


def test_a_sentence_stating_a_figure_its_passage_lacks_is_unsupported() -> None:
    """Seen with SmolLM2 on the demo corpus: "The gateway (port 53) translates HTTP to gRPC [1]." shares every word
    but the port with its passage, and a wrong port or default is the error a reader cannot spot."""
    passages = [Passage(1, "a.md", "a.md#0", "Processes", "The gateway (port 8000) translates HTTP to gRPC.")]
    right = check("[1] The gateway (port 8000) translates HTTP to gRPC.", passages)
    wrong = check("[1] The gateway (port 53) translates HTTP to gRPC.", passages)
    assert right.supported(1) and right.support == 1.0
    assert not wrong.supported(1) and wrong.support == 0.0


def test_one_wrong_figure_among_right_ones_is_unsupported() -> None:
    grounding = check("Envoy listens on port 8080 and on port 9901 [1].", PASSAGES)
    assert not grounding.supported(1)


def test_a_figure_the_passage_gives_to_something_else_is_unsupported() -> None:
    """Seen with SmolLM2: "retrieval_svc (port 50052) owns the corpus [1]." over docs/architecture.md's list of the
    processes; 50052 is there, but as generation_svc's port, a paragraph away from "owns the corpus"."""
    text = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text()
    processes = text[text.index("- **retrieval_svc**") : text.index("## Why gRPC")]
    passages = [Passage(1, "architecture.md", "architecture.md#0", "The processes", processes)]
    assert check("[1] retrieval_svc (port 50051) owns the corpus.", passages).supported(1)
    assert not check("[1] retrieval_svc (port 50052) owns the corpus.", passages).supported(1)


def test_the_digits_of_a_name_are_no_figure() -> None:
    """L2 names a layer: its "2" need not stand near the sentence's other words, as the figure 50 must."""
    filler = "Entries there expire on their own, and a full store refuses writes rather than evicting keys. " * 3
    text = f"A Redis call waits at most 50 ms before it counts as a miss. {filler}The second layer is L2."
    passages = [Passage(1, "c.md", "c.md#0", "Caching", text)]
    assert check("[1] A Redis call to L2 waits at most 50 ms.", passages).supported(1)
    assert not check("[1] A Redis call to L2 waits at most 80 ms.", passages).supported(1)
