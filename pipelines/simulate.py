"""``coea simulate``: the recurring pipeline, period after period, over a log's time periods.

The log is cut into ``periods`` consecutive global time windows (:func:`coea.data.split.split_periods`, equal
event counts by default). Period 0 seeds the pipeline state: it is prepared and grouped with DSIE, both LLMs get
their SFT and PCO rounds on it, and the data + groups and the last round's models are saved together as the
state's first version, then evaluated: the in-process training flow (:func:`coea.flow.run_flow`), whose steps are
``coea_training``'s. The models know only period 0's categories: one that first appears later is admitted by
:func:`coea.llm.models.admit_categories` when the recurring PCO update meets it.
Each later period is written as ``periods/p<i>/interactions.parquet`` and fed to ``coea_recurring``, run by
``kfp.local`` (:func:`pipelines.local.run_recurring_locally`, the same pipeline function that compiles for the
cluster) against that state: it checks drift against the reference window, regroups (and makes the period the
new reference) only when the drift share reaches the threshold, runs the PCO update of the state's models on the
period (saving the updated models), evaluates and serves (``coea_seq+x`` by default).

Per period the result records what the pipeline did, read from its steps' outputs (kfp.local's
``executor_output.json``) and the state: the drift share and verdict of ``monitor_drift``, whether the state's
snapshot changed (= regrouping fired), the state's models version, and the metrics the ``evaluate`` step that
ran logged. The served method is always evaluated (added to ``eval.methods`` when missing).

Outputs under ``out_dir``: ``simulate.json`` (every row, the config), ``simulate.md`` (the per-period table),
``state/`` (the pipeline state, with the served KV store), ``periods/p<i>/``: each a run folder
(:class:`coea.layout.RunLayout`) with its ``report.html``: the period's log, metrics, plots, served lists and PCO
metrics; a later period's kfp artifacts under ``kfp/`` (the models' weights), ``drift_report.html`` and
``drift.json``, the drift check's page and figures.

Synthetic data with ``synthetic.shift_period`` set (and ``synthetic.shift_periods`` equal to ``periods``)
carries a lasting interest shift from that period on: regrouping should fire there. It may fire later too: until a
regroup the reference stays, and the synthetic users' steady exploration (``synthetic.explore_rate``, 0.12 by
default) is a slow drift of its own (the README's default run regroups in period 3 as well; with 0.05, only at the
shift).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from coea.config import SERVED_METHOD, DataConfig, RunConfig, config_to_dict
from coea.data.loaders import load_data, parse_spec
from coea.data.schema import USER
from coea.data.split import Period, split_periods
from coea.drift import DriftConfig
from coea.errors import CoeaInputError
from coea.layout import RunLayout
from coea.utils import seed_everything, write_json_atomic, write_text_atomic
from components.settings import DeploymentSettings
from pipelines.console import STEPS_LOG, in_process_log

log = logging.getLogger(__name__)

DEFAULT_METHODS = ("pop", "markov+x", "group_pop_novel", SERVED_METHOD)  # LLM methods use the state's models
TABLE_METRICS = ("S-H", "C-N", "CLTP")  # shown per period for the served method (its NCP is 1 when it is *_novel)
SUMMARY_JSON = "simulate.json"
TABLE_MD = "simulate.md"


@dataclass(frozen=True)
class PeriodResult:
    """What one period did."""

    index: int
    start: int  # first second of the window (inclusive, Unix time)
    end: int  # end of the window (exclusive)
    events: int
    users: int
    drift_share: float | None  # None for period 0, which seeds the state
    drifted: bool | None  # drift_share >= threshold (None for period 0)
    regrouped: bool  # the state's snapshot changed (period 0: the initial grouping, True)
    snapshot: str  # the state's active snapshot after the period
    models: str  # the state's active models version after the period (a new one every period)
    metrics: dict[str, float]  # "<method>.<metric>@K" of the period's evaluate step
    seconds: float
    run_dir: Path


@dataclass(frozen=True)
class SimulateResult:
    """One row per period, where the outputs are, and the method the table shows."""

    periods: list[PeriodResult]
    method: str  # the served (``rec_method``) method, whose metrics the table shows
    k: int  # the cut-off of the table's metrics (the largest evaluated K)
    drift_threshold: float
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def regrouped_periods(self) -> list[int]:
        """Periods after the seed in which regrouping fired."""
        return [p.index for p in self.periods[1:] if p.regrouped]

    def table(self) -> str:
        """The per-period markdown table: window, size, drift share, decision, the served method's metrics."""
        metrics = [f"{m}@{self.k}" for m in TABLE_METRICS]
        head = ["period", "from", "to", "events", "users", "drift share", "regrouped",
                *[f"{self.method} {m}" for m in metrics]]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for p in self.periods:
            drift = "seed" if p.drift_share is None else f"{p.drift_share:.3f}"
            regrouped = "initial grouping" if p.index == 0 else ("**yes**" if p.regrouped else "no")
            values = [_fmt(p.metrics.get(f"{self.method}.{m}")) for m in metrics]
            lines.append("| " + " | ".join([str(p.index), _day(p.start), _day(p.end), str(p.events), str(p.users),
                                            drift, regrouped, *values]) + " |")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        rows = [{**asdict(p), "run_dir": str(p.run_dir)} for p in self.periods]
        return {"method": self.method, "k": self.k, "drift_threshold": self.drift_threshold,
                "regrouped_periods": self.regrouped_periods, "periods": rows}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def check_periods(periods: int) -> None:
    """Reject a period count the simulation cannot use, with the fix."""
    if periods < 2:
        raise CoeaInputError(f"periods must be >= 2 (period 0 seeds the state, the rest run the recurring "
                             f"pipeline), got {periods}", option="--periods", fix="e.g. --periods 4")


