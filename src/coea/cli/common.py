"""Shared pieces of the ``coea`` command line: the Typer app, option types, config helpers."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperOption

import coea
from coea.cli.outputs import (  # noqa: F401  (the commands import them from here)
    check_writable_dir,
    check_writable_file,
    coea_command,
    os_input_error,
    output_folder,
)
from coea.cli.run_folder import (  # noqa: F401  (the commands import them from here)
    PASS_A_RUN,
    RUN_PARTS,
    check_complete,
    require_parts,
    run_layout,
)
from coea.config import (
    PRESETS,
    CategoryLevel,
    DataConfig,
    EvalConfig,
    RunConfig,
    SplitConfig,
    config_source,
    read_run_json,
    read_run_yaml,
)
from coea.errors import CoeaInputError
from coea.evaluation.registry import EXCLUDE_SUFFIX, METHODS

_typer_option_type = TyperOption.display_type_rich


def _flag_without_type(option: TyperOption, ctx) -> str | None:
    """The type column of the help: none for a flag (it takes no value; typer's rich help would say ``<bool>``)."""
    return None if option.is_flag else _typer_option_type(option, ctx)


TyperOption.display_type_rich = _flag_without_type  # type: ignore[method-assign]

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="CoEA: serendipitous category recommendation with dual collaborative LLMs.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect and generate interaction data.")
app.add_typer(data_app, name="data")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"coea {coea.__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="print the package version and exit")] = False) -> None:
    pass

# Options shared by the commands that read data. None means "keep the config file's value".
DataOpt = Annotated[str | None, typer.Option("--data", help="synthetic | movielens:DIR | csv:PATH | parquet:PATH; "
                                                             "PATH: a file, gs://BUCKET/OBJECT, or a folder (local "
                                                             "or gs://BUCKET/PREFIX/) of dt=YYYY-MM-DD/ partitions")]
AsOfOpt = Annotated[str | None, typer.Option("--as-of", metavar="TIME",
                                             help="partitioned data: read the dt=YYYY-MM-DD partitions of the days "
                                                  "that ended by TIME (ISO 8601, e.g. 2026-11-30T00:00:00Z; default: "
                                                  "the config's data.as_of, else every partition)")]
WindowOpt = Annotated[int | None, typer.Option("--window-days", metavar="N",
                                               help="partitioned data: only the last N days before --as-of (default: "
                                                    "the config's data.window_days, 0 = all)")]
PRESET_HELP = "; ".join(f"{name} ({what})" for name, what in PRESETS.items())
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML run config (sections data, synthetic, "
                                                                 "split, eval, dsie, llm, pco and the top-level "
                                                                 "device key; README 'Configuration') or a "
                                                                 f"preset: {PRESET_HELP}")]
RunConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML run config or a preset, as for `coea "
                                                                    "group`; default: the run's config.json (what "
                                                                    "`coea group`/`evaluate` wrote; its device is "
                                                                    "not kept: see --device), else the built-in "
                                                                    "defaults")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda[:N] for every model of the "
                                                                 "command (default: the config's device, auto = "
                                                                 "cuda when available)")]
LevelOpt = Annotated[CategoryLevel | None, typer.Option("--category-level", help="MovieLens: full genre string or "
                                                                                  "first genre")]
METHOD_NAMES = ", ".join(METHODS)
DEFAULT_METHODS = ", ".join(EvalConfig().methods)
MethodsOpt = Annotated[str | None, typer.Option(
    "--methods", metavar="M1,M2,...",
    help=f"comma-separated methods: {METHOD_NAMES}; each optionally with {EXCLUDE_SUFFIX} (history categories "
         f"excluded before the top-K). Default: the config's eval.methods, by default {DEFAULT_METHODS}")]
ColOpt = Annotated[str | None, typer.Option(help="csv/parquet: the file's column holding this field")]


# What an interrupted command left that its "interrupted:" line says (a note of the exception that stopped it,
# e.g. `coea run`'s incomplete run folder): the command records it, coea.cli.main prints and clears it.
interrupt_notes: list[str] = []
# What re-running the interrupted command does, read from what it left (coea.cli.rerun: `coea train-llms`, `coea
# pco`): said after "re-run the command" in place of the general RESUME_NOTES of coea.cli.
interrupt_rerun: list[str] = []


