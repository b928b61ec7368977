#!/usr/bin/env bash
# Per-image bits/dim (the VDM bound, 16 t-draws per image fixed by the image's content, so a score does not depend
# on the batch) of CIFAR-10 test and the paper's OOD sets under a diffusion model (default run:
# OUT/cifar10_diffusion_baseline; e.g. cifar10_diffusion_oe_tune).  Same options as scripts/density_cifar10_score.sh.
# Usage: DATA_ROOT=/data OUT=runs scripts/density_cifar10_diffusion_score.sh [RUN [density_oe.score options]]
export ARCH=diffusion
exec "$(dirname "${BASH_SOURCE[0]}")/density_cifar10_score.sh" "$@"
