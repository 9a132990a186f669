#!/usr/bin/env bash
# GPU smoke run (see benchmarks/gpu_smoke.py): one line per check, "N passed, N failed" last.
# Falls back to its CPU mode by itself where no GPU is present. At most 8 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout 480 python benchmarks/gpu_smoke.py "$@"
