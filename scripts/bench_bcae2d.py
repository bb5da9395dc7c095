#!/usr/bin/env python3
"""BCAE-2D benchmark (not a test): training time, sizes and the paper's metrics, and encoder
throughput through ONNX Runtime next to the same architecture in PyTorch, in one run.

Usage: .venv/bin/python scripts/bench_bcae2d.py [--wedges 24] [--train-wedges 8] [--epochs 1]
           [--out DIR] [--torch-python PATH] [--channels 32 ...]

Data: SYNTHETIC TPC-like wedges (fixtures/make_tpc_wedges.py), 16 x 192 x 249 u16 each.
The model is trained by `balerfile train --kind bcae2d` (burn, CPU) with the paper's default
architecture unless options say otherwise; on a CPU a few epochs is what fits, so the metrics
show a barely trained model: the point of the table is throughput and honest sizes.

PyTorch is not a dependency of balerfile and is never installed in CI: pass --torch-python with
a Python that has torch (e.g. a venv made with `pip install torch`); without it the PyTorch
rows are left out and the table says so.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = os.environ.get("BALERFILE", str(ROOT / "target" / "release" / "balerfile"))


def run(*args, env=None):
    t = time.perf_counter()
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, args))}\n{r.stdout}\n{r.stderr}")
    return r.stdout, time.perf_counter() - t


def half_graph(path):
    """The f16 copy balerfile's --half makes (src/onnx/half.rs): f16 initializers, casts at the
    graph's edges, Resize scales kept f32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    m = onnx.load(path)
    g = m.graph
    keep = {i for n in g.node if n.op_type == "Resize" for i in n.input[1:]}
    for t in g.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype == np.float32 and t.name not in keep:
            t.CopyFrom(numpy_helper.from_array(a.astype(np.float16), t.name))
    ins, outs = [i.name for i in g.input], [o.name for o in g.output]
    for n in g.node:
        n.input[:] = [x + "__f16" if x in ins or x in outs else x for x in n.input]
        n.output[:] = [x + "__f16" if x in ins or x in outs else x for x in n.output]
    nodes = [helper.make_node("Cast", [i], [i + "__f16"], to=TensorProto.FLOAT16) for i in ins]
    nodes += list(g.node)
    nodes += [helper.make_node("Cast", [o + "__f16"], [o], to=TensorProto.FLOAT) for o in outs]
    del g.node[:]
    g.node.extend(nodes)
    return m.SerializeToString()


def ort_throughput(model, x, threads, seconds=6.0):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    s.run(None, {name: x})
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        s.run(None, {name: x})
        n += len(x)
    return n / (time.perf_counter() - t0), s.run(None, {name: x})[0]


