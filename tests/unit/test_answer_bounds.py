"""Stop sequences: where the text is cut, what is held back, and that the backend is closed there."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from generation_svc.backends import Usage
from generation_svc.bounds import AnswerBounds, StopWatch, until_stop
from likeopt.runtime.contract import MAX_STOP_CHARS, InvalidInput, check_stop
from likeopt.v1 import generation_pb2


def fed(watch: StopWatch, pieces: list[str]) -> list[str]:
    return [watch.feed(piece) for piece in pieces]


def test_a_stop_sequence_split_across_pieces_ends_the_text_before_it() -> None:
    watch = StopWatch(("STOP",))
    assert fed(watch, ["ab", "cS", "TOPd"]) == ["", "a", "bc"] and watch.stopped


def test_only_what_could_begin_a_stop_sequence_is_held_back() -> None:
    watch = StopWatch(("\n\n", "END"))
    assert fed(watch, ["one two", " three"]) == ["one t", "wo thr"]  # "END" could still begin in the last two
    assert watch.rest() == "ee" and not watch.stopped


def test_the_earliest_of_several_stop_sequences_wins() -> None:
    watch = StopWatch(("later", "[2]"))
    assert watch.feed("First [1]. Second [2] later") == "First [1]. Second " and watch.stopped


async def test_until_stop_closes_the_backend_there_and_the_finish_reason_is_stop() -> None:
    closed: list[bool] = []
    usage = Usage()

    async def backend() -> AsyncGenerator[str, None]:
        try:
            for piece in ["Envoy listens", " on 8080. [1]", " Its admin", " port is 9901."]:
                yield piece
        finally:
            usage.finish_reason = "cancelled"  # as the local model's thread marks a closed stream
            closed.append(True)

    pieces = [piece async for piece in until_stop(backend(), (" Its",), usage)]
    assert "".join(pieces) == "Envoy listens on 8080. [1]"
    assert closed == [True] and usage.finish_reason == "stop"


async def test_without_stop_sequences_every_piece_passes_as_it_comes() -> None:
    async def backend() -> AsyncGenerator[str, None]:
        for piece in ["a", "b", "c"]:
            yield piece

    usage = Usage(finish_reason="length")
    assert [piece async for piece in until_stop(backend(), (), usage)] == ["a", "b", "c"]
    assert usage.finish_reason == "length"


def test_stop_sequences_are_checked_and_empty_ones_dropped() -> None:
    assert check_stop(["", "\n", "\n", "END"]) == ("\n", "END")
    with pytest.raises(InvalidInput, match="at most 4"):
        check_stop(["a", "b", "c", "d", "e"])
    with pytest.raises(InvalidInput, match="characters"):
        check_stop(["x" * (MAX_STOP_CHARS + 1)])


def test_bounds_are_part_of_the_cache_key_only_when_set() -> None:
    assert AnswerBounds.of(generation_pb2.AnswerRequest(query="q")).key_parts() == []
    bounded = AnswerBounds.of(generation_pb2.AnswerRequest(query="q", max_tokens=5, stop=["END", ""]))
    assert bounded == AnswerBounds(5, ("END",))
    assert bounded.key_parts() == [("max_tokens", 5), ("stop", ["END"])]


def test_a_fixed_reply_is_cut_at_a_stop_sequence_or_the_token_budget() -> None:
    reply = "I found nothing in the documents that answers this."
    assert AnswerBounds(stop=("documents",)).cut(reply) == ("I found nothing in the ", "stop")
    assert AnswerBounds(max_tokens=3).cut(reply) == ("I found nothing", "length")
    assert AnswerBounds(max_tokens=30).cut(reply) == (reply, "stop") == AnswerBounds().cut(reply)
