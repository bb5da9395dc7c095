//! `.baler` streams in memory: one array in (its `.npy` image), the archive's bytes out, and
//! back, with no file touched. The Python package's `compress`/`decompress` and its zarr and
//! numcodecs codecs call these; the archive is the same self-describing, checksummed container
//! `pack` writes, so `balerfile unpack` and `inspect` read a saved stream.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::bound::ErrorSpec;
use crate::container::{ArchiveReader, Target};
use crate::error::{Error, Result};
use crate::io::npy::{NpySink, NpySource};
use crate::io::table::{ColumnsSink, LayoutSpec};
use crate::model::prepare::{ModelChoice, ModelOptions};
use crate::pack::{PackOptions, PackReport};
use crate::progress::Silent;
use crate::unpack::UnpackOptions;

/// Stands for the array in messages and names its dataset in the archive.
const ARRAY: &str = "array";
const STREAM: &str = "<.baler bytes>";

pub struct CompressOptions {
    pub errors: Vec<ErrorSpec>,
    /// How a 2-D array is read (`--layout`); empty: by the default rule, as `pack` does.
    pub layouts: Vec<LayoutSpec>,
    pub level: i32,
    pub threads: usize,
    pub chunk_bytes: u64,
    /// A model from the store (id, id prefix or bundle folder) for the model stage; None: the
    /// codec alone (no model is trained in process).
    pub model: Option<String>,
    /// Embed the model's decoder in the stream, so it decodes without the store.
    pub embed_model: bool,
    /// Values that mark missing elements (`pack --fill-value`): an array has no attributes.
    pub fill_values: Vec<crate::io::view::FillSpec>,
}

impl Default for CompressOptions {
    fn default() -> Self {
        let p = PackOptions::default();
        CompressOptions {
            errors: Vec::new(),
            layouts: Vec::new(),
            level: p.level,
            threads: p.threads,
            chunk_bytes: p.chunk_bytes,
            model: None,
            embed_model: false,
            fill_values: Vec::new(),
        }
    }
}

pub struct Compressed {
    pub bytes: Vec<u8>,
    /// How the array was read (table or field) and what the model stage decided, in `pack`'s
    /// words.
    pub choices: Vec<String>,
    pub report: PackReport,
}

/// Packs the array whose `.npy` image is `npy` (what `numpy.lib.format.write_array` writes)
/// into a `.baler` stream, every float within its bound as `pack` holds it.
pub fn compress(npy: Vec<u8>, opts: &CompressOptions) -> Result<Compressed> {
    let name = Path::new(ARRAY);
    let source = Box::new(NpySource::from_bytes(name, npy)?);
    let (mut source, choices) = crate::io::view::as_meant(source, name, &opts.layouts, &opts.fill_values)?;
    let choice = match &opts.model {
        None => ModelChoice::None,
        Some(m) => ModelChoice::Use(m.clone()),
    };
    let mopts = ModelOptions { choice, embed: opts.embed_model, ..Default::default() };
    let prepared = crate::model::prepare::prepare(source.as_mut(), &opts.errors, &mopts, &Silent)?;
    let models = prepared.pack_models(opts.embed_model);
    let popts = PackOptions { errors: opts.errors.clone(), chunk_bytes: opts.chunk_bytes, level: opts.level, threads: opts.threads, strict: false };
    let (report, bytes) = crate::pack::pack_to(source.as_mut(), Target::Memory, &popts, &models, &prepared.uses, &Silent)?;
    let bytes = bytes.expect("an archive written to memory comes back");
    let mut notes: Vec<String> = choices.iter().map(|c| c.describe()).collect();
    notes.extend(prepared.notes.iter().cloned());
    Ok(Compressed { bytes, choices: notes, report })
}

/// The `.npy` image of the one array a `.baler` stream holds.
pub fn decompress(archive: Vec<u8>, opts: &UnpackOptions) -> Result<Vec<u8>> {
    let reader = ArchiveReader::from_bytes(Path::new(STREAM), archive)?;
    let n = reader.header().datasets.len();
    if n != 1 && opts.datasets.len() != 1 {
        let names: Vec<&str> = reader.header().datasets.iter().map(|d| d.name()).collect();
        return Err(Error::Usage(format!(
            "{STREAM}: holds {n} datasets ({}) and decompress returns one array: name one",
            names.join(", ")
        )));
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink_buf = Arc::clone(&buf);
    crate::unpack::unpack_into(
        &reader,
        |header, selected| ColumnsSink::wrap(header, |header| Ok(Box::new(NpySink::to_memory(header, selected[0], sink_buf)))),
        opts,
        &Silent,
    )?;
    let bytes = std::mem::take(&mut *buf.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(bytes)
}
