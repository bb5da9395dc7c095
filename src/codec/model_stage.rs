//! The model stage: normalise -> encode -> quantise the latent -> decode that quantised latent
//! -> a prediction for every modelled element.
//!
//! The bound does not depend on the model. A bounded element is still reconstructed as
//! `q * step` with `q = round(x / step)`, exactly as without a model; the model only predicts
//! the integer `q`, so the stored residual `q - K` is small. ONNX Runtime's results differ in
//! the last bits between thread counts, CPUs and execution providers, so the decoder's
//! prediction may differ slightly from the encoder's. `K` is therefore made robust:
//! `K = round(p / step)` wherever `p / step` is farther than twice the prediction noise from a
//! rounding edge (then any prediction within the noise rounds the same way), and
//! `K = floor(p / step)` for the few elements near an edge, which the chunk lists (any
//! prediction within the noise of an edge has the same floor). A CRC of the codes `q` lets the
//! decoder prove it rebuilt them: a machine whose prediction strays further is an error, never
//! wrong numbers.

use half::f16;

use super::ints;
use crate::wire::Cursor;

/// A model as the codec sees it: f32 rows in, f32 rows out. Implemented over ONNX Runtime.
pub trait LatentModel: Sync {
    fn features(&self) -> usize;
    fn latent(&self) -> usize;
    fn encode(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, String>;
    fn decode(&self, z: &[f32], rows: usize) -> Result<Vec<f32>, String>;
}

/// One model input: `width` elements of a row of variable `var` from element `elem` on (one for
/// a table's column, a whole wedge for BCAE-2D).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureRef {
    pub var: usize,
    pub elem: usize,
    pub width: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LatentCoding {
    /// IEEE half precision (the default).
    #[default]
    F16,
    /// Uniform codes of this many bits (2..=16) between each latent column's min and max.
    Bits(u8),
}

/// The header's spelling ("f16", or the bit count), read back by `FromStr`.
impl std::fmt::Display for LatentCoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LatentCoding::F16 => f.write_str("f16"),
            LatentCoding::Bits(b) => write!(f, "{b}"),
        }
    }
}

impl std::str::FromStr for LatentCoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "f16" {
            return Ok(LatentCoding::F16);
        }
        match s.parse::<u8>() {
            Ok(b) if (2..=16).contains(&b) => Ok(LatentCoding::Bits(b)),
            _ => Err(format!("latent coding '{s}': use f16 or a bit count from 2 to 16")),
        }
    }
}

/// Everything the codec needs to run the model stage on one dataset's chunks.
pub struct ModelPlan<'a> {
    pub model: &'a dyn LatentModel,
    pub offset: &'a [f64],
    pub scale: &'a [f64],
    pub features: Vec<FeatureRef>,
    pub latent: LatentCoding,
    /// Score the prediction as sparse detector data (BCAE-2D): see `SparseScore`.
    pub score_sparse: bool,
    /// The grid of the model's rows (their last two axes), for the predictor of the residual
    /// codes; None for tables.
    pub grid: ints::Grid,
}

/// What the codec needs of a model to plan any dataset's chunks: the model, its normalisation
/// per feature, each feature's width, and whether to score its prediction as sparse data.
pub struct ModelSpec<'a> {
    pub model: &'a dyn LatentModel,
    pub offset: &'a [f64],
    pub scale: &'a [f64],
    /// Elements of a row each feature spans (1 for a table's columns, a wedge for BCAE-2D).
    pub widths: Vec<usize>,
    pub score_sparse: bool,
    /// The grid of a row-shaped model's rows: see `ModelPlan::grid`.
    pub grid: ints::Grid,
}

impl<'a> ModelSpec<'a> {
    /// The plan for a dataset whose features are these `[variable, first element]`.
    pub fn plan(&self, features: &[[u64; 2]], latent: LatentCoding) -> ModelPlan<'a> {
        let mut plan = ModelPlan::new(self.model, self.offset, self.scale, features, latent).with_widths(&self.widths);
        plan.score_sparse = self.score_sparse;
        plan.grid = self.grid;
        plan
    }
}

const LATENT_F16: u8 = 1;
const LATENT_BITS: u8 = 2;

