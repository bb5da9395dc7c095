//! NumPy `.npy` files (format versions 1-3): plain numeric arrays and structured arrays of
//! numeric fields (a table: one variable per field). Read and written row range by row range.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{SourceLayout, Sink, Source};
use crate::atomic::AtomicOutput;
use crate::bound::ErrorBound;
use crate::dtype::{swap_bytes, ByteOrder, DType};
use crate::error::{Error, Result};
use crate::header::{DatasetInfo, DatasetKind, Header, SourceKind, VariableInfo};

pub const MAGIC: [u8; 6] = *b"\x93NUMPY";

/// One field of a record (or the single element of a plain array).
#[derive(Clone, Debug)]
struct Field {
    name: Option<String>,
    dtype: DType,
    order: ByteOrder,
    offset: usize,
}

/// A parsed `.npy` header (of a file or an `.npz` member): what the array is and where its data
/// starts, before deciding whether balerfile can code it.
#[derive(Clone, Debug)]
pub(crate) struct NpyHeader {
    descr: pylit::Value,
    fortran_order: bool,
    pub shape: Vec<u64>,
    /// Bytes from the start of the `.npy` to its data.
    pub data_offset: u64,
}

/// A numeric array's layout: its fields (one for a plain array), record size and shape.
#[derive(Clone, Debug)]
pub(crate) struct NpyLayout {
    fields: Vec<Field>,
    itemsize: usize,
    pub shape: Vec<u64>,
    pub data_offset: u64,
}

/// A fixed-width string dtype: `<U{n}` (n UTF-32 code units) or `|S{n}` (n bytes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TextType {
    unicode: bool,
    big_endian: bool,
    chars: usize,
}

impl TextType {
    pub fn itemsize(&self) -> usize {
        if self.unicode { 4 * self.chars } else { self.chars }
    }

    /// The strings of a C-ordered array of this type; NUL padding removed.
    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<String>, String> {
        if self.chars == 0 {
            return Ok(Vec::new());
        }
        bytes
            .chunks_exact(self.itemsize())
            .map(|item| {
                if self.unicode {
                    item.chunks_exact(4)
                        .map(|c| {
                            let c: [u8; 4] = c.try_into().expect("chunks of 4");
                            if self.big_endian { u32::from_be_bytes(c) } else { u32::from_le_bytes(c) }
                        })
                        .take_while(|&u| u != 0)
                        .map(|u| char::from_u32(u).ok_or_else(|| format!("U+{u:X} is not a character")))
                        .collect()
                } else {
                    let end = item.iter().position(|&b| b == 0).unwrap_or(item.len());
                    String::from_utf8(item[..end].to_vec()).map_err(|_| "bytes that are not UTF-8 text".to_string())
                }
            })
            .collect()
    }
}

/// A whole `.npy` file holding `strings` as a 1-D `<U` array (numpy's type for `np.array(list
/// of str)`).
pub(crate) fn text_array(strings: &[String]) -> Vec<u8> {
    let chars = strings.iter().map(|s| s.chars().count()).max().unwrap_or(0).max(1);
    let mut out = header_bytes(&format!("'<U{chars}'"), &[strings.len() as u64]);
    for s in strings {
        let mut n = 0;
        for c in s.chars() {
            out.extend_from_slice(&(c as u32).to_le_bytes());
            n += 1;
        }
        out.resize(out.len() + 4 * (chars - n), 0);
    }
    out
}

