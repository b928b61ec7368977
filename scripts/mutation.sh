#!/usr/bin/env bash
# Mutation testing (mutmut) of the named modules with the tests that cover them; not part of CI.
#
#   scripts/mutation.sh MODULE...        e.g. scripts/mutation.sh oe_core/metrics.py density_oe/ema.py
#   scripts/mutation.sh --list           the modules it knows, with their tests
#   scripts/mutation.sh --survivors MODULE...   only the last run's survivors again (after adding tests)
#
# MODULE is a path as listed in scripts/mutation_targets.txt, the one place that maps each module to its tests.
# Each module runs in a copy of the working tree (uncommitted changes included), so the tree itself is never
# mutated.  Prints killed / survived / timed-out counts per module and lists the survivors; their diffs go to
# runs/mutation/<module>.survivors.txt, mutmut's output to runs/mutation/<module>.log.  When to run it, and the
# recorded scores: docs/test-quality.md.  Environment: MUTATION_JOBS (mutants in parallel, default 1), OE_PYTHON.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

# the whole script is one function, which bash reads completely before running it: editing this file while a long
# run goes on cannot change that run
main() {
  local targets_file="$ROOT/scripts/mutation_targets.txt" helper="$ROOT/scripts/mutation_report.py"
  targets() { grep -v '^\s*#' "$targets_file" | grep -v '^\s*$'; }
  modules() { targets | awk '{sub(/::.*/, "", $1); print $1}'; }
  if [[ $# -eq 0 ]]; then
    echo "usage: scripts/mutation.sh MODULE... | --list (modules: $(modules | paste -sd' '))" >&2
    return 2
  fi
  if [[ "$1" == "-h" || "$1" == "--help" ]]; then sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; return 0; fi
  if [[ "$1" == "--list" ]]; then targets; return 0; fi
  local survivors_only=0
  if [[ "$1" == "--survivors" ]]; then survivors_only=1; shift; fi
  local m
  for m in "$@"; do
    if ! modules | grep -qxF -- "$m"; then
      echo "error: no mutation target $m in scripts/mutation_targets.txt (known: $(modules | paste -sd' '))" >&2
      return 2
    fi
  done
  if ! "$PY" -c "import mutmut" 2>/dev/null; then
    echo "error: mutmut is not installed for $PY: pip install -e \".[mutation]\"" >&2
    return 2
  fi

  local jobs="${MUTATION_JOBS:-1}" report_dir="$ROOT/runs/mutation" status=0
  scratch=""   # global: the EXIT trap removes it
  mkdir -p "$report_dir"
  scratch="$(mktemp -d "${TMPDIR:-/tmp}/oe-mutation.XXXXXX")"
  trap 'rm -rf "$scratch"' EXIT
  for m in "$@"; do
    local line spec module work log fn regex tests=() names=()
    line="$(targets | awk -v m="$m" '{spec=$1; sub(/::.*/, "", spec); if (spec == m) {print; exit}}')"
    read -r spec tests_text <<<"$line"
    read -r -a tests <<<"$tests_text"
    module="${spec%%::*}"
    log="$report_dir/$(tr '/' '_' <<<"$module").log"
    echo "== $spec (tests: ${tests[*]})"
    rm -rf "$scratch/work"
    work="$scratch/work"   # a copy of the working tree: mutmut writes its mutants and state there
    mkdir "$work"
    git -C "$ROOT" ls-files -co --exclude-standard -z | (cd "$ROOT" && xargs -0 cp --parents -t "$work" 2>/dev/null || true)
    "$PY" "$helper" config "$work" "$module" "${tests[@]}"
    : >"$log"
    if [[ $survivors_only -eq 1 ]]; then
      mapfile -t names < <(sed -n 's/^## //p' "${log%.log}.survivors.txt" 2>/dev/null)
      if [[ ${#names[@]} -eq 0 ]]; then echo "$spec: no survivors recorded in ${log%.log}.survivors.txt"; continue; fi
    elif [[ "$spec" == *::* ]]; then
      # generate the mutants and the test statistics (this run matches no mutant), then take the function's
      # mutants, and of those the ones that change a line matching the regex after "~"
      (cd "$work" && env -u PYTHONPATH "$PY" -m mutmut run --max-children "$jobs" "__generate_only__") >>"$log" 2>&1 || true
      fn="${spec#*::}"; regex=""
      if [[ "$fn" == *"~"* ]]; then regex="${fn#*~}"; fn="${fn%%~*}"; fi
      mapfile -t names < <("$PY" "$helper" select "$work" "$module" "$fn" "$regex")
      if [[ ${#names[@]} -eq 0 ]]; then
        echo "error: no mutants of $spec; see $log" >&2; status=1; continue
      fi
    fi
    # mutmut runs with the copy's own packages first on the path (PYTHONPATH would put the working tree there)
    if ! (cd "$work" && env -u PYTHONPATH "$PY" -m mutmut run --max-children "$jobs" "${names[@]}") >>"$log" 2>&1; then
      echo "error: mutmut failed on $spec; see $log" >&2; status=1; continue
    fi
    (cd "$work" && env -u PYTHONPATH "$PY" "$helper" report "$work" "$module" "$spec" "${log%.log}.survivors.txt" \
      "${names[@]}") || status=1
  done
  return "$status"
}
main "$@"
