"""BCAE-2D for sparse TPC wedges, end to end with the real CLI, ONNX Runtime, h5py and the filter.

Data: SYNTHETIC TPC-like wedges from fixtures/make_tpc_wedges.py (helix tracks through the
outer 16 of 48 layers, diffusion, pile-up, noise, 10-bit ADC, zero suppression at 64); no real
sPHENIX data can be had here. The model is a small BCAE-2D (4 channels, m = n = d = 3) trained
for two epochs: these tests check shapes, dtypes, zero suppression, clipping, bounds and
formats, not the quality a long training reaches (scripts/bench_bcae2d.py measures that).
"""
import json
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import ROOT
from test_h5filter import bare_env, read_in_new_process

sys.path.insert(0, str(ROOT / "fixtures"))
import make_tpc_wedges  # noqa: E402

WEDGE = (16, 192, 249)
SMALL = ["--kind", "bcae2d", "--epochs", "2", "--channels", "4", "--code-channels", "4",
         "--encoder-blocks", "3", "--decoder-blocks", "3", "--lr-hold", "1", "--lr-every", "1"]


@pytest.fixture(scope="module")
def tpc(tmp_path_factory):
    d = tmp_path_factory.mktemp("tpc")
    path = d / "tpc.h5"
    r = subprocess.run([sys.executable, str(ROOT / "fixtures" / "make_tpc_wedges.py"), str(path), "--wedges", "8",
                        "--png", str(d / "wedge.png")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    with h5py.File(path, "r") as f:
        x = f["tpc/adc"][()]
    return path, x


@pytest.fixture(scope="module")
def bcae(cli, tpc, model_store, tmp_path_factory):
    path, _ = tpc
    r = cli("train", path, *SMALL, "-o", tmp_path_factory.mktemp("bundle") / "b")
    m = re.search(r"model ([0-9a-f]{64}) stored", r.stdout)
    assert m, r.stdout
    return m.group(1), r.stdout


def test_generated_wedges_look_like_the_papers_tpc_data(tpc):
    path, x = tpc
    assert x.dtype == np.dtype("<u2") and x.shape == (8, *WEDGE)
    occupancy = (x > 0).mean()
    assert 0.08 <= occupancy <= 0.13, occupancy
    nz = x[x > 0]
    assert nz.min() >= 64 and nz.max() <= 1023, "zero suppression at 64 and 10-bit ADC"
    log = np.log2(nz.astype(float) + 1)
    # the sharp edge at 6: the first bin above it holds the most voxels
    hist, _ = np.histogram(log, bins=16, range=(6, 10))
    assert hist.argmax() == 0 and log.min() > 6.0, hist
    with h5py.File(path, "r") as f:
        assert "synthetic" in f["tpc/adc"].attrs
    png = path.parent / "wedge.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the same seed gives the same wedges
    assert np.array_equal(make_tpc_wedges.wedges(8, 0), x)


def test_train_reports_the_papers_architecture_and_metrics(bcae, model_store):
    mid, out = bcae
    assert "BCAE-2D(m=3, n=3, d=3)" in out and "code [4, 24, 32]" in out, out
    for metric in ("MAE", "PSNR", "precision", "recall"):
        assert metric in out
    man = json.loads((model_store / mid / "manifest.json").read_text())
    assert man["kind"] == "bcae2d"
    assert man["features"] == [{"name": "tpc/adc", "dtype": "u16", "shape": list(WEDGE)}]
    assert man["latent"]["size"] == 4 * 24 * 32
    hist = man["provenance"]["training"]["history"]
    assert hist[0]["balance"] == 2000.0
    c1 = (0.5 * 2000.0 + hist[0]["regression_loss"] / hist[0]["segmentation_loss"]) / 1.5
    assert abs(hist[1]["balance"] - c1) < 1e-6 * c1, "the paper's dynamic balance"
    check = man["provenance"]["onnx_check"]
    assert check["differences_away_from_threshold"] == 0, check
    assert check["encoder_max_relative_difference"] < 1e-4


def test_pack_and_unpack_with_the_model_at_every_bound(cli, tpc, bcae, container, tmp_path):
    import jsonschema
    from conftest import SCHEMA_PATH
    schema = json.loads(SCHEMA_PATH.read_text())
    path, x = tpc
    mid, _ = bcae
    sizes = {}
    for err in ("none", "lossless", "abs=8"):
        out = tmp_path / f"{err}.baler"
        r = cli("pack", path, "-o", out, "--model", mid, "--error", err)
        sizes[err] = out.stat().st_size
        header = container(out)["header"]
        jsonschema.validate(header, schema)
        assert header["models"][0]["kind"] == "bcae2d"
        assert "through the model alone" in r.stdout and "precision" in r.stdout, r.stdout
        back = tmp_path / f"{err}.h5"
        cli("unpack", out, "-o", back)
        with h5py.File(back, "r") as f:
            y = f["tpc/adc"][()]
        assert y.dtype == np.dtype("<u2") and y.shape == x.shape, "clipped back to 249, ADC as u16"
        d = np.abs(y.astype(np.int64) - x)
        if err == "lossless":
            assert y.tobytes() == x.tobytes()
        elif err == "abs=8":
            assert d.max() <= 8
        else:
            # the model's reconstruction: zero where the segmentation says so, else at least
            # T(x) = 6 + 3 exp(x) > 6 in log2(ADC + 1), i.e. ADC >= 63 after rounding
            nz = y[y > 0]
            assert nz.min() >= 63
            assert 0 < (y > 0).mean() < 1
    assert sizes["none"] < sizes["abs=8"] < sizes["lossless"] * 1.01


def test_the_filter_reads_and_writes_wedges_with_the_model(bcae, tpc, model_store, tmp_path, monkeypatch):
    import balerfile_h5
    monkeypatch.setenv("BALER_MODEL_PATH", str(model_store))
    path, x = tpc
    mid, _ = bcae
    out = tmp_path / "filtered.h5"
    with h5py.File(out, "w") as f:
        f.create_dataset("lossless", data=x[:3], chunks=(1, *WEDGE), **balerfile_h5.Baler(model=mid[:12]))
        f.create_dataset("abs8", data=x[:3], chunks=(1, *WEDGE), **balerfile_h5.Baler(error="abs=8", model=mid))
        f.create_dataset("none", data=x[:3], chunks=(1, *WEDGE), **balerfile_h5.Baler(error="none", model=mid))
    env = bare_env(BALER_MODEL_PATH=model_store)
    y = read_in_new_process(out, "lossless", tmp_path / "l.npy", env)
    assert y.tobytes() == x[:3].tobytes()
    y = read_in_new_process(out, "abs8", tmp_path / "a.npy", env)
    assert y.dtype == np.dtype("<u2") and np.abs(y.astype(int) - x[:3]).max() <= 8
    y = read_in_new_process(out, "none", tmp_path / "n.npy", env)
    assert y.shape == (3, *WEDGE) and y[y > 0].min() >= 63
    with h5py.File(out, "r") as f:
        assert f["none"].id.get_storage_size() < x[:3].nbytes / 20


def test_a_bcae2d_model_refuses_data_of_another_shape(cli, bcae, tmp_path):
    mid, _ = bcae
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("adc", data=np.zeros((2, 16, 192, 250), "<u2"))
    r = cli("pack", other, "-o", tmp_path / "o.baler", "--model", mid, expect_fail=True)
    assert "bcae2d" in r.stderr and "[16, 192, 249]" in r.stderr, r.stderr
    assert not (tmp_path / "o.baler").exists()


def test_a_half_precision_encoder_keeps_the_accuracy(cli, tpc, bcae, tmp_path):
    path, x = tpc
    mid, _ = bcae

    def metrics(*extra):
        out = tmp_path / f"h{len(extra)}.baler"
        r = cli("pack", path, "-o", out, "--model", mid, "--error", "abs=4", *extra)
        m = re.search(r"MAE ([\d.]+), PSNR ([\d.-]+) dB, precision ([\d.]+), recall ([\d.]+)", r.stdout)
        back = tmp_path / f"h{len(extra)}.h5"
        cli("unpack", out, "-o", back)
        with h5py.File(back, "r") as f:
            assert np.abs(f["tpc/adc"][()].astype(int) - x).max() <= 4
        return [float(v) for v in m.groups()]

    full, half = metrics(), metrics("--half")
    assert np.allclose(full, half, rtol=2e-3, atol=2e-3), (full, half)


def test_eval_draws_a_wedge_and_checks_the_counts(cli, tpc, bcae, tmp_path):
    """`eval` on BCAE-2D archives: with abs=8 every ADC count is within 8 and the report shows
    one wedge's layers; with the model alone (--error none) nothing is promised and the report
    says so instead of claiming a bound."""
    from test_eval import check_outputs, check_summary_h5, load, run_eval
    path, _ = tpc
    mid, _ = bcae
    for err, held in (("abs=8", True), ("none", None)):
        arch, back, out = tmp_path / f"{err}.baler", tmp_path / f"{err}.h5", tmp_path / f"report-{err}"
        cli("pack", path, "-o", arch, "--model", mid, "--error", err)
        cli("unpack", arch, "-o", back)
        run_eval(cli, path, arch, out)
        s = load(out)
        check_outputs(out, s)
        check_summary_h5(s, path, back, arch, decoder_bytes=s["decoder_bytes"])
        (ds,) = s["datasets"]
        assert ds["model"]["kind"] == "bcae2d" and ds["model"]["id"] == mid
        assert set(ds["plots"]) == {"wedge"}, ds["plots"]
        (v,) = ds["variables"]
        assert v["bound_held"] is held, v
        assert s["bound_held"] is True
        # The decoder counts only when a chunk kept the code (abs=8 may code every chunk without).
        used = json.loads(cli("inspect", arch, "--json").stdout)["model_chunks"][0]
        assert used > 0 or err == "abs=8", "--error none needs the code in every chunk"
        if used:
            assert s["decoder_bytes"] > 0 and s["ratio_with_decoder"] < s["ratio"]
        else:
            assert s["decoder_bytes"] == 0 and s["ratio_with_decoder"] == s["ratio"]
