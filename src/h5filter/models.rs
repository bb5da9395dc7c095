//! Models the filter runs, loaded once per process from the model store and kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::params::FilterParams;
use crate::codec::model_stage::ModelPlan;
use crate::model::loaded::LoadedModel;
use crate::model::store::Store;
use crate::runtime::{Device, RuntimeOptions};

type Cache = Mutex<HashMap<(String, bool), Arc<LoadedModel>>>;

static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();

/// The runtime options of a host process that has no command line: BALERFILE_DEVICE
/// (cpu, cuda, cuda:N) and BALERFILE_THREADS (ONNX Runtime intra-op threads, default 1).
fn options() -> Result<RuntimeOptions, String> {
    let mut o = RuntimeOptions::default();
    if let Ok(d) = std::env::var("BALERFILE_DEVICE") {
        o.device = d.parse::<Device>().map_err(|e| format!("BALERFILE_DEVICE: {e}"))?;
    }
    if let Some(t) = super::threads_from_env() {
        o.intra_threads = t;
    }
    Ok(o)
}

/// The model with this id, with its encoder when `encoder` (writing needs it, reading not).
pub fn get(id: &str, encoder: bool) -> Result<Arc<LoadedModel>, String> {
    let cache = CACHE.get_or_init(Default::default);
    let key = (id.to_string(), encoder);
    if let Some(m) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(m.clone());
    }
    // Loaded outside the lock: a first load takes a while, and a failure is not cached, so a
    // user who installs the missing model or library can retry in the same process.
    let bundle = Store::from_env().get(id).map_err(|e| match e {
        crate::error::Error::ModelNotFound { id, searched } => format!(
            "model {id} not found (searched: {searched}); set BALER_MODEL_PATH to the model store that holds it"
        ),
        e => e.to_string(),
    })?;
    let m = Arc::new(LoadedModel::load(bundle, options()?, encoder).map_err(|e| e.to_string())?);
    cache.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_insert(m.clone());
    Ok(m)
}

/// The codec's plan: feature j of the model is column j of the table.
pub fn plan<'a>(m: &'a LoadedModel, p: &FilterParams) -> Result<ModelPlan<'a>, String> {
    if let Some(shape) = m.bundle.manifest.row_shape() {
        let len: u64 = shape.iter().product();
        if p.layout != super::params::Layout::Wedge || p.features as u64 != len {
            return Err(format!(
                "model {} ({}) takes rows of {shape:?} = {len} values; the dataset's chunks have rows of {} (use the wedge layout, one or more whole rows per chunk)",
                &m.bundle.id[..12],
                m.bundle.manifest.kind,
                p.features
            ));
        }
        return Ok(m.plan_with(&[[0, 0]], p.latent));
    }
    let n = m.bundle.manifest.n_features();
    if p.features as usize != n {
        return Err(format!(
            "model {} takes {n} features, the dataset's rows have {}",
            &m.bundle.id[..12],
            p.features
        ));
    }
    let identity: Vec<[u64; 2]> = (0..n as u64).map(|j| [j, 0]).collect();
    Ok(m.plan_with(&identity, p.latent))
}
