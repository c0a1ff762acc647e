"""What identity costs an uncached search: ``likeopt bench --scenario search-uncached`` against the same corpus
served once with ``LIKEOPT_AUTH=apikey`` and once with ``LIKEOPT_AUTH=jwt`` and a token in 100 groups.

The corpus is a copy of an embedded store (SciFact's, from ``likeopt eval``) whose documents are given access
lists first: tenant ``bench``, each document one group of 200 (``g0``…``g199``, by a hash of its id). The
token names tenant ``bench`` and groups ``g0``…``g99``, so it may read about half the documents, and every
search is ranked within that half (the engine's row mask), Envoy verifies an RS256 signature and forwards the
payload (1 KB in base64), and each service reads the principal. API-key mode searches every document with none of it.

Each round starts a mesh (``likeopt up`` on free ports) in one mode, runs the bench, stops it, then the other
mode; rounds alternate which mode goes first, so drift on a busy machine falls on both. The figures are each
mode's median over rounds and the jwt/apikey ratios.

Usage, from the repository root:
    python -m benchmarks.identity_overhead [--store var/eval/scifact-…] [--rounds 2] [--duration 20]
        [--concurrency 8] [--rate 0] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from likeopt.ops.ports import free_port
from likeopt.runtime.config import LISTENING_PORTS, env_name

DATA = Path("/work/shared/data/scifact")
ISSUER, AUDIENCE, TENANT = "https://idp.bench.test", "like-opt", "bench"
GROUPS, TOKEN_GROUPS = 200, 100
START_TIMEOUT_S = 600


def give_access(store: Path) -> tuple[int, int]:
    """Every document one group of GROUPS in TENANT; returns (documents, those the token may read)."""
    db = sqlite3.connect(store)
    ids = [doc_id for (doc_id,) in db.execute("SELECT id FROM documents")]
    readable = 0
    for doc_id in ids:
        group = int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=4).digest(), "big") % GROUPS
        readable += group < TOKEN_GROUPS
        access = json.dumps({"tenant": TENANT, "users": [], "groups": [f"g{group}"]})
        db.execute("UPDATE documents SET access = ? WHERE id = ?", (access, doc_id))
    db.commit()
    db.close()
    return len(ids), readable


def identity(work: Path) -> tuple[dict[str, str], str]:
    """The settings of a mesh trusting a fresh key, and a token of that key in TOKEN_GROUPS groups."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = work / "jwks.json"
    public = {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": "bench", "alg": "RS256"}
    jwks.write_text(json.dumps({"keys": [public]}))
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench-user", "tenant": TENANT, "iat": now, "exp": now + 86400}
    token = jwt.encode(
        {**claims, "groups": [f"g{n}" for n in range(TOKEN_GROUPS)]}, key, algorithm="RS256", headers={"kid": "bench"}
    )
    settings = {
        "LIKEOPT_AUTH": "jwt",
        "LIKEOPT_JWT_ISSUER": ISSUER,
        "LIKEOPT_JWT_AUDIENCE": AUDIENCE,
        "LIKEOPT_JWT_JWKS_FILE": str(jwks),
    }
    return settings, token


def mesh_env(work: Path, data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIKEOPT_")}
    env.update({env_name(setting): str(free_port()) for setting in LISTENING_PORTS})
    env.update(
        {
            "LIKEOPT_HOST": "127.0.0.1",
            "LIKEOPT_DATA_DIR": str(data_dir),
            "LIKEOPT_RUN_DIR": str(work / "run"),
            "LIKEOPT_FEEDBACK_DB": str(work / "feedback.sqlite3"),
            "LIKEOPT_API_KEY": "bench-" + os.urandom(8).hex(),
            **extra,
        }
    )
    return env


def bench_once(env: dict[str, str], token: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start the mesh, run the bench against it, stop it; the bench's JSON."""
    mesh = subprocess.Popen(
        [sys.executable, "-m", "likeopt.ops.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        assert mesh.stdout is not None
        for line in mesh.stdout:
            if "Like-Opt is ready" in line or time.monotonic() > deadline:
                break
        load = ["--concurrency", str(args.concurrency)] + (["--rate", str(args.rate)] if args.rate else [])
        command = [sys.executable, "-m", "likeopt.ops.cli", "bench", "--scenario", "search-uncached", "--json"]
        command += ["--duration", str(args.duration), "--warmup", str(args.warmup), "--data", str(args.data), *load]
        url = f"http://127.0.0.1:{env['LIKEOPT_ENVOY_PORT']}"
        command += ["--url", url] + (["--token", token] if token else [])
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        return json.loads(done.stdout)
    finally:
        mesh.terminate()
        mesh.wait(timeout=120)


def in_process(data_dir: Path, data: Path, count: int = 300, rounds: int = 3) -> dict[str, float]:
    """The engine's own search (query embeddings computed beforehand) per query, with and without the token's
    reader, alternating: CPU microseconds a search (hybrid, top 10), and the first-time cost of a reader's mask.
    ``jwt_all`` is a reader in all 200 groups: it reads every document, so only the mask's own cost differs."""
    from likeopt.runtime.config import Config
    from likeopt.runtime.principal import Reader
    from retrieval_svc.backend import SearchParams
    from retrieval_svc.engine import loaded_engine

    engine = loaded_engine(Config.from_env({}), data_dir)
    with (data / "queries.jsonl").open(encoding="utf-8") as lines:
        texts = [json.loads(line)["text"] for line in lines if line.strip()][:count]
    vectors = [engine.embed_query(text) for text in texts]
    reader = Reader.of(TENANT, "bench-user", [f"g{n}" for n in range(TOKEN_GROUPS)])
    everything = Reader.of(TENANT, "bench-user", [f"g{n}" for n in range(GROUPS)])  # the mask's cost alone
    started = time.process_time()
    engine.access.mask(reader, engine.version)
    first_mask_us = (time.process_time() - started) * 1e6
    spent: dict[str, list[float]] = {"apikey": [], "jwt": [], "jwt_all": []}
    for _ in range(rounds):
        for mode, who in (("apikey", None), ("jwt", reader), ("jwt_all", everything)):
            params = SearchParams(top_k=10, mode="hybrid", fusion="convex", rrf_k=60, alpha=0.5, reader=who)
            started = time.process_time()
            for text, vector in zip(texts, vectors, strict=True):
                engine.search(text, params, vector)
            spent[mode].append((time.process_time() - started) / len(texts) * 1e6)
    engine.close()
    us = {f"{mode}_us": round(statistics.median(times)) for mode, times in spent.items()}
    return {**us, "jwt_over_apikey": round(us["jwt_us"] / us["apikey_us"], 3), "first_mask_us": round(first_mask_us)}


def figures(result: dict[str, Any]) -> dict[str, float]:
    cpu = result["cpu_ms_per_request"]
    mesh_cpu = sum(v for k, v in cpu.items() if v is not None and k != "load_generator")
    return {
        "rps": result["rps"],
        "p50_ms": result["latency_ms"]["p50"],
        "p95_ms": result["latency_ms"]["p95"],
        "cpu_ms": round(mesh_cpu, 2),
        "retrieval_cpu_ms": cpu.get("retrieval_svc") or 0.0,
        "errors": sum(result["errors"].values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=next(Path("var/eval").glob("scifact-*"), None))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="identity-bench-", dir="var"))
    data_dir = work / "data"
    shutil.copytree(args.store, data_dir)
    documents, readable = give_access(data_dir / "store.sqlite3")
    jwt_settings, token = identity(work)
    engine_figures = in_process(data_dir, args.data)
    print(f"in process: {engine_figures}", file=sys.stderr, flush=True)
    runs: dict[str, list[dict[str, float]]] = {"apikey": [], "jwt": []}
    for round_number in range(args.rounds):
        order = ["apikey", "jwt"] if round_number % 2 == 0 else ["jwt", "apikey"]
        for mode in order:
            env = mesh_env(work, data_dir, jwt_settings if mode == "jwt" else {})
            runs[mode].append(figures(bench_once(env, token if mode == "jwt" else "", args)))
            print(f"round {round_number + 1} {mode}: {runs[mode][-1]}", file=sys.stderr, flush=True)
    shutil.rmtree(work, ignore_errors=True)
    summary = {mode: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for mode, rs in runs.items() if rs}
    ratios = (
        {k: round(summary["jwt"][k] / summary["apikey"][k], 3) for k in ("p95_ms", "cpu_ms", "rps")} if summary else {}
    )
    report = {
        "documents": documents,
        "readable": readable,
        "in_process_search": engine_figures,
        "runs": runs,
        "median": summary,
        "jwt_over_apikey": ratios,
    }
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
