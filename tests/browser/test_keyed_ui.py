"""The web UI against a mesh whose reads need the API key (LIKEOPT_READS_NEED_KEY=1)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.test_web_ui import ask
from tests.conftest import DEMO_CORPUS
from tests.support import MeshProcess, mesh_environment


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshProcess]:
    env = mesh_environment(tmp_path_factory.mktemp("keyed-ui"), LIKEOPT_READS_NEED_KEY="1")
    with MeshProcess(env=env, args=["--ingest", str(DEMO_CORPUS)]).running() as mesh:
        yield mesh


def test_chat_says_the_key_is_needed_then_answers_once_it_is_entered(keyed: MeshProcess, page: Any) -> None:
    page.goto(keyed.base_url + "/")
    ask(page, "Which port does Envoy listen on?")
    refused = page.locator(".message.assistant .notice.error").last
    refused.wait_for(timeout=30_000)
    assert "API key" in refused.inner_text()

    page.goto(keyed.base_url + "/#documents")
    page.fill("#api-key", keyed.api_key)
    page.goto(keyed.base_url + "/#chat")
    ask(page, "Which port does Envoy listen on?")
    answer = page.locator(".message.assistant").last
    answer.locator(".sources").wait_for(timeout=30_000)
    assert "[1]" in answer.locator(".answer-text").inner_text()
