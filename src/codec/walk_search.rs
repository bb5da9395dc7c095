//! Which interpolation walk (of `interp::candidates`) a field chunk is coded along: candidates
//! walked over a box of the chunk and priced, the cheapest kept. Two things set a search's
//! cost: how large the box is against the chunk, and how a walk's symbols are priced (by the
//! coder itself, `ints::trial_len`, or by their sub-bins' entropy, `ints::estimate`).

use super::interp::{self, Config};
use crate::dtype::DType;
use std::sync::Mutex;

/// The most elements of a chunk `choose_walk` walks its candidates over.
pub(super) const WALK_SAMPLE: usize = 1 << 16;

/// Whether a chunk of `n` elements on a walk grid `grid` is one 2-D slice (its leading
/// dimensions 1) of up to eight `WALK_SAMPLE`s: the chunks whose walk an estimate on an
/// eighth of it chooses (`ChunkCodec::estimate_walk`). On deeper boxes the estimate
/// misranked walks (`pack --level 1` of GloSea4 at 1e-3 12 % larger, HadCM3 at 1e-3 6 %,
/// than one fixed walk, where the coder's price on `choose_walk`'s box chose right).
pub(super) fn estimable(grid: [usize; 3], n: usize) -> bool {
    let plane = grid[1] * grid[2];
    grid[0] == 1 && plane > 0 && n == plane && n / 8 <= WALK_SAMPLE
}

/// A box of a chunk's elements the candidates are walked over.
pub(super) struct SampleBox {
    /// The box's dimensions (the chunk's leading one first).
    pub dims: [usize; 4],
    /// The chunk's elements in the box, in the box's order.
    pub at: Vec<usize>,
    /// Whether the box is the whole chunk (a trial's walk is then the block's).
    pub whole: bool,
}

impl SampleBox {
    /// A box of at most `limit` elements of a chunk of `n` elements on the walk grid `grid`
    /// (its trailing three dimensions; the leading one is what is left): the chunk's longest
    /// side halved until it is small enough, so it keeps every dimension the walks
    /// interpolate along. At the chunk's origin, or at its centre (away from the edges, where
    /// a field's land or an edge chunk's padding lie).
    pub fn new(grid: [usize; 3], n: usize, limit: usize, centred: bool) -> SampleBox {
        let [t1, t2, t3] = grid;
        let dims = [n / (t1 * t2 * t3), t1, t2, t3];
        let mut b = dims;
        while b.iter().product::<usize>() > limit.max(1) {
            let k = (0..4).max_by_key(|&k| b[k]).unwrap_or(0);
            b[k] = b[k].div_ceil(2);
        }
        let o: [usize; 4] = if centred { std::array::from_fn(|k| (dims[k] - b[k]) / 2) } else { [0; 4] };
        let mut at = Vec::with_capacity(b.iter().product());
        for i0 in o[0]..o[0] + b[0] {
            for i1 in o[1]..o[1] + b[1] {
                for i2 in o[2]..o[2] + b[2] {
                    let row = ((i0 * dims[1] + i1) * dims[2] + i2) * dims[3] + o[3];
                    at.extend(row..row + b[3]);
                }
            }
        }
        SampleBox { dims: b, at, whole: b == dims }
    }

    /// The box's values, which of them are valid (not `missing`), and how many are not.
    pub fn values(&self, values: &[f64], missing: Option<&[bool]>) -> (Vec<f64>, Vec<bool>, usize) {
        let xs = self.at.iter().map(|&i| values[i]).collect();
        let valid: Vec<bool> = self.at.iter().map(|&i| !missing.is_some_and(|m| m[i])).collect();
        let gone = valid.iter().filter(|&&v| !v).count();
        (xs, valid, gone)
    }

    /// The walks tried on the box.
    pub fn candidates(&self) -> Vec<Config> {
        let [_, t1, t2, t3] = self.dims;
        interp::candidates([t1, t2, t3])
    }
}

