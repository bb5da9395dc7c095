//! Multilevel interpolation over a chunk's 3-D grid, on the integer codes (the predictor SZ3
//! and QoZ made the state of the art at loose bounds): the grid is visited coarse to fine, and
//! each element is predicted by linear or cubic interpolation between elements of coarser levels
//! along one dimension. Smooth fields are predicted from both sides, where Lorenzo only
//! extrapolates from one corner, so at wide bins the residuals are smaller.
//!
//! Because it runs on the quantised codes (not on reconstructed floats), every prediction is an
//! integer function of codes the decoder already holds: it inverts exactly on any machine, and
//! the bound stays the quantiser's.
//!
//! The walk (baler-format.md, "interp"): dimensions (d0, d1, d2), `L` the least level with
//! `2^L >= max(d)`. Element (0, 0, 0) comes first, predicted by 0. Then for each stride `s` =
//! 2^(L-1), ..., 2, 1, for each dimension `k` in the stage's order: every element whose `k`
//! index is an odd multiple of `s`, whose index along the dimensions before `k` in the order is
//! a multiple of `s` and along those after a multiple of `2s`, in C order. Its neighbours along
//! `k` at -3s, -s, +s, +3s are all of coarser levels (or done earlier at this one).

use super::quantise;
use crate::dtype::DType;

/// Dimension orders a stage may name: index into this list.
pub const ORDERS: [[usize; 3]; 6] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Linear = 0,
    Cubic = 1,
}

/// The arithmetic of the predictions, for integer codes and for reconstructed floats: each is
/// a fixed sequence of operations, so encoder and decoder compute the same bits on any machine.
pub trait Interpolate: Copy {
    /// Between b (at -1) and c (at +1).
    fn linear(b: Self, c: Self) -> Self;
    /// Lagrange weights at 0 of the nodes -3, -1, 1, 3 (units of s): (-1, 9, 9, -1) / 16.
    fn cubic(a: Self, b: Self, c: Self, d: Self) -> Self;
    /// Nodes -1, 1, 3: (3, 6, -1) / 8.
    fn quad_left(b: Self, c: Self, d: Self) -> Self;
    /// Nodes -3, -1, 1: (-1, 6, 3) / 8.
    fn quad_right(a: Self, b: Self, c: Self) -> Self;
}

/// Integer weights, floor division (an arithmetic shift), wrapping.
impl Interpolate for i64 {
    #[inline]
    fn linear(b: i64, c: i64) -> i64 {
        (b >> 1) + (c >> 1) + (b & c & 1)
    }
    #[inline]
    fn cubic(a: i64, b: i64, c: i64, d: i64) -> i64 {
        b.wrapping_add(c).wrapping_mul(9).wrapping_sub(a).wrapping_sub(d).wrapping_add(8) >> 4
    }
    #[inline]
    fn quad_left(b: i64, c: i64, d: i64) -> i64 {
        b.wrapping_mul(3).wrapping_add(c.wrapping_mul(6)).wrapping_sub(d).wrapping_add(4) >> 3
    }
    #[inline]
    fn quad_right(a: i64, b: i64, c: i64) -> i64 {
        b.wrapping_mul(6).wrapping_add(c.wrapping_mul(3)).wrapping_sub(a).wrapping_add(4) >> 3
    }
}

/// IEEE f64 in the order written (Rust never contracts to FMA on its own); the divisions are by
/// powers of two, so exact.
impl Interpolate for f64 {
    #[inline]
    fn linear(b: f64, c: f64) -> f64 {
        (b + c) * 0.5
    }
    #[inline]
    fn cubic(a: f64, b: f64, c: f64, d: f64) -> f64 {
        ((b + c) * 9.0 - a - d) * 0.0625
    }
    #[inline]
    fn quad_left(b: f64, c: f64, d: f64) -> f64 {
        (b * 3.0 + c * 6.0 - d) * 0.125
    }
    #[inline]
    fn quad_right(a: f64, b: f64, c: f64) -> f64 {
        (b * 6.0 + c * 3.0 - a) * 0.125
    }
}

/// The prediction at `i` along a line `a[base + j * step]` of `len` elements, from the
/// elements at `i - s` (always there), `i + s`, `i - 3s`, `i + 3s` where they exist.
#[inline]
fn predict<T: Interpolate>(a: &[T], at: usize, i: usize, s: usize, len: usize, step: usize, kind: Kind) -> T {
    let b = a[at - s * step];
    if i + s >= len {
        return b;
    }
    let c = a[at + s * step];
    if kind == Kind::Linear {
        return T::linear(b, c);
    }
    match (i >= 3 * s, i + 3 * s < len) {
        (true, true) => T::cubic(a[at - 3 * s * step], b, c, a[at + 3 * s * step]),
        (false, true) => T::quad_left(b, c, a[at + 3 * s * step]),
        (true, false) => T::quad_right(a[at - 3 * s * step], b, c),
        (false, false) => T::linear(b, c),
    }
}

