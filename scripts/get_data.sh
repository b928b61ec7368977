#!/usr/bin/env bash
# Fetch the paper's datasets into DATA_ROOT: checked against the published (or first-fetch) hashes, unpacked into
# the layout the loaders read, resumable (a rerun downloads only what is missing).
#
# usage: scripts/get_data.sh [DATASET[:SPLIT]...] [fetch options: python -m oe_core.data fetch --help]
#   no dataset names: every set of the paper with a public source (fetch --all-paper)
#   DATA_ROOT   the data root (default: data)
#   OE_DATA_MIRROR  fetch from this mirror (a URL or a folder holding the published file names) instead
#   e.g. scripts/get_data.sh                      # CIFAR-10/100, SVHN, DTD, Places365 subset, LSUN crop/resize, iSUN, 300K
#        scripts/get_data.sh cifar10 svhn:test   # just these
#        scripts/get_data.sh --mirror https://mirror.example.org/oe-data
# afterwards: python -m oe_core.data --check --fetched --data-root "$DATA_ROOT"
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
DATA_ROOT="${DATA_ROOT:-data}"
if [[ $# -gt 0 && "$1" != -* ]]; then   # dataset names first, then options
  exec "$PY" -m oe_core.data fetch --data-root "$DATA_ROOT" "$@"
fi
exec "$PY" -m oe_core.data fetch --all-paper --data-root "$DATA_ROOT" "$@"
