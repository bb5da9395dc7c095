"""The model stage end to end, on real tables: train (burn) -> ONNX bundle in the store ->
ONNX Runtime inside pack and unpack, with the bound checked on every element.

Tables: the ATLAS issue63 ntuple (9812 x 157: 141 f32, the rest integers and bools) and the real
CMS Zmumu events (2304 x 19: 15 f64, 4 i32). Training runs with few epochs to keep CI short;
the bound does not depend on how good the model is, the archive size does.
"""
import json
import os
import shutil

import h5py
import numpy as np
import pytest

from conftest import check_h5_roundtrip, parse_container

FAST_TRAIN = ["--epochs", "6", "--patience", "3"]
NONE_VAR = "WtLoop_nominal.met"


def spec(global_spec):
    return lambda name, dt, dimscale: global_spec


def inspect_json(cli, arch, **kw):
    return json.loads(cli("inspect", arch, "--json", **kw).stdout)


@pytest.fixture(scope="module")
def issue63_packed(cli, issue63_h5, tmp_path_factory):
    """issue63 at rel=1e-3, one column (NONE_VAR) coded by the model alone, trained on the input,
    packed with 2 threads. The bounded columns alone would not keep a model: the codec predicts
    issue63's columns from one another, and a quickly trained model does not beat that."""
    d = tmp_path_factory.mktemp("issue63-model")
    arch = d / "a.baler"
    r = cli("pack", issue63_h5, "-o", arch, "--error", "rel=1e-3", "--error", f"{NONE_VAR}:none", "--auto-model",
            *FAST_TRAIN, "--chunk-size", "1M", "--threads", "2")
    return arch, r


def test_issue63_trains_packs_and_unpacks_within_bound_on_another_thread_count(
        cli, issue63_h5, issue63_packed, tmp_path):
    arch, r = issue63_packed
    assert "trained model" in r.stdout, r.stdout
    p = parse_container(arch)
    h = p["header"]
    (m,) = h["models"]
    assert len(m["id"]) == 64 and m["kind"] == "dense" and "embedded" not in m
    (ds,) = h["datasets"]
    assert ds["model"]["model"] == 0 and ds["model"]["latent"] == "f16"
    # every f32 column is a feature; integers and bools are not
    floats = [i for i, v in enumerate(ds["variables"]) if v["dtype"] == "f32"]
    assert [f[0] for f in ds["model"]["features"]] == floats and len(floats) == 141
    assert any(struct_l(c) == 1 for c in p["chunks"]), "no chunk used the model"
    out = tmp_path / "out.h5"
    cli("unpack", arch, "-o", out, "--threads", "1")
    errs = check_h5_roundtrip(issue63_h5, out, h, lambda name, dt, ds: ("none",) if name == NONE_VAR else ("rel", 1e-3))
    assert max(errs.values()) > 0.0


def struct_l(chunk):
    import struct
    return struct.unpack_from("<IQQII", chunk["body"], 0)[4]


def test_issue63_reports_honest_ratios_and_table2_errors(cli, issue63_h5, issue63_packed):
    arch, r = issue63_packed
    assert "with it" in r.stdout and "without the decoder" in r.stdout
    ins = inspect_json(cli, arch)
    assert ins["decoder_bytes"] > 0
    assert ins["ratio_with_decoder"] < ins["ratio"]
    assert ins["latent_bytes"] > 0
    with h5py.File(issue63_h5, "r") as f:
        table = f["WtLoop_nominal"][...]
    h = ins["header"]
    for v in ins["variables"]:
        hv = next(x for x in h["datasets"][0]["variables"] if x["name"] == v["name"])
        if hv["dtype"] != "f32":
            assert v["errors"] is None
            continue
        e = v["errors"]
        assert e is not None, v["name"]
        if hv["error"]["mode"] == "none":
            continue
        assert e["max_abs_error"] <= hv["error"]["abs"]
        assert 0 <= e["mean_abs_error"] <= e["max_abs_error"]
        assert e["residual_rms"] >= abs(e["residual_mean"])


