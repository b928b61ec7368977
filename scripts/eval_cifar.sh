#!/usr/bin/env bash
# The paper's CIFAR-10 or CIFAR-100 study from trained runs, with the reference protocol (1:5 OOD subsample,
# 10 trials) on the paper's OOD suite (Gaussian, Rademacher, Blobs, Textures, SVHN, Places365, LSUN and the other
# CIFAR):
#   * MSP of the WRN-40-2 baseline, OE fine-tune and OE from scratch (Table 1/7 and App. C);
#   * CIFAR-10 only: PixelCNN++ bits/pixel before and after OE (Table 5) and the CIFAR-10 vs SVHN bits/dim study
#     (Figure 2);
# then the side-by-side table with the paper's numbers for every column, and every figure.
#
# usage: DATA_ROOT=/data OUT=runs scripts/eval_cifar.sh cifar10|cifar100 [analysis.evaluate options]
#   expects OUT/DATASET_wrn_{baseline,oe_tune,oe_scratch} (scripts/DATASET_wrn_*.sh) and, for cifar10,
#   OUT/cifar10_pixelcnn_{baseline,oe_tune} (scripts/density_cifar10_*.sh); missing runs are left out with a note.
#   Results go to OUT/DATASET_eval: results.{json,csv,md,tex}, compare/compare.md (the paper's numbers beside
#   ours), figures/, likelihood/ (cifar10 with both PixelCNN++ runs).
#   Options go to analysis.evaluate, e.g. --device cuda, --num-to-avg 3, --limit 2000.
set -euo pipefail
if [[ $# -lt 1 || ( "$1" != cifar10 && "$1" != cifar100 ) ]]; then
  echo "usage: DATA_ROOT=DIR OUT=DIR $0 cifar10|cifar100 [analysis.evaluate options]" >&2
  exit 2
fi
DATASET="$1"
shift
: "${DATA_ROOT:?set DATA_ROOT to the folder holding the datasets}"
abs() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
DATA_ROOT="$(abs "$DATA_ROOT")"
OUT="$(abs "${OUT:-runs}")"
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
EV="$OUT/${DATASET}_eval"
KEY="${DATASET/cifar/c}"   # c10 / c100: the keys of analysis.paper_numbers
CKPTS=() COLS=() PAPER=() BARS=()
add() {  # label run detector column paper-key
  if [[ -e "$OUT/$2" ]]; then
    CKPTS+=("$1=$OUT/$2"); COLS+=("$4=$1:$3"); PAPER+=("$4=$5"); BARS+=("$4=$1:$3")
  else
    echo "note: $OUT/$2 not found; column $4 left out" >&2
  fi
}
add msp "${DATASET}_wrn_baseline" msp "MSP" "$KEY-wrn-msp-baseline"
add msp_oe "${DATASET}_wrn_oe_tune" msp "MSP+OE" "$KEY-wrn-msp-oe-tune"
add msp_oe_scratch "${DATASET}_wrn_oe_scratch" msp "MSP+OE scratch" "$KEY-wrn-msp-oe-scratch"
if [[ "$DATASET" == cifar10 ]]; then
  add pcnn cifar10_pixelcnn_baseline bpd "BPP" c10-pixelcnn-bpp-baseline
  add pcnn_oe cifar10_pixelcnn_oe_tune bpd "BPP+OE" c10-pixelcnn-bpp-oe
fi
[[ ${#CKPTS[@]} -gt 0 ]] || { echo "error: no trained $DATASET runs under $OUT" >&2; exit 2; }

"$PY" -m analysis.evaluate --ckpt "${CKPTS[@]}" --detectors auto --id-dataset "$DATASET" --data-root "$DATA_ROOT" \
  --num-to-avg 10 --out "$EV" "$@"
"$PY" -m analysis.compare --results "$EV/results.json" --columns "${COLS[@]}" --paper "${PAPER[@]}" \
  --out "$EV/compare"
"$PY" -m analysis.figures --results "$EV/results.json" --out "$EV/figures" --bars "${BARS[@]}"
if [[ "$DATASET" == cifar10 && -e "$OUT/cifar10_pixelcnn_baseline" && -e "$OUT/cifar10_pixelcnn_oe_tune" ]]; then
  "$PY" -m analysis.svhn_likelihood --results "$EV/results.json" --baseline pcnn --oe pcnn_oe --ood svhn \
    --out "$EV/likelihood"
fi
LIK=""; [[ -d "$EV/likelihood" ]] && LIK="   likelihood: $EV/likelihood"
echo "tables: $EV/compare/compare.md   figures: $EV/figures$LIK"
