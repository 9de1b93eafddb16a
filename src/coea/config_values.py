"""Reading config values: the YAML file (duplicate keys refused), and a dataclass built from a mapping with every
value checked against its field's annotation (:func:`from_dict`, :func:`typed_value`).

Kept apart from :mod:`coea.config` (the dataclasses themselves) so that each stays a readable size; the names are
re-exported there.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import types
import typing
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from coea.errors import CoeaInputError


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (plain YAML keeps the last one silently:
    ``split:`` twice would drop the first section). Keys merged in with ``<<`` may still be overridden."""

    source: str = "<yaml>"

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
                if key in first:
                    raise CoeaInputError(
                        f"key {key!r} is given twice in the same mapping (first at line {first[key]}); YAML would "
                        "silently keep only the last one", source=self.source, line=line,
                        fix=f"keep a single {key!r} (merge the two into one)")
                first[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path``: a syntax error is a one-line ValueError naming its line and column, a key
    given twice in one mapping a :class:`CoeaInputError` naming the key and its line."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:  # e.g. saved as UTF-16 by an editor, or latin-1
        line = data[:err.start].count(b"\n") + 1
        utf16 = " (it starts like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise ValueError(f"{path}: not UTF-8 text at line {line}{utf16}; save it as UTF-8") from None
    loader = UniqueKeyLoader(text)
    loader.source = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{path}: not valid YAML{at}: {problem}; indent with spaces (no tabs) and close every "
                         "{ [ and quote") from None
    finally:
        loader.dispose()


