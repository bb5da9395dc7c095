//! The integer codec as a chain of stages, the way zarrs composes its codecs: array->array
//! stages on the integer codes (predictors, an offset), one array->bytes stage (an entropy
//! coder, or fixed-width packing), then bytes->bytes stages (shuffle, zstd). A block written as a
//! chain names each stage and its configuration (baler-format.md, "integer blocks"), so a reader
//! needs nothing but the registry below to decode it; a new predictor or coder is a new stage
//! here, not a new branch in every reader.
//!
//! Blocks written before chains existed (width 0, 1, 2, 4 or 8 in the block's first byte) are
//! read as the chain they amount to (`legacy`), by these same stages.

use super::ac::{self, AcConfig, Context};
use super::ahead::Fill;
use super::bytes;
use super::rans::{self, RansConfig};
use crate::wire::{put_varint, Cursor};

/// The first byte of an integer block written as a chain (legacy blocks hold a width there).
pub const CHAIN: u8 = 16;

/// What the array->array stages of one block may read besides its own codes: the codes of the
/// chunk's variables coded before it (quantised codes, or a lossless integer's values), by
/// variable index. A table's columns are often near copies of one another (systematic
/// variations of one weight, E and p of one particle), which `Reference` exploits.
#[derive(Clone, Copy)]
pub struct Refs<'a> {
    pub codes: &'a [Option<Vec<i64>>],
    /// The encoder's hint: the value one step of each variable's codes stands for (its
    /// quantisation step; 1 for an integer's values), by variable index, NaN where unknown. Only
    /// the search for a predictor reads it; a stage's configuration carries what decoding needs,
    /// so decoders pass none.
    pub scales: &'a [f64],
}

impl<'a> Refs<'a> {
    pub const NONE: Refs<'static> = Refs { codes: &[], scales: &[] };

    /// Codes only, for decoding.
    pub fn codes(codes: &'a [Option<Vec<i64>>]) -> Refs<'a> {
        Refs { codes, scales: &[] }
    }

    /// The step variable `var`'s codes are on, where the encoder knows it.
    pub fn scale(&self, var: usize) -> Option<f64> {
        self.scales.get(var).copied().filter(|s| s.is_finite() && *s > 0.0)
    }

    pub fn get(&self, var: usize) -> Option<&'a [i64]> {
        self.codes.get(var)?.as_deref()
    }
}

/// An array->array stage on integer codes; wrapping arithmetic, so it is exact on any input.
pub trait CodesStage: std::fmt::Debug + Send + Sync {
    fn id(&self) -> u8;
    fn write_config(&self, out: &mut Vec<u8>);
    fn encode(&self, codes: &mut [i64], refs: &Refs);
    /// `encode` of a copy of `codes`; a stage whose residuals are a simple map of the codes
    /// makes them in one pass.
    fn encoded(&self, codes: &[i64], refs: &Refs) -> Vec<i64> {
        let mut r = codes.to_vec();
        self.encode(&mut r, refs);
        r
    }
    /// Fails only when the stage needs a reference the chunk does not hold.
    fn decode(&self, codes: &mut [i64], refs: &Refs) -> Result<(), String>;
    /// `decode` for a block whose `omitted` elements have no residual in the payload (the
    /// block's FLAG_OMIT; whatever `codes` holds there is ignored): each decodes to the code the
    /// encoder gave it, the last kept code before it, 0 before the first
    /// (`missing::fill_codes`). Right as it stands for a stage that predicts an element from
    /// anything but the codes before it; one that does overrides it.
    fn decode_omitting(&self, codes: &mut [i64], refs: &Refs, omitted: &[bool]) -> Result<(), String> {
        self.decode(codes, refs)?;
        crate::missing::fill_codes(codes, omitted);
        Ok(())
    }
    /// How the stage undoes itself one code at a time, where it can (`Chain::stream`).
    fn streamed(&self) -> Option<Streamed> {
        None
    }
    fn boxed_clone(&self) -> Box<dyn CodesStage>;
}

/// The array->bytes stage: codes to the bytes the bytes->bytes stages see.
pub trait CodesToBytes: std::fmt::Debug + Send + Sync {
    fn id(&self) -> u8;
    fn write_config(&self, out: &mut Vec<u8>);
    /// `refs`: the chunk's earlier variables, for a coder whose statistics look at one.
    fn encode(&self, codes: &[i64], refs: &Refs) -> Vec<u8>;
    fn decode(&self, bytes: &[u8], n: usize, refs: &Refs) -> Result<Vec<i64>, String>;
    /// The bytes `encode` makes from `n` codes, when it is fixed (the frame size zstd checks).
    fn encoded_len(&self, n: usize) -> Option<usize>;
    /// The coder of `n` values in `bytes` as a stream, and the sign mapping of its values, for
    /// a stage that can hand its codes out in order a few at a time (`Chain::stream`).
    fn stream<'a>(&self, _bytes: &'a [u8], _n: usize) -> Option<Result<(Coder<'a>, Sign), String>> {
        None
    }
}

/// An array->array stage undone one code at a time.
#[derive(Clone, Copy, Debug)]
pub enum Streamed {
    Delta,
    Offset(i64),
}

/// A chain's codes one at a time, decoded a small batch ahead of the taker: no block-sized
/// buffer between the coder and a consumer that takes each in order (the interpolation walk),
/// and one call to the coder a batch, not a code.
pub struct Stream<'a> {
    src: Source<'a>,
    /// Turns the coder's values into codes.
    undo: Undo,
    /// The batch: the coder's values, turned into codes in place (their bits as u64).
    batch: Box<[u64; STREAM_BATCH]>,
    at: usize,
    len: usize,
}

/// A coder that streams: `rans`'s decoder, or `ac`'s a range at a time.
pub enum Coder<'a> {
    Rans(rans::Decoder<'a>),
    Ac(super::ac::Stream<'a>),
}

impl Fill for Coder<'_> {
    fn remaining(&self) -> usize {
        match self {
            Coder::Rans(d) => d.remaining(),
            Coder::Ac(d) => d.remaining(),
        }
    }

    fn fill(&mut self, out: &mut [u64]) {
        match self {
            Coder::Rans(d) => d.fill(out),
            Coder::Ac(d) => d.fill(out),
        }
    }

    fn finish(&self) -> Result<(), String> {
        match self {
            Coder::Rans(d) => d.finish(),
            Coder::Ac(d) => d.finish(),
        }
    }
}

/// Where a `Stream`'s values come from: its coder on this thread, or a ring it fills ahead on
/// another (`Stream::ahead`).
enum Source<'a> {
    Here(Coder<'a>),
    Ahead(super::ahead::Reader<'a>),
}

impl Source<'_> {
    fn remaining(&self) -> usize {
        match self {
            Source::Here(d) => d.remaining(),
            Source::Ahead(r) => r.remaining(),
        }
    }

    fn finish(&self) -> Result<(), String> {
        match self {
            Source::Here(d) => d.finish(),
            Source::Ahead(r) => r.finish(),
        }
    }
}

/// The sign mapping and the streamed stage undone, a batch of the coder's values at a time.
#[derive(Clone, Copy)]
struct Undo {
    sign: Sign,
    stage: Option<Streamed>,
    /// The last code handed out, for `Streamed::Delta`.
    prev: i64,
}

