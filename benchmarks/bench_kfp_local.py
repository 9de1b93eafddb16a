"""Overhead of running ``coea_training`` with kfp.local vs calling the same ``run_*`` stage functions directly
in one process, on a small synthetic config (the ratio is what matters; both are measured in the same run).

Direct path, in pipeline order: run_prepare_data -> run_dsie_group -> run_sft_stage (novelty, relevance) ->
run_pco_stage -> export_pco_models + run_save_state (groups and models) -> run_evaluate_stage -> run_recommend
(coea+x) -> run_export.
Run: ``make bench`` or ``python benchmarks/bench_kfp_local.py``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

from coea.config import RunConfig, from_dict  # noqa: E402
from coea.stages import (  # noqa: E402
    export_pco_models,
    run_dsie_group,
    run_evaluate_stage,
    run_pco_stage,
    run_prepare_data,
    run_recommend,
    run_sft_stage,
)
from coea.state import run_export, run_save_state  # noqa: E402
from coea.store.publish import PublishConfig  # noqa: E402
from pipelines.local import run_training_locally  # noqa: E402

SMALL = {
    "synthetic": {"n_users": 200, "n_categories": 20, "n_groups": 4},
    "dsie": {"encoder": {"dim": 16, "epochs": 5}, "rqvae": {"epochs": 50}, "group": {"min_group_size": 5}},
    "llm": {"model": {"hidden_size": 32, "intermediate_size": 64}, "novelty": {"epochs": 1},
            "relevance": {"epochs": 1}, "best_of_n": 5},
    "pco": {"rounds": 2, "users_per_round": 64, "relevance_refresh": {"max_examples": 500}},
    "eval": {"methods": ["pop", "markov", "group_pop_novel", "nllm_sft", "nllm_sft+x", "coea+x"]},
}


def direct(cfg: RunConfig, root: Path) -> None:
    data, dsie, llm = root / "data", root / "dsie", root / "llm"
    run_prepare_data(cfg, data)
    run_dsie_group(cfg, data, dsie)
    for which in ("novelty", "relevance"):
        run_sft_stage(cfg, data, dsie, llm / which, which=(which,))
    llm_dirs = [llm / "novelty", llm / "relevance"]
    run_pco_stage(cfg, data, dsie, llm_dirs, root / "pco")
    export_pco_models(root / "pco", root / "models", root / "models")
    run_save_state(str(root / "state"), data, dsie, root / "models", root / "models")
    run_evaluate_stage(cfg, data, dsie, root / "eval", llm_dir=llm_dirs, pco_dir=root / "pco")
    run_recommend(cfg, data, dsie, "coea+x", 10, root / "recs.parquet", llm_dir=llm_dirs, pco_dir=root / "pco")
    run_export(PublishConfig(), root / "recs.parquet", str(root / "state"), root / "recs.sqlite")


def main() -> int:
    cfg = from_dict(RunConfig, SMALL, where="bench config")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        direct(cfg, Path(tmp) / "direct")
        t_direct = time.perf_counter() - start
        start = time.perf_counter()
        run_training_locally(cfg, Path(tmp) / "kfp")
        t_kfp = time.perf_counter() - start
    rows["run_* functions in-process (baseline)"] = {"seconds": t_direct, "min_seconds": t_direct, "peak_mib": 0.0}
    rows["coea_training via kfp.local"] = {"seconds": t_kfp, "min_seconds": t_kfp, "peak_mib": 0.0,
                                           "ratio": t_kfp / t_direct}
    print(f"kfp.local {t_kfp:.1f}s vs direct {t_direct:.1f}s: overhead ratio {t_kfp / t_direct:.2f}x")
    report("kfp_local_overhead", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
