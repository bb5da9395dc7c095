"""Errors through the CLI: non-zero exit, exactly one `balerfile: error:` line on stderr naming
the file (or, for a bad option value, the offending value), no panic, and nothing left at the
-o path (nor any temporary file beside it).

Corruption: a small real archive (HadCM3 time_bnds, quantised, several chunks) with one byte
flipped at ~50 positions spread over header, chunks, footer and trailer, and truncated at ~30
lengths, must be refused by `unpack` every time. Crafted files whose CRCs are all valid but
whose version, flags, codec stage, chunk head or footer index are wrong must be refused too.
"""
import json
import os
import struct
import zlib

import numpy as np
import pytest

from conftest import THREADS, parse_container

ERR = "balerfile: error:"


def error_lines(r):
    return [ln for ln in r.stderr.splitlines() if ln.startswith(ERR)]


def assert_fails(r, *names, outdir=None, before=None, out=None):
    """r failed cleanly; its error line names one of `names` (paths are matched by their
    base name); no file at `out`; `outdir` holds exactly the entries in `before`."""
    assert r.returncode != 0, f"{r.shown}: exit 0\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "panicked" not in r.stderr, f"{r.shown}: panic\n{r.stderr}"
    lines = error_lines(r)
    assert len(lines) == 1, f"{r.shown}: want one '{ERR}' line on stderr, got:\n{r.stderr}"
    keys = [os.path.basename(str(n)) or str(n) for n in names]
    assert any(k in lines[0] for k in keys), f"{r.shown}: error line does not name {keys}: {lines[0]!r}"
    if out is not None:
        assert not os.path.lexists(out), f"{r.shown}: output left at {out}"
    if outdir is not None:
        now = sorted(os.listdir(outdir))
        assert now == sorted(before), f"{r.shown}: files left in {outdir}: {sorted(set(now) - set(before))}"


@pytest.fixture
def outdir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


# ---------------------------------------------------------------------------------------------
# pack


def test_missing_input(cli, outdir):
    src = outdir.parent / "no_such_input.h5"
    out = outdir / "x.baler"
    r = cli("pack", src, "-o", out, expect_fail=True)
    assert_fails(r, src, out=out, outdir=outdir, before=[])


def test_missing_npy_input(cli, outdir):
    src = outdir.parent / "no_such_input.npy"
    out = outdir / "x.baler"
    r = cli("pack", src, "-o", out, expect_fail=True)
    assert_fails(r, src, out=out, outdir=outdir, before=[])


def test_input_not_hdf5_root_or_npy(cli, outdir):
    import skhep_testdata
    src = os.path.join(os.path.dirname(skhep_testdata.__file__), "__init__.py")  # a real file, but Python
    out = outdir / "x.baler"
    r = cli("pack", src, "-o", out, expect_fail=True)
    assert_fails(r, src, out=out, outdir=outdir, before=[])
    assert "neither an HDF5, netCDF-3, ROOT, .npy nor .npz file" in r.stderr


def test_input_corrupt_hdf5(cli, hadcm3, outdir):
    # the first 64 KiB of the real file, under an .h5 name: not a readable HDF5 file
    src = outdir.parent / "cut.h5"
    src.write_bytes(hadcm3.read_bytes()[:65536])
    out = outdir / "x.baler"
    r = cli("pack", src, "-o", out, expect_fail=True)
    assert_fails(r, src, out=out, outdir=outdir, before=[])


def test_output_dir_missing(cli, hadcm3):
    out = "/nonexistent_dir_balerfile_test/x.baler"
    r = cli("pack", hadcm3, "-o", out, "--dataset", "time", expect_fail=True)
    assert_fails(r, out, out=out)


def test_output_parent_is_a_file(cli, hadcm3, outdir):
    blocker = outdir / "plainfile"
    blocker.write_bytes(b"x")
    out = blocker / "x.baler"
    r = cli("pack", hadcm3, "-o", out, "--dataset", "time", expect_fail=True)
    assert_fails(r, out, outdir=outdir, before=["plainfile"])
    assert blocker.read_bytes() == b"x"


def test_output_is_a_directory(cli, hadcm3, outdir):
    target = outdir / "adir"
    target.mkdir()
    r = cli("pack", hadcm3, "-o", target, "--dataset", "time", expect_fail=True)
    assert_fails(r, target, outdir=outdir, before=["adir"])
    assert target.is_dir() and not os.listdir(target)


