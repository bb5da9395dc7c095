//! The little of the ZIP format (PKWARE APPNOTE 6.3) that `.npz` files use: reading the central
//! directory (zip64 included) to find members, stored or deflated, and writing stored members.
//! Members are read in place, never unpacked to disk.

use std::io::{Read, Seek, SeekFrom, Write};

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EXTRA: u16 = 0x0001;
const EOCD_LEN: u64 = 22;
/// A 32-bit size or offset field at this value means "see the zip64 extra field".
const U32_MAX: u64 = 0xFFFF_FFFF;

pub const STORED: u16 = 0;
pub const DEFLATED: u16 = 8;

/// One member as the central directory lists it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub method: u16,
    pub flags: u16,
    pub crc: u32,
    pub compressed: u64,
    pub size: u64,
    pub local_offset: u64,
}

impl Entry {
    pub fn encrypted(&self) -> bool {
        self.flags & 1 != 0
    }
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"))
}

fn read_at<R: Read + Seek>(r: &mut R, at: u64, len: usize, what: &str) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; len];
    r.seek(SeekFrom::Start(at)).map_err(|e| format!("{what}: {e}"))?;
    r.read_exact(&mut buf).map_err(|_| format!("{what} runs past the end of the file (truncated?)"))?;
    Ok(buf)
}

/// The members of the zip archive `r` (of `len` bytes), in central-directory order. Errors say
/// what is wrong in words, for the caller to prefix with the file name.
pub fn read_directory<R: Read + Seek>(r: &mut R, len: u64) -> Result<Vec<Entry>, String> {
    // The end record sits in the last 22 bytes plus a comment of up to 65535 bytes.
    let tail_len = len.min(EOCD_LEN + 0xFFFF);
    let tail = read_at(r, len - tail_len, tail_len as usize, "end of file")?;
    if tail.len() < EOCD_LEN as usize {
        return Err("too short to be a zip archive".into());
    }
    let at = (0..=tail.len().saturating_sub(EOCD_LEN as usize))
        .rev()
        .find(|&i| u32_at(&tail, i) == EOCD_SIG && i + EOCD_LEN as usize + u16_at(&tail, i + 20) as usize <= tail.len())
        .ok_or("no zip end-of-central-directory record: truncated, or not a zip archive")?;
    let eocd = &tail[at..];
    let eocd_pos = len - tail_len + at as u64;
    let mut entries = u16_at(eocd, 10) as u64;
    let mut cd_size = u32_at(eocd, 12) as u64;
    let mut cd_offset = u32_at(eocd, 16) as u64;
    if u16_at(eocd, 4) != 0 || u16_at(eocd, 6) != 0 {
        return Err("a multi-volume (split) zip archive is not supported".into());
    }
    // Zip64: a locator just before the end record points to the zip64 end record.
    if eocd_pos >= 20 {
        let loc = read_at(r, eocd_pos - 20, 20, "zip64 locator")?;
        if u32_at(&loc, 0) == ZIP64_LOCATOR_SIG {
            let rec_pos = u64_at(&loc, 8);
            if rec_pos.checked_add(56).is_none_or(|e| e > eocd_pos) {
                return Err("zip64 locator points outside the file".into());
            }
            let rec = read_at(r, rec_pos, 56, "zip64 end record")?;
            if u32_at(&rec, 0) != ZIP64_EOCD_SIG {
                return Err("no zip64 end record where the locator points".into());
            }
            entries = u64_at(&rec, 32);
            cd_size = u64_at(&rec, 40);
            cd_offset = u64_at(&rec, 48);
        }
    }
    if cd_offset.checked_add(cd_size).is_none_or(|e| e > eocd_pos) {
        return Err("the central directory lies outside the file (truncated?)".into());
    }
    // 46 bytes per entry at least: a count beyond that is a lie, not a reason to allocate.
    if entries > cd_size / 46 + 1 {
        return Err(format!("the central directory cannot hold {entries} entries"));
    }
    let cd = read_at(r, cd_offset, cd_size as usize, "central directory")?;
    let mut out = Vec::with_capacity(entries as usize);
    let mut i = 0usize;
    for n in 0..entries {
        let bad = || format!("central directory entry {n} is damaged");
        if i + 46 > cd.len() || u32_at(&cd, i) != CENTRAL_SIG {
            return Err(bad());
        }
        let h = &cd[i..];
        let (name_len, extra_len, comment_len) = (u16_at(h, 28) as usize, u16_at(h, 30) as usize, u16_at(h, 32) as usize);
        if 46 + name_len + extra_len + comment_len > h.len() {
            return Err(bad());
        }
        let name = String::from_utf8_lossy(&h[46..46 + name_len]).into_owned();
        let mut e = Entry {
            name,
            method: u16_at(h, 10),
            flags: u16_at(h, 8),
            crc: u32_at(h, 16),
            compressed: u32_at(h, 20) as u64,
            size: u32_at(h, 24) as u64,
            local_offset: u32_at(h, 42) as u64,
        };
        zip64_extra(&h[46 + name_len..46 + name_len + extra_len], &mut e).map_err(|w| format!("member {}: {w}", e.name))?;
        out.push(e);
        i += 46 + name_len + extra_len + comment_len;
    }
    Ok(out)
}

