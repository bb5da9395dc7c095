//! Notices a lossy chunk coded again after part of it changed, so the host is told once.
//!
//! HDF5 writes part of a chunk that is not in its chunk cache by reading the chunk (the filter
//! decodes it), changing the part written and handing the whole chunk back to the filter. The
//! values written before are then coded again from their decoded values, and a lossy code can
//! move each of them by up to the bound once more: a chunk written in n parts can end up to n
//! times the bound from the data first written (measured: one time step a write into chunks of
//! ten steps, 2.95x at abs=0.01). The filter sees neither the dataset nor which elements are old,
//! so it remembers a sample of each chunk it decodes and compares the chunks it encodes with
//! them: a chunk that matches one of them in most of the sample and differs in the rest is such a
//! rewrite. A rewrite with no sampled element changed goes unseen (a chunk coded again
//! unchanged comes back unchanged), as does one in another process.

use std::sync::Mutex;

use super::params::{FilterBound, FilterParams};
use crate::dtype::DType;

/// Elements sampled a chunk, evenly spaced (at most 32: `Sample::telling` is a bit each).
const SAMPLES: usize = 32;
/// Chunks remembered: HDF5 rewrites a chunk right after it decodes it.
const REMEMBERED: usize = 32;

/// A decoded chunk's sample, with what it was decoded under: only a chunk of the same length
/// coded with the same parameters can be that chunk again. Fixed-size, so a read allocates
/// nothing for it.
#[derive(Clone, Copy)]
struct Sample {
    cd: u64,
    len: usize,
    values: [u64; SAMPLES],
    /// Which of `values` are `telling` (bit k for values[k]).
    telling: u32,
}

struct Ring {
    slots: [Option<Sample>; REMEMBERED],
    next: usize,
}

static DECODED: Mutex<Ring> = Mutex::new(Ring { slots: [None; REMEMBERED], next: 0 });

/// The parameters as one word (FNV-1a): equal parameters, equal words.
fn cd_key(cd: &[u32]) -> u64 {
    cd.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &w| (h ^ w as u64).wrapping_mul(0x100_0000_01b3))
}

/// The elements a lossy float chunk is sampled at (their raw bits), or None where a rewrite
/// cannot move anything (lossless) or the chunk is too small to tell.
fn sample(p: &FilterParams, chunk: &[u8]) -> Option<[u64; SAMPLES]> {
    if matches!(p.bound, FilterBound::Lossless) {
        return None;
    }
    let w = match p.dtype? {
        DType::F32 => 4,
        DType::F64 => 8,
        _ => return None,
    };
    let n = chunk.len() / w;
    if n < SAMPLES {
        return None;
    }
    Some(std::array::from_fn(|k| bits(&chunk[(k * n / SAMPLES) * w..][..w])))
}

fn bits(b: &[u8]) -> u64 {
    let mut v = [0u8; 8];
    v[..b.len()].copy_from_slice(b);
    u64::from_ne_bytes(v)
}

/// Whether a sampled element says something about where a chunk came from: a value, not a zero
/// (HDF5's default fill of unwritten elements), NaN or the dataset's fill, which any chunk of
/// the dataset may hold at the same place.
fn telling(p: &FilterParams, raw: u64) -> bool {
    let w = if p.dtype == Some(DType::F32) { 4 } else { 8 };
    let v = super::capi::float_of(&raw.to_ne_bytes()[..w], p.big_endian);
    v != 0.0 && v.is_finite() && p.fill != Some(v)
}

/// Remembers a chunk the filter decoded (`chunk`: its decoded bytes).
pub fn decoded(cd: &[u32], p: &FilterParams, chunk: &[u8]) {
    let Some(values) = sample(p, chunk) else { return };
    let telling = (0..SAMPLES).filter(|&k| telling(p, values[k])).fold(0u32, |m, k| m | 1 << k);
    let s = Sample { cd: cd_key(cd), len: chunk.len(), values, telling };
    let mut ring = DECODED.lock().unwrap_or_else(|e| e.into_inner());
    let at = ring.next;
    ring.slots[at] = Some(s);
    ring.next = (at + 1) % REMEMBERED;
}

