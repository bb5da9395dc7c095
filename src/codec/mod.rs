//! The chunk codec: one chunk of a dataset (a row range of every variable) to bytes and back.
//!
//! Per variable the pipeline is: split by kind (quantised float | lossless integer | raw), then
//! quantise with the bound (or take the integers as they are), then a chain of integer stages
//! (`stages`: predictors, among them a linear prediction from another variable of the chunk,
//! then an entropy coder, `ac` or packing + shuffle + zstd), chosen per block by what costs
//! least. The model stage slots in before quantisation: it supplies the prediction the residual
//! is taken against, and its latent goes in the chunk's latent blocks. One parser (`block`)
//! reads every block layout any release wrote. The same codec serves the `.baler` container and
//! the HDF5 filter.

/// A deterministic stream of test numbers (xorshift64) for the codec's tests.
#[cfg(test)]
pub(crate) fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

mod ahead;
pub mod block;
pub(crate) mod cpu;
pub mod bytes;
pub mod errstats;
pub mod interp;
pub mod ints;
pub mod model_stage;
pub mod quantise;
pub mod ac;
pub mod rans;
pub mod rc;
pub mod stages;
mod walk_search;

use crate::dtype::{values_f64, ints_to_i64, DType};
use crate::missing::MissingRule;
use crate::wire::Cursor;
use errstats::ErrStats;
use model_stage::{ModelPlan, Predictions};
use stages::Refs;

/// The stages of this codec's pipeline in encode order, as the header names them (the last is
/// the entropy stage, which carries its level). Each block names its own integer stages
/// (`stages`); this list says which families an archive may use, and a reader refuses any
/// stage not listed here.
pub const PIPELINE: [&str; 7] = ["split", "model", "quantise", "predict", "ac", "shuffle", "zstd"];

pub use block::{METHOD_INTEGER, METHOD_MODEL_ONLY, METHOD_PREDICTED, METHOD_QUANTISED, METHOD_RAW, METHOD_STAGED};

/// Refuse to decode a chunk claiming more than this many bytes per variable: a damaged or hostile
/// header must not make the decoder allocate without limit.
pub const MAX_BLOCK_BYTES: u64 = 1 << 34;

/// How one variable is coded: its dtype and, for floats with a bound, the absolute tolerance;
/// `model_only` for floats whose bound is `none` (the model's output, unbounded).
#[derive(Clone, Copy, Debug)]
pub struct VarCoding {
    pub dtype: DType,
    pub tolerance: Option<f64>,
    pub model_only: bool,
    /// The grid the elements lie on, for the Lorenzo predictor (fields); None for tables.
    pub grid: ints::Grid,
    /// The trailing three dimensions of the grid, for interpolation (`interp`); None for tables.
    pub walk_grid: Option<[usize; 3]>,
    /// What marks an element missing (fill values, a valid range; NaN always is): such elements
    /// are stored exactly and kept out of statistics, model inputs and predictions. Encoder
    /// only: the decoder reads them as exact values.
    pub missing: Option<MissingRule>,
    /// The decoder knows `tolerance` as the encoder used it (a `.baler` header states it), so a
    /// block need not repeat its quantisation step. Not so in the HDF5 filter, whose `rel`
    /// tolerance depends on each chunk's range.
    pub step_known: bool,
    /// The walk every chunk of the variable that searches for one takes instead
    /// (`ChunkCodec::plan_walks`); None: each such chunk searches its own.
    pub walk: Option<WalkPlan>,
}

/// A field variable's walk chosen once for all of its chunks (`ChunkCodec::plan_walks`), as SZ3
/// tunes its predictor once an array: a `FieldChoice` without a trial's walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkPlan {
    Walk(interp::Config),
    Close(interp::Config),
    Lorenzo,
}

/// The middle of `plans`, where every one of them codes with the same predictor (the walk,
/// both it and Lorenzo, or Lorenzo) and the same walk but for its level-wise bins: which bins
/// a chunk's search chose moved with the chunk where its walk did not (GloSea4 x20 at 1e-2:
/// bins of one level for some of its 44 chunks, finer coarse levels for others), and they
/// moved that `pack` by under 0.5 % (each chunk its own: 4 389 222 bytes; the first sample's
/// for all: 4 367 478; the middle's: 4 395 043).
fn agreed(plans: &[Option<WalkPlan>]) -> Option<WalkPlan> {
    let mid = (*plans.get(plans.len() / 2)?)?;
    plans.iter().all(|p| p.is_some_and(|p| p.same_walk(mid))).then_some(mid)
}

impl WalkPlan {
    /// The same predictor, interpolation and dimension order; the level-wise bins aside.
    fn same_walk(self, other: WalkPlan) -> bool {
        match (self, other) {
            (WalkPlan::Walk(a), WalkPlan::Walk(b)) | (WalkPlan::Close(a), WalkPlan::Close(b)) => a.kind == b.kind && a.order == b.order,
            (WalkPlan::Lorenzo, WalkPlan::Lorenzo) => true,
            _ => false,
        }
    }

    fn of(choice: &FieldChoice) -> WalkPlan {
        match choice {
            FieldChoice::Walk(cfg, _) => WalkPlan::Walk(*cfg),
            FieldChoice::Close(cfg, _) => WalkPlan::Close(*cfg),
            FieldChoice::Lorenzo => WalkPlan::Lorenzo,
        }
    }

    /// The choice for a chunk on the walk grid `grid` (every chunk of a variable has its grid).
    fn choice(self, grid: [usize; 3]) -> FieldChoice {
        match self {
            WalkPlan::Walk(cfg) => FieldChoice::Walk(interp::Config { grid, ..cfg }, None),
            WalkPlan::Close(cfg) => FieldChoice::Close(interp::Config { grid, ..cfg }, None),
            WalkPlan::Lorenzo => FieldChoice::Lorenzo,
        }
    }
}

/// What a sample of a field chunk says: code the interpolation walk, code both it and Lorenzo
/// and keep the smaller, or Lorenzo alone. A walk's trial is kept where the sample was the
/// whole chunk: it is the walk the block codes.
enum FieldChoice {
    Walk(interp::Config, Option<interp::Walked>),
    Close(interp::Config, Option<interp::Walked>),
    Lorenzo,
}

/// Where a chunk's values lie on a lattice coarser than the bound's bin: its step and the codes
/// on it, which code the values exactly (as the check that no kept element's error exceeds
/// the bound confirms).
fn on_lattice(var: &VarCoding, values: &[f64], tol: f64, missing: Option<&[bool]>) -> Option<(f64, quantise::Quantised)> {
    quantise::lattice(values, |i| !missing.is_some_and(|m| m[i]), 2.0 * tol)
        .map(|s| (s, quantise::quantise_masked(var.dtype, values, s / 2.0, missing)))
        .filter(|(_, q)| q.max_error <= tol)
}

/// A block's error statistics: its exact elements count as exact (missing ones not at all),
/// every other element as the decoder will rebuild it.
fn error_stats(values: &[f64], exact: &[u64], missing: Option<&[bool]>, rebuilt: impl Fn(usize) -> f64) -> ErrStats {
    cpu::tuned(#[inline(always)] || {
        let mut st = ErrStats::default();
        // The runs between exact elements (listed ascending): a long one a batch at a time, a
        // short one (between a field's land points) element by element.
        let mut from = 0usize;
        for &e in exact.iter().chain(std::iter::once(&(values.len() as u64))) {
            let e = (e as usize).min(values.len());
            if e < from {
                continue;
            }
            if e - from >= 256 {
                st.add_all(&values[from..e], |j| rebuilt(from + j));
            } else {
                (from..e).for_each(|i| st.add(values[i], rebuilt(i)));
            }
            if e < values.len() && !missing.is_some_and(|m| m[e]) {
                st.add(values[e], values[e]);
            }
            from = e + 1;
        }
        st
    })
}

/// The trailing three dimensions of a row shape (a dataset's shape without its first axis),
/// padded with 1s; the leading ones fold into the chunk's first. None for rows of one element.
fn walk_grid(row_shape: &[u64]) -> Option<[usize; 3]> {
    if row_shape.is_empty() {
        return None;
    }
    let mut g = [1usize; 3];
    for (d, &r) in g.iter_mut().rev().zip(row_shape.iter().rev()) {
        *d = usize::try_from(r).ok()?;
    }
    Some(g)
}