impl NpyHeader {
    /// Reads the magic, version and header dict; leaves `r` at the data.
    pub fn read(r: &mut impl Read) -> Result<Self, String> {
        let mut pre = [0u8; 8];
        r.read_exact(&mut pre).map_err(|_| "too short")?;
        if pre[..6] != MAGIC {
            return Err("no NUMPY magic".into());
        }
        // Magic, major, minor, then the header length: u16 in version 1, u32 in versions 2 and 3.
        let (hlen, pre_len) = match pre[6] {
            1 => {
                let mut l = [0u8; 2];
                r.read_exact(&mut l).map_err(|_| "too short")?;
                (u16::from_le_bytes(l) as usize, 10)
            }
            2 | 3 => {
                let mut l = [0u8; 4];
                r.read_exact(&mut l).map_err(|_| "too short")?;
                (u32::from_le_bytes(l) as usize, 12)
            }
            v => return Err(format!("unknown format version {v}")),
        };
        if hlen > 1 << 24 {
            return Err(format!("header length {hlen} is implausible"));
        }
        let mut dict = vec![0u8; hlen];
        r.read_exact(&mut dict).map_err(|_| "header runs past the end of the file")?;
        let dict = String::from_utf8(dict).map_err(|_| "header is not text")?;
        let value = pylit::parse(&dict)?;
        let get = |k: &str| value.get(k).ok_or_else(|| format!("header has no '{k}'"));
        let fortran_order = match get("fortran_order")? {
            pylit::Value::Bool(b) => *b,
            _ => return Err("fortran_order is not a bool".into()),
        };
        let shape = match get("shape")? {
            pylit::Value::List(items) => items
                .iter()
                .map(|i| match i {
                    pylit::Value::Int(n) if *n >= 0 => Ok(*n as u64),
                    _ => Err("shape must hold non-negative integers".to_string()),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err("shape is not a tuple".into()),
        };
        let descr = get("descr")?.clone();
        Ok(NpyHeader { descr, fortran_order, shape, data_offset: (pre_len + hlen) as u64 })
    }

    pub fn elements(&self) -> Option<u64> {
        self.shape.iter().try_fold(1u64, |a, &n| a.checked_mul(n))
    }

    /// The string type of a `<U`/`|S` array, if it is one.
    pub fn text(&self) -> Option<TextType> {
        let pylit::Value::Str(s) = &self.descr else { return None };
        let mut chars = s.chars();
        let order = chars.next()?;
        let kind = chars.next()?;
        let n: usize = chars.as_str().parse().ok()?;
        match (order, kind) {
            ('<' | '>' | '=' | '|', 'U') => Some(TextType { unicode: true, big_endian: order == '>', chars: n }),
            ('|' | '<' | '>' | '=', 'S') => Some(TextType { unicode: false, big_endian: false, chars: n }),
            _ => None,
        }
    }

    /// The numeric layout; an error says why balerfile cannot code the array.
    pub fn layout(&self) -> Result<NpyLayout, String> {
        if self.fortran_order {
            return Err("Fortran-ordered arrays are not supported: save with np.ascontiguousarray".into());
        }
        let (fields, itemsize) = match &self.descr {
            pylit::Value::Str(s) => {
                let (dtype, order) = parse_descr(s)?;
                (vec![Field { name: None, dtype, order, offset: 0 }], dtype.size())
            }
            pylit::Value::List(items) => {
                let mut fields = Vec::new();
                let mut offset = 0;
                for it in items {
                    match it {
                        pylit::Value::List(t) if t.len() == 2 => match (&t[0], &t[1]) {
                            (pylit::Value::Str(name), pylit::Value::Str(d)) => {
                                let (dtype, order) = parse_descr(d).map_err(|e| format!("field '{name}': {e}"))?;
                                if !name.is_empty() {
                                    fields.push(Field { name: Some(name.clone()), dtype, order, offset });
                                }
                                offset += dtype.size();
                            }
                            _ => return Err("structured fields must be (name, 'dtype')".into()),
                        },
                        _ => return Err("only flat structured dtypes of numeric fields are supported (no sub-arrays or nesting)".into()),
                    }
                }
                if fields.is_empty() {
                    return Err("structured dtype with no fields".into());
                }
                (fields, offset)
            }
            _ => return Err("descr is neither a dtype string nor a list of fields".into()),
        };
        Ok(NpyLayout { fields, itemsize, shape: self.shape.clone(), data_offset: self.data_offset })
    }
}

impl NpyLayout {
    /// The layout `unpack` writes a dataset as: its variables as fields in order, packed.
    pub fn of_dataset(ds: &DatasetInfo) -> Self {
        let mut offset = 0;
        let fields: Vec<Field> = ds
            .variables
            .iter()
            .map(|v| {
                let f = Field { name: v.field.clone(), dtype: v.dtype, order: v.byte_order, offset };
                offset += v.dtype.size();
                f
            })
            .collect();
        let structured = ds.kind == DatasetKind::Compound;
        let mut l = NpyLayout { fields, itemsize: offset, shape: ds.shape.clone(), data_offset: 0 };
        l.data_offset = l.header_bytes(structured).len() as u64;
        l
    }

    /// The `.npy` header for this layout; data starts 64-byte aligned after it.
    pub fn header_bytes(&self, structured: bool) -> Vec<u8> {
        let descr = if structured {
            let items: Vec<String> =
                self.fields.iter().map(|f| format!("('{}', '{}')", f.name.as_deref().unwrap_or(""), descr_of(f))).collect();
            format!("[{}]", items.join(", "))
        } else {
            format!("'{}'", descr_of(&self.fields[0]))
        };
        header_bytes(&descr, &self.shape)
    }

    /// Bytes of the data after the header.
    pub fn data_bytes(&self) -> Option<u64> {
        self.shape.iter().try_fold(self.itemsize as u64, |a, &n| a.checked_mul(n))
    }

    /// Bytes (from the start of the `.npy`) holding rows `rows`.
    pub fn byte_range(&self, rows: &Range<u64>) -> Range<u64> {
        let row: u64 = self.shape.iter().skip(1).product::<u64>() * self.itemsize as u64;
        self.data_offset + rows.start * row..self.data_offset + rows.end * row
    }

    /// The dataset the array is, named `name`: a plain array is one variable, a record one
    /// variable per field (`name.field`).
    pub fn dataset_info(&self, name: &str) -> DatasetInfo {
        let structured = self.fields[0].name.is_some();
        let variables = self
            .fields
            .iter()
            .map(|f| VariableInfo {
                name: match &f.name {
                    Some(n) => format!("{name}.{n}"),
                    None => name.to_string(),
                },
                field: f.name.clone(),
                dtype: f.dtype,
                byte_order: f.order,
                error: ErrorBound::LOSSLESS,
                stats: None,
                missing: None,
            })
            .collect();
        DatasetInfo {
            path: format!("/{name}"),
            kind: if structured { DatasetKind::Compound } else { DatasetKind::Array },
            shape: self.shape.clone(),
            chunk_rows: 1,
            attributes: Default::default(),
            variables,
            model: None,
            jagged: None,
            maxshape: None,
            chunks: None,
            filters: Vec::new(),
            fill_value: None,
            chars: None,
        }
    }

    /// Whole records as read from the file to one little-endian buffer per variable.
    pub fn split(&self, mut buf: Vec<u8>) -> Vec<Vec<u8>> {
        if let [f] = &self.fields[..] {
            if f.dtype.size() == self.itemsize {
                // A plain array (or a one-field record): the buffer is the variable.
                if f.order == ByteOrder::Be {
                    swap_bytes(f.dtype.size(), &mut buf);
                }
                return vec![buf];
            }
        }
        self.fields.iter().map(|f| extract(&buf, self.itemsize, f)).collect()
    }

    /// One little-endian buffer per variable to records as the file holds them.
    pub fn join<'a>(&self, vars: &'a [Vec<u8>]) -> std::borrow::Cow<'a, [u8]> {
        if let [f] = &self.fields[..] {
            if f.order == ByteOrder::Le && f.dtype.size() == self.itemsize {
                return std::borrow::Cow::Borrowed(&vars[0]);
            }
        }
        let n = vars[0].len() / self.fields[0].dtype.size();
        let mut buf = vec![0u8; n * self.itemsize];
        for (f, data) in self.fields.iter().zip(vars) {
            let size = f.dtype.size();
            for (i, rec) in buf.chunks_exact_mut(self.itemsize).enumerate() {
                let dst = &mut rec[f.offset..f.offset + size];
                dst.copy_from_slice(&data[i * size..(i + 1) * size]);
                if f.order == ByteOrder::Be {
                    dst.reverse();
                }
            }
        }
        std::borrow::Cow::Owned(buf)
    }
}

