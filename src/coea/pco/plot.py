"""``pco_metrics.png``: the per-round metrics rows of a PCO run, one panel per metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coea.utils import atomic_path

PLOT_METRICS = ("NCP", "C-H", "S-H", "x_S-H", "rscore", "kl_sft")  # plotted when the rows carry them


def plot_rounds(rows: list[dict[str, Any]], out_path: Path, title: str) -> Path:
    """One panel per metric of :data:`PLOT_METRICS` present in ``rows``, over rounds."""
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
