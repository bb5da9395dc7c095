//! What lossy coding did to a variable, in the Baler paper's Table 2 terms: the residual
//! x' - x (max |.|, mean |.|, mean, RMS) and the response (x' - x) / x (mean, RMS, over x != 0).
//! Each lossy block carries these for its elements, so `inspect` reports them without the
//! original data.

use crate::wire::Cursor;

pub const WIRE_LEN: u64 = 64;

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct ErrStats {
    /// Finite elements counted.
    pub n: u64,
    pub max_abs: f64,
    pub sum_abs: f64,
    pub sum_res: f64,
    pub sum_res2: f64,
    pub n_resp: u64,
    pub sum_resp: f64,
    pub sum_resp2: f64,
}

/// The response (x' - x) / x of residual `r` at `x`, 0 at x = 0 (not counted).
#[inline(always)]
fn response(x: f64, r: f64) -> f64 {
    if x != 0.0 {
        r / x
    } else {
        0.0
    }
}

impl ErrStats {
    #[inline]
    pub fn add(&mut self, x: f64, rec: f64) {
        if !x.is_finite() {
            return;
        }
        let r = rec - x;
        self.sum(x, r, response(x, r));
    }

    /// A finite `x`'s residual `r` and response `q` (`response`) into the sums. Without a
    /// branch (a field's zeros fall where they will): at x = 0 the response sums take 0.0,
    /// which leaves them as they were, to the bit (they start at +0.0, so none is ever -0.0).
    #[inline(always)]
    fn sum(&mut self, x: f64, r: f64, q: f64) {
        self.n += 1;
        self.max_abs = self.max_abs.max(r.abs());
        self.sum_abs += r.abs();
        self.sum_res += r;
        self.sum_res2 += r * r;
        self.n_resp += (x != 0.0) as u64;
        self.sum_resp += q;
        self.sum_resp2 += q * q;
    }

    /// `add(xs[j], rec(j))` for every j, the sums kept in `Lanes` and added together at the
    /// end. Summed in `add`'s order each element waited on the float addition before it: the
    /// statistics took 9 % of a level-1 `pack` (GloSea4 x20 at 1e-2, one thread, perf on a
    /// Xeon).
    #[inline(always)]
    pub fn add_all(&mut self, xs: &[f64], rec: impl Fn(usize) -> f64) {
        let mut lanes = Lanes::default();
        let mut r = [0f64; BATCH];
        for (b, part) in xs.chunks(BATCH).enumerate() {
            for (j, r) in r[..part.len()].iter_mut().enumerate() {
                *r = rec(b * BATCH + j);
            }
            lanes.add_batch(part, &mut r);
        }
        lanes.add_to(self);
    }

    pub fn merge(&mut self, o: &ErrStats) {
        // Counts read from a damaged archive can be anything: saturate rather than overflow.
        self.n = self.n.saturating_add(o.n);
        self.max_abs = self.max_abs.max(o.max_abs);
        self.sum_abs += o.sum_abs;
        self.sum_res += o.sum_res;
        self.sum_res2 += o.sum_res2;
        self.n_resp = self.n_resp.saturating_add(o.n_resp);
        self.sum_resp += o.sum_resp;
        self.sum_resp2 += o.sum_resp2;
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.n.to_le_bytes());
        for v in [self.max_abs, self.sum_abs, self.sum_res, self.sum_res2] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.n_resp.to_le_bytes());
        for v in [self.sum_resp, self.sum_resp2] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// The compact form of staged blocks: `varint n, f64 max, varint n_resp, u8 f (4: f32,
    /// 8: f64), then mean |r|, mean r, mean r^2, mean q, mean q^2 as f`. Reports need the means
    /// to a few digits; they go as f32 unless one does not fit an f32.
    pub fn write_compact(&self, out: &mut Vec<u8>) {
        crate::wire::put_varint(out, self.n);
        out.extend_from_slice(&self.max_abs.to_le_bytes());
        crate::wire::put_varint(out, self.n_resp);
        let mean = |s: f64, n: u64| if n > 0 { s / n as f64 } else { 0.0 };
        let means = [
            mean(self.sum_abs, self.n),
            mean(self.sum_res, self.n),
            mean(self.sum_res2, self.n),
            mean(self.sum_resp, self.n_resp),
            mean(self.sum_resp2, self.n_resp),
        ];
        if means.iter().all(|&m| (m as f32).is_finite() || !m.is_finite()) {
            out.push(4);
            means.iter().for_each(|&m| out.extend_from_slice(&(m as f32).to_le_bytes()));
        } else {
            out.push(8);
            means.iter().for_each(|&m| out.extend_from_slice(&m.to_le_bytes()));
        }
    }

    pub fn read_compact(cur: &mut Cursor) -> Result<ErrStats, String> {
        let n = cur.varint("stats n")?;
        let max_abs = cur.f64("stats max")?;
        let n_resp = cur.varint("stats n")?;
        let mut m = [0f64; 5];
        match cur.u8("stats width")? {
            4 => m.iter_mut().try_for_each(|v| cur.f32("stats mean").map(|x| *v = x as f64))?,
            8 => m.iter_mut().try_for_each(|v| cur.f64("stats mean").map(|x| *v = x))?,
            w => return Err(format!("stats width {w}")),
        }
        let (nf, rf) = (n as f64, n_resp as f64);
        Ok(ErrStats {
            n,
            max_abs,
            sum_abs: m[0] * nf,
            sum_res: m[1] * nf,
            sum_res2: m[2] * nf,
            n_resp,
            sum_resp: m[3] * rf,
            sum_resp2: m[4] * rf,
        })
    }

    pub fn read(cur: &mut Cursor) -> Result<ErrStats, String> {
        Ok(ErrStats {
            n: cur.u64("stats n")?,
            max_abs: cur.f64("stats max")?,
            sum_abs: cur.f64("stats sum")?,
            sum_res: cur.f64("stats sum")?,
            sum_res2: cur.f64("stats sum")?,
            n_resp: cur.u64("stats n")?,
            sum_resp: cur.f64("stats sum")?,
            sum_resp2: cur.f64("stats sum")?,
        })
    }

    pub fn summary(&self) -> ErrSummary {
        let mean = |s: f64, n: u64| if n > 0 { s / n as f64 } else { 0.0 };
        ErrSummary {
            max_abs_error: self.max_abs,
            mean_abs_error: mean(self.sum_abs, self.n),
            residual_mean: mean(self.sum_res, self.n),
            residual_rms: mean(self.sum_res2, self.n).sqrt(),
            response_mean: mean(self.sum_resp, self.n_resp),
            response_rms: mean(self.sum_resp2, self.n_resp).sqrt(),
        }
    }
}

