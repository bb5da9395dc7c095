//! Pages to values: each column type of format 1.0 (plain, byte-split, zigzag, delta-coded
//! offsets, bit-packed booleans, truncated and quantised reals) decoded to the field's type,
//! and the fields a table can hold (primitive leaves, `std::vector`/`RVec` of them, records of
//! those) turned into columns and per-entry counts.

use super::read::{ColumnDesc, FieldDesc, RNTuple, ROLE_COLLECTION, ROLE_LEAF, ROLE_RECORD, FIELD_PROJECTED};
use super::wire::Res;
use crate::dtype::DType;

/// One column's elements, widened to a type that holds every column type exactly.
enum Elements {
    I(Vec<i64>),
    U(Vec<u64>),
    F(Vec<f64>),
}

/// The column type codes of format 1.0.
pub mod ty {
    pub const BIT: u16 = 0x00;
    pub const BYTE: u16 = 0x01;
    pub const CHAR: u16 = 0x02;
    pub const INT8: u16 = 0x03;
    pub const UINT8: u16 = 0x04;
    pub const INT16: u16 = 0x05;
    pub const UINT16: u16 = 0x06;
    pub const INT32: u16 = 0x07;
    pub const UINT32: u16 = 0x08;
    pub const INT64: u16 = 0x09;
    pub const UINT64: u16 = 0x0A;
    pub const REAL16: u16 = 0x0B;
    pub const REAL32: u16 = 0x0C;
    pub const REAL64: u16 = 0x0D;
    pub const INDEX32: u16 = 0x0E;
    pub const INDEX64: u16 = 0x0F;
    pub const SPLIT_INT16: u16 = 0x11;
    pub const SPLIT_UINT16: u16 = 0x12;
    pub const SPLIT_INT32: u16 = 0x13;
    pub const SPLIT_UINT32: u16 = 0x14;
    pub const SPLIT_INT64: u16 = 0x15;
    pub const SPLIT_UINT64: u16 = 0x16;
    pub const SPLIT_REAL32: u16 = 0x18;
    pub const SPLIT_REAL64: u16 = 0x19;
    pub const SPLIT_INDEX32: u16 = 0x1A;
    pub const SPLIT_INDEX64: u16 = 0x1B;
    pub const REAL32_TRUNC: u16 = 0x1C;
    pub const REAL32_QUANT: u16 = 0x1D;
}

/// (element bytes, split, zigzag, delta) of the byte-aligned column types, or None.
fn layout(t: u16) -> Option<(usize, bool, bool, bool)> {
    use ty::*;
    Some(match t {
        BYTE | CHAR | INT8 | UINT8 => (1, false, false, false),
        INT16 | UINT16 | REAL16 => (2, false, false, false),
        INT32 | UINT32 | REAL32 | INDEX32 => (4, false, false, false),
        INT64 | UINT64 | REAL64 | INDEX64 => (8, false, false, false),
        SPLIT_INT16 => (2, true, true, false),
        SPLIT_UINT16 => (2, true, false, false),
        SPLIT_INT32 => (4, true, true, false),
        SPLIT_UINT32 | SPLIT_REAL32 => (4, true, false, false),
        SPLIT_INT64 => (8, true, true, false),
        SPLIT_UINT64 | SPLIT_REAL64 => (8, true, false, false),
        SPLIT_INDEX32 => (4, true, false, true),
        SPLIT_INDEX64 => (8, true, false, true),
        _ => return None,
    })
}

fn signed(t: u16) -> bool {
    use ty::*;
    matches!(t, INT8 | INT16 | INT32 | INT64 | SPLIT_INT16 | SPLIT_INT32 | SPLIT_INT64)
}

fn real(t: u16) -> bool {
    use ty::*;
    matches!(t, REAL16 | REAL32 | REAL64 | SPLIT_REAL32 | SPLIT_REAL64 | REAL32_TRUNC | REAL32_QUANT)
}

pub fn is_index(t: u16) -> bool {
    use ty::*;
    matches!(t, INDEX32 | INDEX64 | SPLIT_INDEX32 | SPLIT_INDEX64)
}

/// Whether this reader decodes the column type.
pub fn known(t: u16) -> bool {
    t == ty::BIT || t == ty::REAL32_TRUNC || t == ty::REAL32_QUANT || layout(t).is_some()
}

