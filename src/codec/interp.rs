//! Multilevel interpolation with in-loop quantisation, the predictor SZ3 and QoZ made the state
//! of the art for smooth fields at loose bounds. The chunk's grid is walked coarse to fine; each
//! element is predicted by linear or cubic interpolation along one dimension between elements
//! the decoder has already rebuilt, and its symbol is `round((x - p) / bin)`. A smooth field is
//! so predicted from both sides (Lorenzo only extrapolates from one corner), and only the
//! rounding of `x` itself enters its residual (a prediction from pre-quantised codes carries the
//! neighbours' rounding too), which at wide bins is most of it.
//!
//! The guarantee stays the codec's: the encoder rebuilds every element exactly as the decoder
//! will (fixed IEEE operations, rounded to the variable's dtype), and stores any element that
//! misses the bound exactly.
//!
//! The walk (baler-format.md, "interpolation"): dimensions (d0, d1, d2, d3), `L` the least
//! level with `2^L >= max(d)`. Element 0 comes first, predicted by 0. Then for each stride `s` =
//! 2^(L-1), ..., 2, 1 and each dimension `k` in the block's order: every element whose index
//! along `k` is an odd multiple of `s`, along the dimensions before `k` in the order a multiple
//! of `s`, along those after it a multiple of `2s`, in C order. Its neighbours along `k` at
//! -3s, -s, +s, +3s are of coarser levels, or done earlier in this one.

use super::errstats::{ErrStats, Lanes};
use super::quantise;
use crate::dtype::DType;
use crate::wire::{put_varint, Cursor};

/// Dimensions of a walk: the chunk's leading (rows x whatever the grid leaves) and three more.
pub const RANK: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Linear = 0,
    Cubic = 1,
}

/// Level-wise bins (QoZ's, SZ3 3.3's): the bin of the level of stride 2^l is the block's
/// divided by min(alpha^l, beta), so the coarse elements every finer level is predicted from
/// are more precise. (alpha, beta); (1, 1) is one bin for all.
pub const LEVELWISE: [(f64, f64); 2] = [(1.0, 1.0), (1.25, 2.0)];

/// An interpolation as a block records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The trailing three dimensions of the block's grid; the leading one is what is left.
    pub grid: [usize; 3],
    pub kind: Kind,
    /// The dimensions (0 leading .. 3 fastest) in the order each level interpolates along them.
    pub order: [u8; RANK],
    /// Index into `LEVELWISE`.
    pub levelwise: u8,
}

/// The dimension orders tried: slowest axis first, and fastest first (SZ3's two).
const ORDERS: [[u8; RANK]; 2] = [[0, 1, 2, 3], [3, 2, 1, 0]];

/// The walks `pack` and the filter try on a grid: cubic in both dimension orders, and linear
/// (rough data); each with one bin for all levels and with level-wise bins.
pub fn candidates(grid: [usize; 3]) -> Vec<Config> {
    let walks = [(Kind::Cubic, ORDERS[0]), (Kind::Cubic, ORDERS[1]), (Kind::Linear, ORDERS[0])];
    walks
        .into_iter()
        .flat_map(|(kind, order)| (0..LEVELWISE.len() as u8).map(move |levelwise| Config { grid, kind, order, levelwise }))
        .collect()
}

/// The walk a fast level (`codec::FAST_LEVEL`) takes without trying others: of `candidates`,
/// the one that coded smallest most often on the benchmark's fields (cubic, fastest dimension
/// first, one bin): on the 27 field/bound pairs chunked one 2-D slice a chunk 4.9 % above the
/// best of six in all as the trials priced them, twice the best on Levitus at 1e-2, whose
/// slices want the other dimension order and finer bins at coarse levels.
pub fn quick(grid: [usize; 3]) -> Config {
    Config { grid, kind: Kind::Cubic, order: ORDERS[1], levelwise: 0 }
}

/// Whether `grid`'s trailing dimensions tile `n` elements.
fn tiles(grid: [usize; 3], n: usize) -> bool {
    let plane = grid.iter().try_fold(1usize, |p, &d| p.checked_mul(d)).unwrap_or(0);
    plane > 0 && n % plane == 0
}

/// Whether a walk over `grid` is worth trying on a block of `n` elements.
pub fn fits(grid: [usize; 3], n: usize) -> bool {
    tiles(grid, n) && n > 1
}

impl Config {
    pub fn dims(&self, n: usize) -> [usize; RANK] {
        let [a, b, c] = self.grid;
        [n / (a * b * c), a, b, c]
    }

    fn order(&self) -> [usize; RANK] {
        self.order.map(|k| k as usize)
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        self.grid.iter().for_each(|&d| put_varint(out, d as u64));
        out.push(self.kind as u8);
        out.extend_from_slice(&self.order);
        out.push(self.levelwise);
    }

    /// Reads a configuration for a block of `n` elements, refusing one that does not tile it.
    pub fn read(cur: &mut Cursor, n: usize) -> Result<Config, String> {
        let mut grid = [0usize; 3];
        for g in grid.iter_mut() {
            *g = usize::try_from(cur.varint("interpolation grid")?).map_err(|_| "interpolation grid out of range")?;
        }
        if !tiles(grid, n) {
            return Err(format!("interpolation grid {grid:?} does not tile {n} elements"));
        }
        let kind = match cur.u8("interpolation kind")? {
            0 => Kind::Linear,
            1 => Kind::Cubic,
            k => return Err(format!("unknown interpolation kind {k}")),
        };
        let mut order = [0u8; RANK];
        order.copy_from_slice(cur.bytes(RANK as u64, "interpolation order")?);
        let mut sorted = order;
        sorted.sort_unstable();
        if sorted != [0, 1, 2, 3] {
            return Err(format!("interpolation order {order:?} is not an order of the 4 dimensions"));
        }
        let levelwise = cur.u8("interpolation level-wise bins")?;
        if levelwise as usize >= LEVELWISE.len() {
            return Err(format!("unknown level-wise bins {levelwise}"));
        }
        Ok(Config { grid, kind, order, levelwise })
    }

    /// The bin width of each level (index: log2 of its stride), from the block's `step`: a fixed
    /// sequence of IEEE multiplications and one division, the same on every machine.
    fn level_steps(&self, step: f64) -> [f64; 65] {
        let (alpha, beta) = LEVELWISE[self.levelwise as usize];
        let mut f = 1.0f64;
        let mut out = [step; 65];
        for s in out.iter_mut() {
            *s = step / f.min(beta);
            f *= alpha;
        }
        out
    }
}

/// Which nodes along a line predict the element at index `i` of it (`len` long), at stride
/// `s`: the one at `i - s` (always there), `i + s`, `i - 3s`, `i + 3s` where they exist.
#[derive(Clone, Copy)]
enum Nodes {
    /// `i - s` alone (the line's far end).
    Left,
    /// `i - s` and `i + s`.
    Two,
    /// `i - 3s`, `i - s`, `i + s`, `i + 3s`.
    Four,
    /// `i - s`, `i + s`, `i + 3s` (near the line's start).
    NoFarLeft,
    /// `i - 3s`, `i - s`, `i + s` (near its end).
    NoFarRight,
}

