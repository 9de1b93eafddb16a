"""Run the pipelines on this machine with ``kfp.local`` (each step a subprocess of this Python environment).

``kfp.local`` runs the same components and pipeline graph as a cluster, minus the kfp-kubernetes settings
(GPU, node selector, toleration, volumes, timeouts), which it ignores. Artifacts land under the local pipeline
root: ``<run_dir>/kfp`` unless ``pipeline_root`` names another directory; the steps' logs go to
``<run_dir>/kfp/steps.log`` (:mod:`pipelines.console`), the console gets one line per step. kfp.local 2.17 cannot
resolve the scheduled-time placeholder that prepare_data takes (it fails on it); :func:`scheduled_time` makes it
resolve to a given time (default: now), as the KFP backend does for each run.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coea.config import SERVED_METHOD, RunConfig
from coea.errors import CoeaInputError
from coea.flow import check_local_models
from coea.layout import RunLayout
from coea.report_html import render_report
from coea.stages import pipeline_arguments
from coea.utils import atomic_dir, atomic_path, write_json_atomic, write_text_atomic
from components.settings import DeploymentSettings
from pipelines.console import STEPS_LOG, kfp_step_log
from pipelines.warm import warm_steps

log = logging.getLogger(__name__)


def local_settings() -> DeploymentSettings:
    """Default settings without retries: locally a failure is a bug or bad input, and retrying it only waits."""
    return DeploymentSettings(io_retries=0, gpu_retries=0, compute_retries=0)


def init_local(run_dir: Path, pipeline_root: Path | None = None) -> Path:
    """``kfp.local.init`` with a subprocess runner in the current environment (no venv, nothing installed) and
    ``pipeline_root`` (default ``run_dir/kfp``) as the local pipeline root; returns that root."""
    from kfp import local

    root = Path(pipeline_root or Path(run_dir) / "kfp").resolve()
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    return root


@contextlib.contextmanager
def scheduled_time(when: str | None = None) -> Iterator[str]:
    """While open, kfp.local resolves ``dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER`` to ``when`` (ISO 8601;
    default: now, UTC), as the KFP backend resolves it to each run's scheduled time. Yields the time used."""
    from kfp import dsl
    from kfp.local import placeholder_utils

    when = when or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    original = placeholder_utils.resolve_individual_placeholder

    def resolve(element: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(element, str):
            element = element.replace(dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER, when)
        return original(element, *args, **kwargs)

    placeholder_utils.resolve_individual_placeholder = resolve
    try:
        yield when
    finally:
        placeholder_utils.resolve_individual_placeholder = original


START_AGAIN = f"Start a new run with `coea run`; the step logs are in kfp/{STEPS_LOG}.\n"


def _copy(src: str | Path, dst: Path) -> Path:
    """``src`` (a file or a folder) copied to ``dst`` atomically: a copy killed midway leaves ``dst`` as it was."""
    src = Path(src)
    if src.is_dir():
        with atomic_dir(dst) as tmp:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
    else:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
    return dst


def run_training_locally(cfg: RunConfig, run_dir: Path, *, state_uri: str | None = None,
                         rec_method: str = SERVED_METHOD, rec_k: int = 10, settings: DeploymentSettings | None = None,
                         pipeline_root: Path | None = None, verbose: bool = False,
                         schedule_time: str | None = None) -> dict[str, Path]:
    """Run ``coea_training`` with kfp.local; copy its outputs under ``run_dir``; returns name -> path.

    ``schedule_time`` is the run's scheduled time (default: now): the as-of time of a partitioned log.

    The console gets one line per step; the steps' logs go to ``run_dir/kfp/steps.log`` (``paths["steps_log"]``),
    and to the console as well with ``verbose``.

    The run folder follows :class:`coea.layout.RunLayout`, so ``coea evaluate --from-run`` and ``coea serve``
    read it. Copied: the prepared data (``data/``), the evaluation files (``metrics.json``, ``metrics.md``,
    ``metrics_at_K.png``, ``eval_report.html``, ``config.json``, ``ground_truth/``), ``dsie/``, ``llm/`` (``novelty/``,
    ``relevance/``, ``sft_metrics_<model>.json``), ``pco/`` (PCO checkpoints, ``pco_metrics.json/.png``),
    ``recommendations.parquet`` and ``recs.sqlite`` (the KV store after the publish), ``served.json`` (the served
    method and K); then ``report.html`` is rendered from them (``coea.report_html``). The state goes to
    ``state_uri`` (default ``run_dir/state``), the pipeline's artifacts under ``pipeline_root`` (default
    ``run_dir/kfp``).
    """
    from pipelines.definitions import build_pipelines

    check_local_models(cfg)  # a wrong model path fails before any step, with nothing written
    run_dir = Path(run_dir)
    created = _new_folder(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    init_local(run_dir, pipeline_root)
    training = build_pipelines(settings or local_settings()).training
    start = time.perf_counter()
    console = None
    try:
        with kfp_step_log(run_dir / "kfp" / STEPS_LOG, verbose=verbose) as console, scheduled_time(schedule_time), \
                warm_steps():
            run = training(**pipeline_arguments(cfg), state_uri=state_uri or str(run_dir.resolve() / "state"),
                           rec_method=rec_method, rec_k=rec_k)
        paths = _copy_outputs(run.outputs, run_dir, rec_method, rec_k)
        RunLayout(run_dir).incomplete.unlink()
    except BaseException as err:
        said = unfinished(run_dir, created, [] if console is None else console.steps, err)
        if said is err:
            raise
        raise said from err
    # debug: `coea run` prints the time in its summary, after the step lines and the table (not between them)
    log.debug("coea_training ran locally in %.1fs; outputs under %s", time.perf_counter() - start, run_dir)
    return paths


def _copy_outputs(outputs: dict[str, Any], run_dir: Path, rec_method: str, rec_k: int) -> dict[str, Path]:
    """The training run's ``outputs`` copied into ``run_dir`` (:func:`run_training_locally`), its report rendered."""
    write_text_atomic(RunLayout(run_dir).incomplete, f"This run is incomplete: it was killed while copying its "
                                                      f"outputs from kfp/ into this folder.\n{START_AGAIN}")
    paths = {p.name: run_dir / p.name for p in Path(outputs["report"].path).iterdir()}
    paths["steps_log"] = run_dir / "kfp" / STEPS_LOG
    for part in Path(outputs["report"].path).iterdir():
        _copy(part, run_dir / part.name)
    paths["data"] = _copy(outputs["data"].path, run_dir / "data")
    paths["dsie"] = _copy(outputs["dsie"].path, run_dir / "dsie")
    paths["llm"] = run_dir / "llm"
    for name in ("novelty", "relevance"):
        src = Path(outputs[name].path)
        _copy(src / name, paths["llm"] / name)
        _copy(src / f"sft_metrics_{name}.json", paths["llm"] / f"sft_metrics_{name}.json")
    _copy(Path(outputs["novelty"].path) / "llm_config.json", paths["llm"] / "llm_config.json")
    paths["pco"] = _copy(outputs["pco"].path, run_dir / "pco")
    paths["recommendations"] = _copy(outputs["recommendations"].path, run_dir / "recommendations.parquet")
    paths["kv_store"] = _copy(outputs["kv_store"].path, run_dir / "recs.sqlite")
    paths["served"] = RunLayout(run_dir).served  # read by the report
    write_json_atomic(paths["served"], {"method": rec_method, "k": rec_k})
    paths["report"] = render_report(run_dir)
    return paths


def _new_folder(path: Path) -> Path | None:
    """The outermost folder that making ``path`` creates (``path`` or an ancestor); None when it exists."""
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


def unfinished(run_dir: Path, created: Path | None, steps: list[tuple[str, str, float]], err: BaseException
               ) -> BaseException:
    """What a training run that stopped (``err``: a step failed, bad input, Ctrl-C, SIGTERM) leaves, and ``err``
    saying so. Refused input or an interrupt before any step finished (``steps``: the console's (step, status,
    seconds)): the folders this run ``created`` (the run folder, and the runs folder when it made that too) go:
    nothing is written. Otherwise (a crash keeps its step log) the run folder is kept with ``INCOMPLETE.txt``
    naming the step that failed (or was running) and those that finished, and the error (an input error's line,
    else an exception note: the CLI's "interrupted" line) names the folder and that file."""
    finished = [step for step, status, _ in steps if status == "SUCCESS"]
    if not finished and isinstance(err, CoeaInputError | KeyboardInterrupt):
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
            if not isinstance(err, CoeaInputError):  # an input error's line says all; it wrote nothing
                err.add_note(f"nothing had finished: {created} removed")
        return err
    from coea.flow import TRAINING_STEPS

    failed = next((step for step, status, _ in steps if status != "SUCCESS"), None)
    running = next((f"step {step}" for step in TRAINING_STEPS if step not in finished), "copying the outputs")
    how = f"step {failed} failed" if failed else f"stopped in {running} ({type(err).__name__})"
    done = ", ".join(finished) or "none"
    marker = RunLayout(run_dir).incomplete
    write_text_atomic(marker, f"This run is incomplete: {how}.\nFinished steps (their outputs are under kfp/): "
                              f"{done}.\n{START_AGAIN}")
    note = f"{run_dir} is incomplete: {how}, finished: {done} (see {marker})"
    if isinstance(err, CoeaInputError):
        return err.replace(problem=f"{err.problem}; {note}")
    err.add_note(note)
    return err


def run_recurring_locally(cfg: RunConfig, run_dir: Path, state_uri: str, *, drift_config: str = "{}",
                          drift_threshold: float = 0.5, rec_method: str = SERVED_METHOD, rec_k: int = 10,
                          settings: DeploymentSettings | None = None, verbose: bool = False,
                          schedule_time: str | None = None) -> Path:
    """Run ``coea_recurring`` with kfp.local on the period named by ``cfg.data`` against the state (groups and
    models) at ``state_uri``; returns the kfp root. ``schedule_time`` is the run's scheduled time (default: now),
    which picks a partitioned log's period. Step logs as in :func:`run_training_locally`."""
    from pipelines.definitions import build_pipelines

    run_dir = Path(run_dir)
    init_local(run_dir)
    start = time.perf_counter()
    with kfp_step_log(run_dir / "kfp" / STEPS_LOG, verbose=verbose), scheduled_time(schedule_time), warm_steps():
        build_pipelines(settings or local_settings()).recurring(
            **pipeline_arguments(cfg), drift_config=drift_config, drift_threshold=drift_threshold,
            state_uri=state_uri, rec_method=rec_method, rec_k=rec_k)
    log.info("coea_recurring ran locally in %.1fs", time.perf_counter() - start)
    return run_dir / "kfp"
