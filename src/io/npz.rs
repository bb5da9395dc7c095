//! NumPy `.npz` files: a zip archive of `.npy` members (`np.savez` stores them, `np.savez_compressed`
//! deflates them). Every numeric member is a dataset named after it; Baler's layout (`data`,
//! events x columns, beside `names`, one string per column) reads as a table with named columns,
//! because the string member `names` becomes the `names` attribute of `data` (`X_names` that of
//! `X`), which `io::table` takes the column names from.
//!
//! Stored members are read in place by seeking; deflated ones are streamed, restarting only when
//! a read goes back. Each member's CRC-32 is checked whenever a pass reads it through.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Take};
use std::ops::Range;
use std::path::{Path, PathBuf};

use flate2::read::DeflateDecoder;

use super::npy::{self, NpyHeader, NpyLayout};
use super::zip::{self, Entry, ZipWriter};
use super::{Sink, Source, SourceLayout};
use crate::atomic::AtomicOutput;
use crate::error::{Error, Result};
use crate::header::{Attribute, DatasetInfo, DatasetKind, Header, Skipped, SourceKind};

/// The attribute a string member becomes (and the member `unpack` writes it back to).
const NAMES: &str = "names";
/// String members larger than this are not column names: skipped, not loaded.
const MAX_NAMES_BYTES: u64 = 64 << 20;
/// A read that starts this close to where the CRC pass stands catches up instead of giving up
/// the check (the `.npy` header before the first row, mostly).
const CATCH_UP: u64 = 1 << 20;

fn member_error(path: &Path, member: &str, what: impl std::fmt::Display) -> Error {
    Error::input(path, format!("member {member}: {what}"))
}

/// Reads one member's (uncompressed) bytes by offset, checking its CRC-32 on every pass that
/// reads it from the start to the end.
struct MemberReader {
    path: PathBuf,
    entry: Entry,
    /// Where its (possibly compressed) data starts in the file.
    start: u64,
    /// How far the current pass has read.
    pos: u64,
    /// The CRC of bytes `0..pos`; None once a pass skipped bytes without reading them.
    crc: Option<crc32fast::Hasher>,
    /// A deflated member's decoder, standing at `pos`.
    inflate: Option<DeflateDecoder<BufReader<Take<File>>>>,
}

impl MemberReader {
    fn err(&self, what: impl std::fmt::Display) -> Error {
        member_error(&self.path, &self.entry.name, what)
    }

    fn io_err(&self, e: std::io::Error) -> Error {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof => self.err("damaged: its data ends early"),
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                self.err(format!("damaged compressed data ({e})"))
            }
            _ => Error::io(&self.path, e),
        }
    }

    fn restart(&mut self) -> Result<()> {
        self.pos = 0;
        self.crc = Some(crc32fast::Hasher::new());
        if self.entry.method == zip::DEFLATED {
            // Its own handle: the stored members' reads move the shared file's offset.
            let mut f = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
            f.seek(SeekFrom::Start(self.start)).map_err(|e| Error::io(&self.path, e))?;
            self.inflate = Some(DeflateDecoder::new(BufReader::with_capacity(1 << 16, f.take(self.entry.compressed))));
        }
        Ok(())
    }

    /// Reads at the current position, hashing what it reads.
    fn read_on(&mut self, file: &mut File, buf: &mut [u8]) -> Result<()> {
        let res = match &mut self.inflate {
            Some(d) => d.read_exact(buf),
            None => file.seek(SeekFrom::Start(self.start + self.pos)).and_then(|_| file.read_exact(buf)),
        };
        res.map_err(|e| self.io_err(e))?;
        if let Some(h) = &mut self.crc {
            h.update(buf);
        }
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// Reads and hashes up to `to` (deflated data must be decoded through anyway).
    fn skip_to(&mut self, file: &mut File, to: u64) -> Result<()> {
        let mut scratch = vec![0u8; (to - self.pos).min(1 << 16) as usize];
        while self.pos < to {
            let n = (to - self.pos).min(scratch.len() as u64) as usize;
            self.read_on(file, &mut scratch[..n])?;
        }
        Ok(())
    }

    fn read_at(&mut self, file: &mut File, at: u64, buf: &mut [u8]) -> Result<()> {
        if at.checked_add(buf.len() as u64).is_none_or(|end| end > self.entry.size) {
            return Err(self.err("a read past its end"));
        }
        if at < self.pos || (self.inflate.is_none() && self.entry.method == zip::DEFLATED) {
            self.restart()?;
        }
        if at > self.pos {
            if self.inflate.is_some() || at - self.pos <= CATCH_UP {
                self.skip_to(file, at)?;
            } else {
                // A stored member read with gaps: seek; this pass checks no CRC.
                self.crc = None;
                self.pos = at;
            }
        }
        self.read_on(file, buf)?;
        if self.pos == self.entry.size {
            self.check_crc()?;
        }
        Ok(())
    }

    /// After the array's last byte: reads whatever follows it in the member, so the CRC covers
    /// the whole member.
    fn read_to_end(&mut self, file: &mut File) -> Result<()> {
        if self.crc.is_some() && self.pos < self.entry.size {
            self.skip_to(file, self.entry.size)?;
            self.check_crc()?;
        }
        Ok(())
    }

    fn check_crc(&mut self) -> Result<()> {
        if let Some(h) = self.crc.take() {
            let crc = h.finalize();
            if crc != self.entry.crc {
                return Err(self.err(format!("damaged: CRC-32 {crc:08x}, the archive says {:08x}", self.entry.crc)));
            }
        }
        Ok(())
    }

    fn read_all(&mut self, file: &mut File) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.entry.size as usize];
        self.read_at(file, 0, &mut buf)?;
        Ok(buf)
    }
}

