"""Write and read balerfile-compressed HDF5 datasets from h5py.

    import h5py, balerfile
    with h5py.File("out.h5", "w") as f:
        f.create_dataset("jets", data=table, chunks=(4096, table.shape[1]),
                         **balerfile.h5.Baler(error="rel=1e-3", model="3f2a9c01"))

Importing balerfile registers the filter plugin (``libh5z_baler*.so``, shipped in the package's
``plugins`` folder) with h5py's own copy of HDF5, so neither writing nor reading in this process
needs HDF5_PLUGIN_PATH. Other programs (C, h5dump, h5py without balerfile imported) find the
plugin through HDF5_PLUGIN_PATH=``balerfile.PLUGIN_PATH``.

The plugin is looked for in: $BALERFILE_H5_PLUGIN (the file, or its folder), the package's
``plugins`` folder, the folders of HDF5_PLUGIN_PATH, beside the ``balerfile`` program on PATH,
and the ``target/release`` folder of a balerfile checkout.
"""
import ctypes
import json
import numbers
import os
import re
import shutil
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["Baler", "FILTER_ID", "plugin_dir", "plugin_file", "register", "find_model", "parse_cd_values"]

#: The filter id in HDF5 (from HDF Group's range for filters not yet registered, 256-511).
FILTER_ID = 442
#: The cd_values layout this helper writes (schemas/h5-filter.md); the filter reads 1 and 2.
LAYOUT_VERSION = 2
LAYOUTS = {"field": 0, "table": 1, "wedge": 2, "auto": 3}
PLUGIN_NAME = "libh5z_baler.so"

_registered = None


def _candidates():
    env = os.environ.get("BALERFILE_H5_PLUGIN")
    if env:
        p = Path(env)
        yield p / PLUGIN_NAME if p.is_dir() else p
    # The copy built into the wheel; its name carries Python's extension suffix.
    yield from sorted((Path(__file__).resolve().parent / "plugins").glob("libh5z_baler*.so"))
    for d in os.environ.get("HDF5_PLUGIN_PATH", "").split(os.pathsep):
        if d:
            yield Path(d) / PLUGIN_NAME
    exe = shutil.which(os.environ.get("BALERFILE", "balerfile"))
    if exe:
        for e in (Path(exe), Path(exe).resolve()):
            yield e.parent / PLUGIN_NAME
    for parent in Path(__file__).resolve().parents:
        yield parent / "target" / "release" / PLUGIN_NAME


def plugin_file():
    """The filter plugin's path, or None when it cannot be found."""
    for c in _candidates():
        if c.is_file():
            return c
    return None


def plugin_dir():
    """The folder to put on HDF5_PLUGIN_PATH for other programs, or None."""
    f = plugin_file()
    return None if f is None else f.parent


def register():
    """Registers the filter with h5py's HDF5 (done on import; safe to call again).

    Returns the plugin's path. Raises RuntimeError naming where it looked when it is not found.
    """
    global _registered
    if _registered is not None:
        return _registered
    import h5py

    f = plugin_file()
    if f is None:
        looked = ", ".join(str(c) for c in _candidates())
        raise RuntimeError(
            f"balerfile: the filter plugin {PLUGIN_NAME} was not found (looked in: {looked}); "
            "build it with `cargo build --release -p h5z-baler` and set BALERFILE_H5_PLUGIN to it"
        )
    # Later files opened by h5py in this process also find it by path.
    h5py.h5pl.prepend(str(f.parent).encode())
    lib = ctypes.CDLL(str(f))
    lib.init_filter.argtypes = [ctypes.c_char_p]
    lib.init_filter.restype = ctypes.c_int
    # hdf5plugin's convention: the plugin calls into (and registers with) the HDF5 that h5py's
    # extension modules link, which is h5py's private copy.
    if lib.init_filter(h5py.h5z.__file__.encode()) < 0:
        raise RuntimeError(f"balerfile: {f} could not register with h5py's HDF5 (see the message above)")
    _registered = f
    return f


def _store_dirs():
    env = os.environ.get("BALER_MODEL_PATH", "")
    dirs = [Path(d) for d in env.split(os.pathsep) if d]
    if dirs:
        return dirs
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return [Path(data) / "balerfile" / "models"]


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def find_model(model):
    """The full id of a model: a full id, a unique prefix of 8+ hex digits in the model store,
    or a bundle folder from the store."""
    m = str(model)
    p = Path(m)
    if p.is_dir() and _HEX64.match(p.name) and (p / "manifest.json").is_file():
        return p.name
    if _HEX64.match(m):
        return m
    if not re.match(r"^[0-9a-f]{8,64}$", m):
        raise ValueError(f"model {m!r}: give a model id (or a prefix of 8+ hex digits) or a bundle folder")
    found = sorted({d.name for s in _store_dirs() if s.is_dir() for d in s.iterdir()
                    if d.name.startswith(m) and _HEX64.match(d.name) and (d / "manifest.json").is_file()})
    if len(found) == 1:
        return found[0]
    where = ", ".join(str(s) for s in _store_dirs())
    if not found:
        raise ValueError(f"model {m!r} not found in the model store ({where}); set BALER_MODEL_PATH")
    raise ValueError(f"model prefix {m!r} is ambiguous in {where}: {', '.join(x[:12] for x in found)}")