impl Undo {
    /// The values of `batch` turned into codes in place (their bits as u64).
    fn apply(&mut self, batch: &mut [u64]) {
        let (sign, stage, prev) = (self.sign, self.stage, &mut self.prev);
        batch.iter_mut().for_each(|u| {
            let c = sign.from_u(*u);
            let c = match stage {
                None => c,
                Some(Streamed::Offset(by)) => c.wrapping_add(by),
                Some(Streamed::Delta) => {
                    *prev = prev.wrapping_add(c);
                    *prev
                }
            };
            *u = c as u64;
        });
    }
}

/// Codes a `Stream` decodes at once: 2 KiB, so they stay in L1 beside the walk's rows.
const STREAM_BATCH: usize = 256;

impl super::interp::Symbols for Stream<'_> {
    #[inline(always)]
    fn take(&mut self) -> i64 {
        if self.at == self.len {
            self.refill();
        }
        let c = self.batch.get(self.at).map_or(0, |&u| u as i64);
        self.at += 1;
        c
    }

    #[inline(always)]
    fn run(&mut self, max: usize) -> &[u64] {
        if self.at == self.len {
            self.refill();
        }
        let k = (self.len - self.at).min(max);
        let run = &self.batch[self.at..self.at + k];
        self.at += k;
        run
    }
}

impl<'a> Stream<'a> {
    fn new(src: Source<'a>, undo: Undo) -> Stream<'a> {
        Stream { src, undo, batch: Box::new([0; STREAM_BATCH]), at: 0, len: 0 }
    }

    /// `f(stream)`, with this fresh stream's coder run a ring ahead on a second thread where
    /// `threads` allow one and the block is long enough to pay for it (`ahead`); else `f(self)`.
    /// The same codes either way.
    pub fn ahead<R>(self, threads: usize, f: impl FnOnce(Stream<'_>) -> R) -> R {
        let fresh = self.at == 0 && self.len == 0;
        let (dec, undo) = match self {
            Stream { src: Source::Here(dec), undo, .. } if fresh && threads > 1 && dec.remaining() >= super::ahead::MIN_VALUES => (dec, undo),
            other => return f(other),
        };
        let mut ring = super::ahead::Ring::new(dec.remaining());
        let (writer, reader) = ring.split();
        // The decoder waits in a cell, so a refused spawn leaves it here to use.
        let cell = std::sync::Mutex::new(Some(dec));
        let take = || cell.lock().unwrap_or_else(|e| e.into_inner()).take();
        std::thread::scope(|s| match std::thread::Builder::new().spawn_scoped(s, || take().map(|d| writer.write(d))) {
            // The codes are undone on this thread: the coder is the slower side (`rans` with 16
            // contexts, `ac` always).
            Ok(_) => f(Stream::new(Source::Ahead(reader), undo)),
            Err(_) => f(Stream::new(Source::Here(take().expect("a refused thread never ran")), undo)),
        })
    }

    #[inline(never)]
    fn refill(&mut self) {
        // At least one, so a taker past the end gets 0 and `finish` reports the overrun.
        let k = self.src.remaining().clamp(1, STREAM_BATCH);
        let batch = &mut self.batch[..k];
        match &mut self.src {
            Source::Here(d) => d.fill(batch),
            Source::Ahead(r) => r.fill(batch),
        }
        self.undo.apply(batch);
        self.at = 0;
        self.len = k;
    }

    /// Whether every code was taken and the stream ended where it should.
    pub fn finish(&self) -> Result<(), String> {
        // Decoded a batch ahead: codes decoded but never taken are codes the walk did not have.
        if self.at < self.len {
            return Err(format!("{} coded symbols left over by the walk", self.len - self.at));
        }
        self.src.finish()
    }
}

/// A bytes->bytes stage.
pub trait BytesStage: std::fmt::Debug + Send + Sync {
    fn id(&self) -> u8;
    fn write_config(&self, out: &mut Vec<u8>);
    fn encode(&self, data: Vec<u8>) -> Vec<u8>;
    /// `expected`: the decoded length, when the stage before says it.
    fn decode(&self, data: &[u8], expected: Option<usize>) -> Result<Vec<u8>, String>;
    /// Whether the stage's output is as long as its input (then the length the array->bytes
    /// stage fixes holds after it too).
    fn keeps_len(&self) -> bool {
        false
    }
}

// ---- array->array stages ----------------------------------------------------------------

/// Difference from the previous code in C order: smooth fields, ordered rows.
#[derive(Debug)]
pub struct Delta;

impl CodesStage for Delta {
    fn boxed_clone(&self) -> Box<dyn CodesStage> {
        Box::new(Delta)
    }
    fn id(&self) -> u8 {
        1
    }
    fn write_config(&self, _: &mut Vec<u8>) {}
    fn encode(&self, codes: &mut [i64], _: &Refs) {
        let mut prev = 0i64;
        for c in codes.iter_mut() {
            let v = *c;
            *c = v.wrapping_sub(prev);
            prev = v;
        }
    }
    fn encoded(&self, codes: &[i64], _: &Refs) -> Vec<i64> {
        // A zip of two slices, which the compiler vectorises: the chain of the first and
        // `windows(2)` ran an element at a time (a walk's symbols take this stage: 4 % of a
        // default `pack` of GloSea4, callgrind).
        let mut r = Vec::with_capacity(codes.len());
        r.extend(codes.first().copied());
        r.extend(codes[codes.len().min(1)..].iter().zip(codes).map(|(&c, &before)| c.wrapping_sub(before)));
        r
    }
    fn decode(&self, codes: &mut [i64], _: &Refs) -> Result<(), String> {
        let mut prev = 0i64;
        for c in codes.iter_mut() {
            prev = prev.wrapping_add(*c);
            *c = prev;
        }
        Ok(())
    }
    fn streamed(&self) -> Option<Streamed> {
        Some(Streamed::Delta)
    }
    fn decode_omitting(&self, codes: &mut [i64], _: &Refs, omitted: &[bool]) -> Result<(), String> {
        // An omitted code repeats the one before: what `prev` holds.
        let mut prev = 0i64;
        for (c, &o) in codes.iter_mut().zip(omitted) {
            if !o {
                prev = prev.wrapping_add(*c);
            }
            *c = prev;
        }
        Ok(())
    }
}

/// Lorenzo over the chunk's grid (`ints::lorenzo`).
#[derive(Debug)]
pub struct Lorenzo {
    pub grid: [usize; 2],
}

impl CodesStage for Lorenzo {
    fn boxed_clone(&self) -> Box<dyn CodesStage> {
        Box::new(Lorenzo { grid: self.grid })
    }
    fn id(&self) -> u8 {
        2
    }
    fn write_config(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.grid[0] as u32).to_le_bytes());
        out.extend_from_slice(&(self.grid[1] as u32).to_le_bytes());
    }
    fn encode(&self, codes: &mut [i64], _: &Refs) {
        let r = super::ints::lorenzo_residuals(codes, self.grid);
        codes.copy_from_slice(&r);
    }
    fn encoded(&self, codes: &[i64], _: &Refs) -> Vec<i64> {
        super::ints::lorenzo_residuals(codes, self.grid)
    }
    fn decode(&self, codes: &mut [i64], _: &Refs) -> Result<(), String> {
        super::ints::lorenzo_undo(codes, self.grid);
        Ok(())
    }
    fn decode_omitting(&self, codes: &mut [i64], _: &Refs, omitted: &[bool]) -> Result<(), String> {
        super::ints::lorenzo_undo_omitting(codes, self.grid, omitted);
        Ok(())
    }
}

