"""The web UI keeps the user's place and tells the truth: keyboard focus across redraws, a question too long to send,
the document list's pages and count, feedback shown only to the right key, and an answer cut by a reload."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.test_web_ui import ask
from tests.support import MeshProcess

FOCUSED_CONVERSATION = (
    "document.activeElement.classList.contains('conversation-open') && "
    "document.activeElement.closest('.conversation').dataset.id"
)
NO_FIGURE = "\u2013"
"""The dash the dashboard shows where there is no figure (dom.js DASH)."""
PAGED_DOCUMENTS = 60
"""More than one page of the list (50), fewer than two."""


def answered(page: Any, question: str) -> None:
    ask(page, question)
    page.wait_for_selector(".message.assistant .sources", timeout=30_000)
    page.wait_for_selector("#send:not([hidden])", timeout=30_000)


def test_keyboard_focus_stays_on_its_conversation_when_the_list_is_redrawn(mesh: MeshProcess, page: Any) -> None:
    page.goto(mesh.base_url + "/")
    answered(page, "How does Like-Opt cache answers in Redis?")
    page.click("#new-chat")
    answered(page, "Which port does Envoy listen on?")
    page.locator(".conversation-open").last.focus()
    before = page.evaluate(FOCUSED_CONVERSATION)
    # Another tab saved a conversation: the sidebar is drawn again, as when an answer ends.
    page.evaluate("window.dispatchEvent(new StorageEvent('storage', {key: null}))")
    assert before and page.evaluate(FOCUSED_CONVERSATION) == before


STREAMED_ANSWER = """() => import('/static/message.js').then(({ createAnswerView }) => {
  const view = createAnswerView({ role: 'assistant', text: '', citations: [] });
  document.getElementById('messages').append(view.root);
  view.startProgress();
  window.answer = view;
  window.delta = (text) => view.apply('delta', { text });
  window.cite = (n) => view.apply('citation', { n, doc_id: `docs/${n}.md`, chunk_id: 0, title: `Note ${n}`,
                                               text: `Passage ${n}.`, supported: true });
  window.marker = (n) => view.root.querySelector(`.citation-marker[data-n="${n}"]`);
})"""
"""An answer view in the chat, fed its stream events by the test (in the order a model sends them: markers before
their citation events) rather than by a model, whose timing would decide what the test sees."""


def test_a_marker_keeps_focus_while_the_answer_streams_and_its_dialog_fills_in(mesh: MeshProcess, page: Any) -> None:
    page.goto(mesh.base_url + "/")
    page.evaluate(STREAMED_ANSWER)
    page.evaluate("delta('Retrieval fuses BM25 and dense hits [1]')")
    page.evaluate("window.opener = marker(1); opener.focus()")
    page.evaluate("delta(' and reranks them with a cross-encoder [2'); delta('].')")
    assert page.evaluate("document.activeElement === opener")

    page.keyboard.press("Enter")  # opened before its citation arrived
    page.locator("#citation-dialog").wait_for(state="visible")
    assert "on its way" in page.inner_text("#citation-text")
    page.evaluate("cite(1); delta(' More text.')")
    assert page.inner_text("#citation-title") == "[1] Note 1" and page.inner_text("#citation-text") == "Passage 1."
    page.keyboard.press("Escape")  # the dialog's close event, which moves focus, comes a moment after
    page.wait_for_function("document.activeElement === opener", timeout=5_000)

    page.evaluate("cite(2); answer.root.querySelector('.sources summary').focus()")
    page.evaluate("window.summary = document.activeElement; cite(3)")
    assert page.evaluate("document.activeElement === summary")  # the Sources list kept its items


def test_a_marker_read_anew_by_a_later_delta_hands_focus_to_its_equivalent(mesh: MeshProcess, page: Any) -> None:
    page.goto(mesh.base_url + "/")
    page.evaluate(STREAMED_ANSWER)
    page.evaluate("delta('Hybrid search **joins [1] and')")
    page.evaluate("marker(1).focus()")
    page.evaluate("delta(' fuses**.')")  # the bold closes around the marker: it is drawn inside <strong> now
    assert page.evaluate("document.activeElement === marker(1) && !!marker(1).closest('strong')")
    page.keyboard.press("Enter")
    page.locator("#citation-dialog").wait_for(state="visible")
    page.evaluate("answer.finish()")  # no citation came: the marker is text now, and the dialog says so
    assert "ended without" in page.inner_text("#citation-text")
    page.keyboard.press("Escape")  # the dialog's close event, which moves focus, comes a moment after
    page.wait_for_function("document.activeElement === answer.root.querySelector('.answer-text')", timeout=5_000)


def test_a_question_over_the_limit_stays_in_the_composer_with_the_reason(mesh: MeshProcess, page: Any) -> None:
    page.goto(mesh.base_url + "/")
    too_long = "why " * 1100  # 4,400 characters, past the services' 4,096
    page.fill("#query", too_long)
    page.press("#query", "Enter")
    page.wait_for_function("document.getElementById('chat-status').textContent.includes('limit is 4096')")
    assert page.input_value("#query") == too_long
    assert page.locator(".message").count() == 0 and page.evaluate("localStorage.length") == 0


@pytest.fixture
def paged(mesh: MeshProcess) -> Iterator[list[str]]:
    """More documents than one page of the list holds, taken away again after the test."""
    ids = [f"paging-{n:02d}" for n in range(PAGED_DOCUMENTS)]
    auth = {"Authorization": f"Bearer {mesh.api_key}"}
    documents = [{"id": i, "title": f"Paging note {i}", "text": f"Paging note {i} for the list."} for i in ids]
    added = httpx.post(f"{mesh.base_url}/api/v1/documents", json={"documents": documents}, headers=auth, timeout=120)
    assert added.status_code == 200, added.text
    try:
        yield ids
    finally:
        for doc_id in ids:
            httpx.delete(f"{mesh.base_url}/api/v1/documents/{doc_id}", headers=auth, timeout=30)


def test_show_more_loads_each_page_once_and_a_delete_updates_the_count(
    mesh: MeshProcess, page: Any, paged: list[str]
) -> None:
    page.goto(mesh.base_url + "/#documents")
    page.fill("#api-key", mesh.api_key)
    page.wait_for_selector("#doc-list-more:not([hidden])", timeout=30_000)
    page.dblclick("#doc-list-more")
    page.wait_for_function("document.querySelectorAll('#doc-list li').length > 50")
    page.wait_for_load_state("networkidle")  # a second page, had the double click asked for one, has arrived
    shown = page.eval_on_selector_all("#doc-list li", "items => items.map((li) => li.dataset.docId)")
    total = len(shown)
    assert len(set(shown)) == total and set(paged) <= set(shown)
    assert page.inner_text("#doc-list-status") == f"{total} documents of {total} shown."

    page.fill("#delete-id", paged[0])
    page.click("#delete-form button[type=submit]")
    page.wait_for_function(f"document.getElementById('doc-list-status').textContent.includes('of {total - 1}')")


def test_show_more_from_the_keyboard_goes_on_at_the_first_new_document(
    mesh: MeshProcess, page: Any, paged: list[str]
) -> None:
    """Enter on 'Show more' leaves focus on the first document it added: the button was disabled while the page
    loaded, which dropped focus to the top of the page, and a keyboard user had to Tab back from there."""
    page.goto(mesh.base_url + "/#documents")
    page.wait_for_selector("#doc-list-more:not([hidden])", timeout=30_000)
    page.focus("#doc-list-more")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelectorAll('#doc-list li').length > 50")
    focused = page.evaluate("[document.activeElement.className, document.activeElement.closest('li')?.dataset.docId]")
    first_new = page.eval_on_selector_all("#doc-list li", "items => items[50].dataset.docId")
    assert focused == ["hit-title open-document", first_new]


def test_a_refresh_keeps_every_page_the_user_had_opened(mesh: MeshProcess, page: Any, paged: list[str]) -> None:
    """Refresh (or an upload's redraw) read the first page alone: a user who had opened the second lost it."""
    page.goto(mesh.base_url + "/#documents")
    page.wait_for_selector("#doc-list-more:not([hidden])", timeout=30_000)
    page.click("#doc-list-more")
    page.wait_for_function("document.querySelectorAll('#doc-list li').length > 50")
    page.wait_for_load_state("networkidle")
    shown = page.eval_on_selector_all("#doc-list li", "items => items.map((li) => li.dataset.docId)")
    page.evaluate("document.getElementById('doc-list-status').textContent = ''")
    page.click("#index-refresh")
    page.wait_for_function("document.getElementById('doc-list-status').textContent.endsWith('shown.')")
    again = page.eval_on_selector_all("#doc-list li", "items => items.map((li) => li.dataset.docId)")
    assert again == shown


def test_feedback_is_shown_only_while_the_key_is_right(mesh: MeshProcess, page: Any) -> None:
    page.goto(mesh.base_url + "/")
    answered(page, "What does cache_svc do?")
    page.click(".feedback-thumb.up")
    page.fill(".feedback-comment", "clear and cited")
    page.click(".feedback-send")
    page.wait_for_selector(".feedback-done")
    assert page.evaluate("document.activeElement.classList.contains('feedback-done')")  # focus kept its place

    page.goto(mesh.base_url + "/#documents")
    page.fill("#api-key", mesh.api_key)
    page.click("#tab-dashboard")
    page.wait_for_selector("#feedback-list li")
    page.click("#tab-documents")
    page.fill("#api-key", "a-wrong-key")
    page.click("#tab-dashboard")
    page.wait_for_function("document.getElementById('feedback-status').textContent.includes('not loaded')")
    assert page.locator("#feedback-list li").count() == 0
    assert page.inner_text("#feedback-counts") == NO_FIGURE


def test_reloading_mid_answer_keeps_the_text_that_arrived(local_mesh: MeshProcess, page: Any) -> None:
    page.goto(local_mesh.base_url + "/")
    ask(page, "Explain everything about how Envoy routes gRPC-web, REST and the web UI.")
    page.wait_for_function(
        "[...document.querySelectorAll('.message.assistant .answer-text')].pop()?.textContent.trim().length > 0",
        timeout=60_000,
    )
    page.reload()
    restored = page.locator(".message.assistant").last
    assert restored.locator(".answer-text").inner_text().strip()
    assert "interrupted" in restored.inner_text().lower()


def test_a_document_opens_from_the_list_and_from_search_chunk_by_chunk(mesh: MeshProcess, page: Any) -> None:
    page.goto(mesh.base_url + "/#documents")
    title = page.locator("#doc-list li[data-doc-id='docs/caching.md'] .open-document")
    title.click()
    dialog = page.locator("#document-dialog")
    dialog.wait_for(state="visible")
    page.wait_for_function("document.getElementById('document-title').textContent === 'Caching in Like-Opt'")
    assert "Like-Opt caches at four layers" in dialog.locator("#document-chunks").inner_text()
    assert "chunk" in page.inner_text("#document-meta") and page.inner_text("#document-id") == "docs/caching.md"
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.classList.contains('open-document')")  # back where it was

    page.fill("#doc-search", "how many cache layers")
    page.press("#doc-search", "Enter")
    page.locator("#doc-search-results .open-document").first.click()
    dialog.wait_for(state="visible")
    page.wait_for_function("document.querySelectorAll('#document-chunks li').length > 0")


SAVED_QUESTIONS = (
    "JSON.parse(localStorage.getItem('likeopt.conversations'))[0].messages"
    ".filter((m) => m.role === 'user').map((m) => m.text)"
)


TWO_TAB_QUESTIONS = ["How does Like-Opt cache answers in Redis?", "Which port does Envoy listen on?", "What is BM25?"]


def open_in_another_tab(mesh: MeshProcess, page: Any, first_question: str) -> Any:
    """A conversation begun in `page` and opened in a second tab of the same browser, which is returned."""
    page.goto(mesh.base_url + "/")
    answered(page, first_question)
    other = page.context.new_page()
    other.goto(mesh.base_url + "/")
    other.locator(".conversation-open").first.click()
    return other


def test_a_turn_asked_in_another_tab_is_not_saved_over(mesh: MeshProcess, page: Any) -> None:
    """Two tabs on one conversation: each question asked in either is kept, in the order asked."""
    questions = TWO_TAB_QUESTIONS
    other = open_in_another_tab(mesh, page, questions[0])
    answered(other, questions[1])
    page.wait_for_function(f"document.querySelector('#messages').textContent.includes({questions[1]!r})")
    answered(page, questions[2])
    assert page.evaluate(SAVED_QUESTIONS) == questions
    other.close()


def hold_questions(page: Any) -> list[Any]:
    """The tab's questions wait (held[n].continue_() sends one): its answer ends only after what another tab does."""
    held: list[Any] = []

    def hold(route: Any) -> None:
        held.append(route)

    page.route("**/api/v1/chat", hold)
    return held


def ask_held(page: Any, held: list[Any], question: str) -> None:
    ask(page, question)
    for _ in range(100):  # the route's handler runs while Playwright waits
        if held:
            return
        page.wait_for_timeout(100)
    raise AssertionError("the question was not sent")


def test_an_answer_finishing_after_another_tab_s_turn_keeps_that_turn(mesh: MeshProcess, page: Any) -> None:
    """The slower tab's answer ends last: it is added to the stored conversation, not saved over the other's turn."""
    questions = TWO_TAB_QUESTIONS
    other = open_in_another_tab(mesh, page, questions[0])
    held = hold_questions(page)
    ask_held(page, held, questions[1])
    other.wait_for_function(f"document.querySelector('#messages').textContent.includes({questions[1]!r})")
    answered(other, questions[2])
    held[0].continue_()
    page.wait_for_selector("#send:not([hidden])", timeout=30_000)
    assert page.evaluate(SAVED_QUESTIONS) == questions
    page.wait_for_function(f"document.querySelector('#messages').textContent.includes({questions[2]!r})")
    other.wait_for_function("document.querySelectorAll('#messages .message.assistant .sources').length === 3")
    other.close()


def test_a_conversation_deleted_in_another_tab_stays_deleted_when_an_answer_in_it_ends(
    mesh: MeshProcess, page: Any
) -> None:
    other = open_in_another_tab(mesh, page, TWO_TAB_QUESTIONS[0])
    held = hold_questions(page)
    ask_held(page, held, TWO_TAB_QUESTIONS[1])
    other.click(".conversation-delete")
    other.click(".conversation-delete")  # the second press confirms
    other.wait_for_function("JSON.parse(localStorage.getItem('likeopt.conversations')).length === 0")
    held[0].continue_()
    page.wait_for_selector("#send:not([hidden])", timeout=30_000)
    assert page.evaluate("JSON.parse(localStorage.getItem('likeopt.conversations'))") == []
    page.wait_for_function("document.getElementById('chat-status').textContent.includes('deleted in another tab')")
    assert page.locator(".message.assistant .sources").count() == 2  # the answer is still shown in this tab
    page.unroute("**/api/v1/chat")
    answered(page, TWO_TAB_QUESTIONS[2])  # a new conversation, holding only the new question
    assert page.evaluate(SAVED_QUESTIONS) == TWO_TAB_QUESTIONS[2:]
    assert page.locator(".message.user").count() == 1
    other.close()


def test_a_new_conversation_names_itself_to_the_server_from_its_first_question(mesh: MeshProcess, page: Any) -> None:
    """So an answer stopped before its first event still leaves a conversation its follow-up continues."""
    page.goto(mesh.base_url + "/")
    with page.expect_request("**/api/v1/chat") as sent:
        ask(page, "How does Like-Opt cache answers in Redis?")
    conversation_id = sent.value.post_data_json["conversation_id"]
    page.wait_for_selector(".message.assistant .sources", timeout=30_000)
    saved = page.evaluate("JSON.parse(localStorage.getItem('likeopt.conversations'))[0].conversationId")
    assert len(conversation_id) == 32 and saved == conversation_id


def test_the_messages_are_a_named_region_and_an_answer_is_busy_until_it_ends(mesh: MeshProcess, page: Any) -> None:
    """The answer's text is a polite live region, busy while it streams: a screen reader reads the whole answer out
    once, when it is written, without the user going to look for it."""
    page.goto(mesh.base_url + "/")
    assert page.get_by_role("region", name="Messages").count() == 1
    held = hold_questions(page)
    ask_held(page, held, "Which port does Envoy listen on?")
    answer = page.locator(".message.assistant")
    text = answer.locator(".answer-text")
    assert answer.get_attribute("aria-busy") == "true" and text.get_attribute("aria-busy") == "true"
    assert text.get_attribute("aria-live") == "polite"
    held[0].continue_()
    page.wait_for_selector("#send:not([hidden])", timeout=30_000)
    assert answer.get_attribute("aria-busy") is None and answer.locator(".sources").is_visible()
    assert text.get_attribute("aria-busy") is None and text.get_attribute("aria-live") == "polite"


SAVED = "likeopt.conversations"
"""Where the UI keeps the conversations of API-key mode (conversations.js)."""
READABLE = "docs/caching.md"
"""A document of the demo corpus: every reader may read it."""
NOT_AVAILABLE = "document.getElementById('chat-status').textContent.includes('no longer available')"


def ids_check(url: str) -> bool:
    """The requests asking which cited documents are still readable (GET /api/v1/documents?ids=…)."""
    return "/api/v1/documents?" in url and "ids=" in url


def saved_conversation(local_id: str, title: str, doc_ids: list[str]) -> dict:
    """A conversation as the UI saves it, one answer citing doc_ids (graded fully supported, with an answer id),
    under a conversation id the server holds nothing of: the browser's copy alone speaks for it."""
    citations = [
        {
            "n": n,
            "doc_id": doc,
            "chunk_id": f"{doc}#0",
            "title": f"Note {n}",
            "text": f"Passage {n}.",
            "supported": True,
        }
        for n, doc in enumerate(doc_ids, 1)
    ]
    meta = {"timings": {}, "support": 1, "answer_id": "a" * 32, "trace_id": "b" * 32, "finish_reason": "stop"}
    answer = " ".join(f"[{c['n']}]" for c in citations)
    return {
        "id": local_id,
        "conversationId": local_id.encode().hex().ljust(32, "0"),
        "title": title,
        "updated": 1,
        "messages": [
            {"role": "user", "text": title, "turn": "t"},
            {"role": "assistant", "text": f"Answer {answer}", "turn": "t", "citations": citations, "meta": meta},
        ],
    }


def open_saved(page: Any, base_url: str, conversations: list[dict]) -> None:
    """Start the page with these conversations saved in the browser, none open."""
    page.goto(base_url + "/")
    page.evaluate("([key, value]) => localStorage.setItem(key, value)", [SAVED, json.dumps(conversations)])
    page.reload()


def test_cited_ids_are_checked_in_addresses_of_bounded_length_and_a_failed_check_hides_no_other(
    mesh: MeshProcess, page: Any
) -> None:
    """100 deleted documents with ids of 170 CJK characters made one address of 152 KB, which Envoy refuses (431):
    the passages stayed on every opening. Cut by length, each check stands on its own: one that fails (503) leaves
    its ids as they were and says so, one refused for its size (431) is asked again in halves."""
    deleted = [f"{'文' * 168}{n:02d}" for n in range(100)]
    open_saved(page, mesh.base_url, [saved_conversation("cjk", "Deleted CJK notes", [READABLE, *deleted])])
    checks: list[Any] = []
    page.on("response", lambda r: checks.append(r) if "ids=" in r.url else None)
    refusals = iter([503, 431])

    def refuse_two(route: Any) -> None:
        status = next(refusals, None)
        if status is None:
            route.continue_()
        else:
            route.fulfill(status=status, json={"error": {"code": "REFUSED", "message": f"refused with {status}"}})

    page.route(ids_check, refuse_two)
    page.click(".conversation-open")
    page.wait_for_function("document.getElementById('chat-status').textContent.includes('could not be checked')")
    answer = page.locator(".message.assistant")
    withdrawn = answer.locator(".sources li.withdrawn").count()
    assert 0 < withdrawn < 100 and answer.locator(".sources details").count() == 101 - withdrawn
    assert "refused with 503" in page.inner_text("#chat-status")
    assert all(len(r.url) < 10_000 for r in checks) and len(checks) > 3, [len(r.url) for r in checks]

    page.unroute(ids_check)
    page.click("#new-chat")
    page.click(".conversation-open")
    answer.locator(".sources li.withdrawn").nth(99).wait_for(timeout=15_000)
    assert answer.locator(".sources details").inner_text().startswith("[1] Note 1")  # the readable one stays


def test_a_withheld_answer_shows_no_support_badge_nor_feedback_and_its_notice_leaves_with_it(
    mesh: MeshProcess, page: Any
) -> None:
    """Withheld, an answer is not there to rate or to be supported; what the status said of its conversation is
    not said of the next one opened, nor of a new chat."""
    notes = [("gone", "A deleted note", ["deleted-note.md"]), ("also-gone", "Another deleted note", ["deleted-2.md"])]
    saved = [saved_conversation(*note) for note in notes]
    open_saved(page, mesh.base_url, [*saved, saved_conversation("kept", "A readable note", [READABLE])])
    page.locator(".conversation-open", has_text="A deleted note").click()
    page.wait_for_function(NOT_AVAILABLE)
    answer = page.locator(".message.assistant")
    assert answer.locator(".sources li.withdrawn").count() == 1 and "no longer available" in answer.inner_text()
    assert answer.locator(".badge.support").count() == 0 and answer.locator(".feedback").count() == 0
    assert answer.locator(".trace-id").count() == 1  # the rest of what is known of it stays
    assert answer.locator(".answer-text").get_attribute("dir") == "auto"

    page.click("#new-chat")
    assert page.inner_text("#chat-status") == ""
    page.locator(".conversation-open", has_text="Another deleted note").click()
    page.wait_for_function(NOT_AVAILABLE)
    page.locator(".conversation-open", has_text="A readable note").click()
    assert page.inner_text("#chat-status") == ""
    kept = page.locator(".message.assistant")
    assert kept.locator(".badge.support").count() == 1 and kept.locator(".feedback").count() == 1


RIGHT_TO_LEFT = "ما هو جهد الحوامة؟"
"""Arabic: typed into a box that is not dir="auto", it is laid out left to right, its question mark at the wrong end."""


def test_right_to_left_words_are_typed_right_to_left(mesh: MeshProcess, page: Any) -> None:
    """The question box, the document search and the feedback comment take their direction from what is typed in
    them, as the questions and answers shown do."""
    page.goto(mesh.base_url + "/")
    answered(page, "How does Like-Opt cache answers in Redis?")
    page.fill("#query", RIGHT_TO_LEFT)
    page.locator(".feedback-thumb.up").last.click()
    page.fill(".feedback-comment", RIGHT_TO_LEFT)
    page.goto(mesh.base_url + "/#documents")
    page.fill("#doc-search", RIGHT_TO_LEFT)
    rtl = "(s) => document.querySelector(s).matches(':dir(rtl)')"
    assert page.evaluate(rtl, "#doc-search")
    page.click("#tab-chat")
    assert page.evaluate(rtl, "#query") and page.evaluate(rtl, ".message.assistant:last-of-type .feedback-comment")


def test_a_delete_refused_for_want_of_the_key_leaves_focus_on_its_button(mesh: MeshProcess, page: Any) -> None:
    """Deleting from the list before entering the API key is refused (401): focus stays on the Delete button, to
    try again once the key is in, rather than falling to the top of the page while the request ran."""
    page.goto(mesh.base_url + "/#documents")
    delete = page.locator("#doc-list li").first.locator("button.danger")
    delete.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('doc-list-status').textContent.includes('Delete failed')")
    assert page.evaluate("document.activeElement === document.querySelector('#doc-list li button.danger')")


def test_feedback_refused_leaves_focus_on_send(mesh: MeshProcess, page: Any) -> None:
    """Feedback on an answer the server no longer knows (its id kept in this browser only) is refused with 404: focus
    stays on 'Send feedback' beside the reason, rather than falling to the top of the page while it was sent."""
    page.goto(mesh.base_url + "/")
    answered(page, "How does Like-Opt cache answers in Redis?")
    page.evaluate("""() => {
      const saved = JSON.parse(localStorage.getItem('likeopt.conversations'));
      saved[0].messages[1].meta.answer_id = 'f'.repeat(32);
      localStorage.setItem('likeopt.conversations', JSON.stringify(saved));
    }""")
    page.reload()
    page.locator(".feedback-thumb.down").click()
    page.keyboard.press("Tab")  # from the comment to Send
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('.feedback-status').textContent.includes('Not sent')")
    assert page.evaluate("document.activeElement.classList.contains('feedback-send')")


def test_escape_takes_back_a_delete_waiting_for_its_confirmation(mesh: MeshProcess, page: Any) -> None:
    """Delete asks for a second press; Escape, the key that cancels everywhere else, takes the first one back: the
    button says Delete again and the status says the document is kept. (No API key is entered: nothing can go.)"""
    page.goto(mesh.base_url + "/#documents")
    delete = page.locator("#doc-list li").first.locator("button.danger")
    doc_id = page.locator("#doc-list li").first.get_attribute("data-doc-id")
    delete.focus()
    page.keyboard.press("Enter")
    assert delete.get_attribute("aria-label") == f"Confirm delete {doc_id}"
    page.keyboard.press("Escape")
    assert delete.inner_text() == "Delete" and delete.get_attribute("aria-label") == f"Delete {doc_id}"
    assert page.inner_text("#doc-list-status") == f"Kept “{doc_id}”: not deleted."
    assert page.evaluate("document.activeElement === document.querySelector('#doc-list li button.danger')")


def test_a_conversation_is_deleted_on_the_second_press_and_escape_keeps_it(mesh: MeshProcess, page: Any) -> None:
    """Deleting a conversation also deletes the server's copy, for good: its button asks for a second press, as a
    document's does, and Escape takes the first back. One stray Enter on it deleted the conversation at once."""
    open_saved(page, mesh.base_url, [saved_conversation("kept", "Kept one", [READABLE])])
    delete = page.locator(".conversation-delete")
    delete.focus()
    page.keyboard.press("Enter")
    assert delete.get_attribute("aria-label") == "Confirm delete conversation: Kept one"
    assert page.locator(".conversation").count() == 1
    page.wait_for_function("document.getElementById('chat-status').textContent.includes('Press again')")
    page.keyboard.press("Escape")
    assert delete.get_attribute("aria-label") == "Delete conversation: Kept one"
    page.wait_for_function("document.getElementById('chat-status').textContent.includes('not deleted')")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('chat-status').textContent === 'Conversation deleted.'")
    assert page.locator(".conversation").count() == 0 and page.evaluate(f"localStorage.getItem('{SAVED}')") == "[]"


def test_the_search_results_are_a_list_named_for_them(mesh: MeshProcess, page: Any) -> None:
    """A screen reader lists the page's lists by name: the results were the one list with none, beside 'All
    documents'."""
    page.goto(mesh.base_url + "/#documents")
    page.fill("#doc-search", "cache")
    page.press("#doc-search", "Enter")
    results = page.get_by_role("list", name="Search results")
    results.get_by_role("listitem").first.wait_for(timeout=30_000)
    assert results.get_by_role("button", name="Caching in Like-Opt").count() == 1
