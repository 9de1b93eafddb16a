"""The seed-aware comparison script (benchmarks/analysis_seeds.py): its arm syntax, that its table carries the
intervals of ``coea.evaluation.bootstrap`` it names (their values: tests/unit/test_bootstrap.py), and the lineage
check that keeps runs of another log or split out."""

import argparse
from pathlib import Path

import pytest

from benchmarks.analysis_seeds import parse_arm


def test_arm_names_a_method_its_trainings_and_optionally_its_own_config():
    assert parse_arm("full=nllm_sft+x@/r/a,/r/b") == ("full", "nllm_sft+x", [Path("/r/a"), Path("/r/b")], None)
    assert parse_arm("no CSID=coea+x@/r/c@/cfg/nc.yaml") == ("no CSID", "coea+x", [Path("/r/c")],
                                                              Path("/cfg/nc.yaml"))
    for bad in ("full", "full=nllm_sft+x", "=m@/r", "full=@/r", "full=m@"):
        with pytest.raises(argparse.ArgumentTypeError, match="NAME=METHOD@RUN"):
            parse_arm(bad)


def test_paired_trainings_need_as_many_runs_in_every_arm(capsys):
    """Checked before any run is read: a paired arm with fewer trainings than the reference exits 2, naming the
    count."""
    from benchmarks.analysis_seeds import main

    with pytest.raises(SystemExit) as exc:
        main(["--arm", "sft=nllm_sft+x@/r/a,/r/b", "--arm", "coea=coea+x@/r/a", "--paired-trainings"])
    assert exc.value.code == 2
    assert "as many runs as the reference arm (2)" in capsys.readouterr().err


def test_also_against_names_an_arm_and_prints_the_table_again_with_it_first(monkeypatch, capsys):
    """`--also-against NAME`: a second table from the same per-user vectors (each run scored once) with NAME as the
    reference; an unknown NAME exits 2 before any run is read."""
    import numpy as np

    import benchmarks.analysis_seeds as mod

    with pytest.raises(SystemExit) as exc:
        mod.main(["--arm", "a=pop@/r/a", "--arm", "b=pop@/r/b", "--also-against", "c"])
    assert exc.value.code == 2 and "no such arm (the arms: a, b)" in capsys.readouterr().err

    scored = []
    rng = np.random.default_rng(0)
    monkeypatch.setattr("coea.cli.common.check_lineage", lambda *a, **kw: None)
    monkeypatch.setattr("coea.data.prepared.read_prepared", lambda path: type("P", (), {"interactions": None}))
    monkeypatch.setattr("coea.data.split.chronological_split", lambda frame, cfg: None)
    monkeypatch.setattr(mod, "per_user", lambda run, *a: scored.append(run) or (rng.random(50) < .5).astype(float))
    assert mod.main(["--arm", "a=pop@/r/a", "--arm", "b=pop@/r/b", "--arm", "c=pop@/r/c", "--also-against", "c",
                     "--boot", "50"]) == 0
    first, second = capsys.readouterr().out.split("evaluated users")[:2]
    assert [Path(r).name for r in scored] == ["a", "b", "c"]  # once each
    assert "- a: users only" in first and "- c: users only" in second
    lines = [line for line in second.splitlines() if line.startswith("|")][2:]
    assert [line.split(" | ")[0].strip("| ") for line in lines] == ["c", "a", "b"]
    assert lines[0].split(" | ")[4] == "0"