def _check_options(cfg: RunConfig, periods: int, drift_config: DriftConfig | None, drift_threshold: float,
                   rec_method: str, rec_k: int) -> DriftConfig:
    """Everything the pipeline steps would reject late, checked before the first step; the drift config."""
    from coea.evaluation.registry import parse_method

    check_periods(periods)
    shift = cfg.synthetic.shift_period
    if parse_spec(cfg.data.spec)[0] == "synthetic" and shift is not None and cfg.synthetic.shift_periods != periods:
        raise CoeaInputError(f"synthetic.shift_periods is {cfg.synthetic.shift_periods} but the simulation cuts "
                             f"{periods} periods, so the shift would not start at a period boundary",
                             option="--periods", fix=f"set synthetic.shift_periods to {periods} (or --periods "
                                                     f"{cfg.synthetic.shift_periods})")
    for method in (*cfg.eval.methods, rec_method):  # an unknown one failed only in period 0's evaluation
        parse_method(method)
    if rec_k < 1:
        raise CoeaInputError(f"k must be >= 1, got {rec_k}", option="--k", fix="e.g. --k 10")
    try:
        return replace(drift_config or DriftConfig(), threshold=drift_threshold)
    except ValueError as err:
        raise CoeaInputError(str(err), option="--drift-threshold", fix="e.g. 0.5: regroup when half of the "
                                                                       "behaviour features drift") from err


def _windows(cfg: RunConfig, periods: int, min_users: int) -> list[Period]:
    """The log cut into ``periods`` windows; each must hold enough users with a history under the split for the
    drift check (it reads the histories) and warm users (else its period's training stops on it, after the
    earlier periods ran)."""
    from coea.data.split import chronological_split, require_warm_users

    windows = split_periods(load_data(cfg.data, cfg.synthetic).interactions, periods)
    for w in windows:
        split = chronological_split(w.interactions, cfg.split)
        require_warm_users(split, f"{cfg.data.spec} (period {w.index} of 0..{periods - 1})")
        n_users = split.histories.interactions[USER].nunique()
        if n_users < min_users:
            raise CoeaInputError(f"period {w.index} of {periods} has {n_users} users with a history under the "
                                 f"split, fewer than the drift check's min_users={min_users}", option="--periods",
                                 fix="use more data" if periods <= 2 else "use fewer periods or more data")
    return windows


def _period_config(cfg: RunConfig, path: Path) -> RunConfig:
    """``cfg`` reading one period's canonical parquet (column mapping back to the canonical names)."""
    return replace(cfg, data=DataConfig(spec=f"parquet:{path.resolve()}",
                                        on_category_conflict=cfg.data.on_category_conflict,
                                        allow_any_timestamp=cfg.data.allow_any_timestamp))


def _write_period(window: Period, out_dir: Path) -> Path:
    from coea.utils import atomic_path

    path = out_dir / "interactions.parquet"
    with atomic_path(path) as tmp:
        window.interactions.to_parquet(tmp, index=False)
    return path


def _row(window: Period, run_dir: Path, *, drift: tuple[float, bool] | None, regrouped: bool, snapshot: str,
         models: str, metrics: dict[str, float], seconds: float) -> PeriodResult:
    return PeriodResult(window.index, window.start, window.end, len(window.interactions),
                        int(window.interactions[USER].nunique()), None if drift is None else drift[0],
                        None if drift is None else drift[1], regrouped, snapshot, models, metrics, round(seconds, 1),
                        run_dir)


