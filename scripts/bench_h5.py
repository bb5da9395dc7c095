#!/usr/bin/env python3
"""Benchmark the balerfile HDF5 filter (h5py) against SZ3, ZFP and gzip on real tables, in one run.

Usage: .venv/bin/python scripts/bench_h5.py [--quick] [--out DIR] [--repeat N] [--threads N] [--chunk-rows N]

Tables: the float columns of each table, cast to float32, as one 2-D array (rows x columns):
  * issue63: ATLAS MC ntuple of uproot-issue63.root (9812 rows, 141 f32 columns);
  * Zmumu: real CMS 2010 dimuon events of uproot-Zmumu.root (2304 rows, 15 f64 columns -> f32);
  * jets: the Pythia 8 + FastJet jet table of fixtures/make_jets.py, only if
    fixtures/data/jets.h5 already exists (never generated here: it takes about 15 minutes).
  (issue63 and Zmumu are made by fixtures/make_table_h5.py into fixtures/data/ if missing.)

For every error level f in 1e-2, 1e-3, 1e-4 (--quick: 1e-3 only) column j's tolerance is
f x (max - min) of column j over the whole table. Methods, all written and read with h5py:
  * balerfile filter, no model: balerfile_h5.Baler(table=True) on the 2-D array;
  * balerfile filter + model: the same with a dense model trained once per table by
    `balerfile train` (defaults, seed 0) into a fresh model store under --out; "+ decoder"
    adds the bundle's decoder.onnx and manifest.json, which a reader needs beside the file;
  * SZ3 (absolute mode) and ZFP (accuracy mode) from hdf5plugin: one 1-D dataset per column,
    each with its own column's absolute tolerance (they take one tolerance per dataset; giving
    the whole table the smallest column tolerance would hold most columns far tighter);
  * gzip level 4 + shuffle (lossless) on the 2-D array.
Every method uses the same chunk rows (default: the whole table in one chunk). Size = the
datasets' stored chunk bytes (dataset.id.get_storage_size(); no HDF5 metadata). Files are
closed and reopened with the chunk cache off, so every read decompresses. Write and read speeds
are raw bytes / seconds (1 MB = 1e6 bytes), best of --repeat runs; every element is checked
against its column's tolerance (gzip: exact).

Plugin overhead: reading the whole filtered dataset through h5py, against `balerfile unpack` to
.h5 of a .baler archive packed by `balerfile pack` from the same float32 columns (as a compound
table, so `rel` is per column there too) at the same bound and with the same model: the wall
time of the whole unpack process, nothing subtracted (process start, ONNX Runtime start, the
decode and writing the .h5 file all count).
"""
import argparse
import datetime
import json
import os
import re
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
from bench import BIN, ROOT, fmt, issue63_path  # noqa: E402
from bench_models import zmumu_path  # noqa: E402

import balerfile_h5  # noqa: E402  (registers the filter with h5py's HDF5)

RELS = [1e-2, 1e-3, 1e-4]


class Table:
    """One benchmark input: a 2-D float32 array of a table's float columns."""

    def __init__(self, label, names, x):
        self.label = label
        self.names = names
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.raw = self.x.nbytes
        x64 = self.x.astype(np.float64)
        fin = np.where(np.isfinite(x64), x64, np.nan)
        self.ranges = np.nan_to_num(np.nanmax(fin, axis=0) - np.nanmin(fin, axis=0))

    @property
    def rows(self):
        return self.x.shape[0]

    def tols(self, rel):
        return rel * self.ranges

    def check(self, back, tols):
        """(max over columns of max|x'-x| / range, whether every element is within its column's tolerance)."""
        a, b = self.x.astype(np.float64), np.asarray(back, dtype=np.float64)
        same_nan = np.isnan(a) & np.isnan(b)
        d = np.where(same_nan, 0.0, np.abs(b - a))
        d = np.where(np.isnan(d), np.inf, d)  # a NaN that appeared or vanished is a violation
        ok = bool(np.all(d <= tols[None, :]))
        worst = d.max(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(self.ranges > 0, worst / self.ranges, np.where(worst > 0, np.inf, 0.0))
        return float(rel.max()), ok


# ----------------------------------------------------------------------------------- inputs


def float_columns(path, dataset):
    """The float fields of a compound dataset, in order, stacked as float32 columns."""
    with h5py.File(path, "r") as h:
        t = h[dataset][()]
    names = [n for n in t.dtype.names if t.dtype[n].kind == "f"]
    return names, np.stack([t[n] for n in names], axis=1).astype("f4")


def tables():
    out = [("issue63", issue63_path(), "WtLoop_nominal"), ("Zmumu", zmumu_path(), "events")]
    jets = ROOT / "fixtures" / "data" / "jets.h5"
    if jets.is_file():
        out.insert(0, ("jets", jets, "jets"))
    else:
        print(f"bench_h5: {jets} missing, jets table skipped (fixtures/make_jets.py makes it)", file=sys.stderr)
    for label, path, ds in out:
        names, x = float_columns(path, ds)
        yield Table(f"{label} ({x.shape[0]} rows x {x.shape[1]} f32 columns)", names, x)


def write_cli_source(table, path):
    """The same float32 columns as one compound dataset "table": the CLI's `rel` is per variable,
    and a compound field is a variable, so pack holds each column to the same tolerance."""
    t = np.empty(table.rows, dtype=[(n, "f4") for n in table.names])
    for j, n in enumerate(table.names):
        t[n] = table.x[:, j]
    with h5py.File(path, "w") as h:
        h.create_dataset("table", data=t)


# ------------------------------------------------------------------------------ balerfile CLI


def cli(*args, env, threads=None):
    argv = [BIN, *map(str, args)] + ([] if threads is None else ["--threads", str(threads)])
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stderr.strip()}")
    return r.stdout + r.stderr


