#!/usr/bin/env python3
"""Benchmark balerfile on real ROOT files against the files as stored, uproot rewrites and SZ3, in one run.

Usage: .venv/bin/python scripts/bench_root.py [--quick] [--round-trips-only] [--out DIR] [--threads N]
       [--zstd-level N] [--lzma-level N]

First table: round trips (ROOT in, ROOT out): each TTree test file, and the same data written by
uproot as RNTuples (uproot 5.7's default), packed at rel=1e-3 and losslessly, unpacked with
unpack's defaults (a TTree comes back as a TTree, an RNTuple as an RNTuple, ZSTD 505): the
sizes of the input, the archive and the output, and whether uproot reads the output back within
the bound.

Files (skhep_testdata): uproot-HZZ.root (1 tree, jagged C-array branches with counters),
uproot-Zmumu.root (1 flat tree, one text branch), uproot-issue63.root (3 flat trees, text
branches in one). Every TTree of a file is benchmarked. The "as stored" table also lists the
other compressions of HZZ (uproot-HZZ-zlib, -lz4, -lzma, -zstd, -uncompressed).

Data: the numeric branches of every TTree as uproot reads them (flat numeric branches, and
jagged branches of numbers: C arrays with a counter, std::vector); text branches are left out
of every method, so all of them hold the same data. "raw" = the bytes of those values (a
jagged branch: its flattened values; counters are numeric branches and count once; no offsets,
no ROOT metadata); it is the denominator of every % figure.

For every error level f in 1e-2, 1e-3, 1e-4 (--quick: 1e-3 only) a float branch's tolerance is
f x (max - min) of its finite values over the whole tree (a jagged branch: over all objects'
values), which is what balerfile's rel=f means. Integer and bool branches and all counts are
lossless in every method. Methods:
  * as stored: the ROOT file's size on disk (text branches and all ROOT metadata included);
  * uproot ZSTD / LZMA (lossless): the numeric branches written back by uproot.recreate with
    uproot.ZSTD(--zstd-level) / uproot.LZMA(--lzma-level), in one extend() call per tree (one
    basket per branch); jagged branches as awkward arrays, grouped by their counter so the
    counter is written once under its own name;
  * SZ3: one 1-D HDF5 dataset per branch (a jagged branch's flattened values), written with
    h5py (libver="latest", which keeps per-dataset metadata smaller than the default); float
    branches through hdf5plugin.SZ3(absolute=the branch's tolerance) in one chunk, integer/bool
    branches, float branches of zero range and the counts of std::vector branches with gzip 6 +
    shuffle (lossless);
  * balerfile --no-model and balerfile with a model: `balerfile pack FILE.root --error rel=f`
    with and without --no-model; the model run uses the default (a model trained per table
    of the file, in every pack run, into a fresh BALER_MODEL_PATH under --out), so its pack
    seconds include training; "train s" is the time balerfile prints ("trained model ... in
    X s": from its start to the end of training, reading the input included). "+ decoder" adds
    the decoder bytes of the models the archive references (`inspect --json` decoder_bytes);
    a model the codec found not worth its decoder is not used and costs nothing.
Sizes: "bytes" is the whole file (ROOT file, HDF5 file, .baler archive); "payload" is the
compressed numeric data alone (ROOT: the numeric branches' compressed basket bytes; HDF5: the
datasets' stored chunk bytes), i.e. without file metadata. Times are single wall-clock runs:
balerfile pack and unpack (to .root) as whole subprocesses (process start, ROOT I/O and, with a
model, ONNX Runtime start included); uproot and h5py writes/reads in this process (the read:
every numeric branch/dataset, HDF5 files reopened with the chunk cache off). Every method's
result is read back and checked: floats within their tolerance, integers, bools and counts
exact ("max err / bound" is the worst float branch's max|x'-x| / tolerance; lossless methods
must be exact).
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

import awkward as ak
import h5py
import hdf5plugin
import numpy as np
import skhep_testdata
import uproot

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import BIN, RELS, fmt  # noqa: E402

FILES = [("HZZ", "uproot-HZZ.root"), ("Zmumu", "uproot-Zmumu.root"), ("issue63", "uproot-issue63.root")]
HZZ_VARIANTS = ["uproot-HZZ.root", "uproot-HZZ-zlib.root", "uproot-HZZ-lz4.root", "uproot-HZZ-lzma.root",
                "uproot-HZZ-zstd.root", "uproot-HZZ-uncompressed.root"]
COUNTED = "counted:"  # key prefix of a counter's group of jagged branches in uproot writes


# ----------------------------------------------------------------------------------- inputs


def numeric_kind(branch):
    """'flat', 'jagged' or None (text, objects, fixed-size arrays: not benchmarked)."""
    i = branch.interpretation
    if isinstance(i, uproot.AsDtype) and i.inner_shape == ():
        return "flat"
    if isinstance(i, uproot.AsJagged) and isinstance(i.content, uproot.AsDtype) and i.content.inner_shape == ():
        return "jagged"
    return None


def tree_names(f):
    out = []
    for k, c in f.classnames().items():
        name = k.rsplit(";", 1)[0]
        if c == "TTree" and name not in out:
            out.append(name)
    return out


class Branch:
    def __init__(self, tree, name, arr, kind, counter):
        self.tree, self.name, self.kind, self.counter = tree, name, kind, counter
        self.array = arr  # awkward array as uproot reads it
        if kind == "jagged":
            self.values = ak.to_numpy(ak.flatten(arr))
            self.counts = ak.to_numpy(ak.num(arr)).astype(np.int64)
        else:
            self.values = ak.to_numpy(arr)
            self.counts = None
        self.is_float = self.values.dtype.kind == "f"
        self.range = 0.0
        if self.is_float and self.values.size:
            fin = self.values[np.isfinite(self.values)].astype(np.float64)
            self.range = float(fin.max() - fin.min()) if fin.size else 0.0

    @property
    def key(self):
        return (self.tree, self.name)

    def tol(self, rel):
        return rel * self.range if (self.is_float and rel) else 0.0


class RootData:
    """The numeric branches of every TTree of one ROOT file."""

    def __init__(self, label, path):
        self.label, self.path = label, Path(path)
        self.branches, self.skipped, self.trees = [], [], []
        with uproot.open(self.path) as f:
            for tname in tree_names(f):
                t = f[tname]
                self.trees.append((tname, t.num_entries))
                for b in t.branches:
                    kind = numeric_kind(b)
                    if kind is None:
                        self.skipped.append(f"{tname}:{b.name} ({b.typename})")
                        continue
                    counter = b.count_branch.name if kind == "jagged" and b.count_branch is not None else None
                    self.branches.append(Branch(tname, b.name, b.array(library="ak"), kind, counter))
        self.raw = sum(b.values.nbytes for b in self.branches)

    def describe(self):
        trees = ", ".join(f"{t} ({n} entries)" for t, n in self.trees)
        nj = sum(b.kind == "jagged" for b in self.branches)
        nf = sum(b.is_float for b in self.branches)
        return (f"{self.label} ({self.path.name}): {len(self.trees)} tree(s): {trees}; {len(self.branches)} numeric "
                f"branches ({nf} float, {nj} jagged), raw {self.raw} bytes")

    def tree_branches(self, tree):
        return [b for b in self.branches if b.tree == tree]


# ----------------------------------------------------------------------------------- checking


def compare(data, backs, rel):
    """backs: {(tree, branch): (values, counts or None)}. Returns (max err / bound, ok, problems)."""
    worst, problems = 0.0, []
    for b in data.branches:
        if b.key not in backs:
            problems.append(f"{b.tree}:{b.name} missing")
            continue
        v, c = backs[b.key]
        if b.counts is not None and (c is None or not np.array_equal(np.asarray(c, np.int64), b.counts)):
            problems.append(f"{b.tree}:{b.name} counts differ")
            continue
        if v.shape != b.values.shape:
            problems.append(f"{b.tree}:{b.name} shape {v.shape} != {b.values.shape}")
            continue
        if not b.is_float:
            if not np.array_equal(v, b.values):
                problems.append(f"{b.tree}:{b.name} integer/bool values differ")
            continue
        a, x = b.values.astype(np.float64), np.asarray(v, dtype=np.float64)
        d = np.where(np.isnan(a) & np.isnan(x), 0.0, np.abs(x - a))
        d = np.where(np.isnan(d), np.inf, d)
        m = float(d.max()) if d.size else 0.0
        t = b.tol(rel)
        if t > 0:
            worst = max(worst, m / t)
        if m > t:
            problems.append(f"{b.tree}:{b.name} max err {m:.4g} > bound {t:.4g}")
            if t == 0:
                worst = float("inf")
    return worst, not problems, problems


def read_root(path, data):
    backs = {}
    with uproot.open(path) as f:
        for tname, _ in data.trees:
            if tname not in f:
                continue
            t = f[tname]
            names = [b.name for b in data.tree_branches(tname) if b.name in t]
            arrs = t.arrays(names, library="ak") if names else {}
            for n in names:
                a = arrs[n]
                if a.ndim > 1:
                    backs[(tname, n)] = (ak.to_numpy(ak.flatten(a)), ak.to_numpy(ak.num(a)))
                else:
                    backs[(tname, n)] = (ak.to_numpy(a), None)
    return backs


def root_payload(path, data):
    """Compressed basket bytes of the benchmarked branches (and uproot's generated counters)."""
    total = 0
    with uproot.open(path) as f:
        for tname, _ in data.trees:
            if tname in f:
                total += sum(b.compressed_bytes for b in f[tname].branches if numeric_kind(b))
    return total


# ----------------------------------------------------------------------------------- methods


def result(method, level, size, err, ok, problems, payload=None, pack=None, unpack=None, decoder=None,
           train=None, models=None):
    return dict(method=method, level=level, size=size, payload=payload, pack=pack, unpack=unpack,
                decoder=decoder, train=train, models=models, err=err, ok=ok, problems=problems)


def as_stored(data):
    backs = read_root(data.path, data)
    err, ok, probs = compare(data, backs, 0.0)
    comp = compression_of(data.path)
    return result(f"as stored ({comp})", "lossless", data.path.stat().st_size, err, ok, probs,
                  payload=root_payload(data.path, data))


def compression_of(path):
    """The file's ROOT compression setting (fCompress = 100 x algorithm + level)."""
    with uproot.open(path) as f:
        code = int(f.file.fCompress)
    alg, level = divmod(code, 100)
    if level == 0:
        return f"uncompressed, fCompress {code}"
    name = {0: "ZLIB", 1: "ZLIB", 2: "LZMA", 3: "old ROOT", 4: "LZ4", 5: "ZSTD"}.get(alg, f"algorithm {alg}")
    return f"{name} {level}, fCompress {code}"


def uproot_rewrite(data, work, label, compression):
    path = work / f"rewrite-{label.split()[0].lower()}.root"

    def write():
        with uproot.recreate(path, compression=compression) as f:
            for tname, _ in data.trees:
                bs = data.tree_branches(tname)
                counters = {b.counter for b in bs if b.counter}
                cols = {}
                groups = {}
                for b in bs:
                    if b.counter:
                        groups.setdefault(b.counter, {})[b.name] = b.array
                    elif b.name not in counters:
                        cols[b.name] = b.array  # flat, or std::vector (uproot adds an "n" counter)
                for c, g in groups.items():
                    cols[COUNTED + c] = ak.zip(g)
                f.mktree(tname, {k: v.type for k, v in cols.items()},
                         counter_name=lambda k: k[len(COUNTED):] if k.startswith(COUNTED) else "n" + k,
                         field_name=lambda outer, inner: inner)
                f[tname].extend(cols)
    t = time.perf_counter()
    write()
    tw = time.perf_counter() - t
    t = time.perf_counter()
    backs = read_root(path, data)
    tr = time.perf_counter() - t
    err, ok, probs = compare(data, backs, 0.0)
    return result(f"uproot {label}", "lossless", path.stat().st_size, err, ok, probs,
                  payload=root_payload(path, data), pack=tw, unpack=tr)


def h5name(b):
    return f"{b.tree}/{b.name}".replace(" ", "_")


def sz3(data, work, rel):
    path = work / "sz3.h5"
    gz = dict(compression="gzip", compression_opts=6, shuffle=True)

    def kw(values, tol):
        if values.size == 0:
            return {}
        kws = dict(hdf5plugin.SZ3(absolute=tol)) if tol > 0 else dict(gz)
        return dict(kws, chunks=values.shape)

    def write():
        with h5py.File(path, "w", libver="latest") as h:
            for b in data.branches:
                h.create_dataset(h5name(b), data=b.values, **kw(b.values, b.tol(rel)))
                if b.counts is not None and not b.counter:  # std::vector: its counts, lossless
                    c = b.counts.astype(np.int32)
                    h.create_dataset(h5name(b) + ".counts", data=c, **kw(c, 0.0))

    def read():
        backs = {}
        with h5py.File(path, "r", rdcc_nbytes=0) as h:
            vals = {b.key: h[h5name(b)][()] for b in data.branches}
            counts = {b.key: h[h5name(b) + ".counts"][()] for b in data.branches if b.counts is not None and not b.counter}
            payload = 0
            def add(name, obj):
                nonlocal payload
                if isinstance(obj, h5py.Dataset):
                    payload += obj.id.get_storage_size()
            h.visititems(add)
        by_name = {(b.tree, b.name): b for b in data.branches}
        for k, v in vals.items():
            b = by_name[k]
            if b.counts is None:
                backs[k] = (v, None)
            elif b.counter:  # the counts are the counter branch's (lossless) values
                backs[k] = (v, vals[(b.tree, b.counter)])
            else:
                backs[k] = (v, counts[k])
        return backs, payload
    t = time.perf_counter()
    write()
    tw = time.perf_counter() - t
    t = time.perf_counter()
    backs, payload = read()
    tr = time.perf_counter() - t
    err, ok, probs = compare(data, backs, rel)
    return result("SZ3 abs, per branch (HDF5)", f"rel={rel:g}", path.stat().st_size, err, ok, probs,
                  payload=payload, pack=tw, unpack=tr)


def cli(args, env):
    t = time.perf_counter()
    r = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, env=env)
    secs = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"balerfile {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr.strip()}")
    return secs, r.stdout, r.stderr


