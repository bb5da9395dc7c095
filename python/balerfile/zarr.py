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
and NaN is stored as NaN. A chunk written in parts (`to_zarr(append_dim=...)`
into a partly filled chunk) is decoded and coded again, which can add the bound's error twice:
append in whole chunks.
"""
from __future__ import annotations

import asyncio
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
        # Refuse a bad bound when the array is made, not at its first write.
        compress(np.zeros(1, np.float32), error, fill_value=fill_value)
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

    def _encode_sync(self, chunk_array, chunk_spec):
        arr = np.ascontiguousarray(chunk_array.as_numpy_array())
        fills = [v for v in (self.fill_value, _missing_marker(arr.dtype, chunk_spec.fill_value)) if v is not None]
        blob = compress(arr, self.error, layout=self.layout, level=self.level, threads=1, fill_value=fills or None)
        return chunk_spec.prototype.buffer.from_bytes(blob)

    def _decode_sync(self, chunk_bytes, chunk_spec):
        arr = decompress(chunk_bytes.to_bytes(), threads=1)
        want = chunk_spec.dtype.to_native_dtype()
        if arr.shape != tuple(chunk_spec.shape) or arr.dtype != want:
            raise ValueError(
                f"balerfile.zarr: a chunk decoded as {arr.dtype} {arr.shape}, the array's chunks are {want} {tuple(chunk_spec.shape)}"
            )
        return chunk_spec.prototype.nd_buffer.from_numpy_array(arr)

    # zarr runs codecs in its event loop; the coding itself releases the GIL, so chunks of one
    # array code in parallel threads.
    async def _encode_single(self, chunk_array, chunk_spec):
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes, chunk_spec):
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length, chunk_spec):
        raise NotImplementedError("balerfile streams have no fixed size")
