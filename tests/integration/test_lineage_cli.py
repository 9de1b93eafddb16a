"""The run-folder commands refuse fitted artifacts that do not belong to the run's data and split
(:mod:`coea.lineage`), before any work: the leakage guard when a later command runs with other settings than
`coea group` did, and the refusal of a step that did not finish."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import coea
from tests.integration.test_llm_cli import CONFIG


@pytest.fixture(scope="module")
def grouped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`coea group` with a split of its own (n_future 3): the run folder and its config."""
    root = tmp_path_factory.mktemp("lineage")
    cfg = root / "c.yaml"
    cfg.write_text(CONFIG + "split: {n_future: 3}\n")
    run = root / "run"
    res = coea("group", "--config", str(cfg), "--out", str(run))
    assert res.returncode == 0, res.stderr
    return run, cfg


def _other(run: Path) -> Path:
    """The same settings with the default split (what a forgotten --config used to give)."""
    other = run.parent / "other.yaml"
    other.write_text(CONFIG)
    return other


def test_train_llms_with_another_split_than_group_is_refused(grouped: tuple[Path, Path]) -> None:
    """A train-llms config with another split than group's would build SFT examples from histories that hold 7 of
    the 10 events the evaluation scores as the future."""
    run, _ = grouped
    res = coea("train-llms", "--run", str(run), "--config", str(_other(run)))
    line = res.stderr.strip().splitlines()[-1]
    assert res.returncode == 2 and line.startswith(f"error: {run / 'dsie'}: it was fitted with other split "
                                                   "settings: n_future 3 (now 10)"), res.stderr
    assert not (run / "llm").exists()


def test_evaluate_from_run_scores_only_on_the_split_its_artifacts_were_fitted_on(grouped: tuple[Path, Path],
                                                                               tmp_path: Path) -> None:
    """Refused for the methods that read the run's artifacts when --config names another split (or a run
    without config.json, e.g. an interrupted evaluation, falls back to the defaults); scored with the run's own
    config.json, which `coea group` now writes; baselines, fitted on the histories of the split they are scored
    on, need no record."""
    run, cfg = grouped
    other = _other(run)
    res = coea("evaluate", "--from-run", str(run), "--config", str(other), "--methods", "pop,sasrec",
               "--out", str(tmp_path / "a"))
    assert res.returncode == 2 and "other split settings: n_future 3 (now 10)" in res.stderr, res.stderr
    assert not (tmp_path / "a").exists()
    res = coea("evaluate", "--from-run", str(run), "--methods", "pop,sasrec", "--out", str(tmp_path / "b"))
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "b" / "config.json").read_text())["split"]["n_future"] == 3
    res = coea("evaluate", "--from-run", str(run), "--config", str(other), "--methods", "pop,markov",
               "--out", str(tmp_path / "c"))
    assert res.returncode == 0, res.stderr


def test_evaluate_from_run_with_data_scores_the_run_only_on_the_log_it_was_fitted_on(grouped: tuple[Path, Path],
                                                                                     tmp_path: Path) -> None:
    """With --data, `evaluate --from-run` skipped the leakage guard: the run's groups and models were scored on
    another log's futures (exit 0). Refused now for the methods that read the run's artifacts, naming --data;
    baselines, fitted on the scored log's own histories, still run."""
    import pandas as pd

    run, _ = grouped
    log = pd.read_parquet(run / "data" / "interactions.parquet")
    other = tmp_path / "other.csv"
    log[log["user_id"] != log["user_id"].iloc[0]].to_csv(other, index=False)  # one user fewer: another log
    res = coea("evaluate", "--from-run", str(run), "--data", f"csv:{other}", "--methods", "pop,group_pop_novel",
               "--k", "3", "--out", str(tmp_path / "a"))
    line = res.stderr.strip().splitlines()[-1]
    assert res.returncode == 2 and line.startswith(f"error: {run / 'dsie'}, option --data: it was fitted on "
                                                   "another log than --data's"), res.stderr
    assert not (tmp_path / "a").exists()
    res = coea("evaluate", "--from-run", str(run), "--data", f"csv:{other}", "--methods", "pop,markov", "--k", "3",
               "--out", str(tmp_path / "b"))
    assert res.returncode == 0, res.stderr


def test_an_interrupted_group_is_refused_by_the_next_step(grouped: tuple[Path, Path], tmp_path: Path) -> None:
    """`coea group` clears dsie/lineage.json when it starts and writes it last: a run killed in between leaves
    a dsie/ the next step will not build on."""
    import shutil

    run, cfg = grouped
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "dsie" / "lineage.json").unlink()
    res = coea("train-llms", "--run", str(copy), "--config", str(cfg))
    assert res.returncode == 2 and "dsie: no lineage.json: the step that writes it did not finish" in res.stderr


