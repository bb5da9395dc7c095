//! What reconstruction did to one variable, accumulated a chunk at a time in bounded memory:
//! error moments (Baler's Table 2), the bound check and four histograms.

use serde::Serialize;

use crate::dtype::DType;

/// Mean, RMS and standard deviation of a stream of values. The spread is Welford's running M2,
/// so a standard deviation far below the mean (a biased residual) keeps its digits.
#[derive(Clone, Copy, Debug, Default)]
pub struct Moments {
    pub n: u64,
    mean: f64,
    m2: f64,
    sum_sq: f64,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct MomentSummary {
    pub mean: f64,
    /// sqrt(mean(x^2)).
    pub rms: f64,
    /// Population standard deviation (what ROOT calls the RMS of a histogram).
    pub std: f64,
}

impl Moments {
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
        self.sum_sq += x * x;
    }

    pub fn summary(&self) -> MomentSummary {
        if self.n == 0 {
            return MomentSummary { mean: 0.0, rms: 0.0, std: 0.0 };
        }
        let n = self.n as f64;
        MomentSummary { mean: self.mean, rms: (self.sum_sq / n).sqrt(), std: (self.m2 / n).max(0.0).sqrt() }
    }
}

/// How a histogram picks its range when the data does not give it up front.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RangeRule {
    /// Known before the first value (the header's min/max, or ± the bound).
    Fixed(f64, f64),
    /// From the first values seen: their min and max.
    SampleMinMax,
    /// From the first values seen: their 0.5 % and 99.5 % quantiles (responses have long tails
    /// where the original is near zero).
    SampleCentral,
}

/// A fixed-bin histogram in bounded memory. Ranges that must come from the data are taken from
/// the first SAMPLE values (buffered, then replayed), so one pass suffices; values outside the
/// range are counted as under- and overflow, never dropped silently.
#[derive(Clone, Debug)]
pub struct Histogram {
    bins: usize,
    rule: RangeRule,
    range: Option<(f64, f64)>,
    counts: Vec<u64>,
    underflow: u64,
    overflow: u64,
    pending: Vec<f64>,
}

pub const SAMPLE: usize = 1 << 16;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HistogramSummary {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<u64>,
    pub underflow: u64,
    pub overflow: u64,
}

impl Histogram {
    pub fn new(bins: usize, rule: RangeRule) -> Self {
        let mut h = Histogram {
            bins: bins.max(1),
            rule,
            range: None,
            counts: Vec::new(),
            underflow: 0,
            overflow: 0,
            pending: Vec::new(),
        };
        if let RangeRule::Fixed(lo, hi) = rule {
            h.set_range(lo, hi);
        }
        h
    }

    fn set_range(&mut self, lo: f64, hi: f64) {
        let (lo, hi) = widen(lo, hi);
        self.range = Some((lo, hi));
        self.counts = vec![0; self.bins];
    }

    pub fn add(&mut self, x: f64) {
        let Some((lo, hi)) = self.range else {
            self.pending.push(x);
            if self.pending.len() >= SAMPLE {
                self.fix_range();
            }
            return;
        };
        if x < lo {
            self.underflow += 1;
        } else if x > hi {
            self.overflow += 1;
        } else {
            let b = ((x - lo) / (hi - lo) * self.bins as f64) as usize;
            self.counts[b.min(self.bins - 1)] += 1;
        }
    }

    fn fix_range(&mut self) {
        let mut s = std::mem::take(&mut self.pending);
        let (lo, hi) = if s.is_empty() {
            (-1.0, 1.0)
        } else {
            s.sort_by(f64::total_cmp);
            match self.rule {
                RangeRule::SampleCentral => {
                    let q = |f: f64| s[((s.len() - 1) as f64 * f).round() as usize];
                    let (a, b) = (q(0.005), q(0.995));
                    let pad = (b - a) * 0.05;
                    (a - pad, b + pad)
                }
                _ => (s[0], s[s.len() - 1]),
            }
        };
        self.set_range(lo, hi);
        for x in s {
            self.add(x);
        }
    }

    pub fn finish(mut self) -> HistogramSummary {
        if self.range.is_none() {
            self.fix_range();
        }
        let (lo, hi) = self.range.unwrap_or((-1.0, 1.0));
        HistogramSummary { lo, hi, counts: self.counts, underflow: self.underflow, overflow: self.overflow }
    }
}

/// A range with room in it: a point becomes a small interval around itself.
fn widen(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (-1.0, 1.0);
    }
    if hi > lo {
        return (lo, hi);
    }
    let d = if lo == 0.0 { 1e-12 } else { lo.abs() * 1e-6 };
    (lo - d, hi + d)
}

