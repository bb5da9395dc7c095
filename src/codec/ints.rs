//! Integer codes to bytes, as a chain of `stages`: the predictor that costs least (none with an
//! offset, delta, Lorenzo over the chunk's grid, or a linear prediction from another variable),
//! then the smallest of the entropy stages tried (`ac` under two contexts; packing + shuffle +
//! zstd). Quantised floats and lossless integers both end here.
//!
//! Predictors run on the integer codes, not on floats, so the decoder inverts them exactly
//! (wrapping arithmetic: no overflow, no rounding) whatever machine it runs on.

use std::borrow::Cow;

use super::ac::{AcConfig, Context};
use super::rans;
use super::stages::{self, zigzag, Arithmetic, Chain, CodesStage, Delta, Lorenzo, Norm, Offset, Packed, Rans, Reference, Refs, Shuffle, Sign, Zstd};
use crate::wire::{put_varint, Cursor};

/// The trailing two dimensions (d1, d2) of a chunk's grid, C order; the leading dimension is
/// whatever is left (rows x any other row dimensions). `None` for tables and 1-D data.
pub type Grid = Option<[usize; 2]>;

/// The grid of a chunk whose rows have this shape (a dataset's shape without its first axis):
/// the rows' last two axes (a 1-D row is 1 x its length); None for rows of one element.
pub fn row_grid(row_shape: &[u64]) -> Grid {
    match row_shape {
        [] => None,
        [w] => Some([1, *w as usize]),
        [.., h, w] => Some([*h as usize, *w as usize]),
    }
}

/// The Lorenzo prediction of element `x` from the elements before it in C order; neighbours
/// outside the grid count as 0. `plane = d1 * d2`.
#[inline(always)]
pub fn lorenzo(a: &[i64], x: usize, plane: usize, d2: usize) -> i64 {
    let n = Neighbours { plane, d2 };
    match (x >= plane, x % plane >= d2, x % d2 > 0) {
        (false, false, false) => n.predict::<false, false, false>(a, x),
        (false, false, true) => n.predict::<false, false, true>(a, x),
        (false, true, false) => n.predict::<false, true, false>(a, x),
        (false, true, true) => n.predict::<false, true, true>(a, x),
        (true, false, false) => n.predict::<true, false, false>(a, x),
        (true, false, true) => n.predict::<true, false, true>(a, x),
        (true, true, false) => n.predict::<true, true, false>(a, x),
        (true, true, true) => n.predict::<true, true, true>(a, x),
    }
}

pub(super) fn lorenzo_residuals(codes: &[i64], [d1, d2]: [usize; 2]) -> Vec<i64> {
    let plane = d1 * d2;
    if plane == 0 {
        return codes.to_vec();
    }
    let mut r = vec![0i64; codes.len()];
    let row = Neighbours { plane, d2 };
    // A row at a time, as `undo_rows`.
    for x0 in (0..codes.len()).step_by(d2) {
        let end = (x0 + d2).min(codes.len());
        match (x0 >= plane, x0 % plane >= d2) {
            (false, false) => row.residuals::<false, false>(codes, &mut r, x0, end),
            (false, true) => row.residuals::<false, true>(codes, &mut r, x0, end),
            (true, false) => row.residuals::<true, false>(codes, &mut r, x0, end),
            (true, true) => row.residuals::<true, true>(codes, &mut r, x0, end),
        }
    }
    r
}

/// `lorenzo` with the neighbours that exist known in advance: `I` a plane before, `J` a row
/// before, `K` an element before.
#[derive(Clone, Copy)]
struct Neighbours {
    plane: usize,
    d2: usize,
}

impl Neighbours {
    #[inline(always)]
    fn predict<const I: bool, const J: bool, const K: bool>(self, a: &[i64], x: usize) -> i64 {
        let (plane, d2) = (self.plane, self.d2);
        let mut p = 0i64;
        if K {
            p = p.wrapping_add(a[x - 1]);
        }
        if J {
            p = p.wrapping_add(a[x - d2]);
        }
        if I {
            p = p.wrapping_add(a[x - plane]);
        }
        if J && K {
            p = p.wrapping_sub(a[x - d2 - 1]);
        }
        if I && K {
            p = p.wrapping_sub(a[x - plane - 1]);
        }
        if I && J {
            p = p.wrapping_sub(a[x - plane - d2]);
        }
        if I && J && K {
            p = p.wrapping_add(a[x - plane - d2 - 1]);
        }
        p
    }

    #[inline(always)]
    fn residuals<const I: bool, const J: bool>(self, c: &[i64], r: &mut [i64], x0: usize, end: usize) {
        r[x0] = c[x0].wrapping_sub(self.predict::<I, J, false>(c, x0));
        for x in x0 + 1..end {
            r[x] = c[x].wrapping_sub(self.predict::<I, J, true>(c, x));
        }
    }
}

/// Undoes `lorenzo_residuals` in place, in C order.
pub(super) fn lorenzo_undo(codes: &mut [i64], grid: [usize; 2]) {
    undo_rows::<false>(codes, grid, &[]);
}

/// `lorenzo_undo` for a block whose `omitted` elements have no residual: each repeats the last
/// kept code before it, 0 before the first (`missing::fill_codes`, the encoder's rule).
pub(super) fn lorenzo_undo_omitting(codes: &mut [i64], grid: [usize; 2], omitted: &[bool]) {
    undo_rows::<true>(codes, grid, omitted);
}

/// `lorenzo`'s undo a row at a time: which neighbours exist is known for the whole row (all
/// but its first element have one before), so the inner loop has no division and no branch on
/// them. Wrapping sums in any order are the same sums: the codes are `lorenzo`'s.
fn undo_rows<const OMIT: bool>(codes: &mut [i64], [d1, d2]: [usize; 2], omitted: &[bool]) {
    let plane = d1 * d2;
    if plane == 0 {
        return;
    }
    let mut last = 0i64;
    let row = RowUndo { at: Neighbours { plane, d2 }, omitted };
    for x0 in (0..codes.len()).step_by(d2) {
        let end = (x0 + d2).min(codes.len());
        match (x0 >= plane, x0 % plane >= d2) {
            (false, false) => row.run::<OMIT, false, false>(codes, x0, end, &mut last),
            (false, true) => row.run::<OMIT, false, true>(codes, x0, end, &mut last),
            (true, false) => row.run::<OMIT, true, false>(codes, x0, end, &mut last),
            (true, true) => row.run::<OMIT, true, true>(codes, x0, end, &mut last),
        }
    }
}

struct RowUndo<'a> {
    at: Neighbours,
    omitted: &'a [bool],
}

impl RowUndo<'_> {
    /// Elements `x0..end` of one row; `I`, `J`: the row has a plane and a row before it.
    #[inline(always)]
    fn run<const OMIT: bool, const I: bool, const J: bool>(&self, a: &mut [i64], x0: usize, end: usize, last: &mut i64) {
        self.one::<OMIT, I, J, false>(a, x0, last);
        for x in x0 + 1..end {
            self.one::<OMIT, I, J, true>(a, x, last);
        }
    }

    #[inline(always)]
    fn one<const OMIT: bool, const I: bool, const J: bool, const K: bool>(&self, a: &mut [i64], x: usize, last: &mut i64) {
        if OMIT && self.omitted[x] {
            a[x] = *last;
            return;
        }
        a[x] = a[x].wrapping_add(self.at.predict::<I, J, K>(a, x));
        if OMIT {
            *last = a[x];
        }
    }
}

/// Whether a grid's planes tile `n` elements (a grid that does not is ignored).
fn fits(grid: Grid, n: usize) -> Option<[usize; 2]> {
    grid.filter(|&[d1, d2]| d1 > 0 && d2 > 0 && n % (d1 * d2) == 0 && (n > d1 * d2 || d1 > 1))
}

