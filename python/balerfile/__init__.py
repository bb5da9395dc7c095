"""balerfile: error-bounded compression of scientific arrays and tables, in process.

    import numpy as np, balerfile
    data = balerfile.compress(field, error="rel=1e-3")   # a .baler stream (bytes)
    back = balerfile.decompress(data)                    # every element within its bound

The stream is the same self-describing, checksummed container `balerfile pack` writes: saved to
a file, `balerfile unpack` and `balerfile inspect` read it. Plain and structured arrays, any
byte order. The coding runs in Rust with the GIL released.

Importing the package also registers the HDF5 filter with h5py when h5py is installed (as
hdf5plugin does), so `h5py` reads and writes `balerfile.h5.Baler(...)` datasets with no
HDF5_PLUGIN_PATH; before netCDF4 is imported, it also adds the plugin's folder to
HDF5_PLUGIN_PATH, which netCDF4-python's own HDF5 reads (xarray's default engine).
`balerfile.zarr.Baler` is a zarr v3 codec, `balerfile.numcodecs.Baler` a
numcodecs codec (id "balerfile"); both are registered by entry points, so a fresh process
opens a store written with them without importing anything.
"""
import io as _io
import os as _os
from pathlib import Path as _Path

import numpy as _np

from . import _native
from ._native import BalerfileError

__all__ = ["compress", "decompress", "BalerfileError", "PLUGIN_PATH", "__version__"]
__version__ = _native.__version__

#: The folder holding the HDF5 filter plugin: put it on HDF5_PLUGIN_PATH for C programs,
#: h5dump, h5repack and other processes that do not import balerfile.
PLUGIN_PATH = str(_Path(__file__).resolve().parent / "plugins")


def _error_specs(error):
    """`error` as pack's --error specs: a string ("rel=1e-3", "lossless", "abs=0.5",
    "x:rel=1e-2"), a list of them, or a mapping {variable: spec}; None is lossless."""
    if error is None:
        return []
    if isinstance(error, str):
        return [error]
    if isinstance(error, dict):
        return [f"{k}:{v}" for k, v in error.items()]
    try:
        specs = list(error)
    except TypeError:
        raise TypeError(f"error must be a string, a list of strings or a dict, not {type(error).__name__}") from None
    if not all(isinstance(s, str) for s in specs):
        raise TypeError("error: every spec must be a string such as 'rel=1e-3'")
    return specs


def _fill_specs(fill_value):
    """`fill_value` as pack's --fill-value specs: a number, "none", "x:-999", a list of them,
    or a mapping {variable: value}; None declares nothing (NaN is always missing)."""
    def one(v):
        if isinstance(v, str):
            return v
        try:
            return repr(float(v))
        except (TypeError, ValueError):
            raise TypeError(f"fill_value: {v!r} is not a number, 'none' or 'variable:value'") from None
    if fill_value is None:
        return []
    if isinstance(fill_value, dict):
        return [f"{k}:{one(v)}" for k, v in fill_value.items()]
    if isinstance(fill_value, (list, tuple)):
        return [one(v) for v in fill_value]
    return [one(fill_value)]


def _unmasked(array):
    """A masked array's data with its masked float elements set to NaN, which is always missing
    (kept exactly, outside every range and statistic); integers are coded losslessly, masked
    elements included, so their data goes as it is. A plain array as it is."""
    if not isinstance(array, _np.ma.MaskedArray):
        return array
    if array.dtype.names:
        raise TypeError("compress: a masked structured array; pass array.filled(v) and fill_value=v")
    mask = _np.ma.getmaskarray(array)
    data = _np.ma.getdata(array)
    if not mask.any():
        return data
    if not _np.issubdtype(data.dtype, _np.floating):
        # Integers have no missing value to carry the mask: their data goes as it is, and the
        # mask is not in the stream (said, not dropped unsaid).
        import warnings

        warnings.warn(
            f"compress: the mask of a masked {data.dtype} array is not kept (integers are coded exactly, masked "
            "elements' data included, and have no missing value); keep the mask beside the stream, or pass floats",
            RuntimeWarning,
            stacklevel=3,
        )
        return data
    return _np.where(mask, _np.array(_np.nan, dtype=data.dtype), data)


def _npy_image(array):
    if not isinstance(array, _np.ndarray):
        raise TypeError(f"compress takes a numpy array, not {type(array).__name__}")
    if array.dtype.hasobject:
        raise TypeError(f"compress: dtype {array.dtype} holds Python objects, which cannot be coded")
    # Fortran-ordered and strided arrays are coded in C order, and come back so.
    if not array.flags.c_contiguous:
        array = _np.ascontiguousarray(array)
    buf = _io.BytesIO()
    _np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


