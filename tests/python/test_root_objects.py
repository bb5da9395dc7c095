"""Every object of a ROOT file, not only its trees, comes back from pack + unpack --to root.

Real files from scikit-hep-testdata 0.3.12: uproot-hepdata-example.root (ROOT's hsimple: TH1F,
TH2F, TProfile and a TNtuple), uproot-issue243-new.root (an ATLAS analysis output: seven
trees, TH1D cutflows, TParameter<bool/int/double>, and a tree with a std::map<string,double>
branch), uproot-from-geant4.root (four trees, TH1D and TH2D), uproot-issue64.root (nested
TDirectories with 428 TParameter<double>, TNamed and TH1F, and a tree inside a directory), plus
a file uproot writes (TObjString, histograms in a subdirectory, a tree).

Histograms, parameters and directories are carried through as the source's keys: uproot reads
each with identical content (every member, values, edges, errors, titles), the key bytes are
identical, and the output's streamer infos hold every class version of the source's. What
cannot be carried (a TNtuple, a tree inside a directory, a map branch) is named in a warning
and in the header's `skipped`, and --strict refuses it.
"""
import json
import re
from collections.abc import Sequence

import numpy as np
import pytest
import uproot

from test_root import REL, compare_trees, data

# Classes whose data lie outside their key: packed as trees (at the top) or skipped.
TREE_LIKE = {"TTree", "TNtuple", "TNtupleD"}


def objects(path):
    """{"dir/name;cycle": class} of every key but the trees, recursively."""
    with uproot.open(path) as f:
        return {k: c for k, c in f.classnames(recursive=True, cycle=True).items() if c not in TREE_LIKE}


def same(a, b, where, seen=None):
    """Deep equality of two objects uproot read: every member, arrays byte for byte. An object
    met again (a TPaveStats' fParent is its histogram) is compared once."""
    seen = set() if seen is None else seen
    if isinstance(a, uproot.model.Model):
        assert type(a).__name__ == type(b).__name__, f"{where}: {type(a).__name__} != {type(b).__name__}"
        if id(a) in seen:
            return
        seen.add(id(a))
        am, bm = a.all_members, b.all_members
        assert am.keys() == bm.keys(), f"{where}: members {am.keys()} != {bm.keys()}"
        for k in am:
            same(am[k], bm[k], f"{where}.{k}", seen)
        if isinstance(a, Sequence):
            same(list(a), list(b), f"{where}[]", seen)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), f"{where}: arrays differ"
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: {len(a)} items, now {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]", seen)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def key_bytes(path, f, name):
    k = f.key(name)
    raw = open(path, "rb").read()
    return k.fClassName, k.fTitle, k.fObjlen, k.fDatime, raw[k.fSeekKey + k.fKeylen:k.fSeekKey + k.fNbytes]


def compare_objects(src, out, skipped_paths=()):
    """Every non-tree key of src (but those skipped) is in out with the same class, title,
    cycle, datime and object bytes, and uproot reads it with the same content. Directories
    come back with their names, titles and contents. Returns the number compared."""
    want = {k: c for k, c in objects(src).items() if k.split(";")[0] not in skipped_paths}
    have = objects(out)
    assert have == want, f"objects differ: missing {set(want) - set(have)}, extra {set(have) - set(want)}"
    with uproot.open(src) as a, uproot.open(out) as b:
        for k, cls in want.items():
            if cls in ("TDirectory", "TDirectoryFile"):
                assert a[k].title == b[k].title if hasattr(a[k], "title") else True
                continue
            assert key_bytes(src, a, k) == key_bytes(out, b, k), f"{k}: key differs"
            x, y = a[k], b[k]
            same(x, y, k)
            if cls.startswith(("TH1", "TH2", "TH3", "TProfile")):
                assert x.name == y.name and x.title == y.title, k
                assert np.array_equal(x.values(flow=True), y.values(flow=True)), k
                assert np.array_equal(x.variances(flow=True), y.variances(flow=True), equal_nan=True), k
                for ax, ay in zip(x.axes, y.axes):
                    assert np.array_equal(ax.edges(flow=True), ay.edges(flow=True)), k
            if cls.startswith("TParameter"):
                assert x.member("fVal") == y.member("fVal"), k
        # Every class version the source describes is described in the output too.
        src_si = {(n, v) for n, vs in a.file.streamers.items() for v in vs}
        out_si = {(n, v) for n, vs in b.file.streamers.items() for v in vs}
        assert src_si <= out_si, f"streamer infos missing: {src_si - out_si}"
    return len(want)


