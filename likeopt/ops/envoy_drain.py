"""Stopping Envoy without cutting the requests it is serving.

Envoy exits at once on SIGTERM, closing every connection, while the gateway and the services behind it would
have finished their work: an upload cut that way is stored although its client saw the connection drop. So the
launcher first tells Envoy, through its admin port, to stop accepting connections, then waits (bounded) until
no request is in flight before it sends SIGTERM. docker-compose.yml and the Kubernetes manifests do the same in a
pre-stop hook (:func:`drain_script`).
"""

from __future__ import annotations

import time

import httpx

WAIT_S = 25
"""How long a stop waits for the requests Envoy is serving: ``likeopt up``, and the pre-stop hooks of
docker-compose.yml and the Kubernetes manifests (:func:`drain_script`)."""
ACTIVE_REQUESTS = "downstream_rq_active"
"""The per-listener gauge of requests Envoy is serving (``http.<stat_prefix>.downstream_rq_active``)."""
ADMIN_PREFIX = "http.admin."
"""The admin listener's own gauges, which count the very request that reads them."""
POLL_S = 0.1
SPAN_FLUSH_MS = 1000
"""How often Envoy sends the spans of finished requests (the template's tracing.opentelemetry.flush_interval_ms;
its default is 5 s). Envoy does not send them on SIGTERM, so a stop of a traced mesh waits one interval after
the drain: the last requests' traces kept losing their root, Envoy's span."""


def serving(admin: str, timeout_s: float) -> int:
    """Requests in flight on Envoy's listeners, not counting the admin port's own."""
    reply = httpx.get(f"http://{admin}/stats", params={"filter": ACTIVE_REQUESTS, "format": "json"}, timeout=timeout_s)
    reply.raise_for_status()
    names_values = ((str(stat.get("name", "")), int(stat.get("value", 0))) for stat in reply.json().get("stats", []))
    return sum(
        value for name, value in names_values if name.endswith(ACTIVE_REQUESTS) and not name.startswith(ADMIN_PREFIX)
    )


def drain(admin: str, wait_s: float, traced: bool = False) -> int:
    """Stop Envoy's listeners accepting connections and wait up to wait_s for its requests to end (then, when
    traced, for Envoy to send their spans: SPAN_FLUSH_MS).

    Returns the requests still in flight when it gave up (0 when all ended); an admin port that does not answer
    counts as nothing left to wait for, since Envoy is then no longer serving either.
    """
    deadline = time.monotonic() + wait_s
    try:
        httpx.post(f"http://{admin}/drain_listeners", timeout=wait_s).raise_for_status()
        while (active := serving(admin, max(deadline - time.monotonic(), POLL_S))) and time.monotonic() < deadline:
            time.sleep(POLL_S)
    except (httpx.HTTPError, ValueError):
        return 0
    if traced:
        time.sleep(SPAN_FLUSH_MS / 1000 + POLL_S)
    return active


DRAIN_SCRIPT = r"""admin=/dev/tcp/127.0.0.1/${LIKEOPT_ENVOY_ADMIN_PORT:-%(admin_port)d}
ask() {
  exec 3<>"$admin" || return
  printf '%%s %%s HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$1" "$2" >&3
  cat <&3
}
ask POST /drain_listeners >/dev/null || exit 0
end=$((SECONDS + %(wait_s)d))
while [ "$SECONDS" -lt "$end" ]; do
  active=0
  while read -r name value; do
    case $name in %(admin_prefix)s*) ;; *.%(active)s:) active=$((active + ${value%%$'\r'})) ;; esac
  done < <(ask GET '/stats?filter=%(active)s')
  [ "$active" -eq 0 ] && break
  sleep 0.1
done
sleep %(flush_s)s  # Envoy sends the last spans every SPAN_FLUSH_MS, never on SIGTERM
"""


def drain_script(admin_port: int) -> str:
    """:func:`drain` as a bash script, for Envoy's image, which has bash but no Python: docker-compose's
    ``pre_stop`` and Kubernetes' ``preStop`` hooks run it in Envoy's container before it gets SIGTERM.

    It asks the admin port on LIKEOPT_ENVOY_ADMIN_PORT when the container has that variable, else on
    admin_port, waits up to WAIT_S (the stop grace periods are checked against it), and always exits 0: a hook
    that fails would only delay the stop.
    """
    return DRAIN_SCRIPT % {
        "admin_port": admin_port,
        "wait_s": WAIT_S,
        "admin_prefix": ADMIN_PREFIX,
        "active": ACTIVE_REQUESTS,
        "flush_s": f"{SPAN_FLUSH_MS / 1000 + POLL_S:.1f}",
    }
