#!/usr/bin/env bash
# Speed and memory benchmark, the suite's code against the pclucas14 port's own code (run times: docs/performance.md).
#   scripts/bench.sh                                        table on stdout, JSON in benchmarks/results/cpu.json
#   scripts/bench.sh --markdown-append docs/performance.md  also record the run in docs/performance.md
#   scripts/bench.sh --quick                                tiny sizes: checks the harness in seconds
# Extra arguments go to `python -m benchmarks.run` (see --help). Run it on an otherwise idle machine.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
exec "$PY" -m benchmarks.run "$@"
