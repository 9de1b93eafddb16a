"""The ``coea`` command line. Bad input ends with one line on stderr and exit code 2."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from coea.config import CategoryLevel, DataConfig, RunConfig, SplitConfig, load_run_config
from coea.errors import CoeaInputError
from coea.utils import setup_logging

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="CoEA: serendipitous category recommendation with dual collaborative LLMs.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect and generate interaction data.")
app.add_typer(data_app, name="data")

log = logging.getLogger("coea.cli")

# Options shared by the commands that read data. None means "keep the config file's value".
DataOpt = Annotated[str | None, typer.Option("--data", help="synthetic | movielens:DIR | csv:PATH | parquet:PATH")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML run config (sections: data, synthetic, "
                                                                 "split, eval)")]
LevelOpt = Annotated[CategoryLevel | None, typer.Option("--category-level", help="MovieLens: full genre string or "
                                                                                  "first genre")]
ColOpt = Annotated[str | None, typer.Option(help="csv/parquet: the file's column holding this field")]


def _overrides(obj, **values):
    """``dataclasses.replace`` with only the values that were given (not None)."""
    given = {k: v for k, v in values.items() if v is not None}
    try:
        return replace(obj, **given) if given else obj
    except ValueError as err:
        raise CoeaInputError(f"invalid option value: {err}", fix="see --help for valid values") from err


def _load_config(path: Path | None) -> RunConfig:
    if path is not None and not path.is_file():
        raise CoeaInputError("config file not found", source=path, fix="check the --config path")
    try:
        return load_run_config(path)
    except (ValueError, TypeError) as err:
        raise CoeaInputError(str(err), source=path, fix="fix the YAML; see README 'Configuration'") from err


def _data_config(base: DataConfig, data, level, user_col, item_col, category_col, timestamp_col) -> DataConfig:
    return _overrides(base, spec=data, category_level=level, user_col=user_col, item_col=item_col,
                      category_col=category_col, timestamp_col=timestamp_col)


@data_app.command("stats")
def data_stats_cmd(
    data: DataOpt = None, config: ConfigOpt = None, category_level: LevelOpt = None,
    user_col: ColOpt = None, item_col: ColOpt = None, category_col: ColOpt = None, timestamp_col: ColOpt = None,
) -> None:
    """Print JSON statistics of a data set: users, items, interactions, categories, time span, activity."""
    from coea.data import data_stats, load_data

    cfg = _load_config(config)
    dcfg = _data_config(cfg.data, data, category_level, user_col, item_col, category_col, timestamp_col)
    loaded = load_data(dcfg, cfg.synthetic)
    typer.echo(json.dumps({"source": loaded.source, **data_stats(loaded.interactions)}, indent=2))


@data_app.command("synth")
def data_synth_cmd(
    out: Annotated[Path, typer.Option("--out", help="directory for interactions.parquet and the ground truth")],
    config: ConfigOpt = None,
    seed: Annotated[int | None, typer.Option(help="generator seed")] = None,
    users: Annotated[int | None, typer.Option(help="number of users")] = None,
    categories: Annotated[int | None, typer.Option(help="number of categories")] = None,
) -> None:
    """Write the synthetic log (interactions.parquet) and its ground truth (planted groups, affinities)."""
    from coea.data.synthetic import generate_synthetic
    from coea.utils import atomic_path

    cfg = _load_config(config)
    scfg = _overrides(cfg.synthetic, seed=seed, n_users=users, n_categories=categories)
    data = generate_synthetic(scfg)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "interactions.parquet") as tmp:
        data.interactions.to_parquet(tmp, index=False)
    written = [out / "interactions.parquet", *data.write_ground_truth(out)]
    typer.echo("\n".join(str(p) for p in written))


def _split_config(base: SplitConfig, n_future, n_short, min_history, min_gap) -> SplitConfig:
    return _overrides(base, n_future=n_future, n_short=n_short, min_history=min_history, min_gap=min_gap)


NFutureOpt = Annotated[int | None, typer.Option(help="held-out last events per user (default 10)")]
NShortOpt = Annotated[int | None, typer.Option(help="history events forming the short-term set (default 10)")]
MinHistOpt = Annotated[int | None, typer.Option(help="fewer history events = cold-start (default 5)")]
MinGapOpt = Annotated[int | None, typer.Option(help="seconds between history and future (default 0)")]


@app.command("evaluate")
def evaluate_cmd(
    out: Annotated[Path, typer.Option("--out", help="output directory")],
    data: DataOpt = None, config: ConfigOpt = None,
    methods: Annotated[str | None, typer.Option(help="comma-separated, e.g. pop,pop+x,markov")] = None,
    k: Annotated[str | None, typer.Option("--k", help="comma-separated cut-offs, e.g. 5,10")] = None,
    n_future: NFutureOpt = None, n_short: NShortOpt = None, min_history: MinHistOpt = None,
    min_gap: MinGapOpt = None, category_level: LevelOpt = None, seed: Annotated[int | None, typer.Option()] = None,
    user_col: ColOpt = None, item_col: ColOpt = None, category_col: ColOpt = None, timestamp_col: ColOpt = None,
) -> None:
    """Fit methods on histories, score them on each user's held-out future; write metrics.json/.md and a plot."""
    from coea.evaluation.evaluate import run_evaluate

    cfg = _load_config(config)
    cfg = replace(
        cfg,
        data=_data_config(cfg.data, data, category_level, user_col, item_col, category_col, timestamp_col),
        split=_split_config(cfg.split, n_future, n_short, min_history, min_gap),
        eval=_overrides(cfg.eval, methods=_csv(methods), ks=_ints(k, "--k"), seed=seed),
    )
    result = run_evaluate(cfg, out)
    typer.echo(result.table)
    typer.echo(f"wrote {', '.join(str(p) for p in result.paths.values())}")


