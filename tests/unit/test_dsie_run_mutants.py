"""What :func:`coea.dsie.run.run_dsie` itself decides, on one tiny fit (a second or two): where users with nothing to
go on are placed and the seed warning (audit, session 57: mutants of these lines survived every test); the fit
written and read back (:mod:`coea.dsie.artifact`) is the same."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from coea.data.split import Histories
from coea.dsie.artifact import load_dsie, read_embeddings, save_dsie
from coea.dsie.config import DsieConfig, EncoderConfig, GroupConfig, RqVaeConfig
from coea.dsie.run import DsieResult, run_dsie
from coea.errors import CoeaInputError
from tests.helpers import WarningCollector

# dsie.seed 4 with the encoder's seed and the RQ-VAE's left at 0: the run warns; no group merging, so the groups
# keep the sizes the codes give them
CFG = DsieConfig(encoder=EncoderConfig(dim=8, n_layers=1, n_heads=2, max_len=8, epochs=1, item_input=False,
                                       target="next", seed=4),
                 rqvae=RqVaeConfig(hidden_dims=[8], latent_dim=4, codebook_sizes=[4, 2], epochs=3, kmeans_iters=5),
                 group=GroupConfig(depth=1, min_group_size=1), seed=4)
BLANK = ("cold_blank", "cold_unknown", "warm_without_events")  # nothing the cold-start rule can read


def _histories() -> Histories:
    """30 users of 8 events over 6 categories; short-term sets: the last 3 history categories."""
    rng = np.random.default_rng(4)
    rows = [(f"u{u:02d}", f"i{e}", f"c{rng.integers(6)}", 1_700_000_000 + 60 * e) for u in range(30) for e in range(8)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "category", "timestamp"])
    short = {u: list(dict.fromkeys(g.tolist()[-3:])) for u, g in frame.groupby("user_id")["category"]}
    # a cold user with no short-term category, one with only categories the fit never saw, one with a known one
    short.update(cold_blank=[], cold_unknown=["never_seen"], cold_c0=["c0"])
    return Histories(frame, short, sorted(frame["category"].unique()))


@pytest.fixture(scope="module")
def fit() -> tuple[DsieResult, list[str]]:
    """The fit (its warm users listed with one user that has no history event) and the warnings it logged."""
    h = _histories()
    records, logger = WarningCollector(), logging.getLogger("coea.dsie.run")
    logger.addHandler(records)
    try:
        warm = sorted(set(h.interactions["user_id"])) + ["warm_without_events"]
        result = run_dsie(CFG, h, warm, ["cold_blank", "cold_unknown", "cold_c0"])
    finally:
        logger.removeHandler(records)
    return result, records.messages


def test_users_with_nothing_to_go_on_join_the_group_with_the_most_warm_users(fit):
    """A cold user without short-term categories, one whose categories the fit never saw, and a warm-listed user
    without any history event (cold-start too) all get the largest group, not the smallest nor the first."""
    groups = fit[0].groups
    sizes = groups[~groups["cold_start"]]["group_id"].value_counts()
    assert sizes.nunique() > 1 and sizes.idxmax() != sorted(sizes.index)[0]  # largest, smallest and first differ
    placed = groups.set_index("user_id").loc[list(BLANK)]
    assert placed["cold_start"].all() and (placed["group_id"] == sizes.idxmax()).all()
    assert (placed["csid"] == sizes.idxmax()).all()


def test_a_dsie_seed_apart_from_the_models_seeds_is_a_warning_of_the_fit(fit):
    """run_dsie warns itself (the rule is tested on :func:`~coea.dsie.run.warn_unseeded` alone in
    test_dsie_run.py): dsie.seed 4, the RQ-VAE's seed 0."""
    assert [m for m in fit[1] if m.startswith("dsie.seed 4 does not seed the fit's models (dsie.rqvae.seed 0 ")]


def test_a_written_fit_reads_back_as_the_same_frames(fit, tmp_path):
    """Audit, session 57: the embeddings came back with the column names "0".."D-1" (parquet stores names as
    strings) for the in-memory 0..D-1, so ``emb[0]`` was a KeyError on a reloaded fit alone."""
    result = fit[0]
    save_dsie(result, CFG, tmp_path)
    back = load_dsie(tmp_path)
    pd.testing.assert_frame_equal(back.embeddings, result.embeddings, check_exact=True, check_column_type=True)
    assert back.embeddings[0].equals(result.embeddings[0])
    pd.testing.assert_frame_equal(back.groups, result.groups, check_exact=True)
    assert back.profiles == result.profiles


def test_embedding_columns_that_are_not_the_dimensions_in_order_are_refused(tmp_path):
    path = tmp_path / "user_embeddings.parquet"
    pd.DataFrame({"user_id": ["u1"], "0": [0.5], "2": [0.5]}).to_parquet(path, index=False)
    with pytest.raises(CoeaInputError, match=r"user_embeddings.parquet: columns 0, 2 are not the embedding "
                                             r"dimensions 0..1 in order.*re-run `coea group`"):
        read_embeddings(path)
