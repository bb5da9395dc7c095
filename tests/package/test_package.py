"""The installed Python package, as a user gets it from `pip install .`: run in a venv holding only
the wheel and the outside clients (h5py, zarr, numcodecs, dask, xarray) with real data. Nothing
here points at the checkout: no BALERFILE, no HDF5_PLUGIN_PATH, no sys.path tricks."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

# The environment the user started with: importing balerfile adds the plugin's folder to
# HDF5_PLUGIN_PATH (for netCDF4-python's HDF5), and the children below start as a user's would.
USER_ENV = dict(os.environ)

import balerfile  # noqa: E402

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True, scope="module")
def clean_env():
    for k in ("BALERFILE", "BALERFILE_H5_PLUGIN", "HDF5_PLUGIN_PATH"):
        assert k not in USER_ENV, f"{k} is set: these tests check the package alone"
    assert not str(Path(balerfile.__file__)).startswith(str(HERE.parent.parent / "python")), \
        "balerfile imported from the checkout, not from the installed package"


def fresh_python(code, cwd):
    """Runs `code` in a new interpreter of this venv (nothing imported, no environment added)."""
    r = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600, env=USER_ENV)
    assert r.returncode == 0, f"child failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


# ---------------------------------------------------------------------------------------------
# Real data


@pytest.fixture(scope="module")
def field():
    """HadCM3 A1B air temperature over North America: 240 x 37 x 49 f32 (iris-sample-data)."""
    import iris_sample_data

    p = Path(iris_sample_data.__file__).parent / "sample_data" / "A1B_north_america.nc"
    with h5py.File(p, "r") as f:
        a = f["air_temperature"][()]
    assert a.shape == (240, 37, 49) and a.dtype == np.float32
    return a


@pytest.fixture(scope="module")
def zmumu():
    """Real CMS dimuon events (uproot-Zmumu.root) as a structured array of its numeric branches."""
    import skhep_testdata
    import uproot

    t = uproot.open(skhep_testdata.data_path("uproot-Zmumu.root"))["events"]
    cols = {k: t[k].array(library="np") for k in t.keys() if t[k].typename in ("double", "int32_t")}
    out = np.zeros(len(next(iter(cols.values()))), dtype=[(k, v.dtype) for k, v in cols.items()])
    for k, v in cols.items():
        out[k] = v
    assert out.shape == (2304,) and len(out.dtype.names) == 19
    return out


def within(x, y, tol):
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    return bool(np.all(np.abs(x - y) <= tol))


# ---------------------------------------------------------------------------------------------
# The command and the in-process API


def test_cli_installed():
    exe = shutil.which("balerfile", path=str(Path(sys.executable).parent))
    assert exe, "pip install did not put `balerfile` in the venv's bin"
    r = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("balerfile "), r
    assert balerfile.__version__ in r.stdout


@pytest.mark.parametrize("rel", [1e-2, 1e-4])
def test_field_within_bound(field, rel):
    blob = balerfile.compress(field, error=f"rel={rel}")
    assert isinstance(blob, bytes) and blob[:8] == b"\x89BALER\r\n"
    back = balerfile.decompress(blob)
    assert back.dtype == field.dtype and back.shape == field.shape
    tol = rel * (float(field.max()) - float(field.min()))
    assert within(back, field, tol)
    assert len(blob) < field.nbytes / 4


def test_table_per_column(zmumu, tmp_path):
    blob = balerfile.compress(zmumu, error="rel=1e-3")
    back = balerfile.decompress(blob)
    assert back.dtype == zmumu.dtype and back.shape == zmumu.shape
    for name in zmumu.dtype.names:
        x = zmumu[name]
        if x.dtype.kind == "i":
            assert np.array_equal(back[name], x), name
        else:
            assert within(back[name], x, 1e-3 * (x.max() - x.min())), name
    # The stream is a .baler file: the installed CLI reads it.
    p = tmp_path / "z.baler"
    p.write_bytes(blob)
    exe = shutil.which("balerfile", path=str(Path(sys.executable).parent))
    r = subprocess.run([exe, "inspect", "--json", str(p)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["header"]["datasets"][0]["kind"] == "compound"


def test_big_endian_and_lossless(field):
    be = field.astype(">f4")
    back = balerfile.decompress(balerfile.compress(be))
    assert back.dtype == np.dtype(">f4")
    assert back.tobytes() == be.tobytes()
    ints = np.arange(-500, 500, dtype=">i8").reshape(20, 50)
    back = balerfile.decompress(balerfile.compress(ints, error="rel=1e-2"))
    assert back.dtype == ints.dtype and np.array_equal(back, ints)


def test_any_memory_order_and_shape(field):
    f = np.asfortranarray(field[:24])
    back = balerfile.decompress(balerfile.compress(f, error="abs=0.01"))
    assert back.shape == f.shape and within(back, f, 0.01)
    s = field[::2, ::3, 1::2]
    assert within(balerfile.decompress(balerfile.compress(s, error="abs=0.01")), s, 0.01)
    z = np.array(3.25, dtype="f8")
    back = balerfile.decompress(balerfile.compress(z))
    assert back.shape == () and back == z
    e = np.zeros((0, 5), "f4")
    assert balerfile.decompress(balerfile.compress(e, error="rel=1e-3")).shape == (0, 5)


def test_nan_kept(field):
    a = field[:24].copy()
    a[0, :5, :5] = np.nan
    back = balerfile.decompress(balerfile.compress(a, error="abs=0.05"))
    assert np.isnan(back[0, :5, :5]).all()
    ok = ~np.isnan(a)
    assert within(back[ok], a[ok], 0.05)


def test_fill_value_and_masked_arrays(field):
    """A rel bound is taken over the valid values: a declared fill value (or a masked element)
    is kept exactly and stays out of the range, as `pack --fill-value` does."""
    a = field[:24].astype("f4")
    a[0, :6, :6] = 1e20
    rel = 1e-3
    valid = a != np.float32(1e20)
    tol = rel * (float(a[valid].max()) - float(a[valid].min()))
    for fill in (1e20, "1e20", [1e20]):
        back = balerfile.decompress(balerfile.compress(a, error=f"rel={rel}", fill_value=fill))
        assert np.array_equal(back[~valid], a[~valid])
        assert within(back[valid], a[valid], tol)
    m = np.ma.masked_equal(a, np.float32(1e20))
    back = balerfile.decompress(balerfile.compress(m, error=f"rel={rel}"))
    assert type(back) is np.ndarray and np.isnan(back[~valid]).all()
    assert within(back[valid], a[valid], tol)
    assert np.array_equal(np.ma.getmaskarray(np.ma.masked_invalid(back)), ~valid)
    # Undeclared, the marker is a value like any other: the range spans it (as asked).
    wide = balerfile.decompress(balerfile.compress(a, error=f"rel={rel}"))
    assert np.abs(wide[valid].astype("f8") - a[valid]).max() > tol
    ints = np.ma.masked_less(np.arange(100, dtype="i4"), 10)
    with pytest.warns(RuntimeWarning, match="the mask of a masked int32 array is not kept"):
        blob = balerfile.compress(ints, error="rel=1e-2")
    assert np.array_equal(balerfile.decompress(blob), ints.data)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: balerfile.compress([1.0, 2.0]), "numpy array"),
        (lambda: balerfile.compress(np.ones(10), fill_value=object()), "fill_value"),
        (lambda: balerfile.compress(np.ones(10), fill_value="x:zero"), "not a number"),
        (lambda: balerfile.compress(np.array([1, "a"], dtype=object)), "Python objects"),
        (lambda: balerfile.compress(np.ones(10), error="rel=2"), "rel"),
        (lambda: balerfile.compress(np.ones(10), error="tight"), "error"),
        (lambda: balerfile.decompress(b"not a baler stream at all, just bytes"), "magic"),
        (lambda: balerfile.decompress(42), "bytes"),
        (lambda: balerfile.compress(np.ones(10, "f2")), "'<f2' is not numeric"),
        (lambda: balerfile.compress(np.zeros(3, dtype=[("a", "f4", (2,))])), "sub-arrays"),
        (lambda: balerfile.compress(np.ones(10), level=99), "level=99: from 1 to 22"),
        (lambda: balerfile.compress(np.ones(10), level=0), "level=0: from 1 to 22"),
        (lambda: balerfile.compress(np.ones(10), threads=-1), "threads=-1"),
        (lambda: balerfile.compress(np.ones(10), chunk_bytes=-5), "chunk_bytes=-5"),
        (lambda: balerfile.compress(np.ones(10), level="fast"), "level='fast': an integer"),
        (lambda: balerfile.h5.Baler(error="abs=0.1", fill="x"), "fill='x': a number"),
        (lambda: __import__("balerfile.zarr").zarr.Baler(error="abs=0.1", level=99), "level=99"),
        (lambda: __import__("balerfile.numcodecs").numcodecs.Baler(error="abs=0.1", layout="xx"), "layout"),
    ],
)
def test_bad_input_is_an_exception(call, message):
    with pytest.raises((TypeError, ValueError)) as e:
        call()
    assert message in str(e.value)


def test_damaged_stream_refused(field):
    blob = bytearray(balerfile.compress(field[:24], error="rel=1e-3"))
    for at in (len(blob) // 2, len(blob) - 40, 30):
        bad = bytearray(blob)
        bad[at] ^= 0x40
        with pytest.raises(balerfile.BalerfileError):
            balerfile.decompress(bytes(bad))
    with pytest.raises(balerfile.BalerfileError, match="truncated"):
        balerfile.decompress(bytes(blob[:-100]))


def test_threads_share_the_codec(field):
    """The GIL is released while coding: threads give the same streams as one thread."""
    from concurrent.futures import ThreadPoolExecutor

    parts = [field[i : i + 60] for i in range(0, 240, 60)]
    one = [balerfile.compress(p, error="rel=1e-3", threads=1) for p in parts]
    with ThreadPoolExecutor(4) as ex:
        many = list(ex.map(lambda p: balerfile.compress(p, error="rel=1e-3", threads=1), parts))
    assert one == many


# ---------------------------------------------------------------------------------------------
# h5py, with nothing set


def test_h5py_filter_without_environment(field, tmp_path):
    p = tmp_path / "f.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("air", data=field, chunks=(24, 37, 49), **balerfile.h5.Baler(error="abs=0.01"))
    with h5py.File(p, "r") as f:
        assert within(f["air"][()], field, 0.01)
    # A new process: importing balerfile (or its old name) is all it takes.
    for mod in ("balerfile", "balerfile_h5"):
        out = fresh_python(
            f"import h5py, numpy as np, {mod}\n"
            f"with h5py.File({str(p)!r}) as f: a = f['air'][()]\n"
            "print(a.shape, float(a.mean()))",
            tmp_path,
        )
        assert "(240, 37, 49)" in out
    # Other programs find the plugin through balerfile.PLUGIN_PATH.
    env = dict(os.environ, HDF5_PLUGIN_PATH=balerfile.PLUGIN_PATH)
    r = subprocess.run(
        [sys.executable, "-c", f"import h5py; f = h5py.File({str(p)!r}); print(f['air'][0, 0, :3])"],
        capture_output=True, text=True, env=env,
    )
    assert r.returncode == 0, r.stderr


def test_installed_command_prints_the_plugin_path(field, tmp_path):
    """`export HDF5_PLUGIN_PATH=$(balerfile h5 plugin-path)` (README) works for a pip install:
    the command finds the plugin inside the package, and h5dump reads through it."""
    exe = shutil.which("balerfile", path=str(Path(sys.executable).parent))
    r = subprocess.run([exe, "h5", "plugin-path"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).resolve() == Path(balerfile.PLUGIN_PATH).resolve()
    p = tmp_path / "f.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("air", data=field[:2], chunks=(1, 37, 49), **balerfile.h5.Baler(error="abs=0.01"))
    d = subprocess.run(["h5dump", "-d", "/air", "-c", "1,1,4", str(p)], capture_output=True, text=True,
                       env=dict(os.environ, HDF5_PLUGIN_PATH=r.stdout.strip()))
    assert d.returncode == 0 and "DATA" in d.stdout, d.stderr


def test_h5py_filter_refuses_a_bound_that_keeps_nothing(field, tmp_path):
    """rel >= 1 is an error of the whole range: refused by the helper, and by the filter itself
    at dataset creation when the parameters come from elsewhere (C, hdf5plugin-style tuples)."""
    with pytest.raises(ValueError, match="keeps nothing"):
        balerfile.h5.Baler(error="rel=5")
    opts = list(dict(balerfile.h5.Baler(error="rel=0.5"))["compression_opts"])
    half, five = list(balerfile.h5._f64_words(0.5)), list(balerfile.h5._f64_words(5.0))
    i = next(i for i in range(len(opts) - 1) if opts[i:i + 2] == half)
    opts[i:i + 2] = five
    with h5py.File(tmp_path / "f.h5", "w") as f:
        with pytest.raises(Exception):
            f.create_dataset("air", data=field, chunks=(24, 37, 49), compression=balerfile.h5.FILTER_ID,
                             compression_opts=tuple(opts))
        assert "air" not in f


# ---------------------------------------------------------------------------------------------
# zarr v3 and numcodecs


def test_zarr_v3_reopened_by_a_fresh_process(field, tmp_path):
    import zarr

    from balerfile.zarr import Baler

    path = tmp_path / "air.zarr"
    z = zarr.create_array(
        str(path), shape=field.shape, chunks=(24, 37, 49), dtype=field.dtype,
        serializer=Baler(error="rel=1e-3"), compressors=None,
    )
    z[:] = field
    meta = json.loads((path / "zarr.json").read_text())
    assert {"name": "balerfile", "configuration": {"error": "rel=1e-3"}} in meta["codecs"]
    tol = 1e-3 * (float(field.max()) - float(field.min()))
    assert within(zarr.open_array(str(path))[:], field, tol)
    # Nothing imported but zarr: the entry point finds the codec.
    np.save(tmp_path / "ref.npy", field)
    out = fresh_python(
        "import zarr, numpy as np, sys\n"
        f"a = zarr.open_array({str(path)!r})[:]\n"
        f"ref = np.load({str(tmp_path / 'ref.npy')!r})\n"
        f"print(float(np.abs(a.astype('f8') - ref).max()) <= {tol!r})",
        tmp_path,
    )
    assert out.strip() == "True"
    stored = sum(f.stat().st_size for f in (path / "c").rglob("*") if f.is_file())
    assert stored < field.nbytes / 4


def test_zarr_rel_bound_of_valid_values_with_edge_chunks_and_fill_values(field, tmp_path):
    """zarr pads edge chunks with the array's fill_value (0 by default) and xarray writes NaN as
    a `_FillValue` the codec is given: neither widens a chunk's range, so `rel` of the array's
    range holds on every valid element, and the markers come back exactly."""
    import xarray as xr
    import zarr

    from balerfile.zarr import Baler

    a = field[:50].copy()
    a[3, 5:9, 10:20] = np.nan
    valid = ~np.isnan(a)
    tol = 1e-3 * (float(np.nanmax(a)) - float(np.nanmin(a)))
    z = zarr.create_array(tmp_path / "z.zarr", shape=a.shape, chunks=(24, 16, 20), dtype=a.dtype,
                          serializer=Baler(error="rel=1e-3"), compressors=None)
    z[:] = a
    back = zarr.open_array(tmp_path / "z.zarr")[:]
    assert np.array_equal(np.isnan(back), ~valid) and within(back[valid], a[valid], tol)
    ds = xr.Dataset({"tas": (("time", "lat", "lon"), a)})
    enc = {"tas": {"serializer": Baler(error="rel=1e-3", fill_value=-1e34), "compressors": None,
                   "_FillValue": np.float32(-1e34), "chunks": (7, 16, 20)}}
    ds.to_zarr(tmp_path / "x.zarr", zarr_format=3, encoding=enc, consolidated=False)
    back = xr.open_zarr(tmp_path / "x.zarr", consolidated=False)["tas"].values
    assert np.array_equal(np.isnan(back), ~valid) and within(back[valid], a[valid], tol)


def test_zarr_big_endian_arrays_come_back(field, tmp_path):
    """zarr v3 keeps no byte order in a data type: a big-endian array (xarray's from any netCDF-3
    file) reads back as the same values in the native order."""
    import zarr

    from balerfile.zarr import Baler

    a = field[:24].astype(">f4")
    z = zarr.create_array(tmp_path / "be.zarr", shape=a.shape, chunks=(12, 37, 49), dtype=a.dtype,
                          serializer=Baler(error="rel=1e-3"), compressors=None)
    z[:] = a
    back = zarr.open_array(tmp_path / "be.zarr")[:]
    assert back.dtype == np.float32
    assert within(back, a, 1e-3 * (float(a.max()) - float(a.min())))


def test_zarr_chunk_written_in_parts_is_named(field, tmp_path):
    """Writing one time step at a time into a chunk of ten: zarr decodes the chunk and codes it
    again at each write, and the values written before are coded again (their errors add up).
    The codec says so (once, a RuntimeWarning); whole-chunk writes say nothing."""
    import warnings

    import zarr

    from balerfile.zarr import Baler

    a = field[:10]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        z = zarr.create_array(tmp_path / "whole.zarr", shape=a.shape, chunks=a.shape, dtype=a.dtype,
                              serializer=Baler(error="abs=0.01"), compressors=None)
        z[:] = a
        z[:] = zarr.open_array(tmp_path / "whole.zarr")[:]  # read and written back unchanged
    assert not [w for w in seen if "coded again" in str(w.message)]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        z = zarr.create_array(tmp_path / "steps.zarr", shape=a.shape, chunks=a.shape, dtype=a.dtype,
                              serializer=Baler(error="abs=0.01"), compressors=None)
        for k in range(10):
            z[k] = a[k]
    named = [w for w in seen if "coded again" in str(w.message)]
    assert named and issubclass(named[0].category, RuntimeWarning)
    assert "errors add up" in str(named[0].message)


def test_zarr_codec_refuses_bad_bound():
    from balerfile.zarr import Baler

    with pytest.raises(ValueError, match="rel"):
        Baler(error="rel=5")


def test_numcodecs(zmumu, field):
    import numcodecs

    codec = numcodecs.get_codec({"id": "balerfile", "error": "rel=1e-3"})
    assert codec.get_config() == {"id": "balerfile", "error": "rel=1e-3"}
    enc = codec.encode(field)
    out = np.empty_like(field)
    codec.decode(enc, out=out)
    assert within(out, field, 1e-3 * (float(field.max()) - float(field.min())))
    back = codec.decode(codec.encode(zmumu))
    assert np.array_equal(back["Run"], zmumu["Run"])


def test_zarr_v2_with_numcodecs(field, tmp_path):
    import zarr
    from balerfile.numcodecs import Baler

    path = tmp_path / "v2.zarr"
    z = zarr.create_array(str(path), shape=field.shape, chunks=(60, 37, 49), dtype=field.dtype, zarr_format=2,
                          compressors=Baler(error="abs=0.02"), filters=None)
    z[:] = field
    assert within(zarr.open_array(str(path))[:], field, 0.02)


# ---------------------------------------------------------------------------------------------
# Dask across processes, xarray


def test_dask_workers_write_zarr(field, tmp_path):
    import dask.array as da
    import zarr
    from distributed import Client, LocalCluster

    from balerfile.zarr import Baler

    path = tmp_path / "dask.zarr"
    z = zarr.create_array(str(path), shape=field.shape, chunks=(24, 37, 49), dtype=field.dtype,
                          serializer=Baler(error="abs=0.05"), compressors=None)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        pids = set(client.run(os.getpid).values())
        assert len(pids) == 2 and os.getpid() not in pids
        da.from_array(field, chunks=(24, 37, 49)).store(z, lock=False, compute=True)
        back = da.from_zarr(str(path)).compute()
    assert within(back, field, 0.05)


def test_xarray_zarr_and_h5netcdf(field, tmp_path):
    import xarray as xr

    from balerfile.zarr import Baler

    ds = xr.Dataset({"air": (("time", "lat", "lon"), field)})
    zpath = tmp_path / "x.zarr"
    ds.to_zarr(zpath, zarr_format=3, consolidated=False, encoding={"air": {"serializer": Baler(error="abs=0.01"), "compressors": None, "chunks": (24, 37, 49)}})
    assert within(xr.open_zarr(zpath, consolidated=False)["air"].values, field, 0.01)
    npath = tmp_path / "x.nc"
    ds.to_netcdf(npath, engine="h5netcdf", encoding={"air": {**balerfile.h5.Baler(error="abs=0.01"), "chunksizes": (24, 37, 49)}})
    with h5py.File(npath) as f:
        assert balerfile.h5.FILTER_ID in f["air"]._filters or str(balerfile.h5.FILTER_ID) in f["air"]._filters
    assert within(xr.open_dataset(npath, engine="h5netcdf")["air"].values, field, 0.01)
    # xarray's default engine, netCDF4-python, brings an HDF5 of its own that h5py's
    # registration does not reach: importing balerfile first puts the plugin on its path (it
    # failed with "undefined filter encountered"), and appending a time step works too.
    code = (f"import balerfile, xarray as xr, numpy as np, netCDF4\n"
            f"a = xr.open_dataset({str(npath)!r})['air'].values\n"
            f"np.save({str(tmp_path / 'a.npy')!r}, a)\n"
            f"with netCDF4.Dataset({str(npath)!r}, 'a') as d:\n"
            f"    d['air'][0] = np.zeros((37, 49), 'f4')\n")
    r = subprocess.run([sys.executable, "-c", code], env=USER_ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert within(np.load(tmp_path / "a.npy"), field, 0.01)
    with h5py.File(npath) as f:
        assert np.abs(f["air"][0]).max() <= 0.01 and within(f["air"][1:], field[1:], 0.01)


# ---------------------------------------------------------------------------------------------
# A model, through ONNX Runtime from the onnxruntime package


def test_model_embedded_in_the_stream(zmumu, tmp_path, monkeypatch):
    store = tmp_path / "store"
    monkeypatch.setenv("BALER_MODEL_PATH", str(store))
    npy = tmp_path / "z.npy"
    np.save(npy, zmumu)
    exe = shutil.which("balerfile", path=str(Path(sys.executable).parent))
    bundle = tmp_path / "bundle"
    r = subprocess.run([exe, "train", str(npy), "-o", str(bundle), "--latent", "4", "--hidden", "32,16", "--epochs", "6",
                        "--patience", "3"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    blob = balerfile.compress(zmumu, error="rel=1e-4", model=str(bundle), embed_model=True)
    p = tmp_path / "z.baler"
    p.write_bytes(blob)
    info = json.loads(subprocess.run([exe, "inspect", "--json", str(p)], capture_output=True, text=True, check=True).stdout)
    (model,) = info["header"]["models"]
    assert model.get("embedded"), model
    # A fresh process with an empty model store: the decoder travels in the stream.
    empty = tmp_path / "empty"
    empty.mkdir()
    env = dict(os.environ, BALER_MODEL_PATH=str(empty))
    r = subprocess.run([sys.executable, "-c", "import balerfile, numpy as np, sys\n"
                        f"a = balerfile.decompress(open({str(p)!r}, 'rb').read())\n"
                        f"np.save({str(tmp_path / 'back.npy')!r}, a)"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    back = np.load(tmp_path / "back.npy")
    for name in zmumu.dtype.names:
        x = zmumu[name]
        if x.dtype.kind == "f":
            assert within(back[name], x, 1e-4 * (x.max() - x.min())), name
        else:
            assert np.array_equal(back[name], x), name
