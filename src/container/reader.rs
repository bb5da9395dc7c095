use std::fs::File;
use std::path::{Path, PathBuf};

use super::{ChunkEntry, END_MAGIC, INDEX_ENTRY_LEN, MAGIC, PREAMBLE_LEN, TRAILER_LEN};
use crate::error::{Error, Result};
use crate::header::{Header, RootObjectKind, FORMAT_NAME, FORMAT_VERSION};
use crate::wire::Cursor;

/// An open `.baler` file whose structure has been checked end to end (see the format spec);
/// chunks are read on demand, from any thread.
pub struct ArchiveReader {
    path: PathBuf,
    data: Data,
    header: Header,
    index: Vec<ChunkEntry>,
    size: u64,
}

/// Where the archive's bytes are: a file read with positioned reads (any thread, no shared
/// cursor), or bytes already in memory (`balerfile.decompress`, a zarr chunk).
enum Data {
    File(File),
    Bytes(Vec<u8>),
}

impl Data {
    fn len(&self, path: &Path) -> Result<u64> {
        match self {
            Data::File(f) => Ok(f.metadata().map_err(|e| Error::io(path, e))?.len()),
            Data::Bytes(b) => Ok(b.len() as u64),
        }
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            Data::File(f) => read_at(f, buf, offset),
            Data::Bytes(b) => {
                let range = usize::try_from(offset).ok().and_then(|o| Some(o..o.checked_add(buf.len())?)).filter(|r| r.end <= b.len());
                let range = range.ok_or(std::io::ErrorKind::UnexpectedEof)?;
                buf.copy_from_slice(&b[range]);
                Ok(())
            }
        }
    }
}

fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            let n = std::os::windows::fs::FileExt::seek_read(file, &mut buf[done..], offset + done as u64)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }
}