def test_output_read_only_dir(cli, hadcm3, outdir):
    ro = outdir / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        probe = ro / "probe"
        try:
            probe.write_bytes(b"")
            probe.unlink()
            pytest.skip("running with privileges that ignore directory permissions (root)")
        except PermissionError:
            pass
        out = ro / "x.baler"
        r = cli("pack", hadcm3, "-o", out, "--dataset", "time", expect_fail=True)
        assert_fails(r, out, out=out, outdir=ro, before=[])
    finally:
        os.chmod(ro, 0o755)


def test_output_fifo_and_device_are_written_into(cli, hadcm3, tmp_path):
    """`-o /dev/null` (timing a pack) and `-o FIFO` (another program reads the archive) write
    into the device or the pipe; renaming the finished file over them put a regular file in
    their place (as root, the system's /dev/null)."""
    import stat
    import threading

    ref = tmp_path / "ref.baler"
    cli("pack", hadcm3, "-o", ref, "--dataset", "air_temperature", "--error", "rel=1e-3")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = {}
    reader = threading.Thread(target=lambda: got.setdefault("bytes", fifo.read_bytes()), daemon=True)
    reader.start()
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = {"TMPDIR": str(tmpdir)}  # where the finished file waits before it is copied in
    cli("pack", hadcm3, "-o", fifo, "--dataset", "air_temperature", "--error", "rel=1e-3", env=env)
    reader.join(timeout=60)
    assert got.get("bytes") == ref.read_bytes(), "the reader got the archive pack writes to a file"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    cli("pack", hadcm3, "-o", "/dev/null", "--dataset", "air_temperature", "--error", "rel=1e-3", env=env)
    cli("unpack", ref, "-o", "/dev/null", "--to", "h5", env=env)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not os.listdir(tmpdir), "the temporaries are removed"
    assert not [n for n in os.listdir(tmp_path) if "balerfile-tmp" in n]


def test_output_symlink_is_written_through(cli, hadcm3, tmp_path):
    """As a shell's `>` and `cp`: the file a link names is replaced, the link kept."""
    real = tmp_path / "real.baler"
    real.write_bytes(b"old")
    link = tmp_path / "link.baler"
    link.symlink_to(real.name)
    cli("pack", hadcm3, "-o", link, "--dataset", "air_temperature", "--error", "rel=1e-3")
    assert link.is_symlink() and os.readlink(link) == real.name
    assert real.read_bytes()[:4] != b"old" and real.stat().st_size > 1000


