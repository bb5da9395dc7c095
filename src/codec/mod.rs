//! The chunk codec: one chunk of a dataset (a row range of every variable) to bytes and back.
//!
//! Per variable the pipeline is: split by kind (quantised float | lossless integer | raw), then
//! the array->bytes stage (quantise with the bound, or integer codes, or raw bytes), then the
//! bytes->bytes stages (shuffle, zstd). The model stage slots in before quantisation: it supplies
//! the prediction the residual is taken against, and its latent goes in the chunk's latent blocks.
//! The same codec serves the `.baler` container and the HDF5 filter.

pub mod bytes;
pub mod ints;
pub mod quantise;

use crate::dtype::{floats_to_f64, i64_to_ints, ints_to_i64, push_float, DType};
use crate::wire::Cursor;

/// The stages of this codec's pipeline in encode order, as the header names them (the last is
/// the entropy stage, which carries its level). A reader refuses any stage not listed here.
pub const PIPELINE: [&str; 5] = ["split", "quantise", "predict", "shuffle", "zstd"];

pub const METHOD_RAW: u8 = 0;
pub const METHOD_INTEGER: u8 = 1;
pub const METHOD_QUANTISED: u8 = 2;

/// Refuse to decode a chunk claiming more than this many bytes per variable: a damaged or hostile
/// header must not make the decoder allocate without limit.
pub const MAX_BLOCK_BYTES: u64 = 1 << 34;

/// How one variable is coded: its dtype and, for floats with a bound, the absolute tolerance.
#[derive(Clone, Copy, Debug)]
pub struct VarCoding {
    pub dtype: DType,
    pub tolerance: Option<f64>,
}

#[derive(Clone, Copy, Debug)]
pub struct ChunkCodec {
    pub level: i32,
}

/// What encoding one variable of one chunk did, for reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct VarEncodeStats {
    pub bytes: u64,
    pub max_error: f64,
    pub outliers: u64,
}

pub struct EncodedChunk {
    pub bytes: Vec<u8>,
    pub vars: Vec<VarEncodeStats>,
}

/// Where a chunk sits: checked against the footer index on decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkPlace {
    pub dataset: u32,
    pub row_start: u64,
    pub rows: u64,
}

impl ChunkCodec {
    /// `data[v]` holds variable `v`'s elements for the chunk, little-endian.
    pub fn encode(&self, place: ChunkPlace, vars: &[VarCoding], data: &[Vec<u8>]) -> EncodedChunk {
        let mut out = Vec::new();
        out.extend_from_slice(&place.dataset.to_le_bytes());
        out.extend_from_slice(&place.row_start.to_le_bytes());
        out.extend_from_slice(&place.rows.to_le_bytes());
        out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // latent blocks: the model stage's slot
        let mut stats = Vec::with_capacity(vars.len());
        for (var, bytes) in vars.iter().zip(data) {
            let start = out.len();
            let mut s = self.encode_var(var, bytes, &mut out);
            s.bytes = (out.len() - start) as u64;
            stats.push(s);
        }
        EncodedChunk { bytes: out, vars: stats }
    }

    fn encode_var(&self, var: &VarCoding, data: &[u8], out: &mut Vec<u8>) -> VarEncodeStats {
        let dtype = var.dtype;
        match (dtype.is_float(), var.tolerance, dtype) {
            (true, Some(tol), _) => {
                let values = floats_to_f64(dtype, data);
                let q = quantise::quantise(dtype, &values, None, tol);
                out.push(METHOD_QUANTISED);
                out.extend_from_slice(&(2.0 * tol).to_le_bytes());
                out.extend_from_slice(&(q.outliers.len() as u64).to_le_bytes());
                ints::encode(&q.codes, self.level, out);
                let size = dtype.size();
                let mut raw = Vec::with_capacity(q.outliers.len() * (8 + size));
                for &i in &q.outliers {
                    raw.extend_from_slice(&i.to_le_bytes());
                }
                for &i in &q.outliers {
                    let i = i as usize;
                    raw.extend_from_slice(&data[i * size..(i + 1) * size]);
                }
                let payload = if raw.is_empty() { Vec::new() } else { bytes::compress(&raw, self.level) };
                out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
                out.extend_from_slice(&payload);
                VarEncodeStats { bytes: 0, max_error: q.max_error, outliers: q.outliers.len() as u64 }
            }
            (true, None, _) | (false, _, DType::Bool) => {
                let payload = bytes::compress(&bytes::shuffle(dtype.size(), data), self.level);
                out.push(METHOD_RAW);
                out.push(dtype.size() as u8);
                out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
                out.extend_from_slice(&payload);
                VarEncodeStats::default()
            }
            (false, _, _) => {
                out.push(METHOD_INTEGER);
                ints::encode(&ints_to_i64(dtype, data), self.level, out);
                VarEncodeStats::default()
            }
        }
    }

