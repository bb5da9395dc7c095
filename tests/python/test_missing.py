"""Missing values, the way the user means them: fill values (CF _FillValue, missing_value,
valid_min/valid_max/valid_range) and NaN are stored bit for bit and are not part of the range a
`rel` bound is relative to, nor of the error statistics, nor of eval's histograms and pictures.

Data: real ocean fields of iris-sample-data with their own fill values:
  ostia_monthly.nc  surface_temperature (54, 18, 432) f32, _FillValue 1e20 over land (26 %)
  NEMO ... grid-T   tos (1, 330, 360) f32, _FillValue = missing_value = 1e20 (45 %)
  levitus_climatology.cdf (Debian ferret-datasets; netCDF classic, read directly)
                    TEMP, SALT (20, 180, 360) f32, _FillValue = missing_value = -1e10 (44.5 %)
Before this rule, `--error rel=1e-3` on ostia resolved to abs ~1e17 and every valid value came
back as one number while pack and eval reported the bound held.
"""
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from jsonschema import Draft202012Validator

from conftest import SCHEMA_PATH, _iris_sample, cf_missing

FIELDS = {
    "ostia": ("ostia_monthly.nc", "surface_temperature"),
    "nemo": ("NEMO/nemo_1m_20150101-20150201_grid-T.nc", "tos"),
}
LEVITUS = Path("/usr/share/ferret-vis/data/levitus_climatology.cdf")
EVAL_SCHEMA = SCHEMA_PATH.parent / "eval-summary.schema.json"


def header_of(cli, archive):
    return json.loads(cli("inspect", archive, "--json").stdout)["header"]


def variable(header, name):
    for d in header["datasets"]:
        for v in d["variables"]:
            if v["name"] == name:
                return v
    raise AssertionError(f"no variable {name} in the header")


def check_field(x, y, attrs, rel, name):
    """Every fill element bit-exact, every valid element within rel x the VALID range."""
    miss = cf_missing(x, attrs)
    assert miss.any(), f"{name}: the real field has fill values"
    assert x[miss].tobytes() == y[miss].tobytes(), f"{name}: fill elements changed"
    v = x[~miss].astype(np.float64)
    tol = rel * (v.max() - v.min())
    err = np.abs(y[~miss].astype(np.float64) - v)
    assert err.max() <= tol, f"{name}: max error {err.max()} > {tol} (rel={rel} of the valid range)"
    return err.max() / tol, tol


@pytest.mark.parametrize("field", sorted(FIELDS))
@pytest.mark.parametrize("rel", [1e-2, 1e-3, 1e-4])
def test_fill_values_keep_the_bound_on_valid_values(cli, tmp_path, field, rel):
    fname, var = FIELDS[field]
    src = _iris_sample(fname)
    arc, out = tmp_path / "a.baler", tmp_path / "out.nc"
    cli("pack", src, "-o", arc, "--dataset", var, "--error", f"rel={rel}")
    cli("unpack", arc, "-o", out)
    with h5py.File(src, "r") as fs, h5py.File(out, "r") as fo:
        x, y, attrs = fs[var][()], fo[var][()], dict(fs[var].attrs)
        assert fo[var].dtype == fs[var].dtype
    frac, tol = check_field(x, y, attrs, rel, field)
    h = header_of(cli, arc)
    hv = variable(h, var)
    assert np.array(hv["missing"]["fill"], np.float32).tolist() == [np.float32(1e20)], hv["missing"]
    assert "_FillValue" in hv["missing"]["from"], hv["missing"]
    miss = cf_missing(x, attrs)
    assert hv["stats"]["missing"] == int(miss.sum())
    assert hv["stats"]["max"] < 1e3, "the range is over the valid values only"
    assert abs(hv["error"]["abs"] - tol) <= 1e-9 * tol, (hv["error"], tol)


def test_eval_leaves_fill_values_out(cli, tmp_path):
    fname, var = FIELDS["ostia"]
    src = _iris_sample(fname)
    arc, rep = tmp_path / "a.baler", tmp_path / "report"
    cli("pack", src, "-o", arc, "--dataset", var, "--error", "rel=1e-3")
    cli("eval", src, arc, "-o", rep, "-q")
    summary = json.loads((rep / "summary.json").read_text())
    Draft202012Validator(json.loads(EVAL_SCHEMA.read_text())).validate(summary)
    vs = [v for d in summary["datasets"] for v in d["variables"] if v["name"] == var]
    assert len(vs) == 1, summary
    v = vs[0]
    with h5py.File(src, "r") as f:
        x, attrs = f[var][()], dict(f[var].attrs)
    miss = cf_missing(x, attrs)
    assert v["missing"] == int(miss.sum()) and v["mismatched_missing"] == 0
    assert v["bound_held"] is True
    assert v["max_abs_error"] <= v["tolerance"]
    valid = x[~miss]
    # the histograms span the valid values, not the fill value
    h = v["histograms"]["original"]
    assert 100 < h["lo"] < h["hi"] < 1e3, (h["lo"], h["hi"])
    assert sum(h["counts"]) + h["underflow"] + h["overflow"] == valid.size


