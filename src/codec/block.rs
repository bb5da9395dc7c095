//! One variable's block of a chunk: the single parser of every block method (format spec,
//! "blocks"), which decoding, the layout walk of `inspect` and the fuzz targets all go through,
//! and the writer of the staged method new archives use.

use super::errstats::ErrStats;
use super::stages::{self, Chain};
use super::{bytes, interp, model_stage, quantise};
use crate::dtype::{extend_values, i64_to_ints, DType};
use crate::wire::{put_varint, Cursor};

pub const METHOD_RAW: u8 = 0;
pub const METHOD_INTEGER: u8 = 1;
/// Format 1 before the model stage: quantised codes without error statistics. Still read.
pub const METHOD_QUANTISED: u8 = 2;
/// Quantised to the bound, optionally against the model's integer prediction (first release;
/// still read, no longer written).
pub const METHOD_PREDICTED: u8 = 3;
/// The model's output as is (`--error none`): no residual, no bound.
pub const METHOD_MODEL_ONLY: u8 = 4;
/// METHOD_PREDICTED's successor: counts as varints, exact elements always as gaps, error
/// statistics compact. About 60 bytes less per block, which a table of many narrow columns feels.
pub const METHOD_STAGED: u8 = 5;

pub const FLAG_MODEL: u8 = 1;
/// METHOD_PREDICTED: the exact elements are listed as gaps (always so in METHOD_STAGED).
pub const FLAG_GAPS: u8 = 2;
/// METHOD_STAGED: no step in the block; it is twice the variable's tolerance as the header
/// states it.
pub const FLAG_STEP_KNOWN: u8 = 2;
/// METHOD_STAGED: the codes are symbols of in-loop quantisation along an interpolation walk
/// (`interp`), in walk order; its configuration follows the exact-element count.
pub const FLAG_INTERP: u8 = 4;
/// METHOD_STAGED, never with FLAG_MODEL: the codes leave out the exact elements (a mask of fill
/// values is stored once, not coded again as residuals). Walk symbols: each reads 0. Other
/// codes: the integer block holds the others' residuals, and its first array stage rebuilds an
/// exact element's code as the last kept code before it, 0 before the first.
pub const FLAG_OMIT: u8 = 8;
/// METHOD_STAGED: the exact elements are listed as runs (`varint e`, then an integer block of
/// 2e lengths: kept, exact, kept, exact, ...) instead of gaps: a land mask is a few runs a row.
pub const FLAG_RUNS: u8 = 16;

/// An integer block's stages and payload, not yet decoded.
pub struct Codes<'a> {
    pub chain: Chain,
    pub payload: &'a [u8],
    pub n: usize,
}

impl<'a> Codes<'a> {
    fn read(cur: &mut Cursor<'a>, n: usize) -> Result<Codes<'a>, String> {
        let (chain, payload) = stages::read(cur, n)?;
        Ok(Codes { chain, payload, n })
    }

    pub fn decode(&self, refs: &stages::Refs) -> Result<Vec<i64>, String> {
        self.chain.decode(self.payload, self.n, refs)
    }

    /// `decode` for FLAG_OMIT: the payload holds the codes of the elements not `omitted`.
    pub fn decode_omitting(&self, refs: &stages::Refs, omitted: &[bool]) -> Result<Vec<i64>, String> {
        self.chain.decode_omitting(self.payload, self.n, Some(omitted), refs)
    }
}

/// Elements stored exactly (outliers, missing values).
pub enum Exact<'a> {
    None,
    /// `zstd(u64 indices, then values)`.
    Listed { k: u64, payload: &'a [u8] },
    /// Index gaps as an integer block, then `zstd(shuffle(values))`.
    Gaps { k: u64, gaps: Codes<'a>, values: &'a [u8] },
    /// Run lengths (FLAG_RUNS) as an integer block, then `zstd(shuffle(values))`.
    Runs { k: u64, runs: Codes<'a>, values: &'a [u8] },
}

/// What the model stage adds to a quantised block.
pub struct ModelPart<'a> {
    pub escapes: Option<Codes<'a>>,
    pub crc: u32,
}