def train(src, store, env):
    """Trains a model on the table, returns (id, seconds, decoder + manifest bytes)."""
    t = time.perf_counter()
    out = cli("train", src, "--dataset", "table", "--seed", "0", env=env)
    secs = time.perf_counter() - t
    m = re.search(r"model ([0-9a-f]{64}) stored", out)
    if not m:
        raise RuntimeError(f"balerfile train: no model id in its output:\n{out}")
    bundle = Path(store) / m.group(1)
    return m.group(1), secs, sum((bundle / f).stat().st_size for f in ("decoder.onnx", "manifest.json"))


# ----------------------------------------------------------------------------- h5py timing


def storage_size(h):
    return sum(h[k].id.get_storage_size() for k in h)


def write_table(path, table, chunk_rows, kw):
    with h5py.File(path, "w") as h:
        h.create_dataset("table", data=table.x, chunks=(chunk_rows, table.x.shape[1]), **kw)


def read_table(path):
    with h5py.File(path, "r", rdcc_nbytes=0) as h:
        return h["table"][()]


def write_columns(path, table, chunk_rows, kw_for):
    """One 1-D dataset per column, kw_for(j) giving column j's filter."""
    with h5py.File(path, "w") as h:
        for j in range(table.x.shape[1]):
            h.create_dataset(f"c{j}", data=table.x[:, j], chunks=(chunk_rows,), **kw_for(j))


def read_columns(path):
    with h5py.File(path, "r", rdcc_nbytes=0) as h:
        return np.stack([h[f"c{j}"][()] for j in range(len(h))], axis=1)


def timed(fn, repeat):
    """All run times of fn (seconds) and its last result."""
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return times, result


def measure(table, path, write, read, tols, repeat):
    """Writes and reads one file, checks it; a row of the results (times in seconds)."""
    tw, _ = timed(write, repeat)
    tr, back = timed(read, repeat)
    with h5py.File(path, "r") as h:
        size = storage_size(h)
    err, ok = table.check(back, tols)
    return dict(size=size, write=min(tw), read=min(tr), read_first=tr[0], err=err, ok=ok)


# -------------------------------------------------------------------------------- methods


def filter_error(table, rel, chunk_rows):
    """The balerfile_h5 `error` that holds the filter to the peers' tolerances, and a note.

    The filter's rel=E is E x each column's range within the chunk: the full-column range
    exactly when one chunk holds the whole table, stricter than the peers' otherwise."""
    if chunk_rows >= table.rows:
        return f"rel={rel:g}", "rel=E (one chunk: the full-column range)"
    return f"rel={rel:g}", "rel=E of each chunk's column range (STRICTER than the peers' full-column tolerances)"


def bench_filter(table, work, rel, chunk_rows, model, repeat):
    error, how = filter_error(table, rel, chunk_rows)
    kw = dict(balerfile_h5.Baler(error=error, table=True, model=model))
    path = work / ("filter-model.h5" if model else "filter.h5")
    r = measure(table, path, lambda: write_table(path, table, chunk_rows, kw), lambda: read_table(path),
                table.tols(rel), repeat)
    return r, how