/// The most elements `Lanes::add_batch` takes at once.
pub const BATCH: usize = 64;
const LANES: usize = 4;

/// `ErrStats`' sums kept in `LANES` lanes (a batch's element j in lane j % LANES), so that
/// each element does not wait on the addition before it. The sums may differ from `add`'s in
/// their last bits (a staged block stores them as f32 means, `write_compact`); the counts and
/// the maximum are the same. The lanes are plain arrays, so the baseline and the tuned twin
/// (`cpu::tuned`) compute the same sums to the bit.
#[derive(Clone, Copy, Default)]
pub struct Lanes {
    /// |r|, r, r^2, q, q^2 by lane.
    sums: [[f64; LANES]; 5],
    max: [f64; LANES],
    n: u64,
    n_resp: u64,
}

impl Lanes {
    /// `add(xs[j], rec[j])` for each of `xs` (at most `BATCH`); `rec` is overwritten. A
    /// non-finite x contributes +0.0 to each sum, which leaves a lane as it was (they start at
    /// +0.0, so none is ever -0.0), and nothing to the maximum or the counts.
    #[inline(always)]
    pub fn add_batch(&mut self, xs: &[f64], rec: &mut [f64; BATCH]) {
        let k = xs.len();
        assert!(k <= BATCH);
        let mut q = [0f64; BATCH];
        let (mut n, mut n_resp) = (0u64, 0u64);
        // The rebuilt values first (the caller's), so that the divisions run in vector lanes.
        for ((r, q), &x) in rec[..k].iter_mut().zip(q.iter_mut()).zip(xs) {
            let (ok, d) = (x.is_finite(), *r - x);
            *r = if ok { d } else { 0.0 };
            *q = if ok { response(x, d) } else { 0.0 };
            n += ok as u64;
            n_resp += (ok && x != 0.0) as u64;
        }
        self.n += n;
        self.n_resp += n_resp;
        self.sum(rec, &mut q, k);
    }

    /// The residuals `r` and responses `q` of a batch's first `k` elements into the lanes.
    #[inline(always)]
    fn sum(&mut self, r: &mut [f64; BATCH], q: &mut [f64; BATCH], k: usize) {
        // A short batch's lanes past its end take zeros.
        let padded = k.next_multiple_of(LANES);
        r[k..padded].fill(0.0);
        q[k..padded].fill(0.0);
        for (r, q) in r[..padded].chunks_exact(LANES).zip(q[..padded].chunks_exact(LANES)) {
            for l in 0..LANES {
                self.lane(l, r[l], q[l]);
            }
        }
    }

    /// Residual `r` and response `q` into lane `l`'s sums and maximum.
    #[inline(always)]
    fn lane(&mut self, l: usize, r: f64, q: f64) {
        self.max[l] = self.max[l].max(r.abs());
        self.sums[0][l] += r.abs();
        self.sums[1][l] += r;
        self.sums[2][l] += r * r;
        self.sums[3][l] += q;
        self.sums[4][l] += q * q;
    }

    /// `add(x, rec)`, in the first lane.
    #[inline(always)]
    pub fn add_one(&mut self, x: f64, rec: f64) {
        if !x.is_finite() {
            return;
        }
        let r = rec - x;
        self.lane(0, r, response(x, r));
        self.n += 1;
        self.n_resp += (x != 0.0) as u64;
    }

