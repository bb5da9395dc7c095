#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests, then the tests that drive the real CLI with
# real data and real outside clients (h5py, numpy, jsonschema).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --release --locked
BALERFILE="$PWD/target/release/balerfile" .venv/bin/python -m pytest tests/python -q
