"""Readers of the fitted artifacts the stages hand each other: DSIE dirs, LLM dirs, PCO dirs.

:func:`load_artifacts` loads exactly what a set of methods needs (:class:`~coea.evaluation.registry.Need`);
a need whose directory was not given is a :class:`~coea.errors.CoeaInputError` naming the method.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from coea.data.schema import USER
from coea.errors import CoeaInputError
from coea.evaluation.registry import MethodArtifacts, Need, parse_method
from coea.layout import ArtifactDirs

MODELS = ("novelty", "relevance")


@dataclass(frozen=True)
class GroupsDir:
    """What the LLM stages read from a DSIE dir."""

    groups: pd.DataFrame  # user_id, csid, group_id, cold_start
    profiles: dict
    csid_levels: list[int]  # codebook sizes of the group's CSID prefix levels
    code_levels: list[int]  # codebook sizes of every CSID level (a user's full code)

    def prompt_levels(self, full_csid: bool) -> list[int]:
        """The CSID levels prompts show: every level with ``full_csid`` (the user's code), else the prefix's."""
        return self.code_levels if full_csid else self.csid_levels


def read_groups_dir(path: Path) -> GroupsDir:
    """Groups, profiles and CSID levels of a DSIE dir."""
    path = Path(path)
    needed = ["groups.parquet", "profiles.json", "dsie_config.json"]
    missing = [n for n in needed if not (path / n).is_file()]
    if missing:
        raise CoeaInputError(f"missing {missing}", source=path,
                             fix="pass a DSIE directory (written by `coea group` or the dsie_group step)")
    dsie = json.loads((path / "dsie_config.json").read_text())
    sizes = list(dsie["rqvae"]["codebook_sizes"])
    return GroupsDir(pd.read_parquet(path / "groups.parquet"), json.loads((path / "profiles.json").read_text()),
                     sizes[: dsie["group"]["depth"]], sizes)


def load_dsie(dsie_dir: Path, device: str = "cpu"):
    """Rebuild a :class:`~coea.dsie.run.DsieResult` from a DSIE dir (groups, profiles, report, both models on
    ``device``)."""
    from coea.dsie.encoder import EncoderResult, load_encoder
    from coea.dsie.rqvae import RqVaeResult, load_rqvae
    from coea.dsie.run import DsieResult

    g = read_groups_dir(dsie_dir)
    dsie_dir = Path(dsie_dir)
    report = json.loads((dsie_dir / "group_report.json").read_text())
    model, vocab, enc_cfg = load_encoder(dsie_dir / "encoder", device=device)
    warm = g.groups[~g.groups["cold_start"].astype(bool)]
    ids = np.array([[int(c) for c in s.split("-")] for s in warm["csid"]], dtype=np.int64)  # (W, L)
    levels = report.get("codebooks", [])
    rq = RqVaeResult(load_rqvae(dsie_dir / "rqvae", device=device), ids, [], [lv["utilisation"] for lv in levels],
                     [lv["perplexity"] for lv in levels], float(report.get("csid_collision_rate", 0.0)))
    emb = pd.read_parquet(dsie_dir / "user_embeddings.parquet").set_index(USER)
    return DsieResult(g.groups, g.profiles, report, EncoderResult(model, vocab, enc_cfg), rq, emb)


def model_dirs(llm_dirs: Sequence[Path]) -> dict[str, Path]:
    """``{"novelty": dir, "relevance": dir}``: the first of ``llm_dirs`` holding each model's folder."""
    found = {}
    for name in MODELS:
        hit = next((Path(d) for d in llm_dirs if (Path(d) / name).is_dir()), None)
        if hit is None:
            raise CoeaInputError(f"no {name}/ model in {[str(d) for d in llm_dirs]}",
                                 source=llm_dirs[0] if llm_dirs else "llm",
                                 fix="pass the dir(s) written by the SFT stage (`coea train-llms`, the sft_* steps)")
        found[name] = hit
    return found


def load_llms(llm_dirs: Sequence[Path], dsie_dir: Path, *, device: str = "cpu", trainable: bool = False):
    """Both LLMs (:class:`~coea.llm.run.LlmTrainResult`) from ``llm_dirs`` on ``device``, with the DSIE dir's
    groups."""
    from coea.llm.models import load_bundle
    from coea.llm.run import LlmTrainResult
    from coea.llm.sft_data import group_infos

    found = model_dirs(llm_dirs)
    g = read_groups_dir(dsie_dir)
    bundles = {name: load_bundle(found[name] / name, trainable=trainable, device=device) for name in MODELS}
    return LlmTrainResult(bundles["novelty"], bundles["relevance"], {}, group_infos(g.groups, g.profiles))


def load_pco(pco_dir: Path, dsie_dir: Path, *, device: str = "cpu"):
    """The models after the last complete PCO round in ``pco_dir``."""
    from coea.pco.checkpoint import last_complete_round

    return load_llms([last_complete_round(Path(pco_dir))], dsie_dir, device=device)


def _require(needed: frozenset[Need], need: Need, path, methods: list[str]) -> bool:
    if need not in needed:
        return False
    if not path:
        users = [m for m in methods if need in parse_method(m).needs]
        raise CoeaInputError(f"method(s) {users} need the {need.value} artifact, but no {need.value} directory "
                             "was given", option="--methods",
                             fix=f"pass a run that holds {need.value}/ (--from-run), or drop the method(s)")
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
