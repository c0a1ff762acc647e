"""Greetings and thanks, answered as such instead of from the documents.

The first thing many people type into a chat box is "hi". Searched, it finds whatever passage shares the
word ("Hi-C" on SciFact, with a dense score a hair above the relevance floor) and the answer quotes it.
A whole message that is only a greeting, a thank-you or a question about the assistant itself gets a
short reply that says what it can do; anything longer is a question and is searched.
"""

from __future__ import annotations

import re

GREETING = "Hello! Ask me a question about your documents: I answer from them and cite the passages I use."
THANKS = "You're welcome. Ask me anything else about your documents."
ABOUT = (
    "I answer questions from your documents: I search them, write an answer from the passages I find and cite"
    " each one as [n]. When they do not cover a question, I say so."
)

_REPLIES = {
    GREETING: (
        "hi", "hi there", "hello", "hello there", "hey", "hey there", "hiya", "howdy", "yo", "greetings",
        "good morning", "good afternoon", "good evening", "how are you", "hola", "bonjour", "salut", "hallo",
        "ciao", "olá", "ola", "привет", "你好", "您好", "こんにちは", "안녕하세요", "안녕",
    ),
    THANKS: (
        "thanks", "thank you", "thanks a lot", "thank you very much", "many thanks", "thx", "ty", "cheers",
        "ok thanks", "ok thank you", "great thanks", "bye", "goodbye", "see you", "merci", "danke", "gracias",
        "grazie", "obrigado", "спасибо", "谢谢", "ありがとう", "감사합니다",
    ),
    ABOUT: ("who are you", "what are you", "what can you do", "help"),
}  # fmt: skip
_REPLY_TO = {phrase: reply for reply, phrases in _REPLIES.items() for phrase in phrases}
_NOT_WORDS = re.compile(r"[^\w\s]+")


def small_talk_reply(message: str) -> str | None:
    """The reply when the whole message is small talk (case, punctuation and emoji aside); None for a question."""
    words = _NOT_WORDS.sub(" ", message.casefold()).split()
    return _REPLY_TO.get(" ".join(words)) if len(words) <= 4 else None
