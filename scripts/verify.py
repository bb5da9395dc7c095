"""Checks an unpacked HDF5 file against its original, independently of balerfile's own report:
for every packed dataset and variable (each column of a 2-D array packed as a table), the largest
|x' - x| against the bound in the archive header, and exact equality for lossless variables.

usage: verify.py ORIGINAL.h5 UNPACKED.h5 ARCHIVE.baler
"""
import json
import os
import struct
import sys
from pathlib import Path

import h5py
import numpy as np


def header(path):
    with open(path, "rb") as f:
        pre = f.read(24)
        flags, hlen = struct.unpack("<IQ", pre[12:24])
        stored = f.read(hlen)
    if flags & 1:  # the header is zstd-compressed; bit 1: against the format's dictionary
        import zstandard
        dict_path = Path(__file__).resolve().parents[1] / "schemas" / "baler-header-dict-1.bin"
        d = zstandard.ZstdCompressionDict(dict_path.read_bytes(), dict_type=zstandard.DICT_TYPE_RAWCONTENT) if flags & 2 else None
        stored = (zstandard.ZstdDecompressor(dict_data=d) if d else zstandard.ZstdDecompressor()).decompress(stored)
    return json.loads(stored)


def main(orig, unpacked, archive):
    h = header(archive)
    size = os.path.getsize(archive)
    worst = 0.0
    failures = 0
    raw = 0
    with h5py.File(orig, "r") as a, h5py.File(unpacked, "r") as b:
        for d in h["datasets"]:
            x, y = a[d["path"]][()], b[d["path"]][()]
            raw += x.nbytes if x.dtype.names is None else sum(x[v["field"]].nbytes for v in d["variables"])
            for j, v in enumerate(d["variables"]):
                if d["kind"] == "columns":  # a 2-D array read as a table: variable j is column j
                    xv, yv = x[:, j], y[:, j]
                else:
                    xv = x[v["field"]] if v["field"] else x
                    yv = y[v["field"]] if v["field"] else y
                tol = v["error"].get("abs") if v["error"]["mode"] in ("abs", "rel") else None
                if not tol:
                    if not np.array_equal(np.asarray(xv), np.asarray(yv), equal_nan=xv.dtype.kind == "f"):
                        print(f"FAIL {v['name']}: lossless variable differs")
                        failures += 1
                    continue
                xf, yf = np.asarray(xv, dtype=np.float64), np.asarray(yv, dtype=np.float64)
                fin = np.isfinite(xf)
                err = np.abs(xf[fin] - yf[fin]).max(initial=0.0)
                if not np.array_equal(xf[~fin], yf[~fin], equal_nan=True) or err > tol:
                    print(f"FAIL {v['name']}: max error {err:.6g} > bound {tol:.6g}")
                    failures += 1
                worst = max(worst, err / tol)
    print(
        f"{os.path.basename(orig)}: {raw} raw bytes -> {size} archive bytes "
        f"({100 * size / raw:.2f}% of raw, ratio {raw / size:.2f}); "
        f"max error = {100 * worst:.2f}% of the bound, checked on every element by h5py"
    )
    if failures:
        sys.exit(f"{failures} variables out of bound")


if __name__ == "__main__":
    main(*sys.argv[1:])