impl VarCoding {
    /// How a variable with this bound is coded: `tolerance` is its absolute bound (None:
    /// lossless), `none` the bound 'none' (the model's output alone), `modelled` whether a model
    /// predicts it. Integers a model covers are coded as numbers with a whole-number bound, in
    /// bins of 2E + 1 centred on integers (lossless: E = 0); other integers stay lossless.
    pub fn for_bound(dtype: DType, tolerance: Option<f64>, none: bool, modelled: bool) -> VarCoding {
        let numeric = dtype.is_float() || (modelled && dtype != DType::Bool);
        let tolerance = if dtype.is_float() {
            tolerance
        } else if numeric && !none {
            Some(tolerance.unwrap_or(0.0).floor() + 0.5)
        } else {
            None
        };
        VarCoding { dtype, tolerance, model_only: numeric && none, grid: None, walk_grid: None, missing: None, step_known: false, walk: None }
    }

    /// For a variable whose rows have this shape (the dataset's shape without its first
    /// dimension): a field of 1 or more dimensions per row gets a grid, so its chunks can use the
    /// Lorenzo predictor over (rows, d1, d2).
    pub fn on_rows(mut self, row_shape: &[u64]) -> VarCoding {
        self.grid = ints::row_grid(row_shape);
        self.walk_grid = walk_grid(row_shape);
        self
    }

    /// For a variable whose chunks lie on a grid with these trailing two dimensions (a filter's
    /// chunk), the leading one folding whatever is left.
    pub fn on_grid(mut self, grid: ints::Grid) -> VarCoding {
        self.grid = grid;
        self.walk_grid = grid.map(|[d1, d2]| [1, d1, d2]);
        self
    }

    /// For a variable whose tolerance the decoder is told as the encoder used it.
    pub fn step_known(mut self) -> VarCoding {
        self.step_known = true;
        self
    }

    /// The quantisation step a decoder knows without reading it from the block.
    fn known_step(&self) -> Option<f64> {
        self.tolerance.map(|t| 2.0 * t).filter(|s| self.step_known && s.is_finite() && *s > 0.0)
    }

    /// For a variable with this missing-value rule (floats only; integers stay lossless).
    pub fn with_missing(mut self, rule: Option<MissingRule>) -> VarCoding {
        self.missing = rule.filter(|_| self.dtype.is_float());
        self
    }

    /// Coded as numbers (quantised, or predicted by a model): floats, and integers a model
    /// covers (their tolerance is a whole number plus 0.5, so every code lands on an integer).
    fn numeric_path(&self) -> bool {
        self.dtype.is_float() || (self.dtype != DType::Bool && (self.tolerance.is_some() || self.model_only))
    }
}

/// The highest level that codes fast: a field chunk that is not one small 2-D slice (those
/// are `SEARCH_LEVEL`'s) has its walks priced as at the default level but no Lorenzo trial,
/// and each large block is coded with `rans`, and with `ac` only where an estimate says it
/// saves `ints::AC_MARGIN` (no zstd trial). What the default level buys over it is ratio: on
/// the 27 field/bound pairs of the benchmark one chunk a field, through h5py, 4.7 % in all
/// (up to 26 %: NEMO and OSTIA at 1e-2, whose blocks the default codes with Lorenzo or `ac`).
/// It took one fixed walk (`interp::quick`) before: of its `pack`s of the 27 pairs 14 are now
/// smaller (up to 34 %: the NCEP winds at 1e-2), 2 larger (NEMO at 1e-3 and 1e-4, 3 and 2 %).
/// zstd's negative levels are faster still, so they code fast too; 0 is zstd's "default" (3).
pub const FAST_LEVEL: i32 = 1;

/// Whether a codec at `level` codes fast (`FAST_LEVEL`).
pub fn fast(level: i32) -> bool {
    level != 0 && level <= FAST_LEVEL
}

/// The lowest level that searches a small one-slice chunk (`walk_search::estimable`: one 2-D
/// slice of up to eight `WALK_SAMPLE`s, as netCDF-CF writers chunk a field) in full: its walks
/// priced by the coder on the whole chunk, and a Lorenzo trial. Below it (the filter's
/// default 3 and `pack`'s 9 included) such a chunk's walk is the one an entropy estimate on an
/// eighth of it ranks first (`ChunkCodec::estimate_walk`), and its block is coded as the
/// fast level codes it. On the 27 field/bound pairs of the benchmark chunked one 2-D slice a
/// chunk the full search made files 0.21 % smaller in all (-2.8 to +5.2 % a pair) and wrote
/// at 0.29 of the speed (through h5py, one thread: 4.67 s in all at level 10 against 1.35-1.40
/// s at 3; 5.19-5.34 s at the previous release's default). Other chunks search in full
/// at every level above `FAST_LEVEL`: there the search is a small part of a write (a box of at
/// most `WALK_SAMPLE` elements), and the estimate misranked a deeper box's walks. Below it, too,
/// a walk's large block (`ints::sampled`) is coded as the fast level codes it (`encode_walk`),
/// and a `pack`ed field of like chunks shares one search (`ChunkCodec::plan_walks`).
pub const SEARCH_LEVEL: i32 = 10;

/// Whole chunks a field needs for its walks to be searched on three of them and shared
/// (`ChunkCodec::plan_walks`): with fewer, the three searches cost what each chunk's own do.
pub const PLAN_MIN_CHUNKS: usize = 4;

/// Which chunks of a dataset of `whole` whole chunks (the leading ones, each of the same rows)
/// its walks are searched on for `ChunkCodec::plan_walks`: the first, middle and last; None
/// under `PLAN_MIN_CHUNKS`, or where no variable of `vars` has a walk grid (nothing to read).
pub fn plan_samples(whole: usize, vars: &[VarCoding]) -> Option<[usize; 3]> {
    (whole >= PLAN_MIN_CHUNKS && vars.iter().any(|v| v.walk_grid.is_some())).then(|| [0, whole / 2, whole - 1])
}

/// Whether a bound of `tol` is one a chunk is quantised to (`encode_bounded`): a bound so
/// large that its bin width overflows (abs=1e308) promises nothing a decoder could use, and
/// such a block is coded exactly, which is within any bound.
fn quantisable(tol: f64) -> bool {
    (2.0 * tol).is_finite() && tol > 0.0
}

/// Whether a codec at `level` searches every chunk in full (`SEARCH_LEVEL`).
pub fn exhaustive(level: i32) -> bool {
    level >= SEARCH_LEVEL
}

#[derive(Clone, Copy, Debug)]
pub struct ChunkCodec {
    /// zstd's level, and how hard the encoder searches (`FAST_LEVEL`).
    pub level: i32,
    /// Threads one chunk's coding may use (the trials of a field's walks, a walk's coder ahead
    /// of it when reading); 1 where chunks are already coded in parallel on every thread. The
    /// bytes written, and the values read, do not depend on it.
    pub threads: usize,
}

/// What encoding one variable of one chunk did, for reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct VarEncodeStats {
    pub bytes: u64,
    pub outliers: u64,
    /// Set for lossy variables.
    pub errors: Option<ErrStats>,
    /// The block was coded against the model's prediction.
    pub used_model: bool,
    /// Bytes the model's prediction saved on this block.
    pub saved: u64,
}

pub struct EncodedChunk {
    pub bytes: Vec<u8>,
    pub vars: Vec<VarEncodeStats>,
    /// Bytes of the latent block (0 when the chunk uses no model).
    pub latent_bytes: u64,
    /// How well the model alone predicted the chunk, when the plan asks (sparse data).
    pub score: Option<model_stage::SparseScore>,
}

/// Where a chunk sits: checked against the footer index on decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkPlace {
    pub dataset: u32,
    pub row_start: u64,
    pub rows: u64,
}

impl ChunkCodec {
    /// This codec for each of `chunks` chunks coded at once on `threads`: the threads the
    /// chunks leave over go to each chunk's own work (a field packed as one chunk gets them
    /// all).
    pub fn sharing(self, threads: usize, chunks: usize) -> ChunkCodec {
        ChunkCodec { threads: (threads / chunks.max(1)).max(1), ..self }
    }

