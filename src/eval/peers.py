"""balerfile eval --compare: code the same variables with the HDF5 filters SZ3, ZFP and zstd.

Embedded in the balerfile binary (include_str!) and run as `PYTHON -c <this file>`: one
standalone file, needing only numpy, h5py and hdf5plugin.

Protocol. Reads ONE JSON object from stdin:
  {"workdir": "/tmp/dir", "peers": ["sz3", "zfp", "zstd"],
   "variables": [{"key": "d0v1", "npy": "/path/x.npy", "tolerance": 0.0123 | null}]}
Each .npy holds one variable's original values, shape (rows, *row_shape), any numeric dtype.
A null tolerance means the archive stores that variable losslessly.

Writes ONE JSON object to stdout (and nothing else; diagnostics go to stderr):
  {"python": sys.version, "versions": {"h5py": .., "hdf5plugin": .., "numpy": ..},
   "peers": [{"peer": "sz3", "available": true, "why": null,
              "variables": [{"key", "coding", "bytes", "max_abs_error", "bound_held", "seconds"}
                            (+ "error": "message" when that variable could not be coded)]}]}

Coding. sz3 = hdf5plugin.SZ3(absolute=tol), zfp = hdf5plugin.Zfp(accuracy=tol), for f32/f64
variables with a tolerance > 0. Everything else (no tolerance, tolerance 0, integers, bools, f16,
SZ3 on data with NaN or with more than 4 dimensions longer than 1, anything a filter fails on or
takes over "timeout_s" (request, default 300) seconds for) is coded with hdf5plugin.Zstd(clevel=19),
and "coding" says so, so that each peer's total is a whole-file figure like the archive's. The zstd peer codes
everything losslessly at level 19.

Each variable is written to its own HDF5 file in workdir, chunked by
min(rows, max(1, 4194304 // row_elems)) rows (whole rows), read back from a fresh open, and the
file deleted. bytes = dataset.id.get_storage_size() (chunk bytes only, no HDF5 metadata).
seconds = wall time of the write (compression) plus the read back (decompression).
max_abs_error: max |float64(back) - float64(orig)| over the finite originals (0.0 when there are
none; null when it is not finite, i.e. the peer turned a finite value into NaN/inf).
bound_held: with a tolerance, max_abs_error <= tolerance and every non-finite original came back
bit-identical; without one, whether the whole variable came back bit-identical.

The lossy filters run in a forked child process: the SZ3 filter calls exit() (printing to
stdout) on data it cannot take, which would otherwise end this script with no answer. C-level
writes to stdout are sent to stderr for the same reason.
"""
import json
import os
import select
import signal
import sys
import time
import traceback

CHUNK_ELEMS = 4194304
LOSSY_TIMEOUT_S = 300.0  # one variable through a lossy filter; the request may set "timeout_s"
ZSTD_LEVEL = 19
LOSSY = ("sz3", "zfp")
KNOWN = ("sz3", "zfp", "zstd")

_IMPORT_ERROR = None
try:
    import numpy as np
except Exception as e:  # pragma: no cover - reported in the answer
    np = None
    _IMPORT_ERROR = f"numpy: {type(e).__name__}: {e}"
try:
    import h5py
except Exception as e:  # pragma: no cover
    h5py = None
    _IMPORT_ERROR = _IMPORT_ERROR or f"h5py: {type(e).__name__}: {e}"
try:
    import hdf5plugin
except Exception as e:  # pragma: no cover
    hdf5plugin = None
    _IMPORT_ERROR = _IMPORT_ERROR or f"hdf5plugin: {type(e).__name__}: {e}"


def log(msg):
    print(f"peers.py: {msg}", file=sys.stderr, flush=True)


def versions():
    v = {}
    v["h5py"] = getattr(getattr(h5py, "version", None), "version", None) if h5py else None
    v["hdf5plugin"] = getattr(hdf5plugin, "version", None) if hdf5plugin else None
    v["numpy"] = np.__version__ if np else None
    return v


# ---------------------------------------------------------------------------------------------
# Filters


def filter_class(peer):
    return {"sz3": "SZ3", "zfp": "Zfp", "zstd": "Zstd"}[peer]


def peer_unavailable_reason(peer):
    """None when the peer can run, else why not."""
    if peer not in KNOWN:
        return f"unknown peer {peer!r} (known: {', '.join(KNOWN)})"
    if _IMPORT_ERROR:
        return f"cannot import {_IMPORT_ERROR}"
    needed = [peer] if peer == "zstd" else [peer, "zstd"]  # lossy peers fall back to zstd
    for p in needed:
        cls = getattr(hdf5plugin, filter_class(p), None)
        if cls is None:
            return f"hdf5plugin {hdf5plugin.version} has no {filter_class(p)} filter"
        try:
            ok = h5py.h5z.filter_avail(cls.filter_id)
        except Exception as e:
            return f"h5py.h5z.filter_avail({cls.filter_id}) failed: {e}"
        if not ok:
            return (f"HDF5 filter {filter_class(p)} (id {cls.filter_id}) is not available "
                    f"(h5py.h5z.filter_avail is false)")
    return None


