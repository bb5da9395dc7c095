"""NumPy .npz in and out, checked with numpy's own np.load against the originals.

Real data: the ATLAS ntuple of scikit-hep-testdata 0.3.12 (uproot-issue63.root, tree
WtLoop_nominal, 9812 events), read with uproot. Baler's own input layout is an .npz of `data`
(events x columns, float) and `names` (one string per column); balerfile reads `data` as a table
named by `names`, bounds each column by its own range, and writes the same layout back.
"""
import io
import json
import os
import zipfile

import numpy as np
import pytest
import uproot

REL = 1e-3


@pytest.fixture(scope="session")
def ntuple():
    """(data, names): every flat float branch of WtLoop_nominal as one column (float32, as the
    branches are), and an int branch and a double branch for the multi-array tests."""
    import skhep_testdata
    p = skhep_testdata.data_path("uproot-issue63.root")
    with uproot.open(p) as f:
        t = f["WtLoop_nominal"]
        names = [b for b in t.keys() if t[b].typename == "float"]
        arrays = t.arrays(names + ["nbjets", "runNumber"], library="np")
    data = np.stack([arrays[n] for n in names], axis=1)
    assert data.dtype == np.float32 and data.shape == (9812, len(names)) and len(names) > 100
    ints = np.asarray(arrays["nbjets"])
    assert ints.dtype.kind in "iu"
    return data, names, ints


@pytest.fixture(params=["savez", "savez_compressed"])
def baler_npz(request, tmp_path, ntuple):
    data, names, _ = ntuple
    p = tmp_path / "baler.npz"
    getattr(np, request.param)(p, data=data, names=np.array(names))
    return p