def model_kind(model_id):
    """'dense', 'bcae2d' or 'conv', from the model's manifest in the store (None when not found there)."""
    for s in _store_dirs():
        m = s / model_id / "manifest.json"
        if m.is_file():
            return json.loads(m.read_text()).get("kind")
    return None


def _f64_words(v):
    return list(struct.unpack("<II", struct.pack("<d", float(v))))


def _f64_of(lo, hi):
    return struct.unpack("<d", struct.pack("<II", lo, hi))[0]


# Version 2's word 1: (first bit, bit count) of each field.
_BITS = {"dtype": (0, 4), "big_endian": (4, 1), "layout": (5, 2), "bound": (7, 2), "latent": (9, 5),
         "level": (14, 6), "has_fill": (20, 1), "piece": (21, 5)}


def _pack_flags(**fields):
    w = 0
    for k, v in fields.items():
        at, n = _BITS[k]
        w |= (int(v) & ((1 << n) - 1)) << at
    return w


def parse_cd_values(cd):
    """A filter's cd_values (either layout version) as a dict: version, dtype code, big_endian,
    layout ('field', 'table', 'wedge', 'auto'), features, bound ('lossless', 'abs', 'rel',
    'none'), value, level, latent, model (hex id or None), fill (None when absent), piece_size
    (bytes; None: the default)."""
    cd = [int(x) for x in cd] + [0] * 18
    names = {v: k for k, v in LAYOUTS.items()}
    bounds = ["lossless", "abs", "rel", "none"]
    if cd[0] == 1:
        d = dict(version=1, dtype=cd[1], big_endian=bool(cd[2]), layout=names[cd[3]], features=cd[4],
                 bound=bounds[cd[5]], value=_f64_of(cd[6], cd[7]), level=cd[8], latent=cd[9], model=cd[10:18],
                 fill=None, piece_size=None)
    elif cd[0] == 2:
        f = {k: (cd[1] >> at) & ((1 << n) - 1) for k, (at, n) in _BITS.items()}
        level = f["level"] - 64 if f["level"] >= 32 else f["level"]
        d = dict(version=2, dtype=f["dtype"], big_endian=bool(f["big_endian"]), layout=names[f["layout"]],
                 features=cd[2], bound=bounds[f["bound"]], value=_f64_of(cd[3], cd[4]), level=level,
                 latent=f["latent"], model=cd[7:15], fill=_f64_of(cd[5], cd[6]) if f["has_fill"] else None,
                 piece_size=1 << f["piece"] if f["piece"] else None)
    else:
        raise ValueError(f"cd_values of layout version {cd[0]} (this helper reads 1 and 2)")
    m = struct.pack("<8I", *d["model"])
    d["model"] = m.hex() if any(m) else None
    return d


def _parse_error(error):
    """(mode, value) from 'rel=E', 'abs=E', 'lossless' or 'none'."""
    if error is None or error == "lossless":
        return 0, 0.0
    if error == "none":
        return 3, 0.0
    mode, sep, value = str(error).partition("=")
    try:
        v = float(value)
    except ValueError:
        v = float("nan")
    if not sep or mode.strip() not in ("rel", "abs") or not (v > 0 and v != float("inf")):
        raise ValueError(f"error={error!r}: use 'rel=E', 'abs=E' (E > 0), 'lossless' or 'none'")
    if mode.strip() == "rel" and v >= 1:
        raise ValueError(f"error={error!r} allows an error of {v * 100:g}% of the value range, which keeps nothing; "
                         f"use rel < 1 (rel=1e-3 is 0.1%), or abs={value.strip()} for an absolute bound")
    return (2 if mode.strip() == "rel" else 1), v


