//! BCAE-2D, the bicephalous convolutional autoencoder of Huang et al. (SC-W 2023), in burn:
//! an encoder, a segmentation decoder (is this voxel non-zero?) and a regression decoder (its
//! log ADC), trained with the paper's focal loss, masked MAE and dynamic loss balance.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::{leaky_relu, sigmoid};
use burn::tensor::module::{avg_pool2d, interpolate};
use burn::tensor::ops::{AvgPoolOptions, InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor, TensorData};

use super::dense::{to_vec, SplitMix};
use crate::model::bcae2d::Bcae2dArch;

/// The slope of every LeakyReLU (as in the paper's released code).
pub const SLOPE: f64 = 0.2;

/// The regression head's T(x) = 6 + 3 exp(min(x, 10)): the cap keeps exp finite (and its
/// gradient, which is multiplied by 0 where the mask is off, from becoming inf * 0 = NaN); a
/// value that large is far above any 10-bit log ADC anyway.
pub const EXP_CAP: f64 = 10.0;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Bcae2dOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Epochs at the initial rate before it decays (the paper: 50 of 500).
    pub lr_hold: usize,
    /// The rate is multiplied by `lr_decay` every `lr_every` epochs after the hold (0.95, 10).
    pub lr_decay: f64,
    pub lr_every: usize,
    pub weight_decay: f64,
    /// Focal loss focusing parameter gamma (2).
    pub gamma: f64,
    /// Initial weight c_0 of the segmentation loss (2000).
    pub c0: f64,
    /// Share of wedges held out for validation.
    pub validation: f64,
    pub seed: u64,
    pub name: Option<String>,
}

impl Default for Bcae2dOptions {
    fn default() -> Self {
        Bcae2dOptions {
            epochs: 500,
            batch_size: 4,
            learning_rate: 1e-3,
            lr_hold: 50,
            lr_decay: 0.95,
            lr_every: 10,
            weight_decay: 0.01,
            gamma: 2.0,
            c0: 2000.0,
            validation: 0.1,
            seed: 0,
            name: None,
        }
    }
}

impl Bcae2dOptions {
    /// The paper's schedule: constant for `lr_hold` epochs, then 5% less every `lr_every`.
    pub fn learning_rate_at(&self, epoch: usize) -> f64 {
        let after = epoch.saturating_sub(self.lr_hold);
        self.learning_rate * self.lr_decay.powi((after / self.lr_every.max(1)) as i32)
    }
}

pub(crate) fn conv(i: usize, o: usize, k: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([i, o], [k, k]).with_padding(PaddingConfig2d::Explicit(p, p, p, p)).init(device)
}

/// conv3 -> LeakyReLU -> conv3, scaled by a learned scalar that starts at 0 (ReZero), plus the
/// input, then LeakyReLU: every block starts as the identity, which keeps a deep decoder
/// trainable without normalisation layers.
#[derive(Module, Debug)]
pub struct Res {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub alpha: Param<Tensor<1>>,
}

impl Res {
    pub(crate) fn new(ch: usize, device: &Device) -> Self {
        Res { conv1: conv(ch, ch, 3, device), conv2: conv(ch, ch, 3, device), alpha: Param::from_tensor(Tensor::zeros([1], device)) }
    }

    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.conv2.forward(leaky_relu(self.conv1.forward(x.clone()), SLOPE));
        leaky_relu(h * self.alpha.val().reshape([1, 1, 1, 1]) + x, SLOPE)
    }
}

#[derive(Module, Debug)]
pub struct Decoder {
    /// Code channels -> hidden, only when they differ.
    pub input: Vec<Conv2d>,
    pub blocks: Vec<Res>,
    pub output: Conv2d,
}

#[derive(Module, Debug)]
pub struct Bcae2d {
    pub enc_in: Conv2d,
    pub enc_blocks: Vec<Res>,
    /// Hidden -> code channels, only when they differ.
    pub enc_out: Vec<Conv2d>,
    pub seg: Decoder,
    pub reg: Decoder,
    pub downsamples: usize,
    pub reg_offset: f64,
    pub reg_scale: f64,
}

