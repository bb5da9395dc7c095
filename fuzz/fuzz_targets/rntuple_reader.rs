#![no_main]
//! Thin wrapper: the work is balerfile::fuzzing::rntuple_reader (also run by tests/fuzz_regressions.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    balerfile::fuzzing::rntuple_reader(data);
});
