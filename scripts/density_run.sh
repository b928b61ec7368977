#!/usr/bin/env bash
# One CIFAR-10 density-model run (shared by scripts/density_cifar10_{,glow_,vae_,diffusion_}{baseline,oe_tune}.sh).
#
# Usage: DATA_ROOT=/data OUT=runs scripts/density_run.sh MODE [density_oe.train options]
#   DATA_ROOT  folder holding the datasets (cifar-10-batches-py/, tiny_images.bin, ...; see python -m oe_core.data)
#   OUT        parent folder of the runs (default: runs); this run goes to OUT/cifar10_ARCH_MODE, and
#              oe_tune starts from OUT/cifar10_ARCH_baseline
#   ARCH       density model: pixelcnn (PixelCNN++, default), glow, vae or diffusion
#   NPROC      processes (GPUs) on this node through torchrun (default: 1); batches are global
# Rerunning the same command resumes an interrupted run.
set -euo pipefail
abs() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
if [[ $# -lt 1 ]]; then
  echo "usage: DATA_ROOT=DIR OUT=DIR $0 MODE [train options]" >&2
  exit 2
fi
MODE="$1"
shift
: "${DATA_ROOT:?set DATA_ROOT to the folder holding the datasets}"
DATA_ROOT="$(abs "$DATA_ROOT")"
OUT="$(abs "${OUT:-runs}")"
NPROC="${NPROC:-1}"
ARCH="${ARCH:-pixelcnn}"
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

ARGS=(--arch "$ARCH" --mode "$MODE" --dataset cifar10 --data-root "$DATA_ROOT" --out "$OUT/cifar10_${ARCH}_${MODE}")
if [[ "$MODE" == oe_tune ]]; then
  ARGS+=(--init "$OUT/cifar10_${ARCH}_baseline")
fi
if (( NPROC > 1 )); then
  exec "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m density_oe.train "${ARGS[@]}" "$@"
fi
exec "$PY" -m density_oe.train "${ARGS[@]}" "$@"
