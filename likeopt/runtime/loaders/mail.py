"""E-mail messages saved as files (.eml, RFC 5322 with MIME parts, as Thunderbird, Outlook and Apple Mail save one) as
text, through the standard library's email package: the subject is the title, the body its plain text (else its
HTML, read as a page is), the sender and date its metadata, and its attachments are named, not read."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage
from typing import cast

from likeopt.runtime.loaders.documents import Unreadable
from likeopt.runtime.loaders.html import html_to_text
from likeopt.runtime.loaders.plain_text import NUL_IN_TEXT, UNDECLARED_8BIT, decode_html, decode_undeclared
from likeopt.runtime.loaders.tidy import lines_tidied

BODY_TYPES = ("plain", "html")
"""The body read, in order of preference: a message's own plain text, else the HTML a mail program wrote."""
ATTACHMENT_NOT_READ = "an attachment of an e-mail, not read (save it and ingest it as a file of its own)"
"""Why an attachment is named in the report: it is a file of its own type, and reading it into the message's text
would mix two documents under one id."""


def mail_document(data: bytes) -> tuple[str, str, dict[str, str]]:
    """(title, text, metadata) of a message: its subject, its body's text, and "from" and "date" (ISO 8601 when the
    header parses as a date, else as written)."""
    message = _parsed(data)
    body = message.get_body(preferencelist=BODY_TYPES)
    text = _body_text(body) if body is not None else ""
    sender, date = _header(message, "from"), _header(message, "date")
    when = getattr(date, "datetime", None)
    facts = {"from": sender, "date": when.isoformat(sep=" ") if when is not None else date}
    metadata = {key: " ".join(str(value).split()) for key, value in facts.items() if value is not None}
    return " ".join(str(_header(message, "subject") or "").split()), text, metadata


def mail_attachments(data: bytes) -> list[str]:
    """The names of a message's attachments: each part with a file name or marked as an attachment (by its content
    type when it has no name), and a forwarded message by its subject, its own attachments after it."""
    message = _parsed(data)
    body = message.get_body(preferencelist=BODY_TYPES)
    names = []
    for part in message.walk():
        if part.get_content_type() == "message/rfc822":
            forwarded = next(part.iter_parts(), None)
            subject = " ".join(str(_header(forwarded, "subject") or "").split()) if forwarded is not None else ""
            names.append(f"forwarded message {subject!r}")
        elif part is not body and not part.is_multipart() and (part.is_attachment() or part.get_filename()):
            names.append(part.get_filename() or part.get_content_type())
    return names


def _parsed(data: bytes) -> EmailMessage:
    """A message parsed with the current policy, which decodes encoded headers (=?UTF-8?...?=) and dates; it
    records a malformed header as a defect rather than raising."""
    return cast(EmailMessage, email.message_from_bytes(data, policy=policy.default))  # policy.default's factory


UNDECLARED_CHARSETS = {None, "us-ascii", "ascii"}
"""What a part's charset parameter says when it declares none that 8-bit bytes could be in: missing (RFC 2045's
default, us-ascii) or ASCII itself, which mail programs write by default whatever the body holds."""


def _header(message: EmailMessage, name: str) -> object:
    """A header's value, parsed as the current policy parses it (an address, a date, encoded words); its 8-bit bytes,
    sent without encoding them as RFC 2047 asks, are read as decode_undeclared reads them, where the policy put
    U+FFFD in place of each of a Latin-1 header's letters. None when the message has no such header."""
    raw = next((value for key, value in message.raw_items() if key.lower() == name), None)
    if raw is None or not isinstance(raw, str) or raw.isascii():
        return message[name]
    try:  # the parser keeps each 8-bit byte as a surrogate, which gives the byte back
        text = decode_undeclared(raw.encode("ascii", "surrogateescape"))
    except UnicodeError:
        return message[name]  # bytes no text reading reads: the policy's reading, which marks them
    return message.policy.header_fetch_parse(name, text)


def _body_text(part: EmailMessage) -> str:
    """A body part's text, decoded from its transfer encoding and charset, or by _undeclared_text when it declares
    none (UNDECLARED_CHARSETS); HTML as the page reads. Unreadable for a body that is not text."""
    charset = part.get_content_charset()
    try:
        content = _undeclared_text(part) if charset in UNDECLARED_CHARSETS else _declared_text(part, str(charset))
    except LookupError:
        raise Unreadable(f"its body is in a character set no codec here reads ({charset})") from None
    except UnicodeDecodeError as error:
        raise Unreadable(_not_text(error)) from None
    content = lines_tidied(content.replace("\r\n", "\n"))
    return html_to_text(content)[1] if part.get_content_subtype() == "html" else content


def _undeclared_text(part: EmailMessage) -> str:
    """A part's text when its header declares no charset: an HTML part in the one its own ``<meta charset>`` declares
    (decode_html, as an HTML file is read), else as decode_undeclared reads 8-bit bytes."""
    data = cast(bytes, part.get_payload(decode=True))
    if part.get_content_subtype() == "html":
        try:
            return decode_html(data)
        except UnicodeDecodeError as error:
            if error.reason == NUL_IN_TEXT:
                raise
    return decode_undeclared(data)


def _declared_text(part: EmailMessage, charset: str) -> str:
    """A part's text in the charset its header declares. Bytes that are not in it (a Windows-1252 body labelled
    UTF-8, as some mailers and gateways write) are read as an undeclared body is; only bytes no reading reads keep
    the declared charset's replacement characters."""
    data = cast(bytes, part.get_payload(decode=True))
    try:
        return data.decode(charset)
    except UnicodeDecodeError:
        pass
    try:
        return decode_undeclared(data)
    except UnicodeDecodeError:
        return data.decode(charset, errors="replace")


def _not_text(error: UnicodeDecodeError) -> str:
    """Why a body that declares no character set is not read: NUL characters (binary), or bytes neither UTF-8 nor
    UNDECLARED_8BIT reads."""
    if error.reason == NUL_IN_TEXT:
        return "its body contains NUL characters: not text (a binary part is an attachment)"
    return f"its body declares no character set and is neither UTF-8 nor {UNDECLARED_8BIT} text"
