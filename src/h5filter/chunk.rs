//! One HDF5 chunk through the library's chunk codec, and back.
//!
//! A filtered chunk is a 24-byte header (`schemas/h5-filter.md`) then the codec's chunk as the
//! `.baler` container stores it, or (version 2) a chunk large enough to be cut into pieces:
//! slabs along its first dimension, each a codec chunk of its own, coded and decoded on
//! parallel threads. HDF5 hands a filter one chunk at a time, so the pieces are the only
//! parallelism a reader of one dataset gets. The header repeats what decoding needs (element
//! type, row width, rows), so a chunk decodes with nothing but its bytes and the model, and its
//! CRC-32 turns a damaged chunk into an error instead of wrong numbers.

use super::params::{dtype_code, dtype_of_code, FilterBound, FilterParams, Layout};
use crate::codec::model_stage::ModelPlan;
use crate::codec::{ChunkCodec, ChunkPlace, VarCoding};
use crate::dtype::{values_f64, DType};
use crate::missing::MissingRule;
use crate::wire::Cursor;

pub const MAGIC: [u8; 4] = *b"BLH5";
/// One codec chunk.
pub const CHUNK_VERSION: u8 = 1;
/// Pieces: `u32 P`, P x `u64 rows`, P x `u64 bytes`, then P codec chunks.
pub const PIECES_VERSION: u8 = 2;
pub const HEADER_BYTES: usize = 24;
/// More pieces than this in one chunk is damage (a 1 GiB chunk of 64 KiB pieces has 16384).
const MAX_PIECES: u64 = 1 << 16;

/// What a filtered chunk's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkHeader {
    pub version: u8,
    pub dtype: DType,
    pub layout: Layout,
    pub row_elems: u32,
    pub rows: u64,
    pub crc: u32,
}

impl ChunkHeader {
    pub fn raw_bytes(&self) -> u64 {
        self.rows * self.row_elems as u64 * self.dtype.size() as u64
    }
}


pub fn read_header(bytes: &[u8]) -> Result<ChunkHeader, String> {
    let mut c = Cursor::new(bytes);
    if c.bytes(4, "chunk magic")? != MAGIC {
        return Err("not a balerfile-filtered chunk (bad magic)".into());
    }
    let version = c.u8("chunk version")?;
    if version != CHUNK_VERSION && version != PIECES_VERSION {
        return Err(format!("chunk format version {version}; this balerfile reads {CHUNK_VERSION} and {PIECES_VERSION}"));
    }
    let code = c.u8("element type")?;
    let dtype = dtype_of_code(code as u32).ok_or_else(|| format!("element type code {code} in the chunk header"))?;
    let layout = match c.u8("layout")? {
        0 => Layout::Field,
        1 => Layout::Table,
        2 => Layout::Wedge,
        k => return Err(format!("layout code {k} in the chunk header")),
    };
    c.u8("reserved")?;
    let row_elems = c.u32("elements per row")?;
    let rows = c.u64("rows")?;
    let crc = c.u32("checksum")?;
    let most = match layout {
        Layout::Field | Layout::Auto => 1,
        // A table's columns are each a variable of the codec's chunk: as many as cd_values allow.
        Layout::Table => super::params::MAX_FEATURES,
        Layout::Wedge => super::params::MAX_WEDGE,
    };
    if row_elems == 0 || row_elems > most || (layout == Layout::Field && row_elems != 1) {
        return Err(format!("{row_elems} elements per row in the chunk header"));
    }
    let h = ChunkHeader { version, dtype, layout, row_elems, rows, crc };
    if rows.checked_mul(row_elems as u64).and_then(|n| n.checked_mul(dtype.size() as u64)).is_none_or(|b| b > crate::codec::MAX_BLOCK_BYTES) {
        return Err(format!("chunk header claims {rows} rows of {row_elems}: more than a chunk may hold"));
    }
    Ok(h)
}

/// Whether the codec chunk inside carries a latent block (the codec reads its own layout); a
/// chunk too short to say does not, and its decoding reports the damage.
pub fn uses_latent(bytes: &[u8]) -> bool {
    // Chunks coded with a model are never cut into pieces.
    bytes.get(4) == Some(&CHUNK_VERSION)
        && bytes
            .get(HEADER_BYTES..)
            .is_some_and(|c| c.len() >= crate::codec::LATENT_COUNT_END && crate::codec::has_latent(c))
}

