#!/usr/bin/env bash
# CIFAR-10, WRN-40-2 (dropout 0.3), oe_tune -- the reference's CIFAR/experiments/10oe_tune.sh:
# 10 epochs of OE fine-tuning of OUT/cifar10_wrn_baseline (run scripts/cifar10_wrn_baseline.sh first):
# CE + 0.5 * H(U; softmax) on 256 outliers (80 Million Tiny Images) per step, lr 0.001, cosine to 1e-6.
# -> OUT/cifar10_wrn_oe_tune
# Usage: DATA_ROOT=/data OUT=runs scripts/cifar10_wrn_oe_tune.sh [classifiers_oe.train options]
# (NPROC=N: N GPUs of this node through torchrun; see scripts/run_node.sh)
exec "$(dirname "${BASH_SOURCE[0]}")/run_node.sh" cifar10_wrn_oe_tune "$@"
