//! Entry points for coverage-guided fuzzing (`fuzz/`, cargo-fuzz) and for the regression test
//! that replays every committed seed and every input a fuzzer once crashed on
//! (`tests/fuzz_regressions.rs`). Each takes arbitrary bytes and must return, never panic:
//! malformed input is an `Err` inside, which these functions swallow. Not a stable API.
//!
//! Input layouts (what the seeds in `fuzz/seeds/<target>/` hold):
//! - [`archive_reader`]: a whole `.baler` file.
//! - [`chunk_decoder`]: [`CHUNK_CONFIG_LEN`] bytes that pick the variables' codings and an
//!   optional stand-in model, then one codec chunk as the container stores it.
//! - [`filter_decode`]: `u8 k`, `k` little-endian u32 cd_values, then one filtered chunk.
//! - [`onnx_loader`]: `u32 m` (little-endian), `m` bytes of `manifest.json`, then an ONNX file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::codec::model_stage::{LatentCoding, LatentModel, ModelPlan};
use crate::codec::{ChunkCodec, ChunkPlace, VarCoding};
use crate::container::ArchiveReader;
use crate::dtype::{values_f64, DType};

/// A scratch file for inputs that the code under test only takes as a path; removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(ext: &str) -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = Path::new("/dev/shm");
        let base = if base.is_dir() { base.to_path_buf() } else { std::env::temp_dir() };
        let n = N.fetch_add(1, Ordering::Relaxed);
        Scratch(base.join(format!("balerfile-fuzz-{}-{n}{ext}", std::process::id())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Elements per variable the fuzz entry points decode at most: the decoder may legitimately
/// produce far more from a few bytes (a range-coded block of zeros), which only costs time.
const MAX_FUZZ_ELEMS: u64 = 1 << 16;

// ---------------------------------------------------------------------------------------------
// archive_reader

/// Opens `data` as a `.baler` file, inspects it, reads its embedded models' manifests, and
/// decodes every chunk of every dataset that has no model.
///
/// Checksums cover every byte, so almost every mutation is caught by one; the input is therefore
/// also tried with its checksums recomputed (when it has the structure to find them), which lets
/// the fuzzer reach the header, index and chunk parsers behind them.
pub fn archive_reader(data: &[u8]) {
    read_archive(data);
    let mut fixed = data.to_vec();
    if fix_archive_crcs(&mut fixed) && fixed != data {
        read_archive(&fixed);
    }
}

fn le_u64(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// Rewrites the header, footer and chunk checksums of a `.baler` file to match its bytes.
pub fn fix_archive_crcs(d: &mut [u8]) -> bool {
    const PRE: usize = crate::container::PREAMBLE_LEN as usize;
    const TRAIL: usize = crate::container::TRAILER_LEN as usize;
    let Some(hlen) = le_u64(d, 16).and_then(|h| usize::try_from(h).ok()) else { return false };
    let Some(hend) = PRE.checked_add(hlen).filter(|&e| e.saturating_add(4 + TRAIL) <= d.len()) else { return false };
    let crc = crc32fast::hash(&d[..hend]);
    d[hend..hend + 4].copy_from_slice(&crc.to_le_bytes());
    let t = d.len() - TRAIL;
    let (Some(foff), Some(flen)) = (le_u64(d, t), le_u64(d, t + 8)) else { return true };
    let (Ok(foff), Ok(flen)) = (usize::try_from(foff), usize::try_from(flen)) else { return true };
    if foff.checked_add(flen) != Some(t) || foff < hend + 4 {
        return true;
    }
    let n = le_u64(d, foff).unwrap_or(0) as usize;
    for i in 0..n.min(flen.saturating_sub(8) / 40) {
        let e = foff + 8 + 40 * i;
        let (Some(off), Some(len)) = (le_u64(d, e), le_u64(d, e + 8)) else { break };
        let range = usize::try_from(off).ok().zip(usize::try_from(len).ok()).and_then(|(o, l)| Some(o..o.checked_add(l)?));
        if let Some(r) = range.filter(|r| r.end <= foff) {
            let crc = crc32fast::hash(&d[r]);
            d[e + 20..e + 24].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&d[foff..t]);
    d[t + 16..t + 20].copy_from_slice(&crc.to_le_bytes());
    true
}

fn read_archive(data: &[u8]) {
    let f = Scratch::new(".baler");
    if std::fs::write(&f.0, data).is_err() {
        return;
    }
    let _ = crate::inspect::inspect(&f.0).map(|i| serde_json::to_vec(&i));
    let Ok(reader) = ArchiveReader::open(&f.0) else { return };
    let header = reader.header();
    #[cfg(feature = "runtime")]
    {
        let store = crate::model::store::Store { dirs: vec![f.0.with_extension("no-store")] };
        for (m, r) in header.models.iter().enumerate() {
            if r.embedded.is_some() {
                let _ = crate::model::loaded::bundle_for(&reader, m, r, &store);
            }
        }
    }
    let Ok(codec) = crate::unpack::codec_of(&reader) else { return };
    let codings = crate::unpack::var_codings(&reader);
    let plans: Vec<Option<ModelPlan>> = header.datasets.iter().map(|_| None).collect();
    for (i, e) in reader.index().iter().enumerate() {
        let Some(ds) = header.datasets.get(e.dataset as usize) else { continue };
        if ds.model.is_some() || e.rows.saturating_mul(ds.row_elems()) > MAX_FUZZ_ELEMS {
            continue;
        }
        let _ = crate::unpack::decode_chunk(&reader, &codec, &codings, &plans, i);
    }
}

// ---------------------------------------------------------------------------------------------
// chunk_decoder

/// Bytes at the start of a [`chunk_decoder`] input that choose the codings.
pub const CHUNK_CONFIG_LEN: usize = 8;

const TOLERANCES: [Option<f64>; 8] = [None, None, Some(1e-3), Some(0.5), Some(2.0), Some(1e-7), Some(100.0), Some(1e-300)];

/// A stand-in for an ONNX model: a fixed, cheap linear map, so the fuzzer reaches the latent
/// block and the prediction-coded paths without ONNX Runtime.
struct StandIn {
    features: usize,
    latent: usize,
}

impl LatentModel for StandIn {
    fn features(&self) -> usize {
        self.features
    }
    fn latent(&self) -> usize {
        self.latent
    }
    fn encode(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, String> {
        let f = self.features.max(1);
        Ok((0..rows * self.latent).map(|i| x.get((i / self.latent) * f + i % self.latent % f).copied().unwrap_or(0.0) * 0.5).collect())
    }
    fn decode(&self, z: &[f32], rows: usize) -> Result<Vec<f32>, String> {
        let l = self.latent.max(1);
        Ok((0..rows * self.features).map(|i| z.get((i / self.features.max(1)) * l + i % l).copied().unwrap_or(0.0) * 2.0 + 0.25).collect())
    }
}

/// What the first [`CHUNK_CONFIG_LEN`] bytes say.
pub struct ChunkConfig {
    pub vars: Vec<VarCoding>,
    pub elems_per_row: u64,
    pub level: i32,
    /// A stand-in model: (features as `[variable, element]`, each feature's width, latent width,
    /// latent coding).
    pub model: Option<(Vec<[u64; 2]>, Vec<usize>, usize, LatentCoding)>,
}

/// byte 0: variables (1 + bits 0-1), model (bits 2-3: 2 stand-in with an f16 latent, 3 with an
/// 8-bit latent), row shape (bits 4-5: [e], [2, e/2], [e, 1], none), zstd level (1 + bits 6-7
/// % 3); bytes 1-2: elements per row e (1 + u16 % 4096); bytes 3-6: per variable, dtype (low
/// nibble % 11, DType::ALL) and bound (bits 4-6, TOLERANCES); byte 7: the stand-in's latent
/// width (1 + bits 0-2), its features' first element (bits 3-6, % e), wide features (bit 7).
pub fn chunk_config(c: &[u8; CHUNK_CONFIG_LEN]) -> ChunkConfig {
    let nvars = 1 + (c[0] & 3) as usize;
    let epr = 1 + (u16::from_le_bytes([c[1], c[2]]) % 4096) as u64;
    let model_mode = (c[0] >> 2) & 3;
    let row_shape: Option<Vec<u64>> = match (c[0] >> 4) & 3 {
        0 => Some(vec![epr]),
        1 if epr % 2 == 0 => Some(vec![2, epr / 2]),
        2 => Some(vec![epr, 1]),
        _ => None,
    };
    let model = (model_mode >= 2).then(|| {
        let latent = 1 + (c[7] & 7) as usize;
        let elem = ((c[7] >> 3) & 15) as u64 % epr;
        let wide = c[7] & 0x80 != 0;
        // The stand-in covers every float variable; a wide feature spans a row from `elem` on,
        // as a BCAE-2D wedge spans the row (the header only checks that `elem` is in the row).
        let mut features = Vec::new();
        let mut widths = Vec::new();
        for v in 0..nvars {
            if DType::ALL[(c[3 + v] & 15) as usize % 11].is_float() {
                features.push([v as u64, elem]);
                widths.push(if wide { epr as usize } else { 1 });
            }
        }
        let coding = if model_mode == 2 { LatentCoding::F16 } else { LatentCoding::Bits(8) };
        (features, widths, latent, coding)
    });
    let modelled = |v: usize| model.as_ref().is_some_and(|(f, _, _, _)| f.iter().any(|x| x[0] as usize == v));
    let vars = (0..nvars)
        .map(|v| {
            let b = c[3 + v];
            let dtype = DType::ALL[(b & 15) as usize % 11];
            let coding = VarCoding::for_bound(dtype, TOLERANCES[((b >> 4) & 7) as usize], false, modelled(v));
            match &row_shape {
                Some(s) => coding.on_rows(s),
                None => coding,
            }
        })
        .collect();
    ChunkConfig { vars, elems_per_row: epr, level: 1 + ((c[0] >> 6) % 3) as i32, model }
}

/// Decodes the chunk after the config bytes with the codings they choose (the chunk's place is
/// taken from the chunk, so every input reaches the blocks). A chunk that decodes is encoded
/// again and decoded once more, and the bound of every variable is checked on that round trip.
pub fn chunk_decoder(data: &[u8]) {
    let Some((c, chunk)) = data.split_first_chunk::<CHUNK_CONFIG_LEN>() else { return };
    let cfg = chunk_config(c);
    let Some(place) = place_of(chunk) else { return };
    if place.rows.saturating_mul(cfg.elems_per_row) > MAX_FUZZ_ELEMS {
        return;
    }
    let n_features = cfg.model.as_ref().map_or(0, |m| m.1.iter().sum::<usize>());
    let stand_in = StandIn { features: n_features, latent: cfg.model.as_ref().map_or(1, |m| m.2) };
    let (offset, scale) = (vec![0.125; 16], vec![1.5; 16]);
    let plan = cfg.model.as_ref().filter(|m| !m.0.is_empty()).map(|(features, widths, _, coding)| {
        ModelPlan::new(&stand_in, &offset[..features.len()], &scale[..features.len()], features, *coding).with_widths(widths)
    });
    let codec = ChunkCodec { level: cfg.level, threads: 1 };
    let Ok(decoded) = codec.decode(chunk, place, &cfg.vars, cfg.elems_per_row, plan.as_ref()) else { return };
    let _ = crate::codec::chunk_layout(chunk, &cfg.vars, cfg.elems_per_row);

    // Round trip: what decodes must encode and decode back within each variable's bound.
    let Ok(enc) = codec.encode(place, &cfg.vars, &decoded, cfg.elems_per_row, plan.as_ref()) else { return };
    let again = codec
        .decode(&enc.bytes, place, &cfg.vars, cfg.elems_per_row, plan.as_ref())
        .unwrap_or_else(|e| panic!("a chunk the codec encoded does not decode: {e}"));
    crate::codec::chunk_layout(&enc.bytes, &cfg.vars, cfg.elems_per_row).unwrap_or_else(|e| panic!("layout of an encoded chunk: {e}"));
    for (v, var) in cfg.vars.iter().enumerate() {
        check_bound(v, var, &decoded[v], &again[v]);
    }
}

fn place_of(chunk: &[u8]) -> Option<ChunkPlace> {
    let mut c = crate::wire::Cursor::new(chunk);
    Some(ChunkPlace { dataset: c.u32("").ok()?, row_start: c.u64("").ok()?, rows: c.u64("").ok()? })
}

/// Panics unless `got` is `want` within the variable's bound (NaN and infinities exact).
fn check_bound(v: usize, var: &VarCoding, want: &[u8], got: &[u8]) {
    assert_eq!(want.len(), got.len(), "variable {v}: length");
    let Some(tol) = var.tolerance else {
        assert!(want == got, "variable {v} ({}) is lossless but came back different", var.dtype);
        return;
    };
    let (a, b) = (values_f64(var.dtype, want), values_f64(var.dtype, got));
    for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
        let ok = if x.is_finite() { (x - y).abs() <= tol || x == y } else { x.to_bits() == y.to_bits() };
        assert!(ok, "variable {v} ({}) element {i}: {x:e} came back as {y:e}, bound {tol:e}", var.dtype);
    }
}

// ---------------------------------------------------------------------------------------------
// filter_decode

/// An integer block (a chain of stages, or a first-release block) from untrusted bytes: the
/// first 2 bytes give the element count (at most 4096); three reference columns made from the
/// input's tail stand in for the chunk's earlier variables. Whatever decodes is encoded again
/// (every predictor, reference and entropy stage tried) and must decode to the same codes.
pub fn int_block(data: &[u8]) {
    use crate::codec::{ints, stages};
    let Some((head, rest)) = data.split_first_chunk::<2>() else { return };
    let n = (u16::from_le_bytes(*head) & 0x0fff) as usize;
    let refs: Vec<Option<Vec<i64>>> = (0..3)
        .map(|k| {
            (k != 1).then(|| (0..n).map(|i| rest.get((i * 7 + k) % rest.len().max(1)).copied().unwrap_or(0) as i64 * (k as i64 * 1000 - 999)).collect())
        })
        .collect();
    // Scales let the encoder try the norm of the reference columns too.
    let refs = stages::Refs { codes: &refs, scales: &[1.0, f64::NAN, 0.25] };
    let mut cur = crate::wire::Cursor::new(rest);
    let Ok((chain, payload)) = stages::read(&mut cur, n) else { return };
    let Ok(codes) = chain.decode(payload, n, &refs) else { return };
    for grid in [None, Some([2, n.max(1) / 2])] {
        let mut out = Vec::new();
        ints::encode_with(&codes, 3, grid, &refs, &mut out);
        let mut c = crate::wire::Cursor::new(&out);
        let (chain, payload) = stages::read(&mut c, n).unwrap_or_else(|e| panic!("a block the codec wrote does not parse: {e}"));
        let again = chain.decode(payload, n, &refs).unwrap_or_else(|e| panic!("a block the codec wrote does not decode: {e}"));
        assert_eq!(again, codes, "integer block round trip");
    }
}

/// The HDF5 filter's decode path as `capi::filter` runs it (cd_values, then the chunk), and for
/// a chunk that decodes, encode and decode again with the same cd_values.
pub fn filter_decode(data: &[u8]) {
    let Some((&k, rest)) = data.split_first() else { return };
    let k = (k as usize) % 24;
    if rest.len() < 4 * k {
        return;
    }
    let (words, chunk) = rest.split_at(4 * k);
    let cd: Vec<u32> = words.chunks_exact(4).map(|w| u32::from_le_bytes(w.try_into().unwrap())).collect();
    if crate::h5filter::chunk::read_header(chunk).is_ok_and(|h| h.rows.saturating_mul(h.row_elems as u64) > MAX_FUZZ_ELEMS) {
        return;
    }
    let _ = crate::h5filter::capi::run_filter(true, &cd, chunk);
    // The chunk's CRC-32 catches nearly every mutation: try it also with the CRC made to match.
    let mut fixed = chunk.to_vec();
    if let Some(body) = fixed.get(crate::h5filter::chunk::HEADER_BYTES..) {
        let crc = crc32fast::hash(body);
        fixed[20..24].copy_from_slice(&crc.to_le_bytes());
    }
    let Ok(out) = crate::h5filter::capi::run_filter(true, &cd, &fixed) else { return };
    let Ok(p) = crate::h5filter::FilterParams::from_cd_values(&cd) else { return };
    if p.dtype.is_none() || p.model.is_some() {
        return;
    }
    let Ok(enc) = crate::h5filter::capi::run_filter(false, &cd, &out) else { return };
    let back = crate::h5filter::capi::run_filter(true, &cd, &enc).unwrap_or_else(|e| panic!("a chunk the filter encoded does not decode: {e}"));
    assert_eq!(back.len(), out.len(), "filter round trip: length");
    if p.bound == crate::h5filter::FilterBound::Lossless {
        assert!(back == out, "filter round trip: a lossless chunk came back different");
    }
}

// ---------------------------------------------------------------------------------------------
// onnx_loader

/// Splits an [`onnx_loader`] input into the manifest and the ONNX bytes.
pub fn onnx_split(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<4>() else { return (&[], data) };
    let m = (u32::from_le_bytes(*len) as usize).min(rest.len());
    rest.split_at(m)
}

/// What model loading does with a bundle before ONNX Runtime sees anything: parse and validate
/// the manifest, load the bundle folder (hashes checked), find it in a store by id, take it out
/// of an archive's header as an embedded model, and (with the `train` feature, which carries
/// the ONNX reader) describe the ONNX file's inputs and outputs.
pub fn onnx_loader(data: &[u8]) {
    use crate::model::{Bundle, Manifest};
    let (manifest_bytes, onnx) = onnx_split(data);
    #[cfg(feature = "train")]
    let _ = crate::onnx::describe(onnx);
    let dir = Scratch::new(".bundle");
    let _ = std::fs::create_dir(&dir.0);
    let parsed: Option<Manifest> = serde_json::from_slice(manifest_bytes).ok();
    let Some(mut manifest) = parsed else {
        // Still exercise the folder loader on whatever the bytes are.
        let _ = std::fs::write(dir.0.join(crate::model::MANIFEST_FILE), manifest_bytes);
        let _ = Bundle::load_dir(&dir.0);
        return;
    };
    let _ = manifest.validate(Path::new("manifest.json"));
    let _ = (manifest.id(), manifest.row_shape(), manifest.input_width(), manifest.n_features());
    // As written: hashes usually differ from the bytes; then with the hashes made to match, so
    // the loader goes on past them.
    for fix in [false, true] {
        if fix {
            let sha = crate::model::sha256_hex(onnx);
            manifest.encoder.sha256 = sha.clone();
            manifest.decoder.sha256 = sha;
        }
        let plain = |f: &str| !f.is_empty() && !f.contains(['/', '\\', '\0']) && !f.starts_with('.') && f.len() < 200;
        if !plain(&manifest.encoder.file) || !plain(&manifest.decoder.file) {
            return;
        }
        let Ok(json) = serde_json::to_vec(&manifest) else { return };
        let _ = std::fs::write(dir.0.join(crate::model::MANIFEST_FILE), if fix { &json[..] } else { manifest_bytes });
        let _ = std::fs::write(dir.0.join(&manifest.encoder.file), onnx);
        let _ = std::fs::write(dir.0.join(&manifest.decoder.file), onnx);
        if let Ok(b) = Bundle::load_dir(&dir.0) {
            let _ = (b.reference(true), b.decoder_cost(), b.manifest.row_shape(), b.manifest.input_width());
            let store = crate::model::store::Store { dirs: vec![dir.0.parent().unwrap_or(Path::new(".")).to_path_buf()] };
            let _ = store.get(&b.id);
        }
    }
    #[cfg(feature = "runtime")]
    embedded(&manifest, onnx);
}

/// The archive path: a header naming the manifest as an embedded model, the ONNX bytes as its
/// attachment, through `bundle_for` (the checks `unpack` makes before loading it).
#[cfg(feature = "runtime")]
fn embedded(manifest: &crate::model::Manifest, decoder: &[u8]) {
    let r = crate::model::ModelRef {
        id: manifest.id(),
        name: manifest.name.clone(),
        kind: manifest.kind.clone(),
        decoder_sha256: manifest.decoder.sha256.clone(),
        decoder_bytes: decoder.len() as u64,
        embedded: Some(Box::new(manifest.clone())),
    };
    let header = crate::header::Header {
        format: crate::header::FORMAT_NAME.into(),
        format_version: crate::header::FORMAT_VERSION,
        producer: crate::header::Producer::this(),
        source: crate::header::SourceInfo { kind: crate::header::SourceKind::Npy, name: "fuzz".into() },
        groups: Vec::new(),
        datasets: Vec::new(),
        codec: crate::header::CodecInfo { pipeline: Vec::new() },
        models: vec![r.clone()],
        model: None,
        skipped: Vec::new(),
        root_objects: Vec::new(),
    };
    let f = Scratch::new(".baler");
    let Ok(mut w) = crate::container::ArchiveWriter::create(&f.0, &header) else { return };
    if w.write_attachment(0, decoder).is_err() {
        return;
    }
    if w.finish().is_err() {
        return;
    }
    let Ok(reader) = ArchiveReader::open(&f.0) else { return };
    let store = crate::model::store::Store { dirs: vec![f.0.with_extension("no-store")] };
    if let Ok(b) = crate::model::loaded::bundle_for(&reader, 0, &r, &store) {
        let _ = (b.manifest.input_width(), b.manifest.row_shape());
    }
}

/// A ROOT file from untrusted bytes, through the RNTuple reader: the file's keys are listed by
/// oxyroot (whose panics `pack` catches, so they are not this target's business), then every
/// RNTuple anchor is opened and every field read by balerfile's own reader, which must never
/// panic. The readers take paths, so the bytes go through a temporary file.
#[cfg(feature = "root")]
pub fn rntuple_reader(data: &[u8]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let p = std::env::temp_dir().join(format!("balerfile-fuzz-{}-{}.root", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    if std::fs::write(&p, data).is_err() {
        return;
    }
    let anchors = std::panic::catch_unwind(|| -> Option<Vec<(String, Vec<u8>)>> {
        let mut f = oxyroot::RootFile::open(&p).ok()?;
        let keys = f.raw_keys().ok()?;
        Some(keys.iter().filter(|k| k.class == crate::io::rntuple::ANCHOR_CLASS).filter_map(|k| Some((k.name.clone(), f.raw_bytes(k).ok()?))).collect())
    });
    if let Ok(Some(anchors)) = anchors {
        for (name, bytes) in anchors {
            if let Ok(payload) = crate::io::root::anchor_payload(&bytes) {
                if let Ok(nt) = crate::io::rntuple::RNTuple::open(&p, &name, &payload) {
                    let _ = nt.parts(&|_| true);
                }
            }
        }
    }
    let _ = std::fs::remove_file(&p);
}
