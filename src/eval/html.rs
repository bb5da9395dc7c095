//! `report.html`: one file with everything in it (plots as data URIs, inline CSS, no script), so
//! it can be mailed, attached to a logbook or opened from a cluster's scratch disk.

use std::collections::BTreeMap;
use std::fmt::Write;

use base64::Engine;

use super::Summary;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn num(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if !x.is_finite() {
        format!("{x}")
    } else if (1e-3..1e5).contains(&x.abs()) {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

fn held(h: Option<bool>) -> &'static str {
    match h {
        Some(true) => "<span class=ok>yes</span>",
        Some(false) => "<span class=bad>NO</span>",
        None => "<span class=none>no bound</span>",
    }
}

const STYLE: &str = "body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1600px}\
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}h3{font-size:15px}\
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}\
th{background:#f2f2f2}td.l,th.l{text-align:left}.ok{color:#1a7f37;font-weight:bold}.bad{color:#c00;font-weight:bold}\
.none{color:#777}.plots img{width:32%;min-width:300px;margin:2px}.wide img{max-width:100%}.note{color:#555;font-size:13px}";

pub fn render(s: &Summary, images: &BTreeMap<String, Vec<u8>>) -> String {
    let img = |rel: &str, alt: &str| -> String {
        match images.get(rel) {
            Some(png) => format!(
                "<img alt=\"{}\" src=\"data:image/png;base64,{}\">",
                esc(alt),
                base64::engine::general_purpose::STANDARD.encode(png)
            ),
            None => String::new(),
        }
    };
    let mut h = String::new();
    let title = format!("balerfile eval: {}", s.archive);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{}</title><style>{STYLE}</style></head><body>",
        esc(&title)
    );
    let _ = write!(h, "<h1>{}</h1>", esc(&title));
    let _ = write!(
        h,
        "<table><tr><th class=l>original</th><td class=l>{}</td></tr><tr><th class=l>archive</th><td class=l>{}</td></tr>\
         <tr><th class=l>raw bytes</th><td>{}</td></tr><tr><th class=l>archive bytes</th><td>{} ({:.2} % of raw)</td></tr>\
         <tr><th class=l>ratio</th><td>{:.3}</td></tr><tr><th class=l>decoder bytes kept beside it</th><td>{}</td></tr>\
         <tr><th class=l>ratio with the decoder</th><td>{:.3}</td></tr><tr><th class=l>every bound held</th><td>{}</td></tr></table>",
        esc(&s.original),
        esc(&s.archive),
        s.raw_bytes,
        s.archive_bytes,
        100.0 * s.archive_bytes as f64 / s.raw_bytes.max(1) as f64,
        s.ratio,
        s.decoder_bytes,
        s.ratio_with_decoder,
        held(Some(s.bound_held)),
    );
    let _ = write!(
        h,
        "<p class=note>Residual = reconstructed - original; response = (reconstructed - original) / original, over \
         elements whose original is finite and not zero (Baler's Table 2). RMS = sqrt(mean(x<sup>2</sup>)). \
         Errors are computed in double precision over every element; non-finite originals must come back bit for bit.</p>"
    );

    if let Some(c) = &s.compare {
        let _ = write!(
            h,
            "<h2>Peers at the same bounds</h2><p class=note>Run by {} through h5py and hdf5plugin; sizes are the HDF5 \
             chunk bytes. Variables without a bound (or integers) go through zstd level 19 in every peer.</p>\
             <table><tr><th class=l>coder</th><th>bytes</th><th>% of raw</th><th>bound held</th><th class=l>note</th></tr>\
             <tr><td class=l>balerfile</td><td>{}</td><td>{:.2}</td><td>{}</td><td class=l>archive file size</td></tr>",
            esc(&c.python),
            s.archive_bytes,
            100.0 * s.archive_bytes as f64 / s.raw_bytes.max(1) as f64,
            held(Some(s.bound_held))
        );
        for p in &c.peers {
            let _ = write!(
                h,
                "<tr><td class=l>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=l>{}</td></tr>",
                esc(&p.peer),
                p.bytes.map(|b| b.to_string()).unwrap_or_else(|| "-".into()),
                p.percent_of_raw.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into()),
                if p.available { held(p.bound_held) } else { "-" },
                esc(p.why.as_deref().unwrap_or(""))
            );
        }
        h.push_str("</table>");
    }

    for ds in &s.datasets {
        let _ = write!(h, "<h2>{} <span class=note>shape {:?}, {}", esc(&ds.path), ds.shape, ds.kind);
        if let Some(m) = &ds.model {
            let _ = write!(h, ", model {} ({})", esc(&m.kind), esc(&m.id[..m.id.len().min(12)]));
        }
        h.push_str("</span></h2>");
        h.push_str(
            "<table><tr><th class=l>variable</th><th class=l>dtype</th><th class=l>bound</th><th>max |error|</th>\
             <th>max / bound</th><th>mean |error|</th><th>RMS |error|</th><th>residual mean</th><th>residual RMS</th>\
             <th>response mean</th><th>response RMS</th><th>non-finite</th><th>missing (kept exactly)</th><th>bound held</th></tr>",
        );
        for v in &ds.variables {
            let st = &v.stats;
            let frac = v.tolerance.map(|t| format!("{:.4}", st.max_abs_error / t)).unwrap_or_else(|| "-".into());
            let _ = write!(
                h,
                "<tr><td class=l>{}</td><td class=l>{}</td><td class=l>{}</td><td>{}</td><td>{frac}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&v.name),
                esc(&v.dtype),
                esc(&v.bound),
                num(st.max_abs_error),
                num(st.mean_abs_error),
                num(st.rms_abs_error),
                num(st.residual.mean),
                num(st.residual.rms),
                num(st.response.moments.mean),
                num(st.response.moments.rms),
                st.nonfinite,
                st.missing,
                held(st.bound_held)
            );
        }
        h.push_str("</table>");
        for (key, rel) in &ds.plots {
            let _ = write!(h, "<h3>{} ({key})</h3><div class=wide>{}</div>", esc(&ds.path), img(rel, key));
        }
        for v in &ds.variables {
            let _ = write!(h, "<h3>{}</h3><div class=plots>", esc(&v.name));
            for key in ["distributions", "residual", "response"] {
                if let Some(rel) = v.plots.get(key) {
                    h.push_str(&img(rel, &format!("{} {key}", v.name)));
                }
            }
            h.push_str("</div>");
        }
    }
    let _ = writeln!(h, "<p class=note>Written by balerfile {}.</p></body></html>", esc(&s.balerfile_version));
    h
}
