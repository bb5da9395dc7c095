//! ONNX graphs of a BCAE-2D model: the encoder, and one decoder graph that runs both heads and
//! applies the segmentation mask (Greater + Cast + Mul), so a reader needs nothing but ONNX
//! Runtime to reconstruct a wedge.

use super::writer::{Attr, Dim, GraphBuilder};
use crate::model::bcae2d::Bcae2dArch;

/// One convolution: weight (out, in, kh, kw) row-major, bias (out).
pub struct ConvLayer {
    pub weight: Vec<f32>,
    pub dims: [usize; 4],
    pub bias: Vec<f32>,
}

/// conv -> LeakyReLU -> conv, times alpha, plus the input, LeakyReLU.
pub struct ResLayer {
    pub conv1: ConvLayer,
    pub conv2: ConvLayer,
    pub alpha: f32,
}

pub struct DecoderLayers {
    pub input: Option<ConvLayer>,
    pub blocks: Vec<ResLayer>,
    pub output: ConvLayer,
}

pub struct EncoderLayers {
    pub input: ConvLayer,
    pub blocks: Vec<ResLayer>,
    pub output: Option<ConvLayer>,
}

/// Emits the layers of the convolutional models (BCAE-2D, conv) into a graph, naming each
/// tensor afresh.
pub(crate) struct Emit<'a> {
    pub g: &'a mut GraphBuilder,
    n: usize,
}

impl<'a> Emit<'a> {
    pub fn new(g: &'a mut GraphBuilder) -> Self {
        Emit { g, n: 0 }
    }

    pub fn fresh(&mut self, what: &str) -> String {
        self.n += 1;
        format!("{what}_{}", self.n)
    }

    pub fn conv(&mut self, x: &str, c: &ConvLayer, out: Option<&str>) -> String {
        let name = self.fresh("conv");
        let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
        let dims = c.dims.map(|d| d as i64);
        self.g.initializer_f32(&w, &dims, &c.weight);
        self.g.initializer_f32(&b, &[dims[0]], &c.bias);
        let y = out.map_or_else(|| name.clone(), str::to_owned);
        let (kh, kw) = (dims[2], dims[3]);
        self.g.node(
            "Conv",
            &[x, &w, &b],
            &[&y],
            vec![
                Attr::Ints("kernel_shape".into(), vec![kh, kw]),
                Attr::Ints("pads".into(), vec![kh / 2, kw / 2, kh / 2, kw / 2]),
                Attr::Ints("strides".into(), vec![1, 1]),
            ],
        );
        y
    }

    pub fn leaky(&mut self, x: &str, slope: f32) -> String {
        let y = self.fresh("leaky");
        self.g.node("LeakyRelu", &[x], &[&y], vec![Attr::Float("alpha".into(), slope)]);
        y
    }

    pub fn constant(&mut self, v: f32) -> String {
        let name = self.fresh("const");
        self.g.initializer_f32(&name, &[], &[v]);
        name
    }

    pub fn binary(&mut self, op: &str, a: &str, b: &str, out: Option<&str>) -> String {
        let y = out.map_or_else(|| self.fresh(&op.to_lowercase()), str::to_owned);
        self.g.node(op, &[a, b], &[&y], vec![]);
        y
    }

    pub fn unary(&mut self, op: &str, a: &str, out: Option<&str>) -> String {
        let y = out.map_or_else(|| self.fresh(&op.to_lowercase()), str::to_owned);
        self.g.node(op, &[a], &[&y], vec![]);
        y
    }

    pub fn res(&mut self, x: &str, r: &ResLayer, slope: f32) -> String {
        let h = self.conv(x, &r.conv1, None);
        let h = self.leaky(&h, slope);
        let h = self.conv(&h, &r.conv2, None);
        let a = self.constant(r.alpha);
        let h = self.binary("Mul", &h, &a, None);
        let h = self.binary("Add", &h, x, None);
        self.leaky(&h, slope)
    }

    pub fn pool(&mut self, x: &str) -> String {
        let y = self.fresh("pool");
        self.g.node(
            "AveragePool",
            &[x],
            &[&y],
            vec![Attr::Ints("kernel_shape".into(), vec![2, 2]), Attr::Ints("strides".into(), vec![2, 2])],
        );
        y
    }