pub enum Body<'a> {
    /// `width`: the byte shuffle's element size, the dtype's or 1 (bytes as they come).
    Raw { width: usize, payload: &'a [u8] },
    Integer(Codes<'a>),
    /// `omit`: FLAG_OMIT.
    Quantised { step: f64, model: Option<ModelPart<'a>>, interp: Option<interp::Config>, codes: Codes<'a>, exact: Exact<'a>, omit: bool },
    ModelOnly { exact: Exact<'a> },
}

pub struct Block<'a> {
    pub method: u8,
    pub body: Body<'a>,
    pub errors: Option<ErrStats>,
    /// Bytes the block spans.
    pub bytes: u64,
}

impl Block<'_> {
    pub fn used_model(&self) -> bool {
        matches!(self.body, Body::ModelOnly { .. } | Body::Quantised { model: Some(_), .. })
    }
}

fn read_listed<'a>(cur: &mut Cursor<'a>, k: u64, n: usize) -> Result<Exact<'a>, String> {
    if k > n as u64 {
        return Err(format!("{k} outliers in a block of {n} elements"));
    }
    let len = cur.u64("outlier payload length")?;
    let payload = cur.bytes(len, "outlier payload")?;
    if k == 0 {
        return if len == 0 { Ok(Exact::None) } else { Err("outlier payload without outliers".into()) };
    }
    Ok(Exact::Listed { k, payload })
}

fn read_gaps<'a>(cur: &mut Cursor<'a>, k: u64, n: usize, varint_len: bool) -> Result<Exact<'a>, String> {
    if k == 0 || k > n as u64 {
        return Err(format!("{k} gap-listed exact elements in a block of {n}"));
    }
    let gaps = Codes::read(cur, k as usize)?;
    let len = if varint_len { cur.varint("exact values length")? } else { cur.u64("exact values length")? };
    Ok(Exact::Gaps { k, gaps, values: cur.bytes(len, "exact values")? })
}

fn read_runs<'a>(cur: &mut Cursor<'a>, k: u64, n: usize) -> Result<Exact<'a>, String> {
    if k == 0 || k > n as u64 {
        return Err(format!("{k} run-listed exact elements in a block of {n}"));
    }
    // Each exact run holds at least one element.
    let e = cur.varint("exact run count")?;
    if e == 0 || e > k {
        return Err(format!("{e} runs of {k} exact elements"));
    }
    let runs = Codes::read(cur, 2 * e as usize)?;
    let len = cur.varint("exact values length")?;
    Ok(Exact::Runs { k, runs, values: cur.bytes(len, "exact values")? })
}