    /// `data[v]` holds variable `v`'s elements for the chunk, little-endian, `elems_per_row`
    /// per row. With a model plan, the model stage runs first; it fails only if the model does.
    pub fn encode(
        &self,
        place: ChunkPlace,
        vars: &[VarCoding],
        data: &[Vec<u8>],
        elems_per_row: u64,
        model: Option<&ModelPlan>,
    ) -> Result<EncodedChunk, String> {
        let rows = place.rows as usize;
        let epr = elems_per_row as usize;
        let floats: Vec<Option<Vec<f64>>> = vars
            .iter()
            .zip(data)
            .map(|(v, d)| v.numeric_path().then(|| values_f64(v.dtype, d)))
            .collect();
        let mut latent = Vec::new();
        let mut preds: Option<Predictions> = None;
        let mut score = None;
        if let Some(plan) = model {
            // Missing elements (fill values) would drag the model's normalised inputs far out of
            // range: the model sees each one's valid neighbour instead.
            // Only columns with a rule are copied: this runs on every chunk.
            let filled: Option<Vec<Option<Vec<f64>>>> = vars.iter().any(|v| v.missing.is_some()).then(|| {
                floats
                    .iter()
                    .zip(vars)
                    .map(|(f, v)| {
                        let mut f = f.clone()?;
                        if let Some(rule) = v.missing {
                            crate::missing::fill_values(&mut f, &rule);
                        }
                        Some(f)
                    })
                    .collect()
            });
            let x = plan.inputs(filled.as_deref().unwrap_or(&floats), epr, rows)?;
            let z = plan.model.encode(&x, rows)?;
            if z.len() != rows * plan.model.latent() {
                return Err(format!("the encoder gave {} values for {rows} rows of latent {}", z.len(), plan.model.latent()));
            }
            let zq = plan.encode_latent(&z, rows, self.level, &mut latent);
            let p = plan.predict(&zq, rows, vars.len(), epr)?;
            if plan.score_sparse {
                let mut sc = model_stage::SparseScore::default();
                for f in &plan.features {
                    if let (Some(x), Some(p)) = (floats[f.var].as_deref(), p.values[f.var].as_deref()) {
                        sc.add(x, p);
                    }
                }
                score = Some(sc);
            }
            preds = Some(p);
        }
        let (mut blocks, mut stats) = self.encode_vars(vars, data, &floats, preds.as_ref())?;
        let saved: u64 = stats.iter().map(|s| s.saved).sum();
        if preds.is_some() && !vars.iter().any(|v| v.model_only) && saved <= latent.len() as u64 {
            // The latent would cost more than the model saves on this chunk: code it without.
            (blocks, stats) = self.encode_vars(vars, data, &floats, None)?;
        }
        let use_latent = stats.iter().any(|s| s.used_model);
        let mut out = Vec::with_capacity(28 + latent.len() + blocks.len());
        out.extend_from_slice(&place.dataset.to_le_bytes());
        out.extend_from_slice(&place.row_start.to_le_bytes());
        out.extend_from_slice(&place.rows.to_le_bytes());
        out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
        out.extend_from_slice(&(use_latent as u32).to_le_bytes());
        let latent_bytes = if use_latent { latent.len() as u64 } else { 0 };
        if use_latent {
            out.extend_from_slice(&latent);
        }
        out.extend_from_slice(&blocks);
        Ok(EncodedChunk { bytes: out, vars: stats, latent_bytes, score })
    }

    fn encode_vars(
        &self,
        vars: &[VarCoding],
        data: &[Vec<u8>],
        floats: &[Option<Vec<f64>>],
        preds: Option<&Predictions>,
    ) -> Result<(Vec<u8>, Vec<VarEncodeStats>), String> {
        let mut blocks = Vec::new();
        let mut stats = Vec::with_capacity(vars.len());
        // Each variable's codes as the decoder will have them, for the variables after it.
        let mut codes: Vec<Option<Vec<i64>>> = Vec::with_capacity(vars.len());
        let mut scales: Vec<f64> = Vec::with_capacity(vars.len());
        for (i, (var, bytes)) in vars.iter().zip(data).enumerate() {
            let start = blocks.len();
            let pred = preds.and_then(|p| Some((p.values[i].as_deref()?, p.noise[i].as_deref()?)));
            let refs = Refs { codes: &codes, scales: &scales };
            let (mut s, c) = self.encode_var(var, bytes, floats[i].as_deref(), pred, &refs, &mut blocks)?;
            s.bytes = (blocks.len() - start) as u64;
            stats.push(s);
            let (c, scale) = c.map_or((None, f64::NAN), |(c, s)| (Some(c), s));
            codes.push(c);
            scales.push(scale);
        }
        Ok((blocks, stats))
    }

    fn encode_var(
        &self,
        var: &VarCoding,
        data: &[u8],
        values: Option<&[f64]>,
        pred: Option<(&[f64], &[f64])>,
        refs: &Refs,
        out: &mut Vec<u8>,
    ) -> Result<(VarEncodeStats, Option<(Vec<i64>, f64)>), String> {
        let dtype = var.dtype;
        match (values, var.tolerance, dtype) {
            (Some(values), _, _) if var.model_only => {
                let Some((p, _)) = pred else {
                    return Err("a variable with bound 'none' needs the model stage".into());
                };
                let mut st = ErrStats::default();
                let mut outliers = Vec::new();
                let missing = |x: f64| var.missing.is_some_and(|r| r.is_missing(x));
                for (i, (&x, &p)) in values.iter().zip(p).enumerate() {
                    if x.is_finite() && !missing(x) {
                        st.add(x, quantise::reconstruct(dtype, p, 0, 1.0));
                    } else {
                        outliers.push(i as u64);
                    }
                }
                out.push(METHOD_MODEL_ONLY);
                out.extend_from_slice(&(outliers.len() as u64).to_le_bytes());
                self.put_outliers(&outliers, dtype.size(), data, out);
                st.write(out);
                Ok((VarEncodeStats { bytes: 0, outliers: outliers.len() as u64, errors: Some(st), used_model: true, saved: 0 }, None))
            }
            (Some(values), Some(tol), _) if quantisable(tol) => {
                Ok(self.encode_bounded(var, data, values, tol, pred, refs, out))
            }
            (Some(_), _, _) | (None, _, DType::Bool) => {
                // Byte planes suit smooth values; rows repeated whole (Zmumu's events listed once
                // per muon pairing) are long matches only as the bytes come: 250 KB against 165
                // KB on Zmumu's floats. Both are tried; a shuffle width of 1 keeps the bytes.
                let (width, payload) = [dtype.size(), 1]
                    .into_iter()
                    .take(if dtype.size() > 1 { 2 } else { 1 })
                    .map(|w| (w, bytes::compress(&bytes::shuffle(w, data), self.level)))
                    .min_by_key(|(_, p)| p.len())
                    .expect("one width is always tried");
                out.push(METHOD_RAW);
                out.push(width as u8);
                out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
                out.extend_from_slice(&payload);
                Ok((VarEncodeStats::default(), None))
            }
            (None, _, _) => {
                out.push(METHOD_INTEGER);
                let codes = ints_to_i64(dtype, data);
                ints::encode_with(&codes, self.level, var.grid, refs, out);
                Ok((VarEncodeStats::default(), Some((codes, 1.0))))
            }
        }
    }

