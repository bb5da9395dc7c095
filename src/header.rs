//! The self-describing JSON header of a `.baler` file (schemas/baler-header.schema.json).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bound::ErrorBound;
use crate::dtype::{ByteOrder, DType};

pub const FORMAT_NAME: &str = "baler";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: String,
    pub format_version: u32,
    pub producer: Producer,
    pub source: SourceInfo,
    pub groups: Vec<GroupInfo>,
    pub datasets: Vec<DatasetInfo>,
    pub codec: CodecInfo,
    /// The models the datasets were coded with (each dataset's `model` points here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<crate::model::ModelRef>,
    /// Archives written before the model stage carry `"model": null`; nothing else is valid.
    #[serde(default, skip_serializing)]
    pub model: Option<()>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// The objects of a ROOT source besides its packed trees (histograms, parameters,
    /// directories, the streamer infos), carried through unchanged as attachments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub root_objects: Vec<RootObject>,
}

/// One object of a ROOT source carried through as its key's bytes (header and object,
/// compressed as the source had it) in an attachment of the archive.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RootObject {
    pub kind: RootObjectKind,
    /// Names of the directories holding it, outermost first (empty: the file's top).
    pub dir: Vec<String>,
    pub name: String,
    pub class: String,
    pub title: String,
    pub cycle: i16,
    /// Length of its attachment; 0 for a directory, which has none (it is made anew).
    pub bytes: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RootObjectKind {
    /// A key of a directory (a histogram, a parameter, ...).
    Key,
    /// A directory: made again, holding the objects that name it in `dir`.
    Directory,
    /// The source's streamer info record, which describes the classes of the objects.
    Streamers,
}

impl RootObject {
    /// "/dir/name", as warnings and `inspect` show it.
    pub fn path(&self) -> String {
        self.dir.iter().chain([&self.name]).fold(String::new(), |p, n| p + "/" + n)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Producer {
    pub name: String,
    pub version: String,
}

impl Producer {
    pub fn this() -> Self {
        Producer { name: "balerfile".into(), version: env!("CARGO_PKG_VERSION").into() }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Hdf5,
    /// netCDF-3: classic, 64-bit offset or CDF-5.
    Netcdf3,
    Npy,
    Npz,
    Root,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceInfo {
    pub kind: SourceKind,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupInfo {
    pub path: String,
    pub attributes: Attributes,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// A plain N-D array: one variable.
    Array,
    /// A table: one variable per field, sharing rows.
    Compound,
    /// A 2-D array (rows x columns) read as a table: one variable per column, all of the same
    /// dtype; files hold it as the plain array of `shape` (see io::table).
    Columns,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatasetInfo {
    pub path: String,
    pub kind: DatasetKind,
    pub shape: Vec<u64>,
    pub chunk_rows: u64,
    pub attributes: Attributes,
    pub variables: Vec<VariableInfo>,
    /// The model stage of this dataset's chunks, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<DatasetModel>,
    /// Set on a per-object table (one row per jet, say) cut from jagged ROOT branches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jagged: Option<Jagged>,
    /// How far each axis may grow, where the source let one grow past `shape` (an HDF5
    /// `maxshape`, a netCDF unlimited dimension): `null` for unlimited. Absent: fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxshape: Option<Vec<Option<u64>>>,
    /// The HDF5 chunk shape the source stored the dataset in, which unpack writes it in again.
    /// Absent: contiguous (or a source with no such thing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<Vec<u64>>,
    /// The HDF5 filters the source applied to those chunks, in order. Unpack applies the
    /// lossless ones every HDF5 has (deflate, shuffle, fletcher32) again and names the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<SourceFilter>,
    /// The fill value the source set on the dataset (HDF5's fill value property; a netCDF-3
    /// variable's `_FillValue` or netCDF's default), which HDF5 gives where nothing was written
    /// and outputs set again. A number, or "nan", "inf", "-inf".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_value: Option<serde_json::Value>,
    /// Set on a dataset of characters (netCDF's char variables: a grid mapping such as
    /// `rotated_pole`, station names, HDF5 strings of one byte): coded as its bytes (one `u8`
    /// variable), written back as such strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chars: Option<Chars>,
}

/// The group holding the object at `path` ("" for the root).
pub(crate) fn parent_group(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(g, _)| g)
}

/// How a dataset of characters stores them: one byte each, as HDF5's string type of size 1.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Chars {
    pub encoding: StringEncoding,
    pub pad: StringPad,
}

/// HDF5's string padding (H5T_str_t).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StringPad {
    Nullterm,
    Nullpad,
    Spacepad,
}

/// An HDF5 filter of a source dataset: its id and parameters (`cd_values`), as
/// `H5Pget_filter2` gives them, and the name HDF5 has for it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceFilter {
    pub id: i32,
    pub name: String,
    pub cd_values: Vec<u32>,
}

impl SourceFilter {
    pub const DEFLATE: i32 = 1;
    pub const SHUFFLE: i32 = 2;
    pub const FLETCHER32: i32 = 3;

    /// Lossless and built into every HDF5: written again as the source had it.
    pub fn is_reapplied(&self) -> bool {
        matches!(self.id, Self::DEFLATE | Self::SHUFFLE | Self::FLETCHER32)
    }
}

/// Where a per-object table's rows come from: entry `i` of the event table owns the next
/// `counts[i]` rows.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Jagged {
    /// The event table (one row per entry).
    pub events: String,
    /// The variable of the event table holding each entry's object count.
    pub counts: String,
    /// How the source stored it: a C array with its counter branch (`counts` is that branch),
    /// or a `std::vector` (`counts` was added by balerfile and is not a branch of the tree).
    pub container: Container,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    Carray,
    Vector,
}

/// How a dataset's chunks use a model: which one, what it sees, how the latent is stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatasetModel {
    /// Index into the header's `models`.
    pub model: u32,
    /// The model's inputs in order, each `[variable index, element within a row]`.
    pub features: Vec<[u64; 2]>,
    /// "f16", or the bit count of uniform codes ("8").
    pub latent: String,
}

