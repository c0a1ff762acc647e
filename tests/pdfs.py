"""PDF files written byte by byte for tests: the project reads PDFs but has no PDF writer among its dependencies."""

from __future__ import annotations


def pdf_file(objects: list[bytes], info: int | None = None) -> bytes:
    """A PDF of objects numbered from 1, the first its catalog, with the cross-reference table a reader looks them
    up in; info is the number of the document information object (title, author), if there is one."""
    body, offsets = b"%PDF-1.4\n", []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj" % number + obj + b"endobj\n"
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    body += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    info_entry = b"" if info is None else b"/Info %d 0 R" % info
    return body + b"trailer<</Size %d/Root 1 0 R%s>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info_entry, xref)