/// Parses the block of a variable of `dtype` holding `n` elements at the cursor; `known_step`
/// is the quantisation step the reader's header implies (None where it implies none).
pub fn read<'a>(cur: &mut Cursor<'a>, dtype: DType, n: usize, known_step: Option<f64>) -> Result<Block<'a>, String> {
    let start = cur.remaining();
    let method = cur.u8("method")?;
    let numeric = || if dtype == DType::Bool { Err(format!("method {method} block for a {dtype} variable")) } else { Ok(()) };
    let (body, errors) = match method {
        METHOD_RAW => {
            let width = cur.u8("shuffle width")? as usize;
            if !(width == dtype.size() || width == 1) || !(dtype.is_float() || dtype == DType::Bool) {
                return Err(format!("raw block shuffled as {width}-byte elements for a {dtype} variable"));
            }
            let len = cur.u64("payload length")?;
            (Body::Raw { width, payload: cur.bytes(len, "payload")? }, None)
        }
        METHOD_INTEGER => {
            if dtype.is_float() || dtype == DType::Bool {
                return Err(format!("integer block for a {dtype} variable"));
            }
            (Body::Integer(Codes::read(cur, n)?), None)
        }
        METHOD_QUANTISED | METHOD_PREDICTED | METHOD_STAGED => {
            numeric()?;
            let staged = method == METHOD_STAGED;
            let flags = if method == METHOD_QUANTISED { 0 } else { cur.u8("flags")? };
            let known = if staged { FLAG_MODEL | FLAG_STEP_KNOWN | FLAG_INTERP | FLAG_OMIT | FLAG_RUNS } else { FLAG_MODEL | FLAG_GAPS };
            let both = |a: u8, b: u8| flags & (a | b) == a | b;
            if flags & !known != 0 || both(FLAG_MODEL, FLAG_INTERP) || both(FLAG_MODEL, FLAG_OMIT) {
                return Err(format!("unknown block flags {flags:#x}"));
            }
            let step = if staged && flags & FLAG_STEP_KNOWN != 0 {
                known_step.ok_or("block takes its step from a tolerance the header does not state")?
            } else {
                cur.f64("step")?
            };
            if !(step.is_finite() && step > 0.0) {
                return Err(format!("invalid quantisation step {step}"));
            }
            let k = if staged { cur.varint("outlier count")? } else { cur.u64("outlier count")? };
            let interp = if staged && flags & FLAG_INTERP != 0 { Some(interp::Config::read(cur, n)?) } else { None };
            let model = if flags & FLAG_MODEL != 0 {
                let ne = if staged { cur.varint("escape count")? } else { cur.u64("escape count")? };
                if ne > n as u64 {
                    return Err(format!("{ne} escapes in a block of {n} elements"));
                }
                let escapes = if ne > 0 { Some(Codes::read(cur, ne as usize)?) } else { None };
                Some(ModelPart { escapes, crc: cur.u32("code crc")? })
            } else {
                None
            };
            let omit = flags & FLAG_OMIT != 0;
            if (omit || flags & FLAG_RUNS != 0) && k == 0 {
                return Err(format!("block flags {flags:#x} without exact elements"));
            }
            if k > n as u64 {
                return Err(format!("{k} exact elements in a block of {n}"));
            }
            // Walk symbols of the kept elements only; other codes name their stages for all
            // `n` (a Lorenzo grid tiles the block), their payload holding the kept ones.
            let codes = Codes::read(cur, if omit && interp.is_some() { n - k as usize } else { n })?;
            let exact = match (staged, flags & FLAG_GAPS != 0) {
                (true, _) if k == 0 => Exact::None,
                (true, _) if flags & FLAG_RUNS != 0 => read_runs(cur, k, n)?,
                (true, _) => read_gaps(cur, k, n, true)?,
                (false, true) => read_gaps(cur, k, n, false)?,
                (false, false) => read_listed(cur, k, n)?,
            };
            let errors = match method {
                METHOD_PREDICTED => Some(ErrStats::read(cur)?),
                METHOD_STAGED => Some(ErrStats::read_compact(cur)?),
                _ => None,
            };
            (Body::Quantised { step, model, interp, codes, exact, omit }, errors)
        }
        METHOD_MODEL_ONLY => {
            numeric()?;
            let k = cur.u64("outlier count")?;
            let exact = read_listed(cur, k, n)?;
            (Body::ModelOnly { exact }, Some(ErrStats::read(cur)?))
        }
        m => return Err(format!("unknown coding method {m}")),
    };
    Ok(Block { method, body, errors, bytes: (start - cur.remaining()) as u64 })
}

impl Exact<'_> {
    /// Which of the `n` elements are listed (each index below `n`, ascending), and their values
    /// (`size` bytes each), in index order; both empty where none is (most blocks: no flag an
    /// element to allocate and scan).
    fn listed(&self, n: usize, size: usize) -> Result<(Vec<bool>, Vec<u8>), String> {
        if let Exact::None = self {
            return Ok((Vec::new(), Vec::new()));
        }
        let values = |k: u64, values: &[u8]| -> Result<Vec<u8>, String> { Ok(bytes::unshuffle(size, &bytes::decompress(values, k as usize * size)?)) };
        let mut mask = vec![false; n];
        // Marks element `i` after `prev` (ascending) as listed.
        let mut mark = |i: u64, prev: Option<u64>| -> Result<u64, String> {
            if i >= n as u64 || prev.is_some_and(|p| p >= i) {
                return Err(format!("exact element index {i} out of order or beyond the block's {n}"));
            }
            mask[i as usize] = true;
            Ok(i)
        };
        let vals = match self {
            Exact::None => Vec::new(),
            Exact::Listed { k, payload } => {
                let mut raw = bytes::decompress(payload, *k as usize * (8 + size))?;
                let vals = raw.split_off(*k as usize * 8);
                let mut prev = None;
                for ib in raw.chunks_exact(8) {
                    prev = Some(mark(u64::from_le_bytes(ib.try_into().unwrap()), prev)?);
                }
                vals
            }
            Exact::Gaps { k, gaps, values: v } => {
                let mut prev: Option<u64> = None;
                for g in gaps.decode(&stages::Refs::NONE)? {
                    let i = match prev {
                        None if g >= 0 => g as u64,
                        Some(p) if g > 0 => p.checked_add(g as u64).ok_or("exact element index overflows")?,
                        _ => return Err(format!("exact element gap {g} out of order")),
                    };
                    prev = Some(mark(i, prev)?);
                }
                values(*k, v)?
            }
            Exact::Runs { k, runs, values: v } => {
                let (mut at, mut listed) = (0u64, 0u64);
                for (j, pair) in runs.decode(&stages::Refs::NONE)?.chunks_exact(2).enumerate() {
                    let (skip, take) = (pair[0], pair[1]);
                    // Only the first kept run may be empty; every exact run holds one or more.
                    if skip < (j > 0) as i64 || take < 1 || take as u64 > *k - listed {
                        return Err(format!("exact element runs {skip}, {take} out of range"));
                    }
                    at = at.checked_add(skip as u64).filter(|&a| a + take as u64 <= n as u64).ok_or_else(|| format!("exact element runs beyond the block's {n}"))?;
                    mask[at as usize..(at + take as u64) as usize].fill(true);
                    at += take as u64;
                    listed += take as u64;
                }
                if listed != *k {
                    return Err(format!("exact element runs list {listed} of {k}"));
                }
                values(*k, v)?
            }
        };
        Ok((mask, vals))
    }

    /// Overwrites the listed elements of `out` (`n` elements of `size` bytes).
    fn apply(&self, n: usize, size: usize, out: &mut [u8]) -> Result<(), String> {
        let (mask, vals) = self.listed(n, size)?;
        put_exact(&mask, &vals, size, out)
    }
}