/// The index of the candidate `price` makes cheapest, the first of the cheapest in
/// `candidates`' order (so the same on any thread count), and its price. Two rounds: the
/// walks with one bin for all levels, then the winner's other level-wise bins. What finer bins
/// at coarse levels save hardly depends on the walk: on the 27 field/bound pairs of the
/// benchmark chunked one 2-D slice a chunk the two rounds chose as all six did on every chunk
/// (the same bytes), with four walks of six.
pub(super) fn cheapest<P: PartialOrd + Copy + Send>(candidates: &[Config], threads: usize, price: impl Fn(usize) -> P + Sync) -> (usize, P) {
    let round = |ks: Vec<usize>| -> Option<(usize, P)> {
        let prices = crate::parallel::map(ks.len(), threads, |j| price(ks[j]));
        ks.into_iter().zip(prices).reduce(|best, t| if t.1 < best.1 { t } else { best })
    };
    let first = round((0..candidates.len()).filter(|&k| candidates[k].levelwise == 0).collect()).expect("every walk has one bin for all levels");
    let w = candidates[first.0];
    let rest: Vec<usize> = (0..candidates.len()).filter(|&k| candidates[k].levelwise != 0 && candidates[k].kind == w.kind && candidates[k].order == w.order).collect();
    match round(rest) {
        // A tie goes to the candidate listed first, as one round over all would give it.
        Some(t) if t.1 < first.1 || (t.1 == first.1 && t.0 < first.0) => t,
        _ => first,
    }
}

/// The walk of `sample`'s candidates that `price` makes cheapest over the box's values `xs`
/// (`valid`: not missing), its price, and, where the box is the whole chunk, its walk (the
/// block's: not walked again). Only the cheapest so far is held, not every trial's walk.
pub(super) fn search<P: PartialOrd + Copy + Send>(
    sample: &SampleBox,
    dtype: DType,
    xs: &[f64],
    valid: &[bool],
    tol: f64,
    threads: usize,
    price: impl Fn(&interp::Walked) -> P + Sync,
) -> (Config, P, Option<interp::Walked>) {
    let kept: Mutex<Option<(usize, P, interp::Walked)>> = Mutex::new(None);
    let candidates = sample.candidates();
    let trial = |k: usize| {
        let w = interp::quantise(&candidates[k], dtype, xs, |i| valid[i], tol);
        let p = price(&w);
        if sample.whole {
            let mut best = kept.lock().unwrap_or_else(|e| e.into_inner());
            if best.as_ref().is_none_or(|&(j, q, _)| p < q || (p == q && k < j)) {
                *best = Some((k, p, w));
            }
        }
        p
    };
    let (k, p) = cheapest(&candidates, threads, trial);
    let walked = kept.into_inner().unwrap_or_else(|e| e.into_inner()).filter(|t| t.0 == k).map(|t| t.2);
    (candidates[k], p, walked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_keeps_every_dimension_and_stays_inside_the_chunk() {
        for dims in [[1, 1, 145, 192], [13, 6, 145, 192], [1, 1, 1, 5000], [3, 1, 7, 1]] {
            let n: usize = dims.iter().product();
            for limit in [1, 1000, 4096, 1 << 16] {
                for centred in [false, true] {
                    let b = SampleBox::new([dims[1], dims[2], dims[3]], n, limit, centred);
                    assert!(b.at.len() <= limit.max(1), "{dims:?} {limit}");
                    assert_eq!(b.at.len(), b.dims.iter().product::<usize>());
                    assert!(b.at.iter().all(|&i| i < n));
                    assert!(b.at.windows(2).all(|w| w[0] < w[1]), "in the chunk's order");
                    assert!(b.dims.iter().zip(dims).all(|(&d, c)| d >= 1 && d <= c));
                    assert_eq!(b.whole, b.at.len() == n);
                }
            }
        }
        // Centred: the middle element of a chunk is in its box.
        let b = SampleBox::new([1, 101, 99], 101 * 99, 100, true);
        assert!(b.at.contains(&(50 * 99 + 49)));
    }

    #[test]
    fn the_two_rounds_find_the_cheapest_where_bins_do_not_interact() {
        let cands = interp::candidates([1, 16, 16]);
        // A price where each walk's bins add their own amount: the two rounds find the minimum.
        for seed in 1..50u64 {
            let mut next = super::super::xorshift(seed);
            let walk: Vec<u64> = (0..cands.len()).map(|_| next() % 100).collect();
            let bins: Vec<u64> = (0..2).map(|_| next() % 100).collect();
            let price = |k: usize| {
                let c = cands[k];
                let w = cands.iter().position(|d| d.kind == c.kind && d.order == c.order).unwrap();
                walk[w] + bins[c.levelwise as usize]
            };
            let all = (0..cands.len()).map(price).min().unwrap();
            for threads in [1, 2, 3] {
                let (k, p) = cheapest(&cands, threads, price);
                assert_eq!(p, all);
                assert_eq!(price(k), all);
                assert_eq!(k, (0..cands.len()).find(|&k| price(k) == all).unwrap(), "the first of the cheapest");
            }
        }
    }
}
