"""Run every benchmark script in this folder (``make bench``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# arguments per script: the scaling curve's quick sizes (1k, 3k, 10k users); the full curve (10k, 30k, 100k) takes
# far longer: run ``python benchmarks/bench_scale.py`` for it
ARGS = {"bench_scale.py": ["--quick"]}


def main() -> int:
    failed = 0
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"# {script.name}", flush=True)
        cmd = [sys.executable, str(script), *ARGS.get(script.name, [])]
        failed += subprocess.run(cmd, check=False).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    from _common import no_options

    no_options(__doc__)
    raise SystemExit(main())
