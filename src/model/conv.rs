//! The shape of a convolutional block autoencoder for continuous fields (kind `conv`): what the
//! manifest records so a reader can run its ONNX files.
//!
//! A field dataset is a stack of 2-D slices: its last two axes (say latitude, longitude, or y,
//! x) are the image, and every index of the leading axes (time, level, z) is one slice. A row
//! of the dataset (one time step) holds one or more slices. Each slice is cut into `block` x
//! `block` tiles, the last ones padded by repeating the edge; the encoder turns each tile into
//! a small code and the decoder predicts the tile back from it. Tiles are independent samples:
//! one trained model predicts slices of any time step, and a tile's code can be dropped without
//! touching its neighbours' prediction.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvArch {
    /// The row of the dataset the model takes: the slice's (height, width), after any leading
    /// axes of the row (e.g. levels).
    pub row: Vec<u64>,
    /// Edge of the square tiles.
    pub block: u64,
    /// Channels inside the network.
    pub hidden: u64,
    /// Channels of each tile's code.
    pub code_channels: u64,
    /// Average pools in the encoder (nearest x2 upsamplings in the decoder): the code is
    /// (code channels, block / 2^d, block / 2^d) per tile.
    pub downsamples: u64,
    /// Residual blocks after each pool (encoder) and each upsampling (decoder).
    pub blocks_per_stage: u64,
}

impl ConvArch {
    /// (height, width) of a slice.
    pub fn slice(&self) -> [usize; 2] {
        let n = self.row.len();
        [self.row[n - 2] as usize, self.row[n - 1] as usize]
    }

    /// Slices per row (the product of the row's leading axes).
    pub fn slices(&self) -> usize {
        self.row[..self.row.len() - 2].iter().product::<u64>() as usize
    }

    /// Tiles down and across one slice.
    pub fn tiles(&self) -> [usize; 2] {
        let b = self.block as usize;
        self.slice().map(|d| d.div_ceil(b))
    }

    pub fn tiles_per_row(&self) -> usize {
        let [a, b] = self.tiles();
        self.slices() * a * b
    }

    pub fn row_len(&self) -> usize {
        self.row.iter().product::<u64>() as usize
    }

    /// The encoder's input per tile: (1, block, block).
    pub fn input_shape(&self) -> [u64; 3] {
        [1, self.block, self.block]
    }

    /// One tile's code: (code channels, block / 2^d, block / 2^d).
    pub fn code_shape(&self) -> [u64; 3] {
        let s = self.block >> self.downsamples;
        [self.code_channels, s, s]
    }

    pub fn code_len(&self) -> usize {
        self.code_shape().iter().product::<u64>() as usize
    }

    /// Latent values per row (every tile's code).
    pub fn latent_len(&self) -> usize {
        self.tiles_per_row() * self.code_len()
    }

    pub fn check(&self) -> Result<(), String> {
        if self.row.len() < 2 || self.row.contains(&0) {
            return Err(format!("a conv model takes rows of 2 or more non-empty axes (got {:?})", self.row));
        }
        if self.block < 2 || self.block > 256 || self.downsamples > 8 || self.block % (1 << self.downsamples) != 0 || self.block >> self.downsamples == 0 {
            return Err(format!("conv tiles of {} need 2^downsamples ({}) to divide them (2..256)", self.block, 1u64 << self.downsamples.min(8)));
        }
        if self.hidden == 0 || self.hidden > 512 || self.code_channels == 0 || self.code_channels > 512 || self.blocks_per_stage > 16 {
            return Err(format!("conv channels {} / code channels {} must be 1..512", self.hidden, self.code_channels));
        }
        if self.row_len() > 1 << 28 {
            return Err(format!("a conv row of {:?} is larger than supported", self.row));
        }
        Ok(())
    }
}

/// Cuts rows (each `arch.row_len()` values, already normalised) into tiles, appended to `out`
/// in (row, slice, tile row, tile column) order, each `block` x `block`. Edge tiles repeat the
/// slice's last row and column.
pub fn to_tiles(arch: &ConvArch, rows: &[f32], out: &mut Vec<f32>) {
    let [h, w] = arch.slice();
    let b = arch.block as usize;
    let [th, tw] = arch.tiles();
    for slice in rows.chunks_exact(h * w) {
        for ty in 0..th {
            for tx in 0..tw {
                for y in 0..b {
                    let sy = (ty * b + y).min(h - 1);
                    for x in 0..b {
                        out.push(slice[sy * w + (tx * b + x).min(w - 1)]);
                    }
                }
            }
        }
    }
}

/// The inverse of `to_tiles`: tiles back to rows, the padding dropped.
pub fn from_tiles(arch: &ConvArch, tiles: &[f32], out: &mut Vec<f32>) {
    let [h, w] = arch.slice();
    let b = arch.block as usize;
    let [th, tw] = arch.tiles();
    for slice in tiles.chunks_exact(th * tw * b * b) {
        let start = out.len();
        out.resize(start + h * w, 0.0);
        for ty in 0..th {
            for tx in 0..tw {
                let tile = &slice[(ty * tw + tx) * b * b..][..b * b];
                for y in 0..b.min(h - ty * b) {
                    let x_end = b.min(w - tx * b);
                    let dst = start + (ty * b + y) * w + tx * b;
                    out[dst..dst + x_end].copy_from_slice(&tile[y * b..y * b + x_end]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(row: Vec<u64>, block: u64) -> ConvArch {
        ConvArch { row, block, hidden: 8, code_channels: 2, downsamples: 2, blocks_per_stage: 1 }
    }

    #[test]
    fn tiles_cover_slices_of_any_shape_and_come_back_exactly() {
        for (row, block) in [(vec![37, 49], 16), (vec![3, 10, 7], 4), (vec![16, 32], 16), (vec![1, 5], 4)] {
            let a = arch(row.clone(), block);
            a.check().unwrap();
            let n = a.row_len() * 2;
            let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let mut t = Vec::new();
            to_tiles(&a, &x, &mut t);
            assert_eq!(t.len(), 2 * a.tiles_per_row() * (block * block) as usize, "{row:?}");
            let mut back = Vec::new();
            from_tiles(&a, &t, &mut back);
            assert_eq!(back, x, "{row:?}");
        }
        let a = arch(vec![37, 49], 16);
        assert_eq!(a.tiles(), [3, 4]);
        assert_eq!(a.code_shape(), [2, 4, 4]);
        assert_eq!(a.latent_len(), 12 * 32);
    }

    #[test]
    fn edge_tiles_repeat_the_last_row_and_column() {
        let a = arch(vec![3, 3], 4);
        let x: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let mut t = Vec::new();
        to_tiles(&a, &x, &mut t);
        assert_eq!(&t[..8], &[0.0, 1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 5.0]);
        assert_eq!(&t[12..], &[6.0, 7.0, 8.0, 8.0]);
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert!(arch(vec![37], 16).check().is_err());
        assert!(arch(vec![37, 49], 6).check().is_err(), "4 does not divide 6");
        assert!(arch(vec![0, 49], 16).check().is_err());
    }
}
