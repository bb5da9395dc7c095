"""Plain 2-D float arrays (events x features, Baler's own input layout) are tables: a variable per
column, each with its own `rel` bound, statistics and eval entry; the file keeps the plain array.
Image-like 2-D arrays stay fields (one bound). `--layout table|field` overrides; pack prints the
choice.

Data: the ATLAS ntuple of uproot-issue63.root (9812 rows, its float branches as columns) and the
CMS dimuon events of uproot-Zmumu.root (2304 x 15 float64), written as plain 2-D arrays to HDF5
and .npy; NEMO's nav_lat (330 x 360) as an image-like field.
"""
import json

import h5py
import numpy as np
import pytest

from conftest import _iris_sample

REL = 1e-3


def header_of(cli, archive):
    return json.loads(cli("inspect", archive, "--json").stdout)["header"]


def float_matrix(h5path, dataset):
    with h5py.File(h5path, "r") as f:
        t = f[dataset][()]
    names = [n for n in t.dtype.names if t.dtype[n].kind == "f" and t.dtype[n].itemsize == 4]
    return np.column_stack([t[n] for n in names]).astype("<f4"), names


@pytest.fixture(scope="module")
def issue63_matrix(issue63_h5):
    m, names = float_matrix(issue63_h5, "WtLoop_nominal")
    assert m.shape[0] == 9812 and m.shape[1] >= 100
    # The point of per-column bounds: some columns span far less than the widest one.
    rng = m.max(0) - m.min(0)
    assert rng.max() > 1e3 * np.median(rng[rng > 0])
    return m, names


def check_columns(x, y, rel, what):
    assert y.shape == x.shape and y.dtype == x.dtype, (what, y.shape, y.dtype)
    for j in range(x.shape[1]):
        c = x[:, j].astype(np.float64)
        tol = rel * (c.max() - c.min())
        err = np.abs(y[:, j].astype(np.float64) - c).max()
        assert err <= tol, f"{what}: column {j}: max error {err} > {tol} (rel={rel} of the column's range)"


@pytest.mark.parametrize("fmt", ["h5", "npy"])
def test_2d_float_array_is_a_table(cli, tmp_path, issue63_matrix, fmt):
    m, _ = issue63_matrix
    if fmt == "h5":
        src = tmp_path / "m.h5"
        with h5py.File(src, "w") as f:
            f.create_dataset("events", data=m)
        name = "events"
    else:
        src = tmp_path / "events.npy"
        np.save(src, m)
        name = "events"
    arc, out = tmp_path / "a.baler", tmp_path / f"out.{fmt}"
    r = cli("pack", src, "-o", arc, "--error", f"rel={REL}")
    assert f"{name}: read as a table of {m.shape[1]} columns" in r.stdout, r.stdout
    cli("unpack", arc, "-o", out)
    if fmt == "h5":
        with h5py.File(out, "r") as f:
            y = f[name][()]
    else:
        y = np.load(out)
    check_columns(m, y, REL, fmt)
    h = header_of(cli, arc)
    (d,) = h["datasets"]
    assert d["kind"] == "columns" and d["shape"] == list(m.shape)
    assert [v["name"] for v in d["variables"]] == [f"{name}[{j}]" for j in range(m.shape[1])]
    for j, v in enumerate(d["variables"]):
        c = m[:, j].astype(np.float64)
        assert abs(v["error"]["abs"] - REL * (c.max() - c.min())) <= 1e-9 * max(v["error"]["abs"], 1e-300), (j, v["error"])


def test_column_names_from_an_attribute_and_per_column_specs(cli, tmp_path, issue63_matrix):
    m, names = issue63_matrix
    src, arc, out = tmp_path / "named.h5", tmp_path / "n.baler", tmp_path / "n.h5"
    with h5py.File(src, "w") as f:
        d = f.create_dataset("jets", data=m)
        d.attrs["names"] = names
    one = names[3]
    cli("pack", src, "-o", arc, "--error", "rel=1e-2", "--error", f"{one}:lossless")
    h = header_of(cli, arc)
    vars_ = h["datasets"][0]["variables"]
    assert [v["name"] for v in vars_] == [f"jets.{n}" for n in names]
    assert [v["error"]["mode"] for v in vars_].count("lossless") == 1
    cli("unpack", arc, "-o", out)
    with h5py.File(out, "r") as f:
        y = f["jets"][()]
        assert list(f["jets"].attrs["names"]) == names
    assert y[:, 3].tobytes() == m[:, 3].tobytes(), "the column named lossless is exact"
    check_columns(m, y, 1e-2, "named")