impl Bcae2d {
    pub fn new(a: &Bcae2dArch, device: &Device) -> Self {
        let (c, h, code) = (a.wedge[0] as usize, a.hidden as usize, a.code_channels as usize);
        let decoder = || Decoder {
            input: if code != h { vec![conv(code, h, 1, device)] } else { vec![] },
            blocks: (0..2 * a.decoder_blocks).map(|_| Res::new(h, device)).collect(),
            output: conv(h, c, 1, device),
        };
        Bcae2d {
            enc_in: conv(c, h, 7, device),
            enc_blocks: (0..2 * a.encoder_blocks).map(|_| Res::new(h, device)).collect(),
            enc_out: if code != h { vec![conv(h, code, 1, device)] } else { vec![] },
            seg: decoder(),
            reg: decoder(),
            downsamples: a.downsamples as usize,
            reg_offset: a.regression_offset,
            reg_scale: a.regression_scale,
        }
    }

    pub fn encode(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.enc_in.forward(x);
        for (i, pair) in self.enc_blocks.chunks(2).enumerate() {
            if i < self.downsamples {
                x = avg_pool2d(x, AvgPoolOptions::new([2, 2]).with_stride([2, 2]));
            }
            for r in pair {
                x = r.forward(x);
            }
        }
        self.enc_out.iter().fold(x, |x, c| c.forward(x))
    }

    fn decode_head(&self, d: &Decoder, z: Tensor<4>) -> Tensor<4> {
        let mut x = d.input.iter().fold(z, |x, c| c.forward(x));
        for (i, pair) in d.blocks.chunks(2).enumerate() {
            if i < self.downsamples {
                let opts = InterpolateOptions::new(InterpolateMode::Nearest).with_scale_factor([2.0, 2.0]);
                x = interpolate(x, opts);
            }
            for r in pair {
                x = r.forward(x);
            }
        }
        d.output.forward(x)
    }

    /// (segmentation probability, regression value T(x)), both in the model's space.
    pub fn decode(&self, z: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let seg = sigmoid(self.decode_head(&self.seg, z.clone()));
        let reg = self.decode_head(&self.reg, z).clamp_max(EXP_CAP).exp().mul_scalar(self.reg_scale).add_scalar(self.reg_offset);
        (seg, reg)
    }

    /// The reconstruction: the regression where the segmentation says non-zero, else 0 (a
    /// select, not a product: a huge regression value where the mask is off must not turn
    /// into inf * 0 = NaN).
    pub fn reconstruct(seg: Tensor<4>, reg: Tensor<4>, threshold: f64) -> Tensor<4> {
        reg.mask_fill(seg.lower_equal_elem(threshold), 0.0)
    }
}

pub fn tensor4(values: &[f32], shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}


/// The paper's losses on one batch: focal loss (log base 2, focusing gamma) on the segmentation,
/// MAE of the masked reconstruction against the input.
pub fn losses(model: &Bcae2d, x: Tensor<4>, gamma: f64, threshold: f64) -> (Tensor<1>, Tensor<1>) {
    let (seg, reg) = model.decode(model.encode(x.clone()));
    let label = x.clone().greater_elem(0.0).float();
    let p = seg.clamp(1e-6, 1.0 - 1e-6);
    let q = p.clone().neg().add_scalar(1.0);
    let ln2 = std::f64::consts::LN_2;
    let pos = label.clone() * p.clone().log().div_scalar(ln2) * q.clone().powf_scalar(gamma);
    let neg = label.neg().add_scalar(1.0) * q.log().div_scalar(ln2) * p.clone().powf_scalar(gamma);
    let focal = (pos + neg).neg().mean();
    let recon = Bcae2d::reconstruct(p, reg, threshold);
    let mae = (recon - x).abs().mean();
    (focal, mae)
}

#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Epoch {
    pub epoch: usize,
    pub segmentation_loss: f64,
    pub regression_loss: f64,
    /// The segmentation weight c_t this epoch used.
    pub balance: f64,
    pub learning_rate: f64,
    pub validation_mae: f64,
    pub seconds: f64,
}

pub struct Fitted {
    pub model: Bcae2d,
    pub history: Vec<Epoch>,
}

