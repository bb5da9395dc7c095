"""`balerfile eval ORIGINAL ARCHIVE -o DIR`: the report's numbers, files and HTML, on real data.

Every number in summary.json is recomputed here with numpy, in float64, from the original file
and from what `balerfile unpack` gives back (read with h5py / numpy), never from balerfile's own
output: counts and maxima must match exactly, sums (means, RMS, std) to 1e-9 relative (of the
quantity, or of its RMS where the quantity is a mean or spread that may be ~0).

Files: summary.json must validate against schemas/eval-summary.schema.json; every PNG it names must
exist and be a valid PNG (checked by the small PNG reader below: signature, chunk CRCs, IHDR first,
IEND last, IDAT inflating to exactly the bytes its header implies); report.html must embed every
one of them as a data: URI and reference nothing outside itself; and it must open in headless
Chromium (selenium) with every image decoded and no console errors. A full-page screenshot is
kept at target/test-artifacts/eval_report.png for a person to look at.

Errors: an ORIGINAL that is not the archive's source, an ARCHIVE that is not a .baler, or an -o
that is a regular file fail with exit code 1, one `balerfile: error:` line naming the file, and
no report left behind.

--compare runs src/eval/peers.py in this Python (h5py + hdf5plugin): SZ3, ZFP and zstd on the
same variables.
"""
import base64
import hashlib
import json
import math
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from conftest import BIN, DTYPES, ROOT, THREADS, h5_datasets, parse_container, variables_of

EVAL_SCHEMA = ROOT / "schemas" / "eval-summary.schema.json"
ARTIFACTS = ROOT / "target" / "test-artifacts"
FAST_TRAIN = ["--epochs", "6", "--patience", "3"]
ERR = "balerfile: error:"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REL_TOL = 1e-9


# ---------------------------------------------------------------------------------------------
# A PNG reader (pure Python): enough to say a file is a well-formed PNG


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
MAX_SIDE = 100_000


