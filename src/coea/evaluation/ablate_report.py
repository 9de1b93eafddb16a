"""``coea ablate``'s tables, paired CIs and plot (the run itself is :mod:`coea.ablate`).

Rows of the table: the PCO variants (their final round), ``coea w/o R-LLM`` (= ``nllm_sft``: round 0) and the
baselines. The paired CIs compare each row with the reference on S-H@K and C-H@K of its plain top-K and S-H@K of
its ``+x`` top-K (history categories removed): per-user vectors over the split's evaluated users
(:func:`coea.evaluation.metrics.per_user_metrics`), paired bootstrap over those users
(:func:`coea.evaluation.bootstrap.paired_bootstrap_ci`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coea.errors import CoeaInputError
from coea.evaluation.paired import NOVEL_VIEW_SUFFIXES, best_by, ci_section, is_baseline, paired_cis
from coea.evaluation.registry import EXCLUDE_SUFFIX
from coea.evaluation.report import paired_table
from coea.utils import atomic_path

log = logging.getLogger(__name__)

WITHOUT_RLLM = "coea w/o R-LLM (= nllm_sft, round 0)"
TABLE_METRICS = ("C-H", "C-N", "NCP", "CLTP", "S-H")
CI_METRICS = ("S-H", "C-H", "x_S-H")  # x_ = the +x view

Vectors = Mapping[str, np.ndarray]  # "<metric>@<k>" -> per-user values


def row_vectors(finals: Mapping[str, tuple[Vectors, Vectors]], baselines: Mapping[str, Vectors],
                k: int) -> dict[str, dict[str, np.ndarray]]:
    """Per table row its ``S-H@k``, ``C-H@k`` (plain view) and ``x_S-H@k`` (``+x`` view) per-user vectors.
    ``finals``: variant -> (vectors of its plain, of its ``+x`` final top-K); ``baselines``: per baseline the
    vectors of its lists. A novel-view baseline (``+x``/``_novel``) is its own ``+x`` view; a plain one takes
    ``<name>+x``'s when that was scored; ``coea w/o R-LLM`` = ``nllm_sft`` and ``nllm_sft+x``."""
    sh, ch, xsh = f"S-H@{k}", f"C-H@{k}", f"x_S-H@{k}"
    rows = {name: {sh: plain[sh], ch: plain[ch], xsh: novel[sh]} for name, (plain, novel) in finals.items()}
    if "nllm_sft" in baselines and f"nllm_sft{EXCLUDE_SUFFIX}" in baselines:
        rows[WITHOUT_RLLM] = {sh: baselines["nllm_sft"][sh], ch: baselines["nllm_sft"][ch],
                              xsh: baselines[f"nllm_sft{EXCLUDE_SUFFIX}"][sh]}
    for name, v in baselines.items():
        rows[name] = {sh: v[sh], ch: v[ch]}
        novel_view = v if name.endswith(NOVEL_VIEW_SUFFIXES) else baselines.get(name + EXCLUDE_SUFFIX)
        if novel_view is not None:
            rows[name][xsh] = novel_view[sh]
    return rows


def check_reference(reference: str | None, rows: Sequence[str]) -> None:
    """A configured reference (``eval.reference``) must name a row of the ablation table."""
    if reference is not None and reference not in rows:
        raise CoeaInputError(f"eval.reference {reference!r} is not a row of the ablation", option="--config",
                             fix=f"set eval.reference to one of {list(rows)}, or leave it unset (= the best "
                                 "novelty-excluding baseline)")


def ablate_reference(baselines: Mapping[str, Mapping[str, float]], k: int, reference: str | None = None) -> str:
    """``reference`` if given, else the baseline of the novel view (``+x``/``_novel``) that needs neither the LLMs
    nor PCO (:func:`~coea.evaluation.paired.is_baseline`, as ``coea evaluate``'s rule: the ablation's own round 0,
    ``nllm_sft+x``, is no baseline) with the highest S-H@``k`` (ties: the first), else the first baseline."""
    if reference is not None:
        return reference
    novel = [m for m in baselines if m.endswith(NOVEL_VIEW_SUFFIXES) and is_baseline(m)]
    best = best_by(baselines, f"S-H@{k}", novel)
    return best if best is not None else next(iter(baselines))


def ablate_paired_ci(rows: Mapping[str, Mapping[str, np.ndarray]], reference: str, k: int, *, n_boot: int,
                     level: float, seed: int) -> dict[str, Any]:
    """ablate.json's ``paired_ci`` section (:func:`coea.evaluation.paired.ci_section`, metrics ``S-H``, ``C-H``
    and ``x_S-H``): every row of :func:`row_vectors` but the reference against it. A reference without a ``+x``
    view (a plain baseline whose ``+x`` was not scored) has no ``x_S-H``: that column is left out, with a warning."""
    ref = rows[reference]
    if not any(key.startswith("x_S-H@") for key in ref):
        log.warning("ablate: the reference %s has no +x view, so the paired CIs leave out the +x S-H column; choose "
                    "a +x or _novel baseline as eval.reference to have it", reference)
    cis = paired_cis({name: v for name, v in rows.items() if name != reference}, ref, n_boot=n_boot, level=level,
                     seed=seed)
    n_users = len(next(iter(ref.values())))
    return ci_section(cis, reference, k, CI_METRICS, n_users=n_users, n_boot=n_boot, level=level)


