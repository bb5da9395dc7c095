//! netCDF-3 files as sources: the classic format (CDF-1), 64-bit offset (CDF-2) and 64-bit data
//! (CDF-5), read as Unidata's "NetCDF File Format Specification" and its CDF-5 extension lay them
//! out. Every numeric variable becomes a dataset, read row range by row range (rows along the
//! first dimension; a record variable's rows are its records, interleaved in the file).
//!
//! Dimensions are described the way netCDF-4 stores them in HDF5, so `unpack -o x.nc` gives a
//! file the netCDF library and xarray read like the original: a coordinate variable is a
//! dimension scale (`CLASS`, `NAME`, `_Netcdf4Dimid`), a dimension without one gets netCDF-4's
//! empty scale ("This is a netCDF dimension but not a netCDF variable."), and every other
//! variable lists its dimension ids in `_Netcdf4Coordinates`, from which the HDF5 sink attaches
//! the scales. Values keep netCDF-3's big-endian byte order in the header, so unpack writes the
//! same dtypes.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{SourceLayout, Source};
use crate::bound::ErrorBound;
use crate::dtype::{swap_bytes, ByteOrder, DType};
use crate::error::{Error, Result};
use crate::header::{
    float_to_json, Attribute, Attributes, Chars, DatasetInfo, DatasetKind, GroupInfo, Skipped, SourceKind, StringEncoding,
    StringPad, StringType, VariableInfo,
};

/// True for the signatures `CDF\x01`, `CDF\x02` and `CDF\x05`.
pub fn is_magic(magic: &[u8]) -> bool {
    magic.len() >= 4 && &magic[..3] == b"CDF" && matches!(magic[3], 1 | 2 | 5)
}

const NC_DIMENSION: u32 = 0x0A;
const NC_VARIABLE: u32 = 0x0B;
const NC_ATTRIBUTE: u32 = 0x0C;
const NC_CHAR: u32 = 2;
/// numrecs when the writer streamed records without updating the count.
const STREAMING: u64 = u64::MAX;
/// The NAME netCDF-4 gives a dimension that has no coordinate variable.
pub(crate) const DIM_WITHOUT_VARIABLE: &str = "This is a netCDF dimension but not a netCDF variable.";
/// netCDF-4's prefix for a variable named like a dimension it is not the coordinate of.
const NON_COORD_PREFIX: &str = "_nc4_non_coord_";

/// The element type of a numeric netCDF type code (None for char).
fn dtype_of(nc_type: u32, version: u8) -> Result<Option<DType>, String> {
    let d = match nc_type {
        1 => DType::I8,
        NC_CHAR => return Ok(None),
        3 => DType::I16,
        4 => DType::I32,
        5 => DType::F32,
        6 => DType::F64,
        7..=11 if version != 5 => return Err(format!("type code {nc_type} exists only in CDF-5 files")),
        7 => DType::U8,
        8 => DType::U16,
        9 => DType::U32,
        10 => DType::I64,
        11 => DType::U64,
        other => return Err(format!("unknown type code {other}")),
    };
    Ok(Some(d))
}

fn type_size(nc_type: u32) -> u64 {
    match nc_type {
        1 | 2 | 7 => 1,
        3 | 8 => 2,
        4 | 5 | 9 => 4,
        _ => 8,
    }
}

struct Dim {
    name: String,
    /// 0 for the record (unlimited) dimension.
    len: u64,
}

enum AttValue {
    Text(Vec<u8>),
    /// Big-endian values of `dtype`.
    Numbers(DType, Vec<u8>),
}

struct Att {
    name: String,
    value: AttValue,
}

struct Var {
    name: String,
    dimids: Vec<usize>,
    atts: Vec<Att>,
    nc_type: u32,
    begin: u64,
}

struct Nc3Header {
    version: u8,
    numrecs: u64,
    dims: Vec<Dim>,
    gatts: Vec<Att>,
    vars: Vec<Var>,
}

/// Reads header fields, refusing any that would run past the end of the file, so a corrupt
/// count fails at once instead of allocating or looping on garbage.
struct HeaderReader<R> {
    r: R,
    pos: u64,
    len: u64,
    version: u8,
}