/// The pieces (first codec row, rows) of a chunk of `rows` codec rows of `row_bytes` each, cut
/// only between whole `unit`s of rows (a field's planes, so every piece keeps the grid the
/// predictors walk), each about `piece_bytes`; one piece when the chunk is under twice that.
/// It depends on nothing but the shape and the parameters, so a file's bytes do not depend on
/// the writer's thread count.
fn pieces(rows: usize, unit: usize, row_bytes: usize, piece_bytes: usize) -> Vec<(usize, usize)> {
    let unit = unit.max(1);
    let units = rows / unit;
    let want = (rows.saturating_mul(row_bytes) / piece_bytes.max(1)).min(units).min(MAX_PIECES as usize);
    if want < 2 || rows % unit != 0 {
        return vec![(0, rows)];
    }
    let per = units.div_ceil(want) * unit;
    (0..rows).step_by(per).map(|start| (start, per.min(rows - start))).collect()
}

/// Where a field chunk's trailing whole planes (`unit` elements each) that all hold the chunk's
/// last value begin, when there are some and planes before them: what HDF5 fills the part of a
/// chunk not written yet with (its fill value, 0 by default). Coded as a piece of its own, that
/// part comes back exactly (a constant's predictions are the constant), so when the chunk is
/// written again in part it is still left out of a `rel` range (`range`) as it was the first
/// time. Coded with the data, it came back within the bound of 0, no longer equal to the last
/// value, and widened the next write's range: ten one-step writes into a chunk of ten steps at
/// rel=1e-4 ended 38x the bound, 5.6x with the cut. Only for `rel`: an `abs` tolerance does not
/// depend on the range, and a data piece whose length changes at each write re-predicts more of
/// the values written before (the same writes at abs=0.01: 2.96x uncut, 4.16x cut).
fn constant_tail(col: &[u8], size: usize, unit: usize) -> Option<usize> {
    // Planes only: a 1-D chunk (unit 1) ends in a run of at least one element, and would be cut
    // whenever it is not constant.
    if unit < 2 {
        return None;
    }
    let n = col.len() / size;
    let last = col.get(col.len().checked_sub(size)?..)?;
    let run = col.chunks_exact(size).rev().take_while(|e| *e == last).count();
    let start = (n - run).div_ceil(unit) * unit;
    (start > 0 && start < n).then_some(start)
}

/// Threads for a chunk's pieces: BALERFILE_THREADS, else the machine's cores. Threads are
/// scoped to the call (no pool outlives it), so a process that forks after reading (Python's
/// multiprocessing, Dask) hands its children nothing half-alive.
fn piece_threads() -> usize {
    super::threads_from_env().unwrap_or_else(crate::parallel::cores)
}

/// `f(i)` for every i in 0..n on up to `threads` scoped threads (`parallel::map`), in order;
/// the first error wins.
fn in_parallel<T: Send>(n: usize, threads: usize, f: impl Fn(usize) -> Result<T, String> + Sync) -> Result<Vec<T>, String> {
    crate::parallel::map(n, threads, f).into_iter().collect()
}

