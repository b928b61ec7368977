#!/usr/bin/env bash
# The GPU checks in one call (<= 8 min on one GPU): the CUDA tests, the benchmark against the pclucas14 port in
# bf16 with the fast path (channels_last, whole-step CUDA graphs), one short epoch of each trainer with --amp bf16
# --channels-last and the default loader workers, interrupted by SIGTERM and resumed (the density trainer must
# capture its step), graph = eager and compile = eager on short density runs, bf16 vs float32 scoring over 2000
# images on the same weights, the GPU speed table (batch sizes, eager vs compile vs CUDA graphs, kernels per step)
# and the real trainer step next to the bare one.  Every row says whether CUDA graphs were captured.  Writes
# benchmarks/results/gpu.json; prints one markdown summary on stdout; exits non-zero if any step fails (the
# failing logs' tails go to stderr).
#   scripts/gpu_check.sh               on the GPU
#   scripts/gpu_check.sh --quick       the first 6 minutes of a GPU session: capture with the default workers,
#                                      graph = eager, speed at batch 32/64 with the trainer step, the CUDA tests
#   scripts/gpu_check.sh --dry-run     the same steps on the CPU at toy sizes (CI runs this)
#   scripts/gpu_check.sh --stage-port  copy the port from ../shared/anchors/pixel-cnn-pp into the git-ignored .port/
#                                      (for a machine that gets this tree without ../shared: carry .port along)
#   scripts/gpu_check.sh --help        every option (python -m benchmarks.gpu_check --help)
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
export MPLBACKEND=Agg
if [[ "${1:-}" == "--stage-port" ]]; then
  src="$ROOT/../shared/anchors/pixel-cnn-pp"
  [[ -f "$src/model.py" ]] || { echo "error: no port at $src" >&2; exit 2; }
  mkdir -p "$ROOT/.port" && rm -rf "$ROOT/.port/pixel-cnn-pp" && cp -r "$src" "$ROOT/.port/pixel-cnn-pp"
  echo "port copied to $ROOT/.port/pixel-cnn-pp (git-ignored)"
  exit 0
fi
exec "$PY" -m benchmarks.gpu_check "$@"