#[inline(always)]
fn nodes(i: usize, s: usize, len: usize, kind: Kind) -> Nodes {
    if i + s >= len {
        return Nodes::Left;
    }
    if kind == Kind::Linear {
        return Nodes::Two;
    }
    match (i >= 3 * s, i + 3 * s < len) {
        (true, true) => Nodes::Four,
        (false, true) => Nodes::NoFarLeft,
        (true, false) => Nodes::NoFarRight,
        (false, false) => Nodes::Two,
    }
}

/// The prediction of the element at `at` from `nodes` lying `d` apart in `a`: Lagrange weights
/// at 0 of the nodes used, in f64, in the order written (Rust never contracts to FMA on its
/// own; the divisions are by powers of two, so exact).
#[inline(always)]
fn predict<T: Cell>(a: &[T], at: usize, d: usize, nodes: Nodes) -> f64 {
    lagrange(|k| a[k].get(), at, d, nodes)
}

/// `predict` without bounds checks.
///
/// # Safety
/// Every node `nd` reads (from `at - d` or `at - 3d` to `at + d` or `at + 3d`) lies in `a`.
#[inline(always)]
unsafe fn predict_at<T: Cell>(a: &[T], at: usize, d: usize, nodes: Nodes) -> f64 {
    // SAFETY: the caller's promise.
    lagrange(|k| unsafe { a.get_unchecked(k) }.get(), at, d, nodes)
}

/// `predict`'s weights, the nodes read by `v`.
#[inline(always)]
fn lagrange(v: impl Fn(usize) -> f64, at: usize, d: usize, nodes: Nodes) -> f64 {
    let b = v(at - d);
    match nodes {
        Nodes::Left => b,
        Nodes::Two => (b + v(at + d)) * 0.5,
        // Nodes -3, -1, 1, 3 (units of s): (-1, 9, 9, -1) / 16.
        Nodes::Four => ((b + v(at + d)) * 9.0 - v(at - 3 * d) - v(at + 3 * d)) * 0.0625,
        // Nodes -1, 1, 3: (3, 6, -1) / 8.
        Nodes::NoFarLeft => (b * 3.0 + v(at + d) * 6.0 - v(at + 3 * d)) * 0.125,
        // Nodes -3, -1, 1: (-1, 6, 3) / 8.
        Nodes::NoFarRight => (b * 6.0 + v(at + d) * 3.0 - v(at - 3 * d)) * 0.125,
    }
}

/// What a walk stores its rebuilt elements in: f64 (the encoder's walk), or a block's own
/// little-endian bytes (`Le32` for f32, `Le64` for f64), so the decoder's cells are its output.
/// An f32 block's rebuilt values are f32 numbers (`quantise::reconstruct` rounds to the dtype)
/// but for one left at a prediction beyond f32's range or between its numbers (`rebuilt`'s
/// fallback): `put` says when a value does not fit, and the walk is then done again in f64.
pub trait Cell: Copy + Default {
    fn get(self) -> f64;
    fn put(v: f64) -> Option<Self>;
    /// `put(rebuilt(dtype, p, q, step))`.
    #[inline(always)]
    fn rebuild(dtype: DType, p: f64, q: i64, step: f64) -> Option<Self> {
        Self::put(rebuilt(dtype, p, q, step))
    }
}

impl Cell for f64 {
    #[inline(always)]
    fn get(self) -> f64 {
        self
    }
    #[inline(always)]
    fn put(v: f64) -> Option<f64> {
        Some(v)
    }
}

/// An f32, as the block's output holds it.
type Le32 = [u8; 4];

impl Cell for Le32 {
    #[inline(always)]
    fn get(self) -> f64 {
        f32::from_le_bytes(self) as f64
    }
    #[inline(always)]
    fn put(v: f64) -> Option<Le32> {
        let f = v as f32;
        (f as f64 == v).then_some(f.to_le_bytes())
    }
    /// An f32 block's (dtype F32) common case in one rounding: `rebuilt` rounds `p + q * step`
    /// to f32 and keeps it when finite, and an f32 round-trips through f64.
    #[inline(always)]
    fn rebuild(dtype: DType, p: f64, q: i64, step: f64) -> Option<Le32> {
        debug_assert_eq!(dtype, DType::F32);
        let f = (p + q as f64 * step) as f32;
        // A p that is not finite makes an f that is not either (infinity plus anything is
        // infinite or NaN, and NaN stays NaN), so f's check is p's too.
        if f.is_finite() {
            Some(f.to_le_bytes())
        } else {
            Self::put(rebuilt(dtype, p, q, step))
        }
    }
}

/// An f64, as the block's output holds it.
type Le64 = [u8; 8];

impl Cell for Le64 {
    #[inline(always)]
    fn get(self) -> f64 {
        f64::from_le_bytes(self)
    }
    #[inline(always)]
    fn put(v: f64) -> Option<Le64> {
        Some(v.to_le_bytes())
    }
}

/// The least L with 2^L >= the largest dimension.
fn levels(dims: &[usize; RANK]) -> u32 {
    let top = dims.iter().copied().max().unwrap_or(1).max(1);
    usize::BITS - (top - 1).leading_zeros()
}

/// (start, step) of each dimension's indices in the pass along `order[j]` at stride `s`.
fn pass_ranges(order: &[usize; RANK], j: usize, s: usize) -> [(usize, usize); RANK] {
    let mut range = [(0usize, 2 * s); RANK];
    range[order[j]] = (s, 2 * s);
    for &m in &order[..j] {
        range[m] = (0, s);
    }
    range
}

/// Walks the grid `dims` (product = `a.len()`) coarse to fine, calling `visit(index, stride,
/// slot, prediction)` once per element, the first with prediction 0. Predictions read only
/// elements visited before, so the encoder (which writes each rebuilt value into its slot) and
/// the decoder (the same) see the same predictions. (The codec's walks run `walk_in` in the
/// tuned twins; this one serves the tests.)
#[cfg(test)]
fn walk<T: Cell>(a: &mut [T], dims: [usize; RANK], order: [usize; RANK], kind: Kind, visit: impl Visit<T>) {
    walk_in(a, dims, order, kind, visit)
}

