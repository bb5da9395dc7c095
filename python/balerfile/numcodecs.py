"""A numcodecs codec (id "balerfile") for zarr v2 and other numcodecs users: each buffer becomes a
.baler stream. Registered with numcodecs on import and through its entry points.

    import numcodecs, balerfile.numcodecs
    codec = numcodecs.get_codec({"id": "balerfile", "error": "rel=1e-3"})
"""
import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray_like, ndarray_copy
from numcodecs.registry import register_codec

from . import compress, decompress

__all__ = ["Baler"]


class Baler(Codec):
    """error: "rel=E", "abs=E" or "lossless" (default), as `balerfile.compress`; layout: "table",
    "field" or None; level: as `compress`'s (1: fast); fill_value: the value that marks missing
    elements (kept exactly, out of the range a rel bound is taken over). A numcodecs codec does not
    see the array: give it the array's fill_value, which zarr v2 also pads edge chunks with (left
    undeclared, the padding widens those chunks' range). A buffer without a shape (bytes) is coded
    as 1-D bytes."""

    codec_id = "balerfile"

    def __init__(self, error="lossless", layout=None, level=None, fill_value=None):
        if layout not in (None, "table", "field"):
            raise ValueError("balerfile numcodecs codec: layout is 'table', 'field' or None")
        # A bad bound or level fails here, not at the first write.
        compress(np.zeros(1, np.float32), error, level=level, fill_value=fill_value)
        self.error = error
        self.layout = layout
        self.level = level
        self.fill_value = None if fill_value is None else float(fill_value)

    def encode(self, buf):
        arr = buf if isinstance(buf, np.ndarray) else ensure_contiguous_ndarray_like(buf)
        return compress(np.ascontiguousarray(arr), self.error, layout=self.layout, level=self.level, threads=1,
                        fill_value=self.fill_value)

    def decode(self, buf, out=None):
        arr = decompress(bytes(memoryview(buf)), threads=1)
        return arr if out is None else ndarray_copy(arr, out)

    def get_config(self):
        cfg = {"id": self.codec_id, "error": self.error}
        if self.layout is not None:
            cfg["layout"] = self.layout
        if self.level is not None:
            cfg["level"] = self.level
        if self.fill_value is not None:
            cfg["fill_value"] = self.fill_value
        return cfg

    def __repr__(self):
        return f"Baler(error={self.error!r}, layout={self.layout!r}, level={self.level!r}, fill_value={self.fill_value!r})"


register_codec(Baler)