/// Subtracts a constant (the block's smallest code): a column far from 0 becomes small
/// non-negative numbers instead of large ones, or zigzagged ones twice as large.
#[derive(Debug)]
pub struct Offset {
    pub by: i64,
}

impl CodesStage for Offset {
    fn boxed_clone(&self) -> Box<dyn CodesStage> {
        Box::new(Offset { by: self.by })
    }
    fn id(&self) -> u8 {
        3
    }
    fn write_config(&self, out: &mut Vec<u8>) {
        put_varint(out, zigzag(self.by));
    }
    fn encode(&self, codes: &mut [i64], _: &Refs) {
        codes.iter_mut().for_each(|c| *c = c.wrapping_sub(self.by));
    }
    fn encoded(&self, codes: &[i64], _: &Refs) -> Vec<i64> {
        codes.iter().map(|c| c.wrapping_sub(self.by)).collect()
    }
    fn decode(&self, codes: &mut [i64], _: &Refs) -> Result<(), String> {
        codes.iter_mut().for_each(|c| *c = c.wrapping_add(self.by));
        Ok(())
    }
    fn streamed(&self) -> Option<Streamed> {
        Some(Streamed::Offset(self.by))
    }
}

/// Fractional bits of `Reference`'s slope.
pub const REFERENCE_SHIFT: u32 = 20;

/// A linear prediction from another variable of the chunk, in integer arithmetic so encoder and
/// decoder agree bit for bit: `code - (off + (slope * ref_code) >> 20)`, the product taken in
/// 128 bits and the result wrapped to 64.
#[derive(Debug, Clone, Copy)]
pub struct Reference {
    pub var: u32,
    pub slope: i64,
    pub off: i64,
}

impl Reference {
    #[inline]
    pub fn predict(&self, r: i64) -> i64 {
        self.off.wrapping_add(((self.slope as i128 * r as i128) >> REFERENCE_SHIFT) as i64)
    }

    fn reference<'a>(&self, refs: &Refs<'a>, n: usize) -> Result<&'a [i64], String> {
        refs.get(self.var as usize)
            .filter(|r| r.len() == n)
            .ok_or_else(|| format!("block predicted from variable {}, which holds no codes before it", self.var))
    }
}

impl CodesStage for Reference {
    fn boxed_clone(&self) -> Box<dyn CodesStage> {
        Box::new(*self)
    }
    fn id(&self) -> u8 {
        4
    }
    fn write_config(&self, out: &mut Vec<u8>) {
        put_varint(out, self.var as u64);
        put_varint(out, zigzag(self.slope));
        put_varint(out, zigzag(self.off));
    }
    fn encode(&self, codes: &mut [i64], refs: &Refs) {
        // The encoder only builds this stage from a reference it holds.
        let r = self.reference(refs, codes.len()).expect("the encoder's reference");
        codes.iter_mut().zip(r).for_each(|(c, &r)| *c = c.wrapping_sub(self.predict(r)));
    }
    fn decode(&self, codes: &mut [i64], refs: &Refs) -> Result<(), String> {
        let r = self.reference(refs, codes.len())?;
        codes.iter_mut().zip(r).for_each(|(c, &r)| *c = c.wrapping_add(self.predict(r)));
        Ok(())
    }
}

/// Most variables a `Norm` combines (a four-vector's spatial part is three).
pub const MAX_NORM_PARTS: usize = 4;

/// The Euclidean norm of other variables of the chunk, as a prediction: a particle's energy
/// from its momentum components (E = |p| for a massless one, close to it for a jet), its
/// transverse momentum from px and py. No linear stage sees this, and a table of four-vectors
/// is most of HEP's data. In IEEE f64 with a fixed order of operations and no fused
/// multiply-add, so every machine predicts the same integer:
/// `s = sum_j (c_j as f64 * r_j as f64)^2` in order, `p = round_half_away(sqrt(s))` saturated to
/// i64, `code - (p + off)` wrapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Norm {
    /// (variable, the ratio of its step to this block's), in the order summed.
    pub parts: Vec<(u32, f32)>,
    pub off: i64,
}

impl Norm {
    /// The norm of element `i` of the parts, rounded to a code (before `off`).
    #[inline]
    pub fn norm_at(parts: &[(&[i64], f64)], i: usize) -> i64 {
        let mut s = 0f64;
        for &(c, r) in parts {
            let t = c[i] as f64 * r;
            s += t * t;
        }
        // `as` saturates (inf to i64::MAX); s >= 0, so no NaN reaches it.
        s.sqrt().round() as i64
    }

    fn parts<'a>(&self, refs: &Refs<'a>, n: usize) -> Result<Vec<(&'a [i64], f64)>, String> {
        self.parts
            .iter()
            .map(|&(v, r)| {
                let c = refs.get(v as usize).filter(|c| c.len() == n);
                c.map(|c| (c, r as f64)).ok_or_else(|| format!("block predicted from the norm of variable {v}, which holds no codes before it"))
            })
            .collect()
    }

    fn predictions(&self, refs: &Refs, n: usize) -> Result<Vec<i64>, String> {
        let parts = self.parts(refs, n)?;
        Ok((0..n).map(|i| Self::norm_at(&parts, i).wrapping_add(self.off)).collect())
    }
}

impl CodesStage for Norm {
    fn boxed_clone(&self) -> Box<dyn CodesStage> {
        Box::new(self.clone())
    }
    fn id(&self) -> u8 {
        5
    }
    fn write_config(&self, out: &mut Vec<u8>) {
        put_varint(out, self.parts.len() as u64);
        for &(v, r) in &self.parts {
            put_varint(out, v as u64);
            out.extend_from_slice(&r.to_le_bytes());
        }
        put_varint(out, zigzag(self.off));
    }
    fn encode(&self, codes: &mut [i64], refs: &Refs) {
        // The encoder only builds this stage from references it holds.
        let p = self.predictions(refs, codes.len()).expect("the encoder's references");
        codes.iter_mut().zip(p).for_each(|(c, p)| *c = c.wrapping_sub(p));
    }
    fn decode(&self, codes: &mut [i64], refs: &Refs) -> Result<(), String> {
        let p = self.predictions(refs, codes.len())?;
        codes.iter_mut().zip(p).for_each(|(c, p)| *c = c.wrapping_add(p));
        Ok(())
    }
}

