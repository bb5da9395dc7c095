"""Shared fixtures for the balerfile CLI tests (real data only).

Fixtures:
  balerfile      path of the built CLI (env BALERFILE, default target/release/balerfile);
                 the session fails clearly when it is missing or is not a real build.
  cli            run the CLI: cli("pack", src, "-o", out, ...) -> CompletedProcess; fails the
                 test on a non-zero exit (unless expect_fail=True) and on any panic message.
                 A `pack` that names no model option gets --no-model: the container and codec
                 tests check the independent decoder below, which does not run models
                 (tests/python/test_models.py covers the model stage). Every run sees
                 BALER_MODEL_PATH set to a fresh per-session store.
  hadcm3         the HadCM3 climate file (iris-sample-data A1B_north_america.nc).
  vlstr_nc       a real netCDF4 file with a variable-length string dataset (iris-sample-data).
  issue63_h5     the ATLAS issue63 ntuple as one compound HDF5 dataset, made once per
                 session by fixtures/make_table_h5.py into fixtures/data/ (gitignored).
  container      parse_container(path_or_bytes): independent reader of the .baler byte layout.
  check_h5_roundtrip  compare a source HDF5 with the unpacked HDF5 under an error spec.
"""
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
# These tests drive the checkout's build: the filter plugin beside the CLI under test, not the
# copy inside the installed wheel (tests/package tests that one).
os.environ.setdefault("BALERFILE_H5_PLUGIN", str(ROOT / "target" / "release" / "libh5z_baler.so"))
BIN = os.environ.get("BALERFILE", str(ROOT / "target" / "release" / "balerfile"))
SCHEMA_PATH = ROOT / "schemas" / "baler-header.schema.json"
FIXTURE_SCRIPT = ROOT / "fixtures" / "make_table_h5.py"
FIXTURE_DATA = ROOT / "fixtures" / "data"
THREADS = ["--threads", "2"]

# netCDF's object-reference attributes: balerfile skips them (warning + header "skipped").
SKIPPED_ATTRS = {"DIMENSION_LIST", "REFERENCE_LIST"}

MAGIC = b"\x89BALER\r\n"
END_MAGIC = b"BALEREND"
TRAILER_LEN = 28
ENTRY_LEN = 40

DTYPES = {
    "bool": np.dtype("|b1"),
    "i8": np.dtype("<i1"), "i16": np.dtype("<i2"), "i32": np.dtype("<i4"), "i64": np.dtype("<i8"),
    "u8": np.dtype("<u1"), "u16": np.dtype("<u2"), "u32": np.dtype("<u4"), "u64": np.dtype("<u8"),
    "f32": np.dtype("<f4"), "f64": np.dtype("<f8"),
}


# --------------------------------------------------------------------------------------------
# The binary and how to run it


@pytest.fixture(scope="session")
def balerfile():
    if not os.path.isfile(BIN) or not os.access(BIN, os.X_OK):
        pytest.fail(f"balerfile binary not found or not executable at {BIN}; build it with "
                    f"`cargo build --release` or point BALERFILE at it", pytrace=False)
    r = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=60)
    text = r.stdout + r.stderr
    if r.returncode != 0 or not all(w in text for w in ("pack", "unpack", "inspect")):
        pytest.fail(f"{BIN} --help does not list pack/unpack/inspect (exit {r.returncode}); "
                    f"is it a stub build? output: {text[:500]!r}", pytrace=False)
    return BIN


MODEL_FLAGS = ("--model", "--no-model", "--auto-model")


def _run(binary, args, expect_fail=False, timeout=300, env=None):
    args = [str(a) for a in args]
    if args and args[0] == "pack":
        if "--auto-model" in args:
            args.remove("--auto-model")
        elif not any(a in MODEL_FLAGS for a in args):
            args.append("--no-model")
    cmd = [binary] + args
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    shown = " ".join(cmd)
    assert "panicked" not in r.stderr, f"{shown}\npanic on stderr:\n{r.stderr}"
    if not expect_fail and r.returncode != 0:
        pytest.fail(f"{shown}\nexit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}",
                    pytrace=False)
    r.shown = shown
    return r


@pytest.fixture(scope="session")
def model_store(tmp_path_factory):
    return tmp_path_factory.mktemp("model-store")


