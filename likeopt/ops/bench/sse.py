"""An incremental Server-Sent Events reader: bytes in as they arrive, whole events out.

The load generator must see each event the moment its last byte lands (time to first
token is measured on it), so parsing is incremental rather than on the whole body.
Follows the HTML event-stream rules that matter here: ``event``, ``data`` (several
lines joined with newlines), ``id``, comment lines, and LF, CRLF or CR line ends.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """One dispatched event; ``event`` is ``message`` when the stream named none."""

    event: str
    data: str
    id: str = ""


class SseParser:
    """Feed it chunks with :meth:`feed`; it returns the events each chunk completed.

    Chunks may split anywhere, even inside a UTF-8 character or a CRLF pair.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._event = ""
        self._data: list[str] = []
        self._id = ""
        self._pending_cr = False
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def feed(self, chunk: bytes | str) -> list[Event]:
        text = self._decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]
        self._pending_cr = text.endswith("\r")
        self._buffer += text.replace("\r\n", "\n").replace("\r", "\n")
        *lines, self._buffer = self._buffer.split("\n")
        events = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None

    def _dispatch(self) -> Event | None:
        if not self._data and not self._event:
            return None
        event = Event(self._event or "message", "\n".join(self._data), self._id)
        self._event, self._data = "", []
        return event
