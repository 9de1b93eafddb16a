"""What each fitted artifact of a run folder was made from, so that no command combines artifacts that do not
belong together.

A run folder is built step by step (``coea group`` -> ``coea train-llms`` -> ``coea pco`` -> ``coea evaluate
--from-run``), and any step can be re-run, interrupted or run with another ``--config``. Each fitted artifact
records, in a ``lineage.json`` written after its files are complete:

- ``histories``: the prepared log it learned from (the SHA-256 of ``data/interactions.parquet``) and the split
  settings that cut it into histories and held-out futures;
- ``made_from``: the ``id`` of each fitted artifact it was built on (an LLM: the DSIE dir; PCO: the DSIE dir and
  both SFT models);
- ``id``: its own, new at every write; ``complete``: False while a PCO run is under way.

``dsie/lineage.json``, ``llm/novelty/lineage.json``, ``llm/relevance/lineage.json`` and ``pco/lineage.json``.
The commands that read a run folder check them (:func:`check_run`) before any work: an artifact fitted on other
data or another split (scoring it on that split's futures would score it on events it learned from), one built
on a DSIE dir or models that were replaced since, or one whose step did not finish is a one-line
:class:`~coea.errors.CoeaInputError` naming the step to re-run. The pipelines' steps write the records too; the
recurring pipeline deliberately keeps models across periods, so only the CLI's run-folder commands check them.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coea.errors import CoeaInputError
from coea.utils import file_sha256, write_json_atomic

LINEAGE = "lineage.json"
RERUN = {"dsie": "re-run `coea group` for this run", "novelty": "re-run `coea train-llms` for this run",
         "relevance": "re-run `coea train-llms` for this run",
         "pco": "re-run `coea pco` for this run (--resume continues an interrupted one)"}
# PCO stale because the SFT models it starts from are: the earliest step to re-run is train-llms (which
# re-writes the models, so PCO must follow), not PCO on the stale models (which `coea pco` would refuse)
RERUN_LLMS_THEN_PCO = "re-run `coea train-llms` then `coea pco` for this run"


def histories(data_dir: Path, split: Any) -> dict[str, Any]:
    """What a fit on ``split`` (a :class:`~coea.config.SplitConfig`) of the log in ``data_dir`` learned from."""
    from coea.data.prepared import INTERACTIONS  # pandas: imported when a command reads a run, not at start-up

    path = Path(data_dir) / INTERACTIONS
    if not path.is_file():
        raise CoeaInputError(f"{INTERACTIONS} not found", source=data_dir,
                             fix="re-run the data step (`coea group` or `coea evaluate` with --data) to write it")
    return {"data": file_sha256(path), "split": dataclasses.asdict(split)}


def _serving_key(run: Path) -> dict[str, Any] | None:
    """Serving reads every event of ``run/data/`` as history: the artifacts must have been fitted on that log (its
    split is not compared). None (not checked) without a readable log there: its reader says what is wrong."""
    import pyarrow.parquet as pq

    from coea.data.prepared import INTERACTIONS

    path = Path(run) / "data" / INTERACTIONS
    try:
        pq.read_metadata(path)
    except (OSError, ValueError):
        return None
    return {"data": file_sha256(path)}


def read(artifact: Path) -> dict[str, Any] | None:
    """``artifact``'s record, or None when it has none (or an unreadable one)."""
    try:
        record = json.loads((Path(artifact) / LINEAGE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if _well_formed(record) else None


def _well_formed(record: Any) -> bool:
    """What :func:`write` writes: an ``id``, a bool ``complete``, ``histories`` with a ``split`` object and
    ``made_from`` ids (the records of older versions may lack the last three)."""
    if not (isinstance(record, dict) and isinstance(record.get("id"), str)):
        return False
    fitted, made_from = record.get("histories", {}), record.get("made_from", {})
    return (isinstance(record.get("complete", True), bool) and isinstance(fitted, dict)
            and isinstance(fitted.get("split", {}), dict) and isinstance(made_from, dict))


def _id(artifact: Path) -> str | None:
    record = read(artifact)
    return None if record is None else record["id"]


def write(artifact: Path, histories_key: Mapping[str, Any], made_from: Mapping[str, Path] | None = None, *,
          complete: bool = True) -> dict[str, Any]:
    """Record (atomically) what ``artifact`` was made from, under a new id; returns the record."""
    record = {"id": uuid.uuid4().hex, "complete": complete, "histories": dict(histories_key),
              "made_from": {name: _id(path) for name, path in (made_from or {}).items()}}
    write_json_atomic(Path(artifact) / LINEAGE, record)
    return record


def mark_complete(artifact: Path) -> None:
    """Set ``complete`` in ``artifact``'s record (a PCO run that finished)."""
    record = read(artifact)
    if record is not None:
        write_json_atomic(Path(artifact) / LINEAGE, {**record, "complete": True})


def unfinished(artifact: Path) -> bool:
    """Whether ``artifact`` has a record that is not marked complete (a PCO run under way or killed)."""
    record = read(artifact)
    return record is not None and not record.get("complete", True)


def clear(artifact: Path) -> None:
    """Drop ``artifact``'s record: it is being rewritten, and stays unusable until :func:`write` runs again."""
    (Path(artifact) / LINEAGE).unlink(missing_ok=True)


def _changed(fitted: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in {*fitted, *now} if fitted.get(k) != now.get(k))


def _split_diff(fitted: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    keys = _changed(fitted, now)
    return ", ".join(f"{k} {fitted.get(k)!r} (now {now.get(k)!r})" for k in keys)


def _split_yaml(fitted: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """The split settings that differ, at their values now, as the --config line that asks for them (``coea
    group`` takes no --n-future / --min-gap options: the config is the one way to re-fit on another split)."""
    return "`split: {" + ", ".join(f"{k}: {now.get(k)}" for k in _changed(fitted, now)) + "}`"


def check(artifact: Path, name: str, histories_key: Mapping[str, Any] | None = None,
          made_from: Mapping[str, Path] | None = None, *, finished: bool = True, rerun: str | None = None) -> None:
    """Refuse ``artifact`` (``name``: dsie, novelty, relevance or pco) unless it finished (not checked with
    ``finished=False``: a PCO run to resume), learned from ``histories_key`` (None: not checked; without a
    ``split``, the log alone: serving, whose histories are every event) and was built on the artifacts now at
    ``made_from``. A damaged record is refused as such. The error's fix is
    ``rerun`` when given (an earlier step is stale too), else re-running ``name``'s step."""
    record, fix = read(artifact), rerun or RERUN[name]
    if record is None and (Path(artifact) / LINEAGE).exists():
        raise CoeaInputError("damaged: not a lineage record (unreadable, not JSON, or fields of the wrong type)",
                             source=Path(artifact) / LINEAGE, fix=fix)
    if record is None:
        raise CoeaInputError(f"no {LINEAGE}: the step that writes it did not finish, or it predates lineage "
                             "records", source=artifact, fix=fix)
    if finished and not record.get("complete", True):
        raise CoeaInputError("the PCO run that writes it did not finish", source=artifact, fix=fix)
    fitted = record.get("histories") or {}
    if histories_key is not None and fitted.get("data") != histories_key["data"]:
        raise CoeaInputError("it was fitted on another log than the data/ beside it (interactions.parquet "
                             "changed since)", source=artifact, fix=fix)
    if histories_key is not None and "split" in histories_key and (
            diff := _split_diff(fitted.get("split") or {}, histories_key["split"])):
        raise CoeaInputError(f"it was fitted with other split settings: {diff}; scoring it on this split would "
                             "score events it learned from", source=artifact,
                             fix=f"pass the --config it was made with, or {fix} with "
                                 f"{_split_yaml(fitted.get('split') or {}, histories_key['split'])} in its --config")
    for other, path in (made_from or {}).items():
        if record.get("made_from", {}).get(other) != _id(path):
            raise CoeaInputError(f"it was built on another {Path(path).name}/ than the one now in this run "
                                 f"({path} was re-written since)", source=artifact, fix=fix)


def check_run(run: Path, needs: set[str], histories_key: Mapping[str, Any] | None) -> None:
    """Check the artifacts of the run folder ``run`` that a command reads (``needs`` among dsie, llms, pco):
    each against ``histories_key`` (see :func:`check`), the LLMs against the DSIE dir, PCO against both. An
    artifact that is not there is left to the reader, which says what writes it. A refusal names the earliest
    stale step: PCO built on models that are stale themselves says re-run train-llms, then pco. With
    ``histories_key`` None (serving: every event is history) the artifacts are checked against ``run/data/``'s log
    alone."""
    if histories_key is None:
        histories_key = _serving_key(run)
    dsie, llm, pco = Path(run) / "dsie", Path(run) / "llm", Path(run) / "pco"
    models = {name: llm / name for name in ("novelty", "relevance")}
    wanted = [("dsie", dsie, {})] if needs & {"dsie", "llms", "pco"} else []
    if "llms" in needs:
        wanted += [(name, path, {"dsie": dsie}) for name, path in models.items()]
    if "pco" in needs:
        wanted.append(("pco", pco, {"dsie": dsie, **(models if "llms" in needs else {})}))
    for name, path, made_from in wanted:
        if path.is_dir():
            check(path, name, histories_key, made_from,
                  rerun=_earliest(name, "pco" in needs and pco.is_dir(), models, dsie, histories_key))


def _earliest(name: str, with_pco: bool, models: Mapping[str, Path], dsie: Path,
              histories_key: Mapping[str, Any] | None) -> str | None:
    """The fix when ``name``'s artifact is refused and an earlier step must be re-run first (None: its own step):
    with PCO read (``with_pco``), a model refused (PCO follows its re-training), or PCO refused while a model it
    starts from is stale against the DSIE dir or the histories."""
    if not with_pco:
        return None
    if name in models:
        return RERUN_LLMS_THEN_PCO
    if name == "pco" and any(path.is_dir() and _refused(path, other, histories_key, {"dsie": dsie})
                             for other, path in models.items()):
        return RERUN_LLMS_THEN_PCO
    return None


def _refused(artifact: Path, name: str, histories_key: Mapping[str, Any] | None,
             made_from: Mapping[str, Path]) -> bool:
    try:
        check(artifact, name, histories_key, made_from)
    except CoeaInputError:
        return True
    return False
