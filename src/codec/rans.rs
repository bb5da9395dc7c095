//! The `rans` entropy stage: static-table range asymmetric numeral systems (Duda's rANS, in the
//! interleaved 32-bit form of Giesen's `rans_word`) over a small alphabet of tokens, for blocks
//! where decoding speed counts: one table lookup and one multiply a symbol, against `ac`'s
//! chain of 5-10 dependent binary decisions.
//!
//! Each unsigned symbol `u` becomes a token: `u` itself below 32, else 32 + 8 (bit length - 6)
//! + the three bits below its leading one, with the bits under those written raw to a separate
//! stream (SZ3 and zstd split symbols the same way: what an entropy coder can learn sits in the
//! token). The block is cut into segments of 2^k symbols, each with its own frequency tables of
//! 2^`prob_bits` (one per context: the magnitudes of the symbols before), so the tables follow
//! an interpolation walk's levels, whose residuals differ; the encoder chooses k and the contexts
//! by the cost of tables and symbols, priced from counts. Four states interleave over one stream
//! of 16-bit words, so the decoder's four dependency chains overlap.
//!
//! The format spec (baler-format.md, "rans") defines all of it bit for bit.

use crate::wire::{put_varint, Cursor};

/// Tokens below this are the value itself.
const DIRECT: u64 = 32;
/// Tokens a table may have: 32 direct, then 8 sub-bins for each bit length 6..=64.
pub const TOKENS: usize = DIRECT as usize + 8 * 59;
const _: () = assert!(TOKENS < 1 << 15, "`width` takes tokens as i16");
/// The rANS lower bound: states live in [L, 2^32), words are 16 bits.
const L: u32 = 1 << 16;
const LANES: usize = 4;
/// Symbols whose table entries `code` works out at a time (a power of two, a multiple of
/// LANES).
const CODE_BLOCK: usize = 2048;
const _: () = assert!(CODE_BLOCK.is_power_of_two() && CODE_BLOCK % LANES == 0, "`code`'s blocks hold whole groups");
/// Above RENORM_NUM / RENORM_DEN renormalisations a symbol (a word read) the decoder reads
/// the next word for every symbol and takes it without a branch. Whether a state renormalises
/// is a branch the predictor keeps losing where symbols carry many bits, and one it wins where
/// they carry few, cheaper then than a read a symbol. Measured (`unpack --threads 1` of
/// GloSea4 x20, best of 3): at 1e-4 (0.31 a symbol) branchless 0.51 -> 0.42 s, at 1e-3 (0.16)
/// 0.51 -> 0.48, at 1e-2 (0.05) 0.395 -> 0.415, slower.
const RENORM_NUM: usize = 1;
const RENORM_DEN: usize = 10;
/// The table resolution the encoder searches layouts at; readers take any in
/// `PROB_BITS_RANGE`.
pub const PROB_BITS: u8 = 12;
/// The coarser resolutions the encoder prices the chosen layout at, and writes where they cost
/// less: a table of fewer slots is fewer bytes to write where segments are short, and fewer
/// slots for the decoder to fill (filling tables of 2^12 was a tenth of GloSea4's one-slice
/// reads at 1e-2, perf).
const COARSER_PROB_BITS: [u8; 2] = [11, 10];
/// At least 2^10, so every token can have a slot.
const PROB_BITS_RANGE: std::ops::RangeInclusive<u8> = 10..=14;
/// The shortest segment the encoder considers (2^k symbols) and the longest it names. A decoder
/// fills 2^PROB_BITS slots a table: at 2^14 symbols a segment of six tables that is already a
/// slot and a half a symbol.
const MIN_SEGMENT_LOG2: u8 = 14;
pub const MAX_SEGMENT_LOG2: u8 = 40;
pub const MAX_CONTEXTS: u8 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RansConfig {
    pub prob_bits: u8,
    pub segment_log2: u8,
    /// Tables a segment has. With `row` 0, one for each class of the symbol before (its bit
    /// length, capped at `contexts - 1`): the magnitude of a residual predicts the next one's.
    /// With a `row`, `contexts` is k * k, one for each pair of classes (capped at k - 1) of the
    /// symbol before and the one `row` back: a grid's residuals, as `ac`'s grid context.
    pub contexts: u8,
    pub row: u32,
}

impl RansConfig {
    pub fn check(self) -> Result<RansConfig, String> {
        if !PROB_BITS_RANGE.contains(&self.prob_bits) {
            return Err(format!("rans table of 2^{} (2^10 to 2^14)", self.prob_bits));
        }
        // A segment is at least as long as a table has slots: a decoder fills every table of
        // every segment, so shorter ones would let a few bytes cost it 2^14 writes each.
        if self.segment_log2 < self.prob_bits || self.segment_log2 > MAX_SEGMENT_LOG2 {
            return Err(format!("rans segments of 2^{} symbols (2^{} to 2^{MAX_SEGMENT_LOG2})", self.segment_log2, self.prob_bits));
        }
        if !(1..=MAX_CONTEXTS).contains(&self.contexts) {
            return Err(format!("rans with {} contexts (1 to {MAX_CONTEXTS})", self.contexts));
        }
        if self.row > 0 && ![4, 9, 16].contains(&self.contexts) {
            return Err(format!("rans grid contexts of {} (4, 9 or 16)", self.contexts));
        }
        Ok(self)
    }

    /// Classes each neighbour's bit length is capped to.
    fn side(self) -> u8 {
        match (self.row, self.contexts) {
            (0, c) => c,
            (_, 4) => 2,
            (_, 9) => 3,
            _ => 4,
        }
    }
}

/// `u`'s token, and the count of raw bits under it. Without a branch: a walk's residuals
/// straddle `DIRECT` at random, and the mispredicted branch was most of the pass that
/// tokenises a block. Written as plain `if`s the compiler made a branch of them again, taken
/// for a fifth of GloSea4's symbols at 1e-4 (callgrind): `select_unpredictable` asks for
/// selects.
#[inline(always)]
fn token(u: u64) -> (usize, u32) {
    let big = u >= DIRECT;
    let b = 64 - u.leading_zeros();
    // Below DIRECT b - 4 may wrap; it is not selected there.
    let raw = std::hint::select_unpredictable(big, b.wrapping_sub(4), 0);
    // 32 + 8 (b - 6) + the three bits, with the 48 taken last: below DIRECT, b - 6 underflows.
    let coded = (DIRECT as usize + 8 * b as usize + ((u >> raw) & 7) as usize).wrapping_sub(48);
    (std::hint::select_unpredictable(big, coded, u as usize), raw)
}

/// The value of token `t` before its raw bits, and their count.
#[inline]
fn token_base(t: usize) -> (u64, u32) {
    if t < DIRECT as usize {
        return (t as u64, 0);
    }
    let k = t - DIRECT as usize;
    let raw = (k / 8 + 2) as u32;
    ((8 | (k % 8) as u64) << raw, raw)
}

struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    bits: u32,
}

impl BitWriter {
    /// `v` in `n` bits (at most 60), least significant first.
    #[inline]
    fn put(&mut self, v: u64, n: u32) {
        // No early return for n = 0 (most symbols): it adds nothing, and `bits` stays below 64.
        let v = v & ((1u64 << n) - 1);
        self.acc |= v << self.bits;
        let room = 64 - self.bits;
        if n >= room {
            self.out.extend_from_slice(&self.acc.to_le_bytes());
            self.acc = if room == 64 { 0 } else { v >> room };
            self.bits = n - room;
        } else {
            self.bits += n;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        let bytes = self.bits.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..bytes]);
        self.out
    }
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    /// Up to 56 bits at bit `pos`.
    #[inline]
    fn peek56(&self) -> u64 {
        let at = self.pos / 8;
        let w = match self.data.get(at..at + 8) {
            Some(b) => u64::from_le_bytes(b.try_into().unwrap()),
            None => {
                let mut b = [0u8; 8];
                let tail = self.data.get(at..).unwrap_or(&[]);
                b[..tail.len()].copy_from_slice(tail);
                u64::from_le_bytes(b)
            }
        };
        w >> (self.pos % 8)
    }

    #[inline(always)]
    fn get(&mut self, n: u32) -> u64 {
        if n <= 56 {
            let v = self.peek56() & ((1u64 << n) - 1);
            self.pos += n as usize;
            v
        } else {
            let lo = self.peek56() & 0xffff_ffff;
            self.pos += 32;
            let hi = self.peek56() & ((1u64 << (n - 32)) - 1);
            self.pos += n as usize - 32;
            lo | hi << 32
        }
    }

    fn overrun(&self) -> bool {
        self.pos > self.data.len() * 8
    }
}

