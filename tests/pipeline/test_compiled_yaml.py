"""The checked-in compiled YAML matches a fresh compile of the code: ``components/<name>.yaml`` (one per component)
and ``pipelines/coea_training.yaml``, ``pipelines/coea_recurring.yaml`` (default deployment settings); each
component YAML loads with ``kfp.components.load_component_from_file``.

Files are compared as parsed YAML documents without the top-level ``sdkVersion`` key (``kfp-<version>``, the kfp
release that compiled the file, see ``pipelines.compile.VOLATILE_KEYS``); nothing else is ignored: compiling
twice gives byte-identical files (no timestamps, no random ids). A failure names the file; regenerate them all
with ``make compile`` (= ``python -m pipelines.compile --write``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from kfp.components import load_component_from_file

from components.functions import STAGES
from pipelines.compile import REGENERATE, YAML_LOADER, diff_compiled, load_compiled, write_compiled
from tests.helpers import REPO

FOLDERS = ("components", "pipelines")
CHECKED_IN = {folder: REPO / folder for folder in FOLDERS}
FILES = [*(f"components/{fn.__name__}.yaml" for fn in STAGES), "pipelines/coea_training.yaml",
         "pipelines/coea_recurring.yaml"]


@pytest.fixture(scope="module")
def fresh(default_compiled: dict[str, Path]) -> dict[str, Path]:
    """Every component and pipeline compiled by :func:`pipelines.compile.compile_all` (the session's compile)."""
    return {folder: default_compiled[folder] for folder in FOLDERS}


def test_every_compiled_file_is_checked_in_and_none_is_stale(fresh: dict[str, Path]) -> None:
    for folder in FOLDERS:
        new = {p.name for p in fresh[folder].glob("*.yaml")}
        old = {p.name for p in CHECKED_IN[folder].glob("*.yaml")}
        assert new == old, (f"{folder}/: missing {sorted(new - old)}, stale {sorted(old - new)}; "
                            f"regenerate with {REGENERATE}")
    assert {f"{folder}/{p.name}" for folder in FOLDERS for p in fresh[folder].glob("*.yaml")} == set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_checked_in_yaml_matches_a_fresh_compile(fresh: dict[str, Path], name: str) -> None:
    folder, file = name.split("/")
    checked_in = CHECKED_IN[folder] / file
    assert checked_in.is_file(), f"{name} is missing; regenerate with {REGENERATE}"
    same = load_compiled(checked_in) == load_compiled(fresh[folder] / file)
    assert same, f"{name} differs from a fresh compile of the code; regenerate with {REGENERATE}"


@pytest.mark.parametrize("fn", STAGES, ids=lambda fn: fn.__name__)
def test_component_yaml_loads(fn) -> None:
    component = load_component_from_file(str(CHECKED_IN["components"] / f"{fn.__name__}.yaml"))
    assert component.name == fn.__name__.replace("_", "-")
    assert set(component.component_spec.inputs or {}) <= set(fn.__annotations__)


def test_only_sdk_version_is_left_out(fresh: dict[str, Path]) -> None:
    path = fresh["pipelines"] / "coea_training.yaml"
    raw = list(yaml.load_all(path.read_text(), Loader=YAML_LOADER))
    assert raw == list(yaml.safe_load_all(path.read_text()))  # the fast loader reads what yaml.safe_load reads
    assert len(raw) == 2  # the pipeline spec, then the kfp-kubernetes platform spec
    assert raw[0]["sdkVersion"].startswith("kfp-")
    assert load_compiled(path) == [{k: v for k, v in raw[0].items() if k != "sdkVersion"}, raw[1]]


def test_check_names_each_bad_file_and_write_repairs_them(fresh: dict[str, Path], tmp_path: Path) -> None:
    copy = {folder: shutil.copytree(fresh[folder], tmp_path / folder) for folder in FOLDERS}
    spec = yaml.safe_load((copy["components"] / "evaluate.yaml").read_text())
    spec["pipelineInfo"]["description"] = "changed"
    (copy["components"] / "evaluate.yaml").write_text(yaml.safe_dump(spec))
    (copy["components"] / "retired_step.yaml").write_text("{}\n")
    (copy["pipelines"] / "coea_recurring.yaml").unlink()
    assert diff_compiled(fresh, copy) == [
        f"components/evaluate.yaml differs from a fresh compile of the code; regenerate with {REGENERATE}",
        f"components/retired_step.yaml is stale: the code compiles no such file; regenerate with {REGENERATE}",
        f"pipelines/coea_recurring.yaml is missing; regenerate with {REGENERATE}",
    ]
    write_compiled(copy)
    assert diff_compiled(fresh, copy) == []
    assert not (copy["components"] / "retired_step.yaml").exists()


@pytest.mark.parametrize(("component", "output"), [("evaluate", "html_report"), ("pco_loop", "curves"),
                                                   ("monitor_drift", "report")])
def test_report_pages_are_declared_as_html_artifacts(component: str, output: str) -> None:
    """The checked-in component specs and both pipelines declare the report pages as ``system.HTML``, the type the
    KFP v2 UI renders in its visualization panel."""
    spec = yaml.safe_load((CHECKED_IN["components"] / f"{component}.yaml").read_text())
    artifact = spec["components"][f"comp-{component.replace('_', '-')}"]["outputDefinitions"]["artifacts"][output]
    assert artifact["artifactType"]["schemaTitle"] == "system.HTML"
    for file in ("coea_training.yaml", "coea_recurring.yaml"):
        pipeline = next(yaml.load_all((CHECKED_IN["pipelines"] / file).read_text(), Loader=YAML_LOADER))
        declared = [c["outputDefinitions"]["artifacts"][output]["artifactType"]["schemaTitle"]
                    for name, c in pipeline["components"].items()
                    if name.startswith(f"comp-{component.replace('_', '-')}")]
        assert declared == ["system.HTML"] * len(declared) and (declared or component == "monitor_drift"), file
