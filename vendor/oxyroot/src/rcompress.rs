use flate2::read::ZlibDecoder;
use lz4::block::decompress_to_buffer as LZ4_decompress_to_buffer;
use std::io::Read;
use liblzma::read::XzDecoder;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug)]
pub enum Error {
    Io(std::io::Error),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

// Note: this contains ZL[src][dst] where src and dst are 3 bytes each.
const HEADER_SIZE: usize = 9;

// because each zipped block contains:
// - the size of the input data
// - the size of the compressed data
// where each size is saved on 3 bytes, the maximal size
// of each block can not be bigger than 16Mb.
#[allow(dead_code)]
const K_MAX_COMPRESSED_BLOCK_SIZE: usize = 0xffffff;

#[allow(dead_code)]
#[derive(PartialEq)]
enum Kind {
    #[allow(dead_code)]
    Inherit = -1,
    UseGlobal = 0,
    Zlib = 1,
    Lzma = 2,
    OldCompression = 3,
    LZ4 = 4,
    Zstd = 5,
    UndefinedCompression = 6,
}

// kindOf returns the kind of compression algorithm.
fn kind_of(buf: &[u8]) -> Kind {
    match (buf[0] as char, buf[1] as char) {
        ('Z', 'L') => Kind::Zlib,
        ('X', 'Z') => Kind::Lzma,
        ('L', '4') => Kind::LZ4,
        ('Z', 'S') => Kind::Zstd,
        ('C', 'S') => Kind::OldCompression,

        _ => Kind::UndefinedCompression,
    }
}

/// The uncompressed bytes the block headers of `src` declare, walked without decompressing,
/// stopping once `want` are reached or a header is truncated: a reader checks an object's
/// length against it before allocating the object.
pub fn declared_len(mut src: &[u8], want: usize) -> usize {
    let mut total = 0usize;
    while total < want && src.len() >= HEADER_SIZE {
        let (srcsz, tgtsz) = block_sizes(&src[..HEADER_SIZE]);
        total += tgtsz;
        src = src.get(HEADER_SIZE + srcsz..).unwrap_or(&[]);
    }
    total
}

/// A block header's (compressed, uncompressed) sizes: 3 little-endian bytes each, at 3 and 6.
fn block_sizes(hdr: &[u8]) -> (usize, usize) {
    let u24 = |at: usize| hdr[at] as usize | (hdr[at + 1] as usize) << 8 | (hdr[at + 2] as usize) << 16;
    (u24(3), u24(6))
}

/// Decompresses ROOT's blocks (each a 9-byte header: two letters naming the algorithm, a method
/// byte, 3 bytes of compressed size, 3 bytes of uncompressed size; then the payload) from `src`
/// until `dst` is full. A malformed or truncated block, or an algorithm not implemented here,
/// is an error (never a panic): the input is a file from outside.
pub fn decompress(dst: &mut [u8], mut src: &[u8]) -> Result<usize> {
    fn bad(what: String) -> Error {
        Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, what))
    }
    let mut out = 0usize;
    while out < dst.len() {
        if src.len() < HEADER_SIZE {
            return Err(bad(format!("compressed block header truncated ({} bytes left)", src.len())));
        }
        let hdr = &src[..HEADER_SIZE];
        let (srcsz, tgtsz) = block_sizes(hdr);
        let body = src
            .get(HEADER_SIZE..HEADER_SIZE + srcsz)
            .ok_or_else(|| bad(format!("compressed block of {srcsz} bytes truncated")))?;
        let target = dst
            .get_mut(out..out + tgtsz)
            .ok_or_else(|| bad(format!("compressed block of {tgtsz} bytes overruns its object")))?;
        match kind_of(hdr) {
            Kind::Zlib => ZlibDecoder::new(body).read_exact(target)?,
            Kind::Lzma => XzDecoder::new(body).read_exact(target)?,
            Kind::LZ4 => {
                // 8 bytes of xxhash checksum precede the LZ4 block.
                let block = body.get(8..).ok_or_else(|| bad("LZ4 block without its checksum".into()))?;
                let n = LZ4_decompress_to_buffer(block, Some(tgtsz as i32), target)?;
                if n != tgtsz {
                    return Err(bad(format!("LZ4 block gave {n} bytes, expected {tgtsz}")));
                }
            }
            Kind::Zstd => {
                let n = zstd::bulk::decompress_to_buffer(body, target)?;
                if n != tgtsz {
                    return Err(bad(format!("ZSTD block gave {n} bytes, expected {tgtsz}")));
                }
            }
            _ => {
                return Err(bad(format!(
                    "compression '{}{}' is not supported",
                    (hdr[0] as char).escape_default(),
                    (hdr[1] as char).escape_default()
                )))
            }
        }
        out += tgtsz;
        src = &src[HEADER_SIZE + srcsz..];
    }
    Ok(out)
}

