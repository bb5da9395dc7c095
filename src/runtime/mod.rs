//! ONNX Runtime: finding the shared library, one environment per process, and cached sessions
//! that many threads may use at once.
//!
//! ONNX Runtime is loaded at run time (ort's `load-dynamic`), so building needs no download and
//! one binary runs with whichever ONNX Runtime 1.20+ the machine has.

mod locate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ort::session::Session;

use crate::error::{Error, Result};

pub use locate::{find_library, LIBRARY_VAR};

/// Where models run. CUDA is asked for explicitly and never falls back to the CPU silently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
    Cuda(i32),
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => match s.strip_prefix("cuda:").and_then(|i| i.parse().ok()) {
                Some(i) => Ok(Device::Cuda(i)),
                None => Err(Error::Usage(format!("unknown device '{s}': use cpu, cuda or cuda:N"))),
            },
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuntimeOptions {
    pub device: Device,
    /// ONNX Runtime's intra-op threads per session; callers that run sessions from many threads
    /// at once keep this at 1.
    pub intra_threads: usize,
    /// Run encoders in half precision (an f16 copy of the graph; the BCAE-2D paper's mode).
    pub half_encoder: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions { device: Device::Cpu, intra_threads: 1, half_encoder: false }
    }
}

struct Loaded {
    env: ort::environment::Environment,
    library: PathBuf,
}

static ENV: OnceLock<std::result::Result<Loaded, String>> = OnceLock::new();
static EXPLICIT: OnceLock<PathBuf> = OnceLock::new();

/// Sets the library to load (the CLI's `--onnxruntime`); must come before the first model runs.
pub fn set_library(path: &Path) {
    let _ = EXPLICIT.set(path.to_path_buf());
}

fn environment() -> Result<&'static Loaded> {
    let loaded = ENV.get_or_init(|| {
        let lib = find_library(EXPLICIT.get().map(|p| p.as_path())).map_err(|e| e.to_string())?;
        let builder = ort::init_from(&lib).map_err(|e| format!("cannot load {}: {e}", lib.display()))?;
        let env = builder
            .with_name("balerfile")
            .with_telemetry(false)
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", lib.display()))?;
        Ok(Loaded { env, library: lib })
    });
    loaded.as_ref().map_err(|e| Error::Runtime(e.clone()))
}

/// The library this process loaded (loading it if needed).
pub fn library() -> Result<PathBuf> {
    environment().map(|l| l.library.clone())
}

/// Sessions of one ONNX model: one per concurrent caller, created on demand and reused, because
/// ort's `Session::run` takes `&mut self`.
pub struct Model {
    bytes: Arc<[u8]>,
    opts: RuntimeOptions,
    input: String,
    output: String,
    idle: Mutex<Vec<Session>>,
    label: String,
}

type Key = (String, RuntimeOptions);
static CACHE: OnceLock<Mutex<HashMap<Key, Arc<Model>>>> = OnceLock::new();

/// The cached model for these ONNX bytes (identified by their SHA-256) and options.
pub fn model(sha256: &str, bytes: &[u8], input: &str, output: &str, label: &str, opts: RuntimeOptions) -> Result<Arc<Model>> {
    let cache = CACHE.get_or_init(Default::default);
    // The output is part of the key: one graph may be asked for different outputs.
    let key = (format!("{sha256}:{output}"), opts);
    if let Some(m) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(m.clone());
    }
    let m = Arc::new(Model {
        bytes: bytes.into(),
        opts,
        input: input.into(),
        output: output.into(),
        idle: Mutex::new(Vec::new()),
        label: label.into(),
    });
    // A first session now, so a broken file or a missing library fails here, once.
    let s = m.new_session()?;
    m.check_io(&s)?;
    m.idle.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, m.clone());
    Ok(m)
}

impl Model {
    fn new_session(&self) -> Result<Session> {
        let loaded = environment()?;
        let err = |e: ort::Error| Error::Runtime(format!("{}: {e}", self.label));
        let mut b = Session::builder(&loaded.env).map_err(err)?;
        b = b.with_intra_threads(self.opts.intra_threads.max(1)).map_err(|e| err(e.into()))?;
        b = b.with_inter_threads(1).map_err(|e| err(e.into()))?;
        if let Device::Cuda(id) = self.opts.device {
            // TF32 would round every product to 10 mantissa bits: keep f32 math on the GPU too.
            let ep = ort::ep::CUDA::default().with_device_id(id).with_tf32(false).build().error_on_failure();
            b = b.with_execution_providers([ep]).map_err(|e| {
                Error::Runtime(format!(
                    "{}: the CUDA execution provider is not usable here ({e}); install onnxruntime-gpu and the CUDA runtime, or use --device cpu",
                    self.label
                ))
            })?;
        }
        b.commit_from_memory(&self.bytes).map_err(err)
    }

    fn check_io(&self, s: &Session) -> Result<()> {
        let has = |outlets: &[ort::value::Outlet], name: &str| outlets.iter().any(|o| o.name() == name);
        if !has(s.inputs(), &self.input) || !has(s.outputs(), &self.output) {
            let names = |o: &[ort::value::Outlet]| o.iter().map(|x| x.name().to_string()).collect::<Vec<_>>().join(", ");
            return Err(Error::Runtime(format!(
                "{}: expected input '{}' and output '{}', the model has inputs [{}] and outputs [{}]",
                self.label,
                self.input,
                self.output,
                names(s.inputs()),
                names(s.outputs())
            )));
        }
        Ok(())
    }

    /// Runs the model on `rows` rows of `cols` f32 values; returns the output, `rows` x `out_cols`.
    pub fn run(&self, input: &[f32], rows: usize, cols: usize, out_cols: usize) -> Result<Vec<f32>> {
        self.run_shaped(input, &[rows, cols], &[out_cols])
    }

    /// Runs the model on a tensor of `shape` (the first dimension is the batch); the output must
    /// have shape `[batch, out...]`.
    pub fn run_shaped(&self, input: &[f32], shape: &[usize], out: &[usize]) -> Result<Vec<f32>> {
        if shape.first().is_none_or(|&b| b == 0) {
            return Ok(Vec::new());
        }
        let session = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut session = match session {
            Some(s) => s,
            None => self.new_session()?,
        };
        let result = self.run_on(&mut session, input, shape, out);
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(session);
        result
    }

    fn run_on(&self, session: &mut Session, input: &[f32], shape: &[usize], out: &[usize]) -> Result<Vec<f32>> {
        let err = |e: ort::Error| Error::Runtime(format!("{}: {e}", self.label));
        let tensor = ort::value::TensorRef::from_array_view((shape.to_vec(), input)).map_err(err)?;
        let outputs = session.run(ort::inputs![self.input.as_str() => tensor]).map_err(err)?;
        let value = outputs
            .get(self.output.as_str())
            .ok_or_else(|| Error::Runtime(format!("{}: no output '{}'", self.label, self.output)))?;
        let (got, data) = value.try_extract_tensor::<f32>().map_err(err)?;
        let dims: Vec<i64> = got.iter().copied().collect();
        let want: Vec<i64> = std::iter::once(shape[0]).chain(out.iter().copied()).map(|d| d as i64).collect();
        if dims != want {
            return Err(Error::Runtime(format!("{}: output '{}' has shape {dims:?}, expected {want:?}", self.label, self.output)));
        }
        Ok(data.to_vec())
    }
}
