#!/usr/bin/env bash
# CIFAR-10, WRN-40-2 (dropout 0.3), oe_scratch -- the reference's CIFAR/experiments/10oe_scratch.sh:
# 100 epochs of OE from a fresh initialisation: CE + 0.5 * H(U; softmax) on 256 outliers
# (80 Million Tiny Images) per step, lr 0.1, cosine to 1e-6. -> OUT/cifar10_wrn_oe_scratch
# Usage: DATA_ROOT=/data OUT=runs scripts/cifar10_wrn_oe_scratch.sh [classifiers_oe.train options]
# (NPROC=N: N GPUs of this node through torchrun; see scripts/run_node.sh)
exec "$(dirname "${BASH_SOURCE[0]}")/run_node.sh" cifar10_wrn_oe_scratch "$@"
