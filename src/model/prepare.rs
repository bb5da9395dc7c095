//! Choosing the model of each dataset before a pack: the one the user named, one trained on the
//! input now, or none.

use crate::bound::{self, Bound, ErrorSpec};
use crate::codec::model_stage::LatentCoding;
use crate::error::{Error, Result};
use crate::header::DatasetInfo;
use crate::io::Source;
use crate::model::loaded::{match_features, LoadedModel};
use crate::model::select::{match_tables, FeatureMap, MatchHow};
use crate::model::store::Store;
use crate::model::Feature;
use crate::pack::{DatasetUse, PackModel};
use crate::progress::Progress;
use crate::runtime::RuntimeOptions;

#[derive(Clone, Debug, Default)]
pub enum ModelChoice {
    /// No model stage (quantisation and entropy coding only).
    None,
    /// Train one per table on the input, store it, use it.
    #[default]
    Auto,
    /// A bundle folder, id, or id prefix.
    Use(String),
}

#[derive(Clone, Debug)]
pub struct ModelOptions {
    pub choice: ModelChoice,
    pub embed: bool,
    pub latent: LatentCoding,
    pub runtime: RuntimeOptions,
    #[cfg(feature = "train")]
    pub train: crate::train::TrainOptions,
    /// Rows to train on at most (an evenly spaced sample of a larger table).
    pub train_rows: usize,
    /// With `Use`: model feature -> input variable, where names differ.
    pub feature_map: FeatureMap,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            choice: ModelChoice::Auto,
            embed: false,
            latent: LatentCoding::F16,
            runtime: RuntimeOptions::default(),
            #[cfg(feature = "train")]
            train: Default::default(),
            train_rows: 200_000,
            feature_map: FeatureMap::default(),
        }
    }
}

/// Tables smaller than this get no model of their own: too few rows to learn from, and the
/// decoder would outweigh what it saves.
pub const MIN_TRAIN_ROWS: u64 = 256;
pub const MAX_FEATURES: usize = 4096;

pub struct Prepared {
    pub models: Vec<LoadedModel>,
    pub uses: Vec<Option<DatasetUse>>,
    /// Per dataset without a model, why (for the report).
    pub notes: Vec<String>,
    /// Ids of models trained and stored by this call (only models a table uses are stored).
    pub trained: Vec<String>,
}

impl Prepared {
    pub fn pack_models(&self, embed: bool) -> Vec<PackModel<'_>> {
        self.models
            .iter()
            .map(|m| PackModel {
                reference: m.bundle.reference(embed),
                embed: embed.then_some(m.bundle.decoder.as_slice()),
                spec: m.spec(),
                external_bytes: m.bundle.decoder_cost(),
            })
            .collect()
    }
}

/// The float elements of a table a model would see: every float variable the specs leave
/// lossy (not `lossless`), each element of a multi-element row as its own feature.
pub fn table_features(ds: &DatasetInfo, bounds: &[Bound]) -> Vec<(Feature, [u64; 2])> {
    let epr = ds.row_elems();
    let mut out = Vec::new();
    for (vi, v) in ds.variables.iter().enumerate() {
        if !v.dtype.is_float() || bounds[vi] == Bound::Lossless {
            continue;
        }
        for e in 0..epr {
            let name = if epr == 1 { v.name.clone() } else { format!("{}[{e}]", v.name) };
            out.push((Feature::scalar(name, v.dtype.name()), [vi as u64, e]));
        }
    }
    out
}

