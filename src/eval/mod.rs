//! `eval`: what compression did to the data, as a physicist would check it before trusting an
//! archive. Decodes the archive chunk by chunk beside the original (bounded memory: one batch of
//! chunks and fixed-size histograms), then writes `summary.json`, PNG plots and a self-contained
//! `report.html`.
//!
//! Per variable it reports Baler's Table 2 (residual = reco - orig and response =
//! (reco - orig) / orig, their mean and RMS), the absolute error, and whether the archive's
//! promise held on every element.

mod html;
mod peers;
mod picture;
mod plot;
pub mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::bound::BoundMode;
use crate::container::ArchiveReader;
use crate::error::{Error, Result};
use crate::header::{DatasetKind, Header};
use crate::io::{self, RootSelect};
use crate::progress::Progress;
use picture::{Picture, PictureKind};
use stats::{Promise, VarAccum, VarSummary};

pub use peers::Comparison;

#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub threads: usize,
    /// Histogram bins.
    pub bins: usize,
    /// Which trees and branches of a ROOT original to read (as given to `pack`).
    pub root: RootSelect,
    #[cfg(feature = "runtime")]
    pub runtime: crate::runtime::RuntimeOptions,
    /// Also run the peer compressors found by this Python (h5py + hdf5plugin) at the same bounds.
    pub compare_with: Option<PathBuf>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            threads: 0,
            bins: 100,
            root: RootSelect::default(),
            #[cfg(feature = "runtime")]
            runtime: Default::default(),
            compare_with: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub original: String,
    pub archive: String,
    pub balerfile_version: String,
    pub raw_bytes: u64,
    pub archive_bytes: u64,
    /// Model decoder and manifest bytes a reader needs beside the archive (0: none or embedded).
    pub decoder_bytes: u64,
    pub ratio: f64,
    pub ratio_with_decoder: f64,
    /// No variable broke its promise.
    pub bound_held: bool,
    pub datasets: Vec<DatasetSummary>,
    pub compare: Option<Comparison>,
}

#[derive(Debug, Serialize)]
pub struct DatasetSummary {
    pub path: String,
    pub shape: Vec<u64>,
    pub kind: &'static str,
    pub model: Option<ModelSummary>,
    pub plots: BTreeMap<String, String>,
    pub variables: Vec<VariableSummary>,
}

#[derive(Debug, Serialize)]
pub struct ModelSummary {
    pub id: String,
    pub kind: String,
}

#[derive(Debug, Serialize)]
pub struct VariableSummary {
    pub name: String,
    pub dtype: String,
    pub bound: String,
    pub mode: BoundMode,
    pub tolerance: Option<f64>,
    #[serde(flatten)]
    pub stats: VarSummary,
    pub plots: BTreeMap<String, String>,
}

/// Evaluates ARCHIVE against ORIGINAL and writes the report into `out_dir` (created if needed).
pub fn eval(original: &Path, archive: &Path, out_dir: &Path, opts: &EvalOptions, progress: &dyn Progress) -> Result<Summary> {
    let reader = ArchiveReader::open(archive)?;
    let header = reader.header();
    let source = io::open_source_with(original, &[], &opts.root, false)?;
    // 2-D arrays packed as tables are compared column by column, as they were bounded.
    let mut source = io::table::apply_as_in(source, &header.datasets);
    let matched = match_datasets(original, archive, header, source.layout())?;
    if out_dir.exists() && !out_dir.is_dir() {
        return Err(Error::input(out_dir, "exists and is not a folder"));
    }

    let all: Vec<usize> = (0..header.datasets.len()).collect();
    let codec = crate::unpack::codec_of(&reader)?;
    let codings = crate::unpack::var_codings(&reader);
    let uopts = crate::unpack::UnpackOptions {
        threads: opts.threads,
        #[cfg(feature = "runtime")]
        runtime: opts.runtime,
        ..Default::default()
    };
    let models = crate::unpack::ArchiveModels::load(&reader, &all, &uopts)?;
    let plans = all.iter().map(|&d| models.plan(header, d)).collect::<Result<Vec<_>>>()?;

    let mut accs: Vec<Vec<VarAccum>> = header
        .datasets
        .iter()
        .map(|ds| ds.variables.iter().map(|v| accum_for(v, opts.bins)).collect())
        .collect();
    let mut pictures: Vec<Option<Picture>> = header.datasets.iter().map(|ds| Picture::wanted(ds, header)).collect();

    let mut chunks: Vec<usize> =
        (0..reader.index().len()).filter(|&i| (reader.index()[i].dataset as usize) < header.datasets.len()).collect();
    chunks.sort_by_key(|&i| (reader.index()[i].dataset, reader.index()[i].row_start));
    let total: u64 = header.datasets.iter().map(|d| d.raw_bytes()).sum();
    progress.start("evaluating", total);
    let pool = crate::pack::thread_pool(opts.threads)?;
    let batch = pool.current_num_threads().max(1) * 2;
    for group in chunks.chunks(batch) {
        let decoded: Vec<Result<Vec<Vec<u8>>>> = pool.install(|| {
            group.par_iter().map(|&i| crate::unpack::decode_chunk(&reader, &codec, &codings, &plans, i)).collect()
        });
        for (&i, reco) in group.iter().zip(decoded) {
            let reco = reco?;
            let e = reader.index()[i];
            let d = e.dataset as usize;
            let (sd, var_map) = &matched[d];
            let orig = source.read_rows(*sd, e.row_start..e.row_start + e.rows)?;
            let orig: Vec<&Vec<u8>> = var_map.iter().map(|&v| &orig[v]).collect();
            if reco.len() != orig.len() || reco.iter().zip(&orig).any(|(r, o)| r.len() != o.len()) {
                return Err(Error::corrupt(archive, format!("chunk {i} of {} decodes to the wrong size", header.datasets[d].path)));
            }
            pool.install(|| accs[d].par_iter_mut().enumerate().for_each(|(v, a)| a.add(orig[v], &reco[v])));
            if let Some(p) = &mut pictures[d] {
                p.take(&header.datasets[d], e.row_start, orig[0], &reco[0]);
            }
            progress.advance(e.rows * header.datasets[d].row_bytes());
        }
    }
    progress.finish();

    let results: Vec<Vec<VarSummary>> = accs.into_iter().map(|a| a.into_iter().map(VarAccum::finish).collect()).collect();
    let compare = match &opts.compare_with {
        Some(python) => Some(peers::compare(python, source.as_mut(), &matched, header, out_dir, progress)?),
        None => None,
    };
    drop(source);
    write_report(original, archive, &reader, results, pictures, compare, out_dir, &models.latent_chunks)
}

