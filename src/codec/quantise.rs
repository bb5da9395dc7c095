//! Error-bounded uniform quantisation of floats, relative to a prediction.
//!
//! The promise is checked, not assumed: the encoder reconstructs every element exactly as the
//! decoder will (same f64 operations, rounded to the variable's dtype) and stores any element that
//! misses the bound (float rounding at the edge of a bin, a tolerance below the dtype's precision,
//! NaN, infinities, codes too large for f64) as an exact outlier.

use crate::dtype::{round_to, DType};

/// Codes that fit f64's 53-bit mantissa convert to f64 and back exactly.
pub const MAX_CODE: f64 = (1u64 << 52) as f64;
/// The largest code `code` gives (`round_in_place`'s range); beyond it an element is stored
/// exactly.
const MAX_ROUNDED: f64 = (1u64 << 51) as f64;
/// 1.5 x 2^52: added to a float of at most 2^51 in size, it leaves no bits below the units
/// (`round_in_place`, `integral`).
const ROUNDING_SHIFT: f64 = 1.5 * (1u64 << 52) as f64;

pub struct Quantised {
    pub codes: Vec<i64>,
    /// Indices of the elements stored exactly, ascending.
    pub outliers: Vec<u64>,
    /// Largest |x' - x| over the elements that were quantised (outliers are exact).
    pub max_error: f64,
}

/// The value the decoder produces for code `q` over prediction `p`.
#[inline]
pub fn reconstruct(dtype: DType, p: f64, q: i64, step: f64) -> f64 {
    round_to(dtype, p + q as f64 * step)
}

/// The code of `x` on the bins of width `step` around the prediction `p`, with the value the
/// decoder rebuilds from it, when that is within `tol` of `x`; None for an element to store
/// exactly (not finite, a code too large for f64, or float rounding at a bin's edge). Every
/// quantiser takes its codes from here, so they cannot disagree on which element is kept.
#[inline(always)]
pub fn code(dtype: DType, x: f64, p: f64, step: f64, tol: f64) -> Option<(i64, f64)> {
    if !x.is_finite() {
        return None;
    }
    let y = (x - p) / step;
    // Written so a NaN (from a NaN prediction) fails it.
    if !(y.abs() <= MAX_ROUNDED) {
        return None;
    }
    let q = round_in_place(y);
    // `reconstruct`'s value for `q as i64`, which converts back to `q` exactly.
    let r = round_to(dtype, p + q * step);
    // `!(err > tol)` would let a NaN through; this form does not.
    ((r - x).abs() <= tol).then_some((q as i64, r))
}

/// `code` for elements side by side (`x`, `p`, and the outputs, all as long), with the dtype
/// fixed (`F32`: f32, else f64): `ok[j]` where `code` gives `Some((q[j] as i64, r[j]))`. No
/// branch an element, so the compiler takes the elements a vector at a time; the arithmetic is
/// `code`'s, operation for operation (each IEEE-exact), so the same codes to the bit. `p` may
/// hold any prediction: one not finite counts as 0, as `code`'s callers have it.
#[inline(always)]
pub fn code_batch<const F32: bool>(x: &[f64], p: &[f64], step: f64, tol: f64, q: &mut [f64], r: &mut [f64], ok: &mut [bool]) {
    let n = x.len();
    let (p, q, r, ok) = (&p[..n], &mut q[..n], &mut r[..n], &mut ok[..n]);
    for j in 0..n {
        let (x, p) = (x[j], if p[j].is_finite() { p[j] } else { 0.0 });
        let y = (x - p) / step;
        // False for a NaN or infinite x (y is then NaN or infinite), as `code`'s two tests.
        let in_range = y.abs() <= MAX_ROUNDED;
        let qj = round_in_place(y);
        let rj = round_to(if F32 { DType::F32 } else { DType::F64 }, p + qj * step);
        q[j] = qj;
        r[j] = rj;
        ok[j] = in_range & ((rj - x).abs() <= tol);
    }
}