/// Walks the grid `dims` (product = `a.len()`) coarse to fine in dimension order `order`,
/// calling `visit(slot, prediction)` once per element, the first with prediction 0. The
/// prediction reads only elements visited before, so the encoder (which leaves `a` as it is and
/// records `slot - prediction`) and the decoder (which sets `slot = residual + prediction`)
/// see the same predictions.
pub fn walk<T: Interpolate>(a: &mut [T], dims: [usize; 3], order: [usize; 3], kind: Kind, zero: T, mut visit: impl FnMut(usize, usize, &mut T, T)) {
    debug_assert_eq!(dims.iter().product::<usize>(), a.len());
    if a.is_empty() {
        return;
    }
    let strides = [dims[1] * dims[2], dims[2], 1];
    let top = dims.iter().copied().max().unwrap_or(1);
    let levels = usize::BITS - (top - 1).leading_zeros(); // least L with 2^L >= top
    visit(0, 1 << levels, &mut a[0], zero);
    for level in (0..levels).rev() {
        let s = 1usize << level;
        for (j, &k) in order.iter().enumerate() {
            if s >= dims[k] {
                continue;
            }
            // (start, step) of each dimension's indices in this pass.
            let mut range = [(0usize, 2 * s); 3];
            range[k] = (s, 2 * s);
            for &m in &order[..j] {
                range[m] = (0, s);
            }
            let (len, step) = (dims[k], strides[k]);
            for i0 in (range[0].0..dims[0]).step_by(range[0].1) {
                for i1 in (range[1].0..dims[1]).step_by(range[1].1) {
                    let row = i0 * strides[0] + i1 * strides[1];
                    for i2 in (range[2].0..dims[2]).step_by(range[2].1) {
                        let at = row + i2;
                        let i = [i0, i1, i2][k];
                        let p = predict(a, at, i, s, len, step, kind);
                        visit(at, s, &mut a[at], p);
                    }
                }
            }
        }
    }
}

/// An interpolation's settings as a block records them: the chunk's grid (d1, d2; the leading
/// dimension is what is left), the formula, and the dimension order (index into `ORDERS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub grid: [usize; 2],
    pub kind: Kind,
    pub order: u8,
    /// Index into `LEVELWISE`.
    pub levelwise: u8,
}

/// Level-wise bins (QoZ's, SZ3 3.3's): the bin of the level of stride 2^l is the block's
/// divided by min(alpha^l, beta), so the coarse elements every finer level is predicted from
/// are more precise. (alpha, beta); (1, 1) is one bin for all.
pub const LEVELWISE: [(f64, f64); 2] = [(1.0, 1.0), (1.25, 2.0)];

