# Sourced by the GPU session scripts (gpu_session.sh, gpu_nllm.sh) from the repository root: installs the wheels
# in $WHEELS when set (the device machine lacks trl, datasets, ...), puts the checkout's code on PYTHONPATH, quiets
# the progress bars, and defines quiet (a filter for their logs) and log_gpu_until_done FILE (GPU use every 10 s
# while the script's background jobs run).
if [ -n "${WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$ROOT/src:$ROOT${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TQDM_DISABLE=1
export HF_DATASETS_DISABLE_PROGRESS_BARS=1 COEA_TORCH_THREADS=${COEA_TORCH_THREADS:-3}
quiet() { grep -v --line-buffered -E "it/s\]|s/it\]|examples/s\]|Loading weights|FutureWarning|warnings.warn"; }
log_gpu_until_done() {
  command -v nvidia-smi > /dev/null || return 0
  while [ -n "$(jobs -r)" ]; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader \
    >> "$1" 2>&1; sleep 10; done
}
