"""What a new user's walkthrough hit (session 43): `coea report --out` unchecked, the interrupt line naming `coea pco
--resume` for every command, folders left behind by a refused or interrupted command, next-step hints naming the
wrong stage, "not found" for a path of the wrong type, and options without help."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.helpers import coea, run_cli
from tests.integration.test_out_folder_safety import log, one_error_line, snapshot


def _run_folder(root: Path, *parts: str) -> Path:
    for part in parts:
        (root / part).mkdir(parents=True)
    return root


# --- 1. coea report --out: the check `coea serve` makes on its --out file ---------------------------------------

@pytest.mark.parametrize("where", ["a-folder", "under-a-file", "trailing-slash"])
def test_report_refuses_an_out_that_is_no_writable_file_and_writes_nothing(tmp_path, capsys, where) -> None:
    """Before: IsADirectoryError / FileExistsError tracebacks, and `--out new/` wrote a FILE named new."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "served.json").write_text('{"method": "pop", "k": 10}')
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    out = {"a-folder": str(run), "under-a-file": f"{afile}/r.html", "trailing-slash": f"{tmp_path / 'new'}/"}[where]
    before = snapshot(tmp_path)
    code, _, err = run_cli(["report", "--run-dir", str(run), "--out", out], capsys)
    line = one_error_line(code, err)
    expected = {"a-folder": "is a folder, not a file", "under-a-file": f"cannot be created: {afile} is a file",
                "trailing-slash": "ends with '/': names a folder, not a file"}[where]
    assert f"option --out: {expected}" in line, line
    assert where == "under-a-file" or "report.html" in line, line
    assert snapshot(tmp_path) == before and not (tmp_path / "new").exists()


def test_report_on_a_file_says_it_is_a_file_and_names_its_folder(tmp_path, capsys) -> None:
    (tmp_path / "metrics.json").write_text("{}")
    code, _, err = run_cli(["report", "--run-dir", str(tmp_path / "metrics.json")], capsys)
    line = one_error_line(code, err)
    assert "is a file, expected a folder" in line and f"--run-dir {tmp_path})" in line
    assert "not found" not in line


# --- 2. the interrupt line: `coea pco --resume` only for coea pco -------------------------------------------------