impl<R: Read> HeaderReader<R> {
    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, String> {
        if n > self.len - self.pos {
            return Err(format!("{what} runs past the end of the file (cut short, or a corrupt header)"));
        }
        let mut buf = vec![0u8; n as usize];
        self.r.read_exact(&mut buf).map_err(|e| format!("reading {what}: {e}"))?;
        self.pos += n;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.bytes(4, what)?.try_into().unwrap()))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.bytes(8, what)?.try_into().unwrap()))
    }

    /// NON_NEG: 32 bits, 64 in CDF-5.
    fn count(&mut self, what: &str) -> Result<u64, String> {
        if self.version == 5 {
            self.u64(what)
        } else {
            self.u32(what).map(u64::from)
        }
    }

    /// OFFSET: 32 bits in CDF-1, 64 in CDF-2 and CDF-5.
    fn offset(&mut self, what: &str) -> Result<u64, String> {
        if self.version == 1 {
            self.u32(what).map(u64::from)
        } else {
            self.u64(what)
        }
    }

    fn skip_padding(&mut self, n: u64, what: &str) -> Result<(), String> {
        self.bytes((4 - n % 4) % 4, what).map(drop)
    }

    fn name(&mut self, what: &str) -> Result<String, String> {
        let n = self.count(what)?;
        let raw = self.bytes(n, what)?;
        self.skip_padding(n, what)?;
        let name = String::from_utf8(raw).map_err(|_| format!("{what} is not UTF-8"))?;
        if name.is_empty() || name.contains(['/', '\0']) {
            return Err(format!("{what} {name:?} is not a valid netCDF name"));
        }
        Ok(name)
    }

    /// A list's tag and length: ABSENT (two zeros) or `tag` and a count.
    fn list(&mut self, tag: u32, what: &str) -> Result<u64, String> {
        let t = self.u32(what)?;
        let n = self.count(what)?;
        match (t, n) {
            (0, 0) => Ok(0),
            (t, n) if t == tag => Ok(n),
            (t, _) => Err(format!("{what}: tag {t:#x} where {tag:#x} or an absent list belongs")),
        }
    }

    fn atts(&mut self, owner: &str) -> Result<Vec<Att>, String> {
        let n = self.list(NC_ATTRIBUTE, &format!("attribute list of {owner}"))?;
        let mut out = Vec::new();
        for _ in 0..n {
            let name = self.name(&format!("attribute name of {owner}"))?;
            let what = format!("attribute {name} of {owner}");
            let nc_type = self.u32(&what)?;
            let dtype = dtype_of(nc_type, self.version).map_err(|e| format!("{what}: {e}"))?;
            let nelems = self.count(&what)?;
            let size = nelems.checked_mul(type_size(nc_type)).ok_or_else(|| format!("{what}: size overflows"))?;
            let raw = self.bytes(size, &what)?;
            self.skip_padding(size, &what)?;
            let value = match dtype {
                None => AttValue::Text(raw),
                Some(d) => AttValue::Numbers(d, raw),
            };
            out.push(Att { name, value });
        }
        Ok(out)
    }

    fn header(&mut self) -> Result<Nc3Header, String> {
        let magic = self.bytes(4, "magic")?;
        if !is_magic(&magic) {
            return Err("no CDF signature".into());
        }
        self.version = magic[3];
        let numrecs = match self.count("numrecs")? {
            n if self.version != 5 && n == u32::MAX as u64 => STREAMING,
            n => n,
        };
        let ndims = self.list(NC_DIMENSION, "dimension list")?;
        let mut dims = Vec::new();
        for _ in 0..ndims {
            let name = self.name("dimension name")?;
            let len = self.count(&format!("length of dimension {name}"))?;
            dims.push(Dim { name, len });
        }
        if dims.iter().filter(|d| d.len == 0).count() > 1 {
            return Err("more than one record (unlimited) dimension".into());
        }
        let gatts = self.atts("the file")?;
        let nvars = self.list(NC_VARIABLE, "variable list")?;
        let mut vars = Vec::new();
        for _ in 0..nvars {
            let name = self.name("variable name")?;
            let rank = self.count(&format!("rank of variable {name}"))?;
            let mut dimids = Vec::new();
            for i in 0..rank {
                let id = self.count(&format!("dimension ids of variable {name}"))?;
                let d = dims.get(id as usize).ok_or_else(|| format!("variable {name}: dimension id {id} does not exist"))?;
                if d.len == 0 && i > 0 {
                    return Err(format!("variable {name}: the record dimension is not its first"));
                }
                dimids.push(id as usize);
            }
            let atts = self.atts(&format!("variable {name}"))?;
            let nc_type = self.u32(&format!("type of variable {name}"))?;
            dtype_of(nc_type, self.version).map_err(|e| format!("variable {name}: {e}"))?;
            // vsize is redundant (and saturates for big variables): sizes are computed below.
            self.count(&format!("vsize of variable {name}"))?;
            let begin = self.offset(&format!("begin of variable {name}"))?;
            vars.push(Var { name, dimids, atts, nc_type, begin });
        }
        Ok(Nc3Header { version: self.version, numrecs, dims, gatts, vars })
    }
}

