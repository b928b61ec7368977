#!/usr/bin/env bash
# One CIFAR-10 density-model run: the run graph's node cifar10_ARCH_MODE (scripts/density_cifar10_*_{baseline,oe_tune}.sh
# run their node directly; this runs the same node through scripts/run_node.sh).
#
# Usage: DATA_ROOT=/data OUT=runs scripts/density_run.sh MODE [density_oe.train options]
#   DATA_ROOT  folder holding the datasets (cifar-10-batches-py/, tiny_images.bin, ...; see python -m oe_core.data)
#   OUT        parent folder of the runs (default: runs); this run goes to OUT/cifar10_ARCH_MODE, and
#              oe_tune starts from OUT/cifar10_ARCH_baseline
#   ARCH       density model: pixelcnn (PixelCNN++, default), glow, vae or diffusion
#   NPROC      processes (GPUs) on this node through torchrun (default: 1); batches are global
# Rerunning the same command resumes an interrupted run.
if [[ $# -lt 1 ]]; then
  echo "usage: DATA_ROOT=DIR OUT=DIR $0 MODE [train options]" >&2
  exit 2
fi
MODE="$1"
shift
exec "$(dirname "${BASH_SOURCE[0]}")/run_node.sh" "cifar10_${ARCH:-pixelcnn}_${MODE}" "$@"
