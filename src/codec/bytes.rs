//! Bytes-to-bytes stages: byte shuffle (groups the i-th byte of every element, so the slowly
//! varying high bytes of integers and floats form long runs) and zstd.

/// Transposes `data` of `width`-byte elements: all first bytes, then all second bytes, ...
pub fn shuffle(width: usize, data: &[u8]) -> Vec<u8> {
    if width <= 1 {
        return data.to_vec();
    }
    let n = data.len() / width;
    let mut out = vec![0u8; data.len()];
    for (i, elem) in data.chunks_exact(width).enumerate() {
        for (j, &b) in elem.iter().enumerate() {
            out[j * n + i] = b;
        }
    }
    out
}

/// Undoes `shuffle` (bytes past the last whole element come out 0, as `shuffle` drops them).
pub fn unshuffle(width: usize, data: &[u8]) -> Vec<u8> {
    if width <= 1 {
        return data.to_vec();
    }
    let n = data.len() / width;
    let mut out = vec![0u8; data.len()];
    // The widths of numbers (exact values, raw blocks, latents) take a tiled loop: a byte at a
    // time from `width` planes, with an index check each, took 7 instructions a byte (a
    // Levitus chunk's 2.3 MB of fill values, callgrind).
    let done = match width {
        2 => unshuffle_tiles::<2>(data, n, &mut out),
        4 => unshuffle_tiles::<4>(data, n, &mut out),
        8 => unshuffle_tiles::<8>(data, n, &mut out),
        _ => 0,
    };
    for i in done..n {
        for j in 0..width {
            out[i * width + j] = data[j * n + i];
        }
    }
    out
}

/// Elements per tile of `unshuffle_tiles`: a tile of 8-byte elements is 1 KiB.
const TILE: usize = 128;

/// `unshuffle`'s whole tiles of `W`-byte elements (`n` in all): each plane's part copied into a
/// tile, then interleaved at sizes the compiler knows. How many elements it did.
fn unshuffle_tiles<const W: usize>(data: &[u8], n: usize, out: &mut [u8]) -> usize {
    let mut tile = [[0u8; TILE]; W];
    let tiles = n / TILE;
    for (t, dst) in out[..tiles * TILE * W].chunks_exact_mut(TILE * W).enumerate() {
        for (j, row) in tile.iter_mut().enumerate() {
            row.copy_from_slice(&data[j * n + t * TILE..j * n + (t + 1) * TILE]);
        }
        for (i, e) in dst.chunks_exact_mut(W).enumerate() {
            for j in 0..W {
                e[j] = tile[j][i];
            }
        }
    }
    tiles * TILE
}

pub fn compress(data: &[u8], level: i32) -> Vec<u8> {
    // Compressing a slice into a Vec cannot fail short of allocation failure, which aborts.
    zstd::bulk::compress(data, level).expect("zstd compression of an in-memory buffer")
}

/// Decompresses a frame that must hold exactly `expected` bytes.
pub fn decompress(data: &[u8], expected: usize) -> Result<Vec<u8>, String> {
    // The frame says how much it holds (balerfile always writes the size): a frame that says
    // otherwise, or a size no zstd frame of this length can expand to (at most ~1/3 of a byte
    // per 128 KiB block), is damage, refused before `expected` bytes are reserved.
    match zstd::zstd_safe::get_frame_content_size(data) {
        Ok(Some(n)) if n != expected as u64 => {
            return Err(format!("zstd frame holds {n} bytes, expected {expected}"));
        }
        Err(_) => return Err("zstd: not a zstd frame".into()),
        _ => {}
    }
    if expected / (128 << 10) > data.len() * 3 + 1 {
        return Err(format!("{} bytes of zstd cannot expand to {expected}", data.len()));
    }
    let out = zstd::bulk::decompress(data, expected).map_err(|e| format!("zstd: {e}"))?;
    if out.len() != expected {
        return Err(format!("zstd frame holds {} bytes, expected {expected}", out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_round_trips() {
        let data: Vec<u8> = (0..=255u8).cycle().take(4 * 37).collect();
        for w in [1, 2, 4, 8] {
            let d = &data[..data.len() / w * w];
            assert_eq!(unshuffle(w, &shuffle(w, d)), d);
        }
        assert_eq!(shuffle(2, &[1, 2, 3, 4]), vec![1, 3, 2, 4]);
        // Past a tile (`unshuffle_tiles`), with a partial one after, and bytes past the last
        // whole element (dropped, and 0 after a round trip).
        let long: Vec<u8> = (0..8 * (3 * TILE + 5) + 3).map(|i| (i * 7 % 251) as u8).collect();
        for w in [2, 3, 4, 8] {
            let whole = long.len() / w * w;
            let mut want = long[..whole].to_vec();
            want.resize(long.len(), 0);
            assert_eq!(unshuffle(w, &shuffle(w, &long)), want, "width {w}");
        }
    }
}
