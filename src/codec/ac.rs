//! The `ac` entropy stage: adaptive binary arithmetic coding of integer codes, built to reach
//! their order-0 entropy (and below it where neighbours predict) on blocks of a few thousand.
//!
//! Each unsigned symbol `u` is split into its bucket `b` (its bit length, 0..=64) and the `b - 1`
//! bits below its leading one. The bucket is coded as 7 binary decisions down a tree (an adaptive
//! distribution over the 65 buckets) under a context chosen by `Context`; the top `tree_bits`
//! bits below the leading one go down a tree of their own per bucket (an adaptive distribution
//! over 2^tree_bits sub-bins of each octave); the bits below those have one adaptive probability
//! per bucket and position. A column's distribution, whatever its shape, is so learnt to within
//! a sub-bin, which is what the byte planes of `shuffle + zstd` cannot do.
//!
//! Every probability adapts at rate 1/(n + 2) after n observations (Laplace's estimate, so a
//! context learns fast from nothing), down to 1/(`adapt` + 2), the window over which it then
//! tracks a drifting distribution. The binary coder is `rc`'s (LZMA's carry-less range coder).
//! The format spec (baler-format.md, "ac") defines all of it bit for bit.

use super::rc::{Decoder, Encoder};

const P_BITS: u32 = 15;
const ONE: i32 = 1 << P_BITS;
/// Probabilities stay in [P_MIN, ONE - P_MIN] so neither outcome's range ever shrinks to 0.
const P_MIN: i32 = 31;
const BUCKET_BITS: u32 = 7;
const BUCKETS: usize = 65;
/// The short bucket tree (`AcConfig::short_buckets`): its depth, and its escape leaf.
const SHORT_BITS: u32 = 4;
const ESCAPE: usize = (1 << SHORT_BITS) - 1;
/// Neighbour buckets are capped here in the two-neighbour context.
const NEIGHBOUR_CAP: usize = 15;
pub const MAX_TREE_BITS: u8 = 10;
/// The longest head (`AcConfig::head`): its decisions sit at nodes 16.. of the context's 128,
/// after the short tree's 1..=15.
pub const MAX_HEAD: u8 = ESCAPE as u8;
const HEAD_NODE: usize = 1 << SHORT_BITS;
/// The probability of a 0 above which the decoder takes a decision as a predicted branch.
const SKEWED: u16 = (ONE / 8 * 7) as u16;