def overrides(obj, options: Mapping[str, str] | None = None, **values):
    """``dataclasses.replace`` with only the values that were given (not None). A value given that the config
    refuses (non-finite, out of range) is an error naming the option that gave it (``options``: field -> option
    where the option is not ``--FIELD-NAME``), with a valid value as the fix: the one ``obj`` has."""
    given = {k: v for k, v in values.items() if v is not None}
    names = {key: (options or {}).get(key, f"--{key.replace('_', '-')}") for key in given}
    for key, value in given.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise CoeaInputError(f"must be a finite number, got {value!r}", option=names[key],
                                 fix="pass a number such as 0.4")
    try:
        return replace(obj, **given) if given else obj
    except ValueError as err:
        raise _option_error(obj, given, names, str(err)) from err


def pco_overrides(pco, rounds: int | None, alpha: float | None):
    """``--rounds`` and ``--alpha`` over the pco section, rebuilt (never assigned in place) so that the section's
    own cross-checks see the new alpha: one the rest of the section refuses (``reference: none`` needs alpha 0) is
    an error naming --alpha."""
    pco = overrides(pco, rounds=rounds)
    if alpha is None:
        return pco
    dpo = overrides(pco.dpo, alpha=alpha)
    try:
        return replace(pco, dpo=dpo)
    except ValueError as err:
        raise CoeaInputError(f"alpha {alpha:g} does not fit the config's pco section: {err}", option="--alpha",
                             fix=f"leave --alpha out (the config's {pco.dpo.alpha:g}), or change the config's pco "
                                 "section") from err


def _option_error(obj, given: dict, names: dict[str, str], message: str) -> CoeaInputError:
    """The config's ``message`` about one of the ``given`` fields as an error naming its option: the field the
    message starts with, else the one that alone is refused; the fields' names in it written as the options."""
    key = next((k for k in given if message.startswith(f"{k} ")), None)
    key = key or next((k for k in given if _refused(obj, k, given[k])), None)
    if key is None:
        return CoeaInputError(f"invalid option value: {message}", option="/".join(names.values()),
                              fix="see --help for valid values")
    problem = message.removeprefix(f"{key} ")
    for field, option in names.items():  # config-style names (shift_periods), never a word of the prose (spec)
        if "_" in field:
            problem = re.sub(rf"\b{re.escape(field)}\b", option, problem)
    example = _as_option_value(getattr(obj, key, None))
    fix = (f"pass e.g. {names[key]} {example}, its value when left out" if example is not None
           else f"see {names[key]} in --help")
    return CoeaInputError(problem, option=names[key], fix=fix)


def _refused(obj, key: str, value) -> bool:
    try:
        replace(obj, **{key: value})
    except ValueError:
        return True
    return False


def _as_option_value(value) -> str | None:
    """``value`` (a config field's) as it is written on the command line; None when it has no such form."""
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) or None
    return None if value is None or isinstance(value, bool) else str(value)


def with_device(cfg: RunConfig, device: str | None) -> RunConfig:
    """``cfg`` with ``--device`` when given, its device checked now, before anything is written (every command
    that trains or scores starts here): ``cuda`` on a machine without one is exit 2, not a traceback after the
    data step."""
    from coea.device import resolve_device

    cfg = overrides(cfg, device=device)
    try:
        resolve_device(cfg.device)
    except ValueError as err:
        problem = str(err).removesuffix("; use --device cpu or auto")  # the fix is said once, in the fix
        if device is not None or _read["config"] is None:
            raise CoeaInputError(problem, option="--device",
                                 fix="use --device cpu, or auto (the GPU when torch sees one)") from err
        raise CoeaInputError(problem, source=_read["config"],
                             fix=f"set device: cpu (or auto) in {_read['config']}, or pass --device cpu") from err
    return cfg


# The config file the command read (load_config; None: the built-in defaults): an error about one of its values
# that is found later, where an option may also have set it (the device), names it. One command per process.
_read: dict[str, Path | None] = {"config": None}


