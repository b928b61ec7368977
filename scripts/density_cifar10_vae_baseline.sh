#!/usr/bin/env bash
# CIFAR-10 VAE from scratch on the ELBO (--vae-iw-samples 1): the suite's convolutional VAE (3 stride-2 levels,
# 64/128/256 channels, a 16 x 4 x 4 latent map, factorised discretised-logistic decoder; 7.7 M parameters) with the
# Likelihood Regret code's training recipe (train_pixel.py): Adam lr 3e-4, batch 128, 200 epochs, constant lr.
# Its weight decay 3e-5 is not an option of the density trainer; Adam's betas and the Polyak EMA 0.9995 are the
# trainer's, as for PixelCNN++ and Glow.
# -> OUT/cifar10_vae_baseline  (reports train/test bits/dim of the ELBO per epoch; rerun the same command to resume)
# Usage: DATA_ROOT=/data OUT=runs scripts/density_cifar10_vae_baseline.sh [density_oe.train options]
#   NPROC=N   N GPUs of this node through torchrun (the global batch stays 128)
# The run graph's node cifar10_vae_baseline: its settings live in study/paper/recipe.py (DENSITY["vae"]);
# scripts/reproduce.sh --plan --vae shows the command.
exec "$(dirname "${BASH_SOURCE[0]}")/run_node.sh" cifar10_vae_baseline "$@"
