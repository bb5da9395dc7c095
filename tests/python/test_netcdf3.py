"""netCDF-3 inputs (classic CDF-1, 64-bit offset CDF-2, 64-bit data CDF-5) packed directly.

Real files: iris-sample-data's space_weather.nc (classic; two dimensions of the same length,
which only real dimension links tell apart) and mesh_C4_synthetic_float.nc (64-bit offset; a
UGRID mesh with integer connectivity), and HadCM3's A1B field rewritten by the netCDF library
in all three variants with `time` as the record dimension (fixtures/make_netcdf3.py), one of
them with a single short record variable (records without padding).

Checked against the netCDF C library (netCDF4-python) reading the original, and h5py, the
netCDF library and xarray (engines netcdf4 and h5netcdf) reading the unpacked netCDF-4 file:
  * lossless: every numeric variable byte-exact with its dtype (big-endian, as netCDF-3 stores
    it), every attribute kept; char variables come back as netCDF-4 chars;
  * rel=1e-3: every element within 1e-3 x its variable's range; coordinates stay exact;
  * xarray opens the unpacked file like the original: same variables, dimensions, coordinates,
    attributes and values;
  * a file cut short or with a corrupt header: one error line naming it, no output.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

netCDF4 = pytest.importorskip("netCDF4")
xr = pytest.importorskip("xarray")

from conftest import FIXTURE_DATA, ROOT, THREADS, _iris_sample  # noqa: E402
from test_errors import assert_fails  # noqa: E402

FIXTURE_SCRIPT = ROOT / "fixtures" / "make_netcdf3.py"
MADE = ["a1b_cdf1.nc", "a1b_cdf2.nc", "a1b_cdf5.nc", "a1b_short_cdf1.nc"]
SAMPLES = ["space_weather.nc", "mesh_C4_synthetic_float.nc"]


@pytest.fixture(scope="session")
def made():
    out = FIXTURE_DATA / "netcdf3"
    paths = [out / n for n in MADE]
    if any(not p.is_file() or p.stat().st_mtime < FIXTURE_SCRIPT.stat().st_mtime for p in paths):
        r = subprocess.run([sys.executable, str(FIXTURE_SCRIPT), str(out)], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            pytest.fail(f"fixture script failed:\n{r.stdout}\n{r.stderr}", pytrace=False)
    return {p.name: p for p in paths}


@pytest.fixture(scope="session", params=SAMPLES + MADE)
def nc3(request, made):
    name = request.param
    p = made[name] if name in made else _iris_sample(name)
    assert p.read_bytes()[:3] == b"CDF"
    return p


def originals(path):
    """{name: (raw array, attrs, dims)} of every variable, as the netCDF library reads it."""
    with netCDF4.Dataset(path) as d:
        d.set_auto_maskandscale(False)
        return {n: (v[...], {a: v.getncattr(a) for a in v.ncattrs()}, v.dimensions, v.dtype) for n, v in d.variables.items()}


def global_attrs(path):
    with netCDF4.Dataset(path) as d:
        return {a: d.getncattr(a) for a in d.ncattrs()}


def char_vars(path):
    with netCDF4.Dataset(path) as d:
        return sorted(n for n, v in d.variables.items() if v.dtype.kind in "SU")


def same_attr(a, b):
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=np.asarray(a).dtype.kind == "f")


def bits(x):
    x = np.asarray(x)
    return x.astype(x.dtype.newbyteorder("=")).view(f"u{x.dtype.itemsize}")


def pack_unpack(cli, src, tmp_path, *opts):
    arch, out = tmp_path / "x.baler", tmp_path / "x.nc"
    r = cli("pack", src, "-o", arch, *THREADS, *opts)
    cli("unpack", arch, "-o", out, *THREADS)
    header = json.loads(cli("inspect", arch, "--json").stdout)["header"]
    return r, header, out


def test_lossless_is_byte_exact_with_attributes(cli, nc3, tmp_path):
    """Char variables (space_weather's rotated_pole, the grid mapping its fields name) come
    back as netCDF-4 chars with their attributes: they were skipped, and the projection lost."""
    r, header, out = pack_unpack(cli, nc3, tmp_path)
    assert header["source"]["kind"] == "netcdf3"
    assert not header.get("skipped"), header.get("skipped")
    chars = char_vars(nc3)
    assert sorted(d["path"].lstrip("/") for d in header["datasets"] if d.get("chars")) == chars
    orig = originals(nc3)
    with h5py.File(out, "r") as f, netCDF4.Dataset(out) as back:
        for name, (x, attrs, dims, dtype) in orig.items():
            y = f[name]
            if name in chars:
                assert y.dtype == np.dtype("S1") and y.shape == x.shape, (name, y.dtype, y.shape)
                assert np.asarray(y[()], "S1").tobytes() == np.asarray(x, "S1").tobytes(), f"{name}: characters differ"
            else:
                want = dtype.newbyteorder(">") if dtype.itemsize > 1 else dtype
                assert y.dtype.str == want.str, f"{name}: dtype {y.dtype.str} != {want.str}"
                assert y.shape == x.shape, name
                assert np.array_equal(bits(x), bits(y[()])), f"{name}: values differ"
            v = back[name]
            assert v.dimensions == dims, f"{name}: dims {v.dimensions} != {dims}"
            got = {a: v.getncattr(a) for a in v.ncattrs()}
            assert got.keys() == attrs.keys(), f"{name}: attributes {sorted(got)} != {sorted(attrs)}"
            for a in attrs:
                assert same_attr(attrs[a], got[a]), f"{name} attribute {a}: {got[a]!r} != {attrs[a]!r}"
        g = global_attrs(nc3)
        assert {a: back.getncattr(a) for a in back.ncattrs()}.keys() == g.keys()
        for a in g:
            assert same_attr(g[a], back.getncattr(a)), a


def test_rel_bound_holds_and_coordinates_stay_exact(cli, nc3, tmp_path):
    E = 1e-3
    _, header, out = pack_unpack(cli, nc3, tmp_path, "--error", f"rel={E}")
    orig = originals(nc3)
    with h5py.File(out, "r") as f:
        with netCDF4.Dataset(nc3) as d:
            coords = {n for n in d.variables if d[n].dimensions == (n,)}
        lossy = 0
        for name, (x, _, _, dtype) in orig.items():
            if name not in f:
                continue
            y = f[name][()]
            if dtype.kind != "f" or name in coords:
                assert np.array_equal(bits(x), bits(y)), f"{name}: must be exact"
                continue
            x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
            fin = np.isfinite(x64)
            span = float(x64[fin].max() - x64[fin].min()) if fin.any() else 0.0
            err = np.abs(y64[fin] - x64[fin])
            assert err.size == 0 or err.max() <= E * span, f"{name}: max error {err.max()} > {E * span}"
            assert np.array_equal(bits(x[~fin]), bits(y[~fin])), f"{name}: non-finite values differ"
            lossy += span > 0
    # the short-packed file has no float variable but its coordinates
    assert lossy > 0 or nc3.name == "a1b_short_cdf1.nc"


@pytest.mark.parametrize("engine", ["netcdf4", "h5netcdf"])
def test_xarray_reads_the_unpacked_file_like_the_original(cli, nc3, tmp_path, engine):
    if engine == "h5netcdf":
        pytest.importorskip("h5netcdf")
    _, _, out = pack_unpack(cli, nc3, tmp_path)
    with xr.open_dataset(nc3, engine="netcdf4") as a, xr.open_dataset(out, engine=engine) as b:
        assert dict(b.sizes) == dict(a.sizes)
        assert set(b.coords) == set(a.coords)
        assert set(b.data_vars) == set(a.data_vars)
        for n in a.variables:
            assert b[n].dims == a[n].dims, f"{n}: {b[n].dims} != {a[n].dims}"
        xr.testing.assert_identical(a, b)


def test_the_record_dimension_stays_unlimited(cli, made, tmp_path):
    """The record dimension came back fixed-size: appending a time step to the unpacked file,
    as to the original, failed."""
    _, _, out = pack_unpack(cli, made["a1b_cdf1.nc"], tmp_path)
    with netCDF4.Dataset(made["a1b_cdf1.nc"]) as a, netCDF4.Dataset(out, "a") as b:
        assert a.dimensions["time"].isunlimited() and b.dimensions["time"].isunlimited()
        assert {n: len(d) for n, d in b.dimensions.items()} == {n: len(d) for n, d in a.dimensions.items()}
        assert not any(d.isunlimited() for n, d in b.dimensions.items() if n != "time")
        n = len(b.dimensions["time"])
        b["air_temperature"][n] = np.zeros(b["air_temperature"].shape[1:], "f4")
    with netCDF4.Dataset(out) as b:
        assert len(b.dimensions["time"]) == n + 1
        # The record's time was not written: netCDF's fill value, read as missing (it read 0).
        assert np.ma.is_masked(b["time"][n]), b["time"][n]


def test_eval_reads_a_netcdf3_original(cli, made, tmp_path):
    src = made["a1b_cdf2.nc"]
    arch = tmp_path / "x.baler"
    cli("pack", src, "-o", arch, *THREADS, "--error", "rel=1e-3")
    r = cli("eval", src, arch, "-o", tmp_path / "report", *THREADS, timeout=900)
    assert "every bound held: yes" in r.stdout, r.stdout


def test_dataset_selection(cli, made, tmp_path):
    src = made["a1b_cdf1.nc"]
    arch, out = tmp_path / "x.baler", tmp_path / "x.nc"
    cli("pack", src, "-o", arch, "--dataset", "air_temperature", *THREADS)
    cli("unpack", arch, "-o", out)
    # its coordinates come with it, so netCDF reads it over its own dimensions
    with netCDF4.Dataset(src) as a, netCDF4.Dataset(out) as d:
        assert d["air_temperature"].shape == (240, 37, 49)
        assert d["air_temperature"].dimensions == a["air_temperature"].dimensions
        for n in a["air_temperature"].dimensions:
            assert np.array_equal(d[n][:], a[n][:]), n
    # unpack --dataset brings them too
    cli("unpack", arch, "-o", tmp_path / "y.nc", "--dataset", "air_temperature")
    with netCDF4.Dataset(src) as a, netCDF4.Dataset(tmp_path / "y.nc") as d:
        assert d["air_temperature"].dimensions == a["air_temperature"].dimensions


@pytest.mark.parametrize("variant", ["a1b_cdf1.nc", "a1b_cdf5.nc"])
def test_cut_or_corrupt_file_is_one_clear_error(cli, made, tmp_path, variant):
    good = made[variant].read_bytes()
    outdir = tmp_path / "out"
    outdir.mkdir()
    bad = []
    for cut in (3, 20, 200, len(good) // 2, len(good) - 1):
        bad.append((f"cut{cut}.nc", good[:cut]))
    # the dimension list's tag, and the first dimension's name length, made nonsense
    tag = good.index(b"\x00\x00\x00\x0a")
    b1 = bytearray(good)
    b1[tag + 3] = 0x0D
    bad.append(("badtag.nc", bytes(b1)))
    b2 = bytearray(good)
    width = 8 if variant.endswith("cdf5.nc") else 4
    at = tag + 4 + width
    b2[at:at + width] = b"\x7f" + b"\xff" * (width - 1)
    bad.append(("badname.nc", bytes(b2)))
    for name, data in bad:
        src = tmp_path / name
        src.write_bytes(data)
        out = outdir / "x.baler"
        r = cli("pack", src, "-o", out, expect_fail=True)
        assert_fails(r, src, out=out, outdir=outdir, before=[])


def test_netcdf_default_fill_is_missing_without_a_fill_value_attribute(cli, tmp_path):
    """The netCDF library writes its default fill (NC_FILL_FLOAT) where nothing was written and
    reads it back as missing; with no `_FillValue` attribute it is still the marker, so a rel
    bound is of the written values (taken as data it made the bound 1e33 wide)."""
    import netCDF4
    src = tmp_path / "partly.nc"
    rng = np.random.default_rng(3)
    x = (280 + 10 * rng.standard_normal((30, 40))).astype("f4")
    with netCDF4.Dataset(src, "w", format="NETCDF3_CLASSIC") as nc:
        nc.createDimension("y", 30)
        nc.createDimension("x", 40)
        v = nc.createVariable("t", "f4", ("y", "x"))     # no _FillValue attribute
        v[:20, :] = x[:20]                                # rows 20.. stay the default fill
    with netCDF4.Dataset(src) as nc:
        # The premise: the netCDF library itself reads the unwritten rows as missing.
        assert "_FillValue" not in nc["t"].ncattrs() and np.ma.count_masked(nc["t"][:]) == 400
    arch, out = tmp_path / "p.baler", tmp_path / "p.nc"
    r = cli("pack", src, "-o", arch, "--error", "rel=1e-3")
    assert "netCDF default fill value" in r.stdout, r.stdout
    cli("unpack", arch, "-o", out)
    with h5py.File(out) as f:
        y = f["t"][()]
    fill = np.float32(9.969209968386869e36)
    assert np.all(y[20:] == fill)
    tol = 1e-3 * (float(x[:20].max()) - float(x[:20].min()))
    assert np.abs(y[:20].astype("f8") - x[:20]).max() <= tol


def test_cf_bounds_and_auxiliary_coordinates_stay_exact(cli, tmp_path):
    """Under a global rel, the variables CF names as cell bounds (`bounds`) or auxiliary
    coordinates (`coordinates`) stay exact like dimension scales (OSTIA's months moved by 38 h);
    naming one makes it lossy."""
    src = _iris_sample("ostia_monthly.nc")
    arch, out = tmp_path / "o.baler", tmp_path / "o.nc"
    cli("pack", src, "-o", arch, "--error", "rel=1e-3")
    cli("unpack", arch, "-o", out)
    with h5py.File(src) as a, h5py.File(out) as b:
        for name in ("time_bnds", "forecast_reference_time", "forecast_reference_time_bnds"):
            assert a[name][()].tobytes() == b[name][()].tobytes(), name
    header = json.loads(cli("inspect", arch, "--json").stdout)["header"]
    modes = {v["name"]: v["error"]["mode"] for d in header["datasets"] for v in d["variables"]}
    assert modes["surface_temperature"] == "rel" and modes["forecast_reference_time"] == "lossless"
    cli("pack", src, "-o", arch, "--error", "rel=1e-3", "--error", "forecast_reference_time:rel=1e-3")
    header = json.loads(cli("inspect", arch, "--json").stdout)["header"]
    modes = {v["name"]: v["error"]["mode"] for d in header["datasets"] for v in d["variables"]}
    assert modes["forecast_reference_time"] == "rel"


def test_dimensions_linked_only_by_dimension_list_come_back_right(cli, tmp_path):
    """iris's hybrid_height.nc links variables to their dimensions by DIMENSION_LIST alone (no
    `_Netcdf4Coordinates`): unpack attaches the same scales, so netCDF reads the same dimensions
    (matched by length, grid_longitude_bnds read as (grid_latitude, bnds)), and nothing of ours is
    left in the file. --strict packs it: those links are made again, not lost."""
    import netCDF4
    src = _iris_sample("hybrid_height.nc")
    arch, out = tmp_path / "h.baler", tmp_path / "h.nc"
    cli("pack", src, "-o", arch, "--strict")
    cli("unpack", arch, "-o", out)
    with netCDF4.Dataset(src) as a, netCDF4.Dataset(out) as b:
        assert {v: a[v].dimensions for v in a.variables} == {v: b[v].dimensions for v in b.variables}
        assert a["grid_longitude_bnds"].dimensions == ("grid_longitude", "bnds")
    with h5py.File(out) as f:
        assert not [k for k in f if any(n.startswith("_balerfile") for n in f[k].attrs)]


def test_unpack_to_cdf_and_to_nc_write_netcdf4(cli, tmp_path):
    """`.cdf` (a netCDF-3 habit) and `--to nc` give the netCDF-4 file `.nc` gives."""
    import netCDF4
    src = _iris_sample("space_weather.nc")
    arch = tmp_path / "s.baler"
    cli("pack", src, "-o", arch)
    cli("unpack", arch, "-o", tmp_path / "s.cdf")
    cli("unpack", arch, "-o", tmp_path / "s.out", "--to", "nc")
    with netCDF4.Dataset(src) as a:
        want = {v: a[v].dimensions for v in a.variables}
    for out in (tmp_path / "s.cdf", tmp_path / "s.out"):
        with netCDF4.Dataset(out) as b:
            # rotated_pole, a char variable (the grid mapping), comes back too
            assert b.data_model == "NETCDF4" and {v: b[v].dimensions for v in b.variables} == want


def test_no_coordinates_packs_only_what_is_named(cli, made, tmp_path):
    src = made["a1b_cdf1.nc"]
    arch = tmp_path / "x.baler"
    r = cli("pack", src, "-o", arch, "--dataset", "air_temperature", "--no-coordinates", *THREADS)
    assert "--dataset: with the coordinates" not in r.stdout
    header = json.loads(cli("inspect", arch, "--json").stdout)["header"]
    assert [d["path"] for d in header["datasets"]] == ["/air_temperature"]
    cli("pack", src, "-o", arch, "--dataset", "air_temperature", *THREADS)
    cli("unpack", arch, "-o", tmp_path / "y.nc", "--dataset", "air_temperature", "--no-coordinates")
    with h5py.File(tmp_path / "y.nc", "r") as f:
        assert list(f) == ["air_temperature"]
