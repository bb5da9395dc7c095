//! Writes tables back as an RNTuple (binary format 1.0) into a ROOT file being written: the
//! header envelope, the pages of one cluster (byte-split encodings, compressed with ROOT's
//! blocks, each followed by its XXH3-64 as ROOT writes them), the page list, the footer and
//! the anchor key, in that order, the layout ROOT's own writer uses.

use oxyroot::RootFile;

use super::decode::ty;
use super::read::{Anchor, ROLE_COLLECTION, ROLE_LEAF, ROLE_RECORD};
use super::wire::{envelope, Locator, Writer, FOOTER, HEADER, PAGE_LIST};
use super::ANCHOR_CLASS;
use crate::dtype::DType;

/// A field to write, its values little-endian as the codec holds them.
pub enum Field {
    Leaf { name: String, dtype: DType, bytes: Vec<u8> },
    /// A `std::vector` of one number per item (one member named ""), or a collection of
    /// records of numbers (members named).
    Vector { name: String, members: Vec<(String, DType, Vec<u8>)>, counts: Vec<u64> },
    Record { name: String, children: Vec<Field> },
}

impl Field {
    pub fn name(&self) -> &str {
        match self {
            Field::Leaf { name, .. } | Field::Vector { name, .. } | Field::Record { name, .. } => name,
        }
    }
}

fn type_name(d: DType) -> &'static str {
    match d {
        DType::Bool => "bool",
        DType::I8 => "std::int8_t",
        DType::U8 => "std::uint8_t",
        DType::I16 => "std::int16_t",
        DType::U16 => "std::uint16_t",
        DType::I32 => "std::int32_t",
        DType::U32 => "std::uint32_t",
        DType::I64 => "std::int64_t",
        DType::U64 => "std::uint64_t",
        DType::F32 => "float",
        DType::F64 => "double",
    }
}

/// The column type ROOT writes for a field of `d` when compressing: byte-split (zigzag for
/// signed integers), so the compressor sees like bytes together.
fn column_type(d: DType) -> (u16, u16) {
    match d {
        DType::Bool => (ty::BIT, 1),
        DType::I8 => (ty::INT8, 8),
        DType::U8 => (ty::UINT8, 8),
        DType::I16 => (ty::SPLIT_INT16, 16),
        DType::U16 => (ty::SPLIT_UINT16, 16),
        DType::I32 => (ty::SPLIT_INT32, 32),
        DType::U32 => (ty::SPLIT_UINT32, 32),
        DType::I64 => (ty::SPLIT_INT64, 64),
        DType::U64 => (ty::SPLIT_UINT64, 64),
        DType::F32 => (ty::SPLIT_REAL32, 32),
        DType::F64 => (ty::SPLIT_REAL64, 64),
    }
}

/// A column's elements as the codec holds them: numbers of `DType`, or collection offsets.
enum Data<'a> {
    Values(DType, &'a [u8]),
    Offsets(Vec<u64>),
}

struct Schema<'a> {
    fields: Vec<(u32, u16, String, String)>,
    columns: Vec<(u16, u16, u32, Data<'a>)>,
}

impl<'a> Schema<'a> {
    fn add(&mut self, parent: Option<u32>, name: &str, type_name: &str, role: u16) -> u32 {
        let id = self.fields.len() as u32;
        self.fields.push((parent.unwrap_or(id), role, name.to_string(), type_name.to_string()));
        id
    }

    fn field(&mut self, parent: Option<u32>, f: &'a Field) {
        match f {
            Field::Leaf { name, dtype, bytes } => {
                let id = self.add(parent, name, type_name(*dtype), ROLE_LEAF);
                let (t, b) = column_type(*dtype);
                self.columns.push((t, b, id, Data::Values(*dtype, bytes)));
            }
            Field::Record { name, children } => {
                let id = self.add(parent, name, "", ROLE_RECORD);
                children.iter().for_each(|c| self.field(Some(id), c));
            }
            Field::Vector { name, members, counts } => {
                let plain = members.len() == 1 && members[0].0.is_empty();
                let tn = if plain { format!("std::vector<{}>", type_name(members[0].1)) } else { String::new() };
                let id = self.add(parent, name, &tn, ROLE_COLLECTION);
                let mut end = 0u64;
                let offsets = counts
                    .iter()
                    .map(|&c| {
                        end += c;
                        end
                    })
                    .collect();
                self.columns.push((ty::SPLIT_INDEX64, 64, id, Data::Offsets(offsets)));
                let item = if plain { id } else { self.add(Some(id), "_0", "", ROLE_RECORD) };
                for (m, d, bytes) in members {
                    let mid = self.add(Some(item), if plain { "_0" } else { m }, type_name(*d), ROLE_LEAF);
                    let (t, b) = column_type(*d);
                    self.columns.push((t, b, mid, Data::Values(*d, bytes)));
                }
            }
        }
    }
}