/// Fills the fields the entry marks 0xFFFFFFFF from its zip64 extra field, which holds them in
/// this order and only those.
fn zip64_extra(extra: &[u8], e: &mut Entry) -> Result<(), String> {
    let mut i = 0;
    while i + 4 <= extra.len() {
        let (id, len) = (u16_at(extra, i), u16_at(extra, i + 2) as usize);
        let body = extra.get(i + 4..i + 4 + len).ok_or("damaged extra field")?;
        if id == ZIP64_EXTRA {
            let mut at = 0;
            for field in [&mut e.size, &mut e.compressed, &mut e.local_offset] {
                if *field == U32_MAX {
                    *field = u64_at(body.get(at..at + 8).ok_or("short zip64 extra field")?, 0);
                    at += 8;
                }
            }
            return Ok(());
        }
        i += 4 + len;
    }
    if [e.size, e.compressed, e.local_offset].contains(&U32_MAX) {
        return Err("a size or offset needs a zip64 extra field, and there is none".into());
    }
    Ok(())
}

/// Where the member's data starts, from its local header (whose extra field may differ in length
/// from the central directory's).
pub fn data_start<R: Read + Seek>(r: &mut R, e: &Entry, len: u64) -> Result<u64, String> {
    let h = read_at(r, e.local_offset, 30, "local header")?;
    if u32_at(&h, 0) != LOCAL_SIG {
        return Err("no local header where the central directory points".into());
    }
    let start = e.local_offset + 30 + u16_at(&h, 26) as u64 + u16_at(&h, 28) as u64;
    if start.checked_add(e.compressed).is_none_or(|end| end > len) {
        return Err(format!("its {} bytes run past the end of the file (truncated?)", e.compressed));
    }
    Ok(start)
}

/// The DOS date of 1980-01-01, 00:00: fixed, so equal data makes equal files.
const DOS_DATE: u16 = (1 << 5) | 1;

struct Written {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
}

/// Writes a zip archive of stored (uncompressed) members, each of a size known before its data,
/// as `np.savez` does. Sizes or offsets past 4 GiB get zip64 records.
pub struct ZipWriter<W: Write + Seek> {
    w: W,
    pos: u64,
    done: Vec<Written>,
    open: Option<(Written, u64, crc32fast::Hasher)>,
}

