"""``coea group``: DSIE end to end on histories -> groups.parquet, profiles.json, group_report.json, weights.

Steps: (1) train the long-term encoder on every user's history and embed users; (2) train the RQ-VAE on the
warm users' embeddings and read their CSIDs; (3) group = CSID prefix, tiny groups merged; (4) cold-start users
join the group nearest to their short-term categories; (5) profiles per group; (6) the group report.
Only histories are used (the split's leakage rule).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from coea.data.schema import USER
from coea.data.split import Histories
from coea.dsie.config import DsieConfig
from coea.dsie.encoder import EncoderResult, encode, train_encoder
from coea.dsie.groups import (
    assign_cold_start,
    category_distributions,
    group_key,
    merge_tiny_groups,
)
from coea.dsie.profiles import build_profiles
from coea.dsie.report import group_report
from coea.dsie.rqvae import RqVaeResult, train_rqvae
from coea.dsie.sequences import encoder_sequences
from coea.utils import seed_everything

log = logging.getLogger(__name__)


@dataclass
class DsieResult:
    """Groups and everything needed to use them downstream."""

    groups: pd.DataFrame  # user_id, csid, group_id, cold_start
    profiles: dict[str, dict[str, Any]]
    report: dict[str, Any]
    encoder: EncoderResult
    rqvae: RqVaeResult
    embeddings: pd.DataFrame  # index user_id, warm users' L2-normalised embeddings
    paths: dict[str, Path] = field(default_factory=dict)

    def user_group(self) -> dict[str, str]:
        return dict(zip(self.groups[USER], self.groups["group_id"], strict=True))


def _csid_text(codes: Sequence[int]) -> str:
    return "-".join(str(int(c)) for c in codes)


def _groups_frame(warm: list[str], csids: np.ndarray, keys: list[str], cold: Mapping[str, str],
                  csid_of_group: Mapping[str, str]) -> pd.DataFrame:
    rows = [(u, _csid_text(c), k, False) for u, c, k in zip(warm, csids, keys, strict=True)]
    rows += [(u, csid_of_group[g], g, True) for u, g in sorted(cold.items())]
    return pd.DataFrame(rows, columns=[USER, "csid", "group_id", "cold_start"])


def warn_unseeded(cfg: DsieConfig) -> None:
    """``dsie.seed`` seeds only the global generators and the report; the encoder and the RQ-VAE re-seed from their
    own ``seed``. A ``dsie.seed`` set to vary the fit while a sub-seed stays apart is a warning (session 56, a
    helper's audit: seed replicates set ``dsie.seed`` and ``encoder.seed``, the RQ-VAE stayed at seed 0)."""
    apart = [f"dsie.{name}.seed {seed}" for name, seed in (("encoder", cfg.encoder.seed), ("rqvae", cfg.rqvae.seed))
             if seed != cfg.seed]
    if cfg.seed and apart:
        log.warning("dsie.seed %d does not seed the fit's models (%s keep their own seed): set them too to vary them",
                    cfg.seed, " and ".join(apart))


def run_dsie(cfg: DsieConfig, histories: Histories, warm_users: Sequence[str], cold_users: Sequence[str],
             out_dir: Path | None = None, *, device: str = "cpu", truth: Mapping[str, int] | None = None) -> DsieResult:
    """Fit DSIE on ``histories`` with both models on ``device`` (a resolved torch device string, see
    :func:`coea.device.resolve_device`); ``warm_users`` get CSIDs, ``cold_users`` the nearest group."""
    warn_unseeded(cfg)
    seed_everything(cfg.seed)
    start = time.perf_counter()
    enc = train_encoder(cfg.encoder, histories, device=device)
    seqs = encoder_sequences(histories.interactions, enc.vocab, cfg.encoder.collapse_repeats)
    warm = [u for u in warm_users if seqs.get(u)]
    cold_all = list(cold_users) + [u for u in warm_users if not seqs.get(u)]
    emb, _ = encode(enc.model, [seqs[u] for u in warm], cfg.encoder)  # (W, D)
    log.info("dsie: encoder trained and %d users embedded in %.1fs", len(warm), time.perf_counter() - start)
    rq = train_rqvae(cfg.rqvae, emb, device=device)
    codebooks = [cb.weight.detach().cpu().numpy() for cb in rq.model.quantizer.codebooks]
    keys = merge_tiny_groups([group_key(c, cfg.group.depth) for c in rq.ids], cfg.group.min_group_size, codebooks)
    csid_of_group = {k: k for k in set(keys)}
    dist = category_distributions(histories.interactions, warm, histories.categories)  # (W, C)
    means = pd.DataFrame(dist, index=keys, columns=histories.categories).groupby(level=0).mean()
    largest = pd.Series(keys).value_counts().index[0]
    cold = assign_cold_start(cold_all, histories.short_term, means, largest)
    groups = _groups_frame(warm, rq.ids, keys, cold, csid_of_group)
    user_group = dict(zip(warm, keys, strict=True))
    profiles = build_profiles(histories.interactions, user_group, csid_of_group, cfg.profile, device=device)
    report = group_report(rq.ids, keys, emb, dist, cfg.rqvae.codebook_sizes, truth=truth, users=warm, seed=cfg.seed)
    report["cold_start_users"] = len(cold)
    report["rqvae_final_loss"] = rq.history[-1]["loss"] if rq.history else None
    result = DsieResult(groups, profiles, report, enc, rq, pd.DataFrame(emb, index=pd.Index(warm, name=USER)))
    log.info("dsie: %d groups (M_N) over %d warm users, %d cold-start, in %.1fs", len(means), len(warm), len(cold),
             time.perf_counter() - start)
    if out_dir is not None:
        from coea.dsie.artifact import save_dsie

        result.paths = save_dsie(result, cfg, out_dir)
    return result
