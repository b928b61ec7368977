#!/usr/bin/env bash
# CIFAR-10 PixelCNN++ from scratch with the TF recipe (5 resnets, 160 filters, 10 logistic mixtures, dropout 0.5,
# Adam 1e-3 with betas 0.95/0.9995 decayed x0.999995 per step, Polyak EMA 0.9995, data-dependent init, batch 128).
# -> OUT/cifar10_pixelcnn_baseline  (reports train/test bits/dim per epoch; rerun the same command to resume)
# Usage: DATA_ROOT=/data OUT=runs scripts/density_cifar10_baseline.sh [density_oe.train options]
#   NPROC=N   N GPUs of this node through torchrun (the global batch stays 128)
# e.g. add --device cuda --amp bf16 --channels-last; --epochs N to train longer (the default is 300).
# No GPU week to spare?  Import the port's released weights instead:
#   python -m density_oe.port --src pcnn_lr.0.00040_nr-resnet5_nr-filters160_889.pth --out OUT/cifar10_pixelcnn_baseline
exec "$(dirname "${BASH_SOURCE[0]}")/run_node.sh" cifar10_pixelcnn_baseline "$@"
