//! Training a model on a table and exporting it as an ONNX bundle (encoder, decoder, manifest).
//!
//! Kinds: `dense` (Baler's autoencoder for rows x features tables, here), `bcae2d` (sparse
//! wedges) and `conv` (tiles of continuous fields).

pub mod bcae2d;
pub mod conv;
pub mod dense;

use std::time::Instant;

use crate::error::{Error, Result};
use crate::model::{Feature, Latent, Manifest, Normalisation, OnnxInfo, OnnxPart, MANIFEST_FORMAT, MANIFEST_VERSION};
use crate::progress::Progress;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    Adam,
    AdamW,
}

impl std::str::FromStr for Optimizer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "adam" => Ok(Optimizer::Adam),
            "adamw" => Ok(Optimizer::AdamW),
            _ => Err(Error::Usage(format!("unknown optimizer '{s}': use adam or adamw"))),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainOptions {
    /// Hidden layer widths of the encoder (the decoder mirrors them). Baler: 200, 100, 50.
    pub hidden: Vec<usize>,
    /// Latent width; None: from `ratio`.
    pub latent: Option<usize>,
    /// Features per latent value, when `latent` is not given.
    pub ratio: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub optimizer: Optimizer,
    pub weight_decay: f64,
    /// Share of rows held out for validation and early stopping.
    pub validation: f64,
    /// Epochs without a better validation loss before training stops.
    pub patience: usize,
    pub seed: u64,
    pub negative_slope: f64,
    pub name: Option<String>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            hidden: vec![200, 100, 50],
            latent: None,
            ratio: 32.0,
            epochs: 50,
            batch_size: 512,
            learning_rate: 1e-3,
            optimizer: Optimizer::Adam,
            weight_decay: 1e-2,
            validation: 0.1,
            patience: 8,
            seed: 0,
            negative_slope: 0.01,
            name: None,
        }
    }
}

impl TrainOptions {
    pub fn latent_size(&self, features: usize) -> usize {
        self.latent.unwrap_or_else(|| ((features as f64 / self.ratio).round() as usize).max(2).min(features))
    }
}

/// A table to train on: `rows` rows of `features.len()` values, row-major, as read.
pub struct TrainData {
    pub features: Vec<Feature>,
    pub values: Vec<f32>,
    pub rows: usize,
    /// Where the rows came from (file, dataset, sampling), for the manifest.
    pub source: serde_json::Value,
}

/// Whole rows of one variable to train a row model (bcae2d, conv) on: `rows` rows, row-major
/// (data units, e.g. ADC counts or kelvin).
pub struct RowData {
    pub name: String,
    pub dtype: String,
    pub values: Vec<f32>,
    pub rows: usize,
    /// Where the rows came from (file, dataset, sampling), for the manifest.
    pub source: serde_json::Value,
}

/// The manifest of a model `train` made: its ONNX files are `encoder.onnx` (`input` ->
/// `latent`) and `decoder.onnx` (`latent` -> `output`). Row models set their architecture on it.
pub fn trained_manifest(
    kind: &str,
    name: String,
    features: Vec<Feature>,
    normalisation: Normalisation,
    latent: usize,
    (encoder, decoder): (&[u8], &[u8]),
    provenance: serde_json::Value,
) -> Manifest {
    let part = |file: &str, bytes: &[u8], input: &str, output: &str| OnnxPart {
        file: file.into(),
        sha256: crate::model::sha256_hex(bytes),
        input: input.into(),
        output: output.into(),
    };
    Manifest {
        format: MANIFEST_FORMAT.into(),
        format_version: MANIFEST_VERSION,
        kind: kind.into(),
        name,
        features,
        normalisation,
        latent: Latent { size: latent as u64 },
        encoder: part(ENCODER_FILE, encoder, "input", "latent"),
        decoder: part(DECODER_FILE, decoder, "latent", "output"),
        onnx: OnnxInfo { ir_version: crate::onnx::IR_VERSION, opset: crate::onnx::OPSET_VERSION },
        provenance,
        bcae2d: None,
        conv: None,
    }
}

pub struct Trained {
    pub manifest: Manifest,
    pub encoder: Vec<u8>,
    pub decoder: Vec<u8>,
    /// The trained network itself, as burn runs it.
    pub network: dense::DenseAutoencoder,
}

pub const ENCODER_FILE: &str = "encoder.onnx";
pub const DECODER_FILE: &str = "decoder.onnx";

/// Mean and standard deviation of each feature's finite values (scale 1 for a constant one), so
/// every input the network sees is O(1).
pub fn fit_normalisation(values: &[f32], cols: usize) -> Normalisation {
    let mut offset = vec![0.0; cols];
    let mut scale = vec![1.0; cols];
    for c in 0..cols {
        let (mut n, mut mean, mut m2) = (0u64, 0.0f64, 0.0f64);
        for row in values.chunks_exact(cols) {
            let v = row[c] as f64;
            if v.is_finite() {
                n += 1;
                let d = v - mean;
                mean += d / n as f64;
                m2 += d * (v - mean);
            }
        }
        let sd = if n > 1 { (m2 / n as f64).sqrt() } else { 0.0 };
        offset[c] = mean;
        scale[c] = if sd.is_finite() && sd > 0.0 { sd } else { 1.0 };
    }
    Normalisation { offset, scale }
}

