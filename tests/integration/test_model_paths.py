"""A wrong local model path (``llm.model.base_model``, the ``llm`` profiler's ``dsie.profile.model_path``) fails before
the data step of ``coea evaluate`` and before any step of ``coea run``: one error line naming the option and the path,
exit code 2, nothing written. Before, it failed only in the step that loads the model, after the DSIE fit (half an
hour on MovieLens)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli

CASES = {
    "base_model": ("llm:\n  model: {{base_model: {path}}}\n", "llm.model.base_model directory not found",
                   ["nllm_sft+x"], "llm.model.base_model: scratch"),
    "profile": ("dsie:\n  profile: {{kind: llm, model_path: {path}}}\n", "dsie.profile.model_path directory not found",
                ["group_pop_novel"], "dsie.profile.kind: template"),
}


@pytest.fixture
def no_step_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any step that starts fails the test (the check must come first)."""
    from coea import stages

    def ran(*args, **kwargs):
        raise AssertionError("a step ran before the model path was checked")

    for name in ("run_prepare_data", "run_dsie_group", "run_sft_stage"):
        monkeypatch.setattr(stages, name, ran)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", ["evaluate", "run"])
def test_a_missing_model_directory_stops_before_any_step(tmp_path: Path, capsys, no_step_runs, case, command):
    text, message, methods, instead = CASES[case]
    missing = tmp_path / "models" / "Qwen2.5-7B"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text.format(path=missing) + f"eval: {{methods: {methods}}}\n")
    out = tmp_path / "out"
    where = ["--out", str(out)] if command == "evaluate" else ["--runs-dir", str(out)]
    code, _, err = run_cli([command, "--config", str(cfg), *where], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert message in errors[0] and str(missing) in errors[0] and instead in errors[0], errors[0]
    assert not out.exists()


def test_a_directory_without_config_json_names_the_option_to_fix(tmp_path: Path, capsys, no_step_runs):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"llm:\n  model: {{base_model: {empty}}}\neval: {{methods: [nllm_sft+x]}}\n")
    code, _, err = run_cli(["evaluate", "--config", str(cfg), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "has no config.json" in err and "point llm.model.base_model at" in err, err
