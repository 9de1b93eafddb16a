"""The paired bootstrap CI against hand-checkable cases and a brute-force reference."""

import numpy as np
import pytest

from coea.evaluation.bootstrap import PairedCI, bootstrap_mean_differences, paired_bootstrap_ci, seed_bootstrap_ci


def test_identical_vectors_give_zero():
    a = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    assert paired_bootstrap_ci(a, a.copy()) == PairedCI(0.0, 0.0, 0.0, 5, False)


def test_constant_shift_is_exact():
    b = np.array([0.0, 0.25, 0.5, 1.0, 0.75, 0.5])
    ci = paired_bootstrap_ci(b + 0.25, b, n_boot=500, seed=3)
    assert (ci.diff, ci.low, ci.high, ci.n_users, ci.excludes_zero) == (0.25, 0.25, 0.25, 6, True)
    ci = paired_bootstrap_ci(b - 0.1, b)  # not a dyadic shift: exact up to rounding
    assert ci.diff == pytest.approx(-0.1) and ci.low == pytest.approx(-0.1) and ci.high == pytest.approx(-0.1)
    assert ci.excludes_zero


def brute_force(a, b, n_boot, level, seed):
    """The textbook loop: per replicate the same resampled users for both vectors, difference of the means."""
    n = len(a)
    uniforms = np.random.default_rng(seed).random((n_boot, n))
    reps = []
    for r in range(n_boot):
        idx = [int(np.floor(n * x)) for x in uniforms[r]]
        reps.append(sum(a[i] for i in idx) / n - sum(b[i] for i in idx) / n)
    return sum(a) / n - sum(b) / n, *percentile_interval(reps, level)


def percentile_interval(reps, level):
    """The textbook percentile interval: linear interpolation between the sorted replicates' order statistics."""
    reps, n_boot = sorted(reps), len(reps)

    def quantile(q):
        pos = q * (n_boot - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, n_boot - 1)
        return reps[lo] + (reps[hi] - reps[lo]) * (pos - lo)

    return quantile((1 - level) / 2), quantile((1 + level) / 2)


def test_small_case_matches_brute_force():
    a = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    b = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    diff, low, high = brute_force(a, b, n_boot=300, level=0.9, seed=7)
    ci = paired_bootstrap_ci(a, b, n_boot=300, level=0.9, seed=7)
    assert ci.diff == pytest.approx(diff) == pytest.approx(1 / 7)  # d = (1, 0, 0, 1, 0, 0, -1)
    assert ci.low == pytest.approx(low, abs=1e-12) and ci.high == pytest.approx(high, abs=1e-12)
    assert ci.low <= ci.diff <= ci.high and ci.excludes_zero == (ci.low > 0 or ci.high < 0)


def test_pairing_narrows_the_interval():
    """A shared per-user effect cancels out: b = a plus one user gained, so every replicate differs by >= 0."""
    rng = np.random.default_rng(0)
    a = (rng.random(200) < 0.5).astype(float)
    b = a.copy()
    b[np.flatnonzero(a == 0)[:20]] = 1.0
    ci = paired_bootstrap_ci(b, a, n_boot=1000)
    assert ci.diff == pytest.approx(0.1) and 0.0 < ci.low < 0.1 < ci.high and ci.excludes_zero


def test_seeded_reproducible_and_block_size_free():
    rng = np.random.default_rng(1)
    a, b = rng.random(50), rng.random(50)
    assert paired_bootstrap_ci(a, b, seed=5) == paired_bootstrap_ci(a, b, seed=5)
    assert paired_bootstrap_ci(a, b, seed=5) != paired_bootstrap_ci(a, b, seed=6)
    whole = bootstrap_mean_differences(a, b, n_boot=333, seed=2)
    blocks = bootstrap_mean_differences(a, b, n_boot=333, seed=2, chunk_elements=7 * 50)  # 7 replicates a block
    np.testing.assert_array_equal(whole, blocks)