/// `y.round()` for |y| <= 2^51, as a float: the code's value stays in the float unit on the
/// chain from `y` to the rebuilt value and its check (with `round_half_away`'s conversions to
/// an integer and back on it, an element's chain was so long that the walk's loop, whose
/// elements are independent, held too few of them in flight: `interp::quantise` took 7.3-7.8
/// ns an element of a 1 Mi-element f32 field, against 6.3-6.7 now). Adding 1.5 x 2^52 leaves
/// no bits below the units, so the float addition rounds `y` to an integer, ties to even; a
/// tie, rare, then goes away from zero as `round`'s do (`y` plus a half away from zero, exact
/// below 2^51), by a select, not a branch, so that `code_batch`'s loop vectorises.
#[inline(always)]
fn round_in_place(y: f64) -> f64 {
    let q = (y + ROUNDING_SHIFT) - ROUNDING_SHIFT;
    if (y - q).abs() == 0.5 {
        y + 0.5f64.copysign(y)
    } else {
        q
    }
}

/// `q as i64` for an integral `q` of at most 2^51 in size (`code_batch`'s kept codes, whose
/// `round_in_place` left no bits below the units): shifted by 1.5 x 2^52, its units are the
/// low bits of the float's mantissa. Two instructions, not `as`'s saturating conversion; any
/// other `q` gives some integer, never undefined behaviour.
#[inline(always)]
pub(crate) fn integral(q: f64) -> i64 {
    ((q + ROUNDING_SHIFT).to_bits() as i64).wrapping_sub(ROUNDING_SHIFT.to_bits() as i64)
}

/// `y.round() as i64` for |y| <= MAX_CODE, without the call to libm's `round` that x86-64's
/// baseline (no SSE4.1 `roundsd`) makes of it: 4 % of a level-1 `pack` was that call. The
/// truncation and the fraction are exact below 2^52, so ties go away from zero as `round`'s do.
#[inline(always)]
pub(crate) fn round_half_away(y: f64) -> i64 {
    let t = y as i64;
    let frac = y - t as f64;
    t + (frac >= 0.5) as i64 - (frac <= -0.5) as i64
}

/// `tol` is the absolute bound (> 0); the bin width is `2 * tol`.
pub fn quantise(dtype: DType, values: &[f64], prediction: Option<&[f64]>, tol: f64) -> Quantised {
    let step = 2.0 * tol;
    let mut codes = Vec::with_capacity(values.len());
    let mut outliers = Vec::new();
    let mut max_error = 0.0f64;
    for (i, &x) in values.iter().enumerate() {
        match code(dtype, x, prediction.map_or(0.0, |p| p[i]), step, tol) {
            Some((q, r)) => {
                max_error = max_error.max((r - x).abs());
                codes.push(q);
            }
            None => {
                // The outlier's code is 0 so it costs little; the decoder overwrites the value.
                codes.push(0);
                outliers.push(i as u64);
            }
        }
    }
    Quantised { codes, outliers, max_error }
}

/// `quantise` for a variable with missing elements (`missing[i]`), which are stored exactly like
/// other outliers. Every outlier's code (missing, NaN, beyond the bound) repeats its neighbour's,
/// so a run of fill values costs nothing and no predictor sees a jump.
pub fn quantise_masked(dtype: DType, values: &[f64], tol: f64, missing: Option<&[bool]>) -> Quantised {
    let mut q = match missing {
        None => quantise(dtype, values, None, tol),
        Some(m) => {
            let kept: Vec<f64> = values.iter().zip(m).map(|(&x, &m)| if m { f64::NAN } else { x }).collect();
            quantise(dtype, &kept, None, tol)
        }
    };
    if !q.outliers.is_empty() {
        let mut out = vec![false; values.len()];
        for &i in &q.outliers {
            out[i as usize] = true;
        }
        crate::missing::fill_codes(&mut q.codes, &out);
    }
    q
}