/// Magic, version, header length and the header dict, padded so the data that follows starts
/// 64-byte aligned (as numpy writes it).
fn header_bytes(descr: &str, shape: &[u64]) -> Vec<u8> {
    let shape: Vec<String> = shape.iter().map(|s| s.to_string()).collect();
    let shape = if shape.len() == 1 { format!("({},)", shape[0]) } else { format!("({})", shape.join(", ")) };
    let mut dict = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}");
    // Version 1 holds a header up to 65535 bytes.
    let (version, len_bytes) = if dict.len() + 12 < 65000 { (1u8, 2) } else { (2u8, 4) };
    let total = 6 + 2 + len_bytes + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - total % 64) % 64));
    dict.push('\n');
    let mut head = Vec::with_capacity(total + 64);
    head.extend_from_slice(&MAGIC);
    head.extend_from_slice(&[version, 0]);
    if version == 1 {
        head.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    } else {
        head.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    }
    head.extend_from_slice(dict.as_bytes());
    head
}

pub struct NpySource {
    path: PathBuf,
    data: Data,
    npy: NpyLayout,
    layout: SourceLayout,
}

/// A `.npy` file, or its bytes in memory (an array handed over in process).
enum Data {
    File(File),
    Bytes(Vec<u8>),
}

impl NpySource {
    pub fn open(path: &Path, datasets: &[String]) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Self::with_data(path, Data::File(file), datasets, "bad .npy file")
    }

    /// The `.npy` image `bytes` (what `numpy.save` writes); `name` stands for it in messages
    /// and names its dataset.
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<Self> {
        Self::with_data(name, Data::Bytes(bytes), &[], "cannot be coded")
    }

    /// `bad`: what a refusal says the input is (a file, or an array handed over).
    fn with_data(path: &Path, mut data: Data, datasets: &[String], bad: &str) -> Result<Self> {
        let head = match &mut data {
            Data::File(f) => NpyHeader::read(f),
            Data::Bytes(b) => NpyHeader::read(&mut b.as_slice()),
        };
        let npy = head.and_then(|h| h.layout()).map_err(|what| Error::input(path, format!("{bad}: {what}")))?;
        let file_len = match &data {
            Data::File(f) => f.metadata().map_err(|e| Error::io(path, e))?.len(),
            Data::Bytes(b) => b.len() as u64,
        };
        if npy.data_bytes().is_none_or(|n| npy.data_offset + n > file_len) {
            return Err(Error::input(path, format!("truncated .npy: shape {:?} needs more data than the file holds", npy.shape)));
        }
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
        let ds = npy.dataset_info(&stem);
        super::select(path, std::slice::from_ref(&ds), datasets)?;
        let layout = SourceLayout {
            kind: SourceKind::Npy,
            name: path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            groups: Vec::new(),
            datasets: vec![ds],
            skipped: Vec::new(),
        };
        Ok(NpySource { path: path.into(), data, npy, layout })
    }
}

