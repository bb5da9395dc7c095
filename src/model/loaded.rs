//! A bundle made runnable: its ONNX files as ONNX Runtime sessions, behind the codec's
//! `LatentModel` interface, and the plans that tie it to a dataset's variables.

use std::sync::Arc;

use super::{bcae2d, conv, Bundle, ModelRef};
use crate::codec::model_stage::{LatentCoding, LatentModel, ModelPlan, ModelSpec};
use crate::container::ArchiveReader;
use crate::error::{Error, Result};
use crate::header::{DatasetInfo, DatasetModel};
use crate::runtime::{self, RuntimeOptions};

pub struct LoadedModel {
    pub bundle: Bundle,
    encoder: Option<Arc<runtime::Model>>,
    decoder: Arc<runtime::Model>,
}

impl LoadedModel {
    /// `need_encoder`: packing needs it, unpacking only the decoder.
    pub fn load(bundle: Bundle, opts: RuntimeOptions, need_encoder: bool) -> Result<LoadedModel> {
        let m = &bundle.manifest;
        let label = |part: &str| format!("model {} {part}", &bundle.id[..12]);
        let encoder = match (&bundle.encoder, need_encoder) {
            (Some(bytes), true) if opts.half_encoder => {
                let half = half_graph(bytes).map_err(|e| Error::Model { path: "encoder.onnx".into(), what: e })?;
                Some(runtime::model(&m.encoder.sha256, &half, &m.encoder.input, &m.encoder.output, &label("encoder (f16)"), opts)?)
            }
            (Some(bytes), true) => {
                Some(runtime::model(&m.encoder.sha256, bytes, &m.encoder.input, &m.encoder.output, &label("encoder"), opts)?)
            }
            (None, true) => return Err(Error::Usage(format!("model {} carries no encoder (an embedded copy)", bundle.id))),
            _ => None,
        };
        let decoder = runtime::model(&m.decoder.sha256, &bundle.decoder, &m.decoder.input, &m.decoder.output, &label("decoder"), opts)?;
        Ok(LoadedModel { bundle, encoder, decoder })
    }

    /// The codec's plan for one dataset.
    pub fn plan(&self, dm: &DatasetModel) -> Result<ModelPlan<'_>> {
        let n = self.bundle.manifest.n_features();
        if dm.features.len() != n {
            return Err(Error::Usage(format!("dataset maps {} features to model {} of {n}", dm.features.len(), self.bundle.id)));
        }
        let latent: LatentCoding = dm.latent.parse().map_err(Error::Usage)?;
        Ok(self.plan_with(&dm.features, latent))
    }

    /// A plan for these features (`[variable index, element within a row]`).
    pub fn plan_with(&self, features: &[[u64; 2]], latent: LatentCoding) -> ModelPlan<'_> {
        self.spec().plan(features, latent)
    }

    /// What the codec needs of this model, whatever the dataset.
    pub fn spec(&self) -> ModelSpec<'_> {
        let m = &self.bundle.manifest;
        ModelSpec {
            model: self,
            offset: &m.normalisation.offset,
            scale: &m.normalisation.scale,
            widths: m.features.iter().map(|f| f.width()).collect(),
            score_sparse: m.bcae2d.is_some(),
            grid: m.row_shape().and_then(|r| crate::codec::ints::row_grid(&r)),
        }
    }
}

#[cfg(feature = "train")]
fn half_graph(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    crate::onnx::half::to_half(bytes).map_err(|e| e.to_string())
}

#[cfg(not(feature = "train"))]
fn half_graph(_: &[u8]) -> std::result::Result<Vec<u8>, String> {
    Err("a half-precision encoder needs balerfile built with the train feature (ONNX editing)".into())
}

fn run_err(e: Error) -> String {
    e.to_string()
}

