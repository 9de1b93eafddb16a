"""Compile the pipelines, and keep the checked-in compiled YAML in step with the code.

Checked in (compiled with the default :class:`~components.settings.DeploymentSettings`): ``components/<name>.yaml``
for every component and ``pipelines/coea_training.yaml``, ``pipelines/coea_recurring.yaml``, the packages a user
uploads in the Kubeflow UI. One command regenerates them all, another checks them::

    python -m pipelines.compile --write     # or: make compile
    python -m pipelines.compile --check     # exit code 1 and one line per stale file

The check compares parsed YAML documents. The only key left out is ``sdkVersion`` (``kfp-<version>``): it names
the kfp release that compiled the file and would fail the check on every kfp upgrade, while nothing in it changes
what runs. Compiling is otherwise deterministic (no timestamps or random ids).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from kfp import compiler

from components.build import COMPONENTS_DIR, compile_components
from components.settings import DeploymentSettings
from pipelines.definitions import RECURRING, TRAINING, build_pipelines

log = logging.getLogger(__name__)

PIPELINES_DIR = Path(__file__).resolve().parent  # where coea_training.yaml and coea_recurring.yaml are checked in
REGENERATE = "make compile (= python -m pipelines.compile --write)"
VOLATILE_KEYS = ("sdkVersion",)  # top-level keys of a compiled document that name the compiling kfp release
# libyaml's safe loader when PyYAML has it: the same documents as yaml.SafeLoader, about 8x faster on a pipeline
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def unpullable_image(ref: str) -> bool:
    """True for a reference without a registry or repository owner (``coea:latest``): a cluster would pull it
    from Docker Hub's official images, ``docker.io/library/coea``, which is not coea's image."""
    return "/" not in ref.split("@", 1)[0]


PLACEHOLDER_MARKS = ("REPLACE_ME", "REGISTRY/", ":TAG")  # in k8s/*/pipeline.yaml: REGISTRY/coea:TAG, gs://REPLACE_ME-...


def deployment_warnings(settings: DeploymentSettings) -> list[str]:
    """One ``WARNING:`` line per setting that makes a compiled package unusable on a cluster, though fine for a
    local experiment: an image a cluster cannot pull (``coea:latest``, the default), no pipeline root, and an image or
    pipeline root still holding a shipped settings file's placeholder (``REGISTRY/coea:TAG``). The
    commands that compile (``coea compile``, ``upload``, ``schedule``) print them on stderr."""
    warnings = []
    for option, ref in (("--image", settings.base_image), ("--gpu-image", settings.gpu_image)):
        if ref and unpullable_image(ref):
            name = ref.split("@", 1)[0].split(":", 1)[0]
            warnings.append(f"WARNING: image {ref} names no registry, so a cluster cannot pull it (it would look for "
                            f"docker.io/library/{name}); fine locally, for a cluster pass {option} "
                            f"REGISTRY/{name}:TAG (or {'image' if option == '--image' else 'gpu_image'} in "
                            "--settings)")
    if not settings.pipeline_root:
        warnings.append("WARNING: no pipeline root: the runs' artifacts go to the KFP server's default root; for a "
                        "cluster pass --pipeline-root gs://BUCKET/ROOT (or pipeline_root in --settings)")
    for option, key, value in (("--image", "image", settings.base_image), ("--gpu-image", "gpu_image",
                               settings.gpu_image), ("--pipeline-root", "pipeline_root", settings.pipeline_root)):
        if any(mark in value for mark in PLACEHOLDER_MARKS):
            warnings.append(f"WARNING: {key} {value} is a placeholder of the shipped settings files; replace it in "
                            f"--settings or pass {option}")
    return warnings


def deployment_summary(settings: DeploymentSettings) -> str:
    """What a package compiled with ``settings`` uses, in one line (the ``--dry-run`` of upload and schedule):
    the image(s), the pipeline root and the state URI."""
    gpu = settings.gpu_image or settings.base_image
    images = f"image {settings.base_image}" + ("" if gpu == settings.base_image else f", GPU steps {gpu}")
    root = settings.pipeline_root or "none (the KFP server's default)"
    mount = settings.cache_mount_path.rstrip("/")
    on_volume = settings.state_on_cache_volume
    state = settings.state_uri + (f" (on the cache volume {settings.cache_pvc_name} at {mount})" if on_volume else "")
    return f"the package uses: {images}; pipeline root {root}; state_uri {state}"


def compile_pipelines(out_dir: Path, settings: DeploymentSettings | None = None) -> dict[str, Path]:
    """Compile both pipelines to ``out_dir/<name>.yaml`` (KFP IR YAML); returns name -> path."""
    built = build_pipelines(settings)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, pipeline in ((TRAINING, built.training), (RECURRING, built.recurring)):
        paths[name] = out_dir / f"{name.replace('-', '_')}.yaml"
        compiler.Compiler().compile(pipeline, str(paths[name]))
    return paths


def compile_all(components_dir: Path, pipelines_dir: Path) -> list[Path]:
    """Every checked-in YAML, compiled with the default settings: each component into ``components_dir``, both
    pipelines into ``pipelines_dir``; returns the paths."""
    settings = DeploymentSettings()
    return [*compile_components(components_dir, settings).values(),
            *compile_pipelines(pipelines_dir, settings).values()]


def load_compiled(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of a compiled file (a pipeline has a second one, its kfp-kubernetes platform spec),
    without :data:`VOLATILE_KEYS`."""
    docs = yaml.load_all(Path(path).read_text(encoding="utf-8"), Loader=YAML_LOADER)
    return [{k: v for k, v in (doc or {}).items() if k not in VOLATILE_KEYS} for doc in docs]


