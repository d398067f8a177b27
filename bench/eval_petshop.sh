#!/usr/bin/env bash
# Root cause across services on the PetShop benchmark (SPEC §12, §14): every case of a
# scenario through the real pipeline, scored against its labels. Progress on stderr; the
# result object lands in bench/out/eval-petshop-<scenario>.json, the wall time and the
# machine's load in bench/out/eval-petshop-<scenario>.txt. The published methods' scores
# on the same cases are in BASELINES.md beside the dataset.
#   bench/eval_petshop.sh [SCENARIO_DIR]
# The scenario defaults to $WARROOM_PETSHOP_DIR, else ../shared/datasets/petshop/low_traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-${WARROOM_PETSHOP_DIR:-../shared/datasets/petshop/low_traffic}}
name=$(basename "$scenario")
mkdir -p bench/out
out=bench/out/eval-petshop-$name.json
notes=bench/out/eval-petshop-$name.txt
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$notes"
SECONDS=0
uv run --frozen warroom eval petshop "$scenario" --json > "$out"
echo "wall time: ${SECONDS} s" | tee -a "$notes"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$notes"
uv run --frozen python -c "import json, sys; d = json.load(open(sys.argv[1])); print(json.dumps({'scores': d['scores'], 'overall': d['overall']}))" "$out"
