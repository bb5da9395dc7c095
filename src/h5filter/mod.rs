//! The HDF5 filter: balerfile's chunk codec behind HDF5's dynamic filter interface, so h5py, C
//! programs and the HDF5 tools read and write compressed datasets with no code change.
//!
//! Nothing here links libhdf5. The C-ABI shell (`capi`) is what `filter-plugin/` exports and
//! what the `balerfile` binary registers in-process; `host` finds the host's HDF5 at run time
//! for set_local; `chunk` and `params` are plain Rust, tested without HDF5.

pub mod capi;
pub mod chunk;
pub mod host;
#[cfg(feature = "runtime")]
pub mod models;
pub mod params;
pub mod recoding;

/// The filter's id. It lies in the range The HDF Group reserves for filters not yet registered
/// (256-511); files written with it say so in their pipeline's filter name.
pub const FILTER_ID: i32 = 442;
macro_rules! filter_name {
    () => {
        "balerfile: error-bounded autoencoder compression"
    };
}
pub(crate) use filter_name;
/// The name HDF5 stores in the dataset's pipeline (`h5dump -p` shows it).
pub const FILTER_NAME: &str = filter_name!();

pub use params::{FilterBound, FilterParams, Layout};

/// Encodes one chunk with the model its parameters name (loaded once per process).
pub fn encode_chunk(p: &FilterParams, data: &[u8]) -> Result<Vec<u8>, String> {
    with_plan(p, true, |plan| chunk::encode(p, data, plan))
}

/// Decodes one filtered chunk; a chunk coded with a model needs that model in the store. (The
/// codec leaves the latent out of a chunk where it does not pay, and such a chunk decodes
/// without loading the model.)
pub fn decode_chunk(p: &FilterParams, bytes: &[u8]) -> Result<Vec<u8>, String> {
    if !chunk::uses_latent(bytes) {
        return chunk::decode(p, bytes, None);
    }
    with_plan(p, false, |plan| chunk::decode(p, bytes, plan))
}

/// BALERFILE_THREADS, the thread count a host process without a command line gives the filter
/// (ONNX Runtime's intra-op threads, and the threads of a chunk's pieces); None when unset or
/// 0 (the default). A value that is no count is warned about once and taken as unset: failing
/// the chunk instead made h5py (which adds the filter as optional) store every chunk raw,
/// with a line on stderr the only sign.
pub(crate) fn threads_from_env() -> Option<usize> {
    let t = std::env::var("BALERFILE_THREADS").ok()?;
    match t.trim().parse::<usize>() {
        Ok(n) => (n > 0).then_some(n),
        Err(_) => {
            static TOLD: std::sync::Once = std::sync::Once::new();
            TOLD.call_once(|| eprintln!("balerfile filter: warning: BALERFILE_THREADS={t} is not a thread count (a number, 0 for the default): the default is used"));
            None
        }
    }
}

fn with_plan<T>(
    p: &FilterParams,
    encoder: bool,
    f: impl FnOnce(Option<&crate::codec::model_stage::ModelPlan>) -> Result<T, String>,
) -> Result<T, String> {
    let Some(id) = p.model_id() else { return f(None) };
    #[cfg(feature = "runtime")]
    {
        let m = models::get(&id, encoder)?;
        let plan = models::plan(&m, p)?;
        f(Some(&plan))
    }
    #[cfg(not(feature = "runtime"))]
    {
        let _ = (encoder, f);
        Err(no_runtime(&id))
    }
}

#[cfg(not(feature = "runtime"))]
fn no_runtime(id: &str) -> String {
    format!("model {id}: this build of the filter has no model runtime (build it with the `runtime` feature)")
}
