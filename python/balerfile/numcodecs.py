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
    "field" or None; level: as `compress`'s (1: fast). A buffer without a shape (bytes) is coded as 1-D bytes."""

    codec_id = "balerfile"

    def __init__(self, error="lossless", layout=None, level=None):
        compress(np.zeros(1, np.float32), error)  # a bad bound fails here, not at a write
        self.error = error
        self.layout = layout
        self.level = level

    def encode(self, buf):
        arr = buf if isinstance(buf, np.ndarray) else ensure_contiguous_ndarray_like(buf)
        return compress(np.ascontiguousarray(arr), self.error, layout=self.layout, level=self.level, threads=1)

    def decode(self, buf, out=None):
        arr = decompress(bytes(memoryview(buf)), threads=1)
        return arr if out is None else ndarray_copy(arr, out)

    def get_config(self):
        cfg = {"id": self.codec_id, "error": self.error}
        if self.layout is not None:
            cfg["layout"] = self.layout
        if self.level is not None:
            cfg["level"] = self.level
        return cfg

    def __repr__(self):
        return f"Baler(error={self.error!r}, layout={self.layout!r}, level={self.level!r})"


register_codec(Baler)