def test_layout_field_override_gives_one_bound(cli, tmp_path, issue63_matrix):
    m, _ = issue63_matrix
    src, arc, out = tmp_path / "m.h5", tmp_path / "f.baler", tmp_path / "f.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("events", data=m)
    r = cli("pack", src, "-o", arc, "--error", f"rel={REL}", "--layout", "field")
    assert "events: read as one field" in r.stdout, r.stdout
    (d,) = header_of(cli, arc)["datasets"]
    assert d["kind"] == "array" and len(d["variables"]) == 1
    whole = float(m.astype(np.float64).max() - m.astype(np.float64).min())
    assert abs(d["variables"][0]["error"]["abs"] - REL * whole) <= 1e-9 * REL * whole


def test_image_like_2d_array_stays_a_field(cli, tmp_path):
    src = _iris_sample("NEMO/nemo_1m_20150101-20150201_grid-T.nc")
    arc, out = tmp_path / "img.baler", tmp_path / "img.h5"
    r = cli("pack", src, "-o", arc, "--dataset", "nav_lat", "--error", f"rel={REL}")
    assert "nav_lat: read as one field" in r.stdout, r.stdout
    # --dataset brings nav_lat's dimension scales (x, y) too
    (d,) = [d for d in header_of(cli, arc)["datasets"] if d["path"] == "/nav_lat"]
    assert d["kind"] == "array" and d["shape"] == [330, 360]
    # ... unless the user says otherwise
    r = cli("pack", src, "-o", arc, "--dataset", "nav_lat", "--error", f"rel={REL}", "--layout", "nav_lat:table")
    assert "nav_lat: read as a table of 360 columns" in r.stdout and "--layout" in r.stdout, r.stdout
    cli("unpack", arc, "-o", out)
    with h5py.File(src, "r") as fs, h5py.File(out, "r") as fo:
        check_columns(fs["nav_lat"][()], fo["nav_lat"][()], REL, "nav_lat as a table")


def test_bad_layout_requests_are_refused(cli, tmp_path, issue63_matrix):
    m, _ = issue63_matrix
    src = tmp_path / "m.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("events", data=m)
        f.create_dataset("flat", data=m[:, 0])
    for layout, says in [("nosuch:table", "no dataset 'nosuch'"), ("flat:table", "not a 2-D float array"),
                         ("grid", "unknown layout 'grid'")]:
        out = tmp_path / "x.baler"
        r = cli("pack", src, "-o", out, "--layout", layout, expect_fail=True)
        assert r.returncode != 0 and says in r.stderr, (layout, r.stderr)
        assert not out.exists()


def test_eval_reports_each_column(cli, tmp_path, zmumu_h5):
    with h5py.File(zmumu_h5, "r") as f:
        t = f["events"][()]
    names = [n for n in t.dtype.names if t.dtype[n].kind == "f"]
    m = np.column_stack([t[n] for n in names])
    src, arc, rep = tmp_path / "z.h5", tmp_path / "z.baler", tmp_path / "rep"
    with h5py.File(src, "w") as f:
        f.create_dataset("events", data=m).attrs["names"] = names
    cli("pack", src, "-o", arc, "--error", f"rel={REL}")
    cli("eval", src, arc, "-o", rep, "-q")
    s = json.loads((rep / "summary.json").read_text())
    vs = s["datasets"][0]["variables"]
    assert [v["name"] for v in vs] == [f"events.{n}" for n in names]
    for j, v in enumerate(vs):
        c = m[:, j]
        assert v["bound_held"] is True
        assert abs(v["tolerance"] - REL * (c.max() - c.min())) <= 1e-9 * v["tolerance"]
