#!/usr/bin/env python3
"""Tables: balerfile against the simplest recipe, SZ3 (two builds), ZFP and zstd, in one run.

Usage: .venv/bin/python scripts/bench_tables.py [--repeat N] [--tables a,b] [--no-model-runs]

(scripts/bench.py covers the HadCM3 field and the HDF5 filters; this script is its table part.)

Tables (float columns only, so every method sees the same numbers; integer columns are lossless
in balerfile and would only blur the comparison):
  issue63   ATLAS MC ntuple, 141 f32 columns x 9812 rows (fixtures/data/issue63.h5)
  zmumu     CMS 2010 collision data, Zmumu's 14 f64 columns x 2304 events
  hzz-jet, hzz-muon, hzz-electron, hzz-photon
            HZZ's jagged per-object branches flattened to per-object tables (f32)
  jets      Pythia 8 + FastJet jets, Baler-like (fixtures/data/jets.h5, made by
            fixtures/make_jets.py; skipped when absent: the generator is benchmark-only)

For every f in 1e-2, 1e-3, 1e-4 each column's tolerance is f x (max - min) of that column.

Methods, each checked on every element against each column's tolerance (a method that breaks a
bound is reported as BROKE and not ranked):
  recipe      per column: q = round(x / (2 tol)); q - min(q) at the narrowest unsigned width;
              byte shuffle; zstd -19 (python zstandard). What anyone writes in ten lines.
  SZ3-3.3     pysz (SZ3 3.3) per column, ABS mode, in process.
  SZ3-h5      hdf5plugin's SZ3 filter (built from a 2022 SZ3) per column, absolute mode,
              one chunk per column; size = stored chunk bytes.
  ZFP         hdf5plugin's ZFP, accuracy mode = tol, per column as SZ3-h5.
  zstd-19     lossless, per column.
  balerfile   the CLI: `pack --no-model --threads 1` and `unpack --threads 1`, timed as whole
              commands (process start and HDF5 I/O included); size = the whole .baler file.
  +model      `pack` with its default model trial (trains a dense model on the table, keeps it
              only if it pays); size without and with the decoder (`inspect --json`:
              decoder_bytes); pack time includes the training.
Sizes are % of the raw float bytes; speeds are MB/s of raw bytes (1 MB = 1e6), on one core,
best of --repeat. "H0" is the order-0 entropy of the quantised codes summed over columns: the
floor for any coder that treats rows and columns as independent.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import best_time as timed  # noqa: E402  (the timing helper bench.py already has)

ROOT = Path(__file__).resolve().parents[1]
BIN = os.environ.get("BALERFILE", str(ROOT / "target" / "release" / "balerfile"))
RELS = [1e-2, 1e-3, 1e-4]


# ---- data -----------------------------------------------------------------------------------

def hep(name):
    import skhep_testdata
    return Path(skhep_testdata.__file__).parent / "data" / name


def load_tables(which):
    import uproot
    tables = {}
    if "issue63" in which:
        p = ROOT / "fixtures" / "data" / "issue63.h5"
        if not p.is_file():
            p.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, str(ROOT / "fixtures" / "make_table_h5.py"), str(p)], check=True)
        with h5py.File(p, "r") as f:
            a = f["WtLoop_nominal"][()]
        tables["issue63"] = {n: a[n] for n in a.dtype.names if a.dtype[n].kind == "f"}
    if "zmumu" in which:
        t = uproot.open(hep("uproot-Zmumu.root"))["events"]
        tables["zmumu"] = {k: t[k].array(library="np") for k, b in t.items()
                           if b.interpretation.typename in ("double", "float")}
    hzz = [w for w in which if w.startswith("hzz-")]
    if hzz:
        import awkward as ak
        t = uproot.open(hep("uproot-HZZ.root"))["events"]
        for w in hzz:
            prefix = w[4:].capitalize() + "_"
            cols = {}
            for k in t.keys():
                if not k.startswith(prefix):
                    continue
                a = t[k].array(library="ak")
                if a.ndim == 2 and str(ak.type(a).content.content) in ("float32", "float64"):
                    cols[k] = ak.to_numpy(ak.flatten(a))
            if cols:
                tables[w] = cols
    if "jets" in which:
        p = ROOT / "fixtures" / "data" / "jets.h5"
        if p.is_file():
            with h5py.File(p, "r") as f:
                ds = next(iter(f.values()))
                a = ds[()]
            tables["jets"] = {n: a[n] for n in a.dtype.names if a.dtype[n].kind == "f"}
        else:
            print(f"jets: {p} absent (make it with fixtures/make_jets.py): skipped", file=sys.stderr)
    return tables


def ranges(cols):
    return {k: float(np.max(v).astype(np.float64) - np.min(v).astype(np.float64)) for k, v in cols.items()}


# ---- peers ----------------------------------------------------------------------------------

def recipe(cols, tols, repeat):
    import zstandard
    cz = zstandard.ZstdCompressor(level=19)
    dz = zstandard.ZstdDecompressor()

    def pack():
        out = {}
        for k, x in cols.items():
            t = tols[k]
            q = np.round(x.astype(np.float64) / (2 * t)).astype(np.int64)
            lo = int(q.min())
            q -= lo
            top = int(q.max())
            w = 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
            b = q.astype(f"<u{w}").view(np.uint8).reshape(-1, w).T.tobytes()
            out[k] = (cz.compress(b), lo, w)
        return out

    def unpack(packed):
        back = {}
        for k, (blob, lo, w) in packed.items():
            n = cols[k].size
            b = np.frombuffer(dz.decompress(blob, max_output_size=n * w), np.uint8).reshape(w, n).T.copy()
            q = b.view(f"<u{w}").reshape(-1).astype(np.int64) + lo
            back[k] = (q.astype(np.float64) * (2 * tols[k])).astype(cols[k].dtype)
        return back

    tp, packed = timed(pack, repeat)
    tu, back = timed(lambda: unpack(packed), repeat)
    return sum(len(b) for b, _, _ in packed.values()), tp, tu, back


def pysz(cols, tols, repeat):
    from pysz import sz, szConfig, szErrorBoundMode

    def pack():
        out = {}
        for k, x in cols.items():
            c = szConfig()
            c.setDims(x.shape)
            c.errorBoundMode = szErrorBoundMode.ABS
            c.absErrorBound = tols[k]
            out[k] = sz.compress(np.ascontiguousarray(x), c)[0]
        return out

    def unpack(packed):
        return {k: sz.decompress(b, cols[k].dtype, cols[k].shape)[0] for k, b in packed.items()}

    tp, packed = timed(pack, repeat)
    tu, back = timed(lambda: unpack(packed), repeat)
    return sum(len(b) for b in packed.values()), tp, tu, back


def h5_filter(cols, tols, repeat, tmp, make):
    path = tmp / "peer.h5"

    def pack():
        with h5py.File(path, "w") as f:
            for k, x in cols.items():
                f.create_dataset(k.replace("/", "_"), data=x, chunks=x.shape, **make(tols[k]))
        with h5py.File(path, "r") as f:
            return sum(f[k.replace("/", "_")].id.get_storage_size() for k in cols)

    def unpack():
        with h5py.File(path, "r", rdcc_nbytes=0) as f:
            return {k: f[k.replace("/", "_")][()] for k in cols}

    tp, size = timed(pack, repeat)
    tu, back = timed(unpack, repeat)
    return size, tp, tu, back


def zstd19(cols, repeat):
    import zstandard
    cz = zstandard.ZstdCompressor(level=19)
    dz = zstandard.ZstdDecompressor()
    tp, packed = timed(lambda: {k: cz.compress(x.tobytes()) for k, x in cols.items()}, repeat)
    tu, back = timed(lambda: {k: np.frombuffer(dz.decompress(b), cols[k].dtype) for k, b in packed.items()}, repeat)
    return sum(len(b) for b in packed.values()), tp, tu, back


def balerfile(cols, tols, f, repeat, tmp, model):
    src = tmp / "table.h5"
    if not src.exists():
        names = list(cols)
        rec = np.zeros(len(next(iter(cols.values()))), dtype=[(n, cols[n].dtype) for n in names])
        for n in names:
            rec[n] = cols[n]
        with h5py.File(src, "w") as h:
            h.create_dataset("t", data=rec)
    arch, out = tmp / "t.baler", tmp / "back.h5"
    env = dict(os.environ, BALER_MODEL_PATH=str(tmp / "store"))
    extra = [] if model else ["--no-model"]

    def pack():
        subprocess.run([BIN, "pack", str(src), "-o", str(arch), "-q", "--threads", "1", "--error", f"rel={f}", *extra],
                       check=True, capture_output=True, env=env)

    def unpack():
        out.unlink(missing_ok=True)
        subprocess.run([BIN, "unpack", str(arch), "-o", str(out), "-q", "--threads", "1"], check=True,
                       capture_output=True, env=env)

    tp, _ = timed(pack, 1 if model else repeat)
    tu, _ = timed(unpack, repeat)
    info = json.loads(subprocess.run([BIN, "inspect", "--json", str(arch)], check=True, capture_output=True,
                                     text=True, env=env).stdout)
    with h5py.File(out, "r") as h:
        d = h["t"][()]
    return arch.stat().st_size, tp, tu, {k: d[k] for k in cols}, info


def h0(cols, tols):
    bits = 0.0
    for k, x in cols.items():
        q = np.round(x.astype(np.float64) / (2 * tols[k])).astype(np.int64)
        _, c = np.unique(q, return_counts=True)
        bits += float(-(c * np.log2(c / c.sum())).sum())
    return bits / 8


def check(cols, tols, back):
    """Worst |x' - x| / tol over every element of every column (inf for a missing/NaN value)."""
    worst = 0.0
    for k, x in cols.items():
        y = np.asarray(back[k]).reshape(x.shape).astype(np.float64)
        e = np.abs(y - x.astype(np.float64))
        e[~np.isfinite(e)] = np.inf
        worst = max(worst, float(np.max(e)) / tols[k] if e.size else 0.0)
    return worst


