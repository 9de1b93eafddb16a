"""The component functions of :mod:`components.functions` as KFP components for one deployment, and their
compiled spec YAML (``components/<name>.yaml``, checked in; ``python -m pipelines.compile --write`` rewrites it).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from kfp import compiler, dsl
from kfp.dsl.python_component import PythonComponent

from components.functions import STAGES
from components.settings import DeploymentSettings

COMPONENTS_DIR = Path(__file__).resolve().parent  # where the compiled <name>.yaml files are checked in


@dataclass(frozen=True)
class Components:
    """The stage functions as KFP components built for one deployment (image)."""

    prepare_data: PythonComponent
    dsie_group: PythonComponent
    sft_novelty: PythonComponent
    sft_relevance: PythonComponent
    pco_loop: PythonComponent
    build_profiles: PythonComponent
    evaluate: PythonComponent
    recommend: PythonComponent
    monitor_drift: PythonComponent
    load_state: PythonComponent
    save_state: PythonComponent
    load_models: PythonComponent
    save_models: PythonComponent
    export_recommendations: PythonComponent


def build_components(settings: DeploymentSettings) -> Components:
    """Every stage as ``dsl.component(base_image=..., install_kfp_package=False)``: the GPU stages
    (``components.settings.GPU_STAGES``) with ``settings.gpu_image`` (``base_image`` when empty), the others with
    ``settings.base_image``."""
    return Components(**{fn.__name__: dsl.component(fn, base_image=settings.image_of(fn.__name__),
                                                    install_kfp_package=False) for fn in STAGES})


def compile_components(out_dir: Path, settings: DeploymentSettings | None = None) -> dict[str, Path]:
    """Compile every component to ``out_dir/<name>.yaml`` (a component spec that
    ``kfp.components.load_component_from_file`` reads back); returns name -> path."""
    built = build_components(settings or DeploymentSettings())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for field in fields(built):
        paths[field.name] = out_dir / f"{field.name}.yaml"
        compiler.Compiler().compile(getattr(built, field.name), str(paths[field.name]))
    return paths
