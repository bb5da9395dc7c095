"""Round trips through the CLI on real data: pack, unpack, compare every element.

The bound is checked twice for every float variable: against the resolved tolerance stored in
the header (variables[].error.abs, the guarantee, no slack) and against the tolerance computed
here from the source (rel: E*(max-min) over the finite values; abs: the value), which must agree
with the header's to 1e-12 relative. Integer and bool variables must be bit-exact, dtypes
(byte order included), shapes and attributes identical (netCDF's object-reference attributes
DIMENSION_LIST / REFERENCE_LIST excepted: balerfile skips them and records them in "skipped").
"""
import h5py
import numpy as np
import pytest

from conftest import THREADS, SKIPPED_ATTRS, h5_datasets, _iris_sample  # noqa: E402  (tests/python is on sys.path)

RELS = [1e-2, 1e-3, 1e-4]


def pack_unpack(cli, container, src, tmp_path, *pack_args, out_name="out.h5"):
    arch = tmp_path / "a.baler"
    out = tmp_path / out_name
    rp = cli("pack", src, "-o", arch, *pack_args, *THREADS)
    assert rp.stdout.strip(), f"{rp.shown}: pack printed no summary on stdout"
    cli("unpack", arch, "-o", out, *THREADS)
    header = container(arch)["header"]
    return arch, out, header, rp


def specs(global_spec=("lossless",), named=None):
    """The bound each float variable must get: a spec naming it (variable, unique field or
    dataset name) wins; else the global spec, except on HDF5 dimension scales (netCDF coordinates
    such as time, latitude), which stay lossless under a global spec (README: "name them to make
    them lossy"); else lossless."""
    named = named or {}

    def spec_for(name, dt, dimscale):
        if name in named:
            return named[name]
        # A column of a 2-D array read as a table (`DATASET[j]`) gets what names its dataset.
        dataset = name.split("[")[0]
        if name.endswith("]") and dataset in named:
            return named[dataset]
        if dimscale:
            return ("lossless",)
        return global_spec
    return spec_for


def uniform(spec):
    return specs(spec)


# ---------------------------------------------------------------------------------------------
# HadCM3 (netCDF4/HDF5, 10 datasets: f32 field, >f4, i32, f64 scalars, ...)


@pytest.mark.parametrize("rel", RELS)
def test_hadcm3_rel(cli, container, check_roundtrip, hadcm3, tmp_path, rel):
    arch, out, header, rp = pack_unpack(cli, container, hadcm3, tmp_path, "--error", f"rel={rel}")
    errs = check_roundtrip(hadcm3, out, header, uniform(("rel", rel)))
    assert "air_temperature" in errs
    # the field is genuinely quantised (not silently stored lossless)
    assert errs["air_temperature"] > 0.0
    assert header["source"] == {"kind": "hdf5", "name": hadcm3.name}


def test_hadcm3_bnds_stays_big_endian(cli, container, hadcm3, tmp_path):
    _, out, header, _ = pack_unpack(cli, container, hadcm3, tmp_path, "--error", "rel=1e-3")
    with h5py.File(out, "r") as f:
        assert f["bnds"].dtype.str == ">f4"
    (var,) = [d for d in header["datasets"] if d["path"] == "/bnds"][0]["variables"]
    assert var["byte_order"] == "be" and var["dtype"] == "f32"


def test_hadcm3_abs(cli, container, check_roundtrip, hadcm3, tmp_path):
    _, out, header, _ = pack_unpack(cli, container, hadcm3, tmp_path, "--error", "abs=0.5")
    errs = check_roundtrip(hadcm3, out, header, uniform(("abs", 0.5)))
    assert 0.0 < errs["air_temperature"] <= 0.5


def test_hadcm3_lossless_default(cli, container, check_roundtrip, hadcm3, tmp_path):
    _, out, header, _ = pack_unpack(cli, container, hadcm3, tmp_path)
    check_roundtrip(hadcm3, out, header, uniform(("lossless",)))
    for ds in header["datasets"]:
        for v in ds["variables"]:
            assert v["error"]["mode"] == "lossless", (v["name"], v["error"])