/// `walk`, for a caller that inlines it (the twins `cpu::tuned` compiles).
#[inline(always)]
fn walk_in<T: Cell>(a: &mut [T], dims: [usize; RANK], order: [usize; RANK], kind: Kind, mut visit: impl Visit<T>) {
    if a.is_empty() {
        return;
    }
    let strides = [dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1];
    let levels = levels(&dims);
    visit.one(0, 1 << levels, &mut a[0], 0.0);
    for level in (0..levels).rev() {
        let s = 1usize << level;
        for (j, &k) in order.iter().enumerate() {
            if s >= dims[k] {
                continue;
            }
            let r = pass_ranges(&order, j, s);
            let (len, d) = (dims[k], s * strides[k]);
            let line = Line { s, d, step: r[3].1 };
            for i0 in (r[0].0..dims[0]).step_by(r[0].1) {
                for i1 in (r[1].0..dims[1]).step_by(r[1].1) {
                    for i2 in (r[2].0..dims[2]).step_by(r[2].1) {
                        let row = i0 * strides[0] + i1 * strides[1] + i2 * strides[2];
                        if k == 3 {
                            // Along the row itself the nodes change only near its ends: the
                            // elements between, with every node there, run as one loop.
                            let (lo, hi) = match kind {
                                Kind::Cubic => (3 * s, len.saturating_sub(3 * s)),
                                Kind::Linear => (0, len.saturating_sub(s)),
                            };
                            let mut i3 = r[3].0;
                            while i3 < dims[3] && i3 < lo {
                                line.run(a, row, i3, i3 + 1, nodes(i3, s, len, kind), &mut visit);
                                i3 += line.step;
                            }
                            let inner = if hi > i3 { (hi - i3).div_ceil(line.step) } else { 0 };
                            let end = i3 + inner * line.step;
                            let full = if kind == Kind::Cubic { Nodes::Four } else { Nodes::Two };
                            line.run(a, row, i3, end, full, &mut visit);
                            i3 = end;
                            while i3 < dims[3] {
                                line.run(a, row, i3, i3 + 1, nodes(i3, s, len, kind), &mut visit);
                                i3 += line.step;
                            }
                        } else {
                            // Along a slower dimension the index on the line is the same for
                            // the whole row: its nodes are chosen once.
                            let nd = nodes([i0, i1, i2][k], s, len, kind);
                            line.run(a, row, r[3].0, dims[3], nd, &mut visit);
                        }
                    }
                }
            }
        }
    }
}

/// What a walk does with each element it reaches.
trait Visit<T> {
    /// The element at `i`, of the level of stride `s`, predicted as `p`.
    fn one(&mut self, i: usize, s: usize, slot: &mut T, p: f64);
    /// `count` elements from `at`, `step` apart, each predicted from nodes `nd` lying `d` apart:
    /// `one` for each, or as one loop where the visitor has a faster way.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn run(&mut self, a: &mut [T], at: usize, count: usize, step: usize, d: usize, s: usize, nd: Nodes)
    where
        T: Cell,
    {
        if !run_fits(a.len(), at, count, step, d, nd) {
            return each_checked(self, a, at, count, step, d, s, nd);
        }
        each_fitting(self, a, at, count, step, d, s, nd)
    }
}

/// `Visit::run` element by element for a run `run_fits` admitted: reads unchecked.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn each_fitting<T: Cell, V: Visit<T> + ?Sized>(v: &mut V, a: &mut [T], at: usize, count: usize, step: usize, d: usize, s: usize, nd: Nodes) {
    debug_assert!(run_fits(a.len(), at, count, step, d, nd));
    for j in 0..count {
        let i = at + j * step;
        // SAFETY: the caller's `run_fits`: every element of the run and every node it reads
        // lie in `a`.
        let p = unsafe { predict_at(a, i, d, nd) };
        v.one(i, s, unsafe { a.get_unchecked_mut(i) }, p);
    }
}

/// `Visit::run` element by element, every read checked.
#[allow(clippy::too_many_arguments)]
fn each_checked<T: Cell, V: Visit<T> + ?Sized>(v: &mut V, a: &mut [T], at: usize, count: usize, step: usize, d: usize, s: usize, nd: Nodes) {
    for j in 0..count {
        let i = at + j * step;
        let p = predict(a, i, d, nd);
        v.one(i, s, &mut a[i], p);
    }
}

/// Whether a run (`count` > 0 elements from `at`, `step` apart) and every node `nd` reads for
/// it (`d` apart) lie in a walk's `len` elements: always, on a walk's own runs, so each run
/// checks once instead of each element's reads.
#[inline(always)]
fn run_fits(len: usize, at: usize, count: usize, step: usize, d: usize, nd: Nodes) -> bool {
    let (below, above) = match nd {
        Nodes::Left => (d, 0),
        Nodes::Two => (d, d),
        Nodes::Four => (3 * d, 3 * d),
        Nodes::NoFarLeft => (d, 3 * d),
        Nodes::NoFarRight => (3 * d, d),
    };
    count > 0
        && at >= below
        && (count - 1).checked_mul(step).and_then(|x| x.checked_add(at)).and_then(|x| x.checked_add(above)).is_some_and(|top| top < len)
}

/// A closure as a `Visit`, element by element.
#[cfg(test)]
struct Each<F>(F);

#[cfg(test)]
impl<T, F: FnMut(usize, usize, &mut T, f64)> Visit<T> for Each<F> {
    #[inline(always)]
    fn one(&mut self, i: usize, s: usize, slot: &mut T, p: f64) {
        (self.0)(i, s, slot, p)
    }
}

/// The elements of one row a pass visits: stride `s`, nodes `d` apart in the flat array,
/// `step` apart along the row.
#[derive(Clone, Copy)]
struct Line {
    s: usize,
    d: usize,
    step: usize,
}

impl Line {
    /// Visits the row's elements `from`, `from + step`, ... below `to`, all with nodes `nd`:
    /// the match is made once, so each arm's loop has no branch on the nodes.
    #[inline(always)]
    fn run<T: Cell>(self, a: &mut [T], row: usize, from: usize, to: usize, nd: Nodes, visit: &mut impl Visit<T>) {
        match nd {
            Nodes::Left => self.each(a, row, from, to, Nodes::Left, visit),
            Nodes::Two => self.each(a, row, from, to, Nodes::Two, visit),
            Nodes::Four => self.each(a, row, from, to, Nodes::Four, visit),
            Nodes::NoFarLeft => self.each(a, row, from, to, Nodes::NoFarLeft, visit),
            Nodes::NoFarRight => self.each(a, row, from, to, Nodes::NoFarRight, visit),
        }
    }

    #[inline(always)]
    fn each<T: Cell>(self, a: &mut [T], row: usize, from: usize, to: usize, nd: Nodes, visit: &mut impl Visit<T>) {
        if from < to {
            visit.run(a, row + from, (to - from).div_ceil(self.step), self.step, self.d, self.s, nd);
        }
    }
}

/// One element's value as the decoder rebuilds it from its prediction and symbol, and as the
/// predictions after it see it: never infinite or NaN, so one bad element cannot spread.
#[inline]
fn rebuilt(dtype: DType, p: f64, q: i64, step: f64) -> f64 {
    let p = if p.is_finite() { p } else { 0.0 };
    let r = quantise::reconstruct(dtype, p, q, step);
    if r.is_finite() {
        r
    } else {
        p
    }
}

