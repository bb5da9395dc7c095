//! Builder that emits ONNX `ModelProto` bytes for simple feed-forward graphs.

use prost::Message;

use super::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// IR 8 / opset 17 (onnxruntime >= 1.13, late 2022) rather than the newest:
/// older runtimes refuse files that claim a newer IR or opset, and every op
/// we emit (Gemm, LeakyRelu, ...) already exists at opset 17.
pub const IR_VERSION: i64 = 8;
pub const OPSET_VERSION: i64 = 17;

/// One tensor dimension, as written to (or read from) a `TensorShapeProto`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    Fixed(i64),
    /// Named free dimension such as "batch": runtimes accept any size.
    Symbolic(String),
    /// Neither value nor name: legal ONNX, produced by some exporters.
    Unknown,
}

/// Node attribute. The name is the ONNX attribute name (e.g. "alpha").
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Float(String, f32),
    Int(String, i64),
    Ints(String, Vec<i64>),
    Str(String, String),
}

impl Attr {
    fn into_proto(self) -> AttributeProto {
        // `type` must be set: since IR 2 runtimes dispatch on it rather than on
        // which value field happens to be present.
        let mut a = AttributeProto::default();
        match self {
            Attr::Float(name, v) => {
                a.name = Some(name);
                a.r#type = Some(AttributeType::Float as i32);
                a.f = Some(v);
            }
            Attr::Int(name, v) => {
                a.name = Some(name);
                a.r#type = Some(AttributeType::Int as i32);
                a.i = Some(v);
            }
            Attr::Ints(name, v) => {
                a.name = Some(name);
                a.r#type = Some(AttributeType::Ints as i32);
                a.ints = v;
            }
            Attr::Str(name, v) => {
                a.name = Some(name);
                a.r#type = Some(AttributeType::String as i32);
                a.s = Some(v.into_bytes());
            }
        }
        a
    }
}

fn tensor_value_info(name: &str, elem_type: DataType, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: match d {
                Dim::Fixed(n) => Some(tensor_shape_proto::dimension::Value::DimValue(*n)),
                Dim::Symbolic(s) => Some(tensor_shape_proto::dimension::Value::DimParam(s.clone())),
                Dim::Unknown => None,
            },
            denotation: None,
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_owned()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem_type as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        doc_string: None,
    }
}

/// Accumulates one graph; `finish` wraps it in a `ModelProto`.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    graph: GraphProto,
    /// Per-builder counter so generated node names never collide.
    next_node: usize,
}

impl GraphBuilder {
    pub fn new(name: &str) -> Self {
        GraphBuilder {
            graph: GraphProto {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            next_node: 0,
        }
    }

    pub fn input_f32(&mut self, name: &str, dims: &[Dim]) {
        self.graph
            .input
            .push(tensor_value_info(name, DataType::Float, dims));
    }

    pub fn output_f32(&mut self, name: &str, dims: &[Dim]) {
        self.graph
            .output
            .push(tensor_value_info(name, DataType::Float, dims));
    }

    /// Stores `data` as little-endian `raw_data`: one memcpy for readers, and
    /// smaller than `float_data` would be once framing is counted.
    /// Initializers are not listed as graph inputs (allowed since IR 4), so
    /// runtimes may constant-fold them.
    ///
    /// # Panics
    /// If `data.len()` is not the product of `dims` (a caller bug).
    pub fn initializer_f32(&mut self, name: &str, dims: &[i64], data: &[f32]) {
        let expected: i64 = dims.iter().product();
        assert_eq!(
            usize::try_from(expected).ok(),
            Some(data.len()),
            "initializer {name}: {} values for dims {dims:?}",
            data.len()
        );
        let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.graph.initializer.push(TensorProto {
            dims: dims.to_vec(),
            data_type: Some(DataType::Float as i32),
            name: Some(name.to_owned()),
            raw_data: Some(raw),
            ..Default::default()
        });
    }

    /// Appends a default-domain node; nodes must be added in topological order.
    pub fn node(&mut self, op_type: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<Attr>) {
        let name = format!("{op_type}_{}", self.next_node);
        self.next_node += 1;
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: outputs.iter().map(|s| (*s).to_owned()).collect(),
            name: Some(name),
            op_type: Some(op_type.to_owned()),
            domain: None,
            attribute: attrs.into_iter().map(Attr::into_proto).collect(),
            doc_string: None,
        });
    }

    /// Serialises the model: IR 8, default-domain opset 17.
    pub fn finish(
        self,
        producer: &str,
        producer_version: &str,
        metadata: &[(&str, &str)],
    ) -> Vec<u8> {
        let model = ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(OPSET_VERSION),
            }],
            producer_name: Some(producer.to_owned()),
            producer_version: Some(producer_version.to_owned()),
            graph: Some(self.graph),
            metadata_props: metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: Some((*k).to_owned()),
                    value: Some((*v).to_owned()),
                })
                .collect(),
            ..Default::default()
        };
        model.encode_to_vec()
    }
}

