//! The conv field model in burn: a small convolutional autoencoder over square tiles of 2-D
//! slices (AE-SZ's idea: predict a tile from a tiny code, then the codec stores the residual to
//! the bound). Built from BCAE-2D's layers; trained with MSE and Adam, early stopping on held-out
//! tiles.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::leaky_relu;
use burn::tensor::module::{avg_pool2d, interpolate};
use burn::tensor::ops::{AvgPoolOptions, InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

use super::bcae2d::{conv, conv_layer, res_layers, tensor4, Res};
use super::RowData;
use super::dense::{to_vec, SplitMix};
use crate::error::{Error, Result};
use crate::model::conv::{to_tiles, ConvArch};

pub const SLOPE: f64 = 0.2;

#[derive(Clone, Debug, serde::Serialize)]
pub struct ConvOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Share of tiles held out for validation and early stopping.
    pub validation: f64,
    /// Epochs without a better validation loss before training stops.
    pub patience: usize,
    pub seed: u64,
    pub name: Option<String>,
}

impl Default for ConvOptions {
    fn default() -> Self {
        ConvOptions { epochs: 30, batch_size: 32, learning_rate: 2e-3, validation: 0.1, patience: 6, seed: 0, name: None }
    }
}

#[derive(Module, Debug)]
pub struct ConvAe {
    pub enc_in: Conv2d,
    pub enc_stages: Vec<Vec<Res>>,
    pub enc_out: Conv2d,
    pub dec_in: Conv2d,
    pub dec_stages: Vec<Vec<Res>>,
    pub dec_out: Conv2d,
}

impl ConvAe {
    pub fn new(a: &ConvArch, device: &Device) -> Self {
        let (h, c, d, k) = (a.hidden as usize, a.code_channels as usize, a.downsamples as usize, a.blocks_per_stage as usize);
        let stages = || (0..d).map(|_| (0..k).map(|_| Res::new(h, device)).collect()).collect();
        ConvAe {
            enc_in: conv(1, h, 3, device),
            enc_stages: stages(),
            enc_out: conv(h, c, 1, device),
            dec_in: conv(c, h, 1, device),
            dec_stages: stages(),
            dec_out: conv(h, 1, 3, device),
        }
    }

    pub fn encode(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = leaky_relu(self.enc_in.forward(x), SLOPE);
        for stage in &self.enc_stages {
            x = avg_pool2d(x, AvgPoolOptions::new([2, 2]).with_stride([2, 2]));
            for r in stage {
                x = r.forward(x);
            }
        }
        self.enc_out.forward(x)
    }

    pub fn decode(&self, z: Tensor<4>) -> Tensor<4> {
        let mut x = leaky_relu(self.dec_in.forward(z), SLOPE);
        for stage in &self.dec_stages {
            x = interpolate(x, InterpolateOptions::new(InterpolateMode::Nearest).with_scale_factor([2.0, 2.0]));
            for r in stage {
                x = r.forward(x);
            }
        }
        self.dec_out.forward(x)
    }
}

#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Epoch {
    pub epoch: usize,
    pub train_mse: f64,
    pub validation_mse: f64,
    pub seconds: f64,
}

/// Mean squared error of the reconstruction of tiles (normalised units), in batches.
pub fn mse(net: &ConvAe, tiles: &[f32], block: usize) -> f64 {
    let per = block * block;
    let device = Device::flex();
    let mut sum = 0.0f64;
    for part in tiles.chunks(256 * per) {
        let y = to_vec(net.decode(net.encode(tensor4(part, [part.len() / per, 1, block, block], &device))));
        sum += y.iter().zip(part).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>();
    }
    sum / tiles.len().max(1) as f64
}

pub struct Trained {
    pub manifest: crate::model::Manifest,
    pub encoder: Vec<u8>,
    pub decoder: Vec<u8>,
    pub network: ConvAe,
}

pub fn export(net: &ConvAe, arch: &ConvArch) -> (Vec<u8>, Vec<u8>) {
    use crate::onnx::conv as ox;
    let version = env!("CARGO_PKG_VERSION");
    let enc = ox::ConvEncoderLayers {
        input: conv_layer(&net.enc_in),
        stages: net.enc_stages.iter().map(|s| res_layers(s)).collect(),
        output: conv_layer(&net.enc_out),
    };
    let dec = ox::ConvDecoderLayers {
        input: conv_layer(&net.dec_in),
        stages: net.dec_stages.iter().map(|s| res_layers(s)).collect(),
        output: conv_layer(&net.dec_out),
    };
    (ox::encoder(arch, &enc, SLOPE as f32, version), ox::decoder(arch, &dec, SLOPE as f32, version))
}

