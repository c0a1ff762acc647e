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
    sender, date = message["from"], message["date"]
    when = getattr(date, "datetime", None)
    facts = {"from": sender, "date": when.isoformat(sep=" ") if when is not None else date}
    metadata = {key: " ".join(str(value).split()) for key, value in facts.items() if value is not None}
    return " ".join(str(message["subject"] or "").split()), text, metadata


def mail_attachments(data: bytes) -> list[str]:
    """The names of a message's attachments: each part with a file name or marked as an attachment (by its content
    type when it has no name), and a forwarded message by its subject, its own attachments after it."""
    message = _parsed(data)
    body = message.get_body(preferencelist=BODY_TYPES)
    names = []
    for part in message.walk():
        if part.get_content_type() == "message/rfc822":
            forwarded = next(part.iter_parts(), None)
            subject = " ".join(str(forwarded["subject"] or "").split()) if forwarded is not None else ""
            names.append(f"forwarded message {subject!r}")
        elif part is not body and not part.is_multipart() and (part.is_attachment() or part.get_filename()):
            names.append(part.get_filename() or part.get_content_type())
    return names


def _parsed(data: bytes) -> EmailMessage:
    """A message parsed with the current policy, which decodes encoded headers (=?UTF-8?...?=) and dates; it
    records a malformed header as a defect rather than raising."""
    return cast(EmailMessage, email.message_from_bytes(data, policy=policy.default))  # policy.default's factory


def _body_text(part: EmailMessage) -> str:
    """A body part's text, decoded from its transfer encoding and charset; HTML as the page reads."""
    try:
        content = part.get_content()
    except LookupError:
        raise Unreadable(f"its body is in a character set no codec here reads ({part.get_content_charset()})") from None
    content = lines_tidied(content.replace("\r\n", "\n"))
    return html_to_text(content)[1] if part.get_content_subtype() == "html" else content