impl LatentModel for LoadedModel {
    fn features(&self) -> usize {
        self.bundle.manifest.input_width()
    }
    fn latent(&self) -> usize {
        self.bundle.manifest.latent.size as usize
    }
    fn encode(&self, x: &[f32], rows: usize) -> std::result::Result<Vec<f32>, String> {
        let enc = self.encoder.as_ref().ok_or("this model was loaded without its encoder")?;
        if let Some(a) = &self.bundle.manifest.conv {
            let mut t = Vec::with_capacity(rows * a.tiles_per_row() * (a.block * a.block) as usize);
            conv::to_tiles(a, x, &mut t);
            let b = a.block as usize;
            return enc.run_shaped(&t, &[rows * a.tiles_per_row(), 1, b, b], &a.code_shape().map(|v| v as usize)).map_err(run_err);
        }
        match &self.bundle.manifest.bcae2d {
            None => enc.run(x, rows, self.features(), self.latent()).map_err(run_err),
            Some(a) => {
                let mut t = Vec::new();
                for wedge in x.chunks_exact(a.wedge_len()) {
                    bcae2d::to_model(a, wedge, &mut t);
                }
                let [c, h, w] = a.input_shape().map(|v| v as usize);
                enc.run_shaped(&t, &[rows, c, h, w], &a.code_shape().map(|v| v as usize)).map_err(run_err)
            }
        }
    }
    fn decode(&self, z: &[f32], rows: usize) -> std::result::Result<Vec<f32>, String> {
        if let Some(a) = &self.bundle.manifest.conv {
            let [c, h, w] = a.code_shape().map(|v| v as usize);
            let b = a.block as usize;
            let y = self.decoder.run_shaped(z, &[rows * a.tiles_per_row(), c, h, w], &[1, b, b]).map_err(run_err)?;
            let mut out = Vec::with_capacity(rows * a.row_len());
            conv::from_tiles(a, &y, &mut out);
            return Ok(out);
        }
        match &self.bundle.manifest.bcae2d {
            None => self.decoder.run(z, rows, self.latent(), self.features()).map_err(run_err),
            Some(a) => {
                let [c, h, w] = a.code_shape().map(|v| v as usize);
                let y = self.decoder.run_shaped(z, &[rows, c, h, w], &a.input_shape().map(|v| v as usize)).map_err(run_err)?;
                let per = a.input_shape().iter().product::<u64>() as usize;
                let mut out = Vec::with_capacity(rows * a.wedge_len());
                for wedge in y.chunks_exact(per) {
                    bcae2d::from_model(a, wedge, &mut out);
                }
                Ok(out)
            }
        }
    }
}

/// Which of a dataset's elements a model's features are, by name: variable `name`, or element
/// `j` of a multi-element row as `name[j]`. Every feature must be a float variable.
pub fn match_features(ds: &DatasetInfo, bundle: &Bundle) -> Result<Vec<[u64; 2]>> {
    if let Some(want) = bundle.manifest.row_shape() {
        // A wedge or field model takes the whole row of the dataset's one numeric variable
        // (a field model: a float one).
        let row: Vec<u64> = ds.shape.iter().skip(1).copied().collect();
        let conv = bundle.manifest.conv.is_some();
        let numeric: Vec<usize> = (0..ds.variables.len())
            .filter(|&v| if conv { ds.variables[v].dtype.is_float() } else { ds.variables[v].dtype != crate::dtype::DType::Bool })
            .collect();
        if row == want && numeric.len() == 1 && ds.variables.len() == 1 {
            return Ok(vec![[numeric[0] as u64, 0]]);
        }
        return Err(Error::Usage(format!(
            "model {} ({}) takes rows of one {} variable of shape {want:?}; dataset {} has rows of shape {row:?} and {} {} variables",
            &bundle.id[..12],
            bundle.manifest.kind,
            if conv { "float" } else { "numeric" },
            ds.name(),
            numeric.len(),
            if conv { "float" } else { "numeric" },
        )));
    }
    let epr = ds.row_elems();
    let mut out = Vec::with_capacity(bundle.manifest.features.len());
    let mut missing = Vec::new();
    for f in &bundle.manifest.features {
        let found = ds.variables.iter().enumerate().find_map(|(vi, v)| {
            if !v.dtype.is_float() {
                return None;
            }
            if epr == 1 && v.name == f.name {
                return Some([vi as u64, 0]);
            }
            let rest = f.name.strip_prefix(v.name.as_str())?.strip_prefix('[')?.strip_suffix(']')?;
            rest.parse::<u64>().ok().filter(|&j| j < epr).map(|j| [vi as u64, j])
        });
        match found {
            Some(x) => out.push(x),
            None => missing.push(f.name.clone()),
        }
    }
    if !missing.is_empty() {
        let shown: Vec<_> = missing.iter().take(5).cloned().collect();
        return Err(Error::Usage(format!(
            "model {} does not fit dataset {}: {} of its {} features are not float variables there ({}{})",
            &bundle.id[..12],
            ds.name(),
            missing.len(),
            bundle.manifest.features.len(),
            shown.join(", "),
            if missing.len() > 5 { ", ..." } else { "" }
        )));
    }
    Ok(out)
}

/// The bundle an archive's model reference points to: the embedded copy, else the store's.
pub fn bundle_for(reader: &ArchiveReader, m: usize, r: &ModelRef, store: &super::store::Store) -> Result<Bundle> {
    let path = reader.path();
    if r.embedded.is_none() {
        let b = store.get(&r.id).map_err(|e| match e {
            Error::ModelNotFound { id, searched } => Error::input(
                path,
                format!(
                    "its model {id} ({}) is not in the model store here (searched: {searched}): set BALER_MODEL_PATH to the folder that holds it (the archive was packed without --embed-model)",
                    r.name
                ),
            ),
            e => e,
        })?;
        if b.manifest.decoder.sha256 != r.decoder_sha256 {
            return Err(Error::Model { path: path.into(), what: format!("model {}: decoder hash differs from the archive's", r.id) });
        }
        return Ok(b);
    }
    super::embedded_bundle(reader, m, r)
}