/// Writes the exact `vals` (`size` bytes each, in index order) of the elements `mask` flags into
/// `out`.
fn put_exact(mask: &[bool], vals: &[u8], size: usize, out: &mut [u8]) -> Result<(), String> {
    if out.len() < mask.len() * size {
        return Err(format!("{} bytes for {} elements", out.len(), mask.len()));
    }
    // At a size the compiler knows each copy is a move, not a call (a Levitus chunk's 576 000
    // fill values were 60 instructions each).
    match size {
        4 => put_exact_as::<4>(mask, vals, out),
        8 => put_exact_as::<8>(mask, vals, out),
        2 => put_exact_as::<2>(mask, vals, out),
        1 => put_exact_as::<1>(mask, vals, out),
        _ => {
            let mut v = vals.chunks_exact(size.max(1));
            for (i, _) in mask.iter().enumerate().filter(|(_, &m)| m) {
                let x = v.next().ok_or_else(|| too_few_exact(vals))?;
                out[i * size..(i + 1) * size].copy_from_slice(x);
            }
            Ok(())
        }
    }
}

fn too_few_exact(vals: &[u8]) -> String {
    format!("{} bytes of exact values for more elements", vals.len())
}

/// `put_exact` for elements of `S` bytes.
fn put_exact_as<const S: usize>(mask: &[bool], vals: &[u8], out: &mut [u8]) -> Result<(), String> {
    let mut v = vals;
    let mut take = |o: &mut [u8]| -> Result<(), String> {
        let (x, rest) = v.split_at_checked(o.len()).ok_or_else(|| too_few_exact(vals))?;
        o.copy_from_slice(x);
        v = rest;
        Ok(())
    };
    // Eight flags at a time: exact elements come in runs (land, a fill value's region), and
    // so do the others.
    let whole = mask.len() / 8 * 8;
    let out = &mut out[..mask.len() * S];
    let (head, tail) = out.split_at_mut(whole * S);
    for (o, m) in head.chunks_exact_mut(8 * S).zip(mask.chunks_exact(8)) {
        let flags = u64::from_le_bytes(std::array::from_fn(|j| m[j] as u8));
        if flags == 0 {
            continue;
        }
        if flags == 0x0101_0101_0101_0101 {
            take(o)?;
            continue;
        }
        for (e, _) in o.chunks_exact_mut(S).zip(m).filter(|(_, &f)| f) {
            take(e)?;
        }
    }
    for (e, _) in tail.chunks_exact_mut(S).zip(&mask[whole..]).filter(|(_, &f)| f) {
        take(e)?;
    }
    Ok(())
}

/// A decoded block: its elements' bytes, and its integer codes (what later blocks of the chunk
/// may be predicted from).
pub struct Decoded {
    pub bytes: Vec<u8>,
    pub codes: Option<Vec<i64>>,
}

