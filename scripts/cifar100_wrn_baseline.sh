#!/usr/bin/env bash
# CIFAR-100, WRN-40-2 (dropout 0.3), baseline -- the reference's CIFAR/experiments/100baseline.sh:
# 100 epochs of cross-entropy; SGD, Nesterov momentum 0.9, weight decay 5e-4, lr 0.1 with a
# per-step cosine decay to 1e-6; batch 128; random crop (padding 4) + horizontal flip. -> OUT/cifar100_wrn_baseline
# Usage: DATA_ROOT=/data OUT=runs scripts/cifar100_wrn_baseline.sh [classifiers_oe.train options]
# (NPROC=N: N GPUs of this node through torchrun; see scripts/run_node.sh)
exec "$(dirname "${BASH_SOURCE[0]}")/run_node.sh" cifar100_wrn_baseline "$@"