pub fn prepare(source: &mut dyn Source, errors: &[ErrorSpec], opts: &ModelOptions, progress: &dyn Progress) -> Result<Prepared> {
    let layout = source.layout().clone();
    let n = layout.datasets.len();
    let mut out = Prepared { models: Vec::new(), uses: vec![None; n], notes: Vec::new(), trained: Vec::new() };
    let bounds = bound::assign(errors, &layout.datasets)?;
    #[cfg(not(feature = "train"))]
    let _ = (&bounds, progress);
    match &opts.choice {
        ModelChoice::None => {}
        ModelChoice::Use(what) => {
            let bundle = Store::from_env().resolve(what)?;
            if bundle.manifest.row_shape().is_some() && opts.feature_map.is_empty() {
                // A wedge or field model takes whole rows: every dataset of that row shape.
                let mut first_err = None;
                for (d, ds) in layout.datasets.iter().enumerate() {
                    match match_features(ds, &bundle) {
                        Ok(features) => out.uses[d] = Some(DatasetUse { model: 0, features, latent: opts.latent }),
                        Err(e) => {
                            out.notes.push(format!("{}: {e}", ds.name()));
                            first_err.get_or_insert(e);
                        }
                    }
                }
                if out.uses.iter().all(Option::is_none) {
                    return Err(first_err.unwrap_or_else(|| Error::Usage("the input has no datasets".into())));
                }
            } else {
                for m in match_tables(&layout.datasets, &bundle, &opts.feature_map)? {
                    out.notes.push(describe_match(&layout.datasets[m.dataset], &bundle.id, &m));
                    out.uses[m.dataset] = Some(DatasetUse { model: 0, features: m.features, latent: opts.latent });
                }
            }
            out.models.push(LoadedModel::load(bundle, opts.runtime, true)?);
        }
        ModelChoice::Auto => {
            #[cfg(feature = "train")]
            {
                let store = Store::from_env();
                for (d, ds) in layout.datasets.iter().enumerate() {
                    let feats = table_features(ds, &bounds[d]);
                    let why = if feats.len() < 2 {
                        Some(format!("{} lossy float columns (a model needs 2 or more)", feats.len()))
                    } else if feats.len() > MAX_FEATURES {
                        Some(format!("{} values per row: not a table for the dense model", feats.len()))
                    } else if ds.rows() < MIN_TRAIN_ROWS {
                        Some(format!("{} rows (a model needs {MIN_TRAIN_ROWS} or more)", ds.rows()))
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        out.notes.push(format!("{}: no model: {why}", ds.name()));
                        continue;
                    }
                    let data = sample_rows(source, d, ds, &feats, opts.train_rows, &layout.name, progress)?;
                    let mut topts = opts.train.clone();
                    topts.name.get_or_insert_with(|| format!("{}:{}", file_stem(&layout.name), ds.name()));
                    let t = crate::train::train(&data, &topts, progress)?;
                    // The trial runs on the bundle in memory: a model that does not pay for its
                    // decoder on this table is never written to the store.
                    let bundle = crate::model::Bundle { id: t.manifest.id(), manifest: t.manifest, dir: None, encoder: Some(t.encoder), decoder: t.decoder };
                    let mut loaded = LoadedModel::load(bundle, opts.runtime, true)?;
                    let saved = trial_saving(&data, &bounds[d], ds, &loaded, opts.latent)? * ds.rows() as f64;
                    let cost = loaded.bundle.decoder_cost() as f64;
                    if saved <= cost {
                        out.notes.push(format!(
                            "{}: model not used, not stored: it would save about {:.0} bytes, its decoder costs {cost:.0} (to share one model across files, make it with `balerfile train` and pack with --model; or try a smaller --hidden)",
                            ds.name(),
                            saved.max(0.0)
                        ));
                        continue;
                    }
                    let b = &loaded.bundle;
                    let id = store.put(&b.manifest, b.encoder.as_deref().unwrap_or_default(), &b.decoder)?;
                    loaded.bundle.dir = Some(store.primary().join(&id));
                    out.trained.push(id);
                    out.uses[d] = Some(DatasetUse {
                        model: out.models.len(),
                        features: feats.iter().map(|f| f.1).collect(),
                        latent: opts.latent,
                    });
                    out.models.push(loaded);
                }
            }
            #[cfg(not(feature = "train"))]
            return Err(Error::Usage("this balerfile was built without training: pass --model or --no-model".into()));
        }
    }
    Ok(out)
}

