"""The feedback file through the whole mesh: while generation_svc cannot open it, a rating is 503 naming the
cause, and once it can (no restart) the answer given meanwhile is rated."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.integration.test_answers_mesh import done_of
from tests.integration.test_generation_mesh import chat
from tests.support import MeshProcess, ValkeyServer, mesh_environment

REOPENED_WITHIN_S = 60.0
"""How long the test waits for generation_svc to open the file once it can (it tries every few seconds)."""


def test_a_rating_is_503_while_the_feedback_file_cannot_be_opened_and_stored_once_it_can(
    tmp_path: Path, valkey: ValkeyServer
) -> None:
    """Feedback was off until a restart (502 UNIMPLEMENTED "feedback is not kept by this server"), and the answers
    given meanwhile carried ids that could never be rated."""
    blocked = tmp_path / "feedback"
    blocked.write_text("a file where the feedback folder should be")
    env = mesh_environment(tmp_path, LIKEOPT_REDIS_URL=valkey.url, LIKEOPT_FEEDBACK_DB=str(blocked / "answers.sqlite3"))
    with MeshProcess(env=env, args=[]).running() as mesh:
        answer_id = done_of(chat(mesh, "What does Like-Opt keep for feedback?"))["answer_id"]
        url, body = f"{mesh.base_url}/api/v1/feedback", {"answer_id": answer_id, "rating": "down"}
        refused = httpx.post(url, json=body, timeout=10)
        blocked.unlink()
        deadline = time.monotonic() + REOPENED_WITHIN_S
        while (stored := httpx.post(url, json=body, timeout=10)).status_code == 503:
            assert time.monotonic() < deadline, stored.text
            time.sleep(0.5)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "UNAVAILABLE"
    message = refused.json()["error"]["message"]
    assert message.startswith("generation_svc's feedback file (LIKEOPT_FEEDBACK_DB) cannot be opened (")
    assert str(tmp_path) not in message
    assert stored.status_code == 200 and stored.json()["answer_id"] == answer_id
    assert any("generation_svc: feedback is off until" in line for line in mesh.output)  # the operator was told