def load_config(path: Path | None, *, saved: bool = False) -> RunConfig:
    """``--config``: a YAML file, a preset name or None (the built-in defaults); with ``saved`` a run folder's
    config.json (:func:`coea.config.read_run_json`: read as JSON, its device left to the command). A bad one is a
    :class:`CoeaInputError` naming the file."""
    source = path if path is None or saved else config_source(path)  # a preset's name: its file
    if source is not None and source.is_dir():
        raise CoeaInputError("is a folder, not a config file", source=path, option="--config",
                             fix=f"pass the path of a YAML file, or name a preset: {', '.join(PRESETS)}")
    if source is not None and not source.is_file():
        raise CoeaInputError("config file not found", source=path,
                             fix=f"check the --config path, or name a preset: {', '.join(PRESETS)}")
    try:
        cfg = RunConfig() if source is None else read_run_json(source) if saved else read_run_yaml(source)
    except CoeaInputError:
        raise  # names its own place and fix (a key given twice, an empty file)
    except (ValueError, TypeError) as err:
        message = str(err).removeprefix(f"{source}: ").removeprefix(f"{source} ")  # the source is named once
        problem, fix = own_fix(message)
        fix = fix or ("pass --config, or fix the run's config.json" if saved else
                      "fix the YAML; see README 'Configuration'")
        raise CoeaInputError(problem, source=source, fix=fix) from err
    _read["config"] = source
    if source is not None:
        check_names(cfg, source)
    return cfg


# how the fix that ends a config error (``...; write e.g. 10``) starts: the generic fix is then not said beside it
_FIX_STARTS = ("write ", "use ", "leave ", "set ", "raise ", "lower ", "add ", "drop ", "keep ", "indent ", "save ",
               "pass ", "e.g. ")


def own_fix(message: str) -> tuple[str, str | None]:
    """A config error's ``message`` as its problem and the fix it ends with after ``; `` (``n_future must be a
    whole number, got 2.5; write e.g. 2``); (message, None) when it ends with none."""
    problem, sep, fix = message.rpartition("; ")
    return (problem, fix) if sep and fix.startswith(_FIX_STARTS) else (message, None)


def check_names(cfg: RunConfig, path: Path) -> None:
    """The config file's method names and data spec, checked when it is read: they are parsed where they are used,
    whose errors name the options (--methods, --data) that set them from the command line."""
    from coea.data.loaders import parse_spec
    from coea.evaluation.registry import parse_method

    named = [("eval.methods", parse_method, m) for m in cfg.eval.methods] + [("data.spec", parse_spec, cfg.data.spec)]
    for key, parse, value in named:
        try:
            parse(value)
        except CoeaInputError as err:
            raise err.replace(problem=f"{key}: {err.problem}", source=path, option=None) from None


def eval_overrides(base: EvalConfig, **values) -> EvalConfig:
    """:func:`overrides` of the eval section; a config's ``eval.reference`` that ``--methods`` leaves out is an
    error naming the config file, the key and the option (not a bare 'invalid option value'); a ``--reference``
    that is not among the methods names --reference."""
    methods, reference = values.get("methods"), values.get("reference")
    if methods is not None and reference is None and base.reference not in (None, *methods):
        raise CoeaInputError(f"eval.reference {base.reference!r} is not among the methods of --methods "
                             f"{','.join(methods)}", source=_read["config"],
                             fix=f"add {base.reference} to --methods, pass --reference (one of --methods), or "
                                 "remove eval.reference from the config")
    among = methods or base.methods
    if reference is not None and reference not in among:
        example = "pop" if "pop" in among else among[0]
        raise CoeaInputError(f"reference {reference!r} is not among the methods {','.join(among)}",
                             option="--reference",
                             fix=f"pass one of them, e.g. --reference {example}, or add {reference} to --methods")
    return overrides(base, {"ks": "--k"}, **values)


def config_with_data(config: Path | None, data: str | None, level=None, user_col=None, item_col=None,
                     category_col=None, timestamp_col=None) -> RunConfig:
    """The run config from ``--config``, with ``--data``, ``--category-level`` and the ``--*-col`` options
    overriding its data section where given."""
    cfg = load_config(config)
    return replace(cfg, data=data_config(cfg.data, data, level, user_col, item_col, category_col, timestamp_col))


