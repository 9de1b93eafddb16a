"""Overhead of running ``coea_training`` with kfp.local vs calling the same ``run_*`` stage functions directly
in one process, on a small synthetic config (the ratio is what matters; both are measured in the same run).

Direct path: ``coea.flow.run_flow`` with the pipeline's options (state commit, the served method's top-K exported), i.e.
the same steps in the same order: prepare -> DSIE -> SFT (novelty, relevance) -> PCO -> save state -> evaluate ->
recommend -> export.
Both paths run with the same torch thread count: ``COEA_TORCH_THREADS`` (1 unless set), which every stage applies
(:func:`coea.device.resolve_device`) and the kfp.local steps inherit. The kfp.local steps run warm
(:mod:`pipelines.warm`, forked from a server that preloaded their imports; ``COEA_KFP_LOCAL_WARM=0``: a fresh
Python per step; not by default on a machine with an NVIDIA GPU); the fork server's start is part of the kfp.local
time.
Run: ``make bench`` or ``python benchmarks/bench_kfp_local.py``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import no_options, report  # noqa: E402

from coea.config import RunConfig, from_dict  # noqa: E402
from coea.flow import Serve, run_flow  # noqa: E402
from coea.layout import RunLayout  # noqa: E402
from pipelines.local import run_training_locally  # noqa: E402
from pipelines.warm import warm_enabled  # noqa: E402

SMALL = {
    "synthetic": {"n_users": 200, "n_categories": 20, "n_groups": 4},
    "dsie": {"encoder": {"dim": 16, "epochs": 5}, "rqvae": {"epochs": 50}, "group": {"min_group_size": 5}},
    "llm": {"model": {"hidden_size": 32, "intermediate_size": 64}, "novelty": {"epochs": 1},
            "relevance": {"epochs": 1}, "best_of_n": 5},
    "pco": {"rounds": 2, "users_per_round": 64, "relevance_refresh": {"max_examples": 500}},
    "eval": {"methods": ["pop", "markov", "group_pop_novel", "nllm_sft", "nllm_sft+x", "coea+x"]},
}


def direct(cfg: RunConfig, root: Path) -> None:
    run_flow(cfg, RunLayout(root), state_uri=str(root / "state"), serve=Serve())


def main() -> int:
    os.environ.setdefault("COEA_TORCH_THREADS", "1")
    cfg = from_dict(RunConfig, SMALL, where="bench config")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        direct(cfg, Path(tmp) / "direct")
        t_direct = time.perf_counter() - start
        start = time.perf_counter()
        run_training_locally(cfg, Path(tmp) / "kfp")
        t_kfp = time.perf_counter() - start
    rows["run_* functions in-process (baseline)"] = {"seconds": t_direct, "min_seconds": t_direct}
    rows["coea_training via kfp.local"] = {"seconds": t_kfp, "min_seconds": t_kfp,
                                           "ratio": t_kfp / t_direct}
    print(f"kfp.local {t_kfp:.1f}s vs direct {t_direct:.1f}s: overhead ratio {t_kfp / t_direct:.2f}x")
    print(f"({os.environ['COEA_TORCH_THREADS']} torch thread(s), warm steps: {warm_enabled()})")
    report("kfp_local_overhead", rows, {"torch_threads": os.environ["COEA_TORCH_THREADS"],
                                        "warm_steps": warm_enabled()})
    return 0


if __name__ == "__main__":
    no_options(__doc__)
    raise SystemExit(main())
