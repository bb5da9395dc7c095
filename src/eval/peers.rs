//! `eval --compare`: the same data through the peers a physicist would try instead (SZ3 and ZFP
//! at the archive's bounds, zstd lossless), run by `peers.py` in the user's Python with h5py and
//! hdf5plugin: the real HDF5 filters, not re-implementations.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::Serialize;
use serde_json::{json, Value};

use super::Matched;
use crate::error::{Error, Result};
use crate::header::{DatasetKind, Header};
use crate::io::{Sink, Source};
use crate::progress::Progress;

const SCRIPT: &str = include_str!("peers.py");
const PEERS: [&str; 3] = ["sz3", "zfp", "zstd"];

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub python: String,
    pub peers: Vec<Peer>,
}

#[derive(Debug, Serialize)]
pub struct Peer {
    pub peer: String,
    pub available: bool,
    pub why: Option<String>,
    /// Total over every variable; None when a variable could not be coded.
    pub bytes: Option<u64>,
    pub percent_of_raw: Option<f64>,
    pub bound_held: Option<bool>,
    pub variables: Vec<Value>,
}

pub fn compare(
    python: &Path,
    source: &mut dyn Source,
    matched: &Matched,
    header: &Header,
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<Comparison> {
    let work = out_dir.join(format!(".balerfile-peers-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    let result = run(python, source, matched, header, &work, progress);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn run(
    python: &Path,
    source: &mut dyn Source,
    matched: &Matched,
    header: &Header,
    work: &Path,
    progress: &dyn Progress,
) -> Result<Comparison> {
    // Each variable of the original as its own .npy, written a chunk at a time.
    let mut vars = Vec::new();
    let mut names = std::collections::HashMap::new();
    let total: u64 = header.datasets.iter().map(|d| d.raw_bytes()).sum();
    progress.start("writing the original for the peers", total);
    for (d, ds) in header.datasets.iter().enumerate() {
        let (sd, var_map) = &matched[d];
        let mut sinks = Vec::new();
        for (v, var) in ds.variables.iter().enumerate() {
            let key = format!("d{d}v{v}");
            let path = work.join(format!("{key}.npy"));
            let mut one = header.clone();
            let mut info = ds.clone();
            info.kind = DatasetKind::Array;
            info.variables = vec![var.clone()];
            info.variables[0].byte_order = crate::dtype::ByteOrder::Le;
            info.variables[0].field = None;
            one.datasets = vec![info];
            sinks.push(crate::io::npy::NpySink::create(&path, &one, &[0])?);
            vars.push(json!({"key": key, "npy": path, "tolerance": var.error.tolerance()}));
            names.insert(key, (ds.path.clone(), var.name.clone()));
        }
        let step = ds.chunk_rows.max(1);
        let mut row = 0;
        while row < ds.rows() {
            let end = (row + step).min(ds.rows());
            let data = source.read_rows(*sd, row..end)?;
            for (v, sink) in sinks.iter_mut().enumerate() {
                sink.write_rows(0, row..end, std::slice::from_ref(&data[var_map[v]]))?;
            }
            progress.advance((end - row) * ds.row_bytes());
            row = end;
        }
        for s in sinks {
            Box::new(s).finish()?;
        }
    }
    progress.finish();
    progress.message("running SZ3, ZFP and zstd");

    let request = json!({"workdir": work, "peers": PEERS, "variables": vars});
    let mut child = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Usage(format!("--compare: cannot run {}: {e}", python.display())))?;
    // The request is small; writing it before reading cannot deadlock on a full pipe.
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(request.to_string().as_bytes())
            .map_err(|e| Error::Usage(format!("--compare: writing to {}: {e}", python.display())))?;
    }
    let out = child.wait_with_output().map_err(|e| Error::Usage(format!("--compare: {}: {e}", python.display())))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(Error::Usage(format!(
            "--compare: the peer runner failed in {} ({}): {}",
            python.display(),
            out.status,
            tail.join(" | ")
        )));
    }
    let reply: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::Usage(format!("--compare: {} did not answer with JSON ({e}); stderr: {}", python.display(), stderr.trim()))
    })?;

    let mut peers = Vec::new();
    for p in reply["peers"].as_array().cloned().unwrap_or_default() {
        let mut variables = Vec::new();
        let mut bytes = Some(0u64);
        let mut held = Some(true);
        for mut v in p["variables"].as_array().cloned().unwrap_or_default() {
            if let Some((ds, name)) = v["key"].as_str().and_then(|k| names.get(k)) {
                v["dataset"] = json!(ds);
                v["variable"] = json!(name);
            }
            bytes = match (bytes, v["bytes"].as_u64(), v.get("error")) {
                (Some(b), Some(n), None) => Some(b + n),
                _ => None,
            };
            held = match (held, v["bound_held"].as_bool()) {
                (Some(true), Some(h)) => Some(h),
                (Some(false), _) => Some(false),
                _ => None,
            };
            variables.push(v);
        }
        let available = p["available"].as_bool().unwrap_or(false);
        if !available {
            bytes = None;
            held = None;
        }
        peers.push(Peer {
            peer: p["peer"].as_str().unwrap_or("?").to_string(),
            available,
            why: p["why"].as_str().map(str::to_string),
            bytes,
            percent_of_raw: bytes.map(|b| if total > 0 { 100.0 * b as f64 / total as f64 } else { 0.0 }),
            bound_held: held,
            variables,
        });
    }
    let version = reply["python"].as_str().unwrap_or("").split_whitespace().next().unwrap_or("").to_string();
    Ok(Comparison { python: format!("{} (Python {version})", python.display()), peers })
}