/// Where a dataset's rows are in the file.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Contiguous rows from `begin`.
    Fixed { begin: u64 },
    /// One row per record, `recsize` apart.
    Record { begin: u64, recsize: u64 },
    /// A dimension without a coordinate variable: netCDF-4's empty scale, all zeros.
    Zeros,
}

struct Planned {
    plan: Plan,
    elem: usize,
    row_bytes: u64,
}

pub struct Netcdf3Source {
    path: PathBuf,
    file: File,
    plans: Vec<Planned>,
    layout: SourceLayout,
}

impl Netcdf3Source {
    /// The variables `names` name (all when empty), with their coordinates when `coordinates`.
    pub fn open(path: &Path, names: &[String], coordinates: bool) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let bad = |what: String| Error::input(path, format!("bad netCDF-3 file: {what}"));
        let mut reader = HeaderReader { r: BufReader::new(&file), pos: 0, len, version: 1 };
        let nc = reader.header().map_err(bad)?;
        let (mut datasets, mut plans, mut skipped) = describe(&nc, len).map_err(bad)?;

        for n in names {
            let want = format!("/{}", n.trim_start_matches('/'));
            if let Some(s) = skipped.iter().find(|s| s.path == want) {
                return Err(Error::input(path, format!("variable '{n}' cannot be packed: {}", s.reason)));
            }
        }
        let keep = if coordinates { super::select_with_coordinates(path, &datasets, names)? } else { super::select(path, &datasets, names)? };
        if !names.is_empty() {
            skipped.clear();
        }
        let mut i = 0;
        datasets.retain(|_| (keep.contains(&i), i += 1).0);
        i = 0;
        plans.retain(|_| (keep.contains(&i), i += 1).0);
        if datasets.is_empty() {
            let why: Vec<String> = skipped.iter().map(|s| format!("{} ({})", s.path, s.reason)).collect();
            return Err(Error::input(path, format!("holds no numeric variable to pack{}", if why.is_empty() { String::new() } else { format!("; skipped: {}", why.join("; ")) })));
        }
        let layout = SourceLayout {
            kind: SourceKind::Netcdf3,
            name: path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            groups: vec![GroupInfo { path: "/".into(), attributes: attributes(&nc.gatts) }],
            datasets,
            skipped,
        };
        Ok(Netcdf3Source { path: path.into(), file, plans, layout })
    }
}

