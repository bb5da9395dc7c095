"""RNTuples (what uproot 5.7 writes for `f["t"] = {...}`) to and from .baler archives.

Real data from scikit-hep-testdata written as RNTuples by uproot: HZZ's events (jagged jets,
muons, electrons, photons and their counters), Zmumu's CMS events, issue63's ATLAS ntuple
(9812 rows, floats, ints, bools). Packed at rel=1e-3 and lossless, unpacked to ROOT: uproot
reads back an RNTuple with the same fields, types, entries and per-entry lengths, floats within
bound, integers and bools exact; and the file is no larger than the one uproot wrote.
"""
import os
import re

import awkward as ak
import numpy as np
import pytest
import uproot

REL = 1e-3


def data(name):
    import skhep_testdata
    return skhep_testdata.data_path(name)


def tree_arrays(name, tree):
    """The numeric branches of a real TTree as awkward arrays (text left out)."""
    t = uproot.open(data(name))[tree]
    keep = [k for k in t.keys() if t[k].typename not in ("char*", "TString") and "string" not in t[k].typename]
    return {k: t[k].array() for k in keep}


COMPRESSION = {"zlib": uproot.ZLIB(1), "zstd": uproot.ZSTD(5), "lz4": uproot.LZ4(4), "lzma": uproot.LZMA(6), "none": None}


