"""Benchmarks for the targets of SPEC §12: one module per row (`python -m bench.<row>`),
the setup they share in `bench.harness`, `run_all.sh` to run them all, and `bench.report`,
which turns their results into `out/summary.json` and `RESULTS.md`."""
