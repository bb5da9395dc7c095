#!/usr/bin/env bash
# Installs everything balerfile needs on a fresh Debian/Ubuntu machine (idempotent):
# the HDF5 library and tools, a Python venv with the real outside clients and real example data
# (h5py, hdf5plugin, uproot, scikit-hep-testdata, iris-sample-data), and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

need=()
# chromium + chromium-driver: tests/python/test_eval.py opens the eval report in headless Chromium.
# ferret-datasets: real netCDF-3 ocean climatologies with fill values (tests/python/test_missing.py).
# openmpi-bin + python3-h5py-mpi + python3-mpi4py: parallel HDF5 through the filter (tests/python/test_mpi.py).
for pkg in libhdf5-dev hdf5-tools hdf5-helpers pkg-config chromium chromium-driver ferret-datasets openmpi-bin python3-h5py-mpi python3-mpi4py; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found: install Rust (https://rustup.rs) and run this again" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import h5py, hdf5plugin, uproot, pytest, jsonschema, zstandard, iris_sample_data, skhep_testdata, onnx, onnxruntime, selenium, netCDF4, xarray, h5netcdf" 2>/dev/null; then
  echo "setup: installing Python clients and example data into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt -c tests/constraints.txt
  # 0.3.12 is the last release that ships its files; later ones download them at run time.
  .venv/bin/pip install -q --disable-pip-version-check --no-deps scikit-hep-testdata==0.3.12
fi

# --all-targets: the test build then reuses these dependencies (dev-dependencies change some
# features, and burn is minutes of CPU to build twice).
cargo build --release --locked --quiet --all-targets
# The HDF5 filter plugin, on its own: built with the CLI, cargo would unify features and link
# libhdf5 and burn into it.
cargo build --release --locked --quiet -p h5z-baler
# The Python package (pyproject.toml: the command, the filter plugin, the in-process API, the
# zarr and numcodecs codecs), built once as a wheel from the artifacts above (setuptools-rust runs
# cargo on the same target folder) and installed into .venv (the tests' balerfile_h5) and into
# .venv-pkg, a venv holding only the wheel and the clients tests/package drives.
.venv/bin/pip install -q --disable-pip-version-check "setuptools>=68" "setuptools-rust>=1.9" wheel
rm -rf target/wheels
CARGO_TARGET_DIR="$PWD/target" .venv/bin/pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w target/wheels .
rm -rf build
.venv/bin/pip uninstall -q -y balerfile-h5 2>/dev/null || true
.venv/bin/pip install -q --disable-pip-version-check --no-deps --force-reinstall target/wheels/balerfile-*.whl
if [ ! -x .venv-pkg/bin/python ]; then
  python3 -m venv .venv-pkg
fi
if ! .venv-pkg/bin/python -c "import pytest, h5py, zarr, numcodecs, dask, distributed, xarray, h5netcdf, netCDF4, uproot, iris_sample_data, skhep_testdata" 2>/dev/null; then
  echo "setup: installing the package tests' clients into .venv-pkg"
  .venv-pkg/bin/pip install -q --disable-pip-version-check -r tests/package/requirements.txt -c tests/package/constraints.txt
  .venv-pkg/bin/pip install -q --disable-pip-version-check --no-deps scikit-hep-testdata==0.3.12
fi
.venv-pkg/bin/pip install -q --disable-pip-version-check --no-deps --force-reinstall target/wheels/balerfile-*.whl
echo "setup: ok ($(target/release/balerfile --version); HDF5 filter plugin in $PWD/target/release)"
