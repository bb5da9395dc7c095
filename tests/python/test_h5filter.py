"""The HDF5 filter plugin (libh5z_baler.so, filter 442) with real clients: h5py (through the
balerfile_h5 helper, and bare with only HDF5_PLUGIN_PATH), a C program built with Debian's
h5cc, h5dump and h5repack, and `balerfile h5 compress|verify`. Every read is checked element by
element against its bound; files written by each client are read by the others.

Data: the ATLAS issue63 ntuple's 141 float columns as one 9812 x 141 float32 array (a table),
and the HadCM3 air temperature field (240 x 37 x 49 float32).
"""
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import ROOT

PLUGIN_DIR = ROOT / "target" / "release"
PLUGIN = PLUGIN_DIR / "libh5z_baler.so"
FILTER_ID = 442
FAST_TRAIN = ["--epochs", "6", "--patience", "3"]
TABLE = "events/table"


@pytest.fixture(scope="module")
def plugin():
    if not PLUGIN.is_file():
        pytest.fail(f"{PLUGIN} missing: build it with `cargo build --release -p h5z-baler`", pytrace=False)
    return PLUGIN


@pytest.fixture(scope="module")
def bh5(plugin):
    """The Python helper, registered with this process's h5py."""
    import balerfile_h5
    assert balerfile_h5.register() == plugin or Path(balerfile_h5.register()).resolve() == plugin.resolve()
    return balerfile_h5


@pytest.fixture(autouse=True)
def _store_for_the_plugin(model_store, monkeypatch):
    # The plugin inside this process finds models where the CLI puts them.
    monkeypatch.setenv("BALER_MODEL_PATH", str(model_store))


@pytest.fixture(scope="module")
def float_table(issue63_h5, tmp_path_factory):
    """issue63's 141 float columns as a 2-D float32 dataset (gzip), an integer dataset and
    attributes: what a user's HDF5 file holds (fixtures/make_float_array_h5.py)."""
    out = tmp_path_factory.mktemp("h5filter") / "issue63_float.h5"
    subprocess.run([sys.executable, str(ROOT / "fixtures" / "make_float_array_h5.py"), str(issue63_h5), str(out)],
                   check=True, capture_output=True, timeout=300)
    with h5py.File(out, "r") as f:
        x = f[TABLE][()]
    assert x.shape == (9812, 141) and x.dtype == np.dtype("<f4")
    return out, x


@pytest.fixture(scope="module")
def table_model(cli, float_table):
    path, _ = float_table
    r = cli("train", path, "--dataset", TABLE, *FAST_TRAIN)
    ids = [w for w in r.stdout.split() if len(w) == 64 and all(c in "0123456789abcdef" for c in w)]
    assert ids, r.stdout
    return ids[0]


def column_bound_ok(x, y, rel):
    """Every finite element within rel x its column's range; non-finite ones bit-identical."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    fin = np.isfinite(x64)
    assert x[~fin].tobytes() == y[~fin].tobytes()
    lo = np.where(fin, x64, np.inf).min(axis=0)
    hi = np.where(fin, x64, -np.inf).max(axis=0)
    tol = rel * np.maximum(hi - lo, 0)
    err = np.where(fin, np.abs(y64 - x64), 0)
    bad = ~(err <= tol)
    assert not bad.any(), f"{int(bad.sum())} elements outside the bound (worst err/tol {np.max(err / np.where(tol > 0, tol, 1)):.4f})"
    return float(np.max(err / np.where(tol > 0, tol, 1)))


def bare_env(**extra):
    """What a user's unrelated program sees: no BALER_* or PYTHONPATH tricks, the plugin only
    through HDF5_PLUGIN_PATH (and the model store when a model is used)."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "HDF5_PLUGIN_PATH": str(PLUGIN_DIR)}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def read_in_new_process(path, dataset, out_npy, env, expect_fail=False):
    """A fresh Python with bare h5py reads `dataset` into out_npy."""
    code = textwrap.dedent(f"""
        import h5py, numpy as np
        with h5py.File({str(path)!r}, "r") as f:
            np.save({str(out_npy)!r}, f[{dataset!r}][()])
    """)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert "panicked" not in r.stderr, r.stderr
    if expect_fail:
        assert r.returncode != 0, "the read succeeded but had to fail"
        return r
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return np.load(out_npy)


# --------------------------------------------------------------------------------------------
# The plugin as a shared object


def test_plugin_links_no_libhdf5_and_exports_the_entry_points(plugin):
    dyn = subprocess.run(["readelf", "-dW", str(plugin)], capture_output=True, text=True, check=True).stdout
    needed = [l for l in dyn.splitlines() if "(NEEDED)" in l]
    assert needed and not any("hdf5" in l for l in needed), needed
    syms = subprocess.run(["nm", "-D", "--defined-only", str(plugin)], capture_output=True, text=True, check=True).stdout
    for s in ("H5PLget_plugin_type", "H5PLget_plugin_info", "init_filter"):
        assert f" T {s}\n" in syms + "\n", f"{s} not exported"


# --------------------------------------------------------------------------------------------
# h5py