def _sigint(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: the CLI's handler raises KeyboardInterrupt here
    raise AssertionError("the signal did not interrupt")


@pytest.mark.parametrize("command", ["pco", "train-llms"])
def test_the_interrupt_line_says_how_pco_and_train_llms_resume(tmp_path, capsys, monkeypatch, command) -> None:
    import coea.cli.stages

    monkeypatch.setattr(coea.cli.stages, "with_device", _sigint)
    run = _run_folder(tmp_path / "run", "data", "dsie", "llm")
    code, _, err = run_cli([command, "--run", str(run)], capsys)
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert code == 130
    # interrupted before the run folder was read: the general note (tests/integration/test_walkthrough_console.py:
    # what the re-run does once the command knows what its folder holds)
    resume = {"pco": " (coea pco --resume continues after the last complete round, if one was saved)",
              "train-llms": " (it keeps a model that finished, and resumes an SFT from its checkpoint where one was "
                            "saved: every llm.<model>.checkpoint_minutes of training)"}[command]
    assert last == f"interrupted: SIGINT; re-run the command{resume}", last


# --- 3. nothing half-written by a refused or interrupted command --------------------------------------------------

@pytest.mark.parametrize("wrote", [False, True], ids=["empty", "with-finished-steps"])
def test_an_interrupted_evaluate_removes_the_out_it_created_only_while_empty(tmp_path, capsys, monkeypatch,
                                                                              wrote) -> None:
    """Before: an interrupted `coea evaluate --out NEW` left an empty NEW/ (its staging folders removed)."""
    import coea.flow

    def flow(cfg, layout, **_kwargs):
        layout.root.mkdir()  # as the staging folders' parent is made
        if wrote:
            (layout.data).mkdir()  # a finished step's output: kept
        _sigint()

    monkeypatch.setattr(coea.flow, "run_flow", flow)
    out = tmp_path / "new"
    code, _, _ = run_cli(["evaluate", "--methods", "pop", "--out", str(out)], capsys)
    assert code == 130
    assert out.exists() == wrote


def test_a_refused_log_in_evaluate_is_the_only_output_line(tmp_path) -> None:
    """Before: INFO lines (the flow's plan, `prepared ... -> OUT/.data.XXXX.tmp`, a folder then deleted) came
    before the error line."""
    res = coea("evaluate", "--data", f"csv:{log(tmp_path / 'one.csv', categories=1)}", "--methods", "pop", "--k",
               "3", "--out", str(tmp_path / "out"))
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert ".tmp" not in res.stderr + res.stdout and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_run_refused_in_its_data_step_leaves_no_run_folder(tmp_path, capsys) -> None:
    """Before: runs/<ts>/kfp/ and steps.log stayed although the README says nothing is written."""
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,category,timestamp\nu1,i1,c1,1700000000\nu1,i2,c2,notatime\n")
    runs = tmp_path / "runs"
    code, _, err = run_cli(["run", "--data", f"csv:{bad}", "--runs-dir", str(runs)], capsys)
    line = one_error_line(code, err)
    assert "step prepare-data" in line and "line 3: non-numeric timestamp" in line
    assert not runs.exists()


def test_a_run_stopped_before_any_step_finished_removes_the_folders_it_made(tmp_path) -> None:
    from pipelines.local import _new_folder, unfinished

    run_dir = tmp_path / "runs" / "20260101-000000"
    made = _new_folder(run_dir)
    (run_dir / "kfp").mkdir(parents=True)
    err = unfinished(run_dir, made, [], KeyboardInterrupt())
    assert made == tmp_path / "runs" and not made.exists()
    assert err.__notes__ == [f"nothing had finished: {made} removed"]


def test_a_run_stopped_after_finished_steps_is_kept_and_marked_incomplete(tmp_path) -> None:
    from coea.errors import CoeaInputError
    from pipelines.local import unfinished

    run_dir = tmp_path / "run"
    (run_dir / "kfp").mkdir(parents=True)
    steps = [("prepare-data", "SUCCESS", 1.0), ("dsie-group", "SUCCESS", 2.0)]
    err = unfinished(run_dir, run_dir, steps, KeyboardInterrupt())
    marker = run_dir / "INCOMPLETE.txt"
    assert "stopped in step sft-novelty" in marker.read_text() and "prepare-data, dsie-group" in marker.read_text()
    assert err.__notes__ == [f"{run_dir} is incomplete: stopped in step sft-novelty (KeyboardInterrupt), finished: "
                             f"prepare-data, dsie-group (see {marker})"]
    failed = unfinished(run_dir, run_dir, [*steps, ("sft-novelty", "FAILURE", 1.0)], CoeaInputError("step x: bad"))
    assert str(failed) == (f"step x: bad; {run_dir} is incomplete: step sft-novelty failed, finished: "
                           f"prepare-data, dsie-group (see {marker})")


def test_a_run_that_crashed_in_its_first_step_keeps_its_step_log(tmp_path) -> None:
    from pipelines.local import unfinished

    run_dir = tmp_path / "run"
    (run_dir / "kfp").mkdir(parents=True)
    err = unfinished(run_dir, run_dir, [("prepare-data", "FAILURE", 1.0)], RuntimeError("status FAILURE"))
    assert (run_dir / "kfp").is_dir() and "step prepare-data failed" in (run_dir / "INCOMPLETE.txt").read_text()
    assert err.__notes__ == [f"{run_dir} is incomplete: step prepare-data failed, finished: none "
                             f"(see {run_dir / 'INCOMPLETE.txt'})"]


def test_a_run_stopped_before_any_output_says_so_to_every_command_that_reads_it(tmp_path, capsys) -> None:
    """A `coea run` stopped in its first steps holds only kfp/ and INCOMPLETE.txt: `evaluate --from-run` said
    "not a run folder", `report` "nothing to report" (walkthrough, session 57); every reader names where it stopped.
    A folder no stage wrote into is "not a run folder" for `--run` too (it said "no data/ directory ... run `coea
    group --out` first", which would turn any folder into a run)."""
    from pipelines.local import unfinished

    run_dir = tmp_path / "run"
    (run_dir / "kfp").mkdir(parents=True)
    unfinished(run_dir, run_dir, [("prepare-data", "SUCCESS", 1.0)], KeyboardInterrupt())
    for argv in (["evaluate", "--from-run", str(run_dir), "--methods", "pop", "--out", str(tmp_path / "e")],
                 ["serve", "--run", str(run_dir), "--out", str(tmp_path / "r.parquet")],
                 ["report", "--run-dir", str(run_dir)]):
        line = one_error_line(*run_cli(argv, capsys)[::2])
        assert "this run is incomplete: stopped in step dsie-group" in line and "(see INCOMPLETE.txt)" in line, line
    empty = tmp_path / "empty"
    empty.mkdir()
    for argv in (["serve", "--run", str(empty), "--out", str(tmp_path / "r.parquet")],
                 ["train-llms", "--run", str(empty)]):
        line = one_error_line(*run_cli(argv, capsys)[::2])
        assert "option --run: not a run folder: it holds no data/, dsie/, llm/, pco/ or config.json" in line, line


def _fake_training_outputs(root: Path) -> dict:
    """What ``coea_training``'s kfp.local run hands ``_copy_outputs``: each output's folder or file."""
    from types import SimpleNamespace

    files = {"report/metrics.json": "{}", "report/config.json": "{}", "data/events.parquet": "d",
             "dsie/lineage.json": "{}", "dsie/encoder.pt": "w", "dsie/groups.parquet": "g",
             "novelty/novelty/model.bin": "n", "novelty/sft_metrics_novelty.json": "{}",
             "novelty/llm_config.json": "{}", "relevance/relevance/model.bin": "r",
             "relevance/sft_metrics_relevance.json": "{}", "pco/pco_state.json": "{}", "recs.parquet": "x",
             "recs.sqlite": "s"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    where = {"report": "report", "data": "data", "dsie": "dsie", "novelty": "novelty", "relevance": "relevance",
             "pco": "pco", "recommendations": "recs.parquet", "kv_store": "recs.sqlite"}
    return {name: SimpleNamespace(path=str(root / rel)) for name, rel in where.items()}


def test_a_run_killed_while_copying_its_outputs_leaves_no_half_copied_part_and_is_refused(
        tmp_path, capsys, monkeypatch) -> None:
    """Session 55 left it: `coea run` copied its outputs into the run folder in place, so a kill midway left e.g.
    dsie/ with its lineage.json but without its weights, which `--from-run` read as complete. Each part is now
    copied atomically, INCOMPLETE.txt stands while the copy runs (a SIGKILL leaves it: here an error stands in for
    the kill, mid-way through dsie/) and the commands that read a run refuse a folder that has it."""
    import shutil

    from pipelines import local

    outputs = _fake_training_outputs(tmp_path / "kfp_out")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    real_copyfile, dsie_files = shutil.copyfile, []

    def killed_in_dsie(src, dst, **kwargs):
        if Path(src).parent.name == "dsie":
            dsie_files.append(src)
            if len(dsie_files) == 2:  # one file of dsie/ copied, the next one never
                raise SystemExit("killed")
        return real_copyfile(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", killed_in_dsie)
    with pytest.raises(SystemExit):
        local._copy_outputs(outputs, run_dir, "coea_seq+x", 10)
    assert (run_dir / "metrics.json").is_file() and (run_dir / "data" / "events.parquet").is_file()
    assert not (run_dir / "dsie").exists() and not list(run_dir.glob(".dsie.*")), sorted(os.listdir(run_dir))
    assert "killed while copying its outputs" in (run_dir / "INCOMPLETE.txt").read_text()
    monkeypatch.setattr(shutil, "copyfile", real_copyfile)
    for argv in (["evaluate", "--from-run", str(run_dir), "--methods", "pop", "--out", str(tmp_path / "e")],
                 ["serve", "--run", str(run_dir), "--out", str(tmp_path / "r.parquet")]):
        line = one_error_line(*run_cli(argv, capsys)[::2])
        assert "this run is incomplete: it was killed while copying its outputs" in line, line
        assert "(see INCOMPLETE.txt)" in line and "start a new run with `coea run`" in line, line
    assert not (tmp_path / "e").exists() and not (tmp_path / "r.parquet").exists()


def test_the_copied_outputs_are_whole(tmp_path, monkeypatch) -> None:
    from pipelines import local

    run_dir = tmp_path / "run"
    monkeypatch.setattr(local, "render_report", lambda run: run / "report.html")
    paths = local._copy_outputs(_fake_training_outputs(tmp_path / "kfp_out"), run_dir, "coea_seq+x", 10)
    assert (paths["dsie"] / "encoder.pt").read_text() == "w" and (run_dir / "llm" / "novelty" / "model.bin").is_file()
    assert (run_dir / "metrics.json").is_file() and paths["kv_store"].read_text() == "s"


def test_an_interrupted_run_says_its_folder_is_incomplete_in_the_interrupt_line(tmp_path, capsys,
                                                                                monkeypatch) -> None:
    import pipelines.local

    def training(cfg, out, **_kwargs):  # as run_training_locally notes what it left (unfinished, tested above)
        try:
            _sigint()
        except KeyboardInterrupt as err:
            err.add_note(f"{out} is incomplete: stopped in step sft-novelty")
            raise

    monkeypatch.setattr(pipelines.local, "run_training_locally", training)
    code, _, err = run_cli(["run", "--runs-dir", str(tmp_path / "runs")], capsys)
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert code == 130 and "is incomplete: stopped in step sft-novelty; re-run the command" in last, last


# --- 4. next-step hints name the missing stage's command --------------------------------------------------------

def test_pco_on_a_group_folder_names_train_llms(tmp_path, capsys) -> None:
    run = _run_folder(tmp_path / "g", "data", "dsie")
    code, _, err = run_cli(["pco", "--run", str(run)], capsys)
    line = one_error_line(code, err)
    assert "no llm/ directory" in line and f"run `coea train-llms --run {run}` first" in line, line


@pytest.mark.parametrize("command", ["serve", "evaluate"])
def test_a_method_needing_pco_on_a_group_folder_names_train_llms_then_pco(tmp_path, capsys, command) -> None:
    """Before: "run `coea pco --run RUN` first", which then failed for want of llm/."""
    run = _run_folder(tmp_path / "g", "data", "dsie")
    argv = (["serve", "--run", str(run), "--out", str(tmp_path / "r.parquet")] if command == "serve" else
            ["evaluate", "--from-run", str(run), "--methods", "coea+x", "--out", str(tmp_path / "e")])
    code, _, err = run_cli(argv, capsys)
    line = one_error_line(code, err)
    assert f"run `coea train-llms --run {run}`, then `coea pco --run {run}` first" in line, line
    assert not (tmp_path / "e").exists() and not (tmp_path / "r.parquet").exists()


# --- 5. a path of the wrong type is not "not found" --------------------------------------------------------------

@pytest.mark.parametrize("command", ["data stats", "run"])
def test_movielens_given_its_ratings_file_says_it_is_a_file_and_names_the_folder(tmp_path, capsys,
                                                                                monkeypatch, command) -> None:
    import pipelines.local

    monkeypatch.setattr(pipelines.local, "run_training_locally", _sigint)  # never reached
    ratings = tmp_path / "ratings.dat"
    ratings.write_text("1::1::5::978300760\n")
    extra = ["--runs-dir", str(tmp_path / "runs")] if command == "run" else []
    code, _, err = run_cli([*command.split(), "--data", f"movielens:{ratings}", *extra], capsys)
    line = one_error_line(code, err)
    assert "is a file, expected a folder" in line and f"pass movielens:{tmp_path})" in line, line
    assert not (tmp_path / "runs").exists()


# --- 6. help and list options -------------------------------------------------------------------------------------

def test_every_option_of_every_command_has_help() -> None:
    import typer

    from coea.cli import app

    def commands(group, path):  # (typer runs on its own copy of click: no isinstance with the click package)
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from commands(command, [*path, name])
            else:
                yield " ".join([*path, name]), command

    found = [(f"coea {name} {param.opts[0]}", param.help) for name, command in
             commands(typer.main.get_command(app), []) for param in command.params
             if param.param_type_name == "option"]
    assert len(found) > 100 and "coea data synth --users" in dict(found)
    assert not [option for option, text in found if not text]


def test_evaluate_help_shows_the_default_cutoffs(capsys) -> None:
    from coea.config import EvalConfig
    from tests.integration.test_cli_help import _help

    assert f"--k K1,K2,... comma-separated cut-offs, each >= 1 (default: the config's eval.ks, by default " \
           f"{','.join(map(str, EvalConfig().ks))})" in _help("evaluate", capsys)


@pytest.mark.parametrize("value", ["5,,10", "5,", ""])
def test_k_with_an_empty_entry_is_refused(tmp_path, capsys, value) -> None:
    code, _, err = run_cli(["evaluate", "--k", value, "--methods", "pop", "--out", str(tmp_path / "o")], capsys)
    assert f"option --k: empty entry in {value!r}" in one_error_line(code, err)
    assert not (tmp_path / "o").exists()


def test_recommend_names_the_store_file_inside_a_folder_given_as_store(tmp_path, capsys) -> None:
    """``--store RUN/state/kv`` (a folder) said "store not found" although it exists: it names the file to pass."""
    kv = tmp_path / "state" / "kv"
    kv.mkdir(parents=True)
    (kv / "recs.sqlite").write_bytes(b"")
    code, _, err = run_cli(["recommend", "--store", str(tmp_path / "state"), "--user", "1"], capsys)
    line = one_error_line(code, err)
    assert "is a folder, expected the store's file" in line and f"--store {kv / 'recs.sqlite'}" in line
    code, _, err = run_cli(["recommend", "--store", str(tmp_path / "nothing"), "--user", "1"], capsys)
    assert "store not found" in one_error_line(code, err)


def test_the_data_steps_quieted_logger_still_shows_its_warnings(caplog) -> None:
    """The flow drops the data step's INFO line (it names a staging folder deleted afterwards), never a warning."""
    import logging

    from coea.flow import _quiet

    logger = logging.getLogger("coea.stages.prepare")
    with caplog.at_level(logging.INFO, logger="coea.stages.prepare"), _quiet(logger):
        logger.info("prepared x -> /tmp/.staging")
        logger.warning("a warning about the log")
    assert [r.getMessage() for r in caplog.records] == ["a warning about the log"]
