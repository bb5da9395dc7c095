#!/usr/bin/env python3
"""The Python package's speed and size, in one run, beside its peers.

Usage (in the venv `scripts/setup.sh` makes with only the wheel and the clients, plus pysz):
    .venv-pkg/bin/pip install pysz          # SZ3 3.3, the peer
    .venv-pkg/bin/python scripts/bench_python.py [--repeat 3] [--rel 1e-3]

Data (real): HadCM3 A1B air temperature (240 x 37 x 49 f32, iris-sample-data) and the ATLAS
issue63 table's float branches of tree WtLoop_nominal as one 2-D f32 array (scikit-hep-testdata).
Tolerance: rel x the array's range (as balerfile's rel for a field; for the table every column
gets the same absolute tolerance, so every method holds the same bound).

1. In process against the CLI: `balerfile.compress`/`decompress` (threads=1, and all cores)
   against `balerfile pack`/`unpack` of the same array as .npy (--threads 1; whole processes:
   start, file I/O).
2. zarr v3 write and read (whole array, chunks of ~1 MB, zarr's default async pipeline): the
   balerfile codec against zarr's ZstdCodec (lossless, level 3) and SZ3 3.3 (pysz) wrapped as an
   array->bytes codec with the same absolute tolerance.
Every method's output is checked element by element against the tolerance (lossless: exact);
speeds are MB/s of raw array bytes, the best of --repeat runs, wall clock.
"""
import argparse
import asyncio
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import balerfile


# bench.py has best_time, but imports hdf5plugin, which this venv (the wheel and its clients) lacks.
def best(fn, repeat):
    t_best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, out


def load():
    import h5py
    import iris_sample_data
    import skhep_testdata
    import uproot

    with h5py.File(Path(iris_sample_data.__file__).parent / "sample_data" / "A1B_north_america.nc") as f:
        field = f["air_temperature"][()]
    t = uproot.open(skhep_testdata.data_path("uproot-issue63.root"))["WtLoop_nominal"]
    cols = [t[k].array(library="np") for k in t.keys() if t[k].typename == "float"]
    table = np.ascontiguousarray(np.stack(cols, axis=1))
    return {"HadCM3 field 240x37x49 f32": field, f"issue63 table {table.shape[0]}x{table.shape[1]} f32": table}


def check(name, x, y, tol):
    err = float(np.abs(x.astype("f8") - y.astype("f8")).max())
    ok = err <= tol if tol > 0 else np.array_equal(x, y)
    return ("held" if ok else f"BROKE ({err:.3g} > {tol:.3g})"), err


