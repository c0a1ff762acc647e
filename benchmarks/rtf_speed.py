"""Time to read large Rich Text files, and whether the text read changed (not a test: prints figures).

An upload is read on one of the gateway's worker threads, so a file that takes most of a minute to read holds that
request (and a core) for that long. striprtf walks every character of a file through a Python loop, pictures' hex
included; likeopt/runtime/loaders/rich_text.py drops the groups no reader sees before handing it the rest. Each file
is read both ways: with that drop (rich_text.read) and by striprtf alone over the whole file (what was done before),
and the text and title of the two compared.

Usage, from the repository root:
    python -m benchmarks.rtf_speed [--picture-mb 30] [--text-mb 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from likeopt.runtime.loaders import rich_text

HEX_LINE = 128
"""Characters of a picture's hex on each line, as Word writes them."""

HEADER = (
    rb"{\rtf1\adeflang1025\ansi\ansicpg1252\uc1\adeff0\deff0\stshfdbch0\stshfloch31506\deflang1033"
    b"\r\n"
    rb"{\fonttbl{\f0\fbidi \froman\fcharset0\fprq2{\*\panose 02020603050405020304}Times New Roman;}"
    rb"{\f1\fbidi \fswiss\fcharset0\fprq2{\*\panose 020b0604020202020204}Arial;}"
    rb"{\f2\fnil\fcharset128\fprq2{\*\panose 02020609040205080304}MS Mincho{\*\falt MS Mincho};}}"
    b"\r\n"
    rb"{\colortbl;\red0\green0\blue0;\red0\green0\blue255;}"
    rb"{\*\defchp \f31506\fs22 }{\*\defpap \ql \li0\ri0\sa160\sl259\slmult1 }"
    b"\r\n"
    rb"{\stylesheet{\ql \li0\ri0\sa160\sl259\slmult1\f31506\fs22 \snext0 \sqformat \spriority0 Normal;}"
    rb"{\*\cs10 \additive \ssemihidden \sunhideused \spriority1 Default Paragraph Font;}}"
    b"\r\n"
    rb"{\*\rsidtbl \rsid1070340\rsid2827431\rsid5590187}{\*\generator Microsoft Word 16.0;}"
    rb"{\info{\title Vellmar roasting notes}{\author Ana Lopes}{\operator Ana Lopes}"
    rb"{\creatim\yr2026\mo12\dy6\hr9\min12}{\version2}{\edmins3}}"
    b"\r\n"
)
"""A Word document's header: code page, font table (panose groups inside), colours, styles, document information."""