def warned(stderr):
    """{path: reason} of the objects and branches pack warned it skipped."""
    return dict(re.findall(r"warning: .*?: skipped (\S+): (.*)", stderr))


def header_of(cli, arch):
    return json.loads(cli("inspect", arch, "--json").stdout)["header"]


def test_histograms_and_profile_come_back_and_the_ntuple_is_named(cli, container, schema, tmp_path):
    from jsonschema import Draft202012Validator
    src = data("uproot-hepdata-example.root")
    arch, out = tmp_path / "h.baler", tmp_path / "h.root"
    r = cli("pack", src, "-o", arch)
    skipped = warned(r.stderr)
    assert list(skipped) == ["/ntuple;1"] and "TNtuple" in skipped["/ntuple;1"], r.stderr
    header = header_of(cli, arch)
    Draft202012Validator(schema).validate(header)
    # The independent reader finds one chunk per carried key, holding that key's bytes.
    parsed = container(arch)
    carried = {c["first_row"]: c["body"] for c in parsed["chunks"] if c.get("root_object")}
    raw = open(src, "rb").read()
    with uproot.open(src) as f:
        for i, o in enumerate(header["root_objects"]):
            if o["kind"] == "key":
                k = f.key(o["name"])
                assert carried[i] == raw[k.fSeekKey:k.fSeekKey + k.fNbytes], o["name"]
    assert [s["path"] for s in header["skipped"]] == ["/ntuple;1"]
    kinds = {(o["name"], o["class"], o["kind"]) for o in header["root_objects"]}
    assert {("hpx", "TH1F", "key"), ("hpxpy", "TH2F", "key"), ("hprof", "TProfile", "key")} <= kinds
    assert any(o["kind"] == "streamers" for o in header["root_objects"])
    cli("unpack", arch, "--to", "root", "-o", out)
    assert compare_objects(src, out, skipped_paths={"ntuple"}) == 3

    # --strict refuses the TNtuple: one line naming it, no archive.
    bad = tmp_path / "strict.baler"
    r = cli("pack", src, "-o", bad, "--strict", expect_fail=True)
    assert r.returncode == 1 and "/ntuple;1" in r.stderr and "TNtuple" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not bad.exists(), r.stderr


@pytest.mark.parametrize("name,error", [
    ("uproot-issue243-new.root", None),
    ("uproot-issue243-new.root", f"rel={REL}"),
    ("uproot-from-geant4.root", f"rel={REL}"),
])
def test_trees_with_histograms_and_parameters(cli, tmp_path, name, error):
    src = data(name)
    arch, out = tmp_path / "a.baler", tmp_path / "out.root"
    r = cli("pack", src, "-o", arch, *(["--error", error] if error else []))
    skipped = warned(r.stderr)
    header = header_of(cli, arch)
    assert {s["path"]: s["reason"] for s in header["skipped"]} == skipped
    branches = {tuple(p.lstrip("/").split(":")) for p in skipped}
    if name == "uproot-issue243-new.root":
        # The std::map<string, double> branch is named, as a warning and in the header.
        assert "/triggerList:triggerMap" in skipped and "map<string,double>" in skipped["/triggerList:triggerMap"], skipped
    cli("unpack", arch, "--to", "root", "-o", out)
    with uproot.open(src) as f:
        # a skipped branch takes its sub-branches with it
        branches |= {(t, b) for t, p in list(branches) for b in f[t].keys() if b.startswith(p + "/")}
    worst = compare_trees(src, out, rel=REL if error else 0.0, skipped=branches)
    if error:
        assert worst > 0.3, f"suspiciously exact ({worst}): is the bound applied?"
    n = compare_objects(src, out)
    assert n >= (5 if "243" in name else 15), n
    if "243" in name:
        with uproot.open(out) as f:
            assert f["DSID"].member("fVal") == uproot.open(src)["DSID"].member("fVal")
            assert bool(f["isMC"].member("fVal")) in (True, False)

    # --strict refuses the map branch.
    if name == "uproot-issue243-new.root" and error is None:
        r = cli("pack", src, "-o", tmp_path / "s.baler", "--strict", expect_fail=True)
        assert r.returncode == 1 and "triggerMap" in r.stderr, r.stderr