/// Trains on wedges already in model space (`train`, `val`: each `per` = layers x padded
/// height x padded width values). Keeps the weights of the epoch with the lowest validation
/// MAE of the reconstruction.
pub fn fit(
    train: &[f32],
    val: &[f32],
    arch: &Bcae2dArch,
    opts: &Bcae2dOptions,
    on_epoch: &mut dyn FnMut(&Epoch, usize),
) -> Fitted {
    let device = Device::flex().autodiff();
    device.seed(opts.seed);
    let [c, h, w] = arch.input_shape().map(|v| v as usize);
    let per = c * h * w;
    let mut model = Bcae2d::new(arch, &device);
    let mut optim = AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_weight_decay(opts.weight_decay as f32)
        .init();
    let n = train.len() / per;
    let mut rng = SplitMix(opts.seed ^ 0xbcae);
    let mut order: Vec<usize> = (0..n).collect();
    let mut batch = Vec::with_capacity(opts.batch_size * per);
    let mut coeff = opts.c0;
    let mut history = Vec::new();
    let mut best: Option<(f64, Bcae2d)> = None;
    for epoch in 1..=opts.epochs {
        let started = std::time::Instant::now();
        let lr = opts.learning_rate_at(epoch - 1);
        rng.shuffle(&mut order);
        let (mut seg_sum, mut reg_sum) = (0.0f64, 0.0f64);
        for idx in order.chunks(opts.batch_size) {
            batch.clear();
            for &i in idx {
                batch.extend_from_slice(&train[i * per..(i + 1) * per]);
            }
            let x = tensor4(&batch, [idx.len(), c, h, w], &device);
            let (focal, mae) = losses(&model, x, opts.gamma, arch.threshold);
            seg_sum += focal.clone().into_scalar::<f32>() as f64 * idx.len() as f64;
            reg_sum += mae.clone().into_scalar::<f32>() as f64 * idx.len() as f64;
            let loss = focal.mul_scalar(coeff) + mae;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
        }
        let (rho_s, rho_r) = (seg_sum / n.max(1) as f64, reg_sum / n.max(1) as f64);
        let valid = model.valid();
        let val_mae = if val.is_empty() { rho_r } else { mae(&valid, val, arch) };
        let e = Epoch {
            epoch,
            segmentation_loss: rho_s,
            regression_loss: rho_r,
            balance: coeff,
            learning_rate: lr,
            validation_mae: val_mae,
            seconds: started.elapsed().as_secs_f64(),
        };
        history.push(e);
        on_epoch(&e, n);
        // The paper's dynamic balance: c_{t+1} = (0.5 c_t + rho_r / rho_s) / 1.5.
        if rho_s > 0.0 && rho_s.is_finite() && rho_r.is_finite() {
            coeff = (0.5 * coeff + rho_r / rho_s) / 1.5;
        }
        if best.as_ref().is_none_or(|(b, _)| val_mae < *b) {
            best = Some((val_mae, valid));
        }
    }
    let (_, model) = best.expect("at least one epoch");
    Fitted { model, history }
}

/// The reconstructions of wedges in model space (a non-autodiff model, in batches of 8).
pub fn reconstruct_all(model: &Bcae2d, x: &[f32], arch: &Bcae2dArch) -> Vec<f32> {
    let device = Device::flex();
    let [c, h, w] = arch.input_shape().map(|v| v as usize);
    let per = c * h * w;
    let mut out = Vec::with_capacity(x.len());
    for part in x.chunks(8 * per) {
        let (seg, reg) = model.decode(model.encode(tensor4(part, [part.len() / per, c, h, w], &device)));
        out.extend(to_vec(Bcae2d::reconstruct(seg, reg, arch.threshold)));
    }
    out
}

/// Mean absolute error of the reconstruction in model space (log ADC), padding included.
pub fn mae(model: &Bcae2d, wedges: &[f32], arch: &Bcae2dArch) -> f64 {
    let y = reconstruct_all(model, wedges, arch);
    y.iter().zip(wedges).map(|(a, b)| (a - b).abs() as f64).sum::<f64>() / wedges.len().max(1) as f64
}

pub struct Trained {
    pub manifest: crate::model::Manifest,
    pub encoder: Vec<u8>,
    pub decoder: Vec<u8>,
    pub network: Bcae2d,
}

/// A convolution as the ONNX writer takes it (burn's weight is already (out, in, kh, kw)).
pub(crate) fn conv_layer(c: &Conv2d) -> crate::onnx::bcae2d::ConvLayer {
    let w = c.weight.val();
    let dims = w.dims();
    let bias = match &c.bias {
        Some(b) => to_vec(b.val()),
        None => vec![0.0; dims[0]],
    };
    crate::onnx::bcae2d::ConvLayer { weight: to_vec(w), dims, bias }
}

pub(crate) fn res_layers(blocks: &[Res]) -> Vec<crate::onnx::bcae2d::ResLayer> {
    blocks
        .iter()
        .map(|r| crate::onnx::bcae2d::ResLayer {
            conv1: conv_layer(&r.conv1),
            conv2: conv_layer(&r.conv2),
            alpha: to_vec(r.alpha.val())[0],
        })
        .collect()
}