@pytest.fixture(scope="session")
def cli(balerfile, model_store):
    """`--auto-model` (test-only, removed before the call) lets a pack train its own model."""
    def run(*args, expect_fail=False, timeout=600, env=None):
        e = dict(os.environ)
        e["BALER_MODEL_PATH"] = str(model_store)
        e.update(env or {})
        return _run(balerfile, args, expect_fail=expect_fail, timeout=timeout, env=e)
    return run


# --------------------------------------------------------------------------------------------
# Real data


def _iris_sample(name):
    import iris_sample_data
    p = Path(iris_sample_data.__file__).parent / "sample_data" / name
    if not p.is_file():
        pytest.fail(f"iris-sample-data file missing: {p}", pytrace=False)
    return p


@pytest.fixture(scope="session")
def hadcm3():
    return _iris_sample("A1B_north_america.nc")


@pytest.fixture(scope="session")
def vlstr_nc():
    return _iris_sample("vlstr_type.nc")


def _table_fixture(name, *source):
    out = FIXTURE_DATA / name
    stale = (not out.is_file()) or out.stat().st_mtime < FIXTURE_SCRIPT.stat().st_mtime
    if stale:
        FIXTURE_DATA.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([sys.executable, str(FIXTURE_SCRIPT), str(out), *source],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            pytest.fail(f"fixture script failed:\n{r.stdout}\n{r.stderr}", pytrace=False)
    return out


@pytest.fixture(scope="session")
def issue63_h5():
    out = _table_fixture("issue63.h5")
    with h5py.File(out, "r") as f:
        assert f["WtLoop_nominal"].shape == (9812,)
        assert len(f["WtLoop_nominal"].dtype.names) == 157
    return out


@pytest.fixture(scope="session")
def zmumu_h5():
    """Real CMS 2010 dimuon events (uproot-Zmumu.root, tree events): 2304 rows, 15 f64 and 4
    i32 columns (the string column Type is left out)."""
    out = _table_fixture("zmumu.h5", "uproot-Zmumu.root", "events")
    with h5py.File(out, "r") as f:
        assert f["events"].shape == (2304,)
        assert len(f["events"].dtype.names) == 19
    return out


@pytest.fixture(scope="session")
def schema():
    return json.loads(SCHEMA_PATH.read_text())


# --------------------------------------------------------------------------------------------
# Independent reader of the container layout (schemas/baler-format.md)


class FormatError(Exception):
    pass


def _need(cond, msg):
    if not cond:
        raise FormatError(msg)


def parse_container(src):
    """Parse and check a .baler file. Returns a dict with header (parsed), header_bytes, H,
    chunks (list of footer entries as dicts, with their bytes) and the file length.
    Every check of baler-format.md "A reader checks ..." is made, plus each chunk's CRC and
    its head (dataset index, first row, rows, V, L)."""
    data = Path(src).read_bytes() if not isinstance(src, (bytes, bytearray)) else bytes(src)
    n = len(data)
    _need(n >= 24 + 4 + 8 + TRAILER_LEN, f"file too short: {n} bytes")
    _need(data[:8] == MAGIC, f"bad magic {data[:8]!r}")
    version, flags, H = struct.unpack_from("<IIQ", data, 8)
    _need(version == 1, f"version {version}")
    _need(flags in (0, 1, 3), f"flags {flags:#x}")
    _need(24 + H + 4 <= n - TRAILER_LEN, f"header length {H} does not fit in {n} bytes")
    stored = data[24:24 + H]
    (hcrc,) = struct.unpack_from("<I", data, 24 + H)
    _need(hcrc == zlib.crc32(data[:24 + H]), "header CRC mismatch")
    # flag bit 0: the header is zstd-compressed JSON; bit 1: against the format's dictionary
    if flags & 1:
        import zstandard
        d = None
        if flags & 2:
            d = zstandard.ZstdCompressionDict((ROOT / "schemas" / "baler-header-dict-1.bin").read_bytes(),
                                              dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        header_bytes = (zstandard.ZstdDecompressor(dict_data=d) if d else zstandard.ZstdDecompressor()).decompress(stored)
    else:
        header_bytes = stored
    header = json.loads(header_bytes.decode("utf-8"))

    F, flen, fcrc = struct.unpack_from("<QQI", data, n - TRAILER_LEN)
    _need(data[n - 8:] == END_MAGIC, f"bad end magic {data[n - 8:]!r}")
    _need(F + flen + TRAILER_LEN == n, f"footer offset {F} + length {flen} + 28 != {n}")
    _need(F >= 28 + H, f"footer offset {F} before end of header {28 + H}")
    footer = data[F:F + flen]
    _need(fcrc == zlib.crc32(footer), "footer CRC mismatch")
    (N,) = struct.unpack_from("<Q", footer, 0)
    _need(flen == ENTRY_LEN * N + 8, f"footer length {flen} != 40*{N}+8")

    datasets = header["datasets"]
    chunks = []
    pos = 28 + H
    next_row = [0] * len(datasets)
    for i in range(N):
        off, length, dsi, ccrc, first, rows = struct.unpack_from("<QQIIQQ", footer, 8 + ENTRY_LEN * i)
        _need(off == pos, f"chunk {i} at {off}, expected {pos} (chunks must tile back to back)")
        _need(off + length <= F, f"chunk {i} runs past the footer")
        if dsi in (0xFFFFFFFF, 0xFFFFFFFE):
            if dsi == 0xFFFFFFFF:
                # an attachment: the embedded decoder of model `first`
                kind = "attachment"
                _need(rows == 0 and header["models"][first].get("embedded"), f"chunk {i}: stray attachment")
            else:
                # a carried ROOT object: the key bytes of header root_objects[first]
                kind = "root_object"
                objs = header.get("root_objects", [])
                _need(rows == 0 and first < len(objs) and objs[first]["kind"] != "directory"
                      and objs[first]["bytes"] == length, f"chunk {i}: stray ROOT object")
            body = data[off:off + length]
            _need(zlib.crc32(body) == ccrc, f"{kind} chunk {i} CRC mismatch")
            chunks.append(dict(index=i, offset=off, length=length, dataset=dsi, crc=ccrc,
                               first_row=first, rows=0, body=body, **{kind: True}))
            pos = off + length
            continue
        _need(dsi < len(datasets), f"chunk {i} dataset index {dsi}")
        _need(first == next_row[dsi], f"chunk {i}: first row {first}, expected {next_row[dsi]}")
        _need(rows >= 1, f"chunk {i}: {rows} rows")
        body = data[off:off + length]
        _need(zlib.crc32(body) == ccrc, f"chunk {i} CRC mismatch")
        _need(length >= 28, f"chunk {i} too short for its head")
        c_dsi, c_first, c_rows, V, L = struct.unpack_from("<IQQII", body, 0)
        _need((c_dsi, c_first, c_rows) == (dsi, first, rows), f"chunk {i} head differs from footer")
        _need(V == len(datasets[dsi]["variables"]), f"chunk {i}: V={V}")
        _need(L in (0, 1) and (L == 0 or datasets[dsi].get("model")), f"chunk {i}: L={L}")
        chunks.append(dict(index=i, offset=off, length=length, dataset=dsi, crc=ccrc,
                           first_row=first, rows=rows, body=body))
        next_row[dsi] = first + rows
        pos = off + length
    _need(pos == F, f"chunks end at {pos}, footer at {F}")
    for k, ds in enumerate(datasets):
        total = ds["shape"][0] if ds["shape"] else 1
        _need(next_row[k] == total, f"dataset {ds['path']}: chunks cover {next_row[k]} of {total} rows")
    return dict(header=header, header_bytes=header_bytes, H=H, chunks=chunks, length=n,
                footer_offset=F, data=data)


@pytest.fixture(scope="session")
def container():
    return parse_container


# --------------------------------------------------------------------------------------------
# Comparing a source with its round trip


def h5_datasets(f):
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out["/" + name] = obj
    f.visititems(visit)
    return out


def is_dimension_scale(ds):
    """An HDF5 dimension scale (netCDF coordinate): CLASS = "DIMENSION_SCALE"."""
    c = ds.attrs.get("CLASS")
    return isinstance(c, (bytes, np.bytes_, str)) and (c.decode() if isinstance(c, bytes) else str(c)) == "DIMENSION_SCALE"


def _text(v):
    return v.decode() if isinstance(v, (bytes, np.bytes_)) else str(v)


def cf_coordinates(f):
    """Paths of the datasets CF names, in another's attributes, as cell bounds (`bounds`,
    `climatology`) or auxiliary coordinates (`coordinates`), resolved in that dataset's group:
    like dimension scales, global bounds leave them lossless."""
    out = set()
    for path, ds in h5_datasets(f).items():
        group = path.rsplit("/", 1)[0]
        for attr in ("bounds", "climatology", "coordinates"):
            if attr in ds.attrs:
                out.update(f"{group}/{n}" for n in _text(ds.attrs[attr]).split())
    return out


def is_numeric_dtype(dt):
    if dt.names:
        return all(is_numeric_dtype(dt[n]) for n in dt.names)
    return dt.kind in "biuf" and dt.subdtype is None


def variables_of(path, dt):
    """(variable name, field or None) in the order balerfile must list them."""
    base = path.lstrip("/")
    if dt.names:
        return [(f"{base}.{fname}", fname) for fname in dt.names]
    return [(base, None)]


def assert_attrs_equal(a_src, a_out, where):
    src_keys = {k for k in a_src.keys() if k not in SKIPPED_ATTRS}
    # unpack writes these links itself where `_Netcdf4Coordinates` names the scales (attached)
    out_keys = {k for k in a_out.keys() if k not in SKIPPED_ATTRS}
    assert out_keys == src_keys, f"{where}: attributes differ: missing {src_keys - out_keys}, extra {out_keys - src_keys}"
    for k in sorted(src_keys):
        i_src, i_out = a_src.get_id(k), a_out.get_id(k)
        assert i_out.dtype == i_src.dtype and i_out.dtype.str == i_src.dtype.str, \
            f"{where} attribute {k!r}: dtype {i_out.dtype.str} != {i_src.dtype.str}"
        assert i_out.shape == i_src.shape, f"{where} attribute {k!r}: shape {i_out.shape} != {i_src.shape}"
        v_src, v_out = np.asarray(a_src[k]), np.asarray(a_out[k])
        if v_src.dtype.kind == "f":
            same = np.array_equal(v_src, v_out, equal_nan=True)
        else:
            same = np.array_equal(v_src, v_out)
        assert same, f"{where} attribute {k!r}: {v_out!r} != {v_src!r}"
        s_src = h5py.check_string_dtype(i_src.dtype)
        if s_src is not None:
            s_out = h5py.check_string_dtype(i_out.dtype)
            assert s_out is not None and s_out.encoding == s_src.encoding and s_out.length == s_src.length, \
                f"{where} attribute {k!r}: string type {s_out} != {s_src}"


def finite_range(x):
    x = np.asarray(x, dtype=np.float64)
    fin = np.isfinite(x)
    if not fin.any():
        return 0.0, None, None
    lo, hi = float(x[fin].min()), float(x[fin].max())
    return hi - lo, lo, hi


def cf_missing(x, attrs):
    """The elements CF attributes mark missing, computed here from the source's attributes
    (independently of balerfile): NaN, _FillValue, missing_value (scalar or list), values
    outside valid_min / valid_max / valid_range. Only floats have a rule."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        return np.zeros(x.shape, bool)
    m = np.isnan(x)
    for k in ("_FillValue", "missing_value"):
        if k in attrs:
            for f in np.atleast_1d(np.asarray(attrs[k])).astype(x.dtype):
                if not np.isnan(f):
                    m |= x == f
    lo = hi = None
    if "valid_range" in attrs:
        lo, hi = (float(v) for v in np.asarray(attrs["valid_range"]))
    if "valid_min" in attrs:
        lo = float(np.asarray(attrs["valid_min"]).item())
    if "valid_max" in attrs:
        hi = float(np.asarray(attrs["valid_max"]).item())
    with np.errstate(invalid="ignore"):
        if lo is not None:
            m |= x < lo
        if hi is not None:
            m |= x > hi
    return m


def check_float_variable(name, x, y, spec, hvar, missing=None):
    """x: source values, y: round-trip values (same dtype), spec: ('lossless',) | ('rel', E) |
    ('abs', A); hvar: the variable's header entry; missing: the elements the source's CF
    attributes mark missing (`cf_missing`), which must come back bit for bit and are not part of
    the range a rel bound is relative to. Returns the max abs error over the valid elements."""
    if missing is not None and missing.any():
        assert x[missing].tobytes() == y[missing].tobytes(), f"{name}: missing (fill) elements changed"
        keep = ~missing
        x, y = x[keep], y[keep]
    err = hvar["error"]
    if spec[0] == "none":
        # the model's output alone: no bound to check, but the header must say so
        assert err["mode"] == "none", f"{name}: header error {err}, expected none"
        return 0.0
    if spec[0] == "lossless":
        assert err["mode"] == "lossless", f"{name}: header error {err}, expected lossless"
        assert x.tobytes() == y.tobytes(), f"{name}: lossless variable not bit-exact"
        return 0.0
    mode, value = spec
    assert err["mode"] == mode, f"{name}: header mode {err['mode']!r}, expected {mode!r}"
    assert err.get("value") == value, f"{name}: header value {err.get('value')!r}, expected {value!r}"
    assert "abs" in err, f"{name}: header error has no resolved abs: {err}"
    habs = float(err["abs"])
    rng, _, _ = finite_range(x)
    independent = value * rng if mode == "rel" else value
    if independent == 0.0:
        assert habs == 0.0, f"{name}: header abs {habs!r}, expected 0"
    else:
        assert abs(habs - independent) <= 1e-12 * independent, \
            f"{name}: header abs {habs!r} != {mode}={value} resolved independently as {independent!r}"
    x64 = np.asarray(x, dtype=np.float64)
    y64 = np.asarray(y, dtype=np.float64)
    fin = np.isfinite(x64)
    # NaN and infinities are outliers: stored raw, so bit-identical.
    assert x[~fin].tobytes() == y[~fin].tobytes(), f"{name}: non-finite elements changed"
    if habs == 0.0:
        assert x.tobytes() == y.tobytes(), f"{name}: tolerance 0 but not bit-exact"
        return 0.0
    d = np.abs(y64[fin] - x64[fin])
    maxerr = float(d.max()) if d.size else 0.0
    bad = ~(d <= habs)  # catches NaN in y too
    assert not bad.any(), (f"{name}: {int(bad.sum())} elements exceed the header bound {habs!r} "
                           f"(max error {maxerr!r}, first at flat index {int(np.flatnonzero(bad)[0])})")
    # and against the bound computed here from the data (slack only for the 1e-12 above)
    assert maxerr <= independent * (1 + 1e-12), f"{name}: max error {maxerr!r} > {independent!r}"
    return maxerr


def check_stats(name, x, hvar, missing=None):
    st = hvar.get("stats")
    if st is None or x.dtype.kind != "f":
        return
    x = np.asarray(x)
    fin = np.isfinite(x)
    assert st["nonfinite"] == int((~fin).sum()), f"{name}: stats.nonfinite {st['nonfinite']}"
    if missing is not None:
        gone = missing & fin
        assert st.get("missing", 0) == int(gone.sum()), f"{name}: stats.missing {st.get('missing')} != {int(gone.sum())}"
        fin = fin & ~missing
    if fin.any():
        assert st["min"] is not None and st["max"] is not None, f"{name}: stats {st}"
        # the stats are values of the variable's dtype, however JSON printed them
        assert np.array(st["min"]).astype(x.dtype) == x[fin].min(), f"{name}: stats.min {st['min']!r} != {x[fin].min()!r}"
        assert np.array(st["max"]).astype(x.dtype) == x[fin].max(), f"{name}: stats.max {st['max']!r} != {x[fin].max()!r}"


def check_h5_roundtrip(src, out, header, spec_for, datasets=None):
    """Compare src HDF5 with the unpacked out HDF5.

    spec_for(variable_name, dtype, is_coordinate) -> ('lossless',) | ('rel', E) | ('abs', A)
    | ('none',) for float variables (is_coordinate: a dimension scale, or a variable CF names as
    another's bounds or auxiliary coordinate).
    datasets: expected dataset paths (default: every numeric dataset of src).
    Returns {variable name: max abs error} for float variables."""
    errors = {}
    with h5py.File(src, "r") as fs, h5py.File(out, "r") as fo:
        ds_src = h5_datasets(fs)
        coords = cf_coordinates(fs)
        if datasets is None:
            datasets = sorted(p for p, d in ds_src.items() if is_numeric_dtype(d.dtype))
        ds_out = h5_datasets(fo)
        assert sorted(ds_out) == sorted(datasets), f"unpacked datasets {sorted(ds_out)} != {sorted(datasets)}"
        hds = {d["path"]: d for d in header["datasets"]}
        assert sorted(hds) == sorted(datasets), f"header datasets {sorted(hds)} != {sorted(datasets)}"
        # root group attributes (and those of any group on the way)
        assert_attrs_equal(fs.attrs, fo.attrs, "/")
        for path in datasets:
            s, o = ds_src[path], ds_out[path]
            for g in Path(path).parents:
                gp = str(g)
                if gp != "/":
                    assert_attrs_equal(fs[gp].attrs, fo[gp].attrs, gp)
            assert o.shape == s.shape, f"{path}: shape {o.shape} != {s.shape}"
            assert o.dtype == s.dtype, f"{path}: dtype {o.dtype} != {s.dtype}"
            if s.dtype.names:
                assert o.dtype.names == s.dtype.names, f"{path}: field order differs"
                for fname in s.dtype.names:
                    assert o.dtype[fname].str == s.dtype[fname].str, \
                        f"{path}.{fname}: dtype {o.dtype[fname].str} != {s.dtype[fname].str}"
            else:
                assert o.dtype.str == s.dtype.str, f"{path}: dtype {o.dtype.str} != {s.dtype.str}"
            assert_attrs_equal(s.attrs, o.attrs, path)
            hd = hds[path]
            assert hd["shape"] == list(s.shape), f"{path}: header shape {hd['shape']}"
            columns = hd["kind"] == "columns"
            if columns:
                # A 2-D float array read as a table: a variable per column, each its own bound.
                assert not s.dtype.names and s.ndim == 2 and s.dtype.kind == "f", f"{path}: columns kind for {s.dtype} {s.shape}"
                expected_vars = [(v["name"], j) for j, v in enumerate(hd["variables"])]
                assert len(expected_vars) == s.shape[1], f"{path}: {len(expected_vars)} column variables for {s.shape}"
            else:
                assert hd["kind"] == ("compound" if s.dtype.names else "array")
                expected_vars = variables_of(path, s.dtype)
                assert [(v["name"], v.get("field")) for v in hd["variables"]] == expected_vars, \
                    f"{path}: header variables {[v['name'] for v in hd['variables']]}"
            xs, xo = s[()], o[()]
            attrs = {} if s.dtype.names else dict(s.attrs)
            for (vname, field), hvar in zip(expected_vars, hd["variables"]):
                if columns:
                    x, y = xs[:, field], xo[:, field]
                else:
                    x = xs[field] if field else xs
                    y = xo[field] if field else xo
                x, y = np.asarray(x), np.asarray(y)
                dt = s.dtype if columns or not field else s.dtype[field]
                assert hvar["byte_order"] == ("be" if dt.byteorder == ">" else "le"), \
                    f"{vname}: header byte_order {hvar['byte_order']}"
                assert DTYPES[hvar["dtype"]].kind == dt.kind and DTYPES[hvar["dtype"]].itemsize == dt.itemsize, \
                    f"{vname}: header dtype {hvar['dtype']} for {dt.str}"
                assert y.dtype.str == x.dtype.str
                if dt.kind in "biu":
                    assert hvar["error"]["mode"] == "lossless", f"{vname}: {hvar['error']}"
                    assert np.array_equal(x, y), f"{vname}: integer/bool variable changed"
                    continue
                miss = cf_missing(x, attrs)
                check_stats(vname, x, hvar, miss)
                dimscale = is_dimension_scale(s) or path in coords
                errors[vname] = check_float_variable(vname, x, y, spec_for(vname, dt, dimscale), hvar, miss)
    return errors


@pytest.fixture(scope="session")
def check_roundtrip():
    return check_h5_roundtrip


@pytest.fixture(scope="session")
def float_check():
    return check_float_variable
