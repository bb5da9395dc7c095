//! One variable's block of a chunk: the single parser of every block method (format spec,
//! "blocks"), which decoding, the layout walk of `inspect` and the fuzz targets all go through,
//! and the writer of the staged method new archives use.

use super::errstats::ErrStats;
use super::stages::{self, Chain};
use super::{bytes, interp, model_stage, quantise};
use crate::dtype::{i64_to_ints, push_value, push_values, DType};
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
}

/// Elements stored exactly (outliers, missing values).
pub enum Exact<'a> {
    None,
    /// `zstd(u64 indices, then values)`.
    Listed { k: u64, payload: &'a [u8] },
    /// Index gaps as an integer block, then `zstd(shuffle(values))`.
    Gaps { k: u64, gaps: Codes<'a>, values: &'a [u8] },
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
    Quantised { step: f64, model: Option<ModelPart<'a>>, interp: Option<interp::Config>, codes: Codes<'a>, exact: Exact<'a> },
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
            let known = if staged { FLAG_MODEL | FLAG_STEP_KNOWN | FLAG_INTERP } else { FLAG_MODEL | FLAG_GAPS };
            if flags & !known != 0 || (flags & (FLAG_MODEL | FLAG_INTERP)) == (FLAG_MODEL | FLAG_INTERP) {
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
            let codes = Codes::read(cur, n)?;
            let exact = match (staged, flags & FLAG_GAPS != 0) {
                (true, _) if k == 0 => Exact::None,
                (true, _) => read_gaps(cur, k, n, true)?,
                (false, true) => read_gaps(cur, k, n, false)?,
                (false, false) => read_listed(cur, k, n)?,
            };
            let errors = match method {
                METHOD_PREDICTED => Some(ErrStats::read(cur)?),
                METHOD_STAGED => Some(ErrStats::read_compact(cur)?),
                _ => None,
            };
            (Body::Quantised { step, model, interp, codes, exact }, errors)
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
    /// Overwrites the listed elements of `out` (`n` elements of `size` bytes).
    fn apply(&self, n: usize, size: usize, out: &mut [u8]) -> Result<(), String> {
        match self {
            Exact::None => Ok(()),
            Exact::Listed { k, payload } => {
                let raw = bytes::decompress(payload, *k as usize * (8 + size))?;
                let (idx, vals) = raw.split_at(*k as usize * 8);
                let mut prev: Option<u64> = None;
                for (j, ib) in idx.chunks_exact(8).enumerate() {
                    let i = u64::from_le_bytes(ib.try_into().unwrap());
                    if i >= n as u64 || prev.is_some_and(|p| p >= i) {
                        return Err(format!("outlier index {i} out of order or range"));
                    }
                    prev = Some(i);
                    let i = i as usize;
                    out[i * size..(i + 1) * size].copy_from_slice(&vals[j * size..(j + 1) * size]);
                }
                Ok(())
            }
            Exact::Gaps { k, gaps, values } => {
                let gaps = gaps.decode(&stages::Refs::NONE)?;
                let vals = bytes::unshuffle(size, &bytes::decompress(values, *k as usize * size)?);
                let mut at: Option<u64> = None;
                for (j, &g) in gaps.iter().enumerate() {
                    let i = match at {
                        None if g >= 0 => g as u64,
                        Some(p) if g > 0 => p.checked_add(g as u64).ok_or("exact element index overflows")?,
                        _ => return Err(format!("exact element gap {g} out of order")),
                    };
                    if i >= n as u64 {
                        return Err(format!("exact element index {i} beyond the block's {n}"));
                    }
                    at = Some(i);
                    let i = i as usize;
                    out[i * size..(i + 1) * size].copy_from_slice(&vals[j * size..(j + 1) * size]);
                }
                Ok(())
            }
        }
    }
}

/// A decoded block: its elements' bytes, and its integer codes (what later blocks of the chunk
/// may be predicted from).
pub struct Decoded {
    pub bytes: Vec<u8>,
    pub codes: Option<Vec<i64>>,
}

/// Decodes a parsed block of `n` elements; `pred` is the model's prediction for the variable
/// when the chunk carries a latent, `refs` the codes of the variables decoded before it.
pub fn decode(block: &Block, dtype: DType, n: usize, pred: Option<&[f64]>, refs: &stages::Refs) -> Result<Decoded, String> {
    let size = dtype.size();
    match &block.body {
        Body::Raw { width, payload } => Ok(Decoded { bytes: bytes::unshuffle(*width, &bytes::decompress(payload, n * size)?), codes: None }),
        Body::Integer(codes) => {
            let codes = codes.decode(refs)?;
            Ok(Decoded { bytes: i64_to_ints(dtype, &codes), codes: Some(codes) })
        }
        Body::Quantised { step, interp: Some(cfg), codes, exact, .. } => {
            // Symbols of the walk: no reference stages on them, and none for later variables.
            let symbols = codes.decode(&stages::Refs::NONE)?;
            let mut out = Vec::with_capacity(n * size);
            push_values(dtype, &interp::dequantise(cfg, dtype, &symbols, *step), &mut out);
            exact.apply(n, size, &mut out)?;
            Ok(Decoded { bytes: out, codes: None })
        }
        Body::Quantised { step, model, interp: None, codes, exact } => {
            let step = *step;
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
                None => codes.decode(refs)?,
            };
            let mut out = Vec::with_capacity(n * size);
            for &c in &codes {
                push_value(dtype, quantise::reconstruct(dtype, 0.0, c, step), &mut out);
            }
            exact.apply(n, size, &mut out)?;
            Ok(Decoded { bytes: out, codes: Some(codes) })
        }
        Body::ModelOnly { exact } => {
            let p = pred.ok_or("model-only block in a chunk without a latent")?;
            let mut out = Vec::with_capacity(n * size);
            for &v in p {
                push_value(dtype, quantise::reconstruct(dtype, v, 0, 1.0), &mut out);
            }
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
    pub exact: &'a [u64],
    pub stats: &'a ErrStats,
}

impl StagedBlock<'_> {
    pub fn write(&self, size: usize, data: &[u8], level: i32, out: &mut Vec<u8>) {
        out.push(METHOD_STAGED);
        out.push(
            if self.model.is_some() { FLAG_MODEL } else { 0 }
                | if self.step_known { FLAG_STEP_KNOWN } else { 0 }
                | if self.interp.is_some() { FLAG_INTERP } else { 0 },
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
            super::ints::encode(&index_gaps(self.exact), level, None, out);
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
