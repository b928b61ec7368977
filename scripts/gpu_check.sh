#!/usr/bin/env bash
# The GPU checks in one call (<= 8 min on one GPU): the CUDA tests, the benchmark against the pclucas14 port
# in float32 and bf16 with and without --compile, one short epoch of each trainer with --amp bf16 --channels-last
# interrupted by SIGTERM and resumed, and bf16 vs float32 scoring on the same weights.  Prints one markdown
# summary on stdout; exits non-zero if any step fails (the failing logs' tails go to stderr).
#   scripts/gpu_check.sh             on the GPU
#   scripts/gpu_check.sh --dry-run   the same steps on the CPU at toy sizes (CI runs this)
#   scripts/gpu_check.sh --help      every option (python -m benchmarks.gpu_check --help)
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
export MPLBACKEND=Agg
exec "$PY" -m benchmarks.gpu_check "$@"
