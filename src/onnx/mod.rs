//! Minimal ONNX support: write `encoder.onnx` / `decoder.onnx` for our
//! models and read back any ONNX file's inputs and outputs.
//!
//! The protobuf messages are hand-written prost structs (`proto`), so no
//! protoc or build script is needed.

pub mod bcae2d;
pub mod conv;
pub mod half;
pub mod proto;
pub mod reader;
pub mod writer;

pub use reader::{describe, elem_type_name, ModelSummary, OnnxError, TensorSummary};
pub use writer::{dense_mlp, Attr, DenseLayer, Dim, GraphBuilder, IR_VERSION, OPSET_VERSION};

#[cfg(test)]
mod tests {
    use super::proto::{self, ModelProto};
    use super::*;
    use prost::Message;

    fn sym(s: &str) -> Dim {
        Dim::Symbolic(s.to_owned())
    }

    #[test]
    fn built_model_describes_back() {
        let mut g = GraphBuilder::new("g");
        g.input_f32("x", &[sym("batch"), Dim::Fixed(4), Dim::Unknown]);
        g.output_f32("y", &[sym("batch"), Dim::Fixed(4), Dim::Unknown]);
        g.node("Relu", &["x"], &["y"], vec![]);
        let bytes = g.finish("test", "0.1", &[("k", "v")]);

        let s = describe(&bytes).expect("own model must decode");
        assert_eq!(s.ir_version, 8);
        assert_eq!(s.producer_name, "test");
        assert_eq!(s.opsets, vec![(String::new(), 17)]);
        assert_eq!(s.metadata, vec![("k".to_owned(), "v".to_owned())]);
        for (t, name) in [(&s.inputs, "x"), (&s.outputs, "y")] {
            assert_eq!(t.len(), 1);
            assert_eq!(t[0].name, name);
            assert_eq!(t[0].elem_type, 1);
            assert_eq!(t[0].elem_type_name, "float32");
            assert!(t[0].rank_known);
            assert_eq!(t[0].dims, vec![sym("batch"), Dim::Fixed(4), Dim::Unknown]);
        }
    }

    fn layers() -> Vec<DenseLayer> {
        vec![
            DenseLayer {
                weight: (0..10).map(|i| i as f32 * 0.1).collect(),
                bias: vec![0.5, -0.5],
                n_in: 5,
                n_out: 2,
                leaky_relu: Some(0.01),
            },
            DenseLayer {
                weight: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                bias: vec![0.0; 3],
                n_in: 2,
                n_out: 3,
                leaky_relu: None,
            },
        ]
    }

    #[test]
    fn dense_mlp_structure() {
        let bytes = dense_mlp("encoder", "x", "z", &layers(), "0.0.0");
        let s = describe(&bytes).expect("decode");
        assert_eq!(s.inputs.len(), 1);
        assert_eq!(s.inputs[0].dims, vec![sym("batch"), Dim::Fixed(5)]);
        assert_eq!(s.outputs[0].name, "z");
        assert_eq!(s.outputs[0].dims, vec![sym("batch"), Dim::Fixed(3)]);

        let m = ModelProto::decode(bytes.as_slice()).expect("decode");
        let g = m.graph.expect("graph");
        let ops: Vec<_> = g.node.iter().filter_map(|n| n.op_type.as_deref()).collect();
        assert_eq!(ops, ["Gemm", "LeakyRelu", "Gemm"]);
        let names: Vec<_> = g.node.iter().filter_map(|n| n.name.as_deref()).collect();
        assert_eq!(names, ["Gemm_0", "LeakyRelu_1", "Gemm_2"]);
        assert_eq!(g.node[2].output, ["z"]);
        // transB=0 must be present on the wire even though it is the default.
        let trans_b = g.node[0]
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some("transB"));
        assert_eq!(trans_b.and_then(|a| a.i), Some(0));
        assert_eq!(g.node[1].attribute[0].f, Some(0.01));
        let w = &g.initializer[0];
        assert_eq!(w.dims, [5, 2]);
        let raw = w.raw_data.as_deref().expect("raw_data");
        assert_eq!(&raw[4..8], &0.1f32.to_le_bytes());
    }

    #[test]
    fn garbage_is_an_error() {
        let err = describe(b"definitely not protobuf \xff\xff\xff").expect_err("garbage");
        assert!(matches!(err, OnnxError::Decode(_)), "{err}");
        assert!(err
            .to_string()
            .starts_with("not an ONNX model: protobuf decode failed"));
    }

    #[test]
    fn empty_is_an_error() {
        let err = describe(&[]).expect_err("empty");
        assert!(matches!(err, OnnxError::NoGraph));
        assert_eq!(err.to_string(), "ONNX model has no graph");
    }

    #[test]
    fn truncated_model_is_an_error() {
        let bytes = dense_mlp("e", "x", "z", &layers(), "0");
        assert!(describe(&bytes[..bytes.len() / 2]).is_err());
    }

    #[test]
    fn unknown_fields_are_skipped_and_initializer_inputs_dropped() {
        let mut g = GraphBuilder::new("g");
        g.input_f32("x", &[sym("n"), Dim::Fixed(2)]);
        // Old exporters list weights as graph inputs too.
        g.input_f32("w", &[Dim::Fixed(2), Dim::Fixed(2)]);
        g.initializer_f32("w", &[2, 2], &[1.0, 0.0, 0.0, 1.0]);
        g.output_f32("y", &[sym("n"), Dim::Fixed(2)]);
        g.node("MatMul", &["x", "w"], &["y"], vec![]);
        let mut bytes = g.finish("t", "0", &[]);
        // Append fields this module does not model: training_info (20,
        // length-delimited) and functions (25), as newer files carry.
        bytes.extend_from_slice(&[0xa2, 0x01, 0x02, 0x08, 0x01]); // tag 20, wire type 2, len 2
        bytes.extend_from_slice(&[0xca, 0x01, 0x00]); // tag 25, wire type 2, len 0
        let s = describe(&bytes).expect("unknown fields must be skipped");
        let names: Vec<_> = s.inputs.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["x"]);
    }

    #[test]
    fn non_tensor_input_is_reported_not_fatal() {
        let mut m = ModelProto::decode(dense_mlp("e", "x", "z", &layers(), "0").as_slice())
            .expect("decode");
        if let Some(g) = m.graph.as_mut() {
            g.input[0].r#type = Some(proto::TypeProto { value: None });
        }
        let s = describe(&m.encode_to_vec()).expect("decode");
        assert_eq!(s.inputs[0].elem_type_name, "non-tensor");
        assert!(!s.inputs[0].rank_known);
    }

    #[test]
    fn missing_shape_is_unknown_rank_not_scalar() {
        let mut m = ModelProto::decode(dense_mlp("e", "x", "z", &layers(), "0").as_slice())
            .expect("decode");
        if let Some(proto::type_proto::Value::TensorType(t)) = m
            .graph
            .as_mut()
            .and_then(|g| g.output[0].r#type.as_mut())
            .and_then(|t| t.value.as_mut())
        {
            t.shape = None;
            t.elem_type = Some(99); // newer than this module knows
        }
        let s = describe(&m.encode_to_vec()).expect("decode");
        let out = &s.outputs[0];
        assert!(!out.rank_known && out.dims.is_empty());
        assert_eq!(
            (out.elem_type, out.elem_type_name.as_str()),
            (99, "unknown(99)")
        );
    }
}
