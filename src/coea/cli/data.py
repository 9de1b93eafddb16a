"""``coea data stats`` and ``coea data synth``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from coea.cli.common import (
    AsOfOpt,
    ColOpt,
    ConfigOpt,
    DataOpt,
    LevelOpt,
    WindowOpt,
    data_app,
    data_config,
    load_config,
    output_folder,
    overrides,
)


@data_app.command("stats")
def data_stats_cmd(
    data: DataOpt = None, config: ConfigOpt = None, category_level: LevelOpt = None,
    user_col: ColOpt = None, item_col: ColOpt = None, category_col: ColOpt = None, timestamp_col: ColOpt = None,
    as_of: AsOfOpt = None, window_days: WindowOpt = None,
) -> None:
    """Print JSON statistics of a data set: users, items, interactions, categories, time span, activity."""
    from coea.data import data_stats, load_data

    cfg = load_config(config)
    dcfg = data_config(cfg.data, data, category_level, user_col, item_col, category_col, timestamp_col)
    dcfg = overrides(dcfg, as_of=as_of, window_days=window_days)
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

    cfg = load_config(config)
    scfg = overrides(cfg.synthetic, {"n_users": "--users", "n_categories": "--categories"}, seed=seed,
                     n_users=users, n_categories=categories)
    with output_folder(out):  # a new OUT is removed again when a write fails for want of space
        data = generate_synthetic(scfg)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "interactions.parquet") as tmp:
            data.interactions.to_parquet(tmp, index=False)
        written = [out / "interactions.parquet", *data.write_ground_truth(out)]
    typer.echo("\n".join(str(p) for p in written))