def test_hadcm3_explicit_lossless(cli, container, check_roundtrip, hadcm3, tmp_path):
    _, out, header, _ = pack_unpack(cli, container, hadcm3, tmp_path, "--error", "lossless")
    check_roundtrip(hadcm3, out, header, uniform(("lossless",)))


def test_hadcm3_per_variable_lossless(cli, container, check_roundtrip, hadcm3, tmp_path):
    _, out, header, _ = pack_unpack(cli, container, hadcm3, tmp_path,
                                    "--error", "rel=1e-2", "--error", "air_temperature:lossless")

    check_roundtrip(hadcm3, out, header, specs(("rel", 1e-2), {"air_temperature": ("lossless",)}))


def test_hadcm3_per_variable_tighter(cli, container, check_roundtrip, hadcm3, tmp_path):
    _, out, header, _ = pack_unpack(cli, container, hadcm3, tmp_path,
                                    "--error", "lossless", "--error", "air_temperature:rel=1e-4",
                                    "--error", "time_bnds:abs=0.25")

    errs = check_roundtrip(hadcm3, out, header,
                           specs(("lossless",), {"air_temperature": ("rel", 1e-4), "time_bnds": ("abs", 0.25)}))
    assert errs["air_temperature"] > 0.0


def test_hadcm3_dimension_scales(cli, container, check_roundtrip, hadcm3, tmp_path):
    # a global spec leaves the coordinates (dimension scales) lossless; naming one makes it lossy
    _, out, header, _ = pack_unpack(cli, container, hadcm3, tmp_path, "--error", "rel=1e-3",
                                    "--error", "time:rel=1e-3", "--error", "latitude:abs=0.01")
    errs = check_roundtrip(hadcm3, out, header, specs(("rel", 1e-3), {"time": ("rel", 1e-3),
                                                                      "latitude": ("abs", 0.01)}))
    modes = {v["name"]: v["error"]["mode"] for d in header["datasets"] for v in d["variables"]}
    assert modes["longitude"] == "lossless" and modes["bnds"] == "lossless"
    assert modes["time"] == "rel" and modes["latitude"] == "abs"
    assert errs["time"] > 0.0


def test_hadcm3_selected_datasets(cli, container, check_roundtrip, hadcm3, tmp_path):
    """--dataset brings what the variable is read by: its dimension scales, the CF coordinates,
    bounds and grid mapping it names (pack had written air_temperature over phony dimensions,
    without its times)."""
    import netCDF4
    _, out, header, rp = pack_unpack(cli, container, hadcm3, tmp_path, "--dataset", "air_temperature",
                                     "--error", "rel=1e-3")
    with h5py.File(hadcm3, "r") as f:
        named = f["air_temperature"].attrs["coordinates"].decode().split()
    kept = sorted({"/air_temperature", "/bnds", "/latitude", "/longitude", "/time", "/time_bnds", "/latitude_longitude"}
                  | {"/" + n for n in named})
    assert sorted(d["path"] for d in header["datasets"]) == kept
    assert "--dataset: with the coordinates it is read by" in rp.stdout, rp.stdout
    check_roundtrip(hadcm3, out, header, uniform(("rel", 1e-3)), datasets=kept)
    with netCDF4.Dataset(hadcm3) as a, netCDF4.Dataset(out) as b:
        assert b["air_temperature"].dimensions == a["air_temperature"].dimensions
    # What was not kept of the datasets packed stays recorded; nothing about the others.
    skipped = [s["path"] for s in header.get("skipped", [])]
    assert skipped and all(p.split(" attribute ")[0] in kept for p in skipped), skipped