    /// Quantises to the bound, then codes `q` as is or as `q - K` against the model's integer
    /// prediction, whichever is smaller (model_stage explains why this survives a different
    /// runtime at decode).
    fn encode_bounded(
        &self,
        var: &VarCoding,
        data: &[u8],
        values: &[f64],
        tol: f64,
        pred: Option<(&[f64], &[f64])>,
        refs: &Refs,
        out: &mut Vec<u8>,
    ) -> (VarEncodeStats, Option<(Vec<i64>, f64)>) {
        let dtype = var.dtype;
        let missing = var.missing.map(|r| r.mask(values));
        let lattice = on_lattice(var, values, tol, missing.as_deref());
        // A field without a model: interpolated or Lorenzo-predicted, as a sample says.
        let walk_grid = var.walk_grid.filter(|&g| pred.is_none() && lattice.is_none() && interp::fits(g, values.len()));
        // A chunk of one small 2-D slice (`walk_search::estimable`) below `SEARCH_LEVEL`: its
        // walk is the one an estimate ranks first, and it is coded at the fast level (below).
        let one_slice = pred.is_none() && self.one_slice(var, values.len());
        let sample = match walk_grid {
            Some(g) if one_slice => self.estimate_walk(var, g, values, tol, missing.as_deref()),
            Some(g) => match var.walk {
                Some(plan) => plan.choice(g),
                None => self.search_walk(var, g, values, tol, missing.as_deref()),
            },
            None => FieldChoice::Lorenzo,
        };
        // The codes on the bound's bins (Lorenzo's) are made only where they are used: a field
        // the sample gives to the walk never needs them.
        let (step, q) = match lattice {
            Some((s, q)) => (s, Some(q)),
            None => (2.0 * tol, None),
        };
        // Too close to call codes both at once, each on half the threads.
        let threads = if matches!(sample, FieldChoice::Close(..)) { (self.threads / 2).max(1) } else { self.threads };
        // A chunk of one small 2-D slice (`walk_search::estimable`) is coded as the fast level
        // codes it (`rans`, `ac` where an estimate says it saves) below `SEARCH_LEVEL`, whichever
        // predictor it gets. A walk an estimate chose: on the 27 field/bound pairs one 2-D slice
        // a chunk the default's coder trials (`ac` in full with repeat decisions, zstd) chose
        // the same on every block, for 1.3x the write time. Lorenzo's codes, on a lattice or
        // not: only UKV's (a lattice at 1e-3 and 1e-4) moved, 2.4 % larger, written 1.9x and
        // read 1.4x as fast (h5py, one thread), where the trials had left its writes behind
        // SZ3's filter's.
        let coder_level = if one_slice && !fast(self.level) { FAST_LEVEL } else { self.level };
        let walked = |cfg, trial| self.encode_walk(var, cfg, trial, data, values, tol, missing.as_deref(), coder_level, threads);
        let lorenzo = || {
            let q = q.unwrap_or_else(|| quantise::quantise_masked(dtype, values, tol, missing.as_deref()));
            self.encode_quantised(var, data, values, pred, refs, missing.as_deref(), step, q, coder_level, threads)
        };
        let (bytes, stats, codes) = match sample {
            FieldChoice::Walk(cfg, trial) => {
                let (bytes, stats) = walked(cfg, trial);
                (bytes, stats, None)
            }
            FieldChoice::Lorenzo => {
                let (bytes, stats, codes) = lorenzo();
                (bytes, stats, Some(codes))
            }
            // Too close to call on the sample: both are coded (on two threads where the chunk
            // has them), the smaller kept.
            FieldChoice::Close(cfg, trial) => match crate::parallel::join(self.threads, lorenzo, || walked(cfg, trial)) {
                ((bytes, stats, codes), walk) if bytes.len() <= walk.0.len() => (bytes, stats, Some(codes)),
                (_, (bytes, stats)) => (bytes, stats, None),
            },
        };
        out.extend_from_slice(&bytes);
        (stats, codes)
    }

    /// The block of the codes `q` (quantised to `step`), predicted by Lorenzo or by the model's
    /// `pred` and coded at `level`, its statistics, and the codes the decoder will hold.
    #[allow(clippy::too_many_arguments)]
    fn encode_quantised(
        &self,
        var: &VarCoding,
        data: &[u8],
        values: &[f64],
        pred: Option<(&[f64], &[f64])>,
        refs: &Refs,
        missing: Option<&[bool]>,
        step: f64,
        q: quantise::Quantised,
        level: i32,
        threads: usize,
    ) -> (Vec<u8>, VarEncodeStats, (Vec<i64>, f64)) {
        let dtype = var.dtype;
        let st = error_stats(values, &q.outliers, missing, |i| quantise::reconstruct(dtype, 0.0, q.codes[i], step));
        // The exact elements' codes are left out (`quantise_masked` gave them codes the decoder
        // rebuilds).
        let omitted = (!q.outliers.is_empty()).then(|| {
            let mut m = vec![false; values.len()];
            q.outliers.iter().for_each(|&i| m[i as usize] = true);
            m
        });
        let mut plain = Vec::new();
        ints::encode_omitting(&q.codes, level, var.grid, refs, omitted.as_deref(), threads, &mut plain);
        let mut modelled: Option<(Vec<u8>, u64, u32, Vec<u8>, Vec<i64>)> = None;
        if let Some((p, noise)) = pred {
            let esc = model_stage::escapes(p, noise, step);
            let mut residual = Vec::with_capacity(values.len());
            let mut full = Vec::with_capacity(values.len());
            let (mut ei, mut oi) = (esc.iter().peekable(), q.outliers.iter().peekable());
            for (i, (&c, &p)) in q.codes.iter().zip(p).enumerate() {
                let escaped = ei.next_if_eq(&&(i as u64)).is_some();
                let k = model_stage::integer_prediction(p, step, escaped);
                // An outlier's value is stored exactly; its code just has to cost nothing.
                let r = if oi.next_if_eq(&&(i as u64)).is_some() { 0 } else { c - k };
                residual.push(r);
                full.push(r + k);
            }
            let mut escapes = Vec::new();
            if !esc.is_empty() {
                ints::encode(&block::index_gaps(&esc), self.level, None, &mut escapes);
            }
            let mut codes = Vec::new();
            ints::encode(&residual, self.level, var.grid, &mut codes);
            modelled = Some((escapes, esc.len() as u64, model_stage::codes_crc(&full), codes, full));
        }
        // The model pays when its residuals and escapes (and 5 bytes of count and CRC) cost less.
        let model_cost = modelled.as_ref().map(|m| m.0.len() + m.3.len() + 5);
        let use_model = model_cost.is_some_and(|c| c < plain.len());
        let saved = if use_model { (plain.len() - model_cost.unwrap_or(0)) as u64 } else { 0 };
        let block = block::StagedBlock {
            step,
            step_known: var.known_step() == Some(step),
            model: modelled.as_ref().filter(|_| use_model).map(|m| (&m.0[..], m.1, m.2)),
            interp: None,
            codes: if use_model { &modelled.as_ref().unwrap().3 } else { &plain },
            omit: !use_model && omitted.is_some(),
            exact: &q.outliers,
            stats: &st,
        };
        let mut mine = Vec::new();
        block.write(dtype.size(), data, self.level, &mut mine);
        // What the decoder will hold as this variable's codes (an outlier's differs with a model).
        let codes = match modelled {
            Some(m) if use_model => m.4,
            _ => q.codes,
        };
        (mine, VarEncodeStats { bytes: 0, outliers: q.outliers.len() as u64, errors: Some(st), used_model: use_model, saved }, (codes, step))
    }

    /// Whether a chunk of `n` elements of `var` is one small 2-D slice (`walk_search::estimable`)
    /// whose walk an estimate chooses at this level.
    fn one_slice(&self, var: &VarCoding, n: usize) -> bool {
        var.walk_grid.is_some_and(|g| walk_search::estimable(g, n)) && !exhaustive(self.level)
    }

    /// A field chunk's walk as this level searches for it (`choose_walk`: with a Lorenzo trial
    /// above the fast level).
    fn search_walk(&self, var: &VarCoding, grid: [usize; 3], values: &[f64], tol: f64, missing: Option<&[bool]>) -> FieldChoice {
        if fast(self.level) {
            return self.choose_walk(var, grid, values, tol, missing, None::<fn(&[usize]) -> Vec<i64>>);
        }
        let box_codes = |at: &[usize]| quantise::codes_at(var.dtype, values, tol, missing, at);
        self.choose_walk(var, grid, values, tol, missing, Some(box_codes))
    }

    /// `vars` with each field variable's walk (`VarCoding::walk`) chosen once for all of its
    /// chunks that would search for their own, where the searches on `samples` (a few of the
    /// dataset's chunks, each its bytes a variable, or the error reading it) agree (`agreed`):
    /// a field of like chunks, as a time series is, is searched a few times, not once a chunk.
    /// The search was 15 % of a default `pack` of GloSea4 at 1e-2 (callgrind). Where the
    /// samples disagree each chunk searches its own: Levitus's temperatures by depth want
    /// Lorenzo on the deep levels and a walk near the surface, and the deep chunk's choice for
    /// both chunks made the file 37 % larger at 1e-2, 25 % at 1e-3. A variable whose chunks do
    /// not search (a model's, one on a lattice, one small 2-D slice, one with no walk grid) is
    /// left as it is, and so is every variable at `SEARCH_LEVEL` and above, which searches
    /// every chunk in full (the way to have each chunk choose). Samples are read one at a
    /// time: a chunk may be as large as the user asks.
    pub fn plan_walks<E>(&self, vars: &[VarCoding], samples: impl IntoIterator<Item = Result<Vec<Vec<u8>>, E>>) -> Result<Vec<VarCoding>, E> {
        if exhaustive(self.level) {
            return Ok(vars.to_vec());
        }
        let mut plans = vec![Vec::new(); vars.len()];
        for sample in samples {
            let sample = sample?;
            for ((var, plans), bytes) in vars.iter().zip(&mut plans).zip(&sample) {
                plans.push(self.walk_plan(var, bytes));
            }
        }
        Ok(vars.iter().zip(&plans).map(|(var, plans)| VarCoding { walk: agreed(plans), ..*var }).collect())
    }