fn read_norm(cur: &mut Cursor) -> Result<Norm, String> {
    let k = cur.varint("norm part count")?;
    if !(2..=MAX_NORM_PARTS as u64).contains(&k) {
        return Err(format!("norm of {k} variables (2 to {MAX_NORM_PARTS})"));
    }
    let mut parts = Vec::with_capacity(k as usize);
    for _ in 0..k {
        let v = u32::try_from(cur.varint("norm variable")?).map_err(|_| "norm variable out of range")?;
        let r = f32::from_le_bytes(cur.bytes(4, "norm ratio")?.try_into().unwrap());
        if !(r.is_finite() && r > 0.0) {
            return Err(format!("norm ratio {r} (must be finite and positive)"));
        }
        parts.push((v, r));
    }
    Ok(Norm { parts, off: unzigzag(cur.varint("norm offset")?) })
}

// ---- array->bytes stages ----------------------------------------------------------------

#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// How an array->bytes stage sees a code as unsigned: zigzag (residuals around 0) or the code's
/// own bits (non-negative codes, after `Offset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sign {
    Zigzag = 0,
    Unsigned = 1,
}

impl Sign {
    pub fn to_u(self, v: i64) -> u64 {
        match self {
            Sign::Zigzag => zigzag(v),
            Sign::Unsigned => v as u64,
        }
    }
    fn from_u(self, u: u64) -> i64 {
        match self {
            Sign::Zigzag => unzigzag(u),
            Sign::Unsigned => u as i64,
        }
    }
    fn read(c: &mut Cursor) -> Result<Sign, String> {
        match c.u8("sign mapping")? {
            0 => Ok(Sign::Zigzag),
            1 => Ok(Sign::Unsigned),
            k => Err(format!("unknown sign mapping {k}")),
        }
    }
}

/// Each code in `width` little-endian bytes.
#[derive(Debug)]
pub struct Packed {
    pub width: u8,
    pub sign: Sign,
}

impl Packed {
    /// The narrowest width that holds every code.
    pub fn narrowest(codes: &[i64], sign: Sign) -> Packed {
        // The bits of all of them OR-ed have the largest's top bit, all a width depends on: an
        // OR vectorises in the baseline, an unsigned 64-bit max does not.
        let max = match sign {
            Sign::Zigzag => codes.iter().fold(0, |a, &c| a | zigzag(c)),
            Sign::Unsigned => codes.iter().fold(0, |a, &c| a | c as u64),
        };
        let width = match max {
            0..=0xff => 1,
            0x100..=0xffff => 2,
            0x1_0000..=0xffff_ffff => 4,
            _ => 8,
        };
        Packed { width, sign }
    }
}

impl CodesToBytes for Packed {
    fn id(&self) -> u8 {
        1
    }
    fn write_config(&self, out: &mut Vec<u8>) {
        out.push(self.width);
        out.push(self.sign as u8);
    }
    fn encode(&self, codes: &[i64], _: &Refs) -> Vec<u8> {
        let w = self.width as usize;
        let mut out = Vec::with_capacity(codes.len() * w);
        for &c in codes {
            out.extend_from_slice(&self.sign.to_u(c).to_le_bytes()[..w]);
        }
        out
    }
    fn decode(&self, bytes: &[u8], n: usize, _: &Refs) -> Result<Vec<i64>, String> {
        let w = self.width as usize;
        if n.checked_mul(w) != Some(bytes.len()) {
            return Err(format!("{} bytes of {w}-byte codes for {n} values", bytes.len()));
        }
        Ok(bytes
            .chunks_exact(w)
            .map(|b| {
                let mut v = [0u8; 8];
                v[..w].copy_from_slice(b);
                self.sign.from_u(u64::from_le_bytes(v))
            })
            .collect())
    }
    fn encoded_len(&self, n: usize) -> Option<usize> {
        n.checked_mul(self.width as usize)
    }
}

/// The adaptive binary range coder of format 1's first release (`rc`), zigzag codes.
#[derive(Debug)]
pub struct RangeCoded {
    pub row: usize,
}

impl CodesToBytes for RangeCoded {
    fn id(&self) -> u8 {
        2
    }
    fn write_config(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.row as u32).to_le_bytes());
    }
    fn encode(&self, codes: &[i64], _: &Refs) -> Vec<u8> {
        let zz: Vec<u64> = codes.iter().map(|&c| zigzag(c)).collect();
        super::rc::encode(&zz, self.row)
    }
    fn decode(&self, bytes: &[u8], n: usize, _: &Refs) -> Result<Vec<i64>, String> {
        // An adaptive binary coder spends at least ~0.02 bits per code, so a payload can hold
        // at most a few hundred codes per byte: a count beyond that is damage, refused before
        // the decoder reserves memory for it.
        if n / 512 > bytes.len() + 8 {
            return Err(format!("{n} range-coded values cannot fit in {} bytes", bytes.len()));
        }
        Ok(super::rc::decode(bytes, n, self.row).into_iter().map(unzigzag).collect())
    }
    fn encoded_len(&self, _: usize) -> Option<usize> {
        None
    }
}

/// The `ac` coder (see `ac`).
#[derive(Debug)]
pub struct Arithmetic {
    pub cfg: AcConfig,
    pub sign: Sign,
}

impl Arithmetic {
    fn side<'a>(&self, refs: &Refs<'a>, n: usize) -> Result<Option<&'a [i64]>, String> {
        match self.cfg.repeat_side {
            None => Ok(None),
            Some(v) => refs
                .get(v as usize)
                .filter(|r| r.len() == n)
                .map(Some)
                .ok_or_else(|| format!("repeat decisions conditioned on variable {v}, which holds no codes before it")),
        }
    }
}

impl CodesToBytes for Arithmetic {
    fn id(&self) -> u8 {
        3
    }
    fn write_config(&self, out: &mut Vec<u8>) {
        out.push(self.sign as u8);
        out.push(self.cfg.tree_bits);
        out.extend_from_slice(&self.cfg.adapt.to_le_bytes());
        match self.cfg.context {
            Context::None => out.push(0),
            Context::Previous => out.push(1),
            Context::Grid(row) => {
                out.push(2);
                out.extend_from_slice(&row.to_le_bytes());
            }
        }
        let head = self.cfg.head > 0;
        out.push(self.cfg.repeats as u8 | (self.cfg.repeat_side.is_some() as u8) << 1 | (self.cfg.short_buckets as u8) << 2 | (head as u8) << 3);
        if let Some(v) = self.cfg.repeat_side {
            put_varint(out, v as u64);
        }
        if head {
            out.push(self.cfg.head);
        }
    }
    fn encode(&self, codes: &[i64], refs: &Refs) -> Vec<u8> {
        let u: Vec<u64> = codes.iter().map(|&c| self.sign.to_u(c)).collect();
        // The encoder only names a side variable it holds.
        let side = self.side(refs, codes.len()).expect("the encoder's side variable");
        ac::encode(&u, self.cfg, side)
    }
    fn decode(&self, bytes: &[u8], n: usize, refs: &Refs) -> Result<Vec<i64>, String> {
        let side = self.side(refs, n)?;
        Ok(ac::decode(bytes, n, self.cfg, side)?.into_iter().map(|u| self.sign.from_u(u)).collect())
    }
    fn encoded_len(&self, _: usize) -> Option<usize> {
        None
    }
    fn stream<'a>(&self, bytes: &'a [u8], n: usize) -> Option<Result<(Coder<'a>, Sign), String>> {
        // Repeat decisions conditioned on another variable read its codes: those are not at hand
        // where the walk takes its symbols.
        if self.cfg.repeat_side.is_some() {
            return None;
        }
        Some(ac::Stream::new(bytes, n, self.cfg).map(|d| (Coder::Ac(d), self.sign)))
    }
}

