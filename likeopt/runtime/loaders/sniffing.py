"""What type a file's bytes show, whatever its name says: a PDF or Rich Text by their marks, a Word, PowerPoint or
Excel file by its zip's parts, an OpenDocument file or an EPUB book by its zip's mimetype entry, and an older or
encrypted Office file (a compound document, OLE2) by its streams."""

from __future__ import annotations

import io
import re
import zipfile
import zlib

from likeopt.runtime.loaders import rich_text
from likeopt.runtime.loaders.formats import LEGACY_OFFICE, OFFICE_SUFFIXES

OLE2_SIGNATURE = bytes.fromhex("d0cf11e0a1b11ae1")
"""The first bytes of a compound document (OLE2): a Word, Excel or PowerPoint file from before Office 2007, a .docx,
.xlsx or .pptx encrypted with a password to open it, and other programs' files (Outlook's .msg, an installer)."""
OLE2_OFFICE_STREAMS = {"WordDocument": ".doc", "Workbook": ".xls", "Book": ".xls", "PowerPoint Document": ".ppt"}
"""The stream of a compound document that holds an older Office file's content, and that file's type (Excel 5 and 95
named it Book)."""
OLE2_ENCRYPTED_STREAM = "EncryptedPackage"
"""The stream that holds an encrypted .docx, .xlsx or .pptx: its zip, encrypted."""
LEGACY_OFFICE_APPS = {".doc": "Word", ".xls": "Excel", ".ppt": "PowerPoint"}
"""The application that opens each older Office type, and saves it as the type LEGACY_OFFICE names."""
OLDER_OFFICE = (
    "an older Word, Excel or PowerPoint file (OLE2 .doc, .xls or .ppt): save it as .docx, .xlsx or .pptx, or PDF"
)
"""Why a compound document named as an Office file is not read when its streams name no one application."""
ENCRYPTED_OFFICE = (
    "encrypted Word, Excel or PowerPoint file: needs a password (open it, clear the password under"
    " File > Info > Protect > Encrypt with Password, and save it)"
)
"""Why a .docx, .xlsx or .pptx encrypted with a password to open it is not read: it is no zip until decrypted."""


OFFICE_MAIN_PARTS = {"word/document.xml": ".docx", "ppt/presentation.xml": ".pptx", "xl/workbook.xml": ".xlsx"}
"""The part inside its zip that makes a file a Word document, a slide deck or a workbook."""
PACKAGE_MIMETYPES = {
    "application/vnd.oasis.opendocument.text": ".odt",
    "application/vnd.oasis.opendocument.spreadsheet": ".ods",
    "application/vnd.oasis.opendocument.presentation": ".odp",
    "application/epub+zip": ".epub",
}
"""What the ``mimetype`` entry of an OpenDocument file's or an EPUB book's zip (ODF 1.2 part 3, EPUB OCF) says it
is, and its type's suffix."""
MAX_MIMETYPE_BYTES = 100
"""A longer ``mimetype`` entry names no type read here, and is not unpacked to find out."""


def sniffed_suffix(data: bytes) -> str | None:
    """The suffix of the type a file's first bytes show, when they show a PDF or Rich Text (marked_suffix), a Word,
    PowerPoint or Excel file (a zip of their parts) or a zip whose ``mimetype`` entry names its type (OpenDocument,
    EPUB):
    a PDF named memo.txt is read as the PDF it is, not refused as text in a legacy code page or stored as PDF
    syntax, a Word file named report.pdf as a Word file, an OpenDocument text named report.docx as one. None for
    anything else."""
    if marked := marked_suffix(data):
        return marked
    if not data.startswith(b"PK\x03\x04"):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            named = PACKAGE_MIMETYPES.get(_mimetype(archive)) if "mimetype" in names else None
    except ZIP_DIRECTORY_ERRORS:
        return None  # the loader its name picks says why it is not read
    return next((suffix for part, suffix in OFFICE_MAIN_PARTS.items() if part in names), named)


