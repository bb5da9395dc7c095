//! Integer codes to bytes: an optional predictor (delta in C order, or Lorenzo over the chunk's
//! grid), zigzag, then the smaller of: the narrowest width that holds every code, byte shuffle,
//! zstd; or the adaptive range coder (`rc`). Quantised floats
//! and lossless integers both end here.
//!
//! Predictors run on the integer codes, not on floats, so the decoder inverts them exactly
//! (wrapping arithmetic: no overflow, no rounding) whatever machine it runs on.

use super::bytes;
use crate::wire::Cursor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Predictor {
    None = 0,
    /// Difference from the previous element in C order: wins on smooth fields, loses on tables
    /// of independent events, so it is chosen per block.
    Delta = 1,
    /// Lorenzo over a 3-D grid (rows x d1 x d2 in C order; a 2-D field is d1 = 1): the value
    /// predicted from its 7 already-coded neighbours, exact for any sum of functions of two of the three indices. SZ's
    /// first-order predictor, here on the quantised codes.
    Lorenzo = 2,
}

/// The trailing two dimensions (d1, d2) of a chunk's grid, C order; the leading dimension is
/// whatever is left (rows x any other row dimensions). `None` for tables and 1-D data.
pub type Grid = Option<[usize; 2]>;

/// The grid of a chunk whose rows have this shape (a dataset's shape without its first axis):
/// the rows' last two axes (a 1-D row is 1 x its length); None for rows of one element.
pub fn row_grid(row_shape: &[u64]) -> Grid {
    match row_shape {
        [] => None,
        [w] => Some([1, *w as usize]),
        [.., h, w] => Some([*h as usize, *w as usize]),
    }
}

/// The Lorenzo prediction of element `x` from the elements before it in C order; neighbours
/// outside the grid count as 0. `plane = d1 * d2`.
#[inline]
pub fn lorenzo(a: &[i64], x: usize, plane: usize, d2: usize) -> i64 {
    let (i, j, k) = (x >= plane, x % plane >= d2, x % d2 > 0);
    let mut p = 0i64;
    let mut add = |cond: bool, back: usize, sign: bool| {
        if cond {
            p = if sign { p.wrapping_add(a[x - back]) } else { p.wrapping_sub(a[x - back]) };
        }
    };
    add(k, 1, true);
    add(j, d2, true);
    add(i, plane, true);
    add(j && k, d2 + 1, false);
    add(i && k, plane + 1, false);
    add(i && j, plane + d2, false);
    add(i && j && k, plane + d2 + 1, true);
    p
}

fn lorenzo_residuals(codes: &[i64], [d1, d2]: [usize; 2]) -> Vec<i64> {
    let plane = d1 * d2;
    (0..codes.len()).map(|x| codes[x].wrapping_sub(lorenzo(codes, x, plane, d2))).collect()
}

/// Undoes `lorenzo_residuals` in place, in C order.
fn lorenzo_undo(codes: &mut [i64], [d1, d2]: [usize; 2]) {
    let plane = d1 * d2;
    for x in 0..codes.len() {
        codes[x] = codes[x].wrapping_add(lorenzo(codes, x, plane, d2));
    }
}

/// Whether a grid's planes tile `n` elements (a grid that does not is ignored).
fn fits(grid: Grid, n: usize) -> Option<[usize; 2]> {
    grid.filter(|&[d1, d2]| d1 > 0 && d2 > 0 && n % (d1 * d2) == 0 && (n > d1 * d2 || d1 > 1))
}

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Bits an entropy coder needs at least for these codes, roughly: a cheap stand-in for trying both.
fn cost(codes: impl Iterator<Item = i64>) -> u64 {
    codes.map(|v| 64 - zigzag(v).leading_zeros() as u64).sum()
}

fn deltas(codes: &[i64]) -> impl Iterator<Item = i64> + '_ {
    codes.iter().scan(0i64, |prev, &c| {
        let d = c.wrapping_sub(*prev);
        *prev = c;
        Some(d)
    })
}

/// The width byte of a block whose payload is range coded (`rc`) rather than shuffled + zstd.
const RANGE_CODED: usize = 0;