/// Relative noise allowed between two evaluations of the decoder, in units of its output:
/// two orders above f32 rounding (6e-8) so it covers the rounding compounded over a few layers
/// (not yet measured across CPUs and execution providers). A larger drift is caught by the CRC.
const PREDICTION_NOISE: f64 = 1e-5;

impl<'a> ModelPlan<'a> {
    /// `features`: each model input as `[variable index, element within a row]`, as the header
    /// records them.
    pub fn new(model: &'a dyn LatentModel, offset: &'a [f64], scale: &'a [f64], features: &[[u64; 2]], latent: LatentCoding) -> Self {
        let features = features.iter().map(|&[v, e]| FeatureRef { var: v as usize, elem: e as usize, width: 1 }).collect();
        ModelPlan { model, offset, scale, features, latent, score_sparse: false, grid: None }
    }

    /// Sets each feature's width (elements of a row it spans).
    pub fn with_widths(mut self, widths: &[usize]) -> Self {
        for (f, &w) in self.features.iter_mut().zip(widths) {
            f.width = w;
        }
        self
    }

    fn input_width(&self) -> usize {
        self.features.iter().map(|f| f.width).sum()
    }

    /// The model's input for a chunk (`data[v]`: variable v's values, None for non-floats):
    /// normalised rows, non-finite values as 0.
    pub fn inputs(&self, data: &[Option<Vec<f64>>], elems_per_row: usize, rows: usize) -> Result<Vec<f32>, String> {
        let cols: Vec<&[f64]> = self
            .features
            .iter()
            .map(|f| data.get(f.var).and_then(|d| d.as_deref()).ok_or_else(|| format!("model feature {} is not a float variable", f.var)))
            .collect::<Result<_, _>>()?;
        let mut x = Vec::with_capacity(rows * self.input_width());
        for r in 0..rows {
            for (j, f) in self.features.iter().enumerate() {
                let start = r * elems_per_row + f.elem;
                let block = cols[j].get(start..start + f.width).ok_or("model feature beyond the row")?;
                for &v in block {
                    let z = ((v - self.offset[j]) / self.scale[j]) as f32;
                    x.push(if z.is_finite() { z } else { 0.0 });
                }
            }
        }
        Ok(x)
    }

    /// Encodes the latent, appends its block to `out`, and returns the quantised latent the
    /// decoder will see.
    pub fn encode_latent(&self, z: &[f32], rows: usize, level: i32, out: &mut Vec<u8>) -> Vec<f32> {
        let l = self.model.latent();
        out.extend_from_slice(&(l as u32).to_le_bytes());
        match self.latent {
            LatentCoding::F16 => {
                out.push(LATENT_F16);
                let mut raw = Vec::with_capacity(z.len() * 2);
                let mut zq = Vec::with_capacity(z.len());
                for &v in z {
                    let h = f16::from_f32(if v.is_finite() { v.clamp(-65504.0, 65504.0) } else { 0.0 });
                    raw.extend_from_slice(&h.to_le_bytes());
                    zq.push(h.to_f32());
                }
                let payload = super::bytes::compress(&super::bytes::shuffle(2, &raw), level);
                out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
                out.extend_from_slice(&payload);
                zq
            }
            LatentCoding::Bits(b) => {
                out.push(LATENT_BITS);
                out.push(b);
                let levels = ((1u32 << b) - 1) as f32;
                let mut ranges = Vec::with_capacity(l);
                for c in 0..l {
                    let col = (0..rows).map(|r| z[r * l + c]).filter(|v| v.is_finite());
                    let (lo, hi) = col.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
                    let (lo, hi) = if lo <= hi { (lo, hi) } else { (0.0, 0.0) };
                    out.extend_from_slice(&lo.to_le_bytes());
                    out.extend_from_slice(&hi.to_le_bytes());
                    ranges.push((lo, hi));
                }
                let mut codes = Vec::with_capacity(z.len());
                for r in 0..rows {
                    for (c, &(lo, hi)) in ranges.iter().enumerate() {
                        let v = z[r * l + c];
                        let t = if hi > lo && v.is_finite() { ((v - lo) / (hi - lo) * levels).round().clamp(0.0, levels) } else { 0.0 };
                        codes.push(t as i64);
                    }
                }
                ints::encode(&codes, level, None, out);
                dequantise_bits(&codes, &ranges, levels)
            }
        }
    }

