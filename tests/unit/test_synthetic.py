"""The synthetic generator: deterministic, and its planted structure is really there."""

import numpy as np
import pandas as pd

from coea.data.stats import top_category_share
from coea.data.synthetic import generate_synthetic


def _user_cat_dist(df: pd.DataFrame) -> pd.DataFrame:
    counts = df.groupby(["user_id", "category"]).size().unstack(fill_value=0)
    return counts.div(counts.sum(axis=1), axis=0)


def test_deterministic(tiny_synth):
    a, b = generate_synthetic(tiny_synth), generate_synthetic(tiny_synth)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.affinity, b.affinity)


def test_ground_truth_shapes(tiny_synth, tmp_path):
    d = generate_synthetic(tiny_synth)
    assert d.affinity.shape == (tiny_synth.n_users, tiny_synth.n_categories)
    assert np.allclose(d.affinity.sum(axis=1), 1.0)
    assert set(d.groups["group"]) <= set(range(tiny_synth.n_groups))
    paths = d.write_ground_truth(tmp_path)
    assert all(p.is_file() for p in paths)
    assert len(pd.read_parquet(paths[0])) == tiny_synth.n_users


def test_planted_groups_share_tastes(tiny_synth):
    d = generate_synthetic(tiny_synth)
    dist = _user_cat_dist(d.interactions)
    x = dist.to_numpy() / np.linalg.norm(dist.to_numpy(), axis=1, keepdims=True)
    sim = x @ x.T
    g = d.groups.set_index("user_id").loc[dist.index, "group"].to_numpy()
    same = g[:, None] == g[None, :]
    np.fill_diagonal(same, False)
    other = g[:, None] != g[None, :]
    assert sim[same].mean() > 1.5 * sim[other].mean()


def test_long_tail_and_adoption(tiny_synth):
    d = generate_synthetic(tiny_synth)
    df = d.interactions
    assert top_category_share(df, 0.2) > 0.4  # a head of popular categories
    # users keep adopting categories new to them: the second half of a user's events still has firsts
    first_seen = ~df.duplicated(["user_id", "category"])
    pos = df.groupby("user_id").cumcount() / df.groupby("user_id")["item_id"].transform("size")
    assert first_seen[pos >= 0.5].sum() > 0.2 * tiny_synth.n_users
    # and adoption follows affinity: adopted-later categories have above-uniform affinity
    late = df[first_seen & (pos >= 0.3)]
    aff = np.array([d.affinity.loc[u, c] for u, c in zip(late.user_id, late.category, strict=True)])
    assert aff.mean() > 1.0 / tiny_synth.n_categories


def test_short_term_focus_makes_consecutive_repeats(tiny_synth):
    df = generate_synthetic(tiny_synth).interactions
    same_next = (df["category"].to_numpy()[1:] == df["category"].to_numpy()[:-1]).mean()
    dist = df["category"].value_counts(normalize=True).to_numpy()
    assert same_next > 2 * (dist**2).sum()  # far above what independent draws would give


def test_a_prepared_dir_rewritten_with_a_real_log_drops_the_planted_groups(tiny_synth, tmp_path):
    """`coea group` re-run into a folder that held synthetic data kept data/ground_truth/, and the group report
    scored the new log's groups against the old planted ones (ari_vs_planted)."""
    from coea.data.loaders import LoadedData
    from coea.data.prepared import GROUND_TRUTH, read_prepared, write_prepared

    d = generate_synthetic(tiny_synth)
    write_prepared(LoadedData(d.interactions, "synthetic", d), tmp_path, {})
    assert read_prepared(tmp_path).truth is not None
    write_prepared(LoadedData(d.interactions, "csv:log.csv", None), tmp_path, {})
    assert read_prepared(tmp_path).truth is None and not (tmp_path / GROUND_TRUTH).exists()
