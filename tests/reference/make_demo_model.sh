#!/usr/bin/env bash
# Regenerates tests/fixtures/demo_tiny28.f16.safetensors: trains `make demo`'s model (tiny28 on the
# MNIST digits, 50 epochs, seed 0: about 13 minutes on 2 cores) and keeps its last checkpoint as
# F16 with its metadata (dataset, input style, recipe), to stay under the 1 MB limit on fixtures.
# Run from the repository root after `make build`.
set -euo pipefail
bash scripts/setup-data.sh mnist
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
./build/vit train --preset tiny28 --data mnist --out "$out/run"
/usr/bin/python3 tests/reference/to_f16.py "$out/run/last.safetensors" \
  tests/fixtures/demo_tiny28.f16.safetensors
