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


def pdf_bytes(*pages: list[str], title: str | None = None) -> bytes:
    """A PDF of pages of Helvetica lines, one under the other as a word processor sets them, with a /Title in its
    document information when one is given."""
    objects = [b"<</Type/Catalog/Pages 2 0 R>>", b"", b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>"]
    kids = []
    for lines in pages:
        stream = b"BT /F1 11 Tf 14 TL 72 720 Td %s ET" % b" ".join(
            b"(%s) Tj T*" % line.encode("latin-1") for line in lines
        )
        objects.append(b"<</Length %d>>stream\n%s\nendstream" % (len(stream), stream))
        objects.append(
            b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Resources<</Font<</F1 3 0 R>>>>/Contents %d 0 R>>"
            % len(objects)
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<</Type/Pages/Kids[%s]/Count %d>>" % (b" ".join(kids), len(kids))
    if title is None:
        return pdf_file(objects)
    objects.append(b"<</Title(%s)>>" % title.encode("latin-1"))
    return pdf_file(objects, info=len(objects))
