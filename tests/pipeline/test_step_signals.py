"""A pipeline step's process on SIGTERM (a preempted pod, a deleted one, its deadline): every component body runs
under coea.interrupts.pipeline_step, so the signal unwinds it (context managers and finally blocks run: the
temporary ``.current.json.*.tmp`` a state write holds is removed) and the process exits 143 with one line. Before,
kfp's executor left Python's default SIGTERM: the process died at once and the temporary file stayed on the
state volume (audit of the state commit, defect D)."""

from __future__ import annotations

import ast
import inspect
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from components.functions import STAGES
from tests.helpers import REPO

CHILD = textwrap.dedent('''
    """The save_models step's function, as kfp's executor calls it, held while it writes current.json's temp file."""
    import contextlib, sys, time
    from pathlib import Path
    from types import SimpleNamespace

    import coea.state_backends as backends

    real = backends.atomic_path

    @contextlib.contextmanager
    def held(target):
        with real(target) as tmp:
            yield tmp
            if Path(target).name == "current.json":
                print("writing current.json", flush=True)
                time.sleep(120)

    backends.atomic_path = held
    from components.functions import save_models

    state, data, models = sys.argv[1:4]
    save_models(state_uri=state, data=SimpleNamespace(path=data), novelty=SimpleNamespace(path=models),
                relevance=SimpleNamespace(path=models))
    print("returned", flush=True)
''')


def _files(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    return root


def test_sigterm_in_a_step_removes_its_temporary_file_and_exits_143(tmp_path: Path) -> None:
    from coea.state import POINTER, run_save_state

    state = tmp_path / "state"
    data = _files(tmp_path / "data", "interactions.parquet")
    models = _files(tmp_path / "models", "novelty/w.bin", "relevance/w.bin")
    run_save_state(str(state), data, _files(tmp_path / "dsie", "groups.parquet"), models, models)
    before = (state / POINTER).read_bytes()
    (tmp_path / "child.py").write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), "COEA_TORCH_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "child.py"), str(state), str(data), str(models)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line == "writing current.json\n", (line, proc.stderr.read() if proc.poll() is not None else "")
    assert list(state.glob(f".{POINTER}.*.tmp")), "the temporary pointer file is not there"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1] == (
        "interrupted: SIGTERM; the step's temporary files were removed")
    assert "returned" not in out
    assert not [p.name for p in state.rglob("*") if p.name.endswith(".tmp")]  # the finally blocks ran
    assert (state / POINTER).read_bytes() == before and json.loads(before)  # the previous commit stays active


def test_every_component_body_runs_under_pipeline_step() -> None:
    """KFP ships each function's source to its pod: the wrapper must be in every body, not around the function."""
    for fn in STAGES:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        body = tree.body[0].body
        calls = [stmt for stmt in body if isinstance(stmt, ast.With)]
        assert len(calls) == 1 and ast.unparse(calls[0].items[0].context_expr) == "pipeline_step()", fn.__name__
        assert all(isinstance(stmt, ast.Expr | ast.Import | ast.ImportFrom) for stmt in body[:body.index(calls[0])])
        assert body[-1] is calls[0], f"{fn.__name__}: statements after the with block"
