#!/usr/bin/env bash
# One reference CIFAR WRN-40-2 run: the run graph's node DATASET_wrn_MODE (scripts/cifar{10,100}_wrn_*.sh run their
# node directly; this runs the same node through scripts/run_node.sh).
#
# Usage: DATA_ROOT=/data OUT=runs scripts/cifar_wrn_run.sh DATASET MODE [classifiers_oe.train options]
#   DATA_ROOT  folder holding the datasets (cifar-10-batches-py/, tiny_images.bin, ...; see python -m oe_core.data)
#   OUT        parent folder of the runs (default: runs); this run goes to OUT/DATASET_wrn_MODE, and
#              oe_tune starts from OUT/DATASET_wrn_baseline
#   NPROC      processes (GPUs) on this node through torchrun (default: 1); the global batches stay 128/256
# Extra options are passed on (e.g. --device cuda --amp bf16 --channels-last --outliers tinyimages300k).
# Rerunning the same command resumes an interrupted run.
if [[ $# -lt 2 ]]; then
  echo "usage: DATA_ROOT=DIR OUT=DIR $0 DATASET MODE [train options]" >&2
  exit 2
fi
DATASET="$1"
MODE="$2"
shift 2
exec "$(dirname "${BASH_SOURCE[0]}")/run_node.sh" "${DATASET}_wrn_${MODE}" "$@"