/// The datasets (numeric variables, then scales for dimensions without a coordinate variable),
/// where their rows are, and what was left out. Checks that every byte they need is in the file.
fn describe(nc: &Nc3Header, file_len: u64) -> Result<(Vec<DatasetInfo>, Vec<Planned>, Vec<Skipped>), String> {
    let row_elems = |v: &Var| -> Result<u64, String> {
        v.dimids.iter().skip(1).try_fold(1u64, |p, &d| p.checked_mul(nc.dims[d].len)).ok_or_else(|| format!("variable {}: size overflows", v.name))
    };
    let is_record = |v: &Var| v.dimids.first().is_some_and(|&d| nc.dims[d].len == 0);

    // Records hold one slab of each record variable, each padded to 4 bytes, except that a
    // file with a single record variable does not pad.
    let record_vars: Vec<&Var> = nc.vars.iter().filter(|v| is_record(v)).collect();
    let mut recsize = 0u64;
    for v in &record_vars {
        let slab = row_elems(v)?.checked_mul(type_size(v.nc_type)).ok_or("record size overflows")?;
        let slab = if record_vars.len() == 1 { slab } else { slab.div_ceil(4) * 4 };
        recsize = recsize.checked_add(slab).ok_or("record size overflows")?;
    }
    let numrecs = if nc.numrecs == STREAMING {
        let first = record_vars.iter().map(|v| v.begin).min().unwrap_or(file_len);
        if recsize == 0 { 0 } else { file_len.saturating_sub(first) / recsize }
    } else {
        nc.numrecs
    };

    let coordinate_of = |v: &Var| -> Option<usize> {
        match v.dimids[..] {
            [d] if nc.dims[d].name == v.name && v.nc_type != NC_CHAR => Some(d),
            _ => None,
        }
    };
    let mut datasets = Vec::new();
    let mut plans = Vec::new();
    let mut skipped = Vec::new();
    let mut has_scale = vec![false; nc.dims.len()];
    let mut used = vec![false; nc.dims.len()];
    for v in &nc.vars {
        // A char variable (a grid mapping such as rotated_pole, station names) is its bytes,
        // written back as netCDF-4's chars.
        let chars = (v.nc_type == NC_CHAR).then_some(Chars { encoding: StringEncoding::Ascii, pad: StringPad::Nullterm });
        let dtype = match dtype_of(v.nc_type, nc.version)? {
            Some(d) => d,
            None if chars.is_some() => DType::U8,
            None => {
                skipped.push(Skipped { path: format!("/{}", v.name), reason: "not numeric".into() });
                continue;
            }
        };
        let elem = type_size(v.nc_type);
        let row_bytes = row_elems(v)?.checked_mul(elem).ok_or_else(|| format!("variable {}: size overflows", v.name))?;
        let (rows, plan, end) = if is_record(v) {
            let end = match numrecs {
                0 => v.begin,
                n => (n - 1).checked_mul(recsize).and_then(|o| o.checked_add(v.begin)).and_then(|o| o.checked_add(row_bytes)).ok_or_else(|| format!("variable {}: offset overflows", v.name))?,
            };
            (numrecs, Plan::Record { begin: v.begin, recsize }, end)
        } else {
            let rows = v.dimids.first().map_or(1, |&d| nc.dims[d].len);
            let end = rows.checked_mul(row_bytes).and_then(|n| n.checked_add(v.begin)).ok_or_else(|| format!("variable {}: size overflows", v.name))?;
            (rows, Plan::Fixed { begin: v.begin }, end)
        };
        if end > file_len {
            return Err(format!("variable {} needs bytes up to {end} and the file has {file_len} (cut short?)", v.name));
        }
        let mut shape: Vec<u64> = v.dimids.iter().map(|&d| nc.dims[d].len).collect();
        if let Some(first) = shape.first_mut() {
            *first = rows;
        }
        for &d in &v.dimids {
            used[d] = true;
        }
        let mut attrs = attributes(&v.atts);
        let name = match coordinate_of(v) {
            Some(d) => {
                has_scale[d] = true;
                scale_attributes(&mut attrs, &v.name, d);
                v.name.clone()
            }
            None => {
                if !v.dimids.is_empty() {
                    let ids = v.dimids.iter().map(|&d| (d as i64).into()).collect();
                    attrs.insert("_Netcdf4Coordinates".into(), int_attribute(ids, vec![v.dimids.len() as u64]));
                }
                if nc.dims.iter().any(|d| d.name == v.name) {
                    format!("{NON_COORD_PREFIX}{}", v.name)
                } else {
                    v.name.clone()
                }
            }
        };
        let mut ds = array(&name, dtype, shape, attrs);
        if is_record(v) {
            ds.maxshape = Some(record_maxshape(&ds.shape));
        }
        if chars.is_some() {
            ds.chars = chars;
        } else {
            ds.fill_value = Some(fill_value_of(&ds.attributes, dtype));
        }
        default_fill(&mut ds);
        datasets.push(ds);
        plans.push(Planned { plan, elem: elem as usize, row_bytes });
    }
    // Dimensions appear through the variables that use them (as in xarray), so only those get
    // a scale.
    for (d, dim) in nc.dims.iter().enumerate() {
        if has_scale[d] || !used[d] {
            continue;
        }
        let len = if dim.len == 0 { numrecs } else { dim.len };
        if len > file_len {
            // Only a variable with no records can use such a dimension; its length is more
            // likely a corrupt header than a wish for a scale of that many zeros.
            return Err(format!("dimension {} has length {len}, more than the file's {file_len} bytes", dim.name));
        }
        let mut attrs = Attributes::new();
        scale_attributes(&mut attrs, &format!("{DIM_WITHOUT_VARIABLE}{len:>10}"), d);
        let mut ds = array(&dim.name, DType::F32, vec![len], attrs);
        if dim.len == 0 {
            ds.maxshape = Some(record_maxshape(&ds.shape));
        }
        datasets.push(ds);
        plans.push(Planned { plan: Plan::Zeros, elem: 4, row_bytes: 4 });
    }
    Ok((datasets, plans, skipped))
}

