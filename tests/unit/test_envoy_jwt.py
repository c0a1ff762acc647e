"""Envoy's identity configuration (LIKEOPT_AUTH=jwt), rendered and checked by the real Envoy 1.40.

Its behaviour (every bad token a JSON 401, the principal header refused, writes by role or key) is tested
against the running mesh in tests/integration/test_identity.py; here: the shape that behaviour rests on.
"""

from __future__ import annotations

import re
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from likeopt.ops.envoy.build import write_envoy_config
from likeopt.ops.envoy.jwt import CLIENT_PRINCIPAL, jwt_rules
from likeopt.runtime.api_key import bearer_token
from likeopt.runtime.config import Config
from likeopt.runtime.principal import LACKS_WRITER_ROLE, PRINCIPAL_HEADER, WRONG_KEY
from tests.identity import IdentityProvider
from tests.support import self_signed
from tests.unit.test_envoy_config import (
    ENVOY,
    LONG_KEY,
    EnvoyProcess,
    FakeGateway,
    envoy_environment,
    needs_envoy,
    start_envoy,
)
from tests.unit.test_envoy_config import grpc_web_call as web


def rendered(tmp_path: Path, **settings: str) -> dict:
    config = Config.from_env(settings)
    return yaml.safe_load(write_envoy_config(config, tmp_path).read_text())


def manager(doc: dict) -> dict:
    return doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


@pytest.fixture
def idp(tmp_path: Path) -> IdentityProvider:
    return IdentityProvider(tmp_path)


def test_api_key_mode_verifies_no_token_and_checks_the_key_after_cors_and_grpc_web(tmp_path: Path) -> None:
    names = [f["name"] for f in manager(rendered(tmp_path))["http_filters"]]
    assert "envoy.filters.http.jwt_authn" not in names
    assert (
        names.index("envoy.filters.http.cors")
        < names.index("envoy.filters.http.grpc_web")
        < names.index("envoy.filters.http.rbac")
    )