/// One fully connected layer in burn's `Linear` layout: `y = x W + b`.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseLayer {
    /// Shape (n_in, n_out), row-major.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub n_in: usize,
    pub n_out: usize,
    /// LeakyReLU slope after the affine map; `None` means linear output.
    pub leaky_relu: Option<f32>,
}

/// Emits a `Gemm` (+ optional `LeakyRelu`) chain with float32 input/output of
/// shape `[batch, n]`, `batch` symbolic so any batch size runs.
///
/// # Panics
/// On an empty layer list, on weight/bias lengths that do not match
/// `n_in`/`n_out`, or when one layer's `n_in` differs from the previous
/// layer's `n_out` — all caller bugs, not data errors.
pub fn dense_mlp(
    graph_name: &str,
    input: &str,
    output: &str,
    layers: &[DenseLayer],
    producer_version: &str,
) -> Vec<u8> {
    let (Some(first), Some(last)) = (layers.first(), layers.last()) else {
        panic!("dense_mlp: no layers");
    };
    let mut g = GraphBuilder::new(graph_name);
    let batch = || Dim::Symbolic("batch".to_owned());
    g.input_f32(input, &[batch(), Dim::Fixed(first.n_in as i64)]);
    g.output_f32(output, &[batch(), Dim::Fixed(last.n_out as i64)]);

    let mut current = input.to_owned();
    for (i, layer) in layers.iter().enumerate() {
        if i > 0 {
            assert_eq!(
                layer.n_in,
                layers[i - 1].n_out,
                "dense_mlp: layer {i} input width does not match previous output"
            );
        }
        assert_eq!(
            layer.bias.len(),
            layer.n_out,
            "dense_mlp: layer {i} bias length"
        );
        let (w, b) = (format!("layer{i}.weight"), format!("layer{i}.bias"));
        g.initializer_f32(&w, &[layer.n_in as i64, layer.n_out as i64], &layer.weight);
        g.initializer_f32(&b, &[layer.n_out as i64], &layer.bias);

        let is_last = i + 1 == layers.len();
        // The final op must write the graph output name directly: ONNX has
        // no aliasing, so an extra Identity would be the only alternative.
        let gemm_out = if is_last && layer.leaky_relu.is_none() {
            output.to_owned()
        } else {
            format!("layer{i}.linear")
        };
        // transB=0 because burn stores W as (in, out), exactly Gemm's B layout;
        // spelled out so readers need not know Gemm's defaults.
        g.node(
            "Gemm",
            &[&current, &w, &b],
            &[&gemm_out],
            vec![Attr::Int("transA".into(), 0), Attr::Int("transB".into(), 0)],
        );
        current = gemm_out;
        if let Some(alpha) = layer.leaky_relu {
            let act_out = if is_last {
                output.to_owned()
            } else {
                format!("layer{i}.act")
            };
            g.node(
                "LeakyRelu",
                &[&current],
                &[&act_out],
                vec![Attr::Float("alpha".into(), alpha)],
            );
            current = act_out;
        }
    }
    g.finish("balerfile", producer_version, &[])
}