    /// PyTorch's nearest Upsample(x2) and burn's nearest interpolate: output i reads input
    /// floor(i / 2), which is Resize with asymmetric coordinates and floor rounding.
    pub fn upsample(&mut self, x: &str) -> String {
        let scales = self.fresh("scales");
        self.g.initializer_f32(&scales, &[4], &[1.0, 1.0, 2.0, 2.0]);
        let y = self.fresh("up");
        self.g.node(
            "Resize",
            &[x, "", &scales],
            &[&y],
            vec![
                Attr::Str("mode".into(), "nearest".into()),
                Attr::Str("coordinate_transformation_mode".into(), "asymmetric".into()),
                Attr::Str("nearest_mode".into(), "floor".into()),
            ],
        );
        y
    }

    fn decoder(&mut self, z: &str, d: &DecoderLayers, downsamples: usize, slope: f32) -> String {
        let mut x = match &d.input {
            Some(c) => self.conv(z, c, None),
            None => z.to_owned(),
        };
        for (i, pair) in d.blocks.chunks(2).enumerate() {
            if i < downsamples {
                x = self.upsample(&x);
            }
            for r in pair {
                x = self.res(&x, r, slope);
            }
        }
        self.conv(&x, &d.output, None)
    }
}

pub(crate) fn batch() -> Dim {
    Dim::Symbolic("batch".into())
}

pub(crate) fn dims(shape: [u64; 3]) -> Vec<Dim> {
    let mut v = vec![batch()];
    v.extend(shape.iter().map(|&d| Dim::Fixed(d as i64)));
    v
}

/// `input` (batch, layers, H, W) in log ADC, padded -> `latent` (batch, code channels, h, w).
pub fn encoder(arch: &Bcae2dArch, l: &EncoderLayers, slope: f32, version: &str) -> Vec<u8> {
    let mut g = GraphBuilder::new("bcae2d_encoder");
    g.input_f32("input", &dims(arch.input_shape()));
    g.output_f32("latent", &dims(arch.code_shape()));
    let mut e = Emit::new(&mut g);
    let mut x = e.conv("input", &l.input, None);
    for (i, pair) in l.blocks.chunks(2).enumerate() {
        if i < arch.downsamples as usize {
            x = e.pool(&x);
        }
        for r in pair {
            x = e.res(&x, r, slope);
        }
    }
    match &l.output {
        Some(c) => {
            e.conv(&x, c, Some("latent"));
        }
        None => {
            e.unary("Identity", &x, Some("latent"));
        }
    }
    g.finish("balerfile", version, &[("balerfile.kind", "bcae2d"), ("balerfile.part", "encoder")])
}

/// `latent` -> `output` (the masked reconstruction in log ADC, padded) and `segmentation` (the
/// probability that each voxel is non-zero).
pub fn decoder(arch: &Bcae2dArch, seg: &DecoderLayers, reg: &DecoderLayers, slope: f32, version: &str) -> Vec<u8> {
    let mut g = GraphBuilder::new("bcae2d_decoder");
    g.input_f32("latent", &dims(arch.code_shape()));
    g.output_f32("output", &dims(arch.input_shape()));
    g.output_f32("segmentation", &dims(arch.input_shape()));
    let mut e = Emit::new(&mut g);
    let d = arch.downsamples as usize;
    let s = e.decoder("latent", seg, d, slope);
    e.unary("Sigmoid", &s, Some("segmentation"));
    let r = e.decoder("latent", reg, d, slope);
    let cap = e.constant(crate::train::bcae2d::EXP_CAP as f32);
    let r = e.binary("Min", &r, &cap, None);
    let r = e.unary("Exp", &r, None);
    let scale = e.constant(arch.regression_scale as f32);
    let r = e.binary("Mul", &r, &scale, None);
    let offset = e.constant(arch.regression_offset as f32);
    let r = e.binary("Add", &r, &offset, None);
    let h = e.constant(arch.threshold as f32);
    let on = e.binary("Greater", "segmentation", &h, None);
    let mask = e.fresh("mask");
    e.g.node("Cast", &[&on], &[&mask], vec![Attr::Int("to".into(), 1)]);
    e.binary("Mul", &r, &mask, Some("output"));
    g.finish("balerfile", version, &[("balerfile.kind", "bcae2d"), ("balerfile.part", "decoder")])
}