def test_bad_missing_value_declarations_are_refused(cli, tmp_path):
    fname, var = FIELDS["nemo"]
    with h5py.File(_iris_sample(fname), "r") as f:
        x = f[var][()]
    cases = {
        "string_fill": ("_FillValue", np.bytes_(b"none"), "_FillValue"),
        "reversed_range": ("valid_range", np.array([40.0, -5.0], np.float32), "reversed"),
    }
    for case, (attr, value, says) in cases.items():
        src = tmp_path / f"{case}.h5"
        with h5py.File(src, "w") as f:
            d = f.create_dataset(var, data=x)
            d.attrs[attr] = value
        out = tmp_path / f"{case}.baler"
        r = cli("pack", src, "-o", out, "--error", "rel=1e-3", expect_fail=True)
        err = r.stderr.strip()
        assert r.returncode == 1 and len(err.splitlines()) == 1, (case, r.stderr)
        assert src.name in err and says in err and var in err, (case, err)
        assert not out.exists(), f"{case}: an output was left behind"


def test_valid_range_marks_values_missing(cli, tmp_path):
    """valid_min/valid_max: values outside are missing (kept exactly, out of the range)."""
    fname, var = FIELDS["nemo"]
    with h5py.File(_iris_sample(fname), "r") as f:
        x = f[var][()]
    src, arc, out = tmp_path / "v.h5", tmp_path / "v.baler", tmp_path / "v.h5out.h5"
    with h5py.File(src, "w") as f:
        d = f.create_dataset(var, data=x)
        d.attrs["valid_min"] = np.float32(-2.0)
        d.attrs["valid_max"] = np.float32(35.0)
    cli("pack", src, "-o", arc, "--error", "rel=1e-3")
    cli("unpack", arc, "-o", out)
    with h5py.File(src, "r") as fs, h5py.File(out, "r") as fo:
        attrs = dict(fs[var].attrs)
        check_field(fs[var][()], fo[var][()], attrs, 1e-3, "nemo valid range")


def test_fill_value_option_for_files_without_attributes(cli, tmp_path):
    """A .npy has no attributes: --fill-value declares the marker; `none` turns a declared one off."""
    fname, var = FIELDS["ostia"]
    src = _iris_sample(fname)
    with h5py.File(src, "r") as f:
        x = f[var][()]
    npy, arc, out = tmp_path / "sst.npy", tmp_path / "n.baler", tmp_path / "back.npy"
    np.save(npy, x)
    r = cli("pack", npy, "-o", arc, "--error", "rel=1e-3", "--fill-value", "1e20")
    assert "missing elements kept exactly" in r.stdout, r.stdout
    cli("unpack", arc, "-o", out)
    check_field(x, np.load(out), {"_FillValue": np.float32(1e20)}, 1e-3, "npy with --fill-value")
    # `none`: the user says the fill value is data; the range then spans it, as asked
    cli("pack", src, "-o", arc, "--dataset", var, "--error", "rel=1e-3", "--fill-value", f"{var}:none")
    hv = variable(header_of(cli, arc), var)
    assert hv["stats"]["max"] > 1e19 and hv["missing"]["from"] == ["--fill-value"] and "fill" not in hv["missing"]
    r = cli("pack", src, "-o", arc, "--fill-value", "nosuch:1", expect_fail=True)
    assert "no variable or dataset named 'nosuch'" in r.stderr


def read_nc3(path, var):
    """A variable of a netCDF classic file and its attributes, read by the netCDF library."""
    import netCDF4
    with netCDF4.Dataset(path) as nc:
        v = nc[var]
        v.set_auto_maskandscale(False)
        return np.asarray(v[:]), {k: v.getncattr(k) for k in v.ncattrs()}


@pytest.mark.parametrize("rel", [1e-2, 1e-3, 1e-4])
def test_levitus_netcdf3_with_fill_values(cli, tmp_path, rel):
    if not LEVITUS.is_file():
        pytest.fail(f"{LEVITUS} missing: scripts/setup.sh installs Debian's ferret-datasets", pytrace=False)
    arc, out = tmp_path / "lev.baler", tmp_path / "lev.nc"
    r = cli("pack", LEVITUS, "-o", arc, "--error", f"rel={rel}")
    assert "TEMP: 577275 missing elements kept exactly" in r.stdout, r.stdout
    cli("unpack", arc, "-o", out)
    for var in ("TEMP", "SALT"):
        x, attrs = read_nc3(LEVITUS, var)
        with h5py.File(out, "r") as f:
            y = f[var][()]
        # netCDF-3 is big-endian and the unpacked file keeps it (`>f4`); netCDF4 reads native
        assert y.dtype.str == ">f4" and y.shape == x.shape, (y.dtype, y.shape)
        check_field(x, y.astype(x.dtype), attrs, rel, f"levitus {var}")


