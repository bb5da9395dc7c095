//! `pack`: source -> codec -> container. Two passes over the source: one for each float
//! variable's range (what `rel` bounds are relative to, recorded in the header before any chunk),
//! one to encode. Chunks are read in order, encoded in parallel, written in order, a batch at a
//! time, so memory is bounded by the batch, not the file.

use std::path::Path;


use crate::bound::{self, BoundMode, ErrorSpec};
use crate::codec::errstats::{ErrStats, ErrSummary};
use crate::codec::model_stage::{LatentCoding, ModelSpec};
use crate::codec::{ChunkCodec, ChunkPlace, VarCoding};
use crate::container::{ArchiveWriter, Target};
use crate::error::{Error, Result};
use crate::header::{CodecInfo, DatasetKind, DatasetModel, Header, Producer, StageInfo, Stats, FORMAT_NAME, FORMAT_VERSION};
use crate::model::ModelRef;
use crate::io::Source;
use crate::progress::Progress;

#[derive(Clone, Debug)]
pub struct PackOptions {
    pub errors: Vec<ErrorSpec>,
    /// Target bytes of raw data per chunk (all variables of a row range together).
    pub chunk_bytes: u64,
    pub level: i32,
    pub threads: usize,
    /// Refuse a source with anything the archive cannot keep (`--strict`), rather than pack
    /// the rest and name what was left out (the header's `skipped`, and a warning).
    pub strict: bool,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions { errors: Vec::new(), chunk_bytes: DEFAULT_CHUNK_BYTES, level: DEFAULT_LEVEL, threads: 0, strict: false }
    }
}

pub const DEFAULT_CHUNK_BYTES: u64 = 4 << 20;
pub const DEFAULT_LEVEL: i32 = 9;
/// The levels `pack` takes (zstd's; `--level`).
pub const LEVELS: std::ops::RangeInclusive<i32> = 1..=22;

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
    /// The Baler paper's Table 2 numbers, for lossy variables.
    pub errors: Option<ErrSummary>,
    /// Chunks whose block of this variable was coded against the model's prediction.
    pub model_chunks: u64,
    /// Elements its missing-value rule marks missing (fill values; NaN not counted), kept
    /// exactly and outside its range and statistics; and the rule, for people.
    pub missing: u64,
    pub missing_rule: Option<String>,
}

/// A model the archive's datasets are coded with.
pub struct PackModel<'a> {
    pub reference: ModelRef,
    /// The decoder's bytes when they go inside the archive (`--embed-model`).
    pub embed: Option<&'a [u8]>,
    pub spec: ModelSpec<'a>,
    /// What a reader needs beside the archive to decode it: decoder plus manifest bytes.
    pub external_bytes: u64,
}

