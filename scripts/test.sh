#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests, then the tests that drive the real CLI with
# real data and real outside clients (h5py, numpy, jsonschema), then the installed Python package
# (pip's wheel) with h5py, zarr, numcodecs, Dask and xarray.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --release --locked
BALERFILE="$PWD/target/release/balerfile" .venv/bin/python -m pytest tests/python -q
# The installed package alone, from outside the checkout (nothing on sys.path but the venv's).
root="$PWD"
(cd "${TMPDIR:-/tmp}" && env -u BALERFILE -u HDF5_PLUGIN_PATH -u BALERFILE_H5_PLUGIN "$root/.venv-pkg/bin/python" -m pytest "$root/tests/package" -q -p no:cacheprovider)