    /// Reads a latent block written by `encode_latent`.
    pub fn decode_latent(&self, cur: &mut Cursor, rows: usize) -> Result<Vec<f32>, String> {
        let l = cur.u32("latent width")? as usize;
        if l != self.model.latent() {
            return Err(format!("latent of width {l}; the model's is {}", self.model.latent()));
        }
        let n = rows.checked_mul(l).ok_or("latent size overflows")?;
        match cur.u8("latent coding")? {
            LATENT_F16 => {
                let len = cur.u64("latent payload length")?;
                let raw = super::bytes::unshuffle(2, &super::bytes::decompress(cur.bytes(len, "latent payload")?, n * 2)?);
                Ok(raw.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect())
            }
            LATENT_BITS => {
                let b = cur.u8("latent bits")?;
                if !(2..=16).contains(&b) {
                    return Err(format!("latent of {b} bits"));
                }
                let mut ranges = Vec::with_capacity(l);
                for _ in 0..l {
                    let lo = f32::from_le_bytes(cur.bytes(4, "latent min")?.try_into().unwrap());
                    let hi = f32::from_le_bytes(cur.bytes(4, "latent max")?.try_into().unwrap());
                    ranges.push((lo, hi));
                }
                let codes = ints::decode(cur, n)?;
                let levels = ((1u32 << b) - 1) as f32;
                if codes.iter().any(|&c| c < 0 || c as f32 > levels) {
                    return Err("latent code out of range".into());
                }
                Ok(dequantise_bits(&codes, &ranges, levels))
            }
            k => Err(format!("unknown latent coding {k}")),
        }
    }

    /// The model's prediction for every modelled element, in data units, per variable
    /// (None for variables the model does not see).
    pub fn predict(&self, zq: &[f32], rows: usize, nvars: usize, elems_per_row: usize) -> Result<Predictions, String> {
        // The header's checks see one element per feature; a feature that spans a whole row
        // (BCAE-2D, conv) must also end inside it.
        if let Some(fr) = self.features.iter().find(|fr| fr.var >= nvars || fr.elem + fr.width > elems_per_row) {
            return Err(format!(
                "model feature at variable {} elements {}..{} does not fit a row of {elems_per_row}",
                fr.var,
                fr.elem,
                fr.elem + fr.width
            ));
        }
        let y = self.model.decode(zq, rows)?;
        let f = self.input_width();
        if y.len() != rows * f {
            return Err(format!("the decoder gave {} values for {rows} rows of {f} features", y.len()));
        }
        let mut values: Vec<Option<Vec<f64>>> = vec![None; nvars];
        let mut noise: Vec<Option<Vec<f64>>> = vec![None; nvars];
        let mut at = 0;
        for (j, fr) in self.features.iter().enumerate() {
            let p = values[fr.var].get_or_insert_with(|| vec![0.0; rows * elems_per_row]);
            let e = noise[fr.var].get_or_insert_with(|| vec![0.0; rows * elems_per_row]);
            for r in 0..rows {
                for k in 0..fr.width {
                    let yv = y[r * f + at + k] as f64;
                    let i = r * elems_per_row + fr.elem + k;
                    p[i] = yv * self.scale[j] + self.offset[j];
                    e[i] = PREDICTION_NOISE * (1.0 + yv.abs()) * self.scale[j];
                }
            }
            at += fr.width;
        }
        Ok(Predictions { values, noise })
    }
}

fn dequantise_bits(codes: &[i64], ranges: &[(f32, f32)], levels: f32) -> Vec<f32> {
    let l = ranges.len();
    codes
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let (lo, hi) = ranges[i % l];
            lo + c as f32 * ((hi - lo) / levels)
        })
        .collect()
}

/// How well a model predicts sparse detector data (the BCAE-2D paper's metrics), on
/// log2(x + 1): absolute and squared error, and the voxels predicted and truly non-zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SparseScore {
    pub voxels: u64,
    pub abs_error: f64,
    pub sq_error: f64,
    pub true_positive: u64,
    pub predicted: u64,
    pub nonzero: u64,
}

