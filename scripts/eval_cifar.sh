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
# The run graph's node DATASET_eval (scripts/run_node.sh; the columns: study/paper/cifar_eval.py).
if [[ $# -lt 1 || ( "$1" != cifar10 && "$1" != cifar100 ) ]]; then
  echo "usage: DATA_ROOT=DIR OUT=DIR $0 cifar10|cifar100 [analysis.evaluate options]" >&2
  exit 2
fi
DATASET="$1"
shift
exec "$(dirname "${BASH_SOURCE[0]}")/run_node.sh" "${DATASET}_eval" "$@"