def test_model_store_lists_and_shows_the_trained_model(cli, issue63_packed):
    arch, _ = issue63_packed
    mid = parse_container(arch)["header"]["models"][0]["id"]
    listed = cli("model", "list").stdout
    assert mid in listed
    shown = cli("model", "show", mid[:12]).stdout
    assert mid in shown and '"kind": "dense"' in shown
    man = json.loads(shown[shown.index("{"):])
    assert man["provenance"]["onnx_check"]["max_relative_difference"] < 1e-5
    assert len(man["features"]) == 141


def test_unpack_without_the_model_names_the_id_and_where_it_looked(cli, issue63_packed, tmp_path):
    arch, _ = issue63_packed
    mid = parse_container(arch)["header"]["models"][0]["id"]
    empty = tmp_path / "empty-store"
    empty.mkdir()
    out = tmp_path / "out.h5"
    env = {"BALER_MODEL_PATH": str(empty)}
    r = cli("unpack", arch, "-o", out, expect_fail=True, env=env)
    assert r.returncode == 1
    # The error names the archive (as every error names its file) and what to set, and does not
    # tell someone unpacking to pack again.
    line = next(ln for ln in r.stderr.splitlines() if ln.startswith("balerfile: error:"))
    assert f"{arch}: its model {mid}" in line and str(empty) in line and "not in the model store here" in line, line
    assert "BALER_MODEL_PATH" in line
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))
    # inspect reads the archive without the model, and says the model is not here.
    shown = cli("inspect", arch, env=env).stdout
    assert f"model: {mid}" in shown and "NOT in the model store here" in shown, shown
    shown = cli("inspect", arch).stdout
    assert "NOT in the model store" not in shown and "in the model store, used by" in shown


