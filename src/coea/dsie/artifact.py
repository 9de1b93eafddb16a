"""The DSIE directory: its writer (:func:`save_dsie`) and its readers (:func:`read_groups_dir`, :func:`load_dsie`,
:func:`read_groups`, :func:`read_embeddings`).

Layout: ``groups.parquet`` (user_id, csid, group_id, cold_start), ``profiles.json``, ``group_report.json`` (with
the config), ``user_embeddings.parquet``, ``dsie_config.json``, ``encoder/`` and ``rqvae/`` (weights + configs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from coea.config import config_to_dict, save_config
from coea.data.schema import USER
from coea.dsie.config import DsieConfig
from coea.errors import CoeaInputError, reads
from coea.utils import atomic_path, write_json_atomic

if TYPE_CHECKING:
    from coea.dsie.run import DsieResult


def save_dsie(result: DsieResult, cfg: DsieConfig, out_dir: Path) -> dict[str, Path]:
    """Write every DSIE output atomically; models with their configs."""
    from coea.dsie.encoder import save_encoder
    from coea.dsie.rqvae import save_rqvae

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"groups": out_dir / "groups.parquet", "profiles": out_dir / "profiles.json",
             "group_report": out_dir / "group_report.json", "embeddings": out_dir / "user_embeddings.parquet",
             "dsie_config": out_dir / "dsie_config.json"}
    with atomic_path(paths["groups"]) as tmp:
        result.groups.to_parquet(tmp, index=False)
    with atomic_path(paths["embeddings"]) as tmp:
        result.embeddings.rename(columns=str).reset_index().to_parquet(tmp, index=False)
    write_json_atomic(paths["profiles"], result.profiles)
    write_json_atomic(paths["group_report"], {**result.report, "config": config_to_dict(cfg)})
    save_config(cfg, paths["dsie_config"])
    paths.update(save_encoder(result.encoder, out_dir / "encoder"))
    paths.update({f"rqvae_{k}": v for k, v in save_rqvae(result.rqvae.model, out_dir / "rqvae").items()})
    return paths


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


REGROUP_FIX = "re-run `coea group` (or the dsie_group step) to write it again"
GROUP_COLUMNS = (USER, "csid", "group_id", "cold_start")


@reads(REGROUP_FIX)
def read_groups(path: Path) -> pd.DataFrame:
    """A DSIE ``groups.parquet``; a column of :data:`GROUP_COLUMNS` missing is one error naming the file and it."""
    groups = pd.read_parquet(path)
    for column in GROUP_COLUMNS:
        if column not in groups.columns:
            raise CoeaInputError(f"missing column (have: {', '.join(map(str, groups.columns))})", source=path,
                                 column=column, fix=REGROUP_FIX)
    return groups


@reads(REGROUP_FIX)
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
    profiles = json.loads((path / "profiles.json").read_text())
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) and "profile" in v for v in profiles.values()):
        raise ValueError("profiles.json is not an object of group id -> {csid, profile, ...}")
    groups = read_groups(path / "groups.parquet")
    _check_profiled(groups, profiles, path / "profiles.json")
    return GroupsDir(groups, profiles, sizes[: dsie["group"]["depth"]], sizes)


def _check_profiled(groups: pd.DataFrame, profiles: dict, source: Path) -> None:
    """Every group of ``groups`` has a profile: a group without one would be prompted with an empty profile, and
    the models trained and served on that without a word (``profiles.json`` written as ``{}``, or by another fit)."""
    unprofiled = sorted(set(groups["group_id"].astype(str)) - set(map(str, profiles)))
    if unprofiled:
        shown = ", ".join(unprofiled[:5]) + (f" and {len(unprofiled) - 5} more" if len(unprofiled) > 5 else "")
        raise CoeaInputError(f"has no profile for {len(unprofiled)} of the {groups['group_id'].nunique()} groups of "
                             f"groups.parquet ({shown}): the two files are not from one fit", source=source,
                             fix=REGROUP_FIX)


@reads(REGROUP_FIX)
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
    emb = read_embeddings(dsie_dir / "user_embeddings.parquet")
    return DsieResult(g.groups, g.profiles, report, EncoderResult(model, vocab, enc_cfg), rq, emb)


@reads(REGROUP_FIX)
def read_embeddings(path: Path) -> pd.DataFrame:
    """``user_embeddings.parquet`` as :func:`save_dsie` was given it: index user_id, columns the dimensions 0..D-1
    (parquet keeps column names as strings: "0".."D-1" on disk)."""
    emb = pd.read_parquet(path).set_index(USER)
    dims = [str(i) for i in range(emb.shape[1])]
    if list(emb.columns) != dims:
        raise CoeaInputError(f"columns {', '.join(map(str, emb.columns[:5]))} are not the embedding dimensions "
                             f"0..{emb.shape[1] - 1} in order", source=path, fix=REGROUP_FIX)
    emb.columns = pd.RangeIndex(emb.shape[1])
    return emb
