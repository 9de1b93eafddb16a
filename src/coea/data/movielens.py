"""MovieLens ``::`` files (ml-1m layout): ``ratings*.dat`` + ``movies.dat``, latin-1.

Category = the movie's full genre string (``Comedy|Romance``) with ``CategoryLevel.FULL``, or its first
genre with ``CategoryLevel.FIRST``. Every rating is one interaction (implicit feedback); the rating value is
kept in the optional ``rating`` column.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import pandas as pd

from coea.config import CategoryLevel
from coea.data.schema import CATEGORY, ITEM, RATING, TIMESTAMP, USER
from coea.errors import CoeaInputError

log = logging.getLogger(__name__)


def find_ratings_file(directory: Path) -> Path:
    """``ratings.dat`` if present, else the single ``ratings*.dat`` in ``directory``."""
    if not directory.is_dir():
        raise CoeaInputError("directory not found", source=directory,
                             fix="pass movielens:DIR where DIR holds ratings.dat and movies.dat")
    exact = directory / "ratings.dat"
    if exact.is_file():
        return exact
    found = sorted(directory.glob("ratings*.dat"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise CoeaInputError("no ratings.dat or ratings*.dat file", source=directory,
                             fix="put the MovieLens ratings file in this directory")
    names = [p.name for p in found]
    raise CoeaInputError(f"several ratings files {names} and no ratings.dat", source=directory,
                         fix="keep one ratings*.dat in the directory, or name one ratings.dat")


BOM = "\xef\xbb\xbf"  # a UTF-8 byte-order mark as latin-1 text


def read_movies(path: Path, level: CategoryLevel) -> pd.Series:
    """item_id -> category from ``movies.dat`` (``MovieID::Title::Genre|Genre``; titles may contain ':').

    A line without three fields, an empty genre (``|``, ``Drama|``) and a MovieID listed twice are errors naming
    their line; a leading UTF-8 byte-order mark is skipped."""
    if not path.is_file():
        raise CoeaInputError("file not found", source=path, fix="movies.dat must sit beside the ratings file")
    ids, cats, lines = [], [], []
    with path.open(encoding="latin-1") as fh:
        for line_no, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n").removeprefix(BOM if line_no == 1 else "")
            if not line:
                continue
            parts = line.split("::")
            if len(parts) != 3 or not parts[2]:
                raise CoeaInputError("expected MovieID::Title::Genres", source=path, column="Genres",
                                     line=line_no, fix="repair or remove this line")
            genres = parts[2]
            if not all(genre.strip() for genre in genres.split("|")):
                raise CoeaInputError(f"empty genre in {genres!r}", source=path, column="Genres", line=line_no,
                                     fix="name every genre between the '|' separators, e.g. Comedy|Drama")
            ids.append(parts[0].strip())
            cats.append(genres.split("|")[0] if level is CategoryLevel.FIRST else genres)
            lines.append(line_no)
    index = pd.Index(ids, name=ITEM)
    _check_unique_ids(index, lines, path)
    return pd.Series(cats, index=index, name=CATEGORY)


def _check_unique_ids(index: pd.Index, lines: list[int], path: Path) -> None:
    repeated = index.duplicated()
    if repeated.any():
        at = int(repeated.nonzero()[0][0])
        first = lines[int((index == index[at]).nonzero()[0][0])]
        raise CoeaInputError(f"MovieID {index[at]!r} is listed twice (lines {first} and {lines[at]})", source=path,
                             column="MovieID", line=lines[at],
                             fix="keep one line per movie (a movies.dat from another release mixed in?)")


RATINGS_LAYOUT = "UserID::MovieID::Rating::Timestamp"


def _check_fields(raw: pd.DataFrame, path: Path) -> None:
    """Split on ':', a good line has fields 0, 2, 4, 6 filled and 1, 3, 5 empty (the '::' separators)."""
    bad = raw[[1, 3, 5]].notna().any(axis=1) | raw[[0, 2, 4, 6]].isna().any(axis=1)
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0]) + 1
        text = ":".join("" if pd.isna(v) else str(v) for v in raw.iloc[row - 1]).rstrip(":")
        raise CoeaInputError(f"malformed line {text!r}, expected {RATINGS_LAYOUT}", source=path, row=row,
                             fix="repair or remove this line (a download cut short? fetch the file again)")


def read_ratings(path: Path) -> pd.DataFrame:
    """The four ``::`` fields as strings; uses the C parser by splitting on ':' (ids hold no colons), quoting off
    (a ``"`` is an ordinary character in these files) and a leading UTF-8 byte-order mark skipped.

    A line with missing, extra or single-colon fields is an error naming it (by line, or by data row, which
    :func:`coea.data.lines.at_editor_line` turns into the line).
    """
    try:
        with path.open("rb") as fh:
            if fh.read(len(BOM)) != BOM.encode("latin-1"):
                fh.seek(0)
            raw = pd.read_csv(fh, sep=":", header=None, names=list(range(7)), dtype=str, engine="c",
                              encoding="latin-1", quoting=csv.QUOTE_NONE)
    except pd.errors.EmptyDataError as err:
        raise CoeaInputError("the file is empty", source=path, fix=f"provide {RATINGS_LAYOUT} lines") from err
    except (pd.errors.ParserError, ValueError) as err:
        found = re.search(r"Expected \d+ fields in line (\d+)", str(err))
        raise CoeaInputError(f"cannot parse as {RATINGS_LAYOUT} ({str(err).splitlines()[0]})", source=path,
                             line=int(found.group(1)) if found else None,
                             fix="check the separator is '::' and each line has 4 fields") from err
    _check_fields(raw, path)
    raw = raw[[0, 2, 4, 6]]
    raw.columns = [USER, ITEM, RATING, TIMESTAMP]
    return raw


def load_movielens(directory: Path, level: CategoryLevel = CategoryLevel.FULL) -> tuple[pd.DataFrame, str]:
    """Canonical (not yet validated) interactions and the ratings file name used as the error source."""
    ratings_path = find_ratings_file(directory)
    movies = read_movies(directory / "movies.dat", level)
    df = read_ratings(ratings_path)
    df[CATEGORY] = df[ITEM].str.strip().map(movies)
    unknown = df[CATEGORY].isna() & df[ITEM].notna()
    if unknown.any():
        row = int(unknown.to_numpy().nonzero()[0][0]) + 1
        raise CoeaInputError(f"movie {df[ITEM].iloc[row - 1]!r} is not in movies.dat", source=ratings_path,
                             column="MovieID", row=row, fix="use the movies.dat of the same MovieLens release")
    log.info("read %d ratings from %s (%d movies, category level %s)", len(df), ratings_path, len(movies),
             level.value)
    return df, str(ratings_path)
