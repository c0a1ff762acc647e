"""The web UI with LIKEOPT_AUTH=jwt: it signs in with a token handed over after # (#token=, #access_token=) or
pasted, shows who is signed in, reads as that person, and asks again when a token is refused (401)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.browser.test_web_ui import UPLOADED_ONE, ask
from tests.identity import IdentityProvider
from tests.integration import test_identity as identity
from tests.integration.test_identity import QUESTION, Person, write_for

jwt_mesh = identity.jwt_mesh
people = identity.people


def search_documents(page: Any) -> str:
    page.goto(page.url.split("#")[0] + "#documents")
    page.fill("#doc-search", QUESTION)
    page.press("#doc-search", "Enter")
    page.wait_for_function("document.querySelector('#doc-search-status').textContent.includes('found')")
    return page.locator("#doc-search-results").inner_text().lower()


def test_a_handed_over_token_signs_in_and_the_ui_reads_as_that_person(page: Any, people: dict[str, Person]) -> None:
    alice = people["alice"]
    page.goto(f"{alice.mesh.base_url}/#chat&token={alice.token}")
    page.wait_for_function("document.querySelector('#signed-in-as')?.textContent.includes('alice')")
    assert "acme" in page.locator("#signed-in-as").inner_text()
    assert "token=" not in page.url  # taken out of the address bar (and so out of history and bookmarks)
    assert "zirconia" in search_documents(page)
    page.goto(page.url.split("#")[0] + "#chat")
    ask(page, QUESTION)
    page.locator(".message.assistant .sources").last.wait_for(timeout=30_000)


def test_an_implicit_flow_reply_signs_in_and_a_token_in_the_query_is_refused(
    page: Any, people: dict[str, Person]
) -> None:
    """A token after '?' reaches the server and whatever records addresses (it was in Envoy's access log)."""
    alice = people["alice"]
    page.goto(f"{alice.mesh.base_url}/?token={alice.token}")
    page.locator("#signin-dialog[open]").wait_for(timeout=10_000)
    assert 'after "#"' in page.locator("#signin-reason").inner_text() and "token=" not in page.url
    assert page.evaluate("sessionStorage.getItem('likeopt.token')") is None
    page.goto(f"{alice.mesh.base_url}/#access_token={alice.token}&token_type=Bearer&expires_in=300&state=x")
    page.wait_for_function("document.querySelector('#signed-in-as')?.textContent.includes('alice')")
    assert page.url == f"{alice.mesh.base_url}/"  # the whole reply taken out of the address bar


def test_signing_out_asks_for_a_token_and_a_pasted_one_signs_in(page: Any, people: dict[str, Person]) -> None:
    alice, bob = people["alice"], people["bob"]
    page.goto(f"{alice.mesh.base_url}/#token={alice.token}")
    page.wait_for_function("document.querySelector('#signed-in-as')?.textContent.includes('alice')")
    ask(page, "What is the zirconia codeword?")  # her conversation is saved in this browser, titled so
    page.locator(".message.assistant .sources").last.wait_for(timeout=30_000)
    assert "zirconia" in page.locator(".sidebar").inner_text().lower()
    page.click("#sign-out")
    page.locator("#signin-dialog[open]").wait_for(timeout=10_000)
    page.fill("#signin-token", bob.token)
    page.click("#signin-submit")
    page.wait_for_function("document.querySelector('#signed-in-as')?.textContent.includes('bob')")
    assert "zirconia" not in page.locator(".sidebar").inner_text().lower()  # not hers on a shared browser
    found = search_documents(page)
    bob.assert_sees_nothing_hidden(found, "the UI's document search")
    assert "heliotrope" in found


def test_a_refused_token_brings_the_sign_in_back_with_the_reason(
    page: Any, people: dict[str, Person], idp: IdentityProvider
) -> None:
    expired = idp.forgeries("alice", "acme", ["eng"])["expired"]
    page.goto(f"{people['alice'].mesh.base_url}/#token={expired}")
    page.locator("#signin-dialog[open]").wait_for(timeout=10_000)
    assert "expired" in page.locator("#signin-reason").inner_text().lower()


def test_a_conversation_begun_from_a_token_link_is_kept_for_that_person_alone(
    page: Any, people: dict[str, Person]
) -> None:
    """The link's token must be read before the saved conversations are: they were kept for whoever came next."""
    alice, bob = people["alice"], people["bob"]
    page.goto(f"{alice.mesh.base_url}/#token={alice.token}")
    page.wait_for_function("document.querySelector('#signed-in-as')?.textContent.includes('alice')")
    ask(page, "What is the obsidian codeword?")
    page.locator(".message.assistant .sources").last.wait_for(timeout=30_000)
    page.click("#sign-out")
    page.locator("#signin-dialog[open]").wait_for(timeout=10_000)
    assert "obsidian" not in page.locator(".sidebar").inner_text().lower()  # signed out: nobody's
    page.goto(f"{bob.mesh.base_url}/#token={bob.token}")
    page.wait_for_function("document.querySelector('#signed-in-as')?.textContent.includes('bob')")
    assert "obsidian" not in page.locator(".sidebar").inner_text().lower()
    page.goto(f"{alice.mesh.base_url}/#token={alice.token}")
    page.wait_for_function("document.querySelector('#signed-in-as')?.textContent.includes('alice')")
    assert "obsidian" in page.locator(".sidebar").inner_text().lower()  # hers, when she is back


def test_signed_in_without_the_writer_role_an_entered_api_key_writes(
    page: Any, people: dict[str, Person], tmp_path: Path
) -> None:
    """Writes take the writer role or the API key: the key, once entered, must be what an upload sends."""
    bob = people["bob"]
    note = tmp_path / "bob-note.md"
    note.write_text("# Kelpwood\n\nThe kelpwood rota changes on Fridays.\n")
    page.goto(f"{bob.mesh.base_url}/#documents&token={bob.token}")
    page.wait_for_function("document.querySelector('#signed-in-as')?.textContent.includes('bob')")
    page.set_input_files("#file-input", str(note))
    page.wait_for_function("document.getElementById('upload-status').textContent.includes('writer role')")
    page.fill("#api-key", bob.mesh.api_key)
    page.set_input_files("#file-input", str(note))
    page.wait_for_function(UPLOADED_ONE, timeout=60_000)
    assert not page.locator("#signin-dialog[open]").count()  # nobody was asked to sign in again
    key = {"Authorization": f"Bearer {bob.mesh.api_key}"}
    httpx.delete(f"{bob.mesh.base_url}/api/v1/documents/bob-note.md", headers=key, timeout=30)


KEPT_KEY = "sessionStorage.getItem('likeopt.apiKey')"


def enter_the_key(page: Any, person: Person) -> None:
    page.goto(page.url.split("#")[0] + "#documents")
    page.fill("#api-key", person.mesh.api_key)
    assert page.evaluate(KEPT_KEY) == person.mesh.api_key


def test_the_api_key_goes_with_the_person_who_entered_it(page: Any, people: dict[str, Person]) -> None:
    """The key is the signed-in person's: signing out, or another person's link, leaves the next one without it
    (it would let them upload, delete and read every user's feedback as the one who entered it)."""
    alice, bob = people["alice"], people["bob"]
    page.goto(f"{alice.mesh.base_url}/#token={alice.token}")
    page.wait_for_function("document.querySelector('#signed-in-as')?.textContent.includes('alice')")
    enter_the_key(page, alice)
    page.click("#sign-out")
    page.locator("#signin-dialog[open]").wait_for(timeout=10_000)
    assert page.evaluate(KEPT_KEY) is None
    page.fill("#signin-token", bob.token)
    page.click("#signin-submit")
    page.wait_for_function("document.querySelector('#signed-in-as')?.textContent.includes('bob')")
    page.goto(page.url.split("#")[0] + "#documents")
    assert page.input_value("#api-key") == ""
    page.click("#tab-dashboard")
    page.wait_for_function("document.getElementById('feedback-status').textContent.includes('Enter the API key')")

    enter_the_key(page, bob)
    page.goto(f"{alice.mesh.base_url}/#documents&token={alice.token}")  # her link, without Bob signing out
    page.wait_for_function("document.querySelector('#signed-in-as')?.textContent.includes('alice')")
    assert page.evaluate(KEPT_KEY) is None and page.input_value("#api-key") == ""


def ask_signed_in(page: Any, person: Person, question: str) -> None:
    """Sign in as person by a token link, ask question and wait for the whole answer, sources and all."""
    page.goto(f"{person.mesh.base_url}/#token={person.token}")
    page.wait_for_function(f"document.querySelector('#signed-in-as')?.textContent.includes({person.name!r})")
    ask(page, question)
    page.locator(".message.assistant .sources").last.wait_for(timeout=30_000)
    page.wait_for_selector("#send:not([hidden])", timeout=30_000)


def test_a_saved_source_alice_may_no_longer_read_shows_as_no_longer_available(
    page: Any, people: dict[str, Person]
) -> None:
    """The browser keeps its own copy of her conversations, passages included: opened again after the document was
    written for group ops only, it asks which cited documents she may still read, and the passage and the answer
    that quoted it leave the screen and the copy."""
    alice, writer = people["alice"], people["writer"]
    doc = {
        "id": "acme-boiler",
        "title": "Boiler jasperine log",
        "text": "The boiler inspection is on Mondays, jasperine.",
    }
    stored = "JSON.stringify(localStorage)"
    write_for(writer, doc, ["eng"])
    try:
        ask_signed_in(page, alice, "When is the boiler inspection?")
        assert "jasperine" in page.locator("#messages").inner_text().lower()  # the premise: quoted and cited
        assert "jasperine" in page.evaluate(stored).lower()
        write_for(writer, doc, ["ops"])
        page.reload()
        page.locator(".sources li.withdrawn").first.wait_for(timeout=30_000)
        shown = page.locator("#messages").inner_text()
        assert "jasperine" not in shown.lower() and "no longer available" in shown.lower()
        assert "acme-boiler" in page.locator(".sources li.withdrawn").first.inner_text()
        assert "jasperine" not in page.evaluate(stored).lower()
        assert "boiler inspection" in shown.lower()  # her question stays
    finally:
        writer.rest("DELETE", f"/api/v1/documents/{doc['id']}")


SAVED_BY_ALICE = "JSON.parse(Object.entries(localStorage).find(([key]) => key.startsWith('likeopt.conversations.'))[1])"


def test_a_source_given_back_shows_again_while_the_server_holds_the_conversation(
    page: Any, people: dict[str, Person]
) -> None:
    """The server's copy of a conversation withholds a passage while its reader may not read the document, and shows
    it again once she may: the browser shows that copy for the turns the server holds. One the server no longer
    holds (expired, or deleted as here) has only the browser's copy, which forgets the passage once withdrawn."""
    alice, writer = people["alice"], people["writer"]
    doc = {"id": "acme-kiln", "title": "Kiln garnetite log", "text": "The kiln is fired on Thursdays, garnetite."}
    shown = "document.querySelector('#messages').textContent.toLowerCase().includes('garnetite')"
    write_for(writer, doc, ["eng"])
    try:
        ask_signed_in(page, alice, "When is the kiln fired?")
        assert page.evaluate(shown)  # the premise: quoted and cited
        write_for(writer, doc, ["ops"])
        page.reload()
        page.locator(".sources li.withdrawn").first.wait_for(timeout=30_000)
        assert not page.evaluate(shown)
        write_for(writer, doc, ["eng"])
        page.reload()
        page.wait_for_function(shown, timeout=30_000)
        assert page.locator(".sources li.withdrawn").count() == 0
        assert page.locator(".message.assistant .badge.support").count() == 1

        conversation = page.evaluate(SAVED_BY_ALICE)[0]["conversationId"]
        assert alice.rest("DELETE", f"/api/v1/conversations/{conversation}").status_code == 200
        write_for(writer, doc, ["ops"])
        page.reload()
        page.locator(".sources li.withdrawn").first.wait_for(timeout=30_000)
        write_for(writer, doc, ["eng"])
        with page.expect_response(lambda r: conversation in r.url):  # 404: the server holds none of it now
            page.reload()
        page.wait_for_load_state("networkidle")
        assert not page.evaluate(shown) and page.locator(".sources li.withdrawn").count() == 1
        assert "garnetite" not in page.evaluate("JSON.stringify(localStorage)").lower()
    finally:
        writer.rest("DELETE", f"/api/v1/documents/{doc['id']}")


def test_a_question_refused_for_an_expired_token_waits_in_the_box_through_signing_in_again(
    page: Any, people: dict[str, Person], idp: IdentityProvider
) -> None:
    """Her token expires mid-session: the question she sends is refused (401) and the sign-in asks again. Signing in
    reloads the page; the question is in the composer afterwards, which has keyboard focus, to send again, and leaves
    with her when she signs out. Time's passing is the one thing not waited for: her tab's token is swapped for her
    own, expired one."""
    alice, bob = people["alice"], people["bob"]
    expired = idp.forgeries("alice", "acme", ["eng", "staff"])["expired"]
    question = "When is the kiln fired, and by whom?"
    page.goto(f"{alice.mesh.base_url}/#token={alice.token}")
    page.wait_for_function("document.querySelector('#signed-in-as')?.textContent.includes('alice')")
    page.evaluate("(token) => sessionStorage.setItem('likeopt.token', token)", expired)
    ask(page, question)
    page.locator("#signin-dialog[open]").wait_for(timeout=10_000)
    assert "expired" in page.locator("#signin-reason").inner_text().lower()
    assert page.input_value("#query") == question
    page.fill("#signin-token", alice.token)
    page.press("#signin-token", "Enter")
    page.wait_for_function("document.querySelector('#signed-in-as')?.textContent.includes('alice')")
    assert page.input_value("#query") == question
    assert page.evaluate("document.activeElement.id") == "query"  # Enter sends it again, without reaching for it

    page.click("#sign-out")
    page.locator("#signin-dialog[open]").wait_for(timeout=10_000)
    page.fill("#signin-token", bob.token)
    page.click("#signin-submit")
    page.wait_for_function("document.querySelector('#signed-in-as')?.textContent.includes('bob')")
    assert page.input_value("#query") == ""


def test_enter_in_the_token_box_signs_in(page: Any, people: dict[str, Person]) -> None:
    """A keyboard user pastes the token and presses Enter, as in the composer: that signs in, no line break."""
    alice = people["alice"]
    page.goto(alice.mesh.base_url + "/")
    page.locator("#signin-dialog[open]").wait_for(timeout=10_000)
    page.fill("#signin-token", alice.token)
    page.press("#signin-token", "Enter")
    page.wait_for_function("document.querySelector('#signed-in-as')?.textContent.includes('alice')", timeout=10_000)