def test_nested_directories_come_back_and_a_tree_inside_one_is_named(cli, tmp_path):
    src = data("uproot-issue64.root")
    arch, out = tmp_path / "d.baler", tmp_path / "d.root"
    r = cli("pack", src, "-o", arch)
    skipped = warned(r.stderr)
    assert list(skipped) == ["/events/events;1"] and "inside a directory" in skipped["/events/events;1"], r.stderr
    header = header_of(cli, arch)
    assert header["datasets"] == [] and [s["path"] for s in header["skipped"]] == ["/events/events;1"]
    dirs = [o for o in header["root_objects"] if o["kind"] == "directory"]
    assert len(dirs) == 69, len(dirs)
    cli("unpack", arch, "--to", "root", "-o", out)
    assert compare_objects(src, out, skipped_paths={"events/events"}) > 500
    r = cli("pack", src, "-o", tmp_path / "s.baler", "--strict", expect_fail=True)
    assert r.returncode == 1 and "/events/events;1" in r.stderr, r.stderr


def test_trees_inside_directories_left_out_by_tree_are_not_reported(cli, tmp_path):
    """README: the trees `--tree` leaves out are left out without a warning, and `--strict`
    refuses only what the selection would lose: a tree inside a directory that `--tree` did not
    name made `--strict` refuse every such file. Naming it says why it cannot be packed."""
    src = tmp_path / "f.root"
    with uproot.recreate(src) as f:
        f.mktree("u", {"y": "f8"})
        f["u"].extend({"y": np.arange(50.0)})
        f.mktree("d/t2", {"z": "f8"})
        f["d/t2"].extend({"z": np.arange(50.0)})
    r = cli("pack", src, "-o", tmp_path / "all.baler")
    assert list(warned(r.stderr)) == ["/d/t2;1"], r.stderr
    r = cli("pack", src, "-o", tmp_path / "u.baler", "--tree", "u", "--strict")
    assert "warning" not in r.stderr, r.stderr
    assert header_of(cli, tmp_path / "u.baler").get("skipped", []) == []
    r = cli("pack", src, "-o", tmp_path / "t2.baler", "--tree", "d/t2", expect_fail=True)
    assert r.returncode == 1 and "'d/t2' lies inside a directory" in r.stderr, r.stderr


def test_an_archive_of_no_array_data_gives_no_ratio(cli, tmp_path):
    """Every branch skipped, objects carried: no raw bytes, so no percentage of them (pack said
    1655300.00 % of raw, inspect 100000000000000.00 %)."""
    arch = tmp_path / "a.baler"
    r = cli("pack", data("uproot-issue213.root"), "-o", arch)
    assert "(no array data: no ratio)" in r.stdout, r.stdout
    shown = cli("inspect", arch).stdout
    assert "for 0 raw (no array data: no ratio)" in shown, shown


def test_a_tree_with_no_branches_is_named_not_dropped(cli, tmp_path):
    """uproot-issue96's CollectionTree has no branch: nothing to pack, which pack says (a
    warning and the header's `skipped`) instead of leaving it out unsaid."""
    src = data("uproot-issue96.root")
    with uproot.open(src) as f:
        assert len(f["CollectionTree"].keys()) == 0
    arch = tmp_path / "c.baler"
    r = cli("pack", src, "-o", arch)
    skipped = warned(r.stderr)
    assert "no branches" in skipped.get("/CollectionTree", ""), r.stderr
    assert "/CollectionTree" in [s["path"] for s in header_of(cli, arch)["skipped"]]


