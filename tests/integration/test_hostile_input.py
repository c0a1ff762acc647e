"""Hostile input gets a clear error, the service stays healthy, and nothing stored is lost."""

from __future__ import annotations

import zlib

import httpx
import pytest

from likeopt.runtime.loaders.mailbox_file import MAX_MAILBOX_MESSAGES
from tests.pdfs import pdf_file
from tests.support import MeshProcess

PROBE_QUERY = "Which port does Envoy listen on?"


def top_doc(client: httpx.Client) -> str:
    reply = client.post("/api/v1/search", json={"query": PROBE_QUERY, "top_k": 1})
    assert reply.status_code == 200
    return reply.json()["hits"][0]["doc_id"]


def nested(depth: int) -> bytes:
    return b'{"query": ' + b"[" * depth + b"]" * depth + b"}"


def pdf_bomb() -> bytes:
    """A well-formed 1-page PDF whose content stream inflates to 256 MB of zeros."""
    stream = zlib.compress(b"0" * (256 << 20), 9)
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 9 9]/Contents 4 0 R>>",
        b"<</Length %d/Filter/FlateDecode>>stream\n" % len(stream) + stream + b"\nendstream",
    ]
    return pdf_file(objects)


BAD_SEARCH_BODIES = {
    "blank query": (b'{"query": "   "}', 422),
    "top_k too large": (b'{"query": "x", "top_k": 101}', 422),
    "top_k zero": (b'{"query": "x", "top_k": 0}', 422),
    "top_k a string": (b'{"query": "x", "top_k": "5"}', 422),
    "unknown mode": (b'{"query": "x", "mode": "psychic"}', 422),
    "NUL in query": (b'{"query": "a\\u0000b"}', 422),
    "long query": (b'{"query": "' + b"a" * 5000 + b'"}', 422),
    "1 MB query": (b'{"query": "' + b"a" * (1 << 20) + b'"}', 413),
    "invalid UTF-8": (b'{"query": "\xff\xfe"}', 400),
    "not JSON": (b"query=x", 400),
    "JSON array": (b'["x"]', 400),
    "deeply nested": (nested(100_000), 400),
}


@pytest.mark.parametrize("name", list(BAD_SEARCH_BODIES))
def test_bad_search_bodies_get_clear_errors(mesh: MeshProcess, name: str) -> None:
    body, status = BAD_SEARCH_BODIES[name]
    with httpx.Client(base_url=mesh.base_url, timeout=30) as client:
        reply = client.post("/api/v1/search", content=body, headers={"content-type": "application/json"})
        assert reply.status_code == status, reply.text
        error = reply.json()["error"]
        assert error["code"] and error["message"]
        assert top_doc(client) == "docs/architecture.md"


def test_body_over_the_limit_is_refused_by_envoy(mesh: MeshProcess) -> None:
    limit = int(mesh.env.get("LIKEOPT_MAX_REQUEST_BYTES", 32 << 20))
    reply = httpx.post(
        f"{mesh.base_url}/api/v1/documents",
        content=b"x" * (limit + 1),
        headers={"content-type": "application/json", "Authorization": f"Bearer {mesh.api_key}"},
        timeout=60,
    )
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_a_chat_body_over_the_limit_is_refused_by_envoy_in_the_error_shape(mesh: MeshProcess) -> None:
    limit = int(mesh.env.get("LIKEOPT_MAX_REQUEST_BYTES", 32 << 20))
    body = b'{"query": "' + b"a" * limit + b'"}'
    reply = httpx.post(f"{mesh.base_url}/api/v1/chat", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 413 and reply.headers["content-type"] == "application/json"
    assert reply.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_malformed_and_bomb_uploads_are_skipped_and_the_corpus_survives(mesh: MeshProcess) -> None:
    files = [
        ("files", ("broken.pdf", b"%PDF-1.7 this is not really a pdf", "application/pdf")),
        ("files", ("bomb.pdf", pdf_bomb(), "application/pdf")),
        ("files", ("deep.html", b"<div>" * 200_000 + b"deep words" + b"</div>" * 200_000, "text/html")),
        ("files", ("latin1.txt", "caf\xe9 cr\xe8me".encode("latin-1"), "text/plain")),
        ("files", ("empty.md", b"   \n", "text/markdown")),
        ("files", ("bomb.mbox", b"From x\n\n" * (MAX_MAILBOX_MESSAGES + 1), "application/mbox")),
        ("files", ("cells.ipynb", b'{"cells": [', "application/x-ipynb+json")),
    ]
    with httpx.Client(base_url=mesh.base_url, timeout=120) as client:
        before = client.get("/api/v1/index").json()["documents"]
        reply = client.post("/api/v1/documents", files=files, headers={"Authorization": f"Bearer {mesh.api_key}"})
        assert reply.status_code == 200, reply.text
        result = reply.json()
        skipped = {s["id"]: s["reason"] for s in result["skipped"]}
        assert {"broken.pdf", "bomb.pdf", "latin1.txt", "empty.md", "bomb.mbox", "cells.ipynb"} <= set(skipped)
        assert all(reason for reason in skipped.values())
        after = client.get("/api/v1/index").json()["documents"]
        assert after == before + result["upserted"]
        assert top_doc(client) == "docs/architecture.md"
        assert client.get("/api/v1/readyz").status_code == 200
        if "deep.html" not in skipped:
            client.delete("/api/v1/documents/deep.html", headers={"Authorization": f"Bearer {mesh.api_key}"})