def test_h5py_helper_writes_and_a_bare_h5py_reads_in_a_new_process(bh5, float_table, tmp_path):
    _, x = float_table
    out = tmp_path / "helper.h5"
    with h5py.File(out, "w") as f:
        f.create_dataset("t", data=x, chunks=(4096, x.shape[1]), **bh5.Baler(error="rel=1e-3", table=True))
        f.create_dataset("f64", data=x[:2000, :7].astype("f8"), chunks=(500, 7), **bh5.Baler(error="abs=0.05"))
        f.create_dataset("exact", data=x[:3000], chunks=(1000, 141), **bh5.Baler())
        f.create_dataset("big_endian", data=x[:3000, :9].astype(">f4"), chunks=(1000, 9), **bh5.Baler(error="rel=1e-3", table=True))
    with h5py.File(out, "r") as f:
        assert f["t"].id.get_create_plist().get_filter(0)[0] == FILTER_ID
        assert f["t"].id.get_storage_size() < x.nbytes * 0.4
    y = read_in_new_process(out, "t", tmp_path / "t.npy", bare_env())
    column_bound_ok(x, y, 1e-3)
    y = read_in_new_process(out, "f64", tmp_path / "f.npy", bare_env())
    assert np.abs(y - x[:2000, :7].astype("f8")).max() <= 0.05
    y = read_in_new_process(out, "exact", tmp_path / "e.npy", bare_env())
    assert y.tobytes() == x[:3000].tobytes()
    y = read_in_new_process(out, "big_endian", tmp_path / "b.npy", bare_env())
    assert y.dtype == np.dtype(">f4")
    column_bound_ok(x[:3000, :9], y.astype("<f4"), 1e-3)


