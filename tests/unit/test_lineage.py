"""coea.lineage: what each fitted artifact of a run folder was made from, and the refusals when they do not
belong together (fake artifact dirs: only the records and data/interactions.parquet matter here)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from coea import lineage
from coea.config import SplitConfig
from coea.errors import CoeaInputError


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return recorded_run(tmp_path)


def recorded_run(tmp_path: Path) -> Path:
    """A run folder with data/, and dsie/, both models and pco/ recorded in the order the commands write them."""
    (tmp_path / "data").mkdir()
    pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["i1", "i2"], "category": ["a", "b"],
                  "timestamp": [1, 2]}).to_parquet(tmp_path / "data" / "interactions.parquet")
    key = lineage.histories(tmp_path / "data", SplitConfig())
    for part in ("dsie", "llm/novelty", "llm/relevance", "pco"):
        (tmp_path / part).mkdir(parents=True)
    lineage.write(tmp_path / "dsie", key)
    for name in ("novelty", "relevance"):
        lineage.write(tmp_path / "llm" / name, key, {"dsie": tmp_path / "dsie"})
    lineage.write(tmp_path / "pco", key, {"dsie": tmp_path / "dsie", "novelty": tmp_path / "llm" / "novelty",
                                          "relevance": tmp_path / "llm" / "relevance"}, complete=False)
    lineage.mark_complete(tmp_path / "pco")
    return tmp_path


ALL = {"dsie", "llms", "pco"}


def _key(run: Path, **split) -> dict:
    return lineage.histories(run / "data", SplitConfig(**split))


def test_artifacts_made_in_order_from_one_log_and_split_pass(run: Path) -> None:
    lineage.check_run(run, ALL, _key(run))
    lineage.check_run(run, ALL, None)  # serving: every event is history


def test_another_split_is_refused_naming_the_settings(run: Path) -> None:
    """The leakage guard: models fitted on the histories of n_future 10 scored on n_future 5's futures would be
    scored on events they learned from."""
    with pytest.raises(CoeaInputError, match=r"other split settings: n_future 10 \(now 5\); scoring it") as err:
        lineage.check_run(run, {"dsie"}, _key(run, n_future=5))
    assert str(err.value).startswith(f"{run / 'dsie'}: ") and "pass the --config it was made with" in str(err.value)
    # `coea group` has no --n-future option: the fix spells the config line that re-fits on this split (session 52)
    assert "re-run `coea group` for this run with `split: {n_future: 5}` in its --config" in str(err.value)


def test_another_log_is_refused(run: Path) -> None:
    pd.DataFrame({"user_id": ["u1"], "item_id": ["i9"], "category": ["c"],
                  "timestamp": [3]}).to_parquet(run / "data" / "interactions.parquet")
    with pytest.raises(CoeaInputError, match="fitted on another log than the data/ beside it"):
        lineage.check_run(run, {"llms"}, _key(run))


def test_models_of_groups_that_were_refitted_since_are_refused(run: Path) -> None:
    """`coea group` re-run on the same data: the groups changed, the SFT models were trained on the old ones."""
    lineage.write(run / "dsie", _key(run))
    lineage.check_run(run, {"dsie"}, _key(run))
    with pytest.raises(CoeaInputError, match=r"built on another dsie/ .*re-run `coea train-llms`"):
        lineage.check_run(run, {"llms"}, _key(run))


def test_pco_started_from_other_sft_models_is_refused(run: Path) -> None:
    lineage.write(run / "llm" / "novelty", _key(run), {"dsie": run / "dsie"})
    lineage.check_run(run, {"dsie", "pco"}, _key(run))  # the PCO models alone still belong to these groups
    with pytest.raises(CoeaInputError, match=r"pco: it was built on another novelty/"):
        lineage.check_run(run, {"llms", "pco"}, _key(run))


def test_an_unfinished_step_is_refused_unless_resuming(run: Path) -> None:
    lineage.clear(run / "dsie")  # `coea group` interrupted after it began rewriting dsie/
    with pytest.raises(CoeaInputError, match=r"dsie: no lineage.json: the step that writes it did not finish"):
        lineage.check_run(run, {"dsie"}, _key(run))
    lineage.write(run / "pco", _key(run), complete=False)  # `coea pco` interrupted
    with pytest.raises(CoeaInputError, match=r"the PCO run that writes it did not finish .*--resume continues"):
        lineage.check(run / "pco", "pco", _key(run))
    lineage.check(run / "pco", "pco", _key(run), finished=False)


def test_missing_artifacts_are_left_to_their_readers_and_a_missing_log_is_named(run: Path, tmp_path: Path) -> None:
    import shutil

    shutil.rmtree(run / "pco")
    lineage.check_run(run, ALL, _key(run))
    with pytest.raises(CoeaInputError, match="interactions.parquet not found"):
        lineage.histories(tmp_path / "nowhere", SplitConfig())


def test_sft_clears_the_records_of_the_models_it_retrains_before_it_starts(run: Path) -> None:
    """A train-llms killed after saving the N-LLM and before the R-LLM left a pair of two trainings that every
    check passed; now the R-LLM it was about to replace has no record until its own is written."""
    from coea.config import RunConfig
    from coea.stages.sft import run_sft_stage

    with pytest.raises(CoeaInputError):  # stands in for the kill: it stops before anything trains
        run_sft_stage(RunConfig(), run / "no-data", run / "dsie", run / "llm", which=("relevance",))
    assert lineage.read(run / "llm" / "relevance") is None and lineage.read(run / "llm" / "novelty") is not None


def test_pco_on_models_that_are_stale_themselves_names_train_llms_then_pco(run: Path) -> None:
    """`coea group` re-fitted the run: PCO is stale because the SFT models it started from are. `evaluate --methods
    coea+x` / `serve --method coea+x` said "re-run `coea pco`", which `coea pco` then refused ("re-run `coea
    train-llms`"): the fix names the earliest stale step. The checks themselves are unchanged."""
    lineage.write(run / "dsie", _key(run))
    then_pco = r"fix: re-run `coea train-llms` then `coea pco` for this run\)"
    for needs in ({"dsie", "pco"}, {"dsie", "llms", "pco"}):
        with pytest.raises(CoeaInputError, match=then_pco):
            lineage.check_run(run, needs, _key(run))
        with pytest.raises(CoeaInputError, match=then_pco):
            lineage.check_run(run, needs, None)  # serving
    with pytest.raises(CoeaInputError, match=r"re-run `coea train-llms` for this run\)$"):
        lineage.check_run(run, {"llms"}, _key(run))  # what `coea pco` checks: the models, then PCO is re-made


def test_pco_stale_on_its_own_still_names_pco(run: Path) -> None:
    """The models were re-trained on the same groups: only PCO is stale, and re-running it is the fix."""
    for name in ("novelty", "relevance"):
        lineage.write(run / "llm" / name, _key(run), {"dsie": run / "dsie"})
    with pytest.raises(CoeaInputError, match=r"pco: it was built on another novelty/ .*fix: re-run `coea pco`"):
        lineage.check_run(run, ALL, _key(run))
    lineage.check_run(run, {"dsie", "pco"}, _key(run))  # PCO alone still belongs to these groups
