//! `inspect`: what an archive holds, per variable, without decoding any data.

use std::path::Path;

use serde::Serialize;

use crate::container::ArchiveReader;
use crate::error::{Error, Result};
use crate::header::Header;
use crate::wire::Cursor;

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
        let blocks = block_sizes(&bytes, sizes[d].len())
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

/// Bytes of each variable block in a chunk, by walking the block headers (format spec).
fn block_sizes(chunk: &[u8], nvars: usize) -> Result<Vec<u64>, String> {
    let mut c = Cursor::new(chunk);
    c.bytes(4 + 8 + 8, "chunk place")?;
    let n = c.u32("variable count")? as usize;
    if n != nvars {
        return Err(format!("{n} variables where the header has {nvars}"));
    }
    c.u32("latent count")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = c.remaining();
        let skip_payload = |c: &mut Cursor| -> Result<(), String> {
            let len = c.u64("payload length")?;
            c.bytes(len, "payload").map(|_| ())
        };
        match c.u8("method")? {
            crate::codec::METHOD_RAW => {
                c.u8("element size")?;
                skip_payload(&mut c)?;
            }
            crate::codec::METHOD_INTEGER => {
                c.bytes(2, "width, predictor")?;
                skip_payload(&mut c)?;
            }
            crate::codec::METHOD_QUANTISED => {
                c.bytes(16, "step, outliers")?;
                c.bytes(2, "width, predictor")?;
                skip_payload(&mut c)?;
                skip_payload(&mut c)?;
            }
            m => return Err(format!("unknown coding method {m}")),
        }
        out.push((start - c.remaining()) as u64);
    }
    c.finish("chunk")?;
    Ok(out)
}
