"""Config loading, the CLI's config helpers, run-folder checks and the interrupt line's re-run note, pinned where
one-line mutants passed every other test (audit): a bound that a second check holds, a value refused only when the
config is read (not later, or never), a list field's duplicates, a null top-level key, a boolean written as a
number, the UTF-16 hint of a big-endian file, --config beside --from-run, the example a refused --reference
suggests, the commands a missing run part names, and what re-running an interrupted train-llms or pco does."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from coea.config import EvalConfig, RunConfig, SyntheticConfig, load_run_config, parse_as_of, save_config
from coea.errors import CoeaInputError


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_an_as_of_time_with_surrounding_whitespace_is_read_and_converted_to_utc():
    """A time pasted with a trailing newline or a leading space (a pipeline parameter, a shell variable) is read as
    the time it writes; an offset is converted to UTC."""
    assert parse_as_of(" 2026-11-30T01:00+01:00\n") == datetime(2026, 11, 30, tzinfo=UTC)


def test_a_synthetic_log_with_too_many_user_category_affinities_is_refused_even_with_few_events():
    """The generator holds every user's affinity to every category as well as every event: a million users with
    one event each but 51 categories (51,000,000 affinities) is refused; 50 categories is within the bound."""
    small = {"n_users": 1_000_000, "mean_interactions": 1, "min_interactions": 1}
    with pytest.raises(ValueError, match=r"x 51 categories\) is beyond what the generator builds in memory"):
        SyntheticConfig(**small, n_categories=51)
    assert SyntheticConfig(**small, n_categories=50).n_categories == 50


def test_an_unknown_category_conflict_policy_is_refused_when_the_config_is_read(tmp_path):
    """`on_category_conflict: Fail` (a capital letter) is neither policy: it would silently act as "majority"
    where the user asked the loader to fail on an item with several categories."""
    path = _yaml(tmp_path, "data: {on_category_conflict: Fail}\n")
    with pytest.raises(ValueError) as err:
        load_run_config(path)
    assert str(err.value) == f"{path} [data]: on_category_conflict must be 'majority' or 'fail', got 'Fail'"


def test_a_data_as_of_that_is_no_time_is_refused_when_the_config_is_read(tmp_path):
    """A bad `data.as_of` is an error naming the file and key before anything runs, not one in the data step (or
    none at all: a single file ignores as_of)."""
    path = _yaml(tmp_path, "data: {as_of: yesterday}\n")
    with pytest.raises(ValueError, match=r"\[data\]: as_of must be an ISO 8601 time such as 2026-11-30T00:00:00Z, "
                                         r"got 'yesterday'") as err:
        load_run_config(path)
    assert str(err.value).startswith(f"{path} [data]: ")


def test_a_method_named_twice_is_scored_once_in_its_first_place():
    """`methods: [pop, markov, pop]` scores pop once (a second pop would be a second row of the same numbers)."""
    assert EvalConfig(methods=["pop", "markov", "pop"]).methods == ["pop", "markov"]


def test_a_cutoff_named_twice_is_one_cutoff_and_the_cutoffs_are_sorted():
    """`ks: [10, 5, 10]` is the cut-offs 5 and 10, each once (the metrics table has one column per K)."""
    assert EvalConfig(ks=[10, 5, 10]).ks == [5, 10]


def test_a_boolean_bootstrap_is_refused_not_read_as_one_replicate():
    """`bootstrap=True` is an int in Python (1): the eval section refuses it rather than bootstrap one replicate."""
    with pytest.raises(ValueError, match="bootstrap must be a positive number of replicates, e.g. 2000, got True"):
        EvalConfig(bootstrap=True)


def test_a_null_device_key_is_the_default_device(tmp_path):
    """`device:` with no value (null) keeps the default, auto, as a null section keeps its defaults."""
    cfg = load_run_config(_yaml(tmp_path, "device:\nsplit: {n_future: 3}\n"))
    assert cfg.device == "auto" and cfg.split.n_future == 3


@pytest.mark.parametrize("value", ["1", "0"])
def test_a_boolean_key_written_as_a_number_is_refused(tmp_path, value):
    """`validation: 1` is not true: a boolean key takes true or false only, as YAML's "no" is refused too."""
    path = _yaml(tmp_path, f"split: {{validation: {value}}}\n")
    with pytest.raises(ValueError) as err:
        load_run_config(path)
    assert str(err.value) == (f"{path} [split]: validation must be true or false, got {value}; write true or false "
                              "(unquoted)")


def test_a_big_endian_utf16_config_is_named_as_utf16(tmp_path):
    """The UTF-16 hint covers both byte orders: a file starting with the big-endian mark FE FF too."""
    from coea.config_values import read_yaml

    path = tmp_path / "be.yaml"
    path.write_bytes(b"\xfe\xff" + "split: {n_future: 5}\n".encode("utf-16-be"))
    with pytest.raises(ValueError, match=r"be.yaml: not UTF-8 text at line 1 \(it starts like UTF-16\); save it as"):
        read_yaml(path)


def test_config_given_beside_from_run_is_read_instead_of_the_run_s_config_json(tmp_path):
    """`--from-run RUN --config FILE` reads FILE (the option wins); only without --config is RUN's config.json the
    config."""
    from coea.cli.common import from_run_config

    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    save_config(RunConfig(eval=EvalConfig(judge_users=9)), run / "config.json")
    config = _yaml(tmp_path, "eval: {judge_users: 7}\n")
    assert from_run_config(config, run).eval.judge_users == 7
    assert from_run_config(None, run).eval.judge_users == 9


@pytest.mark.parametrize(("methods", "example"), [(["random", "markov", "pop"], "pop"), (["random", "markov"],
                                                                                          "random")])