/// Encoded integer block: `u8 width (0: range coded), u8 predictor, [u32 d1, u32 d2 for Lorenzo], u64 payload
/// length, payload`. The cheapest predictor wins; Lorenzo is tried when a grid is given.
pub fn encode(codes: &[i64], level: i32, grid: Grid, out: &mut Vec<u8>) {
    let mut best = (Predictor::None, cost(codes.iter().copied()));
    let c = cost(deltas(codes));
    if c < best.1 {
        best = (Predictor::Delta, c);
    }
    let grid = fits(grid, codes.len());
    let lorenzo = grid.map(|g| lorenzo_residuals(codes, g));
    if let Some(l) = &lorenzo {
        let c = cost(l.iter().copied());
        if c < best.1 {
            best = (Predictor::Lorenzo, c);
        }
    }
    let predictor = best.0;
    let zz: Vec<u64> = match predictor {
        Predictor::Delta => deltas(codes).map(zigzag).collect(),
        Predictor::None => codes.iter().map(|&c| zigzag(c)).collect(),
        Predictor::Lorenzo => lorenzo.unwrap_or_default().into_iter().map(zigzag).collect(),
    };
    // The range coder's statistics use the element a grid row above.
    let row = match (predictor, grid) {
        (Predictor::Lorenzo, Some([_, d2])) => d2,
        _ => 1,
    };
    let ranged = super::rc::encode(&zz, row);
    let max = zz.iter().copied().max().unwrap_or(0);
    let width = match max {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    };
    let mut packed = Vec::with_capacity(zz.len() * width);
    for v in zz {
        packed.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    let mut payload = bytes::compress(&bytes::shuffle(width, &packed), level);
    let mut width = width;
    if ranged.len() < payload.len() {
        (payload, width) = (ranged, RANGE_CODED);
    }
    out.push(width as u8);
    out.push(predictor as u8);
    if let (Predictor::Lorenzo, Some([d1, d2])) = (predictor, grid) {
        out.extend_from_slice(&(d1 as u32).to_le_bytes());
        out.extend_from_slice(&(d2 as u32).to_le_bytes());
    }
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
}

pub fn decode(cur: &mut Cursor, n: usize) -> Result<Vec<i64>, String> {
    let width = cur.u8("code width")? as usize;
    if ![RANGE_CODED, 1, 2, 4, 8].contains(&width) {
        return Err(format!("invalid code width {width}"));
    }
    let (predictor, grid) = read_predictor(cur, n)?;
    let len = cur.u64("code payload length")?;
    let payload = cur.bytes(len, "code payload")?;
    let mut codes: Vec<i64> = if width == RANGE_CODED {
        let row = if predictor == Predictor::Lorenzo { grid[1] } else { 1 };
        // An adaptive binary coder spends at least ~0.02 bits per code, so a payload can hold at
        // most a few hundred codes per byte: a count beyond that is damage, refused before the
        // decoder reserves memory for it.
        if n / 512 > payload.len() + 8 {
            return Err(format!("{n} range-coded values cannot fit in {} bytes", payload.len()));
        }
        super::rc::decode(payload, n, row).into_iter().map(unzigzag).collect()
    } else {
        let expected = n.checked_mul(width).ok_or("block too large")?;
        let packed = bytes::unshuffle(width, &bytes::decompress(payload, expected)?);
        packed
            .chunks_exact(width)
            .map(|b| {
                let mut w = [0u8; 8];
                w[..width].copy_from_slice(b);
                unzigzag(u64::from_le_bytes(w))
            })
            .collect()
    };
    match predictor {
        Predictor::None => {}
        Predictor::Delta => {
            let mut prev = 0i64;
            for c in codes.iter_mut() {
                prev = prev.wrapping_add(*c);
                *c = prev;
            }
        }
        Predictor::Lorenzo => lorenzo_undo(&mut codes, grid),
    }
    Ok(codes)
}

fn read_predictor(cur: &mut Cursor, n: usize) -> Result<(Predictor, [usize; 2]), String> {
    match cur.u8("predictor")? {
        0 => Ok((Predictor::None, [0, 0])),
        1 => Ok((Predictor::Delta, [0, 0])),
        2 => {
            let d1 = cur.u32("grid d1")? as usize;
            let d2 = cur.u32("grid d2")? as usize;
            if d1 == 0 || d2 == 0 || n % (d1 * d2) != 0 {
                return Err(format!("Lorenzo grid {d1} x {d2} does not tile {n} elements"));
            }
            Ok((Predictor::Lorenzo, [d1, d2]))
        }
        p => Err(format!("unknown predictor {p}")),
    }
}

/// Steps over an integer block of `n` elements without decoding it.
pub fn skip(cur: &mut Cursor, n: usize) -> Result<(), String> {
    cur.u8("code width")?;
    read_predictor(cur, n)?;
    let len = cur.u64("code payload length")?;
    cur.bytes(len, "code payload").map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_extremes_and_picks_predictor() {
        let cases: Vec<Vec<i64>> = vec![
            vec![],
            vec![0; 100],
            vec![i64::MIN, i64::MAX, -1, 0, 1, i64::MIN + 1],
            (0..1000).collect(),
            (0..1000).map(|i| (i * 7919) % 257 - 128).collect(),
        ];
        for codes in cases {
            for grid in [None, Some([1, 10]), Some([5, 4]), Some([7, 3])] {
                let mut out = Vec::new();
                encode(&codes, 3, grid, &mut out);
                let mut cur = Cursor::new(&out);
                assert_eq!(decode(&mut cur, codes.len()).unwrap(), codes);
                cur.finish("block").unwrap();
                let mut cur = Cursor::new(&out);
                skip(&mut cur, codes.len()).unwrap();
                cur.finish("block").unwrap();
            }
        }
        let mut out = Vec::new();
        encode(&(0..1000).collect::<Vec<_>>(), 3, None, &mut out);
        assert_eq!(out[1], Predictor::Delta as u8, "a ramp is coded as deltas");
    }

    #[test]
    fn lorenzo_predicts_sums_of_two_index_functions_exactly() {
        // Lorenzo's residual is the mixed third difference, so it predicts exactly any sum of
        // functions of two of the three indices (residuals 0 away from the first planes).
        let (d0, d1, d2) = (6usize, 7usize, 9usize);
        let mut codes = Vec::new();
        for i in 0..d0 as i64 {
            for j in 0..d1 as i64 {
                for k in 0..d2 as i64 {
                    codes.push(3 * i + 5 * j - 2 * k + i * j + j * k * k - i * i * k + 1000);
                }
            }
        }
        let r = lorenzo_residuals(&codes, [d1, d2]);
        for i in 1..d0 {
            for j in 1..d1 {
                for k in 1..d2 {
                    assert_eq!(r[(i * d1 + j) * d2 + k], 0);
                }
            }
        }
        let mut out = Vec::new();
        encode(&codes, 3, Some([d1, d2]), &mut out);
        assert_eq!(out[1], Predictor::Lorenzo as u8);
        assert_eq!(decode(&mut Cursor::new(&out), codes.len()).unwrap(), codes);
        let mut bad = out.clone();
        bad[2..6].copy_from_slice(&4u32.to_le_bytes());
        assert!(decode(&mut Cursor::new(&bad), codes.len()).is_err(), "a grid that does not tile is refused");
    }
}