impl SparseScore {
    pub fn add(&mut self, truth: &[f64], prediction: &[f64]) {
        for (&x, &p) in truth.iter().zip(prediction) {
            let (lx, lp) = ((x.max(0.0) + 1.0).log2(), (p.max(0.0) + 1.0).log2());
            let d = lp - lx;
            self.voxels += 1;
            self.abs_error += d.abs();
            self.sq_error += d * d;
            let (t, q) = (x > 0.0, p > 0.0);
            self.nonzero += t as u64;
            self.predicted += q as u64;
            self.true_positive += (t && q) as u64;
        }
    }

    pub fn merge(&mut self, o: &SparseScore) {
        self.voxels += o.voxels;
        self.abs_error += o.abs_error;
        self.sq_error += o.sq_error;
        self.true_positive += o.true_positive;
        self.predicted += o.predicted;
        self.nonzero += o.nonzero;
    }

    /// Mean absolute error of log2(x + 1).
    pub fn mae(&self) -> f64 {
        self.abs_error / self.voxels.max(1) as f64
    }

    /// 20 log10(peak / RMSE) on log2(x + 1), with the peak of 10-bit ADC: log2(1024) = 10.
    pub fn psnr(&self) -> f64 {
        let rmse = (self.sq_error / self.voxels.max(1) as f64).sqrt();
        20.0 * (10.0 / rmse).log10()
    }

    pub fn precision(&self) -> f64 {
        self.true_positive as f64 / self.predicted.max(1) as f64
    }

    pub fn recall(&self) -> f64 {
        self.true_positive as f64 / self.nonzero.max(1) as f64
    }
}

pub struct Predictions {
    pub values: Vec<Option<Vec<f64>>>,
    /// The encoder's allowance for how far another machine's prediction may stray.
    pub noise: Vec<Option<Vec<f64>>>,
}

/// The integer prediction of `q` for `p` (see the module comment). Non-finite or huge
/// predictions predict 0.
#[inline]
pub fn integer_prediction(p: f64, step: f64, escaped: bool) -> i64 {
    let u = p / step;
    if !u.is_finite() || u.abs() > (1u64 << 52) as f64 {
        return 0;
    }
    if escaped { u.floor() as i64 } else { u.round() as i64 }
}

/// The elements whose prediction lies within twice its noise of a rounding edge.
pub fn escapes(p: &[f64], noise: &[f64], step: f64) -> Vec<u64> {
    let mut out = Vec::new();
    for (i, (&p, &e)) in p.iter().zip(noise).enumerate() {
        let u = p / step;
        if !u.is_finite() || u.abs() > (1u64 << 52) as f64 {
            continue;
        }
        let edge = 0.5 - (u - u.round()).abs();
        if edge * step <= 2.0 * e {
            out.push(i as u64);
        }
    }
    out
}