TORCH_BENCH = textwrap.dedent("""
    import json, sys, time, torch
    from torch import nn
    c, h, code, m, d, threads, batch, seconds = json.loads(sys.argv[1])
    torch.set_num_threads(threads)
    class Res(nn.Module):
        def __init__(s):
            super().__init__()
            s.c1, s.c2 = nn.Conv2d(h, h, 3, padding=1), nn.Conv2d(h, h, 3, padding=1)
            s.a = nn.Parameter(torch.zeros(1))
            s.act = nn.LeakyReLU(0.2)
        def forward(s, x):
            return s.act(s.a * s.c2(s.act(s.c1(x))) + x)
    layers = [nn.Conv2d(c, h, 7, padding=3)]
    for i in range(m):
        if i < d:
            layers.append(nn.AvgPool2d(2))
        layers += [Res(), Res()]
    if code != h:
        layers.append(nn.Conv2d(h, code, 1))
    enc = nn.Sequential(*layers).eval()
    x = torch.rand(batch, c, 192, 256) * 10
    out = {}
    with torch.inference_mode():
        for mode in ("f32", "bf16"):
            ctx = torch.autocast("cpu", dtype=torch.bfloat16) if mode == "bf16" else torch.inference_mode()
            with ctx:
                enc(x)
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < seconds:
                    enc(x)
                    n += batch
                out[mode] = n / (time.perf_counter() - t0)
    print(json.dumps({"torch": torch.__version__, **out}))
""")


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--wedges", type=int, default=24)
    ap.add_argument("--train-wedges", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--code-channels", type=int, default=32)
    ap.add_argument("--encoder-blocks", type=int, default=4)
    ap.add_argument("--decoder-blocks", type=int, default=8)
    ap.add_argument("--out", default="/tmp/bench_bcae2d")
    ap.add_argument("--torch-python", help="a Python with torch installed, for the PyTorch rows")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, BALER_MODEL_PATH=str(out / "store"))
    tpc = out / "tpc.h5"
    run(sys.executable, ROOT / "fixtures" / "make_tpc_wedges.py", tpc, "--wedges", a.wedges, "--png", out / "wedge.png")
    print(f"data: {a.wedges} synthetic wedges (16 x 192 x 249 u16), {tpc.stat().st_size} bytes gzip-4 in HDF5; "
          f"machine: {os.cpu_count()} CPU cores")

    arch = ["--channels", a.channels, "--code-channels", a.code_channels,
            "--encoder-blocks", a.encoder_blocks, "--decoder-blocks", a.decoder_blocks]
    text, secs = run(BIN, "train", tpc, "--kind", "bcae2d", "--epochs", a.epochs, "--train-rows", a.train_wedges,
                     "--lr-hold", 1, *arch, env=env)
    print(text.strip())
    mid = re.search(r"model ([0-9a-f]{64})", text).group(1)
    man = json.loads((out / "store" / mid / "manifest.json").read_text())
    tr = man["provenance"]["training"]
    print(f"training: {tr['seconds_per_epoch']:.1f} s per epoch of {tr['train_wedges']} wedges "
          f"({tr['seconds_per_epoch'] / max(tr['train_wedges'], 1):.2f} s per wedge, burn flex CPU)")

    raw = a.wedges * 16 * 192 * 249 * 2
    print(f"\n| coding | size % of raw u16 | ratio | pack MB/s | MAE log ADC | PSNR dB | precision | recall |")
    print("|---|---|---|---|---|---|---|---|")
    for label, args in [("zstd-lossless, no model", ["--no-model"]),
                        ("BCAE-2D + residual, lossless", ["--model", mid]),
                        ("BCAE-2D + residual, abs=8 ADC", ["--model", mid, "--error", "abs=8"]),
                        ("BCAE-2D alone (--error none)", ["--model", mid, "--error", "none"]),
                        ("BCAE-2D alone, f16 encoder (--half)", ["--model", mid, "--error", "none", "--half"])]:
        arc = out / "x.baler"
        text, secs = run(BIN, "pack", tpc, "-o", arc, "--threads", str(os.cpu_count()), *args, env=env)
        size = arc.stat().st_size
        m = re.search(r"MAE ([\d.]+), PSNR ([\d.-]+) dB, precision ([\d.]+), recall ([\d.]+)", text)
        mt = " | ".join(m.groups()) if m else "| | "
        print(f"| {label} | {100 * size / raw:.2f} % | {raw / size:.1f} | {raw / 1e6 / secs:.1f} | {mt} |")
    dec = (out / "store" / mid / "decoder.onnx").stat().st_size
    print(f"decoder.onnx: {dec} bytes (kept once beside any number of archives); the paper's ratio "
          f"(input and code as 16-bit values): {man['provenance']['architecture']['paper_ratio']}")

    enc_path = str(out / "store" / mid / "encoder.onnx")
    x = np.random.default_rng(0).random((4, 16, 192, 256), dtype=np.float32) * 10
    f32 = open(enc_path, "rb").read()
    f16 = half_graph(enc_path)
    print("\nencoder throughput, batch 4, wedges/s (CPU):")
    print("| engine | precision | 1 thread | all threads |")
    print("|---|---|---|---|")
    ref = None
    for label, model in [("ONNX Runtime", f32), ("ONNX Runtime", f16)]:
        w1, y1 = ort_throughput(model, x, 1)
        wn, _ = ort_throughput(model, x, os.cpu_count())
        if ref is None:
            ref = y1
        diff = np.abs(y1 - ref).max() / np.abs(ref).max()
        prec = "f32" if model is f32 else f"f16 (code differs by {diff:.1e} relative)"
        print(f"| {label} | {prec} | {w1:.1f} | {wn:.1f} |")
    if a.torch_python:
        cfg = lambda t: json.dumps([16, a.channels, a.code_channels, a.encoder_blocks, 3, t, 4, 6.0])
        r1 = json.loads(run(a.torch_python, "-c", TORCH_BENCH, cfg(1))[0])
        rn = json.loads(run(a.torch_python, "-c", TORCH_BENCH, cfg(os.cpu_count()))[0])
        for mode in ("f32", "bf16"):
            print(f"| PyTorch {r1['torch']} | {mode} | {r1[mode]:.1f} | {rn[mode]:.1f} |")
    else:
        print("| PyTorch | (not run: pass --torch-python) | | |")


if __name__ == "__main__":
    main()