def test_train_llms_without_config_reads_the_run_config(grouped: tuple[Path, Path], tmp_path: Path) -> None:
    """`coea group` writes RUN/config.json; train-llms (like pco and serve) reads it when --config is left out.
    An ablation reuses such a pair as a variant's only when it was trained with the variant's LLM settings on this
    run's data, split and groups; a setting that changes how the SFT runs, not the model (``checkpoint_minutes``,
    absent from pairs trained before session 49), does not count."""
    import shutil
    from dataclasses import replace

    from coea import lineage
    from coea.ablate import trained_as
    from coea.cli.common import load_config
    from coea.layout import RunLayout

    run, cfg = grouped
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    res = coea("train-llms", "--run", str(copy))
    assert res.returncode == 0, res.stderr
    record = lineage.read(copy / "llm" / "novelty")
    assert record["histories"]["split"]["n_future"] == 3
    assert record["made_from"] == {"dsie": lineage.read(copy / "dsie")["id"]}
    layout, vcfg = RunLayout(copy), load_config(cfg)
    assert trained_as(layout.llm, vcfg, layout)
    assert trained_as(layout.llm, replace(vcfg, llm=replace(vcfg.llm, encoder_weight=0.0)), layout)  # ranking only
    wider = replace(vcfg, llm=replace(vcfg.llm, model=replace(vcfg.llm.model, hidden_size=48)))
    assert not trained_as(layout.llm, wider, layout)  # an ablation re-run with another config
    # how often the SFT saved does not change the model: a pair trained before the setting existed still counts
    for name in ("novelty", "relevance"):
        path = copy / "llm" / f"sft_metrics_{name}.json"
        metrics = json.loads(path.read_text())
        for trainer in ("novelty", "relevance"):
            del metrics["config"][trainer]["checkpoint_minutes"]
        path.write_text(json.dumps(metrics))
    assert trained_as(layout.llm, vcfg, layout)
    (copy / "llm" / "relevance" / "lineage.json").unlink()  # killed while re-training the R-LLM
    assert not trained_as(layout.llm, vcfg, layout)


def test_train_llms_run_again_trains_only_what_is_missing(grouped: tuple[Path, Path], tmp_path: Path) -> None:
    """A re-run of `coea train-llms` after the R-LLM failed (its lineage record never written) trains the R-LLM
    alone: the N-LLM, finished with the same settings on the same data, split and groups, is kept (on MovieLens
    that saves its ~30-minute SFT). A change of an R-LLM setting keeps the N-LLM too; ``--retrain`` trains it again."""
    import shutil

    from coea import lineage

    run, cfg = grouped
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert coea("train-llms", "--run", str(copy)).returncode == 0
    novelty = copy / "llm" / "novelty" / "bundle.json"
    first = novelty.stat().st_mtime_ns
    (copy / "llm" / "relevance" / "lineage.json").unlink()  # the R-LLM's SFT failed after the N-LLM was saved
    res = coea("train-llms", "--run", str(copy))
    assert res.returncode == 0, res.stderr
    assert "novelty: kept" in res.stderr and "relevance: kept" not in res.stderr
    assert novelty.stat().st_mtime_ns == first and lineage.read(copy / "llm" / "relevance") is not None
    assert '"relevance"' in res.stdout and '"novelty"' not in res.stdout  # only the R-LLM's SFT figures
    res = coea("train-llms", "--run", str(copy))  # nothing left to train
    assert res.returncode == 0 and "novelty: kept" in res.stderr and "relevance: kept" in res.stderr
    other = tmp_path / "other.yaml"
    other.write_text(cfg.read_text().replace("relevance: {epochs: 1,", "relevance: {epochs: 2,"))
    res = coea("train-llms", "--run", str(copy), "--config", str(other))
    assert res.returncode == 0 and "novelty: kept" in res.stderr and "relevance: kept" not in res.stderr
    res = coea("train-llms", "--run", str(copy), "--config", str(other), "--only", "novelty", "--retrain")
    assert res.returncode == 0 and "kept" not in res.stderr
    assert novelty.stat().st_mtime_ns != first


def test_a_damaged_model_is_trained_again_not_kept(grouped: tuple[Path, Path], tmp_path: Path) -> None:
    """Audit (session 53): `serve` on a truncated model.safetensors said to re-run `coea train-llms`, which kept the
    damaged model ("finished with these settings") and exited 0, and `serve` failed again. Now the re-run trains it
    again and the model loads."""
    import shutil

    from coea.llm.models import load_bundle

    run, _ = grouped
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert coea("train-llms", "--run", str(copy)).returncode == 0
    weights = copy / "llm" / "novelty" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    res = coea("train-llms", "--run", str(copy))
    assert res.returncode == 0, res.stderr
    assert "novelty: kept" not in res.stderr and "relevance: kept" in res.stderr
    assert "cannot be read (SafetensorError" in res.stderr and "it is trained again" in res.stderr
    load_bundle(copy / "llm" / "novelty")