/// The `rans` coder (see `rans`): static tables, for blocks whose decoding speed counts.
#[derive(Debug)]
pub struct Rans {
    pub cfg: RansConfig,
    pub sign: Sign,
}

impl CodesToBytes for Rans {
    fn id(&self) -> u8 {
        4
    }
    fn write_config(&self, out: &mut Vec<u8>) {
        out.push(self.sign as u8);
        out.push(self.cfg.prob_bits);
        out.push(self.cfg.segment_log2);
        out.push(self.cfg.contexts);
        put_varint(out, self.cfg.row as u64);
    }
    fn encode(&self, codes: &[i64], _: &Refs) -> Vec<u8> {
        let u: Vec<u64> = codes.iter().map(|&c| self.sign.to_u(c)).collect();
        rans::encode(&u, self.cfg)
    }
    fn decode(&self, bytes: &[u8], n: usize, _: &Refs) -> Result<Vec<i64>, String> {
        Ok(rans::decode(bytes, n, self.cfg)?.into_iter().map(|u| self.sign.from_u(u)).collect())
    }
    fn encoded_len(&self, _: usize) -> Option<usize> {
        None
    }
    fn stream<'a>(&self, bytes: &'a [u8], n: usize) -> Option<Result<(Coder<'a>, Sign), String>> {
        Some(rans::Decoder::new(bytes, n, self.cfg).map(|d| (Coder::Rans(d), self.sign)))
    }
}

// ---- bytes->bytes stages ----------------------------------------------------------------

/// Byte shuffle of `width`-byte elements (`bytes::shuffle`).
#[derive(Debug)]
pub struct Shuffle {
    pub width: u8,
}

impl BytesStage for Shuffle {
    fn id(&self) -> u8 {
        1
    }
    fn write_config(&self, out: &mut Vec<u8>) {
        out.push(self.width);
    }
    fn encode(&self, data: Vec<u8>) -> Vec<u8> {
        bytes::shuffle(self.width as usize, &data)
    }
    fn keeps_len(&self) -> bool {
        true
    }
    fn decode(&self, data: &[u8], expected: Option<usize>) -> Result<Vec<u8>, String> {
        if expected.is_some_and(|e| e != data.len()) || data.len() % (self.width.max(1) as usize) != 0 {
            return Err(format!("{} bytes do not unshuffle as {}-byte elements", data.len(), self.width));
        }
        Ok(bytes::unshuffle(self.width as usize, data))
    }
}

/// zstd at `level` (recorded for the reader's information; decoding ignores it).
#[derive(Debug)]
pub struct Zstd {
    pub level: i32,
}

impl BytesStage for Zstd {
    fn id(&self) -> u8 {
        2
    }
    fn write_config(&self, out: &mut Vec<u8>) {
        out.push(self.level.clamp(-128, 127) as i8 as u8);
    }
    fn encode(&self, data: Vec<u8>) -> Vec<u8> {
        bytes::compress(&data, self.level)
    }
    fn decode(&self, data: &[u8], expected: Option<usize>) -> Result<Vec<u8>, String> {
        let expected = expected.ok_or("a zstd stage needs the size it decodes to")?;
        bytes::decompress(data, expected)
    }
}

// ---- the chain --------------------------------------------------------------------------

/// One block's stages in encode order.
#[derive(Debug)]
pub struct Chain {
    pub codes: Vec<Box<dyn CodesStage>>,
    pub to_bytes: Box<dyn CodesToBytes>,
    pub bytes: Vec<Box<dyn BytesStage>>,
}

/// Stages a chain may hold, at most: a damaged block cannot make a reader loop long.
const MAX_STAGES: u8 = 8;

impl Chain {
    /// Encodes `codes` through the chain: `u8 CHAIN, u8 k, k x (u8 id, config), u8 id, config,
    /// u8 m, m x (u8 id, config), varint payload length, payload`.
    pub fn encode(&self, codes: &[i64], refs: &Refs, out: &mut Vec<u8>) {
        let mut c = codes.to_vec();
        for s in &self.codes {
            s.encode(&mut c, refs);
        }
        self.encode_transformed(&c, refs, out);
    }

    /// `encode` for codes the array->array stages have already transformed (the encoder
    /// computes them once to choose a predictor, then tries several coders on them).
    pub fn encode_transformed(&self, c: &[i64], refs: &Refs, out: &mut Vec<u8>) {
        let mut data = self.to_bytes.encode(c, refs);
        for s in &self.bytes {
            data = s.encode(data);
        }
        self.write_coded(&data, out);
    }

    /// The block of a `payload` this chain's stages made: its stages, then the payload with
    /// its length.
    pub fn write_coded(&self, payload: &[u8], out: &mut Vec<u8>) {
        self.write_stages(out);
        put_varint(out, payload.len() as u64);
        out.extend_from_slice(payload);
    }

    /// The block's bytes before its payload length: `CHAIN` and each stage with its
    /// configuration.
    pub fn write_stages(&self, out: &mut Vec<u8>) {
        out.push(CHAIN);
        out.push(self.codes.len() as u8);
        for s in &self.codes {
            out.push(s.id());
            s.write_config(out);
        }
        out.push(self.to_bytes.id());
        self.to_bytes.write_config(out);
        out.push(self.bytes.len() as u8);
        for s in &self.bytes {
            out.push(s.id());
            s.write_config(out);
        }
    }