/// Bit `i` of an LSB-first bit stream.
fn bits_at(b: &[u8], i: u64, n: u32) -> u64 {
    let mut v = 0u64;
    for k in 0..n as u64 {
        let p = i * n as u64 + k;
        v |= ((b[(p / 8) as usize] >> (p % 8)) as u64 & 1) << k;
    }
    v
}

/// Decodes one page of `n` elements of `col` (its bytes already inflated).
fn decode_page(col: &ColumnDesc, b: &[u8], n: usize, out: &mut Elements) -> Res<()> {
    let t = col.ty;
    match t {
        ty::BIT => {
            let Elements::U(v) = out else { unreachable!() };
            v.extend((0..n).map(|i| (b[i / 8] >> (i % 8)) as u64 & 1));
            return Ok(());
        }
        ty::REAL32_TRUNC | ty::REAL32_QUANT => {
            let Elements::F(v) = out else { unreachable!() };
            let bits = col.bits as u32;
            if !(1..=32).contains(&bits) {
                return Err(format!("a {bits}-bit real column"));
            }
            if t == ty::REAL32_TRUNC {
                v.extend((0..n as u64).map(|i| f32::from_bits((bits_at(b, i, bits) as u32) << (32 - bits)) as f64));
            } else {
                let (lo, hi) = col.range.ok_or("a quantised column without its value range")?;
                let scale = (hi - lo) / ((1u64 << bits) - 1) as f64;
                v.extend((0..n as u64).map(|i| (lo + bits_at(b, i, bits) as f64 * scale) as f32 as f64));
            }
            return Ok(());
        }
        _ => {}
    }
    let (w, split, zigzag, delta) = layout(t).ok_or_else(|| format!("column type {t:#x}"))?;
    let elem = |i: usize| -> u64 {
        let mut x = [0u8; 8];
        for k in 0..w {
            x[k] = if split { b[k * n + i] } else { b[i * w + k] };
        }
        u64::from_le_bytes(x)
    };
    match out {
        Elements::F(v) => v.extend((0..n).map(|i| match w {
            2 => half::f16::from_bits(elem(i) as u16).to_f64(),
            4 => f32::from_bits(elem(i) as u32) as f64,
            _ => f64::from_bits(elem(i)),
        })),
        Elements::I(v) => v.extend((0..n).map(|i| {
            let u = elem(i);
            if zigzag {
                ((u >> 1) as i64) ^ -((u & 1) as i64)
            } else {
                // Sign-extend from the element's width.
                let s = 64 - 8 * w as u32;
                ((u << s) as i64) >> s
            }
        })),
        Elements::U(v) => {
            let start = v.len();
            v.extend((0..n).map(elem));
            if delta {
                for i in start + 1..v.len() {
                    v[i] = v[i].wrapping_add(v[i - 1]);
                }
            }
        }
    }
    Ok(())
}

impl RNTuple {
    /// The columns of field `f`'s first representation, in order (one for a leaf, the index
    /// column for a collection).
    fn columns_of(&self, f: usize) -> Vec<usize> {
        let all: Vec<usize> = (0..self.columns.len()).filter(|&c| self.columns[c].field as usize == f).collect();
        let reprs = all.iter().map(|&c| self.columns[c].repr).max().map_or(1, |m| m as usize + 1);
        all.iter().copied().take(all.len() / reprs.max(1)).collect()
    }