def sz3_codec():
    from pysz import sz, szConfig, szErrorBoundMode
    from zarr.abc.codec import ArrayBytesCodec

    @dataclass(frozen=True)
    class SZ3(ArrayBytesCodec):
        is_fixed_size = False
        tol: float = 0.0

        def _encode_sync(self, a, spec):
            x = np.ascontiguousarray(a.as_numpy_array())
            c = szConfig()
            c.setDims(x.shape)
            c.errorBoundMode = szErrorBoundMode.ABS
            c.absErrorBound = self.tol
            return spec.prototype.buffer.from_bytes(bytes(sz.compress(x, c)[0]))

        def _decode_sync(self, b, spec):
            x = sz.decompress(np.frombuffer(b.to_bytes(), np.uint8), spec.dtype.to_native_dtype(), tuple(spec.shape))[0]
            return spec.prototype.nd_buffer.from_numpy_array(np.asarray(x).reshape(spec.shape))

        async def _encode_single(self, a, spec):
            return await asyncio.to_thread(self._encode_sync, a, spec)

        async def _decode_single(self, b, spec):
            return await asyncio.to_thread(self._decode_sync, b, spec)

        def to_dict(self):
            return {"name": "bench_sz3", "configuration": {"tol": self.tol}}

        @classmethod
        def from_dict(cls, data):
            return cls(**data.get("configuration", {}))

        def compute_encoded_size(self, n, spec):
            raise NotImplementedError

    # Registered by name for this process only, so zarr reopens the store as it does balerfile's.
    from zarr.registry import register_codec

    register_codec("bench_sz3", SZ3)
    return SZ3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rel", type=float, default=1e-3)
    args = ap.parse_args()
    import zarr
    from zarr.codecs import ZstdCodec

    from balerfile.zarr import Baler

    exe = shutil.which("balerfile", path=str(Path(sys.executable).parent)) or shutil.which("balerfile")
    print("# balerfile Python package benchmark\n")
    print(f"- command: `{' '.join([Path(sys.executable).name] + sys.argv)}`")
    print(f"- machine: {platform.processor() or platform.machine()}, nproc = {os.cpu_count()}; balerfile {balerfile.__version__}, "
          f"zarr {zarr.__version__}, numpy {np.__version__}; best of {args.repeat}, rel = {args.rel}\n")
    try:
        SZ3 = sz3_codec()
    except ImportError:
        SZ3 = None
        print("pysz not installed: SZ3 rows skipped (pip install pysz)\n")
    rows_api, rows_zarr = [], []
    work = Path(tempfile.mkdtemp(prefix="bench_python_"))
    try:
        for name, x in load().items():
            mb = x.nbytes / 1e6
            tol = args.rel * (float(x.max()) - float(x.min()))
            spec = f"abs={tol!r}"
            for threads in (1, 0):
                tc, blob = best(lambda: balerfile.compress(x, spec, threads=threads), args.repeat)
                td, y = best(lambda: balerfile.decompress(blob, threads=threads), args.repeat)
                held, _ = check(name, x, y, tol)
                rows_api.append((name, f"balerfile.compress / decompress, threads={threads or os.cpu_count()}", len(blob) / x.nbytes * 100,
                                 mb / tc, mb / td, held))
            npy, arch, back = work / "x.npy", work / "x.baler", work / "y.npy"
            np.save(npy, x)
            tc, _ = best(lambda: subprocess.run([exe, "pack", npy, "-o", arch, "--error", spec, "--no-model", "--threads", "1", "-q"],
                                                check=True, capture_output=True), args.repeat)
            td, _ = best(lambda: subprocess.run([exe, "unpack", arch, "-o", back, "--threads", "1", "-q"], check=True, capture_output=True),
                         args.repeat)
            held, _ = check(name, x, np.load(back), tol)
            rows_api.append((name, "CLI pack / unpack of .npy, --threads 1", arch.stat().st_size / x.nbytes * 100, mb / tc, mb / td, held))

            per_row = x[0].nbytes
            chunks = (max(1, (1 << 20) // per_row),) + x.shape[1:]
            methods = [("balerfile codec", dict(serializer=Baler(error=spec), compressors=None), tol),
                       ("zarr ZstdCodec(3), lossless", dict(compressors=ZstdCodec(level=3)), 0.0)]
            if SZ3 is not None:
                methods.append(("SZ3 3.3 (pysz) codec", dict(serializer=SZ3(tol=tol), compressors=None), tol))
            for label, kw, t in methods:
                path = work / "z.zarr"

                def write():
                    shutil.rmtree(path, ignore_errors=True)
                    z = zarr.create_array(str(path), shape=x.shape, chunks=chunks, dtype=x.dtype, **kw)
                    z[:] = x

                tw, _ = best(write, args.repeat)
                tr, y = best(lambda: zarr.open_array(str(path), mode="r")[:], args.repeat)
                held, _ = check(name, x, y, t)
                stored = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
                rows_zarr.append((name, label, stored / x.nbytes * 100, mb / tw, mb / tr, held))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("## In process against the CLI\n")
    print("| data | method | size % of raw | compress MB/s | decompress MB/s | bound |")
    print("|---|---|---:|---:|---:|---|")
    for r in rows_api:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.1f} | {r[4]:.1f} | {r[5]} |")
    print("\n## zarr v3, chunks of ~1 MB\n")
    print("| data | codec | stored % of raw | write MB/s | read MB/s | bound |")
    print("|---|---|---:|---:|---:|---|")
    for r in rows_zarr:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.1f} | {r[4]:.1f} | {r[5]} |")


if __name__ == "__main__":
    main()