def test_hadcm3_small_chunks_and_level(cli, container, check_roundtrip, hadcm3, tmp_path):
    arch, out, header, _ = pack_unpack(cli, container, hadcm3, tmp_path, "--error", "rel=1e-3",
                                       "--chunk-size", "65536", "--level", "3")
    check_roundtrip(hadcm3, out, header, uniform(("rel", 1e-3)))
    air = [c for c in container(arch)["chunks"]
           if header["datasets"][c["dataset"]]["path"] == "/air_temperature"]
    assert len(air) > 1, "a 64 KiB chunk size should cut the 1.7 MB field into several chunks"


def test_hadcm3_skipped_references_recorded(cli, container, hadcm3, tmp_path):
    _, out, header, rp = pack_unpack(cli, container, hadcm3, tmp_path, "--error", "rel=1e-3")
    assert "warning" in rp.stderr.lower(), f"no warning on stderr for skipped attributes: {rp.stderr!r}"
    skipped = header.get("skipped", [])
    with h5py.File(hadcm3, "r") as f:
        for path, ds in h5_datasets(f).items():
            for k in ds.attrs.keys():
                if k in SKIPPED_ATTRS:
                    hits = [s for s in skipped if path.lstrip("/") in s["path"] and k in s["path"]]
                    assert hits, f"{path} attribute {k} not recorded in header skipped: {skipped}"
                    assert all(s["reason"] for s in hits)


def test_lossy_is_smaller(cli, hadcm3, tmp_path):
    sizes = {}
    for spec in ["lossless", "rel=1e-4", "rel=1e-2"]:
        arch = tmp_path / f"{spec.replace('=', '_')}.baler"
        cli("pack", hadcm3, "-o", arch, "--dataset", "air_temperature", "--error", spec, *THREADS)
        sizes[spec] = arch.stat().st_size
    assert sizes["rel=1e-2"] < sizes["rel=1e-4"] < sizes["lossless"], sizes


# ---------------------------------------------------------------------------------------------
# issue63: one compound dataset, 141 f32 + 11 bool + 4 u32 + 1 u64 fields


@pytest.mark.parametrize("rel", RELS)
def test_issue63_rel(cli, container, check_roundtrip, issue63_h5, tmp_path, rel):
    _, out, header, _ = pack_unpack(cli, container, issue63_h5, tmp_path, "--error", f"rel={rel}")
    errs = check_roundtrip(issue63_h5, out, header, uniform(("rel", rel)))
    assert len(errs) == 141
    (ds,) = header["datasets"]
    assert ds["kind"] == "compound" and ds["path"] == "/WtLoop_nominal" and ds["shape"] == [9812]
    assert sum(e > 0 for e in errs.values()) > 100, "most float columns should be quantised"


def test_issue63_lossless_default(cli, container, check_roundtrip, issue63_h5, tmp_path):
    _, out, header, _ = pack_unpack(cli, container, issue63_h5, tmp_path)
    check_roundtrip(issue63_h5, out, header, uniform(("lossless",)))


def test_issue63_per_field(cli, container, check_roundtrip, issue63_h5, tmp_path):
    # "met" is a unique field name, "WtLoop_nominal.pT_lep1" a full variable name
    _, out, header, _ = pack_unpack(cli, container, issue63_h5, tmp_path,
                                    "--error", "rel=1e-2", "--error", "met:lossless",
                                    "--error", "WtLoop_nominal.pT_lep1:abs=0.5")

    check_roundtrip(issue63_h5, out, header, specs(("rel", 1e-2), {"WtLoop_nominal.met": ("lossless",),
                                                                  "WtLoop_nominal.pT_lep1": ("abs", 0.5)}))


def test_issue63_dataset_spec(cli, container, check_roundtrip, issue63_h5, tmp_path):
    # a dataset name applies to all its variables
    _, out, header, _ = pack_unpack(cli, container, issue63_h5, tmp_path,
                                    "--error", "lossless", "--error", "WtLoop_nominal:rel=1e-3")
    check_roundtrip(issue63_h5, out, header, uniform(("rel", 1e-3)))


# ---------------------------------------------------------------------------------------------
# More real netCDF4 files (iris-sample-data): lossless round trips of every numeric dataset,
# their dtypes, fill-value attributes (f4 denormals included), scalars and multi-dimensional fields