def _int_param(name, value, lo, hi):
    """`value` as an int from lo to hi (None passes), or a ValueError that names the parameter."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, _np.integer)):
        raise TypeError(f"{name}={value!r}: an integer")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name}={value}: from {lo}" + (f" to {hi}" if hi is not None else " up"))
    return int(value)


def compress(array, error=None, *, model=None, embed_model=False, layout=None, level=None, threads=0, chunk_bytes=None,
             fill_value=None, verbose=False):
    """Packs `array` into a .baler stream (bytes).

    error: the bound, as `balerfile pack --error`: "rel=1e-3" (of each variable's range of valid
        values; per column of a table), "abs=0.01", "lossless" (the default), or per variable
        ("px:rel=1e-4", or a dict). Integers and booleans are always lossless; NaN and fill
        values are kept exactly. A masked array's masked floats are coded as NaN (missing),
        and come back as NaN (numpy.ma.masked_invalid restores the mask).
    fill_value: the value that marks missing elements, as `pack --fill-value` (a number,
        "x:-999" or {variable: value} for a structured array's fields): kept exactly and left
        out of the range a rel bound is taken over. Default: none (NaN is always missing).
    model: a model from the balerfile model store (id, id prefix or bundle folder, as `pack
        --model`), run through ONNX Runtime (the `onnxruntime` package's library is found
        automatically); the stream references its decoder by content hash, or holds it with
        embed_model=True. Default: the codec alone.
    layout: "table" or "field" for a 2-D float array (default: pack's rule, which reads a narrow
        2-D array as a table of columns, each with its own bound).
    level: zstd's level (1-22) and how hard the encoder searches (default 9, as `pack`'s); 1 codes fast (no
        Lorenzo or zstd trial, the rANS coder unless an estimate says the adaptive one saves:
        faster, slightly larger output); from 10 a one-slice chunk is searched in full.
    threads: coding threads (0: all cores). verbose: print how the array was read.
    """
    layouts = [] if layout is None else [layout] if isinstance(layout, str) else list(layout)
    level = _int_param("level", level, 1, 22)
    threads = _int_param("threads", threads, 0, None)
    chunk_bytes = _int_param("chunk_bytes", chunk_bytes, 1, None)
    if model is not None:
        model = str(model)
    blob, choices = _native.compress(_npy_image(_unmasked(array)), _error_specs(error), layouts, level, threads,
                                     chunk_bytes, model, bool(embed_model), _fill_specs(fill_value))
    if verbose:
        for c in choices:
            print("balerfile: " + c.replace("--layout field", "layout='field'").replace("--layout", "layout="))
    return blob


def decompress(data, *, dataset=None, threads=0):
    """The array a .baler stream (or a .baler file's bytes) holds, as numpy.ndarray."""
    if isinstance(data, (str, _os.PathLike)):
        raise TypeError("decompress takes the stream's bytes; for a file, pass open(path, 'rb').read()")
    if not isinstance(data, bytes):
        try:
            data = bytes(memoryview(data))
        except TypeError:
            raise TypeError(f"decompress takes bytes, not {type(data).__name__}") from None
    npy = _native.decompress(data, int(threads), dataset)
    return _np.lib.format.read_array(_io.BytesIO(npy), allow_pickle=False)


def _register_h5py():
    """Registers the filter with h5py's HDF5 when h5py is installed (hdf5plugin's convention)."""
    try:
        import h5py  # noqa: F401
    except ImportError:
        return
    from . import h5

    try:
        h5.register()
    except RuntimeError as e:  # reading other datasets must still work; say why once
        import warnings

        warnings.warn(str(e), RuntimeWarning, stacklevel=3)


def _offer_to_netcdf():
    """Puts the plugin's folder on HDF5_PLUGIN_PATH for the netCDF library, which reads it when
    netCDF4-python loads its own HDF5 (h5py's registration does not reach that one): without it
    `xr.open_dataset(f)` (engine netcdf4) failed with "undefined filter encountered". Only
    before netCDF4 is imported (it reads the variable once); netCDF4's own plugins folder,
    which it would have set, stays on it, after the user's folders."""
    import importlib.util
    import sys

    from . import h5

    f = h5.plugin_file()
    if f is None or "netCDF4" in sys.modules:
        return
    d = f.parent
    # HDF5 opens every library of a plugin folder when it looks for a filter it does not know:
    # only a folder holding the plugin alone (the wheel's `plugins`) is offered.
    libs = [n for n in _os.listdir(d) if n.endswith((".so", ".dylib", ".dll"))]
    if libs != [f.name]:
        return
    have = [p for p in _os.environ.get("HDF5_PLUGIN_PATH", "").split(_os.pathsep) if p]
    if any(_os.path.realpath(p) == _os.path.realpath(d) for p in have):
        return
    extra = [str(d)]
    if not have:
        spec = importlib.util.find_spec("netCDF4")
        for loc in (spec.submodule_search_locations or []) if spec else []:
            if _os.path.isdir(_os.path.join(loc, "plugins")):
                extra.append(_os.path.join(loc, "plugins"))
    _os.environ["HDF5_PLUGIN_PATH"] = _os.pathsep.join(have + extra)


_register_h5py()
_offer_to_netcdf()
