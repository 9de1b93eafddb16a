"""Defects a new-user walkthrough found in the CLI: each is one ``error:`` line naming the option (or file) and a
concrete fix, exit code 2, before any work and with nothing written; the fixes name real folders and the earliest
step to re-run. All in process and fast: the expensive parts are replaced by stand-ins that fail when called."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli

pytestmark = pytest.mark.usefixtures("warnings_seen")  # tests/integration/conftest.py: the CLI's log setup
PROC = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (takes no folders)")


def _never(*_args, **_kwargs):
    raise AssertionError("the command started its work before checking its options")


def _one_error(capsys, argv: list[str]) -> tuple[str, str]:
    """Run ``coea ARGV``: exit 2, exactly one ``error:`` line and no traceback; (the line, stdout)."""
    code, out, err = run_cli(argv, capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    return errors[0], out


def _run_folder(root: Path, *parts: str) -> Path:
    for part in parts:
        (root / part).mkdir(parents=True)
    return root


# --- 1. an output that cannot be written: refused before any work ----------------------------------------------

def test_serve_out_that_is_a_folder_or_under_a_file_is_refused_before_scoring(tmp_path, capsys, monkeypatch):
    """`coea serve --out r1` (a folder; --out is a parquet file) scored every user, then IsADirectoryError."""
    import coea.stages

    monkeypatch.setattr(coea.stages, "run_recommend", _never)
    run = _run_folder(tmp_path / "r1", "data")
    line, _ = _one_error(capsys, ["serve", "--run", str(run), "--method", "pop", "--out", str(run)])
    assert f"{run}, option --out: is a folder, not a file" in line and "recommendations.parquet" in line
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    line, _ = _one_error(capsys, ["serve", "--run", str(run), "--out", str(afile / "recs.parquet")])
    assert f"option --out: cannot be created: {afile} is a file" in line
    assert afile.read_text() == "x" and sorted(p.name for p in run.iterdir()) == ["data"]


@pytest.mark.parametrize("where", ["file", pytest.param("proc", marks=PROC)])
def test_run_with_a_runs_dir_it_cannot_write_is_refused_before_the_pipeline_starts(tmp_path, capsys, monkeypatch,
                                                                                   where):
    """`coea run --runs-dir README.md` / `--runs-dir /proc/x` printed the start line, then NotADirectoryError /
    FileNotFoundError from pipelines/local.py."""
    import pipelines.local

    monkeypatch.setattr(pipelines.local, "run_training_locally", _never)
    runs = tmp_path / "README.md" if where == "file" else Path("/proc/x")
    if where == "file":
        runs.write_text("# readme\n")
    line, out = _one_error(capsys, ["run", "--runs-dir", str(runs)])
    expected = "is a file, not a folder" if where == "file" else "cannot be written: /proc"
    assert f"{runs}, option --runs-dir: {expected}" in line and "fix: pass a folder" in line
    assert "coea_training (kfp.local)" not in out


@pytest.mark.parametrize("where", ["file", pytest.param("proc", marks=PROC)])
def test_simulate_with_an_out_it_cannot_write_is_refused_before_the_first_period(tmp_path, capsys, monkeypatch,
                                                                                  where):
    import pipelines.simulate

    monkeypatch.setattr(pipelines.simulate, "run_simulate", _never)
    out = tmp_path / "tiny.yaml" if where == "file" else Path("/proc/sim")
    if where == "file":
        out.write_text("x: 1\n")
    line, _ = _one_error(capsys, ["simulate", "--out", str(out)])
    expected = "is a file, not a folder" if where == "file" else "cannot be written: /proc"
    assert f"{out}, option --out: {expected}" in line
    assert where != "file" or out.read_text() == "x: 1\n"


# --- 2. a local data path that does not exist: refused before kfp.local starts -----------------------------------

@pytest.mark.parametrize("kind", ["movielens", "csv"])
def test_run_with_a_missing_local_data_path_says_what_the_other_commands_say(tmp_path, capsys, monkeypatch, kind):
    """`coea run --data movielens:../shared/data/ml-1mm` started kfp.local, failed in prepare-data after ~15 s and
    left runs/<ts>/kfp/ behind."""
    import pipelines.local

    monkeypatch.setattr(pipelines.local, "run_training_locally", _never)
    spec = f"{kind}:{tmp_path / ('ml-1mm' if kind == 'movielens' else 'log.csv')}"
    runs = tmp_path / "runs"
    line, out = _one_error(capsys, ["run", "--data", spec, "--runs-dir", str(runs)])
    stats, _ = _one_error(capsys, ["data", "stats", "--data", spec])
    missing = spec.split(":", 1)[1]  # the path is named, not only the problem
    assert line == stats and (f"{missing}: directory not found" in line if kind == "movielens"
                              else f"{missing}: file not found" in line), line
    assert not runs.exists() and "coea_training (kfp.local)" not in out


# --- 3. range errors name the option and a valid value -----------------------------------------------------------

@pytest.mark.parametrize(("command", "args", "expected"), [
    ("pco", ["--rounds", "0"], "option --rounds: must be > 0, got 0 (fix: pass e.g. --rounds 3"),
    ("pco", ["--alpha", "-1"], "option --alpha: must be >= 0, got -1.0 (fix: pass e.g. --alpha 0.4"),
    ("evaluate", ["--k", "0"], "option --k: must be positive integers, got [0] (fix: pass e.g. --k 5,10"),
    ("evaluate", ["--methods", "pop,markov", "--reference", "sasrec"],
     "option --reference: reference 'sasrec' is not among the methods pop,markov (fix: pass one of them, e.g. "
     "--reference pop, or add sasrec to --methods)"),
    ("evaluate", ["--n-future", "0"], "option --n-future: must be > 0, got 0 (fix: pass e.g. --n-future 10"),
    ("data synth", ["--users", "0"], "option --users: must be > 0, got 0 (fix: pass e.g. --users 600"),
    ("simulate", ["--periods", "3", "--shift-period", "5"],
     "option --shift-period: must be in 1 .. 2 (--periods 3 minus 1), got 5 (fix: e.g. --shift-period 1, or "
     "--periods 6 or more)"),
], ids=["pco-rounds", "pco-alpha", "evaluate-k", "evaluate-reference", "n-future", "synth-users", "shift-period"])
def test_a_value_out_of_range_names_its_option_and_a_valid_value(tmp_path, capsys, command, args, expected):
    """Before: `invalid option value: rounds must be > 0, got 0 (fix: see --help for valid values)` (the config's
    field names, no option, no value to use)."""
    out = tmp_path / "out"
    if command == "pco":
        argv = ["pco", "--run", str(_run_folder(tmp_path / "run", "data", "dsie", "llm"))]
    else:
        argv = [*command.split(), "--out", str(out)]
    line, _ = _one_error(capsys, [*argv, *args])
    assert line.startswith(f"error: {expected}"), line
    assert "invalid option value" not in line and "shift_period" not in line
    assert not out.exists() and not (tmp_path / "run" / "pco").exists()


def test_pco_help_gives_the_ranges(capsys):
    code, out, _ = run_cli(["pco", "--help"], capsys)
    assert code == 0 and "PCO rounds, >= 1" in out and "KL weight, >= 0" in out


# --- 4. a missing artifact names its real folder and the command that makes it -----------------------------------

def test_a_method_without_its_models_names_the_llm_folder_and_train_llms(tmp_path, monkeypatch):
    """It said "no llms directory was given (fix: pass a run folder that holds llms/...)": the folder is llm/."""
    from coea.errors import CoeaInputError
    from coea.layout import ArtifactDirs
    from coea.stages import artifacts

    monkeypatch.setattr(artifacts, "load_dsie", lambda *_a, **_k: None)
    with pytest.raises(CoeaInputError) as err:
        artifacts.load_artifacts(["pop", "nllm_sft"], ArtifactDirs(dsie=tmp_path / "dsie"))
    text = str(err.value)
    assert "['nllm_sft'] need the llms artifact (the SFT models, in llm/), but there is no llm/ folder" in text
    assert "run `coea train-llms --run RUN` first" in text and "llms/" not in text
    with pytest.raises(CoeaInputError, match=r"no pco/ folder .*`coea pco --run RUN`"):
        artifacts.load_artifacts(["coea+x"], ArtifactDirs(dsie=tmp_path / "dsie"))


# --- 6, 7. compile's state_uri warning; the device fix said once -------------------------------------------------

def test_compile_names_the_settings_state_uri_not_an_option_it_lacks(tmp_path, capsys, monkeypatch):
    import pipelines.compile

    monkeypatch.setattr(pipelines.compile, "compile_pipelines", lambda out, dep: {})
    settings = REPO / "k8s" / "overlays" / "gpu-pool" / "pipeline.yaml"
    code, _, err = run_cli(["compile", "--out", str(tmp_path / "c"), "--settings", str(settings)], capsys)
    assert code == 0 and f"not usable: {settings}: state_uri: bad bucket name 'REPLACE_ME" in err, err
    assert "option --state-uri" not in err and "(or the settings' state_uri)" not in err


def test_device_cuda_without_cuda_says_the_fix_once(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line, _ = _one_error(capsys, ["evaluate", "--methods", "pop", "--device", "cuda", "--out", str(tmp_path / "o")])
    assert "option --device: device 'cuda' requested but CUDA is not available (fix: use --device cpu" in line
    assert line.count("--device cpu") == 1 and not (tmp_path / "o").exists()
