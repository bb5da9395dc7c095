//! The report's pictures as PNG bytes: histograms (plotters, into a pixel buffer) and heat-map
//! panels (pixels written directly, labels by plotters). The font is compiled in (DejaVu Sans),
//! so plots look the same on every machine and need no fontconfig.

use plotters::prelude::*;

use super::stats::HistogramSummary;

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // DejaVu Sans is a valid TrueType font; if it ever failed to parse, text would be
        // missing and plotters would report it as a drawing error.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

pub const BLUE_: RGBColor = RGBColor(31, 119, 180);
pub const ORANGE: RGBColor = RGBColor(255, 127, 14);
pub const GREEN_: RGBColor = RGBColor(44, 160, 44);
pub const RED_: RGBColor = RGBColor(214, 39, 40);

pub struct Series<'a> {
    pub label: &'a str,
    pub hist: &'a HistogramSummary,
    pub color: RGBColor,
}

/// A vertical line with a legend entry (the error bound).
pub struct Marker<'a> {
    pub label: &'a str,
    pub at: &'a [f64],
    pub color: RGBColor,
}

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("drawing: {e}")
}

/// Step histograms overlaid on a log count axis, with under/overflow in the legend.
pub fn histograms(title: &str, x_label: &str, series: &[Series], markers: &[Marker]) -> Result<Vec<u8>, String> {
    register_font();
    let (w, h) = (760u32, 460u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let lo = series.iter().map(|s| s.hist.lo).fold(f64::INFINITY, f64::min);
        let hi = series.iter().map(|s| s.hist.hi).fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else { (-1.0, 1.0) };
        let ymax = series.iter().flat_map(|s| s.hist.counts.iter().copied()).max().unwrap_or(1).max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(62)
            .build_cartesian_2d(lo..hi, (0.5f64..ymax * 3.0).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc("entries")
            .x_labels(7)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .label_style(("sans-serif", 13))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        for s in series {
            let n = s.hist.counts.len().max(1);
            let width = (s.hist.hi - s.hist.lo) / n as f64;
            let mut pts = Vec::with_capacity(2 * n + 2);
            // Empty bins sit on the axis floor: a log axis has no zero.
            let y = |c: u64| if c == 0 { 0.5 } else { c as f64 };
            pts.push((s.hist.lo, 0.5));
            for (i, &c) in s.hist.counts.iter().enumerate() {
                let x0 = s.hist.lo + i as f64 * width;
                pts.push((x0, y(c)));
                pts.push((x0 + width, y(c)));
            }
            pts.push((s.hist.hi, 0.5));
            let label = if s.hist.underflow + s.hist.overflow > 0 {
                format!("{} ({} under, {} over range)", s.label, s.hist.underflow, s.hist.overflow)
            } else {
                s.label.to_string()
            };
            let color = s.color;
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        for m in markers {
            let color = m.color;
            let mut first = true;
            for &x in m.at {
                let s = chart
                    .draw_series(LineSeries::new(vec![(x, 0.5), (x, ymax * 3.0)], color.stroke_width(2)))
                    .map_err(err)?;
                if first {
                    s.label(m.label).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
                    first = false;
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    encode_png(&buf, w, h)
}

/// Tick labels short enough for any magnitude.
fn tick(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// One heat map: row-major values of an image `rows` x `cols`.
pub struct Panel<'a> {
    pub title: String,
    pub rows: usize,
    pub cols: usize,
    pub values: &'a [f64],
    pub scale: Scale,
}

#[derive(Clone, Copy, Debug)]
pub enum Scale {
    /// A sequential colour map over [lo, hi].
    Linear(f64, f64),
    /// A diverging map symmetric about zero over [-m, m] (errors).
    Diverging(f64),
    /// log10(1 + v) over [0, log10(1 + hi)], zero white (sparse ADC counts).
    Log1p(f64),
}

/// Panels in a grid of `columns`, each scaled to fit `cell` pixels, with a title and a colour
/// bar with its end values. Non-finite values are grey.
pub fn heatmaps(title: &str, panels: &[Panel], columns: usize, cell: u32) -> Result<Vec<u8>, String> {
    register_font();
    let columns = columns.max(1);
    let (head, label, bar) = (34u32, 22u32, 26u32);
    // Each panel keeps its aspect ratio, its longer side filling the cell; a row of panels is
    // as tall as its tallest.
    let sizes: Vec<(f64, u32, u32)> = panels
        .iter()
        .map(|p| {
            let s = cell as f64 / p.rows.max(p.cols).max(1) as f64;
            (s, ((p.cols as f64 * s).round() as u32).max(1), ((p.rows as f64 * s).round() as u32).max(1))
        })
        .collect();
    let row_h: Vec<u32> = sizes.chunks(columns).map(|r| r.iter().map(|x| x.2).max().unwrap_or(1) + label + bar).collect();
    let w = columns.min(panels.len()).max(1) as u32 * (cell + 16) + 16;
    let h = head + row_h.iter().map(|r| r + 10).sum::<u32>() + 6;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let mut boxes = Vec::new();
    for (k, p) in panels.iter().enumerate() {
        let (c, r) = (k % columns, k / columns);
        let x0 = 16 + c as u32 * (cell + 16);
        let y0 = head + row_h[..r].iter().map(|r| r + 10).sum::<u32>() + label;
        let (s, pw, ph) = sizes[k];
        for py in 0..ph {
            let i = ((py as f64 / s) as usize).min(p.rows.saturating_sub(1));
            for px in 0..pw {
                let j = ((px as f64 / s) as usize).min(p.cols.saturating_sub(1));
                let v = p.values.get(i * p.cols + j).copied().unwrap_or(f64::NAN);
                let rgb = colour(p.scale, v);
                let o = (((y0 + py) * w + x0 + px) * 3) as usize;
                buf[o..o + 3].copy_from_slice(&rgb);
            }
        }
        // The colour bar under the panel.
        let by = y0 + ph + 4;
        for px in 0..pw {
            let t = px as f64 / (pw.max(2) - 1) as f64;
            let rgb = colour_at(p.scale, t);
            for py in 0..8 {
                let o = (((by + py) * w + x0 + px) * 3) as usize;
                buf[o..o + 3].copy_from_slice(&rgb);
            }
        }
        boxes.push((x0, y0, pw, ph, by));
    }
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.draw(&Text::new(title.to_string(), (16, 8), ("sans-serif", 18).into_font()))
            .map_err(err)?;
        let small = ("sans-serif", 12).into_font();
        for (p, &(x0, y0, pw, ph, by)) in panels.iter().zip(&boxes) {
            root.draw(&Text::new(p.title.clone(), (x0 as i32, y0 as i32 - 17), ("sans-serif", 14).into_font()))
                .map_err(err)?;
            root.draw(&Rectangle::new([(x0 as i32 - 1, y0 as i32 - 1), ((x0 + pw) as i32, (y0 + ph) as i32)], BLACK))
                .map_err(err)?;
            let (a, b) = scale_ends(p.scale);
            root.draw(&Text::new(tick(a), (x0 as i32, by as i32 + 10), small.clone())).map_err(err)?;
            let right = tick(b);
            let tx = (x0 + pw) as i32 - 7 * right.len() as i32;
            root.draw(&Text::new(right, (tx.max(x0 as i32 + 40), by as i32 + 10), small.clone())).map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    encode_png(&buf, w, h)
}

fn scale_ends(s: Scale) -> (f64, f64) {
    match s {
        Scale::Linear(a, b) => (a, b),
        Scale::Diverging(m) => (-m, m),
        Scale::Log1p(hi) => (0.0, hi),
    }
}

fn colour(s: Scale, v: f64) -> [u8; 3] {
    if !v.is_finite() {
        return [150, 150, 150];
    }
    let t = match s {
        Scale::Linear(a, b) => (v - a) / (b - a),
        Scale::Diverging(m) => 0.5 + 0.5 * v / m,
        Scale::Log1p(hi) => {
            if v <= 0.0 {
                return [255, 255, 255];
            }
            (1.0 + v).log10() / (1.0 + hi).log10()
        }
    };
    colour_at(s, if t.is_finite() { t } else { 0.5 })
}

/// The colour at position t in [0, 1] of the scale's map.
fn colour_at(s: Scale, t: f64) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    const VIRIDIS: [[f64; 3]; 5] =
        [[68.0, 1.0, 84.0], [59.0, 82.0, 139.0], [33.0, 145.0, 140.0], [94.0, 201.0, 98.0], [253.0, 231.0, 37.0]];
    const DIVERGING: [[f64; 3]; 3] = [[59.0, 76.0, 192.0], [245.0, 245.0, 245.0], [180.0, 4.0, 38.0]];
    let map: &[[f64; 3]] = match s {
        Scale::Diverging(_) => &DIVERGING,
        _ => &VIRIDIS,
    };
    let x = t * (map.len() - 1) as f64;
    let i = (x as usize).min(map.len() - 2);
    let f = x - i as f64;
    let mut out = [0u8; 3];
    for c in 0..3 {
        out[c] = (map[i][c] + (map[i + 1][c] - map[i][c]) * f).round() as u8;
    }
    out
}

pub fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(|e| format!("PNG: {e}"))?;
    writer.write_image_data(rgb).map_err(|e| format!("PNG: {e}"))?;
    writer.finish().map_err(|e| format!("PNG: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_pngs() {
        let h = HistogramSummary { lo: -1.0, hi: 1.0, counts: vec![1, 10, 100, 10, 0, 1], underflow: 2, overflow: 0 };
        let png = histograms(
            "x",
            "residual",
            &[Series { label: "a", hist: &h, color: BLUE_ }],
            &[Marker { label: "bound", at: &[-0.5, 0.5], color: RED_ }],
        )
        .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let v: Vec<f64> = (0..12).map(|i| i as f64).collect();
        let p = Panel { title: "t".into(), rows: 3, cols: 4, values: &v, scale: Scale::Linear(0.0, 11.0) };
        let png = heatmaps("slice", &[p], 3, 120).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