/// Whether `chunk`, about to be encoded, is one decoded before with part of it changed: at
/// least half of the telling elements of a remembered sample (and four) are unchanged, and some
/// sampled element is not.
pub fn is_rewrite(cd: &[u32], p: &FilterParams, chunk: &[u8]) -> bool {
    let Some(now) = sample(p, chunk) else { return false };
    let key = cd_key(cd);
    let ring = DECODED.lock().unwrap_or_else(|e| e.into_inner());
    ring.slots.iter().flatten().filter(|s| s.cd == key && s.len == chunk.len()).any(|s| {
        let same = (0..SAMPLES).filter(|&k| s.values[k] == now[k]).fold(0u32, |m, k| m | 1 << k);
        let kept = (same & s.telling).count_ones();
        let changed = same != (u32::MAX >> (32 - SAMPLES));
        changed && kept >= 4 && 2 * kept >= s.telling.count_ones()
    })
}

/// What the host is told, once a process.
pub const WARNING: &str = "a chunk decoded earlier is being coded again with part of it changed (part of a chunk \
written while the chunk was not in HDF5's chunk cache): the values written before are coded again from their decoded \
values, so their errors add up, by up to the bound at each such write. Write whole chunks (chunk by 1 the dimension written a step at a time), or keep the \
file and the dataset object open while a chunk fills, with a chunk cache that holds it (h5py: rdcc_nbytes)";

#[cfg(test)]
mod tests {
    use super::*;

    fn params(bound: FilterBound) -> FilterParams {
        FilterParams { dtype: Some(DType::F32), bound, ..Default::default() }
    }

    fn chunk(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn a_chunk_decoded_then_changed_in_part_is_a_rewrite() {
        // A cd array of its own, so the other tests' chunks (the ring is the process's) never match.
        let cd = [9, 1, 2, 3, 4, 5, 6, 101];
        let p = params(FilterBound::Abs(0.01));
        // Steps 0-2 of ten written, the rest HDF5's fill (0).
        let mut v: Vec<f32> = (0..1000).map(|i| if i < 300 { 280.0 + (i as f32).sin() } else { 0.0 }).collect();
        decoded(&cd, &p, &chunk(&v));
        assert!(!is_rewrite(&cd, &p, &chunk(&v)), "unchanged: coded again, it comes back the same");
        (300..400).for_each(|i| v[i] = 281.5);
        assert!(is_rewrite(&cd, &p, &chunk(&v)));
        // Another chunk of the same dataset (other values at the same places) is not.
        let other: Vec<f32> = (0..1000).map(|i| 250.0 + (i as f32).cos()).collect();
        assert!(!is_rewrite(&cd, &p, &chunk(&other)));
        // Nor the same chunk under other parameters, or of another length.
        assert!(!is_rewrite(&[9, 1, 2, 3, 4, 5, 6, 102], &p, &chunk(&v)));
        assert!(!is_rewrite(&cd, &p, &chunk(&v[..999])));
    }

    #[test]
    fn fills_and_zeros_do_not_make_chunks_alike() {
        let cd = [9, 1, 2, 3, 4, 5, 6, 103];
        let p = FilterParams { fill: Some(-999.0), ..params(FilterBound::Rel(1e-3)) };
        // Land (the fill) and zeros at the same places in two chunks with different sea values.
        let land = |i: usize| i % 3 == 0;
        let a: Vec<f32> = (0..640).map(|i| if land(i) { -999.0 } else if i % 3 == 1 { 0.0 } else { 10.0 + i as f32 }).collect();
        let b: Vec<f32> = (0..640).map(|i| if land(i) { -999.0 } else if i % 3 == 1 { 0.0 } else { 20.0 + i as f32 }).collect();
        decoded(&cd, &p, &chunk(&a));
        assert!(!is_rewrite(&cd, &p, &chunk(&b)));
    }

    #[test]
    fn lossless_chunks_are_not_watched() {
        let cd = [9, 1, 2, 3, 4, 5, 6, 104];
        let p = params(FilterBound::Lossless);
        let mut v: Vec<f32> = (0..1000).map(|i| 1.0 + i as f32).collect();
        decoded(&cd, &p, &chunk(&v));
        v[0] = 5.0;
        assert!(!is_rewrite(&cd, &p, &chunk(&v)));
    }
}