def write_on_threads(npy, out, name, baler_args, threads):
    """Writes the array in `npy` as one whole-array chunk through the filter, in a new process
    with BALERFILE_THREADS=threads; `baler_args` are Baler()'s arguments as Python source."""
    code = textwrap.dedent(f"""
        import h5py, numpy as np
        import balerfile_h5
        x = np.load({str(npy)!r})
        with h5py.File({str(out)!r}, "w") as f:
            f.create_dataset({name!r}, data=x, chunks=x.shape, **balerfile_h5.Baler({baler_args}))
    """)
    env = dict(os.environ, BALERFILE_THREADS=threads, BALERFILE_H5_PLUGIN=str(PLUGIN))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_large_chunks_are_cut_into_pieces_read_alike_on_any_thread_count(bh5, float_table, tmp_path):
    """A whole-dataset chunk (5.5 MB table) with 1 MiB pieces: version-2 chunks, the same bytes
    whatever the writer's thread count (16: more than twice the pieces, so each piece codes on
    the threads the others leave over), and every reader (one thread, three, 16, h5dump) within
    bound."""
    _, x = float_table
    files = {}
    np.save(tmp_path / "x.npy", x)
    for threads in ("1", "4", "16"):
        out = tmp_path / f"pieces{threads}.h5"
        write_on_threads(tmp_path / "x.npy", out, "t", 'error="rel=1e-3", table=True, piece_size=1 << 20', threads)
        with h5py.File(out, "r") as f:
            assert bh5.parse_cd_values(f["t"].id.get_create_plist().get_filter(0)[2])["piece_size"] == 1 << 20
            _, chunk = f["t"].id.read_direct_chunk((0, 0))
        assert chunk[:5] == b"BLH5\x02", chunk[:8]
        files[threads] = chunk
    assert files["1"] == files["4"] == files["16"], "a chunk's bytes depend on the writer's thread count"
    assert int.from_bytes(files["1"][24:28], "little") == 5, "5.5 MB in 1 MiB pieces"
    for threads in ("1", "3", "16"):
        y = read_in_new_process(tmp_path / "pieces1.h5", "t", tmp_path / "y.npy", bare_env(BALERFILE_THREADS=threads))
        column_bound_ok(x, y, 1e-3)
    # A setting that is no count is warned about and the default used: failing the chunk made
    # h5py (which adds the filter as optional) store every chunk raw, unsaid but on stderr.
    for bad in ("x", "-1"):
        write_on_threads(tmp_path / "x.npy", tmp_path / "bad.h5", "t", 'error="rel=1e-3", table=True, piece_size=1 << 20', bad)
        with h5py.File(tmp_path / "bad.h5", "r") as f:
            assert f["t"].id.read_direct_chunk((0, 0))[1] == files["1"], f"BALERFILE_THREADS={bad}: not coded as on one thread"
        y = read_in_new_process(tmp_path / "pieces1.h5", "t", tmp_path / "y.npy", bare_env(BALERFILE_THREADS=bad))
        column_bound_ok(x, y, 1e-3)
    r = subprocess.run(["h5dump", "-d", "/t", "-s", "9000,0", "-c", "2,3", str(tmp_path / "pieces1.h5")], env=bare_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "DATA {" in r.stdout, r.stderr
    for bad in (3 << 20, 0, -65536, 65536.5, 1 << 31, "1M"):
        with pytest.raises(ValueError, match="piece_size"):
            bh5.Baler(error="rel=1e-3", piece_size=bad)
    # A bool is no level, and "yes" no table setting (both were taken).
    with pytest.raises(TypeError, match="level=True"):
        bh5.Baler(error="rel=1e-3", level=True)
    with pytest.raises(ValueError, match="table='yes'"):
        bh5.Baler(error="rel=1e-3", table="yes")


def test_one_field_chunk_is_the_same_bytes_on_any_thread_count(hadcm3, tmp_path):
    """A field chunk too small for pieces tries its interpolation walks on the writer's threads:
    the bytes written must not depend on how many, and they read back within bound."""
    with h5py.File(hadcm3, "r") as f:
        x = f["air_temperature"][:96]
    np.save(tmp_path / "x.npy", x)
    files = {}
    for threads in ("1", "3"):
        out = tmp_path / f"field{threads}.h5"
        write_on_threads(tmp_path / "x.npy", out, "v", 'error="rel=1e-2"', threads)
        with h5py.File(out, "r") as f:
            _, files[threads] = f["v"].id.read_direct_chunk((0, 0, 0))
    assert files["1"] == files["3"], "a field chunk's bytes depend on the writer's thread count"
    y = read_in_new_process(tmp_path / "field3.h5", "v", tmp_path / "y.npy", bare_env())
    tol = 1e-2 * (float(x.max()) - float(x.min()))
    assert np.abs(y.astype("f8") - x.astype("f8")).max() <= tol


def test_level_1_writes_a_field_a_slab_a_chunk_that_a_bare_h5py_reads_within_bound(bh5, hadcm3, tmp_path):
    """level=1 codes fast (no Lorenzo or zstd trial; `rans`, or `ac` where an estimate says it
    saves): the filter options carry it, every chunk differs from the default level's (at 1e-3
    the default's Lorenzo trial wins on these four-slice chunks), and a program without
    balerfile reads them all back within the bound."""
    with h5py.File(hadcm3, "r") as f:
        x = f["air_temperature"][:48]
    tol = 1e-3 * (float(x.max()) - float(x.min()))
    out = tmp_path / "levels.h5"
    with h5py.File(out, "w") as f:
        for name, level in (("fast", 1), ("default", 3)):
            f.create_dataset(name, data=x, chunks=(4, 37, 49), **bh5.Baler(error=f"abs={tol!r}", level=level))
    with h5py.File(out, "r") as f:
        assert bh5.parse_cd_values(f["fast"].id.get_create_plist().get_filter(0)[2])["level"] == 1
        for k in range(0, 48, 4):
            assert f["fast"].id.read_direct_chunk((k, 0, 0))[1] != f["default"].id.read_direct_chunk((k, 0, 0))[1], k
    y = read_in_new_process(out, "fast", tmp_path / "y.npy", bare_env())
    assert np.abs(y.astype("f8") - x.astype("f8")).max() <= tol


def test_a_type_the_filter_cannot_code_is_refused_at_creation(bh5, tmp_path):
    with h5py.File(tmp_path / "ints.h5", "w") as f:
        # The filter's reason reaches h5py's exception through HDF5's error stack.
        with pytest.raises(Exception, match="balerfile filter: .*32- and 64-bit float"):
            f.create_dataset("i", data=np.arange(1000, dtype="i4"), chunks=(100,), **bh5.Baler(error="abs=1"))
        assert "i" not in f
    with pytest.raises(ValueError, match="rel=E"):
        bh5.Baler(error="rel=-1")
    with pytest.raises(ValueError, match="not found"):
        bh5.Baler(model="0123456789abcdef")


def test_h5py_with_a_model_reads_within_bound_and_never_larger(bh5, float_table, table_model, model_store, tmp_path):
    _, x = float_table
    out = tmp_path / "model.h5"
    with h5py.File(out, "w") as f:
        f.create_dataset("with", data=x, chunks=(4096, 141), **bh5.Baler(error="rel=1e-3", model=table_model[:10]))
        f.create_dataset("without", data=x, chunks=(4096, 141), **bh5.Baler(error="rel=1e-3", table=True))
        sizes = {k: f[k].id.get_storage_size() for k in ("with", "without")}
    print(f"issue63 float table, rel=1e-3, chunks 4096 rows: {sizes} of {x.nbytes} raw")
    # Each chunk uses the model only where it makes the chunk smaller.
    assert sizes["with"] <= sizes["without"], sizes
    y = read_in_new_process(out, "with", tmp_path / "w.npy", bare_env(BALER_MODEL_PATH=model_store))
    column_bound_ok(x, y, 1e-3)
    # The model's id travels in the file: the reader needs only the store.
    with h5py.File(out, "r") as f:
        cd = f["with"].id.get_create_plist().get_filter(0)[2]
    assert bh5.parse_cd_values(cd)["model"] == table_model


def test_many_threads_read_one_filtered_dataset(bh5, float_table, table_model, tmp_path):
    _, x = float_table
    out = tmp_path / "threads.h5"
    with h5py.File(out, "w") as f:
        f.create_dataset("t", data=x, chunks=(1024, 141), **bh5.Baler(error="rel=1e-3", model=table_model))
    with h5py.File(out, "r") as f:
        serial = f["t"][()]
        column_bound_ok(x, serial, 1e-3)
        results, errors = {}, []

        def work(i):
            try:
                lo = (i * 977) % 8000
                results[i] = (lo, f["t"][lo:lo + 1800])
            except Exception as e:  # surfaced below
                errors.append(e)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    assert len(results) == 8
    for lo, part in results.values():
        assert part.tobytes() == serial[lo:lo + 1800].tobytes()


def test_a_chunk_that_splits_the_models_rows_is_refused_at_creation(bh5, float_table, table_model, tmp_path):
    _, x = float_table
    with h5py.File(tmp_path / "split.h5", "w") as f:
        with pytest.raises(Exception, match="whole rows") as e:
            f.create_dataset("t", data=x, chunks=(1024, 70), **bh5.Baler(error="rel=1e-3", model=table_model))
    assert "141" in str(e.value), e.value


def test_a_missing_model_or_onnxruntime_fails_the_read_with_its_name(bh5, float_table, table_model, tmp_path):
    _, x = float_table
    out = tmp_path / "needs-model.h5"
    with h5py.File(out, "w") as f:
        # bound none: every chunk is the model's output, so reading it needs the model
        f.create_dataset("t", data=x[:4096], chunks=(4096, 141), **bh5.Baler(error="none", model=table_model))
    empty = tmp_path / "empty-store"
    empty.mkdir()
    r = read_in_new_process(out, "t", tmp_path / "x.npy", bare_env(BALER_MODEL_PATH=empty), expect_fail=True)
    assert f"model {table_model} not found" in r.stderr and str(empty) in r.stderr, r.stderr
    r = read_in_new_process(out, "t", tmp_path / "x.npy",
                            bare_env(BALER_MODEL_PATH=os.environ["BALER_MODEL_PATH"], BALERFILE_ONNXRUNTIME=tmp_path / "no-ort.so"),
                            expect_fail=True)
    assert "ONNX Runtime" in r.stderr and "no-ort.so" in r.stderr, r.stderr


def test_a_damaged_chunk_is_an_error_not_wrong_numbers(bh5, balerfile, float_table, tmp_path):
    _, x = float_table
    out = tmp_path / "damaged.h5"
    with h5py.File(out, "w") as f:
        f.create_dataset("t", data=x, chunks=(2048, 141), **bh5.Baler(error="rel=1e-3", table=True))
    with h5py.File(out, "r") as f:
        info = f["t"].id.get_chunk_info(1)
    data = bytearray(out.read_bytes())
    data[info.byte_offset + info.size // 2] ^= 0x40
    out.write_bytes(bytes(data))
    r = read_in_new_process(out, "t", tmp_path / "x.npy", bare_env(), expect_fail=True)
    assert "checksum" in r.stderr, r.stderr
    r = subprocess.run([balerfile, "h5", "verify", out], capture_output=True, text=True)
    assert r.returncode == 1 and "FAILED" in r.stdout and "checksum" in r.stdout, r.stdout + r.stderr


def test_verify_finds_chunks_stored_unfiltered(balerfile, bh5, float_table, tmp_path):
    """h5py adds user filters as optional: without the plugin (allow_unknown_filter) the chunks
    go to the file raw and the write 'succeeds'. `h5 verify` must say so."""
    _, x = float_table
    out = tmp_path / "raw-chunks.h5"
    opts = tuple(bh5.Baler(error="rel=1e-3", table=True)["compression_opts"])
    code = textwrap.dedent(f"""
        import h5py, numpy as np
        x = np.load({str(tmp_path / 'x.npy')!r})
        with h5py.File({str(out)!r}, "w") as f:
            f.create_dataset("t", data=x, chunks=(2048, 141), compression={FILTER_ID},
                             compression_opts={opts!r}, allow_unknown_filter=True)
    """)
    np.save(tmp_path / "x.npy", x)
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "HDF5_PLUGIN_PATH": str(tmp_path / "nothing")}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=120)
    r = subprocess.run([balerfile, "h5", "verify", out], capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "5 of 5 chunk(s) stored UNFILTERED" in r.stdout, r.stdout


# --------------------------------------------------------------------------------------------
# A C program, h5dump, h5repack


@pytest.fixture(scope="module")
def c_client(tmp_path_factory):
    exe = tmp_path_factory.mktemp("c") / "h5filter_client"
    r = subprocess.run(["h5cc", "-shlib", "-o", str(exe), str(ROOT / "tests" / "c" / "h5filter_client.c"), "-lm"],
                       capture_output=True, text=True, cwd=exe.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    return exe


def test_c_program_writes_with_h5pset_filter_and_every_client_reads_it(c_client, balerfile, tmp_path):
    out = tmp_path / "c.h5"
    r = subprocess.run([c_client, "write", out], env=bare_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(", 0 outside") == 3, r.stdout
    # set_local filled in the element type and row width the C program left at 0, the dataset's
    # fill value, and stored layout version 2.
    import balerfile_h5
    with h5py.File(out, "r") as f:
        cd = {k: balerfile_h5.parse_cd_values(f[f"c/{k}"].id.get_create_plist().get_filter(0)[2])
              for k in ("table", "field", "masked")}
    assert {c["version"] for c in cd.values()} == {2}, cd
    assert (cd["table"]["dtype"], cd["table"]["layout"], cd["table"]["features"]) == (1, "table", 6), cd
    assert cd["field"]["dtype"] == 2 and cd["field"]["fill"] is None, cd
    assert cd["masked"]["fill"] == np.float32(-1e10) and cd["masked"]["bound"] == "rel", cd
    y = read_in_new_process(out, "c/field", tmp_path / "f.npy", bare_env())
    with h5py.File(out, "r") as f:
        raw = f["c/field_raw"][()]
        table_raw = f["c/table_raw"][()]
    assert np.abs(y - raw).max() <= 1e-3
    column_bound_ok(table_raw, read_in_new_process(out, "c/table", tmp_path / "t.npy", bare_env()), 1e-3)
    r = subprocess.run([balerfile, "h5", "verify", out], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.count("every chunk decodes") == 3, r.stdout + r.stderr


def test_a_c_programs_refused_dataset_shows_the_reason_in_hdf5s_error_report(c_client, tmp_path):
    r = subprocess.run([c_client, "refuse", tmp_path / "ints.h5"], env=bare_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # HDF5's default error handler prints the stack, the filter's entry under its own class.
    assert "balerfile-DIAG" in r.stderr and "balerfile filter: the dataset's type is an integer" in r.stderr, r.stderr


def test_c_program_reads_what_h5py_wrote(c_client, bh5, float_table, tmp_path):
    _, x = float_table
    out = tmp_path / "py.h5"
    with h5py.File(out, "w") as f:
        f.create_dataset("t", data=x[:5000, :20], chunks=(1000, 20), **bh5.Baler(error="rel=1e-3", table=True))
        f.create_dataset("t_raw", data=x[:5000, :20])
    r = subprocess.run([c_client, "check", out, "/t", "/t_raw", "-1e-3"], env=bare_env(), capture_output=True, text=True)
    assert r.returncode == 0 and "0 outside" in r.stdout, r.stdout + r.stderr


def test_h5dump_shows_the_filter_and_reads_the_values(bh5, float_table, tmp_path):
    _, x = float_table
    out = tmp_path / "dump.h5"
    with h5py.File(out, "w") as f:
        f.create_dataset("t", data=x[:3000, :5], chunks=(1000, 5), **bh5.Baler(error="abs=0.01", table=True))
    r = subprocess.run(["h5dump", "-p", "-d", "/t", "-s", "0,0", "-c", "4,5", str(out)], env=bare_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "FILTER_ID 442" in r.stdout and "balerfile" in r.stdout, r.stdout
    data = r.stdout.split("DATA {", 1)[1].split("}", 1)[0]
    vals = [float(v) for line in data.strip().splitlines() for v in line.split(":", 1)[1].replace(",", " ").split()]
    # h5dump prints 6 significant digits: allow that rounding on top of the bound.
    want = x[:4, :5].astype("f8").ravel()
    assert len(vals) == 20 and np.all(np.abs(np.array(vals) - want) <= 0.01 + 5e-6 * np.abs(want)), (vals, want)


def test_h5repack_converts_a_gzip_dataset_to_the_filter(bh5, balerfile, float_table, tmp_path):
    src, x = float_table
    out = tmp_path / "repacked.h5"
    cd = bh5.Baler(error="rel=1e-3", table=True)["compression_opts"]
    ud = f"/{TABLE}:UD={FILTER_ID},0,{len(cd)}," + ",".join(str(v) for v in cd)
    r = subprocess.run(["h5repack", "-f", ud, str(src), str(out)], env=bare_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    with h5py.File(out, "r") as f:
        assert f[TABLE].id.get_create_plist().get_filter(0)[0] == FILTER_ID
        assert f[TABLE].id.get_storage_size() < x.nbytes * 0.4
        assert f["events/run"][()].tobytes() == np.arange(len(x), dtype="<i8").tobytes()
    column_bound_ok(x, read_in_new_process(out, TABLE, tmp_path / "r.npy", bare_env()), 1e-3)
    r = subprocess.run([balerfile, "h5", "verify", out], capture_output=True, text=True)
    assert r.returncode == 0 and "every chunk decodes" in r.stdout, r.stdout + r.stderr


# --------------------------------------------------------------------------------------------
# balerfile h5 compress


def test_h5_compress_trains_filters_tables_and_keeps_everything_else(cli, float_table, model_store, tmp_path):
    src, x = float_table
    out = tmp_path / "compressed.h5"
    r = cli("h5", "compress", src, out, "--error", "rel=1e-3", *FAST_TRAIN)
    # The model is trained and measured; it is kept only where it beats the codec alone, and
    # the decision is printed either way.
    kept = "trained model" in r.stdout
    assert (kept or "model not used, not stored" in r.stdout) and "/events/table" in r.stdout, r.stdout
    with h5py.File(src, "r") as fs, h5py.File(out, "r") as fo:
        assert fo.attrs["source"] == fs.attrs["source"]
        assert list(fo[TABLE].attrs["columns"]) == list(fs[TABLE].attrs["columns"])
        assert fo["events/run"][()].tobytes() == fs["events/run"][()].tobytes()
        assert fo["events/run"].compression == "gzip"  # copied as it was
        import balerfile_h5
        cd = balerfile_h5.parse_cd_values(fo[TABLE].id.get_create_plist().get_filter(0)[2])
        assert cd["layout"] == "table" and cd["features"] == 141 and bool(cd["model"]) == kept, cd
    y = read_in_new_process(out, TABLE, tmp_path / "y.npy", bare_env(BALER_MODEL_PATH=model_store))
    column_bound_ok(x, y, 1e-3)
    v = cli("h5", "verify", out)
    assert "ok (every chunk decodes)" in v.stdout, v.stdout


def test_h5_compress_bounds_a_3d_field_by_its_range(cli, hadcm3, tmp_path):
    out = tmp_path / "hadcm3.h5"
    cli("h5", "compress", hadcm3, out, "--dataset", "air_temperature", "--error", "rel=1e-3")
    with h5py.File(hadcm3, "r") as fs:
        x = fs["air_temperature"][()]
    y = read_in_new_process(out, "air_temperature", tmp_path / "y.npy", bare_env())
    assert y.shape == x.shape == (240, 37, 49)
    x64 = x.astype("f8")
    tol = 1e-3 * (x64.max() - x64.min())
    assert np.abs(y.astype("f8") - x64).max() <= tol
    with h5py.File(out, "r") as fo:
        assert fo["air_temperature"].id.get_storage_size() < 0.35 * x.nbytes


def test_h5_compress_refuses_what_it_cannot_filter(cli, issue63_h5, tmp_path):
    r = cli("h5", "compress", issue63_h5, tmp_path / "o.h5", "--dataset", "WtLoop_nominal", expect_fail=True)
    assert r.returncode == 1 and "compound" in r.stderr and "WtLoop_nominal" in r.stderr, r.stderr
    assert not (tmp_path / "o.h5").exists()
    r = cli("h5", "compress", tmp_path / "missing.h5", tmp_path / "o.h5", expect_fail=True)
    assert r.returncode == 1 and "missing.h5" in r.stderr


def _linked_file(path, other):
    x = np.linspace(0, 1, 5000, dtype="f4")
    with h5py.File(other, "w") as f:
        f["y"] = x
    with h5py.File(path, "w") as f:
        f.create_dataset("a/x", data=x, chunks=(1000,))
        f["a/soft"] = h5py.SoftLink("/a/x")
        f["a/up"] = h5py.SoftLink("/a")              # a cycle through a soft link
        f["hard"] = f["a/x"]                          # one dataset, two names
        f["ext"] = h5py.ExternalLink(str(other), "/y")
    return x


def test_h5_compress_keeps_links_as_links(cli, bh5, tmp_path):
    """As h5repack: soft, external and second hard links come out as the same links (a cycle
    through a soft link neither loops nor crashes), the linked dataset filtered once."""
    src, out = tmp_path / "l.h5", tmp_path / "o.h5"
    x = _linked_file(src, tmp_path / "other.h5")
    cli("h5", "compress", src, out, "--error", "abs=1e-3")
    with h5py.File(out) as f:
        assert f.get("a/soft", getlink=True).path == "/a/x"
        assert f.get("a/up", getlink=True).path == "/a"
        ext = f.get("ext", getlink=True)
        assert isinstance(ext, h5py.ExternalLink) and ext.path == "/y" and ext.filename == str(tmp_path / "other.h5")
        assert f["hard"].id == f["a/x"].id
        assert "442" in str(f["a/x"]._filters) or 442 in f["a/x"]._filters
        assert np.abs(f["hard"][()] - x).max() <= 1e-3


def test_pack_names_links_it_does_not_keep(cli, tmp_path):
    """`pack` keeps data, not links: each link is named (a warning and the header's `skipped`)
    and its data packed once, under the path that first reached it; a soft-link cycle used to
    overflow the stack."""
    src, arch = tmp_path / "l.h5", tmp_path / "l.baler"
    _linked_file(src, tmp_path / "other.h5")
    r = cli("pack", src, "-o", arch, "--error", "abs=1e-3")
    warned = {ln.split("skipped ")[1].split(":")[0] for ln in r.stderr.splitlines() if "skipped " in ln}
    assert warned == {"/a/soft", "/a/up", "/ext", "/hard"}, r.stderr
    header = json.loads(cli("inspect", arch, "--json").stdout)["header"]
    assert [d["path"] for d in header["datasets"]] == ["/a/x"]
    assert sorted(s["path"] for s in header["skipped"]) == ["/a/soft", "/a/up", "/ext", "/hard"]


def _rewrite_child(path, parts, cache_bytes):
    """A bare h5py program (a model run) writing a 10 x 50 x 60 field, one chunk, with
    abs=0.01: in `parts` writes of whole time steps, each in its own file open (a file closed
    between writes: the chunk is read back through the filter each time), or with the file kept
    open and one dataset object, with a chunk cache of `cache_bytes`. Prints the worst error over the bound."""
    opts = bh5_module().Baler(error="abs=0.01").filter_options
    cache_bytes = str(cache_bytes)
    return textwrap.dedent(f"""
        import h5py, numpy as np
        t, y, x = np.mgrid[0:10, 0:50, 0:60]
        field = (np.sin(x / 17. + t / 3.) * np.cos(y / 23.) * (1 + t) + 280).astype("f4")
        with h5py.File({str(path)!r}, "w") as f:
            f.create_dataset("tas", shape=field.shape, dtype="f4", chunks=field.shape,
                             compression={FILTER_ID}, compression_opts={opts!r})
        steps = np.array_split(np.arange(10), {parts})
        if {cache_bytes!r} == "None":
            for s in steps:
                with h5py.File({str(path)!r}, "a") as f:
                    f["tas"][s[0]:s[-1] + 1] = field[s[0]:s[-1] + 1]
        else:
            # One dataset object: h5py opens the dataset again at each f["tas"], and its cache
            # goes (coded) with it.
            with h5py.File({str(path)!r}, "a", rdcc_nbytes={cache_bytes}) as f:
                d = f["tas"]
                for s in steps:
                    d[s[0]:s[-1] + 1] = field[s[0]:s[-1] + 1]
        with h5py.File({str(path)!r}, "r") as f:
            back = f["tas"][()]
        print("worst", np.abs(back.astype("f8") - field).max() / 0.01)
    """)


def bh5_module():
    import balerfile_h5
    return balerfile_h5


@pytest.mark.parametrize("parts,cache", [(10, None), (1, None), (10, 1 << 20)])
def test_a_chunk_written_in_parts_is_named_once(plugin, tmp_path, parts, cache):
    """HDF5 writes part of a chunk that is not in its cache by decoding the chunk, changing the
    part and coding it again: the values written before are coded a second time, and their
    error can grow past the bound. The filter cannot keep them (it sees no history), so it says
    so on stderr, once a process; a chunk written whole, or filled in the chunk cache, is coded
    once and is within the bound, with no warning."""
    r = subprocess.run([sys.executable, "-c", _rewrite_child(tmp_path / "p.h5", parts, cache)], env=bare_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    worst = float(r.stdout.split()[-1])
    warned = r.stderr.count("balerfile filter: warning: a chunk decoded earlier is being coded again")
    if parts > 1 and cache is None:
        assert warned == 1, r.stderr
        assert "errors add up" in r.stderr and "rdcc_nbytes" in r.stderr
        assert worst > 1.0, "the premise: the rewrites moved values past the bound"
    else:
        assert warned == 0, r.stderr
        assert worst <= 1.0


def test_h5_compress_of_netcdf4_with_copied_variables_stays_netcdf(cli, tmp_path):
    """A netCDF-4 file with an int flag and a char variable (copied as they were) beside a
    float field (filtered): their dimension links are object references, which H5Ocopy carried
    over as addresses in the input, so netCDF and xarray could not open the output ("NetCDF: HDF
    error") while h5 compress and h5 verify said nothing. They are linked again."""
    import netCDF4

    src, out = tmp_path / "cf.nc", tmp_path / "cf_c.nc"
    rng = np.random.default_rng(3)
    with netCDF4.Dataset(src, "w") as ds:
        for d, n in (("time", 6), ("lat", 20), ("lon", 30), ("n4", 4)):
            ds.createDimension(d, n)
        ds.createVariable("lat", "f4", ("lat",))[:] = np.linspace(-10, 10, 20)
        ds.createVariable("time", "i4", ("time",))[:] = np.arange(6)
        ds.createVariable("temp", "f4", ("time", "lat", "lon"))[:] = 280 + rng.standard_normal((6, 20, 30))
        ds.createVariable("flag", "i1", ("time", "lat", "lon"))[:] = rng.integers(0, 3, (6, 20, 30))
        ds.createVariable("site", "S1", ("lat", "n4"))[:] = netCDF4.stringtochar(np.array(["ab%02d" % i for i in range(20)], "S4"))
        # A string variable: its fill value lies in a global heap that H5Ocopy left in the
        # input, and the output's creation properties could not be read.
        ds.createVariable("station", str, ("lat",))[:] = np.array(["st%d" % i for i in range(20)], dtype=object)
    cli("h5", "compress", src, out, "--error", "abs=0.01", "--no-model")
    code = textwrap.dedent(f"""
        import netCDF4, xarray as xr, numpy as np
        a, b = netCDF4.Dataset({str(src)!r}), netCDF4.Dataset({str(out)!r})
        for n, v in a.variables.items():
            w = b.variables[n]
            assert w.dimensions == v.dimensions, (n, w.dimensions, v.dimensions)
            x, y = v[:], w[:]
            if n == "temp":
                assert np.abs(y.astype("f8") - x).max() <= 0.01, n
            else:
                assert np.array_equal(np.asarray(x), np.asarray(y)), n
        ds = xr.open_dataset({str(out)!r})
        assert ds["flag"].dims == ("time", "lat", "lon"), ds["flag"].dims
        assert ds["site"].dims[0] == "lat", ds["site"].dims  # xarray joins the chars into strings
        assert list(ds["station"].values) == ["st%d" % i for i in range(20)]
        import h5py
        assert h5py.File({str(out)!r}, "r")["station"].fillvalue == b""
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], env=bare_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr


def test_h5_compress_keeps_unlimited_dimensions(cli, tmp_path):
    """Like h5repack, h5 compress keeps what may grow: a netCDF-4 unlimited dimension (with and
    without a coordinate variable) and h5py's maxshape=None came back fixed, so appending a time
    step failed, and the dimension with no variable became a phony one."""
    import netCDF4

    src, out = tmp_path / "unlim.nc", tmp_path / "unlim_c.nc"
    rng = np.random.default_rng(4)
    with netCDF4.Dataset(src, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("obs", None)
        ds.createDimension("x", 40)
        ds.createVariable("time", "f8", ("time",))[:] = np.arange(5.0)
        ds.createVariable("temp", "f4", ("obs",))[:] = np.arange(7, dtype="f4")
        ds.createVariable("field", "f4", ("time", "x"))[:] = 280 + rng.standard_normal((5, 40))
    cli("h5", "compress", src, out, "--error", "abs=0.01", "--no-model")
    # h5py first: its HDF5 and netCDF4's are two libraries in one process, and the plugin had
    # answered netCDF's set_local with h5py's calls ("NetCDF: HDF error" on the append).
    code = textwrap.dedent(f"""
        import h5py, netCDF4, numpy as np
        with netCDF4.Dataset({str(src)!r}) as a, netCDF4.Dataset({str(out)!r}, "a") as b:
            for n, d in a.dimensions.items():
                assert (len(b.dimensions[n]), b.dimensions[n].isunlimited()) == (len(d), d.isunlimited()), n
            for n, v in a.variables.items():
                assert b[n].dimensions == v.dimensions, (n, b[n].dimensions)
                assert np.abs(b[n][:].astype("f8") - v[:]).max() <= (0.01 if n == "field" else 0), n
            b["field"][5] = np.zeros(40, "f4")
        with netCDF4.Dataset({str(out)!r}) as b:
            assert b["field"].shape == (6, 40) and np.all(b["field"][5] == 0)
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], env=bare_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr


def test_h5_compress_names_references_it_cannot_keep(cli, tmp_path):
    """Object and region references point into their own file: copied into another they point
    at nothing, and a reference attribute of a dataset the filter codes was dropped unsaid.
    Both are named."""
    src, out = tmp_path / "refs.h5", tmp_path / "refs_c.h5"
    with h5py.File(src, "w") as f:
        t = f.create_dataset("target", data=np.arange(100.0).reshape(10, 10))
        r = f.create_dataset("objrefs", (1,), dtype=h5py.ref_dtype)
        r[0] = t.ref
        t.attrs["self_ref"] = t.ref
        t.attrs["units"] = "m"
        # An integer dataset is copied as it was: its reference attribute read back null.
        flags = f.create_dataset("flags", data=np.arange(10, dtype="i4"))
        flags.attrs["of"] = t.ref
        flags.attrs["units"] = "1"
    r = cli("h5", "compress", src, out, "--no-model")
    assert "/target attribute self_ref: not kept" in r.stdout, r.stdout
    assert "/flags attribute of: not kept" in r.stdout, r.stdout
    assert f"/objrefs: object or region references, copied as they were: they point into {src}" in r.stdout, r.stdout
    with h5py.File(out, "r") as f:
        assert f["target"].attrs["units"] == "m"
        assert dict(f["flags"].attrs) == {"units": "1"}


def test_h5_compress_copies_what_the_filter_cannot_shrink(cli, tmp_path):
    """A netCDF dimension without a variable holds no values, and a dataset of a few bytes is
    smaller than the filter's chunk header: filtered, they grew 2-19 times. Both are copied as
    they are, and a --dataset naming a string variable says why it cannot be filtered."""
    import netCDF4

    src, out = tmp_path / "small.nc", tmp_path / "small_c.nc"
    with netCDF4.Dataset(src, "w") as ds:
        ds.createDimension("time", 40)
        ds.createDimension("bnds", 2)
        ds.createVariable("time", "f8", ("time",))[:] = np.arange(40.0)
        ds.createVariable("time_bnds", "f8", ("time", "bnds"))[:] = np.stack([np.arange(40.0), np.arange(1, 41.0)], 1)
        ds.createVariable("level", "f4", ("bnds",))[:] = [1000.0, 850.0]
        ds.createVariable("label", str, ("bnds",))[:] = np.array(["a", "b"], dtype=object)
    r = cli("h5", "compress", src, out, "--error", "rel=1e-3", "--no-model")
    assert "/bnds: copied as is: a netCDF dimension without a variable" in r.stdout, r.stdout
    assert "/level: copied as is: 8 bytes" in r.stdout, r.stdout
    with h5py.File(out, "r") as f:
        assert not f["bnds"]._filters and not f["level"]._filters
        assert f["level"][()].tolist() == [1000.0, 850.0]
    r = cli("h5", "compress", src, tmp_path / "o.nc", "--dataset", "label", expect_fail=True)
    assert "dataset /label cannot take the filter: not numeric" in r.stderr, r.stderr