/// Decodes a parsed block of `n` elements; `pred` is the model's prediction for the variable
/// when the chunk carries a latent, `refs` the codes of the variables decoded before it.
/// `threads`: how many the caller can spare (an interpolation walk's coder may run on a second).
pub fn decode(block: &Block, dtype: DType, n: usize, pred: Option<&[f64]>, refs: &stages::Refs, threads: usize) -> Result<Decoded, String> {
    let size = dtype.size();
    match &block.body {
        Body::Raw { width, payload } => Ok(Decoded { bytes: bytes::unshuffle(*width, &bytes::decompress(payload, n * size)?), codes: None }),
        Body::Integer(codes) => {
            let codes = codes.decode(refs)?;
            Ok(Decoded { bytes: i64_to_ints(dtype, &codes), codes: Some(codes) })
        }
        Body::Quantised { step, interp: Some(cfg), codes, exact, omit, .. } => {
            let (mask, vals) = exact.listed(n, size)?;
            let omitted = omit.then_some(&mask[..]);
            // Symbols of the walk: no reference stages on them, and none for later variables.
            // The walk takes them as `rans` decodes them where the chain allows (no buffer);
            // the stream built to ask serves the first walk (its coder a ring ahead on a second
            // thread where there is one), a second one (`dequantise`'s f64 walk, rare) gets a
            // fresh one.
            let mut out = match codes.chain.stream(codes.payload, codes.n) {
                Some(first) => first?.ahead(threads, |first| {
                    let mut first = Some(Ok(first));
                    let fresh = || first.take().unwrap_or_else(|| codes.chain.stream(codes.payload, codes.n).expect("the chain streams"));
                    let (out, stream) = interp::dequantise(cfg, dtype, fresh, n, omitted, *step)?;
                    stream.finish()?;
                    Ok::<_, String>(out)
                })?,
                None => {
                    let symbols = codes.decode(&stages::Refs::NONE)?;
                    interp::dequantise(cfg, dtype, || Ok(interp::from_slice(&symbols)), n, omitted, *step)?.0
                }
            };
            put_exact(&mask, &vals, size, &mut out)?;
            Ok(Decoded { bytes: out, codes: None })
        }
        Body::Quantised { step, model, interp: None, codes, exact, omit } => {
            let step = *step;
            let (mask, vals) = exact.listed(n, size)?;
            let codes = match model {
                Some(m) => {
                    let p = pred.ok_or("block coded against a model prediction the chunk does not carry")?;
                    let mut escaped = vec![false; n];
                    if let Some(e) = &m.escapes {
                        let mut at = 0u64;
                        for (j, d) in e.decode(&stages::Refs::NONE)?.into_iter().enumerate() {
                            at = at
                                .checked_add(d as u64)
                                .filter(|&a| a < n as u64 && (j == 0 || d > 0))
                                .ok_or("escape list out of order or range")?;
                            escaped[at as usize] = true;
                        }
                    }
                    // Residuals against a model are coded on their own: no reference stages.
                    let residual = codes.decode(&stages::Refs::NONE)?;
                    let codes: Vec<i64> = residual
                        .iter()
                        .zip(p)
                        .zip(&escaped)
                        .map(|((&r, &p), &e)| r.wrapping_add(model_stage::integer_prediction(p, step, e)))
                        .collect();
                    if model_stage::codes_crc(&codes) != m.crc {
                        return Err("the model's prediction here differs from the one the archive was packed with by \
                                    more than its tolerance (another ONNX Runtime build or execution provider?): \
                                    refusing to return values outside the bound"
                            .into());
                    }
                    codes
                }
                // The parser refuses FLAG_OMIT with FLAG_MODEL.
                None if *omit => codes.decode_omitting(refs, &mask)?,
                None => codes.decode(refs)?,
            };
            let mut out = Vec::new();
            extend_values(dtype, codes.iter().map(|&c| quantise::reconstruct(dtype, 0.0, c, step)), &mut out);
            put_exact(&mask, &vals, size, &mut out)?;
            Ok(Decoded { bytes: out, codes: Some(codes) })
        }
        Body::ModelOnly { exact } => {
            let p = pred.ok_or("model-only block in a chunk without a latent")?;
            let mut out = Vec::new();
            extend_values(dtype, p.iter().map(|&v| quantise::reconstruct(dtype, v, 0, 1.0)), &mut out);
            exact.apply(n, size, &mut out)?;
            Ok(Decoded { bytes: out, codes: None })
        }
    }
}

