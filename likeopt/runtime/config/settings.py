"""The one :class:`Config` every process uses: the groups of settings combined, the rules that tie them
together, how it is built from the environment, and the lookups by field (variable, default, readers)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import AliasGenerator, ValidationError, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, InitSettingsSource, SettingsConfigDict

from likeopt.runtime.addresses import ca_file, host_port
from likeopt.runtime.config.caching import CacheSettings, RedisSettings
from likeopt.runtime.config.errors import SettingsError, describe
from likeopt.runtime.config.fields import PREFIX
from likeopt.runtime.config.generation import LOCAL_MAX_TOKENS, MAX_TOKENS, GenerationSettings
from likeopt.runtime.config.identity import IdentitySettings
from likeopt.runtime.config.ingress import IngressSettings, TlsSettings
from likeopt.runtime.config.jwks import jwks_file_problem
from likeopt.runtime.config.network import LISTENING_PORTS, NetworkSettings
from likeopt.runtime.config.operations import LauncherSettings, TelemetrySettings
from likeopt.runtime.config.processes import PROCESSES
from likeopt.runtime.config.redis_urls import redis_seed_nodes
from likeopt.runtime.config.retrieval import ReplicaSettings, SearchSettings, StoreSettings


# The bases are the groups of settings, from the README table's last to its first: pydantic takes the
# fields of the last base first, so this order keeps the order of the table, of the variables and of the
# error messages.
class Config(
    TlsSettings,
    ReplicaSettings,
    IngressSettings,
    TelemetrySettings,
    IdentitySettings,
    GenerationSettings,
    CacheSettings,
    SearchSettings,
    LauncherSettings,
    StoreSettings,
    RedisSettings,
    NetworkSettings,
    BaseSettings,
):
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
