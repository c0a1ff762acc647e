"""The web UI in a real browser, against the real mesh through Envoy."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.pdfs import pdf_bytes
from tests.support import MeshProcess

COUNT_ANSWER_UPDATES = """
() => {
  window.answerUpdates = 0;
  new MutationObserver((records) => {
    for (const r of records) {
      const node = r.target.nodeType === Node.ELEMENT_NODE ? r.target : r.target.parentElement;
      if (node && node.closest('.answer-text')) window.answerUpdates += 1;
    }
  }).observe(document.getElementById('messages'), {childList: true, subtree: true, characterData: true});
}
"""


UPLOADED_ONE = "document.getElementById('upload-status').textContent.includes('Added or updated 1 document')"


def upload(page: Any, mesh: MeshProcess, path: Path) -> None:
    """Upload one file from the Documents view and wait for the result."""
    page.goto(mesh.base_url + "/#documents")
    page.fill("#api-key", mesh.api_key)
    page.set_input_files("#file-input", str(path))
    page.wait_for_function(UPLOADED_ONE, timeout=60_000)


def ask(page: Any, question: str) -> None:
    page.fill("#query", question)
    page.press("#query", "Enter")


def test_question_streams_an_answer_with_citations_that_open(mesh: MeshProcess, page: Any, shots: Path) -> None:
    page.goto(mesh.base_url + "/")
    page.evaluate(COUNT_ANSWER_UPDATES)
    ask(page, "How does Like-Opt cache answers in Redis?")
    answer = page.locator(".message.assistant").last
    answer.locator(".sources").wait_for(timeout=30_000)
    page.wait_for_selector("#send:not([hidden])", timeout=30_000)
    assert page.evaluate("window.answerUpdates") >= 2
    assert "[1]" in answer.locator(".answer-text").inner_text()
    assert answer.locator(".trace-id").inner_text().strip()
    page.screenshot(path=str(shots / "answer.png"))

    answer.locator(".citation-marker").first.click()
    dialog = page.locator("#citation-dialog")
    dialog.wait_for(state="visible")
    assert dialog.locator("#citation-text").inner_text().strip()
    assert dialog.locator("#citation-doc").inner_text().strip().endswith(".md")


def test_deleting_a_conversation_deletes_the_server_s_copy_too(mesh: MeshProcess, page: Any) -> None:
    page.goto(mesh.base_url + "/")
    ask(page, "How does Like-Opt cache answers in Redis?")
    page.wait_for_selector(".message.assistant .sources", timeout=30_000)
    page.wait_for_selector("#send:not([hidden])", timeout=30_000)
    conversation_id = page.evaluate("JSON.parse(localStorage.getItem('likeopt.conversations'))[0].conversationId")
    stored = f"{mesh.base_url}/api/v1/conversations/{conversation_id}"
    assert httpx.get(stored, timeout=10).status_code == 200

    with page.expect_response(lambda r: r.request.method == "DELETE" and conversation_id in r.url) as deletion:
        page.locator(".conversation-delete").first.click()
        page.locator(".conversation-delete").first.click()  # the second press confirms
    assert deletion.value.status == 200
    assert httpx.get(stored, timeout=10).status_code == 404
    assert page.locator(".conversation").count() == 0
    page.reload()  # the last conversation stays deleted in the browser too
    assert page.locator(".conversation").count() == 0 and page.locator("#conversation-empty").is_visible()


def test_uploaded_document_is_found_by_search(mesh: MeshProcess, page: Any, tmp_path: Path) -> None:
    note = tmp_path / "lighthouse.md"
    note.write_text("# Lighthouse log\n\nThe Vantblade lighthouse keeper rings the fog bell at 6 pm.\n")
    upload(page, mesh, note)
    assert "lighthouse.md" in document_search(page, "Vantblade fog bell")


def document_search(page: Any, query: str) -> str:
    """The Documents view's search results for query, once the first is shown."""
    page.fill("#doc-search", query)
    page.press("#doc-search", "Enter")
    results = page.locator("#doc-search-results")
    results.locator("li").first.wait_for(timeout=30_000)
    return results.inner_text()


