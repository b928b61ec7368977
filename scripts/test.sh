#!/usr/bin/env bash
# Set up if needed, then run the whole test suite (extra arguments go to pytest).
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MPLBACKEND=Agg
JOBS=()
if "$PY" -c "import xdist" 2>/dev/null; then JOBS=(-n "${TEST_JOBS:-2}" --dist loadfile); fi  # a file on one worker: module fixtures built once
exec "$PY" -m pytest -q "${JOBS[@]}" "$@"