pub struct Walked {
    /// In walk order, of the elements not stored exactly (an exact one's symbol is 0, and
    /// left out: the block's FLAG_OMIT).
    pub symbols: Vec<i64>,
    /// Elements to store exactly, in walk order (a block lists them ascending; a walk trial
    /// needs only their count, and sorting a field's land was 7 % of its encode): not valid,
    /// or beyond the bound once rebuilt.
    pub exact: Vec<u64>,
    /// What the decoder rebuilds for each element, before the exact ones are put back.
    pub rebuilt: Vec<f64>,
    /// The block's error statistics (`codec::error_stats`'s, summed in walk order), where the
    /// walk was asked for them (`quantise_counting`).
    pub stats: Option<ErrStats>,
}

impl Walked {
    /// `exact` ascending, as a block lists them. A walk reaches each element once, so the
    /// indices are distinct: where they are many (a field's land: 45 % of NEMO's elements) a
    /// flag an element, read in order, lists them for a fraction of a sort's time (the sort
    /// was 9 % of NEMO's one-slice writes at 1e-4).
    pub fn sort_exact(&mut self) {
        let n = self.rebuilt.len();
        if self.exact.len() > n / 32 {
            let mut flag = vec![false; n];
            self.exact.iter().for_each(|&i| flag[i as usize] = true);
            self.exact.clear();
            self.exact.extend(flag.iter().enumerate().filter(|&(_, &f)| f).map(|(i, _)| i as u64));
        } else {
            self.exact.sort_unstable();
        }
    }
}

/// Quantises `values` to `tol` along `cfg`'s walk. `valid(i)`: the element is a value to bound
/// (not missing). Other elements, and those that miss the bound, are listed to be stored
/// exactly; each gets symbol 0, so it takes its prediction's value in the walk (a mask, not a
/// jump to a fill value), and no symbol is coded for it.
pub fn quantise(cfg: &Config, dtype: DType, values: &[f64], valid: impl Fn(usize) -> bool, tol: f64) -> Walked {
    quantise_in(cfg, dtype, values, valid, tol, None)
}

/// `quantise`, with the block's error statistics gathered on the way (`Walked::stats`): the
/// values and their rebuilt forms are at hand there, in registers, where a pass after the walk
/// read both again (7 % of a default `pack` of GloSea4 x20 at 1e-2, callgrind).
pub fn quantise_counting(cfg: &Config, dtype: DType, values: &[f64], valid: impl Fn(usize) -> bool, tol: f64) -> Walked {
    quantise_in(cfg, dtype, values, valid, tol, Some(Lanes::default()))
}

fn quantise_in(cfg: &Config, dtype: DType, values: &[f64], valid: impl Fn(usize) -> bool, tol: f64, lanes: Option<Lanes>) -> Walked {
    let n = values.len();
    let mut q = Quantiser { values, valid, dtype, steps: cfg.level_steps(2.0 * tol), tol, symbols: Vec::with_capacity(n), exact: Vec::new(), lanes };
    let mut a = vec![0f64; n];
    super::cpu::tuned(#[inline(always)] || walk_in(&mut a, cfg.dims(n), cfg.order(), cfg.kind, &mut q));
    let stats = q.lanes.map(|l| {
        let mut st = ErrStats::default();
        l.add_to(&mut st);
        st
    });
    Walked { symbols: q.symbols, exact: q.exact, rebuilt: a, stats }
}

/// `quantise`'s visitor: a struct, not a closure, so its `one` is inlined into the walk's runs
/// (the closure was a call an element, its state spilled around it).
struct Quantiser<'a, V> {
    values: &'a [f64],
    valid: V,
    dtype: DType,
    steps: [f64; 65],
    tol: f64,
    symbols: Vec<i64>,
    exact: Vec<u64>,
    /// Where the walk gathers the error statistics: each valid element's value against what
    /// the decoder will hold (an exact element's own value), a missing one not at all.
    lanes: Option<Lanes>,
}

impl<V: Fn(usize) -> bool> Quantiser<'_, V> {
    /// `count` elements from `at`, `step` apart (a run `run_fits` admitted), a batch at a time:
    /// predictions and values gathered, coded side by side (`quantise::code_batch`), then kept
    /// or listed in order. Within a run no element predicts another (its nodes are of coarser
    /// levels, or of rows before), so the batch sees the values `one` would.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn batches<const F32: bool>(&mut self, a: &mut [f64], at: usize, count: usize, step: usize, d: usize, nd: Nodes, bin: f64) {
        const BATCH: usize = 64;
        let (mut x, mut p, mut q, mut r) = ([0f64; BATCH], [0f64; BATCH], [0f64; BATCH], [0f64; BATCH]);
        let mut ok = [false; BATCH];
        let (mut i0, mut left) = (at, count);
        while left > 0 {
            let k = left.min(BATCH);
            let mut valid = [false; BATCH];
            for j in 0..k {
                let i = i0 + j * step;
                // SAFETY: `run_fits`: every element of the run and every node it reads lie in
                // `a`, which is as long as `values` (`quantise_in`).
                p[j] = unsafe { predict_at(a, i, d, nd) };
                x[j] = unsafe { *self.values.get_unchecked(i) };
                valid[j] = (self.valid)(i);
            }
            quantise::code_batch::<F32>(&x[..k], &p[..k], bin, self.tol, &mut q, &mut r, &mut ok);
            // The batch's symbols gathered here and appended at once: pushed one at a time, each
            // stored the vector's length back (it may alias `a`) and converted with `as`'s
            // saturating tests, 9 instructions a symbol (callgrind, GloSea4's `pack` at 1e-2).
            // Every symbol is written and the count moved on only for a kept one, without a
            // branch.
            let (mut kept, mut n) = ([0i64; BATCH], 0);
            let mut keep = [false; BATCH];
            let mut all = true;
            for j in 0..k {
                keep[j] = ok[j] & valid[j];
                all &= keep[j];
            }
            if all {
                // Every element kept (most batches): the symbols converted side by side, and
                // the rebuilt values stored without a test each.
                for j in 0..k {
                    kept[j] = quantise::integral(q[j]);
                }
                n = k;
                for (j, &v) in r[..k].iter().enumerate() {
                    // SAFETY: as the predictions' above.
                    unsafe { *a.get_unchecked_mut(i0 + j * step) = v };
                }
            } else {
                for j in 0..k {
                    let i = i0 + j * step;
                    // SAFETY: `n` counts the kept among the batch's first `j`: n <= j < k <=
                    // BATCH.
                    unsafe { *kept.get_unchecked_mut(n) = quantise::integral(q[j]) };
                    n += keep[j] as usize;
                    let v = if keep[j] {
                        r[j]
                    } else {
                        self.exact.push(i as u64);
                        rebuilt(self.dtype, p[j], 0, bin)
                    };
                    // SAFETY: as the predictions' above.
                    unsafe { *a.get_unchecked_mut(i) = v };
                }
            }
            self.symbols.extend_from_slice(&kept[..n]);
            if let Some(l) = &mut self.lanes {
                if all {
                    // Every element valid and kept: the values and the rebuilt ones as they
                    // are (`r` is not read again), without the two selects an element below
                    // (a tenth of the walk's instructions: callgrind, GloSea4's `pack` at 1e-2).
                    l.add_batch(&x[..k], &mut r);
                } else {
                    // A missing element's value as NaN (not counted), and what the decoder
                    // holds for each (an exact one's value), in a loop of their own that runs
                    // in vector lanes.
                    let (mut sx, mut sr) = ([0f64; BATCH], [0f64; BATCH]);
                    for j in 0..k {
                        sx[j] = if valid[j] { x[j] } else { f64::NAN };
                        sr[j] = if keep[j] { r[j] } else { x[j] };
                    }
                    l.add_batch(&sx[..k], &mut sr);
                }
            }
            i0 += k * step;
            left -= k;
        }
    }
}

