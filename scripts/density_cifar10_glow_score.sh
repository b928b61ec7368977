#!/usr/bin/env bash
# Per-image bits/dim of CIFAR-10 test and the paper's OOD sets under a Glow (default run: OUT/cifar10_glow_baseline;
# e.g. cifar10_glow_oe_tune).  Same options as scripts/density_cifar10_score.sh.
# Usage: DATA_ROOT=/data OUT=runs scripts/density_cifar10_glow_score.sh [RUN [density_oe.score options]]
export ARCH=glow
exec "$(dirname "${BASH_SOURCE[0]}")/density_cifar10_score.sh" "$@"