/// The unsplit column type of a split one: same values, each element's bytes together. Split
/// byte planes suit most columns; a column whose values repeat row after row (an event listed
/// once per muon pair) compresses better unsplit, where LZ matching sees whole repeated values.
fn unsplit(t: u16) -> Option<u16> {
    Some(match t {
        ty::SPLIT_INT16 => ty::INT16,
        ty::SPLIT_UINT16 => ty::UINT16,
        ty::SPLIT_INT32 => ty::INT32,
        ty::SPLIT_UINT32 => ty::UINT32,
        ty::SPLIT_INT64 => ty::INT64,
        ty::SPLIT_UINT64 => ty::UINT64,
        ty::SPLIT_REAL32 => ty::REAL32,
        ty::SPLIT_REAL64 => ty::REAL64,
        ty::SPLIT_INDEX64 => ty::INDEX64,
        _ => return None,
    })
}

/// Elements a page holds at most: ROOT's default page is at most 1 MiB uncompressed.
fn page_elements(bits: u16) -> usize {
    ((1usize << 23) / bits as usize).max(1)
}

/// Elements `range` of a column, encoded for its column type: split byte planes, zigzag for
/// signed integers, delta within the page for offsets, bits LSB first for booleans.
fn encode_page(t: u16, data: &Data, range: std::ops::Range<usize>) -> Vec<u8> {
    let n = range.len();
    let split = unsplit(t).is_some();
    let (w, vals): (usize, Vec<u64>) = match data {
        Data::Offsets(o) if !split => (8, o[range].to_vec()),
        Data::Offsets(o) => {
            let mut prev = None;
            (8, o[range].iter().map(|&v| prev.replace(v).map_or(v, |p| v.wrapping_sub(p))).collect())
        }
        Data::Values(d, bytes) if !split && *d != DType::Bool => return bytes[range.start * d.size()..range.end * d.size()].to_vec(),
        Data::Values(d, bytes) => {
            let s = d.size();
            let b = &bytes[range.start * s..range.end * s];
            if *d == DType::Bool {
                let mut out = vec![0u8; n.div_ceil(8)];
                for (i, &x) in b.iter().enumerate() {
                    out[i / 8] |= ((x != 0) as u8) << (i % 8);
                }
                return out;
            }
            if s == 1 {
                return b.to_vec();
            }
            let zig = matches!(t, ty::SPLIT_INT16 | ty::SPLIT_INT32 | ty::SPLIT_INT64);
            let vals = b
                .chunks_exact(s)
                .map(|c| {
                    let mut x = [0u8; 8];
                    x[..s].copy_from_slice(c);
                    let u = u64::from_le_bytes(x);
                    if zig {
                        let sh = 64 - 8 * s as u32;
                        let v = ((u << sh) as i64) >> sh;
                        ((v << 1) ^ (v >> 63)) as u64
                    } else {
                        u
                    }
                })
                .collect();
            (s, vals)
        }
    };
    if !split {
        return vals.iter().flat_map(|v| v.to_le_bytes()[..w].to_vec()).collect();
    }
    let mut out = vec![0u8; n * w];
    for (i, v) in vals.iter().enumerate() {
        for (k, byte) in v.to_le_bytes()[..w].iter().enumerate() {
            out[k * n + i] = *byte;
        }
    }
    out
}

fn column_len(data: &Data) -> usize {
    match data {
        Data::Offsets(o) => o.len(),
        Data::Values(d, b) => b.len() / d.size(),
    }
}

/// Split or not, whichever compresses the column's first page smaller.
fn choose_encoding(t: u16, bits: u16, data: &Data, compression: i32) -> Result<u16, String> {
    let Some(plain) = unsplit(t) else { return Ok(t) };
    if compression <= 0 {
        return Ok(plain);
    }
    let page = 0..column_len(data).min(page_elements(bits));
    let size = |t| oxyroot::compress_blocks(encode_page(t, data, page.clone()), compression).map(|b| b.len()).map_err(|e| format!("{e:?}"));
    Ok(if size(plain)? < size(t)? { plain } else { t })
}

fn put_blob(file: &mut RootFile, payload: Vec<u8>) -> Result<u64, String> {
    file.put_stored_key("RBlob", "", "", payload, false).map(|o| o as u64).map_err(|e| e.to_string())
}

