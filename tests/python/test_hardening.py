"""Hardening (issue 9): concurrent readers, SIGKILL at random moments, tampered models.

Data (all real): the ATLAS issue63 ntuple (9812 x 157 compound; its 141 float columns as a
9812 x 141 float32 table), the HadCM3 air temperature field (240 x 37 x 49 float32) and the CMS
Zmumu events (2304 x 19), with small dense models trained on them for a few epochs.

  * Concurrency: 8 Python threads read filtered datasets (a field with a bound, a table with a
    bound and a model, the same table as the model's output alone) through h5py, many times,
    at random slices, with HDF5's chunk cache off so that every read runs the filter; spawned
    processes do the same; several `balerfile unpack --threads 2` and `inspect` of one archive
    run at once, to different outputs and to one output name. Every result is compared with a
    single-threaded reference, bit for bit, and the reference with the source under its bound.
  * Crash safety: `balerfile pack` and `unpack` are killed with SIGKILL at random moments for a
    bounded time, half of the time over an existing output. After every kill the output name
    holds the old file, the complete new one, or nothing; never a partial file. The only other
    files allowed to remain are the writer's own temporaries (`.NAME.balerfile-tmp-PID`, see
    src/atomic.rs), which a kill leaves behind; their count is printed (run with -s).
  * Model integrity: a store bundle whose manifest was edited, whose decoder was replaced by
    another real model's decoder (same architecture, other weights), or which is another model
    filed under this id, and an archive whose embedded decoder was altered (with and without
    forging its CRC) are refused with exit 1 and a message naming what was wrong, and leave no
    output. Each archive is `--error none` (the model's output alone), where a wrong decoder
    would otherwise give wrong numbers silently.
"""
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import ROOT, THREADS, check_h5_roundtrip, parse_container
from test_h5filter import float_table  # noqa: F401  (a fixture: issue63's floats as a 2-D dataset)

FAST_TRAIN = ["--epochs", "6", "--patience", "3"]
TINY_TRAIN = ["--epochs", "6", "--patience", "3", "--hidden", "32,16", "--latent", "4"]
TABLE = "events/table"
REL = 1e-3
TMP_RE = r"\.{name}\.balerfile-tmp-[A-Za-z0-9-]+-(\d+)"


def spec(global_spec):
    return lambda name, dt, dimscale: global_spec


def model_id_of(stdout):
    ids = [w for w in stdout.split() if re.fullmatch(r"[0-9a-f]{64}", w)]
    assert ids, stdout
    return ids[0]


def uses_model(arch):
    """How many data chunks of the archive are coded with the model (L = 1 in their head)."""
    return sum(struct.unpack_from("<IQQII", c["body"], 0)[4] == 1
               for c in parse_container(arch)["chunks"] if not c.get("attachment"))


def env_with(**kw):
    e = dict(os.environ)
    e.update({k: str(v) for k, v in kw.items()})
    return e


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(autouse=True)
def _store_for_the_plugin(model_store, monkeypatch):
    # The plugin in this process (and spawned children, which inherit os.environ) finds models
    # where the CLI puts them.
    monkeypatch.setenv("BALER_MODEL_PATH", str(model_store))


@pytest.fixture(scope="module")
def bh5():
    import balerfile_h5
    balerfile_h5.register()
    return balerfile_h5


@pytest.fixture(scope="module")
def table_model(cli, float_table):
    return model_id_of(cli("train", float_table[0], "--dataset", TABLE, *FAST_TRAIN).stdout)


@pytest.fixture(scope="module")
def air(hadcm3):
    with h5py.File(hadcm3, "r") as f:
        x = f["air_temperature"][()]
    assert x.shape == (240, 37, 49) and x.dtype == np.dtype("<f4")
    return x


