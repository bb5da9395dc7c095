//! Integer codes to bytes: an optional delta predictor, zigzag, the narrowest width that holds
//! every code, byte shuffle, zstd. Quantised floats and lossless integers both end here.

use super::bytes;
use crate::wire::Cursor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Predictor {
    None = 0,
    /// Difference from the previous element in C order: wins on smooth fields, loses on tables
    /// of independent events, so it is chosen per block.
    Delta = 1,
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

/// Encoded integer block: `u8 width, u8 predictor, u64 payload length, payload`.
pub fn encode(codes: &[i64], level: i32, out: &mut Vec<u8>) {
    let predictor = if cost(deltas(codes)) < cost(codes.iter().copied()) {
        Predictor::Delta
    } else {
        Predictor::None
    };
    let zz: Vec<u64> = match predictor {
        Predictor::Delta => deltas(codes).map(zigzag).collect(),
        Predictor::None => codes.iter().map(|&c| zigzag(c)).collect(),
    };
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
    let payload = bytes::compress(&bytes::shuffle(width, &packed), level);
    out.push(width as u8);
    out.push(predictor as u8);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
}

pub fn decode(cur: &mut Cursor, n: usize) -> Result<Vec<i64>, String> {
    let width = cur.u8("code width")? as usize;
    if ![1, 2, 4, 8].contains(&width) {
        return Err(format!("invalid code width {width}"));
    }
    let predictor = match cur.u8("predictor")? {
        0 => Predictor::None,
        1 => Predictor::Delta,
        p => return Err(format!("unknown predictor {p}")),
    };
    let len = cur.u64("code payload length")?;
    let payload = cur.bytes(len, "code payload")?;
    let expected = n.checked_mul(width).ok_or("block too large")?;
    let packed = bytes::unshuffle(width, &bytes::decompress(payload, expected)?);
    let mut codes: Vec<i64> = packed
        .chunks_exact(width)
        .map(|b| {
            let mut w = [0u8; 8];
            w[..width].copy_from_slice(b);
            unzigzag(u64::from_le_bytes(w))
        })
        .collect();
    if predictor == Predictor::Delta {
        let mut prev = 0i64;
        for c in codes.iter_mut() {
            prev = prev.wrapping_add(*c);
            *c = prev;
        }
    }
    Ok(codes)
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
            let mut out = Vec::new();
            encode(&codes, 3, &mut out);
            let mut cur = Cursor::new(&out);
            assert_eq!(decode(&mut cur, codes.len()).unwrap(), codes);
            cur.finish("block").unwrap();
        }
        let mut out = Vec::new();
        encode(&(0..1000).collect::<Vec<_>>(), 3, &mut out);
        assert_eq!(out[1], Predictor::Delta as u8, "a ramp is coded as deltas");
    }
}
