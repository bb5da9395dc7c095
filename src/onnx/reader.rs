//! Reads just enough of an ONNX file to say what it consumes and produces.

use std::collections::HashSet;

use prost::Message;

use super::proto::{
    tensor_proto::DataType, tensor_shape_proto::dimension, type_proto, ModelProto, ValueInfoProto,
};
use super::writer::Dim;

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("not an ONNX model: protobuf decode failed: {0}")]
    Decode(#[from] prost::DecodeError),
    /// Any byte string that happens to be valid protobuf (including an empty
    /// one) decodes as a ModelProto, so a missing graph is how a non-model
    /// usually shows up.
    #[error("ONNX model has no graph")]
    NoGraph,
}

/// One graph input or output.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSummary {
    pub name: String,
    /// Raw `TensorProto.DataType` value; 0 when not a tensor or untyped.
    pub elem_type: i32,
    /// e.g. "float32"; "non-tensor" for sequence/map/optional values,
    /// "unknown(N)" for a data type newer than this module.
    pub elem_type_name: String,
    /// Empty both for scalars and for unknown rank; see `rank_known`.
    pub dims: Vec<Dim>,
    pub rank_known: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelSummary {
    pub ir_version: i64,
    pub producer_name: String,
    pub producer_version: String,
    /// (domain, version); domain "" is the default `ai.onnx` operator set.
    pub opsets: Vec<(String, i64)>,
    pub inputs: Vec<TensorSummary>,
    pub outputs: Vec<TensorSummary>,
    pub metadata: Vec<(String, String)>,
}

pub fn describe(bytes: &[u8]) -> Result<ModelSummary, OnnxError> {
    let model = ModelProto::decode(bytes)?;
    let graph = model.graph.ok_or(OnnxError::NoGraph)?;
    // Before IR 4 every initializer also had to be declared as a graph input,
    // and old exporters still do it; those are weights, not real inputs.
    let initializers: HashSet<&str> = graph
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    let inputs = graph
        .input
        .iter()
        .filter(|v| !initializers.contains(v.name.as_deref().unwrap_or("")))
        .map(summarize)
        .collect();
    Ok(ModelSummary {
        ir_version: model.ir_version.unwrap_or(0),
        producer_name: model.producer_name.unwrap_or_default(),
        producer_version: model.producer_version.unwrap_or_default(),
        opsets: model
            .opset_import
            .into_iter()
            .map(|o| (o.domain.unwrap_or_default(), o.version.unwrap_or(0)))
            .collect(),
        inputs,
        outputs: graph.output.iter().map(summarize).collect(),
        metadata: model
            .metadata_props
            .into_iter()
            .map(|e| (e.key.unwrap_or_default(), e.value.unwrap_or_default()))
            .collect(),
    })
}

/// Readable name for a `TensorProto.DataType` value.
pub fn elem_type_name(elem_type: i32) -> String {
    match DataType::try_from(elem_type) {
        Ok(dt) => dt.short_name().to_owned(),
        Err(_) => format!("unknown({elem_type})"),
    }
}

fn summarize(v: &ValueInfoProto) -> TensorSummary {
    let name = v.name.clone().unwrap_or_default();
    // `value` is None both for a missing type and for sequence/map/optional
    // types, whose oneof arms are not modelled and so are skipped on decode.
    // The exhaustive match makes adding an arm a compile error here.
    let tensor = v
        .r#type
        .as_ref()
        .and_then(|t| t.value.as_ref())
        .map(|value| match value {
            type_proto::Value::TensorType(tt) => tt,
        });
    let Some(tensor) = tensor else {
        return TensorSummary {
            name,
            elem_type: 0,
            elem_type_name: "non-tensor".to_owned(),
            dims: Vec::new(),
            rank_known: false,
        };
    };
    let elem_type = tensor.elem_type.unwrap_or(0);
    let dims = tensor.shape.as_ref().map(|s| {
        s.dim
            .iter()
            .map(|d| match &d.value {
                Some(dimension::Value::DimValue(n)) => Dim::Fixed(*n),
                Some(dimension::Value::DimParam(p)) => Dim::Symbolic(p.clone()),
                None => Dim::Unknown,
            })
            .collect()
    });
    TensorSummary {
        name,
        elem_type,
        elem_type_name: elem_type_name(elem_type),
        rank_known: dims.is_some(),
        dims: dims.unwrap_or_default(),
    }
}
