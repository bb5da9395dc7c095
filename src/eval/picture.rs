//! The picture a dataset gets besides its histograms: a field's first 2-D slice (original,
//! reconstruction, error) or a TPC wedge's layers, collected from the first chunks as they go by.

use super::plot;
use crate::header::{DatasetInfo, DatasetKind, Header};

/// The pixels a dataset's picture needs, collected as chunks go by: a field's first 2-D slice,
/// or a TPC wedge's layers.
pub struct Picture {
    pub what: PictureKind,
    /// Elements wanted from the start of the dataset, and the rows/cols of the image.
    want: usize,
    rows: usize,
    cols: usize,
    orig: Vec<f64>,
    reco: Vec<f64>,
}

#[derive(Clone, Copy, PartialEq)]
pub enum PictureKind {
    Slice,
    Wedge { layers: usize },
}

const MAX_PICTURE: usize = 1 << 24;

impl Picture {
    pub fn wanted(ds: &DatasetInfo, header: &Header) -> Option<Picture> {
        if ds.kind != DatasetKind::Array || ds.variables.len() != 1 || ds.shape.len() < 2 || ds.jagged.is_some() {
            return None;
        }
        let kind = ds.model.as_ref().and_then(|m| header.models.get(m.model as usize)).map(|m| m.kind.as_str());
        let n = ds.shape.len();
        let (what, rows, cols, want) = if kind == Some("bcae2d") && n == 4 {
            let (l, h, w) = (ds.shape[1] as usize, ds.shape[2] as usize, ds.shape[3] as usize);
            (PictureKind::Wedge { layers: l }, h, w, l * h * w)
        } else if n == 2 {
            // A 2-D array is one image: its first rows.
            let rows = (ds.shape[0] as usize).min(720);
            (PictureKind::Slice, rows, ds.shape[1] as usize, rows * ds.shape[1] as usize)
        } else {
            let (h, w) = (ds.shape[n - 2] as usize, ds.shape[n - 1] as usize);
            (PictureKind::Slice, h, w, h * w)
        };
        (want > 0 && want <= MAX_PICTURE).then(|| Picture { what, want, rows, cols, orig: Vec::new(), reco: Vec::new() })
    }

    pub fn take(&mut self, ds: &DatasetInfo, row_start: u64, orig: &[u8], reco: &[u8]) {
        let dtype = ds.variables[0].dtype;
        let at = (row_start * ds.row_elems()) as usize;
        if at != self.orig.len() || self.orig.len() >= self.want {
            return;
        }
        let n = (self.want - at).min(orig.len() / dtype.size());
        let size = dtype.size();
        self.orig.extend(crate::dtype::values_f64(dtype, &orig[..n * size]));
        self.reco.extend(crate::dtype::values_f64(dtype, &reco[..n * size]));
    }

    /// The picture as PNG bytes, or None when the data never arrived.
    pub fn draw(&self, ds: &DatasetInfo, tolerance: Option<f64>) -> Option<std::result::Result<Vec<u8>, String>> {
        if self.orig.len() < self.want {
            return None;
        }
        let finite = |v: &[f64]| v.iter().copied().filter(|x| x.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
        match self.what {
            PictureKind::Slice => {
                // Missing elements (fill values) are drawn as no data: never on the colour scale.
                let rule = ds.variables[0].missing_rule();
                let hide = |v: &[f64]| -> Vec<f64> {
                    self.orig.iter().zip(v).map(|(&o, &x)| if rule.is_some_and(|r| r.is_missing(o)) { f64::NAN } else { x }).collect()
                };
                let (orig, reco) = (hide(&self.orig), hide(&self.reco));
                let (lo, hi) = finite(&orig);
                let err: Vec<f64> = reco.iter().zip(&orig).map(|(r, o)| r - o).collect();
                let emax = tolerance.unwrap_or_else(|| err.iter().fold(0.0f64, |m, e| m.max(e.abs()))).max(f64::MIN_POSITIVE);
                let scale = plot::Scale::Linear(lo, if hi > lo { hi } else { lo + 1.0 });
                let (r, c) = (self.rows, self.cols);
                let which = if ds.shape.len() == 2 {
                    format!("rows 0-{} (row 0 at the top)", r - 1)
                } else {
                    format!("slice [{}:, :] (first index at the top)", "0, ".repeat(ds.shape.len() - 2))
                };
                let panels = [
                    plot::Panel { title: "original".into(), rows: r, cols: c, values: &orig, scale },
                    plot::Panel { title: "reconstructed".into(), rows: r, cols: c, values: &reco, scale },
                    plot::Panel {
                        title: if tolerance.is_some() { "error (colour scale = the bound)".into() } else { "error".into() },
                        rows: r,
                        cols: c,
                        values: &err,
                        scale: plot::Scale::Diverging(emax),
                    },
                ];
                Some(plot::heatmaps(&format!("{} {which}", ds.path), &panels, 3, 300))
            }
            PictureKind::Wedge { layers } => {
                let (h, w) = (self.rows, self.cols);
                let picks: Vec<usize> = if layers <= 8 { (0..layers).collect() } else { (0..8).map(|k| k * (layers - 1) / 7).collect() };
                let hi = finite(&self.orig).1.max(1.0);
                let mut panels = Vec::new();
                for (name, data) in [("original", &self.orig), ("reconstructed", &self.reco)] {
                    for &l in &picks {
                        panels.push(plot::Panel {
                            title: format!("{name}, layer {l}"),
                            rows: h,
                            cols: w,
                            values: &data[l * h * w..(l + 1) * h * w],
                            scale: plot::Scale::Log1p(hi),
                        });
                    }
                }
                let title = format!("{}: wedge 0, {} of {layers} layers (colour: log(1 + value))", ds.path, picks.len());
                Some(plot::heatmaps(&title, &panels, picks.len(), 200))
            }
        }
    }
}