def hex_lines(size: int, seed: int) -> bytes:
    """size bytes of a picture's data as hex, HEX_LINE characters a line, as Word writes a \\pict group."""
    data = random.Random(seed).randbytes(size // 2).hex().encode()
    return b"\r\n".join(data[at : at + HEX_LINE] for at in range(0, len(data), HEX_LINE))


def picture(size: int, seed: int) -> bytes:
    """A PNG as Word embeds it: \\shppict with the picture's properties, then a metafile for older readers."""
    return (
        rb"{\*\shppict{\pict{\*\picprop\shplid1025{\sp{\sn shapeType}{\sv 75}}{\sp{\sn fLayoutInCell}{\sv 1}}}"
        rb"\picscalex100\picscaley100\piccropl0\piccropr0\piccropt0\piccropb0\picw2117\pich2117\picwgoal1200"
        rb"\pichgoal1200\pngblip\bliptag-1164211 {\*\blipuid b49d0d4d2c5b5e8a6f0a33b94de1a0c1}"
        b"\r\n" + hex_lines(size, seed) + b"}}"
        rb"{\nonshppict{\pict\picscalex100\picscaley100\picw2117\pich2117\picwgoal1200\pichgoal1200\wmetafile8"
        b"\r\n" + hex_lines(min(size, 4096), seed + 1) + b"}}"
    )


def paragraph(rng: random.Random, number: int) -> bytes:
    """A paragraph of Word's: runs with revision ids, a bookmark, escaped characters and a hyperlink as WordPad
    writes one (which striprtf follows with its address)."""
    words = [b"roast", b"Caf\\'e9", b"Z\\u252?rich", b"\\u26085?\\u26412?", b"beans", b"\\'80 4", b"grind", b"crema"]
    body = b" ".join(rng.choice(words) for _ in range(60))
    return (
        rb"\pard\plain \ltrpar\ql \li0\ri0\sa160\sl259\slmult1\widctlpar\rtlch\fcs1 \af0\afs22 \ltrch\fcs0 "
        rb"\fs22\lang1033\insrsid5590187 {\*\bkmkstart p%d}{\rtlch\fcs1 \af0 \ltrch\fcs0 \insrsid1070340 %s "
        rb"{\b\insrsid2827431 bold {\i and italic}} then "
        rb'{\field{\*\fldinst{HYPERLINK "https://vellmar.example/p%d"}}{\fldrslt{\ul\cf2 the notes}}}'
        rb".}{\*\bkmkend p%d}\par" % (number, body, number, number)
    )


def table_with_picture(seed: int) -> bytes:
    """A table row whose second cell holds a picture, nested in the row's groups as Word nests it."""
    return (
        rb"\trowd \irow0\irowband0\ltrrow\ts11\trgaph108\trleft-108 \cellx4680\cellx9360"
        rb"\pard\plain \ltrpar\ql \intbl {\rtlch\fcs1 \af0 \ltrch\fcs0 \insrsid5590187 Roaster\cell }"
        rb"{\rtlch\fcs1 \af0 \ltrch\fcs0 \insrsid5590187 " + picture(20_000, seed) + rb"\cell }"
        rb"\pard\plain \ltrpar\ql \intbl {\rtlch\fcs1 \af0 \ltrch\fcs0 \insrsid5590187 \trowd \irow0\cellx4680"
        rb"\cellx9360\row }\pard\plain \ltrpar\ql "
    )


def word_parts(seed: int) -> bytes:
    """What Word writes after the text: its theme, colour mapping, an embedded workbook and its data store."""
    return (
        rb"{\object\objemb\objw4000\objh1500{\*\objclass Excel.Sheet.12}{\*\objdata " + hex_lines(8_000, seed) + b"}"
        rb"{\result{\pict\wmetafile8\picw4000\pich1500 " + hex_lines(2_000, seed + 1) + b"}}}\\par"
        b"\r\n"
        rb"{\*\themedata " + hex_lines(40_000, seed + 2) + b"}"
        rb"{\*\colorschememapping 3c3f786d6c2076657273696f6e3d22312e30223f3e}"
        rb"{\*\datastore 01050000" + hex_lines(6_000, seed + 3) + b"}"
    )


def picture_letter(picture_mb: int) -> bytes:
    """A one-page letter with a photograph of picture_mb MB of hex, a table holding a logo, and Word's parts."""
    rng = random.Random(1)
    body = b"\r\n".join(paragraph(rng, number) for number in range(6))
    photo = rb"{\rtlch\fcs1 \af0 \ltrch\fcs0 \insrsid5590187 " + picture(picture_mb * 1_000_000, 7) + b"}\\par"
    return HEADER + table_with_picture(3) + body + b"\r\n" + photo + b"\r\n" + body + word_parts(11) + b"}"


def raw_picture_letter(picture_mb: int) -> bytes:
    """The letter with its photograph's bytes written raw (\\bin, as some writers do), braces among them by chance;
    striprtf alone reads those as text and groups, so its text is not the one to compare against."""
    rng = random.Random(1)
    body = b"\r\n".join(paragraph(rng, number) for number in range(6))
    photo = random.Random(7).randbytes(picture_mb * 1_000_000)
    raw = rb"{\*\shppict{\pict\pngblip\picw2117\pich2117\bin%d " % len(photo) + photo + b"}}\\par"
    return HEADER + body + b"\r\n" + raw + b"\r\n" + body + b"}"


def text_report(text_mb: int) -> bytes:
    """A long report: text_mb MB of paragraphs, with escaped characters, bookmarks and hyperlinks."""
    rng = random.Random(2)
    paragraphs: list[bytes] = []
    size = 0
    while size < text_mb * 1_000_000:
        paragraphs.append(paragraph(rng, len(paragraphs)))
        size += len(paragraphs[-1]) + 2
    return HEADER + b"\r\n".join(paragraphs) + b"\r\n}"


def striprtf_alone(data: bytes) -> tuple[str, list[str]]:
    """(title, paragraphs) read as before dropping unseen groups: striprtf over the whole file."""
    code_page = rich_text.declared_code_page(data)
    rtf = data.decode(code_page, errors="replace")
    return rich_text.info_title(rtf, code_page), rich_text.paragraphs(rtf, code_page)


def median_seconds(read: Callable[[bytes], object], data: bytes, repeats: int) -> float:
    """The median wall time of repeats reads of data."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        read(data)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--picture-mb", type=int, default=30)
    parser.add_argument("--text-mb", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    files = {
        f"letter with a {args.picture_mb} MB picture": picture_letter(args.picture_mb),
        f"{args.text_mb} MB of text": text_report(args.text_mb),
        f"letter with a {args.picture_mb} MB raw picture": raw_picture_letter(args.picture_mb),
    }
    for name, data in files.items():
        before = median_seconds(striprtf_alone, data, args.repeats)
        after = median_seconds(rich_text.read, data, args.repeats)
        same = striprtf_alone(data) == rich_text.read(data)
        print(f"{name}: {len(data) / 1e6:.1f} MB, striprtf alone {before:.2f} s, rich_text {after:.2f} s, same: {same}")


if __name__ == "__main__":
    main()