OTHER_NC = ["SOI_Darwin.nc", "atlantic_profiles.nc", "hybrid_height.nc", "rotated_pole.nc",
            "orca2_votemper.nc", "toa_brightness_stereographic.nc", "ostia_monthly.nc",
            "NEMO/nemo_1m_20150101-20150201_grid-T.nc", "E1_north_america.nc"]


@pytest.mark.parametrize("name", OTHER_NC)
def test_other_netcdf_lossless(cli, container, check_roundtrip, tmp_path, name):
    src = _iris_sample(name)
    _, out, header, _ = pack_unpack(cli, container, src, tmp_path)
    check_roundtrip(src, out, header, uniform(("lossless",)))


# ---------------------------------------------------------------------------------------------
# A real file with a non-numeric dataset: packed without --dataset, it is skipped with a warning


def test_non_numeric_dataset_skipped(cli, container, check_roundtrip, vlstr_nc, tmp_path):
    _, out, header, rp = pack_unpack(cli, container, vlstr_nc, tmp_path)
    assert "expver" in rp.stderr and "warning" in rp.stderr.lower(), rp.stderr
    assert any("expver" in s["path"] for s in header.get("skipped", [])), header.get("skipped")
    check_roundtrip(vlstr_nc, out, header, uniform(("lossless",)),
                    datasets=["/lat", "/lon", "/time", "/wind"])


# ---------------------------------------------------------------------------------------------
# .npy


def npy_roundtrip(cli, container, tmp_path, arr, *pack_args):
    src = tmp_path / "src.npy"
    np.save(src, arr)
    arch = tmp_path / "a.baler"
    out = tmp_path / "out.npy"
    cli("pack", src, "-o", arch, *pack_args, *THREADS)
    cli("unpack", arch, "-o", out, *THREADS)
    header = container(arch)["header"]
    assert header["source"] == {"kind": "npy", "name": "src.npy"}
    (ds,) = header["datasets"]
    assert ds["shape"] == list(arr.shape)
    return np.load(out), ds


@pytest.mark.parametrize("rel", [1e-2, 1e-4])
def test_npy_float_slice(cli, container, float_check, hadcm3, tmp_path, rel):
    with h5py.File(hadcm3, "r") as f:
        arr = f["air_temperature"][:60]
    back, ds = npy_roundtrip(cli, container, tmp_path, arr, "--error", f"rel={rel}")
    assert back.dtype.str == arr.dtype.str and back.shape == arr.shape
    (var,) = ds["variables"]
    assert float_check("npy", arr, back, ("rel", rel), var) > 0.0


def test_npy_big_endian_lossless(cli, container, hadcm3, tmp_path):
    with h5py.File(hadcm3, "r") as f:
        arr = f["time_bnds"][...].astype(">f8")
    back, ds = npy_roundtrip(cli, container, tmp_path, arr)
    assert back.dtype.str == ">f8" and back.shape == arr.shape
    assert back.tobytes() == arr.tobytes()
    assert ds["variables"][0]["byte_order"] == "be"


def test_npy_integer(cli, container, hadcm3, tmp_path):
    with h5py.File(hadcm3, "r") as f:
        arr = f["forecast_period"][...]
    back, ds = npy_roundtrip(cli, container, tmp_path, arr, "--error", "rel=1e-2")
    assert back.dtype.str == arr.dtype.str and np.array_equal(back, arr)
    assert ds["variables"][0]["error"]["mode"] == "lossless"


def test_npy_structured(cli, container, float_check, issue63_h5, tmp_path):
    with h5py.File(issue63_h5, "r") as f:
        table = f["WtLoop_nominal"][...]
    back, ds = npy_roundtrip(cli, container, tmp_path, table, "--error", "rel=1e-3")
    assert back.dtype == table.dtype and back.shape == table.shape
    assert ds["kind"] == "compound"
    assert [v.get("field") for v in ds["variables"]] == list(table.dtype.names)
    for var in ds["variables"]:
        x, y = table[var["field"]], back[var["field"]]
        if x.dtype.kind == "f":
            float_check(var["name"], x, y, ("rel", 1e-3), var)
        else:
            assert y.dtype.str == x.dtype.str and np.array_equal(x, y), var["name"]