/// `Read` over a member from its start (to parse its `.npy` header).
struct MemberCursor<'a> {
    reader: &'a mut MemberReader,
    file: &'a mut File,
    error: Option<Error>,
}

impl Read for MemberCursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let at = self.reader.pos;
        let n = (self.reader.entry.size - at).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        if let Err(e) = self.reader.read_at(self.file, at, &mut buf[..n]) {
            self.error = Some(e);
            return Err(std::io::Error::other("member read failed"));
        }
        Ok(n)
    }
}

struct Member {
    reader: MemberReader,
    npy: NpyLayout,
}

pub struct NpzSource {
    file: File,
    members: Vec<Member>,
    layout: SourceLayout,
}

/// A member's name as a dataset: without `.npy`; a folder in it would read as an HDF5 group.
fn dataset_name(member: &str) -> String {
    member.strip_suffix(".npy").unwrap_or(member).replace('/', "_")
}

impl NpzSource {
    pub fn open(path: &Path, datasets: &[String]) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let entries = zip::read_directory(&mut file, len).map_err(|w| Error::input(path, format!("not a valid .npz (zip) archive: {w}")))?;
        let npy_members = entries.iter().filter(|e| e.name.ends_with(".npy")).count();
        if npy_members == 0 {
            let names: Vec<&str> = entries.iter().take(5).map(|e| e.name.as_str()).collect();
            return Err(Error::input(
                path,
                format!(
                    "a zip archive but not a NumPy .npz: none of its {} members is a .npy array{}",
                    entries.len(),
                    if names.is_empty() { String::new() } else { format!(" ({}{})", names.join(", "), if entries.len() > 5 { ", ..." } else { "" }) }
                ),
            ));
        }
        let mut members: Vec<Member> = Vec::new();
        let mut infos: Vec<DatasetInfo> = Vec::new();
        let mut texts: Vec<(MemberReader, NpyHeader, npy::TextType)> = Vec::new();
        let mut skipped = Vec::new();
        for entry in entries {
            let name = entry.name.clone();
            if name.ends_with('/') {
                continue;
            }
            if !name.ends_with(".npy") {
                skipped.push(Skipped { path: name, reason: "not a .npy array".into() });
                continue;
            }
            if entry.encrypted() {
                return Err(member_error(path, &name, "encrypted, which .npz files never are"));
            }
            if entry.method != zip::STORED && entry.method != zip::DEFLATED {
                return Err(member_error(path, &name, format!("compression method {} (only stored and deflated are supported)", entry.method)));
            }
            if entry.method == zip::STORED && entry.compressed != entry.size {
                return Err(member_error(path, &name, "damaged: a stored member whose sizes differ"));
            }
            let start = zip::data_start(&mut file, &entry, len).map_err(|w| member_error(path, &name, w))?;
            let mut reader = MemberReader { path: path.into(), entry, start, pos: 0, crc: None, inflate: None };
            reader.restart()?;
            let header = {
                let mut cur = MemberCursor { reader: &mut reader, file: &mut file, error: None };
                let h = NpyHeader::read(&mut cur);
                if let Some(e) = cur.error {
                    return Err(e);
                }
                h.map_err(|w| member_error(path, &name, format!("not a .npy array: {w}")))?
            };
            let dname = dataset_name(&name);
            if infos.iter().any(|d| d.name() == dname) || texts.iter().any(|t| dataset_name(&t.0.entry.name) == dname) {
                return Err(member_error(path, &name, format!("a second array named '{dname}'")));
            }
            match header.layout() {
                Ok(npy) => {
                    let need = npy.data_bytes().and_then(|n| n.checked_add(npy.data_offset));
                    if need.is_none_or(|n| n > reader.entry.size) {
                        return Err(member_error(
                            path,
                            &name,
                            format!("damaged: shape {:?} needs more bytes than its {} (truncated?)", npy.shape, reader.entry.size),
                        ));
                    }
                    infos.push(npy.dataset_info(&dname));
                    members.push(Member { reader, npy });
                }
                Err(why) => match header.text() {
                    Some(t) => texts.push((reader, header, t)),
                    None => skipped.push(Skipped { path: dname, reason: why }),
                },
            }
        }
        for (mut reader, header, text) in texts {
            let dname = dataset_name(&reader.entry.name);
            let owner = if dname == NAMES { Some("data".to_string()) } else { dname.strip_suffix("_names").map(str::to_string) };
            let target = owner.as_ref().and_then(|o| infos.iter().position(|d| d.name() == o));
            let Some(target) = target.filter(|_| header.shape.len() == 1 && reader.entry.size <= MAX_NAMES_BYTES) else {
                let why = format!(
                    "a string array; only `names` (or `X_names`), 1-D, beside a numeric `data` (or `X`) is kept, as its column names ({NAMES} attribute)"
                );
                skipped.push(Skipped { path: dname, reason: why });
                continue;
            };
            let bytes = reader.read_all(&mut file)?;
            let n = header.elements().unwrap_or(0);
            let body = n
                .checked_mul(text.itemsize() as u64)
                .and_then(|b| bytes.get(header.data_offset as usize..(header.data_offset + b) as usize))
                .ok_or_else(|| member_error(path, &reader.entry.name, "damaged: shorter than its shape says"))?;
            let names = text.decode(body).map_err(|w| member_error(path, &reader.entry.name, format!("holds {w}")))?;
            infos[target].attributes.insert(NAMES.into(), Attribute::strings(&names));
        }
        if infos.is_empty() {
            let why: Vec<String> = skipped.iter().map(|s| format!("{} ({})", s.path, s.reason)).collect();
            return Err(Error::input(path, format!("holds no numeric array to pack; skipped: {}", why.join("; "))));
        }
        for n in datasets {
            let want = n.trim_start_matches('/');
            if let Some(s) = skipped.iter().find(|s| s.path == want) {
                return Err(Error::input(path, format!("dataset '{n}' cannot be packed: {}", s.reason)));
            }
        }
        let keep = super::select(path, &infos, datasets)?;
        if !datasets.is_empty() {
            skipped.clear();
        }
        let mut chosen = Vec::new();
        let mut kept = Vec::new();
        for (i, (info, m)) in infos.into_iter().zip(members).enumerate() {
            if keep.contains(&i) {
                chosen.push(info);
                kept.push(m);
            }
        }
        let layout = SourceLayout {
            kind: SourceKind::Npz,
            name: path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            groups: Vec::new(),
            datasets: chosen,
            skipped,
        };
        Ok(NpzSource { file, members: kept, layout })
    }
}

