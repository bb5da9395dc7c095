//! `inspect`: what an archive holds, per variable, without decoding any data.

use std::path::Path;

use serde::Serialize;

use crate::codec::errstats::ErrStats;
use crate::container::ArchiveReader;
use crate::error::{Error, Result};
use crate::header::Header;

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub file: String,
    pub archive_bytes: u64,
    pub raw_bytes: u64,
    pub ratio: f64,
    /// Bytes of model decoders the archive needs but does not hold (0 when embedded or none).
    pub decoder_bytes: u64,
    /// Bytes of decoders the archive holds (`--embed-model`): raw / (archive - these) is the
    /// coded data's ratio alone.
    pub embedded_bytes: u64,
    /// raw / (archive + decoders kept outside it).
    pub ratio_with_decoder: f64,
    /// Bytes of latent blocks.
    pub latent_bytes: u64,
    /// Per model of the header, the chunks that carry its latent: a model with none is not
    /// needed to unpack.
    pub model_chunks: Vec<u64>,
    pub chunks: usize,
    pub variables: Vec<VariableSize>,
    pub header: Header,
}

#[derive(Debug, Serialize)]
pub struct VariableSize {
    pub dataset: String,
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub bound: String,
    pub raw_bytes: u64,
    pub packed_bytes: u64,
    pub percent_of_raw: f64,
    /// Chunks whose block of this variable was coded with the model.
    pub model_chunks: u64,
    /// What lossy coding did (Baler's Table 2), from the statistics each block carries.
    pub errors: Option<crate::codec::errstats::ErrSummary>,
}

/// Reads every chunk (checking its checksum) but decodes none: block sizes come from the chunk
/// layout, so this is also a fast integrity check.
pub fn inspect(path: &Path) -> Result<Inspection> {
    let reader = ArchiveReader::open(path)?;
    let header = reader.header().clone();
    let mut sizes: Vec<Vec<u64>> = header.datasets.iter().map(|d| vec![0; d.variables.len()]).collect();
    let mut model_chunks: Vec<Vec<u64>> = sizes.clone();
    let mut errs: Vec<Vec<Option<ErrStats>>> = header.datasets.iter().map(|d| vec![None; d.variables.len()]).collect();
    let mut latent_bytes = 0;
    let mut chunks_of_model = vec![0u64; header.models.len()];
    let codings = crate::unpack::var_codings(&reader);
    for i in 0..reader.index().len() {
        let d = reader.index()[i].dataset;
        let bytes = reader.read_chunk(i)?;
        // Model decoders and carried ROOT objects: checksummed above, no rows to count.
        if d == crate::container::ATTACHMENT || d == crate::container::ROOT_OBJECT {
            continue;
        }
        let d = d as usize;
        let layout = crate::codec::chunk_layout(&bytes, &codings[d], header.datasets[d].row_elems())
            .map_err(|what| Error::corrupt(path, format!("chunk {i}: {what}")))?;
        latent_bytes += layout.latent_bytes;
        if let (true, Some(dm)) = (layout.latent_bytes > 0, &header.datasets[d].model) {
            chunks_of_model[dm.model as usize] += 1;
        }
        for v in 0..sizes[d].len() {
            sizes[d][v] += layout.block_bytes[v];
            model_chunks[d][v] += layout.used_model[v] as u64;
            if let Some(e) = &layout.errors[v] {
                errs[d][v].get_or_insert_with(ErrStats::default).merge(e);
            }
        }
    }
    // Embedded models are part of what an integrity check covers: a decoder whose CRCs were
    // recomputed after a change still fails its SHA-256 here.
    for (m, r) in header.models.iter().enumerate() {
        if r.embedded.is_some() {
            crate::model::embedded_bundle(&reader, m, r)?;
        }
    }
    let mut variables = Vec::new();
    for (d, ds) in header.datasets.iter().enumerate() {
        for (v, var) in ds.variables.iter().enumerate() {
            let raw = ds.rows() * ds.row_elems() * var.dtype.size() as u64;
            variables.push(VariableSize {
                dataset: ds.path.clone(),
                name: var.name.clone(),
                dtype: var.dtype.name().into(),
                shape: ds.shape.clone(),
                bound: var.error.describe(),
                raw_bytes: raw,
                packed_bytes: sizes[d][v],
                percent_of_raw: if raw > 0 { 100.0 * sizes[d][v] as f64 / raw as f64 } else { 0.0 },
                model_chunks: model_chunks[d][v],
                errors: errs[d][v].map(|e| e.summary()),
            });
        }
    }
    let raw_bytes: u64 = header.datasets.iter().map(|d| d.raw_bytes()).sum();
    let decoder_bytes: u64 = header
        .models
        .iter()
        .zip(&chunks_of_model)
        .filter(|(m, &n)| m.embedded.is_none() && n > 0)
        .map(|(m, _)| m.decoder_bytes)
        .sum();
    let ratio = |d: u64| if d > 0 { raw_bytes as f64 / d as f64 } else { 0.0 };
    Ok(Inspection {
        file: path.display().to_string(),
        archive_bytes: reader.size(),
        raw_bytes,
        ratio: ratio(reader.size()),
        decoder_bytes,
        embedded_bytes: reader.index().iter().filter(|e| e.dataset == crate::container::ATTACHMENT).map(|e| e.length).sum(),
        ratio_with_decoder: ratio(reader.size() + decoder_bytes),
        latent_bytes,
        model_chunks: chunks_of_model,
        chunks: reader.index().len(),
        variables,
        header,
    })
}