def test_train_output_folder_of_other_files_is_refused(cli, zmumu_h5, tmp_path):
    """`train -o DIR` writes a bundle folder in DIR's place: a folder holding anything else
    (the training input, the user's files, the model store) is refused before training, and
    left as it was. A folder holding a bundle is replaced (training again to the same name)."""
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "thesis.tex").write_text("mine")
    before = sorted(p.name for p in data.iterdir())
    r = cli("train", zmumu_h5, "-o", data, "--epochs", "1", expect_fail=True)
    assert_fails(r, data)
    assert "not a model bundle" in error_lines(r)[0]
    assert sorted(p.name for p in data.iterdir()) == before and (data / "thesis.tex").read_text() == "mine"
    r = cli("train", zmumu_h5, "-o", tmp_path, "--epochs", "1", expect_fail=True)
    assert_fails(r, tmp_path)
    assert (data / "thesis.tex").exists()
    bundle = tmp_path / "model"
    cli("train", zmumu_h5, "-o", bundle, "--epochs", "1")
    first = (bundle / "manifest.json").read_bytes()
    cli("train", zmumu_h5, "-o", bundle, "--epochs", "2")
    assert (bundle / "manifest.json").read_bytes() != first
    (bundle / "notes.txt").write_text("mine")
    r = cli("train", zmumu_h5, "-o", bundle, "--epochs", "1", expect_fail=True)
    assert_fails(r, bundle)
    assert "notes.txt" in error_lines(r)[0] and (bundle / "notes.txt").exists()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_interrupted_pack_leaves_no_temporary(balerfile, tmp_path, sig):
    """Ctrl-C, or a batch system's time limit (SIGTERM), while a pack is writing: the output
    that was there is untouched, and the hidden temporary is removed as the process ends (it
    was left, as large as the pack had got, until a later write to the same name)."""
    import signal
    import subprocess
    import time

    src = tmp_path / "big.npy"
    np.save(src, np.random.default_rng(1).standard_normal((3000, 10000), dtype=np.float32))
    out = tmp_path / "out.baler"
    out.write_bytes(b"OLD")
    # The signal's default action in the child: a shell runs a background job (`.ci/run &`,
    # nohup) with SIGINT ignored, and the command rightly keeps an ignored signal ignored.
    p = subprocess.Popen([balerfile, "pack", src, "-o", out, "--error", "rel=1e-4", "--no-model", "--threads", "1", "-q"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(getattr(signal, sig), signal.SIG_DFL))
    deadline = time.time() + 60
    while not [n for n in os.listdir(tmp_path) if "balerfile-tmp" in n]:
        assert p.poll() is None, "the pack ended before its temporary appeared"
        assert time.time() < deadline
        time.sleep(0.005)
    p.send_signal(getattr(signal, sig))
    p.wait(timeout=60)
    assert p.returncode == -getattr(signal, sig), (p.returncode, p.stderr.read())
    assert out.read_bytes() == b"OLD"
    assert sorted(os.listdir(tmp_path)) == ["big.npy", "out.baler"]


def test_full_disk_is_named_for_hdf5_outputs(cli, hadcm3, tmp_path):
    """HDF5 says only that a write failed; the error says the disk is full, as the other
    formats' do, and nothing is left on it. Needs a small file system to fill (a tmpfs: root)."""
    import subprocess

    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (not root)")
    try:
        arch = tmp_path / "a.baler"
        cli("pack", hadcm3, "-o", arch, "--dataset", "air_temperature", "--error", "rel=1e-3")
        for ext in ("h5", "nc"):
            out = small / f"out.{ext}"
            r = cli("unpack", arch, "-o", out, expect_fail=True)
            assert_fails(r, out, out=out, outdir=small, before=[])
            assert "no space left on the disk" in error_lines(r)[0], r.stderr
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


def test_train_names_the_file_and_points_a_field_to_conv(cli, hadcm3, zmumu_h5, tmp_path):
    r = cli("train", hadcm3, "--dataset", "air_temperature", "--epochs", "1", expect_fail=True)
    assert_fails(r, hadcm3)
    assert "is a field (240 x 37 x 49)" in error_lines(r)[0] and "--kind conv" in error_lines(r)[0]
    r = cli("train", zmumu_h5, "--train-rows", "5", "--epochs", "1", expect_fail=True)
    assert_fails(r, zmumu_h5)
    assert "too few to train on" in error_lines(r)[0]


def test_output_on_pseudo_filesystem(cli, hadcm3):
    # no one, root included, can create a file in /proc: an unwritable location even for root
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    out = "/proc/balerfile_test_x.baler"
    r = cli("pack", hadcm3, "-o", out, "--dataset", "time", expect_fail=True)
    assert_fails(r, out, out=out)


def test_unpack_output_dir_missing(cli, hadcm3, tmp_path):
    arch = tmp_path / "a.baler"
    cli("pack", hadcm3, "-o", arch, "--dataset", "time_bnds", *THREADS)
    out = "/nonexistent_dir_balerfile_test/x.h5"
    r = cli("unpack", arch, "-o", out, expect_fail=True)
    assert_fails(r, out, out=out)


def test_non_numeric_dataset(cli, vlstr_nc, outdir):
    out = outdir / "x.baler"
    r = cli("pack", vlstr_nc, "-o", out, "--dataset", "expver", expect_fail=True)
    assert_fails(r, "expver", vlstr_nc, out=out, outdir=outdir, before=[])


def test_missing_dataset(cli, hadcm3, outdir):
    out = outdir / "x.baler"
    r = cli("pack", hadcm3, "-o", out, "--dataset", "no_such_dataset", expect_fail=True)
    assert_fails(r, "no_such_dataset", out=out, outdir=outdir, before=[])


@pytest.mark.parametrize("spec,token", [
    ("rel=abc", "abc"), ("foo=1", "foo"), ("rel=-1", "-1"), ("abs=-0.5", "-0.5"),
    ("rel=", "rel="), ("abs=nan", "nan"), ("rel=inf", "inf"), ("", "--error"),
])
def test_bad_spec(cli, hadcm3, outdir, spec, token):
    out = outdir / "x.baler"
    r = cli("pack", hadcm3, "-o", out, "--dataset", "time", "--error", spec, expect_fail=True)
    # the message names the bad value (for an empty one, the option), or the input file
    assert_fails(r, token, hadcm3, out=out, outdir=outdir, before=[])


@pytest.mark.parametrize("spec,token", [
    ("no_such_var:rel=1e-3", "no_such_var"),
    ("air_temperature:bogus=1", "bogus"),
])
def test_bad_variable_spec(cli, hadcm3, outdir, spec, token):
    out = outdir / "x.baler"
    r = cli("pack", hadcm3, "-o", out, "--error", spec, expect_fail=True)
    assert_fails(r, token, out=out, outdir=outdir, before=[])


def test_spec_for_variable_not_packed(cli, hadcm3, outdir):
    # air_temperature exists in the file but is not among the packed datasets
    out = outdir / "x.baler"
    r = cli("pack", hadcm3, "-o", out, "--dataset", "time", "--error", "air_temperature:rel=1e-3",
            expect_fail=True)
    assert_fails(r, "air_temperature", out=out, outdir=outdir, before=[])


def test_ambiguous_or_unknown_field(cli, issue63_h5, outdir):
    out = outdir / "x.baler"
    r = cli("pack", issue63_h5, "-o", out, "--error", "WtLoop_nominal.no_such_field:lossless",
            expect_fail=True)
    assert_fails(r, "no_such_field", out=out, outdir=outdir, before=[])


# ---------------------------------------------------------------------------------------------
# unpack / inspect of things that are not good archives


def test_unpack_missing_archive(cli, outdir):
    arch = outdir.parent / "no_such.baler"
    out = outdir / "x.h5"
    r = cli("unpack", arch, "-o", out, expect_fail=True)
    assert_fails(r, arch, out=out, outdir=outdir, before=[])


def test_unpack_not_an_archive(cli, hadcm3, outdir):
    out = outdir / "x.h5"
    r = cli("unpack", hadcm3, "-o", out, expect_fail=True)
    assert_fails(r, hadcm3, out=out, outdir=outdir, before=[])


def test_inspect_not_an_archive(cli, hadcm3):
    r = cli("inspect", hadcm3, expect_fail=True)
    assert_fails(r, hadcm3)


def test_unpack_npy_needs_one_dataset(cli, hadcm3, outdir, tmp_path):
    arch = tmp_path / "two.baler"
    cli("pack", hadcm3, "-o", arch, "--dataset", "time", "--dataset", "time_bnds", *THREADS)
    out = outdir / "x.npy"
    r = cli("unpack", arch, "-o", out, expect_fail=True)
    assert_fails(r, arch, out, out=out, outdir=outdir, before=[])


# ---------------------------------------------------------------------------------------------
# Corruption of a small real archive


@pytest.fixture(scope="module")
def small_archive(cli, hadcm3, tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    arch = d / "time_bnds.baler"
    # 240x2 f64 = 3840 raw bytes; 1 KiB chunks -> several chunks
    cli("pack", hadcm3, "-o", arch, "--dataset", "time_bnds", "--error", "rel=1e-3",
        "--chunk-size", "1024", *THREADS)
    data = arch.read_bytes()
    p = parse_container(data)
    # sanity: it unpacks
    cli("unpack", arch, "-o", d / "ok.h5", *THREADS)
    return data, p


def flip_positions(data, p):
    n, H = len(data), p["H"]
    F = p["footer_offset"]
    fixed = {0, 3, 7, 8, 12, 16, 23, 24, 24 + H // 2, 24 + H - 1, 24 + H, 27 + H, 28 + H,
             F, F + 7, F + 8, F + 8 + 16, F + 8 + 20, n - 28, n - 21, n - 20, n - 12, n - 9, n - 8, n - 1}
    for c in p["chunks"]:
        fixed |= {c["offset"], c["offset"] + 20, c["offset"] + 28, c["offset"] + c["length"] // 2,
                  c["offset"] + c["length"] - 1}
    spread = set(np.linspace(0, n - 1, 50).astype(int).tolist())
    return sorted(x for x in fixed | spread if 0 <= x < n)


def truncation_lengths(data, p):
    n, H = len(data), p["H"]
    F = p["footer_offset"]
    fixed = {0, 1, 8, 16, 24, 24 + H, 28 + H, F, F + 8, n - 28, n - 8, n - 1}
    spread = set(np.linspace(0, n - 1, 20).astype(int).tolist())
    return sorted(x for x in fixed | spread if 0 <= x < n)


def test_corruption_positions_cover_layout(small_archive):
    data, p = small_archive
    assert len(p["chunks"]) >= 3, "the small archive should have several chunks"
    pos = flip_positions(data, p)
    assert len(pos) >= 50
    F = p["footer_offset"]
    assert any(x < 24 + p["H"] for x in pos) and any(28 + p["H"] <= x < F for x in pos)
    assert any(F <= x < len(data) - 28 for x in pos) and any(x >= len(data) - 28 for x in pos)


def _refused(cli, path, outdir, what):
    out = outdir / "x.h5"
    r = cli("unpack", path, "-o", out, *THREADS, expect_fail=True)
    assert r.returncode != 0, f"{what}: unpack succeeded"
    assert_fails(r, path, out=out, outdir=outdir, before=[])
    ri = cli("inspect", path, "--json", expect_fail=True)  # may succeed (chunks not read) but never panic
    if ri.returncode != 0:
        assert len(error_lines(ri)) == 1, f"{what}: inspect stderr {ri.stderr!r}"


def test_flipped_bytes_refused(cli, small_archive, tmp_path, outdir):
    data, p = small_archive
    bad = tmp_path / "bad.baler"
    failures = []
    for i in flip_positions(data, p):
        b = bytearray(data)
        b[i] ^= 0x5A
        bad.write_bytes(bytes(b))
        try:
            _refused(cli, bad, outdir, f"byte {i} of {len(data)} flipped")
        except AssertionError as e:
            failures.append(f"flip at {i}: {e}")
    assert not failures, f"{len(failures)} flips not refused cleanly:\n" + "\n".join(failures[:10])


def test_truncations_refused(cli, small_archive, tmp_path, outdir):
    data, p = small_archive
    bad = tmp_path / "cut.baler"
    failures = []
    for n in truncation_lengths(data, p):
        bad.write_bytes(data[:n])
        try:
            _refused(cli, bad, outdir, f"truncated to {n} of {len(data)}")
        except AssertionError as e:
            failures.append(f"truncated to {n}: {e}")
    assert not failures, f"{len(failures)} truncations not refused cleanly:\n" + "\n".join(failures[:10])


def test_trailing_garbage_refused(cli, small_archive, tmp_path, outdir):
    data, _ = small_archive
    bad = tmp_path / "long.baler"
    bad.write_bytes(data + b"\0")
    _refused(cli, bad, outdir, "one byte appended")


# Crafted archives: every CRC valid, the structure wrong.


def _fix_header_crc(b, H):
    struct.pack_into("<I", b, 24 + H, zlib.crc32(bytes(b[:24 + H])))


def _fix_footer_crc(b):
    n = len(b)
    F, flen = struct.unpack_from("<QQ", b, n - 28)
    struct.pack_into("<I", b, n - 12, zlib.crc32(bytes(b[F:F + flen])))


def _craft_version(data, p):
    b = bytearray(data)
    struct.pack_into("<I", b, 8, 2)
    _fix_header_crc(b, p["H"])
    return b


def _with_header(data, p, header_json):
    """The archive re-laid with another header (zstd-compressed, flag bit 0, as balerfile
    writes it): chunks move by the change in header length; footer offsets, trailer and every
    checksum follow, so only the header's content is wrong."""
    import zstandard
    stored = zstandard.ZstdCompressor(level=3).compress(bytes(header_json))
    H = p["H"]
    delta = len(stored) - H
    n = len(data)
    F, flen = struct.unpack_from("<QQ", data, n - 28)
    pre = bytearray(data[:24])
    struct.pack_into("<IIQ", pre, 8, 1, 1, len(stored))
    head = bytes(pre) + stored
    footer = bytearray(data[F:F + flen])
    (N,) = struct.unpack_from("<Q", footer, 0)
    for i in range(N):
        (off,) = struct.unpack_from("<Q", footer, 8 + 40 * i)
        struct.pack_into("<Q", footer, 8 + 40 * i, off + delta)
    trailer = bytearray(data[n - 28:])
    struct.pack_into("<QQI", trailer, 0, F + delta, flen, zlib.crc32(bytes(footer)))
    return bytearray(head + struct.pack("<I", zlib.crc32(head)) + data[28 + H:F] + bytes(footer) + bytes(trailer))


def _craft_flags(data, p):
    b = bytearray(data)
    struct.pack_into("<I", b, 12, 2)  # bit 1: no such flag
    _fix_header_crc(b, p["H"])
    return b


def _craft_unknown_stage(data, p):
    hb = p["header_bytes"]
    assert hb.find(b'"zstd"') >= 0
    return _with_header(data, p, hb.replace(b'"zstd"', b'"zzzz"'))  # valid JSON, unknown stage


def _craft_bad_json(data, p):
    return _with_header(data, p, b"[" + p["header_bytes"][1:])  # header no longer a JSON object


def _craft_chunk_head(data, p):
    # chunk 1's own head says another first row; its CRC and the footer's are recomputed
    b = bytearray(data)
    c = p["chunks"][1]
    struct.pack_into("<Q", b, c["offset"] + 4, c["first_row"] + 1)
    crc = zlib.crc32(bytes(b[c["offset"]:c["offset"] + c["length"]]))
    F = p["footer_offset"]
    struct.pack_into("<I", b, F + 8 + 40 * 1 + 20, crc)
    _fix_footer_crc(b)
    return b


def _craft_footer_rows(data, p):
    # footer says chunk 0 has one row fewer: rows no longer tile
    b = bytearray(data)
    F = p["footer_offset"]
    struct.pack_into("<Q", b, F + 8 + 32, p["chunks"][0]["rows"] - 1)
    _fix_footer_crc(b)
    return b


def _craft_footer_swap(data, p):
    # two footer entries swapped: chunks no longer in file order
    b = bytearray(data)
    F = p["footer_offset"]
    e0 = bytes(b[F + 8:F + 48])
    e1 = bytes(b[F + 48:F + 88])
    b[F + 8:F + 48], b[F + 48:F + 88] = e1, e0
    _fix_footer_crc(b)
    return b


def _craft_dataset_index(data, p):
    b = bytearray(data)
    F = p["footer_offset"]
    struct.pack_into("<I", b, F + 8 + 16, 7)  # no dataset 7
    _fix_footer_crc(b)
    return b


def _craft_header_rows(data, p):
    # header says the dataset has more rows than the chunks cover (same JSON length)
    hb = p["header_bytes"]
    h = json.loads(hb)
    assert any(d["shape"] == [240, 2] for d in h["datasets"]), h["datasets"]
    compact = hb.find(b"[240,2]")
    spaced = hb.find(b"[240, 2]")
    i, old = (compact, b"[240,2]") if compact >= 0 else (spaced, b"[240, 2]")
    assert i >= 0, hb[:200]
    return _with_header(data, p, hb[:i] + old.replace(b"240", b"241") + hb[i + len(old):])


def _time_bnds(h):
    (d,) = [d for d in h["datasets"] if d["shape"] == [240, 2]]
    return d


def _craft_maxshape(data, p):
    # a maximum below the shape, which no HDF5 file can hold
    h = json.loads(p["header_bytes"])
    _time_bnds(h)["maxshape"] = [239, 2]
    return _with_header(data, p, json.dumps(h).encode())


def _craft_chunks(data, p):
    h = json.loads(p["header_bytes"])
    _time_bnds(h)["chunks"] = [0, 2]
    return _with_header(data, p, json.dumps(h).encode())


CRAFTS = {f.__name__[len("_craft_"):]: f for f in [
    _craft_version, _craft_flags, _craft_unknown_stage, _craft_bad_json, _craft_chunk_head,
    _craft_footer_rows, _craft_footer_swap, _craft_dataset_index, _craft_header_rows,
    _craft_maxshape, _craft_chunks]}


@pytest.mark.parametrize("craft", sorted(CRAFTS))
def test_crafted_archive_refused(cli, small_archive, tmp_path, outdir, craft):
    data, p = small_archive
    bad = tmp_path / f"{craft}.baler"
    bad.write_bytes(bytes(CRAFTS[craft](data, p)))
    _refused(cli, bad, outdir, craft)
    if craft in ("maxshape", "chunks"):
        r = cli("inspect", bad, expect_fail=True)
        assert f"has shape [240, 2] and {craft}" in r.stderr, r.stderr


def test_output_that_is_the_input_is_refused(cli, hadcm3, tmp_path):
    """`-o` naming the input, by any name (./, a symbolic or hard link), would rename the
    lossy copy over the only original: refused, the input left byte for byte."""
    src = tmp_path / "in.h5"
    src.write_bytes(hadcm3.read_bytes())
    (tmp_path / "sym.h5").symlink_to(src)
    os.link(src, tmp_path / "hard.h5")
    before = sorted(os.listdir(tmp_path))
    for out in ("in.h5", "./in.h5", "sym.h5", "hard.h5", str(src)):
        r = cli("pack", src, "-o", out if os.path.isabs(out) else tmp_path / out, "--error", "rel=1e-3", expect_fail=True)
        assert_fails(r, out, outdir=tmp_path, before=before)
        assert "the output must not be the input" in error_lines(r)[0]
    assert src.read_bytes() == hadcm3.read_bytes()
    arc = tmp_path / "a.baler"
    cli("pack", src, "-o", arc, "--error", "rel=1e-3")
    blob = arc.read_bytes()
    before = sorted(os.listdir(tmp_path))
    r = cli("unpack", arc, "-o", arc, expect_fail=True)
    assert_fails(r, arc, outdir=tmp_path, before=before)
    assert arc.read_bytes() == blob


def test_negative_fill_value_as_documented(cli, tmp_path):
    """`--fill-value -999` (README's spelling) is a value, not a short option."""
    x = (np.arange(4000, dtype=np.float32).reshape(40, 100) / 7).astype(np.float32)
    x[3, 5] = -999.0
    x[7, :] = -999.0
    npy, arc, out = tmp_path / "x.npy", tmp_path / "x.baler", tmp_path / "back.npy"
    np.save(npy, x)
    r = cli("pack", npy, "-o", arc, "--error", "rel=1e-3", "--fill-value", "-999")
    assert "missing elements kept exactly" in r.stdout, r.stdout
    cli("unpack", arc, "-o", out)
    y = np.load(out)
    fill = x == -999.0
    assert np.array_equal(y[fill], x[fill])
    valid = x[~fill]
    tol = 1e-3 * float(valid.max() - valid.min())
    assert np.max(np.abs(y[~fill].astype(np.float64) - valid)) <= tol


def test_datasets_pack_cannot_code_are_named_and_strict_refuses_them(cli, tmp_path):
    """A null dataspace (h5py.Empty) and a float16 dataset: skipped with a warning that says why
    (not "could not read rows", not "not numeric"), listed in the header; `--strict` refuses the
    file and writes nothing."""
    import h5py
    src = tmp_path / "odd.h5"
    x = np.linspace(0, 1, 1000, dtype="f4")
    with h5py.File(src, "w") as f:
        f.create_dataset("nullds", data=h5py.Empty("f8"))
        f.create_dataset("half", data=np.arange(10, dtype="f2"))
        f.create_dataset("x", data=x)
    arch = tmp_path / "o.baler"
    r = cli("pack", src, "-o", arch, "--error", "rel=1e-3")
    warn = [ln for ln in r.stderr.splitlines() if "warning:" in ln]
    assert any("/nullds" in ln and "null dataspace" in ln for ln in warn), r.stderr
    assert any("/half" in ln and "float16" in ln for ln in warn), r.stderr
    skipped = json.loads(cli("inspect", arch, "--json").stdout)["header"]["skipped"]
    assert sorted(s["path"] for s in skipped) == ["/half", "/nullds"]
    before = sorted(os.listdir(tmp_path))
    out = tmp_path / "s.baler"
    r = cli("pack", src, "-o", out, "--error", "rel=1e-3", "--strict", expect_fail=True)
    assert_fails(r, src, outdir=tmp_path, before=before, out=out)
    assert "--strict" in error_lines(r)[0]