/// The record dimension is unlimited: the netCDF-4 file unpack writes keeps it so, and more
/// records can be appended to it as to the source.
fn record_maxshape(shape: &[u64]) -> Vec<Option<u64>> {
    std::iter::once(None).chain(shape.iter().skip(1).map(|&n| Some(n))).collect()
}

/// netCDF's default fill for doubles (NC_FILL_DOUBLE; NC_FILL_FLOAT is it as an f32).
const NC_FILL: f64 = 9.969_209_968_386_869e36;

/// What the netCDF library fills a variable's unwritten elements with: its `_FillValue`, else
/// netCDF's default for the type (netCDF-4 sets it as the HDF5 fill value, so records appended
/// to the unpacked file and left unwritten read as missing, not as 0). An integer type's as a
/// JSON integer: NC_FILL_INT64 lies beyond a double's 53 bits.
fn fill_value_of(attrs: &Attributes, dtype: DType) -> serde_json::Value {
    let declared = attrs.get("_FillValue").map(|a| match &a.value {
        serde_json::Value::Array(v) => v.first().cloned().unwrap_or_default(),
        v => v.clone(),
    });
    if let Some(v) = declared.filter(|v| v.is_number() || (dtype.is_float() && v.is_string())) {
        return v;
    }
    match dtype {
        DType::I8 => (-127).into(),
        DType::I16 => (-32767).into(),
        DType::I32 => (-2147483647).into(),
        DType::U8 => 255.into(),
        DType::U16 => 65535.into(),
        DType::U32 => 4294967295u64.into(),
        DType::I64 => (-9223372036854775806i64).into(),
        DType::U64 => 18446744073709551614u64.into(),
        DType::F32 => float_to_json(NC_FILL as f32 as f64),
        DType::F64 => float_to_json(NC_FILL),
        DType::Bool => 0.into(),
    }
}

/// netCDF's default fill value for a float variable with no `_FillValue`: the netCDF library
/// writes it where nothing was (NC_FILL_FLOAT, NC_FILL_DOUBLE) and reads it back as missing.
/// Taken as data, one such value in a latitude made its `rel` bound 1e33 wide.
fn default_fill(ds: &mut DatasetInfo) {
    // A variable that declares its own rule keeps it (declare_missing reads it, and reports a
    // bad one); a valid range leaves the default fill outside it anyway.
    let attrs = &ds.attributes;
    for v in ds.variables.iter_mut().filter(|v| v.dtype.is_float() && v.missing.is_none() && matches!(crate::missing::from_attributes(v.dtype, attrs), Ok(None))) {
        let fill = if v.dtype == DType::F32 { NC_FILL as f32 as f64 } else { NC_FILL };
        if let Ok(rule) = crate::missing::MissingRule::new(v.dtype, &[fill], None, None) {
            v.missing = Some(rule.to_info(vec!["netCDF default fill value".into()]));
        }
    }
}

