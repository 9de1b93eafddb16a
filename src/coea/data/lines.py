"""Where a problem sits in a text file: the line number a person sees in an editor.

The table readers count data rows the way pandas does (blank lines skipped, a quoted field may span lines);
:func:`line_of_row` maps such a row back to the line where it starts. Both run only after something failed.
A compressed file (``.csv.gz``, ``.bz2``, ``.xz``, ``.zip``: what pandas decompresses by the name) is read
decompressed (:func:`open_text`, :func:`text_bytes`), so its lines are the lines of the text inside.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from coea.errors import CoeaInputError


@dataclass(frozen=True)
class TextLayout:
    """How a text log is laid out: a header line or not, the field delimiter, the encoding and the quoting (a
    MovieLens ``::`` file has none: a ``"`` there is an ordinary character)."""

    header: bool = True
    delimiter: str = ","
    encoding: str = "utf-8"
    quoting: int = csv.QUOTE_MINIMAL


CSV = TextLayout()
MOVIELENS = TextLayout(header=False, delimiter=":", encoding="latin-1", quoting=csv.QUOTE_NONE)


# what pandas' read_csv decompresses by the file name's end (compression="infer"); zstd and tar need modules the
# standard library lacks and are read as pandas reads them, the scanners then see the raw bytes
_OPENERS = {".gz": gzip.open, ".gzip": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def compressed(path: Path) -> str | None:
    """The compression pandas infers from ``path``'s name that :func:`open_text` reads (``gz``, ``zip``, ...),
    None for a plain file."""
    suffix = path.suffix.lower()
    return suffix[1:] if suffix in _OPENERS or suffix == ".zip" else None


def _open_binary(path: Path) -> IO[bytes]:
    suffix = path.suffix.lower()
    if suffix in _OPENERS:
        return _OPENERS[suffix](path, "rb")
    if suffix == ".zip":  # pandas reads a zip archive holding one file (only read after pandas did: it is one)
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            return io.BytesIO(archive.read(names[0]) if names else b"")
    return path.open("rb")


def open_text(path: Path, encoding: str = "utf-8", errors: str = "replace") -> IO[str]:
    """``path`` as text (decompressed when its name says so), lines as written (``newline=""``, for ``csv``)."""
    return io.TextIOWrapper(_open_binary(path), encoding=encoding, errors=errors, newline="")


def text_bytes(path: Path) -> bytes:
    """``path``'s bytes, decompressed when its name says so."""
    with _open_binary(path) as fh:
        return fh.read()


def _blank(record: list[str]) -> bool:
    return len(record) <= 1 and not "".join(record).strip()


def records(path: Path, layout: TextLayout = CSV) -> Iterator[tuple[int, list[str]]]:
    """The records of ``path`` that are not blank (the header included), each with the line it starts on, split
    as pandas splits them (a leading space before a quote skipped, as ``skipinitialspace`` does). A record that
    ``csv`` cannot split (a field over its size limit: an unclosed quote running on) ends them as ``(line, [])``."""
    with open_text(path, layout.encoding) as fh:
        reader = csv.reader(fh, delimiter=layout.delimiter, quoting=layout.quoting, skipinitialspace=True)
        end = 0
        try:
            for record in reader:
                start, end = end + 1, reader.line_num
                if not _blank(record):
                    yield start, record
        except csv.Error:
            yield end + 1, []


def line_of_row(path: Path, row: int, layout: TextLayout = CSV) -> int | None:
    """Line (1-based) on which data row ``row`` (1-based, blank lines not counted) starts; None past the end."""
    for seen, (start, _) in enumerate(records(path, layout), start=1 - int(layout.header)):
        if seen == row:
            return start
    return None


def at_editor_line(err: CoeaInputError, layout: TextLayout) -> CoeaInputError:
    """``err`` placed at the line of its file when it names a data row of a text file, else ``err`` itself."""
    if err.row is None or err.line is not None or not err.source or not Path(err.source).is_file():
        return err
    line = line_of_row(Path(err.source), err.row, layout)
    return err if line is None else err.at_line(line)


def undecodable(path: Path, layout: TextLayout = CSV) -> CoeaInputError | None:
    """The first byte of ``path`` that is not valid in ``layout.encoding``, with its line and column; None if
    the whole file decodes."""
    data = text_bytes(path)
    try:
        data.decode(layout.encoding)
        return None
    except UnicodeDecodeError as err:
        pos = err.start
    line_start = data.rfind(b"\n", 0, pos) + 1
    field = data[line_start:pos].count(layout.delimiter.encode())
    header = data.split(b"\n", 1)[0].decode(layout.encoding, "replace").lstrip("\ufeff").split(layout.delimiter)
    column = header[field].strip() if layout.header and line_start > 0 and field < len(header) else None
    kind = compressed(path)
    where = f"the text inside {path.name}" if kind else path.name
    return CoeaInputError(
        f"byte 0x{data[pos]:02x} is not valid {layout.encoding.upper()}; the file is in another encoding",
        source=path, column=column, line=data.count(b"\n", 0, pos) + 1,
        fix=f"re-encode {where} as UTF-8, e.g. {_reencode(path, kind)}",
    )


def _reencode(path: Path, kind: str | None) -> str:
    """A shell command that writes ``path`` re-encoded from Latin-1 to UTF-8 beside it, compressed as it was."""
    iconv = "iconv -f latin1 -t utf-8"
    if kind is None:
        return f"{iconv} {path.name} > {path.stem}.utf8{path.suffix}"
    inner = Path(path.stem)  # log.csv of log.csv.gz
    if kind == "zip":
        return f"unzip -p {path.name} | {iconv} > {inner.stem}.utf8{inner.suffix}"
    tool = {"gz": "gzip", "gzip": "gzip", "bz2": "bzip2", "xz": "xz"}[kind]
    return f"{tool} -dc {path.name} | {iconv} | {tool} > {inner.stem}.utf8{inner.suffix}{path.suffix}"
