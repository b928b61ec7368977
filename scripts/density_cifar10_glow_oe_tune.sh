#!/usr/bin/env bash
# OE fine-tuning of OUT/cifar10_glow_baseline (scripts/density_cifar10_glow_baseline.sh) with exactly the loss,
# margin units, data stream and defaults of the PixelCNN++ script (scripts/density_cifar10_oe_tune.sh): 2 epochs of
# mean bpd(in) + 1.0 * mean max(0, 1 bit/dim + bpd(in) - bpd(out)) over 64 in + 64 outlier images per step
# (80 Million Tiny Images), Adam 2e-4.
# -> OUT/cifar10_glow_oe_tune
# Usage: DATA_ROOT=/data OUT=runs scripts/density_cifar10_glow_oe_tune.sh [density_oe.train options]
# (pass the same --glow-* options as the baseline if you changed them there)
exec "$(dirname "${BASH_SOURCE[0]}")/run_node.sh" cifar10_glow_oe_tune "$@"