/// CRC-32 of the codes, so the decoder can prove it rebuilt the encoder's.
pub fn codes_crc(codes: &[i64]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for c in codes {
        h.update(&c.to_le_bytes());
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{ChunkCodec, ChunkPlace, VarCoding};
    use crate::dtype::{values_f64, DType};

    /// A non-linear "autoencoder" in plain Rust whose decoder output can be nudged, standing in
    /// for the same network evaluated by another ONNX Runtime build, thread count or device.
    /// Non-linear, so that the codec's linear prediction from another column cannot do its work.
    struct Linear {
        nudge: f32,
    }

    impl LatentModel for Linear {
        fn features(&self) -> usize {
            3
        }
        fn latent(&self) -> usize {
            1
        }
        fn encode(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, String> {
            Ok((0..rows).map(|r| x[r * 3]).collect())
        }
        fn decode(&self, z: &[f32], _rows: usize) -> Result<Vec<f32>, String> {
            // relative nudge, alternating sign: different in the last bits, as runtimes are
            Ok(z.iter().enumerate().flat_map(|(i, &v)| {
                let s = if i % 2 == 0 { 1.0 + self.nudge } else { 1.0 - self.nudge };
                let v = v * s;
                [v, v * v, -v * v * v]
            }).collect())
        }
    }

    fn chunk() -> (Vec<VarCoding>, Vec<Vec<u8>>, usize) {
        let rows = 4000;
        let mut cols = vec![Vec::new(), Vec::new(), Vec::new()];
        for r in 0..rows {
            // event-like: no neighbour in the file predicts the next row, the other columns do
            let h = (r as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let h = (h ^ (h >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let a = (h >> 11) as f64 / (1u64 << 53) as f64 * 6.0 - 3.0;
            let noise = ((r * 7919) % 101) as f64 * 1e-3;
            for (c, v) in [a, a * a + noise, -a * a * a - noise].into_iter().enumerate() {
                cols[c].extend_from_slice(&(v as f32).to_le_bytes());
            }
        }
        let vars = vec![VarCoding { dtype: DType::F32, tolerance: Some(1e-3), model_only: false, grid: None, walk_grid: None, missing: None, step_known: false, walk: None }; 3];
        (vars, cols, rows)
    }

    /// Every element of every variable within the chunk's bound (1e-3).
    fn assert_within(orig: &[Vec<u8>], got: &[Vec<u8>], what: &str) {
        for (v, (o, g)) in orig.iter().zip(got).enumerate() {
            let (a, b) = (values_f64(DType::F32, o), values_f64(DType::F32, g));
            assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= 1e-3), "{what}: variable {v} out of bound");
        }
    }

    fn plan(model: &Linear) -> ModelPlan<'_> {
        const ZERO: [f64; 3] = [0.0; 3];
        const ONE: [f64; 3] = [1.0; 3];
        ModelPlan::new(model, &ZERO, &ONE, &[[0, 0], [1, 0], [2, 0]], LatentCoding::F16)
    }

    #[test]
    fn decode_survives_a_runtime_that_differs_in_the_last_bits_and_refuses_one_that_differs_more() {
        let (vars, data, rows) = chunk();
        let codec = ChunkCodec { level: 3, threads: 1 };
        let place = ChunkPlace { dataset: 0, row_start: 0, rows: rows as u64 };
        let exact = Linear { nudge: 0.0 };
        let enc = codec.encode(place, &vars, &data, 1, Some(&plan(&exact))).unwrap();
        let sizes: Vec<_> = enc.vars.iter().map(|v| (v.bytes, v.used_model)).collect();
        assert!(enc.vars.iter().any(|v| v.used_model), "the model must pay on correlated columns: {sizes:?} latent {}", enc.latent_bytes);
        let plain = codec.encode(place, &vars, &data, 1, None).unwrap();
        assert!(enc.bytes.len() < plain.bytes.len());

        let reference = codec.decode(&enc.bytes, place, &vars, 1, Some(&plan(&exact))).unwrap();
        assert_within(&data, &reference, "exact prediction");
        // f32 ulp-level differences (1e-7 .. 1e-6 relative): bit-identical output.
        for nudge in [1.2e-7, 1e-6] {
            let other = Linear { nudge };
            let got = codec.decode(&enc.bytes, place, &vars, 1, Some(&plan(&other))).unwrap();
            assert_eq!(got, reference, "nudge {nudge}");
        }
        // A prediction that strays far beyond the tolerance is refused, never decoded wrong.
        let far = Linear { nudge: 5e-3 };
        let err = codec.decode(&enc.bytes, place, &vars, 1, Some(&plan(&far))).unwrap_err();
        assert!(err.contains("refusing"), "{err}");
    }

    #[test]
    fn latent_codings_round_trip() {
        let (vars, data, rows) = chunk();
        let codec = ChunkCodec { level: 3, threads: 1 };
        let place = ChunkPlace { dataset: 0, row_start: 0, rows: rows as u64 };
        let m = Linear { nudge: 0.0 };
        for latent in [LatentCoding::F16, LatentCoding::Bits(8), LatentCoding::Bits(12)] {
            let p = ModelPlan { latent, ..plan(&m) };
            let enc = codec.encode(place, &vars, &data, 1, Some(&p)).unwrap();
            let got = codec.decode(&enc.bytes, place, &vars, 1, Some(&p)).unwrap();
            assert_within(&data, &got, &format!("{latent:?}"));
        }
        assert!("1".parse::<LatentCoding>().is_err() && "17".parse::<LatentCoding>().is_err());
    }
}