@app.command("group")
def group_cmd(
    out: Annotated[Path, typer.Option("--out", help="output directory")],
    data: DataOpt = None, config: ConfigOpt = None, category_level: LevelOpt = None,
    min_history: MinHistOpt = None, n_short: NShortOpt = None,
) -> None:
    """DSIE: encoder -> RQ-VAE CSIDs -> groups, profiles and group_report.json, fitted on histories."""
    from coea.job import group_summary, run_group

    cfg = _load_config(config)
    cfg = replace(cfg, data=_overrides(cfg.data, spec=data, category_level=category_level),
                  split=_overrides(cfg.split, min_history=min_history, n_short=n_short))
    result = run_group(cfg, out)
    typer.echo(json.dumps(group_summary(result.dsie), indent=2))
    for name, path in result.paths.items():
        typer.echo(f"  {name:<16} {path}")


@app.command("run")
def run_cmd(
    data: DataOpt = None, config: ConfigOpt = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="parent of runs/<timestamp>/")] = Path("runs"),
) -> None:
    """The main job: data -> split -> DSIE groups -> methods -> evaluation, under runs/<timestamp>/."""
    from coea.job import run_job

    cfg = _load_config(config)
    cfg = replace(cfg, data=_overrides(cfg.data, spec=data))
    out = runs_dir / datetime.now().strftime("%Y%m%d-%H%M%S")
    result = run_job(cfg, out)
    typer.echo(result.evaluation.table)
    typer.echo("groups: " + json.dumps(result.summary))
    typer.echo(f"run directory: {out}")
    for name, path in {**result.evaluation.paths, **result.groups.paths}.items():
        typer.echo(f"  {name:<16} {path}")


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _ints(value: str | None, option: str) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError as err:
        raise CoeaInputError(f"expected comma-separated integers, got {value!r}", column=option,
                             fix="e.g. --k 5,10") from err


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; turn input errors into one line on stderr and exit code 2."""
    setup_logging()
    try:
        app(args=argv, prog_name="coea")
    except CoeaInputError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