    /// The lanes' sums added together, into `st`.
    pub fn add_to(&self, st: &mut ErrStats) {
        let total = |s: [f64; LANES]| (s[0] + s[1]) + (s[2] + s[3]);
        st.n += self.n;
        st.n_resp += self.n_resp;
        st.max_abs = self.max.into_iter().fold(st.max_abs, f64::max);
        st.sum_abs += total(self.sums[0]);
        st.sum_res += total(self.sums[1]);
        st.sum_res2 += total(self.sums[2]);
        st.sum_resp += total(self.sums[3]);
        st.sum_resp2 += total(self.sums[4]);
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct ErrSummary {
    pub max_abs_error: f64,
    pub mean_abs_error: f64,
    pub residual_mean: f64,
    pub residual_rms: f64,
    pub response_mean: f64,
    pub response_rms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `add_all` counts and takes the maximum as `add` one element at a time does, to the bit,
    /// and sums within rounding of its order: zeros, non-finite values, runs shorter and
    /// longer than a batch and not a multiple of the lanes.
    #[test]
    fn add_all_is_add_up_to_the_order_of_its_sums() {
        let mut r = crate::codec::xorshift(0x1234_5678_9abc_def1);
        for n in [0usize, 1, 3, 63, 64, 65, 200, 1000, 4099] {
            let xs: Vec<f64> = (0..n)
                .map(|i| match r() % 10 {
                    0 => 0.0,
                    1 if i % 3 == 0 => f64::NAN,
                    2 if i % 5 == 0 => f64::NEG_INFINITY,
                    _ => (r() % 20_000) as f64 * 0.01 - 100.0,
                })
                .collect();
            let rec: Vec<f64> = xs.iter().map(|&x| if x.is_finite() { x + (r() % 200) as f64 * 1e-3 - 0.1 } else { 1.0 }).collect();
            let (mut one, mut all) = (ErrStats::default(), ErrStats::default());
            // Both on top of what a short run left.
            one.add(2.0, 2.5);
            all.add(2.0, 2.5);
            xs.iter().zip(&rec).for_each(|(&x, &y)| one.add(x, y));
            all.add_all(&xs, |j| rec[j]);
            assert_eq!((all.n, all.n_resp, all.max_abs.to_bits()), (one.n, one.n_resp, one.max_abs.to_bits()), "{n} elements");
            let (a, o) = ([all.sum_abs, all.sum_res, all.sum_res2, all.sum_resp, all.sum_resp2], [one.sum_abs, one.sum_res, one.sum_res2, one.sum_resp, one.sum_resp2]);
            // Each sum's terms are at most 0.1 (or their squares) in size: the orders may part
            // by a few ulps of the largest partial sum an element.
            for (k, (a, o)) in a.iter().zip(&o).enumerate() {
                assert!((a - o).abs() <= 1e-12 * (1 + n) as f64, "{n} elements, sum {k}: {a} against {o}");
            }
        }
        // The lanes leave no trace on sums whose order cannot matter: integers' residuals.
        let xs: Vec<f64> = (1..=1000).map(|i| i as f64).collect();
        let mut all = ErrStats::default();
        all.add_all(&xs, |j| xs[j] + if j % 2 == 0 { 1.0 } else { -1.0 });
        assert_eq!((all.n, all.sum_abs, all.sum_res, all.sum_res2, all.max_abs), (1000, 1000.0, 0.0, 1000.0, 1.0));
    }

    /// Elements at x = 0 leave the response sums as they were, to the bit, and are counted in
    /// the residual's: zeros, signed zeros, tiny and huge values, non-finite ones skipped.
    #[test]
    fn zeros_leave_the_response_sums_as_they_were() {
        let xs = [0.0, -0.0, 1.5, -2.25, 1e-300, -1e300, 0.0, 3.0, f64::NAN, f64::INFINITY, -7.0, 0.0];
        let recs = [1e-3, -1e-3, 1.5, -2.0, -1e-310, -1e300, 0.0, 2.5, 1.0, 1.0, -7.5, -0.0];
        let (mut all, mut nonzero) = (ErrStats::default(), ErrStats::default());
        for (&x, &rec) in xs.iter().zip(&recs) {
            all.add(x, rec);
            if x != 0.0 {
                nonzero.add(x, rec);
            }
        }
        assert_eq!((all.n, all.n_resp, nonzero.n_resp), (10, 6, 6));
        assert_eq!(all.sum_resp.to_bits(), nonzero.sum_resp.to_bits());
        assert_eq!(all.sum_resp2.to_bits(), nonzero.sum_resp2.to_bits());
        // 1.5 -> 1.5, -2.25 -> -2.0, 3.0 -> 2.5, -7.0 -> -7.5, 1e-300 and -1e300 exact-ish.
        assert!((all.sum_resp - (0.25 / -2.25 + -0.5 / 3.0 + -0.5 / -7.0 + (-1e-310 - 1e-300) / 1e-300)).abs() < 1e-12);
        assert_eq!(all.max_abs, 0.5);
    }
}