/// The report's line on which table a reused model codes and how its features were found.
fn describe_match(ds: &DatasetInfo, id: &str, m: &crate::model::select::TableMatch) -> String {
    let short = &id[..12.min(id.len())];
    let n = m.features.len();
    match m.how {
        MatchHow::FullName => format!("{}: model {short}: its {n} features matched by full name", ds.name()),
        MatchHow::WithinTable if m.renamed.is_empty() => format!("{}: model {short}: its {n} features matched by name", ds.name()),
        MatchHow::WithinTable => {
            const SHOWN: usize = 8;
            let pairs: Vec<String> = m.renamed.iter().take(SHOWN).map(|(a, b)| format!("{a} -> {b}")).collect();
            let more = m.renamed.len().saturating_sub(SHOWN);
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            format!("{}: model {short}: its {n} features matched by name within the table: {}{more}", ds.name(), pairs.join(", "))
        }
    }
}

/// Bytes per row the model saves on (up to 16384 of) the training rows, coding them as the
/// codec will (tolerances from the sample's ranges); negative when it costs.
#[cfg(feature = "train")]
fn trial_saving(
    data: &crate::train::TrainData,
    bounds: &[Bound],
    ds: &DatasetInfo,
    model: &LoadedModel,
    latent: LatentCoding,
) -> Result<f64> {
    use crate::codec::{ChunkCodec, ChunkPlace, VarCoding};
    let f = data.features.len();
    let rows = data.rows.min(16384);
    if rows == 0 {
        return Ok(0.0);
    }
    let feats = crate::model::loaded::match_features(ds, &model.bundle)?;
    let mut vars = Vec::with_capacity(f);
    let mut cols = Vec::with_capacity(f);
    for (j, &[vi, _]) in feats.iter().enumerate() {
        let col: Vec<f32> = (0..rows).map(|r| data.values[r * f + j]).collect();
        let (lo, hi) = col.iter().filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v as f64), b.max(v as f64)));
        let range = if hi >= lo { hi - lo } else { 0.0 };
        let tolerance = match bounds[vi as usize] {
            Bound::Abs(e) => Some(e),
            Bound::Rel(e) => Some(e * range).filter(|&t| t > 0.0),
            Bound::None | Bound::Lossless => None,
        };
        vars.push(VarCoding { dtype: crate::dtype::DType::F32, tolerance, model_only: bounds[vi as usize] == Bound::None, grid: None, walk_grid: None, missing: None, step_known: false, walk: None });
        cols.push(col.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
    }
    if vars.iter().any(|v| v.model_only) {
        return Ok(f64::INFINITY); // `none` is the model's output: nothing to weigh
    }
    // The trial chunk holds one variable per feature, in the model's order.
    let identity: Vec<[u64; 2]> = (0..f as u64).map(|j| [j, 0]).collect();
    let plan = model.plan_with(&identity, latent);
    let codec = ChunkCodec { level: crate::pack::DEFAULT_LEVEL, threads: 1 };
    let place = ChunkPlace { dataset: 0, row_start: 0, rows: rows as u64 };
    let with = codec.encode(place, &vars, &cols, 1, Some(&plan)).map_err(Error::Runtime)?;
    let without = codec.encode(place, &vars, &cols, 1, None).map_err(Error::Runtime)?;
    Ok((without.bytes.len() as f64 - with.bytes.len() as f64) / rows as f64)
}

#[cfg(feature = "train")]
fn file_stem(name: &str) -> String {
    std::path::Path::new(name).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| name.into())
}