def test_modified_model_is_refused(cli, issue63_packed, model_store, tmp_path):
    arch, _ = issue63_packed
    mid = parse_container(arch)["header"]["models"][0]["id"]
    store = tmp_path / "store"
    shutil.copytree(model_store / mid, store / mid)
    dec = store / mid / "decoder.onnx"
    b = bytearray(dec.read_bytes())
    b[len(b) // 2] ^= 0x01
    dec.write_bytes(bytes(b))
    out = tmp_path / "out.h5"
    r = cli("unpack", arch, "-o", out, expect_fail=True, env={"BALER_MODEL_PATH": str(store)})
    assert r.returncode == 1 and "decoder.onnx" in r.stderr and "modified" in r.stderr, r.stderr
    assert not out.exists()


def test_model_that_does_not_fit_the_input_is_refused(cli, issue63_packed, hadcm3, tmp_path):
    arch, _ = issue63_packed
    mid = parse_container(arch)["header"]["models"][0]["id"]
    out = tmp_path / "x.baler"
    r = cli("pack", hadcm3, "-o", out, "--error", "rel=1e-3", "--model", mid, expect_fail=True)
    assert r.returncode != 0 and "does not fit" in r.stderr, r.stderr
    assert not out.exists()


def test_missing_onnxruntime_is_one_clear_error(cli, issue63_packed, tmp_path):
    arch, _ = issue63_packed
    out = tmp_path / "out.h5"
    r = cli("unpack", arch, "-o", out, expect_fail=True,
            env={"BALERFILE_ONNXRUNTIME": str(tmp_path / "no" / "libonnxruntime.so")})
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "pip install onnxruntime" in r.stderr, r.stderr
    assert not out.exists()


def test_embedded_model_unpacks_with_no_store(cli, issue63_h5, issue63_packed, tmp_path):
    arch, _ = issue63_packed
    mid = parse_container(arch)["header"]["models"][0]["id"]
    emb = tmp_path / "embedded.baler"
    cli("pack", issue63_h5, "-o", emb, "--error", "rel=1e-3", "--error", f"{NONE_VAR}:none", "--model", mid, "--embed-model")
    p = parse_container(emb)
    assert p["header"]["models"][0]["embedded"]["decoder"]["sha256"] == p["header"]["models"][0]["decoder_sha256"]
    assert any(c.get("attachment") for c in p["chunks"])
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out.h5"
    cli("unpack", emb, "-o", out, env={"BALER_MODEL_PATH": str(empty)})
    check_h5_roundtrip(issue63_h5, out, p["header"], lambda name, dt, ds: ("none",) if name == NONE_VAR else ("rel", 1e-3))
    ins = inspect_json(cli, emb, env={"BALER_MODEL_PATH": str(empty)})
    assert ins["decoder_bytes"] == 0 and ins["ratio_with_decoder"] == ins["ratio"]
    # The embedded decoder's bytes are named, and the coded data's ratio alone given beside the
    # whole file's (the file's ratio alone read as if no decoder were counted).
    att = sum(c["length"] for c in p["chunks"] if c.get("attachment"))
    assert ins["embedded_bytes"] == att > 0
    alone = ins["raw_bytes"] / (ins["archive_bytes"] - att)
    line = next(ln for ln in cli("inspect", emb, env={"BALER_MODEL_PATH": str(empty)}).stdout.splitlines() if ln.startswith("ratio "))
    assert line.startswith(f"ratio {alone:.2f} without the decoder, {ins['ratio']:.2f} with it ({att} bytes of decoder embedded)"), line


def test_pure_autoencoder_is_smaller_and_reports_its_errors(cli, issue63_h5, issue63_packed, tmp_path):
    arch, _ = issue63_packed
    mid = parse_container(arch)["header"]["models"][0]["id"]
    pure = tmp_path / "pure.baler"
    cli("pack", issue63_h5, "-o", pure, "--error", "none", "--model", mid)
    assert pure.stat().st_size < arch.stat().st_size
    ins = inspect_json(cli, pure)
    f32 = [v for v in ins["variables"] if v["dtype"] == "f32"]
    assert all(v["errors"] is not None and v["errors"]["max_abs_error"] > 0 for v in f32)
    out = tmp_path / "out.h5"
    cli("unpack", pure, "-o", out)
    with h5py.File(issue63_h5, "r") as a, h5py.File(out, "r") as b:
        x, y = a["WtLoop_nominal"][...], b["WtLoop_nominal"][...]
    for name in x.dtype.names:
        if x.dtype[name].kind != "f":
            assert np.array_equal(x[name], y[name]), f"{name} must stay exact"
    # the reported errors are the real ones
    v = f32[0]
    field = v["name"].split(".", 1)[1]
    real = np.abs(y[field].astype(np.float64) - x[field].astype(np.float64))
    assert np.isclose(v["errors"]["max_abs_error"], real.max(), rtol=1e-6)
    assert np.isclose(v["errors"]["mean_abs_error"], real.mean(), rtol=1e-6)


def test_zmumu_real_cms_data(cli, zmumu_h5, tmp_path):
    arch = tmp_path / "z.baler"
    r = cli("pack", zmumu_h5, "-o", arch, "--error", "rel=1e-3", "--auto-model", *FAST_TRAIN, "--threads", "2")
    h = parse_container(arch)["header"]
    # On 2304 rows the decoder may outweigh what it saves: then pack says so, codes without it
    # and stores nothing.
    if "model" in h["datasets"][0]:
        assert "trained model" in r.stdout and len(h["datasets"][0]["model"]["features"]) == 15
    else:
        assert "not used, not stored: it would save about" in r.stdout, r.stdout
    out = tmp_path / "z.h5"
    cli("unpack", arch, "-o", out, "--threads", "1")
    check_h5_roundtrip(zmumu_h5, out, h, spec(("rel", 1e-3)))


def test_train_command_writes_a_bundle_that_pack_uses(cli, zmumu_h5, tmp_path):
    bundle = tmp_path / "bundle"
    r = cli("train", zmumu_h5, "-o", bundle, "--latent", "4", "--hidden", "32,16", *FAST_TRAIN)
    assert "latent 4" in r.stdout
    man = json.loads((bundle / "manifest.json").read_text())
    assert man["latent"]["size"] == 4 and len(man["features"]) == 15
    arch = tmp_path / "z.baler"
    cli("pack", zmumu_h5, "-o", arch, "--error", "rel=1e-4", "--model", bundle, "--latent-coding", "8")
    h = parse_container(arch)["header"]
    assert h["datasets"][0]["model"]["latent"] == "8"
    out = tmp_path / "z.h5"
    cli("unpack", arch, "-o", out)
    check_h5_roundtrip(zmumu_h5, out, h, spec(("rel", 1e-4)))


def test_import_of_onnx_files_made_by_the_onnx_package(cli, zmumu_h5, tmp_path):
    """The PyTorch path: any producer's ONNX files that follow the README's contract."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    with h5py.File(zmumu_h5, "r") as f:
        t = f["events"][...]
    names = [n for n in t.dtype.names if t.dtype[n].kind == "f"]
    x = np.stack([t[n] for n in names], axis=1).astype(np.float64)
    mean, sd = x.mean(0), x.std(0)
    xn = (x - mean) / sd
    # A linear autoencoder (PCA): what a PyTorch user might export, made here with onnx.helper.
    _, _, vt = np.linalg.svd(xn, full_matrices=False)
    w = vt[:6].T.astype(np.float32)  # (15, 6)

    def mlp(name, inp, out, weight, n_in, n_out):
        g = helper.make_graph(
            [helper.make_node("MatMul", [inp, "W"], ["h"]), helper.make_node("Add", ["h", "B"], [out])],
            name,
            [helper.make_tensor_value_info(inp, TensorProto.FLOAT, ["N", n_in])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", n_out])],
            [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(np.zeros(n_out, np.float32), "B")])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        onnx.checker.check_model(m, full_check=True)
        return m
    enc, dec = tmp_path / "enc.onnx", tmp_path / "dec.onnx"
    onnx.save(mlp("enc", "x", "z", w, 15, 6), enc)
    onnx.save(mlp("dec", "z", "y", np.ascontiguousarray(w.T), 6, 15), dec)
    norm = tmp_path / "norm.json"
    norm.write_text(json.dumps({"offset": mean.tolist(), "scale": sd.tolist()}))
    r = cli("model", "import", enc, dec, "--features", ",".join(f"events.{n}" for n in names),
            "--normalisation", norm, "--name", "pca6")
    mid = r.stdout.split()[2]
    assert len(mid) == 64
    arch = tmp_path / "z.baler"
    cli("pack", zmumu_h5, "-o", arch, "--error", "rel=1e-3", "--model", mid)
    out = tmp_path / "z.h5"
    cli("unpack", arch, "-o", out)
    h = parse_container(arch)["header"]
    check_h5_roundtrip(zmumu_h5, out, h, spec(("rel", 1e-3)))
    # wrong width: 14 features for a 15-wide model
    r = cli("model", "import", enc, dec, "--features", ",".join(names[:-1]), expect_fail=True)
    assert r.returncode == 1 and "14 features" in r.stderr
    # not ONNX at all
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a model")
    r = cli("model", "import", junk, dec, "--features", ",".join(names), expect_fail=True)
    assert r.returncode == 1 and "junk.onnx" in r.stderr and "not an ONNX model" in r.stderr


def test_manifest_and_header_match_their_schemas(issue63_packed, model_store):
    from pathlib import Path
    from jsonschema import Draft202012Validator
    root = Path(__file__).resolve().parents[2] / "schemas"
    arch, _ = issue63_packed
    h = parse_container(arch)["header"]
    for schema_file, doc in [("baler-header.schema.json", h),
                             ("model-manifest.schema.json",
                              json.loads((model_store / h["models"][0]["id"] / "manifest.json").read_text()))]:
        schema = json.loads((root / schema_file).read_text())
        Draft202012Validator.check_schema(schema)
        errors = list(Draft202012Validator(schema).iter_errors(doc))
        assert not errors, f"{schema_file}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


# --------------------------------------------------------------------------------------------
# Models only when they are used; reuse across trees (issue 17, point 5)


def bundles_in(store):
    return sorted(p.name for p in store.iterdir() if (p / "manifest.json").is_file())


def test_default_packs_of_a_small_table_leave_no_unused_bundle(cli, issue63_h5, tmp_path):
    """300 real rows of issue63: a 141-feature decoder costs more than it can save, so the trial
    says no before anything is written, and the store stays empty however often one packs."""
    small = tmp_path / "issue63-300.h5"
    with h5py.File(issue63_h5, "r") as f, h5py.File(small, "w") as g:
        g["WtLoop_nominal"] = f["WtLoop_nominal"][:300]
    store = tmp_path / "store"
    store.mkdir()
    env = {"BALER_MODEL_PATH": str(store)}
    for k in range(2):
        arch = tmp_path / f"a{k}.baler"
        r = cli("pack", small, "-o", arch, "--error", "rel=1e-3", "--auto-model", *FAST_TRAIN,
                "--threads", "2", env=env)
        assert "not used, not stored" in r.stdout and "trained model" not in r.stdout, r.stdout
        assert bundles_in(store) == [], f"pack {k} left {bundles_in(store)}"
        assert not list(store.iterdir()), list(store.iterdir())
        h = parse_container(arch)["header"]
        assert not h.get("models") and "model" not in h["datasets"][0]
        out = tmp_path / f"a{k}.h5"
        cli("unpack", arch, "-o", out, env=env)
        check_h5_roundtrip(small, out, h, spec(("rel", 1e-3)))


BRANCHES = ["met", "pT_lep1", "pT_lep2", "pT_jet1", "eta_lep1", "eta_lep2", "eta_jet1",
            "pTsys_lep1lep2", "deltapT_lep1_lep2", "sumet"]


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """Real issue63 branches written by uproot under other tree names: A (the training tree),
    B (the same branches in another order), C (every branch renamed x_NAME), B+C in one file."""
    import skhep_testdata
    import uproot
    d = tmp_path_factory.mktemp("trees")
    t = uproot.open(skhep_testdata.data_path("uproot-issue63.root"))["WtLoop_nominal"]
    cols = t.arrays(BRANCHES, library="np")
    assert all(cols[b].dtype == np.float32 for b in BRANCHES)
    files = {}
    for name, trees_ in {"a": {"A": BRANCHES},
                         "b": {"B": BRANCHES[::-1]},
                         "c": {"C": BRANCHES},
                         "bc": {"B": BRANCHES, "C2": BRANCHES}}.items():
        p = d / f"{name}.root"
        with uproot.recreate(p) as f:
            for tree, order in trees_.items():
                prefix = "x_" if tree == "C" else ""
                # mktree: a TTree (assigning a dict writes an RNTuple in uproot 5.7)
                f.mktree(tree, {prefix + b: cols[b].dtype for b in order})
                f[tree].extend({prefix + b: cols[b] for b in order})
        files[name] = p
    files["cols"] = cols
    return files


@pytest.fixture(scope="module")
def tree_model(cli, trees):
    """A small dense model trained on tree A."""
    r = cli("train", trees["a"], "--hidden", "32,16", "--latent", "3", "--train-rows", "4000",
            *FAST_TRAIN)
    (mid,) = [line.split()[1] for line in r.stdout.splitlines() if line.startswith("model ") and " stored in " in line]
    assert len(mid) == 64, r.stdout
    shown = cli("model", "show", mid).stdout
    man = json.loads(shown[shown.index("{"):])
    assert [f["name"] for f in man["features"]] == [f"A/entries.{b}" for b in BRANCHES]
    return mid


def check_tree_bound(header, out_root, tree, cols, rename=lambda b: b):
    """Every element of every branch within the header's absolute bound."""
    import uproot
    (ds,) = header["datasets"]
    got = uproot.open(out_root)[tree].arrays(library="np")
    for v in ds["variables"]:
        b = v["field"]
        src = next(k for k in BRANCHES if rename(k) == b)
        x, y = cols[src].astype(np.float64), got[b].astype(np.float64)
        assert x.shape == y.shape
        err = np.abs(x - y).max()
        assert err <= v["error"]["abs"], f"{b}: {err} > {v['error']['abs']}"


def test_a_model_trained_on_one_tree_codes_another_with_the_same_branches(cli, trees, tree_model, tmp_path):
    arch = tmp_path / "b.baler"
    r = cli("pack", trees["b"], "-o", arch, "--error", "rel=1e-3", "--model", tree_model)
    assert "matched by name within the table" in r.stdout and "A/entries.met -> B/entries.met" in r.stdout, r.stdout
    h = parse_container(arch)["header"]
    (ds,) = h["datasets"]
    fields = [v["field"] for v in ds["variables"]]
    # feature j of the model is branch BRANCHES[j], wherever tree B keeps it
    assert [fields[f[0]] for f in ds["model"]["features"]] == BRANCHES
    out = tmp_path / "b.root"
    cli("unpack", arch, "-o", out)
    check_tree_bound(h, out, "B", trees["cols"])


def test_two_trees_that_fit_are_an_error_until_one_is_chosen(cli, trees, tree_model, tmp_path):
    arch = tmp_path / "bc.baler"
    r = cli("pack", trees["bc"], "-o", arch, "--error", "rel=1e-3", "--model", tree_model, expect_fail=True)
    assert r.returncode == 1 and "B/entries, C2/entries" in r.stderr and "--dataset" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and not arch.exists()
    cli("pack", trees["bc"], "-o", arch, "--error", "rel=1e-3", "--model", tree_model, "--tree", "C2")
    h = parse_container(arch)["header"]
    assert h["datasets"][0]["path"] == "/C2/entries" and "model" in h["datasets"][0]


def test_feature_map_renames_and_a_bad_map_is_a_clear_error(cli, trees, tree_model, tmp_path):
    arch = tmp_path / "c.baler"
    r = cli("pack", trees["c"], "-o", arch, "--error", "rel=1e-3", "--model", tree_model, expect_fail=True)
    assert r.returncode == 1 and "does not fit" in r.stderr and "--feature-map" in r.stderr, r.stderr
    # a file for most features, one on the command line, a full input name for another
    mapfile = tmp_path / "map.txt"
    mapfile.write_text("# model feature = input branch\n" + "".join(f"{b}=x_{b}\n" for b in BRANCHES[2:]))
    r = cli("pack", trees["c"], "-o", arch, "--error", "rel=1e-3", "--model", tree_model,
            "--feature-map", mapfile, "--feature-map", "met=x_met",
            "--feature-map", "A/entries.pT_lep1=C/entries.x_pT_lep1")
    assert "A/entries.pT_lep1 -> C/entries.x_pT_lep1" in r.stdout, r.stdout
    h = parse_container(arch)["header"]
    (ds,) = h["datasets"]
    fields = [v["field"] for v in ds["variables"]]
    assert [fields[f[0]] for f in ds["model"]["features"]] == [f"x_{b}" for b in BRANCHES]
    out = tmp_path / "c.root"
    cli("unpack", arch, "-o", out)
    check_tree_bound(h, out, "C", trees["cols"], rename=lambda b: f"x_{b}")
    for bad, says in [("nosuch=x_met", "no feature 'nosuch'"),
                      ("met=nosuch", "no float variable 'nosuch'"),
                      ("met", "neither MODELNAME=VARIABLE nor a readable file")]:
        bad_arch = tmp_path / "bad.baler"
        r = cli("pack", trees["c"], "-o", bad_arch, "--model", tree_model, "--feature-map", mapfile,
                "--feature-map", bad, expect_fail=True)
        assert r.returncode == 1 and says in r.stderr and r.stderr.count("\n") == 1, (bad, r.stderr)
        assert not bad_arch.exists()


def test_an_archive_whose_chunks_did_not_use_its_model_unpacks_with_an_empty_store(
        cli, trees, tree_model, tmp_path):
    """Lossless (pack's default) with --model: no chunk can use the latent; pack says so, and
    unpack, inspect and eval need no model store."""
    import uproot
    arch = tmp_path / "b.baler"
    r = cli("pack", trees["b"], "-o", arch, "--model", tree_model)
    assert f"model {tree_model[:12]} not used" in r.stdout and "unpacks without it" in r.stdout, r.stdout
    h = parse_container(arch)["header"]
    assert h["models"][0]["id"] == tree_model
    assert all(struct_l(c) == 0 for c in parse_container(arch)["chunks"])
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"BALER_MODEL_PATH": str(empty)}
    out = tmp_path / "b.root"
    cli("unpack", arch, "-o", out, env=env)
    got = uproot.open(out)["B"].arrays(library="np")
    for b in BRANCHES:
        assert np.array_equal(got[b].view(np.uint32), trees["cols"][b].view(np.uint32)), b
    ins = inspect_json(cli, arch, env=env)
    assert ins["model_chunks"] == [0] and ins["decoder_bytes"] == 0
    assert "not needed to unpack" in cli("inspect", arch, env=env).stdout
    cli("eval", trees["b"], arch, "-o", tmp_path / "report", "-q", env=env)
