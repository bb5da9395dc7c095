#!/usr/bin/env python3
"""Benchmark balerfile against zstd, gzip, SZ3 and ZFP on the same real data, in one run.

Usage: .venv/bin/python scripts/bench.py [--repeat N] [--threads N]

Data:
  * HadCM3 air_temperature, (240, 37, 49) f32, from iris-sample-data A1B_north_america.nc.
  * issue63: the 141 f32 columns of tree WtLoop_nominal (9812 rows) of uproot-issue63.root
    (via fixtures/make_table_h5.py; made into fixtures/data/issue63.h5 if missing).

For every error level f in 1e-2, 1e-3, 1e-4 the tolerance of a variable is f x (max - min) of
its finite values (air_temperature: of the field; issue63: of each column separately).

Codecs:
  * balerfile: the CLI, `pack --error rel=f --no-model` (the codec alone; scripts/bench_models.py
    measures the model stage) and `unpack` to .h5, timed as whole commands
    (process start and HDF5 I/O included). For issue63 it is fed an HDF5 file holding one
    compound dataset of just the 141 float columns, so every codec sees the same data.
    Size = the whole .baler file.
  * zstd -19 (lossless): python `zstandard` if installed, else the `zstd` CLI, else skipped.
    air_temperature: its C-order bytes; issue63: the columns one after another (column-major).
  * gzip: HDF5 gzip level 6 with shuffle (lossless), via h5py.
  * SZ3 (absolute error mode, tolerance as above) and ZFP (accuracy mode, same tolerance),
    as HDF5 filters from hdf5plugin via h5py.
  HDF5 codecs: air_temperature is one dataset stored as a single chunk; issue63 is 141 1-D
  datasets, one per column, each a single chunk and each with its own column's absolute
  tolerance (the simplest honest way to give SZ3/ZFP per-column bounds). Size = sum of
  dataset.id.get_storage_size() (compressed chunks, no HDF5 metadata). Files are written to a
  temporary folder (on /dev/shm when it exists), closed and reopened with the chunk cache off,
  so the read really decompresses.

Columns: size as % of the raw bytes; max error relative to range (issue63: the worst column's
max|x'-x| / range); pack and unpack speed in MB/s of raw data (1 MB = 1e6 bytes), best of
--repeat runs. "bound ok" says whether every element is within its tolerance.
"""
import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = os.environ.get("BALERFILE", str(ROOT / "target" / "release" / "balerfile"))
RELS = [1e-2, 1e-3, 1e-4]


def hadcm3_path():
    import iris_sample_data
    return Path(iris_sample_data.__file__).parent / "sample_data" / "A1B_north_america.nc"


def issue63_path():
    out = ROOT / "fixtures" / "data" / "issue63.h5"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "fixtures" / "make_table_h5.py"), str(out)], check=True)
    return out


def best_time(fn, repeat):
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


class Data:
    """A benchmark input: a list of float variables (1-D or n-D arrays), each with its range."""

    def __init__(self, name, arrays, names):
        self.name = name
        self.arrays = arrays
        self.names = names
        self.raw = sum(a.nbytes for a in arrays)
        self.ranges = []
        for a in arrays:
            fin = a[np.isfinite(a)].astype(np.float64)
            self.ranges.append(float(fin.max() - fin.min()) if fin.size else 0.0)

    def errors(self, backs):
        """Max over variables of max|x'-x| / range."""
        rel = 0.0
        for a, b, r in zip(self.arrays, backs, self.ranges):
            d = float(np.max(np.abs(b.astype(np.float64) - a.astype(np.float64)))) if a.size else 0.0
            if r > 0:
                rel = max(rel, d / r)
        return rel

    def within(self, backs, tols):
        for a, b, t in zip(self.arrays, backs, tols):
            d = np.abs(b.astype(np.float64) - a.astype(np.float64))
            if not np.all(d <= t):
                return False
        return True


