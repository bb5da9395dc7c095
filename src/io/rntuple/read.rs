//! Reads an RNTuple (ROOT's columnar format, binary format 1.0) from its anchor: the header
//! and footer envelopes, the page lists of every cluster group, then the pages of the columns
//! asked for, checking every checksum on the way. Written from ROOT's published specification
//! (tree/ntuple/doc/BinaryFormatSpecification.md); uproot's reader was read, not copied.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::wire::{open_envelope, Locator, Reader, Res, FOOTER, HEADER, PAGE_LIST};
use xxhash_rust::xxh3::xxh3_64;

/// The streamed `ROOT::RNTuple` object (class version 2): where the header and footer lie.
#[derive(Clone, Copy, Debug, Default)]
pub struct Anchor {
    pub version: [u16; 4],
    pub seek_header: u64,
    pub nbytes_header: u64,
    pub len_header: u64,
    pub seek_footer: u64,
    pub nbytes_footer: u64,
    pub len_footer: u64,
    pub max_key_size: u64,
}

/// The anchor's bytes: byte count and class version, 7 u16/u64 fields (64 bytes), XXH3-64 of
/// those 64 bytes; all big-endian, as ROOT streams objects.
pub const ANCHOR_LEN: usize = 78;

impl Anchor {
    /// From the anchor key's (uncompressed) payload.
    pub fn parse(p: &[u8]) -> Res<Anchor> {
        if p.len() < ANCHOR_LEN {
            return Err(format!("the RNTuple anchor is {} bytes (at least {ANCHOR_LEN})", p.len()));
        }
        let be16 = |o: usize| u16::from_be_bytes(p[o..o + 2].try_into().unwrap());
        let be64 = |o: usize| u64::from_be_bytes(p[o..o + 8].try_into().unwrap());
        if be16(4) < 2 {
            return Err(format!("an RNTuple anchor of class version {} (format 1.0 writes 2)", be16(4)));
        }
        // Later class versions may add fields before the checksum, which stays last.
        let end = p.len() - 8;
        if xxh3_64(&p[6..end]) != be64(end) {
            return Err("the RNTuple anchor's checksum does not match (damaged)".into());
        }
        let a = Anchor {
            version: [be16(6), be16(8), be16(10), be16(12)],
            seek_header: be64(14),
            nbytes_header: be64(22),
            len_header: be64(30),
            seek_footer: be64(38),
            nbytes_footer: be64(46),
            len_footer: be64(54),
            max_key_size: be64(62),
        };
        if a.version[0] != 1 {
            return Err(format!("RNTuple format epoch {} (this reader reads epoch 1, ROOT 6.34 and later)", a.version[0]));
        }
        Ok(a)
    }

    /// The anchor's bytes for these positions (format 1.0.0.1, as uproot 5.7 writes).
    pub fn write(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(ANCHOR_LEN);
        p.extend_from_slice(&(0x4000_0000u32 | 66).to_be_bytes());
        p.extend_from_slice(&2u16.to_be_bytes());
        for v in self.version {
            p.extend_from_slice(&v.to_be_bytes());
        }
        for v in [self.seek_header, self.nbytes_header, self.len_header, self.seek_footer, self.nbytes_footer, self.len_footer, self.max_key_size] {
            p.extend_from_slice(&v.to_be_bytes());
        }
        let sum = xxh3_64(&p[6..]);
        p.extend_from_slice(&sum.to_be_bytes());
        p
    }
}

#[derive(Clone, Debug)]
pub struct FieldDesc {
    pub parent: u32,
    pub role: u16,
    pub flags: u16,
    pub name: String,
    pub type_name: String,
    pub repetition: Option<u64>,
}

pub const ROLE_LEAF: u16 = 0;
pub const ROLE_COLLECTION: u16 = 1;
pub const ROLE_RECORD: u16 = 2;
const FIELD_REPETITIVE: u16 = 1;
pub const FIELD_PROJECTED: u16 = 2;
const FIELD_CHECKSUM: u16 = 4;

#[derive(Clone, Debug)]
pub struct ColumnDesc {
    pub ty: u16,
    pub bits: u16,
    pub field: u32,
    pub repr: u16,
    /// Elements before this one are 0 and have no pages (a column added to a later cluster).
    pub first_element: u64,
    pub range: Option<(f64, f64)>,
}

#[derive(Clone, Debug)]
pub struct PageDesc {
    pub elements: u64,
    pub checksum: bool,
    pub loc: Locator,
}

