#!/usr/bin/env bash
# Regenerate every table and figure of an evaluation from its score cache (no models or data needed).
#
# usage: scripts/figures.sh OUT_DIR
#   OUT_DIR holds results.json written by `python -m analysis.evaluate --out OUT_DIR` (its score cache is
#   found through it).  Rewrites OUT_DIR/results.{json,csv,md,tex} (results.json byte-identical while the
#   cache is unchanged) and re-renders every sub-folder that analysis.figures, analysis.compare or
#   analysis.svhn_likelihood wrote, with the settings they recorded there (config.json): column titles,
#   paper numbers, bar series, training curves, the likelihood study (python -m analysis.regenerate).
#
# Optional environment, to render with other settings (lists separated by ';' so titles may contain spaces):
#   COMPARE_COLUMNS  compare columns TITLE=LABEL:DETECTOR, e.g. "MSP=clf:msp;MSP+OE=clf_oe:msp;BPP=pcnn:bpd"
#   COMPARE_PAPER    paper numbers beside columns TITLE=KEY, e.g. "MSP=c10-wrn-msp-baseline"
#                    (keys: python -m analysis.compare --list-paper)
#   BARS             AUROC bar series NAME=LABEL:DETECTOR, e.g. "likelihood=pcnn:bpd;MSP=clf:msp"
#   RUNS             training runs LABEL=RUN_FOLDER for the curves, e.g. "clf=runs/clf;pcnn=runs/pcnn"
#   LIKELIHOOD       "BASELINE_LABEL;OE_LABEL[;OOD_SET]" of density models for the bits-per-dim study
#                    (the paper's Figure 2; OOD_SET defaults to svhn)
if [[ $# -ne 1 || "$1" == "-h" || "$1" == "--help" ]]; then
  sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
  [[ $# -eq 1 ]] && exit 0 || exit 2
fi
OUT="$(cd "$1" 2>/dev/null && pwd)" || { echo "error: no folder $1" >&2; exit 2; }
to_abs() { local d="$1" p="${1#*=}"; [[ "$p" = /* ]] && echo "$d" || echo "${d%%=*}=$PWD/$p"; }
RUN_ARGS=()
IFS=';' read -r -a _runs <<< "${RUNS:-}"
for r in "${_runs[@]}"; do [[ -n "$r" ]] && RUN_ARGS+=("$(to_abs "$r")"); done
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
export MPLBACKEND=Agg
RESULTS="$OUT/results.json"

"$PY" -m analysis.regenerate "$OUT"

if [[ -n "${BARS:-}" || ${#RUN_ARGS[@]} -gt 0 ]]; then
  FIG_ARGS=(--results "$RESULTS" --out "$OUT/figures")
  IFS=';' read -r -a _bars <<< "${BARS:-}"
  [[ ${#_bars[@]} -gt 0 ]] && FIG_ARGS+=(--bars "${_bars[@]}")
  [[ ${#RUN_ARGS[@]} -gt 0 ]] && FIG_ARGS+=(--runs "${RUN_ARGS[@]}")
  "$PY" -m analysis.figures "${FIG_ARGS[@]}"
fi

if [[ -n "${COMPARE_COLUMNS:-}" || -n "${COMPARE_PAPER:-}" ]]; then
  CMP_ARGS=(--results "$RESULTS" --out "$OUT/compare")
  IFS=';' read -r -a _cols <<< "${COMPARE_COLUMNS:-}"
  IFS=';' read -r -a _paper <<< "${COMPARE_PAPER:-}"
  [[ ${#_cols[@]} -gt 0 ]] && CMP_ARGS+=(--columns "${_cols[@]}")
  [[ ${#_paper[@]} -gt 0 ]] && CMP_ARGS+=(--paper "${_paper[@]}")
  "$PY" -m analysis.compare "${CMP_ARGS[@]}"
fi

if [[ -n "${LIKELIHOOD:-}" ]]; then
  IFS=';' read -r -a _lik <<< "$LIKELIHOOD"
  "$PY" -m analysis.svhn_likelihood --results "$RESULTS" --baseline "${_lik[0]}" --oe "${_lik[1]}" \
    --ood "${_lik[2]:-svhn}" --out "$OUT/likelihood"
fi
echo "figures and tables regenerated under $OUT"
