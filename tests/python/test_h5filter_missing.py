"""The HDF5 filter (id 442) with missing values, layout version 2 and the "auto" layout, with
real clients: h5py through balerfile_h5, xarray's h5netcdf engine, a bare h5py in a new process.

Data: real fields with fill values written by fixtures/make_fields.py (ostia and nemo_tos from
iris-sample-data, fill 1e20 over land; levitus_temp from Debian's ferret-datasets, fill -1e10
over land and below the sea floor, skipped when that package is not unpacked: see
make_fields.py, BALER_DEB_ROOT), and issue63's 9812 x 141 float table.

The promise checked: every fill element comes back bit for bit; every valid element within its
bound, `rel` taken over the valid (not fill) values of each chunk, which lie within the
dataset's valid range, so the check against that range is what a user can rely on.
"""
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from conftest import ROOT
from test_h5filter import PLUGIN_DIR, FILTER_ID, bare_env, column_bound_ok, read_in_new_process, plugin, bh5, float_table  # noqa: F401

# name: (variable, fill value as stored)
FIELDS = {"ostia": ("surface_temperature", 1e20), "nemo_tos": ("tos", 1e20), "levitus_temp": ("TEMP", -1e10)}


@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    out = tmp_path_factory.mktemp("fill-fields")
    only = [a for n in FIELDS for a in ("--only", n)]
    r = subprocess.run([sys.executable, str(ROOT / "fixtures" / "make_fields.py"), str(out), *only],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return out, r.stdout + r.stderr


def load(fields, name):
    out, log = fields
    path = out / f"{name}.h5"
    if not path.exists():
        pytest.skip(f"{name}: its source package is not installed here ({log.strip()[-300:]})")
    var, fill = FIELDS[name]
    with h5py.File(path, "r") as f:
        x = f[var][()]
        assert np.float32(f[var].attrs["_FillValue"]) == np.float32(fill)
    fill = np.float32(fill)
    assert x.dtype == np.float32 and (x == fill).any() and (x != fill).any(), name
    return x, fill


def masked_ok(x, y, fill, abs_tol=None, rel=None):
    """Fill elements bit for bit; valid ones within abs_tol, or rel x the valid range. Returns
    the worst error as a fraction of the bound."""
    assert y.shape == x.shape and y.dtype == x.dtype
    m = x == fill
    assert x[m].tobytes() == y[m].tobytes(), f"{int((x[m] != y[m]).sum())} fill elements changed"
    v64, w64 = x[~m].astype("f8"), y[~m].astype("f8")
    tol = abs_tol if abs_tol is not None else rel * (v64.max() - v64.min())
    err = np.abs(w64 - v64)
    assert err.max() <= tol, f"worst error {err.max()} > bound {tol} ({int((err > tol).sum())} elements)"
    return float(err.max() / tol)


def cd_of(dset):
    """The filter's cd_values as HDF5 stores them, and parsed."""
    import balerfile_h5
    fid, _, cd, _ = dset.id.get_create_plist().get_filter(0)
    assert fid == FILTER_ID
    return cd, balerfile_h5.parse_cd_values(cd)


# --------------------------------------------------------------------------------------------
# Fill values through h5py


@pytest.mark.parametrize("name", list(FIELDS))
@pytest.mark.parametrize("error", ["rel=1e-3", "abs=0.01"])
def test_h5py_fill_values_are_exact_and_out_of_the_bound(bh5, fields, name, error, tmp_path):
    x, fill = load(fields, name)
    out = tmp_path / "f.h5"
    chunks = (1,) + x.shape[1:]
    with h5py.File(out, "w") as f:
        f.create_dataset("v", data=x, chunks=chunks, fillvalue=fill, **bh5.Baler(error=error))
        f.create_dataset("no_fill", data=x, chunks=chunks, **bh5.Baler(error=error))
    with h5py.File(out, "r") as f:
        cd, p = cd_of(f["v"])
        sizes = {k: f[k].id.get_storage_size() for k in ("v", "no_fill")}
        # HDF5's default fill value (0) marks nothing missing.
        assert cd_of(f["no_fill"])[1]["fill"] is None
    assert len(cd) <= 16 and p["version"] == 2, cd
    assert p["fill"] == fill and p["layout"] == "field", p
    y = read_in_new_process(out, "v", tmp_path / "y.npy", bare_env())
    mode, e = error.split("=")
    worst = masked_ok(x, y, fill, **{"abs_tol" if mode == "abs" else "rel": float(e)})
    print(f"{name} {error}: worst error {worst:.3f} of the bound; stored {sizes} of {x.nbytes} raw")
    assert sizes["v"] < 0.5 * x.nbytes, sizes


def test_without_the_fill_value_a_rel_bound_spans_the_fill(bh5, fields, tmp_path):
    """What the fill value buys: without it (HDF5's default fill), 1e20 is a value and the
    chunk's range is ~1e20, so rel=1e-3 allows errors far beyond the valid range's 1e-3."""
    x, fill = load(fields, "ostia")
    out = tmp_path / "f.h5"
    with h5py.File(out, "w") as f:
        f.create_dataset("v", data=x, chunks=(1,) + x.shape[1:], **bh5.Baler(error="rel=1e-3"))
    with h5py.File(out, "r") as f:
        y = f["v"][()]
        size = f["v"].id.get_storage_size()
    m = x == fill
    valid = x[~m].astype("f8")
    worst = np.abs(y[~m].astype("f8") - valid).max() / (1e-3 * (valid.max() - valid.min()))
    print(f"ostia rel=1e-3 without a fill value: worst error {worst:.1f} x (1e-3 x valid range); stored {size} of {x.nbytes}")
    assert worst > 10


def test_a_fill_value_in_cd_values_is_honoured(bh5, fields, tmp_path):
    """A writer may name the fill value itself (balerfile_h5.Baler(fill=...), or cd_values words
    5, 6 and flag bit 20 in C) on a dataset whose HDF5 fill value is the default."""
    x, fill = load(fields, "nemo_tos")
    out = tmp_path / "f.h5"
    with h5py.File(out, "w") as f:
        f.create_dataset("v", data=x, chunks=(1,) + x.shape[1:], **bh5.Baler(error="rel=1e-3", fill=float(fill)))
    with h5py.File(out, "r") as f:
        assert cd_of(f["v"])[1]["fill"] == fill
        y = f["v"][()]
    masked_ok(x, y, fill, rel=1e-3)


# --------------------------------------------------------------------------------------------
# Fill values through xarray (h5netcdf engine)


@pytest.mark.parametrize("name", ["ostia", "levitus_temp"])
def test_xarray_h5netcdf_fill_value_is_the_missing_marker(bh5, fields, name, tmp_path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    x, fill = load(fields, name)
    dims = [f"d{i}" for i in range(x.ndim)]
    # As xarray reads a netCDF file: fill elements masked as NaN; writing puts the fill back.
    da = xr.DataArray(np.where(x == fill, np.float32(np.nan), x), dims=dims, name="v")
    out = tmp_path / "x.nc"
    enc = {"v": {"_FillValue": fill, "chunksizes": (1,) + x.shape[1:], **bh5.Baler(error="rel=1e-3")}}
    da.to_dataset().to_netcdf(out, engine="h5netcdf", encoding=enc)
    with h5py.File(out, "r") as f:
        cd, p = cd_of(f["v"])
        raw = f["v"][()]
        size = f["v"].id.get_storage_size()
    assert len(cd) <= 16 and p["fill"] == fill, p
    masked_ok(x, raw, fill, rel=1e-3)
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        back = ds["v"].values
    assert np.array_equal(np.isnan(back), x == fill)
    valid = x[x != fill].astype("f8")
    assert np.nanmax(np.abs(back.astype("f8") - np.where(x == fill, np.nan, x))) <= 1e-3 * (valid.max() - valid.min())
    print(f"{name} via xarray/h5netcdf rel=1e-3: stored {size} of {x.nbytes}")


# --------------------------------------------------------------------------------------------
# Layout version 1 files


def test_a_version_1_file_still_decodes(bh5, float_table, tmp_path):
    """A file as balerfile wrote them before layout version 2: an 18-word version-1 array in the
    pipeline. (Today's set_local would rewrite it as version 2, so the pipeline is made by an
    h5py that cannot find the plugin, and the chunks, whose format did not change, are copied in
    raw from a file the filter wrote.)"""
    _, x = float_table
    x = x[:3000, :12]
    src = tmp_path / "v2.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("t", data=x, chunks=(1000, 12), **bh5.Baler(error="rel=1e-3", table=True))
    e = np.array([1e-3]).view("<u4")
    v1 = (1, 1, 0, 1, 12, 2, int(e[0]), int(e[1]), 3, 0, *([0] * 8))
    assert len(v1) == 18
    old = tmp_path / "v1.h5"
    code = textwrap.dedent(f"""
        import h5py
        with h5py.File({str(src)!r}, "r") as s, h5py.File({str(old)!r}, "w") as f:
            d = f.create_dataset("t", shape={x.shape!r}, dtype="<f4", chunks=(1000, 12), compression={FILTER_ID},
                                 compression_opts={v1!r}, allow_unknown_filter=True)
            for i in range(3):
                mask, chunk = s["t"].id.read_direct_chunk((i * 1000, 0))
                d.id.write_direct_chunk((i * 1000, 0), chunk, mask)
    """)
    env = {**bare_env(), "HDF5_PLUGIN_PATH": str(tmp_path / "nothing")}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with h5py.File(old, "r") as f:
        assert tuple(f["t"].id.get_create_plist().get_filter(0)[2]) == v1
    y = read_in_new_process(old, "t", tmp_path / "y.npy", bare_env())
    column_bound_ok(x, y, 1e-3)


# --------------------------------------------------------------------------------------------
# Refusals reach h5py's exception


def test_refusals_reach_h5pys_exception_text(bh5, float_table, tmp_path):
    _, x = float_table
    none = (2, 3 << 7) + (0,) * 13   # bound 'none' and no model: refused by the filter itself
    with h5py.File(tmp_path / "r.h5", "w") as f:
        with pytest.raises(Exception, match="balerfile filter: bound 'none' keeps only the model's output"):
            f.create_dataset("none", data=x[:100], chunks=(100, 141), compression=FILTER_ID, compression_opts=none)
        with pytest.raises(Exception, match="balerfile filter: the dataset's type is an integer of 4 bytes"):
            f.create_dataset("ints", data=np.arange(4000, dtype="i4").reshape(1000, 4), chunks=(100, 4),
                             **bh5.Baler(error="abs=1"))
        bad_version = (7,) + (0,) * 14
        with pytest.raises(Exception, match="layout version 7"):
            f.create_dataset("v7", data=x[:100], chunks=(100, 141), compression=FILTER_ID, compression_opts=bad_version)


def test_a_damaged_chunk_raises_in_process_and_says_why(bh5, float_table, tmp_path, capfd):
    """A read-time failure: h5py raises; the reason goes to stderr (HDF5 2.0, h5py's, drops what
    the per-chunk filter pushes onto its error stack; HDF5 1.10 keeps it)."""
    _, x = float_table
    out = tmp_path / "d.h5"
    with h5py.File(out, "w") as f:
        f.create_dataset("t", data=x[:2000], chunks=(1000, 141), **bh5.Baler(error="rel=1e-3", table=True))
        info = f["t"].id.get_chunk_info(1)
    data = bytearray(out.read_bytes())
    data[info.byte_offset + info.size // 2] ^= 0x40
    out.write_bytes(bytes(data))
    with h5py.File(out, "r") as f:
        assert f["t"][:1000].shape == (1000, 141)
        with pytest.raises(OSError, match="filter returned failure during read|balerfile filter: .*checksum"):
            f["t"][1000:]
    assert "balerfile filter: cannot decode a chunk: chunk checksum mismatch" in capfd.readouterr().err


# --------------------------------------------------------------------------------------------
# Layout "auto": pack's table-or-field rule


def test_auto_layout_makes_a_tall_table_a_table_and_an_image_a_field(bh5, float_table, fields, tmp_path):
    _, t = float_table
    img, fill = load(fields, "nemo_tos")
    img = img[0]  # one 330 x 360 month
    out = tmp_path / "auto.h5"
    with h5py.File(out, "w") as f:
        f.create_dataset("rows", data=t, chunks=(4096, 141), **bh5.Baler(error="rel=1e-3"))
        f.create_dataset("h5py_chunks", data=t, **bh5.Baler(error="rel=1e-3"))
        f.create_dataset("image", data=img, chunks=img.shape, fillvalue=fill, **bh5.Baler(error="rel=1e-3"))
        f.create_dataset("image_h5py_chunks", data=img, fillvalue=fill, **bh5.Baler(error="rel=1e-3"))
        got = {k: (f[k].chunks, cd_of(f[k])) for k in f}
    for k, (chunks, (cd, p)) in got.items():
        assert len(cd) <= 16 and p["version"] == 2, (k, cd)
    assert got["rows"][1][1]["layout"] == "table" and got["rows"][1][1]["features"] == 141, got["rows"]
    assert got["h5py_chunks"][1][1]["layout"] == "table", got["h5py_chunks"]
    assert got["image"][1][1]["layout"] == "field" and got["image_h5py_chunks"][1][1]["layout"] == "field", got
    for k in ("rows", "h5py_chunks"):
        column_bound_ok(t, read_in_new_process(out, k, tmp_path / f"{k}.npy", bare_env()), 1e-3)
    for k in ("image", "image_h5py_chunks"):
        masked_ok(img, read_in_new_process(out, k, tmp_path / f"{k}.npy", bare_env()), fill, rel=1e-3)