def test_a_tree_the_reader_cannot_read_is_named_with_why(cli, tmp_path):
    """Double32_t / Float16_t leaves fail the reader for the whole tree: the tree is named with
    the reason (here the file's only tree, so nothing is left and pack refuses, in one line)."""
    src = data("uproot-double32-float16.root")
    out = tmp_path / "d.baler"
    r = cli("pack", src, "-o", out, expect_fail=True)
    lines = [ln for ln in r.stderr.splitlines() if "error:" in ln]
    assert len(lines) == 1 and "/tree" in lines[0] and "Double32_t or Float16_t" in lines[0], r.stderr
    assert not out.exists()


def test_objects_uproot_writes_come_back_and_other_outputs_warn(cli, tmp_path):
    src = tmp_path / "written.root"
    rng = np.random.default_rng(7)
    x = rng.normal(size=5000)
    with uproot.recreate(src) as f:
        f["note"] = "calibration v3: run 2024-05"
        f["h1"] = np.histogram(x, bins=40, range=(-4, 4))
        f["plots/h2"] = np.histogram2d(x, rng.normal(size=5000), bins=(10, 12))
        f["plots/deeper/hprof"] = uproot.open(data("uproot-hepdata-example.root"))["hprof"]
        # (a dict alone would be an RNTuple in uproot 5.7)
        f.mktree("events", {"x": "f8", "n": "i4"}).extend({"x": x, "n": np.arange(5000, dtype=np.int32)})
    arch, out = tmp_path / "w.baler", tmp_path / "w.root"
    r = cli("pack", src, "-o", arch, "--error", f"rel={REL}")
    assert "warning" not in r.stderr, r.stderr
    cli("unpack", arch, "-o", out)
    compare_trees(src, out)
    assert compare_objects(src, out) == 6
    with uproot.open(out) as f:
        assert str(f["note"]) == "calibration v3: run 2024-05"
    # An HDF5 output holds the tables only: the carried objects are named in a warning.
    r = cli("unpack", arch, "-o", tmp_path / "w.h5")
    assert "written only to a ROOT output" in r.stderr and "/plots/deeper/hprof" in r.stderr, r.stderr


def test_damaged_carried_object_is_one_clear_error_and_no_output(cli, container, tmp_path):
    src = data("uproot-hepdata-example.root")
    arch = tmp_path / "h.baler"
    cli("pack", src, "-o", arch)
    parsed = container(arch)
    chunk = next(c for c in parsed["chunks"] if c.get("root_object"))
    raw = bytearray(open(arch, "rb").read())
    raw[chunk["offset"] + chunk["length"] // 2] ^= 0x40
    bad = tmp_path / "bad.baler"
    bad.write_bytes(bytes(raw))
    out = tmp_path / "bad.root"
    r = cli("unpack", bad, "-o", out, expect_fail=True)
    assert r.returncode != 0 and "checksum" in r.stderr and str(bad) in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists(), r.stderr


def test_damaged_source_object_is_one_clear_error_and_no_archive(cli, tmp_path):
    """A key list entry that points outside the file: one error naming the file, no panic."""
    src = data("uproot-hepdata-example.root")
    raw = bytearray(open(src, "rb").read())
    with uproot.open(src) as f:
        start = f._fSeekKeys
    # The top directory's key list entry for hpx: its class and name strings sit 26 bytes
    # after the entry's start (small-file layout), its fSeekKey 18 bytes after it.
    at = raw.index(b"\x04TH1F\x03hpx", start) - 26
    raw[at + 18:at + 22] = (0x7FFF0000).to_bytes(4, "big")
    bad = tmp_path / "bad.root"
    bad.write_bytes(bytes(raw))
    out = tmp_path / "bad.baler"
    r = cli("pack", bad, "-o", out, expect_fail=True)
    assert r.returncode == 1 and str(bad) in r.stderr and "hpx" in r.stderr and "outside the file" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists(), r.stderr
