"""The run config as pipeline parameters and back.

Pipeline parameters carry the run config as JSON objects of :class:`~coea.config.RunConfig` sections, the same
shape as the YAML file: :func:`pipeline_arguments` splits a config into them, :func:`config_from_json` merges
them back (sections not given keep their defaults; unknown or repeated sections are errors). The device switch
travels as its own plain ``device`` parameter.

What a user changes in the Kubeflow UI's run form also has a typed parameter (:class:`UiParameters`: the data
URI, the PCO rounds and alpha), each with a "keep the JSON's value" default; :func:`with_ui_parameters` is the one
place that merges them into the JSON sections, and :func:`config_from_json` applies it, so the merged values are
what the steps run with and what their saved configs record.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coea.config import RunConfig, config_to_dict, from_dict, run_config_from_dict
from coea.device import DEVICE_CHOICES, check_device_spec
from coea.drift import DriftConfig
from coea.errors import CoeaInputError

# Pipeline parameter -> the RunConfig sections it carries.
CONFIG_PARAMS: dict[str, tuple[str, ...]] = {
    "data_config": ("data", "synthetic"),
    "split_config": ("split",),
    "dsie_config": ("dsie",),
    "eval_config": ("eval",),
    "llm_config": ("llm",),
    "pco_config": ("pco",),
}
SECTION_PARAM = {section: name for name, sections in CONFIG_PARAMS.items() for section in sections}
DEVICE_PARAM = "device"  # RunConfig.device: auto | cpu | cuda[:N]
_CONFIG_FIX = "see docs/kubeflow.md 'Run parameters' and README 'Configuration'"
# RunConfig sections no pipeline step reads (every section has its parameter now).
PENDING_SECTIONS: tuple[str, ...] = ()


@dataclass(frozen=True)
class UiParameters:
    """The typed pipeline parameters over the JSON config parameters; each default keeps the JSON's value."""

    data_spec: str = ""  # data.spec, e.g. parquet:gs://BUCKET/events/ ("" = data_config's)
    pco_rounds: int = 0  # pco.rounds (0 = pco_config's; PCO always runs at least one round)
    pco_alpha: float = -1.0  # pco.dpo.alpha, the KL weight (negative = pco_config's; 0 = plain DPO)


def with_ui_parameters(sections: Mapping[str, Any], ui: UiParameters) -> dict[str, Any]:
    """``sections`` (RunConfig sections as parsed from the JSON parameters) with the values of ``ui`` that are
    set written over them: ``data.spec``, ``pco.rounds``, ``pco.dpo.alpha``. Pure: ``sections`` is not changed.
    A negative ``pco_rounds`` or a non-finite ``pco_alpha`` is a :class:`~coea.errors.CoeaInputError`."""
    if ui.pco_rounds < 0:
        raise CoeaInputError(f"parameter pco_rounds must be >= 0, got {ui.pco_rounds}",
                             fix="pass the number of PCO rounds, or 0 to keep pco_config's")
    if not math.isfinite(ui.pco_alpha):
        raise CoeaInputError(f"parameter pco_alpha must be a finite number, got {ui.pco_alpha}",
                             fix="pass the KL weight (>= 0), or -1 to keep pco_config's")
    out = copy.deepcopy(dict(sections))
    if ui.data_spec.strip():
        _section(out, "data")["spec"] = ui.data_spec.strip()
    if ui.pco_rounds > 0:
        _section(out, "pco")["rounds"] = int(ui.pco_rounds)
    if ui.pco_alpha >= 0:
        _section(_section(out, "pco"), "dpo")["alpha"] = float(ui.pco_alpha)
    return out


def _section(parent: dict[str, Any], name: str) -> dict[str, Any]:
    """``parent[name]``, created empty when absent; a non-object there is a CoeaInputError."""
    child = parent.setdefault(name, {})
    if not isinstance(child, dict):
        raise CoeaInputError(f"config section {name!r} must be a JSON object, got {type(child).__name__}",
                             source="pipeline parameter", fix=f'pass e.g. {{"{name}": {{...}}}}')
    return child


def pipeline_arguments(cfg: RunConfig) -> dict[str, str]:
    """The config as the pipelines' parameters (``data_config``, ``split_config``, ..., ``device``)."""
    full = config_to_dict(cfg)
    out = {name: json.dumps({s: full[s] for s in sections}, sort_keys=True) for name, sections in CONFIG_PARAMS.items()}
    out[DEVICE_PARAM] = cfg.device
    return out