# ---------------------------------------------------------------------------------------------
# Datasets with parts never written: HDF5 reads their fill value, or (fill time "never") leaves
# the reader's buffer as it was, which balerfile zeroes first: never memory read uninitialised.


def test_unwritten_chunks_read_as_fill_or_zero(cli, tmp_path):
    src = tmp_path / "unwritten.h5"
    written = np.arange(8 * 32, dtype="<f4").reshape(8, 32) * 0.25 - 3.0
    with h5py.File(src, "w") as f:
        f.create_dataset("filled", shape=(64, 32), dtype="<f4", chunks=(8, 32), fillvalue=7.5)[:8] = written
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((8, 32))
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        h5py.h5d.create(f.id, b"never", h5py.h5t.IEEE_F32LE, h5py.h5s.create_simple((64, 32)), dcpl=dcpl)
        f["never"][:8] = written
    arch, out = tmp_path / "a.baler", tmp_path / "out.h5"
    cli("pack", src, "-o", arch, *THREADS)
    cli("unpack", arch, "-o", out, *THREADS)
    with h5py.File(out, "r") as g:
        filled, never = g["filled"][...], g["never"][...]
    assert np.array_equal(filled[:8], written) and np.array_equal(never[:8], written)
    assert np.all(filled[8:] == 7.5), "HDF5's fill value where nothing was written"
    assert np.all(never[8:] == 0.0) and not np.signbit(never[8:]).any(), "zeros where HDF5 writes nothing"


def test_attributes_the_library_cannot_list_are_named_not_dropped(cli, tmp_path):
    """An HDF5 2.0 file written with libver='latest' and an enum attribute: HDF5 1.10 (and its
    h5dump) cannot list that dataset's attributes. pack had dropped all of them unsaid; where the
    library cannot read them they are named skipped (and --strict refuses), else they come back."""
    import h5py

    src = tmp_path / "latest.h5"
    with h5py.File(src, "w", libver="latest") as f:
        d = f.create_dataset("x", data=np.arange(10.0))
        d.attrs["units"] = "K"
        d.attrs["flag"] = np.array(1, dtype=h5py.enum_dtype({"A": 0, "B": 1}, "u1"))
    arch, back = tmp_path / "l.baler", tmp_path / "back.h5"
    r = cli("pack", src, "-o", arch)
    cli("unpack", arch, "-o", back)
    with h5py.File(back, "r") as f:
        kept = set(f["x"].attrs)
    if "skipped /x attributes" in r.stderr:
        assert "cannot list them" in r.stderr
        r = cli("pack", src, "-o", tmp_path / "s.baler", "--strict", expect_fail=True)
        assert r.returncode == 1 and "/x attributes" in r.stderr
    else:
        assert "units" in kept, (kept, r.stderr)


def test_empty_and_large_attributes_come_back(cli, tmp_path):
    """Attributes with no value (h5py.Empty, netCDF's zero-length flag_values) came back as
    one 0, and a string one made the archive unpackable to HDF5; an attribute over 64 KiB (dense
    attribute storage) did too. All come back as they were."""
    import h5py

    src = tmp_path / "attrs.h5"
    big = np.arange(10000, dtype="f8")  # 80 KB
    with h5py.File(src, "w", libver=("v108", "latest")) as f:
        d = f.create_dataset("x", data=np.arange(10.0))
        d.attrs["empty_f"] = h5py.Empty("f4")
        d.attrs["large"] = big
        f.attrs["empty_str"] = h5py.Empty(h5py.string_dtype())
    arch, back = tmp_path / "a.baler", tmp_path / "back.h5"
    cli("pack", src, "-o", arch)
    cli("unpack", arch, "-o", back)
    with h5py.File(back, "r") as f:
        assert isinstance(f["x"].attrs["empty_f"], h5py.Empty) and f["x"].attrs["empty_f"].dtype == np.float32
        assert isinstance(f.attrs["empty_str"], h5py.Empty)
        assert np.array_equal(f["x"].attrs["large"], big)