/// ONNX Runtime against burn on `n` tiles: the encoder's and the decoder's largest relative
/// difference.
pub fn compare_with_runtime(net: &ConvAe, arch: &ConvArch, encoder: &[u8], decoder: &[u8], x: &[f32], n: usize) -> Result<serde_json::Value> {
    use crate::runtime::{model, RuntimeOptions};
    let b = arch.block as usize;
    let code = arch.code_shape().map(|v| v as usize);
    let device = Device::flex();
    let z = net.encode(tensor4(x, [n, 1, b, b], &device));
    let y_burn = to_vec(net.decode(z.clone()));
    let z_burn = to_vec(z);
    let rt = RuntimeOptions { intra_threads: 2, ..Default::default() };
    let sha = crate::model::sha256_hex;
    let enc = model(&sha(encoder), encoder, "input", "latent", "conv encoder", rt)?;
    let dec = model(&sha(decoder), decoder, "latent", "output", "conv decoder", rt)?;
    let z_ort = enc.run_shaped(x, &[n, 1, b, b], &code)?;
    let y_ort = dec.run_shaped(&z_burn, &[n, code[0], code[1], code[2]], &[1, b, b])?;
    Ok(serde_json::json!({
        "tiles": n,
        "encoder_max_relative_difference": super::rel_diff(&z_ort, &z_burn),
        "decoder_max_relative_difference": super::rel_diff(&y_ort, &y_burn),
        "runtime": "onnxruntime",
    }))
}