/// Bits the `ac` stage spends on these unsigned values, about: the order-0 entropy of their
/// sub-bins (bucket and top `ESTIMATE_TREE_BITS` bits, what `ac` learns a distribution over),
/// plus the bits below. Cheap enough to run for every predictor, and close enough to choose one.
fn cost(u: impl Iterator<Item = u64>) -> f64 {
    super::cpu::tuned(#[inline(always)] || cost_in(u))
}

#[inline(always)]
fn cost_in(u: impl Iterator<Item = u64>) -> f64 {
    let mut hist = [0u32; ESTIMATE_BINS];
    let mut below = 0u64;
    let mut n = 0u64;
    for v in u {
        let (bin, bits) = sub_bin(v);
        hist[bin] += 1;
        below += bits;
        n += 1;
    }
    bins_bits(hist.iter().copied(), n as f64, below)
}

const ESTIMATE_TREE_BITS: usize = 6;
/// The sub-bins `sub_bin` numbers: shifts run to 64 - (ESTIMATE_TREE_BITS + 1).
const ESTIMATE_BINS: usize = (65 - ESTIMATE_TREE_BITS) << ESTIMATE_TREE_BITS;

/// `v`'s sub-bin for the estimates, and the bits below it. Found in three operations (the
/// estimates run dozens of times a block): the bits below the top T + 1 are shifted out, and
/// what is left (the value itself under 2^(T+1), else T + 1 bits with the top one set) is
/// unique within its shift. The bins so numbered rise with the values they hold, so a sum in
/// bin order visits the non-empty ones in the same order as before (the same float sum: the
/// same choices), and the loop ran 1.4x as fast as one that took bucket and top bits apart.
#[inline(always)]
fn sub_bin(v: u64) -> (usize, u64) {
    const T: usize = ESTIMATE_TREE_BITS;
    let shift = (64 - v.leading_zeros() as usize).saturating_sub(T + 1);
    ((shift << T) + (v >> shift) as usize, shift as u64)
}

/// The bits of `n` values whose sub-bins hold `counts` (in bin order; empty ones add nothing)
/// with `below` bits under them: every estimate's sum, written once so they agree to the bit.
fn bins_bits(counts: impl Iterator<Item = u32>, n: f64, below: u64) -> f64 {
    below as f64 + counts.filter(|&h| h > 0).map(|h| h as f64 * (n / h as f64).log2()).sum::<f64>()
}

/// `cost` of K sequences in one pass over a block's priced elements: `of(i, c, before)` gives
/// the values in each of element i, whose code is `c` and the code before it `before` (0
/// before the first). Each sum is `cost`'s to the bit (the same bins in the same order), and a
/// pass reads the codes once where K passes read them K times.
fn costs<const K: usize>(at: &PriceAt, codes: &[i64], of: impl Fn(usize, i64, i64) -> [u64; K]) -> [f64; K] {
    costs_where(at, codes, |_, _, _| [true; K], of).map(|(bits, _)| bits)
}

/// `costs` of the priced elements each sequence's `keep(i, c, before)` admits, with how many
/// it admitted.
fn costs_where<const K: usize>(
    at: &PriceAt,
    codes: &[i64],
    keep: impl Fn(usize, i64, i64) -> [bool; K],
    of: impl Fn(usize, i64, i64) -> [u64; K],
) -> [(f64, u64); K] {
    super::cpu::tuned(#[inline(always)] || costs_where_in(at, codes, keep, of))
}

#[inline(always)]
fn costs_where_in<const K: usize>(
    at: &PriceAt,
    codes: &[i64],
    keep: impl Fn(usize, i64, i64) -> [bool; K],
    of: impl Fn(usize, i64, i64) -> [u64; K],
) -> [(f64, u64); K] {
    // Tables a power of two long, so that a bin's index, masked, needs no bounds check.
    const SIZE: usize = ESTIMATE_BINS.next_power_of_two();
    let mut hist = vec![[0u32; SIZE]; K];
    let mut below = [0u64; K];
    let mut n = [0u64; K];
    for run in at.runs() {
        let mut before = if run.start > 0 { codes[run.start - 1] } else { 0 };
        for (i, &c) in run.clone().zip(&codes[run]) {
            let kept = keep(i, c, before);
            for (k, v) in of(i, c, before).into_iter().enumerate() {
                // Every table written, 0 added where a sequence does not keep the element (one
                // sequence may keep what another does not).
                let (bin, bits) = sub_bin(v);
                hist[k][bin & (SIZE - 1)] += kept[k] as u32;
                below[k] += bits * kept[k] as u64;
                n[k] += kept[k] as u64;
            }
            before = c;
        }
    }
    std::array::from_fn(|k| (bins_bits(hist[k][..ESTIMATE_BINS].iter().copied(), n[k] as f64, below[k]), n[k]))
}

/// The run `cost_by_runs` estimates `ac` over at a fast level: runs of 512 chose as these did
/// on the 27 field/bound pairs one 2-D slice a chunk, runs of 2048 let `ac` into fewer blocks
/// where it saves (0.07 % larger in all).
const AC_ESTIMATE_RUN: usize = 1024;

/// What `ac`'s coding of a block comes to above `cost_by_runs`'s estimate, about: the
/// estimate leaves out what `ac` spends learning each context's trees. On the 27 field/bound
/// pairs one 2-D slice a chunk at the default level, `ac` was coded on 233 blocks where
/// `rans` was coded too, 1.5-9.2 % above the estimate (median 2.6 %), and kept on 35: the
/// other 198 codings were thrown away. Asking the estimate for this much more, `ac` is coded
/// on 197 of the 383 blocks it was (174 of the 198 no longer) and left out of 12 it won: the
/// pairs' files 0.035 % larger in all (UKV at 1e-2 1.1 %, GloSea4 0.5 %, COLPEX 0.2 %), GloSea4's
/// writes at 1e-2 1.27x as fast and UKV's 1.17x (h5py, one thread).
const AC_ESTIMATE_SLACK: f64 = 0.02;

/// `cost_by_runs_in` over the whole block, in the twin (for tests; coding asks
/// `cost_by_runs_passes`).
#[cfg(test)]
fn cost_by_runs(u: &[u64], run: usize) -> f64 {
    super::cpu::tuned(#[inline(always)] || cost_by_runs_in(u, run, |_| false))
}

/// Whether `cost_by_runs(u, run)` passes `test`, which must fail for any larger cost: the sum
/// only grows run by run (each run adds bits, none negative, and adding rounds monotonically),
/// so once a partial sum fails the whole does, and the runs after it are not counted.
fn cost_by_runs_passes(u: &[u64], run: usize, test: impl Fn(f64) -> bool) -> bool {
    test(super::cpu::tuned(#[inline(always)] || cost_by_runs_in(u, run, |bits| !test(bits))))
}

/// `cost` summed over runs of `run` values: about what `ac`, which adapts as it goes, spends
/// on values whose distribution drifts along the block (a walk's symbols, coarse levels
/// first), where one entropy over the whole block overstates it. Only the sub-bins a run
/// touches are summed and cleared, so a short run costs what its values do. The sum so far is
/// returned once `stop` says so of it.
#[inline(always)]
fn cost_by_runs_in(u: &[u64], run: usize, stop: impl Fn(f64) -> bool) -> f64 {
    // As long as a power of two, so that a bin masked to it needs no bounds check (the mask
    // changes no bin: `sub_bin`'s are below ESTIMATE_BINS); the two checks an element were 4
    // of its 26 instructions (callgrind, GloSea4's `pack` at 1e-2, where this loop was 9 %).
    const SIZE: usize = ESTIMATE_BINS.next_power_of_two();
    // `touched` keeps bins as u16: half the bytes.
    const { assert!(SIZE <= 1 << 16) };
    let mut hist = Box::new([0u32; SIZE]);
    // Each run's sub-bins in the order first touched; every bin is written and the count moved
    // on only for a new one (a branch there mispredicted on most symbols).
    let run = run.max(1);
    let mut touched = vec![0u16; run.min(u.len()).max(1)];
    let mut bits = 0.0;
    for part in u.chunks(run) {
        let mut below = 0u64;
        let mut new = 0;
        for &v in part {
            let (bin, shift) = sub_bin(v);
            let bin = bin & (SIZE - 1);
            debug_assert!(new < part.len() && part.len() <= touched.len());
            // SAFETY: `new` counts the new bins among the part's elements before this one, so
            // it is below the part's length, which is at most `touched`'s (a chunk of `u` of at
            // most `run`).
            unsafe { *touched.get_unchecked_mut(new) = bin as u16 };
            new += (hist[bin] == 0) as usize;
            hist[bin] += 1;
            below += shift;
        }
        bits += bins_bits(touched[..new].iter().map(|&b| hist[b as usize]), part.len() as f64, below);
        touched[..new].iter().for_each(|&b| hist[b as usize] = 0);
        if stop(bits) {
            break;
        }
    }
    bits
}

/// About the bits `codes` (a walk's symbols, centred on 0) cost zigzagged: `cost`'s sub-bin
/// entropy, which ranks walks at a fraction of `trial_len`'s price.
pub fn estimate(codes: &[i64]) -> f64 {
    cost(codes.iter().map(|&c| zigzag(c)))
}

/// Variables before a block that `Reference` may predict it from: the nearest this many (a
/// table's related columns sit together; the search stays linear in the column count).
const REFERENCE_WINDOW: usize = 24;
/// Elements the reference search fits and prices each candidate on (evenly spaced), and the
/// elements the winner's slope and offset are fitted on.
const REFERENCE_SCREEN: usize = 512;
const REFERENCE_FIT: usize = 4096;

/// The best linear prediction of `codes` from one of the variables before it: the candidates
/// are fitted (least squares) and priced on a sample, the winner on every element.
fn reference(codes: &[i64], refs: &Refs) -> Option<(Reference, f64)> {
    let n = codes.len();
    if n < 32 {
        return None;
    }
    let stride = (n / REFERENCE_SCREEN).max(1);
    let mut best: Option<(u32, f64)> = None;
    let first = refs.codes.len().saturating_sub(REFERENCE_WINDOW);
    for v in first..refs.codes.len() {
        let Some(r) = refs.get(v).filter(|r| r.len() == n) else { continue };
        let Some(cand) = fit(codes, r, stride, v as u32, false) else { continue };
        let k = cost(codes.iter().zip(r).step_by(stride).map(|(&c, &r)| zigzag(c.wrapping_sub(cand.predict(r)))));
        if best.as_ref().is_none_or(|b| k < b.1) {
            best = Some((v as u32, k));
        }
    }
    let (v, _) = best?;
    let r = refs.get(v as usize)?;
    let stage = fit(codes, r, (n / REFERENCE_FIT).max(1), v, true)?;
    let k = cost(codes.iter().zip(r).map(|(&c, &r)| zigzag(c.wrapping_sub(stage.predict(r)))));
    Some((stage, k))
}

/// The best `Norm` prediction of `codes`: the Euclidean norm of a run of 2 or 3 consecutive
/// variables before it (a four-vector's components sit together, E or pt after them). The
/// parts' ratios are their steps (the components of one vector are in one unit), times one
/// factor fitted to this block (the median of code / norm), and the offset is the median
/// residual (a jet's mass); each run is priced on a sample, the winner on every element.
fn norm(codes: &[i64], refs: &Refs) -> Option<(Norm, f64)> {
    let n = codes.len();
    if n < 32 {
        return None;
    }
    let stride = (n / NORM_SCREEN).max(1);
    // A norm is never negative (nor is a mass added to it): a column of signed values is not
    // one, and is spared the search.
    let negative = (0..n).step_by(stride).filter(|&i| codes[i] < 0).count();
    if negative * 20 > n / stride {
        return None;
    }
    let first = refs.codes.len().saturating_sub(REFERENCE_WINDOW);
    let mut best: Option<(Norm, f64)> = None;
    for k in [2, 3] {
        for start in first..(refs.codes.len() + 1).saturating_sub(k) {
            let Some(stage) = fit_norm(codes, refs, start..start + k, stride) else { continue };
            let parts = norm_parts(&stage, refs);
            let c = cost((0..n).step_by(stride).map(|i| zigzag(codes[i].wrapping_sub(Norm::norm_at(&parts, i).wrapping_add(stage.off)))));
            if best.as_ref().is_none_or(|b| c < b.1) {
                best = Some((stage, c));
            }
        }
    }
    let (stage, _) = best?;
    let parts = norm_parts(&stage, refs);
    let c = cost((0..n).map(|i| zigzag(codes[i].wrapping_sub(Norm::norm_at(&parts, i).wrapping_add(stage.off)))));
    Some((stage, c))
}

/// Elements each norm candidate is fitted and priced on: a table has dozens of runs of columns
/// to try for each column, and a norm that predicts wins by bits per element, not fractions.
const NORM_SCREEN: usize = 128;

fn norm_parts<'a>(stage: &Norm, refs: &Refs<'a>) -> Vec<(&'a [i64], f64)> {
    stage.parts.iter().filter_map(|&(v, r)| Some((refs.get(v as usize)?, r as f64))).collect()
}

fn fit_norm(codes: &[i64], refs: &Refs, vars: std::ops::Range<usize>, stride: usize) -> Option<Norm> {
    let n = codes.len();
    let mut parts = Vec::new();
    for v in vars {
        let c = refs.get(v).filter(|c| c.len() == n)?;
        parts.push((v as u32, c, refs.scale(v)?));
    }
    let physical: Vec<(&[i64], f64)> = parts.iter().map(|&(_, c, s)| (c, s)).collect();
    let norm = |i: usize| physical.iter().map(|&(c, s)| (c[i] as f64 * s).powi(2)).sum::<f64>().sqrt();
    let mut factors: Vec<f64> = (0..n).step_by(stride).filter_map(|i| Some(codes[i] as f64 / norm(i)).filter(|f| f.is_finite() && *f > 0.0)).collect();
    if factors.len() < 16 {
        return None;
    }
    let mid = factors.len() / 2;
    let g = *factors.select_nth_unstable_by(mid, f64::total_cmp).1;
    let ratios: Option<Vec<f32>> = parts.iter().map(|&(_, _, s)| Some((s * g) as f32).filter(|r| r.is_finite() && *r > 0.0)).collect();
    let mut stage = Norm { parts: parts.iter().map(|p| p.0).zip(ratios?).collect(), off: 0 };
    let exact = norm_parts(&stage, refs);
    let mut rest: Vec<i64> = (0..n).step_by(stride).map(|i| codes[i].wrapping_sub(Norm::norm_at(&exact, i))).collect();
    let mid = rest.len() / 2;
    stage.off = *rest.select_nth_unstable(mid).1;
    Some(stage)
}

/// Least squares of `codes` on `r` over every `stride`-th element, as the integer stage; with
/// `median`, the offset centres the residuals on their median (zigzag codes stay small), else
/// it is the least-squares intercept (cheap, for screening).
fn fit(codes: &[i64], r: &[i64], stride: usize, var: u32, median: bool) -> Option<Reference> {
    let (mut sx, mut sy, mut m) = (0f64, 0f64, 0f64);
    for (&y, &x) in codes.iter().zip(r).step_by(stride) {
        sx += x as f64;
        sy += y as f64;
        m += 1.0;
    }
    let (mx, my) = (sx / m, sy / m);
    let (mut sxx, mut sxy) = (0f64, 0f64);
    for (&y, &x) in codes.iter().zip(r).step_by(stride) {
        let dx = x as f64 - mx;
        sxx += dx * dx;
        sxy += dx * (y as f64 - my);
    }
    if !(sxx > 0.0) {
        return None;
    }
    let slope = (sxy / sxx * (1u64 << stages::REFERENCE_SHIFT) as f64).round();
    if !(slope.abs() < 2f64.powi(62)) || slope == 0.0 {
        return None;
    }
    let mut stage = Reference { var, slope: slope as i64, off: 0 };
    if median {
        let mut rest: Vec<i64> = codes.iter().zip(r).step_by(stride).map(|(&y, &x)| y.wrapping_sub(stage.predict(x))).collect();
        let mid = rest.len() / 2;
        stage.off = *rest.select_nth_unstable(mid).1;
    } else {
        let intercept = my - (slope / (1u64 << stages::REFERENCE_SHIFT) as f64) * mx;
        stage.off = if intercept.abs() < 2f64.powi(62) { intercept.round() as i64 } else { 0 };
    }
    Some(stage)
}

/// What the predictor search chose for a block: its stages, the residuals they leave, how the
/// entropy stage sees them (sign, context) and whether repeat decisions pay on them.
struct Prediction<'a> {
    stages: Vec<Box<dyn CodesStage>>,
    /// The codes themselves where no stage predicts them (a walk's symbols, most often): not
    /// copied (the copy was 2.7 % of a level-1 `pack`).
    residual: Cow<'a, [i64]>,
    sign: Sign,
    context: Context,
    repeats: bool,
}

/// The least and greatest code (0, 0 for none), in one pass of scalar compares: baseline x86-64
/// has no 64-bit vector compare, and the compiler's emulation of one ran at 1.7 ns a code.
fn min_max(codes: &[i64]) -> (i64, i64) {
    // The baseline has no 64-bit compare (SSE4.2's `pcmpgtq`): AVX2's twin takes four a step.
    super::cpu::tuned(#[inline(always)] || min_max_in(codes))
}

#[inline(always)]
fn min_max_in(codes: &[i64]) -> (i64, i64) {
    let Some(&first) = codes.first() else { return (0, 0) };
    let (mut lo, mut hi) = (first, first);
    for &c in codes {
        lo = if c < lo { c } else { lo };
        hi = if c > hi { c } else { hi };
    }
    (lo, hi)
}

/// How `predictors` prices repeat decisions (`ac`'s; `rans` has none).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repeats {
    /// Not at all: a block coded with `rans` alone (a fast level's), or priced as `rans` codes
    /// it (`trial_len`'s large blocks: pricing repeats for the codes as they are there, two or
    /// three passes of each walk trial's, changed no choice on the 27 field/bound pairs, one
    /// chunk a field or one 2-D slice a chunk, and no `pack`).
    Never,
    /// For the codes as they are and for the winner.
    Both,
}

/// What an offset must save over zigzagged codes to be kept (see `predictors`).
const ZIGZAG_MARGIN: f64 = 0.02;

/// The predictor stages tried on a block: none (with an offset to the block's smallest code),
/// delta, Lorenzo when a grid tiles the block, and a reference to another variable of the chunk;
/// the one whose residuals cost least is kept.
fn predictors<'a>(codes: &'a [i64], grid: Grid, refs: &Refs, at: PriceAt, repeats: Repeats) -> Prediction<'a> {
    // Each candidate is priced from an iterator; only the winner's residuals are materialised.
    #[derive(Clone, Copy)]
    enum Pick {
        Plain,
        Offset(i64),
        Delta,
        Lorenzo([usize; 2]),
        Reference(Reference),
        Norm,
    }
    let (min, max) = min_max(codes);
    // The codes as they are: zigzagged, or offset to the smallest code, which makes them small
    // and non-negative (a column far from 0) when their span fits in 63 bits. Codes on both
    // sides of 0 (a walk's, a centred column's) are priced both ways: the two cost the same
    // bits where the sub-bins resolve every value, but zigzagged the commonest, 0, is the
    // smallest symbol, which `ac`'s head decodes in one decision, not the seven of bucket 4's
    // sub-bins, and `rans`'s contexts (the bit lengths before) tell a calm run from a rough one.
    // The plain costs, each `cost`'s to the bit, in one pass: the codes zigzagged, offset to
    // the smallest, their deltas, and Lorenzo's residuals where a grid tiles the block (priced
    // a pass each, the predictors were a fifth of UKV's one-slice writes at 1e-3, perf).
    // The simple predictors are priced on `PriceAt`'s elements, scaled to the whole block
    // (what a reference or norm is priced at).
    let lorenzo_grid = fits(grid, codes.len());
    // Where every element is priced (blocks up to `PRICE_RUNS` runs), Lorenzo's residuals are
    // made row by row first: no division an element (`lorenzo`'s index arithmetic was half the
    // pass), and they are the winner's residuals where Lorenzo wins.
    let by_rows = lorenzo_grid.filter(|_| at.len() == codes.len()).map(|g| lorenzo_residuals(codes, g));
    let [z, o, d, l] = match (lorenzo_grid, &by_rows) {
        (Some(_), Some(rows)) => costs(&at, codes, |i, c, before| [zigzag(c), c.wrapping_sub(min) as u64, zigzag(c.wrapping_sub(before)), zigzag(rows[i])]),
        (Some([d1, d2]), None) => costs(&at, codes, |i, c, before| {
            [zigzag(c), c.wrapping_sub(min) as u64, zigzag(c.wrapping_sub(before)), zigzag(c.wrapping_sub(lorenzo(codes, i, d1 * d2, d2)))]
        }),
        (None, _) => {
            let [z, o, d] = costs(&at, codes, |_, c, before| [zigzag(c), c.wrapping_sub(min) as u64, zigzag(c.wrapping_sub(before))]);
            [z, o, d, f64::INFINITY]
        }
    }
    .map(|k| at.scale(k));
    // Repeated values cost a repeat decision, not a symbol (`ac`'s repeats): priced so, delta
    // (which turns repeats into zeros but widens every other value) does not win on them.
    let with_repeats = if repeats == Repeats::Never { None } else { repeats_costs_at(codes, &at, min) };
    let plain = |sign: Sign| {
        let (k, r) = match sign {
            Sign::Zigzag => (z, with_repeats.map(|r| r[0])),
            Sign::Unsigned => (o, with_repeats.map(|r| r[1])),
        };
        let priced = r.filter(|&r| r < k);
        (priced.unwrap_or(k), priced.is_some())
    };
    let (mut pick, (mut best, plain_repeats)) = if max.checked_sub(min).is_none() {
        (Pick::Plain, plain(Sign::Zigzag))
    } else if min < 0 && max > 0 {
        match (plain(Sign::Zigzag), plain(Sign::Unsigned)) {
            (z, o) if o.0 >= z.0 * (1.0 - ZIGZAG_MARGIN) => (Pick::Plain, z),
            (_, o) => (Pick::Offset(min), o),
        }
    } else {
        (Pick::Offset(min), plain(Sign::Unsigned))
    };
    if d < best {
        (pick, best) = (Pick::Delta, d);
    }
    if let Some(g) = lorenzo_grid.filter(|_| l < best) {
        (pick, best) = (Pick::Lorenzo(g), l);
    }
    // A reference's configuration (a few varints), a norm's (a few more, and a ratio a part)
    // must be paid for.
    if let Some((stage, k)) = reference(codes, refs).filter(|&(_, k)| k + 64.0 < best) {
        (pick, best) = (Pick::Reference(stage), k + 64.0);
    }
    let mut by_norm = None;
    if let Some((stage, k)) = norm(codes, refs).filter(|(s, k)| k + 8.0 * ((4 + 6 * s.parts.len()) as f64) < best) {
        (pick, best) = (Pick::Norm, k);
        by_norm = Some(stage);
    }
    let _ = best;
    // The codes themselves, or a stage's residuals made from them in one pass
    // (`CodesStage::encoded`), not a copy changed in place (the copy was 2 % of a `pack`).
    let mut r = Cow::Borrowed(codes);
    let (stages, sign, context): (Vec<Box<dyn CodesStage>>, Sign, Context) = match pick {
        Pick::Plain => (vec![], Sign::Zigzag, Context::None),
        Pick::Offset(0) => (vec![], Sign::Unsigned, Context::None),
        Pick::Offset(by) => {
            r = Cow::Owned(Offset { by }.encoded(codes, refs));
            (vec![Box::new(Offset { by })], Sign::Unsigned, Context::None)
        }
        Pick::Delta => {
            r = Cow::Owned(Delta.encoded(codes, refs));
            (vec![Box::new(Delta)], Sign::Zigzag, Context::Previous)
        }
        Pick::Lorenzo(grid) => {
            let l = Lorenzo { grid };
            // Made for pricing already where every element was priced.
            r = Cow::Owned(by_rows.unwrap_or_else(|| l.encoded(codes, refs)));
            (vec![Box::new(l)], Sign::Zigzag, Context::Grid(grid[1] as u32))
        }
        Pick::Reference(stage) => {
            r = Cow::Owned(stage.encoded(codes, refs));
            (vec![Box::new(stage)], Sign::Zigzag, Context::None)
        }
        Pick::Norm => {
            let stage = by_norm.expect("picked with its stage");
            r = Cow::Owned(stage.encoded(codes, refs));
            (vec![Box::new(stage)], Sign::Zigzag, Context::None)
        }
    };
    // Without a predictor the repeats were priced above; another predictor's residuals are
    // priced now.
    let repeats = match pick {
        Pick::Plain | Pick::Offset(_) => plain_repeats,
        _ => repeats == Repeats::Both && repeats_pay(&r, &at, |c| sign.to_u(c)),
    };
    Prediction { stages, residual: r, sign, context, repeats }
}

/// The `ac` coder's settings: 64 sub-bins an octave learn a column's distribution closely
/// without diluting a block of a few thousand elements; a window of ~250 observations per
/// probability measured best on the real tables (issue63: 1000 and 4000 lost 0.1-0.2 % of raw,
/// 30 lost 0.1 %), whose rows drift.
const AC_TREE_BITS: u8 = 6;
const AC_ADAPT: u16 = 255;

/// Blocks up to this many elements also try the `ac` coder's second context.
const SMALL_BLOCK: usize = 4096;
/// Blocks up to this many elements also try coarser sub-bin trees: on a few hundred elements
/// learning 64 sub-bins an octave costs more than it saves (HZZ's electrons: 3-5 % of a block).
const TINY_BLOCK: usize = 1024;

/// Blocks of at least this many codes also try the `rans` stage (smaller ones are a table's
/// columns, where every byte shows and decoding speed does not).
const RANS_MIN: usize = 4096;
/// The share of a block `ac` must save to be kept over `rans`, which decodes a field's block
/// 4-8 times as fast. Measured on the 9 real fields (`scripts/bench_fields.py`) once exact
/// elements were left out of the codes: at 6 % instead of 3 % the blocks that switch are the
/// NCEP winds' walk symbols and one Levitus block (3-4.5 % larger, the winds read 2x as fast
/// through h5py) and issue63's largest columns (0.2-0.3 % larger, unpack 1.4x as fast); the
/// jets table and the other fields do not move.
pub(super) const AC_MARGIN: f64 = 0.06;
/// The share `ac` must save on a walk's block long enough to be decoded beside the walk
/// (`ahead::MIN_VALUES`), below `SEARCH_LEVEL`. There the coder's decoding sets the pace of
/// the whole read, and `rans`'s is several times as fast: the NCEP winds at 1e-2 (one chunk,
/// 126 144 walk symbols, which `ac` coded 9.9 % smaller) read behind SZ3's filter with `ac`
/// (282.6 against 319.9 MB/s, run AK) and decode 1.37x as fast with `rans` (the sixteenth
/// round). Of the nine fields and GloSea4 x20 at three bounds, `pack`ed at levels 1, 3, 9 and
/// 10 (4 MiB chunks), no other archive changed at this margin. `SEARCH_LEVEL` and above keep
/// `AC_MARGIN`: the smallest file, whatever it costs to read.
pub(super) const AC_MARGIN_STREAMED: f64 = 0.15;
/// The run a block of twice this many codes or more first compares `ac` and `rans` on. `ac`
/// learns from nothing on the run and `rans` pays tables for it alone; on the 27 field/bound
/// pairs of the benchmark the run favoured `ac`: the three large blocks whose run said `ac`
/// saved 3.8-4.2 % (all Levitus) saved 2.0 %, 2.1 % and -1.0 % on the whole, never the
/// `AC_MARGIN` it needs to be kept. So the run must show that margin itself: those three full
/// `ac` passes were spent for nothing (skipped, Levitus encoded 1.32x and 1.19x as fast at 1e-2
/// and 1e-3, one thread, the same bytes).
const AC_SAMPLE: usize = 1 << 16;

/// Whether `encode_omitting` above the fast level judges `ac` and zstd on a block of `n` codes
/// by a run of it (`AC_SAMPLE`), not on the whole.
pub(super) fn sampled(n: usize) -> bool {
    n >= 2 * AC_SAMPLE
}

/// How far above 1 zstd's ratio to `rans` on that run may be and zstd still win on the whole
/// block: a large block is coded with zstd in full only where the run says zstd may win. On
/// the large blocks of the 27 field/bound pairs of the benchmark the run's ratio was 5 % below
/// to 22 % above the whole's (the most above at loose bounds, where the whole's was 1.4-1.7;
/// within 1 % where either was under 1.06), and zstd never came within 2 % of the block kept: a
/// run that misjudges costs at most what zstd would have saved. The full passes this skips
/// (runs at 1.05-1.16, which once went on to the whole) were a sixth to a quarter of those
/// pairs' encode: glosea4 at 1e-4 278 -> 203 ms, HadCM3 A1B at 1e-3 37 -> 28 ms, on one thread,
/// the same bytes.
const ZSTD_SAMPLE_SLACK: f64 = 0.05;
/// Blocks from this many codes code `rans` on a second thread where the caller has one.
const PARALLEL_TRIALS: usize = 1 << 16;

/// Whether repeat decisions pay on `codes`: they cost less than coding every value, both
/// priced on `at`'s elements as the predictors are. (Sampled so, rather than priced on every
/// element of a large block, the 27 field/bound pairs of the benchmark code to the same bytes
/// and encode 0.99-1.18x as fast, median 1.09, on one thread.)
fn repeats_pay(codes: &[i64], at: &PriceAt, u: impl Fn(i64) -> u64) -> bool {
    // The values that are not a repeat (with a decision an element, as `repeats_costs_at`
    // prices them) against all of them, in one pass.
    let [(rest, kept), (all, _)] = costs_where(at, codes, |i, c, before| [!is_repeat(i, c, before), true], |_, c, _| [u(c); 2]);
    let repeated = (at.len() as u64 - kept) as usize;
    repeats_priced(repeated, at.len()) && at.scale(rest + flag_bits(repeated, at.len())) < at.scale(all)
}

/// Whether element `i`, whose code is `c` and the code before it `before`, repeats the one
/// before: what a repeat decision codes in place of a symbol.
#[inline(always)]
fn is_repeat(i: usize, c: i64, before: i64) -> bool {
    i > 0 && before == c
}

/// Whether `repeated` of `priced` elements (over 2 %) make repeat decisions worth pricing.
fn repeats_priced(repeated: usize, priced: usize) -> bool {
    repeated * 50 > priced
}

/// The estimated cost of `codes` zigzagged and offset by `min` (`predictors`' two plain forms)
/// with repeat decisions, priced on `at`'s elements and scaled to the whole block: the values
/// that are not a repeat of the one before, plus a decision per element; None where under 2 %
/// repeat. The repeats are counted once, the rest priced in one pass.
fn repeats_costs_at(codes: &[i64], at: &PriceAt, min: i64) -> Option<[f64; 2]> {
    let repeated = at.iter().filter(|&i| is_repeat(i, codes[i], codes[i.saturating_sub(1)])).count();
    if !repeats_priced(repeated, at.len()) {
        return None;
    }
    let rest = costs_where(at, codes, |i, c, before| [!is_repeat(i, c, before); 2], |_, c, _| [zigzag(c), c.wrapping_sub(min) as u64]);
    Some(rest.map(|(r, _)| at.scale(r + flag_bits(repeated, at.len()))))
}

/// The elements a block's predictors are priced on: all of a block up to `PRICE_RUNS` runs of
/// `PRICE_RUN`, else that many runs spread evenly from its start to its end. Pricing is a
/// pass a predictor over the block; on a field's block of a million codes the passes cost more
/// than coding the winner, and a sample of 64 Ki ranks predictors as the whole does.
struct PriceAt {
    n: usize,
    runs: usize,
    run: usize,
}

const PRICE_RUNS: usize = 16;
const PRICE_RUN: usize = 4096;

impl PriceAt {
    fn all(n: usize) -> PriceAt {
        PriceAt { n, runs: 1, run: n }
    }

    fn new(n: usize) -> PriceAt {
        PriceAt::sampled(n, PRICE_RUN)
    }

    fn sampled(n: usize, run: usize) -> PriceAt {
        if n <= 2 * PRICE_RUNS * run {
            PriceAt::all(n)
        } else {
            PriceAt { n, runs: PRICE_RUNS, run }
        }
    }

    fn len(&self) -> usize {
        self.runs * self.run
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.runs().flatten()
    }

    /// The runs `iter` visits, in order.
    fn runs(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        (0..self.runs).map(move |r| {
            let start = if self.runs > 1 { r * (self.n - self.run) / (self.runs - 1) } else { 0 };
            start..start + self.run
        })
    }

    /// Bits priced on the sample, as bits of the whole block.
    fn scale(&self, bits: f64) -> f64 {
        if self.len() == self.n || self.len() == 0 {
            bits
        } else {
            bits * self.n as f64 / self.len() as f64
        }
    }
}

/// Bits of `of` binary decisions, `k` of them 1, at their order-0 entropy.
fn flag_bits(k: usize, of: usize) -> f64 {
    if k == 0 || k >= of {
        return 0.0;
    }
    let p = k as f64 / of as f64;
    -(of as f64) * (p * p.log2() + (1.0 - p) * (1.0 - p).log2())
}

/// The earlier variable whose code repeats best predict this block's repeats (an object's
/// columns repeat together), when conditioning on it saves more than naming it costs: the
/// repeat flags' entropy given the side variable's, against their plain entropy.
fn repeat_side(residual: &[i64], refs: &Refs) -> Option<u32> {
    let n = residual.len();
    let h2 = flag_bits;
    let mine: Vec<bool> = (1..n).map(|i| residual[i] == residual[i - 1]).collect();
    let plain = h2(mine.iter().filter(|&&m| m).count(), mine.len());
    let mut best: Option<(u32, f64)> = None;
    let first = refs.codes.len().saturating_sub(REFERENCE_WINDOW);
    for v in first..refs.codes.len() {
        let Some(r) = refs.get(v).filter(|r| r.len() == n) else { continue };
        // [side repeated][this repeated]
        let mut c = [[0usize; 2]; 2];
        for (i, &m) in mine.iter().enumerate() {
            c[(r[i + 1] == r[i]) as usize][m as usize] += 1;
        }
        let k = h2(c[0][1], c[0][0] + c[0][1]) + h2(c[1][1], c[1][0] + c[1][1]);
        if best.is_none_or(|b| k < b.1) {
            best = Some((v as u32, k));
        }
    }
    best.filter(|&(_, k)| k + 64.0 < plain).map(|(v, _)| v)
}

/// Encodes `codes` as an integer block: the predictor stage that costs least, then the `ac`
/// coder (with repeat decisions where values repeat), or fixed-width packing + shuffle + zstd
/// where that is smaller (long repeats that LZ matching finds: periodic integers, runs).
pub fn encode(codes: &[i64], level: i32, grid: Grid, out: &mut Vec<u8>) {
    encode_with(codes, level, grid, &Refs::NONE, out)
}

/// The grid row of a predictor's context (Lorenzo's), which `rans` may condition on too.
fn grid_row(context: Context) -> Option<u32> {
    match context {
        Context::Grid(row) => Some(row),
        _ => None,
    }
}

/// `residual`'s unsigned forms, as the entropy stages take them.
fn unsigned(residual: &[i64], sign: Sign) -> Vec<u64> {
    // Zigzag's arithmetic shift of an i64 is a compare with AVX2, emulated in the baseline.
    super::cpu::tuned(#[inline(always)] || match sign {
        Sign::Zigzag => residual.iter().map(|&c| super::stages::zigzag(c)).collect(),
        Sign::Unsigned => residual.iter().map(|&c| c as u64).collect(),
    })
}