def row(data, codec, level, size, err, tp, tu, ok):
    return dict(data=data.name, codec=codec, level=level, pct=100.0 * size / data.raw, err=err,
                pack=data.raw / tp / 1e6 if tp else None, unpack=data.raw / tu / 1e6 if tu else None, ok=ok)


# ---------------------------------------------------------------------------------------------


def bench_balerfile(data, src_h5, dataset, tmp, repeat, threads):
    rows = []
    arch = tmp / "b.baler"
    out = tmp / "b.h5"
    for f in RELS:
        def pack():
            subprocess.run([BIN, "pack", str(src_h5), "-o", str(arch), "--dataset", dataset, "--no-coordinates",
                            "--error", f"rel={f}", "--threads", str(threads), "--no-model"],
                           check=True, capture_output=True)

        def unpack():
            if out.exists():
                out.unlink()
            subprocess.run([BIN, "unpack", str(arch), "-o", str(out), "--threads", str(threads)],
                           check=True, capture_output=True)
        tp, _ = best_time(pack, repeat)
        tu, _ = best_time(unpack, repeat)
        size = arch.stat().st_size
        with h5py.File(out, "r") as h:
            d = h[dataset][()]
        backs = [d[n] for n in data.names] if d.dtype.names else [d]
        tols = [f * r for r in data.ranges]
        rows.append(row(data, "balerfile", f"rel={f:g}", size, data.errors(backs), tp, tu, data.within(backs, tols)))
    return rows


def zstd_rows(data, repeat):
    blob = b"".join(np.ascontiguousarray(a).tobytes() for a in data.arrays)
    try:
        import zstandard
        cctx = zstandard.ZstdCompressor(level=19)
        dctx = zstandard.ZstdDecompressor()
        tp, comp = best_time(lambda: cctx.compress(blob), repeat)
        tu, back = best_time(lambda: dctx.decompress(comp), repeat)
        assert back == blob
        how = f"zstd -19 (python zstandard {zstandard.__version__})"
    except ImportError:
        exe = shutil.which("zstd")
        if not exe:
            return [], "zstd: skipped (neither python zstandard nor the zstd CLI is available)"
        tp, comp = best_time(lambda: subprocess.run([exe, "-19", "-q", "-c"], input=blob, check=True,
                                                    capture_output=True).stdout, repeat)
        tu, back = best_time(lambda: subprocess.run([exe, "-d", "-q", "-c"], input=comp, check=True,
                                                    capture_output=True).stdout, repeat)
        assert back == blob
        how = f"zstd -19 (CLI {exe}, process start included)"
    return [row(data, "zstd -19", "lossless", len(comp), 0.0, tp, tu, True)], how


def h5_filter_rows(data, codec, level, filt_for, tmp, repeat, tols):
    """filt_for(i) -> dict of create_dataset keyword arguments for variable i."""
    fn = tmp / "f.h5"

    def write():
        with h5py.File(fn, "w", rdcc_nbytes=0) as h:
            for i, a in enumerate(data.arrays):
                h.create_dataset(f"v{i}", data=a, chunks=a.shape, **filt_for(i))

    def read():
        with h5py.File(fn, "r", rdcc_nbytes=0) as h:
            backs = [h[f"v{i}"][()] for i in range(len(data.arrays))]
            size = sum(h[f"v{i}"].id.get_storage_size() for i in range(len(data.arrays)))
        return backs, size
    tp, _ = best_time(write, repeat)
    tu, (backs, size) = best_time(read, repeat)
    ok = data.within(backs, tols)
    return row(data, codec, level, size, data.errors(backs), tp, tu, ok)