def balerfile(data, work, rel, model, env, threads):
    tag = "model" if model else "nomodel"
    arch, out = work / f"{tag}-{rel:g}.baler", work / f"{tag}-{rel:g}.root"
    out.unlink(missing_ok=True)
    margs = [] if model else ["--no-model"]
    tp, so, se = cli(["pack", data.path, "-o", arch, "--error", f"rel={rel:g}", "--threads", threads, "-q", *margs], env)
    trained = re.findall(r"trained model ([0-9a-f]{64}) in ([0-9.]+) s", so)
    tu, _, _ = cli(["unpack", arch, "-o", out, "--threads", threads], env)
    info = json.loads(cli(["inspect", arch, "--json"], env)[1])
    backs = read_root(out, data)
    err, ok, probs = compare(data, backs, rel)
    used = len(info["header"].get("models") or [])
    r = result("balerfile + model" if model else "balerfile --no-model", f"rel={rel:g}", arch.stat().st_size,
               err, ok, probs, pack=tp, unpack=tu, decoder=info["decoder_bytes"] if model else None,
               train=max((float(s) for _, s in trained), default=None) if model else None,
               models=f"{len(trained)} / {used}" if model else None)
    r["raw_balerfile"] = info["raw_bytes"]
    r["warnings"] = [l for l in se.splitlines() if "warning" in l]
    return r


