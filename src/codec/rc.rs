//! An adaptive binary range coder for small integer codes (prediction residuals), the entropy
//! stage zstd cannot match on them: zstd codes bytes with one static table per block, while
//! residual magnitudes cluster in space. Each zigzag code is split into its bit length (coded
//! in unary) and the bits below its leading one; every binary decision has its own adaptive
//! probability, the length's chosen by the lengths of two already-coded neighbours (the
//! previous element and the one a grid row above), so smooth and rough regions each get their
//! own statistics.
//!
//! The coder is LZMA's (11-bit probabilities, carry propagation through a cache byte), written
//! from its published description.

const PROB_BITS: u32 = 11;
const PROB_INIT: u16 = 1 << (PROB_BITS - 1);
const MOVE_BITS: u32 = 5;
const TOP: u32 = 1 << 24;
/// Neighbour lengths are capped here for the context: beyond it, statistics are alike.
const CTX_CAP: usize = 15;
const LENGTHS: usize = 65;

struct Model {
    /// [context][j]: P(length > j | length >= j).
    length: Vec<[u16; LENGTHS]>,
    /// [length][bit below the leading one].
    mantissa: Vec<[u16; 64]>,
}

impl Model {
    fn new() -> Self {
        Model { length: vec![[PROB_INIT; LENGTHS]; (CTX_CAP + 1) * (CTX_CAP + 1)], mantissa: vec![[PROB_INIT; 64]; LENGTHS] }
    }
}

#[inline]
fn bit_length(u: u64) -> usize {
    (64 - u.leading_zeros()) as usize
}

#[inline]
fn context(lengths: &[u8], i: usize, row: usize) -> usize {
    let a = if i >= 1 { lengths[i - 1] as usize } else { 0 };
    let b = if i >= row { lengths[i - row] as usize } else { a };
    a.min(CTX_CAP) * (CTX_CAP + 1) + b.min(CTX_CAP)
}

/// The LZMA-style binary range encoder both adaptive coders (`rc` here, `ac`) drive: the caller
/// turns its probability into `bound`, the share of the range that codes a 0.
pub(super) struct Encoder {
    low: u64,
    range: u32,
    cache: u8,
    cache_size: u64,
    out: Vec<u8>,
}

impl Encoder {
    pub(super) fn new() -> Self {
        Encoder { low: 0, range: u32::MAX, cache: 0, cache_size: 1, out: Vec::new() }
    }

    fn shift_low(&mut self) {
        if (self.low as u32) < 0xFF00_0000 || (self.low >> 32) != 0 {
            let carry = (self.low >> 32) as u8;
            let mut temp = self.cache;
            loop {
                self.out.push(temp.wrapping_add(carry));
                temp = 0xFF;
                self.cache_size -= 1;
                if self.cache_size == 0 {
                    break;
                }
            }
            self.cache = ((self.low >> 24) & 0xFF) as u8;
        }
        self.cache_size += 1;
        self.low = (self.low & 0x00FF_FFFF) << 8;
    }

    /// The range now, for the caller's `bound` (0 < bound < range).
    #[inline]
    pub(super) fn range(&self) -> u32 {
        self.range
    }

    #[inline]
    pub(super) fn put(&mut self, bound: u32, bit: bool) {
        // Without branches: the bits are the data's, as often 1 as 0 down a distribution's
        // tree, and a mispredicted branch costs more than both arms.
        let mask = (bit as u32).wrapping_neg();
        self.low += (bound & mask) as u64;
        self.range = ((self.range - bound) & mask) | (bound & !mask);
        while self.range < TOP {
            self.range <<= 8;
            self.shift_low();
        }
    }

    #[inline]
    fn bit(&mut self, prob: &mut u16, bit: bool) {
        self.put((self.range >> PROB_BITS) * *prob as u32, bit);
        if bit {
            *prob -= *prob >> MOVE_BITS;
        } else {
            *prob += ((1 << PROB_BITS) - *prob) >> MOVE_BITS;
        }
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        for _ in 0..5 {
            self.shift_low();
        }
        self.out
    }
}

/// The decoder of [`Encoder`]'s streams. (Copy: a hot loop may work on a copy of its own,
/// which the compiler keeps in registers, and store it back after.)
#[derive(Clone, Copy)]
pub(super) struct Decoder<'a> {
    code: u32,
    range: u32,
    input: &'a [u8],
    at: usize,
}

impl<'a> Decoder<'a> {
    pub(super) fn new(input: &'a [u8]) -> Self {
        let mut d = Decoder { code: 0, range: u32::MAX, input, at: 1 };
        for _ in 0..4 {
            d.code = (d.code << 8) | d.next() as u32;
        }
        d
    }

