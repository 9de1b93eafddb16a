"""Every run parameter of the Kubeflow pipelines, checked by their first (cheap) step before any expensive one.

Each step parses only the parameters it uses, so a bad value typed in the run form would otherwise fail in the
step that uses it first, often after hours of GPU work, or not at all (a config section in the wrong parameter is
ignored; a state URI that is not one writes the state inside a pod that goes away). The ``prepare_data`` step
calls :func:`check_run_parameters` before it reads the log and :func:`check_log_parameters` right after: the
config they check is the one every step builds (:func:`coea.stages.params.config_from_json`), and every error is
one line naming the run-form parameter (``parameter rec_k: must be >= 1, got 0``), never a CLI flag.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from coea.config import SERVED_METHOD, RunConfig, check_cutoffs
from coea.errors import CoeaInputError
from coea.stages.params import (
    CONFIG_PARAMS,
    UiParameters,
    config_from_json,
    device_parameter,
    drift_config_from_json,
    parameter_sections,
)

DATA_SPEC_FIX = ("name the log, e.g. parquet:gs://BUCKET/events/ or csv:gs://BUCKET/log.csv, or pass synthetic for "
                 "a demo run on generated data")
STATE_URI_FIX = "use gs://BUCKET/PREFIX, or a directory on the volume the deployment mounts (e.g. /cache/coea-state)"


@dataclass(frozen=True)
class RunParameters:
    """The pipelines' run parameters as the run form holds them (defaults: the pipelines' own)."""

    state_uri: str
    data_config: str = "{}"
    split_config: str = "{}"
    dsie_config: str = "{}"
    eval_config: str = "{}"
    llm_config: str = "{}"
    pco_config: str = "{}"
    data_spec: str = ""
    pco_rounds: int = 0
    pco_alpha: float = -1.0
    device: str = "auto"
    rec_method: str = SERVED_METHOD
    rec_k: int = 10
    gcs_export_uri: str = ""
    drift_config: str | None = None  # the recurring pipeline's drift check (None: a pipeline without one)
    drift_threshold: float = 0.5

    def configs(self) -> dict[str, str]:
        """The JSON config parameters by name, in :data:`CONFIG_PARAMS` order."""
        return {name: getattr(self, name) for name in CONFIG_PARAMS}


def check_run_parameters(params: RunParameters) -> RunConfig:
    """The run config every step builds from ``params``, after checking every parameter (module doc); a bad one
    is a :class:`CoeaInputError` naming it."""
    sections = {name: parameter_sections(name, text) for name, text in params.configs().items()}
    check_data_spec(params.data_spec, sections["data_config"])
    device_parameter(params.device)
    cfg = config_from_json(*params.configs().values(), device=params.device,
                           ui=UiParameters(data_spec=params.data_spec, pco_rounds=params.pco_rounds,
                                           pco_alpha=params.pco_alpha))
    _check_spec_syntax(cfg.data.spec, "data_spec" if params.data_spec.strip() else "data_config")
    _check_methods(cfg, params.rec_method)
    if params.rec_k < 1:
        raise CoeaInputError(f"must be >= 1, got {params.rec_k}", source="parameter rec_k",
                             fix="the number of categories served per user, e.g. 10")
    check_state_uri(params.state_uri)
    check_export_uri(params.gcs_export_uri)
    if params.drift_config is not None:
        drift_config_from_json(params.drift_config, threshold=params.drift_threshold)
    return cfg


def check_log_parameters(cfg: RunConfig, n_categories: int) -> None:
    """The checks that need the log: eval.ks and pco.k at most its ``n_categories`` (naming the parameter)."""
    try:
        check_cutoffs(cfg, n_categories, ks=False, pco=True)
    except CoeaInputError as err:
        raise err.replace(source="parameter pco_config") from err
    try:
        check_cutoffs(cfg, n_categories)
    except CoeaInputError as err:
        raise err.replace(source="parameter eval_config", fix=(err.fix or "").replace(" (or --k)", "")) from err


def check_data_spec(data_spec: str, data_sections: dict) -> None:
    """A cluster run names its data: an empty ``data_spec`` with no ``data.spec`` in ``data_config`` would train on
    the synthetic generator's data (the config default) and overwrite the state with it. ``synthetic`` given
    explicitly (either place) is a demo run and allowed."""
    data = data_sections.get("data")
    given = isinstance(data, dict) and isinstance(data.get("spec"), str) and data["spec"].strip()
    if not data_spec.strip() and not given:
        raise CoeaInputError("empty, and data_config names no data.spec: the run would train on generated synthetic "
                             "data and overwrite the state", source="parameter data_spec", fix=DATA_SPEC_FIX)


def _check_spec_syntax(spec: str, param: str) -> None:
    from coea.data.loaders import parse_spec

    try:
        parse_spec(spec)
    except CoeaInputError as err:
        raise err.replace(source=f"parameter {param}", option=None, fix=DATA_SPEC_FIX) from err


def _check_methods(cfg: RunConfig, rec_method: str) -> None:
    from coea.evaluation.registry import parse_method

    named = [("rec_method", rec_method)] + [("eval_config", f"{m}") for m in cfg.eval.methods]
    for param, method in named:
        try:
            parse_method(method)
        except CoeaInputError as err:
            where = "" if param == "rec_method" else " in eval.methods"
            raise err.replace(problem=err.problem + where, source=f"parameter {param}", option=None) from err


def check_state_uri(uri: str) -> str:
    """A state location the steps can share: ``gs://BUCKET/PREFIX``, or an absolute path; inside a Kubernetes pod
    the path must lie on a mounted volume (a path in the container's own file system is lost with the pod)."""
    from coea.store.gcs import parse_gcs_uri

    if uri.startswith("gs:") or "://" in uri:
        try:
            parse_gcs_uri(uri)
        except CoeaInputError as err:
            raise err.replace(source="parameter state_uri", option=None, fix=STATE_URI_FIX) from err
        return uri
    if not uri.startswith("/"):
        raise CoeaInputError(f"{uri!r} is neither gs://... nor an absolute path: the steps would write the state in "
                             "their own working directories and lose it", source="parameter state_uri",
                             fix=STATE_URI_FIX)
    if in_pod() and not on_volume(Path(uri)):
        raise CoeaInputError(f"{uri!r} is not on a mounted volume of this pod: the steps would write the state "
                             "inside their containers and lose it", source="parameter state_uri", fix=STATE_URI_FIX)
    return uri


def in_pod() -> bool:
    """True inside a Kubernetes pod (kfp.local and the CLI run the steps as local processes)."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def on_volume(path: Path) -> bool:
    """True when the nearest existing folder of ``path`` lies on a mount other than the container's root."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path):
        path = path.parent
    return str(path) != "/"


def check_export_uri(uri: str) -> None:
    """``gcs_export_uri``: empty (no export) or a valid ``gs://BUCKET/PREFIX``."""
    from coea.store.gcs import parse_gcs_uri

    if uri:
        try:
            parse_gcs_uri(uri)
        except CoeaInputError as err:
            raise err.replace(source="parameter gcs_export_uri", option=None) from err
