#!/usr/bin/env bash
# The main job on real data: packs the HadCM3 climate field and the ATLAS issue63 ntuple table
# at rel=1e-3 (training an autoencoder for the table, stored as an ONNX bundle and run through
# ONNX Runtime), unpacks them, and checks every element against its bound with h5py; writes the
# eval report of the table archive (target/demo/issue63-report/report.html).
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

# The physicist's view of the table archive: Table 2 per variable, distributions, residuals with
# the bound drawn in, and SZ3, ZFP and zstd at the same bounds, in one self-contained page.
echo
echo "== eval: issue63 archive against its original, with peers"
$bf eval "$out/issue63.h5" "$out/issue63.baler" -o "$out/issue63-report" --compare --python "$py" --quiet

# The HDF5 filter: the same ATLAS floats as a plain 9812 x 141 float32 array, rewritten with the
# balerfile filter (the model trained above is not reused: this table has only the float
# columns), then read back by a bare h5py that knows only HDF5_PLUGIN_PATH.
echo
echo "== HDF5 filter: issue63 float columns as one 2-D array"
$py fixtures/make_float_array_h5.py "$out/issue63.h5" "$out/issue63_float.h5" >/dev/null
$bf h5 compress "$out/issue63_float.h5" "$out/issue63_float.filtered.h5" --error rel=1e-3 2>/dev/null
$bf h5 verify "$out/issue63_float.filtered.h5"
env -i PATH="$PATH" HOME="$HOME" HDF5_PLUGIN_PATH="$PWD/target/release" BALER_MODEL_PATH="$BALER_MODEL_PATH" \
  $py - "$out/issue63_float.h5" "$out/issue63_float.filtered.h5" <<'PY'
import sys, h5py, numpy as np
a = h5py.File(sys.argv[1])["events/table"][()].astype("f8")
b = h5py.File(sys.argv[2])["events/table"][()].astype("f8")
tol = 1e-3 * (a.max(axis=0) - a.min(axis=0))
worst = np.max(np.abs(a - b) / np.where(tol > 0, tol, 1))
assert np.all(np.abs(a - b) <= tol), "bound violated"
print(f"read back by plain h5py (HDF5_PLUGIN_PATH only): every element within rel=1e-3 of its column's range; max error = {100 * worst:.2f}% of the bound")
PY

# ROOT: a ZSTD-compressed ntuple with jagged jets, muons, electrons and photons, packed and
# written back as a TTree, then compared with uproot.
echo
echo "== ROOT: uproot-HZZ-zstd.root (2421 events, jagged branches)"
hzz=$($py -c "import skhep_testdata; print(skhep_testdata.data_path('uproot-HZZ-zstd.root'))")
$bf pack "$hzz" -o "$out/hzz.baler" --error rel=1e-3 --quiet 2>/dev/null
$bf unpack "$out/hzz.baler" -o "$out/hzz.unpacked.root"
$py - "$hzz" "$out/hzz.unpacked.root" <<'PY'
import sys, uproot, awkward as ak, numpy as np
a, b = uproot.open(sys.argv[1])["events"], uproot.open(sys.argv[2])["events"]
assert a.num_entries == b.num_entries and a.keys() == b.keys()
worst = 0.0
for k in a.keys():
    x, y = a[k].array(), b[k].array()
    if x.ndim > 1:
        assert np.array_equal(ak.num(x), ak.num(y)), k
    fx, fy = ak.flatten(x, axis=None).to_numpy(), ak.flatten(y, axis=None).to_numpy()
    if fx.dtype.kind != "f":
        assert np.array_equal(fx, fy), k
    elif fx.size:
        tol = 1e-3 * (fx.max() - fx.min())
        err = np.abs(fx.astype("f8") - fy.astype("f8")).max()
        assert err <= tol, k
        worst = max(worst, err / tol if tol else 0)
print(f"uproot reads {len(a.keys())} branches, {a.num_entries} entries: every count and integer exact, every float within rel=1e-3; max error = {100 * worst:.2f}% of the bound")
PY

# BCAE-2D on SYNTHETIC TPC wedges (no sPHENIX data can be had here): a small network trained for
# a few epochs (the paper trains 500 on a GPU), then the wedges packed losslessly against it
# and as the model's code alone, with the paper's metrics.
echo
echo "== BCAE-2D: 16 synthetic TPC wedges (16 x 192 x 249 u16, zero-suppressed at 64)"
$py fixtures/make_tpc_wedges.py "$out/tpc.h5" --wedges 16 --png "$out/tpc_wedge.png"
$bf train "$out/tpc.h5" --kind bcae2d --epochs 4 --channels 8 --code-channels 8 --lr-hold 1 --lr-every 1 \
    --encoder-blocks 3 --decoder-blocks 3 --train-rows 12 | tee "$out/bcae.log"
bcae=$(sed -n 's/^model \([0-9a-f]\{64\}\) stored.*/\1/p' "$out/bcae.log")
$bf pack "$out/tpc.h5" -o "$out/tpc_lossless.baler" --model "$bcae" --quiet
$bf pack "$out/tpc.h5" -o "$out/tpc_code.baler" --model "$bcae" --error none --quiet
$bf unpack "$out/tpc_lossless.baler" -o "$out/tpc_lossless.h5"
$py - "$out/tpc.h5" "$out/tpc_lossless.h5" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r")["tpc/adc"][()] for p in sys.argv[1:])
assert a.dtype == b.dtype and np.array_equal(a, b)
print(f"lossless through the model: {a.shape} {a.dtype} read back byte for byte; a picture of wedge 0: tpc_wedge.png")
PY