    /// The walk a chunk of `var` (`data`) searches for, as `encode_var` and `encode_bounded`
    /// would send it to the search; None where they would not.
    fn walk_plan(&self, var: &VarCoding, data: &[u8]) -> Option<WalkPlan> {
        let tol = var.tolerance.filter(|&t| quantisable(t) && var.numeric_path() && !var.model_only)?;
        let n = data.len() / var.dtype.size();
        let grid = var.walk_grid.filter(|&g| interp::fits(g, n) && !self.one_slice(var, n))?;
        let values = values_f64(var.dtype, data);
        let missing = var.missing.map(|r| r.mask(&values));
        if on_lattice(var, &values, tol, missing.as_deref()).is_some() {
            return None;
        }
        Some(WalkPlan::of(&self.search_walk(var, grid, &values, tol, missing.as_deref())))
    }

    /// For a field chunk without a model: the interpolation walk that codes smallest on a sample
    /// (a box of at most `WALK_SAMPLE` elements at the chunk's origin; `walk_search`'s two
    /// rounds, four walks of six), and whether it beats
    /// Lorenzo on the pre-quantised codes there clearly, too narrowly to call, or not at all.
    /// Priced by the coder itself, not an order-0 estimate (which misranks walks by a few
    /// percent, as much as they differ): `rans` alone on boxes of 4096 codes and more, the coder
    /// a walk's symbols get, its tables, tokens and raw bits as it writes them
    /// (`ints::trial_len`). Lorenzo is priced the same way, though `ac` keeps its residuals where
    /// it is smaller by more than `ints::AC_MARGIN`; that leans towards the walk, and measured so
    /// (at a 3 % margin): pricing Lorenzo in full changed one of the 27 field/bound pairs, COLPEX
    /// at 1e-4, 9 % larger (the box's Lorenzo did not hold on the chunk).
    /// `codes(at)`: the pre-quantised codes of the elements `at`; None (a fast level): no
    /// Lorenzo trial, the walk is coded.
    fn choose_walk(&self, var: &VarCoding, grid: [usize; 3], values: &[f64], tol: f64, missing: Option<&[bool]>, codes: Option<impl FnOnce(&[usize]) -> Vec<i64>>) -> FieldChoice {
        // A fast level's box is a quarter of the search's: on GloSea4 x20 (174 MB, one thread,
        // `pack --level 1`) the search's box cost a fifth of the speed (115-133 -> 93-108 MB/s
        // against one fixed walk; 124-130 with this box) for the same sizes to 0.01 % of raw;
        // the 27 pairs' `pack`s at level 1 are 14 smaller than with one fixed walk (up to 34 %:
        // the NCEP winds at 1e-2), 2 larger (NEMO at 1e-3 and 1e-4, by 3 and 2 %).
        let limit = if codes.is_some() { walk_search::WALK_SAMPLE } else { walk_search::WALK_SAMPLE / 4 };
        let sample = walk_search::SampleBox::new(grid, values.len(), limit, false);
        let (b, at) = (sample.dims, &sample.at);
        // Both store the missing elements, the same way, and code nothing for them: priced in,
        // at a value's bytes each, they were most of both prices on a field with land and
        // pressed the two towards a tie. Only the other elements stored exactly are priced.
        let (xs, valid, gone) = sample.values(values, missing);
        // A box that is the whole chunk (a chunk of up to `WALK_SAMPLE` elements) is walked
        // exactly as the block will be: the winner's walk is kept, not walked again.
        let (cfg, size, walked) = walk_search::search(&sample, var.dtype, &xs, &valid, tol, self.threads, |w| {
            ints::trial_len(&w.symbols, None, None) + (w.exact.len() - gone) * var.dtype.size()
        });
        let Some(codes) = codes else { return FieldChoice::Walk(interp::Config { grid, ..cfg }, walked) };
        let box_codes = codes(at);
        // Both store the elements they cannot bound exactly (missing ones alike), and code no
        // residual for them.
        let omitted: Vec<bool> = xs.iter().zip(&valid).map(|(x, &v)| !v || !x.is_finite()).collect();
        let exact = omitted.iter().filter(|&&o| o).count();
        let lorenzo = ints::trial_len(&box_codes, var.grid.map(|_| [b[2], b[3]]), (exact > 0).then_some(&omitted[..]));
        let (w, l) = (size as f64, (lorenzo + (exact - gone) * var.dtype.size()) as f64);
        let cfg = interp::Config { grid, ..cfg };
        match () {
            _ if w < l * 0.97 => FieldChoice::Walk(cfg, walked),
            _ if l < w * 0.97 => FieldChoice::Lorenzo,
            _ => FieldChoice::Close(cfg, walked),
        }
    }

    /// The walk a small one-slice chunk (`walk_search::estimable`) is coded along below
    /// `SEARCH_LEVEL`: of those `choose_walk` tries, the one whose symbols' sub-bins have the
    /// least entropy (`ints::estimate`, not the coder's price) on a centred box of an eighth of
    /// the chunk, without a Lorenzo trial. See `SEARCH_LEVEL` for what it costs and saves.
    fn estimate_walk(&self, var: &VarCoding, grid: [usize; 3], values: &[f64], tol: f64, missing: Option<&[bool]>) -> FieldChoice {
        const SAMPLE_MIN: usize = 1024;
        let n = values.len();
        let sample = walk_search::SampleBox::new(grid, n, (n / 8).max(SAMPLE_MIN), true);
        let (xs, valid, gone) = sample.values(values, missing);
        // On one thread: the trials on two (`BALERFILE_THREADS=2`) wrote the 27 pairs one slice
        // a chunk in 1.82-1.84 s against 1.43-1.44 (h5py, two alternated runs): a thread's
        // start costs about what a trial on an eighth of a slice does.
        let (cfg, _, walked) = walk_search::search(&sample, var.dtype, &xs, &valid, tol, 1, |w| {
            ints::estimate(&w.symbols) + (8 * (w.exact.len() - gone) * var.dtype.size()) as f64
        });
        FieldChoice::Walk(interp::Config { grid, ..cfg }, walked)
    }

    /// The block of `values` quantised in-loop along the walk `cfg` (its trial's walk where
    /// `choose_walk` kept it), its symbols coded at `level`, and its statistics.
    #[allow(clippy::too_many_arguments)]
    fn encode_walk(
        &self,
        var: &VarCoding,
        cfg: interp::Config,
        trial: Option<interp::Walked>,
        data: &[u8],
        values: &[f64],
        tol: f64,
        missing: Option<&[bool]>,
        level: i32,
        threads: usize,
    ) -> (Vec<u8>, VarEncodeStats) {
        let dtype = var.dtype;
        // A walk for a field without missing elements of its own (its test a constant, which
        // the walk's loops then leave out), and one for a field with them.
        let mut w = trial.unwrap_or_else(|| match missing {
            None => interp::quantise_counting(&cfg, dtype, values, |_| true, tol),
            Some(m) => interp::quantise_counting(&cfg, dtype, values, |i| !m[i], tol),
        });
        w.sort_exact();
        // A search's trial walk (a chunk no larger than its box) gathered none.
        let st = w.stats.unwrap_or_else(|| error_stats(values, &w.exact, missing, |i| w.rebuilt[i]));
        // The rebuilt values are spent: freed before the coder's buffers are made, which then
        // reuse their pages (a fresh page's first touch is most of a short run's kernel time).
        w.rebuilt = Vec::new();
        // A large block (`ints::sampled`) is coded as the fast level codes it, below
        // `SEARCH_LEVEL`: the default level's coder trials judge such a block on a run of it,
        // and on every one of the benchmark's they kept `rans` with the predictor the fast
        // level picks (the 27 field/bound pairs `pack`ed at 9, 4 MiB chunks, and GloSea4 x20's
        // 44 chunks at 1e-2, 1e-3, 1e-4: the same bytes). What they cost: GloSea4 x20's default
        // `pack` at 1e-2, one thread, took 1.70-1.99 s without them against 1.85-2.64 with
        // (five alternated runs). A smaller block (the NCEP winds': 126 144 codes) keeps them:
        // there `ac`, tried in full, saves 10 % that the fast level's estimate does not see
        // (kept from `SEARCH_LEVEL`; below it such a block needs `ints::AC_MARGIN_STREAMED`).
        let level = if !exhaustive(level) && ints::sampled(w.symbols.len()) { FAST_LEVEL } else { level };
        let mut codes = Vec::new();
        ints::encode_walk_symbols(std::mem::take(&mut w.symbols), level, None, &Refs::NONE, threads, &mut codes);
        let block = block::StagedBlock {
            step: 2.0 * tol,
            step_known: var.known_step() == Some(2.0 * tol),
            model: None,
            interp: Some(cfg),
            codes: &codes,
            omit: !w.exact.is_empty(),
            exact: &w.exact,
            stats: &st,
        };
        let mut bytes = Vec::with_capacity(codes.len() + 64);
        block.write(dtype.size(), data, self.level, &mut bytes);
        let stats = VarEncodeStats { bytes: 0, outliers: w.exact.len() as u64, errors: Some(st), used_model: false, saved: 0 };
        (bytes, stats)
    }

