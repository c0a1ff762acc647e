"""Run the gateway: ``python -m gateway`` (uvicorn, one process, asyncio)."""

from __future__ import annotations

import signal
import sys

import uvicorn

from gateway.app import build_app
from gateway.observe import RequestMetrics
from gateway.request_spans import RequestSpans
from gateway.trace_header import TraceIdHeader
from likeopt.runtime.config import STOP_GRACE_S, settings_or_exit, take_no_arguments
from likeopt.runtime.logs import setup_logging
from likeopt.runtime.telemetry import setup_tracing

SERVICE = "gateway"


def main() -> None:
    config = settings_or_exit(SERVICE)
    setup_logging(SERVICE, config.log_level)
    setup_tracing(SERVICE, config.otlp_endpoint, config.trace_sample_ratio)
    # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal under the handler that was
    # installed before it ran; a no-op one there makes a drained shutdown exit 0, as every
    # other service does.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)
    app = RequestSpans(TraceIdHeader(RequestMetrics(build_app(config))), exclude_spans=["send", "receive"])
    uvicorn.run(
        app,
        host=config.host,
        port=config.gateway_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=STOP_GRACE_S,
        timeout_keep_alive=75,
        # Named, not "auto": a missing uvloop or httptools must fail here, not quietly halve throughput.
        loop="uvloop",
        http="httptools",
        # Nothing reads the client's address (Envoy rate-limits and logs it); parsing X-Forwarded-For on every
        # request was 3 % of the gateway's CPU per cached search.
        proxy_headers=False,
    )


if __name__ == "__main__":
    take_no_arguments(SERVICE, sys.argv[1:])
    main()