fn root_compress_algo_level(algo: i32) -> (Kind, i32) {
    let kind = algo / 100;
    let level = algo % 100;
    let kind = match kind {
        0 => Kind::UseGlobal,
        1 => Kind::Zlib,
        2 => Kind::Lzma,
        3 => Kind::OldCompression,
        4 => Kind::LZ4,
        5 => Kind::Zstd,
        _ => Kind::UndefinedCompression,
    };
    (kind, level)
}

/// Compresses an object's bytes as ROOT does for `compression` (algorithm x 100 + level:
/// 1xx zlib, 2xx LZMA, 4xx LZ4, 5xx ZSTD; level 0 or 1 stores): blocks of at most 2^24 - 1
/// input bytes, each behind its 9-byte header (LZ4's followed by the big-endian XXH64 of its
/// compressed bytes). Objects under 512 bytes, and any that would not shrink, are stored as
/// they are (a reader tells by the key's object length equalling its stored length).
pub fn compress(src: Vec<u8>, compression: i32) -> Result<Vec<u8>> {
    let (kind, level) = root_compress_algo_level(compression);
    if matches!(kind, Kind::UseGlobal | Kind::OldCompression | Kind::UndefinedCompression) || level == 0 || src.len() < 512 {
        return Ok(src);
    }
    let mut out = Vec::with_capacity(src.len() / 2);
    for block in src.chunks(K_MAX_COMPRESSED_BLOCK_SIZE) {
        let (tag, method, body): (&[u8; 2], u8, Vec<u8>) = match kind {
            Kind::Zlib => {
                use std::io::Write;
                let mut w = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level.clamp(1, 9) as u32));
                w.write_all(block)?;
                (b"ZL", 8, w.finish()?)
            }
            Kind::Lzma => {
                use std::io::Write;
                let mut w = liblzma::write::XzEncoder::new(Vec::new(), level.clamp(1, 9) as u32);
                w.write_all(block)?;
                (b"XZ", 0, w.finish()?)
            }
            Kind::LZ4 => {
                let mode = if level >= 4 { lz4::block::CompressionMode::HIGHCOMPRESSION(level) } else { lz4::block::CompressionMode::DEFAULT };
                let packed = lz4::block::compress(block, Some(mode), false)?;
                let mut body = xxhash_rust::xxh64::xxh64(&packed, 0).to_be_bytes().to_vec();
                body.extend_from_slice(&packed);
                (b"L4", 1, body)
            }
            // ROOT's ZSTD levels 1-9 are zstd's 2-18 (core/zstd/src/ZipZSTD.cxx): 505 is level 10.
            Kind::Zstd => (b"ZS", 1, zstd::bulk::compress(block, (2 * level).clamp(1, 22))?),
            _ => unreachable!("stored above"),
        };
        if body.len() >= block.len() || body.len() > K_MAX_COMPRESSED_BLOCK_SIZE {
            return Ok(src);
        }
        out.extend_from_slice(tag);
        out.push(method);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes()[..3]);
        out.extend_from_slice(&(block.len() as u32).to_le_bytes()[..3]);
        out.extend_from_slice(&body);
    }
    if out.len() >= src.len() {
        return Ok(src);
    }
    Ok(out)
}