impl Config {
    pub fn dims(&self, n: usize) -> [usize; 3] {
        [n / (self.grid[0] * self.grid[1]), self.grid[0], self.grid[1]]
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        crate::wire::put_varint(out, self.grid[0] as u64);
        crate::wire::put_varint(out, self.grid[1] as u64);
        out.push(self.kind as u8);
        out.push(self.order);
        out.push(self.levelwise);
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

    /// Reads a configuration for a block of `n` elements, refusing one that does not tile it.
    pub fn read(cur: &mut crate::wire::Cursor, n: usize) -> Result<Config, String> {
        let mut grid = [0usize; 2];
        for (g, what) in grid.iter_mut().zip(["interpolation grid d1", "interpolation grid d2"]) {
            *g = usize::try_from(cur.varint(what)?).map_err(|_| format!("{what} out of range"))?;
        }
        let [d1, d2] = grid;
        if d1 == 0 || d2 == 0 || d1.checked_mul(d2).is_none_or(|p| n % p != 0) {
            return Err(format!("interpolation grid {d1} x {d2} does not tile {n} elements"));
        }
        let kind = match cur.u8("interpolation kind")? {
            0 => Kind::Linear,
            1 => Kind::Cubic,
            k => return Err(format!("unknown interpolation kind {k}")),
        };
        let order = cur.u8("interpolation order")?;
        if order as usize >= ORDERS.len() {
            return Err(format!("unknown interpolation dimension order {order}"));
        }
        let levelwise = cur.u8("interpolation level-wise bins")?;
        if levelwise as usize >= LEVELWISE.len() {
            return Err(format!("unknown level-wise bins {levelwise}"));
        }
        Ok(Config { grid, kind, order, levelwise })
    }

    fn run(&self, a: &mut [f64], visit: impl FnMut(usize, usize, &mut f64, f64)) {
        let dims = self.dims(a.len());
        walk(a, dims, ORDERS[self.order as usize], self.kind, 0.0, visit)
    }
}

/// One element's value as the decoder rebuilds it from its prediction and symbol, and as the
/// predictions after it see it: never infinite or NaN, so one bad element cannot spread.
#[inline]
fn rebuilt(dtype: DType, p: f64, q: i64, step: f64) -> (f64, f64) {
    let p = if p.is_finite() { p } else { 0.0 };
    let r = quantise::reconstruct(dtype, p, q, step);
    (p, if r.is_finite() { r } else { p })
}

/// In-loop quantisation along the walk (SZ3's way, on floats): each element's prediction comes
/// from the values the decoder will have rebuilt, and its symbol is `round((x - p) / step)`.
/// Only the rounding of `x` itself enters the residual (a prediction from pre-quantised codes
/// carries its neighbours' rounding too), which at wide bins is most of it.
pub struct Walked {
    /// In walk order.
    pub symbols: Vec<i64>,
    /// Elements to store exactly (ascending): not `valid`, or beyond the bound once rebuilt.
    pub exact: Vec<u64>,
    /// What the decoder rebuilds for each element, before the exact ones are put back.
    pub rebuilt: Vec<f64>,
}

/// `valid(i)`: the element is a value to bound (not missing, finite). Invalid elements get
/// symbol 0, so they take their prediction's value in the walk: a mask, not a jump to a fill.
pub fn quantise(cfg: &Config, dtype: DType, values: &[f64], valid: impl Fn(usize) -> bool, tol: f64) -> Walked {
    let step = 2.0 * tol;
    let n = values.len();
    let mut symbols = Vec::with_capacity(n);
    let mut exact = Vec::new();
    let mut a = vec![0f64; n];
    let steps = cfg.level_steps(step);
    cfg.run(&mut a, |i, s, slot, p| {
        let x = values[i];
        // A level's finer bin is a choice of the encoder; the promise is `tol`.
        let step = steps[s.trailing_zeros() as usize];
        let mut q = 0i64;
        let mut kept = false;
        if valid(i) && x.is_finite() {
            let p = if p.is_finite() { p } else { 0.0 };
            let qf = ((x - p) / step).round();
            if qf.abs() <= quantise::MAX_CODE {
                q = qf as i64;
                kept = (quantise::reconstruct(dtype, p, q, step) - x).abs() <= tol;
            }
        }
        if !kept {
            exact.push(i as u64);
        }
        symbols.push(q);
        *slot = rebuilt(dtype, p, q, step).1;
    });
    exact.sort_unstable();
    Walked { symbols, exact, rebuilt: a }
}

/// Undoes `quantise`: symbols in walk order to the rebuilt values in C order.
pub fn dequantise(cfg: &Config, dtype: DType, symbols: &[i64], step: f64) -> Vec<f64> {
    let mut a = vec![0f64; symbols.len()];
    let mut next = symbols.iter();
    let steps = cfg.level_steps(step);
    cfg.run(&mut a, |_, s, slot, p| *slot = rebuilt(dtype, p, next.next().copied().unwrap_or(0), steps[s.trailing_zeros() as usize]).1);
    a
}

/// The walks `pack` and the filter try on a grid: cubic in the two dimension orders SZ3 tries
/// (slowest axis first, fastest first), and linear (rough data); each with one bin for all
/// levels and with level-wise bins.
pub fn candidates(grid: [usize; 2]) -> Vec<Config> {
    let walks = [(Kind::Cubic, 0), (Kind::Cubic, 5), (Kind::Linear, 0)];
    walks
        .into_iter()
        .flat_map(|(kind, order)| (0..LEVELWISE.len() as u8).map(move |levelwise| Config { grid, kind, order, levelwise }))
        .collect()
}

/// How many elements each pass of the walk visits, in walk order (the anchor first).
pub fn pass_lengths(dims: [usize; 3], order: [usize; 3]) -> Vec<usize> {
    let count = |start: usize, step: usize, d: usize| if start >= d { 0 } else { (d - start).div_ceil(step) };
    let mut out = vec![usize::from(dims.iter().product::<usize>() > 0)];
    let top = dims.iter().copied().max().unwrap_or(1).max(1);
    let levels = usize::BITS - (top - 1).leading_zeros();
    for level in (0..levels).rev() {
        let s = 1usize << level;
        for (j, &k) in order.iter().enumerate() {
            if s >= dims[k] {
                continue;
            }
            let mut range = [(0usize, 2 * s); 3];
            range[k] = (s, 2 * s);
            for &m in &order[..j] {
                range[m] = (0, s);
            }
            out.push((0..3).map(|m| count(range[m].0, range[m].1, dims[m])).product());
        }
    }
    out
}

/// Bits the `ac` stage spends on a walk's symbols, about: the order-0 cost of each pass on its
/// own, since the coder adapts as the walk moves from coarse levels (large residuals) to fine;
/// and of the symbols or their differences, whichever is less, as `ints` chooses (a field whose
/// residuals along one axis are smooth, like an ensemble's anomalies, leaves them correlated).
pub fn estimate(cfg: &Config, symbols: &[i64]) -> f64 {
    use super::{ints::cost, stages::zigzag};
    let (mut at, mut plain, mut delta) = (0, 0.0, 0.0);
    for len in pass_lengths(cfg.dims(symbols.len()), ORDERS[cfg.order as usize]) {
        let end = (at + len).min(symbols.len());
        let pass = &symbols[at..end];
        plain += cost(pass.iter().map(|&c| zigzag(c)));
        delta += cost(pass.iter().scan(0i64, |prev, &c| Some(zigzag(c.wrapping_sub(std::mem::replace(prev, c))))));
        at = end;
    }
    plain.min(delta)
}

/// The residuals of `a` in walk order.
pub fn residuals(a: &[i64], dims: [usize; 3], order: [usize; 3], kind: Kind) -> Vec<i64> {
    let mut out = Vec::with_capacity(a.len());
    // The walk only reads `a`; it takes it mutably because the decoder writes through it.
    let mut copy = a.to_vec();
    walk(&mut copy, dims, order, kind, 0, |_, _, slot, p| out.push(slot.wrapping_sub(p)));
    out
}

/// Undoes `residuals`: `r` in walk order to the codes in C order.
pub fn undo(r: &[i64], dims: [usize; 3], order: [usize; 3], kind: Kind) -> Vec<i64> {
    let mut a = vec![0i64; r.len()];
    let mut next = r.iter();
    walk(&mut a, dims, order, kind, 0, |_, _, slot, p| *slot = next.next().copied().unwrap_or(0).wrapping_add(p));
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes() -> Vec<[usize; 3]> {
        vec![[1, 1, 1], [1, 1, 2], [1, 1, 7], [3, 1, 1], [2, 2, 2], [5, 7, 9], [1, 33, 17], [16, 16, 16], [4, 1, 100], [9, 1, 1]]
    }

    #[test]
    fn visits_every_element_once_and_inverts_exactly() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for dims in shapes() {
            let n: usize = dims.iter().product();
            for order in ORDERS {
                for kind in [Kind::Linear, Kind::Cubic] {
                    let mut seen = vec![0u8; n];
                    let mut a: Vec<i64> = (0..n as i64).collect();
                    walk(&mut a, dims, order, kind, 0, |_, _, slot, _| seen[*slot as usize] += 1);
                    assert!(seen.iter().all(|&c| c == 1), "{dims:?} {order:?}");
                    assert_eq!(pass_lengths(dims, order).iter().sum::<usize>(), n);
                    for extreme in [false, true] {
                        let codes: Vec<i64> = (0..n)
                            .map(|_| {
                                s ^= s << 13;
                                s ^= s >> 7;
                                s ^= s << 17;
                                if extreme { s as i64 } else { (s % 200) as i64 - 100 }
                            })
                            .collect();
                        let r = residuals(&codes, dims, order, kind);
                        assert_eq!(undo(&r, dims, order, kind), codes, "{dims:?} {order:?} {kind:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn predicts_smooth_grids_from_both_sides() {
        // A quadratic along every axis: cubic interpolation is exact inside (its stencil is
        // exact on cubics), so away from the edges the residuals are rounding only.
        let dims = [9, 17, 33];
        let mut codes = Vec::new();
        for i in 0..dims[0] as i64 {
            for j in 0..dims[1] as i64 {
                for k in 0..dims[2] as i64 {
                    codes.push(1000 + 3 * i * i + 16 * j - k * k);
                }
            }
        }
        let r = residuals(&codes, dims, ORDERS[0], Kind::Cubic);
        let small = r.iter().skip(1).filter(|&&x| x.abs() <= 1).count();
        assert!(small * 10 >= r.len() * 9, "{small} of {}", r.len());
    }
}
