#!/usr/bin/env bash
# Per-image bits/dim (the OOD score: higher = more anomalous) of CIFAR-10 test and the paper's OOD sets
# (Table 5: Gaussian, Rademacher, Blobs, Textures, SVHN, Places365, LSUN, CIFAR-100) under a density model.
# -> OUT/scores/RUN/<dataset>.npy, and the mean bits/dim per set on stderr.
# Usage: DATA_ROOT=/data OUT=runs scripts/density_cifar10_score.sh [RUN [density_oe.score options]]
#   RUN   run folder name under OUT (default: cifar10_ARCH_baseline; e.g. cifar10_pixelcnn_oe_tune)
#   ARCH  pixelcnn (default), glow, vae or diffusion: only picks the default RUN (the model's kind is read from its checkpoint)
#   SETS  space-separated datasets to score (default: the list above)
# e.g. add --device cuda --amp bf16 --batch-size 256
set -euo pipefail
abs() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
: "${DATA_ROOT:?set DATA_ROOT to the folder holding the datasets}"
DATA_ROOT="$(abs "$DATA_ROOT")"
OUT="$(abs "${OUT:-runs}")"
RUN="${1:-cifar10_${ARCH:-pixelcnn}_baseline}"
shift || true
SETS="${SETS:-cifar10 gaussian rademacher blobs textures svhn places365 lsun cifar100}"
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

for SET in $SETS; do
  SPLIT=()
  case "$SET" in cifar10|cifar100|svhn) SPLIT=(--split test) ;; esac
  "$PY" -m density_oe.score --ckpt "$OUT/$RUN" --dataset "$SET" "${SPLIT[@]}" --data-root "$DATA_ROOT" \
    --out "$OUT/scores/$RUN/$SET.npy" "$@"
done