    /// Exact values of the listed elements: `u64 length, zstd(indices, then values)`.
    fn put_outliers(&self, idx: &[u64], size: usize, data: &[u8], out: &mut Vec<u8>) {
        let mut raw = Vec::with_capacity(idx.len() * (8 + size));
        for &i in idx {
            raw.extend_from_slice(&i.to_le_bytes());
        }
        for &i in idx {
            let i = i as usize;
            raw.extend_from_slice(&data[i * size..(i + 1) * size]);
        }
        let payload = if raw.is_empty() { Vec::new() } else { bytes::compress(&raw, self.level) };
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&payload);
    }

    /// Decodes a chunk of `elems_per_row * place.rows` elements per variable. A chunk coded
    /// with the model stage needs the plan of the model it was packed with.
    pub fn decode(
        &self,
        bytes: &[u8],
        place: ChunkPlace,
        vars: &[VarCoding],
        elems_per_row: u64,
        model: Option<&ModelPlan>,
    ) -> Result<Vec<Vec<u8>>, String> {
        let mut cur = Cursor::new(bytes);
        let found = ChunkPlace {
            dataset: cur.u32("chunk dataset")?,
            row_start: cur.u64("chunk first row")?,
            rows: cur.u64("chunk rows")?,
        };
        if found != place {
            return Err(format!("chunk says it holds {found:?}, the index says {place:?}"));
        }
        let nvars = cur.u32("variable count")? as usize;
        if nvars != vars.len() {
            return Err(format!("chunk has {nvars} variables, the header {}", vars.len()));
        }
        let n = place.rows.checked_mul(elems_per_row).ok_or("chunk size overflows")?;
        for (i, var) in vars.iter().enumerate() {
            if n.checked_mul(var.dtype.size() as u64).is_none_or(|b| b > MAX_BLOCK_BYTES) {
                return Err(format!("variable {i}: {n} elements is more than one chunk may hold"));
            }
        }
        let preds = match cur.u32("latent block count")? {
            0 => None,
            1 => {
                let plan = model.ok_or("the chunk was coded with a model, and the archive names none")?;
                let rows = place.rows as usize;
                let zq = plan.decode_latent(&mut cur, rows)?;
                Some(plan.predict(&zq, rows, vars.len(), elems_per_row as usize)?)
            }
            k => return Err(format!("chunk has {k} latent blocks (at most 1)")),
        };
        let mut out = Vec::with_capacity(vars.len());
        let mut codes: Vec<Option<Vec<i64>>> = Vec::with_capacity(vars.len());
        for (i, var) in vars.iter().enumerate() {
            let pred = preds.as_ref().and_then(|p| p.values[i].as_deref());
            let refs = Refs::codes(&codes);
            let decoded = block::read(&mut cur, var.dtype, n as usize, var.known_step())
                .and_then(|b| block::decode(&b, var.dtype, n as usize, pred, &refs, self.threads))
                .map_err(|e| format!("variable {i}: {e}"))?;
            out.push(decoded.bytes);
            codes.push(decoded.codes);
        }
        cur.finish("chunk")?;
        Ok(out)
    }
}

/// Bytes at the start of a chunk that hold its latent block count: its place (4 + 8 + 8) and
/// variable count (4) come first (baler-format.md's chunk layout).
pub const LATENT_COUNT_END: usize = 28;

/// Whether a chunk carries a latent block, from its first [`LATENT_COUNT_END`] bytes: only such
/// a chunk needs its model to decode. A head too short to say counts as needing it (decoding
/// then reports the damage).
pub fn has_latent(head: &[u8]) -> bool {
    head.get(LATENT_COUNT_END - 4..LATENT_COUNT_END).is_none_or(|b| b != [0u8; 4])
}

/// What each block of a chunk holds, by walking the layout (format spec) without decoding.
#[derive(Clone, Debug, Default)]
pub struct ChunkLayout {
    pub latent_bytes: u64,
    pub block_bytes: Vec<u64>,
    pub errors: Vec<Option<ErrStats>>,
    pub used_model: Vec<bool>,
}

