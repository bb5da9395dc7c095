#!/usr/bin/env python3
"""Fields with fill values, balerfile against its peers in one run (not a test).

Usage: .venv/bin/python scripts/bench_missing.py   (needs pysz: fixtures/requirements-bench.txt)
Runs in a temporary folder. SPERR is left out: it crashes the process on 1e20 fill values
(FIELD-NOTES.md).
"""
# One run: balerfile (pack, fills declared missing) vs SZ3 3.3 (pysz), SZ3 (hdf5plugin 7.1), ZFP
# accuracy, zstd -19, at tol = E x the valid range, on real ocean fields with fill values.
# Each peer's bound is checked on every valid element; fills: bit-exact or not is reported.
import os, subprocess, h5py, numpy as np, hdf5plugin, iris_sample_data, zstandard
from pathlib import Path
from pysz import sz, szConfig, szErrorBoundMode
B = str(Path(__file__).resolve().parents[1] / "target" / "release" / "balerfile")
os.chdir(__import__("tempfile").mkdtemp(prefix="bench_missing-"))
d = Path(iris_sample_data.__file__).parent / "sample_data"
def h5peer(x, tol, kw):
    with h5py.File("p.h5", "w") as f:
        f.create_dataset("v", data=x, chunks=x.shape, **kw)
    with h5py.File("p.h5") as f:
        return f["v"].id.get_storage_size(), f["v"][()]
def sz33(x, tol):
    c = szConfig(); c.setDims(x.shape); c.errorBoundMode = szErrorBoundMode.ABS; c.absErrorBound = tol
    blob, _ = sz.compress(x, c); back, _ = sz.decompress(blob, x.dtype, x.shape)
    return len(blob), back
for fname, var in [("ostia_monthly.nc", "surface_temperature"), ("NEMO/nemo_1m_20150101-20150201_grid-T.nc", "tos")]:
    with h5py.File(d / fname) as f:
        x = f[var][()]
    m = x == np.float32(1e20); v = x[~m].astype(np.float64); vr = v.max() - v.min()
    for E in (1e-2, 1e-3, 1e-4):
        tol = E * vr
        rows = []
        subprocess.run([B, "pack", str(d / fname), "-o", "b.baler", "--dataset", var, "--no-coordinates", "--error", f"rel={E}", "--no-model", "-q"], check=True, capture_output=True)
        subprocess.run([B, "unpack", "b.baler", "-o", "b.h5", "-q"], check=True, capture_output=True)
        with h5py.File("b.h5") as f: y = f[var][()]
        rows.append(("balerfile", os.path.getsize("b.baler"), y))
        rows.append(("sz3.3 pysz", *sz33(x, tol)))
        rows.append(("sz3 hdf5plugin", *h5peer(x, tol, hdf5plugin.SZ3(absolute=tol))))
        rows.append(("zfp accuracy", *h5peer(x, tol, hdf5plugin.Zfp(accuracy=tol))))
        z = zstandard.ZstdCompressor(level=19).compress(x.tobytes())
        rows.append(("zstd -19 (lossless)", len(z), x))
        for name, size, y in rows:
            err = np.abs(y[~m].astype(np.float64) - v).max()
            print(f"{var:20s} E={E:g} {name:20s} {100 * size / x.nbytes:6.2f}% of raw  max err/tol {err / tol:.3f} "
                  f"held {'yes' if err <= tol else 'NO'}  fills exact {y[m].tobytes() == x[m].tobytes()}")