def test_the_paired_column_is_the_paired_trainings_bootstrap():
    """The table's last interval is :func:`seed_bootstrap_ci` with ``paired_runs`` under ``--paired-trainings``
    (and without it otherwise), on the per-user vectors of every training; the users-only one is the paired user
    bootstrap of the training means. Vectors with per-user noise, so the two resamplings give other intervals."""
    import numpy as np

    from benchmarks.analysis_seeds import table
    from coea.evaluation.bootstrap import paired_bootstrap_ci, seed_bootstrap_ci

    rng = np.random.default_rng(3)
    sft = [(rng.random(120) < 0.5).astype(float) for _ in range(3)]
    tuned = [np.where(rng.random(120) < 0.1, 1.0, v) for v in sft]
    vectors, arms = {"sft": sft, "coea": tuned}, [("sft", "nllm_sft+x"), ("coea", "coea+x")]

    def cell(ci):
        return f"{ci.diff:+.4f} [{ci.low:+.4f}, {ci.high:+.4f}]"

    users = paired_bootstrap_ci(np.mean(tuned, axis=0), np.mean(sft, axis=0), n_boot=300)
    for paired in (True, False):
        both = seed_bootstrap_ci(tuned, sft, n_boot=300, paired_runs=paired)
        row = table(arms, vectors, "S-H@10", paired, 300).splitlines()[3].strip("| ").split(" | ")
        assert row[4:6] == [cell(users), cell(both)], (paired, row)
        assert (len(row) == 7) == paired  # paired: each training's own difference too
    assert cell(seed_bootstrap_ci(tuned, sft, n_boot=300, paired_runs=True)) != cell(
        seed_bootstrap_ci(tuned, sft, n_boot=300))  # the flag changes the interval on these vectors


def test_a_run_fitted_on_another_log_is_refused_before_any_scoring(tmp_path, capsys):
    """Every run's artifacts that the method reads must come from the reference's first run's log and the config's
    split (``coea evaluate --from-run``'s lineage check): a run whose DSIE dir learned from another log would be
    scored on events it may have learned from. One line, exit 2, naming that run's artifact; nothing is scored
    (the stand-in runs hold no models: scoring would fail differently)."""
    from benchmarks.analysis_seeds import main
    from coea import lineage
    from coea.config import SplitConfig, SyntheticConfig
    from coea.data.loaders import LoadedData
    from coea.data.prepared import write_prepared
    from coea.data.synthetic import generate_synthetic

    log = generate_synthetic(SyntheticConfig(n_users=30, n_categories=8, mean_interactions=20, min_interactions=15))
    for name, interactions in (("a", log.interactions), ("b", log.interactions.iloc[:-5])):
        run = tmp_path / name
        write_prepared(LoadedData(interactions, "test", None), run / "data", {})
        lineage.write(run / "dsie", lineage.histories(run / "data", SplitConfig()))
    code = main(["--arm", f"enc=sasrec+x@{tmp_path / 'a'},{tmp_path / 'b'}"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(tmp_path / "b" / "dsie") in err and "another log" in err



def test_per_user_scores_each_evaluated_user_as_computed_by_hand(tmp_path):
    """The per-user vector every arm is read from: pop_novel's S-H@3 for each warm user, in the split's order,
    recomputed here from the log by hand (a helper's audit, session 56: scoring the cold users' lists, all zeros,
    passed every test of this file)."""
    from collections import Counter

    from benchmarks.analysis_seeds import per_user
    from coea.config import RunConfig, SyntheticConfig
    from coea.data.loaders import LoadedData
    from coea.data.prepared import write_prepared
    from coea.data.split import chronological_split
    from coea.data.synthetic import generate_synthetic

    log = generate_synthetic(SyntheticConfig(n_users=40, n_categories=12, mean_interactions=20, min_interactions=15))
    write_prepared(LoadedData(log.interactions, "test", None), tmp_path / "run" / "data", {})
    cfg = RunConfig()
    split = chronological_split(log.interactions, cfg.split)
    got = per_user(tmp_path / "run", "pop_novel", cfg, split, "S-H@3")
    hist = split.histories.interactions
    counts = Counter(hist["category"])
    order = sorted(counts, key=lambda c: (-counts[c], c))
    want = []
    for user in split.warm_users:
        seen = set(hist.loc[hist["user_id"] == user, "category"])
        top = [c for c in order if c not in seen][:3]
        want.append(float(bool(set(top) & (split.future_categories[user] - seen))))
    assert len(got) == len(split.warm_users) > 20 and list(got) == want and 0 < sum(want) < len(want)
