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

pub fn unshuffle(width: usize, data: &[u8]) -> Vec<u8> {
    if width <= 1 {
        return data.to_vec();
    }
    let n = data.len() / width;
    let mut out = vec![0u8; data.len()];
    for (i, elem) in out.chunks_exact_mut(width).enumerate() {
        for (j, b) in elem.iter_mut().enumerate() {
            *b = data[j * n + i];
        }
    }
    out
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
    }
}