/// Ascending indices as the block layouts list them: the first, then each minus the one before.
pub fn index_gaps(idx: &[u64]) -> Vec<i64> {
    idx.iter()
        .scan(0u64, |prev, &i| {
            let g = i - *prev;
            *prev = i;
            Some(g as i64)
        })
        .collect()
}

/// Writes a METHOD_STAGED block: `model` is the escape list and code CRC when the codes are
/// residuals against the model, `codes` the integer block already encoded.
pub struct StagedBlock<'a> {
    pub step: f64,
    /// The decoder knows the step (FLAG_STEP_KNOWN): it is left out.
    pub step_known: bool,
    pub model: Option<(&'a [u8], u64, u32)>,
    /// The codes are in-loop interpolation symbols (never with `model`).
    pub interp: Option<interp::Config>,
    pub codes: &'a [u8],
    /// `codes` leave out the `exact` elements (FLAG_OMIT; never with `model`).
    pub omit: bool,
    pub exact: &'a [u64],
    pub stats: &'a ErrStats,
}

/// The run lengths FLAG_RUNS lists ascending indices as: kept, exact, kept, exact, ...
pub fn index_runs(idx: &[u64]) -> Vec<i64> {
    let mut runs = Vec::new();
    let mut next = 0u64;
    for (j, &i) in idx.iter().enumerate() {
        if j > 0 && i == next {
            *runs.last_mut().expect("a run before") += 1;
        } else {
            runs.push((i - next) as i64);
            runs.push(1);
        }
        next = i + 1;
    }
    runs
}