def _seed_state(cfg: RunConfig, window: Period, run_dir: Path, state_uri: str, rec_method: str,
                rec_k: int) -> PeriodResult:
    """Period 0: the in-process training flow (:func:`coea.flow.run_flow`, the steps of ``coea_training``):
    prepare, group, SFT both LLMs, PCO rounds, save data + groups + the last round's models as the state's first
    version, evaluate, and serve ``rec_method``'s top-``rec_k`` into the state's KV store (what period 1's users
    are shown: its PCO step reads them as exposure, ``pco.exposure_inject``)."""
    from coea.flow import Serve, Step, run_flow
    from coea.state import read_pointer

    start = time.perf_counter()
    pcfg = _period_config(cfg, _write_period(window, run_dir))
    flow = run_flow(pcfg, RunLayout(run_dir), state_uri=state_uri, serve=Serve(method=rec_method, k=rec_k))
    models = (read_pointer(state_uri) or {})["models"]
    return _row(window, run_dir, drift=None, regrouped=True, snapshot=flow.results[Step.SAVE_STATE].snapshot,
                models=models["snapshot"], metrics=flow.results[Step.EVALUATE].main,
                seconds=time.perf_counter() - start)


def _task_dir(kfp_root: Path, task: str) -> Path | None:
    """The output dir of ``task`` (or of its second instance, ``task-2``, in the else branch) in the one run."""
    (run,) = [p for p in kfp_root.iterdir() if p.is_dir()]
    for name in (task, f"{task}-2"):
        if (run / name).is_dir():
            return run / name
    return None


def _executor_output(task_dir: Path) -> dict[str, Any]:
    """What a step returned: kfp.local's ``executor_output.json`` (output parameters, artifacts with their
    metadata; a ``Metrics`` artifact's logged metrics are its metadata)."""
    return json.loads((task_dir / "executor_output.json").read_text())


def _logged_metrics(task_dir: Path, name: str = "metrics") -> dict[str, float]:
    (artifact,) = _executor_output(task_dir)["artifacts"][name]["artifacts"]
    return {k: float(v) for k, v in artifact["metadata"].items()}


def _recurring_period(cfg: RunConfig, window: Period, run_dir: Path, state_uri: str, drift_threshold: float,
                      options: dict[str, Any]) -> PeriodResult:
    """One later period: ``coea_recurring`` under kfp.local; what it decided, read from its artifacts."""
    from coea.state import read_pointer
    from pipelines.local import run_recurring_locally

    start = time.perf_counter()
    pcfg = _period_config(cfg, _write_period(window, run_dir))
    before = read_pointer(state_uri)
    kfp_root = run_recurring_locally(pcfg, run_dir, state_uri, drift_threshold=drift_threshold, **options)
    after = read_pointer(state_uri)
    assert before is not None and after is not None and "models" in after  # the seed wrote the state
    drift_dir = _task_dir(kfp_root, "monitor-drift")
    evaluate_dir = _task_dir(kfp_root, "evaluate")
    assert drift_dir is not None and evaluate_dir is not None
    drift = _executor_output(drift_dir)["parameterValues"]  # the step's outputs, the dsl.If condition's input
    shutil.copyfile(drift_dir / "report", run_dir / "drift_report.html")
    shutil.copyfile(drift_dir / "summary", run_dir / "drift.json")  # what `coea report --run-dir` shows
    _keep_outputs(kfp_root, evaluate_dir, run_dir)
    return _row(window, run_dir, drift=(float(drift["drift_share"]), bool(drift["drifted"])),
                regrouped=after["snapshot"] != before["snapshot"], snapshot=after["snapshot"],
                models=after["models"]["snapshot"], metrics=_logged_metrics(evaluate_dir),
                seconds=time.perf_counter() - start)


def _keep_outputs(kfp_root: Path, evaluate_dir: Path, run_dir: Path) -> None:
    """A later period's folder gets what a run folder shows (:class:`coea.layout.RunLayout`): the evaluate step's
    metrics and plots, the served lists, the PCO rounds' metrics (not their weights, which stay under ``kfp/``)."""
    for path in (evaluate_dir / "report").iterdir():
        if path.is_file():
            shutil.copyfile(path, run_dir / path.name)
    recommend, pco = _task_dir(kfp_root, "recommend"), _task_dir(kfp_root, "pco-loop")
    assert recommend is not None and pco is not None
    shutil.copyfile(recommend / "recommendations", RunLayout(run_dir).recommendations)
    (run_dir / "pco").mkdir(exist_ok=True)
    for name in ("pco_metrics.json", "pco_metrics.png", "lineage.json"):
        if (pco / "model" / name).is_file():
            shutil.copyfile(pco / "model" / name, run_dir / "pco" / name)


