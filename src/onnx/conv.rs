//! ONNX graphs of a conv field model: tiles (batch, 1, B, B) -> codes (batch, C, B/2^d, B/2^d)
//! and back, with the layers BCAE-2D uses (Conv, AveragePool, nearest Resize, LeakyRelu, the
//! ReZero residual block).

use super::bcae2d::{dims, ConvLayer, Emit, ResLayer};
use super::writer::GraphBuilder;
use crate::model::conv::ConvArch;

pub struct ConvEncoderLayers {
    pub input: ConvLayer,
    /// `blocks_per_stage` residual blocks after each pool.
    pub stages: Vec<Vec<ResLayer>>,
    pub output: ConvLayer,
}

pub struct ConvDecoderLayers {
    pub input: ConvLayer,
    /// `blocks_per_stage` residual blocks after each upsampling.
    pub stages: Vec<Vec<ResLayer>>,
    pub output: ConvLayer,
}

/// `input` (batch, 1, B, B) normalised tiles -> `latent` (batch, code channels, B/2^d, B/2^d).
pub fn encoder(arch: &ConvArch, l: &ConvEncoderLayers, slope: f32, version: &str) -> Vec<u8> {
    let mut g = GraphBuilder::new("conv_encoder");
    g.input_f32("input", &dims(arch.input_shape()));
    g.output_f32("latent", &dims(arch.code_shape()));
    let mut e = Emit::new(&mut g);
    let x = e.conv("input", &l.input, None);
    let mut x = e.leaky(&x, slope);
    for stage in &l.stages {
        x = e.pool(&x);
        for r in stage {
            x = e.res(&x, r, slope);
        }
    }
    e.conv(&x, &l.output, Some("latent"));
    g.finish("balerfile", version, &[("balerfile.kind", "conv"), ("balerfile.part", "encoder")])
}

/// `latent` -> `output` (batch, 1, B, B), the predicted tiles (normalised).
pub fn decoder(arch: &ConvArch, l: &ConvDecoderLayers, slope: f32, version: &str) -> Vec<u8> {
    let mut g = GraphBuilder::new("conv_decoder");
    g.input_f32("latent", &dims(arch.code_shape()));
    g.output_f32("output", &dims(arch.input_shape()));
    let mut e = Emit::new(&mut g);
    let x = e.conv("latent", &l.input, None);
    let mut x = e.leaky(&x, slope);
    for stage in &l.stages {
        x = e.upsample(&x);
        for r in stage {
            x = e.res(&x, r, slope);
        }
    }
    e.conv(&x, &l.output, Some("output"));
    g.finish("balerfile", version, &[("balerfile.kind", "conv"), ("balerfile.part", "decoder")])
}
