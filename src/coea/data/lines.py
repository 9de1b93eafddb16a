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
import tarfile
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


# the compressions of pandas' read_csv (compression="infer", decided by the file name's end) that the standard
# library reads; a zstd file is scanned as its raw bytes (pandas needs the zstandard package for it)
_OPENERS = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}


def compressed(path: Path) -> str | None:
    """The compression pandas infers from ``path``'s name (``gzip``, ``bz2``, ``xz``, ``zip``, ``tar``, ``zstd``;
    ``.gzip`` and ``.tgz`` are not among its names), None for a plain file: the one rule both read by."""
    from pandas.io.common import infer_compression

    return infer_compression(str(path), "infer")


def _open_binary(path: Path) -> IO[bytes]:
    kind = compressed(path)
    if kind in _OPENERS:
        return _OPENERS[kind](path, "rb")
    if kind in ("zip", "tar"):  # pandas reads an archive holding one file (only read after pandas did: it is one)
        return io.BytesIO(_archived(path, kind))
    return path.open("rb")


def _archived(path: Path, kind: str) -> bytes:
    """The first file of the zip or tar archive ``path``."""
    if kind == "zip":
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            return archive.read(names[0]) if names else b""
    with tarfile.open(path) as archive:
        member = next((m for m in archive.getmembers() if m.isfile()), None)
        handle = archive.extractfile(member) if member is not None else None
        return handle.read() if handle is not None else b""


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
    """A shell command that writes ``path`` re-encoded from Latin-1 to UTF-8 beside it: a gzip, bz2 or xz file
    compressed as it was, the file of a zip archive as a plain ``.csv``, a tar or zstd file once extracted."""
    iconv = "iconv -f latin1 -t utf-8"
    if kind is None:
        return f"{iconv} {path.name} > {path.stem}.utf8{path.suffix}"
    inner = Path(path.stem)  # log.csv of log.csv.gz
    stem = inner.stem if inner.suffix else inner.name  # data of data.zip (holding data.csv, say)
    if kind == "zip":
        return f"unzip -p {path.name} | {iconv} > {stem}.utf8.csv"
    if kind not in _OPENERS:
        return f"extract the file from {path.name}, then {iconv} FILE > {stem}.utf8.csv"
    tool = {"gzip": "gzip", "bz2": "bzip2", "xz": "xz"}[kind]
    return f"{tool} -dc {path.name} | {iconv} | {tool} > {stem}.utf8{inner.suffix or '.csv'}{path.suffix}"
