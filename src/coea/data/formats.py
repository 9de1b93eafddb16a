"""What a file given as ``csv:`` really is when pandas cannot read it, or would read it wrongly: another format
(Parquet, JSON), rows with more fields than the header, a quote that is never closed; and Parquet columns that
hold lists or structs. Each becomes one :class:`CoeaInputError` naming the file, the line (or column) and the fix.
The text is scanned only after pandas failed, or its first bytes before pandas reads it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from coea.data.lines import compressed, records
from coea.errors import CoeaInputError

# pandas' default missing-value words (read_csv's ``na_values`` documentation); only the numeric columns use them
NUMERIC_NA = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
              "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
FORMATS = "csv:PATH (a .csv file with a header line), parquet:PATH or movielens:DIR"


def not_another_format(path: Path) -> None:
    """Refuse a Parquet or JSON file given as ``csv:`` (pandas would read its bytes as a header and no rows), and a
    gzip or zip file whose name does not say so (its bytes read as text: a misleading 'not UTF-8' at line 1)."""
    with path.open("rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"PAR1"):
        raise CoeaInputError("looks like a Parquet file (it starts with 'PAR1'), not CSV", source=path,
                             fix=f"pass it as parquet:{path}")
    for magic, kind, names in ((b"\x1f\x8b", "gzip", ("gzip", "tar")), (b"PK\x03\x04", "zip", ("zip",))):
        if head.startswith(magic) and compressed(path) not in names:  # pandas picks by the name only
            renamed = path.name.removesuffix(".gzip") + (".gz" if kind == "gzip" else ".zip")
            raise CoeaInputError(f"is {kind}-compressed but not named so: it would be read as text", source=path,
                                 fix=f"name it {renamed} (then it is decompressed as it is read), or decompress it")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode Text"; pandas reads UTF-8 only
        converted = path.with_name(f"{path.stem}.utf8{path.suffix}")
        raise CoeaInputError("is UTF-16 text (it starts with a UTF-16 byte-order mark), not UTF-8", source=path,
                             line=1, fix=f"convert it, e.g. iconv -f utf-16 -t utf-8 {path.name} > {converted.name}")
    text = head.removeprefix(b"\xef\xbb\xbf")
    first = text.lstrip()[:1]
    if first in (b"{", b"["):
        line = text[:len(text) - len(text.lstrip())].count(b"\n") + 1
        raise CoeaInputError(f"looks like JSON (it starts with {first.decode()!r}), not CSV: JSON and JSON lines are "
                             "not supported", source=path, line=line,
                             fix="convert it, e.g. pandas.read_json(PATH, lines=True).to_csv(OUT, index=False); the "
                                 f"formats read are {FORMATS}")


def unparsable(path: Path, message: str) -> CoeaInputError | None:
    """The error for pandas' ParserError ``message`` on CSV ``path``, at the line a person sees; None when it is
    neither a row wider than the header nor an open quote."""
    if "EOF inside string" in message:
        return _open_quote(path)
    if "Expected" in message and "fields" in message:
        return _too_wide(path)
    return None


def check_row_width(path: Path, df: pd.DataFrame) -> None:
    """Refuse rows with more fields than the header: when every data row has more, pandas reads the first fields
    as the row index and shifts the columns (a trailing comma left every timestamp blank)."""
    if isinstance(df.index, pd.RangeIndex):
        return
    raise _too_wide(path) or CoeaInputError("the data rows have more fields than the header", source=path,
                                            fix="give the header one name for every field")


def _too_wide(path: Path) -> CoeaInputError | None:
    rows = records(path)
    _, header = next(rows, (0, []))
    for line, record in rows:
        if len(record) > len(header):
            trailing = not "".join(record[len(header):]).strip()
            fix = ("remove the trailing comma at the end of the data rows" if trailing else
                   'quote a field that holds a comma ("Drama, Comedy"), or remove the extra field')
            return CoeaInputError(f"{len(record)} fields but the header names {len(header)}", source=path, line=line,
                                  fix=fix)
    return None


def _open_quote(path: Path) -> CoeaInputError | None:
    """The record that runs to the end of the file: its last field opens a quote that is never closed."""
    found = list(records(path))
    if not found:
        return None
    line, record = found[-1]
    header = found[0][1]
    column = header[len(record) - 1].strip(" \ufeff") if len(found) > 1 and 0 < len(record) <= len(header) else None
    return CoeaInputError("a quoted field starts here and its closing '\"' never comes (the rest of the file would be "
                          "one value)", source=path, column=column, line=line,
                          fix='close the quote, or remove the stray \'"\' (a quote inside a quoted field is written '
                              'twice: "say ""hi""")')


def decode_binary(df: pd.DataFrame, path: Path, binary: Iterable[str]) -> pd.DataFrame:
    """The ``binary`` columns (a Parquet writer stored their strings as raw bytes, without the UTF-8 annotation;
    :func:`check_flat_parquet` names them) as text: pandas would turn each value into "b'x'". A value that is not
    UTF-8 is an error naming its column and row."""
    binary = set(binary)
    for col in (c for c in df.columns if c in binary):
        text = []
        for row, value in enumerate(df[col], start=1):
            try:
                text.append(value.decode("utf-8") if isinstance(value, bytes) else value)
            except UnicodeDecodeError as err:
                raise CoeaInputError(f"bytes {value[:20]!r} are not UTF-8 text", source=path, column=str(col),
                                     row=row, fix="write the column as UTF-8 strings") from err
        df[col] = pd.Series(text, index=df.index, dtype=object)
    return df


def check_flat_parquet(path: Path, columns: Iterable[str | None]) -> list[str]:
    """Refuse a Parquet column among ``columns`` that holds lists, structs or maps: pandas would turn each into
    text such as "['x']" without a word. Returns the file's columns of raw bytes (for :func:`decode_binary`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    wanted, binary = {name for name in columns if name}, []
    for field in pq.read_schema(path):
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            binary.append(field.name)
        if field.name in wanted and pa.types.is_nested(field.type):
            raise CoeaInputError(
                f"holds {field.type} values; ids, categories and timestamps must be one plain value a row",
                source=path, column=field.name,
                fix="store one string (or integer) per row, e.g. df[col] = df[col].str[0] for the first element, "
                    "or df.explode(col) for one row per element",
            )
    return binary
