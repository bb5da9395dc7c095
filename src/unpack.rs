//! `unpack`: container -> codec -> sink, the reverse of `pack`, a batch of chunks at a time.

use std::path::Path;

use rayon::prelude::*;

use crate::codec::{ChunkCodec, VarCoding};
use crate::container::ArchiveReader;
use crate::error::{Error, Result};
use crate::io;
use crate::progress::Progress;

#[derive(Clone, Debug, Default)]
pub struct UnpackOptions {
    /// Only these datasets (names as in the header, with or without the leading '/').
    pub datasets: Vec<String>,
    pub threads: usize,
}

/// The codec settings of each dataset's variables, as the header records them.
pub fn var_codings(reader: &ArchiveReader) -> Vec<Vec<VarCoding>> {
    reader
        .header()
        .datasets
        .iter()
        .map(|d| d.variables.iter().map(|v| VarCoding { dtype: v.dtype, tolerance: v.error.tolerance() }).collect())
        .collect()
}

pub fn codec_of(reader: &ArchiveReader) -> Result<ChunkCodec> {
    let known = crate::codec::PIPELINE;
    let mut level = crate::pack::DEFAULT_LEVEL;
    for s in &reader.header().codec.pipeline {
        if !known.contains(&s.stage.as_str()) {
            return Err(Error::Unsupported {
                path: reader.path().into(),
                what: format!("codec stage '{}' is not implemented by this balerfile", s.stage),
            });
        }
        level = s.level.unwrap_or(level);
    }
    Ok(ChunkCodec { level })
}

/// Decodes chunk `i` of the archive into one buffer per variable.
pub fn decode_chunk(reader: &ArchiveReader, codec: &ChunkCodec, codings: &[Vec<VarCoding>], i: usize) -> Result<Vec<Vec<u8>>> {
    let e = reader.index()[i];
    let ds = &reader.header().datasets[e.dataset as usize];
    let bytes = reader.read_chunk(i)?;
    codec
        .decode(&bytes, e.place(), &codings[e.dataset as usize], ds.row_elems())
        .map_err(|what| Error::corrupt(reader.path(), format!("chunk {i} of {}: {what}", ds.path)))
}

pub fn unpack(input: &Path, output: &Path, opts: &UnpackOptions, progress: &dyn Progress) -> Result<u64> {
    let reader = ArchiveReader::open(input)?;
    let codec = codec_of(&reader)?;
    let header = reader.header();
    let selected = io::select(input, &header.datasets, &opts.datasets)?;
    let mut sink = io::create_sink(output, header, &selected)?;
    let codings = var_codings(&reader);
    let pool = crate::pack::thread_pool(opts.threads)?;
    let chunks: Vec<usize> =
        (0..reader.index().len()).filter(|&i| selected.contains(&(reader.index()[i].dataset as usize))).collect();
    let total: u64 = selected.iter().map(|&d| header.datasets[d].raw_bytes()).sum();
    progress.start("unpacking", total);
    let batch = pool.current_num_threads().max(1) * 2;
    for group in chunks.chunks(batch) {
        let decoded: Vec<Result<Vec<Vec<u8>>>> =
            pool.install(|| group.par_iter().map(|&i| decode_chunk(&reader, &codec, &codings, i)).collect());
        for (&i, data) in group.iter().zip(decoded) {
            let e = reader.index()[i];
            sink.write_rows(e.dataset as usize, e.row_start..e.row_start + e.rows, &data?)?;
            progress.advance(e.rows * header.datasets[e.dataset as usize].row_bytes());
        }
    }
    sink.finish()?;
    progress.finish();
    Ok(total)
}