def test_a_pdf_without_an_extension_is_uploaded_and_read_by_its_bytes(
    mesh: MeshProcess, page: Any, tmp_path: Path
) -> None:
    report = tmp_path / "quarterly-report"
    report.write_bytes(pdf_bytes(["The Quillmoor quarterly report counts 41 heron nests on the estate."]))
    upload(page, mesh, report)
    assert "quarterly-report" in document_search(page, "Quillmoor heron nests")


def test_the_picker_offers_files_read_by_name_and_the_page_sends_a_dockerfile_variant(
    mesh: MeshProcess, page: Any, tmp_path: Path
) -> None:
    """The picker's accept filter listed suffixes only (HTML allows no whole names), so a Dockerfile or LICENSE could
    be dropped but not chosen; and the page refused Dockerfile.dev for its unknown suffix before sending it."""
    variant = tmp_path / "Dockerfile.dev"
    variant.write_text("FROM python:3.12-slim\n# the Brisworth relay listens on port 7422\nEXPOSE 7422\n")
    upload(page, mesh, variant)
    assert page.get_attribute("#file-input", "accept") is None
    assert "dockerfile.*" in page.locator("#file-types").inner_text()
    assert "Dockerfile.dev" in document_search(page, "Brisworth relay port")


def test_a_table_is_offered_uploaded_and_answered_from(mesh: MeshProcess, page: Any, tmp_path: Path) -> None:
    """The page lists the file types the server reads (a .csv among them) and an uploaded table is answered from."""
    table = tmp_path / "ferries.csv"
    table.write_text("route,departs\nKellsmoor to Hullavane,The Kellsmoor ferry departs at 7:40 every morning.\n")
    upload(page, mesh, table)
    assert ".csv" in page.locator("#file-types").inner_text()
    found = httpx.post(f"{mesh.base_url}/api/v1/search", json={"query": "Kellsmoor ferry departs"}, timeout=30)
    assert found.json()["hits"][0]["doc_id"] == "ferries.csv"
    assert "route: Kellsmoor to Hullavane" in found.json()["hits"][0]["text"]


def with_limits(page: Any, **limits: int) -> list[str]:
    """The page gets /static/config.js as the server publishes it (returned, once loaded), with smaller limits
    after it (e.g. LIKEOPT_MAX_UPLOAD_FILES=1): a few small files then make several batches."""
    published: list[str] = []

    def handle(route: Any) -> None:
        published.append(route.fetch().text())
        smaller = "".join(f"window.LIKEOPT_{name} = {value};\n" for name, value in limits.items())
        route.fulfill(body=published[0] + smaller, content_type="text/javascript")

    page.route("**/static/config.js", handle)
    return published