/// Frequencies summing to 2^`bits` for these counts: every token that occurs keeps at least 1,
/// and what rounding leaves over is taken from (or given to) the most frequent tokens.
fn normalise(counts: &[u32], bits: u8) -> Vec<u32> {
    let total: u64 = counts.iter().map(|&c| c as u64).sum();
    let one = 1u64 << bits;
    let mut f: Vec<u32> = counts
        .iter()
        .map(|&c| if c == 0 { 0 } else { ((c as u64 * one + total / 2) / total).max(1) as u32 })
        .collect();
    let mut sum: i64 = f.iter().map(|&x| x as i64).sum();
    let mut order: Vec<usize> = (0..f.len()).filter(|&t| f[t] > 0).collect();
    order.sort_by_key(|&t| std::cmp::Reverse(counts[t]));
    while sum != one as i64 {
        let mut moved = false;
        for &t in &order {
            if sum > one as i64 && f[t] > 1 {
                // Take from each in proportion to its share, at least 1.
                let take = ((sum - one as i64) as u64).min(f[t] as u64 - 1).min((f[t] as u64 / 16).max(1));
                f[t] -= take as u32;
                sum -= take as i64;
                moved = true;
            } else if sum < one as i64 {
                f[t] += (one as i64 - sum) as u32;
                sum = one as i64;
                moved = true;
            }
            if sum == one as i64 {
                break;
            }
        }
        debug_assert!(moved, "at most {TOKENS} tokens of 1 each fit in 2^{bits}");
        if !moved {
            break;
        }
    }
    f
}

fn varint_len(v: u64) -> usize {
    ((64 - v.leading_zeros()).max(1) as usize).div_ceil(7)
}

fn write_table(f: &[u32], out: &mut Vec<u8>) {
    let t = f.iter().rposition(|&x| x > 0).map_or(0, |p| p + 1);
    put_varint(out, t as u64);
    f[..t].iter().for_each(|&x| put_varint(out, x as u64));
}

/// The class `u` gives the contexts after it: its bit length, capped at `side - 1`.
#[inline]
fn class(u: u64, side: u8) -> usize {
    ((64 - u.leading_zeros()) as usize).min(side as usize - 1)
}

/// A block's symbols as the encoder's passes take them: each one's token, its bit length (what
/// contexts are made of: `class` capped), and how many raw bits lie under the tokens (written
/// only when the block is coded: `raw_bits`; a block that is priced and then not coded, as
/// where `ac` wins, does not pay for them).
struct Tokens {
    toks: Vec<u16>,
    lens: Vec<u8>,
    raw_bits: u64,
}

