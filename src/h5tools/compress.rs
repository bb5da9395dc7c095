//! `balerfile h5 compress IN OUT`: a copy of IN whose float arrays are stored through the
//! balerfile filter, everything else kept as it was (h5repack's job, with our filter set up
//! from the data: bounds resolved against each dataset's ranges, models trained or named).

use std::path::Path;

use crate::bound::{self, Bound, ErrorSpec};
use crate::dtype::ByteOrder;
use crate::error::{Error, Result};
use crate::h5filter::{FilterBound, FilterParams, Layout, FILTER_ID};
use crate::header::{DatasetInfo, DatasetKind};
use crate::io::hdf5::{Hdf5Sink, Hdf5Source, Storage};
use crate::io::{Sink, Source};
use crate::model::prepare::{prepare, ModelChoice, ModelOptions};
use crate::model::store::Store;
use crate::progress::Progress;

#[derive(Clone, Debug)]
pub struct CompressOptions {
    pub datasets: Vec<String>,
    pub errors: Vec<ErrorSpec>,
    pub model: ModelOptions,
    /// Raw bytes per chunk (whole rows).
    pub chunk_bytes: u64,
    pub level: i32,
    /// Force every filtered dataset to this layout (default: `crate::layout::default_layout`,
    /// the rule `pack` follows).
    pub layout: Option<Layout>,
}

impl Default for CompressOptions {
    fn default() -> Self {
        CompressOptions {
            datasets: Vec::new(),
            errors: Vec::new(),
            model: ModelOptions::default(),
            chunk_bytes: crate::pack::DEFAULT_CHUNK_BYTES,
            level: crate::h5filter::params::DEFAULT_LEVEL,
            layout: None,
        }
    }
}