# ---- main -----------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tables", default="issue63,zmumu,hzz-jet,hzz-muon,hzz-electron,hzz-photon,jets")
    ap.add_argument("--no-model-runs", action="store_true", help="skip balerfile's model trial (slow: it trains)")
    args = ap.parse_args()
    import hdf5plugin

    tables = load_tables(args.tables.split(","))
    summary = []
    print("size: % of raw float bytes; err: worst |x'-x| / tol; MB/s on one core, best of", args.repeat)
    for name, cols in tables.items():
        cols = {k: v for k, v in cols.items() if np.all(np.isfinite(v))}
        rg = ranges(cols)
        cols = {k: v for k, v in cols.items() if rg[k] > 0}
        raw = sum(v.nbytes for v in cols.values())
        rows_n = len(next(iter(cols.values())))
        print(f"\n== {name}: {len(cols)} float columns x {rows_n} rows, {raw / 1e6:.3f} MB raw")
        for f in RELS:
            tols = {k: f * rg[k] for k in cols}
            results = []
            with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as td:
                tmp = Path(td)

                def add(label, fn):
                    try:
                        size, tp, tu, back, *more = fn()
                        results.append((label, size, check(cols, tols, back), tp, tu, more))
                    except Exception as e:  # a crashed peer is reported, not ranked
                        results.append((label, None, None, None, None, [repr(e)[:60]]))

                add("recipe", lambda: recipe(cols, tols, args.repeat))
                add("SZ3-3.3", lambda: pysz(cols, tols, args.repeat))
                add("SZ3-h5", lambda: h5_filter(cols, tols, args.repeat, tmp, lambda t: hdf5plugin.SZ3(absolute=t)))
                add("ZFP", lambda: h5_filter(cols, tols, args.repeat, tmp, lambda t: hdf5plugin.Zfp(accuracy=t)))
                add("zstd-19", lambda: zstd19(cols, args.repeat))
                add("balerfile", lambda: balerfile(cols, tols, f, args.repeat, tmp, False))
                if not args.no_model_runs:
                    add("+model", lambda: balerfile(cols, tols, f, args.repeat, tmp, True))
            floor = h0(cols, tols)
            print(f"-- rel={f:g}   H0 {100 * floor / raw:.2f} %")
            print(f"   {'method':<12} {'size %':>8} {'err/tol':>8} {'pack MB/s':>10} {'unpack MB/s':>12}  note")
            for label, size, err, tp, tu, more in results:
                if size is None:
                    print(f"   {label:<12} {'CRASHED':>8}  {more[0]}")
                    continue
                note = "" if err <= 1.0 else f"BROKE its bound (worst error {err:.7f} x tol): not ranked"
                if more and isinstance(more[0], dict):
                    info = more[0]
                    dec = info.get("decoder_bytes") or 0
                    if info.get("model_chunks"):
                        note = f"model kept; with decoder {100 * (size + dec) / raw:.2f} %"
                    else:
                        note = note or ("model not kept (did not pay)" if label == "+model" else "")
                print(f"   {label:<12} {100 * size / raw:8.2f} {err:8.3f} {raw / tp / 1e6:10.1f} {raw / tu / 1e6:12.1f}  {note}")
            ok = {lab: s for lab, s, e, *_ in results if s is not None and e <= 1.0}
            b = ok.get("balerfile")
            peers = {k: v for k, v in ok.items() if k in ("recipe", "SZ3-3.3", "SZ3-h5", "ZFP", "zstd-19")}
            best = min(peers, key=peers.get) if peers else None
            summary.append((name, f, b, best, peers.get(best), raw))
    print("\nSummary: balerfile (no model) against the best peer that held its bound")
    for name, f, b, best, bs, raw in summary:
        verdict = "n/a" if b is None or bs is None else ("smaller" if b <= bs else "LARGER")
        bp = f"{100 * b / raw:.2f}" if b is not None else "-"
        print(f"  {name:<14} rel={f:<6g} balerfile {bp:>6} %  best peer {best} {100 * bs / raw if bs else float('nan'):.2f} %  {verdict}")


if __name__ == "__main__":
    main()