def diff_compiled(fresh: dict[str, Path], checked_in: dict[str, Path]) -> list[str]:
    """One message per checked-in file that is missing, stale (no such component or pipeline any more) or
    differs from the fresh compile. ``fresh`` and ``checked_in`` map a folder's name (``components``,
    ``pipelines``) to the folder."""
    problems = []
    for folder, fresh_dir in fresh.items():
        new = {p.name for p in fresh_dir.glob("*.yaml")}
        old = {p.name for p in checked_in[folder].glob("*.yaml")}
        for name in sorted(new | old):
            where = f"{folder}/{name}"
            if name not in old:
                problems.append(f"{where} is missing")
            elif name not in new:
                problems.append(f"{where} is stale: the code compiles no such file")
            elif load_compiled(fresh_dir / name) != load_compiled(checked_in[folder] / name):
                problems.append(f"{where} differs from a fresh compile of the code")
    return [f"{p}; regenerate with {REGENERATE}" for p in problems]


def checked_in_dirs() -> dict[str, Path]:
    """The folders that hold the checked-in YAML: the ``components`` and ``pipelines`` packages."""
    return {"components": COMPONENTS_DIR, "pipelines": PIPELINES_DIR}


def check_compiled(checked_in: dict[str, Path] | None = None) -> list[str]:
    """Compile into a temporary folder and compare with the checked-in YAML (see :func:`diff_compiled`)."""
    checked_in = checked_in or checked_in_dirs()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {folder: Path(tmp) / folder for folder in checked_in}
        compile_all(fresh["components"], fresh["pipelines"])
        return diff_compiled(fresh, checked_in)


def write_compiled(checked_in: dict[str, Path] | None = None) -> list[Path]:
    """Regenerate every checked-in YAML: compile into a temporary folder, move each file into place, delete the
    stale ones (a component that no longer exists). Returns the files written."""
    checked_in = checked_in or checked_in_dirs()
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {folder: Path(tmp) / folder for folder in checked_in}
        compile_all(fresh["components"], fresh["pipelines"])
        for folder, fresh_dir in fresh.items():
            names = {p.name for p in fresh_dir.glob("*.yaml")}
            for stale in sorted(p for p in checked_in[folder].glob("*.yaml") if p.name not in names):
                log.info("deleting stale %s", stale)
                stale.unlink()
            for name in sorted(names):
                target = checked_in[folder] / name
                shutil.copyfile(fresh_dir / name, target.with_suffix(".yaml.tmp"))
                os.replace(target.with_suffix(".yaml.tmp"), target)
                written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.compile --write | --check``; the exit code is 1 when ``--check`` finds a stale file."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.compile", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate components/*.yaml and pipelines/*.yaml")
    mode.add_argument("--check", action="store_true", help="fail when a checked-in YAML differs from the code")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.write:
        for path in write_compiled():
            log.info("wrote %s", path)
        return 0
    problems = check_compiled()
    for problem in problems:
        log.error("%s", problem)
    if not problems:
        log.info("the checked-in YAML matches the code")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