fn tokens(values: &[u64]) -> Tokens {
    super::cpu::tuned(#[inline(always)] || tokens_in(values))
}

#[inline(always)]
fn tokens_in(values: &[u64]) -> Tokens {
    // Each symbol's token and bit length in one pass over the values: a second pass over the
    // tokens, looking each one's length up (`TOKEN_LEN`), was 7 instructions a symbol, 4 more
    // than the length from the value already in a register (callgrind, GloSea4's `pack` at
    // 1e-2).
    let n = values.len();
    let (mut toks, mut lens) = (Vec::<u16>::with_capacity(n), Vec::<u8>::with_capacity(n));
    for ((&u, t), b) in values.iter().zip(&mut toks.spare_capacity_mut()[..n]).zip(&mut lens.spare_capacity_mut()[..n]) {
        t.write(token(u).0 as u16);
        b.write((64 - u.leading_zeros()) as u8);
    }
    // SAFETY: both have room for `n` (`with_capacity`), and the loop wrote the first `n` of
    // each (it runs over all `n` values: the zip's other two are `n` long).
    unsafe {
        toks.set_len(n);
        lens.set_len(n);
    }
    let raw_bits: u64 = lens.iter().map(|&b| raw_under(b) as u64).sum();
    Tokens { toks, lens, raw_bits }
}

/// The raw bits under a symbol of bit length `b`: all but the top four of one of 6 or more
/// (token 32 and up), none below.
#[inline(always)]
fn raw_under(b: u8) -> u32 {
    if b >= 6 {
        b as u32 - 4
    } else {
        0
    }
}

/// The raw stream: the bits under each of `values`' tokens (`lens`, `Tokens::lens`), in order.
fn raw_bits(values: &[u64], lens: &[u8], total: u64) -> Vec<u8> {
    super::cpu::tuned(#[inline(always)] || raw_bits_in(values, lens, total))
}

/// 64 symbols at a time: which of them have raw bits, as a mask made without a branch, then
/// those alone put. Most of a walk's symbols have none, and putting their no bits was 26
/// instructions a symbol (callgrind, GloSea4's `pack` at 1e-2); a branch a symbol instead
/// would be a coin toss at tight bounds, where about as many have bits as not.
#[inline(always)]
fn raw_bits_in(values: &[u64], lens: &[u8], total: u64) -> Vec<u8> {
    // Room for all `total` bits (`Tokens::raw_bits`) at once: grown as it filled, the stream
    // was copied over again at each doubling.
    let mut w = BitWriter { out: Vec::with_capacity(total.div_ceil(8) as usize + 8), acc: 0, bits: 0 };
    for (values, lens) in values.chunks(64).zip(lens.chunks(64)) {
        let mut with_bits = lens.iter().enumerate().fold(0u64, |m, (k, &b)| m | ((raw_under(b) > 0) as u64) << k);
        while with_bits != 0 {
            let k = with_bits.trailing_zeros() as usize;
            w.put(values[k], raw_under(lens[k]));
            with_bits &= with_bits - 1;
        }
    }
    w.finish()
}

/// The bit length of every symbol of token `t`: a direct token's own, else the one its bin
/// stands for (`Tokens::lens` are these: `tokens_cover_every_value`).
#[cfg(test)]
const TOKEN_LEN: [u8; TOKENS] = {
    let mut len = [0u8; TOKENS];
    let mut t = 0;
    while t < TOKENS {
        len[t] = if t < DIRECT as usize { (usize::BITS - t.leading_zeros()) as u8 } else { ((t - DIRECT as usize) / 8 + 6) as u8 };
        t += 1;
    }
    len
};

/// Each symbol's context under `cfg` (`RansConfig::contexts`) from the symbols' bit lengths:
/// the first symbol's neighbours count as class 0, and the one `row` back before the first
/// row as the one before.
fn contexts(lens: &[u8], cfg: RansConfig) -> Vec<u8> {
    let (side, row, n) = (cfg.side(), cfg.row as usize, lens.len());
    if n == 0 {
        return Vec::new();
    }
    let cap = side - 1;
    // The first symbols (those with no symbol `row` back) one by one, the rest in a loop of
    // byte operations with no test of `i`.
    let head = row.max(1).min(n);
    let mut out: Vec<u8> = (0..head)
        .map(|i| {
            let before = if i == 0 { 0 } else { lens[i - 1].min(cap) };
            if row == 0 { before } else { before * side + before }
        })
        .collect();
    out.reserve(n - head);
    if row == 0 {
        out.extend(lens[head - 1..n - 1].iter().map(|&b| b.min(cap)));
    } else if head < n {
        let (before, back) = (&lens[head - 1..n - 1], &lens[..n - head]);
        out.extend(before.iter().zip(back).map(|(&b, &a)| b.min(cap) * side + a.min(cap)));
    }
    out
}

/// The contexts of the six-context layout (the symbol before's class, capped at 5) and of the
/// 16-context one at `row` (it capped at 3, by the class `row` back capped at 3) in one: `a * 4
/// + b` for the six's `a` and the row's `b`, 24 of them (`JOINT`). Their counts give both
/// layouts' (`split_joint`), exactly: each layout's context is a function of the joint one.
fn joint_contexts(lens: &[u8], row: usize) -> Vec<u8> {
    let n = lens.len();
    if n == 0 {
        return Vec::new();
    }
    // As `contexts` has them: the symbols with none `row` back take the one before, the
    // first 0 for both.
    let head = row.max(1).min(n);
    let mut out: Vec<u8> = (0..head)
        .map(|i| {
            let before = if i == 0 { 0 } else { lens[i - 1] };
            before.min(5) * 4 + before.min(3)
        })
        .collect();
    out.reserve(n - head);
    if head < n {
        let (before, back) = (&lens[head - 1..n - 1], &lens[..n - head]);
        out.extend(before.iter().zip(back).map(|(&b, &a)| b.min(5) * 4 + a.min(3)));
    }
    out
}

/// Contexts of `joint_contexts`.
const JOINT: u8 = 24;

/// The six-context and 16-context layouts' counts (as `counts` lays them out) from the joint
/// ones: six's context `a` sums the four row classes, 16's merges the classes before of 3 and
/// up.
fn split_joint(joint: &[u32], width: usize) -> (Vec<u32>, Vec<u32>) {
    let segs = joint.len() / (JOINT as usize * width);
    let (mut six, mut sixteen) = (vec![0u32; segs * 6 * width], vec![0u32; segs * 16 * width]);
    for (seg, tables) in joint.chunks_exact(JOINT as usize * width).enumerate() {
        for (c, table) in tables.chunks_exact(width).enumerate() {
            let (a, b) = (c / 4, c % 4);
            let to_six = (seg * 6 + a) * width;
            let to_sixteen = (seg * 16 + a.min(3) * 4 + b) * width;
            six[to_six..to_six + width].iter_mut().zip(table).for_each(|(s, &t)| *s += t);
            sixteen[to_sixteen..to_sixteen + width].iter_mut().zip(table).for_each(|(s, &t)| *s += t);
        }
    }
    (six, sixteen)
}

/// Token counts by segment of 2^`seg_log2`, context and token (below `width`), flat. Odd and
/// even symbols count into two tables summed at the end: a run of one token (a walk's zeros)
/// in one table is a chain of increments of one counter, each waiting on the store before.
/// A segment at a time, so a symbol's entry is its context's row and its token: with the
/// segment's offset worked out for each symbol, that index was half the pass's instructions
/// (callgrind, GloSea4's `pack` at 1e-2).
fn counts(toks: &[u16], ctx: &[u8], contexts: u8, seg_log2: u8, width: usize) -> Vec<u32> {
    super::cpu::tuned(#[inline(always)] || counts_in(toks, ctx, contexts, seg_log2, width))
}

#[inline(always)]
fn counts_in(toks: &[u16], ctx: &[u8], contexts: u8, seg_log2: u8, width: usize) -> Vec<u32> {
    let table = contexts as usize * width;
    let size = toks.len().div_ceil(1 << seg_log2) * table;
    let mut h = vec![0u32; 2 * size];
    let (even, odd) = h.split_at_mut(size);
    // Every count's index is below `table` where each context is below `contexts` and each
    // token below `width`, as their callers make them; checked here once, in release too (a
    // pass over the bytes each), so that the counting loop has no bounds check an element (two
    // of its 8.5 instructions: callgrind, GloSea4's `pack` at 1e-2).
    assert!(in_tables(toks, ctx, contexts as usize, width), "rans counts for {} symbols", toks.len());
    let segments = toks.chunks(1 << seg_log2).zip(ctx.chunks(1 << seg_log2));
    for ((toks, ctx), (even, odd)) in segments.zip(even.chunks_exact_mut(table).zip(odd.chunks_exact_mut(table))) {
        let at = |c: u8, t: u16| c as usize * width + t as usize;
        for (t, c) in toks.chunks_exact(2).zip(ctx.chunks_exact(2)) {
            // SAFETY: each index is below `table`, the length of `even` and `odd` (the assert
            // above).
            unsafe {
                *even.get_unchecked_mut(at(c[0], t[0])) += 1;
                *odd.get_unchecked_mut(at(c[1], t[1])) += 1;
            }
        }
        if toks.len() % 2 == 1 {
            let i = toks.len() - 1;
            even[at(ctx[i], toks[i])] += 1;
        }
    }
    even.iter_mut().zip(odd.iter()).for_each(|(e, &o)| *e += o);
    h.truncate(size);
    h
}

/// Whether every symbol's (context, token) lies in tables of `contexts` contexts `width` wide,
/// as the coder's unchecked loops (`counts_in`, `code_in`) need: one context a token, each
/// context below `contexts` and each token below `width`.
#[inline(always)]
fn in_tables(toks: &[u16], ctx: &[u8], contexts: usize, width: usize) -> bool {
    let ctx_max = ctx.iter().copied().max().unwrap_or(0) as usize;
    let tok_max = toks.iter().copied().max().unwrap_or(0) as usize;
    ctx.len() == toks.len() && ctx_max < contexts && tok_max < width
}

/// Tokens a block's tables need: one past the largest it uses.
fn width(toks: &[u16]) -> usize {
    // As i16 (tokens are under 2^15): the baseline has a signed 16-bit max (SSE2's `pmaxsw`)
    // and no unsigned one, and without it the loop ran element by element.
    toks.iter().map(|&t| t as i16).max().map_or(1, |t| t as usize + 1)
}

/// log2 of every frequency a table may hold at `PROB_BITS`, as `f64::log2` gives it: pricing
/// takes one for each token of each table of each layout (libm's call was 6 % of a block's
/// coding).
fn log2_of_freq(f: u64) -> f64 {
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| (0..=1u64 << PROB_BITS).map(|f| (f as f64).log2()).collect());
    t[f as usize]
}

/// About the bits one table and its symbols cost at `PROB_BITS`: the symbols at their rounded
/// frequencies (the rounding's correction to 2^PROB_BITS left out), the table as written.
fn table_estimate(h: &[u32]) -> f64 {
    let total: u64 = h.iter().map(|&c| c as u64).sum();
    if total == 0 {
        return 8.0;
    }
    let (n, one) = (total as f64, (1u64 << PROB_BITS) as f64);
    let mut sum = 0.0;
    let mut table = 0usize;
    let mut last = 0usize;
    for (t, &c) in h.iter().enumerate() {
        if c > 0 {
            // At its frequency as written (at least 1 of 2^PROB_BITS): a rare token in a short
            // segment costs more than its share says.
            let f = (crate::codec::quantise::round_half_away(c as f64 * one / n) as u64).max(1);
            sum += c as f64 * (PROB_BITS as f64 - log2_of_freq(f));
            table += varint_len(f);
            last = t + 1;
        }
    }
    // Tokens below the last that do not occur take a byte each.
    table += last - h[..last].iter().filter(|&&c| c > 0).count() + varint_len(last as u64);
    sum + 8.0 * table as f64
}

/// The contexts and segment length (log2) that code `values` smallest, tables counted: one
/// table a segment, or six by the symbol before, or 16 by the symbols before and a grid `row`
/// (the predictor's) above, or two back where there is no grid. Priced from counts, not coded.
pub fn choose(values: &[u64], row: Option<u32>) -> RansConfig {
    priced(values, row).0
}

/// The bits one table and its symbols cost at 2^`bits`, at the frequencies `code` writes.
fn table_bits(h: &[u32], bits: u8) -> f64 {
    if h.iter().all(|&c| c == 0) {
        return 8.0;
    }
    let f = normalise(h, bits);
    let symbols: f64 = h.iter().zip(&f).filter(|(&c, _)| c > 0).map(|(&c, &f)| c as f64 * (bits as f64 - log2_of_freq(f as u64))).sum();
    let last = f.iter().rposition(|&x| x > 0).map_or(0, |p| p + 1);
    let table = varint_len(last as u64) + f[..last].iter().map(|&x| varint_len(x as u64)).sum::<usize>();
    symbols + 8.0 * table as f64
}

/// `choose`'s configuration, and about the bits `encode` codes `values` in with it: its
/// tables and tokens as `choose` prices them, and the raw bits under the tokens.
pub fn priced(values: &[u64], row: Option<u32>) -> (RansConfig, f64) {
    let tokens = tokens(values);
    let p = price(&tokens, row);
    (p.cfg, p.bits + tokens.raw_bits as f64)
}

/// `values` coded in the configuration `choose` gives, and that configuration: one pass for
/// the tokens, shared by pricing and coding.
pub fn encode_chosen(values: &[u64], row: Option<u32>) -> (RansConfig, Vec<u8>) {
    let chosen = Chosen::new(values, row);
    (chosen.cfg(), chosen.code())
}

/// `encode_chosen` in two steps: the configuration and about the bytes it codes the values in,
/// then the coding, for a caller that may not need it (another coder already smaller).
pub struct Chosen<'a> {
    values: &'a [u64],
    tokens: Tokens,
    /// The configuration, and each symbol's context and the tables' counts under it, as
    /// pricing made them.
    priced: Priced,
    /// The tables and tokens as `price` prices them, and the raw bits as `code` writes them;
    /// the coder's final states are not priced, so it runs under what `code` writes (measured
    /// in `ints::encode_omitting`, which relies on it).
    pub bytes: f64,
}

impl<'a> Chosen<'a> {
    pub fn new(values: &'a [u64], row: Option<u32>) -> Chosen<'a> {
        let tokens = tokens(values);
        let priced = price(&tokens, row);
        // Under what `code` writes, as promised: the estimate leaves the frequencies'
        // correction out, the exact price the coder's final states.
        let bytes = priced.bits.min(priced.exact) / 8.0 + tokens.raw_bits.div_ceil(8) as f64;
        Chosen { values, tokens, priced, bytes }
    }

    pub fn cfg(&self) -> RansConfig {
        self.priced.cfg
    }

    /// The payload, coded.
    pub fn code(&self) -> Vec<u8> {
        let raw = raw_bits(self.values, &self.tokens.lens, self.tokens.raw_bits);
        code(&self.tokens, &raw, &self.priced.ctx, self.priced.cfg, &self.priced.counts, self.priced.width)
    }
}

/// `choose`'s search: the configuration, its tables' and tokens' bits (raw bits not counted),
/// and what coding in it takes from the search (each symbol's context, the tables' counts).
struct Priced {
    cfg: RansConfig,
    /// The layout's price at `PROB_BITS` as the search estimates it (what walks and
    /// predictors are compared by).
    bits: f64,
    /// The price at the chosen resolution, at the frequencies written.
    exact: f64,
    ctx: Vec<u8>,
    /// By segment of 2^cfg.segment_log2, context and token below `width`, as `counts`.
    counts: Vec<u32>,
    width: usize,
}

fn price(tokens: &Tokens, row: Option<u32>) -> Priced {
    let (toks, n) = (&tokens.toks[..], tokens.toks.len());
    let whole = (usize::BITS - n.max(1).saturating_sub(1).leading_zeros()).clamp(MIN_SEGMENT_LOG2 as u32, MAX_SEGMENT_LOG2 as u32) as u8;
    let at = |segment_log2, (contexts, row)| RansConfig { prob_bits: PROB_BITS, segment_log2, contexts, row };
    let mut best = (f64::INFINITY, at(whole, (1, 0)));
    // One table, six by the symbol before, and (where a row fits) 16 by it and the one `row`
    // back; with no grid, two back (delta residuals in a walk's order).
    let r = row.filter(|&r| r > 0).unwrap_or(2);
    let (single, prev, grid) = ((1u8, 0u32), (6u8, 0u32), ((r as usize) < n).then_some((16u8, r)));
    // Every layout's counts by segment of 2^MIN_SEGMENT_LOG2 from the contexts of the two
    // that have them (kept for the coding: the winner's are not made again); a count table as
    // wide as the tokens the block uses, not all of them (a walk's at 1e-2 use a few dozen of
    // 504: the tables' zeros were most of a trial's pricing).
    let width = width(toks);
    let segs = n.div_ceil(1 << MIN_SEGMENT_LOG2);
    // With a grid, both layouts' counts from one pass (`joint_contexts`), not a pass each.
    let (six, sixteen) = match grid {
        None => (counts(toks, &contexts(&tokens.lens, at(whole, prev)), prev.0, MIN_SEGMENT_LOG2, width), None),
        Some((_, r)) => {
            let joint = counts(toks, &joint_contexts(&tokens.lens, r as usize), JOINT, MIN_SEGMENT_LOG2, width);
            let (six, sixteen) = split_joint(&joint, width);
            (six, Some(sixteen))
        }
    };
    let mut one = vec![0u32; segs * width];
    // One table's counts are the six contexts' summed: an increment a symbol fewer.
    for (k, table) in six.chunks(width).enumerate() {
        let seg = k / prev.0 as usize;
        one[seg * width..(seg + 1) * width].iter_mut().zip(table).for_each(|(o, &c)| *o += c);
    }
    let levels = [(single, one), (prev, six)].into_iter().chain(grid.zip(sixteen));
    let mut best_counts = Vec::new();
    for (layout, mut level) in levels {
        // Each longer segment's counts merged pairwise from the shorter ones'.
        let table = layout.0 as usize * width;
        for k in MIN_SEGMENT_LOG2..=whole {
            let cost: f64 = level.chunks(width).map(table_estimate).sum();
            if cost < best.0 {
                best = (cost, at(k, layout));
                best_counts.clone_from(&level);
            }
            if k == whole {
                break;
            }
            let mut merged = vec![0u32; (level.len() / table).div_ceil(2) * table];
            for (m, pair) in merged.chunks_mut(table).zip(level.chunks(2 * table)) {
                let (a, b) = pair.split_at(table);
                m.copy_from_slice(a);
                m.iter_mut().zip(b).for_each(|(m, &b)| *m += b);
            }
            level = merged;
        }
    }
    // The chosen layout's tables at coarser resolutions, each priced at the frequencies it
    // would write: the estimate leaves out the rounding's correction, which grows as the
    // slots get fewer (at 2^10 it chose tables that came out 0.7 % larger on GloSea4's
    // one-slice chunks at 1e-2).
    let exact = |bits| best_counts.chunks(width).map(|h| table_bits(h, bits)).sum::<f64>();
    let mut finest = exact(PROB_BITS);
    for bits in COARSER_PROB_BITS {
        let cost = exact(bits);
        if cost < finest {
            (finest, best.1.prob_bits) = (cost, bits);
        }
    }

    // The chosen layout's contexts alone are made for the coding.
    let ctx = match best.1.contexts {
        1 => vec![0; n],
        _ => contexts(&tokens.lens, best.1),
    };
    Priced { cfg: best.1, bits: best.0, exact: finest, ctx, counts: best_counts, width }
}

/// `values` coded as `cfg` says: each segment's tables (one a context), the raw bits (varint
/// length first), the four final states (u32 each), then the 16-bit words in the order the
/// decoder reads them.
pub fn encode(values: &[u64], cfg: RansConfig) -> Vec<u8> {
    let tokens = tokens(values);
    let ctx = contexts(&tokens.lens, cfg);
    let width = width(&tokens.toks);
    let counts = counts(&tokens.toks, &ctx, cfg.contexts, cfg.segment_log2, width);
    code(&tokens, &raw_bits(values, &tokens.lens, tokens.raw_bits), &ctx, cfg, &counts, width)
}

/// One table entry as the encoder uses it, in the form of Giesen's ryg_rans: the state after
/// coding state `x` is `x + q * cmpl + bias`, q = x / freq, which is `(x << bits) / freq`'s
/// textbook `(q << bits) + x % freq + cum` rearranged (cmpl = 2^bits - freq, bias = cum). The
/// quotient is `(x * recip) >> 64` for every 32-bit state `x` where `recip` is ceil(2^64 /
/// freq) and freq > 1 (Lemire, Kaser and Kurz, "Faster remainder by direct computation",
/// 2019: exact for 32-bit numerators with a 64-bit reciprocal), so the symbol loop has no
/// division. For freq 1, recip 2^64 - 1 gives x - 1 (every state is at least 1), and the
/// bias makes up the one too few: no branch on freq either, and fewer values live across a
/// symbol (the loop kept four states' worth of them on the stack).
#[derive(Clone, Copy)]
struct EncSlot {
    recip: u64,
    cmpl: u32,
    bias: u32,
}

impl EncSlot {
    /// The entry of a token of frequency `freq` (at most 2^bits) whose range starts at `cum`,
    /// in a table of 2^bits slots. A token of frequency 0 gets an entry too, never coded (a
    /// table's tokens that its segment and context do not hold).
    fn new(freq: u32, cum: u32, bits: u32) -> EncSlot {
        let (recip, bias) = if freq > 1 { (u64::MAX / freq as u64 + 1, cum) } else { (u64::MAX, cum.wrapping_add((1 << bits) - 1)) };
        EncSlot { recip, cmpl: (1u32 << bits).wrapping_sub(freq), bias }
    }

    /// `x / freq`, but x - 1 for freq 1.
    #[inline(always)]
    fn quotient(self, x: u32) -> u32 {
        ((self.recip as u128 * x as u128) >> 64) as u32
    }

    /// Whether state `x` must put out a word before it codes this entry: x >= freq << (32 -
    /// bits), that is x + (cmpl << (32 - bits)) >= 2^32 (`shift` is 32 - bits).
    #[inline(always)]
    fn over(self, x: u32, shift: u32) -> bool {
        (x as u64 + ((self.cmpl as u64) << shift)) >> 32 != 0
    }

    /// The state after coding this entry from state `x` (one that needs no word put out).
    #[inline(always)]
    fn put(self, x: u32) -> u32 {
        x.wrapping_add(self.quotient(x).wrapping_mul(self.cmpl)).wrapping_add(self.bias)
    }
}

/// `encode` from its tokens, raw stream, contexts and the tables' counts (`counts`'s, `width`
/// wide).
fn code(tokens: &Tokens, raw: &[u8], ctx: &[u8], cfg: RansConfig, counts: &[u32], width: usize) -> Vec<u8> {
    super::cpu::tuned(#[inline(always)] || code_in(tokens, raw, ctx, cfg, counts, width))
}

#[inline(always)]
fn code_in(tokens: &Tokens, raw: &[u8], ctx: &[u8], cfg: RansConfig, counts: &[u32], width: usize) -> Vec<u8> {
    let toks = &tokens.toks[..];
    debug_assert!(cfg.check().is_ok(), "{cfg:?}");
    let bits = cfg.prob_bits as u32;
    let seg_log2 = cfg.segment_log2;
    let mut out = Vec::new();
    // By segment, context and token, as `counts` lays them out, as wide as the tokens used
    // (not all 504: a walk's blocks use a few dozen).
    let mut tables: Vec<EncSlot> = Vec::with_capacity(counts.len());
    for h in counts.chunks(width) {
        let f = if h.iter().all(|&c| c == 0) { vec![0; width] } else { normalise(h, cfg.prob_bits) };
        write_table(&f, &mut out);
        let mut cum = 0;
        tables.extend(f.iter().map(|&x| {
            let e = EncSlot::new(x, cum, bits);
            cum += x;
            e
        }));
    }
    put_varint(&mut out, raw.len() as u64);
    out.extend_from_slice(raw);
    let mut x = [L; LANES];
    let n = toks.len();
    let mut words = vec![0u16; n];
    let mut kept = 0;
    let contexts = cfg.contexts as usize;
    // Each symbol's entry lies in `tables` (one table a segment and context, `width` wide)
    // where its context is below `contexts` and its token below `width`: true by construction
    // (`contexts` caps the classes under a checked configuration, `width` is one past the
    // largest token), and checked here in release too, as the loop below relies on it for
    // memory safety (a pass over each for its largest: 3.1-3.2 -> 3.2-3.3 ns a symbol).
    // The segment length too: the loop's blocks are whole groups of LANES only for segments of
    // 2^2 and longer, and a shift past the word would wrap in release (`encode` is public, and
    // its configuration's fields; a checked one has 2^10 to 2^40).
    assert!(
        (2..usize::BITS).contains(&(seg_log2 as u32))
            && (1..=16).contains(&bits)
            && in_tables(toks, ctx, contexts, width)
            && tables.len() == n.div_ceil(1 << seg_log2) * contexts * width,
        "rans tables for {n} symbols"
    );
    // Unchecked: with the three bounds checks a symbol (and the registers they held) the
    // loop took 3.8-3.9 ns a symbol, without them 3.1-3.2 (blocks of 1 Mi symbols, three
    // distributions).
    // SAFETY: `i < n` (the loops below), and the entry's index in bounds, as asserted above.
    let slot = |i: usize| unsafe { *tables.get_unchecked(((i >> seg_log2) * contexts + *ctx.get_unchecked(i) as usize) * width + *toks.get_unchecked(i) as usize) };
    // The symbols past the last whole group of LANES first, then each group with its four
    // states in registers (indexed, they went through memory on every symbol's chain).
    let whole = n / LANES * LANES;
    // SAFETY (each `put_symbol`): `words` has `n` entries, and `kept` is at most the symbols
    // coded before, fewer than `n`.
    for i in (whole..n).rev() {
        x[i % LANES] = unsafe { put_symbol(x[i % LANES], slot(i), 32 - bits, &mut words, &mut kept) };
    }
    let [mut s0, mut s1, mut s2, mut s3] = x;
    // The groups a block at a time from the end, each symbol's entry in its segment's tables
    // worked out for the whole block first, in a loop the compiler vectorises: worked out on
    // each symbol's chain in the loop below it was 16 instructions a symbol, a third of the
    // coding (callgrind, GloSea4's `pack` at 1e-2). A block (a power of two no longer than a
    // segment, and a multiple of LANES) lies in one segment, and a group in one block.
    let seg = 1usize << seg_log2;
    let block = CODE_BLOCK.min(seg);
    let table = contexts * width;
    let mut at = [0u32; CODE_BLOCK];
    let mut end = whole;
    while end > 0 {
        let start = (end - 1) / block * block;
        let base = (start >> seg_log2) * table;
        let t = &tables[base..base + table];
        let m = end - start;
        // Below `table` (the assert above), which is at most 16 contexts of 2^15 tokens.
        for (a, (&c, &k)) in at[..m].iter_mut().zip(ctx[start..end].iter().zip(&toks[start..end])) {
            *a = c as u32 * width as u32 + k as u32;
        }
        // SAFETY: each `at` entry is below `t.len()` (its context below `contexts`, its token
        // below `width`, as asserted above); `put_symbol`'s as for the symbols before.
        let e = |j: usize| unsafe { *t.get_unchecked(*at.get_unchecked(j) as usize) };
        let shift = 32 - bits;
        for j in (0..m).step_by(LANES).rev() {
            unsafe {
                s3 = put_symbol(s3, e(j + 3), shift, &mut words, &mut kept);
                s2 = put_symbol(s2, e(j + 2), shift, &mut words, &mut kept);
                s1 = put_symbol(s1, e(j + 1), shift, &mut words, &mut kept);
                s0 = put_symbol(s0, e(j), shift, &mut words, &mut kept);
            }
        }
        end = start;
    }
    let x = [s0, s1, s2, s3];
    out.reserve(4 * LANES + 2 * kept);
    x.iter().for_each(|s| out.extend_from_slice(&s.to_le_bytes()));
    // Into room made at once: extended a word at a time, each was a call's worth of length
    // and capacity checks.
    let start = out.len();
    out.resize(start + 2 * kept, 0);
    for (o, w) in out[start..].chunks_exact_mut(2).zip(words[..kept].iter().rev()) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// State `s` after coding the symbol of table entry `e`: the word it puts out (if any) written
/// at `words[*kept]` whether or not it is kept, as whether a state overflows is a coin toss on a
/// walk's residuals and the branch mispredicted. A symbol puts out at most one word (a state
/// below 2^32 shifted once is below its bound), so `words` one a symbol is room enough.
///
/// # Safety
/// `*kept < words.len()`: `code` gives `words` one a symbol, and `*kept` counts the words of
/// the symbols coded before this one.
#[inline(always)]
unsafe fn put_symbol(s: u32, e: EncSlot, shift: u32, words: &mut [u16], kept: &mut usize) -> u32 {
    let over = e.over(s, shift);
    debug_assert!(*kept < words.len());
    // SAFETY: the caller's promise.
    unsafe { *words.get_unchecked_mut(*kept) = s as u16 };
    *kept += over as usize;
    e.put(if over { s >> 16 } else { s })
}

/// One slot of a decoding table: the token whose range holds it, its frequency, the slot's
/// offset into that range, and the context the next symbol is decoded in.
#[derive(Clone, Copy, Default)]
#[repr(C, align(8))]
struct Slot {
    freq: u16,
    bias: u16,
    token: u16,
    /// The token's class already scaled to its place in the next symbol's context (times
    /// `side` on a grid), so that no multiply sits on the chain of table loads (each symbol's
    /// table waits on the one before).
    next: u8,
    /// The token's class, for the grid's look a row back (off that chain).
    class: u8,
}

/// Asks for the cache line at `p` without waiting for it: a load in its place holds up
/// retirement while it misses, which cost the decoder 5-10 %. Never faults, whatever `p` is.
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint that reads nothing the program sees and never faults,
        // whatever the address; SSE is in every x86-64 target's baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Reads one table's frequencies (token 0 up; empty for a table no symbol uses).
fn read_table(cur: &mut Cursor, bits: u8, out: &mut Vec<u16>) -> Result<(), String> {
    let t = cur.varint("rans token count")?;
    if t > TOKENS as u64 {
        return Err(format!("rans table of {t} tokens (at most {TOKENS})"));
    }
    let one = 1u64 << bits;
    let mut sum = 0u64;
    for _ in 0..t {
        let f = cur.varint("rans frequency")?;
        sum += f.min(one + 1);
        if sum > one {
            return Err(format!("rans frequencies sum past 2^{bits}"));
        }
        out.push(f as u16);
    }
    if t > 0 && sum != one {
        return Err(format!("rans frequencies sum to {sum}, not 2^{bits}"));
    }
    Ok(())
}

/// Fills context `c`'s slots of a segment's decoding table (2^bits slots a context, the
/// contexts of one slot side by side: `table[slot * contexts + c]`) from its frequencies; an
/// empty table decodes as one token that leaves the state as it is.
fn fill_slots(freqs: &[u16], bits: u8, side: u8, grid: bool, table: &mut [Slot], c: usize, contexts: usize) {
    // Plain index loops: the same walk as a step_by iterator taken a token at a time cost a
    // tenth of a decode where segments are short.
    if freqs.is_empty() {
        let mut j = c;
        for k in 0..1usize << bits {
            if let Some(s) = table.get_mut(j) {
                *s = Slot { freq: 1 << bits, bias: k as u16, token: 0, next: 0, class: 0 };
            }
            j += contexts;
        }
        return;
    }
    let scale = if grid { side } else { 1 };
    // The frequencies sum to 2^bits (`read_table`): the slots end with the table.
    let mut j = c;
    for (token, &f) in freqs.iter().enumerate() {
        let class = class(token_base(token).0, side) as u8;
        let next = class * scale;
        // One slot copied and its bias stepped: the compiler stores it whole.
        let mut e = Slot { freq: f, bias: 0, token: token as u16, next, class };
        for _ in 0..f {
            if let Some(s) = table.get_mut(j) {
                *s = e;
            }
            e.bias = e.bias.wrapping_add(1);
            j += contexts;
        }
    }
}

/// The 16-bit word at byte `w` of `words`, 0 past the end (`Decoder::finish` then says the
/// stream ran short).
#[inline(always)]
fn word_at(words: &[u8], w: usize) -> u32 {
    match words.get(w..w + 2) {
        Some(b) => u16::from_le_bytes([b[0], b[1]]) as u32,
        None => 0,
    }
}

pub fn decode(bytes: &[u8], n: usize, cfg: RansConfig) -> Result<Vec<u64>, String> {
    let mut d = Decoder::new(bytes, n, cfg)?;
    let mut out = vec![0u64; n];
    d.fill(&mut out);
    d.finish()?;
    Ok(out)
}

/// A block's values a batch at a time, for a consumer that takes them as they come (the
/// interpolation walk) and needs no block-sized buffer of them. `fill` never fails or panics,
/// whatever the bytes; `finish` says whether the stream decoded to its end, which is when the
/// values can be trusted.
pub struct Decoder<'a> {
    bits: u32,
    mask: u32,
    side: u8,
    row: usize,
    contexts: usize,
    seg: usize,
    segments: usize,
    n: usize,
    i: usize,
    /// Where the current segment's tables stop applying (`n` for the last).
    seg_end: usize,
    /// The segment whose tables are loaded next.
    k: usize,
    freqs: Vec<u16>,
    ends: Vec<usize>,
    /// The current segment's slots, the contexts of one slot side by side (`fill_slots`).
    table: Vec<Slot>,
    x: [u32; LANES],
    words: &'a [u8],
    w: usize,
    raw: BitReader<'a>,
    /// The symbol before's `Slot::next` and `Slot::class`.
    prev: usize,
    prev_class: usize,
    /// The classes of the last symbols (a power of two longer than `row`), for grid contexts.
    ring: Vec<u8>,
    /// More values were asked for than the block holds.
    over: bool,
}

impl<'a> Decoder<'a> {
    pub fn new(bytes: &'a [u8], n: usize, cfg: RansConfig) -> Result<Decoder<'a>, String> {
        let cfg = cfg.check()?;
        let seg_log2 = cfg.segment_log2 as u32;
        let segments = if n == 0 { 0 } else { ((n as u64 - 1) >> seg_log2) as usize + 1 };
        // Each table takes at least a byte: a damaged count is refused before anything is
        // reserved.
        let contexts = cfg.contexts as usize;
        if segments.saturating_mul(contexts) > bytes.len() {
            return Err(format!("{n} rans-coded values in segments of 2^{seg_log2} cannot fit in {} bytes", bytes.len()));
        }
        let mut cur = Cursor::new(bytes);
        // Frequencies of every table, read up front (the raw bits and words follow them); each
        // segment's slots are built when it is reached, into one buffer.
        let mut freqs: Vec<u16> = Vec::new();
        let mut ends: Vec<usize> = Vec::with_capacity(segments * contexts);
        for _ in 0..segments * contexts {
            read_table(&mut cur, cfg.prob_bits, &mut freqs)?;
            ends.push(freqs.len());
        }
        let raw_len = cur.varint("rans raw bits length")?;
        let raw = cur.bytes(raw_len, "rans raw bits")?;
        let mut x = [0u32; LANES];
        for s in x.iter_mut() {
            *s = cur.u32("rans state")?;
        }
        let words = cur.bytes(cur.remaining() as u64, "rans words")?;
        if words.len() % 2 != 0 {
            return Err("rans words of an odd byte count".into());
        }
        let one = 1usize << cfg.prob_bits;
        let row = cfg.row as usize;
        // A row as long as the block or longer is never looked back along: the ring is sized
        // by what can be read, not by the row a (possibly damaged) config names.
        let ring = if row > 0 && n > 0 { vec![0u8; (row.min(n) + 1).next_power_of_two()] } else { Vec::new() };
        Ok(Decoder {
            bits: cfg.prob_bits as u32,
            mask: (1u32 << cfg.prob_bits) - 1,
            side: cfg.side(),
            row,
            contexts,
            seg: usize::try_from(1u64 << seg_log2).unwrap_or(usize::MAX),
            segments,
            n,
            i: 0,
            seg_end: 0,
            k: 0,
            freqs,
            ends,
            table: vec![Slot::default(); contexts * one],
            x,
            words,
            w: 0,
            raw: BitReader { data: raw, pos: 0 },
            prev: 0,
            prev_class: 0,
            ring,
            over: false,
        })
    }

    /// Builds the next segment's slots, or notes that the block has no more values.
    #[cold]
    fn load_segment(&mut self) {
        if self.k >= self.segments {
            self.over = true;
            self.seg_end = usize::MAX;
            return;
        }
        for c in 0..self.contexts {
            let t = self.k * self.contexts + c;
            let start = if t == 0 { 0 } else { self.ends[t - 1] };
            fill_slots(&self.freqs[start..self.ends[t]], self.bits as u8, self.side, self.row > 0, &mut self.table, c, self.contexts);
        }
        self.k += 1;
        self.seg_end = self.i.saturating_add(self.seg).min(self.n);
    }

    /// Values still to come.
    pub fn remaining(&self) -> usize {
        self.n.saturating_sub(self.i)
    }

    /// The next `out.len()` values, a segment's part at a time.
    pub fn fill(&mut self, out: &mut [u64]) {
        let mut at = 0;
        while at < out.len() {
            if self.i == self.seg_end {
                self.load_segment();
            }
            if self.over {
                // Asked past the block's end: zeros, and `finish` says so.
                out[at..].fill(0);
                self.i = self.i.saturating_add(out.len() - at);
                return;
            }
            let m = (self.seg_end - self.i).min(out.len() - at);
            let part = &mut out[at..at + m];
            // Each renormalisation reads a word: the block's rate so far picks the loop.
            let branchless = self.w / 2 * RENORM_DEN > self.i * RENORM_NUM;
            match (self.row == 0, branchless) {
                (true, false) => part.iter_mut().for_each(|o| *o = self.step::<false, false>()),
                (true, true) => part.iter_mut().for_each(|o| *o = self.step::<false, true>()),
                (false, false) => part.iter_mut().for_each(|o| *o = self.step::<true, false>()),
                (false, true) => part.iter_mut().for_each(|o| *o = self.step::<true, true>()),
            }
            at += m;
        }
    }

    /// One value inside the current segment; `GRID`: whether contexts look a row back.
    #[inline(always)]
    fn step<const GRID: bool, const BRANCHLESS: bool>(&mut self) -> u64 {
        let i = self.i;
        self.i += 1;
        let c = if GRID {
            let m = self.ring.len().wrapping_sub(1);
            let up = if i >= self.row { self.ring.get((i - self.row) & m).copied().unwrap_or(0) as usize } else { self.prev_class };
            self.prev + up
        } else {
            self.prev
        };
        let s = &mut self.x[i % LANES];
        let e = self.table.get((*s & self.mask) as usize * self.contexts + c).copied().unwrap_or_default();
        // freq <= 2^bits and s >> bits < 2^(32 - bits): no overflow.
        let v = e.freq as u32 * (*s >> self.bits) + e.bias as u32;
        *s = if BRANCHLESS {
            // The next word is read whether the state takes it or not, and taken without a
            // branch.
            let (renorm, word) = (v < L, word_at(self.words, self.w));
            self.w += 2 * renorm as usize;
            if renorm {
                (v << 16) | word
            } else {
                v
            }
        } else if v < L {
            let word = word_at(self.words, self.w);
            self.w += 2;
            (v << 16) | word
        } else {
            v
        };
        // The lane's next symbol, four on, reads one of the slots beside this state's: asking
        // for them now, while the symbols between decode, takes a cache miss off the chain of
        // context lookups (each symbol's table depends on the one before).
        prefetch(self.table.as_ptr().wrapping_add((*s & self.mask) as usize * self.contexts));
        self.prev = e.next as usize;
        if GRID {
            self.prev_class = e.class as usize;
            let m = self.ring.len().wrapping_sub(1);
            if let Some(r) = self.ring.get_mut(i & m) {
                *r = e.class;
            }
        }
        let t = e.token as usize;
        if t < DIRECT as usize {
            t as u64
        } else {
            let (base, n) = token_base(t);
            base | self.raw.get(n)
        }
    }

    /// Whether every value was read and the stream ended where it should.
    pub fn finish(&self) -> Result<(), String> {
        if self.over || self.i != self.n {
            return Err(format!("{} of {} rans-coded values read", self.i, self.n));
        }
        if self.w != self.words.len() || self.x.iter().any(|&s| s != L) {
            return Err("rans stream does not decode to its end (damaged)".into());
        }
        if self.raw.overrun() {
            return Err("rans raw bits end early".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::xorshift;

    #[test]
    fn reciprocal_division_is_exact() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        // Frequency 1's quotient is x - 1 by design (below).
        for f in 2..=(1u32 << PROB_BITS_RANGE.end()) {
            let e = EncSlot::new(f, 0, *PROB_BITS_RANGE.end() as u32);
            let q = u32::MAX / f;
            let edges = [0, 1, f - 1, f, f + 1, q * f - 1, q * f, u32::MAX - 1, u32::MAX];
            let random: Vec<u32> = (0..200).map(|_| next() as u32).collect();
            for x in edges.into_iter().chain(random) {
                assert_eq!(e.quotient(x), x / f, "{x} / {f}");
            }
        }
        // A slot's state is the textbook one, (x / freq) << bits + x % freq + cum, for every
        // state that codes without putting out a word (1 <= x < freq << (32 - bits)), and it
        // says to put one out past that: freq 1, 2, odd, a power of two, all of the table.
        for bits in [10u32, 12, 14] {
            let top = 1u32 << bits;
            for (f, cum) in [(1, 0), (1, top - 1), (2, 5), (3, 100), (1 << (bits - 3), 7), (top - 1, 1), (top, 0)] {
                let e = EncSlot::new(f, cum, bits);
                let limit = (f as u64) << (32 - bits);
                let random: Vec<u64> = (0..500).map(|_| next() % limit).collect();
                for x in [1, 2, f as u64, limit - 1].into_iter().chain(random).filter(|&x| x >= 1) {
                    let x32 = x as u32;
                    let want = ((x / f as u64) << bits) + x % f as u64 + cum as u64;
                    assert!(want < 1 << 32 && !e.over(x32, 32 - bits), "{x} under {f} of 2^{bits}");
                    assert_eq!(e.put(x32) as u64, want, "{x} under {f} (from {cum}) of 2^{bits}");
                }
                for x in [limit, limit + 1, u32::MAX as u64].into_iter().filter(|&x| (limit..=u32::MAX as u64).contains(&x)) {
                    assert!(e.over(x as u32, 32 - bits), "{x} under {f} of 2^{bits}");
                }
            }
        }
    }

    #[test]
    fn one_joint_count_gives_both_layouts_counts() {
        // `price` counts the six- and 16-context layouts in one pass; each must be the count
        // of its own contexts, for every row (1, inside a segment, past one) and block length.
        let mut r = xorshift(0x9e37_79b9_7f4a_7c15);
        for (n, row) in [(2usize, 1u32), (40_000, 1), (40_000, 2), (40_000, 145), (70_000, 20_000), (16_385, 16_384)] {
            // Bit lengths 0-12 (classes past both caps), tokens from them.
            let values: Vec<u64> = (0..n).map(|_| r() >> (52 + r() % 13)).collect();
            let tokens = tokens(&values);
            let width = width(&tokens.toks);
            let cfg = |contexts, row| RansConfig { prob_bits: PROB_BITS, segment_log2: MIN_SEGMENT_LOG2, contexts, row };
            let joint = counts(&tokens.toks, &joint_contexts(&tokens.lens, row as usize), JOINT, MIN_SEGMENT_LOG2, width);
            let (six, sixteen) = split_joint(&joint, width);
            let direct = |c| counts(&tokens.toks, &contexts(&tokens.lens, c), c.contexts, MIN_SEGMENT_LOG2, width);
            assert_eq!(six, direct(cfg(6, 0)), "n={n} row={row}");
            assert_eq!(sixteen, direct(cfg(16, row)), "n={n} row={row}");
        }
    }

    #[test]
    fn tokens_cover_every_value() {
        for u in (0..5000u64).chain((0..64).flat_map(|k| [1u64 << k, (1u64 << k) - 1, (1u64 << k) + 1])).chain([u64::MAX]) {
            let (t, raw) = token(u);
            assert!(t < TOKENS, "{u}");
            let (base, n) = token_base(t);
            assert_eq!(n, raw, "{u}");
            assert_eq!(base | (u & ((1u64 << raw) - 1)), u, "{u}");
            assert_eq!(TOKEN_LEN[t] as u32, 64 - u.leading_zeros(), "{u}");
        }
        // A block's tokens and lengths, in either twin.
        let values: Vec<u64> = (0..5000u64).chain((0..64).map(|k| 1u64 << k)).chain([u64::MAX]).collect();
        for tk in [tokens(&values), crate::codec::cpu::baseline(|| tokens(&values))] {
            assert_eq!(tk.toks, values.iter().map(|&u| token(u).0 as u16).collect::<Vec<_>>());
            assert_eq!(tk.lens, tk.toks.iter().map(|&t| TOKEN_LEN[t as usize]).collect::<Vec<_>>());
            assert_eq!(tk.raw_bits, values.iter().map(|&u| token(u).1 as u64).sum::<u64>());
        }
    }

    #[test]
    fn round_trips_extremes_under_every_segment_length() {
        let mut r = xorshift(0x9e37_79b9_7f4a_7c15);
        let cases: Vec<Vec<u64>> = vec![
            vec![],
            vec![0],
            vec![u64::MAX],
            vec![7; 10_000],
            vec![u64::MAX, 0, 1, u64::MAX - 1, 1 << 63, 2, 3],
            (0..64).map(|k| 1u64 << k).chain((0..64).map(|k| (1u64 << k) - 1)).collect(),
            (0..30_000).map(|_| r()).collect(),
            (0..30_000).map(|_| r() % 1000).collect(),
            (0..70_000).map(|i| if i < 40_000 { r() % 3 } else { r() % 300 }).collect(),
        ];
        for v in &cases {
            for segment_log2 in [10, 12, 14, 40] {
                for (prob_bits, contexts, row) in [(10, 1, 0), (12, 6, 0), (14, 16, 0), (12, 16, 7), (12, 4, 1), (10, 9, 100_000)] {
                    if segment_log2 < prob_bits {
                        continue;
                    }
                    let cfg = RansConfig { prob_bits, segment_log2, contexts, row };
                    let b = encode(v, cfg);
                    assert_eq!(&decode(&b, v.len(), cfg).unwrap(), v, "{cfg:?}");
                }
            }
            let cfg = choose(v, Some(9));
            assert_eq!(&decode(&encode(v, cfg), v.len(), cfg).unwrap(), v, "{cfg:?}");
            // Coding with the search's own contexts and counts writes what coding afresh does.
            for row in [Some(9), None] {
                let (chosen, b) = encode_chosen(v, row);
                assert_eq!(chosen, choose(v, row));
                assert_eq!(b, encode(v, chosen), "{chosen:?}");
            }
        }
    }

    #[test]
    fn the_tuned_twins_code_what_the_baseline_does() {
        // `tokens`, `raw_bits` and `code` run compiled for this CPU (`cpu::tuned`); their `_in`
        // bodies, called here, are the baseline's instructions.
        let mut r = xorshift(0x51_7cc1_b727_220a);
        let cases: Vec<Vec<u64>> = vec![
            (0..64).map(|k| 1u64 << k).chain((0..64).map(|k| (1u64 << k) - 1)).chain([0, u64::MAX]).collect(),
            (0..30_000).map(|_| r() >> (r() % 64)).collect(),
            (0..30_000).map(|_| r() % 40).collect(),
        ];
        for v in &cases {
            let (t, base) = (tokens(v), tokens_in(v));
            assert_eq!((&t.toks, &t.lens, t.raw_bits), (&base.toks, &base.lens, base.raw_bits));
            let raw = raw_bits(v, &t.lens, t.raw_bits);
            assert_eq!(raw, raw_bits_in(v, &t.lens, t.raw_bits));
            let chosen = Chosen::new(v, Some(9));
            let p = &chosen.priced;
            assert_eq!(code(&t, &raw, &p.ctx, p.cfg, &p.counts, p.width), code_in(&t, &raw, &p.ctx, p.cfg, &p.counts, p.width));
        }
    }

    #[test]
    fn coarser_tables_where_they_cost_less_and_the_price_stays_under_the_coding() {
        // Short blocks (a one-slice chunk's) pay for their tables' bytes and take coarser
        // ones; a long block of many tokens keeps 2^12 slots. Either way the price
        // `ints::encode_omitting` compares `ac` with is under the bytes coded.
        let mut r = xorshift(7);
        let mut resolutions = std::collections::BTreeSet::new();
        for (n, spread, row) in [(20_000, 9, Some(100)), (30_000, 40, None), (1 << 20, 600, None), (40_000, 2000, Some(200))] {
            let v: Vec<u64> = (0..n)
                .map(|_| {
                    let g = (0..3).map(|_| r() % spread).sum::<u64>() as i64 - 3 * (spread as i64 - 1) / 2;
                    super::super::stages::zigzag(g)
                })
                .collect();
            let chosen = Chosen::new(&v, row);
            let coded = chosen.code();
            assert!(chosen.bytes <= coded.len() as f64, "{n} values: priced {} over {} coded", chosen.bytes, coded.len());
            assert_eq!(coded, encode(&v, chosen.cfg()));
            assert_eq!(decode(&coded, n, chosen.cfg()).unwrap(), v);
            resolutions.insert(chosen.cfg().prob_bits);
        }
        assert!(resolutions.len() > 1 && resolutions.contains(&PROB_BITS), "{resolutions:?}");
    }

    #[test]
    fn reaches_the_order0_entropy_and_follows_a_drift() {
        let mut r = xorshift(42);
        // Residuals whose spread grows along the block, as a walk's levels do.
        let v: Vec<u64> = (0..1 << 18)
            .map(|i| {
                let s = if i < 1 << 16 { 40 } else { 3 };
                let g = (0..4).map(|_| r() % s).sum::<u64>() as i64 - 2 * (s as i64 - 1);
                super::super::stages::zigzag(g)
            })
            .collect();
        let cfg = choose(&v, None);
        let got = encode(&v, cfg).len() as f64;
        let h = |s: &[u64]| {
            let mut c = std::collections::HashMap::new();
            s.iter().for_each(|&x| *c.entry(x).or_insert(0usize) += 1);
            let n = s.len() as f64;
            c.values().map(|&k| -(k as f64) * (k as f64 / n).log2()).sum::<f64>() / 8.0
        };
        let split = h(&v[..1 << 16]) + h(&v[1 << 16..]);
        assert!(cfg.segment_log2 <= 16, "{cfg:?}");
        assert!(got < split * 1.02, "{got} bytes against {split:.0} of entropy by part");
        assert!(got < h(&v) * 0.95, "segments beat one table");
    }

    #[test]
    fn a_constant_block_of_millions_costs_its_tables() {
        let v = vec![0u64; 4_000_000];
        let cfg = choose(&v, None);
        let b = encode(&v, cfg);
        assert!(b.len() < 64, "{} bytes", b.len());
        assert_eq!(decode(&b, v.len(), cfg).unwrap(), v);
    }

    #[test]
    #[should_panic(expected = "rans tables for")]
    fn an_unchecked_segment_too_short_for_the_coding_blocks_is_refused() {
        // `encode` is public and so are a configuration's fields: a segment of two symbols
        // (no checked configuration has one) must stop at the coder's assert, not write past
        // its buffer. Rare tokens, so that nearly every symbol puts out a word.
        let values: Vec<u64> = (0..64u64).map(|i| i * 0x9e37_79b9).collect();
        encode(&values, RansConfig { prob_bits: PROB_BITS, segment_log2: 1, contexts: 1, row: 0 });
    }

    #[test]
    fn damaged_or_short_input_is_refused_or_decodes_without_panicking() {
        let mut r = xorshift(7);
        let v: Vec<u64> = (0..20_000).map(|_| r() % 200).collect();
        let cfg = RansConfig { prob_bits: 12, segment_log2: 12, contexts: 6, row: 0 };
        let b = encode(&v, cfg);
        for cut in [0, 1, 3, b.len() / 2, b.len() - 1] {
            assert!(decode(&b[..cut], v.len(), cfg).is_err(), "cut at {cut}");
        }
        for i in (0..b.len()).step_by(7) {
            for flip in [1u8, 0x80] {
                let mut bad = b.clone();
                bad[i] ^= flip;
                let _ = decode(&bad, v.len(), cfg);
            }
        }
        assert!(decode(&b, v.len() + 1, cfg).is_err());
        assert!(decode(&[], 1 << 40, cfg).is_err());
        assert!(decode(&b, v.len(), RansConfig { prob_bits: 15, segment_log2: 12, contexts: 6, row: 0 }).is_err());
        assert!(decode(&b, v.len(), RansConfig { prob_bits: 12, segment_log2: 12, contexts: 6, row: 3 }).is_err(), "grid contexts must be k * k");
        assert!(decode(&b, v.len(), RansConfig { prob_bits: 12, segment_log2: 11, contexts: 6, row: 0 }).is_err(), "segments shorter than a table");
    }
}