def _report(run_dir: Path, rec_method: str, rec_k: int) -> None:
    """served.json (what the period served) and the period's report.html (``coea report``'s page)."""
    from coea.report_html import render_report

    write_json_atomic(RunLayout(run_dir).served, {"method": rec_method, "k": rec_k})
    render_report(run_dir)


def run_simulate(cfg: RunConfig, out_dir: Path, periods: int = 4, *, drift_config: DriftConfig | None = None,
                 drift_threshold: float = 0.5, rec_method: str = SERVED_METHOD, rec_k: int = 10,
                 settings: DeploymentSettings | None = None) -> SimulateResult:
    """Seed the state from period 0, then run ``coea_recurring`` locally on each later period (module doc).

    ``drift_config`` gives the drift check's other settings (its ``threshold`` is ``drift_threshold``'s);
    ``rec_method``/``rec_k`` what is served (and always evaluated). Writes ``simulate.json`` and ``simulate.md``
    under ``out_dir``.
    """
    seed_everything(cfg.eval.seed)
    drift_cfg = _check_options(cfg, periods, drift_config, drift_threshold, rec_method, rec_k)
    if rec_method not in cfg.eval.methods:  # the table shows the served method's metrics
        cfg = replace(cfg, eval=replace(cfg.eval, methods=[*cfg.eval.methods, rec_method]))
    out_dir = Path(out_dir)
    if (out_dir / "state").exists():
        raise CoeaInputError("a pipeline state already exists there", source=out_dir / "state",
                             fix="use a new --out directory (the simulation starts from an empty state)")
    windows = _windows(cfg, periods, drift_cfg.min_users)
    state_uri = str((out_dir / "state").resolve())
    drift_json = json.dumps({k: v for k, v in config_to_dict(drift_cfg).items() if k != "threshold"})
    options = {"drift_config": drift_json, "rec_method": rec_method, "rec_k": rec_k, "settings": settings}
    rows: list[PeriodResult] = []
    for window in tqdm(windows, desc="simulate", unit="period", disable=None):
        run_dir = out_dir / "periods" / f"p{window.index}"
        run_dir.mkdir(parents=True, exist_ok=True)
        if window.index == 0:
            log_path = run_dir / STEPS_LOG
            tqdm.write(f"period 0 of 0..{periods - 1}: the training flow in process (data, DSIE, SFT, PCO, "
                       f"evaluate, serve); its log: {log_path}")
            with in_process_log(log_path, name="period 0"):
                row = _seed_state(cfg, window, run_dir, state_uri, rec_method, rec_k)
        else:
            tqdm.write(f"period {window.index} of 0..{periods - 1}: coea_recurring (kfp.local); step logs: "
                       f"{run_dir / 'kfp' / STEPS_LOG}")
            row = _recurring_period(cfg, window, run_dir, state_uri, drift_threshold, options)
        rows.append(row)
        _report(run_dir, rec_method, rec_k)
        log.info("period %d of 0..%d (%s .. %s, %d events): drift share %s -> %s; %s in %.1fs", window.index,
                 periods - 1, _day(row.start), _day(row.end), row.events,
                 "-" if row.drift_share is None else f"{row.drift_share:.3f}",
                 "seeded the state" if window.index == 0 else ("REGROUPED" if row.regrouped else "kept groups"),
                 ", ".join(f"{k}={v:.3f}" for k, v in row.metrics.items() if k.startswith(f"{rec_method}.")),
                 row.seconds)
    result = SimulateResult(rows, rec_method, max(cfg.eval.ks), drift_threshold)
    return _write_outputs(cfg, result, out_dir, state_uri, periods)


def _write_outputs(cfg: RunConfig, result: SimulateResult, out_dir: Path, state_uri: str,
                   periods: int) -> SimulateResult:
    paths = {"json": out_dir / SUMMARY_JSON, "table": out_dir / TABLE_MD, "state": Path(state_uri)}
    write_json_atomic(paths["json"], {**result.to_dict(), "n_periods": periods, "state_uri": state_uri,
                                      "config": config_to_dict(cfg)})
    write_text_atomic(paths["table"], result.table())
    log.info("simulate: regrouping fired in period(s) %s; %s", result.regrouped_periods or "none", paths["table"])
    return replace(result, paths=paths)