/// Normalises rows for the model; non-finite inputs become 0 (the feature's mean): the codec
/// stores those elements exactly anyway.
pub fn normalise(values: &[f32], norm: &Normalisation) -> Vec<f32> {
    let cols = norm.offset.len();
    let mut out = Vec::with_capacity(values.len());
    for row in values.chunks_exact(cols) {
        for (c, &v) in row.iter().enumerate() {
            let z = ((v as f64 - norm.offset[c]) / norm.scale[c]) as f32;
            out.push(if z.is_finite() { z } else { 0.0 });
        }
    }
    out
}

pub fn train(data: &TrainData, opts: &TrainOptions, progress: &dyn Progress) -> Result<Trained> {
    let cols = data.features.len();
    if cols < 2 {
        return Err(Error::Train(format!("a dense autoencoder needs at least 2 features, this table has {cols}")));
    }
    if data.rows < 16 {
        return Err(Error::Train(format!("{} rows are too few to train on (at least 16)", data.rows)));
    }
    check_schedule(opts.epochs, opts.batch_size, opts.learning_rate, opts.validation)?;
    if opts.hidden.contains(&0) {
        return Err(Error::Train("hidden layer widths must be positive".into()));
    }
    let latent = opts.latent_size(cols);
    let norm = fit_normalisation(&data.values, cols);
    let x = normalise(&data.values, &norm);

    // A seeded split: validation rows are a random sample, not the file's tail.
    let mut order: Vec<usize> = (0..data.rows).collect();
    dense::SplitMix(opts.seed).shuffle(&mut order);
    let n_val = ((data.rows as f64 * opts.validation).round() as usize).min(data.rows - 8);
    let pick = |rows: &[usize]| -> Vec<f32> { rows.iter().flat_map(|&r| x[r * cols..(r + 1) * cols].iter().copied()).collect() };
    let (val_rows, train_rows) = order.split_at(n_val);
    let (train_x, val_x) = (pick(train_rows), pick(val_rows));

    let mut widths = vec![cols];
    widths.extend(&opts.hidden);
    widths.push(latent);

    let started = Instant::now();
    progress.start("training", opts.epochs as u64 * train_rows.len() as u64 * cols as u64 * 4);
    let fitted = dense::fit(&train_x, &val_x, cols, &widths, opts, &mut |e, n| {
        progress.message(&format!("epoch {} loss {:.3e} val {:.3e}", e.epoch, e.train_loss, e.val_loss));
        progress.advance(n as u64 * cols as u64 * 4);
    });
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    let trained_rows = fitted.history.len() * train_rows.len();

    let (enc_layers, dec_layers) = fitted.model.export(opts.negative_slope);
    let version = env!("CARGO_PKG_VERSION");
    let encoder = crate::onnx::dense_mlp("encoder", "input", "latent", &enc_layers, version);
    let decoder = crate::onnx::dense_mlp("decoder", "latent", "output", &dec_layers, version);

    // The exported graphs must compute what burn computed: check on real rows now, not at unpack.
    let check_x: Vec<f32> = x[..x.len().min(1024 * cols)].to_vec();
    let check_rows = check_x.len() / cols;
    let device = burn::tensor::Device::flex();
    let z_burn = fitted.model.encode(dense::tensor(&check_x, check_rows, cols, &device), opts.negative_slope);
    let y_burn = dense::to_vec(fitted.model.decode(z_burn.clone(), opts.negative_slope));
    let z_burn = dense::to_vec(z_burn);
    let rt = crate::runtime::RuntimeOptions::default();
    let enc_rt = crate::runtime::model(&crate::model::sha256_hex(&encoder), &encoder, "input", "latent", "trained encoder", rt)?;
    let dec_rt = crate::runtime::model(&crate::model::sha256_hex(&decoder), &decoder, "latent", "output", "trained decoder", rt)?;
    let z_ort = enc_rt.run(&check_x, check_rows, cols, latent)?;
    let y_ort = dec_rt.run(&z_burn, check_rows, latent, cols)?;
    let diff = rel_diff(&z_ort, &z_burn).max(rel_diff(&y_ort, &y_burn));
    if diff.is_nan() || diff >= 1e-5 {
        return Err(Error::Train(format!("exported ONNX differs from the trained model by {diff:.2e} (relative): export bug")));
    }

    let last = fitted.history[fitted.best_epoch - 1];
    let provenance = serde_json::json!({
        "producer": format!("balerfile {version}"),
        "architecture": {
            "widths": widths,
            "activation": "leaky_relu",
            "negative_slope": opts.negative_slope,
        },
        "training": {
            "source": data.source,
            "rows": data.rows,
            "train_rows": train_rows.len(),
            "validation_rows": n_val,
            "options": opts,
            "epochs_run": fitted.history.len(),
            "best_epoch": fitted.best_epoch,
            "stopped_early": fitted.stopped_early,
            "train_loss": last.train_loss,
            "validation_loss": last.val_loss,
            "seconds": seconds,
            "rows_per_second": trained_rows as f64 / seconds.max(1e-9),
            "backend": "burn 0.22 flex (CPU)",
        },
        "onnx_check": { "rows": check_rows, "max_relative_difference": diff, "runtime": "onnxruntime" },
    });
    let manifest = trained_manifest(
        "dense",
        opts.name.clone().unwrap_or_else(|| "dense".into()),
        data.features.clone(),
        norm,
        latent,
        (&encoder, &decoder),
        provenance,
    );
    Ok(Trained { manifest, encoder, decoder, network: fitted.model })
}