impl DatasetInfo {
    /// Rows along axis 0 (a scalar dataset is one row).
    pub fn rows(&self) -> u64 {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Elements of one variable in one row.
    pub fn row_elems(&self) -> u64 {
        if self.kind == DatasetKind::Columns {
            return 1;
        }
        self.shape.iter().skip(1).product()
    }

    /// Bytes of one row over all variables, as the codec sees them.
    pub fn row_bytes(&self) -> u64 {
        self.row_elems() * self.variables.iter().map(|v| v.dtype.size() as u64).sum::<u64>()
    }

    /// The name a user gives on the command line: the path without its leading '/'.
    pub fn name(&self) -> &str {
        self.path.trim_start_matches('/')
    }

    /// An HDF5 dimension scale (a netCDF coordinate such as time or latitude): global error
    /// specs leave it lossless, because a lossy grid misplaces every value on it.
    pub fn is_dimension_scale(&self) -> bool {
        self.attributes.get("CLASS").is_some_and(|a| a.value.as_str() == Some("DIMENSION_SCALE"))
    }

    pub fn raw_bytes(&self) -> u64 {
        self.rows() * self.row_bytes()
    }

    /// The paths of the datasets this one names in its CF attributes `attrs` (`coordinates`,
    /// `bounds`, `climatology`, `grid_mapping`: names of its own group, space-separated;
    /// grid_mapping's extended form, "crs: lat lon", names the variables before each ':').
    pub fn cf_named(&self, attrs: &[&str]) -> Vec<String> {
        let group = parent_group(&self.path);
        let mut out = Vec::new();
        for attr in attrs {
            let Some(list) = self.attributes.get(*attr).and_then(|a| a.value.as_str()) else { continue };
            let tokens: Vec<&str> = list.split_whitespace().collect();
            let names: Vec<&str> = if tokens.iter().any(|t| t.ends_with(':')) {
                tokens.iter().filter_map(|t| t.strip_suffix(':')).collect()
            } else {
                tokens
            };
            out.extend(names.into_iter().map(|n| format!("{group}/{n}")));
        }
        out
    }

    /// Whether axis `axis` may grow past its length (a record dimension).
    pub fn is_extendable(&self, axis: usize) -> bool {
        self.maxshape.as_ref().and_then(|m| m.get(axis)).is_some_and(|m| m.is_none_or(|m| Some(&m) != self.shape.get(axis)))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VariableInfo {
    pub name: String,
    #[serde(default)]
    pub field: Option<String>,
    pub dtype: DType,
    pub byte_order: ByteOrder,
    pub error: ErrorBound,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Stats>,
    /// What marks an element of this variable missing (besides NaN): kept bit for bit, left out
    /// of its range, statistics and predictions. Absent: only NaN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<crate::missing::MissingInfo>,
}

impl VariableInfo {
    /// The variable's missing-value rule (NaN only when the header records none).
    pub fn missing_rule(&self) -> Option<crate::missing::MissingRule> {
        self.missing.as_ref().and_then(|m| m.rule(self.dtype).ok())
    }
}

/// Range of the finite values (what `rel` bounds are relative to) and how many were not finite.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub nonfinite: u64,
    /// Finite elements the variable's missing-value rule marks missing (fill values, values
    /// outside the valid range): outside the range, as non-finite ones are.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missing: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A float `finite_range` reads and compares in: its own, so that an f32 variable's lanes are
/// f32 (twice as many a vector, and no widening an element). Widening is exact and keeps the
/// order, so the range found in f32 is the one found in f64.
trait Lane: Copy + PartialOrd {
    const INFINITY: Self;
    const NEG_INFINITY: Self;
    const ZERO: Self;
    const NAN: Self;
    const WIDTH: usize;
    fn read(b: &[u8]) -> Self;
    fn finite(self) -> bool;
    fn wide(self) -> f64;
    fn min_num(self, x: Self) -> Self;
    fn max_num(self, x: Self) -> Self;
}

/// `Lane` for a float type `$t` of `$w` bytes: the two impls differ in nothing else.
macro_rules! lane {
    ($t:ident, $w:expr) => {
        impl Lane for $t {
            const INFINITY: $t = $t::INFINITY;
            const NEG_INFINITY: $t = $t::NEG_INFINITY;
            const ZERO: $t = 0.0;
            const NAN: $t = $t::NAN;
            const WIDTH: usize = $w;
            #[inline(always)]
            fn read(b: &[u8]) -> $t {
                $t::from_le_bytes(b.try_into().unwrap())
            }
            #[inline(always)]
            fn finite(self) -> bool {
                self.is_finite()
            }
            #[inline(always)]
            fn wide(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn min_num(self, x: $t) -> $t {
                self.min(x)
            }
            #[inline(always)]
            fn max_num(self, x: $t) -> $t {
                self.max(x)
            }
        }
    };
}

lane!(f32, 4);
lane!(f64, 8);

/// The smallest and largest finite values of the `F` values in `bytes`, and how many are not
/// finite: `update_values`' loop with no rule, as it answers, in eight lanes. One running
/// minimum waits on the one before (four cycles an element, 3.6 % of a level-1 `pack`); eight
/// vectorise. Equal floats other than 0 and -0 have the same bits, so the lanes' minimum is the
/// one `update_values` keeps (the first of the smallest) but where it is a zero: then that first
/// zero is looked up.
#[inline(always)]
fn finite_range<F: Lane>(bytes: &[u8]) -> (f64, f64, u64) {
    const LANES: usize = RANGE_LANES;
    let (mut lo, mut hi) = ([F::INFINITY; LANES], [F::NEG_INFINITY; LANES]);
    // First every value in the lanes' range, the non-finite ones counted: IEEE's minNum and
    // maxNum, which pass over a NaN, are a few vector instructions a lane, where a select that
    // left out the non-finite values made the compiler branch a lane (the pass was 4 % of a
    // default `pack` of GloSea4 x20 at 1e-2, perf). Only where some value is not finite (an
    // infinity would be in the range) is the range taken again, leaving them out.
    let nonfinite = range_lanes(bytes, false, &mut lo, &mut hi);
    if nonfinite > 0 {
        (lo, hi) = ([F::INFINITY; LANES], [F::NEG_INFINITY; LANES]);
        range_lanes(bytes, true, &mut lo, &mut hi);
    }
    let w = F::WIDTH;
    let (mut low, mut high) = (lo[0], hi[0]);
    for k in 1..LANES {
        low = if lo[k] < low { lo[k] } else { low };
        high = if hi[k] > high { hi[k] } else { high };
    }
    let first_zero = || bytes.chunks_exact(w).map(F::read).find(|&v| v == F::ZERO).expect("a zero extreme is a value");
    if low == F::ZERO {
        low = first_zero();
    }
    if high == F::ZERO {
        high = first_zero();
    }
    (low.wide(), high.wide(), nonfinite)
}

/// `finite_range`'s lanes: each lane's least and greatest value of the values in `bytes`
/// (only the finite ones with `finite_only`; NaN never), into `lo` and `hi`, and the count of
/// values not finite.
#[inline(always)]
fn range_lanes<F: Lane>(bytes: &[u8], finite_only: bool, lo: &mut [F; RANGE_LANES], hi: &mut [F; RANGE_LANES]) -> u64 {
    const LANES: usize = RANGE_LANES;
    let w = F::WIDTH;
    let mut nonfinite = 0u64;
    for part in bytes.chunks(w * LANES << 24) {
        let mut counts = [0u32; LANES];
        let mut blocks = part.chunks_exact(w * LANES);
        let mut step = |v: &[F; LANES]| {
            for k in 0..LANES {
                counts[k] += !v[k].finite() as u32;
                let x = if !finite_only || v[k].finite() { v[k] } else { F::NAN };
                lo[k] = lo[k].min_num(x);
                hi[k] = hi[k].max_num(x);
            }
        };
        for b in &mut blocks {
            let mut v = [F::ZERO; LANES];
            for (k, v) in v.iter_mut().enumerate() {
                *v = F::read(&b[k * w..(k + 1) * w]);
            }
            step(&v);
        }
        // The last few in lanes of their own, the lanes past them NaN (counted, and taken off).
        let mut v = [F::NAN; LANES];
        for (v, b) in v.iter_mut().zip(blocks.remainder().chunks_exact(w)) {
            *v = F::read(b);
        }
        step(&v);
        let pad = LANES - blocks.remainder().len() / w;
        nonfinite += counts.iter().map(|&c| c as u64).sum::<u64>() - pad as u64;
    }
    nonfinite
}

const RANGE_LANES: usize = 8;

impl Stats {
    /// Takes in `values`, leaving out of the range the elements `rule` marks missing.
    pub fn update_masked(&mut self, values: &[f64], rule: Option<&crate::missing::MissingRule>) {
        self.update_values(values.iter().copied(), rule);
    }

    /// `update_masked` on a variable's little-endian bytes: floats are read in place, not
    /// widened into a chunk-sized f64 copy first.
    pub fn update_bytes(&mut self, dtype: DType, bytes: &[u8], rule: Option<&crate::missing::MissingRule>) {
        let f32_at = |b: &[u8]| f32::from_le_bytes(b.try_into().unwrap()) as f64;
        let f64_at = |b: &[u8]| f64::from_le_bytes(b.try_into().unwrap());
        match (dtype, rule) {
            (DType::F32, None) => self.take_range(crate::codec::cpu::tuned(#[inline(always)] || finite_range::<f32>(bytes))),
            (DType::F64, None) => self.take_range(crate::codec::cpu::tuned(#[inline(always)] || finite_range::<f64>(bytes))),
            (DType::F32, _) => self.update_values(bytes.chunks_exact(4).map(f32_at), rule),
            (DType::F64, _) => self.update_values(bytes.chunks_exact(8).map(f64_at), rule),
            _ => self.update_masked(&crate::dtype::values_f64(dtype, bytes), rule),
        }
    }

    /// Takes in `finite_range`'s answer for the values that follow.
    fn take_range(&mut self, (lo, hi, nonfinite): (f64, f64, u64)) {
        self.nonfinite += nonfinite;
        if lo <= hi {
            self.merge(&Stats { min: Some(lo), max: Some(hi), nonfinite: 0, missing: 0 });
        }
    }

    fn update_values(&mut self, values: impl Iterator<Item = f64>, rule: Option<&crate::missing::MissingRule>) {
        // The range in plain locals, the usual case (no rule) without a branch an element (the
        // loop updating an `Option` per element was 4 % of a level-1 `pack`). NaN never reaches a
        // comparison, so `<` and `>` are `min` and `max` (one instruction each, not a
        // NaN-aware select).
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        match rule {
            None => {
                let mut nonfinite = 0u64;
                for v in values {
                    let finite = v.is_finite();
                    nonfinite += !finite as u64;
                    let (low, high) = if finite { (v, v) } else { (f64::INFINITY, f64::NEG_INFINITY) };
                    lo = if low < lo { low } else { lo };
                    hi = if high > hi { high } else { hi };
                }
                self.nonfinite += nonfinite;
            }
            Some(r) => {
                for v in values {
                    if !v.is_finite() {
                        self.nonfinite += 1;
                    } else if r.is_missing(v) {
                        self.missing += 1;
                    } else {
                        lo = if v < lo { v } else { lo };
                        hi = if v > hi { v } else { hi };
                    }
                }
            }
        }
        // Only finite values reach `lo` and `hi`, so lo <= hi says one did.
        if lo <= hi {
            self.merge(&Stats { min: Some(lo), max: Some(hi), nonfinite: 0, missing: 0 });
        }
    }

    /// Takes in the statistics of the values that follow, as updating with those values would
    /// have: a variable's parts can be scanned apart and merged in order.
    pub fn merge(&mut self, next: &Stats) {
        if let (Some(lo), Some(hi)) = (next.min, next.max) {
            self.min = Some(self.min.map_or(lo, |m| m.min(lo)));
            self.max = Some(self.max.map_or(hi, |m| m.max(hi)));
        }
        self.nonfinite += next.nonfinite;
        self.missing += next.missing;
    }

    pub fn range(&self) -> f64 {
        match (self.min, self.max) {
            (Some(a), Some(b)) => b - a,
            _ => 0.0,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CodecInfo {
    pub pipeline: Vec<StageInfo>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StageInfo {
    pub stage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<i32>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

impl Skipped {
    /// netCDF's links from a variable to its dimension scales (object-reference attributes):
    /// not stored as such, but made again on unpack from the dimension ids the header keeps, so
    /// they are reported as one line and `--strict` does not refuse them.
    pub fn is_dimension_link(&self) -> bool {
        self.path.ends_with(" attribute DIMENSION_LIST") || self.path.ends_with(" attribute REFERENCE_LIST")
    }
}

pub type Attributes = BTreeMap<String, Attribute>;

/// An HDF5 attribute, kept so `unpack` can write it back with its type.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    /// A [`DType`] name, or "string".
    pub dtype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_order: Option<ByteOrder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<StringType>,
    pub shape: Vec<u64>,
    /// A scalar for shape [], else a flat list in C order; non-finite floats as "nan"/"inf"/"-inf".
    pub value: serde_json::Value,
}

impl Attribute {
    /// A 1-D list of UTF-8 strings (column names, branch orders).
    pub fn strings(values: &[String]) -> Self {
        Attribute {
            dtype: "string".into(),
            byte_order: None,
            string: Some(StringType { encoding: StringEncoding::Utf8, fixed_size: None }),
            shape: vec![values.len() as u64],
            value: serde_json::Value::Array(values.iter().map(|v| serde_json::Value::String(v.clone())).collect()),
        }
    }

    /// The strings of a 1-D string list, if it is one.
    pub fn as_strings(&self) -> Option<Vec<String>> {
        if self.dtype != "string" || self.shape.len() != 1 {
            return None;
        }
        self.value.as_array()?.iter().map(|v| v.as_str().map(str::to_string)).collect()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StringType {
    pub encoding: StringEncoding,
    /// Fixed length in bytes, or None for variable-length strings.
    pub fixed_size: Option<u64>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StringEncoding {
    Ascii,
    Utf8,
}

/// JSON for a float that JSON itself cannot hold.
pub fn float_to_json(v: f64) -> serde_json::Value {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        serde_json::Number::from_f64(v).map(Into::into).unwrap_or(serde_json::Value::Null)
    }
}

pub fn float_from_json(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => match s.as_str() {
            "nan" => Some(f64::NAN),
            "inf" => Some(f64::INFINITY),
            "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::missing::MissingRule;

    /// `update_bytes` with no rule (eight lanes, the AVX2 twin where the CPU has it) answers
    /// what `update_values`' one running range does, to the bit: which zero is kept where the
    /// smallest or largest value is 0 and both signs occur, non-finite values counted, and
    /// lengths that leave a remainder after the lanes.
    #[test]
    fn the_lanes_range_is_the_running_range() {
        let mut r = crate::codec::xorshift(0x5eed_0f_2a_9e);
        for n in [0usize, 1, 7, 8, 9, 17, 64, 1000, 1003] {
            for trial in 0..20 {
                let xs: Vec<f64> = (0..n)
                    .map(|_| match r() % 12 {
                        0 => 0.0,
                        1 => -0.0,
                        2 if trial % 3 == 0 => f64::NAN,
                        3 if trial % 4 == 0 => f64::INFINITY,
                        4 if trial % 5 == 0 => f64::NEG_INFINITY,
                        // Positive only in some trials, so 0 is the smallest; negative only in
                        // others, so it is the largest.
                        _ if trial % 2 == 0 => (r() % 1000) as f64 * 0.5,
                        _ => -((r() % 1000) as f64) * 0.25,
                    })
                    .collect();
                for dtype in [DType::F32, DType::F64] {
                    let bytes: Vec<u8> = match dtype {
                        DType::F32 => xs.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect(),
                        _ => xs.iter().flat_map(|&x| x.to_le_bytes()).collect(),
                    };
                    let (mut lanes, mut running, mut baseline) = (Stats::default(), Stats::default(), Stats::default());
                    lanes.update_bytes(dtype, &bytes, None);
                    crate::codec::cpu::baseline(|| baseline.update_bytes(dtype, &bytes, None));
                    running.update_values(crate::dtype::values_f64(dtype, &bytes).into_iter(), None);
                    let bits = |s: &Stats| (s.min.map(f64::to_bits), s.max.map(f64::to_bits), s.nonfinite, s.missing);
                    assert_eq!(bits(&lanes), bits(&running), "{dtype:?}, {n} values, trial {trial}");
                    assert_eq!(bits(&baseline), bits(&running), "{dtype:?}, {n} values, trial {trial}, baseline");
                }
            }
        }
    }

    /// The range, over blocks taken in one at a time, is the finite values' that no rule marks
    /// missing; non-finite and missing elements are counted, and a block of neither leaves the
    /// range as it was.
    #[test]
    fn stats_range_leaves_out_nonfinite_and_missing_values() {
        let blocks: [&[f64]; 4] = [&[f64::NAN, 3.0, -1e34, 7.5], &[f64::INFINITY, f64::NAN], &[-2.0, f64::NEG_INFINITY, 1e34, 12.0], &[]];
        let mut plain = Stats::default();
        blocks.iter().for_each(|b| plain.update_masked(b, None));
        assert_eq!((plain.min, plain.max, plain.nonfinite, plain.missing), (Some(-1e34), Some(1e34), 4, 0));
        let rule = MissingRule::new(DType::F64, &[1e34], Some(-100.0), None).unwrap();
        let mut masked = Stats::default();
        blocks.iter().for_each(|b| masked.update_masked(b, Some(&rule)));
        assert_eq!((masked.min, masked.max, masked.nonfinite, masked.missing), (Some(-2.0), Some(12.0), 4, 2));
        let mut none = Stats::default();
        none.update_masked(&[f64::NAN, f64::INFINITY], None);
        none.update_masked(&[1e34, -1e34], Some(&rule));
        assert_eq!((none.min, none.max, none.nonfinite, none.missing), (None, None, 2, 2));
        // Read from a variable's bytes, as `pack` scans it: the same, per dtype.
        for dtype in [DType::F32, DType::F64, DType::I16] {
            let mut from_bytes = Stats::default();
            let mut widened = Stats::default();
            for b in blocks {
                let mut bytes = Vec::new();
                b.iter().for_each(|&v| crate::dtype::push_value(dtype, crate::dtype::round_to(dtype, v), &mut bytes));
                from_bytes.update_bytes(dtype, &bytes, Some(&rule));
                widened.update_masked(&crate::dtype::values_f64(dtype, &bytes), Some(&rule));
            }
            assert_eq!(from_bytes, widened, "{dtype}");
            assert!(from_bytes.min.is_some(), "{dtype}");
        }
    }
}