    /// Decodes a chunk of `elems_per_row * place.rows` elements per variable.
    pub fn decode(
        &self,
        bytes: &[u8],
        place: ChunkPlace,
        vars: &[VarCoding],
        elems_per_row: u64,
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
        let latent = cur.u32("latent block count")?;
        if latent != 0 {
            return Err(format!("chunk has {latent} latent blocks: it needs the model stage"));
        }
        let n = place.rows.checked_mul(elems_per_row).ok_or("chunk size overflows")?;
        let mut out = Vec::with_capacity(vars.len());
        for (i, var) in vars.iter().enumerate() {
            let block_bytes = n.checked_mul(var.dtype.size() as u64).filter(|&b| b <= MAX_BLOCK_BYTES);
            if block_bytes.is_none() {
                return Err(format!("variable {i}: {n} elements is more than one chunk may hold"));
            }
            out.push(decode_var(&mut cur, var.dtype, n as usize).map_err(|e| format!("variable {i}: {e}"))?);
        }
        cur.finish("chunk")?;
        Ok(out)
    }
}

/// Bytes of each variable block in a chunk, by walking the block headers (format spec).
pub fn block_sizes(chunk: &[u8], nvars: usize) -> Result<Vec<u64>, String> {
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
            METHOD_RAW => {
                c.u8("element size")?;
                skip_payload(&mut c)?;
            }
            METHOD_INTEGER => {
                c.bytes(2, "width, predictor")?;
                skip_payload(&mut c)?;
            }
            METHOD_QUANTISED => {
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

fn decode_var(cur: &mut Cursor, dtype: DType, n: usize) -> Result<Vec<u8>, String> {
    let size = dtype.size();
    match cur.u8("method")? {
        METHOD_RAW => {
            let es = cur.u8("element size")? as usize;
            if es != size || !(dtype.is_float() || dtype == DType::Bool) {
                return Err(format!("raw block of {es}-byte elements for a {dtype} variable"));
            }
            let len = cur.u64("payload length")?;
            let payload = cur.bytes(len, "payload")?;
            Ok(bytes::unshuffle(size, &bytes::decompress(payload, n * size)?))
        }
        METHOD_INTEGER => {
            if dtype.is_float() || dtype == DType::Bool {
                return Err(format!("integer block for a {dtype} variable"));
            }
            Ok(i64_to_ints(dtype, &ints::decode(cur, n)?))
        }
        METHOD_QUANTISED => {
            if !dtype.is_float() {
                return Err(format!("quantised block for a {dtype} variable"));
            }
            let step = cur.f64("step")?;
            if !(step.is_finite() && step > 0.0) {
                return Err(format!("invalid quantisation step {step}"));
            }
            let k = cur.u64("outlier count")?;
            if k > n as u64 {
                return Err(format!("{k} outliers in a block of {n} elements"));
            }
            let codes = ints::decode(cur, n)?;
            let values = quantise::dequantise(dtype, &codes, None, step);
            let mut out = Vec::with_capacity(n * size);
            for v in values {
                push_float(dtype, v, &mut out);
            }
            let olen = cur.u64("outlier payload length")?;
            let opayload = cur.bytes(olen, "outlier payload")?;
            if k > 0 {
                let raw = bytes::decompress(opayload, k as usize * (8 + size))?;
                let (idx, vals) = raw.split_at(k as usize * 8);
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
            } else if olen != 0 {
                return Err("outlier payload without outliers".into());
            }
            Ok(out)
        }
        m => Err(format!("unknown coding method {m}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_round_trips_every_dtype() {
        let codec = ChunkCodec { level: 3 };
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
                vars.push(VarCoding { dtype, tolerance });
                data.push(bytes.clone());
            }
        }
        let place = ChunkPlace { dataset: 3, row_start: 100, rows: n as u64 };
        let enc = codec.encode(place, &vars, &data);
        let dec = codec.decode(&enc.bytes, place, &vars, 1).unwrap();
        for ((var, orig), got) in vars.iter().zip(&data).zip(&dec) {
            match (var.dtype, var.tolerance) {
                (d, Some(tol)) if d.is_float() => {
                    let (a, b) = (floats_to_f64(d, orig), floats_to_f64(d, got));
                    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= tol), "{d}");
                }
                _ => assert_eq!(orig, got, "{:?} must be lossless", var.dtype),
            }
        }
        let wrong = ChunkPlace { rows: n as u64 - 1, ..place };
        assert!(codec.decode(&enc.bytes, wrong, &vars, 1).is_err());
    }
}
