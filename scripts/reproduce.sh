#!/usr/bin/env bash
# The whole paper in one command: the run graph (WRN baseline -> OE fine-tune and OE from scratch on CIFAR-10/100;
# PixelCNN++ baseline -> OE fine-tune -> scores; optional Glow; evaluations, tables with the paper's numbers,
# figures, Figure 2), each node one of the scripts here.  A thin wrapper of python -m study.reproduce.
#
#   scripts/reproduce.sh --plan   --data-root /data --out runs --device cuda --amp bf16   # graph, commands, estimate
#   scripts/reproduce.sh --local  --data-root /data --out runs --device cuda --amp bf16   # run it here, in order
#   scripts/reproduce.sh --slurm  --data-root /data --out runs --device cuda --amp bf16 --resources my.toml
#   scripts/reproduce.sh --status --out runs
#
# scripts/reproduce.sh --help explains every option; SLURM resources: scripts/reproduce_resources.toml.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
exec "$PY" -m study.reproduce "$@"
