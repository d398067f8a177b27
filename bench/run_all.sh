#!/usr/bin/env bash
# Every SPEC §12 row against its same-run baseline, then bench/out/summary.json and
# bench/RESULTS.md generated from it by bench/report.py (never typed by hand).
#
#   bench/run_all.sh                  every row (Apache Kafka; the embedded row on Tansu)
#   bench/run_all.sh --quick          smaller counts, into bench/out/quick/ (the committed results stay)
#   bench/run_all.sh --row fanout     only that row (repeatable); the others keep their last results
#
# Each row's JSON lines go to <out>/<row>.jsonl (and the terminal), its stderr to <out>/<row>.log. The
# correlation row runs bench/eval_petshop.sh when it exists (not with --quick); either
# way it is read from bench/out/eval-petshop-*.json, if any.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=() quick=0
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --row) rows+=("${2:?--row needs a row name}"); shift ;;
    -h|--help) sed -n '2,11p' bench/run_all.sh | cut -c3-; exit 0 ;;
    *) echo "run_all.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

all=(decider projector replay command_to_sse embedded fanout intake correlation)
((${#rows[@]})) || rows=("${all[@]}")
out=bench/out results=bench/RESULTS.md
if ((quick)); then out=bench/out/quick results=bench/out/quick/RESULTS.md; fi
mkdir -p "$out"

# The arguments of each row's module: full counts, then --quick ones.
arguments() {
  case $1:$quick in
    decider:0) echo --kafka apache --commands 10000 ;;
    decider:1) echo --kafka apache --commands 4000 ;;
    projector:0) echo --kafka apache --events 50000 ;;
    projector:1) echo --kafka apache --events 10000 ;;
    replay:0) echo --kafka apache --events 100000 ;;
    replay:1) echo --kafka apache --events 20000 ;;
    command_to_sse:0) echo --kafka apache --rate 1000 --seconds 5 ;;
    command_to_sse:1) echo --kafka apache --rate 1000 --seconds 2 ;;
    embedded:0) echo --rate 20 --seconds 20 ;;
    embedded:1) echo --rate 20 --seconds 5 ;;
    fanout:0) echo --kafka apache --clients 10000 --broadcasts 20 ;;
    fanout:1) echo --kafka apache --clients 2000 --broadcasts 5 ;;
    intake:0) echo --kafka apache --alerts 20000 ;;
    intake:1) echo --kafka apache --alerts 4000 ;;
    *) echo "run_all.sh: unknown row ${1} (rows: ${all[*]})" >&2; return 2 ;;
  esac
}

failed() {
  echo "$1: failed; the end of $out/$1.log:" >&2
  tail -n 15 "$out/$1.log" >&2
}

for row in "${rows[@]}"; do  # every name checked before anything runs
  [[ $row == correlation ]] || arguments "$row" > /dev/null
done

for row in "${rows[@]}"; do
  echo "== $row (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  if [[ $row == correlation ]]; then
    if [[ -x bench/eval_petshop.sh ]] && ((!quick)); then
      bench/eval_petshop.sh 2> "$out/correlation.log" || failed "$row"
    fi
    continue
  fi
  args=$(arguments "$row")
  # shellcheck disable=SC2086  # the arguments are words
  uv run --frozen python -m "bench.$row" $args 2> "$out/$row.log" | tee "$out/$row.jsonl" || failed "$row"
done
uv run --frozen python -m bench.report --out "$out" --results "$results" "${rows[@]}"
