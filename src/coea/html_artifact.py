"""Self-contained HTML pages for Kubeflow's ``HTML`` artifacts (``Output[HTML]``, shown by the KFP v2 UI).

kubeflow/pipelines#10527 reports a ``dsl.HTML`` artifact whose page embeds a plot as a base64 PNG
(``<img src="data:image/png;base64,...">``) that the v2 UI does not display, although the file is valid; the
issue was closed as stale without a fix or a stated size limit. So these pages embed no images at all: charts
are inline SVG (matplotlib's vector output, text kept as text), tables are HTML, CSS is inline, and nothing is
loaded from elsewhere. Every page is kept under :data:`HTML_ARTIFACT_LIMIT` bytes: charts that would push it
over are left out, with a line saying so (the PNGs stay in the step's other artifacts).

The pages are well-formed XML after their ``<!doctype html>`` line (every tag closed), so a test can parse them.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Bytes (UTF-8) of one page: a conservative bound (a page this size renders at once in an iframe), far above a
# table plus a few vector charts (tens of KiB), far below what makes a browser tab struggle.
HTML_ARTIFACT_LIMIT = 512 * 1024
CSS = ("body{font-family:system-ui,sans-serif;margin:1rem;color:#222}h1{font-size:1.3rem}h2{font-size:1.1rem}"
       "table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}th,td{border:1px solid #ccc;"
       "padding:.2rem .45rem;text-align:right}th:first-child,td:first-child{text-align:left}"
       "thead th{background:#f3f3f3}svg{max-width:100%;height:auto}.note{color:#777}")


@dataclass(frozen=True)
class Chart:
    """One inline SVG chart of a page, with the sentence shown when it is left out."""

    title: str
    svg: str  # an <svg> element (:func:`figure_svg`)
    fallback: str = ""  # e.g. "the PNG is metrics_at_10.png in the report artifact"


def figure_svg(fig) -> str:
    """A matplotlib figure as one ``<svg>`` element (no XML prolog, no DOCTYPE, fonts as text, no date), ready to
    be placed inside an HTML page."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "coea"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):].strip()


def html_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An HTML table (cells escaped; floats with 4 decimals; None empty)."""
    def cell(value: object) -> str:
        return escape(f"{value:.4f}" if isinstance(value, float) else "" if value is None else str(value))

    head = "".join(f"<th>{cell(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def artifact_page(title: str, blocks: Sequence[str], charts: Sequence[Chart] = (), *,
                  limit: int = HTML_ARTIFACT_LIMIT) -> str:
    """The page: ``title``, the HTML ``blocks`` (tables, paragraphs), then the ``charts`` that fit under
    ``limit`` bytes, in order; a chart that does not fit is replaced by a note. A page whose blocks alone pass
    the limit is a ``ValueError``."""
    def page(parts: Sequence[str]) -> str:
        t = escape(title)
        return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"/><title>{t}</title>'
                f"<style>{CSS}</style></head>\n<body><h1>{t}</h1>\n" + "\n".join(parts) + "\n</body></html>\n")

    parts = list(blocks)
    if page_bytes(page(parts)) > limit:
        raise ValueError(f"the page {title!r} is over {limit} bytes without its charts")
    for chart in charts:
        shown = f"<h2>{escape(chart.title)}</h2>\n<figure>{chart.svg}</figure>"
        note = (f'<h2>{escape(chart.title)}</h2>\n<p class="note">chart left out: the page would pass '
                f"{limit // 1024} KiB. {escape(chart.fallback)}</p>")
        parts.append(shown if page_bytes(page([*parts, shown])) <= limit else note)
    return page(parts)


def page_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def external_references(text: str) -> list[str]:
    """What a page would load from elsewhere or embed as a data URI (``src=``/``href=`` values, CSS ``url(``);
    empty for a self-contained page. SVG's own ``xmlns``/``#id`` references are not loads."""
    found = re.findall(r'(?:src|href)\s*=\s*"([^"#][^"]*)"', text)
    found += re.findall(r"url\(\s*['\"]?([^'\")#][^'\")]*)", text)
    return found