/// Which model a dataset uses and how.
#[derive(Clone, Debug)]
pub struct DatasetUse {
    pub model: usize,
    pub features: Vec<[u64; 2]>,
    pub latent: LatentCoding,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct PackReport {
    pub raw_bytes: u64,
    pub archive_bytes: u64,
    /// Bytes of the models' decoders (and manifests) that stay outside the archive.
    pub decoder_bytes: u64,
    /// Bytes of decoders inside the archive (`--embed-model`): raw / (archive - these) is the
    /// coded data's ratio alone.
    pub embedded_bytes: u64,
    /// raw / archive, and raw / (archive + decoder): the honest one when a model is not shared.
    pub ratio: f64,
    pub ratio_with_decoder: f64,
    /// Bytes of latent blocks inside the archive.
    pub latent_bytes: u64,
    pub models: Vec<ModelRef>,
    /// Per model, the chunks that carry its latent: a model with none is not needed to unpack.
    pub model_chunks: Vec<u64>,
    pub chunks: u64,
    pub variables: Vec<VariableReport>,
    pub skipped: Vec<crate::header::Skipped>,
    /// For datasets coded with a BCAE-2D model: how well the model alone reconstructs them.
    pub sparse_scores: Vec<SparseReport>,
}

/// The BCAE-2D paper's view of one dataset: the model's own reconstruction (what `--error none`
/// stores) against the input, on log2(x + 1).
#[derive(Clone, Debug, serde::Serialize)]
pub struct SparseReport {
    pub dataset: String,
    pub mae: f64,
    pub psnr_db: f64,
    pub precision: f64,
    pub recall: f64,
    /// Input values over code values, both counted as 16-bit (the paper's ratio).
    pub paper_ratio: f64,
    /// Bytes of the entropy-coded code (latent blocks) and of the raw input.
    pub code_bytes: u64,
    pub raw_bytes: u64,
    pub score: crate::codec::model_stage::SparseScore,
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

pub fn pack(
    source: &mut dyn Source,
    output: &Path,
    opts: &PackOptions,
    models: &[PackModel],
    uses: &[Option<DatasetUse>],
    progress: &dyn Progress,
) -> Result<PackReport> {
    pack_to(source, Target::File(output), opts, models, uses, progress).map(|(r, _)| r)
}

/// `pack` into a file or into memory; the archive's bytes come back when written to memory.
pub fn pack_to(
    source: &mut dyn Source,
    output: Target<'_>,
    opts: &PackOptions,
    models: &[PackModel],
    uses: &[Option<DatasetUse>],
    progress: &dyn Progress,
) -> Result<(PackReport, Option<Vec<u8>>)> {
    if !LEVELS.contains(&opts.level) {
        return Err(Error::Usage(format!("level {}: a level from {} to {}", opts.level, LEVELS.start(), LEVELS.end())));
    }
    let mut layout = source.layout().clone();
    // Sources opened through io::view have this done already; it is idempotent.
    let name = layout.name.clone();
    crate::io::view::declare_missing(&mut layout, Path::new(&name))?;
    let lost: Vec<_> = layout.skipped.iter().filter(|s| !s.is_dimension_link()).collect();
    if let (true, Some(s)) = (opts.strict, lost.first()) {
        let more = if lost.len() > 1 { format!(" (and {} more)", lost.len() - 1) } else { String::new() };
        return Err(Error::input(Path::new(&name), format!("{}: {}{more}: refused by --strict (without it, skipped with a warning)", s.path, s.reason)));
    }
    let carried = source.carried()?;
    let wanted = bound::assign(&opts.errors, &layout.datasets)?;
    let pool = thread_pool(opts.threads)?;
    // Chunks read and not yet written back (in work, or done and waiting for one before them):
    // two a thread, so a worker that finishes one has the next at hand.
    let window = pool.current_num_threads().max(1) * 2;
    let mut datasets = layout.datasets.clone();
    let raw_total: u64 = datasets.iter().map(|d| d.raw_bytes()).sum();

    for (di, ds) in datasets.iter_mut().enumerate() {
        ds.chunk_rows = (opts.chunk_bytes / ds.row_bytes().max(1)).clamp(1, ds.rows().max(1));
        let used = uses.get(di).and_then(|u| u.as_ref());
        let modelled = |vi: usize| used.is_some_and(|u| u.features.iter().any(|f| f[0] as usize == vi));
        // Floats, and integers a model covers (BCAE-2D's ADC values), are coded as numbers.
        let numeric: Vec<usize> =
            (0..ds.variables.len()).filter(|&v| ds.variables[v].dtype.is_float() || modelled(v)).collect();
        let rules: Vec<_> = ds.variables.iter().map(|v| v.missing_rule()).collect();
        let mut stats = vec![Stats::default(); ds.variables.len()];
        if !numeric.is_empty() && ds.row_elems() > 0 {
            progress.start(&format!("scanning {}", ds.name()), ds.raw_bytes());
            // Each chunk's range is taken on the pool, merged here in order: the same numbers
            // as one pass over the variable (`Stats::merge`).
            let ranges: Vec<_> = row_ranges(ds.rows(), ds.chunk_rows).collect();
            let (vars, row_bytes) = (&ds.variables, ds.row_bytes());
            crate::ordered::in_order(
                &pool,
                ranges.len(),
                window,
                |i| source.read_rows(di, ranges[i].clone()),
                |_, data| {
                    let part = |v: usize| {
                        let mut s = Stats::default();
                        s.update_bytes(vars[v].dtype, &data[v], rules[v].as_ref());
                        s
                    };
                    numeric.iter().map(|&v| part(v)).collect::<Vec<_>>()
                },
                |i, parts| {
                    numeric.iter().zip(&parts).for_each(|(&v, part)| stats[v].merge(part));
                    progress.advance((ranges[i].end - ranges[i].start) * row_bytes);
                    Ok(())
                },
            )?;
            progress.finish();
        }
        for (v, var) in ds.variables.iter_mut().enumerate() {
            var.error = bound::resolve(wanted[di][v], var.dtype, modelled(v), &stats[v]);
            if numeric.contains(&v) {
                var.stats = Some(stats[v].clone());
            }
        }
        if let Some(u) = used {
            ds.model = Some(DatasetModel {
                model: u.model as u32,
                features: u.features.clone(),
                latent: u.latent.to_string(),
            });
        }
        for (vi, var) in ds.variables.iter().enumerate() {
            if var.error.mode == BoundMode::None && !modelled(vi) {
                return Err(Error::Usage(format!(
                    "variable {} of {} has bound 'none' (the model's output) but no model covers it",
                    var.name,
                    ds.name()
                )));
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
                .filter(|&&s| s != "model" || !models.is_empty())
                .map(|&s| StageInfo { stage: s.into(), level: (s == "zstd").then_some(opts.level) })
                .collect(),
        },
        models: models.iter().map(|m| m.reference.clone()).collect(),
        model: None,
        skipped: layout.skipped.clone(),
        root_objects: carried.iter().map(|(o, _)| o.clone()).collect(),
    };
    // Chunks are coded in parallel (rayon, --threads); threads a batch of them leaves over go to
    // each chunk (`ChunkCodec::sharing`).
    let codec = ChunkCodec { level: opts.level, threads: 1 };
    let mut writer = ArchiveWriter::to(output, &header)?;
    for (m, pm) in models.iter().enumerate() {
        if let Some(bytes) = pm.embed {
            writer.write_attachment(m as u32, bytes)?;
        }
    }
    for (i, (o, bytes)) in carried.iter().enumerate() {
        // A directory is made anew from its header entry: it has no bytes to keep.
        if o.kind != crate::header::RootObjectKind::Directory {
            writer.write_root_object(i as u32, bytes)?;
        }
    }
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
                errors: None,
                model_chunks: 0,
                missing: v.stats.as_ref().map_or(0, |s| s.missing),
                missing_rule: v.missing.as_ref().map(|m| {
                    let rule = m.rule(v.dtype).map(|r| r.describe()).unwrap_or_default();
                    format!("{rule} (from {})", m.from.join(", "))
                }),
            })
        })
        .collect();
    let mut chunks = 0u64;
    let mut latent_bytes = 0u64;
    let mut model_chunks = vec![0u64; models.len()];
    let mut sparse_scores = Vec::new();
    let mut first_var = 0;
    let mut errs: Vec<Option<ErrStats>> = vec![None; reports.len()];
    progress.start("packing", raw_total);
    for (di, ds) in datasets.iter().enumerate() {
        let vars = codings(ds);
        let plan = uses.get(di).and_then(|u| u.as_ref()).map(|u| models[u.model].spec.plan(&u.features, u.latent));
        let ranges: Vec<_> = if ds.row_elems() == 0 { Vec::new() } else { row_ranges(ds.rows(), ds.chunk_rows).collect() };
        // A field's walk is searched on its first, middle and last whole chunks, and where the
        // three agree, taken by every chunk (`ChunkCodec::plan_walks`); the threads the chunks
        // will share run each search.
        let whole = ranges.iter().filter(|r| r.end - r.start == ds.chunk_rows).count();
        let vars = match crate::codec::plan_samples(whole, &vars) {
            Some(ks) => {
                let samples = ks.into_iter().map(|k| source.read_rows(di, ranges[k].clone()));
                ChunkCodec { threads: pool.current_num_threads(), ..codec }.plan_walks(&vars, samples)?
            }
            None => vars,
        };
        let mut score: Option<crate::codec::model_stage::SparseScore> = None;
        let mut code_bytes = 0u64;
        let codec = codec.sharing(pool.current_num_threads(), ranges.len());
        let place = |i: usize| {
            let rows = &ranges[i];
            ChunkPlace { dataset: di as u32, row_start: rows.start, rows: rows.end - rows.start }
        };
        crate::ordered::in_order(
            &pool,
            ranges.len(),
            window,
            |i| source.read_rows(di, ranges[i].clone()),
            |i, data| codec.encode(place(i), &vars, &data, ds.row_elems(), plan.as_ref()),
            |i, result| {
                let place = place(i);
                let enc = result.map_err(|what| {
                    let end = place.row_start + place.rows;
                    Error::Usage(format!("{}: rows {}..{end}: model stage failed: {what}", ds.name(), place.row_start))
                })?;
                writer.write_chunk(place, &enc.bytes)?;
                latent_bytes += enc.latent_bytes;
                code_bytes += enc.latent_bytes;
                if let (true, Some(u)) = (enc.latent_bytes > 0, uses.get(di).and_then(|u| u.as_ref())) {
                    model_chunks[u.model] += 1;
                }
                if let Some(s) = &enc.score {
                    score.get_or_insert_with(Default::default).merge(s);
                }
                for ((r, e), s) in reports[first_var..].iter_mut().zip(errs[first_var..].iter_mut()).zip(&enc.vars) {
                    r.packed_bytes += s.bytes;
                    r.outliers += s.outliers;
                    r.model_chunks += s.used_model as u64;
                    if let Some(st) = &s.errors {
                        e.get_or_insert_with(ErrStats::default).merge(st);
                    }
                }
                chunks += 1;
                progress.advance(place.rows * ds.row_bytes());
                Ok(())
            },
        )?;
        first_var += ds.variables.len();
        if let (Some(s), Some(u)) = (score, uses.get(di).and_then(|u| u.as_ref())) {
            let m = &models[u.model];
            let input: usize = m.spec.widths.iter().sum();
            sparse_scores.push(SparseReport {
                dataset: ds.name().to_string(),
                mae: s.mae(),
                psnr_db: s.psnr(),
                precision: s.precision(),
                recall: s.recall(),
                paper_ratio: input as f64 / m.spec.model.latent().max(1) as f64,
                code_bytes,
                raw_bytes: ds.raw_bytes(),
                score: s,
            });
        }
    }
    let (archive_bytes, bytes) = writer.finish_bytes()?;
    progress.finish();
    for (r, e) in reports.iter_mut().zip(&errs) {
        if let Some(e) = e {
            r.errors = Some(e.summary());
            r.max_error = e.max_abs;
        }
    }
    // Only a decoder some chunk needs counts against the ratio.
    let decoder_bytes: u64 =
        models.iter().zip(&model_chunks).filter(|(m, &n)| m.embed.is_none() && n > 0).map(|(m, _)| m.external_bytes).sum();
    let ratio = |d: u64| if d > 0 { raw_total as f64 / d as f64 } else { 0.0 };
    let report = PackReport {
        raw_bytes: raw_total,
        archive_bytes,
        decoder_bytes,
        embedded_bytes: models.iter().filter_map(|m| m.embed).map(|b| b.len() as u64).sum(),
        ratio: ratio(archive_bytes),
        ratio_with_decoder: ratio(archive_bytes + decoder_bytes),
        latent_bytes,
        models: models.iter().map(|m| m.reference.clone()).collect(),
        model_chunks,
        chunks,
        variables: reports,
        skipped: layout.skipped,
        sparse_scores,
    };
    Ok((report, bytes))
}

/// How the codec codes each variable of a dataset, from its header entry.
pub fn codings(ds: &crate::header::DatasetInfo) -> Vec<VarCoding> {
    let modelled = |vi: usize| ds.model.as_ref().is_some_and(|m| m.features.iter().any(|f| f[0] as usize == vi));
    ds.variables
        .iter()
        .enumerate()
        .map(|(vi, v)| {
            let c = VarCoding::for_bound(v.dtype, v.error.tolerance(), v.error.mode == BoundMode::None, modelled(vi))
                .with_missing(v.missing_rule())
                .step_known();
            if ds.kind == DatasetKind::Array { c.on_rows(&ds.shape[1.min(ds.shape.len())..]) } else { c }
        })
        .collect()
}

