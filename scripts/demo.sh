#!/usr/bin/env bash
# The main job on real data: packs the HadCM3 climate field and the ATLAS issue63 ntuple table
# at rel=1e-3 (training an autoencoder for the table, stored as an ONNX bundle and run through
# ONNX Runtime), unpacks them, and checks every element against its bound with h5py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

out=${DEMO_OUT:-target/demo}
mkdir -p "$out"
# The demo's models stay in its own store (the default is ~/.local/share/balerfile/models).
export BALER_MODEL_PATH=${BALER_MODEL_PATH:-$PWD/$out/models}
py=.venv/bin/python
bf=target/release/balerfile
climate=$($py -c "import iris_sample_data, os; print(os.path.join(os.path.dirname(iris_sample_data.__file__), 'sample_data', 'A1B_north_america.nc'))")
[ -f "$out/issue63.h5" ] || $py fixtures/make_table_h5.py "$out/issue63.h5"

for input in "$climate" "$out/issue63.h5"; do
  name=$(basename "${input%.*}")
  echo
  echo "== $name"
  $bf pack "$input" -o "$out/$name.baler" --error rel=1e-3 --quiet 2>/dev/null
  $bf unpack "$out/$name.baler" -o "$out/$name.unpacked.h5"
  $py scripts/verify.py "$input" "$out/$name.unpacked.h5" "$out/$name.baler"
done
