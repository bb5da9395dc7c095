"""Archives and filtered HDF5 files written by earlier releases decode bit for bit, forever.

fixtures/golden/<release>/ holds what that release's binary and plugin wrote
(fixtures/make_golden.py) and MANIFEST.json the SHA-256 of every dataset as that release
decoded it. Today's unpack and today's plugin must give the same bytes: a codec change that
breaks an old archive fails here, whatever the new encoder does.
"""
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "fixtures" / "golden"
PLUGIN_DIR = ROOT / "target" / "release"

RELEASES = sorted(p for p in GOLDEN.iterdir() if (p / "MANIFEST.json").is_file())
ARCHIVES = [(r, name) for r in RELEASES for name in json.loads((r / "MANIFEST.json").read_text())["archives"]]
FILTERED = [(r, name) for r in RELEASES for name in json.loads((r / "MANIFEST.json").read_text())["filtered_h5"]]


def digest(a):
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return hashlib.sha256(a.tobytes()).hexdigest()


def test_there_are_golden_files():
    assert RELEASES, f"no golden releases under {GOLDEN}"
    assert len(ARCHIVES) >= 8 and len(FILTERED) >= 1


@pytest.mark.parametrize("release,name", ARCHIVES, ids=[f"{r.name}/{n}" for r, n in ARCHIVES])
def test_golden_archive_decodes_bit_for_bit(release, name, cli, tmp_path):
    expected = json.loads((release / "MANIFEST.json").read_text())["archives"][name]["datasets"]
    out = tmp_path / "back.h5"
    cli("unpack", release / name, "-o", out, "-q")
    cli("inspect", release / name)
    with h5py.File(out, "r") as f:
        got = {}
        f.visititems(lambda n, o: got.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
        assert set(expected) <= set(got), f"datasets missing: {sorted(set(expected) - set(got))}"
        for ds, e in expected.items():
            d = got[ds]
            assert str(d.dtype) == e["dtype"] and list(d.shape) == e["shape"], ds
            assert digest(d[()]) == e["sha256"], f"{name}: {ds} decodes to other bytes than {release.name} did"


@pytest.mark.parametrize("release,name", FILTERED, ids=[f"{r.name}/{n}" for r, n in FILTERED])
def test_golden_filtered_h5_reads_bit_for_bit(release, name, tmp_path):
    """A bare h5py in a new process, the plugin found through HDF5_PLUGIN_PATH only."""
    expected = json.loads((release / "MANIFEST.json").read_text())["filtered_h5"][name]
    out = tmp_path / "digests.json"
    code = textwrap.dedent(f"""
        import hashlib, json, h5py, numpy as np
        out = {{}}
        with h5py.File({str(release / name)!r}, "r") as f:
            for k in f:
                a = np.ascontiguousarray(f[k][()])
                if a.dtype.byteorder == ">":
                    a = a.astype(a.dtype.newbyteorder("<"))
                out[k] = hashlib.sha256(a.tobytes()).hexdigest()
        open({str(out)!r}, "w").write(json.dumps(out))
    """)
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "HDF5_PLUGIN_PATH": str(PLUGIN_DIR)}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "panicked" not in r.stderr, r.stderr
    got = json.loads(out.read_text())
    for ds, e in expected.items():
        assert got[ds] == e["sha256"], f"{name}: {ds} reads as other bytes than {release.name} wrote"
