//! Element types balerfile codes, and conversions between their little-endian bytes and the
//! wide types the codec computes in (f64 for floats, wrapping i64 for integers).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ByteOrder {
    #[default]
    Le,
    Be,
}

impl DType {
    /// The dtype of a C++ scalar type as ROOT files name it: ROOT's typedefs (TTree leaves),
    /// C names, and the `<cstdint>` names RNTuple normalises to.
    pub fn from_cpp(t: &str) -> Option<DType> {
        Some(match t {
            "bool" | "Bool_t" => DType::Bool,
            "char" | "Char_t" | "int8_t" | "std::int8_t" => DType::I8,
            "unsigned char" | "UChar_t" | "uint8_t" | "std::uint8_t" | "std::byte" => DType::U8,
            "short" | "Short_t" | "int16_t" | "std::int16_t" => DType::I16,
            "unsigned short" | "UShort_t" | "uint16_t" | "std::uint16_t" => DType::U16,
            "int" | "Int_t" | "int32_t" | "std::int32_t" => DType::I32,
            "unsigned int" | "UInt_t" | "uint32_t" | "std::uint32_t" => DType::U32,
            "long" | "Long64_t" | "int64_t" | "std::int64_t" => DType::I64,
            "unsigned long" | "ULong64_t" | "uint64_t" | "std::uint64_t" => DType::U64,
            "float" | "Float_t" => DType::F32,
            "double" | "Double_t" => DType::F64,
            _ => return None,
        })
    }

    pub const ALL: [DType; 11] = [
        DType::Bool,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::F32,
        DType::F64,
    ];

    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::I8 | DType::U8 => 1,
            DType::I16 | DType::U16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    pub fn is_signed(self) -> bool {
        matches!(self, DType::I8 | DType::I16 | DType::I32 | DType::I64)
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I8 => "i8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
            DType::U16 => "u16",
            DType::U32 => "u32",
            DType::U64 => "u64",
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }

    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The integer kind and size as numpy spells them ('f', 4), used by the .npy reader/writer.
    pub fn numpy_kind(self) -> (char, usize) {
        let k = match self {
            DType::Bool => 'b',
            DType::I8 | DType::I16 | DType::I32 | DType::I64 => 'i',
            DType::U8 | DType::U16 | DType::U32 | DType::U64 => 'u',
            DType::F32 | DType::F64 => 'f',
        };
        (k, self.size())
    }

    pub fn from_numpy_kind(kind: char, size: usize) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.numpy_kind() == (kind, size))
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Values of `bytes` (little-endian `dtype`) as f64: floats widened exactly, integers exactly up
/// to 2^53 (the quantiser stores any larger one as an exact outlier).
pub fn values_f64(dtype: DType, bytes: &[u8]) -> Vec<f64> {
    match dtype {
        DType::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        DType::F64 => bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect(),
        DType::U64 => bytes.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().unwrap()) as f64).collect(),
        _ => ints_to_i64(dtype, bytes).into_iter().map(|v| v as f64).collect(),
    }
}

/// Rounds an f64 to `dtype` the way the decoder stores it, and widens it back, so the encoder can
/// check the value the user will see. Integers round to nearest and saturate at the type's range
/// (a value outside it, NaN included, becomes the nearest end; the quantiser's check catches it).
#[inline]
pub fn round_to(dtype: DType, v: f64) -> f64 {
    let (lo, hi) = match dtype {
        DType::F32 => return v as f32 as f64,
        DType::F64 => return v,
        DType::Bool => (0.0, 1.0),
        DType::I8 => (i8::MIN as f64, i8::MAX as f64),
        DType::U8 => (0.0, u8::MAX as f64),
        DType::I16 => (i16::MIN as f64, i16::MAX as f64),
        DType::U16 => (0.0, u16::MAX as f64),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        DType::U32 => (0.0, u32::MAX as f64),
        DType::I64 => (i64::MIN as f64, i64::MAX as f64),
        DType::U64 => (0.0, u64::MAX as f64),
    };
    if v.is_nan() {
        return 0.0;
    }
    v.round().clamp(lo, hi)
}

/// `push_value` for every value, with the type's match taken once (a chunk's decode writes
/// millions).
pub fn push_values(dtype: DType, vs: &[f64], out: &mut Vec<u8>) {
    extend_values(dtype, vs.iter().copied(), out);
}

/// `push_values` for values made as they are written (a block's codes times its step): floats
/// go as fixed-size copies into the grown buffer, one vector loop, not a push an element.
pub fn extend_values(dtype: DType, vs: impl ExactSizeIterator<Item = f64>, out: &mut Vec<u8>) {
    let at = out.len();
    match dtype {
        DType::F32 => {
            out.resize(at + 4 * vs.len(), 0);
            out[at..].chunks_exact_mut(4).zip(vs).for_each(|(b, v)| b.copy_from_slice(&(v as f32).to_le_bytes()));
        }
        DType::F64 => {
            out.resize(at + 8 * vs.len(), 0);
            out[at..].chunks_exact_mut(8).zip(vs).for_each(|(b, v)| b.copy_from_slice(&v.to_le_bytes()));
        }
        _ => {
            out.reserve(vs.len() * dtype.size());
            vs.for_each(|v| push_value(dtype, v, out));
        }
    }
}

/// Appends `v` (already `round_to(dtype, ..)`) as a little-endian `dtype`.
pub fn push_value(dtype: DType, v: f64, out: &mut Vec<u8>) {
    match dtype {
        DType::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
        DType::F64 => out.extend_from_slice(&v.to_le_bytes()),
        DType::U64 => out.extend_from_slice(&(v as u64).to_le_bytes()),
        _ => out.extend_from_slice(&(v as i64).to_le_bytes()[..dtype.size()]),
    }
}

/// Integers (and bools) of `bytes` as i64; unsigned 64-bit values wrap, which the lossless
/// integer path undoes exactly.
pub fn ints_to_i64(dtype: DType, bytes: &[u8]) -> Vec<i64> {
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            bytes.chunks_exact($n).map(|b| <$t>::from_le_bytes(b.try_into().unwrap()) as i64).collect()
        };
    }
    match dtype {
        DType::Bool | DType::U8 => bytes.iter().map(|&b| b as i64).collect(),
        DType::I8 => bytes.iter().map(|&b| b as i8 as i64).collect(),
        DType::I16 => conv!(i16, 2),
        DType::U16 => conv!(u16, 2),
        DType::I32 => conv!(i32, 4),
        DType::U32 => conv!(u32, 4),
        DType::I64 => conv!(i64, 8),
        DType::U64 => conv!(u64, 8),
        DType::F32 | DType::F64 => unreachable!("ints_to_i64 called on {dtype}"),
    }
}

/// The inverse of [`ints_to_i64`]: truncates each value to the dtype's width.
pub fn i64_to_ints(dtype: DType, values: &[i64]) -> Vec<u8> {
    let size = dtype.size();
    let mut out = Vec::with_capacity(values.len() * size);
    for &v in values {
        out.extend_from_slice(&v.to_le_bytes()[..size]);
    }
    out
}

/// Reverses the byte order of every element in place (big-endian sources).
pub fn swap_bytes(size: usize, bytes: &mut [u8]) {
    if size > 1 {
        for e in bytes.chunks_exact_mut(size) {
            e.reverse();
        }
    }
}