fn array(name: &str, dtype: DType, shape: Vec<u64>, attributes: Attributes) -> DatasetInfo {
    DatasetInfo {
        path: format!("/{name}"),
        kind: DatasetKind::Array,
        shape,
        chunk_rows: 1,
        attributes,
        variables: vec![VariableInfo {
            name: name.to_string(),
            field: None,
            dtype,
            byte_order: if dtype.size() > 1 { ByteOrder::Be } else { ByteOrder::Le },
            error: ErrorBound::LOSSLESS,
            stats: None,
            missing: None,
        }],
        model: None,
        jagged: None,
        maxshape: None,
        chunks: None,
        filters: Vec::new(),
        fill_value: None,
        chars: None,
    }
}

/// What makes a dataset netCDF-4's dimension scale for dimension `dimid`.
fn scale_attributes(attrs: &mut Attributes, name: &str, dimid: usize) {
    attrs.insert("CLASS".into(), text_attribute("DIMENSION_SCALE", StringEncoding::Ascii, 16));
    let enc = if name.is_ascii() { StringEncoding::Ascii } else { StringEncoding::Utf8 };
    attrs.insert("NAME".into(), text_attribute(name, enc, name.len() as u64 + 1));
    attrs.insert("_Netcdf4Dimid".into(), int_attribute(vec![(dimid as i64).into()], Vec::new()));
}

fn text_attribute(s: &str, encoding: StringEncoding, fixed_size: u64) -> Attribute {
    Attribute {
        dtype: "string".into(),
        byte_order: None,
        string: Some(StringType { encoding, fixed_size: Some(fixed_size.max(1)) }),
        shape: Vec::new(),
        value: s.into(),
    }
}

/// An i32 attribute in native (little-endian) order, as netCDF-4 writes its own.
pub(crate) fn int_attribute(values: Vec<serde_json::Value>, shape: Vec<u64>) -> Attribute {
    let value = if shape.is_empty() { values.into_iter().next().unwrap_or_default() } else { values.into() };
    Attribute { dtype: DType::I32.name().into(), byte_order: Some(ByteOrder::Le), string: None, shape, value }
}

fn attributes(atts: &[Att]) -> Attributes {
    atts.iter()
        .map(|a| {
            let attr = match &a.value {
                AttValue::Text(raw) => {
                    // Text is usually ASCII, sometimes UTF-8; other bytes become U+FFFD, as
                    // netCDF4-python shows them.
                    let s = String::from_utf8_lossy(raw);
                    let enc = if s.is_ascii() { StringEncoding::Ascii } else { StringEncoding::Utf8 };
                    text_attribute(&s, enc, s.len() as u64)
                }
                AttValue::Numbers(dtype, raw) => {
                    let values: Vec<serde_json::Value> = raw.chunks_exact(dtype.size()).map(|b| number(*dtype, b)).collect();
                    Attribute {
                        dtype: dtype.name().into(),
                        byte_order: (dtype.size() > 1).then_some(ByteOrder::Be),
                        string: None,
                        shape: vec![values.len() as u64],
                        value: values.into(),
                    }
                }
            };
            (a.name.clone(), attr)
        })
        .collect()
}

/// One big-endian value as JSON.
fn number(dtype: DType, be: &[u8]) -> serde_json::Value {
    let mut w = [0u8; 8];
    w[8 - be.len()..].copy_from_slice(be);
    let u = u64::from_be_bytes(w);
    match dtype {
        DType::F32 => float_to_json(f32::from_bits(u as u32) as f64),
        DType::F64 => float_to_json(f64::from_bits(u)),
        d if d.is_signed() => {
            let shift = 64 - 8 * be.len() as u32;
            (((u << shift) as i64) >> shift).into()
        }
        _ => u.into(),
    }
}