def zstd_kwargs():
    return dict(hdf5plugin.Zstd(clevel=ZSTD_LEVEL))


def lossy_kwargs(peer, tol):
    if peer == "sz3":
        return dict(hdf5plugin.SZ3(absolute=float(tol)))
    return dict(hdf5plugin.Zfp(accuracy=float(tol)))


def lossy_refusal(peer, a, tol):
    """Why `peer` is not used on array a (None: use it). Cases known to fail or to be
    meaningless are refused up front; anything else is tried and falls back on failure."""
    if tol is None:
        return "lossless"
    if a.dtype.kind != "f" or a.dtype.itemsize not in (4, 8):
        if a.dtype.kind == "b":
            return "lossless; bool"
        if a.dtype.kind in "iu":
            return "lossless; integer"
        return f"lossless; {peer} takes f32/f64, not {a.dtype.name}"
    if tol == 0.0:
        return "lossless; tolerance 0"
    if a.size == 0:
        return "lossless; empty"
    if peer == "sz3" and np.isnan(a).any():
        # SZ3 spends ~10 s per chunk on a NaN and returns a finite number for it.
        return "lossless; sz3 does not keep NaN"
    if peer == "sz3":
        # SZ3's HDF5 filter counts the chunk's dimensions longer than 1 and exit()s past 4.
        dims = [d for d in chunk_shape(a.shape) if d > 1]
        if len(dims) > 4:
            return f"lossless; sz3 takes at most 4 dimensions longer than 1, chunk has {len(dims)}"
    return None


# ---------------------------------------------------------------------------------------------
# One variable


