"""Loaders: mailboxes (.mbox), written here by the standard library's mailbox module as mail programs write them."""

from __future__ import annotations

import mailbox
from email.message import EmailMessage
from pathlib import Path

from likeopt.runtime.loaders import LoadedDocument, Skipped, load_content
from likeopt.runtime.loaders.mailbox_file import MAX_MAILBOX_MESSAGES, NOT_A_MAILBOX
from tests.unit.test_loaders_email import LATIN1_MAIL, message


def mbox_bytes(folder: Path, messages: list[EmailMessage]) -> bytes:
    box = mailbox.mbox(folder / "saved.mbox")
    for mail in messages:
        box.add(mail)
    box.close()
    return (folder / "saved.mbox").read_bytes()


def test_each_message_of_a_mailbox_is_a_document_of_its_own_read_as_an_eml_file_is(tmp_path: Path) -> None:
    """It was refused as an unsupported type. A search should find the one message that answers it, with its own
    subject, sender and date; its id is the mailbox's and its place in it, and its source the mailbox. A body line
    that began "From " keeps its words (the mailbox quoted it as ">From "), attachments are named, an empty message
    is reported with the id a version of it stored earlier has."""
    rota = message("Kiln rota", "The Brannock kiln is fired on Thursdays.\nFrom May on, with larch.\n")
    rota.add_attachment(b"%PDF-1.7 rota", maintype="application", subtype="pdf", filename="rota.pdf")
    untitled = message("", "The weir gate was oiled.\n")
    del untitled["Subject"]
    boxed = [rota, message("Empty", " \n"), message("Ferry", "The ferry leaves at dawn.\n"), untitled]
    data = mbox_bytes(tmp_path, boxed)
    items = list(load_content("export/inbox.mbox", data, doc_id="mail/inbox.mbox"))
    docs = [item for item in items if isinstance(item, LoadedDocument)]
    assert [(d.id, d.title, d.text) for d in docs] == [
        ("mail/inbox.mbox/1", "Kiln rota", "The Brannock kiln is fired on Thursdays.\nFrom May on, with larch."),
        ("mail/inbox.mbox/3", "Ferry", "The ferry leaves at dawn."),
        ("mail/inbox.mbox/4", "inbox.mbox, message 4", "The weir gate was oiled."),
    ]
    assert docs[0].metadata == {
        "from": "Ana Lopes <ana@example.org>",
        "date": "2024-05-01 09:30:00+00:00",
        "source": "inbox.mbox",
        "file_type": "mbox",
    }
    reasons = {s.source: s.reason for s in items if isinstance(s, Skipped)}
    assert reasons.keys() == {"export/inbox.mbox/1: rota.pdf", "export/inbox.mbox/2"}
    assert reasons["export/inbox.mbox/1: rota.pdf"].startswith("an attachment of an e-mail, not read")
    assert reasons["export/inbox.mbox/2"].startswith("no text found; any version stored earlier as 'mail/inbox.mbox/2'")


def test_a_mailbox_bomb_is_refused_before_it_is_split_and_a_lone_message_named_mbox_says_what_it_is() -> None:
    """Messages of a few bytes each would be a document or a report line each, by the million in 50 MiB: past
    MAX_MAILBOX_MESSAGES the file is refused whole, counted before mailbox reads it. Text before the first 'From '
    line, which mailbox would drop unsaid, makes the file no mailbox."""
    bomb = b"From x\n\n" * (MAX_MAILBOX_MESSAGES + 1)
    [refused] = load_content("bomb.mbox", bomb, doc_id="bomb.mbox")
    assert isinstance(refused, Skipped) and refused.reason.startswith(
        f"a mailbox of {MAX_MAILBOX_MESSAGES + 1} messages"
    )
    [lone] = load_content("one.mbox", message("Hi", "Hello.\n").as_bytes(), doc_id="one.mbox")
    assert isinstance(lone, Skipped) and lone.reason == NOT_A_MAILBOX


def test_a_mailbox_message_in_undeclared_8bit_is_read_as_an_eml_file_is() -> None:
    """Its subject and body were stored with U+FFFD in place of each accented letter."""
    data = b"From zoe@example.org Wed May  1 09:30:00 2024\n" + LATIN1_MAIL
    [doc] = load_content("old.mbox", data, doc_id="old.mbox")
    assert isinstance(doc, LoadedDocument) and (doc.title, doc.text) == ("Café crème", "The café opens at nine.")
