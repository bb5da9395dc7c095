//! The container and codec through the public library API: round trips of every dtype with
//! bounds checked on every element, and damage detection for every byte of an archive.

use std::path::{Path, PathBuf};

use balerfile::bound::ErrorSpec;
use balerfile::container::ArchiveReader;
use balerfile::dtype::DType;
use balerfile::pack::{pack, PackOptions};
use balerfile::progress::Silent;
use balerfile::unpack::{codec_of, decode_chunk, unpack, var_codings, UnpackOptions};

const FIELDS: [(&str, &str); 12] = [
    ("b", "|b1"),
    ("i1", "|i1"),
    ("i2", "<i2"),
    ("i4", ">i4"),
    ("i8", "<i8"),
    ("u1", "|u1"),
    ("u2", ">u2"),
    ("u4", "<u4"),
    ("u8", "<u8"),
    ("f4", "<f4"),
    ("f8", ">f8"),
    ("g4", ">f4"),
];

fn field_size(descr: &str) -> usize {
    descr[2..].parse().unwrap()
}

/// Deterministic pseudo-random bits (xorshift64*), so the test needs no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
}

/// A structured .npy table with every dtype, some big-endian, extreme integers and floats of
/// wide dynamic range (plus NaN and infinities, which must come back exactly).
fn write_table(path: &Path, rows: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(42);
    let mut cols: Vec<Vec<u8>> = Vec::new();
    for (name, descr) in FIELDS {
        let size = field_size(descr);
        let mut col = Vec::with_capacity(rows * size);
        for r in 0..rows {
            let bits = rng.next();
            let le: Vec<u8> = match name {
                "b" => vec![(bits & 1) as u8],
                "f4" => ((r as f32 * 0.01).sin() * 1e3 + (bits % 100) as f32 * 1e-3).to_le_bytes().to_vec(),
                "f8" | "g4" => {
                    let v = match r % 97 {
                        0 => f64::NAN,
                        1 => f64::INFINITY,
                        2 => f64::NEG_INFINITY,
                        _ => ((bits >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 10f64.powi((r % 7) as i32),
                    };
                    if name == "g4" { (v as f32).to_le_bytes().to_vec() } else { v.to_le_bytes().to_vec() }
                }
                _ if r % 50 == 0 => vec![0xff; size],
                _ if r % 50 == 1 => { let mut v = vec![0u8; size]; v[size - 1] = 0x80; v }
                _ => bits.to_le_bytes()[..size].to_vec(),
            };
            col.extend_from_slice(&le);
        }
        cols.push(col);
    }
    let descr: Vec<String> = FIELDS.iter().map(|(n, d)| format!("('{n}', '{d}')")).collect();
    let mut dict = format!("{{'descr': [{}], 'fortran_order': False, 'shape': ({rows},), }}", descr.join(", "));
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    for r in 0..rows {
        for ((_, descr), col) in FIELDS.iter().zip(&cols) {
            let size = field_size(descr);
            let mut v = col[r * size..(r + 1) * size].to_vec();
            if descr.starts_with('>') {
                v.reverse();
            }
            bytes.extend_from_slice(&v);
        }
    }
    std::fs::write(path, bytes).unwrap();
    cols
}

fn read_back(path: &Path, rows: usize) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let data = &bytes[10 + hlen..];
    let item: usize = FIELDS.iter().map(|(_, d)| field_size(d)).sum();
    assert_eq!(data.len(), rows * item);
    let mut cols = vec![Vec::new(); FIELDS.len()];
    for rec in data.chunks_exact(item) {
        let mut off = 0;
        for ((_, descr), col) in FIELDS.iter().zip(cols.iter_mut()) {
            let size = field_size(descr);
            let mut v = rec[off..off + size].to_vec();
            if descr.starts_with('>') {
                v.reverse();
            }
            col.extend_from_slice(&v);
            off += size;
        }
    }
    cols
}

fn float(descr: &str, b: &[u8]) -> f64 {
    if field_size(descr) == 4 {
        f32::from_le_bytes(b.try_into().unwrap()) as f64
    } else {
        f64::from_le_bytes(b.try_into().unwrap())
    }
}

fn pack_table(dir: &Path, rows: usize, specs: &[&str], chunk_bytes: u64) -> (PathBuf, Vec<Vec<u8>>) {
    let npy = dir.join("table.npy");
    let cols = write_table(&npy, rows);
    let archive = dir.join("table.baler");
    let opts = PackOptions {
        errors: specs.iter().map(|s| s.parse::<ErrorSpec>().unwrap()).collect(),
        chunk_bytes,
        threads: 2,
        ..Default::default()
    };
    let mut src = balerfile::io::open_source(&npy, &[]).unwrap();
    pack(src.as_mut(), &archive, &opts, &[], &[], &Silent).unwrap();
    (archive, cols)
}

#[test]
fn every_dtype_round_trips_within_bound() {
    let dir = tempfile::tempdir().unwrap();
    let rows = 5000;
    for specs in [vec![], vec!["rel=1e-3"], vec!["abs=0.25", "table.f4:rel=1e-5"], vec!["lossless"]] {
        let (archive, cols) = pack_table(dir.path(), rows, &specs, 16 << 10);
        let header = ArchiveReader::open(&archive).unwrap().header().clone();
        let out = dir.path().join("out.npy");
        unpack(&archive, &out, &UnpackOptions { threads: 2, ..Default::default() }, &Silent).unwrap();
        let back = read_back(&out, rows);
        for (((name, descr), (orig, got)), var) in FIELDS.iter().zip(cols.iter().zip(&back)).zip(&header.datasets[0].variables) {
            match var.error.tolerance() {
                Some(tol) => {
                    assert!(var.dtype.is_float(), "{name}: only floats may be lossy");
                    let size = field_size(descr);
                    for (a, b) in orig.chunks_exact(size).zip(got.chunks_exact(size)) {
                        let (x, y) = (float(descr, a), float(descr, b));
                        assert!(
                            (x - y).abs() <= tol || a == b,
                            "{specs:?} {name}: |{x} - {y}| > {tol}"
                        );
                        if !x.is_finite() {
                            assert_eq!(a, b, "{name}: non-finite values come back exactly");
                        }
                    }
                }
                None => assert_eq!(orig, got, "{specs:?} {name} must be byte-exact"),
            }
        }
        assert_eq!(header.datasets[0].variables[2].dtype, DType::I16);
        std::fs::remove_file(&out).unwrap();
    }
}

/// Opens and fully decodes an archive; any damage must surface as an error.
fn decode_all(path: &Path) -> balerfile::Result<()> {
    let reader = ArchiveReader::open(path)?;
    let codec = codec_of(&reader)?;
    let codings = var_codings(&reader);
    let plans: Vec<_> = reader.header().datasets.iter().map(|_| None).collect();
    for i in 0..reader.index().len() {
        decode_chunk(&reader, &codec, &codings, &plans, i)?;
    }
    Ok(())
}

#[test]
fn every_flipped_byte_and_every_truncation_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = pack_table(dir.path(), 120, &["rel=1e-3"], 1 << 10);
    let good = std::fs::read(&archive).unwrap();
    assert!(ArchiveReader::open(&archive).unwrap().index().len() >= 3, "want several chunks");
    decode_all(&archive).unwrap();
    let bad = dir.path().join("bad.baler");
    for i in 0..good.len() {
        for mask in [0x01u8, 0x80] {
            let mut b = good.clone();
            b[i] ^= mask;
            std::fs::write(&bad, &b).unwrap();
            let r = std::panic::catch_unwind(|| decode_all(&bad));
            match r {
                Ok(Err(_)) => {}
                Ok(Ok(())) => panic!("flipping byte {i} (mask {mask:#x}) of {} went unnoticed", good.len()),
                Err(_) => panic!("flipping byte {i} panicked"),
            }
        }
    }
    for len in 0..good.len() {
        std::fs::write(&bad, &good[..len]).unwrap();
        let r = std::panic::catch_unwind(|| decode_all(&bad));
        assert!(matches!(r, Ok(Err(_))), "truncation to {len} bytes was not an error");
    }
    // Damage is reported as such, naming the file.
    let mut b = good.clone();
    let mid = good.len() / 2;
    b[mid] ^= 0x10;
    std::fs::write(&bad, &b).unwrap();
    let msg = decode_all(&bad).unwrap_err().to_string();
    assert!(msg.contains("bad.baler") && msg.contains("corrupt"), "{msg}");
}

#[test]
fn failed_unpack_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = pack_table(dir.path(), 200, &["rel=1e-2"], 1 << 10);
    let mut b = std::fs::read(&archive).unwrap();
    let n = b.len();
    b[n / 2] ^= 0xff;
    std::fs::write(&archive, &b).unwrap();
    let out = dir.path().join("out.npy");
    assert!(unpack(&archive, &out, &UnpackOptions::default(), &Silent).is_err());
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!out.exists(), "no partial output");
    assert_eq!(left.len(), 2, "only the input and archive remain, no temporary files: {left:?}");
}
