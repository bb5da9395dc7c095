//! `inspect`: what an archive holds, per variable, without decoding any data.

use std::path::Path;

use serde::Serialize;

use crate::container::ArchiveReader;
use crate::error::{Error, Result};
use crate::header::Header;

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub file: String,
    pub archive_bytes: u64,
    pub raw_bytes: u64,
    pub ratio: f64,
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
}

/// Reads every chunk (checking its checksum) but decodes none: block sizes come from the chunk
/// layout, so this is also a fast integrity check.
pub fn inspect(path: &Path) -> Result<Inspection> {
    let reader = ArchiveReader::open(path)?;
    let header = reader.header().clone();
    let mut sizes: Vec<Vec<u64>> = header.datasets.iter().map(|d| vec![0; d.variables.len()]).collect();
    for i in 0..reader.index().len() {
        let d = reader.index()[i].dataset as usize;
        let bytes = reader.read_chunk(i)?;
        let blocks = crate::codec::block_sizes(&bytes, sizes[d].len())
            .map_err(|what| Error::corrupt(path, format!("chunk {i}: {what}")))?;
        for (s, b) in sizes[d].iter_mut().zip(blocks) {
            *s += b;
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
            });
        }
    }
    let raw_bytes: u64 = header.datasets.iter().map(|d| d.raw_bytes()).sum();
    Ok(Inspection {
        file: path.display().to_string(),
        archive_bytes: reader.size(),
        raw_bytes,
        ratio: if reader.size() > 0 { raw_bytes as f64 / reader.size() as f64 } else { 0.0 },
        chunks: reader.index().len(),
        variables,
        header,
    })
}
