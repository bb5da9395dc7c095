"""The .baler byte layout, read by an independent Python reader (schemas/baler-format.md).

On real archives made by the CLI: every structural check of the format (magics, version,
flags, header CRC, trailer, footer CRC, chunk CRCs, chunks tiling the file and each dataset's
rows, chunk heads equal to their footer entries), every header valid against
schemas/baler-header.schema.json (Draft 2020-12), `inspect --json` giving the file's header, and
an independent decoder of the chunk codec (methods 0/1/2/3/5, chains of stages: the delta,
Lorenzo, offset and reference predictors, fixed-width packing, zigzag, byte shuffle, the range
coder, the `ac` and the `rans` coders; in-loop interpolation; outliers; zstd via the `zstandard` package) whose output must match the source within the
header's bounds and be bit-identical to what `balerfile unpack` writes.
"""
import json
import struct
from math import prod

import h5py
import numpy as np
import pytest
from jsonschema import Draft202012Validator

from conftest import DTYPES, THREADS, _iris_sample, cf_missing, check_float_variable, check_stats, h5_datasets

ARCHIVES = ["hadcm3_lossless", "hadcm3_rel_chunks", "hadcm3_abs_level", "issue63_rel", "npy_rel", "vlstr", "zmumu_rel", "zmumu_lossless", "ostia_rel", "ostia_walk", "hadcm3_fast", "hadcm3_lorenzo"]


@pytest.fixture(scope="module")
def archives(cli, hadcm3, issue63_h5, vlstr_nc, zmumu_h5, tmp_path_factory):
    d = tmp_path_factory.mktemp("format")
    with h5py.File(hadcm3, "r") as f:
        air = f["air_temperature"][:48]
    npy = d / "air48.npy"
    np.save(npy, air)
    recipes = {
        "hadcm3_lossless": (hadcm3, []),
        "hadcm3_rel_chunks": (hadcm3, ["--error", "rel=1e-3", "--chunk-size", "65536"]),
        "hadcm3_abs_level": (hadcm3, ["--error", "abs=0.5", "--level", "19"]),
        "issue63_rel": (issue63_h5, ["--error", "rel=1e-4"]),
        "npy_rel": (npy, ["--error", "rel=1e-2"]),
        "vlstr": (vlstr_nc, []),
        "zmumu_rel": (zmumu_h5, ["--error", "rel=1e-3"]),
        "zmumu_lossless": (zmumu_h5, []),
        # land as fill values (26 %): listed once, as runs, and left out of the Lorenzo
        # residuals; at a looser bound, out of an interpolation walk's symbols
        "ostia_rel": (_iris_sample("ostia_monthly.nc"), ["--error", "rel=1e-3"]),
        "ostia_walk": (_iris_sample("ostia_monthly.nc"), ["--error", "rel=1e-2"]),
        # level 1 codes fast: a walk chosen on a sample, `rans` (or `ac` where an estimate
        # says it may win); the format is the same
        "hadcm3_fast": (hadcm3, ["--error", "rel=1e-2", "--level", "1"]),
        # tighter: Lorenzo, its large blocks with `rans` under contexts from the row above
        "hadcm3_lorenzo": (hadcm3, ["--error", "rel=1e-3"]),
    }
    out = {}
    for name, (src, args) in recipes.items():
        arch = d / f"{name}.baler"
        cli("pack", src, "-o", arch, *args, *THREADS)
        out[name] = dict(path=arch, src=src, args=args)
    return out


def load_source(src, header):
    """dataset path -> numpy array of the source."""
    if str(src).endswith(".npy"):
        (ds,) = header["datasets"]
        return {ds["path"]: np.load(src)}
    with h5py.File(src, "r") as f:
        return {p: d[()] for p, d in h5_datasets(f).items() if p in {x["path"] for x in header["datasets"]}}


# ---------------------------------------------------------------------------------------------
# Independent chunk decoder


def zdec(payload, expected):
    import zstandard
    if expected == 0:
        out = zstandard.ZstdDecompressor().decompressobj().decompress(payload) if payload else b""
    else:
        out = zstandard.ZstdDecompressor().decompress(payload, max_output_size=expected)
    assert len(out) == expected, f"zstd payload decoded to {len(out)} bytes, expected {expected}"
    return out


def unshuffle(raw, width, n):
    return np.frombuffer(raw, np.uint8).reshape(width, n).T.copy().reshape(-1)


def unzigzag(z):
    z = z.astype(np.uint64)
    return ((z >> np.uint64(1)) ^ (np.uint64(0) - (z & np.uint64(1)))).view(np.int64)


def range_decode(payload, n, row):
    """The adaptive binary range coder of baler-format.md (width 0), written from the spec."""
    data = bytes(payload)
    at = 1
    code = 0
    rng = 0xFFFFFFFF

    def nxt():
        nonlocal at
        b = data[at] if at < len(data) else 0
        at += 1
        return b

    for _ in range(4):
        code = ((code << 8) | nxt()) & 0xFFFFFFFF
    length = [[1024] * 65 for _ in range(16 * 16)]
    mant = [[1024] * 64 for _ in range(65)]
    lens = []
    out = np.zeros(n, np.uint64)

    def bit(probs, j):
        nonlocal code, rng
        p = probs[j]
        bound = (rng >> 11) * p
        if code < bound:
            rng = bound
            probs[j] = p + ((2048 - p) >> 5)
            b = 0
        else:
            code -= bound
            rng -= bound
            probs[j] = p - (p >> 5)
            b = 1
        while rng < (1 << 24):
            rng = (rng << 8) & 0xFFFFFFFF
            code = ((code << 8) | nxt()) & 0xFFFFFFFF
        return b

    for i in range(n):
        a = lens[i - 1] if i >= 1 else 0
        c = lens[i - row] if i >= row else a
        probs = length[min(a, 15) * 16 + min(c, 15)]
        k = 0
        while k < 64 and bit(probs, k):
            k += 1
        u = 1 if k else 0
        m = mant[k]
        for j in range(k - 2, -1, -1):
            u = (u << 1) | bit(m, j)
        lens.append(k)
        out[i] = u
    return out