impl<V: Fn(usize) -> bool> Visit<f64> for &mut Quantiser<'_, V> {
    #[inline(always)]
    fn run(&mut self, a: &mut [f64], at: usize, count: usize, step: usize, d: usize, s: usize, nd: Nodes) {
        if !run_fits(a.len(), at, count, step, d, nd) {
            return each_checked(self, a, at, count, step, d, s, nd);
        }
        let bin = self.steps[s.trailing_zeros() as usize];
        match self.dtype {
            DType::F32 => self.batches::<true>(a, at, count, step, d, nd, bin),
            DType::F64 => self.batches::<false>(a, at, count, step, d, nd, bin),
            _ => each_fitting(self, a, at, count, step, d, s, nd),
        }
    }

    #[inline(always)]
    fn one(&mut self, i: usize, s: usize, slot: &mut f64, p: f64) {
        let x = self.values[i];
        // A level's finer bin is the encoder's choice; the promise is `tol`.
        let step = self.steps[s.trailing_zeros() as usize];
        let valid = (self.valid)(i);
        let kept = if valid { quantise::code(self.dtype, x, if p.is_finite() { p } else { 0.0 }, step, self.tol) } else { None };
        if let Some(l) = &mut self.lanes {
            l.add_one(if valid { x } else { f64::NAN }, kept.map_or(x, |(_, r)| r));
        }
        // A kept element's value, finite as it is within `tol` of `x`, is what `rebuilt` makes.
        *slot = match kept {
            Some((q, r)) => {
                self.symbols.push(q);
                r
            }
            None => {
                self.exact.push(i as u64);
                rebuilt(self.dtype, p, 0, step)
            }
        };
    }
}

/// Undoes `quantise`: the symbols (walk order, taken one at a time from a fresh `symbols()`)
/// of a block of `n` elements whose bin is `step`, to the rebuilt values in C order as
/// little-endian `dtype`. With `omitted` (FLAG_OMIT; one flag an element, C order) those
/// elements take no symbol and read 0; a block written before FLAG_OMIT holds a symbol for
/// every element. An f32 or f64 block is walked in its own output bytes; an f32 one again in
/// f64 from fresh symbols in the rare block where a value does not fit an f32 (`Cell`).
pub fn dequantise<S: Symbols>(
    cfg: &Config,
    dtype: DType,
    mut symbols: impl FnMut() -> Result<S, String>,
    n: usize,
    omitted: Option<&[bool]>,
    step: f64,
) -> Result<(Vec<u8>, S), String> {
    let mut s = symbols()?;
    match dtype {
        DType::F32 => {
            if let Some(a) = rebuild::<Le32>(cfg, dtype, &mut s, n, omitted, step) {
                return Ok((a.into_flattened(), s));
            }
            s = symbols()?;
        }
        DType::F64 => {
            let a = rebuild::<Le64>(cfg, dtype, &mut s, n, omitted, step).expect("an f64 holds every rebuilt value");
            return Ok((a.into_flattened(), s));
        }
        _ => {}
    }
    let a = rebuild::<f64>(cfg, dtype, &mut s, n, omitted, step).expect("an f64 holds every rebuilt value");
    let mut out = Vec::new();
    crate::dtype::push_values(dtype, &a, &mut out);
    Ok((out, s))
}

/// `dequantise`'s values, or None where one does not fit a `T`.
fn rebuild<T: Cell>(cfg: &Config, dtype: DType, symbols: &mut impl Symbols, n: usize, omitted: Option<&[bool]>, step: f64) -> Option<Vec<T>> {
    let steps = cfg.level_steps(step);
    let mut a = vec![T::default(); n];
    let dims = cfg.dims(n);
    let mut fits = true;
    // The flags are read unchecked where a run fits the walk, so they must cover it.
    let omitted = omitted.map(|m| &m[..n]);
    super::cpu::tuned(#[inline(always)] || walk_in(&mut a, dims, cfg.order(), cfg.kind, Rebuild { symbols, steps, dtype, fits: &mut fits, omitted }));
    fits.then_some(a)
}

/// The element rebuilt from prediction `p` and symbol `q` into `slot`, or `fits` cleared where
/// it does not fit a `T` (the slot is then left as it is).
#[inline(always)]
fn put<T: Cell>(slot: &mut T, dtype: DType, p: f64, q: i64, bin: f64, fits: &mut bool) {
    match T::rebuild(dtype, p, q, bin) {
        Some(c) => *slot = c,
        None => *fits = false,
    }
}

/// The decoder's visitor: a run takes its symbols as a slice of the stream's batch, its bin
/// once, and reads its nodes with one bounds check for the run. With `omitted` (one flag an
/// element, as long as the walk) the flagged elements take no symbol and are rebuilt from 0.
struct Rebuild<'a, S> {
    symbols: &'a mut S,
    steps: [f64; 65],
    dtype: DType,
    fits: &'a mut bool,
    omitted: Option<&'a [bool]>,
}