/// A metadata block as ROOT stores it: compressed with the file's setting when that shrinks it.
fn put_envelope(file: &mut RootFile, env: Vec<u8>, compression: i32) -> Result<(Locator, u64), String> {
    let len = env.len() as u64;
    let stored = oxyroot::compress_blocks(env, compression).map_err(|e| format!("{e:?}"))?;
    let size = stored.len() as u64;
    Ok((Locator { size, offset: put_blob(file, stored)? }, len))
}

/// Writes RNTuple `name` of `entries` entries holding `fields` into `file`, its pages
/// compressed with ROOT setting `compression` (0 stores them).
pub fn write(file: &mut RootFile, name: &str, entries: u64, fields: &[Field], compression: i32) -> Result<(), String> {
    let mut schema = Schema { fields: Vec::new(), columns: Vec::new() };
    fields.iter().for_each(|f| schema.field(None, f));
    for c in &mut schema.columns {
        c.0 = choose_encoding(c.0, c.1, &c.3, compression)?;
    }
    let mut h = Writer::new();
    h.u64(0);
    h.string(name);
    h.string("");
    h.string(&format!("balerfile {}", env!("CARGO_PKG_VERSION")));
    h.list(schema.fields.len() as u32, |w| {
        for (parent, role, fname, tname) in &schema.fields {
            w.record(|w| {
                w.u32(0);
                w.u32(0);
                w.u32(*parent);
                w.u16(*role);
                w.u16(0);
                w.string(fname);
                w.string(tname);
                w.string("");
                w.string("");
            });
        }
    });
    h.list(schema.columns.len() as u32, |w| {
        for (t, bits, field, _) in &schema.columns {
            w.record(|w| {
                w.u16(*t);
                w.u16(*bits);
                w.u32(*field);
                w.u16(0);
                w.u16(0);
            });
        }
    });
    h.list(0, |_| {});
    h.list(0, |_| {});
    let (header, header_sum) = envelope(HEADER, &h.buf);
    let (header_loc, header_len) = put_envelope(file, header, compression)?;
    // Pages, column by column, each followed by its checksum.
    let mut pages: Vec<Vec<(u64, Locator)>> = Vec::with_capacity(schema.columns.len());
    for (t, bits, _, data) in &schema.columns {
        let n = column_len(data);
        let mut list = Vec::new();
        let step = page_elements(*bits);
        let mut at = 0;
        while at < n {
            let end = (at + step).min(n);
            let raw = encode_page(*t, data, at..end);
            let mut stored = oxyroot::compress_blocks(raw, compression).map_err(|e| format!("{e:?}"))?;
            let size = stored.len() as u64;
            let sum = xxhash_rust::xxh3::xxh3_64(&stored);
            stored.extend_from_slice(&sum.to_le_bytes());
            list.push(((end - at) as u64, Locator { size, offset: put_blob(file, stored)? }));
            at = end;
        }
        pages.push(list);
    }
    let mut p = Writer::new();
    p.u64(header_sum);
    p.list(1, |w| {
        w.record(|w| {
            w.u64(0);
            w.u64(entries);
        })
    });
    p.list(1, |w| {
        w.list(pages.len() as u32, |w| {
            for list in &pages {
                w.list(list.len() as u32, |w| {
                    for &(n, loc) in list {
                        // Negative: a checksum follows the page.
                        w.buf.extend_from_slice(&(-(n as i32)).to_le_bytes());
                        w.locator(loc);
                    }
                    w.i64(0);
                    w.u32(compression.max(0) as u32);
                });
            }
        })
    });
    let (page_list, _) = envelope(PAGE_LIST, &p.buf);
    let (pl_loc, pl_len) = put_envelope(file, page_list, compression)?;
    let mut f = Writer::new();
    f.u64(0);
    f.u64(header_sum);
    f.record(|w| (0..4).for_each(|_| w.list(0, |_| {})));
    f.list(1, |w| {
        w.record(|w| {
            w.u64(0);
            w.u64(entries);
            w.u32(1);
            w.u64(pl_len);
            w.locator(pl_loc);
        })
    });
    let (footer, _) = envelope(FOOTER, &f.buf);
    let (footer_loc, footer_len) = put_envelope(file, footer, compression)?;
    let anchor = Anchor {
        version: [1, 0, 0, 1],
        seek_header: header_loc.offset,
        nbytes_header: header_loc.size,
        len_header: header_len,
        seek_footer: footer_loc.offset,
        nbytes_footer: footer_loc.size,
        len_footer: footer_len,
        max_key_size: 1 << 30,
    };
    file.put_stored_key(ANCHOR_CLASS, name, "", anchor.write(), true).map_err(|e| e.to_string())?;
    Ok(())
}