#[derive(Clone, Debug, Default)]
pub struct ColumnRange {
    pub pages: Vec<PageDesc>,
    /// None: the column is suppressed in this cluster (another representation holds the data).
    pub first: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct Cluster {
    pub first_entry: u64,
    pub entries: u64,
    pub columns: Vec<ColumnRange>,
}

pub struct RNTuple {
    pub name: String,
    pub fields: Vec<FieldDesc>,
    pub columns: Vec<ColumnDesc>,
    pub clusters: Vec<Cluster>,
    pub entries: u64,
    file: File,
    len: u64,
}

fn read_at(file: &File, len: u64, loc: Locator, extra: u64, what: &str) -> Res<Vec<u8>> {
    let want = loc.size.checked_add(extra).ok_or_else(|| format!("{what}: size overflows"))?;
    if loc.offset.checked_add(want).is_none_or(|e| e > len) {
        return Err(format!("{what} ({want} bytes at {}) lies beyond the end of the file ({len} bytes): truncated?", loc.offset));
    }
    let mut buf = vec![0u8; want as usize];
    file.read_exact_at(&mut buf, loc.offset).map_err(|e| format!("{what}: {e}"))?;
    Ok(buf)
}

/// A blob as stored (`stored` bytes) to its `len` uncompressed bytes: equal sizes mean stored
/// as is, else ROOT's compressed blocks.
pub fn inflate(stored: Vec<u8>, len: u64, what: &str) -> Res<Vec<u8>> {
    if stored.len() as u64 == len {
        return Ok(stored);
    }
    // A damaged size must not make us reserve terabytes: no ROOT codec expands more than ~1000x
    // on real data, and a blob whose stated size says more is refused.
    if len / 2048 > stored.len() as u64 + 1024 {
        return Err(format!("{what}: {} bytes cannot inflate to {len}", stored.len()));
    }
    let mut out = vec![0u8; len as usize];
    let n = oxyroot::decompress_blocks(&mut out, &stored).map_err(|e| format!("{what}: {e:?}"))?;
    if n as u64 != len {
        return Err(format!("{what}: decompressed to {n} bytes, expected {len}"));
    }
    Ok(out)
}

impl RNTuple {
    /// Opens the RNTuple `name` of `path` from its anchor key's uncompressed payload.
    pub fn open(path: &std::path::Path, name: &str, anchor: &[u8]) -> Res<RNTuple> {
        let a = Anchor::parse(anchor)?;
        let file = File::open(path).map_err(|e| e.to_string())?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        let blob = |seek: u64, nbytes: u64, ulen: u64, what: &str| -> Res<Vec<u8>> {
            if a.max_key_size > 0 && nbytes > a.max_key_size {
                return Err(format!("{what} is {nbytes} bytes, split over several keys (over {} bytes): not supported", a.max_key_size));
            }
            inflate(read_at(&file, len, Locator { size: nbytes, offset: seek }, 0, what)?, ulen, what)
        };
        let header = blob(a.seek_header, a.nbytes_header, a.len_header, "the header")?;
        let (h, header_sum) = open_envelope(&header, HEADER, a.len_header, "the header")?;
        let mut r = Reader::new(h);
        r.feature_flags("the header")?;
        let name_in = r.string("the ntuple's name")?;
        let _description = r.string("the description")?;
        let _writer = r.string("the writer")?;
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        read_schema(&mut r, &mut fields, &mut columns, "the header")?;
        let footer = blob(a.seek_footer, a.nbytes_footer, a.len_footer, "the footer")?;
        let (f, _) = open_envelope(&footer, FOOTER, a.len_footer, "the footer")?;
        let mut r = Reader::new(f);
        r.feature_flags("the footer")?;
        if r.u64("the footer's header checksum")? != header_sum {
            return Err("the footer belongs to another header (checksums differ)".into());
        }
        let mut ext = r.record("the schema extension")?;
        read_schema(&mut ext, &mut fields, &mut columns, "the schema extension")?;
        let (groups, mut gr) = r.list("the cluster groups")?;
        let mut clusters = Vec::new();
        for g in 0..groups {
            let what = format!("cluster group {g}");
            let mut rec = gr.record(&what)?;
            let _min_entry = rec.u64(&what)?;
            let _span = rec.u64(&what)?;
            let n_clusters = rec.u32(&what)?;
            let (plen, loc) = rec.envelope_link(&what)?;
            let pwhat = format!("the page list of {what}");
            let pl = blob(loc.offset, loc.size, plen, &pwhat)?;
            let (p, _) = open_envelope(&pl, PAGE_LIST, plen, &pwhat)?;
            let before = clusters.len();
            read_page_list(p, header_sum, columns.len(), &mut clusters, &pwhat)?;
            if clusters.len() - before != n_clusters as usize {
                return Err(format!("{what}: {} clusters listed, its page list holds {}", n_clusters, clusters.len() - before));
            }
        }
        clusters.sort_by_key(|c| c.first_entry);
        let mut entries = 0u64;
        for c in &clusters {
            if c.first_entry != entries {
                return Err(format!("a cluster starts at entry {}, after {entries} entries", c.first_entry));
            }
            entries += c.entries;
        }
        if name_in != name {
            return Err(format!("the anchor '{name}' points at an RNTuple named '{name_in}'"));
        }
        for (i, f) in fields.iter().enumerate() {
            if f.parent as usize >= fields.len() || (f.parent as usize > i) {
                return Err(format!("field {} ({}) has parent {}, not a field before it", i, f.name, f.parent));
            }
        }
        for c in &columns {
            if c.field as usize >= fields.len() {
                return Err(format!("a column of field {}, which does not exist", c.field));
            }
        }
        Ok(RNTuple { name: name.to_string(), fields, columns, clusters, entries, file, len })
    }