def test_jwt_mode_verifies_before_routing_and_refuses_a_client_principal_first(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    hcm = manager(rendered(tmp_path, **idp.settings(LIKEOPT_API_KEY="k")))
    names = [f["name"] for f in hcm["http_filters"]]
    assert names.index("envoy.filters.http.cors") < names.index("envoy.filters.http.jwt_authn")
    # A gRPC-web call is read as one before it is refused, so its refusal is a gRPC-web reply.
    assert names.index("envoy.filters.http.grpc_web") < names.index("envoy.filters.http.jwt_authn")
    assert (
        names.index("envoy.filters.http.jwt_authn")
        < names.index("envoy.filters.http.rbac")
        < names.index("envoy.filters.http.router")
    )
    jwt = next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.jwt_authn")["typed_config"]
    provider = jwt["providers"]["likeopt"]
    assert provider["forward_payload_header"] == PRINCIPAL_HEADER and provider["forward"] is False
    assert provider["local_jwks"] == {"filename": str(idp.jwks_path)}
    first = hcm["route_config"]["virtual_hosts"][0]["routes"][0]
    assert first["match"]["headers"] == [{"name": PRINCIPAL_HEADER, "present_match": True}]
    assert first["direct_response"]["status"] == 401
    mappers = hcm["local_reply_config"]["mappers"]
    # 415: other protocols on gRPC paths; 501: methods no one recognizes
    assert {m.get("status_code") for m in mappers} == {None, 200, 401, 415, 501}
    assert all("grpc-status" in str(m["headers_to_add"]) for m in mappers if m.get("status_code") == 200)


def test_every_path_needs_a_token_but_the_public_ones_and_writes_take_the_key_instead() -> None:
    rules = jwt_rules()
    assert rules[-1] == {"match": {"prefix": "/"}, "requires": {"provider_name": "likeopt"}}  # fail closed
    public = [r["match"].get("path") or r["match"].get("prefix") for r in rules if "requires" not in r]
    assert "/" in public and "/static/" in public and "/api/v1/search" not in public
    assert "/grpc.health.v1.Health/" in public  # gRPC channels watch health before any call carries a token
    optional = [r["match"] for r in rules if "requires_any" in r.get("requires", {})]
    assert {"path": "/likeopt.v1.RetrievalService/UpsertDocuments"} in optional
    assert not any(m.get("path") == "/likeopt.v1.RetrievalService/Search" for m in optional)


@needs_envoy
@pytest.mark.parametrize(
    "extra",
    [
        {"LIKEOPT_API_KEY": "k"},
        {"LIKEOPT_API_KEY": LONG_KEY},  # RBAC's pattern of it, far over RE2's default limit
        {"LIKEOPT_API_KEY": "", "LIKEOPT_JWT_WRITER_ROLE": ""},  # nobody may write over gRPC: RBAC denies all
        {"LIKEOPT_JWT_JWKS_FILE": "", "LIKEOPT_JWT_JWKS_URI": "https://idp.example.com:8443/certs"},
        {"LIKEOPT_JWT_JWKS_FILE": "", "LIKEOPT_JWT_JWKS_URI": "http://127.0.0.1:5556/keys"},
    ],
)
def test_envoy_accepts_the_identity_config(tmp_path: Path, idp: IdentityProvider, extra: dict[str, str]) -> None:
    path = write_envoy_config(Config.from_env(idp.settings(**extra)), tmp_path / "run")
    result = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"LIKEOPT_AUTH": "jwt"}, "LIKEOPT_JWT_ISSUER"),
        ({"LIKEOPT_AUTH": "oidc"}, "apikey or jwt"),
        ({"LIKEOPT_AUTH": "jwt", "LIKEOPT_JWT_ISSUER": "i", "LIKEOPT_JWT_AUDIENCE": "a"}, "exactly one"),
        (
            {
                "LIKEOPT_AUTH": "jwt",
                "LIKEOPT_JWT_ISSUER": "i",
                "LIKEOPT_JWT_AUDIENCE": "a",
                "LIKEOPT_JWT_JWKS_URI": "ftp://x",
            },
            "http",
        ),
        ({"LIKEOPT_JWT_GROUPS_CLAIM": " "}, "LIKEOPT_JWT_GROUPS_CLAIM"),
    ],
)
def test_incomplete_identity_settings_are_refused_at_start(settings: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Config.from_env(settings)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot be read (No such file or directory)"),
        ("not json", "must be a JSON Web Key Set"),
        ("[1]", "must be a JSON Web Key Set"),
        ('{"keys": []}', "must hold at least one key"),
        ('{"keys": [{"kid": "no-type"}]}', "must hold at least one key"),
    ],
)
def test_a_jwks_file_envoy_could_not_read_keys_from_is_refused_at_start(
    tmp_path: Path, idp: IdentityProvider, content: str | None, problem: str
) -> None:
    jwks = tmp_path / "keys.json"
    if content is not None:
        jwks.write_text(content)
    settings = idp.settings(LIKEOPT_JWT_JWKS_FILE=str(jwks))
    for check in (lambda: Config.from_env(settings), lambda: Config.for_process("envoy", settings)):
        with pytest.raises(ValueError, match=re.escape(f"LIKEOPT_JWT_JWKS_FILE={jwks}: {problem}")):
            check()
    assert Config.from_env(idp.settings()).jwt_jwks_file == str(idp.jwks_path)


@contextmanager
def jwks_over_https(idp: IdentityProvider, cert: Path, key: Path) -> Iterator[str]:
    """The provider's JWKS served over TLS with cert (a certificate no system bundle trusts); yields its URL."""
    keys = idp.jwks_path.read_bytes()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(keys)))
            self.end_headers()
            self.wfile.write(keys)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/keys"
    finally:
        server.shutdown()
        server.server_close()