def read_json(text: str, *, source: str, fix: str, what: str = "not JSON") -> Any:
    """``text`` (empty: ``{}``) parsed as JSON; not JSON (``what: ...``), or a key given twice in one object (JSON
    keeps the last one silently; the YAML config reader refuses it too), is a CoeaInputError naming ``source``."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        twice = next((key for key in keys if keys.count(key) > 1), None)
        if twice is not None:
            raise CoeaInputError(f"key {twice!r} is given twice in the same JSON object; JSON would silently keep "
                                 "only the last one", source=source, fix=f"keep a single {twice!r} (merge the two)")
        return dict(pairs)

    try:
        return json.loads(text or "{}", object_pairs_hook=unique)
    except json.JSONDecodeError as err:
        raise CoeaInputError(f"{what}: {err}", source=source, fix=fix) from err


def _sections(texts: tuple[str, ...]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for text in texts:
        raw = read_json(text, source="pipeline parameter", what="config parameter is not JSON",
                        fix='pass a JSON object of config sections, e.g. {"split": {"n_future": 5}}')
        if not isinstance(raw, dict):
            raise CoeaInputError(f"config parameter must be a JSON object, got {type(raw).__name__}",
                                 source="pipeline parameter", fix="pass a JSON object of config sections")
        repeated = sorted(set(raw) & set(merged))
        if repeated:
            raise CoeaInputError(f"section(s) {repeated} given in two config parameters",
                                 source="pipeline parameter", fix="give each section once")
        merged.update(raw)
    return merged


def config_from_json(*texts: str, device: str | None = None, ui: UiParameters | None = None) -> RunConfig:
    """A RunConfig from JSON objects of RunConfig sections (and the ``device`` parameter), with the typed
    parameters of ``ui`` merged in (:func:`with_ui_parameters`); sections not given keep their defaults. An error
    names the run parameter that carries the bad value (``parameter eval_config [eval]: ...``)."""
    merged = _sections(texts)
    if ui is not None:
        merged = with_ui_parameters(merged, ui)
    if DEVICE_PARAM in merged:
        raise CoeaInputError("device is its own pipeline parameter, not a config section", source="pipeline parameter",
                             fix="pass device=auto|cpu|cuda[:N] as the `device` parameter")
    for name, values in merged.items():
        _check_section(name, values)
    if device is not None:
        merged[DEVICE_PARAM] = device_parameter(device)
    try:
        return run_config_from_dict(merged, where="pipeline parameters")
    except (ValueError, TypeError) as err:
        raise CoeaInputError(str(err), fix=_CONFIG_FIX) from err


def _check_section(section: str, values: Any) -> None:
    """One section on its own, so that its error names the run parameter carrying it; an unknown section or one
    that is not an object is left to the whole config's check."""
    param = SECTION_PARAM.get(section)
    kinds = {f.name: f.default_factory for f in dataclasses.fields(RunConfig)}
    if param is None or not isinstance(values, dict) or section not in kinds:
        return
    try:
        from_dict(type(kinds[section]()), values, where=f"parameter {param} [{section}]")  # type: ignore[misc]
    except (ValueError, TypeError) as err:
        raise CoeaInputError(str(err), fix=_CONFIG_FIX) from err


def device_parameter(device: str) -> str:
    """The ``device`` run parameter, checked (:func:`coea.device.check_device_spec`) and normalized."""
    try:
        return check_device_spec(device)
    except ValueError as err:
        raise CoeaInputError(f"must be one of {DEVICE_CHOICES}, got {device!r}", source="parameter device",
                             fix="auto (a step's GPU when its pod has one), cpu, cuda or cuda:N") from err


def parameter_sections(name: str, text: str) -> dict[str, Any]:
    """The sections of the JSON config parameter ``name`` (a key of :data:`CONFIG_PARAMS`). An error names the
    parameter: not JSON, not an object, or a section that another parameter carries (the steps would ignore it
    here and use that parameter's)."""
    example = json.dumps({CONFIG_PARAMS[name][0]: {}})
    raw = read_json(text, source=f"parameter {name}", fix=f"pass a JSON object of its config sections, e.g. {example}")
    if not isinstance(raw, dict):
        raise CoeaInputError(f"must be a JSON object of config sections, got {type(raw).__name__}",
                             source=f"parameter {name}", fix=f"pass e.g. {example}")
    own = list(CONFIG_PARAMS[name])
    for section in raw:
        if section in own:
            continue
        owner = "the device parameter" if section == DEVICE_PARAM else SECTION_PARAM.get(section)
        where = f"move it to {owner}" if owner else "drop it (no run parameter has this section)"
        raise CoeaInputError(f"section {section!r} does not belong in this parameter, which carries only {own}: "
                             "the steps would ignore it", source=f"parameter {name}", fix=where)
    return raw


def drift_config_from_json(text: str, *, threshold: float | None = None) -> DriftConfig:
    """A DriftConfig from a JSON object of its fields (the ``drift_config`` parameter); ``threshold`` (the
    pipeline's ``drift_threshold``) overrides the JSON's. An error names the parameter it comes from."""
    if threshold is not None and not 0.0 < float(threshold) <= 1.0:
        raise CoeaInputError(f"must be in (0, 1], got {threshold}", source="parameter drift_threshold",
                             fix="e.g. 0.5: regroup when half of the behaviour features drift")
    fix = 'pass a JSON object of DriftConfig fields, e.g. {"stattest": "psi"}, or {} for the defaults'
    raw = read_json(text, source="parameter drift_config", fix=fix)
    if not isinstance(raw, dict):
        raise CoeaInputError(f"must be a JSON object, got {type(raw).__name__}", source="parameter drift_config",
                             fix=fix)
    if threshold is not None:
        raw = {**raw, "threshold": float(threshold)}
    try:
        return from_dict(DriftConfig, raw, where="parameter drift_config")
    except (ValueError, TypeError) as err:
        raise CoeaInputError(str(err), fix=fix) from err