impl Source for NpzSource {
    fn layout(&self) -> &SourceLayout {
        &self.layout
    }

    fn read_rows(&mut self, dataset: usize, rows: Range<u64>) -> Result<Vec<Vec<u8>>> {
        let m = &mut self.members[dataset];
        let range = m.npy.byte_range(&rows);
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        m.reader.read_at(&mut self.file, range.start, &mut buf)?;
        if rows.end == self.layout.datasets[dataset].rows() {
            m.reader.read_to_end(&mut self.file)?;
        }
        Ok(m.npy.split(buf))
    }
}

/// What one dataset becomes: its member, and its column names' member if it has names.
struct Plan {
    dataset: usize,
    member: String,
    npy: NpyLayout,
    header: Vec<u8>,
    names: Option<(String, Vec<String>)>,
    written: bool,
}

/// Writes every dataset as a member `NAME.npy` (uncompressed, as `np.savez`), a dataset's column
/// names (a `names` string-list attribute, or another name attribute) as the string member
/// `names` beside `data` (`X_names` beside `X`).
pub struct NpzSink {
    zip: ZipWriter<BufWriter<File>>,
    output: AtomicOutput,
    plans: Vec<Plan>,
    /// The plan whose member is open.
    open: Option<usize>,
}

/// A dataset's column names, from the first name attribute that is a string list.
fn names_of(ds: &DatasetInfo) -> Option<Vec<String>> {
    super::table::NAME_ATTRIBUTES.iter().find_map(|a| ds.attributes.get(*a)?.as_strings())
}

