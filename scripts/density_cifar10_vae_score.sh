#!/usr/bin/env bash
# Per-image bits/dim of CIFAR-10 test and the paper's OOD sets under a VAE's bound (default run:
# OUT/cifar10_vae_baseline; e.g. cifar10_vae_oe_tune).  Same options as scripts/density_cifar10_score.sh.
# Usage: DATA_ROOT=/data OUT=runs scripts/density_cifar10_vae_score.sh [RUN [density_oe.score options]]
export ARCH=vae
exec "$(dirname "${BASH_SOURCE[0]}")/density_cifar10_score.sh" "$@"
