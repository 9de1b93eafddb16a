"""``pco_metrics.png``: the per-round metrics rows of a PCO run, one panel per metric; the same as a page for a
Kubeflow HTML artifact (:func:`rounds_page`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coea.html_artifact import Chart, artifact_page, figure_svg, html_table
from coea.utils import atomic_path

PLOT_METRICS = ("NCP", "C-H", "S-H", "x_S-H", "rscore", "kl_sft")  # plotted when the rows carry them


def rounds_figure(rows: list[dict[str, Any]], title: str):
    """One panel per metric of :data:`PLOT_METRICS` present in ``rows``, over rounds; the matplotlib figure."""
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
    return fig


def plot_rounds(rows: list[dict[str, Any]], out_path: Path, title: str) -> Path:
    """:func:`rounds_figure` saved as a PNG at ``out_path`` (atomically)."""
    import matplotlib.pyplot as plt

    fig = rounds_figure(rows, title)
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return out_path


def rounds_page(rows: list[dict[str, Any]], title: str) -> str:
    """The rounds as a self-contained page (:mod:`coea.html_artifact`): a table of the plotted metrics per round
    and :func:`rounds_figure` as an inline SVG."""
    import matplotlib.pyplot as plt

    keys = [k for k in PLOT_METRICS if any(k in row for row in rows)]
    table = html_table(["round", *keys], [[row.get("round", ""), *(row.get(k, "") for k in keys)] for row in rows])
    fig = rounds_figure(rows, title)
    chart = Chart("metrics over rounds", figure_svg(fig), "The PNG is pco_metrics.png in the PCO model artifact.")
    plt.close(fig)
    return artifact_page(title, [table], [chart])