    /// Every element of a field's `k`th column across clusters, from whichever representation
    /// holds it in each cluster; index columns become global end offsets.
    fn column(&self, f: usize, k: usize, what: &str) -> Res<Elements> {
        let all: Vec<usize> = (0..self.columns.len()).filter(|&c| self.columns[c].field as usize == f).collect();
        let per = self.columns_of(f).len().max(1);
        let candidates: Vec<usize> = all.iter().copied().skip(k).step_by(per).collect();
        let first = &self.columns[*candidates.first().ok_or_else(|| format!("{what}: no column"))?];
        let mut out = if first.ty == ty::BIT || is_index(first.ty) || (!signed(first.ty) && !real(first.ty)) {
            Elements::U(Vec::new())
        } else if real(first.ty) {
            Elements::F(Vec::new())
        } else {
            Elements::I(Vec::new())
        };
        let index = is_index(first.ty);
        let mut base = 0u64;
        let mut count = 0u64;
        for (ci, cl) in self.clusters.iter().enumerate() {
            let Some(&c) = candidates.iter().find(|&&c| cl.columns[c].first.is_some() && !cl.columns[c].pages.is_empty()).or_else(|| candidates.iter().find(|&&c| cl.columns[c].first.is_some()))
            else {
                continue;
            };
            let col = &self.columns[c];
            let kind = |t: u16| (t == ty::BIT || is_index(t) || (!signed(t) && !real(t)), real(t));
            if kind(col.ty) != kind(first.ty) {
                return Err(format!("{what}: its representations hold different kinds of values"));
            }
            let start = cl.columns[c].first.unwrap_or(0);
            // A column that begins late (added to the schema later) reads as zeros before.
            if start > count {
                let z = start - count;
                if z > self.entries.saturating_mul(1 << 20) {
                    return Err(format!("{what}: starts at element {start}"));
                }
                match &mut out {
                    Elements::I(v) => v.resize(v.len() + z as usize, 0),
                    Elements::U(v) => v.resize(v.len() + z as usize, if index { base } else { 0 }),
                    Elements::F(v) => v.resize(v.len() + z as usize, 0.0),
                }
                count = start;
            }
            let before = match &out {
                Elements::I(v) => v.len(),
                Elements::U(v) => v.len(),
                Elements::F(v) => v.len(),
            };
            for (pi, p) in cl.columns[c].pages.iter().enumerate() {
                let pw = format!("{what}, cluster {ci}, page {pi}");
                let b = self.page(col, p, &pw)?;
                decode_page(col, &b, p.elements as usize, &mut out).map_err(|e| format!("{pw}: {e}"))?;
            }
            if index {
                let Elements::U(v) = &mut out else { unreachable!() };
                let mut prev = base;
                for x in &mut v[before..] {
                    *x = x.checked_add(base).ok_or_else(|| format!("{what}: offsets overflow"))?;
                    if *x < prev {
                        return Err(format!("{what}, cluster {ci}: offsets go backwards"));
                    }
                    prev = *x;
                }
                base = prev;
            }
            count += cl.columns[c].pages.iter().map(|p| p.elements).sum::<u64>();
        }
        Ok(out)
    }

    /// The values of a leaf field as `dtype`'s little-endian bytes.
    fn leaf(&self, f: usize, dtype: DType, what: &str) -> Res<Vec<u8>> {
        use crate::dtype::{i64_to_ints, push_value};
        Ok(match self.column(f, 0, what)? {
            // An f32 column widened to f64 and back is the same f32.
            Elements::F(v) if dtype.is_float() => {
                let mut out = Vec::with_capacity(v.len() * dtype.size());
                v.iter().for_each(|&x| push_value(dtype, x, &mut out));
                out
            }
            Elements::I(v) if !dtype.is_float() => i64_to_ints(dtype, &v),
            Elements::U(v) if !dtype.is_float() => i64_to_ints(dtype, &v.iter().map(|&x| x as i64).collect::<Vec<_>>()),
            _ => return Err(format!("{what}: a {} field whose columns hold another kind of number", dtype.name())),
        })
    }

    /// Per-entry item counts of collection field `f`.
    fn counts(&self, f: usize, what: &str) -> Res<Vec<u64>> {
        let Elements::U(ends) = self.column(f, 0, what)? else { return Err(format!("{what}: no offset column")) };
        if ends.len() as u64 != self.entries {
            return Err(format!("{what}: {} offsets for {} entries", ends.len(), self.entries));
        }
        let mut prev = 0;
        Ok(ends
            .iter()
            .map(|&e| {
                let c = e - prev;
                prev = e;
                c
            })
            .collect())
    }
}

/// A table-shaped piece of an RNTuple: a flat column (one value per entry) or a jagged group
/// (members sharing one per-entry count).
pub enum Part {
    Flat { name: String, dtype: DType, bytes: Vec<u8> },
    Jagged { name: String, members: Vec<(String, DType, Vec<u8>)>, counts: Vec<u64> },
}

impl RNTuple {
    fn children(&self, f: usize) -> Vec<usize> {
        (0..self.fields.len()).filter(|&c| c != f && self.fields[c].parent as usize == f).collect()
    }

