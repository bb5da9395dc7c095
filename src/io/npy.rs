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

#[derive(Clone, Debug)]
struct NpyLayout {
    fields: Vec<Field>,
    itemsize: usize,
    shape: Vec<u64>,
    data_offset: u64,
}

pub struct NpySource {
    path: PathBuf,
    file: File,
    npy: NpyLayout,
    layout: SourceLayout,
}

impl NpySource {
    pub fn open(path: &Path, datasets: &[String]) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let npy = read_header(&mut file).map_err(|what| Error::input(path, format!("bad .npy file: {what}")))?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let elems: u64 = npy.shape.iter().product();
        if npy.data_offset + elems * npy.itemsize as u64 > file_len {
            return Err(Error::input(path, format!("truncated .npy: shape {:?} needs more data than the file holds", npy.shape)));
        }
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
        let structured = npy.fields[0].name.is_some();
        let variables = npy
            .fields
            .iter()
            .map(|f| VariableInfo {
                name: match &f.name {
                    Some(n) => format!("{stem}.{n}"),
                    None => stem.clone(),
                },
                field: f.name.clone(),
                dtype: f.dtype,
                byte_order: f.order,
                error: ErrorBound::LOSSLESS,
                stats: None,
                missing: None,
            })
            .collect();
        let ds = DatasetInfo {
            path: format!("/{stem}"),
            kind: if structured { DatasetKind::Compound } else { DatasetKind::Array },
            shape: npy.shape.clone(),
            chunk_rows: 1,
            attributes: Default::default(),
            variables,
            model: None,
            jagged: None,
        };
        super::select(path, std::slice::from_ref(&ds), datasets)?;
        let layout = SourceLayout {
            kind: SourceKind::Npy,
            name: path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            groups: Vec::new(),
            datasets: vec![ds],
            skipped: Vec::new(),
        };
        Ok(NpySource { path: path.into(), file, npy, layout })
    }
}

impl Source for NpySource {
    fn layout(&self) -> &SourceLayout {
        &self.layout
    }