    /// Reads a chain block's stages (after its CHAIN byte) for `n` codes, and its payload.
    pub fn read<'a>(cur: &mut Cursor<'a>, n: usize) -> Result<(Chain, &'a [u8]), String> {
        let k = cur.u8("array stage count")?;
        if k > MAX_STAGES {
            return Err(format!("{k} array stages"));
        }
        let mut codes: Vec<Box<dyn CodesStage>> = Vec::with_capacity(k as usize);
        for _ in 0..k {
            codes.push(read_codes_stage(cur, n)?);
        }
        let to_bytes = read_to_bytes(cur)?;
        let m = cur.u8("bytes stage count")?;
        if m > MAX_STAGES {
            return Err(format!("{m} bytes stages"));
        }
        let mut bytes: Vec<Box<dyn BytesStage>> = Vec::with_capacity(m as usize);
        for _ in 0..m {
            bytes.push(read_bytes_stage(cur)?);
        }
        let len = cur.varint("code payload length")?;
        let payload = cur.bytes(len, "code payload")?;
        Ok((Chain { codes, to_bytes, bytes }, payload))
    }

    pub fn decode(&self, payload: &[u8], n: usize, refs: &Refs) -> Result<Vec<i64>, String> {
        self.decode_omitting(payload, n, None, refs)
    }

    /// The chain's `n` codes as a `Stream`, where its stages allow: a coder that streams
    /// (`rans`, `ac`) straight, then at most one array stage that undoes itself code by code.
    /// None otherwise (`decode` then).
    pub fn stream<'a>(&self, payload: &'a [u8], n: usize) -> Option<Result<Stream<'a>, String>> {
        if !self.bytes.is_empty() {
            return None;
        }
        let stage = match &self.codes[..] {
            [] => None,
            [s] => Some(s.streamed()?),
            _ => return None,
        };
        Some(self.to_bytes.stream(payload, n)?.map(|(dec, sign)| Stream::new(Source::Here(dec), Undo { sign, stage, prev: 0 })))
    }

    /// `decode` for a block of `n` codes whose `omitted` ones (one flag an element) have no
    /// residual in the payload (FLAG_OMIT): it holds the others', in order, and the first
    /// array stage decodes the omitted ones (`CodesStage::decode_omitting`).
    pub fn decode_omitting(&self, payload: &[u8], n: usize, omitted: Option<&[bool]>, refs: &Refs) -> Result<Vec<i64>, String> {
        let kept = omitted.map_or(n, |m| m.iter().filter(|&&o| !o).count());
        // With omissions the coded stream's elements are not the chunk's: a coder reads no side
        // variable there (the spec forbids one; the encoder never names one).
        let coder_refs = if omitted.is_some() { &Refs::NONE } else { refs };
        let mut codes = self.decode_residuals(payload, kept, coder_refs)?;
        let Some(m) = omitted else {
            for s in self.codes.iter().rev() {
                s.decode(&mut codes, refs)?;
            }
            return Ok(codes);
        };
        if m.len() != n {
            return Err(format!("{} omission flags for a block of {n}", m.len()));
        }
        // Spread in place from the end (the kept code bound for element i sits at or before
        // i); an omitted element holds 0 until the first stage rebuilds it.
        let mut j = codes.len();
        codes.resize(n, 0);
        for i in (0..n).rev() {
            if m[i] {
                codes[i] = 0;
            } else {
                j -= 1;
                codes[i] = codes[j];
            }
        }
        match self.codes.split_first() {
            None => crate::missing::fill_codes(&mut codes, m),
            Some((first, rest)) => {
                for s in rest.iter().rev() {
                    s.decode(&mut codes, refs)?;
                }
                first.decode_omitting(&mut codes, refs, m)?;
            }
        }
        Ok(codes)
    }

    /// The array->bytes stage's `n` values, through the bytes stages.
    fn decode_residuals(&self, payload: &[u8], n: usize, refs: &Refs) -> Result<Vec<i64>, String> {
        let expected = self.to_bytes.encoded_len(n);
        let mut data = None::<Vec<u8>>;
        for (j, s) in self.bytes.iter().enumerate().rev() {
            // The array->bytes stage fixes a length; it holds through stages that keep lengths.
            let exp = if self.bytes[..j].iter().all(|s| s.keeps_len()) { expected } else { None };
            data = Some(s.decode(data.as_deref().unwrap_or(payload), exp)?);
        }
        let codes = self.to_bytes.decode(data.as_deref().unwrap_or(payload), n, refs)?;
        if codes.len() != n {
            return Err(format!("{} codes where the block holds {n}", codes.len()));
        }
        Ok(codes)
    }
}

/// The registry of array->array stages.
fn read_codes_stage(cur: &mut Cursor, n: usize) -> Result<Box<dyn CodesStage>, String> {
    Ok(match cur.u8("array stage")? {
        1 => Box::new(Delta),
        2 => Box::new(Lorenzo { grid: read_grid(cur, n)? }),
        3 => Box::new(Offset { by: unzigzag(cur.varint("offset")?) }),
        4 => {
            let var = u32::try_from(cur.varint("reference variable")?).map_err(|_| "reference variable out of range")?;
            Box::new(Reference { var, slope: unzigzag(cur.varint("reference slope")?), off: unzigzag(cur.varint("reference offset")?) })
        }
        5 => Box::new(read_norm(cur)?),
        k => return Err(format!("unknown array stage {k}")),
    })
}

pub fn read_grid(cur: &mut Cursor, n: usize) -> Result<[usize; 2], String> {
    let d1 = cur.u32("grid d1")? as usize;
    let d2 = cur.u32("grid d2")? as usize;
    if d1 == 0 || d2 == 0 || n % (d1 * d2) != 0 {
        return Err(format!("Lorenzo grid {d1} x {d2} does not tile {n} elements"));
    }
    Ok([d1, d2])
}

/// The registry of array->bytes stages.
fn read_to_bytes(cur: &mut Cursor) -> Result<Box<dyn CodesToBytes>, String> {
    Ok(match cur.u8("array->bytes stage")? {
        1 => {
            let width = cur.u8("code width")?;
            if ![1, 2, 4, 8].contains(&width) {
                return Err(format!("invalid code width {width}"));
            }
            Box::new(Packed { width, sign: Sign::read(cur)? })
        }
        2 => Box::new(RangeCoded { row: cur.u32("range coder row")?.max(1) as usize }),
        3 => {
            let sign = Sign::read(cur)?;
            let tree_bits = cur.u8("tree bits")?;
            if tree_bits > ac::MAX_TREE_BITS {
                return Err(format!("{tree_bits} tree bits (at most {})", ac::MAX_TREE_BITS));
            }
            let adapt = u16::from_le_bytes(cur.bytes(2, "adaptation limit")?.try_into().unwrap());
            let context = match cur.u8("context")? {
                0 => Context::None,
                1 => Context::Previous,
                2 => Context::Grid(cur.u32("context row")?.max(1)),
                k => return Err(format!("unknown arithmetic coder context {k}")),
            };
            let options = cur.u8("ac options")?;
            if options & !15 != 0 || options & 3 == 2 {
                return Err(format!("unknown ac options {options:#x}"));
            }
            let repeat_side = if options & 2 != 0 {
                Some(u32::try_from(cur.varint("repeat side variable")?).map_err(|_| "repeat side variable out of range")?)
            } else {
                None
            };
            let head = if options & 8 != 0 { cur.u8("ac head")? } else { 0 };
            // The head's decisions share the context's nodes with the short tree's, after them.
            if options & 8 != 0 && (options & 4 == 0 || !(1..=ac::MAX_HEAD).contains(&head)) {
                return Err(format!("ac head of {head} (1 to {}, with the short bucket tree)", ac::MAX_HEAD));
            }
            Box::new(Arithmetic { cfg: AcConfig { tree_bits, context, adapt, repeats: options & 1 != 0, repeat_side, short_buckets: options & 4 != 0, head }, sign })
        }
        4 => {
            let sign = Sign::read(cur)?;
            let prob_bits = cur.u8("rans table bits")?;
            let segment_log2 = cur.u8("rans segment length")?;
            let contexts = cur.u8("rans contexts")?;
            let row = u32::try_from(cur.varint("rans context row")?).map_err(|_| "rans context row out of range")?;
            Box::new(Rans { cfg: RansConfig { prob_bits, segment_log2, contexts, row }.check()?, sign })
        }
        k => return Err(format!("unknown array->bytes stage {k}")),
    })
}

