//! The `.baler` container (schemas/baler-format.md): a streaming writer and a random-access
//! reader. It moves opaque chunk bytes; the codec gives them meaning.

mod reader;
mod writer;

pub use reader::ArchiveReader;
pub use writer::{ArchiveWriter, Target};

pub const MAGIC: [u8; 8] = *b"\x89BALER\r\n";
pub const END_MAGIC: [u8; 8] = *b"BALEREND";
pub const PREAMBLE_LEN: u64 = 24;
/// Preamble flag bit 0: the header is zstd-compressed JSON (archives before it hold plain JSON).
pub const FLAG_HEADER_ZSTD: u32 = 1;
/// Preamble flag bit 1 (with bit 0): that zstd frame was made with `HEADER_DICT_1`.
pub const FLAG_HEADER_DICT_1: u32 = 2;
/// A zstd raw-content dictionary for headers: four typical headers (a ROOT file's trees, a
/// climate field, an array, an HDF5 table). Most of a small archive's header is the same keys,
/// names and settings as these: a 5-column table's header takes 107 bytes with it, 565 without,
/// which on a 3 KB table is a sixth of the file. Its bytes are part of the format: never change
/// them (a new dictionary is a new flag).
pub static HEADER_DICT_1: &[u8] = include_bytes!("../../schemas/baler-header-dict-1.bin");
/// A compressed header may not claim to expand beyond this.
pub const MAX_HEADER_BYTES: u64 = 1 << 30;
pub const TRAILER_LEN: u64 = 28;
pub const INDEX_ENTRY_LEN: u64 = 40;

/// The dataset number of an index entry that holds an attachment (an embedded model's
/// decoder) instead of rows; its `row_start` is the model's index in the header.
pub const ATTACHMENT: u32 = u32::MAX;

/// The dataset number of an index entry that holds a carried ROOT object (a key's bytes);
/// its `row_start` is the object's index in the header's `root_objects`.
pub const ROOT_OBJECT: u32 = u32::MAX - 1;

/// One footer index entry: where a chunk is and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkEntry {
    pub offset: u64,
    pub length: u64,
    pub dataset: u32,
    pub crc: u32,
    pub row_start: u64,
    pub rows: u64,
}

impl ChunkEntry {
    pub fn place(&self) -> crate::codec::ChunkPlace {
        crate::codec::ChunkPlace { dataset: self.dataset, row_start: self.row_start, rows: self.rows }
    }
}
