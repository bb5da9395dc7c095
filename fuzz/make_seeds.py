#!/usr/bin/env python3
"""Makes the fuzz targets' seed corpora (fuzz/seeds/<target>/) from real data.

    .venv/bin/python fuzz/make_seeds.py        # after scripts/setup.sh (release build, .venv)

Inputs are small slices of real files: the CMS Zmumu events table (fixtures/data/zmumu.h5,
made by fixtures/make_table_h5.py) and the HadCM3 climate file of iris-sample-data. They are
packed by target/release/balerfile with several bounds and small chunks, written through the
HDF5 filter with h5py, and a tiny model is trained for the model seeds. Seed layouts are the
ones src/fuzzing.rs documents:

  archive_reader/  whole .baler files (no .baler suffix: *.baler is gitignored)
  chunk_decoder/   8 config bytes (chunk_config in src/fuzzing.rs), then one chunk of an archive
  filter_decode/   u8 k, k u32 cd_values, then one filtered chunk as HDF5 stores it
  onnx_loader/     u32 manifest length, manifest.json, then decoder.onnx (or encoder.onnx)

Everything is deterministic except training (seeded) and zstd's output, which is stable for a
given library version. Total size stays well under 2 MB.
"""
import glob
import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = os.environ.get("BALERFILE", str(ROOT / "target" / "release" / "balerfile"))
SEEDS = ROOT / "fuzz" / "seeds"
import balerfile_h5  # noqa: E402  (the installed package; registers the filter plugin with h5py's HDF5)

DTYPES = ["bool", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64"]  # DType::ALL


def run(*args, env=None):
    r = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"balerfile {' '.join(map(str, args))} failed:\n{r.stderr}")
    return r


def hadcm3():
    hits = glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/iris_sample_data/sample_data/A1B_north_america.nc"))
    if not hits:
        sys.exit("iris-sample-data is not installed in .venv (scripts/setup.sh installs it)")
    return hits[0]