/// The registry of bytes->bytes stages.
fn read_bytes_stage(cur: &mut Cursor) -> Result<Box<dyn BytesStage>, String> {
    Ok(match cur.u8("bytes stage")? {
        1 => {
            let width = cur.u8("shuffle width")?;
            if ![1, 2, 4, 8].contains(&width) {
                return Err(format!("invalid shuffle width {width}"));
            }
            Box::new(Shuffle { width })
        }
        2 => Box::new(Zstd { level: cur.u8("zstd level")? as i8 as i32 }),
        k => return Err(format!("unknown bytes stage {k}")),
    })
}

/// A block of format 1's first release: `u8 width (0: range coded), u8 predictor (0 none,
/// 1 delta, 2 Lorenzo + u32 d1, u32 d2), u64 length, payload`, read as the chain it is.
pub fn legacy<'a>(width: u8, cur: &mut Cursor<'a>, n: usize) -> Result<(Chain, &'a [u8]), String> {
    if ![0, 1, 2, 4, 8].contains(&width) {
        return Err(format!("invalid code width {width}"));
    }
    let (codes, row): (Vec<Box<dyn CodesStage>>, usize) = match cur.u8("predictor")? {
        0 => (vec![], 1),
        1 => (vec![Box::new(Delta)], 1),
        2 => {
            let grid = read_grid(cur, n)?;
            (vec![Box::new(Lorenzo { grid })], grid[1])
        }
        p => return Err(format!("unknown predictor {p}")),
    };
    let len = cur.u64("code payload length")?;
    let payload = cur.bytes(len, "code payload")?;
    let chain = if width == 0 {
        Chain { codes, to_bytes: Box::new(RangeCoded { row }), bytes: vec![] }
    } else {
        Chain {
            codes,
            to_bytes: Box::new(Packed { width, sign: Sign::Zigzag }),
            bytes: vec![Box::new(Shuffle { width }), Box::new(Zstd { level: 0 })],
        }
    };
    Ok((chain, payload))
}

