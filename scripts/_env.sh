# Sourced by the other scripts: cd to the repository root and set $PY to the project's Python,
# running scripts/setup.sh first when nothing is set up yet.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -n "${OE_PYTHON:-}" ]]; then
  PY="$OE_PYTHON"
elif [[ -n "${CONDA_PREFIX:-}" && "${CONDA_DEFAULT_ENV:-}" == "oe-suite" ]]; then
  PY="$CONDA_PREFIX/bin/python"
else
  bash "$ROOT/scripts/setup.sh" >&2
  PY="$ROOT/.venv/bin/python"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# dataset plugins for a source tree that is not pip-installed (an installed one finds them by entry point)
export OE_DATASET_MODULES="study.mini_benchmark${OE_DATASET_MODULES:+,$OE_DATASET_MODULES}"