/// Up to `max_rows` whole rows (evenly spaced) of the dataset's one numeric variable, for the
/// row models (a BCAE-2D wedge, a field's slices).
#[cfg(feature = "train")]
pub fn sample_whole_rows(
    source: &mut dyn Source,
    d: usize,
    ds: &DatasetInfo,
    max_rows: usize,
    file: &str,
    progress: &dyn Progress,
) -> Result<crate::train::RowData> {
    let numeric: Vec<usize> = (0..ds.variables.len()).filter(|&v| ds.variables[v].dtype != crate::dtype::DType::Bool).collect();
    let [vi] = numeric.as_slice() else {
        return Err(Error::Usage(format!("dataset {} has {} numeric variables; a model of whole rows trains on one", ds.name(), numeric.len())));
    };
    let var = &ds.variables[*vi];
    let rows = ds.rows();
    let stride = rows.div_ceil(max_rows.max(1) as u64).max(1);
    let epr = ds.row_elems() as usize;
    let mut values = Vec::new();
    let mut kept = 0usize;
    progress.start(&format!("reading {}", ds.name()), ds.raw_bytes());
    for r in (0..rows).step_by(stride as usize) {
        let data = source.read_rows(d, r..r + 1)?;
        values.extend(crate::dtype::values_f64(var.dtype, &data[*vi]).into_iter().map(|v| v as f32));
        kept += 1;
        progress.advance(stride.min(rows - r) * ds.row_bytes());
    }
    progress.finish();
    debug_assert_eq!(values.len(), kept * epr);
    Ok(crate::train::RowData {
        name: var.name.clone(),
        dtype: var.dtype.name().into(),
        values,
        rows: kept,
        source: serde_json::json!({ "file": file, "dataset": ds.name(), "rows": rows, "stride": stride, "wedges": kept }),
    })
}

/// Up to `max_rows` rows of the features, evenly spaced over the table, read a chunk at a time.
#[cfg(feature = "train")]
pub fn sample_rows(
    source: &mut dyn Source,
    d: usize,
    ds: &DatasetInfo,
    feats: &[(Feature, [u64; 2])],
    max_rows: usize,
    file: &str,
    progress: &dyn Progress,
) -> Result<crate::train::TrainData> {
    let rows = ds.rows();
    let stride = rows.div_ceil(max_rows.max(1) as u64).max(1);
    let epr = ds.row_elems() as usize;
    let chunk = (crate::pack::DEFAULT_CHUNK_BYTES / ds.row_bytes().max(1)).max(1);
    let mut values = Vec::new();
    let mut kept = 0usize;
    progress.start(&format!("reading {}", ds.name()), ds.raw_bytes());
    for range in crate::pack::row_ranges(rows, chunk) {
        let data = source.read_rows(d, range.clone())?;
        let cols: Vec<Option<Vec<f64>>> = ds
            .variables
            .iter()
            .enumerate()
            .map(|(vi, v)| feats.iter().any(|f| f.1[0] as usize == vi).then(|| crate::dtype::values_f64(v.dtype, &data[vi])))
            .collect();
        for r in range.clone() {
            if r % stride != 0 {
                continue;
            }
            let local = (r - range.start) as usize;
            for (_, [vi, e]) in feats {
                let col = cols[*vi as usize].as_ref().expect("feature column read");
                values.push(col[local * epr + *e as usize] as f32);
            }
            kept += 1;
        }
        progress.advance((range.end - range.start) * ds.row_bytes());
    }
    progress.finish();
    // A missing element (fill value) must not drag the normalisation or the loss: the model
    // learns its valid neighbour instead, as the codec feeds it (codec::ChunkCodec::encode).
    let f = feats.len();
    for (j, (_, [vi, _])) in feats.iter().enumerate() {
        if let Some(rule) = ds.variables[*vi as usize].missing_rule() {
            let mut col: Vec<f64> = values.iter().skip(j).step_by(f).map(|&v| v as f64).collect();
            crate::missing::fill_values(&mut col, &rule);
            for (r, v) in col.into_iter().enumerate() {
                values[r * f + j] = v as f32;
            }
        }
    }
    Ok(crate::train::TrainData {
        features: feats.iter().map(|f| f.0.clone()).collect(),
        values,
        rows: kept,
        source: serde_json::json!({ "file": file, "dataset": ds.name(), "rows": rows, "sampled_every": stride }),
    })
}