/// The ONNX encoder and decoder of a trained network.
pub fn export(net: &Bcae2d, arch: &Bcae2dArch) -> (Vec<u8>, Vec<u8>) {
    use crate::onnx::bcae2d as ox;
    let version = env!("CARGO_PKG_VERSION");
    let enc = ox::EncoderLayers {
        input: conv_layer(&net.enc_in),
        blocks: res_layers(&net.enc_blocks),
        output: net.enc_out.first().map(conv_layer),
    };
    let dec = |d: &Decoder| ox::DecoderLayers { input: d.input.first().map(conv_layer), blocks: res_layers(&d.blocks), output: conv_layer(&d.output) };
    (ox::encoder(arch, &enc, SLOPE as f32, version), ox::decoder(arch, &dec(&net.seg), &dec(&net.reg), SLOPE as f32, version))
}

/// How far ONNX Runtime's results are from burn's on `x` (model space, `n` wedges): the
/// encoder's and the segmentation's relative difference, and the share of voxels whose
/// reconstruction differs beyond rounding where the segmentation was not within rounding of the
/// threshold (must be 0).
pub fn compare_with_runtime(net: &Bcae2d, arch: &Bcae2dArch, encoder: &[u8], decoder: &[u8], x: &[f32], n: usize) -> crate::error::Result<serde_json::Value> {
    use crate::runtime::{model, RuntimeOptions};
    let [c, h, w] = arch.input_shape().map(|v| v as usize);
    let code = arch.code_shape().map(|v| v as usize);
    let device = Device::flex();
    let z_burn = net.encode(tensor4(x, [n, c, h, w], &device));
    let (seg_burn, reg_burn) = net.decode(z_burn.clone());
    let out_burn = to_vec(Bcae2d::reconstruct(seg_burn.clone(), reg_burn, arch.threshold));
    let (z_burn, seg_burn) = (to_vec(z_burn), to_vec(seg_burn));
    let rt = RuntimeOptions { intra_threads: 2, ..Default::default() };
    let sha = crate::model::sha256_hex;
    let enc = model(&sha(encoder), encoder, "input", "latent", "bcae2d encoder", rt)?;
    let dec_out = model(&sha(decoder), decoder, "latent", "output", "bcae2d decoder", rt)?;
    let dec_seg = model(&sha(decoder), decoder, "latent", "segmentation", "bcae2d decoder", rt)?;
    let z_ort = enc.run_shaped(x, &[n, c, h, w], &code)?;
    let seg_ort = dec_seg.run_shaped(&z_burn, &[n, code[0], code[1], code[2]], &[c, h, w])?;
    let out_ort = dec_out.run_shaped(&z_burn, &[n, code[0], code[1], code[2]], &[c, h, w])?;
    let scale = out_burn.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1.0);
    let mut flips = 0u64;
    let mut unexplained = 0u64;
    for ((&a, &b), &s) in out_ort.iter().zip(&out_burn).zip(&seg_burn) {
        if (a - b).abs() > 1e-4 * scale {
            if (s as f64 - arch.threshold).abs() < 1e-4 {
                flips += 1;
            } else {
                unexplained += 1;
            }
        }
    }
    Ok(serde_json::json!({
        "wedges": n,
        "encoder_max_relative_difference": super::rel_diff(&z_ort, &z_burn),
        "segmentation_max_relative_difference": super::rel_diff(&seg_ort, &seg_burn),
        "mask_flips_at_threshold": flips,
        "differences_away_from_threshold": unexplained,
        "runtime": "onnxruntime",
    }))
}

/// The paper's metrics of a network on wedges in data units.
pub fn score(net: &Bcae2d, arch: &Bcae2dArch, wedges: &[f32]) -> crate::codec::model_stage::SparseScore {
    let mut x = Vec::new();
    for wedge in wedges.chunks_exact(arch.wedge_len()) {
        crate::model::bcae2d::to_model(arch, wedge, &mut x);
    }
    let y = reconstruct_all(net, &x, arch);
    let mut back = Vec::with_capacity(wedges.len());
    for wedge in y.chunks_exact(arch.input_shape().iter().product::<u64>() as usize) {
        crate::model::bcae2d::from_model(arch, wedge, &mut back);
    }
    let truth: Vec<f64> = wedges.iter().map(|&v| v as f64).collect();
    let pred: Vec<f64> = back.iter().map(|&v| v as f64).collect();
    let mut sc = crate::codec::model_stage::SparseScore::default();
    sc.add(&truth, &pred);
    sc
}