    fn read_rows(&mut self, _dataset: usize, rows: Range<u64>) -> Result<Vec<Vec<u8>>> {
        let row_items: u64 = self.npy.shape.iter().skip(1).product();
        let item = self.npy.itemsize as u64;
        let start = self.npy.data_offset + rows.start * row_items * item;
        let mut buf = vec![0u8; ((rows.end - rows.start) * row_items * item) as usize];
        self.file.seek(SeekFrom::Start(start)).map_err(|e| Error::io(&self.path, e))?;
        self.file.read_exact(&mut buf).map_err(|e| Error::io(&self.path, e))?;
        if let [f] = &self.npy.fields[..] {
            if f.dtype.size() == self.npy.itemsize {
                // A plain array (or a one-field record): the buffer is the variable.
                let mut buf = buf;
                if f.order == ByteOrder::Be {
                    swap_bytes(f.dtype.size(), &mut buf);
                }
                return Ok(vec![buf]);
            }
        }
        Ok(self.npy.fields.iter().map(|f| extract(&buf, self.npy.itemsize, f)).collect())
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
    out: BufWriter<File>,
    output: AtomicOutput,
    fields: Vec<Field>,
    itemsize: usize,
}

impl NpySink {
    pub fn create(path: &Path, header: &Header, datasets: &[usize]) -> Result<Self> {
        let [d] = datasets else {
            let names: Vec<&str> = datasets.iter().map(|&d| header.datasets[d].name()).collect();
            return Err(Error::Usage(format!(
                "{}: a .npy file holds one dataset and the archive selection has {} ({}): unpack to .h5, or pick one with --dataset",
                path.display(),
                datasets.len(),
                names.join(", ")
            )));
        };
        let ds = &header.datasets[*d];
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
        let descr = if ds.kind == DatasetKind::Compound {
            let items: Vec<String> = fields
                .iter()
                .map(|f| format!("('{}', '{}')", f.name.as_deref().unwrap_or(""), descr_of(f)))
                .collect();
            format!("[{}]", items.join(", "))
        } else {
            format!("'{}'", descr_of(&fields[0]))
        };
        let shape: Vec<String> = ds.shape.iter().map(|s| s.to_string()).collect();
        let shape = if shape.len() == 1 { format!("({},)", shape[0]) } else { format!("({})", shape.join(", ")) };
        let mut dict = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}");
        // Version 1 holds a header up to 65535 bytes; pad so data starts 64-byte aligned.
        let (version, len_bytes) = if dict.len() + 12 < 65000 { (1u8, 2) } else { (2u8, 4) };
        let total = 6 + 2 + len_bytes + dict.len() + 1;
        dict.push_str(&" ".repeat((64 - total % 64) % 64));
        dict.push('\n');
        let output = AtomicOutput::new(path)?;
        let file = File::create(output.tmp_path()).map_err(|e| Error::io(path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut head = Vec::new();
        head.extend_from_slice(&MAGIC);
        head.extend_from_slice(&[version, 0]);
        if version == 1 {
            head.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        } else {
            head.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        }
        head.extend_from_slice(dict.as_bytes());
        out.write_all(&head).map_err(|e| Error::io(path, e))?;
        Ok(NpySink { out, output, fields, itemsize: offset })
    }
}

fn descr_of(f: &Field) -> String {
    let (kind, size) = f.dtype.numpy_kind();
    let order = if size == 1 { '|' } else if f.order == ByteOrder::Be { '>' } else { '<' };
    format!("{order}{kind}{size}")
}

impl Sink for NpySink {
    fn write_rows(&mut self, _dataset: usize, _rows: Range<u64>, vars: &[Vec<u8>]) -> Result<()> {
        if let [f] = &self.fields[..] {
            if f.order == ByteOrder::Le && f.dtype.size() == self.itemsize {
                return self.out.write_all(&vars[0]).map_err(|e| Error::io(self.output.dest(), e));
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
        self.out.write_all(&buf).map_err(|e| Error::io(self.output.dest(), e))
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let NpySink { out, output, .. } = *self;
        let file = out.into_inner().map_err(|e| Error::io(output.dest(), e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(output.dest(), e))?;
        drop(file);
        output.commit()
    }
}

fn read_header(file: &mut File) -> Result<NpyLayout, String> {
    let mut pre = [0u8; 8];
    file.read_exact(&mut pre).map_err(|_| "too short")?;
    if pre[..6] != MAGIC {
        return Err("no NUMPY magic".into());
    }
    // Magic, major, minor, then the header length: u16 in version 1, u32 in versions 2 and 3.
    let (hlen, pre_len) = match pre[6] {
        1 => {
            let mut l = [0u8; 2];
            file.read_exact(&mut l).map_err(|_| "too short")?;
            (u16::from_le_bytes(l) as usize, 10)
        }
        2 | 3 => {
            let mut l = [0u8; 4];
            file.read_exact(&mut l).map_err(|_| "too short")?;
            (u32::from_le_bytes(l) as usize, 12)
        }
        v => return Err(format!("unknown format version {v}")),
    };
    if hlen > 1 << 24 {
        return Err(format!("header length {hlen} is implausible"));
    }
    let mut dict = vec![0u8; hlen];
    file.read_exact(&mut dict).map_err(|_| "header runs past the end of the file")?;
    let dict = String::from_utf8(dict).map_err(|_| "header is not text")?;
    let value = pylit::parse(&dict)?;
    let get = |k: &str| value.get(k).ok_or_else(|| format!("header has no '{k}'"));
    if get("fortran_order")? != &pylit::Value::Bool(false) {
        return Err("Fortran-ordered arrays are not supported: save with np.ascontiguousarray".into());
    }
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
    let (fields, itemsize) = match get("descr")? {
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
    let data_offset = (pre_len + hlen) as u64;
    Ok(NpyLayout { fields, itemsize, shape, data_offset })
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
    #[derive(Debug, PartialEq)]
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