impl Source for Netcdf3Source {
    fn layout(&self) -> &SourceLayout {
        &self.layout
    }

    fn read_rows(&mut self, dataset: usize, rows: Range<u64>) -> Result<Vec<Vec<u8>>> {
        let p = &self.plans[dataset];
        let n = rows.end - rows.start;
        let mut buf = vec![0u8; (n * p.row_bytes) as usize];
        let io = |e| Error::io(&self.path, e);
        match p.plan {
            Plan::Zeros => return Ok(vec![buf]),
            Plan::Fixed { begin } => {
                self.file.seek(SeekFrom::Start(begin + rows.start * p.row_bytes)).map_err(io)?;
                self.file.read_exact(&mut buf).map_err(io)?;
            }
            Plan::Record { begin, recsize } => {
                for (r, row) in rows.zip(buf.chunks_exact_mut(p.row_bytes.max(1) as usize)) {
                    self.file.seek(SeekFrom::Start(begin + r * recsize)).map_err(io)?;
                    self.file.read_exact(row).map_err(io)?;
                }
            }
        }
        swap_bytes(p.elem, &mut buf);
        Ok(vec![buf])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small CDF file written by hand from the specification: dims time (record), x = 3;
    /// a coordinate variable x (double), a record variable t(time, x) (short), a char variable.
    fn tiny(version: u8, records: u32) -> Vec<u8> {
        let wide = version == 5;
        let mut f = Vec::new();
        let count = |f: &mut Vec<u8>, n: u64| {
            if wide {
                f.extend_from_slice(&n.to_be_bytes())
            } else {
                f.extend_from_slice(&(n as u32).to_be_bytes())
            }
        };
        let name = |f: &mut Vec<u8>, s: &str| {
            count(f, s.len() as u64);
            f.extend_from_slice(s.as_bytes());
            f.resize(f.len().div_ceil(4) * 4, 0);
        };
        let tag = |f: &mut Vec<u8>, t: u32| f.extend_from_slice(&t.to_be_bytes());
        f.extend_from_slice(b"CDF");
        f.push(version);
        count(&mut f, records as u64);
        tag(&mut f, NC_DIMENSION);
        count(&mut f, 2);
        name(&mut f, "time");
        count(&mut f, 0);
        name(&mut f, "x");
        count(&mut f, 3);
        tag(&mut f, NC_ATTRIBUTE);
        count(&mut f, 1);
        name(&mut f, "title");
        tag(&mut f, NC_CHAR);
        count(&mut f, 5);
        f.extend_from_slice(b"tiny\0\0\0\0");
        tag(&mut f, NC_VARIABLE);
        count(&mut f, 3);
        let mut begins = Vec::new();
        for (v, dims, ty) in [("x", &[1u64][..], 6u32), ("label", &[1][..], NC_CHAR), ("t", &[0, 1][..], 3)] {
            name(&mut f, v);
            count(&mut f, dims.len() as u64);
            for &d in dims {
                count(&mut f, d);
            }
            if v == "t" {
                tag(&mut f, NC_ATTRIBUTE);
                count(&mut f, 1);
                name(&mut f, "scale");
                tag(&mut f, 5);
                count(&mut f, 2);
                f.extend_from_slice(&0.5f32.to_be_bytes());
                f.extend_from_slice(&(-2.0f32).to_be_bytes());
            } else {
                tag(&mut f, 0);
                count(&mut f, 0);
            }
            tag(&mut f, ty);
            count(&mut f, 8);
            begins.push(f.len());
            if version == 1 {
                f.extend_from_slice(&0u32.to_be_bytes());
            } else {
                f.extend_from_slice(&0u64.to_be_bytes());
            }
        }
        let patch = |f: &mut Vec<u8>, at: usize, off: usize| {
            if version == 1 {
                f[at..at + 4].copy_from_slice(&(off as u32).to_be_bytes())
            } else {
                f[at..at + 8].copy_from_slice(&(off as u64).to_be_bytes())
            }
        };
        let off = f.len();
        patch(&mut f, begins[0], off);
        for v in [1.5f64, 2.5, 3.5] {
            f.extend_from_slice(&v.to_be_bytes());
        }
        let off = f.len();
        patch(&mut f, begins[1], off);
        f.extend_from_slice(b"abc\0");
        // The only record variable: 3 shorts a record, unpadded.
        let off = f.len();
        patch(&mut f, begins[2], off);
        for r in 0..records as i16 {
            for i in 0..3i16 {
                f.extend_from_slice(&(10 * r + i).to_be_bytes());
            }
        }
        f
    }

    fn open_bytes(bytes: &[u8]) -> Result<Netcdf3Source> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.nc");
        std::fs::write(&p, bytes).unwrap();
        Netcdf3Source::open(&p, &[], false)
    }