/// Trains on the rows of `data` (each `arch.row_len()` values in data units).
pub fn train(data: &RowData, arch: &ConvArch, opts: &ConvOptions, progress: &dyn crate::progress::Progress) -> Result<Trained> {
    use crate::model::{Feature, Manifest};
    arch.check().map_err(Error::Train)?;
    super::check_schedule(opts.epochs, opts.batch_size, opts.learning_rate, opts.validation)?;
    let norm = super::fit_normalisation(&data.values, 1);
    let x = super::normalise(&data.values, &norm);
    let mut tiles = Vec::new();
    to_tiles(arch, &x, &mut tiles);
    let b = arch.block as usize;
    let per = b * b;
    let n = tiles.len() / per;
    if n < 8 {
        return Err(Error::Train(format!("{n} tiles of {b} x {b} are too few to train on (at least 8)")));
    }
    let mut order: Vec<usize> = (0..n).collect();
    SplitMix(opts.seed ^ 0xc0de).shuffle(&mut order);
    let n_val = ((n as f64 * opts.validation).round() as usize).min(n - 4);
    let pick = |ids: &[usize]| -> Vec<f32> { ids.iter().flat_map(|&i| tiles[i * per..(i + 1) * per].iter().copied()).collect() };
    let (val_ids, train_ids) = order.split_at(n_val);
    let (train_x, val_x) = (pick(train_ids), pick(val_ids));

    let device = Device::flex().autodiff();
    device.seed(opts.seed);
    let mut net = ConvAe::new(arch, &device);
    let mut optim = AdamConfig::new().init();
    let mut rng = SplitMix(opts.seed ^ 0x7e57);
    let mut ids: Vec<usize> = (0..train_ids.len()).collect();
    let mut batch = Vec::with_capacity(opts.batch_size * per);
    let mut history: Vec<Epoch> = Vec::new();
    let mut best: Option<(f64, ConvAe, usize)> = None;
    let started = std::time::Instant::now();
    progress.start("training conv", (opts.epochs * ids.len()) as u64);
    for epoch in 1..=opts.epochs {
        let t = std::time::Instant::now();
        rng.shuffle(&mut ids);
        let mut sum = 0.0f64;
        for part in ids.chunks(opts.batch_size) {
            batch.clear();
            for &i in part {
                batch.extend_from_slice(&train_x[i * per..(i + 1) * per]);
            }
            let xb = tensor4(&batch, [part.len(), 1, b, b], &device);
            let loss = (net.decode(net.encode(xb.clone())) - xb).powf_scalar(2.0).mean();
            sum += loss.clone().into_scalar::<f32>() as f64 * part.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(opts.learning_rate, net, grads);
        }
        let valid = net.valid();
        let train_mse = sum / ids.len().max(1) as f64;
        let val_mse = if val_x.is_empty() { train_mse } else { mse(&valid, &val_x, b) };
        let e = Epoch { epoch, train_mse, validation_mse: val_mse, seconds: t.elapsed().as_secs_f64() };
        history.push(e);
        progress.message(&format!("epoch {epoch} mse {train_mse:.3e} val {val_mse:.3e}"));
        progress.advance(ids.len() as u64);
        if !val_mse.is_finite() {
            return Err(Error::Train(format!("training diverged at epoch {epoch} (validation MSE {val_mse}): try a smaller --lr")));
        }
        if best.as_ref().is_none_or(|(v, _, _)| val_mse < *v) {
            best = Some((val_mse, valid, epoch));
        } else if best.as_ref().is_some_and(|(_, _, at)| epoch - at >= opts.patience) {
            break;
        }
    }
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    let (val_mse, net, best_epoch) = best.expect("at least one epoch");
    let (encoder, decoder) = export(&net, arch);
    let check_n = n.min(64);
    let check = compare_with_runtime(&net, arch, &encoder, &decoder, &tiles[..check_n * per], check_n)?;
    let worst = check["encoder_max_relative_difference"].as_f64().unwrap_or(f64::NAN).max(check["decoder_max_relative_difference"].as_f64().unwrap_or(f64::NAN));
    if !(worst < 1e-4) {
        return Err(Error::Train(format!("exported ONNX differs from the trained conv model ({check}): export bug")));
    }
    let version = env!("CARGO_PKG_VERSION");
    let rms = val_mse.sqrt() * norm.scale[0];
    let provenance = serde_json::json!({
        "producer": format!("balerfile {version}"),
        "architecture": {
            "model": "conv tile autoencoder",
            "activation": "leaky_relu",
            "negative_slope": SLOPE,
            "residual": "rezero",
            "tile": [arch.block, arch.block],
            "code_shape": arch.code_shape(),
            "values_per_code_value": (per as f64) / arch.code_len() as f64,
        },
        "training": {
            "source": data.source,
            "rows": data.rows,
            "tiles": n,
            "train_tiles": train_ids.len(),
            "validation_tiles": n_val,
            "options": opts,
            "epochs_run": history.len(),
            "best_epoch": best_epoch,
            "history": history,
            "seconds": seconds,
            "backend": "burn 0.22 flex (CPU)",
        },
        "validation": { "mse_normalised": val_mse, "rms_error": rms },
        "onnx_check": check,
    });
    let manifest = Manifest {
        conv: Some(arch.clone()),
        ..super::trained_manifest(
            "conv",
            opts.name.clone().unwrap_or_else(|| "conv".into()),
            vec![Feature { name: data.name.clone(), dtype: data.dtype.clone(), shape: Some(arch.row.clone()) }],
            norm,
            arch.latent_len(),
            (&encoder, &decoder),
            provenance,
        )
    };
    manifest.validate(std::path::Path::new("trained conv manifest"))?;
    Ok(Trained { manifest, encoder, decoder, network: net })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Smooth fields: a few travelling waves on a 23 x 29 grid, plus a little noise.
    fn field(steps: usize, h: usize, w: usize) -> Vec<f32> {
        let mut rng = SplitMix(5);
        let mut out = Vec::with_capacity(steps * h * w);
        for t in 0..steps {
            let ph = t as f64 * 0.3;
            for y in 0..h {
                for x in 0..w {
                    let (fy, fx) = (y as f64 / h as f64, x as f64 / w as f64);
                    let v = 280.0 + 10.0 * (6.0 * fx + ph).sin() * (3.0 * fy).cos() + 5.0 * (4.0 * fy - ph).sin();
                    out.push((v + 0.05 * ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5)) as f32);
                }
            }
        }
        out
    }

    #[test]
    fn a_small_conv_model_learns_and_onnx_runtime_matches_burn_on_new_slices() {
        let arch = ConvArch { row: vec![23, 29], block: 8, hidden: 8, code_channels: 2, downsamples: 2, blocks_per_stage: 1 };
        let values = field(40, 23, 29);
        let data = RowData { name: "t".into(), dtype: "f32".into(), values, rows: 40, source: serde_json::Value::Null };
        let opts = ConvOptions { epochs: 15, ..Default::default() };
        let t = train(&data, &arch, &opts, &crate::progress::Silent).expect("training runs (needs libonnxruntime)");
        let h = &t.manifest.provenance["training"]["history"];
        let first = h[0]["validation_mse"].as_f64().unwrap();
        let best = t.manifest.provenance["validation"]["mse_normalised"].as_f64().unwrap();
        assert!(best < 0.2 * first && best < 0.1, "validation MSE must fall well below the variance: {first} -> {best}");
        assert_eq!(t.manifest.latent.size, (3 * 4 * 2 * 2 * 2) as u64);

        // Slices from later time steps, never seen in training.
        let fresh = super::super::normalise(&field(50, 23, 29)[40 * 23 * 29..], &t.manifest.normalisation);
        let mut tiles = Vec::new();
        to_tiles(&arch, &fresh, &mut tiles);
        let n = tiles.len() / 64;
        let check = compare_with_runtime(&t.network, &arch, &t.encoder, &t.decoder, &tiles, n).unwrap();
        assert!(check["encoder_max_relative_difference"].as_f64().unwrap() < 1e-4, "{check}");
        assert!(check["decoder_max_relative_difference"].as_f64().unwrap() < 1e-4, "{check}");
        assert!(mse(&t.network, &tiles, 8) < 0.1, "the model predicts new time steps");
    }
}