impl NpzSink {
    pub fn create(path: &Path, header: &Header, datasets: &[usize]) -> Result<Self> {
        let mut plans: Vec<Plan> = Vec::new();
        for &d in datasets {
            let ds = &header.datasets[d];
            let npy = NpyLayout::of_dataset(ds);
            let stem = ds.name().replace('/', "_");
            let names = names_of(ds).map(|n| (if stem == "data" { NAMES.to_string() } else { format!("{stem}_{NAMES}") }, n));
            let head = npy.header_bytes(ds.kind == DatasetKind::Compound);
            plans.push(Plan { dataset: d, member: stem, npy, header: head, names, written: false });
        }
        let mut seen = std::collections::BTreeSet::new();
        for name in plans.iter().flat_map(|p| std::iter::once(&p.member).chain(p.names.as_ref().map(|n| &n.0))) {
            if !seen.insert(name.clone()) {
                return Err(Error::Usage(format!(
                    "{}: two arrays would be named '{name}.npy' in the .npz: unpack to .h5, or pick datasets with --dataset",
                    path.display()
                )));
            }
        }
        let output = AtomicOutput::new(path)?;
        let file = File::create(output.tmp_path()).map_err(|e| Error::io(path, e))?;
        let zip = ZipWriter::new(BufWriter::with_capacity(1 << 20, file));
        Ok(NpzSink { zip, output, plans, open: None })
    }

    fn start(&mut self, p: usize) -> Result<()> {
        let plan = &self.plans[p];
        let data = plan.npy.data_bytes().ok_or_else(|| Error::Usage(format!("{}: dataset too large", self.output.dest().display())))?;
        let (member, head) = (format!("{}.npy", plan.member), plan.header.clone());
        self.zip.start(&member, head.len() as u64 + data).map_err(|e| Error::io(self.output.dest(), e))?;
        self.zip.write(&head).map_err(|e| Error::io(self.output.dest(), e))?;
        self.open = Some(p);
        Ok(())
    }

    /// Ends the open member, then writes its names member.
    fn end(&mut self) -> Result<()> {
        let Some(p) = self.open.take() else { return Ok(()) };
        let dest = self.output.dest().to_path_buf();
        self.zip.end().map_err(|e| Error::io(&dest, e))?;
        self.plans[p].written = true;
        if let Some((member, names)) = &self.plans[p].names {
            let bytes = npy::text_array(names);
            self.zip.start(&format!("{member}.npy"), bytes.len() as u64).map_err(|e| Error::io(&dest, e))?;
            self.zip.write(&bytes).map_err(|e| Error::io(&dest, e))?;
            self.zip.end().map_err(|e| Error::io(&dest, e))?;
        }
        Ok(())
    }
}

impl Sink for NpzSink {
    fn write_rows(&mut self, dataset: usize, _rows: Range<u64>, vars: &[Vec<u8>]) -> Result<()> {
        let Some(p) = self.plans.iter().position(|p| p.dataset == dataset) else {
            return Err(Error::Usage(format!("{}: dataset {dataset} is not in the selection", self.output.dest().display())));
        };
        if self.open != Some(p) {
            self.end()?;
            self.start(p)?;
        }
        let bytes = self.plans[p].npy.join(vars);
        self.zip.write(&bytes).map_err(|e| Error::io(self.output.dest(), e))
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.end()?;
        // Datasets without rows got no write.
        for p in 0..self.plans.len() {
            if !self.plans[p].written {
                self.start(p)?;
                self.end()?;
            }
        }
        let NpzSink { zip, output, .. } = *self;
        let out = zip.finish().map_err(|e| Error::io(output.dest(), e))?;
        let file = out.into_inner().map_err(|e| Error::io(output.dest(), e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(output.dest(), e))?;
        drop(file);
        output.commit()
    }
}
