//! RNTuple's little-endian building blocks (ROOT's RNTuple binary format 1.0, "Basic Types"):
//! integers, strings, record and list frames, locators, envelope links, and the envelope
//! around each metadata block. Every read is bounds-checked: the bytes come from users' files.

use xxhash_rust::xxh3::xxh3_64;

pub type Res<T> = std::result::Result<T, String>;

/// A cursor over one frame's bytes; reading past the end is an error naming what was read.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn take(&mut self, n: usize, what: &str) -> Res<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| format!("{what} runs past the end of its block"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub fn u16(&mut self, what: &str) -> Res<u16> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap()))
    }
    pub fn u32(&mut self, what: &str) -> Res<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    pub fn i32(&mut self, what: &str) -> Res<i32> {
        Ok(i32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    pub fn u64(&mut self, what: &str) -> Res<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
    pub fn i64(&mut self, what: &str) -> Res<i64> {
        Ok(i64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
    pub fn f64(&mut self, what: &str) -> Res<f64> {
        Ok(f64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }

    pub fn string(&mut self, what: &str) -> Res<String> {
        let n = self.u32(what)? as usize;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }

    /// Feature flags: 64-bit words, bit 63 saying another follows. Format 1.0 defines none, so
    /// any set bit is a feature this reader does not know.
    pub fn feature_flags(&mut self, what: &str) -> Res<()> {
        loop {
            let w = self.u64(what)?;
            if w & !(1 << 63) != 0 {
                return Err(format!("{what}: feature flags {w:#x} name a feature this reader does not support"));
            }
            if w & (1 << 63) == 0 {
                return Ok(());
            }
        }
    }

    /// A record frame: its bytes after the size, as a reader of their own; the cursor moves past
    /// the whole frame (later versions may append fields a reader skips).
    pub fn record(&mut self, what: &str) -> Res<Reader<'a>> {
        let size = self.i64(what)?;
        if size < 8 {
            return Err(format!("{what}: record frame of size {size}"));
        }
        Ok(Reader::new(self.take(size as usize - 8, what)?))
    }

    /// A list frame: its item count and a reader over the items.
    pub fn list(&mut self, what: &str) -> Res<(u32, Reader<'a>)> {
        let size = self.i64(what)?;
        if size > -12 {
            return Err(format!("{what}: list frame of size {size}"));
        }
        let n = self.u32(what)?;
        let body = self.take((-size) as usize - 12, what)?;
        Ok((n, Reader::new(body)))
    }

    /// A locator: where a blob lies in the file (bytes on storage, absolute offset).
    pub fn locator(&mut self, what: &str) -> Res<Locator> {
        let head = self.i32(what)?;
        if head >= 0 {
            return Ok(Locator { size: head as u64, offset: self.u64(what)? });
        }
        let h = (head as i64).unsigned_abs();
        let (len, kind) = ((h & 0xffff) as usize, (h >> 24) & 0x7f);
        if len < 4 {
            return Err(format!("{what}: locator of {len} bytes"));
        }
        let mut body = Reader::new(self.take(len - 4, what)?);
        match kind {
            1 => Ok(Locator { size: body.u64(what)?, offset: body.u64(what)? }),
            k => Err(format!("{what}: a locator of type {k} (not a file position)")),
        }
    }

    pub fn envelope_link(&mut self, what: &str) -> Res<(u64, Locator)> {
        Ok((self.u64(what)?, self.locator(what)?))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Locator {
    pub size: u64,
    pub offset: u64,
}

pub const HEADER: u16 = 1;
pub const FOOTER: u16 = 2;
pub const PAGE_LIST: u16 = 3;

/// An envelope's payload (between its type/length word and its checksum), after checking its
/// type, its length against the one its link states, and its XXH3-64 checksum. Returns the
/// payload and the checksum (the footer and page lists repeat the header's).
pub fn open_envelope<'a>(bytes: &'a [u8], want: u16, len: u64, what: &str) -> Res<(&'a [u8], u64)> {
    if bytes.len() < 16 || bytes.len() as u64 != len {
        return Err(format!("{what}: {} bytes, its link says {len}", bytes.len()));
    }
    let word = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let (ty, n) = ((word & 0xffff) as u16, word >> 16);
    if ty != want {
        return Err(format!("{what}: an envelope of type {ty}, expected {want}"));
    }
    if n != len {
        return Err(format!("{what}: envelope says {n} bytes, its link {len}"));
    }
    let body = &bytes[..bytes.len() - 8];
    let stored = u64::from_le_bytes(bytes[bytes.len() - 8..].try_into().unwrap());
    let sum = xxh3_64(body);
    if sum != stored {
        return Err(format!("{what}: checksum mismatch (damaged)"));
    }
    Ok((&body[8..], sum))
}

/// Wraps a payload as an envelope of type `ty`: the type/length word, the payload, its
/// XXH3-64. Returns the envelope and its checksum.
pub fn envelope(ty: u16, payload: &[u8]) -> (Vec<u8>, u64) {
    let len = payload.len() as u64 + 16;
    let mut out = Vec::with_capacity(len as usize);
    out.extend_from_slice(&((len << 16) | ty as u64).to_le_bytes());
    out.extend_from_slice(payload);
    let sum = xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    (out, sum)
}

/// Builders for the writer.
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
    }
    pub fn locator(&mut self, l: Locator) {
        if l.size <= i32::MAX as u64 {
            self.buf.extend_from_slice(&(l.size as i32).to_le_bytes());
            self.u64(l.offset);
        } else {
            // The large locator: type 1, 20 bytes.
            self.buf.extend_from_slice(&(-(0x0100_0000i32 | 20)).to_le_bytes());
            self.u64(l.size);
            self.u64(l.offset);
        }
    }
    /// A record frame around what `f` writes.
    pub fn record(&mut self, f: impl FnOnce(&mut Writer)) {
        let at = self.buf.len();
        self.i64(0);
        f(self);
        let size = (self.buf.len() - at) as i64;
        self.buf[at..at + 8].copy_from_slice(&size.to_le_bytes());
    }
    /// A list frame of `n` items, written by `f`.
    pub fn list(&mut self, n: u32, f: impl FnOnce(&mut Writer)) {
        let at = self.buf.len();
        self.i64(0);
        self.u32(n);
        f(self);
        let size = -((self.buf.len() - at) as i64);
        self.buf[at..at + 8].copy_from_slice(&size.to_le_bytes());
    }
}
