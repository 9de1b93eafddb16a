"""coea ablate / pco / evaluate --from-run through the CLI on tiny synthetic data; a killed `coea pco` resumes."""

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from coea import cli
from coea.ablate import ENCODER_ROW, NO_COOC_ROW
from tests.helpers import REPO, coea

CONFIG = """synthetic: {n_users: 40, n_categories: 14, n_groups: 3, mean_interactions: 25, min_interactions: 20}
dsie:
  encoder: {dim: 16, epochs: 3}
  rqvae: {epochs: 20}
  group: {min_group_size: 5}
llm:
  model: {hidden_size: 32, intermediate_size: 64}
  novelty: {epochs: 1, batch_size: 16, lr: 0.005, max_examples: 100}
  relevance: {epochs: 1, batch_size: 16, lr: 0.005, max_examples: 100}
  best_of_n: 4
pco:
  rounds: 2
  users_per_round: 10
  candidates: 4
  margin: 0.0
  relevance_refresh: {max_examples: 40}
  dpo: {epochs: 1}
"""  # tiny: the test checks which variants exist, share round 0 or train their own SFT pair, not their quality


def test_ablate_then_evaluate_from_run(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "ablate"
    res = coea("ablate", "--config", str(cfg), "--out", str(out), "--prompt-variants")
    assert res.returncode == 0, res.stderr
    data = json.loads((out / "ablate.json").read_text())
    names = set(data["variants"])
    assert {"coea", "coea w/o KL", "coea w/o CSID", "coea alpha=0.1", "coea alpha=0.6", "coea w/o full CSID",
            "coea + long-term summary", "coea w/o event sequence", "coea w/o item sequence",
            "coea w/o feedback"} == names  # reads feedback; the default prompt shows the last events' sequences
    tokens = (out / "llm" / "novelty" / "tokenizer.json").read_text()
    assert "user:" in tokens and "long:" not in tokens and "seq:" in tokens and "items:" in tokens  # the defaults
    for name, slug, word, shown in (("coea w/o full CSID", "coea_w_o_full_csid", "user:", False),
                                    ("coea + long-term summary", "coea_long_term_summary", "long:", True),
                                    ("coea w/o event sequence", "coea_w_o_event_sequence", "seq:", False),
                                    ("coea w/o item sequence", "coea_w_o_item_sequence", "items:", False)):
        tokens = (out / "variants" / f"{slug}_llm" / "novelty" / "tokenizer.json").read_text()
        assert (word in tokens) is shown  # each trains its own SFT pair on its own prompts
        assert data["variants"][name][0] != data["variants"]["coea"][0]
    for rows in data["variants"].values():
        assert [r["round"] for r in rows] == [0, 1, 2] and all("NCP" in r and "C-H" in r for r in rows)
    # w/o CSID trains its own SFT models: its round 0 differs from the others' shared round 0
    assert data["variants"]["coea w/o KL"][0] == data["variants"]["coea"][0]
    assert data["variants"]["coea w/o CSID"][0] != data["variants"]["coea"][0]
    assert 0.0 <= data["simulated_acceptance"]["coea"] <= 1.0 and "nllm_sft" in data["simulated_acceptance"]
    assert {"pop_novel", "markov+x", "nllm_sft", "dual_best_of_n", "nllm_seq", "nllm_seq+x"} <= set(data["baselines"])
    paired = data["paired_ci"]  # default reference: the novelty-excluding baseline with the best S-H@K
    novel = {m: v for m, v in data["baselines"].items() if m.endswith(("+x", "_novel")) and m != "nllm_seq+x"}
    assert paired["reference"] == max(novel, key=lambda m: novel[m][f"S-H@{data['k']}"])  # nllm_seq+x: never
    assert paired["metrics"] == ["S-H", "C-H", "x_S-H"] and paired["k"] == data["k"]
    assert set(paired["methods"]) == names | {"coea w/o R-LLM (= nllm_sft, round 0)", ENCODER_ROW} | (
        set(data["baselines"]) - {paired["reference"]})
    k, ref = data["k"], data["baselines"][paired["reference"]]
    for name in names:  # the final round's figures of the split's evaluated users minus the reference's
        last, ci = data["variants"][name][-1], paired["methods"][name]
        assert abs(ci[f"S-H@{k}"]["diff"] - (last["S-H"] - ref[f"S-H@{k}"])) < 1e-9
        assert abs(ci[f"x_S-H@{k}"]["diff"] - (last["x_S-H"] - ref[f"S-H@{k}"])) < 1e-9
        assert ci[f"C-H@{k}"]["low"] <= ci[f"C-H@{k}"]["diff"] <= ci[f"C-H@{k}"]["high"]
        final = data["finals"][name]  # the table's row: the final models over every user (= the last round here)
        assert abs(final[f"C-H@{k}"] - last["C-H"]) < 1e-9 and abs(final["x_S-H"] - last["x_S-H"]) < 1e-9
        assert abs(final[f"C-N@{k}"] - last["C-N"]) < 1e-9  # C-N moves every round where NCP and C-H may not
    enc, ci = data["rankings"][ENCODER_ROW], paired["methods"][ENCODER_ROW]  # coea's final N-LLM x the encoder
    assert abs(ci[f"x_S-H@{k}"]["diff"] - (enc["x_S-H"] - ref[f"S-H@{k}"])) < 1e-9
    assert abs(ci[f"S-H@{k}"]["diff"] - (enc[f"S-H@{k}"] - ref[f"S-H@{k}"])) < 1e-9
    md = (out / "ablate.md").read_text()
    assert "coea w/o R-LLM" in md and "| coea w/o CSID |" in md and f"| {ENCODER_ROW} |" in md
    assert f"## Paired difference vs {paired['reference']} (95 % bootstrap CI over" in md
    assert (out / "ablate.png").stat().st_size > 1000

    ev = tmp_path / "eval"
    res = coea("evaluate", "--from-run", str(out), "--methods", "coea,coea+x,nllm_sft,coea_dual+x", "--k", "10",
               "--out", str(ev))  # the run's own config.json is used
    assert res.returncode == 0, res.stderr
    metrics = json.loads((ev / "metrics.json").read_text())["methods"]
    last = data["variants"]["coea"][-1]
    assert abs(metrics["coea"]["NCP@10"] - last["NCP"]) < 1e-9  # the very models of the ablation's last round
    assert abs(metrics["coea"]["C-H@10"] - last["C-H"]) < 1e-9
    assert abs(metrics["coea"]["C-N@10"] - last["C-N"]) < 1e-9  # (the rounds' C-N differ: round 1's would fail)
    assert len({row["C-N"] for row in data["variants"]["coea"]}) == 3
    # coea_dual+x returns K unseen categories whenever K exist, as coea+x does (NCP@K = |R - H| / K is then equal)
    assert metrics["coea_dual+x"]["NCP@10"] == metrics["coea+x"]["NCP@10"]
    assert 0.0 <= metrics["coea_dual+x"]["S-H@10"] <= 1.0

    # --from-run: the run's data, DSIE and SFT pair are reused and nothing is written there; a variant's own SFT
    # pair already in OUT/variants/ is reused too; --variants runs coea and the named ones only. With encoder
    # weight 0 the encoder row ranks as coea and nllm_seq as nllm_sft: the rows re-rank the very final models
    before = sorted((str(f), f.stat().st_mtime_ns) for f in out.rglob("*") if f.is_file())
    again = tmp_path / "again"
    shutil.copytree(out / "variants" / "no_csid_llm", again / "variants" / "no_csid_llm")
    run_cfg = json.loads((out / "config.json").read_text())
    run_cfg["llm"]["encoder_weight"] = 0.0
    (tmp_path / "w0.json").write_text(json.dumps(run_cfg))
    res = coea("ablate", "--from-run", str(out), "--out", str(again), "--rounds", "1", "--variants", "coea w/o CSID",
               "--config", str(tmp_path / "w0.json"))
    assert res.returncode == 0, res.stderr
    assert sorted((str(f), f.stat().st_mtime_ns) for f in out.rglob("*") if f.is_file()) == before
    redo = json.loads((again / "ablate.json").read_text())
    assert list(redo["variants"]) == ["coea", "coea w/o CSID"]
    for name in ("coea", "coea w/o CSID"):  # the same SFT models: the same round 0 as the first ablation's
        assert redo["variants"][name][0] == data["variants"][name][0]
        assert [r["round"] for r in redo["variants"][name]] == [0, 1]
    assert (again / "variants" / "coea" / "pco_metrics.json").is_file() and not (again / "llm").exists()
    enc, last = redo["rankings"][ENCODER_ROW], redo["variants"]["coea"][-1]
    for key in ("C-H", "NCP", "S-H", "x_S-H"):
        assert abs(enc[key if key == "x_S-H" else f"{key}@{k}"] - last[key]) < 1e-9, key
    base = {m: v for m, v in redo["baselines"].items() if "nllm_seq" not in m}
    assert base == {m: v for m, v in data["baselines"].items() if "nllm_seq" not in m}
    assert redo["baselines"]["nllm_seq+x"] == redo["baselines"]["nllm_sft+x"]
    # with the co-occurrence expert (llm.cooc_weight, as the short preset sets it) a second row ranks the same final
    # N-LLM without it: with encoder weight 0 that row ranks as coea, and the expert's row differs from it
    run_cfg["llm"]["cooc_weight"] = 1.0
    run_cfg["llm"]["novelty_bonus"] = 3.0  # and coea's plain-view operating point (its +x list ranks the same)
    (tmp_path / "w0c.json").write_text(json.dumps(run_cfg))
    res = coea("ablate", "--from-run", str(out), "--out", str(tmp_path / "cooc"), "--rounds", "1", "--variants",
               "coea w/o KL", "--config", str(tmp_path / "w0c.json"))
    assert res.returncode == 0, res.stderr
    co = json.loads((tmp_path / "cooc" / "ablate.json").read_text())
    off, on, last = co["rankings"][NO_COOC_ROW], co["rankings"][ENCODER_ROW], co["variants"]["coea"][-1]
    for key in ("C-H", "NCP", "S-H", "x_S-H"):
        assert abs(off[key if key == "x_S-H" else f"{key}@{k}"] - last[key]) < 1e-9, key
    assert on != off and {ENCODER_ROW, NO_COOC_ROW} <= set(co["paired_ci"]["methods"])
    md = (tmp_path / "cooc" / "ablate.md").read_text()
    assert f"| {NO_COOC_ROW} |" in md and "carry llm.novelty_bonus 3 " in md
    final = co["finals"]["coea"]  # the final lists carry the bonus, the rounds' metrics do not
    assert abs(final["x_S-H"] - last["x_S-H"]) < 1e-9 and final[f"NCP@{k}"] > last["NCP"]
    assert NO_COOC_ROW not in data["rankings"]  # without the expert there is no such row
    # coea evaluate with that config: the bonus moves coea's plain list only, and the outputs say it is there
    res = coea("evaluate", "--from-run", str(out), "--config", str(tmp_path / "w0c.json"), "--methods",
               "coea,coea+x,nllm_sft", "--k", "10", "--out", str(tmp_path / "ev3"))
    assert res.returncode == 0, res.stderr
    bonused = json.loads((tmp_path / "ev3" / "metrics.json").read_text())
    assert bonused["protocol"]["coea_novelty_bonus"] == 3.0 and "llm.novelty_bonus 3 " in (
        tmp_path / "ev3" / "metrics.md").read_text()
    assert bonused["methods"]["coea+x"] == metrics["coea+x"] and bonused["methods"]["nllm_sft"] == metrics["nllm_sft"]
    assert bonused["methods"]["coea"]["NCP@10"] > metrics["coea"]["NCP@10"]
    assert "coea_novelty_bonus" not in json.loads((ev / "metrics.json").read_text())["protocol"]
    run_cfg["llm"]["cooc_weight"] = 0.0
    # a --config whose LLM training settings differ from the run's pair: its rows would mix two SFT recipes (the
    # prompt variants train with the config's), so it is refused before anything runs
    run_cfg["llm"]["novelty"]["lr"] = run_cfg["llm"]["novelty"]["lr"] * 10
    (tmp_path / "lr.json").write_text(json.dumps(run_cfg))
    res = coea("ablate", "--from-run", str(out), "--out", str(tmp_path / "mixed"), "--rounds", "1", "--variants",
               "coea w/o CSID", "--config", str(tmp_path / "lr.json"))
    assert res.returncode == 2 and "the run's SFT pair was trained with other LLM settings" in res.stderr
    assert not (tmp_path / "mixed").exists()
    # the run's own PCO rounds, finished with the same PCO config from its SFT pair as it is now, are the coea row:
    # coea does not train again (above, --rounds 1 differed from the run's 2 rounds, so there it did)
    res = coea("ablate", "--from-run", str(out), "--out", str(tmp_path / "reuse"), "--variants", "coea w/o KL")
    assert res.returncode == 0, res.stderr
    assert "'coea' = the run's own PCO rounds" in res.stderr and not (tmp_path / "reuse" / "variants" / "coea").exists()
    reuse = json.loads((tmp_path / "reuse" / "ablate.json").read_text())
    assert reuse["variants"]["coea"] == data["variants"]["coea"] and reuse["finals"]["coea"] == data["finals"]["coea"]
    def untimed(rows):
        return [{key: v for key, v in row.items() if not key.endswith("_s")} for row in rows]

    assert untimed(reuse["variants"]["coea w/o KL"]) == untimed(data["variants"]["coea w/o KL"])  # trained again
    assert reuse["rankings"][ENCODER_ROW] == data["rankings"][ENCODER_ROW]
    assert sorted((str(f), f.stat().st_mtime_ns) for f in out.rglob("*") if f.is_file()) == before


def test_ablate_from_run_with_data_is_refused(tmp_path):
    res = coea("ablate", "--from-run", str(tmp_path), "--data", "synthetic", "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "--data and --from-run" in res.stderr and not (tmp_path / "o").exists()


def _fake_run(path: Path) -> None:
    """A run folder's parts, empty: enough for the checks made before anything loads."""
    for part in ("data", "dsie", "llm"):
        (path / part).mkdir()


def test_pco_with_a_bad_served_file_names_it_before_any_model_loads(tmp_path):
    """``coea pco --served``: a file without the category column, or with a null in it, is refused with one line
    naming the file, the column (and the 1-based row: the null is in the second), exit 2, before anything loads
    or is written."""
    import pandas as pd

    _fake_run(tmp_path)
    pd.DataFrame({"user_id": ["u1"], "rank": [1], "score": [0.5]}).to_parquet(tmp_path / "nocat.parquet")
    pd.DataFrame({"user_id": ["u1", "u2"], "rank": [1, 1], "category": ["a", None],
                  "score": [0.5, 0.4]}).to_parquet(tmp_path / "null.parquet")
    for name, words in (("nocat", ["column 'category'", "missing column"]), ("null", ["row 2: null value"])):
        res = coea("pco", "--run", str(tmp_path), "--served", str(tmp_path / f"{name}.parquet"))
        assert res.returncode == 2, res.stderr
        line = res.stderr.strip().splitlines()[-1]
        assert f"{name}.parquet" in line and all(w in line for w in words), line
    # read whatever the config (session 55: with exposure_inject false the file was not even opened)
    (tmp_path / "off.yaml").write_text("pco: {exposure_inject: false}\n")
    res = coea("pco", "--run", str(tmp_path), "--config", str(tmp_path / "off.yaml"),
               "--served", str(tmp_path / "nocat.parquet"))
    assert res.returncode == 2 and "missing column" in res.stderr, res.stderr
    assert not (tmp_path / "pco").exists()


@pytest.mark.parametrize(("pco", "rows", "said"), [
    ({"exposure_inject": False}, 1, "is not used: pco.exposure_inject is false"),
    ({"reward": "teacher"}, 1, "is not used: pco.reward teacher reads no logged feedback"),
    ({}, 0, "holds no lists: this run has no exposure"),
    ({}, 1, None)])
def test_a_served_file_that_changes_nothing_says_so(tmp_path, capsys, pco, rows, said):
    """Session 55: ``--served`` was silently ignored when the config never reads it, and an empty file silently
    meant no exposure."""
    import pandas as pd

    from coea.cli.stages import _check_served
    from coea.pco.config import PcoConfig

    path = tmp_path / "served.parquet"
    pd.DataFrame({"user_id": ["u1"] * rows, "rank": [1] * rows, "category": ["a"] * rows,
                  "score": [0.5] * rows}).astype({"rank": "int64", "score": "float64"}).to_parquet(path)
    _check_served(path, PcoConfig(**pco))
    err = capsys.readouterr().err
    assert (said in err and err.startswith(f"warning: --served {path} ")) if said else err == ""


@pytest.mark.parametrize("alpha", ["nan", "inf"])
def test_pco_with_a_non_finite_alpha_is_refused_before_anything_is_written(tmp_path, alpha):
    """`coea pco --alpha nan` trained NaN models over a good round and exited 0; now exit 2 naming the option."""
    _fake_run(tmp_path)
    res = coea("pco", "--run", str(tmp_path), "--alpha", alpha)
    assert res.returncode == 2 and "option --alpha: must be a finite number" in res.stderr, res.stderr
    assert not (tmp_path / "pco").exists()


def test_pco_resume_without_state_fails_cleanly(tmp_path):
    _fake_run(tmp_path)
    res = coea("pco", "--run", str(tmp_path), "--resume")
    assert res.returncode == 2 and "nothing to resume" in res.stderr
    assert not (tmp_path / "pco").exists()


TIMING = {"novelty_refresh_s", "sample_s", "score_s", "dpo_s", "reeval_s", "refresh_s", "evaluate_s", "round_s"}


def _pco_process(run: Path, *args: str, log: Path) -> subprocess.Popen:
    """``coea pco --run RUN --config RUN/config.json ARGS`` in a child process, one torch thread, output to log."""
    env = {**os.environ, "COEA_TORCH_THREADS": "1"}
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "coea.cli", "pco", "--run", str(run), "--config",
                                 str(run / "config.json"), *args], stdout=out, stderr=subprocess.STDOUT,
                                cwd=REPO, env=env)