impl ArchiveReader {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Self::with_data(path, Data::File(file))
    }

    /// An archive held in memory; `name` stands for it in error messages.
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<Self> {
        Self::with_data(name, Data::Bytes(bytes))
    }

    fn with_data(path: &Path, file: Data) -> Result<Self> {
        let size = file.len(path)?;
        let corrupt = |what: String| Error::corrupt(path, what);
        let read = |off: u64, len: u64| -> Result<Vec<u8>> {
            let mut buf = vec![0u8; len as usize];
            file.read_at(&mut buf, off).map_err(|e| Error::io(path, e))?;
            Ok(buf)
        };

        if size < 8 || read(0, 8)? != MAGIC {
            return Err(Error::NotBaler { path: path.into(), what: "no .baler magic at the start".into() });
        }
        if size < PREAMBLE_LEN + 4 + TRAILER_LEN {
            return Err(corrupt(format!("only {size} bytes")));
        }
        let pre = read(0, PREAMBLE_LEN)?;
        let mut c = Cursor::new(&pre[8..]);
        let version = c.u32("version").unwrap();
        let flags = c.u32("flags").unwrap();
        let header_len = c.u64("header length").unwrap();
        let chunks_start = PREAMBLE_LEN
            .checked_add(header_len)
            .and_then(|v| v.checked_add(4))
            .filter(|&end| end <= size - TRAILER_LEN)
            .ok_or_else(|| corrupt(format!("header length {header_len} runs past the end of the file")))?;
        let mut head = read(0, chunks_start)?;
        let crc = u32::from_le_bytes(head.split_off(head.len() - 4).try_into().unwrap());
        if crc32fast::hash(&head) != crc {
            return Err(corrupt("header checksum mismatch".into()));
        }
        // Only now, with the preamble checksummed, are version and flags trusted.
        if version != FORMAT_VERSION {
            return Err(Error::Unsupported {
                path: path.into(),
                what: format!("format version {version}; this balerfile reads version {FORMAT_VERSION}"),
            });
        }
        let known = super::FLAG_HEADER_ZSTD | super::FLAG_HEADER_DICT_1;
        if flags & !known != 0 {
            return Err(Error::Unsupported { path: path.into(), what: format!("unknown flags {flags:#x}") });
        }
        if flags & super::FLAG_HEADER_DICT_1 != 0 && flags & super::FLAG_HEADER_ZSTD == 0 {
            return Err(corrupt(format!("flags {flags:#x}: a header dictionary without compression")));
        }
        let stored = &head[PREAMBLE_LEN as usize..];
        let json = if flags & super::FLAG_HEADER_ZSTD != 0 {
            let size = zstd::zstd_safe::get_frame_content_size(stored)
                .ok()
                .flatten()
                .filter(|&n| n <= super::MAX_HEADER_BYTES)
                .ok_or_else(|| corrupt("compressed header does not say a size up to 1 GiB".into()))?;
            if flags & super::FLAG_HEADER_DICT_1 != 0 {
                zstd::bulk::Decompressor::with_dictionary(super::HEADER_DICT_1)
                    .and_then(|mut d| d.decompress(stored, size as usize))
                    .map_err(|e| corrupt(format!("compressed header: {e}")))
                    .and_then(|v| if v.len() as u64 == size { Ok(v) } else { Err(corrupt("compressed header is shorter than it says".into())) })?
            } else {
                crate::codec::bytes::decompress(stored, size as usize).map_err(|e| corrupt(format!("compressed header: {e}")))?
            }
        } else {
            stored.to_vec()
        };
        let header: Header = serde_json::from_slice(&json)
            .map_err(|e| corrupt(format!("header is not a valid version-1 header: {e}")))?;
        if header.format != FORMAT_NAME || header.format_version != FORMAT_VERSION {
            return Err(corrupt(format!("header names format {} {}", header.format, header.format_version)));
        }

        let trailer = read(size - TRAILER_LEN, TRAILER_LEN)?;
        if trailer[20..] != END_MAGIC {
            return Err(corrupt("no end magic: the file is truncated or damaged at its end".into()));
        }
        let mut c = Cursor::new(&trailer);
        let footer_offset = c.u64("footer offset").unwrap();
        let footer_len = c.u64("footer length").unwrap();
        let footer_crc = c.u32("footer crc").unwrap();
        if footer_offset.checked_add(footer_len) != Some(size - TRAILER_LEN) || footer_offset < chunks_start {
            return Err(corrupt(format!(
                "footer at {footer_offset}+{footer_len} does not end where the trailer starts ({})",
                size - TRAILER_LEN
            )));
        }
        let footer = read(footer_offset, footer_len)?;
        if crc32fast::hash(&footer) != footer_crc {
            return Err(corrupt("footer checksum mismatch".into()));
        }
        let index = parse_index(&footer, chunks_start, footer_offset).map_err(corrupt)?;
        check_rows(&header, &index).map_err(corrupt)?;
        Ok(ArchiveReader { path: path.into(), data: file, header, index, size })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn header(&self) -> &Header {
        &self.header
    }
    pub fn index(&self) -> &[ChunkEntry] {
        &self.index
    }
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The embedded decoder of model `m`, checksum verified, if the archive carries one.
    pub fn attachment(&self, m: usize) -> Result<Option<Vec<u8>>> {
        match self.index.iter().position(|e| e.dataset == super::ATTACHMENT && e.row_start == m as u64) {
            Some(i) => self.read_chunk(i).map(Some),
            None => Ok(None),
        }
    }

    /// Up to the first `n` bytes of chunk `i`, unverified: the checksum covers the whole chunk
    /// and is checked when it is read to be decoded. For deciding what decoding will need.
    pub fn chunk_head(&self, i: usize, n: usize) -> Result<Vec<u8>> {
        let e = self.index[i];
        let mut buf = vec![0u8; (e.length as usize).min(n)];
        self.data.read_at(&mut buf, e.offset).map_err(|err| Error::io(&self.path, err))?;
        Ok(buf)
    }

    /// The bytes of the header's ROOT object `i` (none for a directory), checksum verified.
    pub fn root_object(&self, i: usize) -> Result<Vec<u8>> {
        match self.index.iter().position(|e| e.dataset == super::ROOT_OBJECT && e.row_start == i as u64) {
            Some(c) => self.read_chunk(c),
            None => Ok(Vec::new()),
        }
    }

    /// The bytes of chunk `i`, checksum verified.
    pub fn read_chunk(&self, i: usize) -> Result<Vec<u8>> {
        let e = self.index[i];
        let mut buf = vec![0u8; e.length as usize];
        self.data.read_at(&mut buf, e.offset).map_err(|err| Error::io(&self.path, err))?;
        if crc32fast::hash(&buf) != e.crc {
            return Err(Error::corrupt(&self.path, format!("chunk {i} checksum mismatch")));
        }
        Ok(buf)
    }
}

fn parse_index(footer: &[u8], chunks_start: u64, footer_offset: u64) -> Result<Vec<ChunkEntry>, String> {
    let mut c = Cursor::new(footer);
    let n = c.u64("chunk count")?;
    if Some(c.remaining() as u64) != n.checked_mul(INDEX_ENTRY_LEN) {
        return Err(format!("footer holds {} bytes for {n} chunks", c.remaining()));
    }
    let mut index = Vec::with_capacity(n as usize);
    let mut expect = chunks_start;
    for i in 0..n {
        let e = ChunkEntry {
            offset: c.u64("offset")?,
            length: c.u64("length")?,
            dataset: c.u32("dataset")?,
            crc: c.u32("crc")?,
            row_start: c.u64("row start")?,
            rows: c.u64("rows")?,
        };
        if e.offset != expect {
            return Err(format!("chunk {i} at offset {} where {expect} was expected", e.offset));
        }
        expect = e.offset.checked_add(e.length).ok_or("chunk length overflows")?;
        index.push(e);
    }
    if expect != footer_offset {
        return Err(format!("chunks end at {expect}, the footer starts at {footer_offset}"));
    }
    Ok(index)
}