/// `quantise_masked(dtype, values, tol, missing).codes[i]` for each `i` of `at` (ascending),
/// from those elements alone, and for an outlier the ones before it back to the first kept one:
/// a walk's sample box needs Lorenzo's codes of its 64 Ki elements, not of the whole chunk
/// (quantised whole, it was 8-13 % of the encode of a field the walk then codes: HadCM3 A1B at
/// 1e-2 30 -> 27 ms on one thread).
pub fn codes_at(dtype: DType, values: &[f64], tol: f64, missing: Option<&[bool]>, at: &[usize]) -> Vec<i64> {
    let step = 2.0 * tol;
    let kept = |i: usize| if missing.is_some_and(|m| m[i]) { None } else { code(dtype, values[i], 0.0, step, tol).map(|c| c.0) };
    let mut codes = Vec::with_capacity(at.len());
    // The element of `at` before, and its code: an outlier repeats the last kept code before it
    // (`fill_codes`), which is the first kept one looking back to that element, else its code.
    // So every element of the chunk is looked at once at most, even where whole planes are
    // missing (scanning back to the start from each row of the box made that quadratic).
    let mut before: Option<(usize, i64)> = None;
    for &i in at {
        let c = kept(i).unwrap_or_else(|| {
            let (from, fallback) = match before {
                Some((j, c)) if j < i => (j + 1, c),
                _ => (0, 0),
            };
            (from..i).rev().find_map(kept).unwrap_or(fallback)
        });
        before = Some((i, c));
        codes.push(c);
    }
    codes
}

/// The coarsest power-of-two spacing every `valid` finite value is a multiple of, when it is
/// wider than `step` (and the values' multiples of it fit 52 bits): data stored at a coarser
/// resolution than the bound asks for (a forecast packed at 1/8 K, counts kept as floats) code
/// exactly on that lattice, in fewer bits than on the bound's bins. None otherwise.
pub fn lattice(values: &[f64], valid: impl Fn(usize) -> bool, step: f64) -> Option<f64> {
    let mut low = i32::MAX;
    let mut top = 0f64;
    // A spacing of 2^floor or less is no coarser than the bin: the scan stops at the first
    // value that shows it (on most data, the first value).
    let floor = step.log2().floor() as i32;
    for (i, &x) in values.iter().enumerate() {
        if !valid(i) || !x.is_finite() || x == 0.0 {
            continue;
        }
        let bits = x.to_bits();
        let (exp, mant) = (((bits >> 52) & 0x7ff) as i32, bits & ((1u64 << 52) - 1));
        // x = m * 2^e with m odd: e is the exponent of its lowest set bit.
        let e = if exp == 0 { -1074 + mant.trailing_zeros() as i32 } else { exp - 1075 + (mant | 1 << 52).trailing_zeros() as i32 };
        low = low.min(e);
        top = top.max(x.abs());
        if low <= floor {
            return None;
        }
    }
    if low == i32::MAX {
        return None;
    }
    let spacing = 2f64.powi(low);
    (spacing > step && top / spacing <= MAX_CODE).then_some(spacing)
}

