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