/// `unsigned`, in the residuals' own buffer where they own one (a stage's residuals): a block
/// as large as a chunk then holds one buffer of 8 bytes a code, not two.
fn unsigned_owned(residual: Cow<'_, [i64]>, sign: Sign) -> Vec<u64> {
    match residual {
        Cow::Borrowed(r) => unsigned(r, sign),
        // `into_iter().map().collect()` from a Vec into one of the same size and alignment
        // collects in place (std's in-place iteration), writing each slot after reading it.
        Cow::Owned(r) => super::cpu::tuned(#[inline(always)] || match sign {
            Sign::Zigzag => r.into_iter().map(super::stages::zigzag).collect(),
            Sign::Unsigned => r.into_iter().map(|c| c as u64).collect(),
        }),
    }
}

/// Whether repeat decisions, priced on the block with its omitted elements, still pay on the
/// `residual` coded without them (the omitted elements' residuals were mostly repeats; the rest
/// may hold few).
fn repeats_still_pay(repeats: bool, residual: &[i64], omitted: Option<&[bool]>, sign: Sign) -> bool {
    repeats && (omitted.is_none() || repeats_pay(residual, &PriceAt::new(residual.len()), |c| sign.to_u(c)))
}

/// The `ac` coder's configuration for blocks of fields and tables (`AC_ADAPT`, short buckets).
fn ac_config(context: Context, tree_bits: u8, repeats: bool, repeat_side: Option<u32>, head: u8) -> AcConfig {
    AcConfig { tree_bits, context, adapt: AC_ADAPT, repeats, repeat_side, short_buckets: true, head }
}