impl Source for NpySource {
    fn layout(&self) -> &SourceLayout {
        &self.layout
    }

    fn read_rows(&mut self, _dataset: usize, rows: Range<u64>) -> Result<Vec<Vec<u8>>> {
        let range = self.npy.byte_range(&rows);
        let buf = match &mut self.data {
            Data::File(file) => {
                let mut buf = vec![0u8; (range.end - range.start) as usize];
                file.seek(SeekFrom::Start(range.start)).map_err(|e| Error::io(&self.path, e))?;
                file.read_exact(&mut buf).map_err(|e| Error::io(&self.path, e))?;
                buf
            }
            // In range: `with_data` checked that the data fit in the bytes.
            Data::Bytes(b) => b[range.start as usize..range.end as usize].to_vec(),
        };
        Ok(self.npy.split(buf))
    }
}

fn extract(buf: &[u8], itemsize: usize, f: &Field) -> Vec<u8> {
    let size = f.dtype.size();
    let mut out = Vec::with_capacity(buf.len() / itemsize * size);
    for rec in buf.chunks_exact(itemsize) {
        out.extend_from_slice(&rec[f.offset..f.offset + size]);
    }
    if f.order == ByteOrder::Be {
        swap_bytes(size, &mut out);
    }
    out
}

pub struct NpySink {
    out: SinkOut,
    npy: NpyLayout,
}

/// A file that appears under its name once finished, or a buffer the caller reads after
/// `finish`.
enum SinkOut {
    File { out: BufWriter<File>, output: AtomicOutput },
    Memory(std::sync::Arc<std::sync::Mutex<Vec<u8>>>),
}

