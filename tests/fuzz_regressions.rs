//! Replays every input a fuzzer once crashed on (tests/fuzz_regressions/<target>/) and every
//! committed seed (fuzz/seeds/<target>/) through the library function that fuzz target wraps
//! (balerfile::fuzzing), asserting that none panics. A failure names the file.
//! Fuzzing itself: scripts/fuzz.sh.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [root.join("tests/fuzz_regressions").join(target), root.join("fuzz/seeds").join(target)] {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no seeds or regression inputs for {target}");
    let mut failed = Vec::new();
    for p in &files {
        let data = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(&data))) {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {what}", p.strip_prefix(root).unwrap_or(p).display()));
        }
    }
    assert!(failed.is_empty(), "{target}: {} of {} inputs panicked:\n{}", failed.len(), files.len(), failed.join("\n"));
    eprintln!("{target}: {} inputs, none panicked", files.len());
}

#[test]
fn archive_reader() {
    replay("archive_reader", balerfile::fuzzing::archive_reader);
}

#[test]
fn chunk_decoder() {
    replay("chunk_decoder", balerfile::fuzzing::chunk_decoder);
}

#[test]
fn filter_decode() {
    replay("filter_decode", balerfile::fuzzing::filter_decode);
}

#[test]
fn onnx_loader() {
    replay("onnx_loader", balerfile::fuzzing::onnx_loader);
}

#[test]
fn int_block() {
    replay("int_block", balerfile::fuzzing::int_block);
}

#[test]
fn rntuple_reader() {
    replay("rntuple_reader", balerfile::fuzzing::rntuple_reader);
}

/// Deterministic mutations: no dependency, the same on every run.
fn xorshift(mut s: u64) -> impl FnMut() -> u64 {
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

/// A short mutation run over the integer-block seeds (cargo-fuzz is not part of CI): 50
/// deterministic byte flips, truncations and count changes per seed, none of which may panic.
#[test]
fn int_block_mutations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/int_block");
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let mut runs = 0;
    for e in std::fs::read_dir(&dir).expect("int_block seeds").flatten() {
        let seed = std::fs::read(e.path()).unwrap();
        for _ in 0..50 {
            let mut d = seed.clone();
            match next() % 3 {
                0 if !d.is_empty() => {
                    let i = (next() as usize) % d.len();
                    d[i] ^= 1 << (next() % 8);
                }
                1 => d.truncate((next() as usize) % (d.len() + 1)),
                _ if d.len() >= 2 => d[..2].copy_from_slice(&((next() % 4096) as u16).to_le_bytes()),
                _ => {}
            }
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| balerfile::fuzzing::int_block(&d))) {
                panic!("{}: mutated input panicked: {:?}", e.path().display(), p.downcast_ref::<String>());
            }
            runs += 1;
        }
    }
    assert!(runs >= 1000, "only {runs} runs");
}

/// Byte flips and truncations of the seeds of `target` whose names start with `prefix`, after
/// their first `start(seed)` bytes (what the mutations must get past), the next `focus` bytes
/// (a configuration, a table) as often as all the rest; `per_seed` runs a seed, none of which
/// may panic. Returns the number of runs.
fn mutate(target: &str, prefix: &str, rng: u64, per_seed: usize, start: fn(&[u8]) -> usize, focus: usize, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target);
    let mut next = xorshift(rng);
    let mut runs = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{target} seeds: {e}")).flatten() {
        if !e.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let seed = std::fs::read(e.path()).unwrap();
        let at = start(&seed);
        for _ in 0..per_seed {
            let mut d = seed.clone();
            if next() % 4 == 0 {
                d.truncate(at + (next() as usize) % (d.len() - at + 1));
            } else {
                let span = if next() % 2 == 0 { focus.min(d.len() - at) } else { d.len() - at };
                let i = at + (next() as usize) % span;
                d[i] ^= 1 << (next() % 8);
            }
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| run(&d))) {
                panic!("{}: mutated input panicked: {:?}", e.path().display(), p.downcast_ref::<String>());
            }
            runs += 1;
        }
    }
    runs
}

/// Mutations of the chunks whose block is an interpolation walk (the walk's configuration and
/// symbols sit in a float block, which int_block does not reach): 400 deterministic byte flips
/// and truncations per seed after the 8 config bytes and the chunk's 28-byte head, the walk's
/// configuration (the block's first ~24 bytes) as often as the rest.
#[test]
fn walk_chunk_mutations() {
    let runs = mutate("chunk_decoder", "walk", 0x2545_f491_4f6c_dd1d, 400, |_| 8 + 28, 24, balerfile::fuzzing::chunk_decoder);
    assert!(runs >= 800, "only {runs} runs: are the walk seeds there (fuzz/make_seeds.py walk)?");
}

/// Mutations of chunks whose blocks leave their exact elements out (flag bit 3) and list
/// them as runs (bit 4): after the 8 config bytes, the chunk header and the block's first bytes.
#[test]
fn omit_chunk_mutations() {
    let runs = mutate("chunk_decoder", "omit", 0x6a09_e667_f3bc_c909, 400, |_| 8 + 28, 24, balerfile::fuzzing::chunk_decoder);
    assert!(runs >= 800, "only {runs} runs: are the omit seeds there (fuzz/make_seeds.py omit)?");
}

/// Mutations of the filtered chunks cut into pieces (chunk format 2): after u8 k, k cd_values
/// words and the chunk's 24-byte header, the piece table (count, rows, lengths) as often as the
/// pieces; filter_decode also retries each with the CRC made to match, so damage reaches the
/// parser.
#[test]
fn pieces_mutations() {
    let runs = mutate("filter_decode", "pieces", 0x9e37_79b9_7f4a_7c15, 300, |s| 1 + 4 * s[0] as usize + 24, 44, balerfile::fuzzing::filter_decode);
    assert!(runs >= 600, "only {runs} runs: are the pieces seeds there (fuzz/make_seeds.py pieces)?");
}

