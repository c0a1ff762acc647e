"""The query encoder on ONNX Runtime: the same model, about twice as fast for one short text.

A search embeds one query of a few dozen word pieces. There torch spends more time
dispatching than computing (18 ms on one core here, against 8 ms for ONNX Runtime on
the same exported graph; benchmarks/README.md). Bulk ingestion stays on torch, which
is as fast for long batches.

The graph is exported from the sentence-transformers model once, into a cache folder
keyed by the model's files, and kept only when its vectors match torch's on probe
texts (cosine ≥ MIN_AGREEMENT); otherwise the caller keeps using torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MIN_AGREEMENT = {False: 0.9999, True: 0.98}
"""Least cosine between an ONNX and a torch vector of the same probe text: the float graph must
reproduce torch; the int8 one (opt-in, faster) may move a vector a little (lowest cosine 0.986 and
median 0.993 over the 300 SciFact test queries)."""
PROBES = [
    "Does vitamin D supplementation reduce fractures in older adults?",
    "IL-6/p53 signalling at 37°C: naïve café résumé, “quotes” and 中文.",
    "a",
]
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def model_fingerprint(model_path: Path) -> str:
    """A short digest of the model folder's files, names and contents (about 0.2 s for 90 MB): another model,
    or the same one changed, gets its own export; a copy (a container image) finds the one made at build."""
    digest = hashlib.sha256()
    for path in sorted(p for p in model_path.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(model_path)}\n".encode())
        with path.open("rb") as content:
            while block := content.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()[:16]


@contextmanager
def written_atomically(destination: Path) -> Iterator[str]:
    """A temporary path beside destination to write to; it becomes destination only if the block succeeds,
    so other processes (replicas starting together) never load half a file."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=destination.parent, suffix=".partial")
    os.close(fd)
    try:
        yield partial
        os.replace(partial, destination)
    finally:
        Path(partial).unlink(missing_ok=True)


def export(transformer: Any, tokenizer: Any, destination: Path) -> None:
    """Write the transformer (hidden states before pooling) as ONNX."""
    import torch

    class HiddenStates(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    sample = tokenizer(["a short query", "a somewhat longer second query"], padding=True, return_tensors="pt")
    with written_atomically(destination) as partial:
        torch.onnx.export(
            HiddenStates(transformer).eval(),
            tuple(sample[name] for name in INPUTS),
            partial,
            input_names=list(INPUTS),
            output_names=["hidden"],
            dynamic_axes={name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "hidden")},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter needs no extra packages and handles BERT
        )


class OnnxQueryEncoder:
    """Mean-pooled, normalised sentence vectors from an exported graph; safe to call from several threads."""

    def __init__(self, graph: Path, tokenizer_file: Path, max_tokens: int) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # one query per thread; concurrency comes from the caller's pool
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.enable_truncation(max_tokens)
        self._tokenizer.enable_padding()

    def encode(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        hidden = self._session.run(None, feeds)[0]
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)


def pools_mean_then_normalises(model_path: Path) -> bool:
    """Whether the model is transformer, mean pooling, normalise: the pipeline the encoder reimplements."""
    try:
        modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((model_path / "modules.json").read_text())]
        pooling = json.loads((model_path / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError, KeyError):
        return False
    others = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v and k != "pooling_mode_mean_tokens"]
    return modules == ["Transformer", "Pooling", "Normalize"] and pooling.get("pooling_mode_mean_tokens") and not others


def quantize(graph: Path, destination: Path) -> None:
    """Weights of the matrix products to int8, per output channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with written_atomically(destination) as partial:
        quantize_dynamic(graph, partial, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)


def load_query_encoder(
    load_model: Callable[[], Any], model_path: Path, cache_dir: Path, max_tokens: int, int8: bool = False
) -> OnnxQueryEncoder | None:
    """An ONNX encoder (int8 weights if asked) that agrees with the model (load_model gives the SentenceTransformer),
    exported (and quantised) first if needed; None if it cannot be had. The model is loaded only when the graph
    must be made or its agreement has not been recorded for this ONNX Runtime (agreement_file)."""
    tokenizer_file = model_path / "tokenizer.json"
    if not tokenizer_file.is_file() or not pools_mean_then_normalises(model_path):
        log.info("query encoder: torch (the model's layout is not one the ONNX encoder reproduces)")
        return None
    graph = cache_dir / f"{model_path.parent.name}-{model_path.name}-{model_fingerprint(model_path)}.onnx"
    quantized = graph.with_name(graph.stem + "-int8.onnx")
    used = quantized if int8 else graph
    try:
        agreement = recorded_agreement(used)
        if agreement is None:
            agreement, encoder = exported_and_compared(
                load_model(), tokenizer_file, max_tokens, graph, quantized if int8 else None
            )
        else:
            encoder = OnnxQueryEncoder(used, tokenizer_file, max_tokens)
    except Exception:  # any failure here only costs speed: torch still answers
        log.exception("query encoder: torch (the ONNX export or session failed)")
        return None
    if agreement < MIN_AGREEMENT[int8]:
        log.warning("query encoder: torch (ONNX disagrees)", extra={"fields": {"cosine": agreement}})
        return None
    log.info("query encoder: onnxruntime", extra={"fields": {"int8": int8, "cosine": agreement}})
    return encoder


def exported_and_compared(
    model: Any, tokenizer_file: Path, max_tokens: int, graph: Path, quantized: Path | None
) -> tuple[float, OnnxQueryEncoder]:
    """The least cosine between the ONNX graph's vectors (quantized's, when given) and the model's on PROBES, the graph
    exported (and quantised) first if it is not there; recorded beside the graph used (agreement_file). The encoder
    compared comes back too, so that a first start opens the graph once."""
    if not graph.is_file():
        log.info("exporting the embedding model to ONNX", extra={"fields": {"path": str(graph)}})
        export(model[0].auto_model, model.tokenizer, graph)
    if quantized is not None and not quantized.is_file():
        quantize(graph, quantized)
    used = quantized or graph
    encoder = OnnxQueryEncoder(used, tokenizer_file, max_tokens)
    reference = model.encode(PROBES, normalize_embeddings=True, show_progress_bar=False)
    agreement = float((encoder.encode(PROBES) * reference).sum(axis=1).min())
    with written_atomically(agreement_file(used)) as partial:
        Path(partial).write_text(json.dumps({"cosine": agreement, "onnxruntime": onnxruntime_version()}))
    return agreement, encoder


def agreement_file(graph: Path) -> Path:
    """Where the agreement measured for graph is kept: beside it, so a copied cache (an image) carries it."""
    return graph.with_name(graph.name + ".agreement.json")


def recorded_agreement(graph: Path) -> float | None:
    """The cosine recorded for graph under this ONNX Runtime's version; None when there is none (another runtime
    may compute other vectors from the same graph) or the graph itself is missing."""
    try:
        record = json.loads(agreement_file(graph).read_text())
    except (OSError, ValueError):
        return None
    if not graph.is_file() or not isinstance(record, dict) or record.get("onnxruntime") != onnxruntime_version():
        return None
    cosine = record.get("cosine")
    return float(cosine) if isinstance(cosine, int | float) else None


def onnxruntime_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


if __name__ == "__main__":  # `python -m retrieval_svc.onnx_query`: export at image build time, not at first start
    from likeopt.runtime.config import Config
    from retrieval_svc.embedder import configured_embedder

    logging.basicConfig(level=logging.INFO)
    embedder = configured_embedder(Config.from_env())
    raise SystemExit(0 if embedder.query_runtime == "onnxruntime" else 1)