def bench_peers(table, work, rel, chunk_rows, repeat):
    tols = table.tols(rel)
    out = {}
    # A zero tolerance (constant column) is not a lossy bound: store that column unfiltered.
    sz3 = lambda j: dict(hdf5plugin.SZ3(absolute=float(tols[j]))) if tols[j] > 0 else {}  # noqa: E731
    zfp = lambda j: dict(hdf5plugin.Zfp(accuracy=float(tols[j]))) if tols[j] > 0 else {}  # noqa: E731
    for name, kw_for in [("SZ3 abs, per column", sz3), ("ZFP accuracy, per column", zfp)]:
        path = work / "peer.h5"
        out[name] = measure(table, path, lambda: write_columns(path, table, chunk_rows, kw_for),
                            lambda: read_columns(path), tols, repeat)
    return out


def bench_gzip(table, work, chunk_rows, repeat):
    path = work / "gzip.h5"
    kw = dict(compression="gzip", compression_opts=4, shuffle=True)
    return measure(table, path, lambda: write_table(path, table, chunk_rows, kw), lambda: read_table(path),
                   np.zeros(table.x.shape[1]), repeat)


def bench_unpack(table, src, work, rel, model, env, threads, repeat):
    """Packs the compound source at the same bound/model, times whole `balerfile unpack` runs."""
    arch, out = work / "cli.baler", work / "cli-unpacked.h5"
    cli("pack", src, "-o", arch, "--dataset", "table", "--error", f"rel={rel:g}", "-q",
        *(["--model", model] if model else ["--no-model"]), env=env, threads=threads)

    def unpack():
        out.unlink(missing_ok=True)
        cli("unpack", arch, "-o", out, env=env, threads=threads)
    tu, _ = timed(unpack, repeat)
    with h5py.File(out, "r") as h:
        t = h["table"][()]
    err, ok = table.check(np.stack([t[n] for n in table.names], axis=1), table.tols(rel))
    # The codec drops the latent from a chunk when it costs more than the model saves there;
    # the latent bytes say whether the model stage was used at all.
    latent = json.loads(cli("inspect", arch, "--json", env=env))["latent_bytes"]
    return dict(size=arch.stat().st_size, unpack=min(tu), unpack_first=tu[0], err=err, ok=ok, latent=latent)


# ------------------------------------------------------------------------------- printing


def print_header(args, chunk_note):
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    ver = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.strip() or "version n/a"
    print("# balerfile HDF5 filter benchmark\n")
    print(f"- command: `{' '.join(shlex.quote(a) for a in [sys.executable] + sys.argv)}`")
    print(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"- machine: {cpu}, nproc = {nproc}")
    print(f"- threads: balerfile CLI --threads {args.threads}; h5py filters run on the calling thread, "
          f"ONNX Runtime in the filter BALERFILE_THREADS={os.environ.get('BALERFILE_THREADS', 'unset (1)')}")
    print(f"- balerfile: `{BIN}` ({ver}), plugin `{balerfile_h5.plugin_file()}`")
    print(f"- h5py {h5py.version.version}, HDF5 {h5py.version.hdf5_version}, hdf5plugin {hdf5plugin.version}, "
          f"numpy {np.__version__}; best of {args.repeat} runs; chunks: {chunk_note}\n")


def print_table(table, rows):
    print(f"## {table.label}, raw {table.raw / 1e6:.2f} MB\n")
    print("| method | error level | size % raw | + decoder | write MB/s | read MB/s | max err / range | bound ok |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['method']} | {r['level']} | {100 * r['size'] / table.raw:.2f} | "
              f"{fmt(None if r.get('decoder') is None else 100 * (r['size'] + r['decoder']) / table.raw, '.2f')} | "
              f"{table.raw / r['write'] / 1e6:.1f} | {table.raw / r['read'] / 1e6:.1f} | {r['err']:.4g} | "
              f"{'yes' if r['ok'] else 'NO'} |")
    print()


