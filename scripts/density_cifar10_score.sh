#!/usr/bin/env bash
# Per-image bits/dim (the OOD score: higher = more anomalous) of CIFAR-10 test and the paper's OOD sets
# (Table 5: Gaussian, Rademacher, Blobs, Textures, SVHN, Places365, LSUN, CIFAR-100) under a density model.
# -> OUT/scores/RUN/<dataset>.npy, and the mean bits/dim per set on stderr.
# Usage: DATA_ROOT=/data OUT=runs scripts/density_cifar10_score.sh [RUN [density_oe.score options]]
#   RUN   run folder name under OUT (default: cifar10_ARCH_baseline; e.g. cifar10_pixelcnn_oe_tune)
#   ARCH  pixelcnn (default), glow, vae or diffusion: only picks the default RUN (the model's kind is read from its checkpoint)
#   SETS  space-separated datasets to score (default: the list above)
# e.g. add --device cuda --amp bf16 --batch-size 256
# The run graph's node score_RUN (scripts/run_node.sh): one density_oe.score per set, the options passed to each.
RUN="${1:-}"
RUN="${RUN:-cifar10_${ARCH:-pixelcnn}_baseline}"
shift || true
exec "$(dirname "${BASH_SOURCE[0]}")/run_node.sh" "score_$RUN" "$@"