/// Reads any integer block's chain and payload.
pub fn read<'a>(cur: &mut Cursor<'a>, n: usize) -> Result<(Chain, &'a [u8]), String> {
    match cur.u8("code width")? {
        CHAIN => Chain::read(cur, n),
        w => legacy(w, cur, n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks() -> Vec<Vec<i64>> {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut r = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        vec![
            vec![],
            vec![42],
            vec![-7; 1000],
            vec![i64::MIN, i64::MAX, 0, -1, 1, i64::MIN + 1, i64::MAX - 1],
            (0..2000).map(|_| r() as i64).collect(),
            (0..2000).map(|i| 1_000_000_000_000 + (i % 37) * 3).collect(),
            (0..3000).map(|_| (r() % 50) as i64 - 25).collect(),
        ]
    }

    /// A stage's residuals made in one pass (`encoded`) are those `encode` leaves in place.
    #[test]
    fn encoded_is_encode_on_a_copy() {
        for codes in blocks() {
            let mut stages: Vec<Box<dyn CodesStage>> = vec![Box::new(Delta), Box::new(Offset { by: -3 }), Box::new(Offset { by: i64::MIN })];
            let n = codes.len();
            if n > 0 {
                stages.extend([Box::new(Lorenzo { grid: [1, n] }) as Box<dyn CodesStage>]);
            }
            if n % 40 == 0 && n > 40 {
                stages.extend([Box::new(Lorenzo { grid: [4, 10] }) as Box<dyn CodesStage>]);
            }
            for stage in stages {
                let mut in_place = codes.clone();
                stage.encode(&mut in_place, &Refs::NONE);
                assert_eq!(stage.encoded(&codes, &Refs::NONE), in_place, "{stage:?} on {n} codes");
            }
        }
    }

    /// A stream hands out the codes `decode` gives, across batch and segment ends, with every
    /// coder and stage that streams; taking fewer or more than the block holds is reported by
    /// `finish`.
    #[test]
    fn streams_give_decodes_codes_and_count_them() {
        use super::super::interp::Symbols;
        let mut r = crate::codec::xorshift(5);
        let long: Vec<i64> = (0..70_000).map(|i| (r() % 9) as i64 - 4 + (i / 20_000) as i64).collect();
        for codes in blocks().into_iter().chain([long]) {
            let n = codes.len();
            let u: Vec<u64> = codes.iter().map(|&c| zigzag(c)).collect();
            // Each coder, and whether its `finish` sees a stream cut by two bytes: `rans` checks
            // its words to the end; `ac` reads on past its end by a few bytes, so a short cut can
            // go unseen there (the container's checksum is what catches damage).
            let coders = || -> [(Box<dyn CodesToBytes>, bool); 3] {
                let ac = |context| AcConfig { tree_bits: 6, context, adapt: 255, repeats: false, repeat_side: None, short_buckets: true, head: ac::head(u.iter().copied()) };
                [
                    (Box::new(Rans { cfg: rans::choose(&u, None), sign: Sign::Zigzag }), true),
                    (Box::new(Arithmetic { cfg: ac(Context::Grid(40)), sign: Sign::Zigzag }), false),
                    (Box::new(Arithmetic { cfg: AcConfig { repeats: true, head: 0, ..ac(Context::Previous) }, sign: Sign::Zigzag }), false),
                ]
            };
            for (k, (to_bytes, sees_cuts)) in (0..3).flat_map(|k| coders().map(|c| (k, c))) {
                let stages: Vec<Box<dyn CodesStage>> = match k {
                    0 => vec![],
                    1 => vec![Box::new(Delta)],
                    _ => vec![Box::new(Offset { by: -3 })],
                };
                let chain = Chain { codes: stages, to_bytes, bytes: vec![] };
                let mut block = Vec::new();
                chain.encode(&codes, &Refs::NONE, &mut block);
                let (chain, payload) = read(&mut Cursor::new(&block), n).unwrap();
                let want = chain.decode(payload, n, &Refs::NONE).unwrap();
                // On this thread, and (the long block) with the coder a ring ahead on another.
                for threads in [1, 2] {
                    let stream = || chain.stream(payload, n).expect("a streaming coder and one streamed stage stream").unwrap();
                    stream().ahead(threads, |mut s| {
                        let got: Vec<i64> = (0..n).map(|_| s.take()).collect();
                        assert_eq!(got, want);
                        assert!(s.finish().is_ok());
                    });
                    if n > 1 {
                        stream().ahead(threads, |mut short| {
                            (0..n - 1).for_each(|_| {
                                short.take();
                            });
                            assert!(short.finish().is_err(), "one code left untaken");
                        });
                    }
                    stream().ahead(threads, |mut long| {
                        (0..n + 1).for_each(|_| {
                            long.take();
                        });
                        assert!(long.finish().is_err(), "one code past the end");
                    });
                    // A taker that stops early and goes: the coder ahead of it stops too.
                    stream().ahead(threads, |mut s| {
                        s.take();
                    });
                    // Damaged words: the codes are wrong, never a hang or a panic, and `finish`
                    // says so where the coder can tell (`sees_cuts`).
                    let cut = &payload[..payload.len().saturating_sub(2)];
                    if let Some(Ok(d)) = chain.stream(cut, n) {
                        d.ahead(threads, |mut s| {
                            (0..n).for_each(|_| {
                                s.take();
                            });
                            assert!(s.finish().is_err() || !sees_cuts, "a stream two bytes short");
                        });
                    }
                }
            }
        }
    }

    /// Every stage, alone and chained, round-trips every block, including ones that overflow.
    #[test]
    fn every_chain_round_trips_adversarial_blocks() {
        for codes in blocks() {
            let n = codes.len();
            let refs_store = vec![Some(codes.iter().map(|c| c.wrapping_mul(3).wrapping_add(5)).collect::<Vec<i64>>()), None];
            let refs = Refs::codes(&refs_store);
            let arrays: Vec<Vec<Box<dyn CodesStage>>> = vec![
                vec![],
                vec![Box::new(Delta)],
                vec![Box::new(Offset { by: i64::MIN })],
                vec![Box::new(Reference { var: 0, slope: -(3 << 19), off: i64::MAX }), Box::new(Delta)],
                vec![Box::new(Lorenzo { grid: [1, n.max(1)] })],
                vec![Box::new(Norm { parts: vec![(0, 1.5), (0, 3e38), (0, 1e-30)], off: i64::MIN }), Box::new(Delta)],
            ];
            for array in &arrays {
                let to_bytes: Vec<Box<dyn CodesToBytes>> = vec![
                    Box::new(Packed { width: 8, sign: Sign::Zigzag }),
                    Box::new(RangeCoded { row: 3 }),
                    Box::new(Arithmetic { cfg: AcConfig { tree_bits: 6, context: Context::Previous, adapt: 255, repeats: true, repeat_side: Some(0), short_buckets: true, head: 0 }, sign: Sign::Unsigned }),
                    Box::new(Arithmetic { cfg: AcConfig { tree_bits: 0, context: Context::Grid(5), adapt: 0, repeats: false, repeat_side: None, short_buckets: false, head: 0 }, sign: Sign::Zigzag }),
                    Box::new(Arithmetic { cfg: AcConfig { tree_bits: 3, context: Context::Grid(5), adapt: 255, repeats: true, repeat_side: Some(0), short_buckets: true, head: 2 }, sign: Sign::Zigzag }),
                    Box::new(Arithmetic { cfg: AcConfig { tree_bits: 6, context: Context::None, adapt: 30, repeats: false, repeat_side: None, short_buckets: true, head: ac::MAX_HEAD }, sign: Sign::Unsigned }),
                ];
                for tb in to_bytes {
                    let packed = tb.id() == 1;
                    let chain = Chain {
                        codes: array.iter().map(|s| s.boxed_clone()).collect(),
                        to_bytes: tb,
                        bytes: if packed { vec![Box::new(Shuffle { width: 8 }), Box::new(Zstd { level: 1 })] } else { vec![] },
                    };
                    let mut out = Vec::new();
                    chain.encode(&codes, &refs, &mut out);
                    let mut cur = Cursor::new(&out);
                    let (again, payload) = read(&mut cur, n).unwrap();
                    cur.finish("block").unwrap();
                    assert_eq!(again.decode(payload, n, &refs).unwrap(), codes, "{chain:?}");
                }
            }
        }
    }

    /// An `ac` head is read only with the short bucket tree it sits before, and of 1 to
    /// `MAX_HEAD` decisions: other values are refused, not decoded into another tree's nodes.
    #[test]
    fn an_ac_head_without_the_short_tree_or_out_of_range_is_refused() {
        let config = |short_buckets: bool, head: u8| {
            let mut out = Vec::new();
            Arithmetic { cfg: AcConfig { tree_bits: 6, context: Context::None, adapt: 255, repeats: false, repeat_side: None, short_buckets, head: 1 }, sign: Sign::Zigzag }.write_config(&mut out);
            *out.last_mut().unwrap() = head;
            if !short_buckets {
                let options = out.len() - 2;
                out[options] &= !4;
            }
            out
        };
        let read = |cfg: Vec<u8>| read_to_bytes(&mut Cursor::new(&[&[3u8][..], &cfg].concat())).map(|_| ());
        assert!(read(config(true, 1)).is_ok());
        assert!(read(config(true, ac::MAX_HEAD)).is_ok());
        for (short, head) in [(true, 0), (true, ac::MAX_HEAD + 1), (true, 255), (false, 1)] {
            let err = read(config(short, head)).unwrap_err();
            assert!(err.contains("ac head"), "{short} {head}: {err}");
        }
    }

    /// Damaged blocks are refused or decode to something; never a panic, never a reference the
    /// chunk does not hold.
    #[test]
    fn damaged_blocks_are_refused_without_panicking() {
        let codes: Vec<i64> = (0..500).map(|i| (i * 7919) % 101).collect();
        let refs_store = vec![Some(codes.clone())];
        let refs = Refs::codes(&refs_store);
        let mut out = Vec::new();
        crate::codec::ints::encode_with(&codes, 3, None, &refs, &mut out);
        for cut in 0..out.len() {
            let mut cur = Cursor::new(&out[..cut]);
            if let Ok((c, p)) = read(&mut cur, codes.len()) {
                let _ = c.decode(p, codes.len(), &refs);
            }
        }
        for i in 0..out.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = out.clone();
                bad[i] ^= flip;
                let mut cur = Cursor::new(&bad);
                if let Ok((c, p)) = read(&mut cur, codes.len()) {
                    let _ = c.decode(p, codes.len(), &refs);
                }
            }
        }
        let chain = Chain { codes: vec![Box::new(Reference { var: 3, slope: 1, off: 0 })], to_bytes: Box::new(Packed { width: 1, sign: Sign::Zigzag }), bytes: vec![] };
        let err = chain.decode(&[0; 4], 4, &refs).unwrap_err();
        assert!(err.contains("variable 3"), "{err}");
        let chain = Chain { codes: vec![Box::new(Norm { parts: vec![(0, 1.0), (1, 1.0)], off: 0 })], to_bytes: Box::new(Packed { width: 1, sign: Sign::Zigzag }), bytes: vec![] };
        let err = chain.decode(&[0; 500], 500, &refs).unwrap_err();
        assert!(err.contains("norm of variable 1"), "{err}");
        let nan = f32::NAN.to_le_bytes();
        for bad in [
            vec![CHAIN, 1, 5, 1, 0, 0, 0, 128, 63, 0],
            vec![CHAIN, 1, 5, 5, 0, 0, 0, 128, 63, 0],
            vec![CHAIN, 1, 5, 2, 0, 0, 0, 128, 63, 0, nan[0], nan[1], nan[2], nan[3], 0],
            vec![CHAIN, 1, 5, 2, 0, 0, 0, 128, 63, 0, 0, 0, 128, 191, 0],
        ] {
            assert!(read(&mut Cursor::new(&bad), 4).is_err(), "{bad:?}");
        }
        for bad in [vec![CHAIN, 1, 99], vec![CHAIN, 0, 99], vec![CHAIN, 0, 1, 3, 0], vec![CHAIN, 9], vec![CHAIN, 0, 3, 0, 11, 0, 0, 0, 0, 0]] {
            assert!(read(&mut Cursor::new(&bad), 4).is_err(), "{bad:?}");
        }
    }
}
