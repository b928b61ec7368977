#!/usr/bin/env bash
# One reference CIFAR WRN-40-2 run (shared by scripts/cifar{10,100}_wrn_{baseline,oe_tune,oe_scratch}.sh).
#
# Usage: DATA_ROOT=/data OUT=runs scripts/cifar_wrn_run.sh DATASET MODE [classifiers_oe.train options]
#   DATA_ROOT  folder holding the datasets (cifar-10-batches-py/, tiny_images.bin, ...; see python -m oe_core.data)
#   OUT        parent folder of the runs (default: runs); this run goes to OUT/DATASET_wrn_MODE, and
#              oe_tune starts from OUT/DATASET_wrn_baseline
#   NPROC      processes (GPUs) on this node through torchrun (default: 1); the global batches stay 128/256
# Extra options are passed on (e.g. --device cuda --amp bf16 --channels-last --outliers tinyimages300k).
# Rerunning the same command resumes an interrupted run.
set -euo pipefail
abs() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
if [[ $# -lt 2 ]]; then
  echo "usage: DATA_ROOT=DIR OUT=DIR $0 DATASET MODE [train options]" >&2
  exit 2
fi
DATASET="$1"
MODE="$2"
shift 2
: "${DATA_ROOT:?set DATA_ROOT to the folder holding the datasets}"
DATA_ROOT="$(abs "$DATA_ROOT")"
OUT="$(abs "${OUT:-runs}")"
NPROC="${NPROC:-1}"
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

ARGS=(--mode "$MODE" --dataset "$DATASET" --data-root "$DATA_ROOT" --out "$OUT/${DATASET}_wrn_${MODE}")
if [[ "$MODE" == oe_tune ]]; then
  ARGS+=(--init "$OUT/${DATASET}_wrn_baseline")
fi
if (( NPROC > 1 )); then
  exec "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m classifiers_oe.train "${ARGS[@]}" "$@"
fi
exec "$PY" -m classifiers_oe.train "${ARGS[@]}" "$@"