def load(p):
    with np.load(p, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def header_of(cli, archive):
    return json.loads(cli("inspect", archive, "--json").stdout)["header"]


def assert_columns_within(x, y, names, rel):
    """Every column within rel x that column's own range (not the whole array's)."""
    assert y.shape == x.shape and y.dtype == x.dtype
    worst = 0.0
    for j, n in enumerate(names):
        a, b = x[:, j].astype("f8"), y[:, j].astype("f8")
        fin = np.isfinite(a)
        assert a[~fin].tobytes() == b[~fin].tobytes(), f"{n}: non-finite values changed"
        if not fin.any():
            continue
        tol = rel * (a[fin].max() - a[fin].min())
        err = np.abs(b[fin] - a[fin]).max()
        if tol == 0:
            assert err == 0, f"{n}: constant column changed"
            continue
        assert err <= tol, f"{n}: max error {err} > {tol} (rel {rel} of its range)"
        worst = max(worst, err / tol)
    return worst


def test_baler_layout_round_trips_with_names_and_per_column_bounds(cli, baler_npz, ntuple, tmp_path):
    data, names, _ = ntuple
    arc = tmp_path / "a.baler"
    r = cli("pack", baler_npz, "-o", arc, "--error", f"rel={REL}")
    said = r.stdout + r.stderr
    assert f"data: read as a table of {len(names)} columns" in said, said
    h = header_of(cli, arc)
    assert h["source"]["kind"] == "npz"
    [ds] = h["datasets"]
    assert ds["path"] == "/data" and ds["kind"] == "columns" and ds["shape"] == list(data.shape)
    assert [v["name"] for v in ds["variables"]] == [f"data.{n}" for n in names]
    assert ds["attributes"]["names"]["value"] == names
    # The bound of each column comes from its own range.
    for j, v in enumerate(ds["variables"]):
        col = data[:, j].astype("f8")
        fin = col[np.isfinite(col)]
        assert v["error"]["abs"] == pytest.approx(REL * (fin.max() - fin.min()), rel=1e-12, abs=0), v["name"]

    out = tmp_path / "y.npz"
    cli("unpack", arc, "-o", out)
    got = load(out)
    assert sorted(got) == ["data", "names"]
    worst = assert_columns_within(data, got["data"], names, REL)
    assert 0 < worst <= 1
    assert got["names"].dtype.kind == "U" and got["names"].tolist() == names
    # The check above is per column: one bound over the whole array would be 1000 times looser
    # on these columns.
    fin = data[np.isfinite(data)].astype("f8")
    whole = fin.max() - fin.min()
    narrow = [n for j, n in enumerate(names) if 0 < np.ptp(data[:, j].astype("f8")) < whole / 1000]
    assert len(narrow) >= 10, narrow
    # np.savez's own layout: stored members, readable by zipfile.
    with zipfile.ZipFile(out) as z:
        assert z.testzip() is None
        assert {i.filename: i.compress_type for i in z.infolist()} == {"data.npy": 0, "names.npy": 0}


def test_lossless_round_trip_is_byte_exact(cli, baler_npz, ntuple, tmp_path):
    data, names, _ = ntuple
    arc = tmp_path / "a.baler"
    cli("pack", baler_npz, "-o", arc)
    out = tmp_path / "y.npz"
    cli("unpack", arc, "-o", out)
    got = load(out)
    assert got["data"].dtype == data.dtype and got["data"].tobytes() == data.tobytes()
    assert got["names"].tolist() == names


def test_plain_multi_array_npz_round_trips(cli, ntuple, tmp_path):
    data, names, ints = ntuple
    src = {
        "met": data[:, 0].copy(),  # 1-D float32
        "leptons": data[:, 3:5].astype(">f8"),  # 2-D big-endian float64, kept as written
        "nbjets": ints,
    }
    p = tmp_path / "multi.npz"
    np.savez(p, **src)
    arc = tmp_path / "m.baler"
    cli("pack", p, "-o", arc)
    h = header_of(cli, arc)
    assert sorted(d["path"] for d in h["datasets"]) == ["/leptons", "/met", "/nbjets"]
    out = tmp_path / "m.npz"
    cli("unpack", arc, "-o", out)
    got = load(out)
    assert sorted(got) == sorted(src)
    for k, x in src.items():
        assert got[k].dtype.str == x.dtype.str and got[k].shape == x.shape, k
        assert got[k].tobytes() == x.tobytes(), k
    # Lossy: floats within their bounds, the integers exact.
    cli("pack", p, "-o", arc, "--error", f"rel={REL}")
    cli("unpack", arc, "-o", out, "-d", "met", "-d", "nbjets")
    got = load(out)
    assert sorted(got) == ["met", "nbjets"]
    assert np.array_equal(got["nbjets"], ints)
    assert_columns_within(src["met"][:, None], got["met"][:, None], ["met"], REL)


def test_structured_member_reads_as_a_table(cli, ntuple, tmp_path):
    data, names, ints = ntuple
    rec = np.zeros(len(ints), dtype=[("met", "<f4"), ("nbjets", ints.dtype), ("w", "<f8")])
    rec["met"], rec["nbjets"], rec["w"] = data[:, 0], ints, data[:, 1]
    p = tmp_path / "rec.npz"
    np.savez_compressed(p, events=rec)
    arc = tmp_path / "r.baler"
    cli("pack", p, "-o", arc)
    [ds] = header_of(cli, arc)["datasets"]
    assert ds["kind"] == "compound" and [v["name"] for v in ds["variables"]] == ["events.met", "events.nbjets", "events.w"]
    out = tmp_path / "r.npz"
    cli("unpack", arc, "-o", out)
    got = load(out)["events"]
    assert got.dtype == rec.dtype and got.tobytes() == rec.tobytes()


def test_hdf5_archive_unpacks_to_npz(cli, hadcm3, tmp_path):
    import h5py
    arc = tmp_path / "h.baler"
    cli("pack", hadcm3, "-o", arc)
    out = tmp_path / "h.bin"
    cli("unpack", arc, "-o", out, "--to", "npz")
    got = load(out)
    with h5py.File(hadcm3, "r") as f:
        want = {}
        f.visititems(lambda n, o: want.__setitem__(n.replace("/", "_"), o[()]) if isinstance(o, h5py.Dataset) and o.dtype.kind in "biuf" else None)
    assert sorted(got) == sorted(want)
    for k, x in want.items():
        assert got[k].dtype.str == x.dtype.str and got[k].shape == x.shape and got[k].tobytes() == x.tobytes(), k


def test_eval_reads_the_npz_original(cli, baler_npz, ntuple, tmp_path):
    data, names, _ = ntuple
    arc = tmp_path / "a.baler"
    cli("pack", baler_npz, "-o", arc, "--error", f"rel={REL}")
    rep = tmp_path / "report"
    cli("eval", baler_npz, arc, "-o", rep, "--threads", "2", timeout=900)
    summary = json.loads((rep / "summary.json").read_text())
    text = json.dumps(summary)
    assert f"data.{names[0]}" in text and f"data.{names[-1]}" in text
    assert (rep / "report.html").is_file()


# --------------------------------------------------------------------------------------------
# Bad input: one clear error naming the file (and the member), no panic, no output


def fails(cli, src, tmp_path, *words):
    arc = tmp_path / "bad.baler"
    r = cli("pack", src, "-o", arc, expect_fail=True)
    assert r.returncode != 0
    err = r.stderr.strip()
    assert str(src) in err, err
    for w in words:
        assert w in err, f"{w!r} not in: {err}"
    assert len([l for l in err.splitlines() if l.strip()]) == 1, err
    assert not arc.exists()
    assert not [f for f in os.listdir(tmp_path) if "balerfile-tmp" in f]
    return err


def stored_member_offset(p, name):
    """Where member `name`'s data starts in the file."""
    with zipfile.ZipFile(p) as z:
        info = z.getinfo(name)
    raw = p.read_bytes()
    o = info.header_offset
    n, e = int.from_bytes(raw[o + 26:o + 28], "little"), int.from_bytes(raw[o + 28:o + 30], "little")
    return o + 30 + n + e, info


def test_zip_that_is_not_an_npz(cli, tmp_path):
    p = tmp_path / "notes.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("readme.txt", "hello")
    fails(cli, p, tmp_path, "not a NumPy .npz", "readme.txt")
    empty = tmp_path / "empty.npz"
    zipfile.ZipFile(empty, "w").close()
    fails(cli, empty, tmp_path, "not a NumPy .npz")


@pytest.mark.parametrize("how", ["savez", "savez_compressed"])
def test_truncated_npz(cli, ntuple, tmp_path, how):
    data, names, _ = ntuple
    p = tmp_path / "t.npz"
    getattr(np, how)(p, data=data, names=np.array(names))
    raw = p.read_bytes()
    for cut in (len(raw) // 2, len(raw) - 10):
        q = tmp_path / f"cut{cut}.npz"
        q.write_bytes(raw[:cut])
        fails(cli, q, tmp_path, "truncated")
        q.unlink()


def test_damaged_stored_member(cli, ntuple, tmp_path):
    data, names, _ = ntuple
    p = tmp_path / "d.npz"
    np.savez(p, data=data, names=np.array(names))
    start, info = stored_member_offset(p, "data.npy")
    raw = bytearray(p.read_bytes())
    raw[start + info.file_size // 2] ^= 0x40  # one flipped bit in the middle of the data
    p.write_bytes(bytes(raw))
    fails(cli, p, tmp_path, "data.npy", "CRC-32")
    raw[start + info.file_size // 2] ^= 0x40
    raw[start:start + 6] = b"XXXXXX"  # the .npy magic
    p.write_bytes(bytes(raw))
    fails(cli, p, tmp_path, "data.npy", "not a .npy array")


def test_damaged_deflated_member(cli, ntuple, tmp_path):
    data, names, _ = ntuple
    p = tmp_path / "d.npz"
    np.savez_compressed(p, data=data, names=np.array(names))
    start, info = stored_member_offset(p, "data.npy")
    raw = bytearray(p.read_bytes())
    for k in range(64):
        raw[start + info.compress_size // 2 + k] ^= 0xFF
    p.write_bytes(bytes(raw))
    fails(cli, p, tmp_path, "data.npy", "damaged")


def test_npz_without_data_and_with_skipped_members(cli, ntuple, tmp_path):
    data, names, ints = ntuple
    p = tmp_path / "o.npz"
    np.savez(p, jets=data[:, :4], labels=np.array(["a", "b"]), when=np.array(["2020-01-01"], dtype="datetime64[D]"))
    arc = tmp_path / "o.baler"
    r = cli("pack", p, "-o", arc)
    assert "skipped labels" in r.stderr and "skipped when" in r.stderr, r.stderr
    h = header_of(cli, arc)
    assert [d["path"] for d in h["datasets"]] == ["/jets"]
    assert sorted(s["path"] for s in h["skipped"]) == ["labels", "when"]
    out = tmp_path / "o2.npz"
    cli("unpack", arc, "-o", out)
    got = load(out)
    assert sorted(got) == ["jets"] and got["jets"].tobytes() == data[:, :4].tobytes()
    # Naming a skipped member is an error.
    r = cli("pack", p, "-o", arc, "-d", "labels", expect_fail=True)
    assert "labels" in r.stderr and r.returncode != 0


def test_bytes_names_and_x_names(cli, ntuple, tmp_path):
    data, names, _ = ntuple
    p = tmp_path / "n.npz"
    np.savez(p, jets=data[:, :8], jets_names=np.array([n.encode() for n in names[:8]]))
    arc = tmp_path / "n.baler"
    r = cli("pack", p, "-o", arc, "--layout", "table")
    [ds] = header_of(cli, arc)["datasets"]
    assert [v["name"] for v in ds["variables"]] == [f"jets.{n}" for n in names[:8]]
    out = tmp_path / "n2.npz"
    cli("unpack", arc, "-o", out)
    got = load(out)
    assert sorted(got) == ["jets", "jets_names"] and got["jets_names"].tolist() == names[:8]
