"""Mailboxes saved as one file (.mbox: Thunderbird's folders, Apple Mail's and Google Takeout's exports) as their
messages, split by the standard library's mailbox module as mail programs split them; each message is then read as
an .eml file is (mail)."""

from __future__ import annotations

import mailbox
import re
import tempfile
from pathlib import Path

from likeopt.runtime.loaders.documents import Unreadable

MAX_MAILBOX_MESSAGES = 50_000
"""A mailbox is refused past this many messages, counted before it is split: 50 MiB of messages of a few bytes each
would be millions of documents, each reported as empty."""
FROM_LINE = b"From "
"""What begins each message of an mbox file, at a line's start (and the file's)."""
QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)
"""A line of a message that began "From " (or ">From ") as its mail program wrote it: quoted with one more ">" so it
does not begin a message (mboxrd, and mboxo for the lines it quotes); the quote is taken off again."""
NOT_A_MAILBOX = (
    "not an mbox mailbox: it does not begin with a 'From ' line (a single message is saved as .eml; export the"
    " folder as mbox from the mail program)"
)


def mailbox_messages(data: bytes) -> list[bytes]:
    """Each message of an mbox file, its headers and body without the 'From ' line that began it and with its own
    lines unquoted (QUOTED_FROM), in the file's order. mailbox reads a file on disk, so the bytes are written to a
    private temporary one first."""
    if not data.startswith(FROM_LINE):  # mailbox would drop whatever comes before the first 'From ' line
        raise Unreadable(NOT_A_MAILBOX)
    starts = data.count(b"\n" + FROM_LINE) + 1  # every line mailbox takes for a message's first
    if starts > MAX_MAILBOX_MESSAGES:
        raise Unreadable(
            f"a mailbox of {starts} messages, over the {MAX_MAILBOX_MESSAGES} read from one file: export it in parts"
            " (by folder or by year)"
        )
    with tempfile.TemporaryDirectory(prefix="likeopt-mbox-") as folder:
        path = Path(folder) / "mailbox.mbox"
        path.write_bytes(data)
        box = mailbox.mbox(path, create=False)
        try:
            return [QUOTED_FROM.sub(rb"\1", box.get_bytes(key)) for key in box.iterkeys()]
        finally:
            box.close()