@pytest.fixture(scope="module")
def module_store_env(model_store):
    """Module-scoped fixtures run before the autouse one: the plugin in this process must find
    the models while they write."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BALER_MODEL_PATH", str(model_store))
        yield


@pytest.fixture(scope="module")
def filtered_file(bh5, float_table, table_model, air, tmp_path_factory, module_store_env):
    """One HDF5 file, three filtered datasets; the single-threaded reference read of each."""
    _, x = float_table
    out = tmp_path_factory.mktemp("concurrent") / "filtered.h5"
    with h5py.File(out, "w") as f:
        f.create_dataset("field", data=air, chunks=(8, 37, 49), **bh5.Baler(error=f"rel={REL}"))
        f.create_dataset("table", data=x, chunks=(512, 141), **bh5.Baler(error=f"rel={REL}", model=table_model))
        f.create_dataset("none", data=x, chunks=(512, 141), **bh5.Baler(error="none", model=table_model))
    ref = {}
    with h5py.File(out, "r", rdcc_nbytes=0) as f:
        for k in ("field", "table", "none"):
            assert f[k].id.get_create_plist().get_filter(0)[0] == bh5.FILTER_ID
            ref[k] = f[k][()]
    # the reference itself is right: within the bound (the filter's rel is per chunk and, for a
    # table, per column within the chunk; both ranges lie within the dataset's column ranges)
    tol = REL * (air.astype("f8").max() - air.astype("f8").min())
    assert np.abs(ref["field"].astype("f8") - air.astype("f8")).max() <= tol
    xf = x.astype("f8")
    ctol = REL * (np.nanmax(xf, axis=0) - np.nanmin(xf, axis=0))
    fin = np.isfinite(xf)
    assert x[~fin].tobytes() == ref["table"][~fin].tobytes()
    assert (np.where(fin, np.abs(ref["table"].astype("f8") - xf), 0) <= ctol).all()
    assert not np.array_equal(ref["none"], x), "error='none' must be the model's output"
    return out, ref


def random_slices(seed, n):
    """n (dataset, slice) pairs: row ranges, strided rows, column blocks, single elements."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        name = rng.choice(["field", "table", "none"])
        rows = 240 if name == "field" else 9812
        lo = rng.randrange(rows)
        hi = min(rows, lo + rng.randint(1, rows // 5))
        kind = rng.randrange(4)
        if kind == 0:
            sl = (slice(lo, hi),)
        elif kind == 1:
            sl = (slice(lo, hi, rng.randint(2, 7)),)
        elif kind == 2:
            width = 49 if name == "field" else 141
            c0 = rng.randrange(width)
            sl = (slice(lo, hi), slice(c0, min(width, c0 + rng.randint(1, 40))))
        else:
            sl = (lo,)
        out.append((name, sl))
    return out


def _read_in_child(path, seed, n):
    """Runs in a spawned process: register the plugin, read n random slices, chunk cache off."""
    import balerfile_h5
    balerfile_h5.register()
    got = []
    with h5py.File(path, "r", rdcc_nbytes=0) as f:
        for name, sl in random_slices(seed, n):
            got.append(f[name][sl])
        got.append(f["none"][()])
    return os.getpid(), got


# --------------------------------------------------------------------------------------------
# Concurrency


def test_eight_threads_read_filtered_datasets_identically(filtered_file):
    path, ref = filtered_file
    shared = h5py.File(path, "r", rdcc_nbytes=0)
    errors, counts = [], Counter()
    start = threading.Barrier(8)

    def work(i):
        try:
            # half the threads share one file handle, the others open their own
            f = shared if i % 2 == 0 else h5py.File(path, "r", rdcc_nbytes=0)
            start.wait()
            for name, sl in random_slices(1000 + i, 20):
                got = f[name][sl]
                want = ref[name][sl]
                if got.shape != want.shape or got.tobytes() != want.tobytes():
                    errors.append(f"thread {i}: {name}{sl} differs from the single-threaded read")
                counts[name] += 1
            if f is not shared:
                f.close()
        except Exception as e:  # surfaced below
            errors.append(f"thread {i}: {e!r}")
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    shared.close()
    assert not any(t.is_alive() for t in threads), "a reader thread hangs"
    assert not errors, errors[:5]
    assert sum(counts.values()) == 8 * 20 and all(counts[k] > 0 for k in ("field", "table", "none")), counts


def test_spawned_processes_read_one_filtered_file_identically(filtered_file):
    path, ref = filtered_file
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.starmap(_read_in_child, [(str(path), 2000 + i, 12) for i in range(4)], chunksize=1)
    assert len({pid for pid, _ in results}) >= 2, "the reads did not run in separate processes"
    for i, (_, got) in enumerate(results):
        wanted = [ref[name][sl] for name, sl in random_slices(2000 + i, 12)] + [ref["none"]]
        for k, (g, w) in enumerate(zip(got, wanted)):
            assert g.shape == w.shape and g.tobytes() == w.tobytes(), f"process {i}, read {k} differs"


@pytest.fixture(scope="module")
def issue63_with_model(cli, issue63_h5, tmp_path_factory):
    """issue63 (compound) at rel=1e-3 with a model trained on it, used in at least one chunk."""
    mid = model_id_of(cli("train", issue63_h5, *FAST_TRAIN).stdout)
    arch = tmp_path_factory.mktemp("issue63-model") / "a.baler"
    # One column coded by the model alone (bound none) keeps a latent in every chunk: the codec
    # predicts issue63's columns from one another, and a quickly trained model no longer pays
    # against that on its own.
    cli("pack", issue63_h5, "-o", arch, "--error", f"rel={REL}", "--error", "WtLoop_nominal.met:none", "--model", mid,
        "--chunk-size", "1M", *THREADS)
    assert uses_model(arch) > 0, "no chunk uses the model: the test would not exercise it"
    return arch


def start(balerfile, *args):
    return subprocess.Popen([balerfile, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env_with(BALER_MODEL_PATH=os.environ["BALER_MODEL_PATH"]))


def finish(p, timeout=120):
    out, err = p.communicate(timeout=timeout)
    assert "panicked" not in err, err
    assert p.returncode == 0, f"{p.args}: exit {p.returncode}\n{err}"
    return out


def test_concurrent_unpacks_and_inspects_of_one_archive(balerfile, issue63_h5, issue63_with_model, tmp_path):
    arch = issue63_with_model
    procs = [start(balerfile, "unpack", arch, "-o", tmp_path / f"out{i}.h5", "--threads", "2") for i in range(4)]
    # and four more to ONE output name: the last rename wins, and what it holds is complete
    procs += [start(balerfile, "unpack", arch, "-o", tmp_path / "same.h5", "--threads", "2") for _ in range(4)]
    inspects = [start(balerfile, "inspect", arch, "--json") for _ in range(4)]
    for p in procs:
        finish(p)
    shown = [json.loads(finish(p)) for p in inspects]
    assert all(s == shown[0] for s in shown), "concurrent inspects disagree"
    header = parse_container(arch)["header"]
    assert shown[0]["header"] == header
    with h5py.File(tmp_path / "out0.h5", "r") as f:
        want = f["WtLoop_nominal"][()]
    for name in [f"out{i}.h5" for i in range(1, 4)] + ["same.h5"]:
        with h5py.File(tmp_path / name, "r") as f:
            got = f["WtLoop_nominal"][()]
        assert got.tobytes() == want.tobytes(), f"{name} differs from out0.h5"
    errs = check_h5_roundtrip(issue63_h5, tmp_path / "out0.h5", header,
                              lambda n, dt, ds: ("none",) if n == "WtLoop_nominal.met" else ("rel", REL))
    assert max(errs.values()) > 0
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([f"out{i}.h5" for i in range(4)] + ["same.h5"]), left


# --------------------------------------------------------------------------------------------
# Crash safety


def leftovers(folder, name):
    pat = re.compile(TMP_RE.format(name=re.escape(name)) + "$")
    return {int(m.group(1)): p for p in folder.iterdir() if (m := pat.match(p.name))}


def kill_loop(cmd_for, out, seconds, longest, check_output, old_bytes_or_none, full_size, min_kills=8):
    """Starts cmd_for(out) again and again and SIGKILLs it after a random delay in [0, longest]
    until `seconds` have passed and `min_kills` runs were killed (or 80 runs made: on a loaded
    machine a run and its checks take longer, and the time alone left too few kills to test).
    Half of the runs start with an old complete file at `out`.
    full_size: the size of a complete output (to tell a partial temporary from a whole one).
    check_output(path, preexisting) -> description of what the output name holds, or fails.
    Returns the phases seen and the PIDs killed."""
    rng = random.Random(9)
    phases, killed = Counter(), []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline or (len(killed) < min_kills and i < 80):
        preexisting = i % 2 == 1
        if preexisting:
            out.write_bytes(old_bytes_or_none)
        elif out.exists():
            out.unlink()
        p = subprocess.Popen(cmd_for(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=env_with(BALER_MODEL_PATH=os.environ["BALER_MODEL_PATH"]))
        time.sleep(rng.uniform(0, longest))
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)  # our own child, by its PID (it may exit meanwhile)
        _, err = p.communicate(timeout=60)
        assert b"panicked" not in err, err
        tmp = leftovers(out.parent, out.name).get(p.pid)
        exited = p.returncode == 0
        if exited:
            assert tmp is None, f"a finished run left {tmp}"
            phase = "finished before the kill"
        else:
            assert p.returncode == -signal.SIGKILL, f"{p.args}: exit {p.returncode}: {err.decode()}"
            killed.append(p.pid)
            if tmp is not None:
                size = tmp.stat().st_size
                phase = ("while writing the temporary file: " +
                         ("empty" if size == 0 else "complete, not yet renamed" if size >= full_size else "partial"))
            else:
                phase = "before the temporary file existed"
        holds = check_output(out, preexisting)
        if not exited and holds == "new":
            phase = "after the rename (the new file complete)"
        phases[phase] += 1
        # keep a mix of kills early, late, and after completion on a machine of any speed
        longest *= 0.85 if exited else 1.03
        i += 1
    return phases, killed


def report_leftovers(what, folder, name, killed, phases):
    left = leftovers(folder, name)
    assert set(left) <= set(killed), f"temporaries of processes that were not killed: {set(left) - set(killed)}"
    allowed = {name, "ref.baler", "old.baler", "ref.h5", "old.h5"} | {p.name for p in left.values()}
    others = sorted(p.name for p in folder.iterdir() if p.name not in allowed)
    assert not others, f"unexpected files after the kills: {others}"
    sizes = sorted(p.stat().st_size for p in left.values())
    print(f"\n{what}: {sum(phases.values())} runs, {len(killed)} killed by SIGKILL; phases: {dict(phases)}; "
          f"{len(left)} temporaries left in {folder} (pattern .{name}.balerfile-tmp-HOST-PID, sizes {sizes[:3]}..{sizes[-3:]})")
    return left


def test_sigkill_during_pack_never_leaves_a_partial_archive(cli, balerfile, issue63_h5, tmp_path):
    work = tmp_path / "pack"
    work.mkdir()
    pack = ["pack", issue63_h5, "--error", f"rel={REL}", "--no-model", "--chunk-size", "512K", *THREADS]
    ref, old = work / "ref.baler", work / "old.baler"
    t0 = time.monotonic()
    cli(*pack[:1], *pack[1:], "-o", ref)
    longest = 1.6 * (time.monotonic() - t0)
    cli("pack", issue63_h5, "-o", old, "--error", "rel=1e-2", "--no-model")
    ref_bytes, old_bytes = ref.read_bytes(), old.read_bytes()
    assert ref_bytes != old_bytes
    out_ref = work / "ref.h5"
    cli("unpack", ref, "-o", out_ref)
    check_h5_roundtrip(issue63_h5, out_ref, parse_container(ref)["header"], spec(("rel", REL)))
    out_ref.unlink()
    verified = {ref_bytes: "new", old_bytes: "old"}

    def check(out, preexisting):
        if not out.exists():
            assert not preexisting, "the existing archive vanished"
            return "nothing"
        b = out.read_bytes()
        r = cli("inspect", out, expect_fail=True)
        assert r.returncode == 0, f"a killed pack left an archive inspect refuses: {r.stderr}"
        if b not in verified:  # a complete archive that is neither: must still unpack within bound
            parse_container(b)
            h5 = work / "check.h5"
            cli("unpack", out, "-o", h5)
            check_h5_roundtrip(issue63_h5, h5, parse_container(out)["header"], spec(("rel", REL)))
            h5.unlink()
            verified[b] = "new"
        assert verified[b] == "new" or preexisting, "the old archive appeared from nowhere"
        return verified[b]

    out = work / "out.baler"
    phases, killed = kill_loop(lambda o: [balerfile, *map(str, pack), "-o", str(o)], out, 9, longest, check, old_bytes,
                               len(ref_bytes))
    assert len(killed) >= 6, phases
    assert sum(n for k, n in phases.items() if k.startswith("while writing")) >= 3, phases
    report_leftovers("pack", work, out.name, killed, phases)
    # a later pack to the same name succeeds; the killed runs' temporaries (at least 3 were
    # seen above) are gone: each run removes those of dead processes
    cli(*pack, "-o", out)
    assert out.read_bytes() == ref_bytes
    assert not leftovers(work, out.name)


def test_sigkill_during_unpack_never_leaves_a_partial_file(cli, balerfile, issue63_h5, tmp_path):
    work = tmp_path / "unpack"
    work.mkdir()
    arch, old_arch = work / "ref.baler", work / "old.baler"
    cli("pack", issue63_h5, "-o", arch, "--error", f"rel={REL}", "--no-model", "--chunk-size", "512K", *THREADS)
    cli("pack", issue63_h5, "-o", old_arch, "--error", "rel=1e-2", "--no-model")
    ref_h5, old_h5 = work / "ref.h5", work / "old.h5"
    t0 = time.monotonic()
    cli("unpack", arch, "-o", ref_h5, *THREADS)
    longest = 1.6 * (time.monotonic() - t0)
    cli("unpack", old_arch, "-o", old_h5)
    check_h5_roundtrip(issue63_h5, ref_h5, parse_container(arch)["header"], spec(("rel", REL)))
    with h5py.File(ref_h5, "r") as f:
        want_new = f["WtLoop_nominal"][()].tobytes()
    with h5py.File(old_h5, "r") as f:
        want_old = f["WtLoop_nominal"][()].tobytes()
    assert want_new != want_old
    old_bytes = old_h5.read_bytes()

    def check(out, preexisting):
        if not out.exists():
            assert not preexisting, "the existing output vanished"
            return "nothing"
        if preexisting and out.read_bytes() == old_bytes:
            return "old"
        try:
            with h5py.File(out, "r") as f:
                got = f["WtLoop_nominal"][()].tobytes()
        except Exception as e:
            pytest.fail(f"a killed unpack left a file at the output name that h5py cannot read: {e!r}")
        assert got == want_new, "a killed unpack left an output that differs from a complete unpack"
        return "new"

    out = work / "out.h5"
    phases, killed = kill_loop(lambda o: [balerfile, "unpack", str(arch), "-o", str(o), *THREADS], out, 6, longest,
                               check, old_bytes, ref_h5.stat().st_size)
    assert len(killed) >= 5, phases
    assert sum(n for k, n in phases.items() if k.startswith("while writing")) >= 3, phases
    report_leftovers("unpack", work, out.name, killed, phases)
    cli("unpack", arch, "-o", out, *THREADS)
    with h5py.File(out, "r") as f:
        assert f["WtLoop_nominal"][()].tobytes() == want_new
    # the killed runs' temporaries (at least 3 were seen above) are gone
    assert not leftovers(work, out.name)


# --------------------------------------------------------------------------------------------
# Model integrity


@pytest.fixture(scope="module")
def zmumu_models(cli, zmumu_h5):
    """Two real models of the same architecture trained on Zmumu with other seeds."""
    a = model_id_of(cli("train", zmumu_h5, *TINY_TRAIN, "--seed", "0").stdout)
    b = model_id_of(cli("train", zmumu_h5, *TINY_TRAIN, "--seed", "1").stdout)
    assert a != b
    return a, b


@pytest.fixture(scope="module")
def zmumu_none(cli, zmumu_h5, zmumu_models, tmp_path_factory):
    """Zmumu as the model's output alone (--error none), its reference unpack."""
    d = tmp_path_factory.mktemp("zmumu-none")
    arch = d / "z.baler"
    cli("pack", zmumu_h5, "-o", arch, "--error", "none", "--model", zmumu_models[0])
    assert uses_model(arch) > 0
    out = d / "z.h5"
    cli("unpack", arch, "-o", out)
    with h5py.File(out, "r") as f:
        return arch, f["events"][()]


def store_copy(model_store, mid, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(model_store / mid, store / mid)
    return store


def refused(cli, arch, tmp_path, store, *must_name):
    out = tmp_path / "out.h5"
    r = cli("unpack", arch, "-o", out, expect_fail=True, env={"BALER_MODEL_PATH": str(store)})
    assert r.returncode == 1, f"exit {r.returncode}: a tampered model was not refused\n{r.stdout}\n{r.stderr}"
    for word in must_name:
        assert word in r.stderr, f"{word!r} not in the error: {r.stderr}"
    assert not out.exists(), "output written although the model was refused"
    assert not [p.name for p in tmp_path.glob(".out.h5.*")], "temporary left behind"
    return r


def test_untampered_store_copy_decodes(cli, zmumu_none, zmumu_models, model_store, tmp_path):
    """The control for the tests below: the same copy, untouched, works."""
    arch, want = zmumu_none
    store = store_copy(model_store, zmumu_models[0], tmp_path)
    cli("unpack", arch, "-o", tmp_path / "ok.h5", env={"BALER_MODEL_PATH": str(store)})
    with h5py.File(tmp_path / "ok.h5", "r") as f:
        assert f["events"][()].tobytes() == want.tobytes()


def test_modified_manifest_in_the_store_is_refused(cli, zmumu_h5, zmumu_none, zmumu_models, model_store, tmp_path):
    arch, _ = zmumu_none
    mid = zmumu_models[0]
    store = store_copy(model_store, mid, tmp_path)
    man_path = store / mid / "manifest.json"
    man = json.loads(man_path.read_text())
    man["normalisation"]["offset"][0] += 1.0  # the decoder would de-normalise the first feature wrongly
    man_path.write_text(json.dumps(man, indent=2))
    refused(cli, arch, tmp_path, store, mid, "manifest", "modified")
    # and pack refuses to code with it
    r = cli("pack", zmumu_h5, "-o", tmp_path / "p.baler", "--error", "none", "--model", mid, expect_fail=True,
            env={"BALER_MODEL_PATH": str(store)})
    assert r.returncode == 1 and "modified" in r.stderr, r.stderr
    assert not (tmp_path / "p.baler").exists()


def test_decoder_swapped_for_another_models_decoder_is_refused(cli, zmumu_none, zmumu_models, model_store, tmp_path):
    arch, _ = zmumu_none
    a, b = zmumu_models
    dec_a, dec_b = (model_store / m / "decoder.onnx" for m in (a, b))
    assert dec_a.read_bytes() != dec_b.read_bytes()
    assert dec_a.stat().st_size == dec_b.stat().st_size, "same architecture: only the hash tells them apart"
    store = store_copy(model_store, a, tmp_path)
    shutil.copyfile(dec_b, store / a / "decoder.onnx")
    refused(cli, arch, tmp_path, store, "decoder.onnx", "SHA-256", "modified")


def test_another_bundle_filed_under_this_id_is_refused(cli, zmumu_none, zmumu_models, model_store, tmp_path):
    arch, _ = zmumu_none
    a, b = zmumu_models
    store = tmp_path / "store"
    shutil.copytree(model_store / b, store / a)
    refused(cli, arch, tmp_path, store, a, "modified")


def forge_attachment(arch, new_body=None, flip_at=None, fix_crc=True):
    """The archive's bytes with its embedded decoder replaced (same length) or one byte flipped;
    with fix_crc, the attachment's CRC in the footer and the footer's CRC are recomputed, so only
    the decoder's SHA-256 can tell."""
    p = parse_container(arch)
    (att,) = [c for c in p["chunks"] if c.get("attachment")]
    d = bytearray(p["data"])
    if new_body is not None:
        assert len(new_body) == att["length"]
        d[att["offset"]:att["offset"] + att["length"]] = new_body
    if flip_at is not None:
        d[att["offset"] + flip_at] ^= 0x01
    if fix_crc:
        body = bytes(d[att["offset"]:att["offset"] + att["length"]])
        F = p["footer_offset"]
        struct.pack_into("<I", d, F + 8 + 40 * att["index"] + 20, zlib.crc32(body))
        n = len(d)
        _, flen, _ = struct.unpack_from("<QQI", d, n - 28)
        struct.pack_into("<I", d, n - 28 + 16, zlib.crc32(bytes(d[F:F + flen])))
        parse_container(bytes(d))  # every CRC right again
    return bytes(d), att


def test_altered_embedded_model_is_refused(cli, zmumu_h5, zmumu_models, model_store, tmp_path):
    a, b = zmumu_models
    emb = tmp_path / "emb.baler"
    cli("pack", zmumu_h5, "-o", emb, "--error", "none", "--model", a, "--embed-model")
    assert uses_model(emb) > 0
    empty = tmp_path / "empty"
    empty.mkdir()
    # control: it unpacks with no store at all
    cli("unpack", emb, "-o", tmp_path / "ok.h5", env={"BALER_MODEL_PATH": str(empty)})
    (tmp_path / "ok.h5").unlink()
    _, att = forge_attachment(emb, fix_crc=False)
    # 1. one byte altered: the checksum refuses it, in unpack and in inspect
    bad = tmp_path / "flipped.baler"
    bad.write_bytes(forge_attachment(emb, flip_at=att["length"] // 2, fix_crc=False)[0])
    refused(cli, bad, tmp_path, empty, "flipped.baler", "checksum")
    r = cli("inspect", bad, expect_fail=True, env={"BALER_MODEL_PATH": str(empty)})
    assert r.returncode == 1 and "checksum" in r.stderr, r.stderr
    # 2. the same with the CRCs forged: the decoder's SHA-256 refuses it
    bad = tmp_path / "forged.baler"
    bad.write_bytes(forge_attachment(emb, flip_at=att["length"] // 2)[0])
    refused(cli, bad, tmp_path, empty, "forged.baler", "embedded model", a, "SHA-256")
    # 3. another real model's decoder (same architecture, same length), CRCs forged
    dec_b = (model_store / b / "decoder.onnx").read_bytes()
    bad = tmp_path / "swapped.baler"
    bad.write_bytes(forge_attachment(emb, new_body=dec_b)[0])
    refused(cli, bad, tmp_path, empty, "swapped.baler", "embedded model", a, "SHA-256")
    # ... also when the store holds the right model: the archive's own decoder is what is checked
    refused(cli, bad, tmp_path, model_store, "swapped.baler", "SHA-256")
