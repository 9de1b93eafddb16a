"""What the kfp.local recurring-run tests share: the tasks a run ran, the state's models, the checks of a PCO
update, the recurring config."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd

from coea.config import SERVED_METHOD, EvalConfig
from coea.state import read_pointer
from tests.pipeline.pipeline_helpers import BASELINES, tiny_config


def task_dirs(kfp_root: Path) -> set[str]:
    """Names of the tasks that ran (each writes its outputs under <pipeline_root>/<run>/<task>/), without the
    suffix KFP gives a second task of the same component (``evaluate-2`` in the else branch)."""
    (run,) = [p for p in kfp_root.iterdir() if p.is_dir() and p.name.startswith("coea-")]
    return {re.sub(r"-\d+$", "", p.name) for p in run.iterdir() if p.is_dir()}


RECURRING_METHODS = [*BASELINES, SERVED_METHOD]  # the served method, from the period's PCO dir


def recurring_config(**changes):
    """The baselines and the served method (the LLMs come from the state, nothing trains in-process)."""
    return tiny_config(eval=EvalConfig(methods=RECURRING_METHODS), **changes)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def state_models(state: str) -> tuple[str, Path]:
    """(active models version, its dir) of a local state."""
    pointer = read_pointer(state)
    assert pointer is not None
    return pointer["models"]["snapshot"], Path(state) / "models" / pointer["models"]["snapshot"]


def assert_pco_update(kfp_root: Path, state: str, before: str) -> None:
    """The recurring run loaded the state's models, ran PCO from them, and saved its last round as a new version;
    the served recommendations came from the served method and evaluate scored it."""
    (run,) = [p for p in kfp_root.iterdir() if p.is_dir() and p.name.startswith("coea-")]
    loaded = run / "load-models"
    assert tree(loaded / "novelty" / "novelty") == tree(Path(state) / "models" / before / "novelty")
    (pco,) = [p for p in run.iterdir() if p.name.startswith("pco-loop")]
    pco_state = json.loads((pco / "model" / "pco_state.json").read_text())
    assert pco_state["completed_rounds"] == 2
    version, models = state_models(state)
    assert version != before
    last = pco / "model" / "rounds" / "round_002"
    for name in ("novelty", "relevance"):
        assert tree(models / name) == tree(last / name)
    # the update changed the models: at least the R-LLM, refreshed on the period's feedback every round (the tiny
    # N-LLM's DPO may find no pair with enough margin on this data)
    assert all(r["refresh_examples"] > 0 for r in pco_state["rounds"][1:])
    # load-state handed PCO what the store served before the period (the training run's top-5 of 120
    # users), and the rounds used it: served categories joined the candidates of users with feedback
    served = pd.read_parquet(run / "load-state" / "served")
    assert served["user_id"].nunique() == 120 and served.groupby("user_id").size().max() == 5
    assert sum(r["feedback_exposed"] for r in pco_state["rounds"][1:]) > 0
    assert tree(models / "relevance") != tree(Path(state) / "models" / before / "relevance")
    (evaluate,) = [p for p in run.iterdir() if p.name.startswith("evaluate")]
    metrics = json.loads((evaluate / "report" / "metrics.json").read_text())["methods"]
    assert metrics[SERVED_METHOD]["NCP@10"] > 0.99
    (recommend,) = [p for p in run.iterdir() if p.name.startswith("recommend")]
    recs = pd.read_parquet(recommend / "recommendations")
    assert recs["user_id"].nunique() == 120 and recs.groupby("user_id").size().max() == 5


def later_period(state: str, out: Path, days: int = 7) -> Path:
    """The state's reference window ``days`` later (every timestamp shifted; the same users and behaviour): a new
    period with no drift, written as parquet. The state's pointer records the period it holds the update from, and
    a recurring run on that very data is refused (load_models), so a recurring run needs data of its own."""
    pointer = read_pointer(state)
    assert pointer is not None
    log = pd.read_parquet(Path(state) / "snapshots" / pointer["snapshot"] / "data" / "interactions.parquet")
    log.assign(timestamp=log["timestamp"] + days * 86_400).to_parquet(out, index=False)
    return out


def state_copy(trained: tuple[Path, dict[str, Path]], dst: Path) -> str:
    shutil.copytree(trained[0] / "state", dst)
    return str(dst)
