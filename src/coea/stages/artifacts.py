"""The fitted artifacts stages hand each other, loaded for methods.

:func:`load_artifacts` loads exactly what a set of methods needs (:class:`~coea.evaluation.registry.Need`); a
need whose directory was not given is a :class:`~coea.errors.CoeaInputError` naming the method. The readers live
beside their writers: :mod:`coea.dsie.artifact` (DSIE dirs), :mod:`coea.llm.artifact` (SFT model dirs),
:mod:`coea.pco.checkpoint` (PCO dirs).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from coea.dsie.artifact import GroupsDir, load_dsie, read_groups_dir
from coea.errors import CoeaInputError
from coea.evaluation.registry import MethodArtifacts, Need, parse_method
from coea.layout import ArtifactDirs
from coea.llm.artifact import load_llms, model_dirs

__all__ = ["GroupsDir", "load_artifacts", "load_dsie", "load_llms", "load_pco", "model_dirs", "read_groups_dir"]


def load_pco(pco_dir: Path, dsie_dir: Path, *, device: str = "cpu"):
    """The models after the last complete PCO round in ``pco_dir``."""
    from coea.pco.checkpoint import last_complete_round

    return load_llms([last_complete_round(Path(pco_dir))], dsie_dir, device=device)


# What each need is, the run folder's folder that holds it, and the command that writes that folder
MADE_BY = {Need.DSIE: ("the DSIE groups", "dsie", "coea group --out RUN"),
           Need.LLMS: ("the SFT models", "llm", "coea train-llms --run RUN"),
           Need.PCO: ("the PCO models", "pco", "coea pco --run RUN")}


def _require(needed: frozenset[Need], need: Need, path, methods: list[str]) -> bool:
    if need not in needed:
        return False
    if not path:
        users = [m for m in methods if need in parse_method(m).needs]
        what, folder, command = MADE_BY[need]
        raise CoeaInputError(f"method(s) {users} need the {need.value} artifact ({what}, in {folder}/), but there "
                             f"is no {folder}/ folder", option="--methods",
                             fix=f"run `{command}` first, or pass a run folder that holds {folder}/, or drop the "
                                 "method(s)")
    return True


def load_artifacts(methods: Iterable[str], dirs: ArtifactDirs, device: str = "cpu") -> MethodArtifacts:
    """Load exactly the artifacts ``methods`` need from ``dirs`` (models on ``device``)."""
    methods = list(methods)
    needed: frozenset[Need] = frozenset()
    for m in methods:
        needed |= parse_method(m).needs
    out = MethodArtifacts()
    if _require(needed, Need.DSIE, dirs.dsie, methods):
        out.dsie = load_dsie(dirs.dsie, device)
    if _require(needed, Need.LLMS, dirs.llm, methods):
        out.llms = load_llms(dirs.llm, dirs.dsie, device=device)
    if _require(needed, Need.PCO, dirs.pco, methods):
        out.pco = load_pco(dirs.pco, dirs.dsie, device=device)
    return out