/// What `encode_omitting` would code `codes` in, about, for choosing between predictions: a
/// large block priced as `rans` alone codes it (what it most often gets, and within
/// `AC_MARGIN` of the rest; `rans::priced`, the same choices as coding it on all 27
/// field/bound pairs of the benchmark, and packs 0-21 % faster), a small one coded with `ac`
/// as it most often is (the predictor's context, the full sub-bin tree, repeat decisions where
/// they pay), not in every coding `encode_omitting` tries: on the 27 field/bound pairs chunked
/// one 2-D slice a chunk that moved HadCM3's six (chunks of 1813 values, the only ones under
/// `RANS_MIN`) by -15 to +67 bytes (+51 of 7.25 MB in all), and they wrote 1.5x as fast. A
/// large block's predictor is priced on runs of 1024 (the full encoding's are 4096: runs of
/// 1024 there moved two of the 27 pairs by 11 %, here none).
pub fn trial_len(codes: &[i64], grid: Grid, omitted: Option<&[bool]>) -> usize {
    if codes.len() < RANS_MIN {
        let Prediction { stages, residual, sign, context, repeats } = predictors(codes, grid, &Refs::NONE, PriceAt::new(codes.len()), Repeats::Both);
        let residual = kept(residual, omitted);
        let u = unsigned(&residual, sign);
        let cfg = ac_config(context, AC_TREE_BITS, repeats_still_pay(repeats, &residual, omitted, sign), None, super::ac::head(u.iter().copied()));
        let payload = super::ac::encode(&u, cfg, None).len() as u64;
        let mut head = Vec::new();
        Chain { codes: stages, to_bytes: Box::new(Arithmetic { cfg, sign }), bytes: vec![] }.write_stages(&mut head);
        put_varint(&mut head, payload);
        return head.len() + payload as usize;
    }
    let Prediction { stages, residual, sign, context, .. } = predictors(codes, grid, &Refs::NONE, PriceAt::sampled(codes.len(), 1024), Repeats::Never);
    let residual = kept(residual, omitted);
    // The payload as `rans` prices it, not coded; the stages as written.
    let (cfg, bits) = rans::priced(&unsigned(&residual, sign), grid_row(context));
    let payload = (bits / 8.0).ceil() as u64;
    let mut head = Vec::new();
    Chain { codes: stages, to_bytes: Box::new(Rans { cfg, sign }), bytes: vec![] }.write_stages(&mut head);
    put_varint(&mut head, payload);
    head.len() + payload as usize
}