def chunk_shape(shape):
    rows = shape[0]
    row_elems = 1
    for d in shape[1:]:
        row_elems *= d
    crows = min(rows, max(1, CHUNK_ELEMS // max(1, row_elems)))
    return (max(1, crows),) + tuple(shape[1:])


def native(a):
    """Same values, native byte order, C-contiguous, at least 1-D."""
    if a.ndim == 0:
        a = a.reshape(1)
    if a.dtype.byteorder not in ("=", "|") and a.dtype.byteorder != ("<" if sys.byteorder == "little" else ">"):
        a = a.astype(a.dtype.newbyteorder("="))
    return np.ascontiguousarray(a)


def code_once(a, kwargs, path):
    """Write a with the filter kwargs to path, read it back. -> (back, bytes, seconds)."""
    t0 = time.perf_counter()
    try:
        with h5py.File(path, "w") as h:
            if 0 in a.shape:
                h.create_dataset("v", data=a)
            else:
                h.create_dataset("v", data=a, chunks=chunk_shape(a.shape), **kwargs)
        with h5py.File(path, "r", rdcc_nbytes=0) as h:
            d = h["v"]
            back = d[()]
            nbytes = int(d.id.get_storage_size())
        return back, nbytes, time.perf_counter() - t0
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def measure(a, back, tol):
    """-> (max_abs_error or None if not finite, bound_held)."""
    if back.shape != a.shape or back.dtype != a.dtype:
        raise ValueError(f"read back {back.dtype} {back.shape}, wrote {a.dtype} {a.shape}")
    identical = a.tobytes() == back.tobytes()
    if identical:
        return 0.0, True
    if a.dtype.kind == "f":
        fin = np.isfinite(a)
        nonfinite_same = a[~fin].tobytes() == back[~fin].tobytes()
        x = a[fin].astype(np.float64)
        y = back[fin].astype(np.float64)
    else:
        nonfinite_same = True
        x = a.astype(np.float64).ravel()
        y = back.astype(np.float64).ravel()
    if x.size:
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.abs(y - x)
        if np.isnan(d).any():
            m = float("inf")
        else:
            m = float(d.max())
    else:
        m = 0.0
    if tol is None:
        held = False  # not bit-identical
    else:
        held = bool(nonfinite_same and m <= tol)
    return (m if np.isfinite(m) else None), held


def run_lossy_isolated(a, kwargs, path, tol, timeout):
    """code_once + measure in a forked child, killed after timeout seconds.
    -> (result dict, None) or (None, why)."""
    if not hasattr(os, "fork"):
        try:
            back, nbytes, secs = code_once(a, kwargs, path)
            m, held = measure(a, back, tol)
            return dict(bytes=nbytes, seconds=secs, max_abs_error=m, bound_held=held), None
        except Exception as e:
            return None, f"{type(e).__name__}: {e}"
    r, w = os.pipe()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(r)
            try:
                back, nbytes, secs = code_once(a, kwargs, path)
                m, held = measure(a, back, tol)
                msg = dict(ok=dict(bytes=nbytes, seconds=secs, max_abs_error=m, bound_held=held))
            except Exception as e:
                msg = dict(err=f"{type(e).__name__}: {e}")
            data = json.dumps(msg).encode()
            while data:
                n = os.write(w, data)
                data = data[n:]
            os.close(w)
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + timeout
    timed_out = False
    with os.fdopen(r, "rb", buffering=0) as f:
        while True:
            left = deadline - time.monotonic()
            ready = select.select([f], [], [], max(0.0, left))[0] if left > 0 else []
            if not ready:
                timed_out = True
                os.kill(pid, signal.SIGKILL)
                break
            b = f.read(65536)
            if not b:
                break
            chunks.append(b)
    _, status = os.waitpid(pid, 0)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    if timed_out:
        return None, f"took over {timeout:g} s"
    raw = b"".join(chunks)
    if raw:
        try:
            msg = json.loads(raw)
            if "ok" in msg:
                return msg["ok"], None
            return None, msg["err"]
        except ValueError:
            pass
    if os.WIFSIGNALED(status):
        return None, f"the filter killed the process (signal {os.WTERMSIG(status)})"
    return None, f"the filter ended the process (exit status {os.WEXITSTATUS(status)})"


def code_variable(peer, var, workdir, seq, timeout=LOSSY_TIMEOUT_S):
    key = var.get("key")
    entry = dict(key=key, coding=None, bytes=None, max_abs_error=None, bound_held=None, seconds=None)
    try:
        tol = var.get("tolerance")
        if tol is not None:
            tol = float(tol)
            if not (tol >= 0.0) or tol == float("inf"):
                raise ValueError(f"tolerance {var.get('tolerance')!r} is not a finite number >= 0")
        a = np.load(var["npy"], allow_pickle=False)
        if a.dtype.kind not in "biuf" or a.dtype.names:
            raise ValueError(f"{var['npy']}: dtype {a.dtype} is not a numeric scalar type")
        a = native(a)
        path = os.path.join(workdir, f"peer-{peer}-{os.getpid()}-{seq}.h5")
        zstd_note = None
        if peer in LOSSY:
            why = lossy_refusal(peer, a, tol)
            if why is None:
                res, err = run_lossy_isolated(a, lossy_kwargs(peer, tol), path, tol, timeout)
                if res is not None:
                    entry.update(res)
                    entry["coding"] = f"{peer} abs={tol:.6g}"
                    return entry
                log(f"{peer} on {key}: {err}; falling back to zstd")
                why = f"lossless; {peer} failed: {err}"
            zstd_note = why
        else:
            zstd_note = "lossless"
        back, nbytes, secs = code_once(a, zstd_kwargs(), path)
        m, held = measure(a, back, tol)
        entry.update(bytes=nbytes, seconds=secs, max_abs_error=m, bound_held=held,
                     coding=f"zstd {ZSTD_LEVEL} ({zstd_note})")
    except Exception as e:
        log(f"{peer} on {key}: {traceback.format_exc()}")
        entry["error"] = f"{type(e).__name__}: {e}"
    return entry


# ---------------------------------------------------------------------------------------------


def main():
    # Our answer goes to the real stdout; anything C code prints goes to stderr.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def answer(obj):
        data = (json.dumps(obj, allow_nan=False) + "\n").encode()
        while data:
            n = os.write(out_fd, data)
            data = data[n:]

    try:
        req = json.loads(sys.stdin.read())
        workdir = req["workdir"]
        peers = list(req.get("peers") or [])
        variables = list(req.get("variables") or [])
        timeout = float(req.get("timeout_s") or LOSSY_TIMEOUT_S)
        if not os.path.isdir(workdir):
            raise ValueError(f"workdir {workdir!r} is not a folder")
    except Exception as e:
        log(f"bad request: {type(e).__name__}: {e}")
        return 2

    result = dict(python=sys.version, versions=versions(), peers=[])
    for peer in peers:
        why = peer_unavailable_reason(peer)
        p = dict(peer=peer, available=why is None, why=why, variables=[])
        if why is None:
            t0 = time.perf_counter()
            for i, var in enumerate(variables):
                p["variables"].append(code_variable(peer, var, workdir, i, timeout))
            log(f"{peer}: {len(variables)} variables in {time.perf_counter() - t0:.2f} s")
        result["peers"].append(p)
    answer(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
