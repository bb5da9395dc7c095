//! Baler's dense autoencoder, trained with burn on the CPU (flex backend).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams};
use burn::tensor::{activation::leaky_relu, Device, Tensor, TensorData};

use super::{Optimizer, TrainOptions};
use crate::onnx::DenseLayer;

#[derive(Module, Debug)]
pub struct DenseAutoencoder {
    encoder: Vec<Linear>,
    decoder: Vec<Linear>,
}

impl DenseAutoencoder {
    /// `widths`: input, hidden..., latent; the decoder mirrors it.
    pub fn new(widths: &[usize], device: &Device) -> Self {
        let enc = widths.windows(2).map(|w| LinearConfig::new(w[0], w[1]).init(device)).collect();
        let back: Vec<usize> = widths.iter().rev().copied().collect();
        let dec = back.windows(2).map(|w| LinearConfig::new(w[0], w[1]).init(device)).collect();
        DenseAutoencoder { encoder: enc, decoder: dec }
    }

    fn stack(layers: &[Linear], mut x: Tensor<2>, slope: f64) -> Tensor<2> {
        let last = layers.len() - 1;
        for (i, l) in layers.iter().enumerate() {
            x = l.forward(x);
            // No activation after the last layer: the latent and the output are unbounded.
            if i < last {
                x = leaky_relu(x, slope);
            }
        }
        x
    }

    pub fn encode(&self, x: Tensor<2>, slope: f64) -> Tensor<2> {
        Self::stack(&self.encoder, x, slope)
    }

    pub fn decode(&self, z: Tensor<2>, slope: f64) -> Tensor<2> {
        Self::stack(&self.decoder, z, slope)
    }

    /// The layers as the ONNX writer takes them (burn's Linear weight is (in, out)).
    pub fn export(&self, slope: f64) -> (Vec<DenseLayer>, Vec<DenseLayer>) {
        let conv = |layers: &[Linear]| -> Vec<DenseLayer> {
            let last = layers.len() - 1;
            layers
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let w = l.weight.val();
                    let [n_in, n_out] = w.dims();
                    let weight = w.into_data().try_to_vec::<f32>().expect("f32 weights");
                    let bias = match &l.bias {
                        Some(b) => b.val().into_data().try_to_vec::<f32>().expect("f32 bias"),
                        None => vec![0.0; n_out],
                    };
                    DenseLayer { weight, bias, n_in, n_out, leaky_relu: (i < last).then_some(slope as f32) }
                })
                .collect()
        };
        (conv(&self.encoder), conv(&self.decoder))
    }
}

pub fn tensor(values: &[f32], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values.to_vec(), [rows, cols]), device)
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 tensor")
}

/// Per-epoch numbers for the progress line and the manifest.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Epoch {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
}

pub struct Fitted {
    pub model: DenseAutoencoder,
    pub history: Vec<Epoch>,
    pub best_epoch: usize,
    pub stopped_early: bool,
}

/// Trains on normalised rows (`train`, `val`: row-major, `cols` wide) with MSE loss; keeps the
/// weights of the epoch with the lowest validation loss.
pub fn fit(
    train: &[f32],
    val: &[f32],
    cols: usize,
    widths: &[usize],
    opts: &TrainOptions,
    on_epoch: &mut dyn FnMut(&Epoch, usize),
) -> Fitted {
    let device = Device::flex().autodiff();
    device.seed(opts.seed);
    let mut model = DenseAutoencoder::new(widths, &device);
    let mut optim = match opts.optimizer {
        Optimizer::Adam => AdamConfig::new().init(),
        Optimizer::AdamW => AdamWConfig::new().with_weight_decay(opts.weight_decay as f32).init(),
    };
    let slope = opts.negative_slope;
    let n_train = train.len() / cols;
    let n_val = val.len() / cols;
    let mut rng = SplitMix(opts.seed ^ 0x5eed);
    let mut order: Vec<usize> = (0..n_train).collect();
    let mut batch = Vec::with_capacity(opts.batch_size * cols);
    let mut history = Vec::new();
    let mut best: Option<(f64, DenseAutoencoder, usize)> = None;
    let mut stopped_early = false;

    for epoch in 1..=opts.epochs {
        rng.shuffle(&mut order);
        let mut sum = 0.0f64;
        for rows in order.chunks(opts.batch_size) {
            batch.clear();
            for &r in rows {
                batch.extend_from_slice(&train[r * cols..(r + 1) * cols]);
            }
            let x = tensor(&batch, rows.len(), cols, &device);
            let y = model.decode(model.encode(x.clone(), slope), slope);
            let loss = (y - x).powi_scalar(2).mean();
            sum += loss.clone().into_scalar::<f32>() as f64 * rows.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(opts.learning_rate, model, grads);
        }
        let train_loss = sum / n_train.max(1) as f64;
        let val_loss = if n_val > 0 { mse(&model.valid(), val, cols, slope) } else { train_loss };
        let e = Epoch { epoch, train_loss, val_loss };
        history.push(e);
        on_epoch(&e, n_train);
        let improved = best.as_ref().is_none_or(|(b, _, _)| val_loss < *b * (1.0 - 1e-4));
        if improved {
            best = Some((val_loss, model.valid(), epoch));
        } else if best.as_ref().is_some_and(|(_, _, be)| epoch - be >= opts.patience) {
            stopped_early = true;
            break;
        }
    }
    let (_, model, best_epoch) = best.expect("at least one epoch");
    Fitted { model, history, best_epoch, stopped_early }
}

/// Mean squared reconstruction error of a (non-autodiff) model.
pub fn mse(model: &DenseAutoencoder, rows: &[f32], cols: usize, slope: f64) -> f64 {
    let device = Device::flex();
    let mut sum = 0.0;
    let n = rows.len() / cols;
    for part in rows.chunks(8192 * cols) {
        let m = part.len() / cols;
        let x = tensor(part, m, cols, &device);
        let y = model.decode(model.encode(x.clone(), slope), slope);
        sum += (y - x).powi_scalar(2).sum().into_scalar::<f32>() as f64;
    }
    sum / (n * cols).max(1) as f64
}

/// A small seeded generator for shuffling (the split and the batch order must repeat exactly
/// for a given seed).
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}