/// Everything `eval` reports of one variable.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct VarSummary {
    pub n: u64,
    pub nonfinite: u64,
    pub mismatched_nonfinite: u64,
    /// Finite elements the variable's missing-value rule marks missing (fill values): left out
    /// of every statistic and histogram; each must come back bit for bit.
    pub missing: u64,
    pub mismatched_missing: u64,
    /// Elements whose bytes differ (reported for lossless variables, where any is a failure).
    pub mismatched_bytes: u64,
    pub max_abs_error: f64,
    pub mean_abs_error: f64,
    pub rms_abs_error: f64,
    pub residual: MomentSummary,
    pub response: ResponseSummary,
    pub bound_held: Option<bool>,
    pub histograms: Histograms,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ResponseSummary {
    #[serde(flatten)]
    pub moments: MomentSummary,
    pub n: u64,
    pub zero_original: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Histograms {
    pub original: HistogramSummary,
    pub reconstructed: HistogramSummary,
    pub residual: HistogramSummary,
    pub response: HistogramSummary,
}

/// What the variable was promised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Promise {
    /// Every element's bytes come back.
    Exact,
    /// |reco - orig| <= tolerance on finite elements; non-finite ones come back exactly.
    Within(f64),
    /// The model's output alone: nothing is promised.
    Nothing,
}

pub struct VarAccum {
    dtype: DType,
    promise: Promise,
    missing_rule: Option<crate::missing::MissingRule>,
    n: u64,
    nonfinite: u64,
    mismatched_nonfinite: u64,
    missing: u64,
    mismatched_missing: u64,
    mismatched_bytes: u64,
    max_abs: f64,
    /// Sum of |e|; the RMS of |e| is the residual's RMS.
    sum_abs: f64,
    residual: Moments,
    response: Moments,
    zero_original: u64,
    h_orig: Histogram,
    h_reco: Histogram,
    h_res: Histogram,
    h_resp: Histogram,
}

impl VarAccum {
    /// `range`: the original's finite min and max when the header knows them.
    pub fn new(dtype: DType, promise: Promise, range: Option<(f64, f64)>, bins: usize) -> Self {
        let value_rule = match (range, promise) {
            (Some((lo, hi)), Promise::Within(t)) => RangeRule::Fixed(lo - t, hi + t),
            (Some((lo, hi)), _) => RangeRule::Fixed(lo, hi),
            (None, _) => RangeRule::SampleMinMax,
        };
        // Whole numbers get one bin each when they fit, so a count histogram has no aliasing.
        let (value_rule, value_bins) = match value_rule {
            RangeRule::Fixed(lo, hi) if !dtype.is_float() && hi - lo < bins as f64 => {
                let (lo, hi) = (lo.floor() - 0.5, hi.ceil() + 0.5);
                (RangeRule::Fixed(lo, hi), (hi - lo).round() as usize)
            }
            r => (r, bins),
        };
        let res_rule = match promise {
            Promise::Within(t) => RangeRule::Fixed(-1.05 * t, 1.05 * t),
            _ => RangeRule::SampleMinMax,
        };
        VarAccum {
            dtype,
            promise,
            missing_rule: None,
            n: 0,
            nonfinite: 0,
            mismatched_nonfinite: 0,
            missing: 0,
            mismatched_missing: 0,
            mismatched_bytes: 0,
            max_abs: 0.0,
            sum_abs: 0.0,
            residual: Moments::default(),
            response: Moments::default(),
            zero_original: 0,
            h_orig: Histogram::new(value_bins, value_rule),
            h_reco: Histogram::new(value_bins, value_rule),
            h_res: Histogram::new(bins, res_rule),
            h_resp: Histogram::new(bins, RangeRule::SampleCentral),
        }
    }

    /// Leaves the elements `rule` marks missing out of statistics and histograms.
    pub fn with_missing(mut self, rule: Option<crate::missing::MissingRule>) -> Self {
        self.missing_rule = rule;
        self
    }