/// Each dataset's chunks must tile its rows in order: a dropped or duplicated chunk is damage.
fn check_rows(header: &Header, index: &[ChunkEntry]) -> Result<(), String> {
    let mut next_row = vec![0u64; header.datasets.len()];
    let mut attached = vec![false; header.models.len()];
    let mut carried = vec![false; header.root_objects.len()];
    for (i, e) in index.iter().enumerate() {
        if e.dataset == super::ATTACHMENT {
            let m = e.row_start as usize;
            let ok = e.rows == 0 && header.models.get(m).is_some_and(|r| r.embedded.is_some()) && !attached[m];
            if !ok {
                return Err(format!("chunk {i} is an attachment for model {m}, which embeds nothing or has one already"));
            }
            attached[m] = true;
            continue;
        }
        if e.dataset == super::ROOT_OBJECT {
            let k = e.row_start as usize;
            let o = header.root_objects.get(k);
            let ok = e.rows == 0
                && o.is_some_and(|o| o.kind != RootObjectKind::Directory && o.bytes == e.length)
                && !carried[k];
            if !ok {
                return Err(format!("chunk {i} holds ROOT object {k}, which the header does not list with its {} bytes or has already", e.length));
            }
            carried[k] = true;
            continue;
        }
        let d = e.dataset as usize;
        let ds = header.datasets.get(d).ok_or_else(|| format!("chunk {i} names dataset {d} of {}", next_row.len()))?;
        if ds.variables.is_empty() || ds.chunk_rows == 0 {
            return Err(format!("dataset {} has no variables or chunk rows", ds.path));
        }
        if e.row_start != next_row[d] || e.rows == 0 {
            return Err(format!("chunk {i} holds rows {}+{} of {}, expected row {}", e.row_start, e.rows, ds.path, next_row[d]));
        }
        next_row[d] = e.row_start.checked_add(e.rows).ok_or("row count overflows")?;
    }
    for (m, r) in header.models.iter().enumerate() {
        if r.embedded.is_some() && !attached[m] {
            return Err(format!("model {} is marked embedded but the archive holds no copy of it", r.id));
        }
    }
    for (k, o) in header.root_objects.iter().enumerate() {
        if o.kind != RootObjectKind::Directory && !carried[k] {
            return Err(format!("ROOT object {} is listed but the archive holds no copy of it", o.path()));
        }
    }
    for (d, ds) in header.datasets.iter().enumerate() {
        // Sizes are products of header numbers: refuse any that overflow before anything
        // multiplies them unchecked.
        let row_bytes = ds.variables.iter().map(|v| v.dtype.size() as u64).sum::<u64>();
        if ds.shape.iter().try_fold(row_bytes.max(1), |a, &s| a.checked_mul(s)).is_none() {
            return Err(format!("dataset {} has shape {:?}: its size overflows", ds.path, ds.shape));
        }
        // A file can hold neither a maximum below the shape nor a chunk of 0 elements.
        let shorter = |n: usize| n != ds.shape.len();
        if let Some(m) = ds.maxshape.as_ref().filter(|m| shorter(m.len()) || m.iter().zip(&ds.shape).any(|(m, &n)| m.is_some_and(|m| m < n))) {
            return Err(format!("dataset {} has shape {:?} and maxshape {m:?}", ds.path, ds.shape));
        }
        if ds.chars.is_some() && (ds.kind != crate::header::DatasetKind::Array || ds.variables.len() != 1 || ds.variables[0].dtype != crate::dtype::DType::U8) {
            return Err(format!("dataset {} holds characters but not as one u8 variable", ds.path));
        }
        if let Some(c) = ds.chunks.as_ref().filter(|c| shorter(c.len()) || c.contains(&0)) {
            return Err(format!("dataset {} has shape {:?} and chunks {c:?}", ds.path, ds.shape));
        }
        if let Some(dm) = &ds.model {
            if dm.model as usize >= header.models.len() {
                return Err(format!("dataset {} names model {} of {}", ds.path, dm.model, header.models.len()));
            }
            let bad = dm.features.iter().find(|&&[v, e]| {
                // Integers too: BCAE-2D models take ADC counts.
                ds.variables.get(v as usize).is_none_or(|var| var.dtype == crate::dtype::DType::Bool) || e >= ds.row_elems()
            });
            if let Some([v, e]) = bad {
                return Err(format!("dataset {}: model feature [{v}, {e}] is not a numeric element of a row", ds.path));
            }
        }
        if next_row[d] != ds.rows() && ds.row_elems() != 0 {
            return Err(format!("chunks hold {} of the {} rows of {}", next_row[d], ds.rows(), ds.path));
        }
    }
    Ok(())
}