/// A block coded with `rans` in the layout that suits its residuals (unsigned forms `u`),
/// priced before it is coded, for a caller that may not need it (the fast level, where `ac`
/// beats the price by its margin).
struct RansTrial<'a> {
    chain: Chain,
    chosen: rans::Chosen<'a>,
    /// The block's bytes as priced: its stages and payload length as written, the payload as
    /// `rans::Chosen` prices it. Under the coded block's on every block measured (the
    /// `rans::Chosen::bytes` note), so a block priced over a limit would be coded over it too.
    priced: f64,
}

impl<'a> RansTrial<'a> {
    fn new(stages: Vec<Box<dyn CodesStage>>, u: &'a [u64], sign: Sign, context: Context) -> RansTrial<'a> {
        let chosen = rans::Chosen::new(u, grid_row(context));
        let chain = Chain { codes: stages, to_bytes: Box::new(Rans { cfg: chosen.cfg(), sign }), bytes: vec![] };
        let mut head = Vec::new();
        chain.write_stages(&mut head);
        put_varint(&mut head, chosen.bytes as u64);
        RansTrial { priced: head.len() as f64 + chosen.bytes, chain, chosen }
    }

    fn code(&self) -> Vec<u8> {
        let mut b = Vec::new();
        self.chain.write_coded(&self.chosen.code(), &mut b);
        b
    }
}

/// `encode` for a block that may be predicted from the variables coded before it (`refs`).
pub fn encode_with(codes: &[i64], level: i32, grid: Grid, refs: &Refs, out: &mut Vec<u8>) {
    encode_omitting(codes, level, grid, refs, None, 1, out)
}

/// The residuals of the elements not `omitted`, in order: what a block with FLAG_OMIT codes.
/// `codes` must give each omitted element the code `missing::fill_codes` does, which is what
/// the decoder rebuilds (`Chain::decode_omitting`).
fn kept<'a>(residual: Cow<'a, [i64]>, omitted: Option<&[bool]>) -> Cow<'a, [i64]> {
    match omitted {
        None => residual,
        Some(m) => Cow::Owned(residual.iter().zip(m).filter(|&(_, &o)| !o).map(|(&r, _)| r).collect()),
    }
}

/// `encode_omitting` for a walk's symbols, which the caller is done with (no omissions): in
/// less memory where the fast level codes the block (`encode_fast`), and with `ac` kept on a
/// block long enough to stream beside the walk (the decoder's `ahead`) only where it saves
/// `AC_MARGIN_STREAMED`.
pub fn encode_walk_symbols(codes: Vec<i64>, level: i32, grid: Grid, refs: &Refs, threads: usize, out: &mut Vec<u8>) {
    let margin = if codes.len() >= super::ahead::MIN_VALUES && !super::exhaustive(level) { AC_MARGIN_STREAMED } else { AC_MARGIN };
    if super::fast(level) && codes.len() >= RANS_MIN {
        encode_fast(Cow::Owned(codes), grid, refs, None, margin, out)
    } else {
        encode_omitting_at(&codes, level, grid, refs, None, threads, margin, out)
    }
}

/// `encode_with` for a block whose `omitted` elements are stored elsewhere (exactly) and left
/// out of the coded stream (FLAG_OMIT); the predictor still sees them, as `fill_codes` made them.
/// With `threads` > 1 a large block's `rans` coding runs beside its other trials; the choice,
/// and so the block, is the same on any thread count.
pub fn encode_omitting(codes: &[i64], level: i32, grid: Grid, refs: &Refs, omitted: Option<&[bool]>, threads: usize, out: &mut Vec<u8>) {
    encode_omitting_at(codes, level, grid, refs, omitted, threads, AC_MARGIN, out)
}

