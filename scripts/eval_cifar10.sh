#!/usr/bin/env bash
# The paper's CIFAR-10 study from trained runs: MSP (Table 1/7) and PixelCNN++ bits/pixel (Table 5) before and
# after OE on the paper's OOD suite with the reference protocol (1:5 OOD subsample, 10 trials), the side-by-side
# table with the paper's numbers, every figure, and the CIFAR-10 vs SVHN likelihood study (Figure 2).
#
# usage: DATA_ROOT=/data OUT=runs scripts/eval_cifar10.sh [analysis.evaluate options, e.g. --device cuda]
#   expects OUT/cifar10_wrn_baseline, OUT/cifar10_wrn_oe_tune (scripts/cifar10_wrn_*.sh) and
#   OUT/cifar10_pixelcnn_baseline, OUT/cifar10_pixelcnn_oe_tune (scripts/density_cifar10_*.sh); missing runs are left out.
#   Results go to OUT/cifar10_eval (tables, figures/, compare/, likelihood/).
set -euo pipefail
: "${DATA_ROOT:?set DATA_ROOT to the folder holding the datasets}"
OUT="${OUT:-runs}"
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
EV="$OUT/cifar10_eval"
CKPTS=() COLS=() PAPER=() BARS=()
add() {  # label run detector column paper-key
  if [[ -e "$OUT/$2" ]]; then
    CKPTS+=("$1=$OUT/$2"); COLS+=("$4=$1:$3"); PAPER+=("$4=$5"); BARS+=("$4=$1:$3")
  else
    echo "note: $OUT/$2 not found; column $4 left out" >&2
  fi
}
add msp cifar10_wrn_baseline msp "MSP" c10-wrn-msp-baseline
add msp_oe cifar10_wrn_oe_tune msp "MSP+OE" c10-wrn-msp-oe-tune
add pcnn cifar10_pixelcnn_baseline bpd "BPP" c10-pixelcnn-bpp-baseline
add pcnn_oe cifar10_pixelcnn_oe_tune bpd "BPP+OE" c10-pixelcnn-bpp-oe
[[ ${#CKPTS[@]} -gt 0 ]] || { echo "error: no trained runs under $OUT" >&2; exit 2; }

"$PY" -m analysis.evaluate --ckpt "${CKPTS[@]}" --detectors auto --id-dataset cifar10 --data-root "$DATA_ROOT" \
  --num-to-avg 10 --out "$EV" "$@"
"$PY" -m analysis.compare --results "$EV/results.json" --columns "${COLS[@]}" --paper "${PAPER[@]}" \
  --out "$EV/compare"
"$PY" -m analysis.figures --results "$EV/results.json" --out "$EV/figures" --bars "${BARS[@]}"
if [[ -e "$OUT/cifar10_pixelcnn_baseline" && -e "$OUT/cifar10_pixelcnn_oe_tune" ]]; then
  "$PY" -m analysis.svhn_likelihood --results "$EV/results.json" --baseline pcnn --oe pcnn_oe --ood svhn \
    --out "$EV/likelihood"
fi
echo "tables: $EV/compare/compare.md   figures: $EV/figures   likelihood: $EV/likelihood"