def put(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def parse_archive(data):
    """(header, [(offset, length, dataset, row_start, rows)]) of a .baler file."""
    flags, hlen = struct.unpack_from("<IQ", data, 12)
    stored = data[24:24 + hlen]
    if flags & 1:  # the header is zstd-compressed; bit 1: against the format's dictionary
        import zstandard
        dict_path = Path(__file__).resolve().parents[1] / "schemas" / "baler-header-dict-1.bin"
        d = zstandard.ZstdCompressionDict(dict_path.read_bytes(), dict_type=zstandard.DICT_TYPE_RAWCONTENT) if flags & 2 else None
        stored = (zstandard.ZstdDecompressor(dict_data=d) if d else zstandard.ZstdDecompressor()).decompress(stored)
    header = json.loads(stored)
    foff, flen = struct.unpack_from("<QQ", data, len(data) - 28)
    (n,) = struct.unpack_from("<Q", data, foff)
    entries = []
    for i in range(n):
        off, length, ds, _crc, row, rows = struct.unpack_from("<QQIIQQ", data, foff + 8 + 40 * i)
        entries.append((off, length, ds, row, rows))
    return header, entries


def chunk_config(ds, level=3):
    """The 8 config bytes that give chunk_decoder this dataset's codings (see chunk_config)."""
    nvars = len(ds["variables"])
    epr = int(np.prod(ds["shape"][1:], dtype=np.int64)) if len(ds["shape"]) > 1 else 1
    assert 1 <= nvars <= 4 and 1 <= epr <= 4096, (nvars, epr)
    shape_bits = 0 if len(ds["shape"]) == 2 else (1 if len(ds["shape"]) == 3 and ds["shape"][1] == 2 else 3)
    c = bytearray(8)
    c[0] = (nvars - 1) | (shape_bits << 4) | (((level - 1) % 3) << 6)
    struct.pack_into("<H", c, 1, epr - 1)
    for v, var in enumerate(ds["variables"]):
        lossy = var["error"]["mode"] in ("abs", "rel")
        c[3 + v] = DTYPES.index(var["dtype"]) | ((2 if lossy else 0) << 4)
    return bytes(c)


def make_inputs(tmp):
    """Small real inputs: (path, dataset or None, label)."""
    out = []
    with h5py.File(ROOT / "fixtures" / "data" / "zmumu.h5") as f:
        ev = f["events"][:]
    with h5py.File(hadcm3()) as f:
        air = f["air_temperature"][:6, :12, :16]
        period = f["forecast_period"][:40]
        time_bnds = f["time_bnds"][:24]
        bnds = f["bnds"][:]  # big-endian f32
    small = ev[:96][["Run", "E1", "Q1", "M"]]
    small = np.array(small, dtype=np.dtype([(n, small.dtype[n]) for n in small.dtype.names]))
    p = tmp / "table4.h5"
    with h5py.File(p, "w") as f:
        f["events"] = small
    out.append((p, None, "table4"))
    p = tmp / "table19.h5"
    with h5py.File(p, "w") as f:
        f["events"] = ev[:40]
    out.append((p, None, "table19"))
    p = tmp / "field.h5"
    with h5py.File(p, "w") as f:
        f["air_temperature"] = air
        f["forecast_period"] = period
        f["time_bnds"] = time_bnds
        f.create_dataset("bnds", data=bnds, dtype=">f4")
        f["air_temperature"].attrs["units"] = "K"
    out.append((p, None, "field"))
    # Every other dtype, from real values: the forecast periods and rounded temperatures.
    ints = {
        "i8": (period % 100).astype("<i1"), "i16": (air[0] * 10).astype("<i2").ravel(),
        "u8": (period % 200).astype("<u1"), "u16": (air[1] * 100).astype("<u2").ravel(),
        "u32": period.astype("<u4") * 1000, "i64": period.astype("<i8") * -(10 ** 12),
        "u64": period.astype("<u8") << np.uint64(40), "bool": (air[2] > air[2].mean()).ravel(),
    }
    for name, arr in ints.items():
        p = tmp / f"{name}.npy"
        np.save(p, arr)
        out.append((p, None, f"npy_{name}"))
    p = tmp / "field_f64.npy"
    np.save(p, air[:2].astype("<f8"))
    out.append((p, None, "npy_f64_field"))
    return out


def archives(tmp, inputs, model_dir):
    made = []
    bounds = [("lossless", []), ("rel1e-3", ["--error", "rel=1e-3"]), ("abs0.5", ["--error", "abs=0.5"])]
    for path, _ds, label in inputs:
        for bname, bargs in bounds:
            if label.startswith("npy_") and label not in ("npy_f64_field",) and bname != "lossless":
                continue  # integers and booleans are lossless whatever the bound
            for cs in ["1K", "4K"]:
                out = tmp / f"{label}-{bname}-{cs}.baler"
                run("pack", path, "-o", out, "--chunk-size", cs, "--no-model", "-q", *bargs)
                made.append(out)
    # A model-coded archive that carries its decoder (--embed-model) and one that names it.
    # Bound 'none' makes every chunk carry the latent (model-only blocks); rel=1e-2 keeps it
    # only where it pays.
    for embed, error in [(True, "none"), (False, "none"), (False, "rel=1e-2")]:
        out = tmp / f"table4-model-{'embedded' if embed else 'named'}-{error.replace('=', '')}.baler"
        run("pack", tmp / "table4.h5", "-o", out, "--model", model_dir, "--error", error,
            "--chunk-size", "1K", "-q", *(["--embed-model"] if embed else []))
        made.append(out)
    return made


def archive_seeds(made):
    for a in made:
        data = a.read_bytes()
        put("archive_reader", a.stem, data)
        header, entries = parse_archive(data)
        for off, length, d, row, rows in entries[:2]:
            if d == 0xFFFFFFFF:
                continue
            ds = header["datasets"][d]
            if len(ds["variables"]) > 4:
                continue
            if int(np.prod(ds["shape"][1:], dtype=np.int64)) > 4096:
                continue
            chunk = data[off:off + length]
            cfg = bytearray(chunk_config(ds))
            if ds.get("model") is not None and struct.unpack_from("<I", chunk, 24)[0] == 1:
                # Coded with a model: the stand-in (f16 or 8-bit latent, of the chunk's width)
                # decodes the latent; its prediction is not the model's, so the codes' CRC fails
                # unless the fuzzer makes it match, but every step before it runs.
                width, coding = struct.unpack_from("<IB", chunk, 28)
                cfg[0] |= (2 if coding == 1 else 3) << 2
                cfg[7] = (width - 1) & 7
            put("chunk_decoder", f"{a.stem}-chunk{row}", bytes(cfg) + chunk)


def filter_seeds(tmp, model_id):
    with h5py.File(hadcm3()) as f:
        air = f["air_temperature"][:8, :12, :16]
        time = f["time"][:64]
    with h5py.File(ROOT / "fixtures" / "data" / "zmumu.h5") as f:
        ev = f["events"][:64]
    table = np.stack([ev[n] for n in ("E1", "px1", "py1", "pz1", "pt1")], axis=1).astype("<f8")
    pair = np.stack([ev[n] for n in ("E1", "M")], axis=1).astype("<f8")
    cases = [
        ("field-lossless", air, (2, 12, 16), dict(error="lossless")),
        ("field-abs", air, (2, 12, 16), dict(error="abs=0.05")),
        ("field-rel", air, (4, 6, 16), dict(error="rel=1e-3")),
        ("field-be", air.astype(">f4"), (2, 12, 16), dict(error="rel=1e-2")),
        ("series-f64", time, (32,), dict(error="abs=0.5")),
        ("table-rel", table, (16, 5), dict(error="rel=1e-3", table=True)),
        ("table-lossless", table.astype("<f4"), (32, 5), dict(error="lossless", table=True)),
        # The tiny model takes the table's two float columns, E1 and M.
        ("table-model-none", pair, (32, 2), dict(error="none", model=model_id)),
        ("table-model-rel", pair, (32, 2), dict(error="rel=1e-3", model=model_id)),
    ]
    p = tmp / "filtered.h5"
    with h5py.File(p, "w") as f:
        for name, data, chunks, kw in cases:
            f.create_dataset(name, data=data, chunks=chunks, **balerfile_h5.Baler(**kw))
    with h5py.File(p) as f:
        for name, *_ in cases:
            ds = f[name]
            _flags, cd, _name = ds.id.get_create_plist().get_filter_by_id(balerfile_h5.FILTER_ID)
            head = bytes([len(cd)]) + struct.pack(f"<{len(cd)}I", *cd)
            for i in range(min(2, ds.id.get_num_chunks())):
                info = ds.id.get_chunk_info(i)
                _mask, raw = ds.id.read_direct_chunk(info.chunk_offset)
                put("filter_decode", f"{name}-{i}", head + bytes(raw))


def clear(target):
    """Removes a target's seeds, but not int_block's rans-* ones: rans-coded blocks that the
    encoder writes only from 4096 codes, beyond that target's count, so they are built with the
    library's stages by `cargo test --release --test fuzz_regressions -- --ignored rans_seeds`."""
    for p in (SEEDS / target).glob("*"):
        if not (target == "int_block" and p.name.startswith("rans-")):
            p.unlink()


def pieces_seeds(tmp):
    """Filtered chunks cut into pieces (chunk format 2): 64 KiB pieces of a 145 KB field chunk
    and of a 147 KB table chunk, under the fuzzer's element limit (65536)."""
    with h5py.File(hadcm3()) as f:
        air = f["air_temperature"][:20]
    with h5py.File(ROOT / "fixtures" / "data" / "zmumu.h5") as f:
        ev = f["events"][()]
    names = [n for n in ev.dtype.names if ev.dtype[n].kind == "f"][:8]
    table = np.stack([ev[n] for n in names], axis=1).astype("<f8")
    p = tmp / "pieces.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("field", data=air, chunks=air.shape, **balerfile_h5.Baler(error="rel=1e-3", piece_size=1 << 16))
        f.create_dataset("table", data=table, chunks=table.shape, **balerfile_h5.Baler(error="rel=1e-3", table=True, piece_size=1 << 16))
    with h5py.File(p) as f:
        for name in ("field", "table"):
            ds = f[name]
            _flags, cd, _name = ds.id.get_create_plist().get_filter_by_id(balerfile_h5.FILTER_ID)
            _mask, raw = ds.id.read_direct_chunk((0,) * ds.ndim)
            assert raw[4] == 2, f"{name}: chunk format {raw[4]}, not pieces"
            put("filter_decode", f"pieces-{name}-0", bytes([len(cd)]) + struct.pack(f"<{len(cd)}I", *cd) + bytes(raw))


def train_model(tmp):
    """A tiny dense model on the 4-column table; its bundle folder."""
    out = tmp / "bundle"
    run("train", tmp / "table4.h5", "-o", out, "--hidden", "8", "--latent", "2", "--epochs", "2", "--seed", "1")
    return out


def onnx_seeds(bundle):
    manifest = (bundle / "manifest.json").read_bytes()
    for part in ["decoder", "encoder"]:
        onnx = (bundle / f"{part}.onnx").read_bytes()
        put("onnx_loader", f"dense-{part}", struct.pack("<I", len(manifest)) + manifest + onnx)
    # The manifest alone, and a canonical (compact, sorted) one, as an archive embeds it.
    canon = json.dumps(json.loads(manifest), sort_keys=True, separators=(",", ":")).encode()
    put("onnx_loader", "dense-manifest-only", struct.pack("<I", len(canon)) + canon)


def int_block_seeds(tmp):
    """Integer blocks as today's codec writes them (chains: offset, delta, Lorenzo, reference;
    ac with and without repeats; packing + shuffle + zstd), cut from real archives: each seed is
    the block's element count (u16) and the bytes from the block on."""
    sys.path.insert(0, str(ROOT / "tests" / "python"))
    from test_format import decode_ints, varint
    with h5py.File(ROOT / "fixtures" / "data" / "zmumu.h5") as f:
        ev = f["events"][:1500]
    with h5py.File(hadcm3()) as f:
        air = f["air_temperature"][:3, :20, :30]
    inputs = []
    p = tmp / "zmumu1500.h5"
    with h5py.File(p, "w") as f:
        f["events"] = ev
    inputs += [(p, "rel=1e-2"), (p, "rel=1e-4"), (p, "lossless")]
    p = tmp / "air.npy"
    np.save(p, air)
    inputs += [(p, "rel=1e-3")]
    k = 0
    for src, err in inputs:
        arch = tmp / "ib.baler"
        run("pack", src, "-o", arch, "--no-model", "-q", "--error", err)
        data = arch.read_bytes()
        header, entries = parse_archive(data)
        for off, length, dsi, _, rows in entries:
            ds = header["datasets"][dsi]
            n = rows * int(np.prod(ds["shape"][1:])) if ds["kind"] == "array" else rows
            body = data[off:off + length]
            pos = 28
            stats = dict(widths=set(), predictors=set())
            refs = []
            for var in ds["variables"]:
                method = body[pos]
                pos += 1
                if method == 0:
                    (plen,) = struct.unpack_from("<Q", body, pos + 1)
                    pos += 9 + plen
                    refs.append(None)
                    continue
                if method == 5:
                    flags = body[pos]
                    pos += 1 if flags & 2 else 9
                    kx, pos = varint(body, pos)
                start = pos
                q, pos = decode_ints(body, pos, n, ds, var, stats, refs)
                if n <= 4095:
                    put("int_block", f"block{k:03d}", struct.pack("<H", n) + body[start:pos])
                    k += 1
                refs.append(q)
                if method == 5:
                    if kx:
                        _, pos = decode_ints(body, pos, kx, None, var, stats)
                        vlen, pos = varint(body, pos)
                        pos += vlen
                    _, pos = varint(body, pos)
                    _, pos = varint(body, pos + 8)
                    pos += 1 + 5 * body[pos]


def coded_chunk_seeds(tmp, src, name, errors, wanted):
    """chunk_decoder seeds from `src` packed at each of `errors` (8K chunks): the chunks whose
    first block `wanted(method, flags)` picks. Returns how many were written."""
    made = 0
    for err in errors:
        arch = tmp / f"{name}.baler"
        run("pack", src, "-o", arch, "--no-model", "-q", "--error", err, "--chunk-size", "8K")
        data = arch.read_bytes()
        header, entries = parse_archive(data)
        for off, length, d, row, _ in entries:
            chunk = data[off:off + length]
            if wanted(chunk[28], chunk[29]):
                put("chunk_decoder", f"{name}-{err.replace('=', '')}-chunk{row}", chunk_config(header["datasets"][d]) + chunk)
                made += 1
    return made


def walk_seeds(tmp):
    """chunk_decoder seeds whose blocks are interpolation walks (method 5, flag bit 2): small
    3-D and 4-D fields at wide bins, where the walk wins."""
    with h5py.File(hadcm3()) as f:
        air = f["air_temperature"][:8, :12, :16]
    made = 0
    for name, arr in [("walk3d", air), ("walk4d", air.reshape(4, 2, 12, 16))]:
        src = tmp / f"{name}.npy"
        np.save(src, arr)
        made += coded_chunk_seeds(tmp, src, name, ["rel=1e-2", "rel=3e-2"], lambda method, flags: method == 5 and flags & 4)
    assert made >= 2, f"only {made} walk-coded chunks"


def omit_seeds(tmp):
    """chunk_decoder seeds whose blocks leave their exact elements out of the codes (method 5,
    flag bit 3) and list them as runs (bit 4): OSTIA's land under the walk and under Lorenzo."""
    sd = Path(hadcm3()).parent
    with h5py.File(sd / "ostia_monthly.nc") as f:
        v = f["surface_temperature"]
        sea, fill = v[:2, ::8, ::8], v.attrs["_FillValue"]
    src = tmp / "ostia.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("surface_temperature", data=sea).attrs["_FillValue"] = fill
    made = coded_chunk_seeds(tmp, src, "omit-ostia", ["rel=1e-2", "rel=1e-3"], lambda method, flags: method == 5 and flags & 8)
    assert made >= 2, f"only {made} chunks that omit exact elements"


def rntuple_seeds(tmp):
    """rntuple_reader seeds: a small RNTuple as uproot writes it (flat, jagged, a record; two
    clusters, zlib pages, uncompressed envelopes) and the one balerfile writes back from it
    (split columns, zstd pages and envelopes, page checksums)."""
    import awkward as ak
    import uproot
    n = 60
    rng = np.random.default_rng(7)
    jets = ak.unflatten(rng.normal(50, 20, 90).astype(np.float32), rng.multinomial(90, np.ones(n) / n))
    arrays = {"x": rng.normal(size=n), "n": np.arange(n, dtype=np.int32), "ok": np.arange(n) % 3 == 0,
              "jet_pt": jets, "met": ak.zip({"px": rng.normal(size=n).astype(np.float32), "py": rng.normal(size=n)})}
    src = tmp / "in.root"
    with uproot.recreate(src) as f:
        f["events"] = {k: v[:30] for k, v in arrays.items()}
        f["events"].extend({k: v[30:] for k, v in arrays.items()})
    put("rntuple_reader", "uproot-2clusters.root", src.read_bytes())
    arch, out = tmp / "a.baler", tmp / "out.root"
    run("pack", src, "-o", arch, "-q", "--error", "rel=1e-2")
    run("unpack", arch, "-o", out, "-q")
    put("rntuple_reader", "balerfile-zstd.root", out.read_bytes())


def main():
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} is missing: cargo build --release")
    # One target's seeds from today's binary, the others kept (older releases' seeds among them):
    # argument -> (the target's folder, whether its old seeds go, the maker).
    only = {
        "walk": ("chunk_decoder", False, walk_seeds),  # the walk-coded chunks, added
        "omit": ("chunk_decoder", False, omit_seeds),  # chunks that leave exact elements out, added
        "rntuple": ("rntuple_reader", True, rntuple_seeds),
        "int_block": ("int_block", True, int_block_seeds),
        "pieces": ("filter_decode", False, pieces_seeds),  # chunks cut into pieces, added
    }
    if len(sys.argv) == 2 and sys.argv[1] in only:
        target, fresh, make = only[sys.argv[1]]
        if fresh:
            clear(target)
        with tempfile.TemporaryDirectory() as t:
            make(Path(t))
        print(f"{target}: {len(list((SEEDS / target).iterdir()))} seeds")
        return
    for t in ["archive_reader", "chunk_decoder", "filter_decode", "onnx_loader", "int_block"]:
        clear(t)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        store = tmp / "store"
        os.environ["BALER_MODEL_PATH"] = str(store)
        inputs = make_inputs(tmp)
        bundle = train_model(tmp)
        (model_id,) = [d.name for d in store.iterdir() if (d / "manifest.json").is_file()]
        archive_seeds(archives(tmp, inputs, bundle))
        filter_seeds(tmp, model_id)
        pieces_seeds(tmp)
        onnx_seeds(bundle)
        int_block_seeds(tmp)
        walk_seeds(tmp)
        omit_seeds(tmp)
    total = sum(p.stat().st_size for p in SEEDS.rglob("*") if p.is_file())
    for t in sorted(SEEDS.iterdir()):
        files = list(t.iterdir())
        print(f"{t.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
