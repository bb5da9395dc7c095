//! The library's error type. Every variant says which file (or object) and what is wrong, so the
//! CLI can print it as one line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // Not marked as the error's source: the message already carries it, and the CLI prints
    // the whole chain.
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },

    /// The file is not what it claims to be, or was damaged after it was written.
    #[error("{path}: corrupt or truncated archive: {what}")]
    Corrupt { path: PathBuf, what: String },

    #[error("{path}: not a .baler archive ({what})")]
    NotBaler { path: PathBuf, what: String },

    #[error("{path}: {what}")]
    Unsupported { path: PathBuf, what: String },

    #[error("{path}: {what}")]
    Input { path: PathBuf, what: String },

    #[error("{path}: HDF5: {what}")]
    Hdf5 { path: PathBuf, what: String },

    #[error("bad error spec '{spec}': {what}")]
    ErrorSpec { spec: String, what: String },

    #[error("{0}")]
    Usage(String),

    /// A model bundle or ONNX file that is not what it must be.
    #[error("{path}: {what}")]
    Model { path: PathBuf, what: String },

    #[error("model {id} not found (searched: {searched}); set BALER_MODEL_PATH to the folder that holds it, or pack with --embed-model")]
    ModelNotFound { id: String, searched: String },

    /// ONNX Runtime could not be found, loaded or run.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),

    /// Training failed (bad settings or data the model cannot learn from).
    #[error("training: {0}")]
    Train(String),

    /// A chunk failed to decode; the caller adds the file name.
    #[error("{0}")]
    Chunk(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message of a caught panic (what `panic!` was given), for code that turns panics of
/// code it does not control into errors.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".into())
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        Error::Io { path: path.into(), err }
    }
    pub fn corrupt(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::Corrupt { path: path.into(), what: what.into() }
    }
    pub fn input(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::Input { path: path.into(), what: what.into() }
    }
}
