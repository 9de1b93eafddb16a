#!/usr/bin/env bash
# One GPU session's measurements, run from the repository root on a CUDA machine (a rented GPU box, or the
# development `device` tool: it writes to $OUT). Jobs run in parallel on the one GPU, each under a time limit:
#   1. benchmarks/device_check.py: every method through evaluate, evaluate --from-run and serve on cuda;
#   2. MovieLens, the `gpu` preset, the 14 methods of the README table (serendipity reward, the default);
#   3. the same with `pco.reward: feedback`;
#   4. the same as 2 on the 1-day `--min-gap 86400` view;
#   5. benchmarks/bench_train.py: SFT/DPO examples/s on CPU and GPU.
# Env: ML (MovieLens dir, default ../shared/data/ml-1m), WHEELS (a folder of wheels to install first, optional),
# LIMIT (seconds per job, default 470), OUT (results folder, default ./gpu_out), DEVICE (default cuda; cpu to try
# the script itself on a laptop with a small LIMIT).
set -u
ROOT=$(pwd)
OUT=${OUT:-$ROOT/gpu_out}
ML=${ML:-../shared/data/ml-1m}
LIMIT=${LIMIT:-470}
DEVICE=${DEVICE:-cuda}
W=${WORK:-/tmp/coea-gpu}
mkdir -p "$OUT" "$W"
. benchmarks/gpu_env.sh
if [ ! -e ../shared/data/ml-1m ]; then  # the benchmarks read MovieLens from ../shared
  mkdir -p ../shared/data && ln -s "$(realpath "$ML")" ../shared/data/ml-1m
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  python3 -c "import torch, transformers, trl, peft, pandas; print('torch', torch.__version__, 'cuda', \
torch.cuda.is_available(), '| transformers', transformers.__version__, '| trl', trl.__version__, '| peft', \
peft.__version__, '| pandas', pandas.__version__)"; } > "$OUT/env.txt" 2>&1

python3 -c "import pandas, datasets, trl, peft, coea.cli, coea.stages.evaluate" || exit 1  # fail fast
METHODS=pop,pop_novel,cooc_novel,group_pop_novel,markov,markov+x,sasrec,sasrec+x,nllm_sft,nllm_sft+x,dual_best_of_n,dual_best_of_n+x,coea,coea+x
python3 - "$W/feedback.yaml" <<'EOF'
import sys, yaml
from coea.config import preset_path
cfg = yaml.safe_load(preset_path("gpu").read_text())
cfg["pco"]["reward"] = "feedback"
open(sys.argv[1], "w").write(yaml.safe_dump(cfg))
EOF

( timeout "$LIMIT" python3 benchmarks/device_check.py --device "$DEVICE" --work "$W/check" 2>&1 | quiet ) > "$OUT/device_check.log" &
( timeout "$LIMIT" python3 -m coea.cli evaluate --data "movielens:$ML" --config gpu --device "$DEVICE" --methods "$METHODS" \
    --out "$W/ml_gpu" 2>&1 | quiet ) > "$OUT/ml_gpu.log" &
( timeout "$LIMIT" python3 -m coea.cli evaluate --data "movielens:$ML" --config "$W/feedback.yaml" --device "$DEVICE" \
    --methods sasrec+x,markov+x,nllm_sft,nllm_sft+x,coea,coea+x --out "$W/ml_feedback" 2>&1 | quiet ) > "$OUT/ml_feedback.log" &
( timeout "$LIMIT" python3 -m coea.cli evaluate --data "movielens:$ML" --config gpu --device "$DEVICE" --min-gap 86400 \
    --methods "$METHODS" --out "$W/ml_gap" 2>&1 | quiet ) > "$OUT/ml_gap.log" &
( timeout "$LIMIT" python3 benchmarks/bench_train.py --steps 20 2>&1 | quiet ) > "$OUT/bench_train.log" &
log_gpu_until_done "$W/gpu_util.txt"
wait
cp "$W/gpu_util.txt" "$OUT/" 2>/dev/null
(cd "$W" && tar czf "$OUT/results.tar.gz" --ignore-failed-read */metrics.json */metrics.md */pco/pco_metrics.json \
  */llm/*.json */dsie/*.json check/config.yaml 2>/dev/null)
ls -la "$OUT"