/// `encode_omitting` with `ac` kept only where it saves `margin` over `rans`.
#[allow(clippy::too_many_arguments)]
fn encode_omitting_at(codes: &[i64], level: i32, grid: Grid, refs: &Refs, omitted: Option<&[bool]>, threads: usize, margin: f64, out: &mut Vec<u8>) {
    // A fast level codes a large block with `rans` and tries nothing else; its predictors are
    // priced for `rans`, which has no repeat decisions (pricing them was a fifth of a fast
    // write of one-slice chunks). A sample of runs of 256 instead of 4096 was no faster, and
    // Levitus at 1e-3 came out 14 % larger.
    let kept_len = || codes.len() - omitted.map_or(0, |m| m.iter().filter(|&&o| o).count());
    if super::fast(level) && kept_len() >= RANS_MIN {
        return encode_fast(Cow::Borrowed(codes), grid, refs, omitted, margin, out);
    }
    let Prediction { stages, residual, sign, context, repeats } = predictors(codes, grid, refs, PriceAt::new(codes.len()), Repeats::Both);
    let residual = kept(residual, omitted);
    let repeats = repeats_still_pay(repeats, &residual, omitted, sign);
    // A repeat decision's side variable is read at the same element: with omissions the
    // coded stream's elements are not the chunk's.
    let refs = if omitted.is_some() { &Refs::NONE } else { refs };
    let again = || -> Vec<Box<dyn CodesStage>> { stages.iter().map(|s| s.boxed_clone()).collect() };
    // The coder's settings: the predictor's context, and repeat decisions where the estimate
    // says they pay; a second context is tried only on small blocks, where a table's every
    // byte shows and a pass costs little.
    let repeat_side = if repeats { repeat_side(&residual, refs) } else { None };
    let mut contexts = vec![context];
    if residual.len() <= SMALL_BLOCK {
        contexts.push(if context == Context::None { Context::Previous } else { Context::None });
    }
    let n = residual.len();
    let u: Vec<u64> = if n >= RANS_MIN { unsigned(&residual, sign) } else { Vec::new() };
    let trees: &[u8] = if n <= TINY_BLOCK { &[AC_TREE_BITS, 3, 0] } else { &[AC_TREE_BITS] };
    // From the unsigned forms where `rans` has them made already (the same values).
    let ac_head = if u.len() == n { super::ac::head(u.iter().copied()) } else { super::ac::head(residual.iter().map(|&c| sign.to_u(c))) };
    let ac_cfg = |context, tree_bits| ac_config(context, tree_bits, repeats, repeat_side, ac_head);
    // A large block's middle run, coded with `rans` on its own: what `ac` and zstd are first
    // compared with.
    let mid = sampled(n).then(|| n / 2 - AC_SAMPLE / 2..n / 2 + AC_SAMPLE / 2);
    let packed = Packed::narrowest(&residual, sign);
    let w = packed.width;
    let zstd = |level| Chain { codes: again(), to_bytes: Box::new(Packed { width: w, sign }), bytes: vec![Box::new(Shuffle { width: w }), Box::new(Zstd { level })] };
    // The trials that do not need the `rans` block's size: `ac`'s smallest coding and zstd's at
    // its fastest level, each None where the middle run rules it out.
    let others = || {
        let mid_rans = mid.clone().map(|run| rans::encode_chosen(&u[run], grid_row(context)).1.len() as f64);
        // On a large block `ac` (the slowest stage to encode) is coded in full only where the
        // run says it may save more than `AC_MARGIN` over `rans`.
        let try_ac = match (&mid, mid_rans) {
            (Some(run), Some(r)) => {
                let side = repeat_side.and_then(|v| refs.get(v as usize)).map(|s| &s[run.clone()]);
                let a = super::ac::encode(&u[run.clone()], ac_cfg(context, AC_TREE_BITS), side).len();
                (a as f64) * (1.0 + margin) < r
            }
            _ => true,
        };
        let by_ac = try_ac.then(|| {
            let coded = contexts.iter().flat_map(|&c| trees.iter().map(move |&t| (c, t))).map(|(ctx, tree_bits)| {
                let ac = Chain { codes: again(), to_bytes: Box::new(Arithmetic { cfg: ac_cfg(ctx, tree_bits), sign }), bytes: vec![] };
                let mut b = Vec::new();
                ac.encode_transformed(&residual, refs, &mut b);
                b
            });
            // The first of the smallest, as the trials run.
            coded.reduce(|best, b| if b.len() < best.len() { b } else { best }).expect("at least one context and tree")
        });
        // On a large block zstd is coded in full only where the run says it may beat `rans`:
        // it never came closer than 2 % on a field's large block, and its full pass costs as
        // much as the `rans` block.
        let try_zstd = match (&mid, mid_rans) {
            (Some(run), Some(r)) => {
                let mut z = Vec::new();
                zstd(1).encode_transformed(&residual[run.clone()], refs, &mut z);
                (z.len() as f64) < r * (1.0 + ZSTD_SAMPLE_SLACK)
            }
            _ => true,
        };
        let fastest = try_zstd.then(|| {
            let mut z = Vec::new();
            zstd(1).encode_transformed(&residual, refs, &mut z);
            z
        });
        (by_ac, fastest)
    };
    let rans_coded = || (n >= RANS_MIN).then(|| RansTrial::new(again(), &u, sign, context).code());
    // A thread costs tens of microseconds: only a large block's trials are worth one.
    let threads = if n >= PARALLEL_TRIALS { threads } else { 1 };
    let ((by_ac, fastest), mut by_rans) = crate::parallel::join(threads, others, rans_coded);
    let mut by_ac_kept = by_ac.is_some();
    let mut best = by_ac.unwrap_or_else(|| by_rans.take().expect("a block `ac` skips is rans-coded"));
    // zstd is tried at its fastest level; only where that comes close is the archive's level
    // worth its time.
    if let Some(mut trial) = fastest.filter(|t| t.len() * 10 < best.len() * 11) {
        if level != 1 {
            let mut full = Vec::new();
            zstd(level).encode_transformed(&residual, refs, &mut full);
            if full.len() < trial.len() {
                trial = full;
            }
        }
        if trial.len() < best.len() {
            best = trial;
            by_ac_kept = false;
        }
    }
    // A large block is also coded with `rans`, which decodes several times as fast as `ac`:
    // it is kept unless `ac` saves more than `margin` of the block.
    if let Some(b) = by_rans {
        let keep = if by_ac_kept { 1.0 + margin } else { 1.0 };
        if (b.len() as f64) < best.len() as f64 * keep {
            best = b;
        }
    }
    out.extend_from_slice(&best);
}

/// `encode_omitting`'s fast level on a large block: `rans`, or `ac` where its estimate says it
/// saves `margin` (`AC_MARGIN`, see there, or a streamed walk's). Codes owned
/// (`encode_walk_symbols`) are freed once a stage's residuals are made, and zigzagged in place
/// where they are the residuals: a chunk's block then holds one buffer of 8 bytes a code
/// through the coder, not two or three.
fn encode_fast(codes: Cow<'_, [i64]>, grid: Grid, refs: &Refs, omitted: Option<&[bool]>, margin: f64, out: &mut Vec<u8>) {
    let Prediction { stages, residual, sign, context, .. } = predictors(&codes, grid, refs, PriceAt::new(codes.len()), Repeats::Never);
    // A stage's residuals (a delta's, most often) leave the codes spent: where the caller gave
    // them up they are freed here, before the coder's buffers are made.
    let residual = match residual {
        Cow::Owned(r) => {
            drop(codes);
            Cow::Owned(r)
        }
        Cow::Borrowed(_) => codes,
    };
    let u = unsigned_owned(kept(residual, omitted), sign);
    let again: Vec<Box<dyn CodesStage>> = stages.iter().map(|s| s.boxed_clone()).collect();
    // `rans`'s block as priced (its head as written): coded below only where it may be kept.
    let by_rans = RansTrial::new(stages, &u, sign, context);
    let rans_priced = by_rans.priced;
    // `ac` (without repeat decisions) is coded too only where its estimate, the entropy of
    // runs of `AC_ESTIMATE_RUN` (what `ac` learns as it goes: a walk's symbols drift from
    // its coarse levels to its fine ones), says it saves `margin`, which it must to be
    // kept. On the NCEP winds at 1e-3 (blocks of 10 512) the estimate over whole blocks was
    // 5 % above `rans`'s size and `ac` came 16 % under it, the runs' 13 % under; on the 27
    // field/bound pairs one 2-D slice a chunk the runs' estimate made this level's files
    // 0.22 % smaller in all than the whole block's (the winds at 1e-3 15 %), and left `ac`
    // out of GloSea4's blocks at 1e-3 and NEMO's at 1e-4 (those logged), where it saves
    // under 6 % (`AC_MARGIN`). The estimate must show `AC_ESTIMATE_SLACK` more than the margin.
    // Counted only until the estimate rules `ac` out (most blocks: a tenth of a level-1
    // `pack` went to the estimate).
    let may_save = |bits: f64| bits * (1.0 + margin) * (1.0 + AC_ESTIMATE_SLACK) < 8.0 * rans_priced;
    let by_ac = cost_by_runs_passes(&u, AC_ESTIMATE_RUN, may_save).then(|| {
        let cfg = ac_config(context, AC_TREE_BITS, false, None, super::ac::head(u.iter().copied()));
        let mut b = Vec::new();
        Chain { codes: again, to_bytes: Box::new(Arithmetic { cfg, sign }), bytes: vec![] }.write_coded(&super::ac::encode(&u, cfg, None), &mut b);
        b
    });
    // As at every level, `rans` is kept unless `ac` saves more than `margin`; where
    // `ac` saves it on `rans`'s priced block, `rans` is not coded. The priced block was
    // 0.966-0.9996 of the coded one on the 744 large blocks of the 27 field/bound pairs
    // one 2-D slice a chunk at this level, 0.988-0.9998 on the 39 of one chunk a field:
    // never above, so the choice is the one coding both would make.
    match by_ac {
        Some(b) if rans_priced >= b.len() as f64 * (1.0 + margin) => out.extend_from_slice(&b),
        by_ac => {
            let by_rans = by_rans.code();
            out.extend_from_slice(match &by_ac {
                Some(b) if by_rans.len() as f64 >= b.len() as f64 * (1.0 + margin) => b,
                _ => &by_rans,
            });
        }
    }
}

pub fn decode(cur: &mut Cursor, n: usize) -> Result<Vec<i64>, String> {
    let (chain, payload) = stages::read(cur, n)?;
    chain.decode(payload, n, &Refs::NONE)
}