@needs_envoy
@pytest.mark.parametrize("trusted", [True, False], ids=["its-ca-trusted", "untrusted"])
def test_keys_are_fetched_only_from_an_identity_provider_whose_certificate_checks_out(
    tmp_path: Path, idp: IdentityProvider, monkeypatch: pytest.MonkeyPatch, trusted: bool
) -> None:
    """Whoever answers in the provider's place would hand Envoy the keys tokens are signed with: a certificate the
    CA bundle (SSL_CERT_FILE's) does not vouch for gets no keys taken, so no token passes."""
    cert, key = self_signed(tmp_path)
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    gateway = FakeGateway()
    gateway.start()
    try:
        with jwks_over_https(idp, cert, key) as uri:
            settings = idp.settings(LIKEOPT_JWT_JWKS_FILE="", LIKEOPT_JWT_JWKS_URI=uri)
            envoy = start_envoy(Config.from_env(envoy_environment(gateway.port, **settings)), tmp_path / "envoy")
            try:
                wait_for_the_keys_fetch(envoy)
                reply = httpx.get(f"{envoy.url}/api/v1/index", headers={"Authorization": f"Bearer {idp.token('u1')}"})
            finally:
                envoy.stop()
    finally:
        gateway.stop()
    assert reply.status_code == (200 if trusted else 401), reply.text


def wait_for_the_keys_fetch(envoy: EnvoyProcess, timeout_s: float = 30.0) -> None:
    """Until Envoy's fetch of the keys at start has succeeded or failed (its async_fetch)."""
    deadline = time.monotonic() + timeout_s
    outcomes = [f"http.ingress_http.jwt_authn.jwks_fetch_{outcome}" for outcome in ("success", "failed")]
    while not any(envoy.stat(name) for name in outcomes) and time.monotonic() < deadline:
        time.sleep(0.2)


@needs_envoy
def test_grpc_web_refusals_are_grpc_web_replies_and_the_key_writes_in_any_case(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    """A gRPC-web client reads a refusal's status and reason from a 200 reply only: jwt_authn's and RBAC's refusals
    were HTTP 401 or 403 in plain text. The API key opens writes whatever the scheme's case (RBAC matches it)."""
    key = "a.b*c(1)"  # a regex would take aXbbc1 too
    gateway = FakeGateway()
    gateway.start()
    try:
        config = Config.from_env(envoy_environment(gateway.port, **idp.settings(LIKEOPT_API_KEY=key)))
        envoy = start_envoy(config, tmp_path / "envoy")
        try:
            search, delete = (f"{envoy.url}/likeopt.v1.RetrievalService/{m}" for m in ("Search", "DeleteDocuments"))
            token = f"Bearer {idp.token('u1')}"  # a reader: no writer role
            grpc_web = "application/grpc-web+proto"
            assert web(search) == (200, grpc_web, "16", "Jwt is missing")
            assert web(search, token, **{PRINCIPAL_HEADER: "e30"}) == (200, grpc_web, "16", CLIENT_PRINCIPAL)
            assert web(delete, token) == (200, grpc_web, "7", LACKS_WRITER_ROLE)
            assert web(delete, "Bearer aXbbc1") == (200, grpc_web, "16", WRONG_KEY)
            assert web(delete, f"bearer {key}")[2] == "14"  # let through: no retrieval_svc listens
        finally:
            envoy.stop()
    finally:
        gateway.stop()


@needs_envoy
def test_envoy_takes_the_token_as_the_gateway_reads_the_header(tmp_path: Path, idp: IdentityProvider) -> None:
    """RFC 7235: the scheme in any case, then one or more spaces or tabs. jwt_authn found a token only after the
    scheme and a space, so a tab alone between them was "Jwt is missing" while the gateway took the header."""
    token = idp.token("u1")
    gateway = FakeGateway()
    gateway.start()
    try:
        envoy = start_envoy(Config.from_env(envoy_environment(gateway.port, **idp.settings())), tmp_path / "envoy")
        try:
            for header in (f"Bearer\t{token}", f"bearer\t\t{token}", f"BEARER \t {token}", f"Bearer {token}"):
                assert bearer_token(header) == token, repr(header)
                reply = httpx.get(f"{envoy.url}/api/v1/index", headers={"Authorization": header}, timeout=15)
                assert reply.status_code == 200, (repr(header), reply.text)
            for header in (f"Bearer{token}", f"Basic {token}"):
                assert bearer_token(header) is None, repr(header)
                reply = httpx.get(f"{envoy.url}/api/v1/index", headers={"Authorization": header}, timeout=15)
                assert reply.status_code == 401, (repr(header), reply.text)
        finally:
            envoy.stop()
    finally:
        gateway.stop()