def _files(d: Path) -> dict[str, tuple[int, str]]:
    """relative path -> (mtime in ns, sha256) of every file under ``d``."""
    return {str(p.relative_to(d)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(d.rglob("*")) if p.is_file()}


def _kill_after_round_1(proc: subprocess.Popen, pco_dir: Path, timeout: float = 1800.0) -> None:
    """SIGKILL ``proc`` as soon as its state file says round 1 is complete (it is then inside round 2). The
    deadline only keeps a hung run from blocking the suite (no speed is asserted: a busy machine may take long)."""
    state, deadline = pco_dir / "pco_state.json", time.monotonic() + timeout
    while not (state.is_file() and json.loads(state.read_text())["completed_rounds"] == 1):
        assert proc.poll() is None, f"coea pco ended (rc {proc.returncode}) before round 1 was complete"
        assert time.monotonic() < deadline, f"round 1 did not complete in {timeout:.0f} s: coea pco hangs?"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def _small_pco(run: Path) -> Path:
    """``run`` with a smaller PCO section in its config.json (fewer prompts, one DPO epoch, few refresh
    examples, per-round metrics on a sample of 8 users): what resuming keeps and recomputes does not depend on
    the rounds' size."""
    path = run / "config.json"
    cfg = json.loads(path.read_text())
    cfg["pco"].update(users_per_round=8)
    cfg["eval"].update(round_users=8)
    cfg["pco"]["dpo"].update(epochs=1.0)
    cfg["pco"]["relevance_refresh"].update(max_examples=60)
    path.write_text(json.dumps(cfg))
    return run


def _weights(bundle: Path) -> dict[str, torch.Tensor]:
    return load_file(bundle / "model.safetensors")


def test_killed_pco_resumes_without_recomputing_and_equals_uninterrupted(tiny_sft_run, tmp_path, monkeypatch, capsys,
                                                                         caplog):
    """A real `coea pco` process SIGKILLed inside round 2 and resumed with --resume: round 1's checkpoint is
    not recomputed (every file's bytes and mtime unchanged), and the metrics and both models' weights equal an
    uninterrupted run's. A resume with another PCO config (--alpha) is refused with one line and exit 2, before
    anything is written. The resume and the uninterrupted run are `coea pco` in this process, with the killed
    process's one torch thread."""
    full, killed = (_small_pco(shutil.copytree(tiny_sft_run, tmp_path / name)) for name in ("full", "killed"))
    first = _pco_process(killed, log=tmp_path / "killed.log")
    _kill_after_round_1(first, killed / "pco")
    assert not (killed / "pco" / "rounds" / "round_002").exists()  # killed inside round 2
    round_1, state = _files(killed / "pco" / "rounds" / "round_001"), _files(killed / "pco")

    monkeypatch.setattr(cli, "setup_logging", lambda: None)  # in-process: leave the test session's logging alone
    with pytest.raises(SystemExit) as refused:
        cli.main(["pco", "--run", str(killed), "--config", str(killed / "config.json"), "--resume", "--alpha", "0.123"])
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert refused.value.code == 2 and len(errors) == 1 and "Traceback" not in stderr, stderr
    assert "PCO config differs from the run being resumed" in errors[0] and "dpo.alpha:" in errors[0]
    assert "-> 0.123" in errors[0] and str(killed / "pco" / "pco_state.json") in errors[0]
    assert _files(killed / "pco") == state

    threads = torch.get_num_threads()
    monkeypatch.setenv("COEA_TORCH_THREADS", "1")  # as in the killed process (coea.cli.main pins it)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # (restored after the test)
    try:
        for run, resume in ((killed, ["--resume"]), (full, [])):
            res = coea("pco", "--run", str(run), "--config", str(run / "config.json"), *resume)
            assert res.returncode == 0, res.stderr[-3000:]
        done = _files(killed / "pco" / "rounds" / "round_002")  # --resume on the finished run: says so, trains nothing
        with caplog.at_level(logging.INFO, logger="coea.pco.loop"):  # the CLI's log setup is off in this test
            again = coea("pco", "--run", str(killed), "--config", str(killed / "config.json"), "--resume")
        assert again.returncode == 0 and "all 2 rounds were done; nothing to train" in caplog.text, again.stderr[-999:]
        assert _files(killed / "pco" / "rounds" / "round_002") == done
    finally:
        torch.set_num_threads(threads)
    assert _files(killed / "pco" / "rounds" / "round_001") == round_1  # round 1 was not recomputed
    rows = {name: [{k: v for k, v in row.items() if k not in TIMING}
                   for row in json.loads((run / "pco" / "pco_metrics.json").read_text())["rounds"]]
            for name, run in (("full", full), ("killed", killed))}
    assert [row["round"] for row in rows["full"]] == [0, 1, 2] and rows["killed"] == rows["full"]
    for model in ("novelty", "relevance"):
        sft, a, b = (_weights(d / model) for d in (tiny_sft_run / "llm", full / "pco" / "rounds" / "round_002",
                                                   killed / "pco" / "rounds" / "round_002"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert any(not torch.equal(sft[k], a[k]) for k in sft)  # the rounds did train this model


def test_a_rerun_killed_before_its_first_round_leaves_no_earlier_state_to_resume(tiny_sft_run, tmp_path,
                                                                                  monkeypatch):
    """Audit, session 55: a finished pco/, then `coea pco` again killed in round 1 (new lineage record, the earlier
    run's pco_state.json kept): `--resume` said "all rounds were done", marked pco/ complete, and the earlier run's
    rounds (from other SFT models, after a retrain) were served as this run's. Now the re-run drops the earlier
    state first, so the resume trains its round 1."""
    from dataclasses import replace

    from coea.config import load_run_config
    from coea.pco import loop as loop_module
    from coea.pco.checkpoint import completed_rounds
    from coea.stages import run_pco_stage

    run = _small_pco(shutil.copytree(tiny_sft_run, tmp_path / "run"))
    cfg = load_run_config(run / "config.json")  # one round, per-round metrics on a few users: what is checked is
    cfg = replace(cfg, pco=replace(cfg.pco, rounds=1), eval=replace(cfg.eval, round_users=8))  # which rounds run
    torch.set_num_threads(1)

    def stage(resume=False):
        return run_pco_stage(cfg, run / "data", run / "dsie", [run / "llm"], run / "pco", resume=resume, check_run=run)

    stage()
    assert completed_rounds(run / "pco") == 1
    real, trained = loop_module.run_round, []

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop_module, "run_round", killed)
    with pytest.raises(KeyboardInterrupt):
        stage()
    assert completed_rounds(run / "pco") == 0  # nothing of the earlier run left to resume
    monkeypatch.setattr(loop_module, "run_round", lambda ctx, r, *a, **kw: trained.append(r) or real(ctx, r, *a, **kw))
    result = stage(resume=True)
    assert trained == [1] and [row["round"] for row in result.rounds] == [0, 1]


@pytest.mark.parametrize("part", ["dsie/profiles.json", "dsie/dsie_config.json", "llm/novelty/bundle.json"])
def test_valid_json_of_the_wrong_shape_in_a_run_is_one_line_not_a_traceback(tiny_sft_run, tmp_path, part):
    """A run file that is JSON but not the object its reader expects (`[]` for the group profiles, `[1]` for a
    config): exit 2 and one `error:` line naming the folder and the step to re-run. (Before session 52:
    AttributeError / TypeError tracebacks, exit 1.)"""
    run = shutil.copytree(tiny_sft_run, tmp_path / "run")
    (run / part).write_text("[]" if part.endswith("profiles.json") else "[1]")
    res = coea("serve", "--run", str(run), "--method", "nllm_sft+x", "--out", str(tmp_path / "o.parquet"))
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode == 2 and len(errors) == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "cannot be read (" in errors[0] and "re-run" in errors[0] and str(run / part.split("/")[0]) in errors[0]
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize(("part", "damage"), [
    ("llm/novelty/model.safetensors", "truncate"), ("llm/novelty/config.json", "garble"),
    ("dsie/encoder/encoder.pt", "truncate"), ("dsie/groups.parquet", "truncate"),
    ("data/interactions.parquet", "truncate"),
], ids=["model", "model-config", "encoder", "groups", "data"])
def test_a_corrupt_artifact_of_a_run_is_one_line_naming_it_not_a_traceback(tiny_sft_run, tmp_path, part, damage):
    """A truncated model, encoder or parquet file, or a model config that is not JSON, in a run that `coea serve`
    reads: exit 2, one `error:` line naming the folder or file it could not read, the error's type and the step to
    re-run; no --out file. (Before: SafetensorError, PytorchStreamReader, ArrowInvalid or OSError tracebacks.)"""
    run = shutil.copytree(tiny_sft_run, tmp_path / "run")
    path = run / part
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3] if damage == "truncate" else b"{not json")
    res = coea("serve", "--run", str(run), "--method", "nllm_sft+x", "--out", str(tmp_path / "o.parquet"))
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode == 2 and len(errors) == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "cannot be read (" in errors[0] and "re-run" in errors[0], errors[0]
    assert str(run / part.split("/")[0]) in errors[0], errors[0]
    assert not (tmp_path / "o.parquet").exists()


def test_resume_from_a_corrupt_pco_state_is_one_line(tiny_sft_run, tmp_path):
    """`coea pco --resume` on a truncated pco_state.json: exit 2 naming it (a JSONDecodeError traceback before),
    and the file is left as it was."""
    run = shutil.copytree(tiny_sft_run, tmp_path / "run")
    (run / "pco").mkdir()
    (run / "pco" / "pco_state.json").write_text('{"completed_rounds": 1, "rou')
    before = (run / "pco" / "pco_state.json").read_bytes()
    res = coea("pco", "--run", str(run), "--resume")
    errors = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert res.returncode == 2 and len(errors) == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "cannot be read (JSONDecodeError" in errors[0] and str(run / "pco") in errors[0], errors[0]
    assert (run / "pco" / "pco_state.json").read_bytes() == before
