use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::{ChunkEntry, END_MAGIC, INDEX_ENTRY_LEN, MAGIC, PREAMBLE_LEN};
use crate::atomic::AtomicOutput;
use crate::error::{Error, Result};
use crate::header::{Header, FORMAT_VERSION};

/// Writes a `.baler` file chunk by chunk; memory holds only the index, never the chunks.
pub struct ArchiveWriter {
    out: Out,
    offset: u64,
    index: Vec<ChunkEntry>,
}

/// A file that appears under its name only once finished, or bytes in memory.
enum Out {
    File { out: BufWriter<File>, output: AtomicOutput },
    Memory(Vec<u8>),
}

/// Where `pack` writes the archive.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    File(&'a Path),
    Memory,
}

impl ArchiveWriter {
    pub fn create(path: &Path, header: &Header) -> Result<Self> {
        Self::to(Target::File(path), header)
    }

    pub fn to(target: Target<'_>, header: &Header) -> Result<Self> {
        let path_of = |t: &Target<'_>| match t {
            Target::File(p) => p.to_path_buf(),
            Target::Memory => std::path::PathBuf::from("<.baler in memory>"),
        };
        let out = match target {
            Target::File(path) => {
                let output = AtomicOutput::new(path)?;
                let file = File::create(output.tmp_path()).map_err(|e| Error::io(path, e))?;
                Out::File { out: BufWriter::with_capacity(1 << 20, file), output }
            }
            Target::Memory => Out::Memory(Vec::new()),
        };
        let mut w = ArchiveWriter { out, offset: 0, index: Vec::new() };
        let json = serde_json::to_vec(header).expect("header serialises");
        // A table's header (names, bounds, statistics of every column) is a few percent of a
        // well-compressed archive, and most of a small one: stored zstd-compressed against the
        // format's dictionary (flag bits 0 and 1). At level 9, not 19: level 19 took 1.9 ms on
        // a 1.7 MB field's header (1.6 KB of JSON: 445 bytes, 457 at 9 in 0.13 ms), 2.9 ms on
        // zmumu's 4.5 KB (524 against 538 in 0.17 ms) and 21 ms on issue63's 42 KB (3352 against
        // 3722 in 0.5 ms), mostly loading the dictionary into its match finder: up to a tenth of a
        // small file's pack for under 0.1 % of its archive.
        let level = 9;
        let json = zstd::bulk::Compressor::with_dictionary(level, super::HEADER_DICT_1)
            .and_then(|mut c| c.compress(&json))
            .map_err(|e| Error::io(path_of(&target), e))?;
        let mut pre = Vec::with_capacity(PREAMBLE_LEN as usize + json.len());
        pre.extend_from_slice(&MAGIC);
        pre.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        pre.extend_from_slice(&(super::FLAG_HEADER_ZSTD | super::FLAG_HEADER_DICT_1).to_le_bytes());
        pre.extend_from_slice(&(json.len() as u64).to_le_bytes());
        pre.extend_from_slice(&json);
        let crc = crc32fast::hash(&pre);
        w.put(&pre)?;
        w.put(&crc.to_le_bytes())?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.out {
            Out::File { out, output } => out.write_all(bytes).map_err(|e| Error::io(output.dest(), e))?,
            Out::Memory(v) => v.extend_from_slice(bytes),
        }
        self.offset += bytes.len() as u64;
        Ok(())
    }

    pub fn write_chunk(&mut self, place: crate::codec::ChunkPlace, bytes: &[u8]) -> Result<()> {
        self.index.push(ChunkEntry {
            offset: self.offset,
            length: bytes.len() as u64,
            dataset: place.dataset,
            crc: crc32fast::hash(bytes),
            row_start: place.row_start,
            rows: place.rows,
        });
        self.put(bytes)
    }

    /// Stores model `m`'s decoder inside the archive (`--embed-model`).
    pub fn write_attachment(&mut self, m: u32, bytes: &[u8]) -> Result<()> {
        let place = crate::codec::ChunkPlace { dataset: super::ATTACHMENT, row_start: m as u64, rows: 0 };
        self.write_chunk(place, bytes)
    }

    /// Stores the bytes of the header's ROOT object `i`.
    pub fn write_root_object(&mut self, i: u32, bytes: &[u8]) -> Result<()> {
        let place = crate::codec::ChunkPlace { dataset: super::ROOT_OBJECT, row_start: i as u64, rows: 0 };
        self.write_chunk(place, bytes)
    }

    /// Writes footer and trailer, syncs, and moves the file to its name. Returns its size.
    pub fn finish(self) -> Result<u64> {
        self.finish_bytes().map(|(n, _)| n)
    }

    /// `finish`, also returning the archive's bytes when it was written to memory.
    pub fn finish_bytes(mut self) -> Result<(u64, Option<Vec<u8>>)> {
        let footer_offset = self.offset;
        let mut footer = Vec::with_capacity(8 + self.index.len() * INDEX_ENTRY_LEN as usize);
        footer.extend_from_slice(&(self.index.len() as u64).to_le_bytes());
        for e in &self.index {
            footer.extend_from_slice(&e.offset.to_le_bytes());
            footer.extend_from_slice(&e.length.to_le_bytes());
            footer.extend_from_slice(&e.dataset.to_le_bytes());
            footer.extend_from_slice(&e.crc.to_le_bytes());
            footer.extend_from_slice(&e.row_start.to_le_bytes());
            footer.extend_from_slice(&e.rows.to_le_bytes());
        }
        let mut trailer = Vec::with_capacity(28);
        trailer.extend_from_slice(&footer_offset.to_le_bytes());
        trailer.extend_from_slice(&(footer.len() as u64).to_le_bytes());
        trailer.extend_from_slice(&crc32fast::hash(&footer).to_le_bytes());
        trailer.extend_from_slice(&END_MAGIC);
        self.put(&footer)?;
        self.put(&trailer)?;
        match self.out {
            Out::File { out, output } => {
                let dest = output.dest().to_path_buf();
                let file = out.into_inner().map_err(|e| Error::io(&dest, e.into_error()))?;
                file.sync_all().map_err(|e| Error::io(&dest, e))?;
                drop(file);
                output.commit()?;
                Ok((self.offset, None))
            }
            Out::Memory(v) => Ok((self.offset, Some(v))),
        }
    }
}