def ablate_table(variants: Mapping[str, list[dict]], baselines: Mapping[str, Mapping[str, float]], k: int,
                 acceptance: Mapping[str, float], rankings: Mapping[str, Mapping[str, float]] | None = None,
                 finals: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """The final-round table (one row per variant, per re-ranking of a variant's final models (``rankings``: its
    metrics at ``k`` and ``x_S-H``), ``coea w/o R-LLM``, one per baseline) and the per-round NCP / C-H table.
    ``finals``: per variant its final models' metrics at ``k`` and ``x_S-H`` over every evaluated user; a variant's
    row shows them (its R-LLM score and KL from its last round) and ``coea w/o R-LLM`` shows ``nllm_sft`` /
    ``nllm_sft+x``, where the per-round metrics may be a sample's (``eval.round_users``)."""
    cols = [f"{m}@{k}" for m in TABLE_METRICS]
    head = "| method | " + " | ".join(cols) + f" | +x S-H@{k} | R-LLM score | KL to SFT |"
    if acceptance:
        head += " sim. acceptance |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def row(name: str, m: Mapping[str, Any], x_sh: Any, r: Any, kl: Any) -> str:
        cells = [m.get(c) for c in cols] + [x_sh, r, kl]
        if acceptance:
            cells.append(acceptance.get(name))
        return f"| {name} | " + " | ".join("" if v is None else f"{v:.4f}" for v in cells) + " |"

    def at_k(r: Mapping[str, Any]) -> dict[str, Any]:
        return {**{f"{key}@{k}": r.get(key) for key in TABLE_METRICS}, "x_S-H": r.get("x_S-H")}

    for name, rows in variants.items():
        m = (finals or {}).get(name) or at_k(rows[-1])
        lines.append(row(name, m, m.get("x_S-H"), rows[-1].get("rscore"), rows[-1].get("kl_sft")))
    for name, m in (rankings or {}).items():
        lines.append(row(name, m, m.get("x_S-H"), None, None))
    first = next(iter(variants.values()))
    sft, sft_x = baselines.get("nllm_sft"), baselines.get(f"nllm_sft{EXCLUDE_SUFFIX}")
    m = {**sft, "x_S-H": sft_x.get(f"S-H@{k}")} if finals and sft and sft_x else at_k(first[0])
    lines.append(row(WITHOUT_RLLM, m, m.get("x_S-H"), first[0].get("rscore"), 0.0))
    for name, m in baselines.items():
        lines.append(row(name, m, m.get(f"S-H@{k}") if name.endswith(NOVEL_VIEW_SUFFIXES) else None, None, None))
    rounds = ["| variant | " + " | ".join(f"r{r['round']} NCP / C-H" for r in first) + " |"]
    rounds.append("|" + "---|" * (len(first) + 1))
    for name, rows in variants.items():
        rounds.append(f"| {name} | " + " | ".join(f"{r.get('NCP', 0):.4f} / {r.get('C-H', 0):.4f}" for r in rows)
                      + " |")
    return "\n".join(lines) + f"\n\n## Per round (K={k})\n\n" + "\n".join(rounds) + "\n"


def ablate_paired_table(section: Mapping[str, Any]) -> str:
    """The Markdown table of ablate.json's ``paired_ci``: S-H, C-H and ``+x`` S-H differences vs the reference."""
    k = section["k"]
    return paired_table(section, {f"S-H@{k}": f"S-H@{k}", f"C-H@{k}": f"C-H@{k}", f"x_S-H@{k}": f"+x S-H@{k}"})


def curve_styles(n: int) -> list[tuple[str, str, str]]:
    """``n`` distinct (colour, line style, marker) triples: 10 colours, then the same colours dashed with another
    marker, and so on (an 11th curve drawn in the 1st one's colour and style hid it where they were equal)."""
    colors = [f"C{i}" for i in range(10)]
    lines, markers = ["-", "--", ":", "-."], ["o", "s", "^", "D"]
    return [(colors[i % 10], lines[i // 10 % 4], markers[i // 10 % 4]) for i in range(n)]


def plot_ablation(variants: Mapping[str, list[dict]], out_path: Path, k: int) -> Path:
    """NCP@K and C-H@K per PCO round, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    styles = curve_styles(len(variants))
    for ax, key in zip(axes, ("NCP", "C-H"), strict=True):
        for (name, rows), (color, line, marker) in zip(variants.items(), styles, strict=True):
            ax.plot([r["round"] for r in rows], [r.get(key, np.nan) for r in rows], color=color, linestyle=line,
                    marker=marker, label=name)
        ax.set_title(f"{key}@{k} per PCO round")
        ax.set_xlabel("round (0 = SFT)")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))  # beside the curves, not on them
    fig.tight_layout()
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return out_path