def test_virtual_dataset_with_a_missing_source_is_named(cli, tmp_path):
    """HDF5 reads the part of a virtual dataset whose source file is gone as the fill value:
    it was packed so, unsaid. It is skipped with the file named; with its sources it packs."""
    import h5py

    with h5py.File(tmp_path / "src.h5", "w") as f:
        f.create_dataset("a", data=np.arange(10.0))
    for name, second in (("ok.h5", "src.h5"), ("gone.h5", "missing.h5")):
        with h5py.File(tmp_path / name, "w") as f:
            lay = h5py.VirtualLayout(shape=(20,), dtype="f8")
            lay[:10] = h5py.VirtualSource("src.h5", "a", shape=(10,))
            lay[10:] = h5py.VirtualSource(second, "a", shape=(10,))
            f.create_virtual_dataset("v", lay, fillvalue=-1)
            f.create_dataset("w", data=np.ones(5))
    cli("pack", tmp_path / "ok.h5", "-o", tmp_path / "ok.baler")
    cli("unpack", tmp_path / "ok.baler", "-o", tmp_path / "ok_back.h5")
    with h5py.File(tmp_path / "ok_back.h5", "r") as f:
        assert np.array_equal(f["v"][()], np.concatenate([np.arange(10.0)] * 2))
    r = cli("pack", tmp_path / "gone.h5", "-o", tmp_path / "gone.baler")
    assert "skipped /v" in r.stderr and "missing.h5 is not there" in r.stderr, r.stderr


# ---------------------------------------------------------------------------------------------
# Datasets that may grow: netCDF's unlimited dimensions, h5py's maxshape=None. They came back
# fixed (appending a time step to the unpacked file failed), and an unlimited dimension with no
# coordinate variable lost its name to a phony dimension.


