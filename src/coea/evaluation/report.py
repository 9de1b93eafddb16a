"""Metrics tables (Markdown), plots (PNG) and the report page (an HTML artifact) of evaluation outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from coea.html_artifact import Chart, artifact_page, figure_svg, html_table
from coea.utils import atomic_path

METRIC_ORDER = ("C-H", "C-N", "NCP", "CLTP", "S-H", "S-P", "Cov")
PLOT_METRICS = ("C-H", "C-N", "NCP", "CLTP", "S-H")


def metrics_table(methods: Mapping[str, Mapping[str, float]], ks: Sequence[int]) -> str:
    """A Markdown table: one row per method, one column per metric@K."""
    cols = [f"{m}@{k}" for k in ks for m in METRIC_ORDER]
    lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, values in methods.items():
        cells = [f"{values[c]:.4f}" if c in values else "" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ci_text(ci: Mapping[str, Any] | None) -> str:
    """``+0.0123 [+0.0040, +0.0210]``: the difference and its interval; empty when there is no interval."""
    return f"{ci['diff']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}]" if ci else ""


def ci_cell(ci: Mapping[str, Any] | None) -> str:
    """:func:`ci_text`, bold (Markdown) when the interval excludes 0."""
    cell = ci_text(ci)
    return f"**{cell}**" if cell and ci["excludes_zero"] else cell


def paired_table(section: Mapping[str, Any], columns: Mapping[str, str] | None = None) -> str:
    """The Markdown table of a ``paired_ci`` section (:func:`coea.evaluation.paired.ci_section`): a heading
    naming the reference, one row per method, one column per ``columns`` key (default: ``<metric>@<k>``
    for the section's metrics; the values are the column headers) and a line on how to read it."""
    k = section["k"]
    columns = columns or {f"{m}@{k}": f"{m}@{k}" for m in section["metrics"]}
    lines = [f"## Paired difference vs {section['reference']} ({section['level'] * 100:g} % bootstrap CI over "
             f"{section['n_users']} users)", "",
             "| method | " + " | ".join(columns.values()) + " |", "|---|" + "---:|" * len(columns)]
    for name, cis in section["methods"].items():
        lines.append(f"| {name} | " + " | ".join(ci_cell(cis.get(key)) for key in columns) + " |")
    lines += ["", f"Method minus {section['reference']}, mean over users [percentile interval of "
              f"{section['n_boot']} paired bootstrap replicates: users resampled with replacement, the same "
              "users for both methods]; **bold**: the interval excludes 0."]
    return "\n".join(lines) + "\n"


HATCHES = ("", "////", "....", "xxxx")


def method_styles(n: int) -> list[tuple[tuple[float, float, float, float], str]]:
    """(colour, hatch) of each of ``n`` methods' bars, all different for up to 40 methods: matplotlib's 20
    ``tab20`` colours (a dark and a light shade of 10 hues), every light shade also hatched so the two shades of
    a hue differ in pattern too; past 20 methods the colours repeat with other hatches."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return [(cmap(i % 20), HATCHES[(i % 2 + 2 * (i // 20)) % len(HATCHES)]) for i in range(n)]


def bar_figure(methods: Mapping[str, Mapping[str, float]], k: int, title: str = ""):
    """Grouped bars of the main metrics at cut-off ``k``, one group per metric, one bar per method (styled by
    :func:`method_styles`); returns the matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(methods)
    x = np.arange(len(PLOT_METRICS))
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(PLOT_METRICS) + 0.4 * len(names)), 4.0))
    for i, (name, (colour, hatch)) in enumerate(zip(names, method_styles(len(names)), strict=True)):
        values = [methods[name].get(f"{m}@{k}", 0.0) for m in PLOT_METRICS]
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=name, color=colour, hatch=hatch,
               edgecolor="#333333", linewidth=0.3)
    ax.set_xticks(x, [f"{m}@{k}" for m in PLOT_METRICS])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("value (mean over users)")
    ax.set_title(title or f"Category metrics at K={k}")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def bar_chart(methods: Mapping[str, Mapping[str, float]], k: int, path: Path, title: str = "") -> Path:
    """:func:`bar_figure` saved as a PNG at ``path`` (atomically)."""
    import matplotlib.pyplot as plt

    fig = bar_figure(methods, k, title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def report_page(metrics: Mapping[str, Any], k: int, title: str, png_name: str = "") -> str:
    """The evaluation as one self-contained page for a Kubeflow HTML artifact (:mod:`coea.html_artifact`): the
    data set, every method's metrics at ``k``, the paired differences when present, and :func:`bar_figure` as an
    inline SVG (``png_name``: where the PNG is, named when the chart is left out for size)."""
    import matplotlib.pyplot as plt

    data = metrics.get("dataset", {})
    blocks = [f"<p>{len(metrics['methods'])} methods on {escape(str(data.get('source', '?')))}: "
              f"{data.get('users', '?')} users, {data.get('interactions', '?')} interactions; "
              f"values are means over the evaluated users at K={k}.</p>",
              html_table(["method", *(f"{m}@{k}" for m in METRIC_ORDER)],
                         [[name, *(values.get(f"{m}@{k}", "") for m in METRIC_ORDER)]
                          for name, values in metrics["methods"].items()])]
    paired = metrics.get("paired_ci") or {}
    if paired.get("methods"):
        keys = [f"{m}@{paired['k']}" for m in paired["metrics"]]
        blocks += [f"<h2>Paired difference vs {escape(str(paired['reference']))} "
                   f"({paired['level'] * 100:g} % bootstrap interval)</h2>",
                   html_table(["method", *keys], [[name, *(ci_text(cis.get(key)) for key in keys)]
                                                  for name, cis in paired["methods"].items()])]
    fig = bar_figure(metrics["methods"], k, title)
    chart = Chart(f"Category metrics at K={k}", figure_svg(fig), f"The PNG is {png_name}." if png_name else "")
    plt.close(fig)
    return artifact_page(title, blocks, [chart])