#[derive(Clone, Debug, serde::Serialize)]
pub struct Compressed {
    pub path: String,
    pub shape: Vec<u64>,
    pub chunk: Vec<u64>,
    pub filter: String,
    pub model: Option<String>,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    /// The model's decoder and manifest, which a reader needs beside the file.
    pub decoder_bytes: u64,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CompressReport {
    pub datasets: Vec<Compressed>,
    /// Objects copied as they were.
    pub copied: Vec<String>,
    pub notes: Vec<String>,
    pub trained: Vec<String>,
}

struct Target {
    /// Index into the source's datasets.
    index: usize,
    info: DatasetInfo,
    layout: Layout,
    chunk_rows: u64,
    params: FilterParams,
    /// The model's decoder and manifest bytes (0 without a model), for the honest ratio.
    decoder_bytes: u64,
}

fn why_not_filtered(ds: &DatasetInfo) -> Option<String> {
    if ds.kind != DatasetKind::Array {
        return Some("a compound table (the filter codes float arrays; `balerfile pack` takes compound tables)".into());
    }
    let v = &ds.variables[0];
    if !v.dtype.is_float() {
        return Some(format!("{} values (the filter codes f32 and f64)", v.dtype));
    }
    if ds.shape.is_empty() || ds.rows() == 0 || ds.row_elems() == 0 {
        return Some("empty or scalar".into());
    }
    // netCDF writes no values to a dimension without a variable (`bnds`, `nv`); filtered, such
    // a scale grew 2-19 times.
    if ds.attributes.get("NAME").and_then(|a| a.value.as_str()).is_some_and(|n| n.starts_with(crate::io::netcdf3::DIM_WITHOUT_VARIABLE)) {
        return Some("a netCDF dimension without a variable (it holds no values)".into());
    }
    if ds.raw_bytes() < SMALLEST {
        return Some(format!("{} bytes, fewer than the filter's chunk header and stream take", ds.raw_bytes()));
    }
    None
}

/// Datasets under this many bytes are copied as they are: the filter's chunk header and coded
/// stream alone come to about this much.
const SMALLEST: u64 = 256;

pub fn compress(input: &Path, output: &Path, opts: &CompressOptions, progress: &dyn Progress) -> Result<CompressReport> {
    super::register()?;
    crate::atomic::check_not_input(input, output)?;
    let mut source = Hdf5Source::open(input, &[], false)?;
    let mut layout = source.layout().clone();
    crate::io::view::declare_missing(&mut layout, input)?;
    for n in &opts.datasets {
        let want = format!("/{}", n.trim_start_matches('/'));
        if let Some(s) = layout.skipped.iter().find(|s| s.path == want) {
            return Err(Error::input(input, format!("dataset {want} cannot take the filter: {}", s.reason)));
        }
    }
    let chosen = crate::io::select(input, &layout.datasets, &opts.datasets)?;
    let bounds = bound::assign(&opts.errors, &layout.datasets)?;
    let mut report = CompressReport::default();
    let mut targets = Vec::new();
    for &d in &chosen {
        let ds = &layout.datasets[d];
        if let Some(why) = why_not_filtered(ds) {
            if !opts.datasets.is_empty() {
                return Err(Error::input(input, format!("dataset {} cannot take the filter: {why}", ds.path)));
            }
            report.notes.push(format!("{}: copied as is: {why}", ds.path));
            continue;
        }
        let table = match opts.layout {
            Some(l) => l == Layout::Table,
            None => crate::layout::default_layout(&ds.shape) == crate::layout::ArrayLayout::Table,
        };
        let layout = if table { Layout::Table } else { Layout::Field };
        let chunk_rows = (opts.chunk_bytes / ds.row_bytes().max(1)).clamp(1, ds.rows());
        let v = &ds.variables[0];
        let rule = v.missing_rule();
        let params = FilterParams {
            dtype: Some(v.dtype),
            big_endian: v.byte_order == ByteOrder::Be,
            layout,
            features: if table { ds.row_elems() as u32 } else { 0 },
            level: opts.level,
            latent: opts.model.latent,
            fill: rule.and_then(|r| r.fills().first().copied()),
            ..Default::default()
        };
        targets.push(Target { index: d, info: ds.clone(), layout, chunk_rows, params, decoder_bytes: 0 });
    }

    // The filter's cd_values carry one fill value (NaN is always missing); a valid range or
    // further fill values would be coded as values, within the bound but no longer equal to the
    // marker, so readers stopped masking them (a -999 beside a 1e20 fill came back -999.03
    // and a global mean moved by 24 K). The data says which marker it holds: that one is the
    // filter's fill; holding two, the dataset is coded losslessly. Either way it is said.
    let mut lossless = vec![false; targets.len()];
    for (t, lossless) in targets.iter_mut().zip(&mut lossless) {
        let Some(rule) = t.info.variables[0].missing_rule().filter(|r| r.fills().len() > 1 || r.valid_min.is_some() || r.valid_max.is_some()) else {
            continue;
        };
        let held = missing_values(&mut source, t, &rule, progress)?;
        let shown = |v: &[f64]| v.iter().map(|x| format!("{x:e}")).collect::<Vec<_>>().join(", ");
        match held[..] {
            [] | [_] => {
                let fill = held.first().or(rule.fills().first()).copied();
                t.params.fill = fill;
                report.notes.push(format!(
                    "{}: the filter keeps the fill value {} exactly (the only value the data holds that its attributes mark missing); other missing values ({}) written later are coded as values within the bound",
                    t.info.path,
                    fill.map_or("NaN".into(), |f| format!("{f:e}")),
                    rule.describe()
                ));
            }
            _ => {
                *lossless = true;
                report.notes.push(format!(
                    "{}: coded losslessly: it holds the missing values {} (its fill values or outside its valid range), and the filter keeps one fill value exactly",
                    t.info.path,
                    shown(&held)
                ));
            }
        }
    }

    // A table's rel bound is taken per column of each chunk by the filter (a chunk's range is
    // within the dataset's, so the bound holds against the dataset's too); a field's is
    // resolved here against the whole dataset's range, as `pack` does.
    for (t, lossless) in targets.iter_mut().zip(lossless) {
        t.params.bound = match bounds[t.index][0] {
            _ if lossless => FilterBound::Lossless,
            Bound::Lossless => FilterBound::Lossless,
            Bound::None => FilterBound::None,
            Bound::Abs(e) => FilterBound::Abs(e),
            Bound::Rel(e) if t.layout == Layout::Table => FilterBound::Rel(e),
            Bound::Rel(e) => match dataset_range(&mut source, t, progress)? {
                r if r > 0.0 => FilterBound::Abs(e * r),
                _ => FilterBound::Lossless,
            },
        };
    }

    choose_models(input, &mut targets, opts, &mut report, progress)?;
    for t in &targets {
        t.params.check().map_err(|e| Error::Usage(format!("{}: {e}", t.info.path)))?;
    }

    let storages: Vec<Storage> = targets
        .iter()
        .map(|t| Storage {
            chunk: std::iter::once(t.chunk_rows).chain(t.info.shape[1..].iter().copied()).collect(),
            filter: Some((FILTER_ID, t.params.to_cd_values())),
        })
        .collect();
    let mut sink = Hdf5Sink::create_with(output, &layout.groups, targets.iter().zip(&storages).map(|(t, s)| (t.index, &t.info, Some(s))))?;

    // What the filter does not touch is copied object by object, as it was.
    let src = hdf5::File::open(input).map_err(|e| Error::Hdf5 { path: input.into(), what: e.to_string() })?;
    let super::FileWalk { datasets: all, links } = super::walk_file(&src).map_err(|e| Error::Hdf5 { path: input.into(), what: e.to_string() })?;
    // Attributes of the datasets made afresh and of groups come from the source's layout, which
    // names those it could not read (object references, types it does not know): lost unless
    // said.
    for sk in &layout.skipped {
        let owner = sk.path.split(" attribute").next().unwrap_or_default();
        let remade = targets.iter().any(|t| t.info.path == owner) || layout.groups.iter().any(|g| g.path == owner);
        if sk.path.contains(" attribute") && remade && !sk.is_dimension_link() {
            report.notes.push(format!("{}: not kept: {}", sk.path, sk.reason));
        }
    }
    for p in &all {
        if !targets.iter().any(|t| &t.info.path == p) {
            if crate::io::hdf5::holds_references(&src, p) {
                report.notes.push(format!("{p}: object or region references, copied as they were: they point into {}, not into the output", input.display()));
            }
            for lost in sink.copy_object(&src, p)? {
                report.notes.push(format!("{}: not kept: {}", lost.path, lost.reason));
            }
            report.copied.push(p.clone());
        }
    }
    // Links as they were (a dataset reached by two names stays one dataset).
    for (path, link) in &links {
        sink.link(path, link)?;
    }
    let lost = sink.relink_dimensions(&src, &report.copied, &all)?;
    report.notes.extend(lost);

    let total: u64 = targets.iter().map(|t| t.info.raw_bytes()).sum();
    progress.start(&format!("compressing into {}", output.display()), total);
    for t in &targets {
        for rows in crate::pack::row_ranges(t.info.rows(), t.chunk_rows) {
            let n = rows.end - rows.start;
            let data = source.read_rows(t.index, rows.clone())?;
            sink.write_rows(t.index, rows, &data)?;
            progress.advance(n * t.info.row_bytes());
        }
    }
    progress.finish();
    Box::new(sink).finish()?;

    let out = hdf5::File::open(output).map_err(|e| Error::Hdf5 { path: output.into(), what: e.to_string() })?;
    for (t, storage) in targets.iter().zip(storages) {
        let stored = out.dataset(&t.info.path).map(|d| d.storage_size()).unwrap_or(0);
        report.datasets.push(Compressed {
            path: t.info.path.clone(),
            shape: t.info.shape.clone(),
            chunk: storage.chunk,
            filter: t.params.describe(),
            model: t.params.model_id(),
            raw_bytes: t.info.raw_bytes(),
            stored_bytes: stored,
            decoder_bytes: t.decoder_bytes,
        });
    }
    Ok(report)
}

/// Max minus min of a dataset's finite values that are not missing (0 when there are none).
fn dataset_range(source: &mut Hdf5Source, t: &Target, progress: &dyn Progress) -> Result<f64> {
    let mut stats = crate::header::Stats::default();
    let dtype = t.info.variables[0].dtype;
    // Fill values and values outside the valid range are not part of the range a rel bound
    // is relative to (the filter stores them exactly).
    let rule = t.info.variables[0].missing_rule();
    progress.start(&format!("scanning {}", t.info.path), t.info.raw_bytes());
    for rows in crate::pack::row_ranges(t.info.rows(), t.chunk_rows) {
        let n = rows.end - rows.start;
        stats.update_bytes(dtype, &source.read_rows(t.index, rows)?[0], rule.as_ref());
        progress.advance(n * t.info.row_bytes());
    }
    progress.finish();
    Ok(stats.range())
}

/// The distinct values other than NaN that `rule` marks missing in `t`'s data, at most three
/// (two already say the filter cannot keep them).
fn missing_values(source: &mut Hdf5Source, t: &Target, rule: &crate::missing::MissingRule, progress: &dyn Progress) -> Result<Vec<f64>> {
    let dtype = t.info.variables[0].dtype;
    let mut held: Vec<f64> = Vec::new();
    progress.start(&format!("looking for missing values in {}", t.info.path), t.info.raw_bytes());
    for rows in crate::pack::row_ranges(t.info.rows(), t.chunk_rows) {
        let n = rows.end - rows.start;
        for x in crate::dtype::values_f64(dtype, &source.read_rows(t.index, rows)?[0]) {
            if !x.is_nan() && rule.is_missing(x) && !held.iter().any(|h| h.to_bits() == x.to_bits()) {
                held.push(x);
                if held.len() == 3 {
                    progress.finish();
                    return Ok(held);
                }
            }
        }
        progress.advance(n * t.info.row_bytes());
    }
    progress.finish();
    Ok(held)
}

/// Sets each table's model: the one named, one trained now, or none.
fn choose_models(input: &Path, targets: &mut [Target], opts: &CompressOptions, report: &mut CompressReport, progress: &dyn Progress) -> Result<()> {
    let tables: Vec<usize> = (0..targets.len()).filter(|&i| targets[i].layout == Layout::Table).collect();
    match &opts.model.choice {
        ModelChoice::None => {}
        ModelChoice::Use(what) => {
            let bundle = Store::from_env().resolve(what)?;
            let n = bundle.manifest.n_features() as u32;
            let mut used = false;
            for &i in &tables {
                let t = &mut targets[i];
                if t.params.features == n {
                    t.params.set_model_id(&bundle.id).map_err(Error::Usage)?;
                    t.decoder_bytes = bundle.decoder_cost();
                    used = true;
                } else {
                    report.notes.push(format!("{}: rows of {} values; model {} takes {n}: no model", t.info.path, t.params.features, &bundle.id[..12]));
                }
            }
            if !used {
                return Err(Error::Usage(format!("model {} ({n} features) fits no table of {}", &bundle.id[..12], input.display())));
            }
        }
        ModelChoice::Auto if !tables.is_empty() => {
            let names: Vec<String> = tables.iter().map(|&i| targets[i].info.path.clone()).collect();
            let mut src = Hdf5Source::open(input, &names, false)?;
            let prepared = prepare(&mut src, &opts.errors, &opts.model, progress)?;
            report.notes.extend(prepared.notes.iter().cloned());
            report.trained.extend(prepared.trained.iter().cloned());
            for (k, ds) in src.layout().datasets.iter().enumerate() {
                let Some(u) = &prepared.uses[k] else { continue };
                let Some(t) = targets.iter_mut().find(|t| t.info.path == ds.path) else { continue };
                // The filter feeds the model column j as feature j: only a model over every
                // column, in order, fits.
                let identity = u.features.iter().enumerate().all(|(j, f)| *f == [0, j as u64]);
                if !identity || u.features.len() != t.params.features as usize {
                    report.notes.push(format!("{}: the trained model does not take every column in order: no model", ds.path));
                    continue;
                }
                let bundle = &prepared.models[u.model].bundle;
                t.params.set_model_id(&bundle.id).map_err(Error::Usage)?;
                t.decoder_bytes = bundle.decoder_cost();
            }
        }
        ModelChoice::Auto => {}
    }
    Ok(())
}