def _mimetype(archive: zipfile.ZipFile) -> str:
    """What a zip's ``mimetype`` entry says, "" when it is too long to be a type's name, encrypted or damaged."""
    entry = archive.getinfo("mimetype")
    if entry.file_size > MAX_MIMETYPE_BYTES or entry.flag_bits & 1:  # bit 0: encrypted, needs a password
        return ""
    try:
        return archive.read(entry).decode("ascii", "replace").strip()
    except (zipfile.BadZipFile, NotImplementedError, EOFError, zlib.error):  # a bad header, method, stream or CRC
        return ""


ZIP_DIRECTORY_ERRORS = (zipfile.BadZipFile, NotImplementedError, UnicodeDecodeError)
"""What zipfile raises listing a damaged zip's names: BadZipFile for a cut or garbled directory, NotImplementedError
for a zip version it does not know, UnicodeDecodeError for a name flagged UTF-8 that is not (its own reading errors
it raises as BadZipFile)."""


def marked_suffix(data: bytes) -> str | None:
    """The suffix of the type a file's marks show without parsing it: a PDF's (pdf_start) or Rich Text's, else None."""
    if pdf_start(data) is not None:
        return ".pdf"
    return ".rtf" if data.startswith(rich_text.RTF_SIGNATURE) else None


PDF_HEADER = b"%PDF-"
PDF_END = b"%%EOF"
PDF_MARK_WINDOW = 1024
"""Acrobat reads a PDF whose header lies within its first 1,024 bytes and whose %%EOF lies within its last 1,024
(PDF 1.7, annex H): scanners, mail gateways and MacBinary or HTTP wrappers put bytes before the header."""


def pdf_start(data: bytes) -> int | None:
    """Where a PDF's own bytes begin (its header), None for a file that is no PDF. A header after other bytes counts
    only when the file ends as a PDF does, so a note that mentions "%PDF-1.7" near its start stays a note."""
    start = data.find(PDF_HEADER, 0, PDF_MARK_WINDOW)
    if start == 0 or (start > 0 and PDF_END in data[-PDF_MARK_WINDOW:]):
        return start
    return None


def older_office_reason(suffix: str, data: bytes) -> str | None:
    """Why a compound document (OLE2) is not read, naming its format: an older Word, Excel or PowerPoint file or an
    encrypted .docx, .xlsx or .pptx, either of which is often named .docx or .xlsx (the zip-based loaders then failed
    with a bare BadZipFile). None for any other file, and for another program's compound document not named as an
    Office file (an Outlook .msg): its suffix says why it is not read."""
    if not data.startswith(OLE2_SIGNATURE):
        return None
    streams = _ole2_streams(data)
    if OLE2_ENCRYPTED_STREAM in streams:
        return ENCRYPTED_OFFICE
    formats = {OLE2_OFFICE_STREAMS[stream] for stream in streams if stream in OLE2_OFFICE_STREAMS}
    if len(formats) == 1:  # several: one file embeds another (a chart's workbook in a Word file)
        [legacy] = formats
        return f"an older {LEGACY_OFFICE_APPS[legacy]} file (OLE2 {legacy}): save it as {LEGACY_OFFICE[legacy]} or PDF"
    return OLDER_OFFICE if formats or suffix in OFFICE_SUFFIXES | LEGACY_OFFICE.keys() else None


def _ole2_entry(stream: str) -> re.Pattern[bytes]:
    """A compound document's directory entry for a stream: 128 bytes, the name in UTF-16 with a closing NUL in the
    first 64, then the name's length in bytes (two, little-endian) and its type (2, a stream)."""
    name = stream.encode("utf-16-le") + b"\0\0"
    length = len(name).to_bytes(2, "little")
    return re.compile(re.escape(name) + b".{%d}" % (64 - len(name)) + re.escape(length + b"\x02"), re.DOTALL)


_OLE2_ENTRIES = {stream: _ole2_entry(stream) for stream in [*OLE2_OFFICE_STREAMS, OLE2_ENCRYPTED_STREAM]}


def _ole2_streams(data: bytes) -> set[str]:
    """Which streams of _OLE2_ENTRIES a compound document's directory lists: its entries lie at multiples of 128
    bytes from the start (the directory's sectors are whole multiples of 512 after the 512-byte header), so they are
    found by search instead of by following the file's chains of sectors, which a name is not worth."""
    return {
        stream for stream, entry in _OLE2_ENTRIES.items() if any(m.start() % 128 == 0 for m in entry.finditer(data))
    }
