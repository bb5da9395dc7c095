#!/usr/bin/env python3
"""Bounded-memory benchmark of `balerfile pack`, `unpack` and `eval` on multi-GB HDF5 files.

Usage: scripts/bench_memory.py [--sizes 1G,4G] [--threads N] [--keep] [--workdir DIR]
                               [--balerfile PATH] [--error rel=1e-3]

The data. There is no multi-GB real dataset offline, so one is built from a real field: the
HadCM3 1.5 m air temperature over North America (iris-sample-data A1B_north_america.nc,
240 x 37 x 49 float32, kelvin), the field of tests/python/test_fields.py. Tile k of the output
is that field rolled by 7k time steps, plus a spatially smooth offset that drifts with k
(k-th harmonic of latitude and longitude, at most 0.3 K), plus deterministic Gaussian noise
(sigma 0.02 K, numpy PCG64 seeded with k). The noise is under the bound (rel=1e-3 of the
~49 K range is ~0.049 K), so the field stays about as smooth as the real one, but no two tiles
are equal and zstd cannot just find the previous tile. The dataset /air_temperature has shape
(240 x tiles, 37, 49) float32 (the row is one 37 x 49 map), chunked (120, 37, 49) (870 KB
chunks), with the source recorded in its attributes. Sizes are in GiB of float32 values
(1G = 2^30 bytes, rounded down to whole tiles).

For each size: `balerfile pack IN.h5 -o IN.baler --error rel=1e-3 --no-model` and
`balerfile unpack IN.baler -o OUT.h5` and `balerfile eval IN.h5 IN.baler -o REPORT`, each run by a fresh Python child that starts the command
and reports resource.getrusage(RUSAGE_CHILDREN).ru_maxrss (the command's peak RSS, no one
else's), and the wall time. Then the unpacked file is checked against the input slab by slab
(bounded memory): same shape and dtype, every element within the bound (the header's resolved
abs tolerance, and rel x (max - min) computed here while generating).

Prints: size, command, peak RSS MiB, seconds, MB/s (raw bytes / s, MB = 1e6 bytes), archive %
of raw. The work folder (default target/bench_memory, under the gitignored target/) is removed
at the end unless --keep; a generated input of the right size is reused when --keep left it.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VAR = "air_temperature"
GRID = (37, 49)
TILE_T = 240
CHUNK_T = 120
SEED_NOISE = 0.02  # K


def parse_size(s):
    s = s.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}.get(s[-1:], 1)
    num = s[:-1] if s[-1:] in "KMGT" else s
    return int(float(num) * mult)


def human(n):
    for unit, m in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= 0.9 * m:
            return f"{n / m:.3f} {unit}"
    return f"{n} B"


def source_field():
    import iris_sample_data
    p = Path(iris_sample_data.__file__).parent / "sample_data" / "A1B_north_america.nc"
    with h5py.File(p, "r") as f:
        x = f[VAR][()]
    assert x.shape == (TILE_T, *GRID) and x.dtype == np.dtype("<f4"), (x.shape, x.dtype)
    return p, x


def tile(x, k):
    """Tile k: the real field rolled in time, a smooth drifting offset, seeded small noise."""
    lat = np.linspace(0, np.pi, GRID[0])[:, None]
    lon = np.linspace(0, 2 * np.pi, GRID[1])[None, :]
    offset = 0.3 * np.sin((k % 17 + 1) * lat + 0.1 * k) * np.cos((k % 13 + 1) * lon - 0.05 * k)
    noise = np.random.Generator(np.random.PCG64(k)).normal(0.0, SEED_NOISE, size=x.shape)
    y = np.roll(x, 7 * k, axis=0).astype(np.float64) + offset[None] + noise
    return y.astype(np.float32)


def generate(path, nbytes, src, x):
    """Writes the tiled field; returns (tiles, min, max) of its values."""
    tiles = max(1, nbytes // x.nbytes)
    rows = tiles * TILE_T
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        m = json.loads(meta.read_text())
        if m.get("tiles") == tiles and m.get("version") == 1:
            print(f"reusing {path} ({tiles} tiles)")
            return tiles, m["min"], m["max"]
    lo, hi = np.inf, -np.inf
    t0 = time.monotonic()
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        d = f.create_dataset(VAR, shape=(rows, *GRID), dtype="<f4", chunks=(CHUNK_T, *GRID))
        d.attrs["source"] = f"iris-sample-data {src.name}:{VAR}, tiled {tiles} times (see scripts/bench_memory.py)"
        d.attrs["units"] = "K"
        for k in range(tiles):
            y = tile(x, k)
            lo, hi = min(lo, float(y.min())), max(hi, float(y.max()))
            d[k * TILE_T:(k + 1) * TILE_T] = y
    os.replace(tmp, path)
    meta.write_text(json.dumps({"version": 1, "tiles": tiles, "min": lo, "max": hi}))
    print(f"generated {path}: {rows} x {GRID[0]} x {GRID[1]} float32 = {human(rows * GRID[0] * GRID[1] * 4)} "
          f"in {time.monotonic() - t0:.1f} s")
    return tiles, lo, hi


# A fresh Python child per command: its RUSAGE_CHILDREN is the command's alone.
CHILD = textwrap.dedent("""
    import json, resource, subprocess, sys, time
    t0 = time.monotonic()
    r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    wall = time.monotonic() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"rc": r.returncode, "wall": wall, "maxrss_kib": ru.ru_maxrss,
                      "user": ru.ru_utime, "sys": ru.ru_stime, "stdout": r.stdout, "stderr": r.stderr}))