impl<T: Cell, S: Symbols> Visit<T> for Rebuild<'_, S> {
    #[inline(always)]
    fn one(&mut self, i: usize, s: usize, slot: &mut T, p: f64) {
        let q = if self.omitted.is_some_and(|m| m[i]) { 0 } else { self.symbols.take() };
        put(slot, self.dtype, p, q, self.steps[s.trailing_zeros() as usize], self.fits);
    }

    #[inline(always)]
    fn run(&mut self, a: &mut [T], at: usize, count: usize, step: usize, d: usize, s: usize, nd: Nodes) {
        if !run_fits(a.len(), at, count, step, d, nd) {
            return each_checked(self, a, at, count, step, d, s, nd);
        }
        let bin = self.steps[s.trailing_zeros() as usize];
        let (dtype, mut fits) = (self.dtype, true);
        // A mask's runs are mostly all kept (open ocean) or all omitted (land): those two
        // take the loops without a flag test per element.
        let kept = match self.omitted {
            None => count,
            // SAFETY: `run_fits`: every element of the run lies in `a`, and `rebuild` cut the
            // flags to its length.
            Some(m) => (0..count).filter(|&j| !unsafe { *m.get_unchecked(at + j * step) }).count(),
        };
        let mut i = at;
        if kept == count {
            let mut left = count;
            while left > 0 {
                let syms = self.symbols.run(left);
                for &q in syms {
                    // SAFETY: `run_fits`: every element of the run (i is one: at most `count`
                    // symbols are taken) and every node it reads lie in `a`.
                    let p = unsafe { predict_at(a, i, d, nd) };
                    // SAFETY: as above.
                    put(unsafe { a.get_unchecked_mut(i) }, dtype, p, q as i64, bin, &mut fits);
                    i += step;
                }
                left -= syms.len();
            }
        } else if kept == 0 {
            for _ in 0..count {
                // SAFETY: `run_fits`, as above.
                let p = unsafe { predict_at(a, i, d, nd) };
                put(unsafe { a.get_unchecked_mut(i) }, dtype, p, 0, bin, &mut fits);
                i += step;
            }
        } else {
            let m = self.omitted.expect("a run with omitted elements has flags");
            let (mut syms, mut next, mut left) = (&[][..], 0, kept);
            for _ in 0..count {
                // SAFETY: `run_fits` and the flags' length, as above.
                let q = if unsafe { *m.get_unchecked(i) } {
                    0
                } else {
                    if next == syms.len() {
                        // At most the run's kept elements not yet given one: none is left over.
                        syms = self.symbols.run(left);
                        left -= syms.len();
                        next = 0;
                    }
                    next += 1;
                    syms[next - 1] as i64
                };
                // SAFETY: `run_fits`, as above.
                let p = unsafe { predict_at(a, i, d, nd) };
                put(unsafe { a.get_unchecked_mut(i) }, dtype, p, q, bin, &mut fits);
                i += step;
            }
        }
        if !fits {
            *self.fits = false;
        }
    }
}

/// Where a walk takes its symbols from, one at a time, in walk order.
pub trait Symbols {
    fn take(&mut self) -> i64;
    /// The next symbols (their bits as u64), at least one and at most `max` (> 0): what `take`
    /// would give, as many as are at hand.
    fn run(&mut self, max: usize) -> &[u64];
}

/// The symbols of a slice, 0 once they run out (the block's checks say so).
pub struct FromSlice<'a> {
    rest: &'a [i64],
    buf: [u64; 256],
}

impl Symbols for FromSlice<'_> {
    #[inline]
    fn take(&mut self) -> i64 {
        match self.rest.split_first() {
            Some((&q, rest)) => {
                self.rest = rest;
                q
            }
            None => 0,
        }
    }

    fn run(&mut self, max: usize) -> &[u64] {
        if self.rest.is_empty() {
            self.buf[0] = 0;
            return &self.buf[..1];
        }
        // Copied in one loop: `take` a symbol at a time stored `rest` back after each.
        let (now, rest) = self.rest.split_at(max.min(self.buf.len()).min(self.rest.len()).max(1));
        self.rest = rest;
        self.buf.iter_mut().zip(now).for_each(|(b, &q)| *b = q as u64);
        &self.buf[..now.len()]
    }
}