def lorenzo_undo(r, n, d1, d2):
    """Predictor 2: q = r + the 7-neighbour prediction on the (n / (d1 d2)) x d1 x d2 grid."""
    a = r.reshape(n // (d1 * d2), d1, d2).copy()
    with np.errstate(over="ignore"):
        for i in range(a.shape[0]):
            for j in range(d1):
                row = a[i, j]
                # the part of the prediction that does not depend on this row's own earlier values
                p = np.zeros(d2, np.int64)
                if i:
                    p += a[i - 1, j]
                if j:
                    p += a[i, j - 1]
                if i and j:
                    p -= a[i - 1, j - 1]
                # q[k] = r[k] + q[k-1] + (p[k] - p[k-1] terms): the k-1 neighbours of p cancel into
                # a prefix sum of (r + p - p shifted)
                t = row + p
                t[1:] -= p[:-1]
                a[i, j] = np.cumsum(t, dtype=np.int64)
    return a.reshape(-1)


def ac_decode(payload, n, tree_bits, adapt, ctx_mode, row, repeats, side=None, short=False, head=0):
    """The `ac` stage of baler-format.md, written from the spec: buckets down a 7-level tree
    (or, short, a 4-level tree whose leaf 15 escapes to a 7-level tree of its own, after up to
    `head` decisions "is it bucket j?") under a context, then tree_bits bits down a per-bucket
    tree, the rest per (bucket, position).
    Each probability P(0) in 2^-15 adapts at 1/(count + 2), the count stopping at `adapt`."""
    data = bytes(payload)
    L = len(data)
    at = 5
    code = int.from_bytes(data[1:5].ljust(4, b"\0"), "big")
    rng = 0xFFFFFFFF
    nctx = 1 if ctx_mode == 0 else 65 if ctx_mode == 1 else 256
    P = [16384] * (nctx * 128 + (65 << tree_bits) + 65 * 64 + 4 + 128)
    N = [0] * len(P)
    tree0 = nctx * 128
    low0 = tree0 + (65 << tree_bits)
    rep0 = low0 + 65 * 64
    esc0 = rep0 + 4
    was = 0
    out = [0] * n
    seen = []

    def bit(j):
        nonlocal code, rng, at
        p = P[j]
        bound = (rng >> 15) * p
        if code < bound:
            rng = bound
            b = 0
            target = 32768
        else:
            code -= bound
            rng -= bound
            b = 1
            target = 0
        while rng < (1 << 24):
            rng = (rng << 8) & 0xFFFFFFFF
            code = ((code << 8) | (data[at] if at < L else 0)) & 0xFFFFFFFF
            at += 1
        c = N[j]
        rate = 65536 // (c + 2)
        if c < adapt:
            N[j] = c + 1
        P[j] = min(max(p + (((target - p) * rate) >> 16), 31), 32768 - 31)
        return b

    for i in range(n):
        if repeats and i:
            # is it the previous symbol again? (probability by whether the previous one was,
            # and whether the side variable's code repeated here)
            along = 1 if side is not None and side[i] == side[i - 1] else 0
            was = bit(rep0 + was + 2 * along)
            if was:
                out[i] = out[i - 1]
                seen.append(seen[i - 1])
                continue
        if ctx_mode == 0:
            ctx = 0
        elif ctx_mode == 1:
            ctx = seen[i - 1] if i else 0
        else:
            a = seen[i - 1] if i else 0
            c = seen[i - row] if i >= row else a
            ctx = min(a, 15) * 16 + min(c, 15)
        b = None
        for j in range(head):
            if not bit(ctx * 128 + 16 + j):
                b = j
                break
        if b is None:
            node = 1
            for _ in range(4 if short else 7):
                node = node * 2 + bit(ctx * 128 + node)
            b = node - (16 if short else 128)
            if short and b == 15:
                node = 1
                for _ in range(7):
                    node = node * 2 + bit(esc0 + node)
                b = node - 128
                assert b >= 15, f"escaped bucket {b}"
            assert b >= head, f"bucket {b} under a head of {head}"
        assert b <= 64, f"bucket {b}"
        seen.append(b)
        if b < 2:
            out[i] = b
            continue
        m = b - 1
        t = min(m, tree_bits)
        v = 1
        node = 1
        for _ in range(t):
            x = bit(tree0 + (b << tree_bits) + node)
            node = node * 2 + x
            v = v * 2 + x
        for pos in range(m - t - 1, -1, -1):
            v = v * 2 + bit(low0 + b * 64 + pos)
        out[i] = v
    assert at <= L + 4, "ac stream read past its end"
    return out


def rans_decode(payload, n, P, S, C, R):
    """The `rans` stage of baler-format.md, written from the spec: segments of 2^S symbols,
    C tables each (by the bit length of the symbol before, or with R > 0 of the symbols before
    and R back), four interleaved rANS states, raw bits under tokens of 32 and up."""
    assert 10 <= P <= 14 and P <= S <= 40 and 1 <= C <= 16 and (R == 0 or C in (4, 9, 16)), (P, S, C, R)
    side = C if R == 0 else {4: 2, 9: 3, 16: 4}[C]
    pos = 0
    segments = -(-n // (1 << S)) if n else 0
    tables = []
    for _ in range(segments * C):
        t, pos = varint(payload, pos)
        assert t <= 504, f"rans table of {t} tokens"
        freqs = []
        for _ in range(t):
            f, pos = varint(payload, pos)
            freqs.append(f)
        if t == 0:
            freqs = [1 << P]
        assert sum(freqs) == 1 << P, f"rans frequencies sum to {sum(freqs)}"
        slot_token = np.repeat(np.arange(len(freqs)), freqs)
        cum = np.concatenate([[0], np.cumsum(freqs)[:-1]])
        tables.append((slot_token, freqs, cum))
    rlen, pos = varint(payload, pos)
    raw = int.from_bytes(bytes(payload[pos:pos + rlen]), "little")
    pos += rlen
    x = list(struct.unpack_from("<4I", payload, pos))
    pos += 16
    assert (len(payload) - pos) % 2 == 0, "rans words of an odd byte count"
    words = np.frombuffer(bytes(payload[pos:]), "<u2")
    w = 0
    mask = (1 << P) - 1
    out = [0] * n
    rawpos = 0
    prev_len = 0
    lengths = []
    for i in range(n):
        x_ctx = min(side - 1, prev_len)
        if R:
            up = lengths[i - R] if i >= R else prev_len
            x_ctx = x_ctx * side + min(side - 1, up)
        slot_token, freqs, cum = tables[(i >> S) * C + x_ctx]
        j = i & 3
        slot = x[j] & mask
        t = int(slot_token[slot])
        x[j] = freqs[t] * (x[j] >> P) + slot - int(cum[t])
        if x[j] < 1 << 16:
            x[j] = (x[j] << 16) | int(words[w])
            w += 1
        if t < 32:
            u = t
        else:
            k = t - 32
            nraw = k // 8 + 2
            u = ((8 + k % 8) << nraw) | ((raw >> rawpos) & ((1 << nraw) - 1))
            rawpos += nraw
        out[i] = u
        prev_len = u.bit_length()
        lengths.append(prev_len)
    assert x == [1 << 16] * 4 and w == len(words), "rans stream does not end where it should"
    assert rawpos <= 8 * rlen, "rans raw bits read past their end"
    return out


def varint(body, pos):
    v = shift = 0
    while True:
        b = body[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, pos


def unzz(u):
    """zigzag back to a signed integer"""
    return (u >> 1) ^ -(u & 1)


def wrap64(v):
    return ((v + (1 << 63)) % (1 << 64)) - (1 << 63)


def decode_ints(body, pos, n, ds, var, stats, refs=(), omitted=None):
    """An integer block (format spec, "integer blocks") of n values at body[pos:]: a chain of
    stages (first byte 16), or a first-release block (width, predictor); ds is None for a block
    that never uses the Lorenzo predictor (gap lists); refs the codes of the chunk's earlier
    variables; omitted (flag FLAG_OMIT) the elements whose residuals the payload leaves out.
    Returns (values, next pos)."""
    block, pos = parse_ints(body, pos, n, ds, var, stats, refs)
    return run_ints(block, omitted), pos


def fill_omitted(q, om):
    """An omitted element's code: the last kept code before it, 0 before the first."""
    at = np.maximum.accumulate(np.where(om, -1, np.arange(len(q))))
    q = q.copy()
    q[om] = np.where(at[om] >= 0, q[np.maximum(at[om], 0)], 0)
    return q


def lorenzo_undo_omitting(r, om, n, d1, d2):
    """lorenzo_undo where omitted elements take the last kept code (one element at a time)."""
    a = [0] * n
    plane, last = d1 * d2, 0
    r = r.tolist()
    for x in range(n):
        if om[x]:
            a[x] = last
            continue
        i, j, k = x >= plane, x % plane >= d2, x % d2 > 0
        p = (a[x - 1] if k else 0) + (a[x - d2] if j else 0) + (a[x - plane] if i else 0)
        p -= (a[x - d2 - 1] if j and k else 0) + (a[x - plane - 1] if i and k else 0) + (a[x - plane - d2] if i and j else 0)
        p += a[x - plane - d2 - 1] if i and j and k else 0
        a[x] = last = wrap64(r[x] + p)
    return np.array(a, dtype=np.int64)


def parse_ints(body, pos, n, ds, var, stats, refs=()):
    """decode_ints' parsing half: the block's stages and payload, and the next pos."""
    first = body[pos]
    pos += 1
    if first == 16:
        k = body[pos]
        pos += 1
        arr = []
        for _ in range(k):
            sid = body[pos]
            pos += 1
            if sid == 1:
                arr.append(("delta",))
            elif sid == 2:
                d1, d2 = struct.unpack_from("<II", body, pos)
                pos += 8
                arr.append(("lorenzo", d1, d2))
            elif sid == 3:
                by, pos = varint(body, pos)
                arr.append(("offset", unzz(by)))
            elif sid == 4:
                rv, pos = varint(body, pos)
                slope, pos = varint(body, pos)
                off, pos = varint(body, pos)
                arr.append(("reference", rv, unzz(slope), unzz(off)))
            elif sid == 5:
                k, pos = varint(body, pos)
                assert 2 <= k <= 4, f"{var['name']}: norm of {k} variables"
                parts = []
                for _ in range(k):
                    rv, pos = varint(body, pos)
                    (ratio,) = struct.unpack_from("<f", body, pos)
                    pos += 4
                    parts.append((rv, ratio))
                off, pos = varint(body, pos)
                arr.append(("norm", parts, unzz(off)))
            else:
                raise AssertionError(f"{var['name']}: array stage {sid}")
        tb = body[pos]
        pos += 1
        if tb == 1:
            width, sign = body[pos], body[pos + 1]
            pos += 2
            to_bytes = ("packed", width, sign)
        elif tb == 2:
            (row,) = struct.unpack_from("<I", body, pos)
            pos += 4
            to_bytes = ("rc", max(row, 1))
        elif tb == 3:
            sign, tree_bits = body[pos], body[pos + 1]
            (adapt,) = struct.unpack_from("<H", body, pos + 2)
            ctx = body[pos + 4]
            pos += 5
            row = 1
            if ctx == 2:
                (row,) = struct.unpack_from("<I", body, pos)
                pos += 4
            opts = body[pos]
            pos += 1
            assert opts & 3 in (0, 1, 3) and opts < 16, f"{var['name']}: ac options {opts}"
            side = None
            if opts & 2:
                sv, pos = varint(body, pos)
                side = refs[sv]
                assert side is not None and len(side) == n, f"{var['name']}: repeat side variable {sv} without codes"
                stats["predictors"].add("repeat-side")
            head = 0
            if opts & 8:
                head = body[pos]
                pos += 1
                assert opts & 4 and 1 <= head <= 15, f"{var['name']}: ac head {head}"
                stats["predictors"].add("ac-head")
            to_bytes = ("ac", sign, tree_bits, adapt, ctx, max(row, 1), opts & 1 == 1, side, opts & 4 == 4, head)
            if opts & 4:
                stats["predictors"].add("short-buckets")
        elif tb == 4:
            sign, P, S, C = body[pos:pos + 4]
            R, pos = varint(body, pos + 4)
            to_bytes = ("rans", sign, P, S, C, R)
            if R:
                stats["predictors"].add("rans-grid")
        else:
            raise AssertionError(f"{var['name']}: array->bytes stage {tb}")
        m = body[pos]
        pos += 1
        byte_stages = []
        for _ in range(m):
            sid = body[pos]
            byte_stages.append((sid, body[pos + 1]))
            pos += 2
            assert sid in (1, 2), f"{var['name']}: bytes stage {sid}"
        plen, pos = varint(body, pos)
        payload = body[pos:pos + plen]
        pos += plen
    else:
        width, pred = first, body[pos]
        pos += 1
        assert width in (0, 1, 2, 4, 8), f"{var['name']}: code width {width}"
        assert pred in (0, 1, 2), f"{var['name']}: predictor {pred}"
        arr = []
        if pred == 1:
            arr = [("delta",)]
        elif pred == 2:
            d1, d2 = struct.unpack_from("<II", body, pos)
            pos += 8
            arr = [("lorenzo", d1, d2)]
        (plen,) = struct.unpack_from("<Q", body, pos)
        pos += 8
        payload = body[pos:pos + plen]
        pos += plen
        if width == 0:
            to_bytes, byte_stages = ("rc", arr[0][2] if pred == 2 else 1), []
        else:
            to_bytes, byte_stages = ("packed", width, 0), [(1, width), (2, 0)]
    return dict(n=n, ds=ds, var=var, stats=stats, refs=refs, arr=arr, to_bytes=to_bytes, byte_stages=byte_stages, payload=payload), pos


def run_ints(block, omitted=None):
    """decode_ints' decoding half. With omitted, the payload holds the other elements' residuals;
    the first array stage decodes an omitted element as the last kept code before it."""
    n, ds, var, stats, refs = block["n"], block["ds"], block["var"], block["stats"], block["refs"]
    arr, to_bytes, byte_stages, payload = block["arr"], block["to_bytes"], block["byte_stages"], block["payload"]
    full = n
    if omitted is not None:
        assert len(omitted) == n
        n = int(n - omitted.sum())
        stats["predictors"].add("omit")
        assert to_bytes[0] != "ac" or to_bytes[7] is None, f"{var['name']}: a repeat side variable with omitted elements"
    for st in arr:
        if st[0] == "lorenzo":
            assert ds is not None, f"{var['name']}: Lorenzo predictor on a gap list"
            row = list(ds["shape"][1:])
            grid = [1, row[0]] if len(row) == 1 else row[-2:]
            assert full % (st[1] * st[2]) == 0 and [st[1], st[2]] == grid, f"{var['name']}: grid {st[1:]} {ds['shape']}"
    # bytes->bytes stages, last first; zstd's output size is what the packed stage holds
    raw = bytes(payload)
    for sid, cfg in reversed(byte_stages):
        if sid == 2:
            raw = zdec(raw, n * to_bytes[1])
        else:
            raw = unshuffle(raw, cfg, n).tobytes()
    if to_bytes[0] == "packed":
        width, sign = to_bytes[1], to_bytes[2]
        u = np.frombuffer(raw, f"<u{width}").astype(np.uint64)
        if width > 1:
            top = int(u.max()) if n else 0
            assert top >= 256 ** (width // 2), f"{var['name']}: width {width} is not the smallest for max code {top}"
        stats["widths"].add(width)
    elif to_bytes[0] == "rc":
        u = range_decode(raw, n, to_bytes[1])
        sign = 0
        stats["widths"].add(0)
    elif to_bytes[0] == "rans":
        _, sign, P, S, C, R = to_bytes
        u = np.array(rans_decode(raw, n, P, S, C, R), dtype=np.uint64)
        stats["widths"].add("rans")
        stats["predictors"].add(f"rans-p{P}")
    else:
        _, sign, tree_bits, adapt, ctx, row, repeats, side, short, head = to_bytes
        u = np.array(ac_decode(raw, n, tree_bits, adapt, ctx, row, repeats, side, short, head), dtype=np.uint64)
        stats["widths"].add("ac")
    q = unzigzag(u) if sign == 0 else u.view(np.int64)
    if omitted is not None:
        q_kept, q = q, np.zeros(full, np.int64)
        q[~omitted] = q_kept
        n = full
        if not arr:
            q = fill_omitted(q, omitted)
    for j, st in reversed(list(enumerate(arr))):
        stats["predictors"].add(st[0])
        # the first stage rebuilds omitted elements' codes; it sees a residual of 0 there
        om = omitted if j == 0 and omitted is not None else None
        with np.errstate(over="ignore"):
            if st[0] == "delta":
                q = np.cumsum(np.where(om, 0, q) if om is not None else q, dtype=np.int64)
            elif st[0] == "lorenzo":
                q = lorenzo_undo(q, n, st[1], st[2]) if om is None else lorenzo_undo_omitting(q, om, n, st[1], st[2])
            elif st[0] == "offset":
                q = q + np.int64(st[1])
            elif st[0] == "norm":
                _, parts, off = st
                acc = np.zeros(n)
                for rv, ratio in parts:
                    r = refs[rv]
                    assert r is not None and len(r) == n, f"{var['name']}: norm of variable {rv} without codes"
                    t = r.astype(np.float64) * np.float64(ratio)
                    acc = acc + t * t
                root = np.sqrt(acc)
                whole = np.trunc(root)
                # halves away from 0 (root >= 0), saturated as a cast to i64 saturates
                p = whole + (root - whole >= 0.5)
                big = p >= 2.0 ** 63
                p = np.where(big, 0.0, p).astype(np.int64)
                p[big] = np.iinfo(np.int64).max
                q = q + (p + np.int64(off))
            else:
                _, rv, slope, off = st
                r = refs[rv]
                assert r is not None and len(r) == n, f"{var['name']}: reference to variable {rv} without codes"
                pred = np.array([wrap64(off + ((slope * int(x)) >> 20)) for x in r], dtype=np.int64)
                q = q + pred
            if om is not None and st[0] not in ("delta", "lorenzo"):
                q = fill_omitted(q, om)
    if not arr:
        stats["predictors"].add("none")
    return q


def interp_config(body, pos):
    """Method 5 flag bit 2's configuration (format spec, "Interpolation")."""
    grid = []
    for _ in range(3):
        t, pos = varint(body, pos)
        grid.append(t)
    kind = body[pos]
    order = list(body[pos + 1:pos + 5])
    lw = body[pos + 5]
    assert kind in (0, 1) and sorted(order) == [0, 1, 2, 3] and lw in (0, 1), (kind, order, lw)
    return dict(grid=grid, kind=kind, order=order, levelwise=lw), pos + 6


def walk_passes(d, order):
    """The walk's levels L (2^L >= max(d)), and its passes after the first element, coarse to
    fine: (level, dimension, the pass's slices of the grid d)."""
    L = 0
    while (1 << L) < max(d):
        L += 1

    def passes():
        for lev in range(L - 1, -1, -1):
            s = 1 << lev
            for j, k in enumerate(order):
                if s >= d[k]:
                    continue
                sl = [slice(0, None, 2 * s)] * 4
                for m in order[:j]:
                    sl[m] = slice(0, None, s)
                sl[k] = slice(s, None, 2 * s)
                yield lev, k, sl
    return L, passes()


def walk_order(n, cfg):
    """The C-order index of the element each walk symbol is for, in walk order (interp_rebuild's
    passes over an array of indices)."""
    t1, t2, t3 = cfg["grid"]
    d = [n // (t1 * t2 * t3), t1, t2, t3]
    ids = np.arange(n).reshape(d)
    _, passes = walk_passes(d, cfg["order"])
    order = np.concatenate([ids[0, 0, 0, 0:1]] + [ids[tuple(sl)].reshape(-1) for _, _, sl in passes])
    assert len(order) == n
    return order


def interp_rebuild(q, n, cfg, step, dt):
    """The spec's walk, one pass at a time (a pass reads only coarser levels and earlier passes,
    so each is one numpy expression): symbols q in walk order -> values in C order."""
    t1, t2, t3 = cfg["grid"]
    assert n % (t1 * t2 * t3) == 0
    d = [n // (t1 * t2 * t3), t1, t2, t3]
    alpha, beta = [(1.0, 1.0), (1.25, 2.0)][cfg["levelwise"]]
    a = np.zeros(d, np.float64)
    q = np.asarray(q, np.int64)

    def rebuild(p, sym, lev):
        f = 1.0
        for _ in range(lev):
            f *= alpha
        b = step / min(f, beta)
        p = np.where(np.isfinite(p), p, 0.0)
        with np.errstate(over="ignore", invalid="ignore"):
            x = (p + sym.astype(np.float64) * b).astype(dt).astype(np.float64)
        return np.where(np.isfinite(x), x, p)

    L, passes = walk_passes(d, cfg["order"])
    a[0, 0, 0, 0] = rebuild(np.zeros(1), q[:1], L)[0]
    at = 1
    for lev, k, sl in passes:
        s = 1 << lev
        idx = np.arange(s, d[k], 2 * s)

        def along(off):
            j_ = idx + off
            ok = (j_ >= 0) & (j_ < d[k])
            full = list(sl)
            full[k] = slice(None)
            line = a[tuple(full)]
            v = np.take(line, np.clip(j_, 0, d[k] - 1), axis=k)
            shape = [1] * 4
            shape[k] = len(idx)
            return v, ok.reshape(shape)

        b, _ = along(-s)
        c, okc = along(s)
        a0, oka = along(-3 * s)
        dd, okd = along(3 * s)
        with np.errstate(over="ignore", invalid="ignore"):
            lin = (b + c) * 0.5
            if cfg["kind"] == 0:
                p = lin
            else:
                cub = ((b + c) * 9.0 - a0 - dd) * 0.0625
                left = (b * 3.0 + c * 6.0 - dd) * 0.125
                right = (b * 6.0 + c * 3.0 - a0) * 0.125
                p = np.where(oka & okd, cub, np.where(okd, left, np.where(oka, right, lin)))
            p = np.where(okc, p, b)
        cnt = p.size
        a[tuple(sl)] = rebuild(p, q[at:at + cnt].reshape(p.shape), lev)
        at += cnt
    assert at == n, (at, n)
    return a.reshape(-1).astype(dt)


def decode_exact_gaps(body, pos, K, dt, var, stats, varint_len, runs=False, n_block=None):
    if runs:
        # flag bit 4: varint e, then 2e run lengths (kept, exact, ...; only the first kept run may be 0)
        e, pos = varint(body, pos)
        assert 1 <= e <= K, f"{var['name']}: {e} runs of {K} exact elements"
        r, pos = decode_ints(body, pos, 2 * e, None, var, stats)
        kept, take = r[0::2], r[1::2]
        assert np.all(take >= 1) and np.all(kept[1:] >= 1) and kept[0] >= 0 and take.sum() == K, f"{var['name']}: runs"
        starts = np.cumsum(kept) + np.concatenate([[0], np.cumsum(take)[:-1]])
        idx = np.concatenate([np.arange(a, a + t) for a, t in zip(starts, take)])
        assert idx[-1] < n_block, f"{var['name']}: exact runs beyond the block's {n_block} elements"
        stats["predictors"].add("exact-runs")
    else:
        g, pos = decode_ints(body, pos, K, None, var, stats)
        idx = np.cumsum(g, dtype=np.int64)
    if varint_len:
        vlen, pos = varint(body, pos)
    else:
        (vlen,) = struct.unpack_from("<Q", body, pos)
        pos += 8
    exact = unshuffle(zdec(body[pos:pos + vlen], K * dt.itemsize), dt.itemsize, K).view(dt)
    return idx, exact, pos + vlen


def decode_chunk(body, ds, stats):
    dsi, first, rows, V, L = struct.unpack_from("<IQQII", body, 0)
    pos = 28
    # A columns dataset (a 2-D array read as a table) holds one element of each column per row.
    n = rows * (1 if ds["kind"] == "columns" else prod(ds["shape"][1:]))
    values = []
    refs = []
    for var in ds["variables"]:
        dt = DTYPES[var["dtype"]]
        err = var["error"]
        method = body[pos]
        pos += 1
        codes = None
        if method == 0:
            es = body[pos]
            (plen,) = struct.unpack_from("<Q", body, pos + 1)
            pos += 9
            assert es in (dt.itemsize, 1), f"{var['name']}: shuffle width {es}"
            stats["widths"].add(f"raw{es}")
            raw = unshuffle(zdec(body[pos:pos + plen], n * dt.itemsize), es, n * dt.itemsize // es)
            pos += plen
            vals = raw.view(dt)
            assert dt.kind in "fb", f"{var['name']}: raw method for {var['dtype']}"
            if dt.kind == "f":
                assert err["mode"] == "lossless" or err.get("abs") == 0.0, f"{var['name']}: raw method with {err}"
        elif method in (1, 2, 3, 5):
            gaps = omit = runs = False
            step_known = False
            interp = None
            if method in (3, 5):
                # u8 flags (bit 0: coded against the model, which this decoder does not run;
                # method 3 bit 1: exact elements listed by gaps, as method 5 always lists them;
                # method 5 bit 1: no step in the block, it is 2 x the header's abs)
                # method 5 bit 2: the codes are interpolation symbols (configuration after K)
                # method 5 bit 3: the codes leave out the exact elements (FLAG_OMIT)
                # method 5 bit 4: the exact elements are listed as runs (FLAG_RUNS)
                flags = body[pos]
                assert (flags & ~(2 | 4 | 8 | 16) == 0 if method == 5 else flags in (0, 2)), f"{var['name']}: flags {flags} in a --no-model archive"
                omit, runs = flags & 8 == 8, flags & 16 == 16
                gaps = flags & 2 == 2 or method == 5
                step_known = method == 5 and flags & 2 == 2
                interp = method == 5 and flags & 4 == 4
                pos += 1
            if method in (2, 3):
                # f64 step, u64 outlier count K, then an integer block as in method 1
                step, K = struct.unpack_from("<dQ", body, pos)
                pos += 16
            elif method == 5:
                if step_known:
                    step = 2 * err["abs"]
                else:
                    (step,) = struct.unpack_from("<d", body, pos)
                    pos += 8
                K, pos = varint(body, pos)
                if interp:
                    interp, pos = interp_config(body, pos)
            assert not (omit or runs) or K > 0, f"{var['name']}: flags {flags} without exact elements"
            # with FLAG_OMIT, walk symbols are the kept elements' only; other codes are rebuilt
            # once the exact elements are known (they follow the codes)
            block, pos = parse_ints(body, pos, n - K if omit and interp else n, ds, var, stats, refs)
            if gaps and K > 0:
                # the exact elements' indices as gaps or runs (an integer block), then
                # zstd(byte-shuffled values)
                idx, exact, pos = decode_exact_gaps(body, pos, K, dt, var, stats, method == 5, runs, n)
            omitted = None
            if omit:
                omitted = np.zeros(n, bool)
                omitted[idx] = True
            q = run_ints(block, None if interp else omitted)
            # an interpolation block's symbols are nobody's reference
            codes = None if interp else q
            if method == 1:
                assert dt.kind in "iu", f"{var['name']}: integer method for {var['dtype']}"
                vals = q.view(np.uint64).astype(dt) if dt.kind == "u" else q.astype(dt)
            else:
                assert dt.kind == "f", f"{var['name']}: quantised method for {var['dtype']}"
                assert err["mode"] in ("abs", "rel") and err["abs"] > 0, f"{var['name']}: {err}"
                # the bound's bin, or a coarser power-of-two lattice every value lies on
                assert step == 2 * err["abs"] or (step > 2 * err["abs"] and np.frexp(step)[0] == 0.5), \
                    f"{var['name']}: step {step!r} != 2*abs {err['abs']!r}"
                if interp:
                    if omit:
                        # an exact element has no symbol: it reads 0
                        kept_in_walk = ~omitted[walk_order(n, interp)]
                        assert len(q) == kept_in_walk.sum()
                        stats["predictors"].add("omit-walk")
                        q_kept, q = q, np.zeros(n, np.int64)
                        q[kept_in_walk] = q_kept
                    vals = interp_rebuild(q, n, interp, step, dt)
                    stats["predictors"].add("interp-cubic" if interp["kind"] == 1 else "interp-linear")
                    stats["walks"].add((interp["kind"], tuple(interp["order"]), interp["levelwise"]))
                else:
                    vals = (q.astype(np.float64) * step).astype(dt)
                if gaps and K == 0:
                    assert method == 5, f"{var['name']}: gap-listed exact elements with K = 0"
                    idx, exact = np.zeros(0, np.int64), np.zeros(0, dt)
                elif not gaps:
                    (oplen,) = struct.unpack_from("<Q", body, pos)
                    pos += 8
                    assert K > 0 or oplen == 0, f"{var['name']}: outlier payload of {oplen} bytes for K = 0"
                    out = zdec(body[pos:pos + oplen], K * 8 + K * dt.itemsize)
                    pos += oplen
                    idx = np.frombuffer(out[:8 * K], "<u8").astype(np.int64)
                    exact = np.frombuffer(out[8 * K:], dt)
                assert np.all(idx >= 0) and np.all(idx < n) and np.all(np.diff(idx) > 0), \
                    f"{var['name']}: outlier indices not ascending in [0, {n})"
                vals[idx.astype(np.intp)] = exact
                stats["outliers"] += K
                if method == 3:
                    # error statistics: u64 n, f64 max|r|, sum|r|, sum r, sum r^2, u64 n_resp,
                    # f64 sum resp, sum resp^2
                    n_fin, max_abs = struct.unpack_from("<Qd", body, pos)
                    pos += 64
                    assert n_fin <= n and max_abs <= err["abs"], f"{var['name']}: stats {n_fin} {max_abs}"
                elif method == 5:
                    # compact statistics: varint n, f64 max|r|, varint n_resp, u8 width (4 or 8),
                    # then 5 means of that width
                    n_fin, pos = varint(body, pos)
                    (max_abs,) = struct.unpack_from("<d", body, pos)
                    n_resp, pos = varint(body, pos + 8)
                    w = body[pos]
                    assert w in (4, 8), f"{var['name']}: stats width {w}"
                    pos += 1 + 5 * w
                    assert n_fin <= n and n_resp <= n_fin and max_abs <= err["abs"], f"{var['name']}: stats {n_fin} {max_abs}"
        else:
            raise AssertionError(f"{var['name']}: unknown method {method}")
        stats["methods"].add(method)
        values.append(vals)
        refs.append(codes)
    assert pos == len(body), f"chunk has {len(body) - pos} trailing bytes after its blocks"
    return values


def decode_archive(parsed):
    header = parsed["header"]
    stats = dict(methods=set(), widths=set(), predictors=set(), walks=set(), outliers=0)
    parts = {k: [[] for _ in ds["variables"]] for k, ds in enumerate(header["datasets"])}
    for c in parsed["chunks"]:
        ds = header["datasets"][c["dataset"]]
        for j, vals in enumerate(decode_chunk(c["body"], ds, stats)):
            parts[c["dataset"]][j].append(vals)
    decoded = {}
    for k, ds in enumerate(header["datasets"]):
        shape = tuple(ds["shape"])
        if ds["kind"] == "columns":
            # one 1-D array per column; the file holds them side by side
            decoded[ds["path"]] = [np.concatenate(p) for p in parts[k]]
        else:
            decoded[ds["path"]] = [np.concatenate(p).reshape(shape) for p in parts[k]]
    return decoded, stats


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ARCHIVES)
def test_structure_and_schema(archives, container, schema, name):
    Draft202012Validator.check_schema(schema)
    a = archives[name]
    p = container(a["path"])
    header = p["header"]
    errors = sorted(Draft202012Validator(schema).iter_errors(header), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
    assert p["header_bytes"].decode("utf-8")  # valid UTF-8
    assert header["format"] == "baler" and header["format_version"] == 1
    assert header["producer"]["name"] == "balerfile"
    kind = "npy" if str(a["src"]).endswith(".npy") else "hdf5"
    assert header["source"] == {"kind": kind, "name": a["src"].name}
    assert "model" not in header and "models" not in header, "a --no-model archive names no model"
    stages = [s["stage"] for s in header["codec"]["pipeline"]]
    assert "zstd" in stages and "model" not in stages, stages
    if kind == "hdf5":
        assert any(g["path"] == "/" for g in header["groups"]), header["groups"]
    # chunk_rows: every chunk of a dataset but its last has chunk_rows rows
    for k, ds in enumerate(header["datasets"]):
        mine = [c for c in p["chunks"] if c["dataset"] == k]
        assert mine, f"{ds['path']} has no chunk"
        assert all(c["rows"] == ds["chunk_rows"] for c in mine[:-1])
        assert mine[-1]["rows"] <= ds["chunk_rows"]


def test_small_chunk_size_cuts_chunks(archives, container):
    p = container(archives["hadcm3_rel_chunks"]["path"])
    (k, ds), = [(k, d) for k, d in enumerate(p["header"]["datasets"]) if d["path"] == "/air_temperature"]
    row_bytes = 37 * 49 * 4
    assert 1 <= ds["chunk_rows"] < 240
    assert ds["chunk_rows"] == 1 or ds["chunk_rows"] * row_bytes <= 65536, ds["chunk_rows"]
    assert len([c for c in p["chunks"] if c["dataset"] == k]) > 1


def test_level_recorded(archives, container):
    header = container(archives["hadcm3_abs_level"]["path"])["header"]
    levels = [s.get("level") for s in header["codec"]["pipeline"] if s["stage"] == "zstd"]
    assert levels and all(lv in (None, 19) for lv in levels), header["codec"]


@pytest.mark.parametrize("name", ARCHIVES)
def test_inspect_json(archives, container, cli, name):
    a = archives[name]
    header = container(a["path"])["header"]
    r = cli("inspect", a["path"], "--json")
    obj = json.loads(r.stdout)
    assert obj["header"] == header
    rest = json.dumps({k: v for k, v in obj.items() if k != "header"})
    for ds in header["datasets"]:
        for v in ds["variables"]:
            assert json.dumps(v["name"]) in rest, f"inspect --json has no size entry for {v['name']}"
    # plain inspect works too
    assert cli("inspect", a["path"]).stdout.strip()


@pytest.mark.parametrize("name", ARCHIVES)
def test_independent_decode(archives, container, cli, tmp_path, name):
    pytest.importorskip("zstandard", reason="the independent decoder needs the zstandard package")
    a = archives[name]
    parsed = container(a["path"])
    header = parsed["header"]
    decoded, stats = decode_archive(parsed)
    source = load_source(a["src"], header)
    # what balerfile itself decodes
    is_npy = str(a["src"]).endswith(".npy")
    out = tmp_path / ("out.npy" if is_npy else "out.h5")
    cli("unpack", a["path"], "-o", out, *THREADS)
    if is_npy:
        unpacked = {header["datasets"][0]["path"]: np.load(out)}
    else:
        with h5py.File(out, "r") as f:
            unpacked = {p: d[()] for p, d in h5_datasets(f).items()}
    for ds in header["datasets"]:
        src = np.asarray(source[ds["path"]])
        back = np.asarray(unpacked[ds["path"]])
        for j, (var, mine) in enumerate(zip(ds["variables"], decoded[ds["path"]])):
            f = var.get("field")
            if ds["kind"] == "columns":
                x, y = src[:, j], back[:, j]
            else:
                x = src[f] if f else src
                y = back[f] if f else back
            name_ = var["name"]
            # the independent decode is bit-identical to balerfile's own (up to byte order)
            assert mine.tobytes() == np.array(y, dtype=mine.dtype, order="C").tobytes(), \
                f"{name_}: independent decode differs from `balerfile unpack`"
            x_le = np.array(x, dtype=mine.dtype, order="C")
            if mine.dtype.kind in "biu":
                assert var["error"]["mode"] == "lossless"
                assert np.array_equal(mine, x_le), f"{name_}: integer/bool decode differs from source"
                continue
            missing = None
            if "missing" in var:
                # fill values (from the source's own CF attributes) come back bit for bit
                with h5py.File(a["src"], "r") as f:
                    missing = cf_missing(x_le, dict(f[ds["path"]].attrs))
            check_stats(name_, x_le, var, missing)
            err = var["error"]
            spec = ("lossless",) if err["mode"] == "lossless" else (err["mode"], err["value"])
            check_float_variable(name_, x_le, mine, spec, var, missing)
    if name in ("hadcm3_rel_chunks", "hadcm3_abs_level", "issue63_rel", "npy_rel"):
        assert 5 in stats["methods"], stats
    if name in ("hadcm3_rel_chunks", "hadcm3_abs_level", "issue63_rel"):
        assert "ac" in stats["widths"], stats
        # buckets down the short tree (4 decisions, escaping to the 7-level one)
        assert "short-buckets" in stats["predictors"], stats
    if name in ("hadcm3_abs_level", "issue63_rel", "npy_rel", "ostia_rel"):
        # blocks of 4096 codes and more where `ac` saves under 6 %: the fast static coder
        assert "rans" in stats["widths"], stats
    if name == "ostia_rel":
        # the land mask is listed once, as runs, and no residual is coded for it
        assert {"omit", "exact-runs"} <= stats["predictors"], stats
    if name == "ostia_walk":
        assert {"omit-walk", "exact-runs"} <= stats["predictors"] and {"interp-cubic", "interp-linear"} & stats["predictors"], stats
    if name == "hadcm3_lorenzo":
        # rans's contexts from the symbol before and the grid row above
        assert {"lorenzo", "rans-grid"} <= stats["predictors"] and "rans" in stats["widths"], stats
    if name in ("hadcm3_rel_chunks", "hadcm3_abs_level", "ostia_walk"):
        # mostly-0 residuals: a decision or two of the ac head before the short tree
        assert "ac-head" in stats["predictors"], stats
    if name == "issue63_rel":
        assert "reference" in stats["predictors"], stats
        # rans tables at 2^10 and 2^11 slots where they cost less than at 2^12
        assert {"rans-p10", "rans-p11", "rans-p12"} <= stats["predictors"], stats
    if name == "zmumu_rel":
        # pt1 and pt2 are the norms of (px, py) before them
        assert "norm" in stats["predictors"], stats
    if name in ("npy_rel", "hadcm3_abs_level"):
        # wide bins on a smooth field: interpolation wins
        assert {"interp-cubic", "interp-linear"} & stats["predictors"], stats
    if name == "hadcm3_fast":
        # a fast level chooses its walk too (here not `interp::quick`'s: cubic, fastest
        # dimension first, one bin, which it took before), coded with `rans`
        assert stats["walks"] and stats["walks"] - {(1, (3, 2, 1, 0), 0)} and "rans" in stats["widths"], stats
    if name == "ostia_walk":
        # the search: here a walk other than the fast level's
        assert stats["walks"] - {(1, (3, 2, 1, 0), 0)}, stats
    if name == "hadcm3_lossless":
        assert not {3, 5} & stats["methods"], stats
    if name == "zmumu_lossless":
        # events listed once per muon pairing: whole repeated rows match only unshuffled
        assert "raw1" in stats["widths"], stats


def test_rel_resolution_matches_stats(archives, container):
    header = container(archives["issue63_rel"]["path"])["header"]
    for v in header["datasets"][0]["variables"]:
        if v["error"]["mode"] == "rel":
            st = v["stats"] if "stats" in v else None
            if st and st["min"] is not None:
                want = 1e-4 * (np.float32(st["max"]).astype(np.float64) - np.float32(st["min"]).astype(np.float64))
                assert abs(v["error"]["abs"] - want) <= 1e-12 * want, v


def test_deterministic_across_threads(cli, hadcm3, tmp_path):
    outs = []
    for t in ("1", "2", "2"):
        arch = tmp_path / f"t{t}_{len(outs)}.baler"
        cli("pack", hadcm3, "-o", arch, "--error", "rel=1e-3", "--chunk-size", "65536", "--threads", t)
        outs.append(arch.read_bytes())
    assert outs[1] == outs[2], "two identical packs differ"
    assert outs[0] == outs[1], "--threads 1 and --threads 2 give different archives"
