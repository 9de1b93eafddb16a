"""One self-contained HTML page per run: metrics, plots, DSIE groups, drift and PCO rounds.

Everything is read from the run directory (``runs/<timestamp>/``); missing parts are left out. The page has no
external references and no script: the CSS is inline and every PNG is embedded as a ``data:`` URI.
"""

from __future__ import annotations

import base64
import json
import logging
from html import escape
from pathlib import Path
from typing import Any

from coea import lineage
from coea.errors import CoeaInputError, reading
from coea.evaluation.report import ci_text
from coea.layout import RunLayout
from coea.report_terms import DSIE_TERMS, METRIC_TERMS, PCO_TERMS, PLUS_X
from coea.utils import write_text_atomic

log = logging.getLogger(__name__)

REPORT_HTML = "report.html"
MAIN_METRICS = ("C-H", "C-N", "NCP", "CLTP", "S-H", "S-P", "Cov")
REPORT_KS = (10, 5)
SKIPPED_DIRS = {"kfp", "state"}  # the pipeline's own copies of the artifacts and the live state

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222;max-width:1400px}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
h3{font-size:1.05rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{background:#f3f3f3}
tr:nth-child(even) td{background:#fafafa}
.k10{background:#eef5ff}.muted{color:#777}.below{background:#fdecea;border-left:4px solid #c62828;padding:.4rem .6rem}
figure{margin:1rem 0}img{max-width:100%;border:1px solid #eee}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem;font-size:.9rem}dt{font-weight:600}
"""

def render_report(run_dir: Path, out_path: Path | None = None) -> Path:
    """Write the run's report page (default ``run_dir/report.html``); returns its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    out_path = Path(out_path) if out_path is not None else run_dir / REPORT_HTML
    write_text_atomic(out_path, build_html(run_dir))
    log.debug("wrote %s", out_path)  # its callers print the path (`coea report`, `coea run`'s summary)
    return out_path


def _input_files(run_dir: Path) -> tuple[dict[str, Path], list[Path], list[Path]]:
    """What the page reads: the JSON files by section (each may be missing), the plots, the drift reports."""
    pco = run_dir / "pco" / "pco_metrics.json"
    named = {"served": RunLayout(run_dir).served, "metrics": run_dir / "metrics.json",
             "dsie": run_dir / "dsie" / "group_report.json",
             "pco": pco if pco.is_file() else run_dir / "pco_metrics.json"}  # a run's, or a `coea pco --out`'s
    return named, _find_files(run_dir, "*.png"), _find_files(run_dir, "drift.json")


def report_inputs(run_dir: Path) -> list[Path]:
    """The files of ``run_dir`` the page shows (metrics, served lists, plots, DSIE report, drift, PCO metrics);
    none means the folder is no run."""
    named, pngs, drift = _input_files(run_dir)
    return [p for p in named.values() if p.is_file()] + pngs + drift


def build_html(run_dir: Path) -> str:
    """The page as a string."""
    named, pngs, drift = _input_files(run_dir)
    metrics = read_metrics(named["metrics"])
    paired = paired_section(metrics)
    sections = [
        _served_section(_read_json(named["served"]), paired),
        _metrics_section(metrics, paired),
        _plots_section(run_dir, pngs),
        _dsie_section(_read_json(named["dsie"])),
        _drift_section(run_dir, drift),
        _pco_section(_read_json(named["pco"]), unfinished=lineage.unfinished(named["pco"].parent)),
    ]
    title = f"CoEA run {run_dir.resolve().name}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n<h1>{escape(title)}</h1>\n"
            + "\n".join(s for s in sections if s) + "\n</body></html>\n")


# ---------------------------------------------------------------- reading


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        log.warning("report: cannot read %s: %s", path, err)
        return None


METRICS_FIX = "re-run `coea evaluate --from-run RUN --out RUN` to write it again, or move it aside to render the rest"


def read_metrics(path: Path) -> dict[str, Any] | None:
    """``metrics.json`` (None when there is none). Unlike the page's other inputs, which are left out with a warning
    when unreadable, a damaged one is an error naming it: a page without its metrics would pass for a run without
    evaluation."""
    if not path.is_file():
        return None
    with reading(path, METRICS_FIX):
        metrics = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(metrics, dict):
        raise CoeaInputError(f"not a metrics file: a JSON {type(metrics).__name__}, not an object", source=path,
                             fix=METRICS_FIX)
    for key in ("methods", "cold_start"):
        table = metrics.get(key)
        if table is not None and not (isinstance(table, dict) and all(isinstance(v, dict) for v in table.values())):
            raise CoeaInputError(f"not a metrics file: '{key}' is not an object of method -> scores", source=path,
                                 fix=METRICS_FIX)
    return metrics


def _find_files(run_dir: Path, pattern: str) -> list[Path]:
    """Files matching ``pattern`` anywhere under ``run_dir`` except the kfp/state copies (at any depth: a simulate
    folder holds one kfp/ per period), sorted."""
    return sorted(p for p in run_dir.rglob(pattern)
                  if p.is_file() and not SKIPPED_DIRS.intersection(p.relative_to(run_dir).parts[:-1]))


# ---------------------------------------------------------------- formatting


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return escape(str(value))
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    if isinstance(value, list | tuple):
        return escape(", ".join(str(v) for v in value))
    if isinstance(value, dict):  # summary stats (min 25, median 40.5): no padding zeros
        return ", ".join(f"{escape(str(k))} {_trimmed(v)}" for k, v in value.items())
    return escape(str(value))


PCO_UNFINISHED = ("The last PCO run in this folder did not finish (pco/lineage.json is not marked complete), so "
                  "its metrics file may be an earlier run's: re-run coea pco (--resume continues it).")


def _trimmed(value: Any) -> str:
    """``_fmt`` without a float's padding zeros: 40.5, 59 (not 40.5000, 59.0000); 1.00e-10 stays."""
    text = _fmt(value)
    return text.rstrip("0").rstrip(".") if isinstance(value, float) and "." in text and "e" not in text else text


def _table(header: list[str], rows: list[list[Any]], table_id: str | None = None,
           classes: list[str] | None = None) -> str:
    attr = f' id="{escape(table_id)}"' if table_id else ""
    cls = classes or [""] * len(header)
    head = "".join(f'<th class="{c}">{escape(h)}</th>' if c else f"<th>{escape(h)}</th>"
                   for h, c in zip(header, cls, strict=True))
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _dl(items: dict[str, Any]) -> str:
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{_fmt(v)}</dd>" for k, v in items.items()) + "</dl>"


def _terms(terms: dict[str, str], names: list[str], terms_id: str) -> str:
    """The definitions of ``names`` that ``terms`` has, as a definition list."""
    known = [n for n in dict.fromkeys(names) if n in terms]
    return (f'<dl id="{escape(terms_id)}">' + "".join(f"<dt>{escape(n)}</dt><dd>{escape(terms[n])}</dd>"
                                                    for n in known) + "</dl>") if known else ""


def _section(title: str, body: str, section_id: str) -> str:
    return f'<section id="{escape(section_id)}"><h2>{escape(title)}</h2>\n{body}\n</section>'


# ---------------------------------------------------------------- sections


def metric_columns(methods: dict[str, dict[str, Any]]) -> list[str]:
    """The main metrics at K=10 then K=5 that the methods report; every column when none of them match."""
    present = {key for scores in methods.values() for key in scores}
    cols = [f"{m}@{k}" for k in REPORT_KS for m in MAIN_METRICS if f"{m}@{k}" in present]
    return cols or sorted(present)


def _methods_table(methods: dict[str, dict[str, Any]], table_id: str) -> str:
    cols = metric_columns(methods)
    rows = [[name, *(scores.get(c, "") for c in cols)] for name, scores in methods.items()]
    classes = [""] + ["k10" if c.endswith("@10") else "" for c in cols]
    return _table(["method", *cols], rows, table_id, classes)


def paired_section(metrics: Any) -> dict[str, Any] | None:
    """metrics.json's ``paired_ci`` (:func:`coea.evaluation.paired.ci_section`, what metrics.md and
    eval_report.html show) when it has a reference and methods; None otherwise."""
    paired = _field(metrics, "paired_ci")
    ok = isinstance(_field(paired, "methods"), dict) and "reference" in paired and isinstance(paired.get("k"), int)
    return paired if ok and isinstance(paired.get("metrics"), list) else None


def _ci(cis: Any, key: str) -> dict[str, Any] | None:
    """One interval of a ``paired_ci`` method (None when absent or not the ``diff, low, high`` numbers)."""
    ci = _field(cis, key)
    ok = isinstance(ci, dict) and all(isinstance(ci.get(f), int | float) for f in ("diff", "low", "high"))
    return ci if ok else None


def _paired_keys(paired: dict[str, Any]) -> list[str]:
    return [f"{m}@{paired['k']}" for m in paired["metrics"]]


def _paired_table(paired: dict[str, Any]) -> str:
    """Each method minus the reference with its interval; bold where the interval excludes 0."""
    keys = _paired_keys(paired)

    def cell(ci: dict[str, Any] | None) -> str:
        text = escape(ci_text(ci))
        return f"<strong>{text}</strong>" if ci and (ci["low"] > 0 or ci["high"] < 0) else text

    head = "".join(f'<th class="k10">{escape(k)}</th>' for k in keys)
    body = "".join(f"<tr><td>{escape(str(name))}</td>" + "".join(f"<td>{cell(_ci(cis, k))}</td>" for k in keys)
                   + "</tr>" for name, cis in paired["methods"].items())
    ref, level = escape(str(paired["reference"])), paired.get("level", 0.95)
    return (f"<h3>Paired difference vs {ref} ({_trimmed(level * 100)} % bootstrap interval over "
            f"{_fmt(paired.get('n_users', '?'))} users)</h3>"
            f'<table id="paired-ci-table"><thead><tr><th>method</th>{head}</tr></thead><tbody>{body}</tbody></table>'
            f"<p>Method minus {ref}, mean over users [percentile interval of {_fmt(paired.get('n_boot', '?'))} "
            "paired bootstrap replicates: users resampled with replacement, the same users for both methods]; "
            f"<strong>bold</strong>: the interval excludes 0. {ref} is the reference: the best baseline by "
            f"S-H@{paired['k']} unless <code>coea evaluate --reference</code> named another.</p>")


def served_verdict(method: str, paired: dict[str, Any] | None) -> str:
    """One plain sentence on the served method against the paired reference: below (an interval entirely below
    0), above, or not distinguishable on this data; empty when the metrics hold no comparison of it."""
    if paired is None:
        return ""
    ref = str(paired["reference"])
    if method == ref:
        return f"The served method {method} is the reference of the paired comparison below."
    cis = {k: ci for k in _paired_keys(paired) if (ci := _ci(paired["methods"].get(method), k))}
    if not cis:
        return ""
    below = [f"{k} {ci_text(ci)}" for k, ci in cis.items() if ci["high"] < 0]
    above = [f"{k} {ci_text(ci)}" for k, ci in cis.items() if ci["low"] > 0]
    level = f"{_trimmed(paired.get('level', 0.95) * 100)} %"
    parts = []
    if below:
        parts.append(f"The served method {method} is below {ref} on this data: {', '.join(below)} (the {level} "
                     f"paired bootstrap interval of the difference lies entirely below 0): serving {ref} would "
                     "do better here; do not read this run as a win.")
    if above:
        parts.append(f"The served method {method} is above {ref} on this data: {', '.join(above)} (the {level} "
                     "interval lies entirely above 0).")
    if not parts:
        shown = ", ".join(f"{k} {ci_text(ci)}" for k, ci in cis.items())
        parts.append(f"The served method {method} is not distinguishable from {ref} on this data: {shown} (each "
                     f"{level} interval holds 0).")
    return " ".join(parts)


def _metrics_section(metrics: Any, paired: dict[str, Any] | None = None) -> str:
    if not isinstance(metrics, dict):
        return _section("Metrics", '<p class="muted">no metrics.json in this run directory</p>', "metrics")
    parts = []
    if isinstance(metrics.get("dataset"), dict):
        parts.append("<h3>Dataset</h3>" + _dl(metrics["dataset"]))
    if isinstance(metrics.get("protocol"), dict):
        parts.append("<h3>Protocol</h3>" + _dl(metrics["protocol"]))
    methods = metrics.get("methods") or {}
    parts.append("<h3>Methods</h3>" + _methods_table(methods, "metrics-table"))
    shown = [c.split("@")[0] for c in metric_columns(methods)]
    parts.append("<h3>What the columns mean</h3><p>Each column is METRIC@K: the metric of each user's top-K list, "
                 f"averaged over the evaluated users. {escape(PLUS_X)}</p>" + _terms(METRIC_TERMS, shown,
                                                                                    "metric-terms"))
    if paired is not None:
        parts.append(_paired_table(paired))
    cold = metrics.get("cold_start") or {}
    if cold:
        parts.append("<h3>Cold-start users</h3>" + _methods_table(cold, "cold-start-table"))
    return _section("Metrics", "\n".join(parts), "metrics")


def _served_section(served: Any, paired: dict[str, Any] | None = None) -> str:
    """Which method's top-K the run published to the KV store (``served.json``, written by ``coea run``) and how it
    compares with the paired reference (:func:`served_verdict`)."""
    if not isinstance(served, dict) or "method" not in served:
        return _section("Served", '<p class="muted">this run directory served nothing (no served.json): its '
                                  "methods were evaluated only</p>", "served")
    verdict = served_verdict(str(served["method"]), paired)
    cls = ' class="below"' if " is below " in verdict else ""
    return _section("Served", f'<p>Served method: <strong id="served-method">{escape(str(served["method"]))}'
                              f"</strong>, the top {_fmt(served.get('k', ''))} categories per user, published to "
                              "the KV store (<code>recs.sqlite</code>; the list itself: "
                              "<code>recommendations.parquet</code>).</p>"
                              + (f'<p id="served-verdict"{cls}>{escape(verdict)}</p>' if verdict else ""), "served")


def _png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _plots_section(run_dir: Path, pngs: list[Path]) -> str:
    """Every plot, captioned with its path in the run folder (a simulate folder holds one per period)."""
    if not pngs:
        return ""
    names = [p.relative_to(run_dir).as_posix() for p in pngs]
    figs = [f'<figure><img alt="{escape(n)}" src="{_png_uri(p)}"><figcaption>{escape(n)}'
            "</figcaption></figure>" for p, n in zip(pngs, names, strict=True)]
    return _section("Plots", "\n".join(figs), "plots")


def _grouping_row(name: str, grouping: dict[str, Any]) -> list[Any]:
    sizes, emb, cat = ({} if not isinstance(v, dict) else v for v in (
        grouping.get("sizes"), grouping.get("embedding_cosine"), grouping.get("category_cosine")))
    median = sizes.get("median", "")  # a count, or half-way between two: 59, 59.5 (not 59.0000)
    return [name, sizes.get("M_N", ""), sizes.get("min", ""), _trimmed(median), sizes.get("max", ""),
            emb.get("intra", ""), emb.get("inter", ""), emb.get("ratio", ""), cat.get("ratio", ""),
            grouping.get("ari_vs_planted", "")]


def _dsie_section(report: Any) -> str:
    if not isinstance(report, dict):
        return ""
    summary = {k: report[k] for k in ("users", "cold_start_users", "csid_collision_rate", "rqvae_final_loss")
               if k in report}
    groupings = [("CSID groups", report.get("csid_groups")), ("k-means, same M_N", report.get("kmeans_same_M_N"))]
    rows = [_grouping_row(name, g) for name, g in groupings if isinstance(g, dict)]
    header = ["grouping", "M_N", "min size", "median size", "max size", "emb. intra", "emb. inter",
              "emb. intra/inter", "category intra/inter", "ARI vs planted"]
    parts = [_dl(summary), _table(header, rows, "dsie-groups-table"),
             _terms(DSIE_TERMS, [*summary, "M_N", "ARI vs planted"], "dsie-terms")]
    sizes = _field(_field(report, "csid_groups"), "sizes")
    if isinstance(sizes, dict) and (sizes := sizes.get("sizes")):
        parts.append(f"<p>CSID group sizes: {_fmt(sizes)}</p>")
    codebooks = report.get("codebooks")
    books = [[b.get("level"), b.get("codebook_size"), b.get("utilisation"), b.get("perplexity")]
             for b in (codebooks if isinstance(codebooks, list) else []) if isinstance(b, dict)]
    if books:
        parts.append("<h3>Codebook utilisation</h3>"
                     + _table(["level", "size", "utilisation", "perplexity"], books, "codebook-table"))
    return _section("DSIE groups", "\n".join(parts), "dsie")


def _field(obj: Any, key: str) -> Any:
    """``obj[key]`` where ``obj`` is a mapping, else None (a hand-edited or damaged report file)."""
    return obj.get(key) if isinstance(obj, dict) else None


def _drift_block(run_dir: Path, path: Path) -> str:
    drift = _read_json(path)
    if not isinstance(drift, dict):
        return ""
    summary = {k: drift[k] for k in ("drift_share", "drifted", "drifted_columns", "n_reference_users",
                                      "n_current_users") if k in drift}
    features = [[f.get("column"), f.get("stattest"), f.get("score"), f.get("threshold"), f.get("drifted")]
                for f in drift.get("features") or [] if isinstance(f, dict)]
    table = _table(["column", "test", "score", "threshold", "drifted"], features) if features else ""
    return f"<h3>{escape(str(path.relative_to(run_dir)))}</h3>" + _dl(summary) + table


def _drift_section(run_dir: Path, paths: list[Path]) -> str:
    blocks = [b for b in (_drift_block(run_dir, p) for p in paths) if b]
    return _section("Drift", "\n".join(blocks), "drift") if blocks else ""


PCO_COLUMNS = ("round", "C-H", "C-N", "NCP", "CLTP", "S-H", "x_S-H", "judge_S-H", "x_S-H_judged", "rscore", "kl_sft",
               "pairs", "dpo_margin", "distill_kl", "acceptance_before", "acceptance_after", "round_s")
JUDGE_NOTE = ("judge_S-H: S-H@K of the R-LLM ranking each judged user's unseen categories by P(yes); x_S-H_judged: "
              "the N-LLM's +x S-H@K on the same users ({n} of them).")


def _pco_rounds(pco: Any) -> list[dict[str, Any]]:
    rounds = pco.get("rounds") if isinstance(pco, dict) else pco
    return [r for r in rounds if isinstance(r, dict)] if isinstance(rounds, list) else []


def _pco_section(pco: Any, unfinished: bool = False) -> str:
    """Per-round PCO metrics: a table when ``pco_metrics.json`` is a list of rounds (or ``{"rounds": [...]}``);
    ``unfinished``: the PCO run in that folder did not finish, so the table may be an earlier run's."""
    if pco is None:
        return ""
    if unfinished:
        return _section("PCO rounds", f'<p id="pco-unfinished">{escape(PCO_UNFINISHED)}</p>', "pco")
    rounds = _pco_rounds(pco)
    if not rounds:
        return _section("PCO rounds", f"<pre>{escape(json.dumps(pco, indent=2))}</pre>", "pco")
    cols = list(dict.fromkeys(k for r in rounds for k in r))
    if sum(k in cols for k in PCO_COLUMNS) > 1:  # the loop's rows: the figures a reader compares, in this order
        cols = [k for k in PCO_COLUMNS if k in cols and any(r.get(k) is not None for r in rounds)]
    terms = _terms({**METRIC_TERMS, **PCO_TERMS}, cols, "pco-terms")
    k = pco.get("k", "the PCO config's k") if isinstance(pco, dict) else "the PCO config's k"  # written since s57
    note = f"<p>{escape(JUDGE_NOTE.format(n=rounds[-1].get('judged_users', '?')))}</p>" if "judge_S-H" in cols else ""
    return _section("PCO rounds", _table(cols, [[r.get(c, "") for c in cols] for r in rounds], "pco-table")
                    + f"<p>Metrics of the N-LLM after each round (K = {escape(str(k))}):</p>" + terms + note, "pco")