pub fn from_slice(s: &[i64]) -> FromSlice<'_> {
    FromSlice { rest: s, buf: [0; 256] }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes() -> Vec<[usize; 3]> {
        vec![[1, 1, 1], [1, 1, 2], [1, 1, 7], [1, 2, 2], [1, 7, 9], [3, 5, 4], [1, 33, 17], [4, 4, 16], [1, 1, 100]]
    }

    fn xorshift(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// The exact elements listed ascending, by flags where they are many (missing land) and by a
    /// sort where they are few: every one, once, in order.
    #[test]
    fn exact_elements_come_out_ascending() {
        let cfg = Config { grid: [1, 40, 50], kind: Kind::Cubic, order: ORDERS[0], levelwise: 0 };
        let mut s = 7u64;
        let values: Vec<f64> = (0..4000).map(|_| (xorshift(&mut s) % 1000) as f64 * 0.01).collect();
        // Flags for the first three (over 1/32 of the elements exact), a sort for the others.
        for (every, band) in [(2usize, 1000..1400), (3, 0..0), (100, 1000..1400), (100, 0..0), (4001, 0..0)] {
            let valid = |i: usize| i % every != 0 && !band.contains(&i);
            let mut w = quantise(&cfg, DType::F64, &values, valid, 1e-3);
            // Every element not valid is there, with any a rebuilt prediction put out of reach.
            assert!((0..4000u64).filter(|&i| !valid(i as usize)).all(|i| w.exact.contains(&i)), "every {every}");
            let mut want = w.exact.clone();
            want.sort_unstable();
            w.sort_exact();
            assert!(w.exact == want, "every {every}: {} listed, {} sorted", w.exact.len(), want.len());
        }
    }

    #[test]
    fn visits_every_element_once() {
        for grid in shapes() {
            for rows in [1, 2, 5] {
                let cfg = Config { grid, kind: Kind::Cubic, order: ORDERS[0], levelwise: 0 };
                let n = rows * grid.iter().product::<usize>();
                for order in [ORDERS[0], ORDERS[1], [2, 0, 3, 1]] {
                    let dims = cfg.dims(n);
                    let order = order.map(|k| k as usize);
                    let mut seen = vec![0u8; n];
                    walk(&mut vec![0.0; n], dims, order, Kind::Cubic, Each(|i: usize, _: usize, _: &mut f64, _: f64| seen[i] += 1));
                    assert!(seen.iter().all(|&c| c == 1), "{dims:?} {order:?}");
                }
            }
        }
    }

    /// Values at the edge of f32's range with missing elements among them: a missing element's
    /// cubic prediction can lie beyond f32::MAX, where `rebuilt` keeps the f64 prediction; the
    /// decoder must rebuild what the encoder's f64 walk did (it once stored f32 cells and got
    /// the elements after such a one wrong without a word).
    #[test]
    fn decoder_agrees_at_the_edge_of_f32() {
        let m = f32::MAX as f64;
        let mut r = crate::codec::xorshift(11);
        let mut wide = 0;
        for _ in 0..200 {
            let n = 16 + (r() % 48) as usize;
            let values: Vec<f64> = (0..n).map(|_| [m, -m, m / 2.0, -m / 2.0, m * 0.99][(r() % 5) as usize]).collect();
            let missing: Vec<bool> = (0..n).map(|_| r() % 4 == 0).collect();
            for cfg in candidates([1, 1, n]) {
                for tol in [1e30, 1e36] {
                    let w = quantise(&cfg, DType::F32, &values, |i| !missing[i], tol);
                    let mut omitted = vec![false; n];
                    w.exact.iter().for_each(|&i| omitted[i as usize] = true);
                    let (back, _) = dequantise(&cfg, DType::F32, || Ok(from_slice(&w.symbols)), n, Some(&omitted), 2.0 * tol).unwrap();
                    let mut want = Vec::new();
                    crate::dtype::push_values(DType::F32, &w.rebuilt, &mut want);
                    assert_eq!(back, want, "{cfg:?} {values:?} {missing:?}");
                    wide += rebuild::<Le32>(&cfg, DType::F32, &mut from_slice(&w.symbols), n, Some(&omitted), 2.0 * tol).is_none() as usize;
                }
            }
        }
        assert!(wide > 0, "no block needed the f64 walk: the test does not reach the fallback");
    }

    /// Symbols handed out at most `most` at a time (a stream whose batch ends mid-run).
    struct Trickle<'a> {
        rest: &'a [i64],
        most: usize,
        buf: Vec<u64>,
    }

    impl Symbols for Trickle<'_> {
        fn take(&mut self) -> i64 {
            let (&q, rest) = self.rest.split_first().unwrap_or((&0, &[]));
            self.rest = rest;
            q
        }

        fn run(&mut self, max: usize) -> &[u64] {
            let k = max.min(self.most).min(self.rest.len()).max(1);
            self.buf = (0..k).map(|_| self.take() as u64).collect();
            &self.buf
        }
    }

    /// A block with every element kept is decoded a run at a time (`Rebuild::run`, symbols
    /// taken as slices): it rebuilds what the encoder's element-by-element walk did, bit for
    /// bit, however the stream cuts its symbols into runs, for every configuration, f32 and f64.
    #[test]
    fn run_decoder_agrees_with_the_encoder() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut runs = 0;
        for grid in shapes() {
            let n = 3 * grid.iter().product::<usize>();
            let smooth: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin() * 50.0 + 280.0).collect();
            let noise: Vec<f64> = (0..n).map(|_| (xorshift(&mut s) % 10_000) as f64 * 1e-3 - 5.0).collect();
            for values in [smooth, noise] {
                for cfg in candidates(grid) {
                    for (dtype, tol) in [(DType::F32, 1e-2), (DType::F64, 1e-7)] {
                        let values: Vec<f64> = values.iter().map(|&v| crate::dtype::round_to(dtype, v)).collect();
                        let w = quantise(&cfg, dtype, &values, |_| true, tol);
                        if !w.exact.is_empty() {
                            continue;
                        }
                        runs += 1;
                        let mut want = Vec::new();
                        crate::dtype::push_values(dtype, &w.rebuilt, &mut want);
                        for most in [1, 3, 256] {
                            let trickle = || Ok(Trickle { rest: &w.symbols, most, buf: Vec::new() });
                            let (back, rest) = dequantise(&cfg, dtype, trickle, n, None, 2.0 * tol).unwrap();
                            assert_eq!(back, want, "{cfg:?} {dtype} runs of at most {most}");
                            assert!(rest.rest.is_empty(), "every symbol taken");
                        }
                    }
                }
            }
        }
        assert!(runs > 0, "no block kept every element: the test does not reach the run decoder");
    }

    /// A block with omitted elements (a mask: land, fill values) is decoded a run at a time
    /// too: runs wholly kept, wholly omitted and mixed (`Rebuild::run`'s three loops) rebuild
    /// what the encoder did, bit for bit, however the stream cuts its symbols, in both twins,
    /// and every symbol is taken.
    #[test]
    fn masked_run_decoder_agrees_with_the_encoder() {
        let mut s = 0x1405_7b7e_f767_814fu64;
        let (mut whole, mut none, mut mixed) = (0, 0, 0);
        for grid in [[1, 40, 50], [3, 17, 33], [1, 1, 300]] {
            let n = grid.iter().product::<usize>();
            let [_, rows, cols] = grid;
            let values: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin() * 50.0 + 280.0 + (xorshift(&mut s) % 100) as f64 * 1e-3).collect();
            // Land: whole rows, a block of rows and columns, one row with every other element
            // missing, and a coast of scattered elements on every fifth row; the other rows
            // are all sea.
            let land = |i: usize| {
                let (r, c) = ((i / cols) % rows, i % cols);
                r < rows / 4 || (r < rows / 2 && c < cols / 3) || (r == rows / 2 && c % 2 == 0) || (r % 5 == 1 && (7 * c) % 13 == 3)
            };
            for cfg in candidates(grid) {
                for (dtype, tol) in [(DType::F32, 1e-2), (DType::F64, 1e-7)] {
                    let values: Vec<f64> = values.iter().map(|&v| crate::dtype::round_to(dtype, v)).collect();
                    let w = quantise(&cfg, dtype, &values, |i| !land(i), tol);
                    let mut omitted = vec![false; n];
                    w.exact.iter().for_each(|&i| omitted[i as usize] = true);
                    let mut want = Vec::new();
                    crate::dtype::push_values(dtype, &w.rebuilt, &mut want);
                    for most in [1, 3, 256] {
                        let trickle = || Ok(Trickle { rest: &w.symbols, most, buf: Vec::new() });
                        let (back, rest) = dequantise(&cfg, dtype, trickle, n, Some(&omitted), 2.0 * tol).unwrap();
                        assert_eq!(back, want, "{cfg:?} {dtype} runs of at most {most}");
                        assert!(rest.rest.is_empty(), "every symbol taken");
                        let (back, _) = crate::codec::cpu::baseline(|| dequantise(&cfg, dtype, trickle, n, Some(&omitted), 2.0 * tol)).unwrap();
                        assert_eq!(back, want, "{cfg:?} {dtype} runs of at most {most}, the baseline twin");
                    }
                    // The walk's runs lie along rows: rows all sea, all land and mixed bring
                    // runs to each of the three loops.
                    for row in omitted.chunks(cols) {
                        let k = row.iter().filter(|&&o| o).count();
                        whole += (k == 0) as usize;
                        none += (k == cols) as usize;
                        mixed += (k > 0 && k < cols) as usize;
                    }
                }
            }
        }
        assert!(whole > 0 && none > 0 && mixed > 0, "runs kept {whole}, omitted {none}, mixed {mixed}: a loop not reached");
    }

    /// `quantise` codes runs a batch at a time (`Quantiser::batches`, compiled for this CPU by
    /// `cpu::tuned`, and for the baseline): the same symbols, exact elements and rebuilt values,
    /// to the bit, as the walk element by element through `quantise::code`, on smooth data,
    /// noise, a lattice whose residuals fall on bins' edges (ties), and wild bits (NaN,
    /// infinities, huge values).
    #[test]
    fn batched_quantiser_codes_what_code_does_element_by_element() {
        let mut s = 0x5851_f42d_4c95_7f2du64;
        let mut ties = 0;
        for grid in shapes().into_iter().chain([[2, 70, 90]]) {
            let n = 3 * grid.iter().product::<usize>();
            let smooth: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin() * 50.0 + 280.0).collect();
            let noise: Vec<f64> = (0..n).map(|_| (xorshift(&mut s) % 10_000) as f64 * 1e-3 - 5.0).collect();
            let lattice: Vec<f64> = (0..n).map(|_| (xorshift(&mut s) % 64) as f64 / 8.0).collect();
            let mut wild: Vec<f64> = (0..n).map(|_| f64::from_bits(xorshift(&mut s))).collect();
            wild.iter_mut().step_by(5).for_each(|v| *v = f64::INFINITY);
            for values in [smooth, noise, lattice, wild] {
                for cfg in candidates(grid) {
                    for (dtype, tol) in [(DType::F32, 1e-2), (DType::F64, 1e-7), (DType::F64, 0.125), (DType::F32, 0.125), (DType::F32, 1e30)] {
                        let values: Vec<f64> = values.iter().map(|&v| crate::dtype::round_to(dtype, v)).collect();
                        let valid = |i: usize| i % 13 != 4;
                        let w = quantise(&cfg, dtype, &values, valid, tol);
                        let base = super::super::cpu::baseline(|| quantise(&cfg, dtype, &values, valid, tol));
                        assert_eq!((&w.symbols, &w.exact), (&base.symbols, &base.exact), "{cfg:?} {dtype} {tol}: the baseline's batches");
                        let steps = cfg.level_steps(2.0 * tol);
                        let (mut symbols, mut exact) = (Vec::new(), Vec::new());
                        let mut a = vec![0f64; n];
                        walk(&mut a, cfg.dims(n), cfg.order(), cfg.kind, Each(|i: usize, s: usize, slot: &mut f64, p: f64| {
                            let step = steps[s.trailing_zeros() as usize];
                            if valid(i) {
                                let y = (values[i] - if p.is_finite() { p } else { 0.0 }) / step;
                                ties += ((y - y.trunc()).abs() == 0.5) as usize;
                            }
                            let kept = if valid(i) { quantise::code(dtype, values[i], if p.is_finite() { p } else { 0.0 }, step, tol) } else { None };
                            *slot = match kept {
                                Some((q, r)) => {
                                    symbols.push(q);
                                    r
                                }
                                None => {
                                    exact.push(i as u64);
                                    rebuilt(dtype, p, 0, step)
                                }
                            };
                        }));
                        assert_eq!(w.symbols, symbols, "{cfg:?} {dtype} {tol}");
                        assert_eq!(w.exact, exact, "{cfg:?} {dtype} {tol}");
                        assert!(w.rebuilt.iter().zip(&a).all(|(x, y)| x.to_bits() == y.to_bits()), "{cfg:?} {dtype} {tol}");
                    }
                }
            }
        }
        assert!(ties > 100, "only {ties} ties: the test does not reach the rounding's tie");
    }

    /// Every element within the bound or listed exact, on smooth data, noise, extremes and
    /// non-finite values, for every configuration, f32 and f64; the decoder rebuilds the same.
    #[test]
    fn bound_holds_and_decoder_agrees() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for grid in shapes() {
            let n = 3 * grid.iter().product::<usize>();
            let smooth: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin() * 50.0 + 280.0).collect();
            let noise: Vec<f64> = (0..n).map(|_| (xorshift(&mut s) % 10_000) as f64 * 1e-3 - 5.0).collect();
            let mut wild: Vec<f64> = (0..n).map(|_| f64::from_bits(xorshift(&mut s))).collect();
            wild.iter_mut().step_by(3).for_each(|v| *v = f64::NAN);
            for values in [smooth, noise, wild] {
                for cfg in candidates(grid) {
                    for (dtype, tol) in [(DType::F32, 1e-2), (DType::F64, 1e-7), (DType::F32, 1e30)] {
                        let values: Vec<f64> = values.iter().map(|&v| crate::dtype::round_to(dtype, v)).collect();
                        let w = quantise(&cfg, dtype, &values, |i| i % 17 != 5, tol);
                        let mut omitted = vec![false; n];
                        w.exact.iter().for_each(|&i| omitted[i as usize] = true);
                        assert_eq!(w.symbols.len(), n - w.exact.len(), "a symbol for each kept element");
                        let (back, _) = dequantise(&cfg, dtype, || Ok(from_slice(&w.symbols)), n, Some(&omitted), 2.0 * tol).unwrap();
                        let mut want = Vec::new();
                        crate::dtype::push_values(dtype, &w.rebuilt, &mut want);
                        assert_eq!(back, want, "{cfg:?}");
                        let back = rebuild::<f64>(&cfg, dtype, &mut from_slice(&w.symbols), n, Some(&omitted), 2.0 * tol).unwrap();
                        let exact: std::collections::HashSet<u64> = w.exact.iter().copied().collect();
                        for (i, (&x, &y)) in values.iter().zip(&back).enumerate() {
                            if i % 17 == 5 {
                                assert!(exact.contains(&(i as u64)));
                            } else if !exact.contains(&(i as u64)) {
                                assert!((x - y).abs() <= tol, "{cfg:?} {dtype} i={i} x={x:e} y={y:e}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn predicts_smooth_grids_from_both_sides() {
        // A quadratic along every axis: cubic interpolation (and its three-node edge formulas)
        // is exact on it, so away from the far edges every symbol is 0.
        let grid = [1, 17, 33];
        let mut values = Vec::new();
        for i in 0..9 {
            for j in 0..17 {
                for k in 0..33 {
                    values.push(1000.0 + 3.0 * (i * i) as f64 + 16.0 * j as f64 - (k * k) as f64 * 0.5);
                }
            }
        }
        let cfg = Config { grid, kind: Kind::Cubic, order: ORDERS[0], levelwise: 0 };
        let w = quantise(&cfg, DType::F64, &values, |_| true, 0.01);
        let zeros = w.symbols.iter().filter(|&&q| q == 0).count();
        assert!(zeros * 10 >= w.symbols.len() * 9, "{zeros} of {}", w.symbols.len());
        assert!(w.exact.is_empty());
    }

    #[test]
    fn damaged_configurations_are_refused() {
        let mut out = Vec::new();
        Config { grid: [1, 4, 5], kind: Kind::Cubic, order: [3, 2, 1, 0], levelwise: 1 }.write(&mut out);
        assert!(Config::read(&mut Cursor::new(&out), 40).is_ok());
        assert!(Config::read(&mut Cursor::new(&out), 41).is_err(), "a grid that does not tile");
        for (at, v) in [(3, 7u8), (4, 1), (8, 9)] {
            let mut bad = out.clone();
            bad[at] = v;
            assert!(Config::read(&mut Cursor::new(&bad), 40).is_err(), "byte {at} = {v}");
        }
        assert!(Config::read(&mut Cursor::new(&out[..5]), 40).is_err());
    }
}
