"""Continuous fields: the codec's Lorenzo predictor (no model) and the `conv` model kind (a
convolutional tile autoencoder), end to end with the real CLI, h5py and the HDF5 filter.

Data: the HadCM3 near-surface air temperature of iris-sample-data (240 months x 37 lat x 49 lon,
float32): A1B_north_america.nc (scenario A1B) and E1_north_america.nc (scenario E1, same grid).
The conv model is trained on the first 120 months of A1B and used on the other 120 and on E1.
It is small and trained for two epochs: these tests check shapes, manifests, refusals and that
every element is within its bound, not the ratio a long training reaches. The codec uses a model
in a chunk only where it makes the chunk smaller, so these tests never assert that a bounded
archive uses the model; `--error none` (the model's output alone) is what exercises its tiles.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from jsonschema import Draft202012Validator

from conftest import ROOT, SCHEMA_PATH, _iris_sample, check_float_variable
from test_h5filter import bare_env, read_in_new_process

VAR = "air_temperature"
GRID = (37, 49)
BLOCK, CODE_CHANNELS, DOWNSAMPLES, CHANNELS = 16, 2, 3, 8
SMALL = ["--kind", "conv", "--epochs", "2", "--channels", str(CHANNELS), "--code-channels", str(CODE_CHANNELS),
         "--block", str(BLOCK), "--downsamples", str(DOWNSAMPLES), "--train-rows", "60"]
# 37 x 49 in 16 x 16 tiles (edges padded): 3 x 4 tiles; each tile's code is
# code_channels x (16 / 2^3) x (16 / 2^3) = 2 x 2 x 2 values.
TILES = 3 * 4
CODE_LEN = CODE_CHANNELS * (BLOCK >> DOWNSAMPLES) ** 2


# --------------------------------------------------------------------------------------------
# Data and the model


@pytest.fixture(scope="module")
def air():
    """{scenario: the air temperature field} for A1B and E1."""
    out = {}
    for name, fname in (("A1B", "A1B_north_america.nc"), ("E1", "E1_north_america.nc")):
        with h5py.File(_iris_sample(fname), "r") as f:
            x = f[VAR][()]
        assert x.shape == (240, *GRID) and x.dtype == np.dtype("<f4"), (name, x.shape, x.dtype)
        assert np.isfinite(x).all()
        out[name] = x
    assert not np.array_equal(out["A1B"], out["E1"]), "two scenarios, not one file twice"
    return out


def write_h5(path, data, name=VAR):
    with h5py.File(path, "w") as f:
        f.create_dataset(name, data=data)
    return path


@pytest.fixture(scope="module")
def halves(air, tmp_path_factory):
    """The first 120 months (training) and the other 120 (packing) of A1B, and E1, as files."""
    d = tmp_path_factory.mktemp("fields")
    x = air["A1B"]
    return dict(train=write_h5(d / "train.h5", x[:120]), test=write_h5(d / "test.h5", x[120:]),
                e1=write_h5(d / "e1.h5", air["E1"]))


@pytest.fixture(scope="module")
def conv(cli, halves, model_store, tmp_path_factory):
    bundle = tmp_path_factory.mktemp("conv-bundle") / "b"
    r = cli("train", halves["train"], "--dataset", VAR, *SMALL, "-o", bundle)
    m = re.search(r"model ([0-9a-f]{64}) stored in (.+)", r.stdout)
    assert m, r.stdout
    return dict(id=m.group(1), stdout=r.stdout, bundle=bundle, stored_in=m.group(2).strip())


# --------------------------------------------------------------------------------------------
# Helpers


def pack_unpack(cli, container, src, tmp, tag, spec, *pack_args, dataset=VAR, unpack_args=()):
    """Pack dataset `dataset` of src with `--error spec`, unpack it; returns (archive, header,
    unpacked array, pack's CompletedProcess)."""
    out = tmp / f"{tag}.baler"
    r = cli("pack", src, "--dataset", dataset, "--error", spec, "-o", out, *pack_args)
    header = container(out)["header"]
    back = tmp / f"{tag}.h5"
    cli("unpack", out, "-o", back, *unpack_args)
    with h5py.File(back, "r") as f:
        y = f[dataset][()]
    return out, header, y, r


def check_bound(x, y, spec, header, dataset=VAR):
    """Shape and dtype kept, header resolves the bound against x's finite range, every element
    within it (check_float_variable). Returns max |error| / bound."""
    assert y.shape == x.shape, f"shape {y.shape} != {x.shape}"
    assert y.dtype.str == x.dtype.str, f"dtype {y.dtype.str} != {x.dtype.str}"
    (hd,) = [d for d in header["datasets"] if d["path"] == "/" + dataset]
    assert hd["shape"] == list(x.shape)
    (hvar,) = hd["variables"]
    mode, value = spec.split("=")
    maxerr = check_float_variable(dataset, x, y, (mode, float(value)), hvar)
    return maxerr / float(hvar["error"]["abs"])


def schema_errors(schema, header):
    errors = sorted(Draft202012Validator(schema).iter_errors(header), key=lambda e: list(e.path))
    return "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def one_error_line(r):
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 1, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert len(lines) == 1 and lines[0].startswith("balerfile: error:"), r.stderr
    return lines[0]


# --------------------------------------------------------------------------------------------
# 1. No model: the codec's Lorenzo predictor on fields


def test_hadcm3_without_a_model_is_within_every_bound_and_smaller_when_looser(cli, container, hadcm3, air, schema, tmp_path):
    x = air["A1B"]
    sizes = {}
    for e in (1e-2, 1e-3, 1e-4):
        spec = f"rel={e:g}"
        out, header, y, _ = pack_unpack(cli, container, hadcm3, tmp_path, f"r{e:g}", spec, "--no-model")
        assert not schema_errors(schema, header), schema_errors(schema, header)
        assert not header.get("models"), header.get("models")
        frac = check_bound(x, y, spec, header)
        assert 0.5 < frac <= 1.0, f"{spec}: max error {frac:.3f} of the bound"
        sizes[e] = out.stat().st_size
    assert sizes[1e-2] < sizes[1e-3] < sizes[1e-4], sizes
    # The predictor sees the grid (commit 0550bce: 15.9% -> 11.1% of raw at rel=1e-3).
    assert sizes[1e-3] < 0.125 * x.nbytes, f"{sizes[1e-3] / x.nbytes:.2%} of raw at rel=1e-3"


def test_the_predictor_uses_the_fields_grid(cli, container, air, tmp_path):
    """The same values as a 3-D field pack smaller than as one flat 1-D sequence."""
    x = air["A1B"]
    grid = write_h5(tmp_path / "grid.h5", x)
    flat = write_h5(tmp_path / "flat.h5", x.reshape(-1))
    a, ha, ya, _ = pack_unpack(cli, container, grid, tmp_path, "grid", "rel=1e-3", "--no-model")
    b, hb, yb, _ = pack_unpack(cli, container, flat, tmp_path, "flat", "rel=1e-3", "--no-model")
    check_bound(x, ya, "rel=1e-3", ha)
    check_bound(x.reshape(-1), yb, "rel=1e-3", hb)
    assert a.stat().st_size < 0.85 * b.stat().st_size, (a.stat().st_size, b.stat().st_size)


def test_a_field_in_many_small_chunks_is_within_bound(cli, container, air, tmp_path):
    """Chunks of whole rows (18 of them): the predictor restarts at each chunk's first row."""
    x = air["A1B"]
    src = write_h5(tmp_path / "x.h5", x)
    out, header, y, _ = pack_unpack(cli, container, src, tmp_path, "chunks", "rel=1e-3", "--no-model",
                                    "--chunk-size", "100K", "--threads", "2", unpack_args=("--threads", "1"))
    assert len(container(out)["chunks"]) > 10
    check_bound(x, y, "rel=1e-3", header)


@pytest.mark.parametrize("case", ["2d", "3d_odd", "4d", "f64", "edges_1", "rows_1", "one_row", "nonfinite"])
def test_fields_of_every_rank_and_shape_are_within_bound(cli, container, air, tmp_path, case):
    x = air["A1B"]
    data = {
        "2d": x[17],                                    # one month: (37, 49)
        "3d_odd": x[:50, 2:35, 1:46],                   # (50, 33, 45): no axis a multiple of 16
        "4d": x.reshape(120, 2, *GRID),                 # (120, 2, 37, 49)
        "f64": x[:60].astype("<f8") + 1e-7 * np.arange(60 * 37 * 49).reshape(60, *GRID),
        "edges_1": x[:30, :, :1],                       # (30, 37, 1)
        "rows_1": x[:30, :1, :],                        # (30, 1, 49)
        "one_row": x[5:6],                              # (1, 37, 49)
    }
    if case == "nonfinite":
        v = x[:40].copy()
        v[:, 5:12, 10:20] = np.nan                      # a masked region
        v[3, 0, 0], v[7, 36, 48] = np.inf, -np.inf
        data[case] = v
    v = data[case]
    src = write_h5(tmp_path / f"{case}.h5", v)
    # 1e-2: wide bins, where interpolation wins; 1e-4: Lorenzo
    for spec in ("rel=1e-2", "rel=1e-3", "rel=1e-4"):
        _, header, y, _ = pack_unpack(cli, container, src, tmp_path, f"{case}{spec}", spec, "--no-model")
        check_bound(v, y, spec, header)


def test_values_on_a_coarser_lattice_than_the_bound_come_back_exact(cli, container, air, tmp_path):
    """A field stored at 1/8 K (as UKV's is) with a bound far finer than that: coded on its own
    lattice, so every value comes back bit for bit, in far fewer bytes than on the bound's bins."""
    x = air["A1B"][:60]
    eighths = (np.round(x * 8) / 8).astype(x.dtype)
    a, ha, ya, _ = pack_unpack(cli, container, write_h5(tmp_path / "e.h5", eighths), tmp_path, "e", "rel=1e-5", "--no-model")
    b, hb, yb, _ = pack_unpack(cli, container, write_h5(tmp_path / "x.h5", x), tmp_path, "x", "rel=1e-5", "--no-model")
    assert np.array_equal(ya.view(np.uint32), eighths.view(np.uint32))
    check_bound(x, yb, "rel=1e-5", hb)
    assert a.stat().st_size < 0.6 * b.stat().st_size, (a.stat().st_size, b.stat().st_size)


@pytest.fixture(scope="module")
def real_fields(tmp_path_factory):
    """The real fields of fixtures/make_fields.py (those whose package is installed here)."""
    d = tmp_path_factory.mktemp("real-fields")
    subprocess.run([sys.executable, str(ROOT / "fixtures" / "make_fields.py"), str(d)], check=True,
                   capture_output=True)
    paths = sorted(d.glob("*.h5"))
    assert len(paths) >= 7, [p.name for p in paths]
    return paths


@pytest.mark.parametrize("rel", [1e-2, 1e-3, 1e-4])
def test_real_fields_are_within_every_bound_and_keep_fills_exact(cli, container, real_fields, tmp_path, rel):
    """Every real field (climate, ocean with land, 4-D forecasts) at every bound, the way a user
    states it: the valid values within rel x their range (abs= where a fill value marks land),
    fill values bit for bit. At 1e-2 the interpolation walk codes some of them."""
    walked = 0
    for p in real_fields:
        with h5py.File(p, "r") as f:
            (name,) = list(f)
            x = f[name][()]
            fill = f[name].attrs.get("_FillValue")
        missing = ~np.isfinite(x) if fill is None else (x == np.float32(fill)) | ~np.isfinite(x)
        v = x[~missing].astype(np.float64)
        tol = float(rel * (v.max() - v.min()))
        spec = f"rel={rel}" if fill is None else f"abs={tol!r}"
        out, header, y, _ = pack_unpack(cli, container, p, tmp_path, f"{p.stem}-{rel}", spec, "--no-model", dataset=name)
        assert y.shape == x.shape and y.dtype == x.dtype, p.name
        err = np.abs(y[~missing].astype(np.float64) - v)
        assert err.max() <= tol, f"{p.name} at {spec}: max error {err.max():.6g} > {tol:.6g}"
        assert np.array_equal(y[missing].view(np.uint32), x[missing].view(np.uint32)), f"{p.name}: fills not exact"
        # a chunk's one block follows its 28-byte head (no latent): method 5, flag bit 2 = walked
        walked += any(c["body"][28] == 5 and c["body"][29] & 4 for c in container(out)["chunks"])
    if rel == 1e-2:
        assert walked >= 3, f"the interpolation walk coded {walked} of {len(real_fields)} fields"


# --------------------------------------------------------------------------------------------
# 2. The conv model


def test_train_conv_stores_a_manifest_of_the_tiles(conv, model_store):
    mid = conv["id"]
    assert Path(conv["stored_in"]).resolve() == model_store.resolve(), conv["stdout"]
    stored = json.loads((model_store / mid / "manifest.json").read_text())
    written = json.loads((conv["bundle"] / "manifest.json").read_text())
    assert stored == written
    for f in ("encoder.onnx", "decoder.onnx"):
        assert (model_store / mid / f).read_bytes() == (conv["bundle"] / f).read_bytes()
    m = stored
    assert m["kind"] == "conv"
    assert m["conv"] == {"row": list(GRID), "block": BLOCK, "hidden": CHANNELS, "code_channels": CODE_CHANNELS,
                         "downsamples": DOWNSAMPLES, "blocks_per_stage": 1}, m["conv"]
    assert m["features"] == [{"name": VAR, "dtype": "f32", "shape": list(GRID)}], m["features"]
    assert m["latent"]["size"] == TILES * CODE_LEN == 96, m["latent"]
    assert "bcae2d" not in m
    training = m["provenance"]["training"]
    assert training["epochs_run"] == 2 and len(training["history"]) == 2
    check = m["provenance"]["onnx_check"]
    assert check["encoder_max_relative_difference"] < 1e-4 and check["decoder_max_relative_difference"] < 1e-4, check


def test_the_model_codes_other_months_and_another_scenario_within_bound(cli, container, conv, halves, air, tmp_path):
    mid = conv["id"]
    sources = {"A1B_late": (halves["test"], air["A1B"][120:]), "E1": (halves["e1"], air["E1"])}
    for name, (src, x) in sources.items():
        for spec in ("rel=1e-3", "rel=1e-4"):
            out, header, y, r = pack_unpack(cli, container, src, tmp_path, f"{name}{spec}", spec, "--model", mid)
            frac = check_bound(x, y, spec, header)
            assert frac <= 1.0
            # the model is used in a chunk only where it makes the chunk smaller
            plain = tmp_path / f"{name}{spec}-plain.baler"
            cli("pack", src, "--dataset", VAR, "--error", spec, "--no-model", "-o", plain)
            assert out.stat().st_size <= plain.stat().st_size + 1024, (out.stat().st_size, plain.stat().st_size)
            (ref,) = header["models"]
            assert ref["id"] == mid and ref["kind"] == "conv", ref
            (hd,) = header["datasets"]
            assert hd["model"]["model"] == 0, hd["model"]
            insp = cli("inspect", out, "--json")
            j = json.loads(insp.stdout)
            assert j["header"]["models"][0]["id"] == mid and j["header"]["models"][0]["kind"] == "conv"
            assert j["header"]["datasets"][0]["model"]["model"] == 0
            text = cli("inspect", out).stdout
            assert mid in text and "conv" in text, text


def test_the_models_output_alone_goes_through_its_tiles(cli, container, conv, halves, air, tmp_path):
    """`--error none`: the decoder's reconstruction is all the archive holds, so the tiles, the
    padding and the ONNX graphs are exercised; pack's report of the error is what unpack gives."""
    mid = conv["id"]
    x = air["A1B"][120:]
    out, header, y, r = pack_unpack(cli, container, halves["test"], tmp_path, "none", "none", "--model", mid)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert np.isfinite(y).all()
    d = np.abs(y.astype("f8") - x)
    rms = float(np.sqrt(np.mean(d ** 2)))
    # two epochs of a tiny network: far from a good model, but far better than the mean field
    assert rms < 0.6 * float(x.std()), (rms, float(x.std()))
    (v,) = json.loads(cli("inspect", out, "--json").stdout)["variables"]
    assert v["bound"] == "none" and v["model_chunks"] == len(container(out)["chunks"]), v
    reported = v["errors"]["max_abs_error"]
    assert abs(reported - d.max()) <= 1e-6 * d.max(), (reported, d.max())
    assert abs(v["errors"]["residual_rms"] - rms) <= 1e-4 * rms, (v["errors"], rms)
    # A tenth of raw at most: 12 tiles x 8 f16 code values per month, no residual.
    assert out.stat().st_size < 0.1 * x.nbytes
    # The same reconstruction from an archive carrying its decoder, with an empty model store.
    emb = tmp_path / "embedded.baler"
    cli("pack", halves["test"], "--dataset", VAR, "--error", "none", "--model", mid, "--embed-model", "-o", emb)
    empty = tmp_path / "empty-store"
    empty.mkdir()
    back = tmp_path / "embedded.h5"
    cli("unpack", emb, "-o", back, "--threads", "1", env={"BALER_MODEL_PATH": str(empty)})
    with h5py.File(back, "r") as f:
        z = f[VAR][()]
    assert z.tobytes() == y.tobytes()


def test_an_f64_field_of_the_models_row_shape_is_within_bound(cli, container, conv, air, tmp_path):
    x = air["A1B"][200:].astype("<f8")
    src = write_h5(tmp_path / "f64.h5", x)
    _, header, y, _ = pack_unpack(cli, container, src, tmp_path, "f64", "rel=1e-4", "--model", conv["id"])
    check_bound(x, y, "rel=1e-4", header)


def test_lossless_with_the_model_is_bit_exact(cli, container, conv, halves, air, tmp_path):
    x = air["E1"]
    out = tmp_path / "lossless.baler"
    cli("pack", halves["e1"], "--dataset", VAR, "--model", conv["id"], "-o", out)
    header = container(out)["header"]
    assert header["datasets"][0]["variables"][0]["error"]["mode"] == "lossless"
    cli("unpack", out, "-o", tmp_path / "lossless.h5")
    with h5py.File(tmp_path / "lossless.h5", "r") as f:
        y = f[VAR][()]
    assert y.dtype == x.dtype and y.tobytes() == x.tobytes()


# --------------------------------------------------------------------------------------------
# The header of an archive that references a conv model


def test_a_conv_archives_header_and_the_manifest_validate_against_their_schemas(cli, container, conv, halves, schema,
                                                                                model_store, tmp_path):
    out = tmp_path / "s.baler"
    cli("pack", halves["test"], "--dataset", VAR, "--error", "rel=1e-3", "--model", conv["id"], "-o", out)
    header = container(out)["header"]
    assert header["models"][0]["kind"] == "conv"
    errs = schema_errors(schema, header)
    assert not errs, errs
    mschema = json.loads((SCHEMA_PATH.parent / "model-manifest.schema.json").read_text())
    Draft202012Validator.check_schema(mschema)
    errs = schema_errors(mschema, json.loads((model_store / conv["id"] / "manifest.json").read_text()))
    assert not errs, errs


# --------------------------------------------------------------------------------------------
# 3. Data the model cannot take


@pytest.mark.parametrize("shape", [(10, 30, 30), (10, 49, 37), (4, 2, 37, 49)])
def test_a_conv_model_refuses_a_field_of_another_row_shape(cli, conv, tmp_path, shape):
    src = write_h5(tmp_path / "other.h5", np.random.default_rng(0).normal(size=shape).astype("f4"), name="v")
    out = tmp_path / "o.baler"
    r = cli("pack", src, "--dataset", "v", "--error", "rel=1e-3", "--model", conv["id"], "-o", out, expect_fail=True)
    line = one_error_line(r)
    assert "conv" in line and "[37, 49]" in line and str(list(shape[1:])) in line, line
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name != "other.h5"], list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------
# 4. What train --kind conv refuses


