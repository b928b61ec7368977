#!/usr/bin/env bash
# CIFAR-10 diffusion (VDM bound) from scratch: VDM's CIFAR-10 schedule (fixed linear gamma from -13.3 to 5.0,
# continuous time, one stratified t per image in training, dropout 0.1) and optimiser settings (lr 2e-4, betas
# 0.9/0.99, 100-step warm-up, no decay, batch 128, EMA 0.9999 for evaluation) on the suite's U-Net (C = 128, 3
# resolutions, 2 blocks each; density_oe/diffusion/unet.py); bits/dim on the test set with 16 t-draws per image.
# Scaled down from VDM, and why:
#   * the network: VDM's has 32 blocks at 32x32 and no down-sampling (30.6 M parameters, ~53 GFLOP per forward);
#     this U-Net halves the resolution twice, so that a run fits a single GPU in days rather than a TPU pod;
#   * the length: VDM trains 10 M steps (25,600 epochs); the trainer's default is 300 epochs (117 k steps at batch
#     128).  Pass --epochs N to train longer; rerun the same command to resume;
#   * Adam without weight decay (VDM: AdamW, wd 0.01): the trainer has one optimiser for every family.
# Published (VDM, no augmentation, 10 M steps): 2.64 bits/dim on the CIFAR-10 test set.
# -> OUT/cifar10_diffusion_baseline
# Usage: DATA_ROOT=/data OUT=runs scripts/density_cifar10_diffusion_baseline.sh [density_oe.train options]
#   NPROC=N   N GPUs of this node through torchrun (the global batch stays 128)
# e.g. add --device cuda --amp bf16
# The run graph's node cifar10_diffusion_baseline: its settings live in study/paper/recipe.py (DENSITY["diffusion"]);
# scripts/reproduce.sh --plan --diffusion shows the command.
exec "$(dirname "${BASH_SOURCE[0]}")/run_node.sh" cifar10_diffusion_baseline "$@"