    #[test]
    fn reads_all_three_variants() {
        for version in [1u8, 2, 5] {
            let mut src = open_bytes(&tiny(version, 4)).unwrap();
            let l = src.layout().clone();
            let names: Vec<&str> = l.datasets.iter().map(|d| d.path.as_str()).collect();
            assert_eq!(names, ["/x", "/label", "/t", "/time"], "CDF-{version}");
            assert!(l.skipped.is_empty());
            assert_eq!(l.groups[0].attributes["title"].value, "tiny\0");
            let x = &l.datasets[0];
            assert!(x.is_dimension_scale());
            assert_eq!(x.variables[0].byte_order, ByteOrder::Be);
            // The char variable is its bytes.
            let label = &l.datasets[1];
            assert_eq!((label.variables[0].dtype, label.chars.map(|c| c.pad)), (DType::U8, Some(StringPad::Nullterm)));
            assert_eq!(src.read_rows(1, 0..3).unwrap()[0], b"abc");
            let t = &l.datasets[2];
            assert_eq!(t.shape, [4, 3]);
            assert_eq!(t.attributes["_Netcdf4Coordinates"].value, serde_json::json!([0, 1]));
            assert_eq!(t.attributes["scale"].value, serde_json::json!([0.5, -2.0]));
            assert_eq!(t.maxshape, Some(vec![None, Some(3)]), "the record dimension may grow");
            assert_eq!(l.datasets[3].shape, [4]);
            let xs = src.read_rows(0, 0..3).unwrap().remove(0);
            assert_eq!(crate::dtype::values_f64(DType::F64, &xs), [1.5, 2.5, 3.5]);
            let ts = src.read_rows(2, 1..3).unwrap().remove(0);
            assert_eq!(crate::dtype::ints_to_i64(DType::I16, &ts), [10, 11, 12, 20, 21, 22]);
            assert_eq!(src.read_rows(3, 0..4).unwrap()[0], vec![0u8; 16]);
        }
    }

    #[test]
    fn streaming_record_count_comes_from_the_file_length() {
        let mut bytes = tiny(2, 3);
        bytes[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        let src = open_bytes(&bytes).unwrap();
        assert_eq!(src.layout().datasets[2].shape, [3, 3]);
    }

    /// Every truncation and many corruptions of a valid file are one error, never a panic.
    #[test]
    fn cut_or_corrupt_files_are_errors() {
        for version in [1u8, 2, 5] {
            let good = tiny(version, 2);
            for cut in 0..good.len() {
                let err = match open_bytes(&good[..cut]) {
                    Err(e) => e.to_string(),
                    Ok(_) => panic!("CDF-{version} cut at {cut} of {} opened", good.len()),
                };
                assert!(err.contains("t.nc"), "{err}");
            }
            for at in 4..good.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut bad = good.clone();
                    bad[at] ^= flip;
                    if let Ok(mut src) = open_bytes(&bad) {
                        // Data bytes may change freely; what opens must read within the file.
                        for d in 0..src.layout().datasets.len() {
                            let rows = src.layout().datasets[d].rows();
                            src.read_rows(d, 0..rows).unwrap();
                        }
                    }
                }
            }
        }
    }
}