pub fn train(data: &super::RowData, arch: &Bcae2dArch, opts: &Bcae2dOptions, progress: &dyn crate::progress::Progress) -> crate::error::Result<Trained> {
    use crate::error::Error;
    use crate::model::{Feature, Manifest, Normalisation};
    arch.check().map_err(Error::Train)?;
    if data.rows < 2 {
        return Err(Error::Train(format!("{} wedges are too few to train on (at least 2)", data.rows)));
    }
    super::check_schedule(opts.epochs, opts.batch_size, opts.learning_rate, opts.validation)?;
    let wl = arch.wedge_len();
    let mut order: Vec<usize> = (0..data.rows).collect();
    SplitMix(opts.seed).shuffle(&mut order);
    let n_val = ((data.rows as f64 * opts.validation).round() as usize).min(data.rows - 1);
    let (val_rows, train_rows) = order.split_at(n_val);
    let model_space = |rows: &[usize]| {
        let mut out = Vec::new();
        for &r in rows {
            crate::model::bcae2d::to_model(arch, &data.values[r * wl..(r + 1) * wl], &mut out);
        }
        out
    };
    let (train_x, val_x) = (model_space(train_rows), model_space(val_rows));

    let started = std::time::Instant::now();
    progress.start("training bcae2d", (opts.epochs * train_rows.len()) as u64);
    let fitted = fit(&train_x, &val_x, arch, opts, &mut |e, n| {
        progress.message(&format!(
            "epoch {} focal {:.3e} mae {:.3e} c {:.1} val mae {:.3e}",
            e.epoch, e.segmentation_loss, e.regression_loss, e.balance, e.validation_mae
        ));
        progress.advance(n as u64);
    });
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    let (encoder, decoder) = export(&fitted.model, arch);

    // The exported graphs must compute what burn computed: checked now, on real wedges.
    let check_rows = &order[..order.len().min(2)];
    let check = compare_with_runtime(&fitted.model, arch, &encoder, &decoder, &model_space(check_rows), check_rows.len())?;
    let enc_diff = check["encoder_max_relative_difference"].as_f64().unwrap_or(f64::NAN);
    let seg_diff = check["segmentation_max_relative_difference"].as_f64().unwrap_or(f64::NAN);
    if !(enc_diff < 1e-4 && seg_diff < 1e-4) || check["differences_away_from_threshold"].as_u64() != Some(0) {
        return Err(Error::Train(format!("exported ONNX differs from the trained BCAE-2D ({check}): export bug")));
    }
    let held: Vec<f32> = val_rows.iter().flat_map(|&r| data.values[r * wl..(r + 1) * wl].iter().copied()).collect();
    let sc = score(&fitted.model, arch, if held.is_empty() { &data.values[..wl] } else { &held });
    let version = env!("CARGO_PKG_VERSION");
    let epochs = fitted.history.len();
    let provenance = serde_json::json!({
        "producer": format!("balerfile {version}"),
        "architecture": {
            "model": format!("BCAE-2D(m={}, n={}, d={})", arch.encoder_blocks, arch.decoder_blocks, arch.downsamples),
            "activation": "leaky_relu",
            "negative_slope": SLOPE,
            "residual": "rezero",
            "code_shape": arch.code_shape(),
            "paper_ratio": arch.paper_ratio(),
        },
        "training": {
            "source": data.source,
            "wedges": data.rows,
            "train_wedges": train_rows.len(),
            "validation_wedges": n_val,
            "options": opts,
            "epochs_run": epochs,
            "history": fitted.history,
            "seconds": seconds,
            "seconds_per_epoch": seconds / epochs.max(1) as f64,
            "backend": "burn 0.22 flex (CPU)",
        },
        "validation": {
            // Too few wedges to hold any out: the metrics are then of a training wedge.
            "held_out": !held.is_empty(),
            "wedges": if held.is_empty() { 1 } else { n_val },
            "mae_log_adc": sc.mae(),
            "psnr_db": sc.psnr(),
            "precision": sc.precision(),
            "recall": sc.recall(),
        },
        "onnx_check": check,
    });
    let manifest = Manifest {
        bcae2d: Some(*arch),
        ..super::trained_manifest(
            "bcae2d",
            opts.name.clone().unwrap_or_else(|| "bcae2d".into()),
            vec![Feature { name: data.name.clone(), dtype: data.dtype.clone(), shape: Some(arch.wedge.to_vec()) }],
            Normalisation { offset: vec![0.0], scale: vec![1.0] },
            arch.code_len(),
            (&encoder, &decoder),
            provenance,
        )
    };
    manifest.validate(std::path::Path::new("trained bcae2d manifest"))?;
    Ok(Trained { manifest, encoder, decoder, network: fitted.model })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sparse wedges with tracks as straight lines across the layers: the shape of TPC data
    /// (zero-suppressed at 64, 10-bit) at a size a unit test trains on in seconds.
    fn wedges(n: usize, arch: &Bcae2dArch) -> Vec<f32> {
        let [c, h, w] = arch.wedge.map(|v| v as usize);
        let mut rng = SplitMix(11);
        let mut u = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let mut out = vec![0.0f32; n * c * h * w];
        for k in 0..n {
            for _ in 0..6 {
                let (y0, x0, dy, dx) = (u() * h as f64, u() * w as f64, u() * 2.0 - 1.0, u() * 2.0 - 1.0);
                let amp = 150.0 + 600.0 * u();
                for l in 0..c {
                    let (y, x) = ((y0 + dy * l as f64) as isize, (x0 + dx * l as f64) as isize);
                    for (oy, ox, f) in [(0, 0, 1.0), (0, 1, 0.5), (1, 0, 0.4)] {
                        let (y, x) = (y + oy, x + ox);
                        if (0..h as isize).contains(&y) && (0..w as isize).contains(&x) {
                            let v = (amp * f) as f32;
                            out[((k * c + l) * h + y as usize) * w + x as usize] = if v >= 64.0 { v.round().min(1023.0) } else { 0.0 };
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn a_small_bcae2d_learns_and_onnx_runtime_matches_burn_on_fresh_wedges() {
        let arch = Bcae2dArch {
            hidden: 8,
            code_channels: 8,
            encoder_blocks: 2,
            decoder_blocks: 2,
            downsamples: 2,
            ..Bcae2dArch::paper([4, 16, 30])
        };
        let data = super::super::RowData { name: "adc".into(), dtype: "u16".into(), values: wedges(24, &arch), rows: 24, source: serde_json::Value::Null };
        let opts = Bcae2dOptions { epochs: 12, batch_size: 4, learning_rate: 3e-3, lr_hold: 6, lr_every: 2, validation: 0.2, ..Default::default() };
        let t = train(&data, &arch, &opts, &crate::progress::Silent).expect("training runs (needs libonnxruntime)");
        let h = &t.manifest.provenance["training"]["history"];
        let first = h[0]["regression_loss"].as_f64().unwrap() + h[0]["segmentation_loss"].as_f64().unwrap();
        let last = h[11]["regression_loss"].as_f64().unwrap() + h[11]["segmentation_loss"].as_f64().unwrap();
        assert!(last < first, "the losses must fall: {first} -> {last}");
        assert_eq!(h[11]["learning_rate"].as_f64().unwrap(), 3e-3 * 0.95f64.powi(2));
        let c1 = h[1]["balance"].as_f64().unwrap();
        let (rs, rr) = (h[0]["segmentation_loss"].as_f64().unwrap(), h[0]["regression_loss"].as_f64().unwrap());
        assert!((c1 - (0.5 * 2000.0 + rr / rs) / 1.5).abs() < 1e-6 * c1, "dynamic balance");
        assert_eq!(t.manifest.latent.size, 8 * 4 * 8);

        // Fresh wedges, never seen: ONNX Runtime against burn.
        let fresh = wedges(30, &arch)[24 * arch.wedge_len()..].to_vec();
        let mut x = Vec::new();
        for w in fresh.chunks_exact(arch.wedge_len()) {
            crate::model::bcae2d::to_model(&arch, w, &mut x);
        }
        let check = compare_with_runtime(&t.network, &arch, &t.encoder, &t.decoder, &x, 6).unwrap();
        assert!(check["encoder_max_relative_difference"].as_f64().unwrap() < 1e-4, "{check}");
        assert!(check["segmentation_max_relative_difference"].as_f64().unwrap() < 1e-4, "{check}");
        assert_eq!(check["differences_away_from_threshold"].as_u64(), Some(0), "{check}");
        let recall = t.manifest.provenance["validation"]["recall"].as_f64().unwrap();
        assert!(recall.is_finite());
    }
}