def bench_h5_codecs(data, tmp, repeat):
    rows = [h5_filter_rows(data, "gzip 6 + shuffle (HDF5)", "lossless",
                           lambda i: dict(compression="gzip", compression_opts=6, shuffle=True),
                           tmp, repeat, [0.0] * len(data.arrays))]
    for f in RELS:
        tols = [f * r for r in data.ranges]
        rows.append(h5_filter_rows(data, "SZ3 abs (hdf5plugin)", f"rel={f:g}",
                                   lambda i: dict(hdf5plugin.SZ3(absolute=tols[i])), tmp, repeat, tols))
    for f in RELS:
        tols = [f * r for r in data.ranges]
        rows.append(h5_filter_rows(data, "ZFP accuracy (hdf5plugin)", f"rel={f:g}",
                                   lambda i: dict(hdf5plugin.Zfp(accuracy=tols[i])), tmp, repeat, tols))
    return rows


def fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is kept")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="balerfile --threads")
    args = ap.parse_args()

    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    print(f"# balerfile benchmark\n")
    print(f"- command: `{' '.join(shlex.quote(a) for a in [sys.executable] + sys.argv)}`")
    print(f"- machine: nproc = {nproc}, {os.uname().sysname} {os.uname().machine}")
    ver = subprocess.run([BIN, "--version"], capture_output=True, text=True)
    print(f"- balerfile: `{BIN}` ({(ver.stdout or ver.stderr).strip() or 'version n/a'}), --threads {args.threads}")
    print(f"- h5py {h5py.version.version}, HDF5 {h5py.version.hdf5_version}, hdf5plugin {hdf5plugin.version}, "
          f"numpy {np.__version__}; best of {args.repeat} runs\n")
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        sys.exit(f"bench: balerfile binary not found at {BIN} (build it or set BALERFILE)")

    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    notes = []
    all_rows = []
    with tempfile.TemporaryDirectory(dir=base) as td:
        tmp = Path(td)
        # HadCM3 air_temperature
        hc = hadcm3_path()
        with h5py.File(hc, "r") as h:
            air = h["air_temperature"][()]
        d_air = Data("HadCM3 air_temperature (240x37x49 f32)", [air], ["air_temperature"])
        # issue63: only the float columns, as one compound dataset for balerfile
        with h5py.File(issue63_path(), "r") as h:
            table = h["WtLoop_nominal"][()]
        fcols = [n for n in table.dtype.names if table.dtype[n].kind == "f"]
        ftable = np.empty(table.shape, dtype=[(n, table.dtype[n]) for n in fcols])
        for n in fcols:
            ftable[n] = table[n]
        i63 = tmp / "issue63_floats.h5"
        with h5py.File(i63, "w") as h:
            h.create_dataset("WtLoop_nominal", data=ftable)
        d_i63 = Data(f"issue63 WtLoop_nominal ({len(fcols)} f32 columns x {table.shape[0]} rows)",
                     [np.ascontiguousarray(ftable[n]) for n in fcols], fcols)

        for data, src, dsname in [(d_air, hc, "air_temperature"), (d_i63, i63, "WtLoop_nominal")]:
            all_rows += bench_balerfile(data, src, dsname, tmp, args.repeat, args.threads)
            z = zstd_rows(data, args.repeat)
            all_rows += z[0]
            if z[1] not in notes:
                notes.append(z[1])
            all_rows += bench_h5_codecs(data, tmp, args.repeat)

    print("| data | codec | error level | size % of raw | max error / range | pack MB/s | unpack MB/s | bound ok |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for r in all_rows:
        print(f"| {r['data']} | {r['codec']} | {r['level']} | {r['pct']:.2f} | {r['err']:.4g} | "
              f"{fmt(r['pack'], '.1f')} | {fmt(r['unpack'], '.1f')} | {'yes' if r['ok'] else 'NO'} |")
    print()
    for n in notes:
        print(f"- {n}")
    print("- balerfile times are whole CLI runs (process start, HDF5 read/write included); the others "
          "are in-process (h5py/zstandard), HDF5 writes/reads on "
          f"{base or 'the default temp folder'}.")


if __name__ == "__main__":
    main()
