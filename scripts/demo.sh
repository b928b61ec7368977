#!/usr/bin/env bash
# The main job: set-up if needed, then the whole OE study offline on the built-in mini benchmark
# (classifier + PixelCNN++ baselines, OE fine-tuning of both, MSP vs likelihood evaluation, tables, figures).
# Writes runs/demo/report.md and prints where it is.
#
#   scripts/demo.sh                    default preset (wall times: docs/results.md)
#   scripts/demo.sh --preset full      every density family: a larger PixelCNN++, Glow, diffusion, VAE
#   scripts/demo.sh --models vae       the VAE, with Likelihood Regret and the bound gap (docs/vae.md)
#   scripts/demo.sh --help             every option (python -m study.mini --help)
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
export MPLBACKEND=Agg
exec "$PY" -m study.mini "$@"