def write_rntuple(path, arrays, compression="zlib", clusters=1, name="events"):
    """An RNTuple as uproot writes it: one cluster per `extend`."""
    n = len(next(iter(arrays.values())))
    cut = [n * i // clusters for i in range(clusters + 1)]
    with uproot.recreate(path, compression=COMPRESSION[compression]) as f:
        f[name] = {k: v[cut[0]:cut[1]] for k, v in arrays.items()}
        for i in range(1, clusters):
            f[name].extend({k: v[cut[i]:cut[i + 1]] for k, v in arrays.items()})
    with uproot.open(path) as f:
        assert f.classnames() == {f"{name};1": "ROOT::RNTuple"}, f.classnames()
    return path


def compare(src, out, rel=REL, name="events", skipped=()):
    """Every field of src but `skipped` is in out with the same type, entries and lengths;
    floats within rel x the field's range, the rest exact. Returns the worst error / bound."""
    worst = 0.0
    with uproot.open(src) as a, uproot.open(out) as b:
        assert b.classnames()[f"{name};1"] == "ROOT::RNTuple", b.classnames()
        x_all, y_all = a[name].arrays(), b[name].arrays()
        assert b[name].num_entries == a[name].num_entries
        want = [f for f in x_all.fields if f not in skipped]
        assert sorted(y_all.fields) == sorted(want), (y_all.fields, want)
        for k in want:
            x, y = x_all[k], y_all[k]
            assert str(ak.type(x)) == str(ak.type(y)), f"{k}: {ak.type(x)} became {ak.type(y)}"
            if x.ndim > 1:
                assert ak.num(x).to_numpy().tobytes() == ak.num(y).to_numpy().tobytes(), f"{k}: lengths differ"
            for fx, fy in zip(leaves(x), leaves(y)):
                if fx.dtype.kind != "f":
                    assert np.array_equal(fx, fy), f"{k}: integers/bools changed"
                    continue
                fin = np.isfinite(fx)
                assert fx[~fin].tobytes() == fy[~fin].tobytes(), f"{k}: non-finite values changed"
                if not fin.any():
                    continue
                x64, y64 = fx[fin].astype("f8"), fy[fin].astype("f8")
                tol = rel * (x64.max() - x64.min())
                err = np.abs(y64 - x64).max()
                if tol == 0:
                    assert err == 0, f"{k}: changed"
                    continue
                assert err <= tol, f"{k}: max error {err} > bound {tol}"
                worst = max(worst, err / tol)
    return worst


def leaves(arr):
    """The flat numpy arrays of an awkward array's numeric leaves (records field by field)."""
    if arr.fields:
        return [v for f in arr.fields for v in leaves(arr[f])]
    return [ak.to_numpy(ak.flatten(arr, axis=None))]


@pytest.mark.parametrize("source,tree,compression,clusters", [
    ("uproot-HZZ.root", "events", "zlib", 1),
    ("uproot-HZZ.root", "events", "zstd", 3),
    ("uproot-HZZ.root", "events", "lz4", 1),
    ("uproot-HZZ.root", "events", "lzma", 2),
    ("uproot-HZZ.root", "events", "none", 1),
    ("uproot-Zmumu.root", "events", "zlib", 2),
    ("uproot-issue63.root", "WtLoop_nominal", "zlib", 1),
])
def test_uproot_rntuple_packs_and_unpacks_to_an_rntuple_within_bound(cli, tmp_path, source, tree, compression, clusters):
    src = write_rntuple(tmp_path / "in.root", tree_arrays(source, tree), compression, clusters)
    for args, rel in ((["--error", f"rel={REL}"], REL), ([], 0.0)):
        arch, out = tmp_path / "a.baler", tmp_path / "out.root"
        r = cli("pack", src, "-o", arch, *args)
        assert "skipped" not in r.stderr, r.stderr
        cli("unpack", arch, "-o", out)
        worst = compare(src, out, rel=rel)
        if rel:
            assert worst > 0.5, f"suspiciously exact ({worst}): is the bound applied?"
        # a round trip does not grow the file (lossless included: same data, ZSTD and split
        # byte planes against uproot's unsplit pages)
        assert os.path.getsize(out) <= os.path.getsize(src), (os.path.getsize(out), os.path.getsize(src))


def test_records_and_lists_of_records_come_back_as_records(cli, tmp_path):
    """An awkward record and a list of records (a jet with pt, eta) stay records: the per-object
    table holds the record's members side by side."""
    t = uproot.open(data("uproot-HZZ.root"))["events"]
    arrays = {
        "Jet": ak.zip({"px": t["Jet_Px"].array(), "py": t["Jet_Py"].array(), "E": t["Jet_E"].array()}),
        "MET": ak.zip({"px": t["MET_px"].array(), "py": t["MET_py"].array()}),
        "NPrimaryVertices": t["NPrimaryVertices"].array(),
    }
    src = write_rntuple(tmp_path / "in.root", arrays)
    arch, out = tmp_path / "a.baler", tmp_path / "out.root"
    cli("pack", src, "-o", arch, "--error", f"rel={REL}")
    header = cli("inspect", arch, "--json").stdout
    assert '"/events/Jet"' in header and "Jet.px" in header, "the jets' members share one per-object table"
    cli("unpack", arch, "-o", out)
    compare(src, out)


def test_unsupported_fields_are_skipped_with_a_warning_and_refused_with_strict(cli, tmp_path):
    arrays = {
        "x": np.arange(100, dtype=np.float32),
        "label": ak.Array([f"event {i}" for i in range(100)]),
        "fixed": np.arange(300, dtype=np.int32).reshape(100, 3),
    }
    src = write_rntuple(tmp_path / "in.root", arrays)
    arch, out = tmp_path / "a.baler", tmp_path / "out.root"
    r = cli("pack", src, "-o", arch, "--error", f"rel={REL}")
    assert re.search(r"label.*text", r.stderr), r.stderr
    assert re.search(r"fixed.*fixed-size array", r.stderr), r.stderr
    cli("unpack", arch, "-o", out)
    compare(src, out, skipped=("label", "fixed"))
    bad = tmp_path / "strict.baler"
    r = cli("pack", src, "-o", bad, "--strict", expect_fail=True)
    assert re.search(r"field .(label|fixed)", r.stderr) and "--strict" in r.stderr, r.stderr
    assert not bad.exists()


def test_damaged_rntuple_is_one_clear_error_and_no_output(cli, tmp_path):
    src = write_rntuple(tmp_path / "in.root", tree_arrays("uproot-Zmumu.root", "events"))
    raw = bytearray(open(src, "rb").read())
    with uproot.open(src) as f:
        nt = f["events"]
        anchor = nt.member("fSeekHeader"), nt.member("fSeekFooter")
    cases = {
        "truncated": bytes(raw[: len(raw) * 2 // 3]),
        "header bit": bytes(raw[: anchor[0] + 40]) + bytes([raw[anchor[0] + 40] ^ 0x10]) + bytes(raw[anchor[0] + 41:]),
        "footer bit": bytes(raw[: anchor[1] + 20]) + bytes([raw[anchor[1] + 20] ^ 0x01]) + bytes(raw[anchor[1] + 21:]),
    }
    # uproot writes no page checksums (a flipped bit in a stored page is a changed value), so a
    # page is damaged in the RNTuple balerfile writes, whose pages carry their XXH3 as ROOT's do
    arch, ours = tmp_path / "a.baler", tmp_path / "ours.root"
    cli("pack", src, "-o", arch, "--error", f"rel={REL}")
    cli("unpack", arch, "-o", ours)
    mine = bytearray(open(ours, "rb").read())
    # the second RBlob key holds the first page (the first, the header); a small key's class
    # name follows 26 bytes of fields and its length byte
    key = [m.start() - 27 for m in re.finditer(b"\x05RBlob", mine)][1] + 1
    page = key + int.from_bytes(mine[key + 14:key + 16], "big") + 2
    cases["page bit"] = bytes(mine[:page]) + bytes([mine[page] ^ 0x04]) + bytes(mine[page + 1:])
    for what, bytes_ in cases.items():
        p = tmp_path / f"{what.replace(' ', '_')}.root"
        p.write_bytes(bytes_)
        arch = tmp_path / f"{what.replace(' ', '_')}.baler"
        r = cli("pack", p, "-o", arch, expect_fail=True)
        err = r.stderr.strip().splitlines()
        assert len(err) == 1 and str(p) in err[0], f"{what}: {r.stderr}"
        assert "panicked" not in r.stderr and "RUST_BACKTRACE" not in r.stderr, f"{what}: {r.stderr}"
        assert not arch.exists(), what
