#!/usr/bin/env bash
# The paper's CIFAR-100 study (Table 1/7 MSP: baseline, OE fine-tune, OE from scratch): scripts/eval_cifar.sh cifar100.
# usage: DATA_ROOT=/data OUT=runs scripts/eval_cifar100.sh [analysis.evaluate options]  -> OUT/cifar100_eval
exec "$(dirname "${BASH_SOURCE[0]}")/run_node.sh" cifar100_eval "$@"
