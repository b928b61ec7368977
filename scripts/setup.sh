#!/usr/bin/env bash
# Set up the OE suite; idempotent (a second run only checks).
#   scripts/setup.sh           .venv with pip, project installed editable with the test extra
#   scripts/setup.sh --conda   conda/mamba env "oe-suite" from environment.yml
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ "${1:-}" == "--conda" ]]; then
  CONDA="$(command -v mamba || command -v conda || true)"
  if [[ -z "$CONDA" ]]; then echo "error: --conda asked for but neither mamba nor conda is on PATH" >&2; exit 2; fi
  if "$CONDA" env list | grep -qE '^oe-suite\s'; then
    "$CONDA" env update -n oe-suite -f environment.yml
  else
    "$CONDA" env create -f environment.yml
  fi
  echo "conda env ready: conda activate oe-suite"
  exit 0
fi

PYTHON="${PYTHON:-python3}"
STAMP=".venv/.oe-suite-installed"
WANT="$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [[ -x .venv/bin/python && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  exit 0
fi
if [[ ! -x .venv/bin/python ]]; then
  echo "creating .venv with $("$PYTHON" --version)" >&2
  "$PYTHON" -m venv .venv
fi
echo "installing the project and its dependencies into .venv (first time: a few minutes)" >&2
# torch/torchvision first, pinned where this machine keeps them on disk (pip's constraints pick them).
.venv/bin/python -m pip install -q "torch>=2.2" "torchvision>=0.17" >&2
.venv/bin/python -m pip install -q -e ".[test]" >&2
echo "$WANT" > "$STAMP"
echo "set-up done: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')" >&2
