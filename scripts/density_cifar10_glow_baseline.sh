#!/usr/bin/env bash
# CIFAR-10 Glow from scratch: the paper's model (L = 3 levels of K = 32 steps, 512 hidden channels, affine
# couplings, LU 1x1 convolutions, learned top prior; 44.1 M parameters) with openai's batch 512, lr 1e-3 and a
# linear warm-up over 10 epochs (970 steps), constant lr afterwards; the trainer's Adam (0.95, 0.9995) and Polyak
# EMA 0.9995 as for PixelCNN++ (openai: Adamax).  Published: 3.35 bits/dim on the CIFAR-10 test set.
# -> OUT/cifar10_glow_baseline  (reports train/test bits/dim per epoch; rerun the same command to resume)
# Usage: DATA_ROOT=/data OUT=runs scripts/density_cifar10_glow_baseline.sh [density_oe.train options]
#   NPROC=N   N GPUs of this node through torchrun (the global batch stays 512)
# e.g. add --device cuda --amp bf16; --epochs N to train longer (the default is 300).
# The run graph's node cifar10_glow_baseline: its settings live in study/paper/recipe.py (DENSITY["glow"]);
# scripts/reproduce.sh --plan --glow shows the command.
exec "$(dirname "${BASH_SOURCE[0]}")/run_node.sh" cifar10_glow_baseline "$@"