pub fn dequantise(dtype: DType, codes: &[i64], prediction: Option<&[f64]>, step: f64) -> Vec<f64> {
    codes
        .iter()
        .enumerate()
        .map(|(i, &q)| reconstruct(dtype, prediction.map_or(0.0, |p| p[i]), q, step))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift) so the test needs no dependency.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn check(dtype: DType, values: &[f64], tol: f64) -> usize {
        let q = quantise(dtype, values, None, tol);
        let mut out = dequantise(dtype, &q.codes, None, 2.0 * tol);
        for &i in &q.outliers {
            out[i as usize] = values[i as usize];
        }
        for (i, (&x, &y)) in values.iter().zip(&out).enumerate() {
            if x.is_nan() {
                assert!(y.is_nan());
            } else {
                assert!((x - y).abs() <= tol || x == y, "{dtype} i={i} x={x:e} y={y:e} tol={tol:e}");
            }
        }
        q.outliers.len()
    }

    /// The inline rounding is `f64::round`'s on every tie, at the ends of the codes' range, next
    /// to the ties (one ulp either side) and on random values of every magnitude.
    #[test]
    fn round_half_away_is_libms_round() {
        let mut ys: Vec<f64> = vec![0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999999999999994, -0.49999999999999994, MAX_CODE, -MAX_CODE, MAX_CODE - 0.5, -(MAX_CODE - 0.5), 2f64.powi(51) + 0.5, -(2f64.powi(51) + 0.5)];
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            let r = xorshift(&mut s);
            let tie = (r >> 12) as i64 as f64 / 2.0 * if r & 1 == 1 { -1.0 } else { 1.0 };
            ys.extend([tie, f64::from_bits(tie.to_bits() + 1), f64::from_bits(tie.to_bits().saturating_sub(1))]);
            let scale = 2f64.powi((r % 60) as i32 - 8);
            ys.push((f64::from_bits(r >> 12 | 0x3ff0_0000_0000_0000) - 1.5) * scale);
        }
        for y in ys.into_iter().filter(|y| y.abs() <= MAX_CODE) {
            assert_eq!(round_half_away(y), y.round() as i64, "y={y:e}");
        }
    }

    /// `round_in_place` is libm's `round` over its range (ties either way, their neighbours,
    /// the range's ends, values of every magnitude), and bit for bit the code's conversion to a
    /// float, which the decoder multiplies (a zero is +0.0, never `round`'s -0.0).
    #[test]
    fn round_in_place_is_libms_round() {
        let mut ys: Vec<f64> = vec![0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999999999999994, -0.49999999999999994, MAX_ROUNDED, -MAX_ROUNDED, MAX_ROUNDED - 0.5, -(MAX_ROUNDED - 0.5), MAX_ROUNDED - 1.5, 1e-300, -1e-300];
        let mut s = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            let r = xorshift(&mut s);
            let tie = ((r >> 13) as i64 as f64 + 0.5) * if r & 1 == 1 { -1.0 } else { 1.0 };
            ys.extend([tie, f64::from_bits(tie.to_bits() + 1), f64::from_bits(tie.to_bits() - 1)]);
            let scale = 2f64.powi((r % 59) as i32 - 8);
            ys.push((f64::from_bits(r >> 12 | 0x3ff0_0000_0000_0000) - 1.5) * scale);
        }
        for y in ys.into_iter().filter(|y| y.abs() <= MAX_ROUNDED) {
            assert_eq!(round_in_place(y).to_bits(), (y.round() as i64 as f64).to_bits(), "y={y:e}");
            // The walk's conversion of the rounded value, against `as`.
            let q = round_in_place(y);
            assert_eq!(integral(q), q as i64, "q={q:e}");
        }
    }

    /// A sample box's codes, from its elements alone, are the whole quantisation's: where an
    /// outlier (NaN, infinity, a missing element, a value at a bin's edge) starts a row of the
    /// box, sits inside one, or follows a run of outliers that began before the box.
    #[test]
    fn codes_at_are_the_whole_quantisations_codes() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let tol = 1e-3;
        for dtype in [DType::F32, DType::F64] {
            let n = 4000;
            let mut values: Vec<f64> = (0..n).map(|i| round_to(dtype, (i as f64 * 0.01).sin() * 3.0)).collect();
            let mut missing = vec![false; n];
            for i in 0..n {
                match xorshift(&mut seed) % 16 {
                    0 => values[i] = f64::NAN,
                    1 => missing[i] = true,
                    2 => values[i] = round_to(dtype, ((i % 50) as f64 + 0.5) * 2.0 * tol),
                    _ => {}
                }
            }
            // Long runs of outliers, some across a box row's start, one over several box rows.
            for i in (100..400).chain(999..1003).chain(2000..2300).chain(3200..3900) {
                missing[i] = true;
            }
            values[3000..3100].fill(f64::INFINITY);
            for mask in [None, Some(&missing[..])] {
                let whole = quantise_masked(dtype, &values, tol, mask);
                assert!(!whole.outliers.is_empty());
                // Rows of a box, a box's first element, every element, and none.
                let rows: Vec<usize> = (0..20).flat_map(|r| r * 200 + 90..r * 200 + 150).collect();
                let boxes = [rows, vec![1000, 1001, 2200, 3050, 3999], (0..n).collect(), vec![]];
                for at in &boxes {
                    let want: Vec<i64> = at.iter().map(|&i| whole.codes[i]).collect();
                    assert_eq!(codes_at(dtype, &values, tol, mask, at), want, "{dtype} masked {}", mask.is_some());
                }
            }
        }
    }

    #[test]
    fn lattice_is_found_only_where_it_is_coarser_than_the_bin() {
        let eighths: Vec<f64> = (0..100).map(|i| 285.0 + i as f64 * 0.125).collect();
        assert_eq!(lattice(&eighths, |_| true, 0.002), Some(0.125));
        assert_eq!(lattice(&eighths, |_| true, 0.2), None, "the bin is coarser");
        let mut off = eighths.clone();
        off[50] += 0.01;
        assert_eq!(lattice(&off, |_| true, 0.002), None);
        assert_eq!(lattice(&off, |i| i != 50, 0.002), Some(0.125), "a missing value does not count");
        assert_eq!(lattice(&[3.0, -7.0, 0.0, 1e6], |_| true, 0.5), Some(1.0));
        assert_eq!(lattice(&[0.0, f64::NAN], |_| true, 0.5), None);
        assert_eq!(lattice(&[2f64.powi(60)], |_| true, 0.5), Some(2f64.powi(60)));
        assert_eq!(lattice(&[2f64.powi(60) + 2f64.powi(8)], |_| true, 0.5), None, "codes beyond 52 bits");
        // On the lattice the codes rebuild every value exactly.
        let q = quantise(DType::F32, &eighths, None, 0.0625);
        assert!(q.outliers.is_empty() && q.max_error == 0.0);
    }

    #[test]
    fn bound_holds_on_bin_edges_and_extremes() {
        let tol = 1e-3;
        // Values exactly on and next to bin edges, where rounding decides the bin.
        let mut edges = Vec::new();
        for k in -2000i64..2000 {
            let e = (k as f64 + 0.5) * 2.0 * tol;
            edges.extend([e, f64::from_bits(e.to_bits() + 1), f64::from_bits(e.to_bits().wrapping_sub(1))]);
        }
        for dtype in [DType::F32, DType::F64] {
            let vals: Vec<f64> = edges.iter().map(|&v| round_to(dtype, v)).collect();
            check(dtype, &vals, tol);
        }
        let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MAX, f64::MIN, 1e300, -0.0, 5e-324];
        assert_eq!(check(DType::F64, &specials, tol), 6, "nan, ±inf, ±max and 1e300 are exact outliers");
    }

    #[test]
    fn bound_holds_on_random_values_of_any_magnitude() {
        let mut s = 0x9e3779b97f4a7c15u64;
        for dtype in [DType::F32, DType::F64] {
            for &tol in &[1e-6, 1e-3, 0.5, 1e3] {
                let vals: Vec<f64> = (0..20000)
                    .map(|_| {
                        let r = xorshift(&mut s);
                        let mag = 10f64.powi((r % 16) as i32 - 8);
                        round_to(dtype, ((r >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * mag)
                    })
                    .collect();
                check(dtype, &vals, tol);
            }
        }
    }

    #[test]
    fn tolerance_below_dtype_precision_gives_exact_values() {
        // f32 spacing at 1e6 is 0.0625, far above a 1e-4 bound: the only f32 within the bound is
        // the value itself, so every element must come back bit-exact, whether the rounding of
        // the reconstruction to f32 lands on it or it is stored as an outlier.
        let vals: Vec<f64> = (0..100).map(|i| (1e6 + i as f64 * 0.0625) as f32 as f64).collect();
        let tol = 1e-4;
        let q = quantise(DType::F32, &vals, None, tol);
        let mut out = dequantise(DType::F32, &q.codes, None, 2.0 * tol);
        for &i in &q.outliers {
            out[i as usize] = vals[i as usize];
        }
        assert_eq!(out, vals);
    }
}
