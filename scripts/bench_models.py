#!/usr/bin/env python3
"""Benchmark the model stage on real HEP tables against zstd, SZ3 and ZFP, in one run.

Usage: .venv/bin/python scripts/bench_models.py [--repeat N] [--threads N] [--jets PATH]

Tables (only their float columns, as one compound HDF5 dataset, so every codec sees the same data):
  * jets: Baler-like jet table from Pythia 8 + FastJet (fixtures/make_jets.py: 100,000 anti-kt
    R=0.4 jets of 13 TeV QCD events; made into fixtures/data/jets.h5 if missing, which needs
    `pip install -r fixtures/requirements-bench.txt` and about 15 minutes on one core).
  * issue63: the ATLAS MC ntuple of uproot-issue63.root (9812 rows, 141 f32 columns).
  * Zmumu: real CMS 2010 dimuon events of uproot-Zmumu.root (2304 rows, 15 f64 columns).

For every error level f in 1e-2, 1e-3, 1e-4 each column's tolerance is f x (max - min) of its
finite values. balerfile variants:
  * no model: `pack --no-model` (quantisation + integer coding + zstd);
  * model: `balerfile train` once per table (Baler's default network 200-100-50, latent =
    features/32, f16 latent; the time is the "train s" column), then `pack --model ID` per level;
  * small model: the same with `--hidden 64,32` and an 8-bit latent (`--latent-coding 8`).
"size % raw" counts the whole .baler file; "+ decoder" adds the decoder ONNX file and manifest a
reader needs beside it (what `inspect` reports as the ratio with the decoder). zstd, SZ3 and ZFP
as in scripts/bench.py (SZ3/ZFP: one HDF5 dataset per column with that column's tolerance).
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import BIN, RELS, ROOT, Data, bench_h5_codecs, best_time, fmt, issue63_path, zstd_rows  # noqa: E402


def float_table(path, dataset):
    with h5py.File(path, "r") as h:
        t = h[dataset][()]
    cols = [n for n in t.dtype.names if t.dtype[n].kind == "f"]
    out = np.empty(t.shape, dtype=[(n, t.dtype[n]) for n in cols])
    for n in cols:
        out[n] = t[n]
    return out


def zmumu_path():
    out = ROOT / "fixtures" / "data" / "zmumu.h5"
    if not out.is_file():
        subprocess.run([sys.executable, str(ROOT / "fixtures" / "make_table_h5.py"), str(out),
                        "uproot-Zmumu.root", "events"], check=True)
    return out


def jets_path(p):
    if not p.is_file():
        subprocess.run([sys.executable, str(ROOT / "fixtures" / "make_jets.py"), "-o", str(p)], check=True)
    return p


def run(*args, env):
    r = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, args))} failed:\n{r.stderr}")
    return r.stdout


def bench_balerfile(data, src, dataset, tmp, repeat, threads, env):
    rows = []
    arch, out = tmp / "b.baler", tmp / "b.h5"
    variants = [("balerfile, no model", None, [])]
    for label, targs, pargs in [("balerfile + model 200-100-50 f16", [], []),
                                ("balerfile + model 64-32 8-bit", ["--hidden", "64,32"], ["--latent-coding", "8"])]:
        bundle = tmp / f"bundle-{len(variants)}"  # one folder per variant: train -o replaces a folder
        t = time.perf_counter()
        run("train", src, "--dataset", dataset, "-o", bundle, "--seed", "0", *targs, env=env)
        secs = time.perf_counter() - t
        variants.append((label, (bundle, secs), pargs))
    for label, model, pargs in variants:
        for f in RELS:
            margs = ["--no-model"] if model is None else ["--model", model[0], *pargs]

            def pack():
                run("pack", src, "-o", arch, "--dataset", dataset, "--error", f"rel={f}",
                    "--threads", threads, *margs, env=env)

            def unpack():
                if out.exists():
                    out.unlink()
                run("unpack", arch, "-o", out, "--threads", threads, env=env)
            tp, _ = best_time(pack, repeat)
            tu, _ = best_time(unpack, repeat)
            ins = json.loads(run("inspect", arch, "--json", env=env))
            with h5py.File(out, "r") as h:
                d = h[dataset][()]
            backs = [d[n] for n in data.names]
            tols = [f * r for r in data.ranges]
            size = arch.stat().st_size
            rows.append(dict(data=data.name, codec=label, level=f"rel={f:g}", pct=100.0 * size / data.raw,
                             pct_dec=100.0 * (size + ins["decoder_bytes"]) / data.raw,
                             err=data.errors(backs), pack=data.raw / tp / 1e6, unpack=data.raw / tu / 1e6,
                             ok=data.within(backs, tols), train=None if model is None else model[1]))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--jets", type=Path, default=ROOT / "fixtures" / "data" / "jets.h5")
    args = ap.parse_args()
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        sys.exit(f"bench: balerfile binary not found at {BIN}")
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print("# balerfile model-stage benchmark\n")
    print(f"- command: `{' '.join(shlex.quote(a) for a in [sys.executable] + sys.argv)}`")
    print(f"- machine: {cpu}, nproc = {nproc}; balerfile --threads {args.threads}, best of {args.repeat} runs")
    print(f"- h5py {h5py.version.version}, hdf5plugin {hdf5plugin.version}, numpy {np.__version__}\n")

    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    all_rows, notes = [], []
    with tempfile.TemporaryDirectory(dir=base) as td:
        tmp = Path(td)
        env = dict(os.environ, BALER_MODEL_PATH=str(tmp / "store"))
        tables = [("jets", jets_path(args.jets), "jets"), ("issue63", issue63_path(), "WtLoop_nominal"),
                  ("Zmumu", zmumu_path(), "events")]
        for label, path, ds in tables:
            t = float_table(path, ds)
            src = tmp / f"{label}.h5"
            with h5py.File(src, "w") as h:
                h.create_dataset(ds, data=t)
            kinds = sorted({t.dtype[n].str for n in t.dtype.names})
            data = Data(f"{label} ({t.shape[0]} rows x {len(t.dtype.names)} {'/'.join(kinds)})",
                        [np.ascontiguousarray(t[n]) for n in t.dtype.names], list(t.dtype.names))
            print(f"... {data.name}", file=sys.stderr)
            all_rows += bench_balerfile(data, src, ds, tmp, args.repeat, args.threads, env)
            z, how = zstd_rows(data, args.repeat)
            all_rows += z
            if how not in notes:
                notes.append(how)
            all_rows += [r for r in bench_h5_codecs(data, tmp, args.repeat) if "gzip" not in r["codec"]]

    print("| data | codec | error level | size % raw | + decoder | max err / range | pack MB/s | unpack MB/s | train s | bound ok |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in all_rows:
        print(f"| {r['data']} | {r['codec']} | {r['level']} | {r['pct']:.2f} | {fmt(r.get('pct_dec'), '.2f')} | "
              f"{r['err']:.4g} | {fmt(r['pack'], '.1f')} | {fmt(r['unpack'], '.1f')} | {fmt(r.get('train'), '.1f')} | "
              f"{'yes' if r['ok'] else 'NO'} |")
    print()
    for n in notes:
        print(f"- {n}")
    print("- balerfile times are whole CLI runs (process start, ONNX Runtime start, HDF5 I/O included).")


if __name__ == "__main__":
    main()
