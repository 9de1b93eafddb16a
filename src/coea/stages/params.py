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
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coea.config import RunConfig, config_to_dict, from_dict, run_config_from_dict
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
DEVICE_PARAM = "device"  # RunConfig.device: auto | cpu | cuda[:N]
# RunConfig sections no pipeline step reads (every section has its parameter now).
PENDING_SECTIONS: tuple[str, ...] = ()


@dataclass(frozen=True)
class UiParameters:
    """The typed pipeline parameters over the JSON config parameters; each default keeps the JSON's value."""

    data_spec: str = ""  # data.spec, e.g. parquet:gs://BUCKET/events/ ("" = data_config's)
    pco_rounds: int = 0  # pco.rounds (0 = pco_config's)
    pco_alpha: float = -1.0  # pco.dpo.alpha, the KL weight (negative = pco_config's; 0 = plain DPO)


def with_ui_parameters(sections: Mapping[str, Any], ui: UiParameters) -> dict[str, Any]:
    """``sections`` (RunConfig sections as parsed from the JSON parameters) with the values of ``ui`` that are
    set written over them: ``data.spec``, ``pco.rounds``, ``pco.dpo.alpha``. Pure: ``sections`` is not changed.
    A negative ``pco_rounds`` or a non-finite ``pco_alpha`` is a :class:`~coea.errors.CoeaInputError`."""
    if ui.pco_rounds < 0:
        raise CoeaInputError(f"pco_rounds must be >= 0, got {ui.pco_rounds}", option="pco_rounds",
                             fix="pass the number of PCO rounds, or 0 to keep pco_config's")
    if not math.isfinite(ui.pco_alpha):
        raise CoeaInputError(f"pco_alpha must be a finite number, got {ui.pco_alpha}", option="pco_alpha",
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


def _sections(texts: tuple[str, ...]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for text in texts:
        try:
            raw = json.loads(text or "{}")
        except json.JSONDecodeError as err:
            raise CoeaInputError(f"config parameter is not JSON: {err}", source="pipeline parameter",
                                 fix='pass a JSON object of config sections, e.g. {"split": {"n_future": 5}}') from err
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
    parameters of ``ui`` merged in (:func:`with_ui_parameters`); sections not given keep their defaults."""
    merged = _sections(texts)
    if ui is not None:
        merged = with_ui_parameters(merged, ui)
    if DEVICE_PARAM in merged:
        raise CoeaInputError("device is its own pipeline parameter, not a config section", source="pipeline parameter",
                             fix="pass device=auto|cpu|cuda[:N] as the `device` parameter")
    if device is not None:
        merged[DEVICE_PARAM] = device
    try:
        return run_config_from_dict(merged, where="pipeline parameter")
    except (ValueError, TypeError) as err:
        raise CoeaInputError(str(err), source="pipeline parameter", fix="see README 'Configuration'") from err


def drift_config_from_json(text: str, *, threshold: float | None = None) -> DriftConfig:
    """A DriftConfig from a JSON object of its fields; ``threshold`` (the pipeline's) overrides the JSON's."""
    try:
        raw = json.loads(text or "{}")
        if threshold is not None:
            raw["threshold"] = float(threshold)
        return from_dict(DriftConfig, raw, where="drift_config")
    except (ValueError, TypeError, AttributeError) as err:
        raise CoeaInputError(str(err), source="drift_config", fix="pass a JSON object of DriftConfig fields") from err
