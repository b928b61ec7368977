#!/usr/bin/env bash
# The paper's CIFAR-10 study (Table 1/7 MSP, Table 5 PixelCNN++ bits/pixel, Figure 2): scripts/eval_cifar.sh cifar10.
# usage: DATA_ROOT=/data OUT=runs scripts/eval_cifar10.sh [analysis.evaluate options]  -> OUT/cifar10_eval
exec "$(dirname "${BASH_SOURCE[0]}")/run_node.sh" cifar10_eval "$@"