def test_a_reference_outside_the_methods_suggests_pop_when_it_is_there_else_the_first_method(methods, example):
    """The fix of a refused --reference names a method that can be the reference: the popularity baseline where it
    is among the methods, else the first one."""
    from coea.cli.common import eval_overrides

    with pytest.raises(CoeaInputError) as err:
        eval_overrides(EvalConfig(methods=methods), reference="coea")
    assert err.value.option == "--reference"
    assert err.value.fix == f"pass one of them, e.g. --reference {example}, or add coea to --methods"


def test_an_option_error_keeps_the_words_of_the_config_s_sentence():
    """Only a config field name with an underscore (shift_periods) is rewritten as its option in the error; a field
    named by a plain word (spec) is a word of the sentence: `--data ""` says "data spec is empty", not "data --data
    is empty"."""
    from coea.cli.common import overrides
    from coea.config import DataConfig

    with pytest.raises(CoeaInputError) as err:
        overrides(DataConfig(), {"spec": "--data"}, spec="")
    assert err.value.option == "--data"
    assert err.value.problem == "data spec is empty; use synthetic, movielens:DIR, csv:PATH or parquet:PATH"


def test_the_commands_that_make_a_missing_part_are_each_named_once_from_the_earliest_missing_stage(tmp_path):
    """data/ and dsie/ are both written by `coea group`: a folder missing everything up to pco/ is told to run
    group once, then train-llms, then pco; a folder that holds data/ and dsie/ starts at train-llms."""
    from coea.cli.run_folder import next_stages

    run = tmp_path / "run"
    run.mkdir()
    assert next_stages(run, "pco") == (f"run `coea group --out {run}`, then `coea train-llms --run {run}`, then "
                                       f"`coea pco --run {run}`")
    (run / "data").mkdir()
    (run / "dsie").mkdir()
    assert next_stages(run, "pco") == f"run `coea train-llms --run {run}`, then `coea pco --run {run}`"


def test_methods_missing_several_parts_are_told_the_whole_chain_through_the_latest_part(tmp_path):
    """A run folder without llm/ and pco/, asked for nllm_sft (llm/) and coea (pco/), is told to run train-llms and
    then pco in one error (the latest part they need), not train-llms alone and pco on the next try."""
    from coea.cli.run_folder import require_parts

    run = tmp_path / "run"
    for part in ("data", "dsie"):
        (run / part).mkdir(parents=True)
    with pytest.raises(CoeaInputError) as err:
        require_parts(run, ["nllm_sft", "coea"], "--methods")
    assert err.value.problem == ("method(s) ['coea'] need the pco artifact (the PCO models, in pco/), but there is "
                                 "no pco/ folder")
    assert err.value.fix == (f"run `coea train-llms --run {run}`, then `coea pco --run {run}` first, or drop the "
                             "method(s)")


def test_an_interrupted_sft_without_checkpoints_says_none_is_saved_when_checkpoint_minutes_is_0():
    """With `checkpoint_minutes: 0` no SFT checkpoint is ever saved: the re-run starts over, and the line says why
    (not "the first is saved after 0 minutes")."""
    from coea.cli.rerun import SftState, sft_rerun_text

    assert sft_rerun_text([SftState("novelty", False, None, 0.0)]) == (
        ": it trains the N-LLM from the start (llm.novelty.checkpoint_minutes is 0: no SFT checkpoint is saved)")


def test_a_second_model_with_a_checkpoint_is_said_to_resume_from_it():
    """The R-LLM's SFT checkpoint (from an earlier `--only relevance`) is resumed after the N-LLM trains: the line
    says so for the second model too, not "then trains the R-LLM"."""
    from coea.cli.rerun import SftState, sft_rerun_text

    states = [SftState("novelty", False, None, 10.0), SftState("relevance", False, (50, 100), 10.0)]
    assert sft_rerun_text(states) == (": it trains the N-LLM from the start (no SFT checkpoint yet: the first is saved "
                                      "after 10 minutes of training, llm.novelty.checkpoint_minutes), then resumes the "
                                      "R-LLM's SFT from its checkpoint at step 50/100")


@pytest.mark.parametrize(("done", "said"), [
    (1, " with --resume: round 1 is saved, so it continues at round 2 of 3 (without --resume it trains them again)"),
    (3, " with --resume: all 3 rounds are saved, so it only writes the outputs again"),
], ids=["one-round", "every-round"])
def test_an_interrupted_pco_names_the_rounds_saved(tmp_path, done, said):
    """One saved round is "round 1 is saved"; every round saved (killed while writing the outputs) continues at no
    round: --resume only writes the outputs again."""
    from dataclasses import replace

    from coea.cli.rerun import pco_rerun
    from coea.pco.checkpoint import write_state
    from coea.stages.pco import resolved_pco

    cfg = RunConfig()
    cfg = replace(cfg, pco=replace(cfg.pco, rounds=3))
    write_state(tmp_path, done, [{"round": r} for r in range(done + 1)], resolved_pco(cfg))
    assert pco_rerun(tmp_path, cfg) == said


def test_an_error_while_reading_what_a_re_run_does_leaves_the_interrupt_as_it_was():
    """Reading the run folder after Ctrl-C may fail (a half-written file): the KeyboardInterrupt still propagates
    (exit 130 with the command's general note), not that error."""
    from coea.cli.common import interrupt_rerun
    from coea.cli.rerun import rerun_note

    def say() -> str:
        raise ValueError("half-written state")

    before = list(interrupt_rerun)
    with pytest.raises(KeyboardInterrupt), rerun_note(say):
        raise KeyboardInterrupt
    assert interrupt_rerun == before