def test_h5_compress_keeps_a_quantisable_fill_value_exact(cli, tmp_path):
    """A fill value inside the data's scale (-999 with a 0.3 K bound) would be quantised like
    any value; h5 compress hands it to the filter, which keeps it bit for bit."""
    from test_h5filter import bare_env, read_in_new_process
    fname, var = FIELDS["nemo"]
    with h5py.File(_iris_sample(fname), "r") as f:
        x = f[var][()]
    x = np.where(x == np.float32(1e20), np.float32(-999.0), x)
    src, out = tmp_path / "n999.h5", tmp_path / "n999.filtered.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset(var, data=x).attrs["_FillValue"] = np.float32(-999.0)
    cli("h5", "compress", src, out, "--error", "rel=1e-2")
    import balerfile_h5
    with h5py.File(out, "r") as f:
        _, cd, _ = f[var].id.get_create_plist().get_filter_by_id(balerfile_h5.FILTER_ID)
    assert balerfile_h5.parse_cd_values(cd)["fill"] == -999.0, "the filter was not told the fill value"
    y = read_in_new_process(out, var, tmp_path / "y.npy", bare_env())
    check_field(x, y, {"_FillValue": np.float32(-999.0)}, 1e-2, "h5 compress, fill -999")


def test_hdf5_fill_value_property_is_missing_in_pack_and_h5_compress(cli, hadcm3, tmp_path):
    """A fill value set on the dataset (h5py's fillvalue=, no CF attribute) marks missing
    elements in pack and h5 compress as it does in the filter (README, "Your data"): h5 compress
    had taken -999 into the rel range (errors 150x the bound on valid values), and both dropped
    the property (it read back 0)."""
    with h5py.File(hadcm3, "r") as f:
        x = f["air_temperature"][:24].astype("f4")
    x[:, :5, :7] = -999
    src = tmp_path / "fp.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("t", data=x, chunks=(4, 37, 49), fillvalue=-999)
    valid = x != -999
    tol = 1e-3 * float(x[valid].max() - x[valid].min())
    arch, back, comp = tmp_path / "fp.baler", tmp_path / "back.h5", tmp_path / "comp.h5"
    r = cli("pack", src, "-o", arch, "--error", "rel=1e-3")
    assert "from hdf5 fill value" in r.stdout + r.stderr
    cli("unpack", arch, "-o", back)
    cli("h5", "compress", src, comp, "--error", "rel=1e-3", "--no-model")
    for out in (back, comp):
        with h5py.File(out, "r") as f:
            y = f["t"][()]
            assert f["t"].fillvalue == -999, out
        assert np.array_equal(x[~valid].view("u4"), y[~valid].view("u4")), out
        assert np.abs(y[valid].astype("f8") - x[valid]).max() <= tol, out


@pytest.mark.parametrize("markers", [(1e20, -999.0), (1e20,)])
def test_h5_compress_keeps_every_missing_value_the_data_holds(cli, tmp_path, markers):
    """The filter keeps one fill value exactly. h5 compress had handed it the first of
    missing_value = [1e20, -999] and coded the -999s (sea ice beside land) as values: they came
    back -999.03, readers stopped masking them and a global mean moved by 24 K. Now the one
    marker the data holds is the filter's; holding two, the variable is coded losslessly."""
    from test_h5filter import bare_env, read_in_new_process
    fname, var = FIELDS["nemo"]
    with h5py.File(_iris_sample(fname), "r") as f:
        x = f[var][()]
    if len(markers) == 2:
        x[:, :60, :] = np.where(x[:, :60, :] != np.float32(1e20), np.float32(-999.0), x[:, :60, :])
    src, out = tmp_path / "mv.h5", tmp_path / "mv.filtered.h5"
    attrs = {"missing_value": np.array([1e20, -999.0], "f4"), "valid_max": np.float32(1e3)}
    with h5py.File(src, "w") as f:
        d = f.create_dataset(var, data=x)
        for k, v in attrs.items():
            d.attrs[k] = v
    r = cli("h5", "compress", src, out, "--error", "rel=1e-2", "--no-model")
    y = read_in_new_process(out, var, tmp_path / "y.npy", bare_env())
    if len(markers) == 2:
        assert f"/{var}: coded losslessly: it holds the missing values 1.0000000200408773e20, -9.99e2" in r.stdout, r.stdout
        assert np.array_equal(x.view("u4"), y.view("u4"))
    else:
        assert f"/{var}: the filter keeps the fill value 1.0000000200408773e20 exactly (the only value the data holds that its attributes mark missing)" in r.stdout, r.stdout
        check_field(x, y, attrs, 1e-2, "h5 compress, one marker held")
        assert not np.array_equal(x, y), "the bound was not used"