# ----------------------------------------------------------------------------------- printing


def print_header(args):
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    ver = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.strip() or "version n/a"
    print("# balerfile ROOT benchmark\n")
    print(f"- command: `{' '.join(shlex.quote(a) for a in [sys.executable] + sys.argv)}`")
    print(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"- machine: {cpu}, nproc = {nproc}")
    print(f"- threads: balerfile --threads {args.threads} (0 = all cores); uproot and h5py single-threaded in-process")
    print(f"- balerfile: `{BIN}` ({ver})")
    print(f"- uproot {uproot.__version__}, awkward {ak.__version__}, h5py {h5py.version.version}, "
          f"HDF5 {h5py.version.hdf5_version}, hdf5plugin {hdf5plugin.version}, numpy {np.__version__}, "
          f"skhep_testdata {getattr(skhep_testdata, '__version__', '?')}; one run per measurement\n")


def print_table(data, rows):
    print(f"## {data.describe()}\n")
    print("| method | error level | bytes | % raw | + decoder % raw | payload % raw | pack s | unpack s | "
          "train s | models trained / used | max err / bound | bound ok |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        pct = lambda x: None if x is None else 100.0 * x / data.raw  # noqa: E731
        dec = None if r["decoder"] is None else r["size"] + r["decoder"]
        print(f"| {r['method']} | {r['level']} | {r['size']} | {pct(r['size']):.2f} | {fmt(pct(dec), '.2f')} | "
              f"{fmt(pct(r['payload']), '.2f')} | {fmt(r['pack'], '.3f')} | {fmt(r['unpack'], '.3f')} | "
              f"{fmt(r['train'], '.1f')} | {r['models'] or 'n/a'} | {r['err']:.4g} | {'yes' if r['ok'] else 'NO'} |")
    print()


def print_variants(rows):
    print("## HZZ as stored, every compression of skhep_testdata (the same events)\n")
    print("| file | compression | raw numeric bytes | file bytes | % raw | numeric payload % raw |")
    print("|---|---|---:|---:|---:|---:|")
    for name, comp, raw, size, payload in rows:
        print(f"| {name} | {comp} | {raw} | {size} | {100 * size / raw:.2f} | {100 * payload / raw:.2f} |")
    print()


# ----------------------------------------------------------------------------------- round trips


def rntuple_of(data, path, compression):
    """The file's first tree's numeric branches as the RNTuple uproot 5.7 writes for
    `f[name] = {...}` (its default since 5.7), with this compression."""
    tname = data.trees[0][0]
    with uproot.recreate(path, compression=compression) as f:
        f[tname] = {b.name: b.array for b in data.tree_branches(tname)}
    return tname


def check_rntuple(src, out, name, rel):
    """Every field of src in out as an RNTuple: same type and lengths, floats within rel x range."""
    with uproot.open(src) as a, uproot.open(out) as b:
        if b.classnames().get(f"{name};1") != "ROOT::RNTuple":
            return False
        x, y = a[name].arrays(), b[name].arrays()
        for k in x.fields:
            if k not in y.fields or str(ak.type(x[k])) != str(ak.type(y[k])):
                return False
            fx, fy = ak.to_numpy(ak.flatten(x[k], axis=None)), ak.to_numpy(ak.flatten(y[k], axis=None))
            if x[k].ndim > 1 and not np.array_equal(ak.num(x[k]), ak.num(y[k])):
                return False
            if fx.dtype.kind != "f" or not rel:
                if not np.array_equal(fx, fy):
                    return False
            elif fx.size and np.abs(fx.astype("f8") - fy.astype("f8")).max() > rel * (fx.max() - fx.min()):
                return False
    return True


def round_trips(work, env):
    """ROOT in, ROOT out: every TTree file of skhep_testdata's HZZ (every compression), Zmumu and
    issue63, and the same data as uproot-written RNTuples (zlib, uproot's default, and ZSTD),
    packed at rel=1e-3 and losslessly and unpacked to ROOT with unpack's defaults (ZSTD 505)."""
    print("## Round trips: the ROOT file pack reads, and the one unpack writes back\n")
    print("| input | kind | input bytes | .baler rel=1e-3 | output rel=1e-3 | .baler lossless | output lossless | "
          "output / input (rel=1e-3, lossless) | read back ok |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    inputs = [(n, skhep_testdata.data_path(n), "TTree", None) for n in HZZ_VARIANTS + ["uproot-Zmumu.root", "uproot-issue63.root"]]
    for label, fname in FILES:
        data = RootData(label, skhep_testdata.data_path(fname))
        for cname, comp in (("zlib", uproot.ZLIB(1)), ("zstd", uproot.ZSTD(5))):
            p = work / f"{label}-rntuple-{cname}.root"
            name = rntuple_of(data, p, comp)
            inputs.append((f"{label} RNTuple ({cname}, by uproot)", str(p), "RNTuple", name))
    for label, path, kind, name in inputs:
        row, ok = [], True
        for rel in (1e-3, 0.0):
            arch, out = work / "rt.baler", work / "rt.root"
            out.unlink(missing_ok=True)
            cli(["pack", path, "-o", arch, *(["--error", f"rel={rel:g}"] if rel else []), "-q"], env)
            cli(["unpack", arch, "-o", out, "-q"], env)
            if kind == "RNTuple":
                ok &= check_rntuple(path, out, name, rel)
            else:
                data = RootData(label, path)
                ok &= compare(data, read_root(out, data), rel)[1]
            row += [arch.stat().st_size, out.stat().st_size]
        size = os.path.getsize(path)
        print(f"| {Path(label).name} | {kind} | {size} | {row[0]} | {row[1]} | {row[2]} | {row[3]} | "
              f"{row[1] / size:.2f}, {row[3] / size:.2f} | {'yes' if ok else 'NO'} |")
    print()


# ----------------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one error level, rel=1e-3")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench_root",
                    help="working folder: the files written, and a fresh model store inside it")
    ap.add_argument("--threads", type=int, default=0, help="balerfile --threads (0: all cores)")
    ap.add_argument("--zstd-level", type=int, default=5, help="uproot.ZSTD level of the rewrite")
    ap.add_argument("--lzma-level", type=int, default=8, help="uproot.LZMA level of the rewrite")
    ap.add_argument("--round-trips-only", action="store_true", help="only the ROOT in / ROOT out sizes table")
    args = ap.parse_args()
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        sys.exit(f"bench_root: balerfile binary not found at {BIN} (build it or set BALERFILE)")
    rels = [1e-3] if args.quick else RELS

    args.out.mkdir(parents=True, exist_ok=True)
    store = tempfile.mkdtemp(prefix="models-", dir=args.out)
    env = dict(os.environ, BALER_MODEL_PATH=store)

    print_header(args)
    t0 = time.perf_counter()
    notes = []

    rt = args.out / "round-trips"
    rt.mkdir(exist_ok=True)
    round_trips(rt, env)
    if args.round_trips_only:
        return

    variants = []
    for name in HZZ_VARIANTS:
        d = RootData(name, skhep_testdata.data_path(name))
        variants.append((name, compression_of(d.path), d.raw, d.path.stat().st_size, root_payload(d.path, d)))
    print_variants(variants)

    for label, fname in FILES:
        print(f"... {label}", file=sys.stderr)
        data = RootData(label, skhep_testdata.data_path(fname))
        work = args.out / label
        work.mkdir(exist_ok=True)
        rows = [as_stored(data),
                uproot_rewrite(data, work, f"ZSTD({args.zstd_level})", uproot.ZSTD(args.zstd_level)),
                uproot_rewrite(data, work, f"LZMA({args.lzma_level})", uproot.LZMA(args.lzma_level))]
        for rel in rels:
            rows.append(sz3(data, work, rel))
            rows.append(balerfile(data, work, rel, False, env, args.threads))
            rows.append(balerfile(data, work, rel, True, env, args.threads))
        print_table(data, rows)
        if data.skipped:
            notes.append(f"{label}: left out of every method (not numeric): {', '.join(data.skipped)}")
        braw = {r["raw_balerfile"] for r in rows if "raw_balerfile" in r}
        if braw != {data.raw}:
            notes.append(f"{label}: balerfile's own raw bytes (inspect) {sorted(braw)} != {data.raw} counted here")
        warns = sorted({w for r in rows for w in r.get("warnings", [])})
        if warns:
            notes.append(f"{label}: balerfile pack warned {len(warns)} time(s), e.g. `{warns[0]}`")
        for r in rows:
            if r["problems"]:
                notes.append(f"{label}, {r['method']} {r['level']}: CHECK FAILED: {'; '.join(r['problems'][:5])}"
                             + (f" (+{len(r['problems']) - 5} more)" if len(r["problems"]) > 5 else ""))

    for n in notes:
        print(f"- {n}")
    print("- as stored: the compression is the file's fCompress (100 x algorithm + level; algorithm 0 is ROOT's "
          "default, ZLIB); text branches and ROOT metadata are in its bytes, not in its payload.")
    print("- raw = the numeric branches' values as uproot reads them (jagged: flattened; no offsets, no text "
          "branches); every % is of it. bytes = whole file; payload = numeric compressed data alone (ROOT: the "
          "branches' compressed basket bytes, uproot's generated counters included, and for jagged branches the "
          "per-entry offsets raw does not count, so an uncompressed file exceeds 100 %; HDF5: stored chunk bytes).")
    print(f"- uproot rewrites: uproot.recreate with uproot.ZSTD({args.zstd_level}) and uproot.LZMA({args.lzma_level}), "
          "each tree written in one extend() call (one basket per branch); pack/unpack s = in-process write / "
          "read of every numeric branch. SZ3: h5py in-process write (libver=\"latest\") / read (chunk cache off).")
    print("- balerfile pack/unpack s: wall time of the whole subprocess (unpack writes .root). The model run trains "
          "afresh in every pack (the default), so its pack s includes training; train s is what pack prints "
          "(\"trained model ... in X s\", from process start to the end of training). models trained / used: "
          "models trained by that pack / models the archive references (a model the codec judged not worth its "
          "decoder, or a table too small to train on, is not used); + decoder adds inspect's decoder_bytes.")
    print("- bound ok: every float within rel x (its branch's range over the tree, all objects for jagged), integers, "
          "bools and counts exact, read back with uproot (ROOT outputs) or h5py (SZ3).")
    print(f"- model store: {store}; files in {args.out}; total run time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
