"""A zarr v3 array->bytes codec: each chunk becomes a .baler stream.

    import zarr, balerfile.zarr
    z = zarr.create_array(store, shape=field.shape, chunks=(24, 145, 192), dtype=field.dtype,
                          serializer=balerfile.zarr.Baler(error="rel=1e-3"), compressors=None)

The codec is registered under the name "balerfile" through zarr's entry points, so any process
with balerfile installed opens the store without importing it (Dask workers included). Each chunk
is coded on its own: `rel` is relative to the chunk's range of valid values, which lies within the
array's, so the bound holds against the whole array's range too. NaN is kept exactly.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration

from . import compress, decompress

__all__ = ["Baler"]


@dataclass(frozen=True)
class Baler(ArrayBytesCodec):
    """error: "rel=E", "abs=E" or "lossless" (default), as `balerfile.compress`.
    layout: "table" or "field" for 2-D chunks (default: pack's rule). level: as `compress`'s (1: fast)."""

    is_fixed_size = False
    error: str = "lossless"
    layout: str | None = None
    level: int | None = None

    def __init__(self, *, error="lossless", layout=None, level=None):
        if not isinstance(error, str):
            raise TypeError("balerfile.zarr.Baler: error must be a string such as 'rel=1e-3'")
        if layout not in (None, "table", "field"):
            raise ValueError("balerfile.zarr.Baler: layout is 'table', 'field' or None")
        # Refuse a bad bound when the array is made, not at its first write.
        compress(np.zeros(1, np.float32), error)
        object.__setattr__(self, "error", error)
        object.__setattr__(self, "layout", layout)
        object.__setattr__(self, "level", None if level is None else int(level))

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
        return {"name": "balerfile", "configuration": cfg}

    def _encode_sync(self, chunk_array, chunk_spec):
        arr = np.ascontiguousarray(chunk_array.as_numpy_array())
        blob = compress(arr, self.error, layout=self.layout, level=self.level, threads=1)
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
