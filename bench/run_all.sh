#!/usr/bin/env bash
# Run every benchmark with its same-run baseline; JSON lines land in bench/out/.
# Summarise them into bench/RESULTS.md by hand: numbers, ratios, machine load.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/out
kafka=${1:-apache}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee bench/out/load.txt
uv run --frozen python bench/decider.py --kafka "$kafka" --commands 20000 | tee bench/out/decider.jsonl
uv run --frozen python bench/projector.py --events 50000 | tee bench/out/projector.jsonl
uv run --frozen python bench/intake.py --kafka "$kafka" --alerts 20000 | tee bench/out/intake.jsonl
uv run --frozen python bench/command_to_sse.py --kafka "$kafka" --rate 200 --seconds 20 | tee bench/out/command_to_sse.jsonl
if [[ -f bench/replay.py ]]; then
  uv run --frozen python bench/replay.py | tee bench/out/replay.jsonl
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a bench/out/load.txt