def data_config(base: DataConfig, data, level, user_col, item_col, category_col, timestamp_col) -> DataConfig:
    return overrides(base, {"spec": "--data"}, spec=data, category_level=level, user_col=user_col,
                     item_col=item_col, category_col=category_col, timestamp_col=timestamp_col)


def split_config(base: SplitConfig, n_future, n_short, min_history, min_gap) -> SplitConfig:
    return overrides(base, n_future=n_future, n_short=n_short, min_history=min_history, min_gap=min_gap)


NFutureOpt = Annotated[int | None, typer.Option(help="held-out last events per user (default 10)")]
NShortOpt = Annotated[int | None, typer.Option(help="history events forming the short-term set (default 10)")]
MinHistOpt = Annotated[int | None, typer.Option(help="fewer history events = cold-start (default 5)")]
MinGapOpt = Annotated[int | None, typer.Option(help="seconds between history and future (default 0)")]


RunOpt = Annotated[Path, typer.Option("--run", help="a run folder (data/, dsie/, llm/, pco/): the --out of "
                                                   "`coea group` or `coea evaluate`, or a `coea run` directory")]


def from_run_config(config: Path | None, from_run: Path | None) -> RunConfig:
    """``--config``; without it, the config a ``--from-run`` folder was made with (its config.json). A
    ``--from-run`` that is no run folder (missing, a file, or holding none of a run's parts) is refused, never
    read as 'start from scratch'."""
    if from_run is not None:
        if from_run.is_dir():  # a stopped `coea run` may hold no part yet: say it stopped, not 'no run folder'
            check_complete(from_run, "--from-run")
        if not from_run.is_dir() or not any((from_run / part).exists() for part in RUN_PARTS):
            what = "does not exist" if not from_run.exists() else (
                "is a file" if not from_run.is_dir() else "holds no data/, dsie/, llm/, pco/ or config.json")
            raise CoeaInputError(f"not a run folder: it {what}", source=from_run, option="--from-run",
                                 fix=PASS_A_RUN)
    if config is None and from_run is not None and (from_run / "config.json").is_file():
        return load_config(from_run / "config.json", saved=True)
    return load_config(config)


def csv(value: str | None, option: str = "--methods") -> list[str] | None:
    """A comma-separated option as a list; None when not given. Given but empty (``--methods ""``) is an error,
    never 'the defaults'; so is an empty entry (``pop,,markov``, ``pop,``), as for :func:`ints`: a list with a typo
    (a name lost between two commas) is not read as another list."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",")]
    if not any(items):
        raise CoeaInputError(f"empty list {value!r}", option=option,
                             fix=f"name at least one, comma-separated, or leave {option} out for the defaults")
    if not all(items):
        raise CoeaInputError(f"empty entry in {value!r}", option=option, fix="one name between commas")
    return items


def ints(value: str | None, option: str) -> list[int] | None:
    """A comma-separated list of integers; None when not given. An empty entry (``5,,10``, ``5,``) is an error,
    never skipped: a list with a typo is not read as another list."""
    if value is None:
        return None
    fix = f"e.g. {option} 5,10"
    if any(not v.strip() for v in value.split(",")):
        raise CoeaInputError(f"empty entry in {value!r}", option=option, fix=f"one integer between commas, {fix}")
    try:
        return [int(v) for v in value.split(",")]
    except ValueError as err:
        raise CoeaInputError(f"expected comma-separated integers, got {value!r}", option=option, fix=fix) from err


def check_lineage(run: Path, methods: list[str] | tuple[str, ...], cfg: RunConfig | None,
                  data_dir: Path | None = None) -> None:
    """Refuse the fitted artifacts of the run folder ``run`` that ``methods`` read unless they belong together and
    (with ``cfg``: scoring on ``cfg.split``) were fitted on the histories of that split of ``data_dir`` (default
    ``run/data/``; :mod:`coea.lineage`); ``cfg`` None: serving, where every event is history."""
    from coea import lineage
    from coea.evaluation.registry import parse_method

    needs = {need.value for m in methods for need in parse_method(m).needs}
    key = None if cfg is None else lineage.histories(data_dir or run / "data", cfg.split)
    lineage.check_run(run, needs, key)