class Baler(Mapping):
    """The balerfile filter's arguments for h5py's create_dataset (the hdf5plugin convention).

    error:  'rel=1e-3' (E times the value range within each chunk, of each column in a
            table; a chunk's range lies within the dataset's, so the bound holds against the
            dataset's range too), 'abs=0.01', 'lossless' (default), or 'none' (the model's
            output, no bound).
    model:  a model id, id prefix or bundle folder from the balerfile model store: a dense model
            (`balerfile train`) implies table=True; a bcae2d model (`balerfile train --kind
            bcae2d`) codes wedges (chunks of whole wedges, e.g. chunks=(1, 16, 192, 249)), and
            its bound is in whole ADC counts ('lossless', 'abs=8', 'none'); a conv model
            (`balerfile train --kind conv`) codes whole rows of a field (chunks=(k,) +
            shape[1:]).
    table:  rows x features (each column coded on its own, chunks must hold whole rows), or
            False: a field (the chunk as one sequence, one bound). Default: True with a dense
            model; without a model "auto", the table-or-field rule of `balerfile pack`
            (2-D, 2..1024 columns, at least 8 rows per column: a table) applied by the filter
            to the chunk's shape, the only shape HDF5 shows it (h5py's automatic chunks keep
            the dataset's proportions; a table chunked in whole rows needs >= 8 rows per column
            per chunk to read as one, or table=True).
    fill:   a value that marks missing elements (stored exactly, left out of every range and
            prediction). Default: the dataset's fill value when its writer set one
            (create_dataset(..., fillvalue=x), netCDF _FillValue); NaN is always missing.
    level:  compression level, zstd's (default 3), and how hard the encoder searches. A chunk
            of one 2-D slice (up to 512 Ki elements) takes the interpolation walk an estimate
            on an eighth of it chooses below level 10, and is searched in full from 10 (0.2 %
            smaller in all on the benchmark's fields, at a third of the write speed). 1 (and
            below, 0 excepted) codes fast: no Lorenzo or zstd trial, the rANS coder (the
            adaptive one only where an estimate says it saves); on larger chunks up to a few
            % larger than the default. Below 10 a walk's block of 64 Ki symbols or more keeps
            the adaptive coder only where it saves 15 % (6 % from 10): such a chunk then reads
            faster (the NCEP winds at 1e-2: 9.9 % larger, read 1.2x as fast).
    latent: 'f16' (default) or a bit count 2..16.
    piece_size: bytes (a power of two, 64 KiB to 1 GiB; default 4 MiB). A table chunk, or a
            field chunk of 3 or more dimensions, at least twice this size is cut along its
            first dimension into pieces of about it (a field's in whole planes of its last two
            dimensions), coded and decoded in parallel (BALERFILE_THREADS threads, default:
            every core), since HDF5 hands the filter one chunk at a time. Smaller pieces read a
            large chunk faster on many cores and cost some ratio (each piece starts its
            predictors afresh). Chunks coded with a model are not cut.
    """

    def __init__(self, error="lossless", model=None, table=None, level=3, latent="f16", fill=None, piece_size=None):
        if isinstance(table, np.bool_):
            table = bool(table)
        if not (table is None or table is True or table is False or table == "auto"):
            raise ValueError(f"table={table!r}: True, False or 'auto'")
        mode, value = _parse_error(error)
        model_id = find_model(model) if model is not None else None
        # bcae2d and conv models take whole rows of the dataset (the row layout).
        wedge = model_id is not None and model_kind(model_id) in ("bcae2d", "conv")
        if table is None and model_id is None:
            table = "auto"
        elif table is None:
            table = not wedge
        if model_id and not table and not wedge:
            raise ValueError("a dense model codes tables: table=True")
        if mode == 3 and model_id is None:
            raise ValueError("error='none' keeps only the model's output: name a model")
        if isinstance(level, bool) or not isinstance(level, numbers.Integral):
            raise TypeError(f"level={level!r}: an integer from -7 to 22")
        if not (-7 <= int(level) <= 22):
            raise ValueError("level: a zstd level from -7 to 22")
        if latent == "f16":
            bits = 0
        elif isinstance(latent, int) and 2 <= latent <= 16:
            bits = latent
        else:
            raise ValueError("latent: 'f16' or a bit count from 2 to 16")
        if fill is not None:
            try:
                fill = float(fill)
            except (TypeError, ValueError):
                raise ValueError(f"fill={fill!r}: a number (the value that marks missing elements)") from None
        piece = 0
        if piece_size is not None:
            ok = isinstance(piece_size, int) and not isinstance(piece_size, bool) and piece_size > 0
            piece = piece_size.bit_length() - 1 if ok else 0
            if not ok or piece_size != 1 << piece or not 16 <= piece <= 30:
                raise ValueError(f"piece_size={piece_size!r}: a power of two from 65536 (64 KiB) to 2**30 (1 GiB)")
        layout = LAYOUTS["wedge" if wedge else "auto" if table == "auto" else "table" if table else "field"]
        flags = _pack_flags(layout=layout, bound=mode, latent=bits, level=int(level), has_fill=fill is not None,
                            piece=piece)
        words = [0] * 8
        if model_id:
            words = list(struct.unpack("<8I", bytes.fromhex(model_id)))
        # dtype, byte order and features: 0, filled in by the filter's set_local.
        cd = [LAYOUT_VERSION, flags, 0, *_f64_words(value), *_f64_words(0.0 if fill is None else fill), *words]
        self.model = model_id
        self._kw = {"compression": FILTER_ID, "compression_opts": tuple(cd)}

    @property
    def filter_id(self):
        return FILTER_ID

    @property
    def filter_options(self):
        return self._kw["compression_opts"]

    def __getitem__(self, k):
        return self._kw[k]

    def __iter__(self):
        return iter(self._kw)

    def __len__(self):
        return len(self._kw)

    def __repr__(self):
        return f"Baler(compression={FILTER_ID}, compression_opts={self.filter_options})"
