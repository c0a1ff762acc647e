"""Operations settings: what `likeopt up` keeps, traces and logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, field_validator

from likeopt.runtime.addresses import ca_file, otlp_collector
from likeopt.runtime.config.fields import setting
from likeopt.runtime.config.processes import EVERY, GATEWAY, GRPC_SERVICES


class LauncherSettings(BaseModel):
    """What `likeopt up` alone reads: its run folder and the size of the logs it keeps."""

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


class TelemetrySettings(BaseModel):
    """Traces, their sampling and viewer, and the log level of every process."""

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

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        """Python's logging knows its levels in capitals only."""
        return value.strip().upper() if isinstance(value, str) else value

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
