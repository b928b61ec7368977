#!/usr/bin/env bash
# Run one node of the paper's run graph here: scripts/run_node.sh NODE [options for the node's tool]
# (the experiment scripts, e.g. scripts/cifar10_wrn_oe_tune.sh, are this with their node; the graph and each node's
# command: scripts/reproduce.sh --plan).
#   DATA_ROOT  folder holding the datasets (required)
#   OUT        parent folder of the runs (default: runs); the node's run folder is OUT/NODE
#   NPROC      training nodes: processes (GPUs) on this node through torchrun (default: 1); batches stay global
#   SETS       score nodes: space-separated datasets to score (default: CIFAR-10 test and the paper's OOD sets)
# Options after NODE are appended to its tool's command (later options win).  Rerunning resumes a training run.
set -euo pipefail
abs() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
[[ -n "${DATA_ROOT:-}" ]] && export DATA_ROOT="$(abs "$DATA_ROOT")"
export OUT="$(abs "${OUT:-runs}")"
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"   # cd to the repository root: the paths above are absolute
exec "$PY" -m study.reproduce --run-node "$@"
