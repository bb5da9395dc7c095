//! `pack`: source -> codec -> container. Two passes over the source: one for each float
//! variable's range (what `rel` bounds are relative to, recorded in the header before any chunk),
//! one to encode. Chunks are read in order, encoded in parallel, written in order, a batch at a
//! time, so memory is bounded by the batch, not the file.

use std::path::Path;

use rayon::prelude::*;

use crate::bound::{self, ErrorSpec};
use crate::codec::{ChunkCodec, ChunkPlace, VarCoding};
use crate::container::ArchiveWriter;
use crate::dtype::floats_to_f64;
use crate::error::{Error, Result};
use crate::header::{CodecInfo, Header, Producer, StageInfo, Stats, FORMAT_NAME, FORMAT_VERSION};
use crate::io::Source;
use crate::progress::Progress;

#[derive(Clone, Debug)]
pub struct PackOptions {
    pub errors: Vec<ErrorSpec>,
    /// Target bytes of raw data per chunk (all variables of a row range together).
    pub chunk_bytes: u64,
    pub level: i32,
    pub threads: usize,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions { errors: Vec::new(), chunk_bytes: DEFAULT_CHUNK_BYTES, level: DEFAULT_LEVEL, threads: 0 }
    }
}

pub const DEFAULT_CHUNK_BYTES: u64 = 4 << 20;
pub const DEFAULT_LEVEL: i32 = 9;

#[derive(Clone, Debug, serde::Serialize)]
pub struct VariableReport {
    pub name: String,
    pub dtype: String,
    pub bound: String,
    /// The absolute tolerance every element is held to; None when lossless.
    pub tolerance: Option<f64>,
    pub raw_bytes: u64,
    pub packed_bytes: u64,
    /// Largest |x' - x| seen while encoding (0 for lossless variables).
    pub max_error: f64,
    /// Elements stored exactly because quantising them would miss the bound.
    pub outliers: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct PackReport {
    pub raw_bytes: u64,
    pub archive_bytes: u64,
    pub chunks: u64,
    pub variables: Vec<VariableReport>,
    pub skipped: Vec<crate::header::Skipped>,
}

pub fn thread_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Usage(format!("cannot start {threads} threads: {e}")))
}

/// Row ranges of `chunk_rows` rows covering `rows`.
pub fn row_ranges(rows: u64, chunk_rows: u64) -> impl Iterator<Item = std::ops::Range<u64>> {
    (0..rows.div_ceil(chunk_rows)).map(move |i| i * chunk_rows..((i + 1) * chunk_rows).min(rows))
}

pub fn pack(source: &mut dyn Source, output: &Path, opts: &PackOptions, progress: &dyn Progress) -> Result<PackReport> {
    let layout = source.layout().clone();
    let wanted = bound::assign(&opts.errors, &layout.datasets)?;
    let pool = thread_pool(opts.threads)?;
    let mut datasets = layout.datasets.clone();
    let raw_total: u64 = datasets.iter().map(|d| d.raw_bytes()).sum();

    for (di, ds) in datasets.iter_mut().enumerate() {
        ds.chunk_rows = (opts.chunk_bytes / ds.row_bytes().max(1)).clamp(1, ds.rows().max(1));
        let floats: Vec<usize> = (0..ds.variables.len()).filter(|&v| ds.variables[v].dtype.is_float()).collect();
        let mut stats = vec![Stats::default(); ds.variables.len()];
        if !floats.is_empty() && ds.row_elems() > 0 {
            progress.start(&format!("scanning {}", ds.name()), ds.raw_bytes());
            for rows in row_ranges(ds.rows(), ds.chunk_rows) {
                let n = rows.end - rows.start;
                let data = source.read_rows(di, rows)?;
                for &v in &floats {
                    stats[v].update(&floats_to_f64(ds.variables[v].dtype, &data[v]));
                }
                progress.advance(n * ds.row_bytes());
            }
            progress.finish();
        }
        for (v, var) in ds.variables.iter_mut().enumerate() {
            var.error = bound::resolve(wanted[di][v], var.dtype.is_float(), &stats[v]);
            if var.dtype.is_float() {
                var.stats = Some(stats[v].clone());
            }
        }
    }

    let header = Header {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        producer: Producer::this(),
        source: crate::header::SourceInfo { kind: layout.kind, name: layout.name.clone() },
        groups: layout.groups.clone(),
        datasets: datasets.clone(),
        codec: CodecInfo {
            pipeline: crate::codec::PIPELINE
                .iter()
                .map(|&s| StageInfo { stage: s.into(), level: (s == "zstd").then_some(opts.level) })
                .collect(),
        },
        model: None,
        skipped: layout.skipped.clone(),
    };
    let codec = ChunkCodec { level: opts.level };
    let mut writer = ArchiveWriter::create(output, &header)?;
    let mut reports: Vec<VariableReport> = datasets
        .iter()
        .flat_map(|d| {
            d.variables.iter().map(|v| VariableReport {
                name: v.name.clone(),
                dtype: v.dtype.name().into(),
                bound: v.error.describe(),
                tolerance: v.error.tolerance(),
                raw_bytes: d.rows() * d.row_elems() * v.dtype.size() as u64,
                packed_bytes: 0,
                max_error: 0.0,
                outliers: 0,
            })
        })
        .collect();
    let batch = pool.current_num_threads().max(1) * 2;
    let mut chunks = 0u64;
    let mut first_var = 0;
    progress.start("packing", raw_total);
    for (di, ds) in datasets.iter().enumerate() {
        let vars: Vec<VarCoding> =
            ds.variables.iter().map(|v| VarCoding { dtype: v.dtype, tolerance: v.error.tolerance() }).collect();
        let ranges: Vec<_> = if ds.row_elems() == 0 { Vec::new() } else { row_ranges(ds.rows(), ds.chunk_rows).collect() };
        for group in ranges.chunks(batch) {
            let mut work = Vec::with_capacity(group.len());
            for rows in group {
                work.push((rows.clone(), source.read_rows(di, rows.clone())?));
            }
            let encoded: Vec<_> = pool.install(|| {
                work.par_iter()
                    .map(|(rows, data)| {
                        let place = ChunkPlace { dataset: di as u32, row_start: rows.start, rows: rows.end - rows.start };
                        (place, codec.encode(place, &vars, data))
                    })
                    .collect()
            });
            for (place, enc) in encoded {
                writer.write_chunk(place, &enc.bytes)?;
                for (r, s) in reports[first_var..].iter_mut().zip(&enc.vars) {
                    r.packed_bytes += s.bytes;
                    r.max_error = r.max_error.max(s.max_error);
                    r.outliers += s.outliers;
                }
                chunks += 1;
                progress.advance(place.rows * ds.row_bytes());
            }
        }
        first_var += ds.variables.len();
    }
    let archive_bytes = writer.finish()?;
    progress.finish();
    Ok(PackReport { raw_bytes: raw_total, archive_bytes, chunks, variables: reports, skipped: layout.skipped })
}