""")


def measure(cmd):
    r = subprocess.run([sys.executable, "-c", CHILD, *map(str, cmd)], capture_output=True, text=True, check=True)
    m = json.loads(r.stdout)
    if m["rc"] != 0:
        sys.exit(f"{' '.join(map(str, cmd))}: exit {m['rc']}\n{m['stdout']}\n{m['stderr']}")
    return m


def verify(src, out, tol_header, tol_here):
    """Slab by slab (bounded memory): every element of out within the bound of src."""
    worst = 0.0
    with h5py.File(src, "r") as a, h5py.File(out, "r") as b:
        da, db = a[VAR], b[VAR]
        assert da.shape == db.shape and da.dtype == db.dtype, (da.shape, db.shape, da.dtype, db.dtype)
        step = 4 * TILE_T
        for i in range(0, da.shape[0], step):
            xa = da[i:i + step].astype(np.float64)
            xb = db[i:i + step].astype(np.float64)
            e = np.abs(xb - xa)
            if not (e <= tol_header).all():  # also catches NaN
                bad = np.flatnonzero(~(e <= tol_header).ravel())
                raise SystemExit(f"{out}: {bad.size} elements outside the bound {tol_header} in rows {i}..{i + step}")
            worst = max(worst, float(e.max()))
    assert worst <= tol_here * (1 + 1e-12), (worst, tol_here)
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1G,4G", help="comma-separated sizes of float32 data (default 1G,4G)")
    ap.add_argument("--threads", type=int, default=0, help="--threads for pack and unpack (0: all cores)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (inputs are reused next time)")
    ap.add_argument("--workdir", default=str(ROOT / "target" / "bench_memory"))
    ap.add_argument("--balerfile", default=os.environ.get("BALERFILE", str(ROOT / "target" / "release" / "balerfile")))
    ap.add_argument("--error", default="rel=1e-3", help="rel=E only (the check computes the bound from the range)")
    args = ap.parse_args()
    rel = float(args.error.split("=", 1)[1]) if args.error.startswith("rel=") else sys.exit("--error: rel=E")
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)

    # Disk: input + unpacked output (+ an archive well under the input) for the largest size.
    need = int(2.5 * max(sizes))
    free = shutil.disk_usage(work).free
    df = subprocess.run(["df", "-h", str(work)], capture_output=True, text=True).stdout.strip()
    print(df)
    if free < need:
        sys.exit(f"not enough free disk in {work}: {human(free)} free, {human(need)} needed")

    src, x = source_field()
    print(f"source: {src} {VAR} {x.shape} float32; threads {args.threads or os.cpu_count()}; "
          f"{os.cpu_count()} CPUs; balerfile {args.balerfile}")
    rows = []
    for size in sizes:
        tag = args.sizes.split(",")[sizes.index(size)].strip()
        inp = work / f"field_{tag}.h5"
        tiles, lo, hi = generate(inp, size, src, x)
        raw = tiles * x.nbytes
        arch = work / f"field_{tag}.baler"
        out = work / f"field_{tag}.out.h5"
        th = ["--threads", str(args.threads)]
        m = measure([args.balerfile, "pack", inp, "-o", arch, "--error", args.error, "--no-model", "-q", *th])
        pct = 100.0 * arch.stat().st_size / raw
        rows.append((human(raw), "pack", m, raw, pct))
        print(m["stdout"].strip())
        m = measure([args.balerfile, "unpack", arch, "-o", out, *th])
        rows.append((human(raw), "unpack", m, raw, pct))
        print(m["stdout"].strip())
        ins = json.loads(subprocess.run([args.balerfile, "inspect", arch, "--json"], capture_output=True, text=True,
                                        check=True).stdout)
        (var,) = [v for d in ins["header"]["datasets"] if d["path"] == "/" + VAR for v in d["variables"]]
        tol = float(var["error"]["abs"])
        tol_here = rel * (float(np.float32(hi)) - float(np.float32(lo)))
        t0 = time.monotonic()
        worst = verify(inp, out, tol, tol_here)
        print(f"verified {out.name}: max error {worst:.4g} K = {100 * worst / tol:.2f}% of the bound {tol:.4g} K "
              f"(rel {rel:g} x range {hi - lo:.4g} K) in {time.monotonic() - t0:.1f} s")
        out.unlink()
        # eval reads the original and decodes the archive side by side: bounded the same way.
        rep = work / f"report_{tag}"
        m = measure([args.balerfile, "eval", inp, arch, "-o", rep, "-q", *th])
        rows.append((human(raw), "eval", m, raw, pct))
        summ = json.loads((rep / "summary.json").read_text())
        (sv,) = summ["datasets"][0]["variables"]
        assert summ["bound_held"] and sv["n"] == raw // 4, (summ["bound_held"], sv["n"])
        assert abs(sv["max_abs_error"] - worst) <= 1e-12 * max(worst, 1e-30), (sv["max_abs_error"], worst)
        print(f"eval: max error {sv['max_abs_error']:.4g} K (numpy said {worst:.4g}), residual RMS "
              f"{sv['residual']['rms']:.4g} K, report {rep / 'report.html'}")
        shutil.rmtree(rep, ignore_errors=True)
        if not args.keep:
            arch.unlink()
            inp.unlink()
            inp.with_suffix(".json").unlink(missing_ok=True)

    print()
    print(f"{'size':>10}  {'command':<7} {'peak RSS MiB':>12} {'seconds':>8} {'MB/s':>7} {'archive % raw':>13}")
    for size, cmd, m, raw, pct in rows:
        print(f"{size:>10}  {cmd:<7} {m['maxrss_kib'] / 1024:>12.1f} {m['wall']:>8.1f} {raw / 1e6 / m['wall']:>7.1f} {pct:>12.2f}%")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
