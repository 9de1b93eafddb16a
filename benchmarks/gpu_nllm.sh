#!/usr/bin/env bash
# The GPU measurement issue 12 is waiting for: is the N-LLM held back by its size or by its passes? On 2 CPU cores
# the default N-LLM (1 layer, 64 wide, one pass over ~448,000 MovieLens examples, with the seq:/items: prompt
# sections) ranks unseen categories below the DSIE encoder (validation, +x S-H@10: nllm_sft+x .7154 vs sasrec+x
# .7487, docs/results.md, session 36; test .7082 vs .7399), and the `distil` PCO recipe can at best reach the
# N-LLM x encoder product (test, session 37: coea+x .7191). This script trains N-LLM variants side by side
# on ONE carried DSIE fit and evaluates each against the encoder on the same users:
#   gpu:  the `gpu` preset's N-LLM (4 layers, 256 wide) and its recipe (3 epochs, batch 256, lr 4e-3);
#   e3:   the default N-LLM with that recipe (more passes, same size);
#   g1:   the `gpu` preset's N-LLM for one epoch (more size, same passes).
# Every variant also writes nllm_seq+x (the N-LLM x encoder product, the distil recipe's ceiling).
# Env: RUN (a run directory written by `coea group --config CONFIG --out RUN`: its data/ and dsie/ are reused, never
# written), CONFIG (that config file: split, prompt options, seeds), OUT (results, default ./gpu_out), LIMIT
# (seconds per variant, default 500), DEVICE (default cuda; cpu with a tiny RUN to try the script itself),
# VARIANTS (default "gpu e3 g1"), ML (a MovieLens directory to read instead of CONFIG's data spec, optional), WHEELS
# (a folder of wheels to install first, optional). Time on an H200 (estimate from README 'Benchmarks': ~51 ms a
# step for the gpu model at batch 256, plus 1-3 min of tokenizing): g1 ~5 min, e3 ~4 min, gpu ~10 min; with one
# lease of 15 minutes run VARIANTS="g1 e3" under LIMIT=540.
set -u
ROOT=$(pwd)
OUT=${OUT:-$ROOT/gpu_out}
LIMIT=${LIMIT:-500}
DEVICE=${DEVICE:-cuda}
VARIANTS=${VARIANTS:-gpu e3 g1}
W=${WORK:-/tmp/coea-gpu-nllm}
: "${RUN:?set RUN to a run directory written by coea group}" "${CONFIG:?set CONFIG to that run\'s config file}"
mkdir -p "$OUT" "$W"
. benchmarks/gpu_env.sh
python3 -c "import datasets, trl, peft, coea.cli" || exit 1  # fail fast

# one config per variant: CONFIG with the variant's llm settings, a small placeholder R-LLM (evaluate --from-run
# loads both LLMs; none of the methods read by this script uses the R-LLM) and the device
python3 - "$CONFIG" "$W" "$DEVICE" "${ML:-}" $VARIANTS <<'EOF' || exit 1
import sys
import yaml
from coea.config import preset_path

config, work, device, movielens, variants = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
gpu = yaml.safe_load(preset_path("gpu").read_text())["llm"]
recipe = {**gpu["novelty"]}
one_pass = {**recipe, "epochs": 1.0}
llm = {"gpu": {"model": gpu["model"], "novelty": recipe}, "e3": {"novelty": recipe},
       "g1": {"model": gpu["model"], "novelty": one_pass}}
for name in variants:
    cfg = yaml.safe_load(open(config)) or {}
    cfg["device"] = device
    if movielens:
        cfg.setdefault("data", {})["spec"] = f"movielens:{movielens}"
    section = cfg.setdefault("llm", {})
    for key, value in llm[name].items():
        section[key] = {**section.get(key, {}), **value}
    section["relevance"] = {**section.get("relevance", {}), "max_examples": 2000, "epochs": 1.0}
    with open(f"{work}/{name}.yaml", "w") as f:
        yaml.safe_dump(cfg, f)
EOF

variant() {  # train the N-LLM, the placeholder R-LLM, then evaluate; the table lands in $OUT/NAME.md
  local name=$1 run=$W/$1
  rm -rf "$run" && mkdir -p "$run" && cp -r "$RUN/data" "$RUN/dsie" "$run/" || return 1
  local c=$W/$name.yaml
  python3 -m coea.cli train-llms --run "$run" --config "$c" --only novelty || return 1
  python3 -m coea.cli train-llms --run "$run" --config "$c" --only relevance || return 1
  python3 -m coea.cli evaluate --from-run "$run" --config "$c" --methods nllm_sft+x,nllm_seq+x,sasrec+x \
    --reference sasrec+x --out "$run/eval" || return 1
  cp "$run/eval/metrics.md" "$OUT/$name.md"
  python3 -c "import json,sys; m=json.load(open(sys.argv[1]))['novelty']; print('$name', m['examples'], \
'examples', m['steps'], 'steps', m['seconds'], 's, loss', m.get('last_loss'))" "$run/llm/sft_metrics_novelty.json" \
    >> "$OUT/summary.txt"
}
export -f variant
export W RUN OUT
for name in $VARIANTS; do
  ( timeout "$LIMIT" bash -c 'variant "$0"' "$name" 2>&1 | quiet ) > "$OUT/$name.log" &
done
log_gpu_until_done "$OUT/gpu_util.txt"
wait
ls -la "$OUT"
