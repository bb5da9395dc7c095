

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
