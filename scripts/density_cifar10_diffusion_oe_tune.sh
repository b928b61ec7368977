#!/usr/bin/env bash
# OE fine-tuning of OUT/cifar10_diffusion_baseline (scripts/density_cifar10_diffusion_baseline.sh) with the loss,
# margin units, data stream and defaults of the PixelCNN++ and Glow scripts: 2 epochs of
# mean bpd(in) + 1.0 * mean max(0, 1 bit/dim + bpd(in) - bpd(out)) over 64 in + 64 outlier images per step
# (80 Million Tiny Images), Adam 2e-4, the trained weights scored.  One difference: 4 stratified t-draws per
# image in training (the baseline: 1), because the hinge of a noisy per-image bound is biased upwards
# (E max(0, m + a - b) >= max(0, m + E[a - b])).  The schedule is fixed, so OE changes the model's
# eps-prediction only, not an encoder (there is none).
# -> OUT/cifar10_diffusion_oe_tune
# Usage: DATA_ROOT=/data OUT=runs scripts/density_cifar10_diffusion_oe_tune.sh [density_oe.train options]
# (pass the same --diffusion-* network options as the baseline if you changed them there)
exec "$(dirname "${BASH_SOURCE[0]}")/run_node.sh" cifar10_diffusion_oe_tune "$@"