    /// The on-disk bytes of one page, its checksum checked, inflated to `ceil(n bits / 8)`.
    pub fn page(&self, col: &ColumnDesc, p: &PageDesc, what: &str) -> Res<Vec<u8>> {
        let raw = read_at(&self.file, self.len, p.loc, if p.checksum { 8 } else { 0 }, what)?;
        let body = if p.checksum {
            let (b, sum) = raw.split_at(raw.len() - 8);
            if xxh3_64(b) != u64::from_le_bytes(sum.try_into().unwrap()) {
                return Err(format!("{what}: page checksum mismatch (damaged)"));
            }
            b.to_vec()
        } else {
            raw
        };
        let len = p.elements.checked_mul(col.bits as u64).ok_or_else(|| format!("{what}: size overflows"))?.div_ceil(8);
        inflate(body, len, what)
    }
}

fn read_schema(r: &mut Reader, fields: &mut Vec<FieldDesc>, columns: &mut Vec<ColumnDesc>, what: &str) -> Res<()> {
    let (n, mut fl) = r.list(&format!("{what}'s fields"))?;
    for i in 0..n {
        let w = format!("{what}, field record {i}");
        let mut f = fl.record(&w)?;
        let _version = f.u32(&w)?;
        let _type_version = f.u32(&w)?;
        let mut parent = f.u32(&w)?;
        let role = f.u16(&w)?;
        let flags = f.u16(&w)?;
        let name = f.string(&w)?;
        let type_name = f.string(&w)?;
        let _alias = f.string(&w)?;
        let _description = f.string(&w)?;
        let repetition = if flags & FIELD_REPETITIVE != 0 { Some(f.u64(&w)?) } else { None };
        if flags & FIELD_PROJECTED != 0 {
            f.u32(&w)?;
        }
        if flags & FIELD_CHECKSUM != 0 {
            f.u32(&w)?;
        }
        // Ids continue from the header into the extension; a top-level field is its own parent.
        let id = fields.len() as u32;
        if parent == id {
            parent = id;
        }
        fields.push(FieldDesc { parent, role, flags, name, type_name, repetition });
    }
    let (n, mut cl) = r.list(&format!("{what}'s columns"))?;
    for i in 0..n {
        let w = format!("{what}, column record {i}");
        let mut c = cl.record(&w)?;
        let ty = c.u16(&w)?;
        let bits = c.u16(&w)?;
        let field = c.u32(&w)?;
        let flags = c.u16(&w)?;
        let repr = c.u16(&w)?;
        let first_element = if flags & 1 != 0 { c.i64(&w)?.unsigned_abs() } else { 0 };
        let range = if flags & 2 != 0 { Some((c.f64(&w)?, c.f64(&w)?)) } else { None };
        if bits == 0 || bits > 96 {
            return Err(format!("{w}: {bits} bits an element"));
        }
        columns.push(ColumnDesc { ty, bits, field, repr, first_element, range });
    }
    // Alias columns (views of another field's column) and extra type information: not needed
    // to read the fields' own data.
    r.list(&format!("{what}'s alias columns"))?;
    r.list(&format!("{what}'s extra type information"))?;
    Ok(())
}

fn read_page_list(p: &[u8], header_sum: u64, ncols: usize, clusters: &mut Vec<Cluster>, what: &str) -> Res<()> {
    let mut r = Reader::new(p);
    if r.u64(what)? != header_sum {
        return Err(format!("{what} belongs to another header (checksums differ)"));
    }
    let (n, mut sl) = r.list(what)?;
    let mut summaries = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let mut s = sl.record(what)?;
        let first = s.u64(what)?;
        let word = s.u64(what)?;
        if word >> 56 & 1 != 0 {
            return Err(format!("{what}: a sharded cluster (not in format 1.0 files)"));
        }
        summaries.push((first, word & ((1 << 56) - 1)));
    }
    let (m, mut cl) = r.list(what)?;
    if m != n {
        return Err(format!("{what}: {n} cluster summaries, {m} page ranges"));
    }
    for (first_entry, entries) in summaries {
        let (k, mut cols) = cl.list(what)?;
        if k as usize > ncols {
            return Err(format!("{what}: pages of {k} columns, the schema has {ncols}"));
        }
        let mut columns = Vec::with_capacity(ncols);
        for _ in 0..k {
            let (np, mut pages) = cols.list(what)?;
            let mut cr = ColumnRange::default();
            for _ in 0..np {
                let e = pages.i32(what)?;
                cr.pages.push(PageDesc { elements: e.unsigned_abs() as u64, checksum: e < 0, loc: pages.locator(what)? });
            }
            // The element offset and compression follow the pages inside the column's frame.
            let off = pages.i64(what)?;
            cr.first = (off >= 0).then_some(off as u64);
            columns.push(cr);
        }
        // Columns added after this cluster was written have no pages in it.
        columns.resize(ncols, ColumnRange::default());
        clusters.push(Cluster { first_entry, entries, columns });
    }
    Ok(())
}
