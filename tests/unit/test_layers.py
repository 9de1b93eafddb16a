"""Layers only import downwards: ``coea.cli`` -> ``pipelines`` -> ``components`` -> the ``coea`` library.

Read from the source with ``ast`` (every ``import x`` / ``from x import y``, inside functions too), so an import
that only runs in one branch is caught as well. The library (``src/coea``) never imports ``kfp``, ``components``
or ``pipelines``; the one exception is ``src/coea/cli/kubeflow.py`` (the top layer's commands that run the
pipelines), which may import ``components`` and ``pipelines`` inside its command functions (never at module
level, and never ``kfp``). ``components`` never imports ``pipelines``, and neither imports ``coea.cli``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO

LIBRARY = REPO / "src" / "coea"
CLI = LIBRARY / "cli" / "kubeflow.py"  # the commands that run or ship the pipelines
KFP_LAYERS = ("kfp", "components", "pipelines")


@dataclass(frozen=True)
class Import:
    module: str  # the imported module, absolute ("coea.cli"); "" for a relative import without a module
    line: int
    in_function: bool  # inside a function body (a lazy import), not at module level


def imports(path: Path) -> list[Import]:
    """Every import statement of a file; ``from a import b`` yields both ``a`` and ``a.b``, since ``b`` may be a
    module (``from coea import cli``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    nested = {id(node) for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
              for node in ast.walk(fn) if node is not fn}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue  # relative imports stay inside their own package
        found += [Import(name, node.lineno, id(node) in nested) for name in names]
    return found


def top(module: str) -> str:
    return module.split(".")[0]


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


LIBRARY_FILES = sorted(LIBRARY.rglob("*.py"))


def test_the_library_is_found() -> None:
    assert CLI in LIBRARY_FILES and len(LIBRARY_FILES) > 20


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=rel)
def test_library_never_imports_kfp_components_or_pipelines(path: Path) -> None:
    bad = [i for i in imports(path) if top(i.module) in KFP_LAYERS]
    if path == CLI:  # the top layer: components/pipelines lazily, inside command functions
        bad = [i for i in bad if top(i.module) == "kfp" or not i.in_function]
    assert not bad, (f"{rel(path)} imports {[f'{i.module} (line {i.line})' for i in bad]}: src/coea is the library "
                     f"and never imports kfp, components or pipelines (only coea.cli may import components/"
                     f"pipelines, inside a command function)")


KFP_FILES = sorted([*(REPO / "components").rglob("*.py"), *(REPO / "pipelines").rglob("*.py")])


def test_the_kfp_packages_are_found() -> None:
    names = {rel(p) for p in KFP_FILES}
    assert {"components/__init__.py", "components/build.py", "pipelines/__init__.py",
            "pipelines/definitions.py"} <= names


@pytest.mark.parametrize("path", KFP_FILES, ids=rel)
def test_components_and_pipelines_import_downwards(path: Path) -> None:
    found = imports(path)
    cli = [i for i in found if i.module == "coea.cli" or i.module.startswith("coea.cli.")]
    assert not cli, f"{rel(path)} imports coea.cli (line {cli[0].line}): the CLI is the layer above"
    if path.is_relative_to(REPO / "components"):
        up = [i for i in found if top(i.module) == "pipelines"]
        assert not up, f"{rel(path)} imports pipelines (line {up[0].line}): pipelines are built from components"


def test_imports_sees_lazy_and_from_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import os\nfrom coea import cli\n\ndef f():\n    from kfp.dsl import component\n")
    got = {(i.module, i.in_function) for i in imports(source)}
    assert got == {("os", False), ("coea", False), ("coea.cli", False), ("kfp.dsl", True),
                   ("kfp.dsl.component", True)}