/// What the bucket's distribution is conditioned on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// One distribution: independent rows (event tables).
    None,
    /// The previous symbol's bucket: ordered rows, runs.
    Previous,
    /// The previous symbol's and the one `row` back's buckets (capped at 15): a grid's residuals.
    Grid(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcConfig {
    pub tree_bits: u8,
    pub context: Context,
    /// The count at which a probability's adaptation rate stops slowing (rate 1/(adapt + 2)).
    pub adapt: u16,
    /// Before each symbol after the first, one decision: is it the previous symbol again? Pays
    /// on tables whose rows repeat values (combinatorial ntuples list each object in several
    /// rows), where zstd's matches would otherwise win.
    pub repeats: bool,
    /// With repeats: the variable whose codes condition each repeat decision (did its code
    /// repeat at this element?). One object's columns repeat together: px, py, pz and E of a
    /// muon listed again in the next row.
    pub repeat_side: Option<u32>,
    /// The bucket goes down a 4-level tree whose leaves are buckets 0..=14 and an escape (15 and
    /// above, then coded down the full 7-level tree). Residual buckets of fields and tables sit
    /// far below 15, so each symbol takes 4 binary decisions for its bucket instead of 7: the
    /// three top ones were nearly certain anyway (they cost bits almost nothing), but each costs
    /// a full step of the decoder's serial chain.
    pub short_buckets: bool,
    /// With the short tree: before it, up to `head` decisions "is the bucket j?" for j = 0, 1,
    /// ... (each with its own probability in the context), the short tree coding only buckets
    /// from `head` up. A block whose residuals are mostly 0 and 1 (a loose bound) so takes one
    /// or two decisions a symbol instead of four, and the decoder's time is its decisions, one
    /// after another. 0: none.
    pub head: u8,
}

/// `65536 / (n + 2)` for the counts below 1024.
const RATES: [u16; 1024] = {
    let mut t = [0u16; 1024];
    let mut n = 0;
    while n < 1024 {
        t[n] = (65536 / (n as u32 + 2)) as u16;
        n += 1;
    }
    t
};

#[derive(Clone, Copy)]
struct Bit {
    /// P(bit = 0) in units of 2^-15.
    p: u16,
    n: u16,
}

impl Bit {
    const NEW: Bit = Bit { p: (ONE / 2) as u16, n: 0 };

    #[inline]
    fn bound(self, range: u32) -> u32 {
        (range >> P_BITS) * self.p as u32
    }

    /// The rate of this update, and the count stepped.
    #[inline(always)]
    fn rate(&mut self, adapt: u16) -> i32 {
        // A division per decision would dominate the coder's time: the usual counts come
        // from a table.
        let rate = match RATES.get(self.n as usize) {
            Some(&r) => r as i32,
            None => (65536 / (self.n as u32 + 2)) as i32,
        };
        if self.n < adapt {
            self.n += 1;
        }
        rate
    }

    #[inline]
    fn update(&mut self, bit: bool, adapt: u16) {
        let rate = self.rate(adapt);
        let p = self.p as i32;
        let target = if bit { 0 } else { ONE };
        // (target - p) * rate < 2^15 * 2^15: no overflow; >> on i32 floors (the spec says so).
        self.p = (p + (((target - p) * rate) >> 16)).clamp(P_MIN, ONE - P_MIN) as u16;
    }

    /// `update` for a decision the decoder took as a branch (`Decoder::get_skewed`), one arm
    /// per bit: a 0 only raises p and a 1 only lowers it, so each arm has one side of the
    /// clamp, and for a 1 the floor of -x is -ceil(x). The same p as `update`, with a shorter
    /// chain from one p to the next, which is what a run of decisions on one probability
    /// waits on.
    #[inline(always)]
    fn update_taken(&mut self, bit: bool, adapt: u16) {
        let rate = self.rate(adapt);
        self.step_taken(bit, rate);
    }

    /// `update_taken`'s step of p at `rate`, the count left as it is.
    #[inline(always)]
    fn step_taken(&mut self, bit: bool, rate: i32) {
        let p = self.p as i32;
        self.p = if bit { (p - ((p * rate + 0xFFFF) >> 16)).max(P_MIN) } else { (p + (((ONE - p) * rate) >> 16)).min(ONE - P_MIN) } as u16;
    }
}

/// The `depth` bits of `v`, highest first, down a binary tree whose node `k` (the root 1, its
/// children 2k and 2k + 1) decides with `probs[k]`: the value the decisions took.
#[inline(always)]
fn descend(probs: &mut [Bit], depth: u32, v: usize, decide: &mut impl FnMut(&mut Bit, bool) -> bool) -> usize {
    let mut node = 1usize;
    for k in (0..depth).rev() {
        let bit = decide(&mut probs[node], (v >> k) & 1 == 1);
        node = node * 2 + bit as usize;
    }
    node - (1 << depth)
}

struct Model {
    cfg: AcConfig,
    buckets: Vec<Bit>,
    tree: Vec<Bit>,
    low: Vec<Bit>,
    /// Buckets coded so far, for the contexts.
    seen: Vec<u8>,
    /// The repeat decision's probability, by whether the previous symbol was a repeat and
    /// whether the side variable's code repeated here.
    repeat: [Bit; 4],
    /// The full bucket tree after the short tree's escape (one distribution, no context).
    escape: [Bit; 1 << BUCKET_BITS],
}

impl Model {
    fn new(cfg: AcConfig, n: usize) -> Model {
        // The head's nodes follow the short tree's 15; under the full tree they would be its.
        debug_assert!(cfg.head == 0 || cfg.short_buckets, "{cfg:?}");
        let contexts = match cfg.context {
            Context::None => 1,
            Context::Previous => BUCKETS,
            Context::Grid(_) => (NEIGHBOUR_CAP + 1) * (NEIGHBOUR_CAP + 1),
        };
        Model {
            cfg,
            buckets: vec![Bit::NEW; contexts << BUCKET_BITS],
            tree: vec![Bit::NEW; BUCKETS << cfg.tree_bits],
            low: vec![Bit::NEW; BUCKETS * 64],
            seen: Vec::with_capacity(if cfg.context == Context::None { 0 } else { n }),
            repeat: [Bit::NEW; 4],
            escape: [Bit::NEW; 1 << BUCKET_BITS],
        }
    }

    #[inline]
    fn context(&self, i: usize) -> usize {
        match self.cfg.context {
            Context::None => 0,
            Context::Previous => if i > 0 { self.seen[i - 1] as usize } else { 0 },
            Context::Grid(row) => {
                let a = if i > 0 { self.seen[i - 1] as usize } else { 0 };
                let row = row.max(1) as usize;
                let c = if i >= row { self.seen[i - row] as usize } else { a };
                a.min(NEIGHBOUR_CAP) * (NEIGHBOUR_CAP + 1) + c.min(NEIGHBOUR_CAP)
            }
        }
    }

    /// `context(i)` where the symbols from `seen`'s end to `i` (one at least) are 0, not yet
    /// in `seen`: a run of 0 is pushed once it ends.
    #[inline(always)]
    fn context_after_zeros(&self, i: usize) -> usize {
        match self.cfg.context {
            Context::None | Context::Previous => 0,
            Context::Grid(row) => {
                let row = row.max(1) as usize;
                let c = if i >= row { self.seen.get(i - row).map_or(0, |&b| b as usize) } else { 0 };
                c.min(NEIGHBOUR_CAP)
            }
        }
    }

    /// Walks a symbol's decisions in context `ctx` (`context`) from its head decision `from`
    /// on (the caller took the first `from`, each "the bucket is above j"): `decide(bit
    /// probability, the bit when encoding)` returns the bit taken. Encoder and decoder share
    /// this walk, so they cannot disagree on it. None: a bucket beyond 64, which only a
    /// damaged stream decodes to.
    #[inline(always)]
    fn walk_from(&mut self, ctx: usize, from: usize, u: u64, mut decide: impl FnMut(&mut Bit, bool) -> bool) -> Option<u64> {
        let b = (64 - u.leading_zeros()) as usize;
        let head = (from..self.cfg.head as usize).find(|&j| !decide(&mut self.buckets[ctx + HEAD_NODE + j], b > j));
        let b = if let Some(j) = head {
            j
        } else if self.cfg.short_buckets {
            let leaf = descend(&mut self.buckets[ctx..], SHORT_BITS, b.min(ESCAPE), &mut decide);
            let b = if leaf < ESCAPE {
                leaf
            } else {
                // Below the escape only a damaged stream decodes: the encoder escapes 15 and up.
                let b = descend(&mut self.escape, BUCKET_BITS, b, &mut decide);
                if b < ESCAPE {
                    return None;
                }
                b
            };
            // Below the head only a damaged stream decodes: the encoder's bucket got past it.
            if b < self.cfg.head as usize {
                return None;
            }
            b
        } else {
            descend(&mut self.buckets[ctx..], BUCKET_BITS, b, &mut decide)
        };
        if b > 64 {
            return None;
        }
        if self.cfg.context != Context::None {
            self.seen.push(b as u8);
        }
        if b < 2 {
            return Some(b as u64);
        }
        let m = b - 1;
        let t = m.min(self.cfg.tree_bits as usize);
        let tree = b << self.cfg.tree_bits;
        let mut v = 1u64;
        let mut node = 1usize;
        for j in 0..t {
            let bit = decide(&mut self.tree[tree + node], (u >> (m - 1 - j)) & 1 == 1);
            node = node * 2 + bit as usize;
            v = v * 2 + bit as u64;
        }
        for pos in (0..m - t).rev() {
            let bit = decide(&mut self.low[b * 64 + pos], (u >> pos) & 1 == 1);
            v = v * 2 + bit as u64;
        }
        Some(v)
    }

    /// Codes symbol `i`'s repeat decision (when the configuration has them): true when the
    /// symbol is the previous one again and nothing more is coded for it.
    #[inline]
    fn repeat(&mut self, i: usize, was: &mut bool, side: Option<&[i64]>, decide: impl FnOnce(&mut Bit) -> bool) -> bool {
        if !self.cfg.repeats || i == 0 {
            return false;
        }
        let along = side.is_some_and(|s| s[i] == s[i - 1]);
        let is = decide(&mut self.repeat[*was as usize + 2 * along as usize]);
        *was = is;
        if is && self.cfg.context != Context::None {
            let b = self.seen[i - 1];
            self.seen.push(b);
        }
        is
    }
}

/// The head (`AcConfig::head`) under which the short tree codes the buckets of `values` in the
/// fewest decisions: bucket b below the head takes b + 1, the rest the head's and the tree's 4.
/// Decisions are what the decoder's time goes to; their bits hardly change with the tree's
/// shape (each is coded at its adaptive probability either way).
pub fn head(values: impl Iterator<Item = u64>) -> u8 {
    super::cpu::tuned(#[inline(always)] || head_in(values))
}

#[inline(always)]
fn head_in(values: impl Iterator<Item = u64>) -> u8 {
    // Four tables by the symbol's place, summed after: most symbols of a loose bound fall in
    // bucket 0, and one table's counter would take them one store after another.
    let mut by_lane = [[0u64; ESCAPE + 1]; 4];
    values.enumerate().for_each(|(i, u)| by_lane[i & 3][((64 - u.leading_zeros()) as usize).min(ESCAPE)] += 1);
    let count: [u64; ESCAPE + 1] = std::array::from_fn(|b| by_lane.iter().map(|lane| lane[b]).sum());
    let mut above: u64 = count.iter().sum();
    let mut below = 0u64;
    let mut best = (4 * above, 0u8);
    for k in 0..MAX_HEAD as usize {
        // One more head decision: bucket k leaves after k + 1, every bucket above pays one more.
        below += count[k] * (k as u64 + 1);
        above -= count[k];
        let cost = below + above * (k as u64 + 5);
        if cost < best.0 {
            best = (cost, k as u8 + 1);
        }
    }
    best.1
}

/// `side`: the codes of the variable `cfg.repeat_side` names (as long as `values`).
pub fn encode(values: &[u64], cfg: AcConfig, side: Option<&[i64]>) -> Vec<u8> {
    let mut m = Model::new(cfg, values.len());
    let mut e = Encoder::new();
    let adapt = cfg.adapt;
    let mut was = false;
    let mut i = 0;
    while i < values.len() {
        let u = values[i];
        let is = i > 0 && values[i - 1] == u;
        if m.repeat(i, &mut was, side, |p| {
            e.put(p.bound(e.range()), is);
            p.update(is, adapt);
            is
        }) {
            i += 1;
            continue;
        }
        let ctx = m.context(i) << BUCKET_BITS;
        // The decoder's runs of 0 (`decode`), coded in a loop of their own for the same
        // reason: one probability, in a register, for the run.
        if u == 0 && cfg.head > 0 && !cfg.repeats && m.buckets[ctx + HEAD_NODE].p > SKEWED {
            let k = ctx + HEAD_NODE;
            let mut p = m.buckets[k];
            loop {
                e.put(p.bound(e.range()), false);
                p.update_taken(false, adapt);
                i += 1;
                // (A 0 only raises p: it stays above SKEWED for the run.)
                if i == values.len() || values[i] != 0 || m.context_after_zeros(i) << BUCKET_BITS != ctx {
                    break;
                }
            }
            m.buckets[k] = p;
            if cfg.context != Context::None {
                m.seen.resize(i, 0);
            }
            continue;
        }
        m.walk_from(ctx, 0, u, |p, bit| {
            e.put(p.bound(e.range()), bit);
            p.update(bit, adapt);
            bit
        });
        i += 1;
    }
    e.finish()
}

/// A run of 0s in one context, as `decode` reads it: from symbol `i`, the decision "is the
/// bucket above 0?" at `p`, taken as a predicted branch, while it says no and the symbol after
/// each 0 keeps the context (`same`); `p`, above `SKEWED` at the start, only rises on a 0, so
/// it needs no check after one (nor the encoder's loop). Where the run stopped, and
/// whether that symbol's decision said "above" (its walk then goes on from its second). Its
/// own function, so the decoder's state and `p` stay in registers (inlined into `decode`, the
/// loop kept its count and the context on the stack: 45 instructions a symbol, callgrind).
#[inline(never)]
fn zeros(d: &mut Decoder, p: &mut Bit, adapt: u16, i: usize, n: usize, same: impl Fn(usize) -> bool) -> (usize, bool) {
    // On copies, which the loop keeps in registers: through the references it stored the
    // range and p every symbol.
    let (mut dc, mut pc) = (*d, *p);
    let stop = zeros_in(&mut dc, &mut pc, adapt, i, n, same);
    (*d, *p) = (dc, pc);
    stop
}

#[inline(always)]
fn zeros_in(d: &mut Decoder, p: &mut Bit, adapt: u16, i: usize, n: usize, same: impl Fn(usize) -> bool) -> (usize, bool) {
    // Until `p` has seen `adapt` decisions each one slows its rate; after, the rate is fixed,
    // and the loop takes it from a register.
    let (i, stop) = zeros_while(d, p, i, n, &same, |p| p.n < adapt, |p, above| p.update_taken(above, adapt));
    if let Some(above) = stop {
        return (i, above);
    }
    let rate = Bit { p: 0, n: adapt }.rate(adapt);
    // Near 1 a 0 moves p by (ONE - p) * rate / 2^16, rounded down: by nothing once that is
    // under 1, and p stays where it is for the rest of the run. The loop after leaves out the
    // update, whose multiply was the slower of its two chains (the range's and p's, 4 and 8
    // cycles a symbol): a loose bound's runs mostly spend their time there.
    let (mut i, stop) = zeros_while(d, p, i, n, &same, |p| (ONE - p.p as i32) * rate >= 1 << 16, |p, above| p.step_taken(above, rate));
    if let Some(above) = stop {
        return (i, above);
    }
    let bound = p.p as u32;
    loop {
        if d.get_skewed((d.range() >> P_BITS) * bound) {
            p.step_taken(true, rate);
            return (i, true);
        }
        i += 1;
        if i == n || !same(i) {
            return (i, false);
        }
    }
}

/// `zeros_in`'s decisions while `go(p)` holds, each followed by `update`: where the run
/// stopped and whether at an "above" (Some), or where `go` ended it (None).
#[inline(always)]
fn zeros_while(
    d: &mut Decoder,
    p: &mut Bit,
    mut i: usize,
    n: usize,
    same: &impl Fn(usize) -> bool,
    go: impl Fn(&Bit) -> bool,
    update: impl Fn(&mut Bit, bool),
) -> (usize, Option<bool>) {
    while go(p) {
        let above = d.get_skewed(p.bound(d.range()));
        update(p, above);
        if above {
            return (i, Some(true));
        }
        i += 1;
        if i == n || !same(i) {
            return (i, Some(false));
        }
    }
    (i, None)
}

/// The decoder's `decide` for a walk: each decision read from `d` at its probability, which
/// then adapts.
#[inline(always)]
fn decisions<'d, 'a>(d: &'d mut Decoder<'a>, adapt: u16) -> impl FnMut(&mut Bit, bool) -> bool + use<'d, 'a> {
    move |p, _| {
        let bit = d.get(p.bound(d.range()));
        p.update(bit, adapt);
        bit
    }
}

pub fn decode(bytes: &[u8], n: usize, cfg: AcConfig, side: Option<&[i64]>) -> Result<Vec<u64>, String> {
    if side.is_some_and(|s| s.len() != n) {
        return Err(format!("repeat side variable of {} values for {n}", side.map_or(0, |s| s.len())));
    }
    fits(bytes, n, cfg)?;
    let mut m = Model::new(cfg, n);
    let mut d = Decoder::new(bytes);
    let mut out = vec![0u64; n];
    decode_range(&mut m, &mut d, 0..n, &mut out, side, &mut Resume::default())?;
    // Runs of 0 are not checked symbol by symbol: the read position only grows, so a stream
    // that ran out in one is refused here as it would have been there.
    if d.overrun() > 4 {
        return Err(ENDS_EARLY.into());
    }
    Ok(out)
}

/// Refuses a count of `n` symbols that `bytes` cannot hold, before anything is reserved for them.
fn fits(bytes: &[u8], n: usize, cfg: AcConfig) -> Result<(), String> {
    // A decision costs at least -log2(1 - 31/32768) = 0.00137 bits, and a symbol at least 7
    // of them (4 down the short bucket tree, 1 for a repeat or a head's first): at most ~840
    // (~1460, ~5900) symbols a byte. A count beyond that is damage.
    let per_byte = if cfg.repeats || cfg.head > 0 {
        8192
    } else if cfg.short_buckets {
        2048
    } else {
        1024
    };
    if n / per_byte > bytes.len() + 16 {
        return Err(format!("{n} arithmetic-coded values cannot fit in {} bytes", bytes.len()));
    }
    Ok(())
}

/// What a walk of repeat decisions carries from one range of symbols to the next: whether the
/// last was a repeat, and its value.
#[derive(Default, Clone, Copy)]
struct Resume {
    was: bool,
    last: u64,
}

/// Symbols `range` of the block, into `out` (as long as the range). The model and the decoder hold all the
/// state a symbol's decoding reads (buckets seen, probabilities, the coder's), so a block
/// decoded in ranges takes the same decisions in the same order as one decoded at once: only
/// where a run of 0 pauses differs, and the next range picks it up from the same probability.
fn decode_range(m: &mut Model, d: &mut Decoder, range: std::ops::Range<usize>, out: &mut [u64], side: Option<&[i64]>, at: &mut Resume) -> Result<(), String> {
    if m.cfg.head > 0 && !m.cfg.repeats {
        // The loop fields' and tables' blocks take, compiled for each context.
        match m.cfg.context {
            Context::None => decode_headed(m, d, range, out, |_, _| 0),
            Context::Previous => decode_headed(m, d, range, out, |m, _| m.seen.last().map_or(0, |&b| b as usize)),
            Context::Grid(_) => decode_headed(m, d, range, out, |m, i| m.context(i)),
        }
    } else {
        decode_walks(m, d, range, out, side, at)
    }
}

/// `decode`'s symbols a range at a time, as a walk takes them in order (`stages::Stream`, and
/// on a second thread `ahead`): the interpolation walk then needs no block-sized buffer of
/// symbols, and on two cores the coder runs beside it. No side variable: the walk's symbols
/// have none.
pub struct Stream<'a> {
    m: Model,
    d: Decoder<'a>,
    at: Resume,
    /// Symbols decoded (or, past a failure or the end, handed out as 0), of `n`.
    i: usize,
    n: usize,
    failed: Option<String>,
    /// More were asked for than the block holds.
    over: bool,
}

impl<'a> Stream<'a> {
    pub fn new(bytes: &'a [u8], n: usize, cfg: AcConfig) -> Result<Stream<'a>, String> {
        if cfg.repeat_side.is_some() {
            return Err("an ac block with a side variable does not stream".into());
        }
        fits(bytes, n, cfg)?;
        Ok(Stream { m: Model::new(cfg, n), d: Decoder::new(bytes), at: Resume::default(), i: 0, n, failed: None, over: false })
    }

    /// Values still to come.
    pub fn remaining(&self) -> usize {
        self.n - self.i
    }

    /// The next `out.len()` values; zeros past the block's end or a damaged stream's failure
    /// (and `finish` says so).
    pub fn fill(&mut self, out: &mut [u64]) {
        let to = self.i.saturating_add(out.len()).min(self.n);
        let k = to - self.i;
        self.over |= k < out.len();
        if self.failed.is_none() && k > 0 {
            if let Err(e) = decode_range(&mut self.m, &mut self.d, self.i..to, &mut out[..k], None, &mut self.at) {
                self.failed = Some(e);
            }
        }
        // A damaged stream's values from where it failed on: zeros, as `rans`'s.
        if self.failed.is_some() {
            out[..k].fill(0);
        }
        out[k..].fill(0);
        self.i = to;
    }

    /// Whether every value was read and the stream ended where it should.
    pub fn finish(&self) -> Result<(), String> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.over || self.i != self.n {
            return Err(format!("{} of {} arithmetic-coded values read", self.i, self.n));
        }
        if self.d.overrun() > 4 {
            return Err(ENDS_EARLY.into());
        }
        Ok(())
    }
}

const IMPOSSIBLE: &str = "arithmetic-coded stream decodes to an impossible bucket";
const ENDS_EARLY: &str = "arithmetic-coded stream ends early";

/// `decode_range`'s symbols where each is a walk (repeat decisions, or no head).
fn decode_walks(m: &mut Model, d: &mut Decoder, range: std::ops::Range<usize>, out: &mut [u64], side: Option<&[i64]>, at: &mut Resume) -> Result<(), String> {
    let adapt = m.cfg.adapt;
    let Resume { mut was, mut last } = *at;
    let base = range.start;
    for i in range {
        if !m.repeat(i, &mut was, side, |p| {
            let bit = d.get(p.bound(d.range()));
            p.update(bit, adapt);
            bit
        }) {
            let ctx = m.context(i) << BUCKET_BITS;
            last = m.walk_from(ctx, 0, 0, decisions(d, adapt)).ok_or(IMPOSSIBLE)?;
        }
        out[i - base] = last;
        // An intact stream is read to at most 4 bytes past its end (the decoder's look-ahead).
        if d.overrun() > 4 {
            return Err(ENDS_EARLY.into());
        }
    }
    *at = Resume { was, last };
    Ok(())
}

/// `decode_range`'s symbols under a head without repeat decisions; `context(model, i)` is
/// `Model::context` for the configuration's context, which the caller fixes so the loop is
/// compiled for it (`Previous` reads the last bucket pushed: `seen` holds one a symbol).
#[inline(always)]
fn decode_headed(m: &mut Model, d: &mut Decoder, range: std::ops::Range<usize>, out: &mut [u64], context: impl Fn(&Model, usize) -> usize) -> Result<(), String> {
    let adapt = m.cfg.adapt;
    let keeps_seen = m.cfg.context != Context::None;
    // `out` holds the range's symbols: symbol i at i - base.
    let (mut i, n, base) = (range.start, range.end, range.start);
    while i < n {
        let ctx = context(m, i) << BUCKET_BITS;
        let k = ctx + HEAD_NODE;
        let first = m.buckets[k];
        if first.p > SKEWED {
            // Runs of 0 in one context, where the first head decision (is the bucket 0?)
            // mostly says so (a loose bound's residuals): each symbol one decision at the
            // same probability, taken as a branch the CPU predicts (`zeros`).
            let mut p = first;
            let from = i;
            let above;
            (i, above) = if !matches!(m.cfg.context, Context::Grid(_)) {
                // Only a run from context 0 (after a 0) goes on past its first symbol.
                let zero = ctx == 0;
                zeros(d, &mut p, adapt, i, n, |_| zero)
            } else {
                let m = &*m;
                zeros(d, &mut p, adapt, i, n, |j| m.context_after_zeros(j) << BUCKET_BITS == ctx)
            };
            m.buckets[k] = p;
            // The run's 0s, stored at once.
            out[from - base..i - base].fill(0);
            if keeps_seen {
                m.seen.resize(i, 0);
            }
            if !above {
                continue;
            }
            // Symbol i's first head decision is taken: its bucket is above 0. (A walk call
            // shared with the one below, `from` 0 or 1, decoded 2-4 % slower.)
            out[i - base] = m.walk_from(ctx, 1, 0, decisions(d, adapt)).ok_or(IMPOSSIBLE)?;
            i += 1;
            continue;
        }
        // The first head decision here, as the walk would take it: most symbols outside a run
        // of 0 are still 0s, which it alone decides.
        let mut p = first;
        let above = d.get(p.bound(d.range()));
        p.update(above, adapt);
        m.buckets[k] = p;
        out[i - base] = if above {
            m.walk_from(ctx, 1, 0, decisions(d, adapt)).ok_or(IMPOSSIBLE)?
        } else {
            if keeps_seen {
                m.seen.push(0);
            }
            0
        };
        i += 1;
        // An intact stream is read to at most 4 bytes past its end (the decoder's look-ahead).
        if d.overrun() > 4 {
            return Err(ENDS_EARLY.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::xorshift;

    #[test]
    fn the_tuned_twin_heads_as_the_baseline_does() {
        // `head` runs compiled for this CPU (`cpu::tuned`); `head_in`, called here, is the
        // baseline's instructions.
        let mut r = xorshift(0x2545_f491_4f6c_dd1d);
        for spread in [2u64, 9, 1 << 20, u64::MAX] {
            let u: Vec<u64> = (0..20_000).map(|_| r() % spread).chain([0, u64::MAX, 1 << 63]).collect();
            assert_eq!(head(u.iter().copied()), head_in(u.iter().copied()), "{spread}");
        }
    }

    /// The decoder's branch-taken update moves every probability as the spec's does.
    #[test]
    fn the_taken_update_is_the_spec_update() {
        for n in (0..40).chain([254, 255, 256, 1022, 1023, 1024, 5000, u16::MAX - 1]) {
            for p in P_MIN..=ONE - P_MIN {
                for bit in [false, true] {
                    let (mut a, mut b) = (Bit { p: p as u16, n }, Bit { p: p as u16, n });
                    a.update(bit, 255);
                    b.update_taken(bit, 255);
                    assert!(a.p == b.p && a.n == b.n, "p {p} n {n} bit {bit}: {} against {}", a.p, b.p);
                }
            }
        }
    }

    fn configs() -> Vec<AcConfig> {
        let mut v = Vec::new();
        for tree_bits in [0, 3, 6, MAX_TREE_BITS] {
            for context in [Context::None, Context::Previous, Context::Grid(7)] {
                for adapt in [0, 30, 1000, u16::MAX] {
                    for repeats in [false, true] {
                        for short_buckets in [false, true] {
                            v.push(AcConfig { tree_bits, context, adapt, repeats, repeat_side: None, short_buckets, head: 0 });
                        }
                        for head in [1, 3, MAX_HEAD] {
                            v.push(AcConfig { tree_bits, context, adapt, repeats, repeat_side: None, short_buckets: true, head });
                        }
                    }
                }
            }
        }
        v
    }

    /// Blocks at the extremes, and a loose bound's residuals.
    fn blocks() -> Vec<Vec<u64>> {
        let mut r = xorshift(0x9e37_79b9_7f4a_7c15);
        vec![
            vec![],
            vec![0],
            vec![u64::MAX],
            vec![7; 1000],
            vec![u64::MAX, 0, 1, u64::MAX - 1, 1 << 63, 2, 3],
            (0..64).map(|k| 1u64 << k).chain((0..64).map(|k| (1u64 << k) - 1)).collect(),
            (0..3000).map(|_| r()).collect(),
            (0..3000).map(|_| r() % 1000).collect(),
            // A loose bound's residuals: runs of 0 (the decoder's run loop, where 0 is likely
            // enough), the grid context changing within them, the odd larger code.
            (0..3000).map(|_| match r() % 20 { 0 => r() % 50, 1 | 2 => 1, _ => 0 }).collect(),
            (0..3000).map(|i| if (i / 7) % 5 == 0 { 1 + i as u64 % 3 } else { 0 }).collect(),
            (0..5000).map(|_| match r() % 100 { 0 => r() % 50, 1 | 2 => 1, _ => 0 }).collect(),
            (0..4000).map(|_| if r() % 3 == 0 { r() % 4 } else { 0 }).collect(),
        ]
    }

    #[test]
    fn round_trips_extremes_under_every_configuration() {
        let cases = blocks();
        for cfg in configs() {
            for v in &cases {
                let side: Vec<i64> = (0..v.len() as i64).map(|i| i / 3).collect();
                let b = encode(v, cfg, Some(&side));
                assert_eq!(&decode(&b, v.len(), cfg, Some(&side)).unwrap(), v, "{cfg:?}");
            }
        }
    }

    /// A block taken a range at a time (`Stream`, as the walk takes it) decodes to what `decode`
    /// makes at once, whatever the ranges: runs of 0 paused at a range's end and resumed, in
    /// every context; a reader that asks past the end gets zeros and an error, and a damaged
    /// stream never a panic.
    #[test]
    fn a_stream_in_ranges_decodes_what_decode_does() {
        let cases = blocks();
        let mut cfgs: Vec<AcConfig> = configs().into_iter().filter(|c| c.repeat_side.is_none()).collect();
        for context in [Context::None, Context::Previous, Context::Grid(7)] {
            cfgs.push(AcConfig { tree_bits: 4, context, adapt: 255, repeats: false, repeat_side: None, short_buckets: true, head: 2 });
        }
        for cfg in cfgs {
            for v in &cases {
                let b = encode(v, cfg, None);
                for sizes in [&[1usize][..], &[1, 2, 3, 7], &[256], &[5000], &[13, 1, 64, 250]] {
                    let mut s = Stream::new(&b, v.len(), cfg).unwrap();
                    let mut got = Vec::new();
                    for k in sizes.iter().cycle() {
                        let k = (*k).min(s.remaining());
                        let mut part = vec![9u64; k];
                        s.fill(&mut part);
                        got.extend_from_slice(&part);
                        if s.remaining() == 0 {
                            break;
                        }
                    }
                    assert_eq!(&got, v, "{cfg:?} {sizes:?}");
                    s.finish().unwrap();
                }
                // Asked for one more than the block holds: a 0, and an error.
                let mut s = Stream::new(&b, v.len(), cfg).unwrap();
                let mut all = vec![9u64; v.len() + 1];
                s.fill(&mut all);
                assert_eq!(&all[..v.len()], &v[..]);
                assert_eq!(all[v.len()], 0);
                assert!(s.finish().is_err());
                // Cut short: no panic, whatever it decodes to (the decoder reads zeros past the
                // end, so a dense stream cut by a few bytes can go unseen: the container's
                // checksum is what catches damage).
                let mut s = Stream::new(&b[..b.len() / 2], v.len(), cfg).unwrap();
                let mut all = vec![0u64; v.len()];
                for part in all.chunks_mut(100) {
                    s.fill(part);
                }
                let _ = s.finish();
            }
        }
    }

    /// The head is as long as saves decisions: none where buckets lie above 3, one or two where
    /// 0 and 1 are most of them; and coding under it costs about the bits of the short tree
    /// alone (each decision at its adaptive probability either way).
    #[test]
    fn the_head_saves_decisions_not_bits() {
        let mut r = xorshift(3);
        let wide: Vec<u64> = (0..5000).map(|_| 8 + r() % 56).collect();
        assert_eq!(head(wide.iter().copied()), 0);
        // 0 in one decision, bucket 4 in five (head and tree) either way: one decision of head.
        let calm: Vec<u64> = (0..5000).map(|i| if i % 10 < 8 { 0 } else { 8 + r() % 8 }).collect();
        assert_eq!(head(calm.iter().copied()), 1);
        // 1 takes two with a head of 2, five with one; bucket 5 six with 2, as many with 6.
        let ones: Vec<u64> = (0..5000).map(|i| match i % 10 { 0..=4 => 0, 5..=7 => 1, _ => 16 + r() % 16 }).collect();
        assert_eq!(head(ones.iter().copied()), 2);
        for v in [&calm, &ones] {
            let cfg = |head| AcConfig { tree_bits: 6, context: Context::Previous, adapt: 255, repeats: false, repeat_side: None, short_buckets: true, head };
            let (tree, headed) = (encode(v, cfg(0), None), encode(v, cfg(head(v.iter().copied())), None));
            assert!((headed.len() as f64 - tree.len() as f64).abs() < 0.02 * tree.len() as f64, "{} against {} bytes", headed.len(), tree.len());
            assert_eq!(&decode(&headed, v.len(), cfg(head(v.iter().copied())), None).unwrap(), v);
        }
    }

    #[test]
    fn reaches_the_order0_entropy_of_a_peaked_column() {
        // A discretised Gaussian-ish column offset far from 0, as a table column's codes are.
        let mut r = xorshift(42);
        let v: Vec<u64> = (0..20000).map(|_| 5000 + (0..4).map(|_| r() % 200).sum::<u64>()).collect();
        let mut counts = std::collections::HashMap::new();
        for &x in &v {
            *counts.entry(x).or_insert(0usize) += 1;
        }
        let n = v.len() as f64;
        let h: f64 = counts.values().map(|&c| -(c as f64 / n) * (c as f64 / n).log2()).sum();
        let floor = h * n / 8.0;
        for short_buckets in [false, true] {
            let cfg = AcConfig { tree_bits: 6, context: Context::None, adapt: 1000, repeats: false, repeat_side: None, short_buckets, head: 0 };
            let got = encode(&v, cfg, None).len() as f64;
            assert!(got < floor * 1.03, "{got} bytes for an order-0 entropy of {floor:.0} (short tree {short_buckets})");
        }
    }

    /// The densest streams there are (one value, millions of times) are not mistaken for damage.
    #[test]
    fn a_constant_block_of_millions_decodes() {
        let v = vec![0u64; 4_000_000];
        for repeats in [false, true] {
            for (short_buckets, head) in [(false, 0), (true, 0), (true, 1), (true, 2)] {
                // adapt 0: every probability moves halfway at each decision, the fastest to its
                // limit, so the densest stream of all
                for adapt in [0, 5, 255] {
                    let cfg = AcConfig { tree_bits: 6, context: Context::None, adapt, repeats, repeat_side: None, short_buckets, head };
                    let b = encode(&v, cfg, None);
                    assert_eq!(decode(&b, v.len(), cfg, None).unwrap(), v, "{cfg:?}: {} bytes", b.len());
                }
            }
        }
        let w = vec![5u64; 4_000_000];
        let cfg = AcConfig { tree_bits: 6, context: Context::None, adapt: 255, repeats: true, repeat_side: None, short_buckets: false, head: 0 };
        assert_eq!(decode(&encode(&w, cfg, None), w.len(), cfg, None).unwrap(), w);
    }

    #[test]
    fn damaged_or_short_input_is_refused_or_decodes_without_panicking() {
        let v: Vec<u64> = (0..5000).map(|i| i % 17).collect();
        let cfg = AcConfig { tree_bits: 4, context: Context::Grid(10), adapt: 60, repeats: true, repeat_side: None, short_buckets: true, head: 0 };
        let mut b = encode(&v, cfg, None);
        let mid = b.len() / 2;
        b[mid] ^= 0x5a;
        let _ = decode(&b, v.len(), cfg, None);
        assert!(decode(&b[..3], v.len(), cfg, None).is_err());
        assert!(decode(&[], 1 << 30, cfg, None).is_err());
        let _ = decode(&[0xff; 64], 1000, cfg, None);
    }
}
