"""Conversations: the last turns kept in cache_svc's ``session`` namespace, and follow-up rewriting.

A follow-up such as "and what about its cost?" names nothing retrievable, so the
retrieval query borrows the salient words of the questions before it; the model
also sees the earlier turns in its prompt.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable, Sequence, Set

from google.protobuf.message import DecodeError

from generation_svc.backends import Turn
from generation_svc.relevance import NOT_COVERED
from generation_svc.small_talk import small_talk_reply
from likeopt.caching.cache_client import CacheClient
from likeopt.runtime.contract import MAX_QUERY_CHARS
from likeopt.runtime.text import MARKER, STOP_WORDS, tokenize
from likeopt.v1 import generation_pb2, retrieval_pb2

NAMESPACE = "session"
log = logging.getLogger(__name__)
MAX_TURNS = 6
MAX_BORROWED_WORDS = 8
_WORD = re.compile(r"[^\W\d_][\w-]*")

REFERRING_WORDS = frozenset("it its it's this that these those they them their there he she his her such".split())
"""Words that point back at something named earlier: their presence marks a follow-up."""

FOLLOW_UP_OPENINGS = ("and ", "also ", "what about ", "how about ")

STANDALONE_TERMS = 4
"""A question with at least this many content terms and no referring word stands on its own."""


def refers_back(question: str) -> bool:
    """Whether a question points at something named earlier ("its cost", "and the cache?")."""
    words = [w.lower() for w in _WORD.findall(question)]
    return any(w in REFERRING_WORDS for w in words) or question.lower().lstrip().startswith(FOLLOW_UP_OPENINGS)


def is_follow_up(question: str) -> bool:
    """Whether a question leans on an earlier one (refers back, or is too short to stand alone)."""
    return refers_back(question) or len(tokenize(question)) < STANDALONE_TERMS


def found_by_borrowing_alone(question: str, query: str, hits: Sequence[retrieval_pb2.SearchHit]) -> bool:
    """Whether a short question that points at nothing earlier found its passages only through the words it
    borrowed: "Who wrote Hamlet?" after a question about Envoy finds Envoy's passages, none holding a word of its
    own, and is not covered by them; "How big is a chunk?" finds "chunk" and is."""
    if query == question or refers_back(question):
        return False
    own = set(tokenize(question))
    return bool(own) and not any(own.intersection(tokenize(f"{hit.title} {hit.text}")) for hit in hits)


def is_refusal(answer: str) -> bool:
    """Whether an earlier answer was the floor's refusal (whole, or cut short by the caller's bounds)."""
    answer = answer.strip()
    return bool(answer) and NOT_COVERED.startswith(answer)


def salient_words(text: str) -> list[str]:
    """The content words of text, in order, each once (stop words and short words dropped)."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text):
        lowered = word.lower()
        if len(lowered) > 2 and lowered not in STOP_WORDS and lowered not in REFERRING_WORDS:
            seen.setdefault(word)
    return list(seen)


def rewrite_query(question: str, history: list[Turn]) -> str:
    """The retrieval query: a follow-up gets the earlier questions' salient words appended, as many as fit in a
    query (a question near the limit borrows fewer, or none)."""
    if not history or not is_follow_up(question):
        return question
    own_terms = set(tokenize(question))
    borrowed: list[str] = []
    for turn in reversed(history[-2:]):
        for word in salient_words(turn.question):
            if not own_terms.intersection(tokenize(word)) and word not in borrowed:
                borrowed.append(word)
    query = question
    for word in borrowed[:MAX_BORROWED_WORDS]:
        if len(query) + 1 + len(word) > MAX_QUERY_CHARS:
            break
        query += " " + word
    return query


def history_of(conversation: generation_pb2.Conversation) -> list[Turn]:
    """The turns a prompt and a rewrite need: not small talk, so an opening "hi" neither takes prompt room nor
    keeps the first real question from sharing cached answers; nor a question the documents did not cover, whose
    words would steer the next search away from its own subject; nor a withdrawn turn (see withheld), whose
    answer may repeat a passage the asker may no longer read."""
    return [
        Turn(t.question, t.answer)
        for t in conversation.turns
        if small_talk_reply(t.question) is None and not is_refusal(t.answer) and not t.withdrawn
    ]


def cited_documents(conversation: generation_pb2.Conversation) -> list[str]:
    """The ids of the documents the conversation's answers cite, then of the others they were given, each once."""
    cited = (c.doc_id for turn in conversation.turns for c in turn.citations)
    given = (doc_id for turn in conversation.turns for doc_id in turn.source_ids)
    return list(dict.fromkeys([*cited, *given]))


def given_documents(doc_ids: Iterable[str]) -> list[str]:
    """The ids of the documents whose passages an answer is given (a turn's source_ids), each once, in order."""
    return list(dict.fromkeys(doc_ids))