def close_match(word: object, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word`` (a typo: ``rouds`` -> ``rounds``, ``Markov`` -> ``markov``), or None when
    none is close (:func:`difflib.get_close_matches`, case folded)."""
    folded = {choice.lower(): choice for choice in choices}
    found = difflib.get_close_matches(str(word).lower(), list(folded), n=1)
    return folded[found[0]] if found else None


def unknown_names(what: str, unknown: list[Any], known: Iterable[str], *, known_text: str | None = None) -> str:
    """``unknown key 'rouds' (did you mean 'rounds'?)``: each unknown name with the known one closest to it. The
    known names (or ``known_text``) are listed only when one of the unknown has none close: a list of 30 keys
    hides the typo."""
    known = sorted(known)
    parts, unmatched = [], False
    for name in unknown:
        match = close_match(name, known)
        unmatched |= match is None
        parts.append(f"{name!r}" + (f" (did you mean {match!r}?)" if match else ""))
    text = f"unknown {what}{'s' if len(unknown) > 1 else ''} {', '.join(parts)}"
    return f"{text}; known {what}s are {known_text or ', '.join(known)}" if unmatched else text


def from_dict(cls: type, values: dict[str, Any], *, where: str, base: Any = None) -> Any:
    """Build dataclass ``cls`` from ``values``, rejecting unknown keys with a message naming them. Keys left out
    keep ``base``'s values (default: the class defaults); a nested section starts from its field's default, so
    ``llm.relevance: {batch_size: 64}`` keeps the R-LLM's own defaults (lr, cap), not those of a bare
    ``SftTrainConfig``. A range error of the class's own checks (``__post_init__``) is prefixed with ``where``, the
    section's path (``x.yaml [pco].relevance_refresh: batch_size must be > 0``)."""
    if not isinstance(values, dict):
        raise ValueError(f"{where} must be a section (a mapping of keys), got {values!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known, key=str)
    if unknown:
        if "device" in unknown:  # a per-section device of old configs: the one hint that helps, without the keys
            others = [name for name in unknown if name != "device"]
            listed = f"{unknown_names('key', others, known)}; " if others else ""
            raise ValueError(f"{where}: {listed}unknown key 'device': use the top-level `device:` (or --device)")
        raise ValueError(f"{where}: {unknown_names('key', unknown, known)}")
    hints = typing.get_type_hints(cls)
    defaults = {f.name: _default(f, base) for f in dataclasses.fields(cls)}
    values = {name: typed_value(f"{where}: {name}", hints[name], value, default=defaults[name])
              for name, value in values.items()}
    nested = {name: from_dict(type(defaults[name]), value, where=f"{where}.{name}", base=defaults[name])
              for name, value in values.items() if isinstance(value, dict) and dataclasses.is_dataclass(defaults[name])}
    merged = {**values, **nested}
    try:
        return dataclasses.replace(base, **merged) if base is not None else cls(**merged)
    except ValueError as err:
        if isinstance(err, CoeaInputError):
            raise
        raise ValueError(f"{where}: {err}") from None


def _default(f: dataclasses.Field, base: Any) -> Any:
    """Field ``f``'s value in ``base``, else its class default (None when it has none)."""
    if base is not None:
        return getattr(base, f.name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def typed_value(key: str, hint: Any, value: Any, *, default: Any = None) -> Any:
    """``value`` checked against the field's annotation ``hint`` (and a number written as text, which YAML 1.1
    makes of ``1e-3``, made a number); a ValueError naming ``key`` otherwise. Booleans must be true/false (YAML's
    ``"no"`` is a non-empty string, i.e. true, in Python), whole-number fields take no fractions, numbers must be
    finite; ranges are the config's own ``__post_init__`` checks. ``default`` (the field's) shapes the example a
    list field's error suggests."""
    args = typing.get_args(hint)
    if type(hint) is types.UnionType or typing.get_origin(hint) is typing.Union:
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        args = typing.get_args(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}; write true or false (unquoted)")
        return value
    if hint is int or hint is float:
        return _typed_number(key, hint, value)
    if hint is str or (isinstance(hint, type) and issubclass(hint, enum.Enum)):
        if isinstance(value, date):  # YAML reads an unquoted 2026-11-30 as a date (as_of)
            return value.isoformat()
        if not isinstance(value, str | enum.Enum | Path):
            raise ValueError(f"{key} must be text, got {value!r}" + (
                f"; one of {', '.join(m.value for m in hint)}" if isinstance(hint, type) and issubclass(
                    hint, enum.Enum) else ""))
        return value
    if typing.get_origin(hint) in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{key} must be a list, got {value!r}; {list_example(value, default)}")
        return [typed_value(f"{key}[{i}]", args[0], v) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(hint) and not isinstance(value, dict | hint):
        raise ValueError(f"{key} must be a section (a mapping of keys), got {value!r}")
    return value


def _typed_number(key: str, hint: type, value: Any) -> int | float:
    if hint is int and isinstance(value, int) and not isinstance(value, bool):  # exact: no float on the way
        return _int64(key, value, value)
    number = _number(value)
    if number is None or not math.isfinite(number):
        kind = "a whole number" if hint is int else "a finite number"
        raise ValueError(f"{key} must be {kind}, got {value!r}; write e.g. "
                         f"{'10' if hint is int else '0.001 or 1.0e-3'}")
    if hint is int:
        if number != int(number):
            raise ValueError(f"{key} must be a whole number, got {value!r}; write e.g. {int(number)}")
        return _int64(key, int(number), value)  # 1e19 or 1.0e+19 as well as 10000000000000000000
    return number


def _int64(key: str, number: int, written: Any) -> int:
    """``number`` (the whole number ``written`` in the file) when it fits a 64-bit integer (what numpy and torch
    take); a ValueError naming ``key`` otherwise."""
    if not -2**63 <= number < 2**63:
        raise ValueError(f"{key} must fit a 64-bit integer, got {written}; write a smaller number")
    return number


def list_example(value: Any, default: Any = None) -> str:
    """How to write ``value`` (not a list) as the YAML list a field wants: a comma-separated text split into its
    items, a null replaced by (the start of) the field's ``default``, one item in brackets."""
    if isinstance(value, str) and "," in value:
        items = [part.strip() for part in value.split(",") if part.strip()]
        return f"write a YAML list, not one comma-separated text: [{', '.join(items)}]"
    if value is None:
        shown = list(default)[:3] if isinstance(default, list | tuple) and default else ["a", "b"]
        return f"write e.g. [{', '.join(map(str, shown))}], or leave the key out for the default"
    return f"write e.g. [{value}]"


def _number(value: Any) -> float | None:
    """An int or float as float (not a bool); a string that reads as one (YAML 1.1 reads 1e-3 as text) too."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an int beyond any float (10**400): not a finite number
            return math.inf
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
