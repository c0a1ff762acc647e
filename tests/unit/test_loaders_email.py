"""Loaders: e-mail saved as .eml, built here with the standard library's email package as mail programs write it."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from likeopt.runtime.loaders import LoadedDocument, Skipped, load_content
from tests.unit.test_loaders import chunked

SENT = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


def message(subject: str, plain: str | None, html: str | None = None) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Ana Lopes <ana@example.org>"
    mail["To"] = "ops@example.org"
    mail["Subject"] = subject
    mail["Date"] = format_datetime(SENT)
    mail["Message-ID"] = make_msgid()
    if plain is not None:
        mail.set_content(plain)
    if html is not None:
        (mail.add_alternative if plain is not None else mail.set_content)(html, subtype="html")
    return mail


def loaded(name: str, mail: EmailMessage) -> tuple[LoadedDocument, list[Skipped]]:
    [doc, *skipped] = load_content(name, mail.as_bytes(), doc_id=name)
    assert isinstance(doc, LoadedDocument), doc
    return doc, [s for s in skipped if isinstance(s, Skipped)]


def test_a_message_is_its_plain_text_titled_by_its_subject_with_its_sender_and_date() -> None:
    """Non-ASCII words survive the encodings mail uses (an encoded subject, quoted-printable), and the plain text is
    read rather than the HTML alternative beside it."""
    mail = message("Café rota für Mai", "Hi team,\n\nthe café opens at 7 in May.\n", "<p>HTML copy</p>")
    doc, skipped = loaded("mail/rota.eml", mail)
    assert doc.title == "Café rota für Mai" and chunked(doc.text) == "Hi team,\n\nthe café opens at 7 in May."
    assert doc.metadata == {
        "from": "Ana Lopes <ana@example.org>",
        "date": "2024-05-01 09:30:00+00:00",
        "source": "rota.eml",
        "file_type": "eml",
    }
    assert skipped == []


def test_a_message_with_only_html_is_read_as_a_page_is() -> None:
    mail = message("Outage", None, "<html><body><nav>Menu</nav><p>The cache was <b>down</b> for 5 minutes.</p>")
    assert loaded("outage.eml", mail)[0].text == "The cache was down for 5 minutes."


def test_a_message_s_attachments_are_named_in_the_report_not_read_into_its_text() -> None:
    mail = message("Minutes", "Minutes attached.\n")
    mail.add_attachment(b"%PDF-1.7 minutes", maintype="application", subtype="pdf", filename="minutes.pdf")
    forwarded = message("Earlier thread", "Old words.\n")
    mail.add_attachment(forwarded)
    doc, skipped = loaded("minutes.eml", mail)
    assert doc.text == "Minutes attached." and "%PDF" not in doc.text and "Old words" not in doc.text
    assert [s.source for s in skipped] == [
        "minutes.eml: minutes.pdf",
        "minutes.eml: forwarded message 'Earlier thread'",
    ]
    assert skipped[0].reason.startswith("an attachment of an e-mail, not read")


def test_a_message_without_a_subject_or_a_parseable_date_keeps_what_it_has() -> None:
    data = message("", "Words.\n").as_bytes().replace(format_datetime(SENT).encode(), b"sometime last week")
    [doc] = load_content("inbox/note.eml", data, doc_id="inbox/note.eml")
    assert isinstance(doc, LoadedDocument) and doc.title == "note" and doc.metadata["date"] == "sometime last week"


def test_a_body_in_a_character_set_no_codec_reads_is_refused_naming_it() -> None:
    [refused] = load_content("odd.eml", b"Content-Type: text/plain; charset=x-nope\n\nhello\n", doc_id="odd.eml")
    assert isinstance(refused, Skipped) and refused.reason.startswith("its body is in a character set no codec")


LATIN1_MAIL = (
    "From: Zo\xe9 Martin <zoe@example.org>\nSubject: Caf\xe9 cr\xe8me\nDate: Wed, 01 May 2024 09:30:00 +0000\n"
    "MIME-Version: 1.0\nContent-Type: text/plain\nContent-Transfer-Encoding: 8bit\n\nThe caf\xe9 opens at nine.\n"
).encode("latin-1")
"""A message as older mail programs still send one: 8-bit Latin-1 in its headers and body, no charset declared."""


def test_undeclared_8bit_headers_and_body_read_as_text_files_do_not_as_replacement_characters() -> None:
    """They were stored as "Caf\ufffd cr\ufffdme": 8-bit bytes without a charset are UTF-8 when they are (a UTF-8
    body without a charset was "caf\ufffd\ufffd"), else Windows-1252, in the headers and the body alike."""
    [doc] = load_content("latin.eml", LATIN1_MAIL, doc_id="latin.eml")
    assert isinstance(doc, LoadedDocument)
    assert (doc.title, doc.text) == ("Café crème", "The café opens at nine.")
    assert doc.metadata["from"] == "Zoé Martin <zoe@example.org>" and doc.metadata["date"].startswith("2024-05-01")
    declared_ascii = LATIN1_MAIL.replace(b"text/plain", b"text/plain; charset=us-ascii")
    utf8 = LATIN1_MAIL.decode("latin-1").encode()
    for data in (declared_ascii, utf8):
        [same] = load_content("same.eml", data, doc_id="same.eml")
        assert isinstance(same, LoadedDocument) and (same.title, same.text) == (doc.title, doc.text)


def test_a_body_whose_bytes_contradict_its_declared_charset_is_read_as_an_undeclared_one() -> None:
    """A Windows-1252 body labelled UTF-8 was stored as "The caf\ufffd opens": the declared charset is read first,
    and bytes that are not in it as undeclared 8-bit bytes are; bytes in no reading keep the replacement mark."""
    mislabelled = LATIN1_MAIL.replace(b"text/plain", b"text/plain; charset=utf-8")
    [doc] = load_content("mislabelled.eml", mislabelled, doc_id="mislabelled.eml")
    assert isinstance(doc, LoadedDocument) and doc.text == "The café opens at nine."
    shift_jis = "会議は九時です。".encode("shift_jis")
    declared = b"Subject: j\nMIME-Version: 1.0\nContent-Type: text/plain; charset=shift_jis\n\n" + shift_jis
    [japanese] = load_content("jis.eml", declared, doc_id="jis.eml")
    assert isinstance(japanese, LoadedDocument) and japanese.text == "会議は九時です。"  # declared and true: as before
    nowhere = b"Subject: odd\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\nab\x81\x8d cd\n"
    [odd] = load_content("odd.eml", nowhere, doc_id="odd.eml")
    assert isinstance(odd, LoadedDocument) and odd.text == "ab\ufffd\ufffd cd"


def test_an_html_body_without_a_charset_is_read_in_the_one_its_own_meta_declares() -> None:
    """A mail program that leaves the header's charset out of an HTML part still writes <meta charset> into it, as
    an HTML file read from disk is read (windows-1252 would make "Привет" of these KOI8-R bytes "рПЙЧЕФ")."""
    html = '<html><head><meta charset="koi8-r"></head><body><p>Привет, мир.</p></body></html>'.encode("koi8-r")
    data = b"Subject: greeting\nMIME-Version: 1.0\nContent-Type: text/html\nContent-Transfer-Encoding: 8bit\n\n" + html
    [doc] = load_content("hello.eml", data, doc_id="hello.eml")
    assert isinstance(doc, LoadedDocument) and doc.text == "Привет, мир."


def test_a_body_without_a_charset_that_is_no_text_is_refused_with_the_reason_not_stored_as_garbage() -> None:
    [binary] = load_content("bin.eml", b"Subject: dump\nContent-Type: text/plain\n\nab\x00\x01cd\n", doc_id="bin.eml")
    assert isinstance(binary, Skipped) and binary.reason.startswith("its body contains NUL characters: not text")
    [odd] = load_content("odd.eml", b"Subject: odd\n\nab\x81\x8d\n", doc_id="odd.eml")
    assert isinstance(odd, Skipped)
    assert odd.reason.startswith("its body declares no character set and is neither UTF-8 nor windows-1252 text")