impl NpySink {
    pub fn create(path: &Path, header: &Header, datasets: &[usize]) -> Result<Self> {
        let [d] = datasets else {
            let names: Vec<&str> = datasets.iter().map(|&d| header.datasets[d].name()).collect();
            return Err(Error::Usage(format!(
                "{}: a .npy file holds one dataset and the archive selection has {} ({}): unpack to .npz or .h5, or pick one with --dataset",
                path.display(),
                datasets.len(),
                names.join(", ")
            )));
        };
        let ds = &header.datasets[*d];
        let npy = NpyLayout::of_dataset(ds);
        let output = AtomicOutput::new(path)?;
        let file = File::create(output.tmp_path()).map_err(|e| Error::io(path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&npy.header_bytes(ds.kind == DatasetKind::Compound)).map_err(|e| Error::io(path, e))?;
        Ok(NpySink { out: SinkOut::File { out, output }, npy })
    }

    /// A sink writing the `.npy` image of dataset `d` into `buf`.
    pub fn to_memory(header: &Header, d: usize, buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>) -> Self {
        let ds = &header.datasets[d];
        let npy = NpyLayout::of_dataset(ds);
        {
            let mut b = buf.lock().unwrap_or_else(|p| p.into_inner());
            b.clear();
            b.extend_from_slice(&npy.header_bytes(ds.kind == DatasetKind::Compound));
        }
        NpySink { out: SinkOut::Memory(buf), npy }
    }
}

fn descr_of(f: &Field) -> String {
    let (kind, size) = f.dtype.numpy_kind();
    let order = if size == 1 { '|' } else if f.order == ByteOrder::Be { '>' } else { '<' };
    format!("{order}{kind}{size}")
}

impl Sink for NpySink {
    fn write_rows(&mut self, _dataset: usize, _rows: Range<u64>, vars: &[Vec<u8>]) -> Result<()> {
        match &mut self.out {
            SinkOut::File { out, output } => out.write_all(&self.npy.join(vars)).map_err(|e| Error::io(output.dest(), e)),
            SinkOut::Memory(buf) => {
                buf.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(&self.npy.join(vars));
                Ok(())
            }
        }
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let SinkOut::File { out, output } = self.out else { return Ok(()) };
        let file = out.into_inner().map_err(|e| Error::io(output.dest(), e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(output.dest(), e))?;
        drop(file);
        output.commit()
    }
}

fn parse_descr(s: &str) -> Result<(DType, ByteOrder), String> {
    let bad = || format!("dtype '{s}' is not numeric (supported: bool, int8-64, uint8-64, float32, float64)");
    let mut chars = s.chars();
    let order = match chars.next().ok_or_else(bad)? {
        '<' | '|' | '=' => ByteOrder::Le,
        '>' => ByteOrder::Be,
        _ => return Err(bad()),
    };
    let kind = chars.next().ok_or_else(bad)?;
    let size: usize = chars.as_str().parse().map_err(|_| bad())?;
    let dtype = DType::from_numpy_kind(kind, size).ok_or_else(bad)?;
    Ok((dtype, if size == 1 { ByteOrder::Le } else { order }))
}

/// The subset of Python literals a .npy header uses: dicts, tuples/lists, strings, ints, bools.
mod pylit {
    #[derive(Clone, Debug, PartialEq)]
    pub enum Value {
        Str(String),
        Int(i64),
        Bool(bool),
        List(Vec<Value>),
        Dict(Vec<(String, Value)>),
    }

    impl Value {
        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Dict(items) => items.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }
    }

    pub fn parse(s: &str) -> Result<Value, String> {
        let mut p = Parser { s: s.as_bytes(), i: 0 };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err("unexpected text after the header dict".into());
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }
        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.s.get(self.i).copied()
        }
        fn value(&mut self) -> Result<Value, String> {
            match self.peek().ok_or("unexpected end of header")? {
                b'{' => {
                    self.i += 1;
                    let mut items = Vec::new();
                    loop {
                        if self.peek() == Some(b'}') {
                            self.i += 1;
                            return Ok(Value::Dict(items));
                        }
                        let Value::Str(k) = self.value()? else { return Err("dict key is not a string".into()) };
                        if self.peek() != Some(b':') {
                            return Err("expected ':' in header dict".into());
                        }
                        self.i += 1;
                        items.push((k, self.value()?));
                        self.sep(b'}')?;
                    }
                }
                c @ (b'(' | b'[') => {
                    let close = if c == b'(' { b')' } else { b']' };
                    self.i += 1;
                    let mut items = Vec::new();
                    loop {
                        if self.peek() == Some(close) {
                            self.i += 1;
                            return Ok(Value::List(items));
                        }
                        items.push(self.value()?);
                        self.sep(close)?;
                    }
                }
                q @ (b'\'' | b'"') => {
                    self.i += 1;
                    let start = self.i;
                    while self.i < self.s.len() && self.s[self.i] != q {
                        self.i += 1;
                    }
                    if self.i >= self.s.len() {
                        return Err("unterminated string in header".into());
                    }
                    let v = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                    self.i += 1;
                    Ok(Value::Str(v))
                }
                _ => {
                    let start = self.i;
                    while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'-') {
                        self.i += 1;
                    }
                    let word = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                    match word {
                        "True" => Ok(Value::Bool(true)),
                        "False" => Ok(Value::Bool(false)),
                        w => w
                            .trim_end_matches('L')
                            .parse()
                            .map(Value::Int)
                            .map_err(|_| format!("unexpected '{w}' in header")),
                    }
                }
            }
        }
        fn sep(&mut self, close: u8) -> Result<(), String> {
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    Ok(())
                }
                Some(c) if c == close => Ok(()),
                _ => Err("expected ',' in header".into()),
            }
        }
    }
}