def print_overhead(table, rows):
    print(f"Plugin overhead, {table.label}: whole-dataset read through h5py vs `balerfile unpack` wall time\n")
    print("| method | error level | filter size % raw | .baler size % raw | h5py read s (best / first) | "
          "unpack s (best / first) | unpack / h5py (best) | .baler latent bytes | .baler bound ok |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        u = r["cli"]
        print(f"| {r['method']} | {r['level']} | {100 * r['size'] / table.raw:.2f} | {100 * u['size'] / table.raw:.2f} | "
              f"{r['read']:.4f} / {r['read_first']:.4f} | {u['unpack']:.3f} / {u['unpack_first']:.3f} | "
              f"{u['unpack'] / r['read']:.1f}x | {u['latent']} | {'yes' if u['ok'] else 'NO'} |")
    print()


# ----------------------------------------------------------------------------------- main


def bench_table(table, work, rels, args, env):
    """All methods on one table; (result rows, overhead rows, notes)."""
    chunk_rows = min(args.chunk_rows or table.rows, table.rows)
    src = work / "source-compound.h5"
    write_cli_source(table, src)
    model, train_s, decoder = train(src, env["BALER_MODEL_PATH"], env)
    notes = [f"{table.label}: model {model[:12]} trained in {train_s:.1f} s (wall time of `balerfile train`), "
             f"decoder.onnx + manifest.json = {decoder} bytes; chunks of {chunk_rows} rows"]
    rows, over = [], []
    g = bench_gzip(table, work, chunk_rows, args.repeat)
    rows.append(dict(g, method="gzip 4 + shuffle", level="lossless"))
    for rel in rels:
        level = f"rel={rel:g}"
        for label, m in [("balerfile filter, no model", None), ("balerfile filter + model", model)]:
            r, how = bench_filter(table, work, rel, chunk_rows, m, args.repeat)
            r.update(method=label, level=level, decoder=decoder if m else None)
            r["cli"] = bench_unpack(table, src, work, rel, m, env, args.threads, args.repeat)
            rows.append(r)
            over.append(r)
            note = f"{table.label}: the filter's error argument was {how}"
            if note not in notes:
                notes.append(note)
        for label, r in bench_peers(table, work, rel, chunk_rows, args.repeat).items():
            rows.append(dict(r, method=label, level=level))
    return rows, over, notes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one error level, rel=1e-3")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench_h5",
                    help="working folder: the files written, and a fresh model store inside it")
    ap.add_argument("--repeat", type=int, default=3, help="runs per write/read/unpack; the best is kept")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="balerfile CLI --threads")
    ap.add_argument("--chunk-rows", type=int, default=0, help="rows per HDF5 chunk, every method (0: the whole table)")
    args = ap.parse_args()
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        sys.exit(f"bench_h5: balerfile binary not found at {BIN} (build it or set BALERFILE)")
    rels = [1e-3] if args.quick else RELS

    args.out.mkdir(parents=True, exist_ok=True)
    # A fresh store, so the models trained here neither mix with nor pick up the user's; the
    # filter (in this process) and the CLI both find it through BALER_MODEL_PATH.
    store = tempfile.mkdtemp(prefix="models-", dir=args.out)
    os.environ["BALER_MODEL_PATH"] = store
    env = dict(os.environ)

    chunk_note = "the whole table in one chunk" if not args.chunk_rows else f"{args.chunk_rows} rows"
    print_header(args, chunk_note)
    t0 = time.perf_counter()
    notes = []
    for table in tables():
        print(f"... {table.label}", file=sys.stderr)
        work = args.out / table.label.split()[0]
        work.mkdir(exist_ok=True)
        rows, over, n = bench_table(table, work, rels, args, env)
        print_table(table, rows)
        print_overhead(table, over)
        notes += n
    for n in notes:
        print(f"- {n}")
    print("- SZ3 and ZFP: one 1-D dataset per column, each with its own column's absolute tolerance "
          "(fairest for codecs that take one tolerance per dataset); gzip and balerfile: one 2-D dataset.")
    print("- h5py read s: best of the reads, and the first read after each write; the filter keeps a model's "
          "decoder loaded for the rest of the process, so only a table's first model-filtered read (its first "
          "error level) includes loading it (ONNX Runtime session).")
    print("- .baler latent bytes 0: the codec found the latent cost more than the model saved and coded every "
          "chunk without it; the filter makes the same choice per chunk (equal filter sizes with and without "
          "the model point to the same).")
    print("- unpack s: wall time of the whole `balerfile unpack ARCHIVE -o OUT.h5` process, nothing subtracted "
          "(process start, ONNX Runtime start, decode, HDF5 write).")
    print(f"- model store: {store}; files in {args.out}; total run time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
