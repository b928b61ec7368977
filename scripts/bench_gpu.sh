#!/usr/bin/env bash
# The benchmark on a CUDA GPU, in float32 (TF32 off) and in bf16 autocast; both tables are appended to
# docs/performance.md (JSON in benchmarks/results/cuda.json and cuda-bf16.json).  Up to 20 timed calls per variant
# (GPU steps are short; --case-seconds still caps each case).  Extra arguments go to both runs, e.g.
#   scripts/bench_gpu.sh --device cuda:1
#   scripts/bench_gpu.sh --channels-last
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "error: scripts/bench_gpu.sh needs a CUDA GPU, and torch sees none" >&2
  exit 2
fi
for amp in none bf16; do
  "$PY" -m benchmarks.run --device cuda --amp "$amp" --repeats 20 --markdown-append docs/performance.md "$@"
done