    /// Past the end the stream reads as zeros: a damaged stream decodes to wrong codes (which
    /// the chunk's CRC reports), never to a panic or an endless loop.
    #[inline]
    fn next(&mut self) -> u8 {
        let b = self.input.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    #[inline]
    pub(super) fn range(&self) -> u32 {
        self.range
    }

    #[inline]
    pub(super) fn get(&mut self, bound: u32) -> bool {
        let bit = if self.code < bound {
            self.range = bound;
            false
        } else {
            self.code -= bound;
            self.range -= bound;
            true
        };
        self.normalise();
        bit
    }

    /// Shifts the next input bytes in while the range is under `TOP`.
    #[inline(always)]
    fn normalise(&mut self) {
        while self.range < TOP {
            self.range <<= 8;
            self.code = (self.code << 8) | self.next() as u32;
        }
    }

    /// `get` as a branch rather than a select, for decisions that nearly always go one way (a
    /// loose bound's "is the bucket 0?"): the CPU predicts the bit and starts the next decision
    /// before this one's comparison resolves, where a select makes each decision wait for the
    /// last. Each arm renormalises on its own, which keeps the compiler from merging them into
    /// a select. Same result as `get`, bit for bit.
    #[inline]
    pub(super) fn get_skewed(&mut self, bound: u32) -> bool {
        if self.code < bound {
            self.range = bound;
            self.normalise();
            false
        } else {
            self.code -= bound;
            self.range -= bound;
            self.normalise();
            true
        }
    }

    /// Bytes read past the end of the input (damage: an intact stream ends within 4 bytes).
    pub(super) fn overrun(&self) -> usize {
        self.at.saturating_sub(self.input.len())
    }

    #[inline]
    fn bit(&mut self, prob: &mut u16) -> bool {
        let bit = self.get((self.range >> PROB_BITS) * *prob as u32);
        if bit {
            *prob -= *prob >> MOVE_BITS;
        } else {
            *prob += ((1 << PROB_BITS) - *prob) >> MOVE_BITS;
        }
        bit
    }
}

/// Codes `values` (zigzag codes); `row` is the distance to the element above in the grid (any
/// value >= 1 is valid; it only steers the statistics).
pub fn encode(values: &[u64], row: usize) -> Vec<u8> {
    let mut m = Model::new();
    let mut e = Encoder::new();
    let mut lengths = Vec::with_capacity(values.len());
    for (i, &u) in values.iter().enumerate() {
        let n = bit_length(u);
        let probs = &mut m.length[context(&lengths, i, row.max(1))];
        for p in probs.iter_mut().take(n) {
            e.bit(p, true);
        }
        if n < 64 {
            e.bit(&mut probs[n], false);
        }
        let mant = &mut m.mantissa[n];
        for k in (0..n.saturating_sub(1)).rev() {
            e.bit(&mut mant[k], (u >> k) & 1 == 1);
        }
        lengths.push(n as u8);
    }
    e.finish()
}

pub fn decode(bytes: &[u8], n: usize, row: usize) -> Vec<u64> {
    let mut m = Model::new();
    let mut d = Decoder::new(bytes);
    let mut lengths = Vec::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let probs = &mut m.length[context(&lengths, i, row.max(1))];
        let mut len = 0;
        while len < 64 && d.bit(&mut probs[len]) {
            len += 1;
        }
        let mut u: u64 = if len > 0 { 1 } else { 0 };
        let mant = &mut m.mantissa[len];
        for k in (0..len.saturating_sub(1)).rev() {
            u = (u << 1) | d.bit(&mut mant[k]) as u64;
        }
        lengths.push(len as u8);
        out.push(u);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length_and_beats_its_raw_size_on_skewed_codes() {
        let mut s = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut cases: Vec<Vec<u64>> = vec![vec![], vec![0], vec![u64::MAX, 0, 1, u64::MAX - 1, 1 << 63]];
        cases.push((0..64).map(|k| 1u64 << k).chain((0..64).map(|k| (1u64 << k) - 1)).collect());
        cases.push((0..20000).map(|_| { let r = next(); if r % 10 < 8 { r % 3 } else { r % 200 } }).collect());
        cases.push((0..5000).map(|_| next()).collect());
        for v in &cases {
            for row in [1, 7, 100] {
                let b = encode(v, row);
                assert_eq!(&decode(&b, v.len(), row), v);
            }
        }
        let skewed = &cases[4];
        assert!(encode(skewed, 1).len() < skewed.len() / 2, "about 2.5 bits a value, not 8");
    }

    #[test]
    fn damaged_or_short_input_decodes_without_panicking() {
        let v: Vec<u64> = (0..1000).map(|i| i % 17).collect();
        let mut b = encode(&v, 10);
        let mid = b.len() / 2;
        b[mid] ^= 0x5a;
        let _ = decode(&b, v.len(), 10);
        let _ = decode(&b[..3], v.len(), 10);
        let _ = decode(&[], 10, 1);
    }
}