/// A short mutation run over the RNTuple seeds (an uproot-written file and one balerfile wrote):
/// bytes flipped anywhere after the file header, and truncations; the reader may refuse them
/// but never panic.
#[test]
fn rntuple_mutations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/rntuple_reader");
    let mut next = xorshift(0x1234_5678_9abc_def1);
    let mut runs = 0;
    for e in std::fs::read_dir(&dir).expect("rntuple_reader seeds").flatten() {
        let seed = std::fs::read(e.path()).unwrap();
        for _ in 0..300 {
            let mut d = seed.clone();
            if next() % 5 == 0 {
                d.truncate(100 + (next() as usize) % (d.len() - 100));
            } else {
                for _ in 0..1 + next() % 3 {
                    let i = 100 + (next() as usize) % (d.len() - 100);
                    d[i] ^= 1 << (next() % 8);
                }
            }
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| balerfile::fuzzing::rntuple_reader(&d))) {
                panic!("{}: mutated input panicked: {:?}", e.path().display(), p.downcast_ref::<String>());
            }
            runs += 1;
        }
    }
    assert!(runs >= 600, "only {runs} runs: are the seeds there (fuzz/make_seeds.py rntuple)?");
}

/// Mutations of blocks coded with the `rans` stage (which the encoder writes for blocks of 4096
/// codes and more, beyond the int_block target's 4095): blocks of 4095 residual-like codes in
/// the layouts it chooses between (one table or several segments, one context or six), then
/// byte flips and truncations, the tables (the payload's first ~200 bytes) as often as the rest;
/// int_block decodes each, and re-encodes what decodes. None may panic.
#[test]
fn rans_block_mutations() {
    use balerfile::codec::rans::RansConfig;
    use balerfile::codec::stages::{Chain, Rans, Refs, Sign};
    let mut next = xorshift(0x0bad_5eed_1234_5678);
    let n = 4095usize;
    let mut runs = 0;
    for (k, cfg) in [(12u8, 6u8, 0u32), (40, 1, 0), (13, 6, 0), (40, 16, 0), (12, 16, 63), (40, 9, 5)].into_iter().enumerate() {
        let codes: Vec<i64> = (0..n)
            .map(|i| {
                let spread = if i < n / 3 { 40 } else { 3 };
                (0..4).map(|_| (next() % spread) as i64).sum::<i64>() - 2 * (spread as i64 - 1) + if i % 97 == 0 { 1 << 20 } else { 0 }
            })
            .collect();
        let chain = Chain { codes: vec![], to_bytes: Box::new(Rans { cfg: RansConfig { prob_bits: 12, segment_log2: cfg.0, contexts: cfg.1, row: cfg.2 }, sign: Sign::Zigzag }), bytes: vec![] };
        let mut block = (n as u16).to_le_bytes().to_vec();
        chain.encode(&codes, &Refs::NONE, &mut block);
        // The block as written decodes (so the mutations start from a valid stream).
        balerfile::fuzzing::int_block(&block);
        let payload_at = block.len().min(16);
        for _ in 0..400 {
            let mut d = block.clone();
            if next() % 4 == 0 {
                d.truncate(payload_at + (next() as usize) % (d.len() - payload_at + 1));
            } else {
                let span = if next() % 2 == 0 { 200.min(d.len() - payload_at) } else { d.len() - payload_at };
                let i = payload_at + (next() as usize) % span;
                d[i] ^= 1 << (next() % 8);
            }
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| balerfile::fuzzing::int_block(&d))) {
                panic!("layout {k}: mutated rans block panicked: {:?}", p.downcast_ref::<String>());
            }
            runs += 1;
        }
    }
    assert!(runs >= 2400, "only {runs} runs");
}

/// Rewrites the committed `fuzz/seeds/int_block/rans-*` seeds: rans-coded blocks of 3000 codes
/// built with the library's stages in the kinds of layout the encoder writes (segments shorter
/// than its 2^14, so a block of 3000 holds several) (the encoder picks rans only
/// from 4096 codes, beyond the int_block target's count, so fuzz/make_seeds.py cannot cut them
/// from archives). Run by hand: `cargo test --release --test fuzz_regressions -- --ignored`.
#[test]
#[ignore]
fn rans_seeds() {
    use balerfile::codec::rans::RansConfig;
    use balerfile::codec::stages::{Chain, Rans, Refs, Sign};
    let n = 3000usize;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/int_block");
    let layouts = [("rans-0", 12u8, 6u8, 0u32), ("rans-1", 40, 1, 0), ("rans-2", 13, 6, 0), ("rans-grid-0", 12, 16, 50), ("rans-grid-1", 40, 9, 7), ("rans-grid-2", 13, 4, 1)];
    for (name, segment_log2, contexts, row) in layouts {
        let codes: Vec<i64> = (0..n as i64).map(|i| ((i * 7919) % 23) - 11 + if i % 97 == 0 { 5000 } else { 0 }).collect();
        let chain = Chain { codes: vec![], to_bytes: Box::new(Rans { cfg: RansConfig { prob_bits: 12, segment_log2, contexts, row }, sign: Sign::Zigzag }), bytes: vec![] };
        let mut block = (n as u16).to_le_bytes().to_vec();
        chain.encode(&codes, &Refs::NONE, &mut block);
        std::fs::write(dir.join(name), block).unwrap();
    }
}
