//! The shape of a BCAE-2D model (Huang et al., SC-W 2023): what the manifest records so a reader
//! can run the ONNX files without knowing how they were trained.
//!
//! A wedge is (layers, height, width) values of one variable per row, e.g. the sPHENIX TPC outer
//! layer group's (16, 192, 249) ADC values. The layers are the channels of a 2-D image. Height
//! and width are zero-padded up to a multiple of 2^downsamples before the encoder (249 -> 256,
//! the paper's padding) and clipped after the decoder.

use serde::{Deserialize, Serialize};

/// The input transform of the paper: the network sees log2(ADC + 1).
pub const TRANSFORM_LOG2P1: &str = "log2p1";

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bcae2dArch {
    /// Layers (channels), height, width of one wedge as stored.
    pub wedge: [u64; 3],
    /// Channels inside the blocks (the paper: 32).
    pub hidden: u64,
    /// Channels of the code. The paper's text and released code give 32 (code (32, 24, 32),
    /// ratio 31.125); its Algorithm 1 ends in a 32 -> 16 convolution, which halves the code.
    pub code_channels: u64,
    /// m: encoder blocks (each two residual blocks).
    pub encoder_blocks: u64,
    /// n: blocks of each decoder.
    pub decoder_blocks: u64,
    /// d: average pools in the encoder, nearest x2 upsamplings in the decoders.
    pub downsamples: u64,
    /// T(x) = offset + scale * exp(x) on the regression head (the paper: 6 + 3 exp(x)).
    pub regression_offset: f64,
    pub regression_scale: f64,
    /// Segmentation probability above which a voxel is non-zero (the paper's h = 0.5).
    pub threshold: f64,
}

impl Bcae2dArch {
    /// BCAE-2D(m=4, n=8, d=3) with 32 channels, the paper's default, for wedges of this shape.
    pub fn paper(wedge: [u64; 3]) -> Self {
        Bcae2dArch {
            wedge,
            hidden: 32,
            code_channels: 32,
            encoder_blocks: 4,
            decoder_blocks: 8,
            downsamples: 3,
            regression_offset: 6.0,
            regression_scale: 3.0,
            threshold: 0.5,
        }
    }

    /// (height, width) after padding to a multiple of 2^d.
    pub fn padded(&self) -> [u64; 2] {
        let m = 1u64 << self.downsamples;
        [self.wedge[1].div_ceil(m) * m, self.wedge[2].div_ceil(m) * m]
    }

    /// The encoder's input tensor per wedge: (layers, padded height, padded width).
    pub fn input_shape(&self) -> [u64; 3] {
        let [h, w] = self.padded();
        [self.wedge[0], h, w]
    }

    /// The code per wedge: (code channels, height / 2^d, width / 2^d).
    pub fn code_shape(&self) -> [u64; 3] {
        let [h, w] = self.padded();
        [self.code_channels, h >> self.downsamples, w >> self.downsamples]
    }

    pub fn wedge_len(&self) -> usize {
        self.wedge.iter().product::<u64>() as usize
    }

    pub fn code_len(&self) -> usize {
        self.code_shape().iter().product::<u64>() as usize
    }

    /// The paper's compression ratio: input and code both counted as 16-bit values, padding
    /// not counted (764,928 / 24,576 = 31.125 for the default).
    pub fn paper_ratio(&self) -> f64 {
        self.wedge_len() as f64 / self.code_len() as f64
    }

    pub fn check(&self) -> Result<(), String> {
        let [c, h, w] = self.wedge;
        if c == 0 || h == 0 || w == 0 || self.hidden == 0 || self.code_channels == 0 {
            return Err(format!("a BCAE-2D wedge and its channels must be non-empty ({c} x {h} x {w})"));
        }
        if self.downsamples > 8 || self.downsamples > self.encoder_blocks || self.downsamples > self.decoder_blocks {
            return Err(format!(
                "BCAE-2D needs at least as many encoder ({}) and decoder ({}) blocks as downsamplings ({}), at most 8",
                self.encoder_blocks, self.decoder_blocks, self.downsamples
            ));
        }
        if c * h * w > 1 << 26 || self.hidden > 1024 || self.code_channels > 1024 {
            return Err(format!("a BCAE-2D wedge of {c} x {h} x {w} or {} channels is larger than supported", self.hidden));
        }
        if !(self.regression_scale.is_finite() && self.regression_offset.is_finite() && self.threshold > 0.0 && self.threshold < 1.0) {
            return Err("BCAE-2D output transform and threshold must be finite, the threshold in (0, 1)".into());
        }
        Ok(())
    }
}

/// A wedge (layers x height x width, row-major) in the model's space: log2(x + 1), zero-padded
/// to the encoder's input shape. Non-finite or negative values become 0.
pub fn to_model(arch: &Bcae2dArch, wedge: &[f32], out: &mut Vec<f32>) {
    let [c, h, w] = arch.wedge.map(|v| v as usize);
    let [ph, pw] = arch.padded().map(|v| v as usize);
    let start = out.len();
    out.resize(start + c * ph * pw, 0.0);
    for l in 0..c {
        for y in 0..h {
            let src = &wedge[(l * h + y) * w..(l * h + y + 1) * w];
            let dst = &mut out[start + (l * ph + y) * pw..start + (l * ph + y) * pw + w];
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = if v.is_finite() && v > 0.0 { (v + 1.0).log2() } else { 0.0 };
            }
        }
    }
}

/// The decoder's output for one wedge back in data units: clipped to the wedge, 2^y - 1.
pub fn from_model(arch: &Bcae2dArch, y: &[f32], out: &mut Vec<f32>) {
    let [c, h, w] = arch.wedge.map(|v| v as usize);
    let [ph, pw] = arch.padded().map(|v| v as usize);
    for l in 0..c {
        for r in 0..h {
            let row = &y[(l * ph + r) * pw..(l * ph + r) * pw + w];
            out.extend(row.iter().map(|&v| if v > 0.0 { v.exp2() - 1.0 } else { 0.0 }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paper_default_has_its_code_shape_and_ratio() {
        let a = Bcae2dArch::paper([16, 192, 249]);
        assert_eq!(a.padded(), [192, 256]);
        assert_eq!(a.code_shape(), [32, 24, 32]);
        assert_eq!(a.paper_ratio(), 31.125);
        let half = Bcae2dArch { code_channels: 16, ..a };
        assert_eq!(half.paper_ratio(), 62.25);
        a.check().unwrap();
    }

    #[test]
    fn transform_pads_and_clips_back() {
        let a = Bcae2dArch { wedge: [2, 3, 5], downsamples: 2, ..Bcae2dArch::paper([2, 3, 5]) };
        let x: Vec<f32> = (0..30).map(|i| if i % 3 == 0 { 0.0 } else { 63.0 + i as f32 * 30.0 }).collect();
        let mut m = Vec::new();
        to_model(&a, &x, &mut m);
        assert_eq!(m.len(), 2 * 4 * 8);
        assert_eq!(m[5], 0.0, "padding is zero");
        let mut back = Vec::new();
        from_model(&a, &m, &mut back);
        for (o, b) in x.iter().zip(&back) {
            assert!((o - b).abs() <= 1e-3 * o.max(1.0), "{o} {b}");
        }
    }
}
