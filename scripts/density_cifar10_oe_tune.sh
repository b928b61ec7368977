#!/usr/bin/env bash
# OE fine-tuning of OUT/cifar10_pixelcnn_baseline (scripts/density_cifar10_baseline.sh, or imported weights):
# 2 epochs of mean bpd(in) + 1.0 * mean max(0, 1 bit/dim + bpd(in) - bpd(out)) over 64 in + 64 outlier images
# per step (80 Million Tiny Images, CIFAR images removed), Adam 2e-4 (Hendrycks et al. 2019, Sec. 4.4;
# margin, units and weight are this suite's defaults, see density_oe/losses.py).
# -> OUT/cifar10_pixelcnn_oe_tune
# Usage: DATA_ROOT=/data OUT=runs scripts/density_cifar10_oe_tune.sh [density_oe.train options]
# e.g. --outliers tinyimages300k, --oe-margin 1024 --oe-margin-unit nats_per_image, --lam 0.5
exec "$(dirname "${BASH_SOURCE[0]}")/run_node.sh" cifar10_pixelcnn_oe_tune "$@"