def test_train_conv_refuses_a_2d_or_an_integer_dataset(cli, air, tmp_path):
    x = air["A1B"]
    two = write_h5(tmp_path / "two.h5", x[0], name="month")
    ints = write_h5(tmp_path / "ints.h5", np.round(x[:50] * 10).astype("<i4"), name="tenths")
    r = cli("train", two, "--dataset", "month", *SMALL, expect_fail=True)
    line = one_error_line(r)
    assert "month" in line and "[37, 49]" in line and "3 or more axes" in line, line
    r = cli("train", ints, "--dataset", "tenths", *SMALL, expect_fail=True)
    line = one_error_line(r)
    assert "tenths" in line and "float" in line, line


# --------------------------------------------------------------------------------------------
# 5. The HDF5 filter


def test_the_filter_codes_a_field_without_a_model_within_each_chunks_range(air, tmp_path):
    import balerfile_h5
    x = air["A1B"]
    out = tmp_path / "plain.h5"
    with h5py.File(out, "w") as f:
        f.create_dataset("plain", data=x, chunks=(12, *GRID), **balerfile_h5.Baler(error="rel=1e-3"))
    with h5py.File(out, "r") as f:
        assert f["plain"].id.get_create_plist().get_filter(0)[0] == balerfile_h5.FILTER_ID
        assert f["plain"].id.get_storage_size() < 0.3 * x.nbytes, f["plain"].id.get_storage_size()
    y = read_in_new_process(out, "plain", tmp_path / "p.npy", bare_env())
    assert y.shape == x.shape and y.dtype == x.dtype
    x64 = x.astype("f8")
    err = np.abs(y.astype("f8") - x64)
    assert err.max() <= 1e-3 * (x64.max() - x64.min())
    # and within 1e-3 of each chunk's own range, which is what the filter promises
    for c in range(0, 240, 12):
        xc = x64[c:c + 12]
        assert err[c:c + 12].max() <= 1e-3 * (xc.max() - xc.min()), c