/// The training settings every model kind shares must make sense.
pub fn check_schedule(epochs: usize, batch_size: usize, learning_rate: f64, validation: f64) -> Result<()> {
    if epochs == 0 || batch_size == 0 || learning_rate.is_nan() || learning_rate <= 0.0 || !(0.0..0.9).contains(&validation) {
        return Err(Error::Train("epochs, batch size and learning rate must be positive, validation in [0, 0.9)".into()));
    }
    Ok(())
}

/// max |a - b| over max |b|: relative to the output's scale, so a value near zero does not
/// turn rounding noise into a large ratio.
pub fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs())).max(f64::MIN_POSITIVE);
    let d = a.iter().zip(b).fold(0.0f64, |m, (&x, &y)| m.max((x as f64 - y as f64).abs()));
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    d / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows with correlated columns (a few hidden factors mixed, plus noise), deterministic.
    fn table(rows: usize, cols: usize) -> Vec<f32> {
        let mut rng = dense::SplitMix(7);
        let mut u = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        let mut out = Vec::with_capacity(rows * cols);
        for _ in 0..rows {
            let (a, b, c) = (u(), u(), u());
            for j in 0..cols {
                let j = j as f64;
                out.push((100.0 * (a * (j * 0.3).sin() + b * (j * 0.7).cos() + c * a * j / 5.0) + 0.1 * u() + j) as f32);
            }
        }
        out
    }

    #[test]
    fn onnx_runtime_computes_what_burn_computes_on_new_rows() {
        let cols = 12;
        let data = TrainData {
            features: (0..cols).map(|j| Feature::scalar(format!("x{j}"), "f32")).collect(),
            values: table(3000, cols),
            rows: 3000,
            source: serde_json::Value::Null,
        };
        let opts = TrainOptions { epochs: 40, batch_size: 64, hidden: vec![32, 16], latent: Some(3), ..Default::default() };
        let t = train(&data, &opts, &crate::progress::Silent).expect("training runs (needs libonnxruntime: pip install onnxruntime)");
        assert_eq!(t.manifest.latent.size, 3);
        let check = t.manifest.provenance["onnx_check"]["max_relative_difference"].as_f64().unwrap();
        assert!(check < 1e-5, "{check}");

        // Rows the model never saw, through burn and through ONNX Runtime.
        let fresh = normalise(&table(500, cols)[..], &t.manifest.normalisation);
        let device = burn::tensor::Device::flex();
        let z_burn = t.network.encode(dense::tensor(&fresh, 500, cols, &device), opts.negative_slope);
        let y_burn = dense::to_vec(t.network.decode(z_burn.clone(), opts.negative_slope));
        let z_burn = dense::to_vec(z_burn);
        let rt = crate::runtime::RuntimeOptions { intra_threads: 2, ..Default::default() };
        let enc = crate::runtime::model(&t.manifest.encoder.sha256, &t.encoder, "input", "latent", "test encoder", rt).unwrap();
        let dec = crate::runtime::model(&t.manifest.decoder.sha256, &t.decoder, "latent", "output", "test decoder", rt).unwrap();
        let z_ort = enc.run(&fresh, 500, cols, 3).unwrap();
        let y_ort = dec.run(&z_burn, 500, 3, cols).unwrap();
        assert!(rel_diff(&z_ort, &z_burn) < 1e-5, "encoder: {}", rel_diff(&z_ort, &z_burn));
        assert!(rel_diff(&y_ort, &y_burn) < 1e-5, "decoder: {}", rel_diff(&y_ort, &y_burn));
        // and the model learned something: better than predicting the mean (MSE 1 after normalising)
        let mse = dense::mse(&t.network, &fresh, cols, opts.negative_slope);
        assert!(mse < 0.5, "validation MSE {mse}");
    }

    #[test]
    fn training_refuses_what_it_cannot_learn_from() {
        let one = TrainData {
            features: vec![Feature::scalar("x", "f32")],
            values: vec![1.0; 100],
            rows: 100,
            source: serde_json::Value::Null,
        };
        let e = train(&one, &TrainOptions::default(), &crate::progress::Silent).err().unwrap().to_string();
        assert!(e.contains("at least 2 features"), "{e}");
    }
}
