#![no_main]
#![allow(dead_code)]
//! Thin wrapper around balerfile::fuzzing::onnx_loader (manifest, bundle folder, store and
//! embedded-model checks; also run by tests/fuzz_regressions.rs), plus balerfile's own ONNX
//! protobuf reader on the ONNX part. The library builds src/onnx only with its heavy "train"
//! feature, so the reader's three source files are compiled in here, unchanged, by path (the
//! regression test reaches the same code through balerfile::onnx::describe).
//! ONNX Runtime's own session builder never sees these bytes: its crashes are not ours.

#[path = "../../src/onnx/proto.rs"]
mod proto;
#[path = "../../src/onnx/reader.rs"]
mod reader;
#[path = "../../src/onnx/writer.rs"]
mod writer;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    balerfile::fuzzing::onnx_loader(data);
    let (_, onnx) = balerfile::fuzzing::onnx_split(data);
    if let Ok(s) = reader::describe(onnx) {
        let _ = (s.inputs.len(), s.outputs.len(), reader::elem_type_name(s.ir_version as i32));
    }
});