    /// One block of little-endian values of the variable: the original and its reconstruction.
    pub fn add(&mut self, orig: &[u8], reco: &[u8]) {
        let size = self.dtype.size();
        let xs = crate::dtype::values_f64(self.dtype, orig);
        let ys = crate::dtype::values_f64(self.dtype, reco);
        for (i, (&x, &y)) in xs.iter().zip(&ys).enumerate() {
            self.n += 1;
            let same_bytes = orig[i * size..(i + 1) * size] == reco[i * size..(i + 1) * size];
            self.mismatched_bytes += !same_bytes as u64;
            if !x.is_finite() {
                self.nonfinite += 1;
                self.mismatched_nonfinite += !same_bytes as u64;
                continue;
            }
            if self.missing_rule.is_some_and(|r| r.is_missing(x)) {
                self.missing += 1;
                self.mismatched_missing += !same_bytes as u64;
                continue;
            }
            let e = y - x;
            let a = e.abs();
            // NaN compares false: a finite original reconstructed as NaN must fail the bound.
            self.max_abs = if a > self.max_abs || a.is_nan() { a } else { self.max_abs };
            self.sum_abs += a;
            self.residual.add(e);
            self.h_orig.add(x);
            self.h_reco.add(y);
            self.h_res.add(e);
            if x == 0.0 {
                self.zero_original += 1;
            } else {
                let r = e / x;
                self.response.add(r);
                self.h_resp.add(r);
            }
        }
    }

    pub fn finish(self) -> VarSummary {
        let residual = self.residual.summary();
        let bound_held = match self.promise {
            Promise::Exact => Some(self.mismatched_bytes == 0),
            Promise::Within(t) => Some(self.max_abs <= t && self.mismatched_nonfinite == 0 && self.mismatched_missing == 0),
            Promise::Nothing => None,
        };
        VarSummary {
            n: self.n,
            nonfinite: self.nonfinite,
            mismatched_nonfinite: self.mismatched_nonfinite,
            missing: self.missing,
            mismatched_missing: self.mismatched_missing,
            mismatched_bytes: self.mismatched_bytes,
            max_abs_error: self.max_abs,
            mean_abs_error: if self.residual.n > 0 { self.sum_abs / self.residual.n as f64 } else { 0.0 },
            rms_abs_error: residual.rms,
            residual,
            response: ResponseSummary { moments: self.response.summary(), n: self.response.n, zero_original: self.zero_original },
            bound_held,
            histograms: Histograms {
                original: self.h_orig.finish(),
                reconstructed: self.h_reco.finish(),
                residual: self.h_res.finish(),
                response: self.h_resp.finish(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn moments_and_bound() {
        let orig = f32s(&[1.0, 2.0, 0.0, f32::NAN, 4.0]);
        let reco = f32s(&[1.5, 2.0, 0.25, f32::NAN, 3.0]);
        let mut a = VarAccum::new(DType::F32, Promise::Within(1.0), Some((0.0, 4.0)), 10);
        a.add(&orig, &reco);
        let s = a.finish();
        assert_eq!((s.n, s.nonfinite, s.mismatched_nonfinite), (5, 1, 0));
        assert_eq!(s.max_abs_error, 1.0);
        assert!((s.residual.mean - (0.5 + 0.0 + 0.25 - 1.0) / 4.0).abs() < 1e-15);
        assert_eq!(s.response.n, 3);
        assert_eq!(s.response.zero_original, 1);
        assert_eq!(s.bound_held, Some(true));
        let total = |h: &HistogramSummary| h.counts.iter().sum::<u64>() + h.underflow + h.overflow;
        assert_eq!(total(&s.histograms.original), 4);
        assert_eq!(total(&s.histograms.response), 3);

        let mut b = VarAccum::new(DType::F32, Promise::Within(0.9), None, 10);
        b.add(&orig, &reco);
        assert_eq!(b.finish().bound_held, Some(false));
        let mut c = VarAccum::new(DType::F32, Promise::Exact, None, 10);
        c.add(&orig, &orig);
        assert_eq!(c.finish().bound_held, Some(true));
    }

    #[test]
    fn nan_reconstruction_of_finite_value_fails() {
        let mut a = VarAccum::new(DType::F32, Promise::Within(1.0), None, 10);
        a.add(&f32s(&[1.0, 2.0]), &f32s(&[f32::NAN, 2.0]));
        assert_eq!(a.finish().bound_held, Some(false));
    }

    #[test]
    fn sampled_range_keeps_every_value() {
        let mut h = Histogram::new(50, RangeRule::SampleCentral);
        let n = SAMPLE * 3;
        for i in 0..n {
            h.add(((i * 7919) % 1000) as f64 - 500.0 + if i % 1000 == 0 { 1e6 } else { 0.0 });
        }
        let s = h.finish();
        assert_eq!(s.counts.iter().sum::<u64>() + s.underflow + s.overflow, n as u64);
        assert!(s.overflow > 0);
    }
}
