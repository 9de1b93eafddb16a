"""A run folder as the commands that read one take it: its parts checked before anything is read, and a missing
part's error naming the command that writes it (the earliest missing stage first)."""

from __future__ import annotations

from pathlib import Path

from coea.errors import CoeaInputError

# What any run folder holds at least one of, and the fix of a folder that holds none
RUN_PARTS = ("data", "dsie", "llm", "pco", "config.json")
PASS_A_RUN = "pass the --out of an earlier `coea group`/`evaluate`/`ablate`, or a runs/<timestamp>/ of `coea run`"
# A run folder's parts in the order the stages write them, each with the command that writes it into RUN
STAGE_COMMANDS = {"data": "coea group --out RUN", "dsie": "coea group --out RUN", "llm": "coea train-llms --run RUN",
                  "pco": "coea pco --run RUN"}


def next_stages(run: Path, part: str) -> str:
    """The commands that give the run folder ``run`` its missing ``part``: from the earliest part it lacks up to
    ``part`` (``pco`` without ``llm/``: train-llms, then pco), the run's path in them."""
    order = list(STAGE_COMMANDS)
    parts = order[:order.index(part) + 1]
    first = next((i for i, p in enumerate(parts) if not (run / p).is_dir()), len(parts) - 1)
    commands = dict.fromkeys(STAGE_COMMANDS[p].replace("RUN", str(run)) for p in parts[first:])
    return "run " + ", then ".join(f"`{c}`" for c in commands)


def check_complete(run: Path, option: str) -> None:
    """A ``coea run`` folder whose run stopped (its INCOMPLETE.txt) is refused before anything is read: its parts
    may be missing or, killed while the outputs were copied, older than the rest."""
    from coea.layout import RunLayout

    marker = RunLayout(run).incomplete
    if marker.is_file():
        first = marker.read_text(encoding="utf-8").partition("\n")[0].rstrip(".")
        first = first[:1].lower() + first[1:]  # the marker's sentence, inside the error's line
        raise CoeaInputError(f"{first} (see {marker.name})", source=run, option=option,
                             fix="start a new run with `coea run`, or pass a complete run folder")


def run_layout(run: Path, *parts: str):
    """The :class:`~coea.layout.RunLayout` of ``--run``, a folder holding ``parts`` (data, dsie, llm, pco)."""
    from coea.layout import RunLayout

    layout = RunLayout(run)
    if not run.is_dir():
        raise CoeaInputError(f"not a run folder: it {'is a file' if run.exists() else 'does not exist'}",
                             source=run, option="--run",
                             fix="pass a run folder written by `coea group`/`coea evaluate`/`coea run`")
    check_complete(run, "--run")
    if not any((run / part).exists() for part in RUN_PARTS):  # no stage ever wrote here: no 'run group first'
        folders = ", ".join(p + "/" for p in RUN_PARTS[:-1])
        raise CoeaInputError(f"not a run folder: it holds no {folders} or {RUN_PARTS[-1]}", source=run,
                             option="--run", fix=PASS_A_RUN)
    for part in parts:
        if not getattr(layout, part).is_dir():
            raise CoeaInputError(f"no {part}/ directory: its stage has not run on this folder", source=run,
                                 option="--run", fix=f"{next_stages(run, part)} first, or pass a run folder that "
                                                     f"holds {part}/")
    return layout


def require_parts(run: Path, methods: list[str] | tuple[str, ...], option: str) -> None:
    """The run folder ``run`` holds the parts (dsie/, llm/, pco/) that ``methods`` need; else an error naming the
    earliest missing stage's command (pco/ and llm/ missing: train-llms, then pco), before anything is read."""
    from coea.evaluation.registry import parse_method
    from coea.stages.artifacts import MADE_BY

    for need in sorted({n for m in methods for n in parse_method(m).needs}, key=lambda n: -list(MADE_BY).index(n)):
        what, folder, _ = MADE_BY[need]
        if not (run / folder).is_dir():
            users = [m for m in methods if need in parse_method(m).needs]
            raise CoeaInputError(f"method(s) {users} need the {need.value} artifact ({what}, in {folder}/), but "
                                 f"there is no {folder}/ folder",
                                 source=run, option=option,
                                 fix=f"{next_stages(run, folder)} first, or drop the method(s)")