    /// A primitive leaf with its own column, whose every column type this reader decodes.
    fn plain_leaf(&self, f: usize) -> Option<DType> {
        let fd: &FieldDesc = &self.fields[f];
        let cols = self.columns_of(f);
        let ok = fd.role == ROLE_LEAF && fd.repetition.is_none() && fd.flags & FIELD_PROJECTED == 0 && cols.len() == 1;
        let all_known = (0..self.columns.len()).filter(|&c| self.columns[c].field as usize == f).all(|c| known(self.columns[c].ty));
        DType::from_cpp(&fd.type_name).filter(|_| ok && all_known)
    }

    /// The top-level fields as table parts, and the fields left out with why.
    pub fn parts(&self, wanted: &dyn Fn(&str) -> bool) -> Res<(Vec<Part>, Vec<(String, String)>)> {
        let mut parts = Vec::new();
        let mut skipped = Vec::new();
        let tops: Vec<usize> = (0..self.fields.len()).filter(|&f| self.fields[f].parent as usize == f).collect();
        for f in tops {
            self.part(f, &self.fields[f].name.clone(), wanted, &mut parts, &mut skipped)?;
        }
        Ok((parts, skipped))
    }

    fn part(&self, f: usize, name: &str, wanted: &dyn Fn(&str) -> bool, parts: &mut Vec<Part>, skipped: &mut Vec<(String, String)>) -> Res<()> {
        if !wanted(name) {
            return Ok(());
        }
        let fd = &self.fields[f];
        let what = format!("field '{name}'");
        if fd.flags & FIELD_PROJECTED != 0 {
            skipped.push((name.into(), format!("a projected field ({}: a view of another field's data)", fd.type_name)));
            return Ok(());
        }
        if let Some(d) = self.plain_leaf(f) {
            let bytes = self.leaf(f, d, &what)?;
            if bytes.len() as u64 != self.entries * d.size() as u64 {
                return Err(format!("{what}: {} values for {} entries", bytes.len() / d.size(), self.entries));
            }
            parts.push(Part::Flat { name: name.into(), dtype: d, bytes });
            return Ok(());
        }
        let kids = self.children(f);
        if fd.role == ROLE_RECORD && fd.repetition.is_none() {
            for k in kids {
                let sub = format!("{name}.{}", self.fields[k].name);
                self.part(k, &sub, &|_| true, parts, skipped)?;
            }
            return Ok(());
        }
        if fd.role == ROLE_COLLECTION && kids.len() == 1 && self.columns_of(f).len() == 1 {
            let item = kids[0];
            // The items: one primitive leaf (std::vector<float>), or a record of them (an
            // awkward list of records, a vector of a struct).
            let members: Option<Vec<(usize, String, DType)>> = if let Some(d) = self.plain_leaf(item) {
                Some(vec![(item, name.to_string(), d)])
            } else if self.fields[item].role == ROLE_RECORD && self.fields[item].repetition.is_none() {
                self.children(item).into_iter().map(|m| self.plain_leaf(m).map(|d| (m, format!("{name}.{}", self.fields[m].name), d))).collect()
            } else {
                None
            };
            if let Some(members) = members.filter(|m| !m.is_empty()) {
                let counts = self.counts(f, &what)?;
                let total: u64 = counts.iter().sum();
                let mut cols = Vec::new();
                for (m, mname, d) in members {
                    let bytes = self.leaf(m, d, &format!("field '{mname}'"))?;
                    if bytes.len() as u64 != total * d.size() as u64 {
                        return Err(format!("field '{mname}': {} values, its collection's offsets say {total}", bytes.len() / d.size()));
                    }
                    cols.push((mname, d, bytes));
                }
                parts.push(Part::Jagged { name: name.into(), members: cols, counts });
                return Ok(());
            }
        }
        let why = match fd.type_name.as_str() {
            "std::string" => "text (std::string)".to_string(),
            t if fd.repetition.is_some() => format!("a fixed-size array ({t})"),
            t if fd.role == ROLE_COLLECTION => format!("a collection balerfile cannot hold as a table ({t}; vectors of numbers or of records of numbers can)"),
            "" => "a field of a kind balerfile cannot hold as a table".into(),
            t => format!("of type {t}"),
        };
        skipped.push((name.into(), why));
        Ok(())
    }
}