def test_the_filter_codes_a_field_with_the_conv_model(conv, air, model_store, tmp_path, monkeypatch):
    """Chunks of whole rows (12 months of 37 x 49): the row layout, each row one input of the model."""
    import balerfile_h5
    monkeypatch.setenv("BALER_MODEL_PATH", str(model_store))
    x = air["A1B"]
    out = tmp_path / "model.h5"
    with h5py.File(out, "w") as f:
        f.create_dataset("model", data=x, chunks=(12, *GRID), **balerfile_h5.Baler(model=conv["id"], error="abs=0.05"))
        f.create_dataset("plain", data=x, chunks=(12, *GRID), **balerfile_h5.Baler(error="abs=0.05"))
    with h5py.File(out, "r") as f:
        sizes = {k: f[k].id.get_storage_size() for k in ("model", "plain")}
        cd = f["model"].id.get_create_plist().get_filter(0)[2]
    # h5py adds the filter as optional: a chunk the filter fails on is stored raw.
    assert sizes["model"] < 0.5 * x.nbytes, f"{sizes} of {x.nbytes} raw: chunks stored unfiltered?"
    # Each chunk uses the model only where it makes the chunk smaller: never (much) larger.
    assert sizes["model"] <= 1.02 * sizes["plain"], sizes
    assert balerfile_h5.parse_cd_values(cd)["model"] == conv["id"]
    y = read_in_new_process(out, "model", tmp_path / "m.npy", bare_env(BALER_MODEL_PATH=model_store))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert np.abs(y.astype("f8") - x.astype("f8")).max() <= 0.05