def batch_notes(folder: Path, names: list[str], size: int) -> list[Path]:
    """Notes of about `size` bytes, each with words of its own."""
    paths = []
    for name in names:
        path = folder / name
        path.write_text(f"# Batch note {name}\n\n" + f"The {name} ledger lists marmot crossings. " * (size // 42))
        paths.append(path)
    return paths


def upload_many(page: Any, mesh: MeshProcess, paths: list[Path]) -> list[Any]:
    """Upload from the Documents view, waiting for the result; the upload requests it made are returned."""
    page.goto(mesh.base_url + "/#documents")
    page.fill("#api-key", mesh.api_key)
    posts: list[Any] = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" and r.url.endswith("/documents") else None)
    page.set_input_files("#file-input", [str(p) for p in paths])
    page.wait_for_function(
        "(t => t.startsWith('Added') || t.startsWith('Upload failed'))"
        "(document.getElementById('upload-status').textContent)",
        timeout=60_000,
    )
    return posts


def delete_documents(mesh: MeshProcess, paths: list[Path]) -> None:
    for path in paths:
        httpx.delete(f"{mesh.base_url}/api/v1/documents/{path.name}", headers=key_header(mesh), timeout=30)


def key_header(mesh: MeshProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {mesh.api_key}"}


def test_an_upload_with_a_failed_batch_reports_what_was_added_and_lists_it(
    mesh: MeshProcess, page: Any, tmp_path: Path
) -> None:
    """One batch of three refused: the other two are reported as added, its file is listed with the reason, and
    the list is read again, so what was added shows."""
    notes = batch_notes(tmp_path, ["00-batch-a.txt", "00-batch-b.txt", "00-batch-c.txt"], 300)
    with_limits(page, MAX_UPLOAD_FILES=1)
    sent: list[str] = []

    def refuse_the_second(route: Any) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        sent.append(route.request.url)
        if len(sent) == 2:
            error = {"error": {"code": "UNAVAILABLE", "message": "retrieval_svc cannot be reached now"}}
            route.fulfill(status=503, json=error)
        else:
            route.continue_()

    page.route("**/api/v1/documents", refuse_the_second)
    try:
        upload_many(page, mesh, notes)
        status = page.inner_text("#upload-status")
        assert status.startswith("Added or updated 2 documents") and "1 of 3 uploads failed" in status, status
        skipped = page.inner_text("#upload-skipped")
        assert "00-batch-b.txt" in skipped and "cannot be reached" in skipped, skipped
        page.locator("#doc-list li[data-doc-id='00-batch-c.txt']").wait_for(timeout=30_000)
    finally:
        delete_documents(mesh, notes)


def test_an_upload_is_cut_by_bytes_and_a_file_over_the_limit_is_not_sent(
    mesh: MeshProcess, page: Any, tmp_path: Path
) -> None:
    """Two files that together pass the body limit go in two requests; one over it alone is listed, never sent."""
    limit = 4096
    notes = batch_notes(tmp_path, ["00-bytes-a.txt", "00-bytes-b.txt"], 2500)
    too_large = batch_notes(tmp_path, ["00-bytes-big.txt"], 5000)
    published = with_limits(page, MAX_REQUEST_BYTES=limit)
    try:
        posts = upload_many(page, mesh, notes + too_large)
        assert "window.LIKEOPT_MAX_REQUEST_BYTES = " in published[0]  # the server's own limit reaches the page
        assert page.inner_text("#upload-status").startswith("Added or updated 2 documents")
        assert "00-bytes-big.txt: over the" in page.inner_text("#upload-skipped")
        sizes = [len(post.post_data_buffer or b"") for post in posts]
        assert len(sizes) == 2 and all(size <= limit for size in sizes), sizes
    finally:
        delete_documents(mesh, notes + too_large)


def test_documents_are_listed_and_one_is_deleted_from_the_list(mesh: MeshProcess, page: Any, tmp_path: Path) -> None:
    note = tmp_path / "zz-quarry.md"
    note.write_text("# Quarry rota\n\nThe Ostrevant quarry opens at dawn.\n")
    upload(page, mesh, note)
    listing = page.locator("#doc-list")
    listing.locator("li").first.wait_for(timeout=30_000)
    while page.locator("#doc-list-more").is_visible():  # the upload sorts last: page through to it
        count = listing.locator("li").count()
        page.click("#doc-list-more")
        page.wait_for_function(f"document.querySelectorAll('#doc-list li').length > {count}", timeout=30_000)
    item = listing.locator("li", has_text="zz-quarry.md")
    assert "Quarry rota" in item.inner_text() and "1 chunk" in item.inner_text()
    item.get_by_role("button", name="Delete zz-quarry.md").click()
    item.get_by_role("button", name="Confirm delete zz-quarry.md").click()
    page.wait_for_function("document.getElementById('doc-list-status').textContent.includes('Deleted')")
    assert listing.locator("li", has_text="zz-quarry.md").count() == 0
    gone = httpx.get(f"{mesh.base_url}/api/v1/documents/zz-quarry.md", timeout=30)
    assert gone.status_code == 404


def test_a_deleted_document_leaves_the_search_results_too(mesh: MeshProcess, page: Any) -> None:
    note = {"id": "zz-saltpan.md", "title": "Saltpan rota", "text": "The Wendlecombe saltpan is raked at noon."}
    added = httpx.post(f"{mesh.base_url}/api/v1/documents", json={"documents": [note]}, headers=key_header(mesh))
    assert added.status_code == 200, added.text
    page.goto(mesh.base_url + "/#documents")
    page.fill("#api-key", mesh.api_key)
    page.fill("#doc-search", "Wendlecombe saltpan")
    page.press("#doc-search", "Enter")
    found = page.locator("#doc-search-results li", has_text="zz-saltpan.md")
    found.wait_for(timeout=30_000)
    page.fill("#delete-id", "zz-saltpan.md")
    page.click("#delete-form button[type=submit]")
    page.wait_for_function("document.getElementById('delete-status').textContent.includes('Deleted')")
    assert found.count() == 0


def test_script_in_a_document_is_shown_as_text(mesh: MeshProcess, page: Any, tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.txt"
    hostile.write_text("Quixotic marmalade <script>window.pwned = 1</script> <img src=x onerror=window.pwned=2>.")
    upload(page, mesh, hostile)
    page.goto(mesh.base_url + "/#chat")
    ask(page, "quixotic marmalade")
    answer = page.locator(".message.assistant").last
    answer.locator(".sources").wait_for(timeout=30_000)
    answer.locator(".citation-marker").first.click()
    page.locator("#citation-dialog").wait_for(state="visible")
    assert "<script>" in page.locator("#citation-text").inner_text()
    assert page.evaluate("window.pwned") is None


def test_dashboard_shows_live_numbers(mesh: MeshProcess, page: Any) -> None:
    page.goto(mesh.base_url + "/#dashboard")
    page.wait_for_function("/[0-9]/.test(document.getElementById('dashboard-rps').textContent)", timeout=30_000)
    assert page.locator("#dashboard-services tr").count() >= 4
    assert (
        "MB" in page.locator("#dashboard-services").inner_text()
        or "MiB" in page.locator("#dashboard-services").inner_text()
    )


def test_the_ui_runs_whole_under_its_content_security_policy(mesh: MeshProcess, browser: Any) -> None:
    """Each view and the API reference, with the policy enforced (the page fixture bypasses it): nothing blocked."""
    context = browser.new_context()
    page = context.new_page()
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text) if "Security Policy" in message.text else None)
    try:
        page.goto(mesh.base_url + "/")
        ask(page, "How does Like-Opt cache answers in Redis?")
        page.locator(".message.assistant .sources").last.wait_for(timeout=30_000)
        page.locator(".message.assistant .citation-marker").first.click()
        page.locator("#citation-dialog").wait_for(state="visible")
        page.keyboard.press("Escape")
        page.click("#tab-documents")
        page.locator("#doc-list li").first.wait_for(timeout=30_000)
        page.click("#tab-dashboard")
        page.locator("#dashboard-services tr").nth(3).wait_for(timeout=30_000)
        page.goto(mesh.base_url + "/api/v1/docs")
        page.get_by_text("POST /api/v1/search").wait_for(timeout=15_000)
    finally:
        context.close()
    assert not blocked, blocked


def test_api_docs_page_lists_the_routes(mesh: MeshProcess, page: Any) -> None:
    page.goto(mesh.base_url + "/api/v1/docs")
    page.get_by_text("POST /api/v1/search").wait_for(timeout=15_000)
    assert "DELETE /api/v1/documents/{doc_id}" in page.locator("#api-docs").inner_text()


COUNT_UPDATES_WHILE_GENERATING = """
() => {
  window.updatesWhileGenerating = 0;
  new MutationObserver((records) => {
    const generating = !document.getElementById('stop').hidden;
    for (const r of records) {
      const node = r.target.nodeType === Node.ELEMENT_NODE ? r.target : r.target.parentElement;
      if (generating && node && node.closest('.answer-text')) window.updatesWhileGenerating += 1;
    }
  }).observe(document.getElementById('messages'), {childList: true, subtree: true, characterData: true});
}
"""


def test_a_model_answer_grows_in_several_updates_before_it_completes(local_mesh: MeshProcess, page: Any) -> None:
    page.goto(local_mesh.base_url + "/")
    page.evaluate(COUNT_UPDATES_WHILE_GENERATING)
    ask(page, "How does Like-Opt cache answers in Redis?")
    page.wait_for_selector("#stop:not([hidden])", timeout=30_000)
    page.wait_for_selector("#send:not([hidden])", timeout=120_000)
    assert page.evaluate("window.updatesWhileGenerating") >= 2
    assert page.locator(".message.assistant .answer-text").last.inner_text().strip()


def test_the_stop_button_cancels_generation(local_mesh: MeshProcess, page: Any) -> None:
    cancelled = 'likeopt_rpc_calls_total{code="CANCELLED",method="Answer"}'
    metrics_url = f"http://127.0.0.1:{local_mesh.port('generation_metrics')}/metrics"

    def cancelled_count() -> float:
        lines = httpx.get(metrics_url, timeout=5).text.splitlines()
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(cancelled))

    before = cancelled_count()
    page.goto(local_mesh.base_url + "/")
    ask(page, "Explain everything about how Envoy routes gRPC-web, REST and the web UI.")
    answer = page.locator(".message.assistant").last
    # Passages found, the model reading them: the answer is under way. (Its first words come about a
    # second later and the whole answer a second or two after that, too short a window to aim at.)
    answer.locator(".progress").filter(has_text="Writing the answer").wait_for(timeout=60_000)
    page.click("#stop")
    page.wait_for_selector("#send:not([hidden])", timeout=10_000)
    assert "stopped" in answer.inner_text().lower()
    deadline = time.monotonic() + 15
    while cancelled_count() <= before:
        assert time.monotonic() < deadline, "generation_svc never saw the cancel"
        time.sleep(0.1)
    # A follow-up stays in the conversation: its id came with the first event, and the stopped turn is kept.
    conversation_id = page.evaluate("JSON.parse(localStorage.getItem('likeopt.conversations'))[0].conversationId")
    assert conversation_id
    url = f"{local_mesh.base_url}/api/v1/conversations/{conversation_id}"
    stored = httpx.get(url, timeout=10)
    while stored.status_code == 404 and time.monotonic() < deadline:  # the stopped turn is saved in the background
        time.sleep(0.1)
        stored = httpx.get(url, timeout=10)
    assert [t["interrupted"] for t in stored.json()["turns"]] == [True]


def test_an_upload_that_gives_a_stored_document_other_readers_says_so(
    mesh: MeshProcess, page: Any, tmp_path: Path
) -> None:
    """A file uploaded over a document only acme's ops group could read makes it everyone's: the view says so, in a
    list of its own (not among the files skipped), marking in words that it has more readers now."""
    notes = batch_notes(tmp_path, ["00-readers.txt"], 200)
    access = {"tenant": "acme", "groups": ["ops"]}
    restricted = {"id": "00-readers.txt", "title": "Ops only", "text": "Kept for the ops group.", "access": access}
    stored = httpx.post(
        f"{mesh.base_url}/api/v1/documents", json={"documents": [restricted]}, headers=key_header(mesh), timeout=30
    )
    assert stored.status_code == 200, stored.text
    try:
        upload_many(page, mesh, notes)
        assert "Changed who may read 1 document (more readers now: 1)." in page.inner_text("#upload-status")
        assert page.locator("#upload-skipped").is_hidden() and "Skipped" not in page.inner_text("#upload-status")
        changed = page.get_by_role("list", name="Readers changed:")
        assert changed.inner_text() == "00-readers.txt: from acme: group ops to everyone more readers now"
        assert changed.locator(".widened").inner_text() == "more readers now"
    finally:
        delete_documents(mesh, notes)


def test_a_gitignore_is_sent_and_read_by_its_name_not_refused_for_its_extension(
    mesh: MeshProcess, page: Any, tmp_path: Path
) -> None:
    """The page took ".gitignore" for an unknown extension and refused it before sending; the server reads it by its
    whole name, and the page now knows those names (LIKEOPT_FILE_NAMES)."""
    ignore = tmp_path / ".gitignore"
    ignore.write_text("# the Vorland kiln logs stay out of git\n/vorland-logs/\n")
    upload(page, mesh, ignore)
    assert ".gitignore" in page.locator("#file-types").inner_text()
    assert ".gitignore" in document_search(page, "Vorland kiln logs")