/// For each archive dataset: the original's dataset and, per archive variable, the original's
/// variable. Anything that does not line up is an error naming both files.
type Matched = Vec<(usize, Vec<usize>)>;

fn match_datasets(original: &Path, archive: &Path, header: &Header, layout: &io::SourceLayout) -> Result<Matched> {
    let norm = |p: &str| p.trim_start_matches('/').to_string();
    let mut out = Vec::new();
    for ds in &header.datasets {
        let Some(sd) = layout.datasets.iter().position(|s| norm(&s.path) == norm(&ds.path)) else {
            let have: Vec<&str> = layout.datasets.iter().map(|s| s.path.as_str()).take(8).collect();
            return Err(Error::input(
                original,
                format!(
                    "has no dataset {} (archive {} holds it; this file has: {}): is this the file that was packed?",
                    ds.path,
                    archive.display(),
                    if have.is_empty() { "none".to_string() } else { have.join(", ") }
                ),
            ));
        };
        let s = &layout.datasets[sd];
        if s.shape != ds.shape {
            return Err(Error::input(
                original,
                format!("dataset {} has shape {:?}, the archive {} has {:?}", ds.path, s.shape, archive.display(), ds.shape),
            ));
        }
        let mut vars = Vec::new();
        for v in &ds.variables {
            match s.variables.iter().position(|sv| sv.name == v.name && sv.dtype == v.dtype) {
                Some(i) => vars.push(i),
                None => {
                    return Err(Error::input(
                        original,
                        format!("dataset {} has no {} variable {} (archive {})", ds.path, v.dtype.name(), v.name, archive.display()),
                    ))
                }
            }
        }
        out.push((sd, vars));
    }
    Ok(out)
}

fn accum_for(v: &crate::header::VariableInfo, bins: usize) -> VarAccum {
    let promise = match (v.error.mode, v.error.tolerance()) {
        (BoundMode::None, _) => Promise::Nothing,
        (_, Some(t)) => Promise::Within(t),
        _ => Promise::Exact,
    };
    let range = v.stats.as_ref().and_then(|s| Some((s.min?, s.max?)));
    VarAccum::new(v.dtype, promise, range, bins).with_missing(v.missing_rule())
}

/// A file name part from a dataset or variable name.
fn slug(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    s.trim_matches('_').chars().take(60).collect()
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let out = crate::atomic::AtomicOutput::new(path)?;
    std::fs::write(out.tmp_path(), bytes).map_err(|e| Error::io(path, e))?;
    out.commit()
}