def test_large_case_is_fast_and_bounded():
    """3k users x 2000 replicates in blocks (the index matrix alone would be 48 MB)."""
    rng = np.random.default_rng(2)
    a, b = (rng.random(3000) < 0.3).astype(float), (rng.random(3000) < 0.25).astype(float)
    ci = paired_bootstrap_ci(a, b)
    assert ci.n_users == 3000 and ci.low < ci.diff < ci.high and ci.high - ci.low < 0.06


def test_bad_input():
    with pytest.raises(ValueError, match="same users"):
        paired_bootstrap_ci(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="no users"):
        paired_bootstrap_ci(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap_ci(np.zeros(3), np.zeros(3), level=1.0)
    with pytest.raises(ValueError, match="n_boot"):
        paired_bootstrap_ci(np.zeros(3), np.zeros(3), n_boot=0)


def test_one_training_per_arm_is_the_paired_user_bootstrap():
    rng = np.random.default_rng(3)
    a, b = (rng.random(400) < 0.6).astype(float), (rng.random(400) < 0.55).astype(float)
    seeds, users = seed_bootstrap_ci([a], [b], seed=4), paired_bootstrap_ci(a, b, seed=4)
    assert seeds.diff == pytest.approx(users.diff, abs=1e-12)
    assert (seeds.low, seeds.high) == pytest.approx((users.low, users.high), abs=1e-12)


def test_retraining_noise_widens_the_interval_the_user_bootstrap_misses():
    """Arm A's two trainings sit 0.05 above and below arm B on every user: the users alone see no difference at
    all (a zero-width interval), resampling the trainings gives about [-0.05, +0.05]."""
    rng = np.random.default_rng(5)
    base = (rng.random(300) < 0.5).astype(float)
    a_runs, b_runs = [base + 0.05, base - 0.05], [base]
    users = paired_bootstrap_ci(np.mean(a_runs, axis=0), base)
    assert users.low == users.high == pytest.approx(0.0, abs=1e-12)
    ci = seed_bootstrap_ci(a_runs, b_runs, n_boot=500)
    assert ci.diff == pytest.approx(0.0, abs=1e-12) and ci.low < -0.04 and ci.high > 0.04 and not ci.excludes_zero


def test_seed_bootstrap_point_estimate_and_bad_input():
    rng = np.random.default_rng(6)
    a_runs, b_runs = [rng.random(50) for _ in range(3)], [rng.random(50) for _ in range(2)]
    ci = seed_bootstrap_ci(a_runs, b_runs, n_boot=200)
    assert ci.diff == pytest.approx(np.mean(a_runs) - np.mean(b_runs)) and ci.low <= ci.diff <= ci.high
    assert ci == seed_bootstrap_ci(a_runs, b_runs, n_boot=200)  # seeded
    with pytest.raises(ValueError, match="same users"):
        seed_bootstrap_ci([np.zeros(3)], [np.zeros(4)])
    with pytest.raises(ValueError, match="at least one training"):
        seed_bootstrap_ci([], [np.zeros(4)])


def test_paired_trainings_cancel_what_a_training_shares_between_its_two_arms():
    """Two SFT trainings that came out .10 apart, each tuned by a loop that adds exactly .01 on every user: paired
    trainings see +.01 with a zero-width interval; unpaired, the .10 between the trainings swamps it."""
    rng = np.random.default_rng(7)
    base = (rng.random(300) < 0.5).astype(float)
    sft = [base + 0.05, base - 0.05]
    tuned = [v + 0.01 for v in sft]
    paired = seed_bootstrap_ci(tuned, sft, n_boot=500, paired_runs=True)
    assert paired.diff == pytest.approx(0.01) and paired.low == pytest.approx(0.01) == paired.high
    assert paired.excludes_zero
    unpaired = seed_bootstrap_ci(tuned, sft, n_boot=500)
    assert unpaired.diff == pytest.approx(0.01) and unpaired.low < -0.03 and unpaired.high > 0.05
    assert not unpaired.excludes_zero


def test_paired_trainings_resample_the_trainings_and_need_as_many_in_each_arm():
    rng = np.random.default_rng(8)
    sft = [rng.random(200) for _ in range(4)]
    effects = [0.02, -0.01, 0.00, 0.03]  # per training, on every user
    ci = seed_bootstrap_ci([v + e for v, e in zip(sft, effects, strict=True)], sft, n_boot=1000, paired_runs=True)
    assert ci.diff == pytest.approx(np.mean(effects))
    assert -0.01 - 1e-9 <= ci.low < ci.diff < ci.high <= 0.03 + 1e-9  # only the trainings vary: within their range
    one = seed_bootstrap_ci([sft[0] + 0.02], [sft[0]], paired_runs=True, seed=2)
    assert (one.diff, one.low, one.high) == pytest.approx((0.02, 0.02, 0.02))
    with pytest.raises(ValueError, match="as many trainings"):
        seed_bootstrap_ci(sft[:2], sft[:3], paired_runs=True)


def brute_force_trainings(a_runs, b_runs, n_boot, level, seed, paired):
    """The textbook loop for several trainings an arm: per replicate one draw of users (the stream of
    :func:`brute_force`), then per arm its trainings drawn with replacement (one draw for both arms when paired,
    from the second stream ``default_rng([seed, 1])``, A's draw before B's), each drawn training's mean over the
    drawn users, and the arms' means over their drawn trainings."""
    n, s_a, s_b = len(a_runs[0]), len(a_runs), len(b_runs)
    uniforms = np.random.default_rng(seed).random((n_boot, n))
    runs = np.random.default_rng([seed, 1])
    if paired:
        pick_a = pick_b = runs.integers(0, s_a, size=(n_boot, s_a))
    else:
        pick_a = runs.integers(0, s_a, size=(n_boot, s_a)) if s_a > 1 else np.zeros((n_boot, 1), dtype=int)
        pick_b = runs.integers(0, s_b, size=(n_boot, s_b)) if s_b > 1 else np.zeros((n_boot, 1), dtype=int)
    reps = []
    for r in range(n_boot):
        idx = [int(np.floor(n * x)) for x in uniforms[r]]

        def arm(vectors, picks, r=r, idx=idx):
            return sum(sum(vectors[t][i] for i in idx) / n for t in picks[r]) / len(picks[r])

        reps.append(arm(a_runs, pick_a) - arm(b_runs, pick_b))
    return percentile_interval(reps, level)


@pytest.mark.parametrize(("s_a", "s_b", "paired"), [(3, 3, True), (3, 2, False), (2, 1, False)])
def test_several_trainings_match_the_brute_force_loop(s_a: int, s_b: int, paired: bool):
    """With per-user noise in every training (not a shift shared by all users), the interval resamples the users
    inside every training's mean and the trainings around them: a version that took each training's mean over all
    users (no user resampling once an arm has two trainings) gives another, much narrower interval."""
    rng = np.random.default_rng(11)
    a_runs = [(rng.random(40) < 0.55).astype(float) for _ in range(s_a)]
    b_runs = [(rng.random(40) < 0.45).astype(float) for _ in range(s_b)]
    ci = seed_bootstrap_ci(a_runs, b_runs, n_boot=300, level=0.9, seed=5, paired_runs=paired)
    low, high = brute_force_trainings(a_runs, b_runs, n_boot=300, level=0.9, seed=5, paired=paired)
    assert ci.diff == pytest.approx(np.mean(a_runs) - np.mean(b_runs))
    assert (ci.low, ci.high) == pytest.approx((low, high), abs=1e-12)
    assert ci.high - ci.low > 0.1  # 40 users: the users' noise is in the interval
