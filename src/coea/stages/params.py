"""The run config as pipeline parameters and back.

Pipeline parameters carry the run config as JSON objects of :class:`~coea.config.RunConfig` sections, the same
shape as the YAML file: :func:`pipeline_arguments` splits a config into them, :func:`config_from_json` merges
them back (sections not given keep their defaults; unknown or repeated sections are errors). The device switch
travels as its own plain ``device`` parameter.
"""

from __future__ import annotations

import json
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


def config_from_json(*texts: str, device: str | None = None) -> RunConfig:
    """A RunConfig from JSON objects of RunConfig sections (and the ``device`` parameter); sections not given
    keep their defaults."""
    merged = _sections(texts)
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