impl StagedBlock<'_> {
    pub fn write(&self, size: usize, data: &[u8], level: i32, out: &mut Vec<u8>) {
        debug_assert!(!(self.omit && (self.model.is_some() || self.exact.is_empty())));
        // The exact elements as gaps, or as runs where those are smaller (a mask's rows). Where
        // the runs are few (a land mask: 2-9 % of its elements on the real fields, and the runs
        // 7-44 % smaller) or most elements stand alone (outliers), only the likely winner is
        // coded: a mask's gaps are the slowest list to code.
        let mut list = Vec::new();
        let mut runs = false;
        if !self.exact.is_empty() {
            let k = self.exact.len();
            let r = index_runs(self.exact);
            let pairs = r.len() / 2;
            if pairs * 2 < k {
                put_varint(&mut list, pairs as u64);
                super::ints::encode(&r, level, None, &mut list);
                runs = true;
            }
            if pairs * 8 > k {
                let mut gaps = Vec::new();
                super::ints::encode(&index_gaps(self.exact), level, None, &mut gaps);
                if !runs || gaps.len() <= list.len() {
                    (list, runs) = (gaps, false);
                }
            }
        }
        out.push(METHOD_STAGED);
        out.push(
            if self.model.is_some() { FLAG_MODEL } else { 0 }
                | if self.step_known { FLAG_STEP_KNOWN } else { 0 }
                | if self.interp.is_some() { FLAG_INTERP } else { 0 }
                | if self.omit { FLAG_OMIT } else { 0 }
                | if runs { FLAG_RUNS } else { 0 },
        );
        if !self.step_known {
            out.extend_from_slice(&self.step.to_le_bytes());
        }
        put_varint(out, self.exact.len() as u64);
        if let Some(cfg) = &self.interp {
            cfg.write(out);
        }
        if let Some((escapes, ne, crc)) = self.model {
            put_varint(out, ne);
            out.extend_from_slice(escapes);
            out.extend_from_slice(&crc.to_le_bytes());
        }
        out.extend_from_slice(self.codes);
        if !self.exact.is_empty() {
            out.extend_from_slice(&list);
            let mut raw = Vec::with_capacity(self.exact.len() * size);
            for &i in self.exact {
                let i = i as usize;
                raw.extend_from_slice(&data[i * size..(i + 1) * size]);
            }
            let payload = bytes::compress(&bytes::shuffle(size, &raw), level);
            put_varint(out, payload.len() as u64);
            out.extend_from_slice(&payload);
        }
        self.stats.write_compact(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `put_exact` writes each flagged element's bytes at its place and leaves the others, at
    /// every element size (those it copies at a known size, eight flags at a time, and the
    /// rest), whatever the flags' runs and wherever the mask ends; too few values is an error.
    #[test]
    fn exact_values_land_at_their_places() {
        let mut r = crate::codec::xorshift(5);
        for size in [1, 2, 3, 4, 8] {
            for n in [0, 1, 7, 8, 9, 63, 64, 200] {
                // Runs of flags of random lengths, some longer than eight.
                let mut mask = Vec::with_capacity(n);
                while mask.len() < n {
                    let (flag, len) = (r() % 2 == 0, 1 + (r() % 20) as usize);
                    mask.extend(std::iter::repeat_n(flag, len.min(n - mask.len())));
                }
                let k = mask.iter().filter(|&&m| m).count();
                let vals: Vec<u8> = (0..k * size).map(|_| r() as u8).collect();
                let before: Vec<u8> = (0..n * size + 5).map(|_| r() as u8).collect();
                let mut want = before.clone();
                let mut v = vals.chunks_exact(size);
                for i in (0..n).filter(|&i| mask[i]) {
                    want[i * size..(i + 1) * size].copy_from_slice(v.next().unwrap());
                }
                let mut out = before.clone();
                put_exact(&mask, &vals, size, &mut out).unwrap();
                assert_eq!(out, want, "size {size}, {n} elements");
                if k > 0 {
                    let mut out = before.clone();
                    assert!(put_exact(&mask, &vals[..vals.len() - size], size, &mut out).unwrap_err().contains("exact values for more elements"));
                }
            }
        }
    }

    /// Exact elements come back at their places with their bytes, listed as runs where they
    /// cluster (a mask) and as gaps where they scatter; a run list that does not add up to the
    /// count is refused.
    #[test]
    fn exact_elements_listed_as_runs_or_gaps_come_back() {
        let n = 500usize;
        let data: Vec<u8> = (0..n as u32).flat_map(|i| (i as f32 * 0.5).to_le_bytes()).collect();
        let patterns: Vec<(Vec<u64>, bool)> = vec![
            (vec![0], false),
            (vec![n as u64 - 1], false),
            ((0..n as u64).collect(), true),
            ((3..6).chain(9..10).chain(20..140).chain(490..500).collect(), true),
            ((0..n as u64).step_by(3).collect(), false),
        ];
        let mut codes = Vec::new();
        super::super::ints::encode(&vec![0; n], 3, None, &mut codes);
        for (exact, by_runs) in patterns {
            let stats = ErrStats::default();
            let block = StagedBlock { step: 1.0, step_known: false, model: None, interp: None, codes: &codes, omit: false, exact: &exact, stats: &stats };
            let mut out = Vec::new();
            block.write(4, &data, 3, &mut out);
            assert_eq!(out[1] & FLAG_RUNS != 0, by_runs, "{} exact", exact.len());
            let mut cur = Cursor::new(&out);
            let Block { body: Body::Quantised { exact: listed, .. }, .. } = read(&mut cur, DType::F32, n, None).unwrap() else { panic!("a quantised block") };
            cur.finish("block").unwrap();
            let (mask, vals) = listed.listed(n, 4).unwrap();
            assert_eq!((0..n as u64).filter(|&i| mask[i as usize]).collect::<Vec<_>>(), exact);
            let want: Vec<u8> = exact.iter().flat_map(|&i| data[i as usize * 4..i as usize * 4 + 4].to_vec()).collect();
            assert_eq!(vals, want);
        }
        // A block that says more of its elements are exact than it holds, and omits them.
        let stats = ErrStats::default();
        let block = StagedBlock { step: 1.0, step_known: false, model: None, interp: None, codes: &codes, omit: true, exact: &[1, 2], stats: &stats };
        let mut out = Vec::new();
        block.write(4, &data, 3, &mut out);
        let k_at = 2 + 8;
        assert_eq!(out[k_at], 2, "K follows the flags and the step");
        out[k_at] = 0x7f;
        assert!(read(&mut Cursor::new(&out), DType::F32, 100, None).err().unwrap().contains("127 exact elements in a block of 100"));
        // Runs of 2 + 3 elements where the block says 6 are exact.
        let mut runs = Vec::new();
        super::super::ints::encode(&[1, 2, 4, 3], 3, None, &mut runs);
        let mut cur = Cursor::new(&runs);
        let bad = Exact::Runs { k: 6, runs: Codes::read(&mut cur, 4).unwrap(), values: &[] };
        assert!(bad.listed(n, 4).unwrap_err().contains("runs"));
    }
}