/// `vars`: the dataset's variables (the header's), `elems_per_row` its elements per row.
pub fn chunk_layout(chunk: &[u8], vars: &[VarCoding], elems_per_row: u64) -> Result<ChunkLayout, String> {
    let nvars = vars.len();
    let mut c = Cursor::new(chunk);
    c.bytes(4 + 8, "chunk place")?;
    let rows = c.u64("chunk rows")?;
    let elems = rows.checked_mul(elems_per_row).filter(|&e| e <= MAX_BLOCK_BYTES).ok_or("chunk size overflows")? as usize;
    let n = c.u32("variable count")? as usize;
    if n != nvars {
        return Err(format!("{n} variables where the header has {nvars}"));
    }
    let skip_payload = |c: &mut Cursor| -> Result<(), String> {
        let len = c.u64("payload length")?;
        c.bytes(len, "payload").map(|_| ())
    };
    let skip_ints = |c: &mut Cursor| -> Result<(), String> { ints::skip(c, 0) };
    let mut out = ChunkLayout::default();
    let latent = c.u32("latent count")?;
    if latent > 1 {
        return Err(format!("{latent} latent blocks"));
    }
    if latent == 1 {
        let start = c.remaining();
        let l = c.u32("latent width")? as u64;
        match c.u8("latent coding")? {
            1 => skip_payload(&mut c)?,
            2 => {
                c.u8("bits")?;
                c.bytes(l.checked_mul(8).ok_or("latent width overflows")?, "latent ranges")?;
                skip_ints(&mut c)?;
            }
            k => return Err(format!("unknown latent coding {k}")),
        }
        out.latent_bytes = (start - c.remaining()) as u64;
    }
    for var in vars {
        let b = block::read(&mut c, var.dtype, elems, var.known_step())?;
        out.block_bytes.push(b.bytes);
        out.errors.push(b.errors);
        out.used_model.push(b.used_model());
    }
    c.finish("chunk")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_round_trips_every_dtype() {
        let codec = ChunkCodec { level: 3, threads: 1 };
        let n = 500usize;
        let mut vars = Vec::new();
        let mut data = Vec::new();
        for dtype in DType::ALL {
            let bytes: Vec<u8> = match dtype {
                DType::F32 => (0..n).flat_map(|i| ((i as f32).sin() * 100.0).to_le_bytes()).collect(),
                DType::F64 => (0..n).flat_map(|i| ((i as f64).cos() * 1e5).to_le_bytes()).collect(),
                DType::Bool => (0..n).map(|i| (i % 3 == 0) as u8).collect(),
                _ => (0..n * dtype.size()).map(|i| (i * 31 % 251) as u8).collect(),
            };
            for tolerance in [None, Some(0.01)] {
                vars.push(VarCoding { dtype, tolerance, model_only: false, grid: None, walk_grid: None, missing: None, step_known: false, walk: None });
                data.push(bytes.clone());
            }
        }
        let place = ChunkPlace { dataset: 3, row_start: 100, rows: n as u64 };
        let enc = codec.encode(place, &vars, &data, 1, None).unwrap();
        let dec = codec.decode(&enc.bytes, place, &vars, 1, None).unwrap();
        for ((var, orig), got) in vars.iter().zip(&data).zip(&dec) {
            match (var.dtype, var.tolerance) {
                (d, Some(tol)) if d.is_float() => {
                    let (a, b) = (values_f64(d, orig), values_f64(d, got));
                    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= tol), "{d}");
                }
                _ => assert_eq!(orig, got, "{:?} must be lossless", var.dtype),
            }
        }
        let wrong = ChunkPlace { rows: n as u64 - 1, ..place };
        assert!(codec.decode(&enc.bytes, wrong, &vars, 1, None).is_err());
    }

    /// One f32 field variable of `rows` rows of `per_row` values coded at `level`, decoded
    /// within `tol` (asserted): the chunk's size, and its block's walk (None: Lorenzo) and
    /// entropy stage (`CodesToBytes::id`).
    fn code_field(values: &[f32], var: VarCoding, rows: usize, per_row: usize, tol: f64, level: i32, threads: usize) -> (usize, Option<interp::Config>, u8) {
        let data = vec![values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()];
        let vars = [var];
        let place = ChunkPlace { dataset: 0, row_start: 0, rows: rows as u64 };
        let codec = ChunkCodec { level, threads };
        let enc = codec.encode(place, &vars, &data, per_row as u64, None).unwrap();
        let dec = codec.decode(&enc.bytes, place, &vars, per_row as u64, None).unwrap();
        let back = values_f64(DType::F32, &dec[0]);
        assert!(values.iter().zip(&back).all(|(&a, b)| (a as f64 - b).abs() <= tol), "level {level}: bound broken");
        let mut cur = Cursor::new(&enc.bytes);
        cur.bytes(LATENT_COUNT_END as u64, "chunk head").unwrap();
        match block::read(&mut cur, DType::F32, values.len(), None).unwrap().body {
            block::Body::Quantised { interp, codes, .. } => (enc.bytes.len(), interp, codes.chain.to_bytes.id()),
            _ => panic!("level {level}: not quantised"),
        }
    }

    /// The loops `cpu::tuned` compiles a second time give the baseline's bytes and values: field
    /// chunks (one slice, deep, with NaNs stored exactly) at loose and tight bounds, at the
    /// fast, default and search levels, coded and decoded both ways.
    #[test]
    fn the_tuned_twins_code_and_decode_what_the_baseline_does() {
        let mut r = xorshift(0x0dd_c0de);
        for (rows, d1, d2) in [(1usize, 60usize, 180usize), (4, 30, 50), (1, 7, 700)] {
            let values: Vec<f32> = (0..rows * d1 * d2)
                .map(|i| {
                    let (y, x) = ((i / d2) % d1, i % d2);
                    if r() % 97 == 0 {
                        return f32::NAN;
                    }
                    (y as f32 * 0.3).sin() * 40.0 + (x as f32 * 0.05).cos() * 9.0 + (r() % 1000) as f32 * 0.002
                })
                .collect();
            let data = vec![values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()];
            let place = ChunkPlace { dataset: 0, row_start: 0, rows: rows as u64 };
            for tol in [1.0, 1e-3] {
                let vars = [VarCoding::for_bound(DType::F32, Some(tol), false, false).on_rows(&[d1 as u64, d2 as u64])];
                for level in [FAST_LEVEL, 3, SEARCH_LEVEL] {
                    let codec = ChunkCodec { level, threads: 1 };
                    let per_row = (d1 * d2) as u64;
                    let twin = codec.encode(place, &vars, &data, per_row, None).unwrap().bytes;
                    let base = crate::codec::cpu::baseline(|| codec.encode(place, &vars, &data, per_row, None).unwrap().bytes);
                    assert_eq!(twin, base, "{rows}x{d1}x{d2} tol {tol} level {level}: coded");
                    let back = codec.decode(&twin, place, &vars, per_row, None).unwrap();
                    let base = crate::codec::cpu::baseline(|| codec.decode(&twin, place, &vars, per_row, None).unwrap());
                    assert_eq!(back, base, "{rows}x{d1}x{d2} tol {tol} level {level}: decoded");
                }
            }
        }
    }

    /// A block's error statistics are the same to the bit in the tuned twin and in the
    /// baseline's instructions (`ErrStats::add_all`'s lanes), runs between exact elements
    /// long and short, missing elements and non-finite values among them.
    #[test]
    fn error_statistics_are_the_same_in_either_twin() {
        let mut r = crate::codec::xorshift(0x5eed_0f_e440_5a75);
        let n = 10_000;
        let values: Vec<f64> = (0..n).map(|i| if i % 997 == 5 { f64::NAN } else { ((r() % 100_000) as f64 - 50_000.0) * 1e-3 }).collect();
        let rebuilt: Vec<f64> = values.iter().map(|&x| x + ((r() % 2001) as f64 - 1000.0) * 1e-6).collect();
        let exact: Vec<u64> = (0..n as u64).filter(|i| i % 997 == 5 || (3000..3100).contains(i) && i % 3 == 0).collect();
        let missing: Vec<bool> = (0..n).map(|i| i % 997 == 5).collect();
        let bits = |s: ErrStats| (s.n, s.n_resp, [s.max_abs, s.sum_abs, s.sum_res, s.sum_res2, s.sum_resp, s.sum_resp2].map(f64::to_bits));
        let tuned = error_stats(&values, &exact, Some(&missing), |i| rebuilt[i]);
        let base = cpu::baseline(|| error_stats(&values, &exact, Some(&missing), |i| rebuilt[i]));
        assert_eq!(bits(tuned), bits(base));
        assert_eq!(tuned.n, missing.iter().filter(|&&m| !m).count() as u64);
    }

    /// The statistics a walk gathers as it goes (`interp::quantise_counting`) are the ones
    /// `error_stats` makes of its result: the counts and the maximum to the bit, the sums
    /// within their order's rounding; missing elements (a mask, NaN), values beyond the bound's
    /// reach (stored exactly), zeros, f32 and f64, a field with none of these, and the same in
    /// either twin.
    #[test]
    fn a_walk_gathers_the_statistics_error_stats_makes() {
        let mut r = xorshift(0x0a11_57a7_5e11);
        let (dims, n) = ([7usize, 9, 13], 3 * 7 * 9 * 13);
        // Masked, and without a mask or an element beyond the bound (every batch of the walk
        // kept whole, which gathers its statistics without the selects).
        for (dtype, masked) in [(DType::F32, true), (DType::F64, true), (DType::F32, false), (DType::F64, false)] {
            for tol in [1e-1, 1e-3] {
                let values: Vec<f64> = (0..n)
                    .map(|i| match r() % 50 {
                        0 if masked => f64::NAN,
                        1 => 0.0,
                        2 if masked => 1e300,
                        _ => ((i as f64 * 0.05).sin() * 10.0 + (r() % 1000) as f64 * 1e-4) as f32 as f64,
                    })
                    .collect();
                let missing: Vec<bool> = (0..n).map(|i| masked && (i % 31 == 4 || values[i].is_nan())).collect();
                let cfg = interp::Config { grid: dims, ..interp::quick(dims) };
                let valid = |i: usize| !missing[i];
                let mut w = interp::quantise_counting(&cfg, dtype, &values, valid, tol);
                let got = w.stats.expect("a counting walk gathers statistics");
                w.sort_exact();
                let want = error_stats(&values, &w.exact, Some(&missing), |i| w.rebuilt[i]);
                let at = format!("{dtype:?} tol {tol} masked {masked}");
                // Unmasked, all but the odd element at a bin's edge are kept.
                assert!(masked || w.exact.len() * 100 < n, "{at}: {} exact", w.exact.len());
                assert_eq!((got.n, got.n_resp, got.max_abs.to_bits()), (want.n, want.n_resp, want.max_abs.to_bits()), "{at}");
                assert!(got.n > 0 && got.max_abs > 0.0 && got.max_abs <= tol, "{at}: {got:?}");
                let sums = |s: ErrStats| [s.sum_abs, s.sum_res, s.sum_res2, s.sum_resp, s.sum_resp2];
                for (k, (g, e)) in sums(got).iter().zip(sums(want)).enumerate() {
                    assert!((g - e).abs() <= 1e-9 * e.abs().max(1e-12), "{at}, sum {k}: {g} against {e}");
                }
                let base = cpu::baseline(|| interp::quantise_counting(&cfg, dtype, &values, valid, tol).stats.unwrap());
                assert_eq!(format!("{base:?}"), format!("{got:?}"), "{at}: the twins");
                assert!(interp::quantise(&cfg, dtype, &values, valid, tol).stats.is_none());
            }
        }
    }

    /// Below `SEARCH_LEVEL` (the default and the fast levels) a one-slice chunk's walk is
    /// chosen by an estimate on a box of it (`estimate_walk`) and the bound holds. Here (one
    /// slice, smooth across its rows, rough along them, at a loose bound) the estimate finds
    /// the walk the full search finds, not `interp::quick`'s, and lets `ac` in, which saves
    /// more than `AC_MARGIN`: the block is within 2 % of the search's.
    #[test]
    fn a_fast_level_estimates_the_walk_and_holds_the_bound() {
        let (rows, d1, d2) = (1usize, 60usize, 180usize);
        let mut r = xorshift(5);
        let values: Vec<f32> = (0..rows * d1 * d2)
            .map(|i| {
                let (t, y, x) = (i / (d1 * d2), (i / d2) % d1, i % d2);
                (y as f32 * 0.3).sin() * 40.0 + t as f32 + if x % 2 == 0 { 3.0 } else { -3.0 } + (r() % 100) as f32 * 0.01
            })
            .collect();
        let tol = 1.0;
        let var = VarCoding::for_bound(DType::F32, Some(tol), false, false).on_rows(&[d1 as u64, d2 as u64]);
        let coded = |level| match code_field(&values, var, rows, d1 * d2, tol, level, 2) {
            (size, Some(cfg), coder) => (size, cfg, coder),
            _ => panic!("level {level}: not walk-coded"),
        };
        let grid = [1, d1, d2];
        let (searched, walk, coder) = coded(SEARCH_LEVEL);
        assert_ne!(walk, interp::quick(grid), "the search keeps the quick walk here");
        assert_eq!(coder, 3, "the ac stage, which saves more than AC_MARGIN here");
        for level in [FAST_LEVEL, -3, 3] {
            let (fast, cfg, coder) = coded(level);
            assert_eq!(cfg, walk, "level {level}");
            assert_eq!(coder, 3, "level {level}: the ac stage");
            assert!(fast as f64 <= searched as f64 * 1.02, "level {level}: {fast} bytes, the search's {searched}");
        }
    }

    /// Below `SEARCH_LEVEL` a small one-slice chunk is walked, along the walk an estimate
    /// chooses, with no Lorenzo trial; from it the chunk is searched in full, and a surface
    /// that Lorenzo predicts to its noise (a 2-D running sum of sparse jumps: steps that
    /// interpolation smears across) gets Lorenzo. Both hold the bound.
    #[test]
    fn only_a_search_level_tries_lorenzo_on_a_one_slice_chunk() {
        let (d1, d2) = (64usize, 96usize);
        let mut r = xorshift(11);
        let noise: Vec<f64> = (0..d1 * d2).map(|_| if r() % 50 == 0 { (r() % 1000) as f64 * 0.1 } else { 0.0 }).collect();
        let mut sum = vec![0f64; d1 * d2];
        for y in 0..d1 {
            for x in 0..d2 {
                let up = if y > 0 { sum[(y - 1) * d2 + x] } else { 0.0 };
                let left = if x > 0 { sum[y * d2 + x - 1] } else { 0.0 };
                let diag = if x > 0 && y > 0 { sum[(y - 1) * d2 + x - 1] } else { 0.0 };
                sum[y * d2 + x] = noise[y * d2 + x] + up + left - diag;
            }
        }
        let values: Vec<f32> = sum.iter().map(|&v| v as f32).collect();
        let tol = 0.01;
        let var = VarCoding::for_bound(DType::F32, Some(tol), false, false).on_grid(Some([d1, d2]));
        let walked = |level| code_field(&values, var, 1, d1 * d2, tol, level, 1).1.is_some();
        for level in [FAST_LEVEL, 3, 9] {
            assert!(walked(level), "level {level}: Lorenzo was tried");
        }
        for level in [SEARCH_LEVEL, 19] {
            assert!(!walked(level), "level {level}: the search did not find Lorenzo");
        }
    }

    /// A field's walk is searched once where its sampled chunks agree on it
    /// (`ChunkCodec::plan_walks`): the plan is the middle sample's own search, and a chunk coded
    /// with a plan takes its walk, unsearched, within the bound. A sample that wants Lorenzo (a
    /// running sum of sparse jumps, which interpolation smears) leaves each chunk to its own.
    #[test]
    fn a_walk_is_planned_where_the_sampled_chunks_agree() {
        let (rows, d1, d2) = (3usize, 40usize, 50usize);
        let n = rows * d1 * d2;
        let mut r = xorshift(17);
        let mut smooth = |phase: f32| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    let (t, y, x) = (i / (d1 * d2), (i / d2) % d1, i % d2);
                    (t as f32 * 0.7 + phase).cos() * 30.0 + (y as f32 * 0.2).sin() * 20.0 + (x as f32 * 0.05).cos() * 5.0 + (r() % 100) as f32 * 0.001
                })
                .collect()
        };
        let like: Vec<Vec<f32>> = (0..4).map(|k| smooth(k as f32)).collect();
        let mut jumps = vec![0f32; n];
        for t in 0..rows {
            let at = |y: usize, x: usize| t * d1 * d2 + y * d2 + x;
            for y in 0..d1 {
                for x in 0..d2 {
                    let jump = if r() % 50 == 0 { (r() % 1000) as f32 * 0.1 } else { 0.0 };
                    let up = if y > 0 { jumps[at(y - 1, x)] } else { 0.0 };
                    let left = if x > 0 { jumps[at(y, x - 1)] } else { 0.0 };
                    let diag = if x > 0 && y > 0 { jumps[at(y - 1, x - 1)] } else { 0.0 };
                    jumps[at(y, x)] = jump + up + left - diag;
                }
            }
        }
        let tol = 0.01;
        let var = VarCoding::for_bound(DType::F32, Some(tol), false, false).on_rows(&[d1 as u64, d2 as u64]);
        let bytes = |v: &[f32]| vec![v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()];
        let codec = ChunkCodec { level: 9, threads: 1 };
        let plan = |samples: &[&[f32]]| codec.plan_walks(&[var], samples.iter().map(|s| Ok::<_, ()>(bytes(s)))).unwrap()[0].walk;
        let Some(WalkPlan::Walk(cfg)) = plan(&[&like[0], &like[1], &like[2]]) else { panic!("no walk planned for like chunks") };
        assert_eq!(code_field(&like[1], var, rows, d1 * d2, tol, 9, 1).1, Some(cfg), "the middle sample's own search");
        // Any planned walk is taken as it is, not searched again: one the search did not pick.
        let other = interp::candidates(cfg.grid).into_iter().find(|&c| c != cfg).expect("six candidates");
        let planned = VarCoding { walk: Some(WalkPlan::Walk(other)), ..var };
        assert_eq!(code_field(&like[3], planned, rows, d1 * d2, tol, 9, 1).1, Some(other));
        assert!(matches!(plan(&[&jumps]), Some(WalkPlan::Lorenzo | WalkPlan::Close(_))), "the jumps want Lorenzo");
        assert_eq!(plan(&[&like[0], &jumps, &like[2]]), None);
        assert_eq!(plan(&[&like[0], &like[1], &jumps]), None);
        let searching = ChunkCodec { level: SEARCH_LEVEL, threads: 1 };
        let samples = [&like[0], &like[1], &like[2]].map(|s| Ok::<_, ()>(bytes(s)));
        assert_eq!(searching.plan_walks(&[var], samples).unwrap()[0].walk, None, "a search level searches every chunk");
    }

    /// A fast level prices the walks of a chunk of more than one slice as the default level
    /// does (the estimate misranked such boxes' walks), on a box a quarter the size: a chunk
    /// within it is coded along the walk the default's search chooses.
    #[test]
    fn a_fast_level_walks_a_deep_chunk_as_the_search_does() {
        let (rows, d1, d2) = (3usize, 40usize, 50usize);
        let mut r = xorshift(9);
        let values: Vec<f32> = (0..rows * d1 * d2)
            .map(|i| {
                let (t, y, x) = (i / (d1 * d2), (i / d2) % d1, i % d2);
                (t as f32 * 0.7).cos() * 30.0 + (y as f32 * 0.2).sin() * 20.0 + (x as f32 * 0.05).cos() * 5.0 + (r() % 100) as f32 * 0.001
            })
            .collect();
        let tol = 0.5;
        let var = VarCoding::for_bound(DType::F32, Some(tol), false, false).on_rows(&[d1 as u64, d2 as u64]);
        let walk = |level| code_field(&values, var, rows, d1 * d2, tol, level, 1).1;
        let searched = walk(3).expect("the search walks this chunk");
        assert_ne!(searched, interp::quick([1, d1, d2]), "the search keeps the quick walk here");
        assert_eq!(walk(FAST_LEVEL), Some(searched));
    }
}