impl<W: Write + Seek> ZipWriter<W> {
    pub fn new(w: W) -> Self {
        ZipWriter { w, pos: 0, done: Vec::new(), open: None }
    }

    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.w.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    /// Starts member `name` of exactly `size` bytes.
    pub fn start(&mut self, name: &str, size: u64) -> std::io::Result<()> {
        assert!(self.open.is_none(), "zip member started before the previous one ended");
        let zip64 = size >= U32_MAX;
        let mut h = Vec::with_capacity(30 + name.len() + 20);
        h.extend_from_slice(&LOCAL_SIG.to_le_bytes());
        h.extend_from_slice(&(if zip64 { 45u16 } else { 20 }).to_le_bytes());
        h.extend_from_slice(&utf8_flag(name).to_le_bytes());
        h.extend_from_slice(&STORED.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(&DOS_DATE.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes()); // CRC-32, patched in `end`
        let s32 = if zip64 { U32_MAX as u32 } else { size as u32 };
        h.extend_from_slice(&s32.to_le_bytes());
        h.extend_from_slice(&s32.to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&(if zip64 { 20u16 } else { 0 }).to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        if zip64 {
            // In a local header the zip64 field holds both sizes.
            h.extend_from_slice(&ZIP64_EXTRA.to_le_bytes());
            h.extend_from_slice(&16u16.to_le_bytes());
            h.extend_from_slice(&size.to_le_bytes());
            h.extend_from_slice(&size.to_le_bytes());
        }
        let offset = self.pos;
        self.put(&h)?;
        self.open = Some((Written { name: name.into(), crc: 0, size, offset }, 0, crc32fast::Hasher::new()));
        Ok(())
    }

    pub fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        let (m, n, crc) = self.open.as_mut().expect("zip write outside a member");
        *n += data.len() as u64;
        if *n > m.size {
            return Err(std::io::Error::other(format!("member {} got more than its {} bytes", m.name, m.size)));
        }
        crc.update(data);
        self.put(data)
    }

    /// Ends the open member: it must have got exactly its size; its CRC-32 goes into its header.
    pub fn end(&mut self) -> std::io::Result<()> {
        let (mut m, n, crc) = self.open.take().expect("zip member ended twice");
        if n != m.size {
            return Err(std::io::Error::other(format!("member {} got {n} of its {} bytes", m.name, m.size)));
        }
        m.crc = crc.finalize();
        self.w.seek(SeekFrom::Start(m.offset + 14))?;
        self.w.write_all(&m.crc.to_le_bytes())?;
        self.w.seek(SeekFrom::Start(self.pos))?;
        self.done.push(m);
        Ok(())
    }

    /// Writes the central directory and end records; returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        assert!(self.open.is_none(), "zip finished inside a member");
        let cd_offset = self.pos;
        let done = std::mem::take(&mut self.done);
        for m in &done {
            let mut extra = Vec::new();
            let size32 = if m.size >= U32_MAX {
                extra.extend_from_slice(&m.size.to_le_bytes());
                extra.extend_from_slice(&m.size.to_le_bytes());
                U32_MAX as u32
            } else {
                m.size as u32
            };
            let offset32 = if m.offset >= U32_MAX {
                extra.extend_from_slice(&m.offset.to_le_bytes());
                U32_MAX as u32
            } else {
                m.offset as u32
            };
            let version: u16 = if extra.is_empty() { 20 } else { 45 };
            let mut h = Vec::with_capacity(46 + m.name.len() + 4 + extra.len());
            h.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
            h.extend_from_slice(&(0x0300 | version).to_le_bytes()); // made by: Unix
            h.extend_from_slice(&version.to_le_bytes());
            h.extend_from_slice(&utf8_flag(&m.name).to_le_bytes());
            h.extend_from_slice(&STORED.to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            h.extend_from_slice(&DOS_DATE.to_le_bytes());
            h.extend_from_slice(&m.crc.to_le_bytes());
            h.extend_from_slice(&size32.to_le_bytes());
            h.extend_from_slice(&size32.to_le_bytes());
            h.extend_from_slice(&(m.name.len() as u16).to_le_bytes());
            let extra_len = if extra.is_empty() { 0 } else { 4 + extra.len() };
            h.extend_from_slice(&(extra_len as u16).to_le_bytes());
            h.extend_from_slice(&[0u8; 6]); // comment length, disk, internal attributes
            h.extend_from_slice(&(0o100644u32 << 16).to_le_bytes()); // a regular file, rw-r--r--
            h.extend_from_slice(&offset32.to_le_bytes());
            h.extend_from_slice(m.name.as_bytes());
            if !extra.is_empty() {
                h.extend_from_slice(&ZIP64_EXTRA.to_le_bytes());
                h.extend_from_slice(&(extra.len() as u16).to_le_bytes());
                h.extend_from_slice(&extra);
            }
            self.put(&h)?;
        }
        let cd_size = self.pos - cd_offset;
        let count = done.len() as u64;
        let zip64 = count >= 0xFFFF || cd_offset >= U32_MAX || cd_size >= U32_MAX;
        if zip64 {
            let rec_pos = self.pos;
            let mut z = Vec::with_capacity(76);
            z.extend_from_slice(&ZIP64_EOCD_SIG.to_le_bytes());
            z.extend_from_slice(&44u64.to_le_bytes()); // size of the rest of the record
            z.extend_from_slice(&0x032Du16.to_le_bytes());
            z.extend_from_slice(&45u16.to_le_bytes());
            z.extend_from_slice(&[0u8; 8]); // this disk, the directory's disk
            z.extend_from_slice(&count.to_le_bytes());
            z.extend_from_slice(&count.to_le_bytes());
            z.extend_from_slice(&cd_size.to_le_bytes());
            z.extend_from_slice(&cd_offset.to_le_bytes());
            z.extend_from_slice(&ZIP64_LOCATOR_SIG.to_le_bytes());
            z.extend_from_slice(&0u32.to_le_bytes());
            z.extend_from_slice(&rec_pos.to_le_bytes());
            z.extend_from_slice(&1u32.to_le_bytes());
            self.put(&z)?;
        }
        let mut e = Vec::with_capacity(22);
        e.extend_from_slice(&EOCD_SIG.to_le_bytes());
        e.extend_from_slice(&[0u8; 4]); // this disk, the directory's disk
        let count16 = count.min(0xFFFF) as u16;
        e.extend_from_slice(&count16.to_le_bytes());
        e.extend_from_slice(&count16.to_le_bytes());
        e.extend_from_slice(&(cd_size.min(U32_MAX) as u32).to_le_bytes());
        e.extend_from_slice(&(cd_offset.min(U32_MAX) as u32).to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        self.put(&e)?;
        Ok(self.w)
    }
}

/// Bit 11: the name is UTF-8 (only set when it is not plain ASCII, as Python does).
fn utf8_flag(name: &str) -> u16 {
    if name.is_ascii() { 0 } else { 1 << 11 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn write(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut z = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in members {
            z.start(name, data.len() as u64).unwrap();
            z.write(data).unwrap();
            z.end().unwrap();
        }
        z.finish().unwrap().into_inner()
    }

    #[test]
    fn written_members_read_back() {
        let bytes = write(&[("a.npy", b"hello"), ("b.npy", b""), ("c\u{e9}.npy", &[7u8; 1000])]);
        let mut r = Cursor::new(&bytes);
        let entries = read_directory(&mut r, bytes.len() as u64).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a.npy", "b.npy", "c\u{e9}.npy"]);
        let e = &entries[0];
        assert_eq!((e.method, e.size, e.compressed, e.crc), (STORED, 5, 5, crc32fast::hash(b"hello")));
        let start = data_start(&mut r, e, bytes.len() as u64).unwrap() as usize;
        assert_eq!(&bytes[start..start + 5], b"hello");
        assert_eq!(entries[2].crc, crc32fast::hash(&[7u8; 1000]));
    }

    #[test]
    fn truncated_and_damaged_archives_are_errors() {
        let bytes = write(&[("a.npy", b"hello")]);
        for cut in [0, 10, bytes.len() - 1] {
            let mut r = Cursor::new(&bytes[..cut]);
            assert!(read_directory(&mut r, cut as u64).is_err(), "cut at {cut}");
        }
        let mut bad = bytes.clone();
        let cd = bad.len() - 22 - 46 - 5;
        bad[cd] ^= 0xFF;
        assert!(read_directory(&mut Cursor::new(&bad), bad.len() as u64).unwrap_err().contains("damaged"));
    }

    #[test]
    fn zip64_fields_are_read_from_the_extra_field() {
        // A central entry whose size and offset overflow into the zip64 extra field.
        let mut e = Entry { name: "x".into(), method: 0, flags: 0, crc: 0, compressed: 5, size: U32_MAX, local_offset: U32_MAX };
        let mut extra = Vec::new();
        extra.extend_from_slice(&ZIP64_EXTRA.to_le_bytes());
        extra.extend_from_slice(&16u16.to_le_bytes());
        extra.extend_from_slice(&(5u64 << 32).to_le_bytes());
        extra.extend_from_slice(&(6u64 << 32).to_le_bytes());
        zip64_extra(&extra, &mut e).unwrap();
        assert_eq!((e.size, e.compressed, e.local_offset), (5 << 32, 5, 6 << 32));
        let mut e2 = Entry { size: U32_MAX, ..e };
        assert!(zip64_extra(&[], &mut e2).is_err());
    }

    #[test]
    fn many_members_get_a_zip64_end_record() {
        let names: Vec<String> = (0..0x1_0005).map(|i| format!("{i}.npy")).collect();
        let members: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        let bytes = write(&members);
        let eocd = &bytes[bytes.len() - 22..];
        assert_eq!(u16_at(eocd, 10), 0xFFFF, "the 16-bit count saturates");
        let entries = read_directory(&mut Cursor::new(&bytes), bytes.len() as u64).unwrap();
        assert_eq!(entries.len(), names.len());
        assert_eq!(entries.last().unwrap().name, names[names.len() - 1]);
    }
}