def png_info(data, what="PNG"):
    """Checks `data` is a valid PNG; returns (width, height). Fails the test with `what` named."""
    def need(cond, msg):
        if not cond:
            pytest.fail(f"{what}: not a valid PNG: {msg}", pytrace=False)

    need(isinstance(data, (bytes, bytearray)) and len(data) >= 8 + 25 + 12, f"only {len(data)} bytes")
    need(data[:8] == PNG_SIGNATURE, f"signature {data[:8]!r}")
    chunks = []
    pos = 8
    while pos < len(data):
        need(pos + 12 <= len(data), f"truncated chunk header at byte {pos}")
        (length,) = struct.unpack_from(">I", data, pos)
        ctype = data[pos + 4:pos + 8]
        need(length < 2 ** 31, f"chunk length {length} at byte {pos}")
        need(all(65 <= c <= 90 or 97 <= c <= 122 for c in ctype), f"chunk type {ctype!r} at byte {pos}")
        need(pos + 12 + length <= len(data), f"chunk {ctype!r} at byte {pos} runs past the end")
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        need(crc == zlib.crc32(ctype + body), f"CRC mismatch in chunk {ctype!r} at byte {pos}")
        chunks.append((ctype, body))
        pos += 12 + length
        if ctype == b"IEND":
            break
    need(pos == len(data), f"{len(data) - pos} bytes after IEND")
    types = [t for t, _ in chunks]
    need(types and types[0] == b"IHDR", f"first chunk is {types[:1]}, not IHDR")
    need(types[-1] == b"IEND" and len(chunks[-1][1]) == 0, "last chunk is not an empty IEND")
    need(types.count(b"IHDR") == 1 and types.count(b"IEND") == 1, f"chunks {types}")
    ihdr = chunks[0][1]
    need(len(ihdr) == 13, f"IHDR of {len(ihdr)} bytes")
    width, height, depth, colour, comp, filt, interlace = struct.unpack(">IIBBBBB", ihdr)
    need(0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE, f"size {width}x{height}")
    need(colour in PNG_CHANNELS and depth in PNG_DEPTHS[colour], f"colour type {colour} with bit depth {depth}")
    need(comp == 0 and filt == 0 and interlace in (0, 1), f"compression {comp}, filter {filt}, interlace {interlace}")
    idat = [i for i, t in enumerate(types) if t == b"IDAT"]
    need(idat, "no IDAT chunk")
    need(idat == list(range(idat[0], idat[-1] + 1)), "IDAT chunks are not consecutive")
    if b"PLTE" in types:
        p = types.index(b"PLTE")
        need(colour in (2, 3, 6) and p < idat[0], f"PLTE for colour type {colour} or after IDAT")
        plen = len(chunks[p][1])
        need(plen % 3 == 0 and 0 < plen // 3 <= 2 ** depth if colour == 3 else plen % 3 == 0, f"PLTE of {plen} bytes")
    else:
        need(colour != 3, "palette image without PLTE")
    z = zlib.decompressobj()
    try:
        raw = z.decompress(b"".join(chunks[i][1] for i in idat))
    except zlib.error as e:
        need(False, f"IDAT does not inflate: {e}")
    need(z.eof and not z.unused_data, "IDAT zlib stream not complete, or data after it")
    bits = PNG_CHANNELS[colour] * depth

    def row_bytes(w):
        return 1 + (w * bits + 7) // 8
    if interlace == 0:
        expected = height * row_bytes(width)
        need(len(raw) == expected, f"IDAT inflates to {len(raw)} bytes, expected {height}*{row_bytes(width)} = {expected}")
        rb = row_bytes(width)
        bad = [y for y in range(height) if raw[y * rb] > 4]
        need(not bad, f"row {bad[:1]} has filter type > 4")
    else:
        expected = 0
        for x0, y0, dx, dy in ADAM7:
            pw = (width - x0 + dx - 1) // dx if width > x0 else 0
            ph = (height - y0 + dy - 1) // dy if height > y0 else 0
            if pw and ph:
                expected += ph * row_bytes(pw)
        need(len(raw) == expected, f"interlaced IDAT inflates to {len(raw)} bytes, expected {expected}")
    return width, height


# ---------------------------------------------------------------------------------------------
# Running eval and checking what it wrote


def run_eval(cli, original, archive, out, *extra, expect_fail=False):
    return cli("eval", original, archive, "-o", out, *THREADS, *extra, expect_fail=expect_fail, timeout=900)


def validate_summary(summary):
    schema = json.loads(EVAL_SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    err = best_match(Draft202012Validator(schema).iter_errors(summary))
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path)
        pytest.fail(f"summary.json does not match {EVAL_SCHEMA.name} at /{where}: {err.message}", pytrace=False)


def plot_paths(summary):
    paths = []
    for ds in summary["datasets"]:
        paths += list(ds["plots"].values())
        for v in ds["variables"]:
            paths += list(v["plots"].values())
    return paths


def html_images(html):
    """[(src, decoded bytes)] for every <img> in the page, in order."""
    out = []
    for tag in re.findall(r"<img\b[^>]*>", html, re.I):
        m = re.search(r"""\bsrc\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", tag, re.I)
        assert m, f"<img> without src: {tag[:200]}"
        src = next(g for g in m.groups() if g is not None)
        assert src.startswith("data:image/png;base64,"), f"<img> src is not a PNG data URI: {src[:80]!r}"
        out.append((src, base64.b64decode(src[len("data:image/png;base64,"):], validate=True)))
    return out


def check_html(out, summary):
    html = (out / "report.html").read_text(encoding="utf-8")
    low = html.lower()
    assert low.lstrip().startswith("<!doctype html") and "</html>" in low, "report.html is not a whole HTML page"
    assert re.search(r"<title>[^<]*balerfile eval", html, re.I), "report.html has no 'balerfile eval' title"
    # nothing outside the file: no scheme, no script, no stylesheet link, no CSS url() but data:
    for bad in ("http:", "https:", "<script", "<link", "@import", "<iframe", "<object", "<embed", "<base"):
        assert bad not in low, f"report.html contains {bad!r}"
    attr = re.compile(r"""\s(src|href|srcset|poster|action|data|background)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
    for tag in re.findall(r"<[a-zA-Z][^>]*>", html):
        for m in attr.finditer(tag):
            val = next(g for g in m.groups()[1:] if g is not None)
            if m.group(1).lower() == "href":
                assert val.startswith("#"), f"report.html links outside itself: href={val[:80]!r}"
            elif m.group(1).lower() == "src":
                assert val.startswith("data:"), f"report.html loads {val[:80]!r}"
            else:
                pytest.fail(f"report.html has a {m.group(1)}= attribute: {val[:80]!r}", pytrace=False)
    for m in re.finditer(r"url\(\s*['\"]?([^)'\"]*)", html, re.I):
        assert m.group(1).startswith("data:"), f"report.html CSS loads {m.group(1)[:80]!r}"
    images = html_images(html)
    embedded = set()
    for i, (_, png) in enumerate(images):
        png_info(png, f"report.html <img> #{i}")
        embedded.add(png)
    for p in plot_paths(summary):
        assert (out / p).read_bytes() in embedded, f"{p} is not embedded in report.html"
    return html, images


def check_outputs(out, summary):
    """The report folder holds exactly report.html, summary.json and the plots summary.json
    names, each a valid PNG, all embedded in report.html."""
    assert sorted(os.listdir(out)) == ["plots", "report.html", "summary.json"], \
        f"report folder holds {sorted(os.listdir(out))}"
    validate_summary(summary)
    paths = plot_paths(summary)
    assert len(set(paths)) == len(paths), "two plots share a file name"
    on_disk = sorted(os.listdir(out / "plots"))
    assert on_disk == sorted(Path(p).name for p in paths), \
        f"plots/ holds files summary.json does not name, or lacks some: {sorted(set(on_disk) ^ {Path(p).name for p in paths})}"
    for p in paths:
        assert p.startswith("plots/") and p.endswith(".png"), p
        png_info((out / p).read_bytes(), p)
    check_html(out, summary)


def load(out):
    return json.loads((out / "summary.json").read_text())


def evaluated(cli, original, archive, out, *extra):
    r = run_eval(cli, original, archive, out, *extra)
    summary = load(out)
    check_outputs(out, summary)
    return summary, r


# ---------------------------------------------------------------------------------------------
# The numbers, independently


def dtype_name(dt):
    for name, d in DTYPES.items():
        if d.kind == dt.kind and d.itemsize == dt.itemsize:
            return name
    raise AssertionError(f"no balerfile dtype for {dt}")


def expected_stats(x, y):
    """What eval must say about a variable with originals x and reconstruction y (same dtype)."""
    x = np.ascontiguousarray(x).reshape(-1)
    y = np.ascontiguousarray(y).reshape(-1)
    assert x.dtype == y.dtype and x.shape == y.shape
    x64 = x.astype(np.float64)
    y64 = y.astype(np.float64)
    fin = np.isfinite(x64)
    nf = ~fin
    if nf.any():
        u = f"u{x.dtype.itemsize}"
        mismatched_nonfinite = int((x.view(u)[nf] != y.view(u)[nf]).sum())
    else:
        mismatched_nonfinite = 0
    e = y64[fin] - x64[fin]
    a = np.abs(e)
    xo = x64[fin]
    zero = xo == 0.0
    r = e[~zero] / xo[~zero]

    def moments(v):
        if v.size == 0:
            return None
        return dict(mean=float(v.mean()), rms=float(np.sqrt(np.mean(v * v))), std=float(v.std()))
    return dict(
        n=int(x.size), nonfinite=int(nf.sum()), mismatched_nonfinite=mismatched_nonfinite,
        identical=x.tobytes() == y.tobytes(),
        max_abs_error=float(a.max()) if a.size else 0.0,
        mean_abs_error=float(a.mean()) if a.size else 0.0,
        rms_abs_error=float(np.sqrt(np.mean(e * e))) if e.size else 0.0,
        residual=moments(e), response=moments(r), response_n=int(r.size), zero_original=int(zero.sum()),
        values=dict(original=xo, reconstructed=y64[fin], residual=e, response=r),
    )


def close(got, want, scale, what):
    tol = REL_TOL * max(abs(want), abs(scale))
    assert abs(got - want) <= tol, f"{what}: {got!r}, numpy says {want!r} (|diff| {abs(got - want):.3g} > {tol:.3g})"


def check_histogram(h, values, what, bins=None):
    total = sum(h["counts"]) + h["underflow"] + h["overflow"]
    assert total == values.size, f"{what}: histogram holds {total} values, expected {values.size}"
    assert h["lo"] <= h["hi"], f"{what}: lo {h['lo']} > hi {h['hi']}"
    if bins is not None:
        assert len(h["counts"]) == bins, f"{what}: {len(h['counts'])} bins, --bins {bins}"
    lo, hi = h["lo"], h["hi"]
    # whatever the convention at the edges, the counts must agree with lo/hi
    assert (values < lo).sum() <= h["underflow"] <= (values <= lo).sum(), f"{what}: underflow {h['underflow']}"
    assert (values > hi).sum() <= h["overflow"] <= (values >= hi).sum(), f"{what}: overflow {h['overflow']}"


def check_variable(sv, x, y, herror, bins=None):
    """sv: the variable's summary entry; x/y: original/reconstructed values; herror: the
    variable's header error entry (mode, value, abs)."""
    name = sv["name"]
    want = expected_stats(x, y)
    assert sv["dtype"] == dtype_name(x.dtype), f"{name}: dtype {sv['dtype']} for {x.dtype}"
    assert sv["mode"] == herror["mode"], f"{name}: mode {sv['mode']}, header {herror['mode']}"
    assert isinstance(sv["bound"], str) and sv["bound"], name
    for k in ("n", "nonfinite", "mismatched_nonfinite"):
        assert sv[k] == want[k], f"{name}: {k} {sv[k]}, numpy says {want[k]}"
    assert sv["max_abs_error"] == want["max_abs_error"], f"{name}: max_abs_error {sv['max_abs_error']!r}, numpy says {want['max_abs_error']!r}"
    close(sv["mean_abs_error"], want["mean_abs_error"], want["mean_abs_error"], f"{name}: mean_abs_error")
    close(sv["rms_abs_error"], want["rms_abs_error"], want["rms_abs_error"], f"{name}: rms_abs_error")
    res, wres = sv["residual"], want["residual"]
    if wres is not None:
        close(res["mean"], wres["mean"], wres["rms"], f"{name}: residual.mean")
        close(res["rms"], wres["rms"], wres["rms"], f"{name}: residual.rms")
        close(res["std"], wres["std"], wres["rms"], f"{name}: residual.std")
    resp, wresp = sv["response"], want["response"]
    assert resp["n"] == want["response_n"], f"{name}: response.n {resp['n']}, numpy says {want['response_n']}"
    assert resp["zero_original"] == want["zero_original"], \
        f"{name}: response.zero_original {resp['zero_original']}, numpy says {want['zero_original']}"
    if wresp is not None:
        close(resp["mean"], wresp["mean"], wresp["rms"], f"{name}: response.mean")
        close(resp["rms"], wresp["rms"], wresp["rms"], f"{name}: response.rms")
        close(resp["std"], wresp["std"], wresp["rms"], f"{name}: response.std")
    # the bound
    mode = herror["mode"]
    if mode == "lossless":
        assert sv["tolerance"] is None, f"{name}: lossless with tolerance {sv['tolerance']}"
        assert sv["bound_held"] is want["identical"], f"{name}: bound_held {sv['bound_held']}, bit-identical {want['identical']}"
    elif mode in ("abs", "rel"):
        tol = float(herror["abs"])
        assert sv["tolerance"] == tol, f"{name}: tolerance {sv['tolerance']!r}, header abs {tol!r}"
        held = want["max_abs_error"] <= tol and want["mismatched_nonfinite"] == 0
        assert sv["bound_held"] is held, f"{name}: bound_held {sv['bound_held']}, numpy says {held}"
    else:
        assert mode == "none" and sv["bound_held"] is None, f"{name}: mode {mode}, bound_held {sv['bound_held']}"
    # histograms: over the finite originals (response: over those != 0)
    for k in ("original", "reconstructed", "residual", "response"):
        check_histogram(sv["histograms"][k], want["values"][k], f"{name}: histograms.{k}", bins)
    assert set(sv["plots"]) == {"distributions", "residual", "response"}, f"{name}: plots {sorted(sv['plots'])}"
    return want


def check_summary_h5(summary, src, unpacked, archive, bins=None, decoder_bytes=0):
    """Every number of `summary` against numpy on the original HDF5 `src` and `unpacked`."""
    header = parse_container(archive)["header"]
    hds = header["datasets"]
    assert [d["path"] for d in summary["datasets"]] == [d["path"] for d in hds]
    raw = 0
    with h5py.File(src, "r") as fs, h5py.File(unpacked, "r") as fo:
        s_all, o_all = h5_datasets(fs), h5_datasets(fo)
        for sd, hd in zip(summary["datasets"], hds):
            path = sd["path"]
            s, o = s_all[path], o_all[path]
            assert sd["shape"] == list(s.shape), f"{path}: shape {sd['shape']}"
            columns = hd["kind"] == "columns"  # a 2-D float array read as a table
            assert sd["kind"] == ("table" if s.dtype.names or columns else "array"), f"{path}: kind {sd['kind']}"
            if columns:
                want_vars = [(v["name"], j) for j, v in enumerate(hd["variables"])]
                assert s.ndim == 2 and len(want_vars) == s.shape[1], f"{path}: {len(want_vars)} columns"
            else:
                want_vars = variables_of(path, s.dtype)
            assert [v["name"] for v in sd["variables"]] == [n for n, _ in want_vars], f"{path}: variables"
            xs, xo = s[()], o[()]
            for (vname, field), sv, hv in zip(want_vars, sd["variables"], hd["variables"]):
                if columns:
                    x, y = np.ascontiguousarray(xs[:, field]), np.ascontiguousarray(xo[:, field])
                else:
                    x = np.asarray(xs[field] if field else xs)
                    y = np.asarray(xo[field] if field else xo)
                raw += x.nbytes
                check_variable(sv, x, y, hv["error"], bins)
    check_totals(summary, archive, raw, decoder_bytes)


def check_totals(summary, archive, raw, decoder_bytes=0):
    assert summary["raw_bytes"] == raw, f"raw_bytes {summary['raw_bytes']}, the variables hold {raw}"
    size = os.path.getsize(archive)
    assert summary["archive_bytes"] == size, f"archive_bytes {summary['archive_bytes']}, file is {size}"
    assert summary["decoder_bytes"] == decoder_bytes, f"decoder_bytes {summary['decoder_bytes']}, expected {decoder_bytes}"
    assert math.isclose(summary["ratio"], raw / size, rel_tol=1e-12), summary["ratio"]
    assert math.isclose(summary["ratio_with_decoder"], raw / (size + decoder_bytes), rel_tol=1e-12), summary["ratio_with_decoder"]
    held = all(v["bound_held"] is not False for d in summary["datasets"] for v in d["variables"])
    assert summary["bound_held"] is held
    assert Path(summary["archive"]).name == Path(archive).name, summary["archive"]
    ver = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout
    assert summary["balerfile_version"] and summary["balerfile_version"] in ver, \
        f"balerfile_version {summary['balerfile_version']!r} not in `--version`: {ver!r}"


# ---------------------------------------------------------------------------------------------
# Fixtures: real data packed once per module


def pack_and_unpack(cli, src, d, *pack_args, suffix=".h5"):
    arch = d / "a.baler"
    cli("pack", src, "-o", arch, *pack_args, *THREADS)
    unpacked = d / f"unpacked{suffix}"
    cli("unpack", arch, "-o", unpacked, *THREADS)
    return arch, unpacked


@pytest.fixture(scope="module")
def issue63_case(cli, issue63_h5, tmp_path_factory):
    d = tmp_path_factory.mktemp("eval-issue63")
    arch, unpacked = pack_and_unpack(cli, issue63_h5, d, "--error", "rel=1e-3", "--no-model")
    out = d / "report"
    summary, r = evaluated(cli, issue63_h5, arch, out, "--bins", "40")
    return dict(src=issue63_h5, arch=arch, unpacked=unpacked, out=out, summary=summary, run=r)


@pytest.fixture(scope="module")
def zmumu_case(cli, zmumu_h5, tmp_path_factory):
    d = tmp_path_factory.mktemp("eval-zmumu")
    arch, unpacked = pack_and_unpack(cli, zmumu_h5, d, "--error", "rel=1e-3", "--error", "M:lossless")
    out = d / "report"
    summary, r = evaluated(cli, zmumu_h5, arch, out, "-q")
    return dict(src=zmumu_h5, arch=arch, unpacked=unpacked, out=out, summary=summary, run=r)


@pytest.fixture(scope="module")
def model_case(cli, issue63_h5, tmp_path_factory):
    d = tmp_path_factory.mktemp("eval-model")
    # One column coded by the model alone keeps the model: the bounded columns alone would not
    # (the codec predicts issue63's columns from one another better than a quick model).
    arch, unpacked = pack_and_unpack(cli, issue63_h5, d, "--error", "rel=1e-3", "--error", "WtLoop_nominal.met:none",
                                     "--auto-model", *FAST_TRAIN, "--chunk-size", "1M")
    out = d / "report"
    summary, r = evaluated(cli, issue63_h5, arch, out)
    return dict(src=issue63_h5, arch=arch, unpacked=unpacked, out=out, summary=summary, run=r)


@pytest.fixture(scope="module")
def air_npy(hadcm3, tmp_path_factory):
    d = tmp_path_factory.mktemp("air-npy")
    with h5py.File(hadcm3, "r") as f:
        air = f["air_temperature"][()]
    p = d / "air.npy"
    np.save(p, air)
    return p


@pytest.fixture(scope="module")
def air_npy_archive(cli, air_npy, tmp_path_factory):
    d = tmp_path_factory.mktemp("air-npy-packed")
    return pack_and_unpack(cli, air_npy, d, "--error", "rel=1e-3", suffix=".npy")


# ---------------------------------------------------------------------------------------------
# Numbers


def test_issue63_table_numbers_match_numpy(issue63_case):
    c = issue63_case
    s = c["summary"]
    check_summary_h5(s, c["src"], c["unpacked"], c["arch"], bins=40)
    (ds,) = s["datasets"]
    assert ds["path"] == "/WtLoop_nominal" and ds["shape"] == [9812] and ds["kind"] == "table"
    assert ds["model"] is None and ds["plots"] == {}
    assert len(ds["variables"]) == 157
    modes = {}
    for v in ds["variables"]:
        modes.setdefault(v["mode"], []).append(v)
    assert len(modes["rel"]) == 141 and len(modes["lossless"]) == 16, {k: len(v) for k, v in modes.items()}
    assert all(v["dtype"] == "f32" for v in modes["rel"])
    assert all(v["bound_held"] is True for v in ds["variables"])
    assert s["bound_held"] is True and s["compare"] is None and s["decoder_bytes"] == 0
    assert sum(v["max_abs_error"] > 0 for v in modes["rel"]) > 100, "the float columns should be quantised"
    assert s["ratio"] > 1.0


def test_zmumu_numbers_match_numpy_with_a_lossless_variable(zmumu_case):
    c = zmumu_case
    s = c["summary"]
    check_summary_h5(s, c["src"], c["unpacked"], c["arch"])
    (ds,) = s["datasets"]
    by = {v["name"].split(".")[-1]: v for v in ds["variables"]}
    assert by["M"]["mode"] == "lossless" and by["M"]["tolerance"] is None and by["M"]["bound_held"] is True
    assert by["M"]["max_abs_error"] == 0.0 and by["M"]["dtype"] == "f64"
    for k in ("Run", "Event", "Q1", "Q2"):
        assert by[k]["dtype"] == "i32" and by[k]["mode"] == "lossless" and by[k]["bound_held"] is True
    for k in ("E1", "px1", "pt2", "phi2"):
        assert by[k]["mode"] == "rel" and by[k]["bound_held"] is True and 0 < by[k]["max_abs_error"] <= by[k]["tolerance"]
    # -q: a line or two instead of the per-variable table (19 variables here)
    lines = [ln for ln in c["run"].stdout.splitlines() if ln.strip()]
    assert len(lines) <= 3, f"-q printed {len(lines)} lines: {c['run'].stdout!r}"


def assert_same(a, b, where="summary"):
    """Equal, floats to 1e-12 relative (a sum's order may depend on the thread count)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), f"{where}: keys {sorted(set(a) ^ set(b))}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: {len(a)} != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_eval_on_one_thread_says_the_same(cli, zmumu_case, tmp_path):
    c = zmumu_case
    out = tmp_path / "again"
    cli("eval", c["src"], c["arch"], "-o", out, "--threads", "1", "-q", timeout=900)
    again = load(out)
    check_outputs(out, again)
    assert_same(again["datasets"], c["summary"]["datasets"], "datasets")
    for k in ("raw_bytes", "archive_bytes", "decoder_bytes", "ratio", "bound_held"):
        assert again[k] == c["summary"][k], k


def test_model_ratio_with_decoder_and_decoder_bytes(cli, model_case, model_store):
    c = model_case
    s = c["summary"]
    header = parse_container(c["arch"])["header"]
    (m,) = header["models"]
    assert "embedded" not in m, "the trained model should be kept outside the archive"
    mid = m["id"]
    bundle = model_store / mid
    manifest = json.loads((bundle / "manifest.json").read_text())
    # the manifest's canonical bytes (sorted keys, no spaces) are what the model id hashes
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert hashlib.sha256(canonical).hexdigest() == mid, "canonical manifest does not hash to the model id"
    decoder = (bundle / manifest["decoder"]["file"]).stat().st_size
    want = decoder + len(canonical)
    ins = json.loads(cli("inspect", c["arch"], "--json").stdout)
    assert ins["decoder_bytes"] == want, f"inspect says {ins['decoder_bytes']}, store holds {want}"
    check_summary_h5(s, c["src"], c["unpacked"], c["arch"], decoder_bytes=want)
    assert s["decoder_bytes"] > 0 and s["ratio_with_decoder"] < s["ratio"]
    (ds,) = s["datasets"]
    assert ds["model"] == {"id": mid, "kind": "dense"}
    assert s["bound_held"] is True
    # every bounded variable held; the one coded by the model alone has no bound to hold
    assert all(v["bound_held"] is (None if v["name"] == "WtLoop_nominal.met" else True) for v in ds["variables"])


def test_embedded_model_has_no_decoder_bytes(cli, model_case, issue63_h5, tmp_path):
    mid = parse_container(model_case["arch"])["header"]["models"][0]["id"]
    arch, unpacked = pack_and_unpack(cli, issue63_h5, tmp_path, "--error", "rel=1e-3", "--model", mid, "--embed-model")
    s, _ = evaluated(cli, issue63_h5, arch, tmp_path / "report")
    check_summary_h5(s, issue63_h5, unpacked, arch, decoder_bytes=0)
    assert s["ratio_with_decoder"] == s["ratio"]
    assert s["datasets"][0]["model"]["id"] == mid


def test_hadcm3_field_has_a_slice(cli, hadcm3, tmp_path):
    arch, unpacked = pack_and_unpack(cli, hadcm3, tmp_path, "--error", "rel=1e-3")
    out = tmp_path / "report"
    s, _ = evaluated(cli, hadcm3, arch, out)
    check_summary_h5(s, hadcm3, unpacked, arch)
    by = {d["path"]: d for d in s["datasets"]}
    air = by["/air_temperature"]
    assert air["kind"] == "array" and air["shape"] == [240, 37, 49]
    assert "slice" in air["plots"], f"no slice plot for the field: {air['plots']}"
    w, h = png_info((out / air["plots"]["slice"]).read_bytes(), air["plots"]["slice"])
    assert w >= 200 and h >= 100, (w, h)
    (v,) = air["variables"]
    assert v["mode"] == "rel" and v["bound_held"] is True and v["n"] == 240 * 37 * 49
    # 1-D coordinates are not pictures
    assert by["/time"]["plots"] == {}


def test_hadcm3_field_only_is_datasets_0(cli, hadcm3, tmp_path):
    arch, unpacked = pack_and_unpack(cli, hadcm3, tmp_path, "--dataset", "air_temperature", "--error", "rel=1e-3")
    s, _ = evaluated(cli, hadcm3, arch, tmp_path / "report")
    check_summary_h5(s, hadcm3, unpacked, arch)
    assert s["datasets"][0]["path"] == "/air_temperature"
    assert "slice" in s["datasets"][0]["plots"]


def test_npy_original(cli, air_npy, air_npy_archive, tmp_path):
    arch, unpacked = air_npy_archive
    out = tmp_path / "report"
    s, _ = evaluated(cli, air_npy, arch, out)
    x, y = np.load(air_npy), np.load(unpacked)
    (ds,) = s["datasets"]
    assert ds["shape"] == list(x.shape) and ds["kind"] == "array"
    (sv,) = ds["variables"]
    header = parse_container(arch)["header"]
    check_variable(sv, x, y, header["datasets"][0]["variables"][0]["error"])
    check_totals(s, arch, x.nbytes)
    assert "slice" in ds["plots"]


# ---------------------------------------------------------------------------------------------
# The report in a real browser


def test_report_opens_in_headless_chromium(zmumu_case, tmp_path, monkeypatch):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed in this Python: run scripts/setup.sh", pytrace=False)
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not os.access(exe, os.X_OK):
            pytest.fail(f"{exe} not found: run scripts/setup.sh (apt packages chromium, chromium-driver)", pytrace=False)
    # never let Selenium Manager look for (or download) a browser or driver
    monkeypatch.setenv("SE_OFFLINE", "true")
    c = zmumu_case
    report = c["out"] / "report.html"
    html = report.read_text(encoding="utf-8")
    images = html_images(html)
    widths = [png_info(png)[0] for _, png in images]
    assert len(images) >= len(plot_paths(c["summary"]))

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
              "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(a)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(120)
        driver.get(report.as_uri())
        assert driver.execute_script("return document.readyState") == "complete"
        title = driver.title
        assert title.startswith("balerfile eval") and Path(c["arch"]).name in title, f"title {title!r}"
        shown = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        assert len(shown) == len(images), f"browser sees {len(shown)} images, the HTML has {len(images)}"
        for i, ((complete, nw, nh), w) in enumerate(zip(shown, widths)):
            assert complete and nw > 0 and nh > 0, f"image #{i} not decoded by the browser: {complete}, {nw}x{nh}"
            assert nw == w, f"image #{i}: browser width {nw}, PNG width {w}"
        severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert not severe, f"browser console errors: {severe}"
        m = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = m.get("cssContentSize") or m["contentSize"]
        width, height = math.ceil(size["width"]), min(math.ceil(size["height"]), 16000)
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
        png = base64.b64decode(shot["data"])
    finally:
        driver.quit()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dest = ARTIFACTS / "eval_report.png"
    dest.write_bytes(png)
    w, h = png_info(dest.read_bytes(), str(dest))
    assert w >= 600 and h >= 600, f"screenshot only {w}x{h}"


# ---------------------------------------------------------------------------------------------
# Bad input


def error_lines(r):
    return [ln for ln in r.stderr.splitlines() if ln.startswith(ERR)]


def assert_failed(r, named, out):
    assert r.returncode == 1, f"{r.shown}: exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    lines = error_lines(r)
    assert len(lines) == 1, f"{r.shown}: want one '{ERR}' line on stderr, got:\n{r.stderr}"
    assert Path(named).name in lines[0], f"{r.shown}: error line does not name {Path(named).name}: {lines[0]!r}"
    if out.is_dir():
        assert not (out / "report.html").exists() and not (out / "summary.json").exists(), \
            f"{r.shown}: a report was left in {out}: {sorted(os.listdir(out))}"


def test_original_is_another_hdf5_file(cli, issue63_case, zmumu_h5, tmp_path):
    out = tmp_path / "report"
    r = run_eval(cli, zmumu_h5, issue63_case["arch"], out, expect_fail=True)
    assert_failed(r, zmumu_h5, out)


def test_original_npy_of_the_wrong_shape(cli, air_npy, air_npy_archive, tmp_path):
    wrong = tmp_path / "air_first_100.npy"
    np.save(wrong, np.load(air_npy)[:100])
    out = tmp_path / "report"
    r = run_eval(cli, wrong, air_npy_archive[0], out, expect_fail=True)
    assert_failed(r, wrong, out)


def test_original_npy_of_the_wrong_dtype(cli, air_npy, air_npy_archive, tmp_path):
    wrong = tmp_path / "air_f64.npy"
    np.save(wrong, np.load(air_npy).astype(np.float64))
    out = tmp_path / "report"
    r = run_eval(cli, wrong, air_npy_archive[0], out, expect_fail=True)
    assert_failed(r, wrong, out)


def test_original_missing(cli, issue63_case, tmp_path):
    missing = tmp_path / "no_such_original.h5"
    out = tmp_path / "report"
    r = run_eval(cli, missing, issue63_case["arch"], out, expect_fail=True)
    assert_failed(r, missing, out)


def test_archive_is_not_a_baler_file(cli, issue63_h5, tmp_path):
    out = tmp_path / "report"
    r = run_eval(cli, issue63_h5, issue63_h5, out, expect_fail=True)
    assert_failed(r, issue63_h5, out)


def test_archive_missing(cli, issue63_h5, tmp_path):
    missing = tmp_path / "no_such_archive.baler"
    out = tmp_path / "report"
    r = run_eval(cli, issue63_h5, missing, out, expect_fail=True)
    assert_failed(r, missing, out)


def test_output_is_an_existing_regular_file(cli, issue63_case, tmp_path):
    out = tmp_path / "report.txt"
    out.write_text("keep me\n")
    r = run_eval(cli, issue63_case["src"], issue63_case["arch"], out, expect_fail=True)
    assert_failed(r, out, out)
    assert out.read_text() == "keep me\n", "the regular file at -o was changed"


# ---------------------------------------------------------------------------------------------
# --compare: SZ3, ZFP and zstd (src/eval/peers.py in this Python)


def test_compare_with_sz3_zfp_zstd(cli, issue63_case, tmp_path):
    c = issue63_case
    out = tmp_path / "report"
    s, _ = evaluated(cli, c["src"], c["arch"], out, "--compare", "--python", sys.executable, "--bins", "40")
    # the archive's own numbers do not change with --compare
    assert_same(s["datasets"], c["summary"]["datasets"], "datasets")
    cmp_ = s["compare"]
    assert cmp_ is not None and cmp_["python"]
    peers = {p["peer"]: p for p in cmp_["peers"]}
    assert sorted(peers) == ["sz3", "zfp", "zstd"], sorted(peers)
    variables = s["datasets"][0]["variables"]
    tol = {v["name"]: v["tolerance"] for v in variables}
    for name, p in peers.items():
        assert p["available"] is True and p["why"] is None, f"{name}: {p['why']}"
        assert len(p["variables"]) == len(variables) == 157, f"{name}: {len(p['variables'])} variables"
        assert not [v for v in p["variables"] if "error" in v], f"{name}: {[v for v in p['variables'] if 'error' in v][:3]}"
        assert p["bytes"] > 0 and p["bytes"] == sum(v["bytes"] for v in p["variables"]), name
        assert math.isclose(p["percent_of_raw"], 100.0 * p["bytes"] / s["raw_bytes"], rel_tol=1e-9), name
        held = [v["bound_held"] for v in p["variables"]]
        assert p["bound_held"] == all(held), name
    assert peers["sz3"]["bound_held"] is True
    assert peers["zstd"]["bound_held"] is True
    assert all(v["coding"].startswith("zstd 19") and v["max_abs_error"] == 0.0 for v in peers["zstd"]["variables"])
    # lossy peers at the archive's tolerances on the float columns, zstd on the rest
    for name in ("sz3", "zfp"):
        lossy = [v for v in peers[name]["variables"] if v["coding"].startswith(name)]
        assert len(lossy) > 100, f"{name} coded only {len(lossy)} columns itself"
        for v in peers[name]["variables"]:
            if not v["coding"].startswith(name):
                assert v["coding"].startswith("zstd 19"), v
    # a whole-file lossless figure is bigger than a lossy one
    assert peers["zstd"]["bytes"] > peers["sz3"]["bytes"]
    assert all(t is None or t > 0 for t in tol.values())