/// Encodes one chunk as HDF5 hands it to the filter (elements in the file's byte order).
pub fn encode(p: &FilterParams, data: &[u8], model: Option<&ModelPlan>) -> Result<Vec<u8>, String> {
    let dtype = p.dtype.ok_or(
        "the element type is unknown: set_local could not reach the host's HDF5 and cd_values[1] is 0 (pass 1 for f32, 2 for f64)",
    )?;
    let size = dtype.size();
    let f = p.row_elems();
    if f == 0 {
        return Err("the number of features per row is unknown: set_local could not reach the host's HDF5 and cd_values[4] is 0".into());
    }
    if data.len() % (size * f) != 0 {
        return Err(format!(
            "a chunk of {} bytes is not whole rows of {f} {dtype} features: chunk the dataset so each chunk spans every feature",
            data.len()
        ));
    }
    if model.is_none() && p.bound == FilterBound::None {
        return Err("bound 'none' needs the model".into());
    }
    let layout = p.layout.coded();
    let missing = p.missing_rule(dtype)?;
    let rows = data.len() / (size * f);
    let le = if p.big_endian { swap(data, size) } else { data.to_vec() };
    let (cols, epr) = match layout {
        Layout::Field | Layout::Auto => (vec![le], 1),
        Layout::Table => (transpose(&le, rows, f, size), 1),
        Layout::Wedge => (vec![le], f as u64),
    };
    let mut vars = Vec::with_capacity(cols.len());
    for col in &cols {
        let tolerance = match p.bound {
            FilterBound::Lossless | FilterBound::None => None,
            FilterBound::Abs(e) => Some(e),
            FilterBound::Rel(e) => Some(e * range(&values_f64(dtype, col), missing.as_ref())).filter(|&t| t > 0.0),
        };
        let mut v = VarCoding::for_bound(dtype, tolerance, p.bound == FilterBound::None, model.is_some()).with_missing(missing);
        v = v.on_grid(match layout {
            Layout::Field | Layout::Auto => super::params::field_grid(p.features),
            Layout::Wedge => model.and_then(|m| m.grid),
            Layout::Table => None,
        });
        vars.push(v);
    }
    // Pieces: a field's whole planes of its grid, a table's rows; never with a model (its
    // runtime has threads of its own, and wedges are few and large).
    let unit = match layout {
        Layout::Field | Layout::Auto => super::params::field_grid(p.features).map_or(1, |[a, b]| a * b),
        Layout::Table | Layout::Wedge => 1,
    };
    let cuts = if model.is_some() || layout == Layout::Wedge {
        vec![(0, rows)]
    } else if let Some(tail) = (layout != Layout::Table && matches!(p.bound, FilterBound::Rel(_))).then(|| constant_tail(&cols[0], size, unit)).flatten() {
        let mut cuts = pieces(tail, unit, size * f, p.piece_bytes());
        cuts.truncate(MAX_PIECES as usize - 1);
        if let Some(last) = cuts.last_mut() {
            last.1 = tail - last.0;
        }
        cuts.push((tail, rows - tail));
        cuts
    } else {
        pieces(rows, unit, size * f, p.piece_bytes())
    };
    // The threads go to the pieces, and those the pieces leave over to each piece's trials.
    let threads = piece_threads();
    let col_bytes = size * epr as usize;
    let piece = |k: usize| -> Vec<Vec<u8>> {
        let (start, len) = cuts[k];
        cols.iter().map(|c| c[start * col_bytes..(start + len) * col_bytes].to_vec()).collect()
    };
    // A chunk of four or more whole pieces has a field's walk searched on three of them and
    // taken by every piece where they agree, as `pack` does a field's chunks
    // (`ChunkCodec::plan_walks`); the pieces lead, whole, and a constant tail may follow. A
    // chunk with a model is one piece.
    let whole = cuts.iter().take_while(|c| c.1 == cuts[0].1).count();
    let vars = match crate::codec::plan_samples(whole, &vars) {
        Some(ks) => ChunkCodec { level: p.level, threads }.plan_walks(&vars, ks.into_iter().map(|k| Ok::<_, String>(piece(k))))?,
        None => vars,
    };
    let codec = ChunkCodec { level: p.level, threads }.sharing(threads, cuts.len());
    let coded = in_parallel(cuts.len(), threads, |k| {
        let (start, len) = cuts[k];
        let place = ChunkPlace { dataset: 0, row_start: start as u64, rows: len as u64 };
        let cut: Vec<Vec<u8>>;
        let part = if cuts.len() == 1 {
            &cols
        } else {
            cut = piece(k);
            &cut
        };
        codec.encode(place, &vars, part, epr, model).map(|e| e.bytes)
    })?;
    let mut body = Vec::new();
    let version = if coded.len() == 1 {
        CHUNK_VERSION
    } else {
        body.extend_from_slice(&(coded.len() as u32).to_le_bytes());
        for &(_, len) in &cuts {
            body.extend_from_slice(&(len as u64).to_le_bytes());
        }
        for c in &coded {
            body.extend_from_slice(&(c.len() as u64).to_le_bytes());
        }
        PIECES_VERSION
    };
    for c in &coded {
        body.extend_from_slice(c);
    }
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(&MAGIC);
    out.push(version);
    out.push(dtype_code(dtype).unwrap_or(0) as u8);
    out.push(match layout {
        Layout::Field | Layout::Auto => 0,
        Layout::Table => 1,
        Layout::Wedge => 2,
    });
    out.push(0);
    out.extend_from_slice(&(f as u32).to_le_bytes());
    out.extend_from_slice(&(rows as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes one filtered chunk back to the elements HDF5 expects (the file's byte order).
pub fn decode(p: &FilterParams, bytes: &[u8], model: Option<&ModelPlan>) -> Result<Vec<u8>, String> {
    let h = read_header(bytes)?;
    if p.dtype.is_some_and(|d| d != h.dtype) {
        return Err(format!("the chunk holds {} values, the dataset's filter says {}", h.dtype, p.dtype.unwrap()));
    }
    let body = &bytes[HEADER_BYTES..];
    if crc32fast::hash(body) != h.crc {
        return Err("chunk checksum mismatch: the chunk was damaged after it was written".into());
    }
    let f = h.row_elems as usize;
    let nvars = if h.layout == Layout::Table { f } else { 1 };
    // Every variable block takes bytes of the chunk: a header claiming more columns than that is
    // damage, refused before anything is allocated per column.
    if nvars > body.len() {
        return Err(format!("a chunk of {} bytes cannot hold {nvars} columns", body.len()));
    }
    let epr = if h.layout == Layout::Wedge { f as u64 } else { 1 };
    let vars = vec![VarCoding { dtype: h.dtype, tolerance: None, model_only: false, grid: None, walk_grid: None, missing: None, step_known: false, walk: None }; nvars];
    // The threads go to the pieces, and those the pieces leave over to each one's decoding
    // (`ahead`).
    let threads = piece_threads();
    let cols = if h.version == CHUNK_VERSION {
        let codec = ChunkCodec { level: p.level, threads };
        codec.decode(body, ChunkPlace { dataset: 0, row_start: 0, rows: h.rows }, &vars, epr, model)?
    } else {
        let cuts = read_pieces(body, h.rows)?;
        let codec = ChunkCodec { level: p.level, threads }.sharing(threads, cuts.len());
        let decoded = in_parallel(cuts.len(), threads, |k| {
            let (start, len, at, bytes) = cuts[k];
            codec.decode(&body[at..at + bytes], ChunkPlace { dataset: 0, row_start: start, rows: len }, &vars, epr, None).map_err(|e| format!("piece {k} of {}: {e}", cuts.len()))
        })?;
        let mut cols: Vec<Vec<u8>> = (0..nvars).map(|_| Vec::with_capacity(h.raw_bytes() as usize / nvars)).collect();
        for piece in decoded {
            for (col, part) in cols.iter_mut().zip(piece) {
                col.extend_from_slice(&part);
            }
        }
        cols
    };
    let size = h.dtype.size();
    let le = match h.layout {
        Layout::Field | Layout::Wedge | Layout::Auto => cols.into_iter().next().unwrap_or_default(),
        Layout::Table => untranspose(&cols, h.rows as usize, size),
    };
    Ok(if p.big_endian { swap(&le, size) } else { le })
}

/// A version-2 body's pieces as (first row, rows, byte offset in the body, bytes), checked to
/// tile the chunk's rows and the body's bytes exactly.
fn read_pieces(body: &[u8], rows: u64) -> Result<Vec<(u64, u64, usize, usize)>, String> {
    let mut c = Cursor::new(body);
    let n = c.u32("piece count")? as u64;
    if !(2..=MAX_PIECES).contains(&n) || n > rows {
        return Err(format!("{n} pieces in a chunk of {rows} rows"));
    }
    let mut lens = Vec::with_capacity(n as usize);
    for _ in 0..n {
        lens.push(c.u64("piece rows")?);
    }
    let mut sizes = Vec::with_capacity(n as usize);
    for _ in 0..n {
        sizes.push(c.u64("piece bytes")?);
    }
    let (mut row, mut at) = (0u64, body.len() - c.remaining());
    let mut out = Vec::with_capacity(n as usize);
    for (&len, &bytes) in lens.iter().zip(&sizes) {
        let bytes = usize::try_from(bytes).ok().filter(|&b| b <= body.len() - at).ok_or("the pieces' sizes run past the chunk")?;
        if len == 0 {
            return Err("a piece of 0 rows".into());
        }
        out.push((row, len, at, bytes));
        row = row.checked_add(len).ok_or("the pieces' rows overflow")?;
        at += bytes;
    }
    if row != rows || at != body.len() {
        return Err(format!("the pieces hold {row} rows in {at} bytes; the chunk has {rows} rows in {} bytes", body.len()));
    }
    Ok(out)
}

fn swap(data: &[u8], size: usize) -> Vec<u8> {
    let mut out = data.to_vec();
    for e in out.chunks_exact_mut(size) {
        e.reverse();
    }
    out
}

/// Row-major rows x f elements to f columns.
fn transpose(data: &[u8], rows: usize, f: usize, size: usize) -> Vec<Vec<u8>> {
    let mut cols = vec![Vec::with_capacity(rows * size); f];
    for row in data.chunks_exact(f * size) {
        for (j, col) in cols.iter_mut().enumerate() {
            col.extend_from_slice(&row[j * size..(j + 1) * size]);
        }
    }
    cols
}

fn untranspose(cols: &[Vec<u8>], rows: usize, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows * cols.len() * size);
    for r in 0..rows {
        for col in cols {
            out.extend_from_slice(&col[r * size..(r + 1) * size]);
        }
    }
    out
}

/// Max minus min of the finite values that are not missing, leaving out those equal to the last
/// one (0 when none are left). HDF5 pads a partial edge chunk with the fill value, and the
/// chunk's last element always lies in that padding, so the padding never widens the range (a
/// user-set fill value is missing anyway; HDF5's default 0 is not): the range stays within the
/// dataset's valid range, and a `rel` bound holds against it. Leaving values out can only narrow
/// the range, so a full chunk is never bounded more loosely than it should be.
fn range(v: &[f64], missing: Option<&MissingRule>) -> f64 {
    let last = v.last().map(|x| x.to_bits());
    let valid = |x: &&f64| x.is_finite() && Some(x.to_bits()) != last && !missing.is_some_and(|m| m.is_missing(**x));
    let (lo, hi) = v.iter().filter(valid).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    if hi >= lo {
        hi - lo
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: usize, f: usize) -> Vec<f32> {
        (0..rows * f).map(|i| ((i / f) as f32 * 0.01 + (i % f) as f32).sin() * (1.0 + (i % f) as f32 * 10.0)).collect()
    }

    fn bytes32(v: &[f32], be: bool) -> Vec<u8> {
        v.iter().flat_map(|x| if be { x.to_be_bytes() } else { x.to_le_bytes() }).collect()
    }

    #[test]
    fn tables_keep_each_column_within_its_rel_bound() {
        let (rows, f) = (700, 5);
        let mut v = table(rows, f);
        v[17] = f32::NAN;
        v[18] = f32::INFINITY;
        for be in [false, true] {
            let p = FilterParams {
                dtype: Some(DType::F32),
                big_endian: be,
                layout: Layout::Table,
                features: f as u32,
                bound: FilterBound::Rel(1e-3),
                ..Default::default()
            };
            let raw = bytes32(&v, be);
            let enc = encode(&p, &raw, None).unwrap();
            assert!(enc.len() < raw.len() / 2, "{} of {}", enc.len(), raw.len());
            let dec = decode(&p, &enc, None).unwrap();
            assert_eq!(dec.len(), raw.len());
            for j in 0..f {
                let col: Vec<f32> = (0..rows).map(|r| v[r * f + j]).filter(|x| x.is_finite()).collect();
                let tol = 1e-3 * (col.iter().cloned().fold(f32::MIN, f32::max) - col.iter().cloned().fold(f32::MAX, f32::min)) as f64;
                for r in 0..rows {
                    let i = (r * f + j) * 4;
                    let b: [u8; 4] = dec[i..i + 4].try_into().unwrap();
                    let got = if be { f32::from_be_bytes(b) } else { f32::from_le_bytes(b) };
                    let want = v[r * f + j];
                    if want.is_finite() {
                        assert!(((got - want) as f64).abs() <= tol, "col {j} row {r}: {got} vs {want}");
                    } else {
                        assert_eq!(got.to_bits(), want.to_bits());
                    }
                }
            }
        }
    }

    #[test]
    fn padding_of_a_partial_edge_chunk_does_not_widen_a_rel_bound() {
        // 300 real rows in 100..200, then 200 rows of HDF5's fill value 0.
        let (rows, real, f) = (500, 300, 2);
        let v: Vec<f32> = (0..rows * f).map(|i| if i / f < real { 100.0 + (i as f32 * 0.37) % 100.0 } else { 0.0 }).collect();
        let p = FilterParams { dtype: Some(DType::F32), layout: Layout::Table, features: f as u32, bound: FilterBound::Rel(1e-3), ..Default::default() };
        let dec = decode(&p, &encode(&p, &bytes32(&v, false), None).unwrap(), None).unwrap();
        for (i, (&want, b)) in v.iter().zip(dec.chunks_exact(4)).enumerate().take(real * f) {
            let got = f32::from_le_bytes(b.try_into().unwrap());
            assert!((got - want).abs() as f64 <= 1e-3 * 100.0, "element {i}: {got} vs {want}");
        }
    }

    #[test]
    fn fill_values_are_exact_and_out_of_the_rel_range() {
        // A 2-D field (40 x 50) of values in 270..300 with "land" at 1e20 over a third of it.
        let (d1, d2) = (40usize, 50usize);
        let fill = 1e20f32;
        let v: Vec<f32> = (0..d1 * d2)
            .map(|i| if (i % d2) < d2 / 3 { fill } else { 270.0 + 30.0 * ((i / d2) as f32 * 0.1).sin() * ((i % d2) as f32 * 0.07).cos() })
            .collect();
        let valid: Vec<f64> = v.iter().filter(|&&x| x != fill).map(|&x| x as f64).collect();
        let span = valid.iter().cloned().fold(f64::MIN, f64::max) - valid.iter().cloned().fold(f64::MAX, f64::min);
        for layout in [Layout::Field, Layout::Auto] {
            let p = FilterParams {
                dtype: Some(DType::F32),
                layout,
                features: super::super::params::field_grid_word(&[d1 as u64, d2 as u64]),
                bound: FilterBound::Rel(1e-3),
                fill: Some(fill as f64),
                ..Default::default()
            };
            let raw = bytes32(&v, false);
            let enc = encode(&p, &raw, None).unwrap();
            assert!(enc.len() < raw.len() / 3, "{} of {}", enc.len(), raw.len());
            let dec = decode(&p, &enc, None).unwrap();
            let mut worst = 0f64;
            for (i, (&want, b)) in v.iter().zip(dec.chunks_exact(4)).enumerate() {
                let got = f32::from_le_bytes(b.try_into().unwrap());
                if want == fill {
                    assert_eq!(got.to_bits(), want.to_bits(), "fill element {i}");
                } else {
                    worst = worst.max((got as f64 - want as f64).abs() / (1e-3 * span));
                }
            }
            assert!(worst <= 1.0 && worst > 0.2, "{layout:?}: worst error {worst} of the bound over the valid range");
        }
    }

    #[test]
    fn lossless_fields_are_byte_exact_and_damage_is_caught() {
        let v: Vec<f64> = (0..1000).map(|i| (i as f64).sqrt()).collect();
        let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let p = FilterParams { dtype: Some(DType::F64), ..Default::default() };
        let mut enc = encode(&p, &raw, None).unwrap();
        assert_eq!(decode(&p, &enc, None).unwrap(), raw);
        let last = enc.len() - 1;
        enc[last] ^= 1;
        assert!(decode(&p, &enc, None).unwrap_err().contains("checksum"));
        assert!(decode(&p, &enc[..10], None).is_err());
        let p32 = FilterParams { dtype: Some(DType::F32), ..Default::default() };
        assert!(decode(&p32, &encode(&p, &raw, None).unwrap(), None).unwrap_err().contains("f64"));
    }

    #[test]
    fn pieces_cut_whole_units_of_about_the_piece_size() {
        assert_eq!(pieces(100, 10, 4, 1 << 20), vec![(0, 100)], "small chunks stay whole");
        assert_eq!(pieces(64 * 600, 600, 4, 1 << 16), vec![(0, 32 * 600), (32 * 600, 32 * 600)]);
        // 7 pieces asked of 10 units: 2 units each, the last short
        assert_eq!(pieces(10, 1, 7, 10), vec![(0, 2), (2, 2), (4, 2), (6, 2), (8, 2)]);
        for (rows, unit, rb, pb) in [(1000, 7, 8, 100), (12345, 1, 4, 4096), (1 << 20, 1 << 10, 4, 1 << 16)] {
            let p = pieces(rows, unit, rb, pb);
            assert_eq!(p.iter().map(|x| x.1).sum::<usize>(), rows);
            assert!(p.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0 && w[0].1 % unit == 0));
        }
        assert_eq!(pieces(1003, 7, 8, 100), vec![(0, 1003)], "rows that are not whole units are not cut");
        let many = pieces(1 << 20, 1, 1, 1);
        assert_eq!((many.len() as u64, many[0].1), (MAX_PIECES, 16), "at most MAX_PIECES pieces");
    }

    #[test]
    fn parallel_results_come_back_in_order_and_errors_are_reported() {
        for threads in [1, 2, 3, 8] {
            assert_eq!(in_parallel(10, threads, |i| Ok::<_, String>(i * i)).unwrap(), (0..10).map(|i| i * i).collect::<Vec<_>>());
            let e = in_parallel(10, threads, |i| if i == 7 { Err(format!("bad {i}")) } else { Ok(i) }).unwrap_err();
            assert_eq!(e, "bad 7");
        }
    }

    /// A field chunk written in part (three planes of ten, the rest HDF5's fill, 0): the
    /// unwritten planes are a piece of their own and come back exactly 0, so a second write in
    /// part leaves them out of its `rel` range again; written whole, the chunk is cut as before.
    #[test]
    fn a_constant_tail_of_whole_planes_comes_back_exactly() {
        let (planes, d1, d2) = (10usize, 40usize, 50usize);
        let plane = d1 * d2;
        let v: Vec<f32> = (0..planes * plane).map(|i| if i < 3 * plane { 270.0 + 20.0 * ((i % d2) as f32 * 0.1).sin() * ((i / d2) as f32 * 0.05).cos() } else { 0.0 }).collect();
        let p = FilterParams {
            dtype: Some(DType::F32),
            layout: Layout::Field,
            features: super::super::params::field_grid_word(&[d1 as u64, d2 as u64]),
            bound: FilterBound::Rel(1e-4),
            ..Default::default()
        };
        let enc = encode(&p, &bytes32(&v, false), None).unwrap();
        assert_eq!(enc[4], PIECES_VERSION);
        let dec = decode(&p, &enc, None).unwrap();
        let got: Vec<f32> = dec.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert!(got[3 * plane..].iter().all(|x| x.to_bits() == 0), "the unwritten planes are exactly 0");
        let tol = 1e-4 * 40.0;
        assert!(got[..3 * plane].iter().zip(&v).all(|(g, w)| ((g - w).abs() as f64) <= tol));
        assert_eq!(constant_tail(&bytes32(&v, false), 4, plane), Some(3 * plane));
        // Not whole planes (the fourth plane half data), or nothing before them: no cut.
        let mut half = v.clone();
        half[3 * plane..3 * plane + plane / 2].iter_mut().for_each(|x| *x = 280.0);
        assert_eq!(constant_tail(&bytes32(&half[..4 * plane], false), 4, plane), None);
        assert_eq!(constant_tail(&bytes32(&vec![0.0; 4 * plane], false), 4, plane), None);
        assert_eq!(constant_tail(&bytes32(&v[..3 * plane], false), 4, plane), None);
        assert_eq!(constant_tail(&bytes32(&v, false), 4, 1), None, "1-D chunks are not cut");
    }

    /// A field chunk of four or more whole pieces has its walk searched on three of them (the
    /// first, middle and last whole ones), and every piece is coded along it where they agree:
    /// here pieces between them whose kinked surface, coded alone, takes Lorenzo. Within the
    /// bound.
    #[test]
    fn a_chunks_pieces_share_one_walk_search() {
        let (planes, d1, d2) = (256usize, 20usize, 30usize);
        // 9 pieces of 64 KiB asked: 8 whole of 29 planes, then 24; searched on 0, 4 and 7.
        let smooth = |t: usize, y: usize, x: usize| 280.0 + 10.0 * (t as f32 * 0.2).sin() + (y as f32 * 0.3).sin() * 4.0 + (x as f32 * 0.3).cos();
        let kinked = |t: usize, y: usize, x: usize| 280.0 + t as f32 * 0.01 + ((y % 8) as f32 - 4.0).abs() * 3.0 + ((x % 6) as f32 - 3.0).abs() * 5.0;
        let sampled = |t: usize| [0, 4, 7].contains(&(t / 29));
        let at = |i: usize| (i / (d1 * d2), i / d2 % d1, i % d2);
        let v: Vec<f32> = (0..planes * d1 * d2).map(|i| { let (t, y, x) = at(i); if sampled(t) { smooth(t, y, x) } else { kinked(t, y, x) } }).collect();
        let p = FilterParams {
            dtype: Some(DType::F32),
            layout: Layout::Field,
            features: super::super::params::field_grid_word(&[d1 as u64, d2 as u64]),
            bound: FilterBound::Abs(0.01),
            piece_log2: 16,
            ..Default::default()
        };
        let walks = |enc: &[u8], n: usize| -> Vec<Option<crate::codec::interp::Config>> {
            let body = &enc[HEADER_BYTES..];
            let cuts = if enc[4] == PIECES_VERSION { read_pieces(body, n as u64).unwrap() } else { vec![(0, n as u64, 0, body.len())] };
            cuts.iter()
                .map(|&(_, rows, at, len)| {
                    let mut cur = Cursor::new(&body[at..at + len]);
                    cur.bytes(crate::codec::LATENT_COUNT_END as u64, "piece head").unwrap();
                    match crate::codec::block::read(&mut cur, DType::F32, rows as usize, None).unwrap().body {
                        crate::codec::block::Body::Quantised { interp, .. } => interp,
                        _ => panic!("not quantised"),
                    }
                })
                .collect()
        };
        let enc = encode(&p, &bytes32(&v, false), None).unwrap();
        let dec = decode(&p, &enc, None).unwrap();
        for (i, (&want, b)) in v.iter().zip(dec.chunks_exact(4)).enumerate() {
            assert!((f32::from_le_bytes(b.try_into().unwrap()) - want).abs() as f64 <= 0.01, "element {i}");
        }
        let shared = walks(&enc, v.len());
        assert_eq!(shared.len(), 9);
        assert!(shared[0].is_some() && shared.iter().all(|w| *w == shared[0]), "{shared:?}");
        // A kinked piece coded alone searches its own, and takes Lorenzo.
        let piece = &v[29 * d1 * d2..58 * d1 * d2];
        let alone = walks(&encode(&FilterParams { piece_log2: 0, ..p.clone() }, &bytes32(piece, false), None).unwrap(), piece.len());
        assert_ne!(alone, vec![shared[0]], "the kinked piece's own search");
    }

    /// A field chunk of 64 planes and a table of 20000 rows, with 64 KiB pieces: cut, within
    /// bound, fills exact, and a damaged piece table refused (the CRC made to match).
    #[test]
    fn pieces_round_trip_within_bound_and_damage_is_refused() {
        let (planes, d1, d2) = (64usize, 20usize, 30usize);
        let fill = -1e10f32;
        let v: Vec<f32> = (0..planes * d1 * d2)
            .map(|i| if i % 97 == 0 { fill } else { 280.0 + 10.0 * ((i / (d1 * d2)) as f32 * 0.2).sin() + ((i % d2) as f32 * 0.3).cos() })
            .collect();
        let p = FilterParams {
            dtype: Some(DType::F32),
            layout: Layout::Field,
            features: super::super::params::field_grid_word(&[d1 as u64, d2 as u64]),
            bound: FilterBound::Abs(0.01),
            fill: Some(fill as f64),
            piece_log2: 16,
            ..Default::default()
        };
        let enc = encode(&p, &bytes32(&v, false), None).unwrap();
        assert_eq!(enc[4], PIECES_VERSION);
        assert_eq!(u32::from_le_bytes(enc[24..28].try_into().unwrap()), 2, "two pieces of 32 planes");
        let dec = decode(&p, &enc, None).unwrap();
        for (i, (&want, b)) in v.iter().zip(dec.chunks_exact(4)).enumerate() {
            let got = f32::from_le_bytes(b.try_into().unwrap());
            if want == fill {
                assert_eq!(got.to_bits(), want.to_bits(), "fill {i}");
            } else {
                assert!((got - want).abs() as f64 <= 0.01, "element {i}: {got} vs {want}");
            }
        }
        let whole = FilterParams { piece_log2: 0, ..p.clone() };
        let one = encode(&whole, &bytes32(&v, false), None).unwrap();
        assert_eq!(one[4], CHUNK_VERSION, "under the default piece size a chunk stays one piece");
        assert_eq!(decode(&whole, &one, None).unwrap().len(), dec.len());

        let (rows, f) = (20000usize, 3usize);
        let t: Vec<f64> = (0..rows * f).map(|i| if i == 5000 { f64::NAN } else { ((i / f) as f64 * 0.001).sin() * (1 + i % f) as f64 }).collect();
        let raw: Vec<u8> = t.iter().flat_map(|x| x.to_le_bytes()).collect();
        let p = FilterParams { dtype: Some(DType::F64), layout: Layout::Table, features: f as u32, bound: FilterBound::Rel(1e-4), piece_log2: 16, ..Default::default() };
        let enc = encode(&p, &raw, None).unwrap();
        assert_eq!(enc[4], PIECES_VERSION);
        let dec = decode(&p, &enc, None).unwrap();
        for j in 0..f {
            let col: Vec<f64> = (0..rows).map(|r| t[r * f + j]).filter(|x| x.is_finite()).collect();
            let tol = 1e-4 * (col.iter().cloned().fold(f64::MIN, f64::max) - col.iter().cloned().fold(f64::MAX, f64::min));
            for r in 0..rows {
                let got = f64::from_le_bytes(dec[(r * f + j) * 8..(r * f + j + 1) * 8].try_into().unwrap());
                let want = t[r * f + j];
                if want.is_nan() {
                    assert!(got.is_nan());
                } else {
                    assert!((got - want).abs() <= tol, "col {j} row {r}");
                }
            }
        }
        // Damage in the piece table, with the CRC made to match: an error, never a panic.
        let n = u32::from_le_bytes(enc[24..28].try_into().unwrap()) as usize;
        for (at, v) in [(24usize, 0u8), (24, 0xff), (28, 0), (28 + 8 * n, 0x7f), (28 + 16 * n - 1, 0x40), (27, 1)] {
            let mut bad = enc.clone();
            bad[at] = v;
            let crc = crc32fast::hash(&bad[HEADER_BYTES..]);
            bad[20..24].copy_from_slice(&crc.to_le_bytes());
            assert!(decode(&p, &bad, None).is_err(), "byte {at} set to {v:#x}");
        }
    }

    #[test]
    fn a_chunk_that_splits_rows_is_refused() {
        let p = FilterParams { dtype: Some(DType::F32), layout: Layout::Table, features: 3, ..Default::default() };
        let e = encode(&p, &[0u8; 4 * 10], None).unwrap_err();
        assert!(e.contains("whole rows of 3"), "{e}");
        let p = FilterParams { dtype: None, ..Default::default() };
        assert!(encode(&p, &[0u8; 8], None).unwrap_err().contains("element type is unknown"));
    }
}
