"""``run_pco``: PCO rounds on top of SFT models, with per-round metrics on the evaluation split.

Outputs under ``out_dir``: the loop's checkpoints (``rounds/round_NNN/``, ``pco_state.json``), then
``pco_metrics.json`` (one row per round, round 0 = the SFT models) and ``pco_metrics.png``.

Per-round metrics (K = ``cfg.pco.k``): C-H, C-N, NCP, CLTP, S-H of the N-LLM's plain top-K and S-H of its
``+x`` top-K on the split's evaluated users; ``rscore``: the R-LLM's mean P(yes) of the plain top-K;
``kl_sft``: the mean over evaluated users of KL(SFT || current) between the N-LLM's category distributions
(first-step softmax restricted to category names, exact); plus the loop's own round figures (pairs, DPO
margin and KL estimate, acceptance before/after, seconds per step). The evaluation future is used only here,
to score; nothing computed from it reaches training.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np

from coea.config import EvalConfig
from coea.data.schema import CATEGORY
from coea.data.split import Split
from coea.errors import CoeaInputError
from coea.evaluation.metrics import evaluate_lists, long_tail
from coea.llm.models import ModelBundle
from coea.llm.prompts import PromptContext, novelty_prompt, relevance_prompt
from coea.llm.sft_config import LlmConfig
from coea.llm.sft_data import GroupInfo
from coea.pco.config import PcoConfig
from coea.pco.loop import PcoLoop, PcoResult
from coea.utils import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

PLOT_METRICS = ("NCP", "C-H", "S-H", "x_S-H", "rscore", "kl_sft")


def _category_logp(bundle: ModelBundle, index, prompts: list[str], batch_size: int) -> np.ndarray:
    """(P, C) log-softmax over category names only."""
    from coea.llm.decode import category_logprobs

    lp = category_logprobs(bundle.model, bundle.tokenizer, prompts, index, batch_size)
    return lp - np.logaddexp.reduce(lp, axis=1, keepdims=True)


def _top(scores: np.ndarray, categories: list[str], k: int, banned: list[set[str]] | None = None) -> list[list[str]]:
    s = scores.copy()
    if banned is not None:
        col = {c: j for j, c in enumerate(categories)}
        for row, b in enumerate(banned):
            s[row, [col[c] for c in b if c in col]] = -np.inf
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return [[categories[j] for j in cols if np.isfinite(s[row, j])] for row, cols in enumerate(order)]


class SplitEvaluator:
    """The per-round metrics callback of :class:`PcoLoop` (holds the split; the loop never sees it)."""

    def __init__(self, split: Split, groups: dict[str, GroupInfo], llm: LlmConfig, k: int,
                 long_tail_share: float = EvalConfig().long_tail_share) -> None:
        hist = split.histories
        self.split, self.llm, self.k, self.categories = split, llm, k, list(hist.categories)
        self.users = [u for u in split.warm_users if u in groups]
        self.history = hist.user_categories()
        counts = hist.interactions[CATEGORY].value_counts().to_dict()
        self.tail = long_tail({c: int(counts.get(c, 0)) for c in self.categories}, long_tail_share)
        self.contexts = [PromptContext(groups[u].csid, groups[u].profile, tuple(hist.short_term.get(u, ())))
                         for u in self.users]
        self.prompts = [novelty_prompt(c, with_group=llm.data.with_group) for c in self.contexts]
        self.sft_logp: np.ndarray | None = None

    def _metrics(self, recs: list[list[str]]) -> dict[str, float]:
        return evaluate_lists(dict(zip(self.users, recs, strict=True)), self.users, self.history,
                              self.split.future_categories, self.tail, len(self.categories), [self.k])

    def __call__(self, r: int, novelty: ModelBundle, relevance: ModelBundle) -> dict[str, float]:
        from coea.llm.decode import CategoryIndex, relevance_scores

        index = CategoryIndex(novelty.tokenizer, self.categories)
        logp = _category_logp(novelty, index, self.prompts, self.llm.batch_size)  # (U, C)
        if self.sft_logp is None:
            self.sft_logp = logp  # round 0 = the SFT model
        kl = float(np.mean(np.sum(np.exp(self.sft_logp) * (self.sft_logp - logp), axis=1)))
        plain = _top(logp, self.categories, self.k)
        novel = _top(logp, self.categories, self.k, [self.history.get(u, set()) for u in self.users])
        pairs = [relevance_prompt(c, cat, with_group=self.llm.data.with_group)
                 for c, row in zip(self.contexts, plain, strict=True) for cat in row]
        rscore = float(np.mean(relevance_scores(relevance.model, relevance.tokenizer, pairs,
                                                batch_size=self.llm.batch_size))) if pairs else 0.0
        m = {name.split("@")[0]: v for name, v in self._metrics(plain).items()}
        m.update({f"x_{name.split('@')[0]}": v for name, v in self._metrics(novel).items()})
        out = {key: m[key] for key in ("C-H", "C-N", "NCP", "CLTP", "S-H", "x_S-H", "x_C-H")}
        out.update(rscore=rscore, kl_sft=kl, evaluated_users=len(self.users))
        log.info("pco round %d eval: %s", r, ", ".join(f"{k} {v:.4f}" for k, v in out.items()))
        return out


def plot_rounds(rows: list[dict[str, Any]], out_path: Path, title: str) -> Path:
    """One panel per metric of :data:`PLOT_METRICS` over rounds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in PLOT_METRICS if any(k in row for row in rows)]
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(3.2 * max(len(keys), 1), 3.0), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=False):
        pts = [(row["round"], row[key]) for row in rows if row.get(key) is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o")
        ax.set_title(key)
        ax.set_xlabel("round")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return out_path


def run_pco(cfg: PcoConfig, llm: LlmConfig, split: Split, groups: dict[str, GroupInfo], novelty: ModelBundle,
            relevance: ModelBundle, out_dir: Path | None = None, *, resume: bool = False,
            evaluate: bool = True, copy_models: bool = True) -> PcoResult:
    """PCO rounds on the split's histories starting from the given SFT models (copied unless told not to)."""
    if copy_models:
        novelty, relevance = copy.deepcopy(novelty), copy.deepcopy(relevance)
    hist = split.histories
    evaluator = SplitEvaluator(split, groups, llm, cfg.k) if evaluate else None
    loop = PcoLoop(cfg, llm, hist.interactions, list(hist.categories), groups, novelty, relevance, out_dir,
                   evaluator, n_short=split.config.n_short)
    if evaluator is not None and resume and out_dir is not None:
        evaluator(0, loop.novelty, loop.relevance)  # the SFT distribution kl_sft compares against
    result = loop.run(resume=resume)
    if out_dir is not None:
        write_json_atomic(out_dir / "pco_metrics.json", {"rounds": result.rounds})
        plot_rounds(result.rounds, out_dir / "pco_metrics.png", "PCO rounds")
    return result


def run_pco_job(cfg, groups_dir: Path, models_dir: Path, out_dir: Path, *, resume: bool = False) -> PcoResult:
    """``coea pco``: PCO rounds from the SFT models of ``coea train-llms`` (``models_dir``) and the groups of
    ``coea group`` (``groups_dir``) on the configured data's split; ``resume`` continues ``out_dir``."""
    from coea.data.loaders import load_data
    from coea.data.split import chronological_split
    from coea.llm.models import load_bundle
    from coea.llm.sft_data import group_infos
    from coea.llm_job import read_groups_dir
    from coea.utils import seed_everything

    seed_everything(cfg.pco.seed)
    g = read_groups_dir(Path(groups_dir))
    split = chronological_split(load_data(cfg.data, cfg.synthetic).interactions, cfg.split)
    for name in ("novelty", "relevance"):
        if not (Path(models_dir) / name).is_dir():
            raise CoeaInputError(f"no {name}/ model", source=models_dir, fix="pass the --out directory of "
                                 "`coea train-llms` (or the llm/ directory of a run)")
    device = cfg.llm.novelty.device
    novelty = load_bundle(Path(models_dir) / "novelty", trainable=True, device=device)
    relevance = load_bundle(Path(models_dir) / "relevance", trainable=True, device=device)
    return run_pco(cfg.pco, cfg.llm, split, group_infos(g.groups, g.profiles), novelty, relevance, Path(out_dir),
                   resume=resume, copy_models=False)