/// Steps over an integer block of `n` elements without decoding it.
pub fn skip(cur: &mut Cursor, n: usize) -> Result<(), String> {
    stages::read(cur, n).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tuned_twins_price_what_the_baseline_does() {
        // The estimates run compiled for this CPU (`cpu::tuned`); their `_in` bodies, called
        // here, are the baseline's instructions. Prices are compared to the bit.
        let mut r = crate::codec::xorshift(0x2545_f491_4f6c_dd1d);
        let mut codes: Vec<i64> = (0..64).flat_map(|k| [1i64 << k, (1i64 << k).wrapping_sub(1), -(1i64 << k)]).collect();
        codes.extend([0, i64::MAX, i64::MIN]);
        codes.extend((0..40_000).map(|_| (r() >> (r() % 64)) as i64));
        codes.extend((0..40_000).map(|_| (r() % 9) as i64 - 4));
        let u: Vec<u64> = codes.iter().map(|&c| zigzag(c)).collect();
        assert_eq!(cost(u.iter().copied()).to_bits(), cost_in(u.iter().copied()).to_bits());
        assert_eq!(cost_by_runs(&u, 1024).to_bits(), cost_by_runs_in(&u, 1024, |_| false).to_bits());
        for at in [PriceAt::all(codes.len()), PriceAt::sampled(codes.len(), 1000)] {
            let of = |_: usize, c: i64, before: i64| [zigzag(c), zigzag(c.wrapping_sub(before))];
            let keep = |i: usize, c: i64, before: i64| [true, !is_repeat(i, c, before)];
            let (twin, base) = (costs_where(&at, &codes, keep, of), costs_where_in(&at, &codes, keep, of));
            assert_eq!(twin.map(|(b, n)| (b.to_bits(), n)), base.map(|(b, n)| (b.to_bits(), n)));
        }
        // The plain loops: the codes' range and their unsigned forms, against a scalar pass and
        // the baseline's instructions; `Packed`'s width from the bits OR-ed, against the
        // largest's.
        for part in [&codes[..0], &codes[..1], &codes[..195], &codes[..], &codes[195..]] {
            let scalar = (part.iter().copied().min().unwrap_or(0), part.iter().copied().max().unwrap_or(0));
            assert_eq!(min_max(part), scalar);
            assert_eq!(crate::codec::cpu::baseline(|| min_max(part)), scalar);
            for sign in [Sign::Zigzag, Sign::Unsigned] {
                let each: Vec<u64> = part.iter().map(|&c| sign.to_u(c)).collect();
                assert_eq!(unsigned(part, sign), each);
                assert_eq!(crate::codec::cpu::baseline(|| unsigned(part, sign)), each);
                let largest = each.iter().copied().max().unwrap_or(0);
                let width = [(0xff, 1), (0xffff, 2), (0xffff_ffff, 4), (u64::MAX, 8)].iter().find(|&&(top, _)| largest <= top).unwrap().1;
                assert_eq!(Packed::narrowest(part, sign).width, width);
            }
        }
    }

    #[test]
    fn round_trips_extremes_and_picks_predictor() {
        let cases: Vec<Vec<i64>> = vec![
            vec![],
            vec![0; 100],
            vec![i64::MIN, i64::MAX, -1, 0, 1, i64::MIN + 1],
            (0..1000).collect(),
            (0..1000).map(|i| (i * 7919) % 257 - 128).collect(),
        ];
        for codes in cases {
            for grid in [None, Some([1, 10]), Some([5, 4]), Some([7, 3])] {
                let mut out = Vec::new();
                encode(&codes, 3, grid, &mut out);
                let mut cur = Cursor::new(&out);
                assert_eq!(decode(&mut cur, codes.len()).unwrap(), codes);
                cur.finish("block").unwrap();
                let mut cur = Cursor::new(&out);
                skip(&mut cur, codes.len()).unwrap();
                cur.finish("block").unwrap();
            }
        }
        let mut out = Vec::new();
        encode(&(0..1000).collect::<Vec<_>>(), 3, None, &mut out);
        assert_eq!((out[0], out[1], out[2]), (stages::CHAIN, 1, 1), "a ramp is coded as deltas");
    }

    /// Codes on both sides of 0, mostly 0 (a walk's at a loose bound) with a tail on one side,
    /// are coded zigzagged, not offset to their smallest (which would make the commonest symbol
    /// 11, seven `ac` decisions), under an `ac` head: 0 in one decision.
    #[test]
    fn centred_codes_are_zigzagged_under_an_ac_head() {
        let mut r = crate::codec::xorshift(5);
        let codes: Vec<i64> = (0..3000).map(|_| match r() % 100 { 0 => -11, 1..=3 => 40 + (r() % 40) as i64, 4..=20 => (r() % 5) as i64 - 2, _ => 0 }).collect();
        let mut out = Vec::new();
        encode(&codes, 3, None, &mut out);
        let mut cur = Cursor::new(&out);
        let (chain, _) = stages::read(&mut cur, codes.len()).unwrap();
        let text = format!("{chain:?}");
        assert!(text.starts_with("Chain { codes: [], ") && text.contains("sign: Zigzag") && !text.contains("head: 0"), "{text}");
        let mut cur = Cursor::new(&out);
        assert_eq!(decode(&mut cur, codes.len()).unwrap(), codes);
    }

    /// A large block codes to the same bytes on any thread count, and decodes.
    #[test]
    fn a_large_block_is_the_same_on_any_thread_count() {
        // Large enough for the middle-run gates and the second thread; a smooth field with noise
        // (`rans` and `ac` close) and one of repeated zeros (zstd close), with and without a mask.
        let mut r = crate::codec::xorshift(11);
        let n = 3 * AC_SAMPLE;
        let smooth: Vec<i64> = (0..n).map(|i| ((i % 120) as i64 - 60).pow(2) / 9 + (r() % 5) as i64).collect();
        let sparse: Vec<i64> = (0..n).map(|_| if r() % 40 == 0 { (r() % 9) as i64 - 4 } else { 0 }).collect();
        let mask: Vec<bool> = (0..n).map(|i| (i / 500) % 4 == 0).collect();
        for codes in [&smooth, &sparse] {
            for omitted in [None, Some(&mask[..])] {
                let coded = |threads| {
                    let mut out = Vec::new();
                    encode_omitting(codes, 3, Some([40, 120]), &Refs::NONE, omitted, threads, &mut out);
                    out
                };
                let one = coded(1);
                assert_eq!(one, coded(2));
                assert_eq!(one, coded(4));
                if omitted.is_none() {
                    assert_eq!(&decode(&mut Cursor::new(&one), n).unwrap(), codes);
                }
            }
        }
    }

    /// Codes handed over (`encode_walk_symbols`, a walk's symbols) are coded to the bytes borrowed ones
    /// are at the margin the walk's block gets (`AC_MARGIN_STREAMED` on a block long enough
    /// to stream beside the walk, below `SEARCH_LEVEL`), on inputs meant to draw each predictor
    /// (none on a walk's symbols, delta on a ramp, an offset on noise far from 0, `ac` on
    /// sparse zeros), at the fast level, the default and the search level, on both sides of
    /// the size where the fast level's own path starts and of the streamed one.
    #[test]
    fn owned_codes_code_as_borrowed_ones() {
        let mut r = crate::codec::xorshift(5);
        for n in [RANS_MIN - 1, RANS_MIN, super::super::ahead::MIN_VALUES - 1, 3 * AC_SAMPLE] {
            let walk: Vec<i64> = (0..n).map(|_| (r() % 7) as i64 - 3).collect();
            let ramp: Vec<i64> = (0..n as i64).map(|i| 1000 + 5 * i + (r() % 3) as i64).collect();
            let noise: Vec<i64> = (0..n).map(|_| (r() % 2000) as i64 + 1_000_000).collect();
            let sparse: Vec<i64> = (0..n).map(|_| if r() % 40 == 0 { (r() % 9) as i64 - 4 } else { 0 }).collect();
            for codes in [&walk, &ramp, &noise, &sparse] {
                for level in [super::super::FAST_LEVEL, 9, super::super::SEARCH_LEVEL] {
                    let streamed = n >= super::super::ahead::MIN_VALUES && level < super::super::SEARCH_LEVEL;
                    let margin = if streamed { AC_MARGIN_STREAMED } else { AC_MARGIN };
                    let mut borrowed = Vec::new();
                    encode_omitting_at(codes, level, None, &Refs::NONE, None, 1, margin, &mut borrowed);
                    let mut owned = Vec::new();
                    encode_walk_symbols(codes.clone(), level, None, &Refs::NONE, 1, &mut owned);
                    assert_eq!(owned, borrowed, "n {n} level {level}");
                    assert_eq!(&decode(&mut Cursor::new(&owned), n).unwrap(), codes);
                }
            }
        }
    }

    /// The margin a walk's block needs decides where it should: on walk symbols of the NCEP
    /// winds' count (126 144, long enough to stream beside the walk) that `ac` codes between
    /// `AC_MARGIN` and `AC_MARGIN_STREAMED` smaller than `rans` (a smooth 12x73x144 field at a
    /// loose bound), the walk's block keeps `rans` at the pack and filter default levels and
    /// `ac` at `SEARCH_LEVEL`, where the smallest file is asked for.
    #[test]
    fn the_streamed_margin_keeps_rans_where_ac_saves_less() {
        use crate::codec::interp;
        let (t, y, x) = (12usize, 73usize, 144usize);
        let mut r = crate::codec::xorshift(1);
        let field: Vec<f64> = (0..t * y * x)
            .map(|i| {
                let (a, b, c) = ((i / (y * x)) as f64 / t as f64, ((i / x) % y) as f64 / y as f64, (i % x) as f64 / x as f64);
                let tau = std::f64::consts::TAU;
                let v = 20.0 * (tau * 2.0 * b + 0.3).sin() * (tau * (3.0 * c + 0.5 * a) + 1.1).cos()
                    + 8.0 * (tau * (5.0 * b + 7.0 * c) + 2.0).sin()
                    + 3.0 * (tau * (17.0 * c + 11.0 * b + a) + 0.7).sin()
                    + ((r() % 1000) as f64 - 500.0) * 1e-5;
                v as f32 as f64
            })
            .collect();
        let cfg = interp::candidates([t, y, x])[0];
        let codes = interp::quantise(&cfg, crate::dtype::DType::F32, &field, |_| true, 3.0).symbols;
        assert!(codes.len() >= super::super::ahead::MIN_VALUES);
        let at = |level, margin| {
            let mut b = Vec::new();
            encode_omitting_at(&codes, level, None, &Refs::NONE, None, 1, margin, &mut b);
            b
        };
        let walk = |level| {
            let mut b = Vec::new();
            encode_walk_symbols(codes.clone(), level, None, &Refs::NONE, 1, &mut b);
            b
        };
        for level in [crate::h5filter::params::DEFAULT_LEVEL, crate::pack::DEFAULT_LEVEL, super::super::SEARCH_LEVEL] {
            // `ac` kept wherever it saves, and only where it would halve the block (here: never).
            let (by_ac, by_rans) = (at(level, 0.0), at(level, 1.0));
            let saves = 1.0 - by_ac.len() as f64 / by_rans.len() as f64;
            assert!(saves > AC_MARGIN && saves < AC_MARGIN_STREAMED, "level {level}: `ac` saves {saves:.3}, outside the margins");
            let want = if super::super::exhaustive(level) { by_ac } else { by_rans };
            assert!(walk(level) == want, "level {level}: the walk's block took the other coder");
        }
    }

    /// Blocks whose exact elements are left out (FLAG_OMIT): whatever predictor wins (Lorenzo
    /// on a field, delta on a ramp, an offset or none on noise), the decoder rebuilds every
    /// code the encoder held, the omitted ones as `fill_codes` made them, for masks that lead,
    /// trail, cover all but one element, or scatter; large blocks go through `rans`.
    #[test]
    fn omitted_elements_decode_to_the_encoders_fill() {
        let mut r = crate::codec::xorshift(7);
        for n in [12usize, 600, 9000] {
            let field: Vec<i64> = (0..n).map(|i| ((i % 30) as i64 - 15).pow(2) + (i / 30) as i64 * 3).collect();
            let ramp: Vec<i64> = (0..n as i64).map(|i| 1000 + 5 * i).collect();
            let noise: Vec<i64> = (0..n).map(|_| (r() % 2000) as i64 + 1_000_000).collect();
            let masks: Vec<Vec<bool>> = vec![
                (0..n).map(|i| i < n / 3).collect(),
                (0..n).map(|i| i >= n - 5).collect(),
                (0..n).map(|i| i != n / 2).collect(),
                (0..n).map(|i| (i / 7) % 3 == 1 || r() % 50 == 0).collect(),
            ];
            for codes in [&field, &ramp, &noise] {
                for mask in &masks {
                    let mut filled = codes.clone();
                    crate::missing::fill_codes(&mut filled, mask);
                    for grid in [None, Some([6, 5]), Some([2, 30])] {
                        let mut out = Vec::new();
                        encode_omitting(&filled, 3, grid, &Refs::NONE, Some(mask), 1, &mut out);
                        let mut cur = Cursor::new(&out);
                        let (chain, payload) = stages::read(&mut cur, n).unwrap();
                        cur.finish("block").unwrap();
                        assert_eq!(chain.decode_omitting(payload, n, Some(mask), &Refs::NONE).unwrap(), filled, "n {n} grid {grid:?}");
                    }
                }
            }
        }
    }

    /// E = |p| of massless particles, each component on its own step: the norm of the three
    /// components before it predicts E's codes, and they decode exactly.
    #[test]
    fn norm_predicts_energy_from_momentum() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut r = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let steps = [0.5, 0.7, 1.3, 0.9];
        let n = 3000;
        let p: Vec<[f64; 3]> = (0..n).map(|_| [r() * 200.0, r() * 150.0, r() * 900.0]).collect();
        let q = |x: f64, k: usize| (x / steps[k]).round() as i64;
        let comps: Vec<Option<Vec<i64>>> = (0..3).map(|k| Some(p.iter().map(|v| q(v[k], k)).collect())).collect();
        let e: Vec<i64> = p.iter().map(|v| q((v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt(), 3)).collect();
        let refs = Refs { codes: &comps, scales: &steps[..3] };
        let mut out = Vec::new();
        encode_with(&e, 3, None, &refs, &mut out);
        assert_eq!((out[0], out[1], out[2]), (stages::CHAIN, 1, 5), "the norm predicts E");
        let mut plain = Vec::new();
        encode(&e, 3, None, &mut plain);
        assert!(out.len() * 2 < plain.len(), "{} bytes with the norm, {} without", out.len(), plain.len());
        let (chain, payload) = stages::read(&mut Cursor::new(&out), n).unwrap();
        assert_eq!(chain.decode(payload, n, &Refs::codes(&comps)).unwrap(), e);
        assert!(chain.decode(payload, n, &Refs::codes(&comps[..2])).is_err(), "a missing part is an error");
    }

    #[test]
    fn lorenzo_predicts_sums_of_two_index_functions_exactly() {
        // Lorenzo's residual is the mixed third difference, so it predicts exactly any sum of
        // functions of two of the three indices (residuals 0 away from the first planes).
        let (d0, d1, d2) = (6usize, 7usize, 9usize);
        let mut codes = Vec::new();
        for i in 0..d0 as i64 {
            for j in 0..d1 as i64 {
                for k in 0..d2 as i64 {
                    codes.push(3 * i + 5 * j - 2 * k + i * j + j * k * k - i * i * k + 1000);
                }
            }
        }
        let r = lorenzo_residuals(&codes, [d1, d2]);
        for i in 1..d0 {
            for j in 1..d1 {
                for k in 1..d2 {
                    assert_eq!(r[(i * d1 + j) * d2 + k], 0);
                }
            }
        }
        let mut out = Vec::new();
        encode(&codes, 3, Some([d1, d2]), &mut out);
        assert_eq!((out[0], out[1], out[2]), (stages::CHAIN, 1, 2), "Lorenzo predicts it");
        assert_eq!(decode(&mut Cursor::new(&out), codes.len()).unwrap(), codes);
        let mut bad = out.clone();
        bad[3..7].copy_from_slice(&4u32.to_le_bytes());
        assert!(decode(&mut Cursor::new(&bad), codes.len()).is_err(), "a grid that does not tile is refused");
    }

    /// Over one run `cost_by_runs` is `cost` (summed in another order); over runs it sees a
    /// distribution that drifts (large values, then small, as a walk's levels) and prices it
    /// below one entropy over the whole, and a stationary one about the same.
    #[test]
    fn cost_by_runs_sees_a_drift_that_one_entropy_misses() {
        let mut r = crate::codec::xorshift(3);
        let drifting: Vec<u64> = (0..8192).map(|i| if i < 4096 { 200 + r() % 800 } else { r() % 3 }).collect();
        let stationary: Vec<u64> = (0..8192).map(|_| r() % 50).collect();
        for u in [&drifting, &stationary] {
            let whole = cost(u.iter().copied());
            assert!((cost_by_runs(u, u.len()) - whole).abs() <= 1e-9 * whole);
            assert!((cost_by_runs(u, 1 << 20) - whole).abs() <= 1e-9 * whole);
        }
        // Stopping once a partial sum fails a test that fails for every larger cost answers as
        // the whole sum does, at thresholds on either side of it and at it exactly.
        for u in [&drifting, &stationary] {
            let whole = cost_by_runs(u, 1024);
            for t in [0.0, 0.5 * whole, 0.999 * whole, whole, f64::from_bits(whole.to_bits() + 1), 1.001 * whole, 2.0 * whole] {
                assert_eq!(cost_by_runs_passes(u, 1024, |b| b < t), whole < t, "threshold {t} for {whole}");
                assert_eq!(crate::codec::cpu::baseline(|| cost_by_runs_passes(u, 1024, |b| b < t)), whole < t);
            }
        }
        let (whole, runs) = (cost(drifting.iter().copied()), cost_by_runs(&drifting, 1024));
        assert!(runs < whole * 0.9, "runs {runs} whole {whole}");
        let (whole, runs) = (cost(stationary.iter().copied()), cost_by_runs(&stationary, 1024));
        assert!(runs < whole && runs > whole * 0.95, "runs {runs} whole {whole}");
        assert_eq!(cost_by_runs(&[], 1024), 0.0);
    }

    /// The price of repeat decisions by its definition, one form at a time.
    fn repeats_cost_at(codes: &[i64], at: &PriceAt, u: impl Fn(i64) -> u64) -> Option<f64> {
        let repeat = |i: usize| i > 0 && codes[i - 1] == codes[i];
        let repeated = at.iter().filter(|&i| repeat(i)).count();
        if repeated * 50 <= at.len() {
            return None;
        }
        let rest = cost(at.iter().filter(|&i| !repeat(i)).map(|i| u(codes[i])));
        Some(at.scale(rest + flag_bits(repeated, at.len())))
    }

    /// Repeat decisions priced for both plain forms in one pass give each form's price by its
    /// definition to the bit, or None with it, on whole and sampled blocks; `repeats_pay`
    /// compares the same price with every value's.
    #[test]
    fn repeats_in_one_pass_are_each_forms_price() {
        let mut r = crate::codec::xorshift(17);
        for (n, repeat_in) in [(0usize, 2u64), (1, 2), (3000, 2), (3000, 100), (300_000, 3)] {
            let mut codes: Vec<i64> = Vec::with_capacity(n);
            for i in 0..n {
                let c = if i > 0 && r() % repeat_in == 0 { codes[i - 1] } else { (r() % 300) as i64 - 100 };
                codes.push(c);
            }
            let min = codes.iter().copied().min().unwrap_or(0);
            for at in [PriceAt::all(n), PriceAt::new(n)] {
                let both = repeats_costs_at(&codes, &at, min);
                let z = repeats_cost_at(&codes, &at, zigzag);
                let o = repeats_cost_at(&codes, &at, |c| c.wrapping_sub(min) as u64);
                assert_eq!(both.map(|b| b.map(f64::to_bits)), z.zip(o).map(|(z, o)| [z.to_bits(), o.to_bits()]), "n {n} 1 in {repeat_in}");
                let pays = z.is_some_and(|k| k < at.scale(cost(at.iter().map(|i| zigzag(codes[i])))));
                assert_eq!(repeats_pay(&codes, &at, zigzag), pays, "n {n} 1 in {repeat_in}");
            }
        }
    }

    /// One pass pricing several sequences gives each `cost`'s price to the bit, on a whole
    /// block and on a sampled one (the predictors' choices compare these prices).
    #[test]
    fn costs_in_one_pass_are_each_sequences_cost() {
        let mut r = crate::codec::xorshift(11);
        for n in [0usize, 1, 5000, 300_000] {
            let codes: Vec<i64> = (0..n).map(|i| (r() % 2000) as i64 - 1000 + if i % 7 == 0 { 1 << 40 } else { 0 }).collect();
            for at in [PriceAt::all(n), PriceAt::new(n)] {
                let [z, d] = costs(&at, &codes, |_, c, before| [zigzag(c), zigzag(c.wrapping_sub(before))]);
                assert_eq!(z.to_bits(), cost(at.iter().map(|i| zigzag(codes[i]))).to_bits(), "n {n}");
                assert_eq!(d.to_bits(), cost(at.iter().map(|i| zigzag(codes[i].wrapping_sub(if i > 0 { codes[i - 1] } else { 0 })))).to_bits(), "n {n}");
            }
        }
    }

    #[test]
    fn cost_prices_the_sub_bins_of_a_bucket_and_its_top_bits() {
        // The estimate's bins are the bucket (bit length) and the top `ESTIMATE_TREE_BITS` bits
        // below the leading one, as `ac` learns them; `cost` numbers them otherwise, for speed,
        // and must give the same price to the last bit (predictor choices compare prices).
        fn by_bucket(u: &[u64]) -> f64 {
            const T: usize = ESTIMATE_TREE_BITS;
            let mut hist = vec![0u32; 65 << T];
            let mut below = 0u64;
            for &v in u {
                let b = 64 - v.leading_zeros() as usize;
                let m = b.saturating_sub(1);
                let t = m.min(T);
                hist[(b << T) | (((v >> (m - t)) as usize) & ((1 << t) - 1))] += 1;
                below += (m - t) as u64;
            }
            let n = u.len() as f64;
            below as f64 + hist.iter().filter(|&&h| h > 0).map(|&h| h as f64 * (n / h as f64).log2()).sum::<f64>()
        }
        let mut s = 7u64;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            s
        };
        let mut sets: Vec<Vec<u64>> = vec![vec![0, 1, 2, 127, 128, 129, 255, 256, u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1]];
        for spread in [3u64, 100, 1 << 20, u64::MAX] {
            sets.push((0..5000).map(|_| next() % spread).collect());
        }
        // Every bit length, at its least, greatest and a middle value.
        sets.push((0..64).flat_map(|b| [1u64 << b, (1u64 << b) | (next() >> (64 - b).min(63)), ((1u64 << b) - 1) << 1 | 1]).collect());
        for u in &sets {
            assert_eq!(cost(u.iter().copied()).to_bits(), by_bucket(u).to_bits());
        }
    }
}