def withheld(conversation: generation_pb2.Conversation, readable: Set[str]) -> generation_pb2.Conversation:
    """A copy of the conversation as its reader may see it now, readable naming the documents of cited_documents
    it may still read: a citation of any other (its access list changed, or it was deleted, after the turn was
    stored) keeps its ids and marker but loses title and text and is marked withdrawn, and its turn, like one given
    a passage of such a document it did not cite, is withdrawn and loses its answer, as an answer may repeat the
    passages it was given. The stored copy is left whole: access given back shows it again."""
    shown = generation_pb2.Conversation()
    shown.CopyFrom(conversation)
    for turn in shown.turns:
        for citation in turn.citations:
            if citation.doc_id not in readable:
                citation.withdrawn = True
                citation.ClearField("title")
                citation.ClearField("text")
        unread = [doc_id for doc_id in turn.source_ids if doc_id not in readable]
        if unread or any(citation.withdrawn for citation in turn.citations):
            turn.withdrawn = True
            turn.ClearField("answer")
        if unread:
            turn.source_ids[:] = [doc_id for doc_id in turn.source_ids if doc_id in readable]
    return shown


def drop_retried_turn(conversation: generation_pb2.Conversation, question: str) -> bool:
    """A question asked again straight after itself (a stream resumed with Last-Event-ID, a retry after Stop or a
    failure) replaces its earlier turn: that turn leaves the history, so the answer is the one first given (and
    replayed from the cache), and the conversation holds the question once. Whether it was one."""
    if conversation.turns and conversation.turns[-1].question.strip() == question.strip():
        del conversation.turns[-1]
        return True
    return False


def as_it_stood_after(conversation: generation_pb2.Conversation, turn_id: str) -> generation_pb2.Conversation | None:
    """The conversation as it stood after the turn named turn_id: itself when that is its last turn (or none is
    named), else a branch, a new conversation holding the turns up to that one, so continuing an older response
    (OpenAI's previous_response_id) neither sees the later turns nor rewrites them. None when no turn has the id."""
    ids = [turn.turn_id for turn in conversation.turns]
    if turn_id and turn_id not in ids:
        return None
    if not turn_id or ids[-1] == turn_id:
        return conversation
    kept = conversation.turns[: ids.index(turn_id) + 1]
    return generation_pb2.Conversation(conversation_id=uuid.uuid4().hex, turns=kept)


def stored_key(conversation_id: str, owner: str) -> str:
    """Where a conversation is kept: under its owner (LIKEOPT_AUTH=jwt), so the id alone opens nobody else's
    and continuing another's id starts a conversation of one's own; the bare id for API-key mode's one user."""
    return f"{owner}/{conversation_id}" if owner else conversation_id


_MARKER_AND_SPACE = re.compile(MARKER.pattern + " ?")


def cited_only(answer: str, citations: list[generation_pb2.CitationEvent]) -> str:
    """An answer stopped early without the markers whose citation had not come out (it stopped between the two):
    stored, "[1]" would name a passage the turn does not keep."""
    cited = {citation.n for citation in citations}
    return _MARKER_AND_SPACE.sub(lambda marker: marker[0] if int(marker[1]) in cited else "", answer)


def add_turn(
    conversation: generation_pb2.Conversation,
    question: str,
    answer: str,
    citations: list[generation_pb2.CitationEvent],
    interrupted: bool = False,
    turn_id: str = "",
    source_ids: Sequence[str] = (),
) -> None:
    """Add a turn (interrupted: its answer ended early; turn_id: the caller's name for it; source_ids: the documents
    whose passages it was given) and keep the last MAX_TURNS."""
    turn = generation_pb2.Turn(
        question=question,
        answer=answer,
        citations=citations,
        created_unix_ms=int(time.time() * 1000),
        interrupted=interrupted,
        turn_id=turn_id,
        source_ids=source_ids,
    )
    conversation.turns.append(turn)
    del conversation.turns[:-MAX_TURNS]


class ConversationStore:
    """Loads and saves conversations; a cache failure loses context, never the answer."""

    def __init__(self, cache: CacheClient, ttl_s: int) -> None:
        self.cache = cache
        self.ttl_s = ttl_s

    async def load(self, conversation_id: str, owner: str = "") -> generation_pb2.Conversation | None:
        """The owner's stored conversation, or None when unknown, expired, unreadable or someone else's;
        CacheUnreachable when cache_svc did not answer (the conversation may well be there)."""
        raw = await self.cache.lookup(NAMESPACE, stored_key(conversation_id, owner))
        if raw is None:
            return None
        conversation = generation_pb2.Conversation()
        try:
            conversation.ParseFromString(raw)
        except DecodeError:  # its follow-up starts afresh; say why, as the person will notice the lost context
            log.warning("stored conversation unreadable", extra={"fields": {"conversation_id": conversation_id}})
            return None
        return conversation

    async def forget(self, conversation_id: str, owner: str = "") -> bool | None:
        """Delete the owner's stored conversation: whether there was one, or None when cache_svc did not answer."""
        deleted = await self.cache.delete(NAMESPACE, [stored_key(conversation_id, owner)])
        return None if deleted is None else deleted > 0

    async def saved(self, conversation: generation_pb2.Conversation, owner: str = "") -> None:
        """Save the conversation and return once cache_svc holds it (bounded by its write deadline): an answer's
        done event goes out after this, so a follow-up sent at once finds the turn. Saved in the background, a
        follow-up could load before the write landed, start the conversation afresh and overwrite its turns."""
        key = stored_key(conversation.conversation_id, owner)
        await self.cache.set(NAMESPACE, key, conversation.SerializeToString(), self.ttl_s)
