"""A zarr v3 array->bytes codec: each chunk becomes a .baler stream.

    import zarr, balerfile.zarr
    z = zarr.create_array(store, shape=field.shape, chunks=(24, 145, 192), dtype=field.dtype,
                          serializer=balerfile.zarr.Baler(error="rel=1e-3"), compressors=None)

The codec is registered under the name "balerfile" through zarr's entry points, so any process
with balerfile installed opens the store without importing it (Dask workers included). Each chunk
is coded on its own: `rel` is relative to the chunk's range of valid values, which lies within the
array's, so the bound holds against the whole array's range too. NaN and the array's fill_value
(what zarr pads edge chunks with) are missing values: kept exactly and left out of the range.
xarray keeps a `_FillValue` encoding in the array's attributes, which a codec does not see: give
the codec the same value (`Baler(error="rel=1e-3", fill_value=-1e34)`), or leave `_FillValue` out
and NaN is stored as NaN. A chunk written in parts (`to_zarr(append_dim=...)` or
`z[k] = step` into a partly filled chunk) is decoded and coded again, and the values written
before are coded again from their decoded values: their errors add up, by up to the bound at
each such write (ten one-step writes into a chunk of ten steps: 3.5x at abs=0.01). The codec
warns (RuntimeWarning) when it sees a chunk it decoded coming back changed in part: write whole
chunks (chunk by 1 the dimension appended a step at a time).
"""
from __future__ import annotations

import asyncio
import collections
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration

from . import compress, decompress

__all__ = ["Baler"]


def _missing_marker(dtype, fill_value):
    """The array's fill_value as a missing-value marker of a float chunk (NaN is missing
    anyway; integers are coded losslessly, so a marker changes nothing for them)."""
    if fill_value is None or not np.issubdtype(dtype, np.floating):
        return None
    v = float(np.asarray(fill_value).astype(np.float64))
    return v if np.isfinite(v) else None


# A sample of each lossy float chunk decoded lately (the filter's `recoding` rule): a chunk coded
# that matches one of them in most of its sample and differs in the rest is a partial rewrite.
_SAMPLES = 32
_DECODED = collections.deque(maxlen=32)
_DECODED_LOCK = threading.Lock()


def _sample(arr):
    flat = arr.reshape(-1)
    if flat.dtype.kind != "f" or flat.size < _SAMPLES:
        return None
    return flat[(np.arange(_SAMPLES) * flat.size) // _SAMPLES].copy()


def _remember(key, arr):
    s = _sample(arr)
    if s is not None:
        with _DECODED_LOCK:
            _DECODED.append((key, s))


def _is_rewrite(key, arr, fills):
    now = _sample(arr)
    if now is None:
        return False
    with _DECODED_LOCK:
        seen = [s for k, s in _DECODED if k == key]
    for s in seen:
        now = now.astype(s.dtype)  # the same values, in the byte order decoded
        # Zeros, NaN and fill values may sit at the same places in any chunk of an array.
        telling = (s != 0) & np.isfinite(s) & ~np.isin(s, np.asarray(fills, dtype=s.dtype))
        kept = int((telling & (s == now)).sum())
        if (s.view(np.uint8) != now.view(np.uint8)).any() and kept >= 4 and 2 * kept >= int(telling.sum()):
            return True
    return False


_REWRITE = ("balerfile.zarr: a chunk decoded earlier is being coded again with part of it changed (a write of part "
            "of a chunk): the values written before are coded again from their decoded values, so their errors add "
            "up, by up to the bound at each such write. Write whole chunks (chunk by 1 the dimension appended a step "
            "at a time).")


@dataclass(frozen=True)
class Baler(ArrayBytesCodec):
    """error: "rel=E", "abs=E" or "lossless" (default), as `balerfile.compress`.
    layout: "table" or "field" for 2-D chunks (default: pack's rule). level: as `compress`'s (1: fast).
    fill_value: a value that marks missing elements besides NaN and the array's fill_value (the
    `_FillValue` xarray writes NaN as)."""

    is_fixed_size = False
    error: str = "lossless"
    layout: str | None = None
    level: int | None = None
    fill_value: float | None = None

    def __init__(self, *, error="lossless", layout=None, level=None, fill_value=None):
        if not isinstance(error, str):
            raise TypeError("balerfile.zarr.Baler: error must be a string such as 'rel=1e-3'")
        if layout not in (None, "table", "field"):
            raise ValueError("balerfile.zarr.Baler: layout is 'table', 'field' or None")
        # Refuse a bad bound or level when the array is made, not at its first write.
        compress(np.zeros(1, np.float32), error, level=level, fill_value=fill_value)
        object.__setattr__(self, "error", error)
        object.__setattr__(self, "layout", layout)
        object.__setattr__(self, "level", None if level is None else int(level))
        object.__setattr__(self, "fill_value", None if fill_value is None else float(fill_value))

    @classmethod
    def from_dict(cls, data):
        _, cfg = parse_named_configuration(data, "balerfile", require_configuration=False)
        return cls(**(cfg or {}))

    def to_dict(self):
        cfg = {"error": self.error}
        if self.layout is not None:
            cfg["layout"] = self.layout
        if self.level is not None:
            cfg["level"] = self.level
        if self.fill_value is not None:
            cfg["fill_value"] = self.fill_value
        return {"name": "balerfile", "configuration": cfg}

    def _key(self, arr):
        return (self.error, self.fill_value, arr.shape, arr.dtype.newbyteorder("=").str)

    def _encode_sync(self, chunk_array, chunk_spec):
        arr = np.ascontiguousarray(chunk_array.as_numpy_array())
        fills = [v for v in (self.fill_value, _missing_marker(arr.dtype, chunk_spec.fill_value)) if v is not None]
        if self.error != "lossless" and _is_rewrite(self._key(arr), arr, fills):
            warnings.warn(_REWRITE, RuntimeWarning, stacklevel=1)
        blob = compress(arr, self.error, layout=self.layout, level=self.level, threads=1, fill_value=fills or None)
        return chunk_spec.prototype.buffer.from_bytes(blob)

    def _decode_sync(self, chunk_bytes, chunk_spec):
        arr = decompress(chunk_bytes.to_bytes(), threads=1)
        want = chunk_spec.dtype.to_native_dtype()
        # zarr v3's data types have no byte order, so a big-endian array's chunks, coded as
        # they were given, come back in the native order: the same values.
        if arr.dtype != want and arr.dtype.newbyteorder("=") == want.newbyteorder("="):
            arr = arr.astype(want)
        if arr.shape != tuple(chunk_spec.shape) or arr.dtype != want:
            raise ValueError(
                f"balerfile.zarr: a chunk decoded as {arr.dtype} {arr.shape}, the array's chunks are {want} {tuple(chunk_spec.shape)}"
            )
        if self.error != "lossless":
            _remember(self._key(arr), arr)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(arr)

    # zarr runs codecs in its event loop; the coding itself releases the GIL, so chunks of one
    # array code in parallel threads.
    async def _encode_single(self, chunk_array, chunk_spec):
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes, chunk_spec):
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length, chunk_spec):
        raise NotImplementedError("balerfile streams have no fixed size")