def test_unlimited_dimensions_chunks_and_filters_come_back(cli, container, schema, tmp_path):
    import hdf5plugin
    import netCDF4
    import xarray as xr

    src, arch, back = tmp_path / "unlim.nc", tmp_path / "u.baler", tmp_path / "back.nc"
    rng = np.random.default_rng(5)
    with netCDF4.Dataset(src, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("obs", None)  # no coordinate variable: netCDF leaves its scale at 0
        ds.createDimension("x", 30)
        ds.createVariable("time", "f8", ("time",))[:] = np.arange(4.0)
        ds.createVariable("temp", "f4", ("obs",))[:] = np.arange(7, dtype="f4")
        v = ds.createVariable("field", "f4", ("time", "x"), chunksizes=(2, 15))
        v[:] = 280 + rng.standard_normal((4, 30)).astype("f4")
    with h5py.File(tmp_path / "grow.h5", "w") as f:
        f.create_dataset("series", data=np.arange(100.0), maxshape=(None,), chunks=(10,))
        f.create_dataset("grid", data=np.ones((6, 8)), maxshape=(12, None), chunks=(3, 4))
        f.create_dataset("fixed", data=np.ones((6, 8)))
        f.create_dataset("gzip", data=np.arange(600.0).reshape(20, 30), chunks=(5, 30), compression="gzip",
                         compression_opts=7, shuffle=True, fletcher32=True)
        f.create_dataset("zstd", data=np.arange(300.0), chunks=(100,), **hdf5plugin.Zstd())
    cli("pack", src, "-o", arch, "--error", "abs=0.01", *THREADS)
    cli("unpack", arch, "-o", back, *THREADS)
    with netCDF4.Dataset(src) as a, netCDF4.Dataset(back) as b:
        for n, d in a.dimensions.items():
            assert (len(b.dimensions[n]), b.dimensions[n].isunlimited()) == (len(d), d.isunlimited()), n
        for n, v in a.variables.items():
            assert b[n].dimensions == v.dimensions, (n, b[n].dimensions)
            tol = 0.01 if n == "field" else 0
            assert np.abs(b[n][:].astype("f8") - v[:]).max() <= tol, n
        assert b["field"].chunking() == [2, 15]
    with xr.open_dataset(back) as x:
        assert dict(x.sizes) == {"time": 4, "obs": 7, "x": 30}
        assert set(x.encoding["unlimited_dims"]) == {"time", "obs"}
    with h5py.File(src, "r") as a, h5py.File(back, "r") as b:
        for n in ("time", "temp", "field"):
            assert b[n].fillvalue == a[n].fillvalue, (n, b[n].fillvalue, a[n].fillvalue)
    with netCDF4.Dataset(back, "a") as b:
        b["field"][4] = np.zeros(30, "f4")
    with netCDF4.Dataset(back) as b:
        assert len(b.dimensions["time"]) == 5 and b["field"].shape == (5, 30)
        # time[4] was not written: the fill value, read as missing (with HDF5's 0 it read 0)
        assert np.ma.is_masked(b["time"][4]), b["time"][4]

    # The source's chunks and its lossless built-in filters come back; a plugin's is named.
    env = {"HDF5_PLUGIN_PATH": hdf5plugin.PLUGIN_PATH}
    cli("pack", tmp_path / "grow.h5", "-o", tmp_path / "g.baler", *THREADS, env=env)
    r = cli("unpack", tmp_path / "g.baler", "-o", tmp_path / "g.h5", *THREADS)
    assert "/zstd: written without its source's filters 32015" in r.stderr, r.stderr
    assert "/gzip:" not in r.stderr, r.stderr
    header = container(tmp_path / "g.baler")["header"]
    from jsonschema import Draft202012Validator
    errors = [f"{list(e.path)}: {e.message}" for e in Draft202012Validator(schema).iter_errors(header)]
    assert not errors, errors
    got = {d["path"]: (d.get("maxshape"), d.get("chunks")) for d in header["datasets"]}
    assert got == {"/series": ([None], [10]), "/grid": ([12, None], [3, 4]), "/fixed": (None, None),
                   "/gzip": (None, [5, 30]), "/zstd": (None, [100])}, got
    with h5py.File(tmp_path / "grow.h5", "r") as a, h5py.File(tmp_path / "g.h5", "a") as b:
        for n in a:
            assert (b[n].maxshape, b[n].chunks) == (a[n].maxshape, a[n].chunks), n
            assert np.array_equal(b[n][()], a[n][()]), n
        g = b["gzip"]
        assert (g.compression, g.compression_opts, g.shuffle, g.fletcher32) == ("gzip", 7, True, True)
        assert b["zstd"].compression is None and not b["zstd"]._filters
        b["series"].resize((110,))
        b["grid"].resize((12, 20))



def test_cf_packed_integers_are_named_kept_exactly(cli, tmp_path):
    """A bound asked of every variable does not apply to CF-packed integers (int16 with
    scale_factor): they are kept exactly, and pack says so instead of leaving the user to
    think the bound was used on them."""
    import netCDF4

    src = tmp_path / "packed.nc"
    with netCDF4.Dataset(src, "w") as d:
        d.createDimension("x", 100)
        v = d.createVariable("t", "i2", ("x",))
        v.scale_factor, v.add_offset = 0.01, 273.15
        v.set_auto_maskandscale(False)
        v[:] = np.arange(100, dtype="i2")
        d.createVariable("f", "f4", ("x",))[:] = np.arange(100.0)
    r = cli("pack", src, "-o", tmp_path / "p.baler", "--error", "rel=1e-3")
    assert "t: CF-packed integers (scale_factor, add_offset), kept exactly" in r.stdout, r.stdout
    cli("unpack", tmp_path / "p.baler", "-o", tmp_path / "back.nc")
    with h5py.File(src, "r") as a, h5py.File(tmp_path / "back.nc", "r") as b:
        assert np.array_equal(a["t"][()], b["t"][()])


def test_char_variables_come_back(cli, container, schema, tmp_path):
    """netCDF char variables (a grid mapping such as rotated_pole, station names) were skipped
    with their attributes, so the fields' grid_mapping named nothing. They are kept as chars."""
    import netCDF4
    import xarray as xr

    src, back = tmp_path / "chars.nc", tmp_path / "back.nc"
    with netCDF4.Dataset(src, "w") as d:
        d.createDimension("station", 3)
        d.createDimension("strlen", 5)
        rp = d.createVariable("rotated_pole", "S1", ())
        rp.grid_mapping_name = "rotated_latitude_longitude"
        rp.grid_north_pole_latitude = 39.25
        names = d.createVariable("name", "S1", ("station", "strlen"))
        names[:] = netCDF4.stringtochar(np.array(["Oslo", "Bergen", "Tromso"], "S5"))
        t = d.createVariable("tas", "f4", ("station",))
        t[:] = [271.5, 275.25, 268.0]
        t.grid_mapping = "rotated_pole"
    cli("pack", src, "-o", tmp_path / "c.baler", "--error", "abs=0.01")
    cli("unpack", tmp_path / "c.baler", "-o", back)
    from jsonschema import Draft202012Validator
    header = container(tmp_path / "c.baler")["header"]
    errors = [f"{list(e.path)}: {e.message}" for e in Draft202012Validator(schema).iter_errors(header)]
    assert not errors, errors
    assert {d["path"]: d.get("chars") for d in header["datasets"]}["/name"] == {"encoding": "ascii", "pad": "nullterm"}
    with xr.open_dataset(src) as a, xr.open_dataset(back) as b:
        assert list(b["name"].values) == list(a["name"].values) == [b"Oslo", b"Berge", b"Troms"]
        assert b["rotated_pole"].attrs == a["rotated_pole"].attrs
        assert np.abs(b["tas"].values - a["tas"].values).max() <= 0.01
    with h5py.File(back, "r") as f:
        assert f["name"].dtype == np.dtype("S1") and f["rotated_pole"].shape == ()


def test_a_group_spec_bounds_every_dataset_under_it(cli, container, tmp_path):
    """`--error atmos:abs=0.05` bounds every dataset in the group as a global spec does there
    (its dimension scale stays lossless); it was refused as naming no variable."""
    src = tmp_path / "groups.h5"
    rng = np.random.default_rng(1)
    with h5py.File(src, "w") as f:
        lat = f.create_dataset("atmos/lat", data=np.linspace(-90, 90, 40))
        lat.make_scale("lat")
        u = f.create_dataset("atmos/p200/u", data=rng.standard_normal((40, 50)).cumsum(1))
        u.dims[0].attach_scale(lat)
        f.create_dataset("ocean/t", data=rng.standard_normal((30, 60)).cumsum(1))
    arch = tmp_path / "g.baler"
    cli("pack", src, "-o", arch, "--error", "atmos:abs=0.05", "--error", "rel=1e-4", "--no-model")
    modes = {d["path"]: d["variables"][0]["error"] for d in container(arch)["header"]["datasets"]}
    assert modes["/atmos/p200/u"]["mode"] == "abs" and modes["/atmos/p200/u"]["abs"] == 0.05
    assert modes["/atmos/lat"]["mode"] == "lossless"
    assert modes["/ocean/t"]["mode"] == "rel"
    cli("unpack", arch, "-o", tmp_path / "back.h5")
    with h5py.File(src, "r") as a, h5py.File(tmp_path / "back.h5", "r") as b:
        assert np.abs(b["atmos/p200/u"][()] - a["atmos/p200/u"][()]).max() <= 0.05
        assert np.array_equal(b["atmos/lat"][()], a["atmos/lat"][()])
    r = cli("pack", src, "-o", tmp_path / "x.baler", "--error", "atmo:abs=0.05", expect_fail=True)
    assert "no variable, dataset or group named 'atmo'" in r.stderr, r.stderr