#[allow(clippy::too_many_arguments)]
fn write_report(
    original: &Path,
    archive: &Path,
    reader: &ArchiveReader,
    results: Vec<Vec<VarSummary>>,
    pictures: Vec<Option<Picture>>,
    compare: Option<Comparison>,
    out_dir: &Path,
    latent_chunks: &[u64],
) -> Result<Summary> {
    let header = reader.header();
    let plots_dir = out_dir.join("plots");
    std::fs::create_dir_all(&plots_dir).map_err(|e| Error::io(&plots_dir, e))?;
    // A report that fails half-way must not leave the previous run's report looking current.
    for stale in ["report.html", "summary.json"] {
        let p = out_dir.join(stale);
        if p.is_file() {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    let mut images: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut save = |name: String, png: std::result::Result<Vec<u8>, String>| -> Result<String> {
        let rel = format!("plots/{name}");
        let png = png.map_err(|what| Error::input(out_dir.join(&rel), what))?;
        write_file(&out_dir.join(&rel), &png)?;
        images.insert(rel.clone(), png);
        Ok(rel)
    };
    let mut datasets = Vec::new();
    for (d, (ds, res)) in header.datasets.iter().zip(results).enumerate() {
        let mut variables = Vec::new();
        for (v, (var, s)) in ds.variables.iter().zip(res).enumerate() {
            // A rel bound on a constant variable resolves to abs=0 (coded exactly): report the 0.
            let tol = match var.error.mode {
                BoundMode::Abs | BoundMode::Rel => var.error.abs,
                _ => None,
            };
            let base = format!("{d:02}_{v:03}_{}_{}", slug(ds.name()), slug(&var.name));
            let title = if ds.variables.len() == 1 { ds.path.clone() } else { format!("{} : {}", ds.path, var.name) };
            let mut plots = BTreeMap::new();
            let h = &s.histograms;
            let dist = plot::histograms(
                &format!("{title}: distributions"),
                &var.name,
                &[
                    plot::Series { label: "original", hist: &h.original, color: plot::BLUE_ },
                    plot::Series { label: "reconstructed", hist: &h.reconstructed, color: plot::ORANGE },
                ],
                &[],
            );
            plots.insert("distributions".to_string(), save(format!("{base}_distributions.png"), dist)?);
            let bound_at = tol.filter(|&t| t > 0.0).map(|t| [-t, t]);
            let markers: Vec<plot::Marker> = bound_at
                .as_ref()
                .map(|at| vec![plot::Marker { label: "error bound", at, color: plot::RED_ }])
                .unwrap_or_default();
            let res_png = plot::histograms(
                &format!("{title}: residual"),
                "reconstructed - original",
                &[plot::Series { label: "residual", hist: &h.residual, color: plot::GREEN_ }],
                &markers,
            );
            plots.insert("residual".to_string(), save(format!("{base}_residual.png"), res_png)?);
            let resp_png = plot::histograms(
                &format!("{title}: response"),
                "(reconstructed - original) / original",
                &[plot::Series { label: "response", hist: &h.response, color: plot::BLUE_ }],
                &[],
            );
            plots.insert("response".to_string(), save(format!("{base}_response.png"), resp_png)?);
            variables.push(VariableSummary {
                name: var.name.clone(),
                dtype: var.dtype.name().to_string(),
                bound: var.error.describe(),
                mode: var.error.mode,
                tolerance: tol,
                stats: s,
                plots,
            });
        }
        let mut plots = BTreeMap::new();
        if let Some(p) = &pictures[d] {
            if let Some(png) = p.draw(ds, ds.variables[0].error.tolerance()) {
                let key = match p.what {
                    PictureKind::Slice => "slice",
                    PictureKind::Wedge { .. } => "wedge",
                };
                plots.insert(key.to_string(), save(format!("{d:02}_{}_{key}.png", slug(ds.name())), png)?);
            }
        }
        let model = ds.model.as_ref().and_then(|m| header.models.get(m.model as usize)).map(|m| ModelSummary {
            id: m.id.clone(),
            kind: m.kind.clone(),
        });
        datasets.push(DatasetSummary {
            path: ds.path.clone(),
            shape: ds.shape.clone(),
            kind: if ds.kind == DatasetKind::Array { "array" } else { "table" },
            model,
            plots,
            variables,
        });
    }
    let raw_bytes: u64 = header.datasets.iter().map(|d| d.raw_bytes()).sum();
    // Only a decoder some chunk needs counts against the ratio.
    let decoder_bytes: u64 = header
        .models
        .iter()
        .zip(latent_chunks)
        .filter(|(m, &n)| m.embedded.is_none() && n > 0)
        .map(|(m, _)| m.decoder_bytes)
        .sum();
    let ratio = |b: u64| if b > 0 { raw_bytes as f64 / b as f64 } else { 0.0 };
    let summary = Summary {
        original: original.display().to_string(),
        archive: archive.display().to_string(),
        balerfile_version: env!("CARGO_PKG_VERSION").to_string(),
        raw_bytes,
        archive_bytes: reader.size(),
        decoder_bytes,
        ratio: ratio(reader.size()),
        ratio_with_decoder: ratio(reader.size() + decoder_bytes),
        bound_held: datasets.iter().flat_map(|d| &d.variables).all(|v| v.stats.bound_held != Some(false)),
        datasets,
        compare,
    };
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| Error::Usage(format!("summary.json: {e}")))?;
    write_file(&out_dir.join("summary.json"), &json)?;
    write_file(&out_dir.join("report.html"), html::render(&summary, &images).as_bytes())?;
    Ok(summary)
}
