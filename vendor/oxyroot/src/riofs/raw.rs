//! Keys copied between files unchanged (a balerfile patch, see PATCHES.md): every key of every
//! directory read as its bytes on disk, and such bytes written into a new file with their
//! directories and the streamer infos they need.
//!
//! A key's object bytes may hold class references that are offsets from the start of the key
//! (header included), so a copied key keeps its header byte for byte: only the two seek fields,
//! which say where it lies in the new file, change.

use std::collections::HashSet;

use crate::rbytes::rbuffer::RBuffer;
use crate::rbytes::wbuffer::WBuffer;
use crate::rbytes::Marshaler;
use crate::rcont::list::ReaderList;
use crate::rdict::StreamerInfo;
use crate::riofs::dir::TDirectoryFile;
use crate::riofs::key::Key;
use crate::riofs::{Error, Result};
use crate::root::traits::{Named, Object};
use crate::{rcompress, rtypes, RootFile};

/// Largest object (uncompressed) read from a key: bigger claims are damage.
const MAX_OBJECT: i64 = 1 << 30;
/// Deepest directory nesting followed (a deeper one is a loop or damage).
const MAX_DEPTH: usize = 64;

/// One key of a file's directory tree.
#[derive(Clone, Debug)]
pub struct RawKey {
    /// Names of the directories above it, outermost first (empty: the file's top directory).
    pub dir: Vec<String>,
    pub class: String,
    pub name: String,
    pub title: String,
    pub cycle: i16,
    seek: i64,
    n_bytes: i32,
}

impl RawKey {
    pub fn is_dir(&self) -> bool {
        matches!(self.class.as_str(), "TDirectory" | "TDirectoryFile")
    }
}

/// A directory being written: its record and its keys.
pub(crate) struct SubDir {
    path: Vec<String>,
    rec: TDirectoryFile,
}

fn damaged(what: String) -> Error {
    Error::Damaged(what)
}

/// The header of a key from the key's bytes, checked against their length.
fn parse_header(bytes: &[u8]) -> Result<Key> {
    let mut r = RBuffer::new(bytes, 0);
    let key = r
        .read_object_into::<Key>()
        .map_err(|e| damaged(format!("key header unreadable: {e:?}")))?;
    if key.n_bytes() as i64 != bytes.len() as i64 || key.key_len() as i64 != r.pos() || key.key_len() <= 0 {
        return Err(damaged(format!(
            "key '{}' says {} bytes with a {}-byte header; it has {} bytes and a {}-byte header",
            key.name(),
            key.n_bytes(),
            key.key_len(),
            bytes.len(),
            r.pos()
        )));
    }
    if key.obj_len() < 0 || key.obj_len() as i64 > MAX_OBJECT {
        return Err(damaged(format!("key '{}' claims an object of {} bytes", key.name(), key.obj_len())));
    }
    Ok(key)
}

/// The object bytes of a key (decompressed), from the key's bytes.
fn payload(key: &Key, bytes: &[u8]) -> Result<Vec<u8>> {
    let body = &bytes[key.key_len() as usize..];
    if key.obj_len() as usize == body.len() {
        return Ok(body.to_vec());
    }
    let mut out = vec![0; key.obj_len() as usize];
    rcompress::decompress(&mut out, body)?;
    Ok(out)
}

impl RootFile {
    fn file_len(&self) -> Result<u64> {
        Ok(std::fs::metadata(self.path()?)?.len())
    }

    /// Every key of every directory, depth first, each directory's key before its contents.
    pub fn raw_keys(&mut self) -> Result<Vec<RawKey>> {
        let size = self.file_len()?;
        let top = self.dir().keys().clone();
        let mut out = Vec::new();
        self.walk(&top, &mut Vec::new(), size, &mut HashSet::new(), &mut out)?;
        Ok(out)
    }

    fn checked_read(&self, what: &str, seek: i64, n: i64, size: u64) -> Result<Vec<u8>> {
        if seek <= 0 || n <= 0 || (seek as u64).checked_add(n as u64).is_none_or(|end| end > size) {
            return Err(damaged(format!("{what} at {seek}+{n} lies outside the file ({size} bytes)")));
        }
        self.read_at(seek as u64, n as u64)
    }

    fn walk(
        &mut self,
        keys: &[Key],
        dir: &mut Vec<String>,
        size: u64,
        seen: &mut HashSet<i64>,
        out: &mut Vec<RawKey>,
    ) -> Result<()> {
        for k in keys {
            let mut raw = RawKey {
                dir: dir.clone(),
                class: k.class_name().to_string(),
                name: k.name().to_string(),
                title: k.title().to_string(),
                cycle: k.cycle() as i16,
                seek: k.seek_key(),
                n_bytes: k.n_bytes(),
            };
            if !raw.is_dir() {
                out.push(raw);
                continue;
            }
            let what = format!("directory '{}'", raw.name);
            let bytes = self.checked_read(&what, raw.seek, raw.n_bytes as i64, size)?;
            let h = parse_header(&bytes)?;
            if dir.len() >= MAX_DEPTH || !seen.insert(raw.seek) {
                return Err(damaged(format!("{what}: directories nest in a loop or deeper than {MAX_DEPTH}")));
            }
            let rec = payload(&h, &bytes)?;
            let mut sub = RBuffer::new(&rec, 0)
                .read_object_into::<TDirectoryFile>()
                .map_err(|e| damaged(format!("{what}: record unreadable: {e:?}")))?;
            let list = self.checked_read(&what, sub.seek_keys, sub.n_bytes_keys as i64, size)?;
            let lh = RBuffer::new(&list, 0)
                .read_object_into::<Key>()
                .map_err(|e| damaged(format!("{what}: key list unreadable: {e:?}")))?;
            let body = list
                .get(lh.key_len().max(0) as usize..)
                .ok_or_else(|| damaged(format!("{what}: key list header overruns it")))?;
            let mut r = RBuffer::new(body, 0);
            let n = r.read_i32()?;
            if n < 0 || n as usize > body.len() {
                return Err(damaged(format!("{what}: key list claims {n} keys")));
            }
            for _ in 0..n {
                sub.keys.push(
                    r.read_object_into::<Key>()
                        .map_err(|e| damaged(format!("{what}: key list unreadable: {e:?}")))?,
                );
            }
            let name = raw.name.clone();
            out.push(raw);
            dir.push(name);
            let keys = std::mem::take(&mut sub.keys);
            self.walk(&keys, dir, size, seen, out)?;
            dir.pop();
        }
        Ok(())
    }

    /// The bytes of key `k` as they are on disk (header, then the object, compressed or not),
    /// checked to be the key the directory lists.
    pub fn raw_bytes(&self, k: &RawKey) -> Result<Vec<u8>> {
        let size = self.file_len()?;
        let bytes = self.checked_read(&format!("key '{}'", k.name), k.seek, k.n_bytes as i64, size)?;
        let h = parse_header(&bytes)?;
        if h.name() != k.name || h.class_name() != k.class || h.cycle() as i16 != k.cycle {
            return Err(damaged(format!(
                "the directory lists {} '{}';{} at {}, the key there is {} '{}';{}",
                k.class,
                k.name,
                k.cycle,
                k.seek,
                h.class_name(),
                h.name(),
                h.cycle()
            )));
        }
        Ok(bytes)
    }

    /// The streamer info record (a key holding a TList of TStreamerInfo) as on disk.
    pub fn raw_streamer_info(&self) -> Result<Option<Vec<u8>>> {
        let (seek, n) = self.streamer_info_span();
        if seek <= 0 {
            return Ok(None);
        }
        let bytes = self.checked_read("the streamer info record", seek, n as i64, self.file_len()?)?;
        parse_header(&bytes)?;
        Ok(Some(bytes))
    }

    /// The seek of directory `path` (the top directory for an empty path).
    fn dir_seek(&self, path: &[String]) -> Result<i64> {
        if path.is_empty() {
            return Ok(self.dir().seek_dir);
        }
        self.subdirs
            .iter()
            .find(|d| d.path == path)
            .map(|d| d.rec.seek_dir)
            .ok_or_else(|| damaged(format!("no directory {} was made", path.join("/"))))
    }

    fn keys_of(&mut self, path: &[String]) -> &mut Vec<Key> {
        if path.is_empty() {
            return &mut self.mut_dir().keys;
        }
        &mut self.subdirs.iter_mut().find(|d| d.path == path).expect("dir_seek checked it").rec.keys
    }

    /// Makes directory `name` in directory `parent` (made before), with this title, cycle and
    /// key class ("TDirectory", as ROOT writes it, or "TDirectoryFile").
    pub fn mkdir(&mut self, parent: &[String], name: &str, title: &str, cycle: i16, class: &str) -> Result<()> {
        if name.contains('/') || name.is_empty() {
            return Err(Error::NameContainsSlash(name.to_string()));
        }
        let pseek = self.dir_seek(parent)?;
        let len = TDirectoryFile::record_size(self.version()) as i32;
        let mut key = Key::new(name.to_string(), title.to_string(), class.to_string(), len, self)?;
        key.set_cycle(cycle);
        key.set_seek_pdir(pseek);
        let mut rec = TDirectoryFile::new(name.to_string());
        rec.set_title(title);
        if self.is_big_file() {
            rec.make_big();
        }
        rec.n_bytes_name = key.key_len();
        rec.seek_dir = key.seek_key();
        rec.seek_parent = pseek;
        let mut buf = WBuffer::new(0);
        rec.marshal(&mut buf)?;
        let mut buf = buf.buffer();
        buf.resize(len as usize, 0);
        key.set_buffer(buf, false);
        key.write_to_file(self.writer()?)?;
        self.keys_of(parent).push(key);
        let mut path = parent.to_vec();
        path.push(name.to_string());
        self.subdirs.push(SubDir { path, rec });
        Ok(())
    }

    /// Writes a key copied from another file (its bytes as `raw_bytes` gave them) into
    /// directory `dir` (made before).
    pub fn put_raw_key(&mut self, dir: &[String], bytes: &[u8]) -> Result<()> {
        let mut key = parse_header(bytes)?;
        let pseek = self.dir_seek(dir)?;
        let seek = self.end();
        let big = key.rvers() > 1000;
        if !big && (seek + key.n_bytes() as i64 >= i32::MAX as i64) {
            return Err(damaged(format!(
                "key '{}' has 32-bit positions and would lie beyond 2 GiB in the new file",
                key.name()
            )));
        }
        let mut hdr = bytes[..key.key_len() as usize].to_vec();
        // Seek fields follow n_bytes (4), version (2), obj_len (4), datime (4), key_len (2),
        // cycle (2); big-endian like all of ROOT.
        if big {
            hdr[18..26].copy_from_slice(&seek.to_be_bytes());
            hdr[26..34].copy_from_slice(&pseek.to_be_bytes());
        } else {
            hdr[18..22].copy_from_slice(&(seek as i32).to_be_bytes());
            hdr[22..26].copy_from_slice(&(pseek as i32).to_be_bytes());
        }
        key.set_seek_key(seek);
        key.set_seek_pdir(pseek);
        key.raw_header = Some(hdr);
        key.set_buffer(bytes[key.key_len() as usize..].to_vec(), false);
        self.set_end(seek + key.n_bytes() as i64)?;
        key.write_to_file(self.writer()?)?;
        self.keys_of(dir).push(key);
        Ok(())
    }

    /// Writes `payload` as it is, in a new key of `class` at the end of the file, and returns
    /// the file offset of the payload's first byte. `listed` puts the key in the top
    /// directory's key list (an RNTuple's anchor); otherwise it is found only by that offset
    /// (an RNTuple's RBlobs, which frame their own compression, as ROOT writes them).
    pub fn put_stored_key(&mut self, class: &str, name: &str, title: &str, payload: Vec<u8>, listed: bool) -> Result<i64> {
        let len = i32::try_from(payload.len()).map_err(|_| damaged(format!("a {class} key of {} bytes (over 2 GiB)", payload.len())))?;
        let mut key = Key::new(name.to_string(), title.to_string(), class.to_string(), len, self)?;
        key.set_cycle(1);
        key.set_buffer(payload, false);
        key.write_to_file(self.writer()?)?;
        let at = key.seek_key() + key.key_len() as i64;
        if listed {
            self.mut_dir().keys.push(key);
        }
        Ok(at)
    }

    /// Adds the streamer infos of another file's streamer info record (its key's bytes) to
    /// those this file writes; a class version already there is not added twice, and one
    /// this crate cannot write again (see `unwritable_streamer_infos`) is left out.
    pub fn add_streamer_infos_from(&mut self, bytes: &[u8]) -> Result<()> {
        let infos = foreign_infos(bytes)?;
        self.foreign_sinfos.extend(infos.into_iter().filter(writable));
        Ok(())
    }

    /// Writes the key lists and records of the directories `mkdir` made.
    pub(crate) fn close_subdirs(&mut self) -> Result<()> {
        let mut dirs = std::mem::take(&mut self.subdirs);
        for d in &mut dirs {
            let rec = &mut d.rec;
            let mut n = 4;
            if self.is_big_file() {
                n += 8;
            }
            n += rec.keys.iter().map(|k| k.key_len()).sum::<i32>();
            let name = rec.dir().named().name().to_string();
            let title = rec.dir().named().title().to_string();
            let mut hdr = Key::new(name, title, "TDirectory".to_string(), n, self)?;
            hdr.set_seek_pdir(rec.seek_dir);
            let mut buf = WBuffer::new(0);
            buf.write_i32(rec.keys.len() as i32)?;
            for k in &rec.keys {
                k.marshal(&mut buf)?;
            }
            hdr.set_buffer(buf.buffer(), false);
            rec.seek_keys = hdr.seek_key();
            rec.n_bytes_keys = hdr.n_bytes();
            hdr.write_to_file(self.writer()?)?;
            rec.write_header(self)?;
        }
        Ok(())
    }

    /// The streamer infos `add_streamer_infos_from` collected, after this file's own.
    pub(crate) fn merge_foreign_streamer_infos(&mut self) {
        for si in std::mem::take(&mut self.foreign_sinfos) {
            if !self.sinfos_have(si.name(), si.clsver()) {
                self.add_streamer_info_always(si);
            }
        }
    }
}

/// Class, name, title and cycle of a key, from its bytes (as `raw_bytes` gives them), checked.
pub fn raw_key_names(bytes: &[u8]) -> Result<(String, String, String, i16)> {
    let k = parse_header(bytes)?;
    Ok((k.class_name().to_string(), k.name().to_string(), k.title().to_string(), k.cycle() as i16))
}

/// The `TStreamerInfo`s of a streamer info record (its key's bytes).
fn foreign_infos(bytes: &[u8]) -> Result<Vec<StreamerInfo>> {
    let key = parse_header(bytes)?;
    let obj = payload(&key, bytes)?;
    let mut v = rtypes::FACTORY.get(key.class_name())?();
    v.unmarshal(&mut RBuffer::new(&obj, key.key_len() as u32))
        .map_err(|e| damaged(format!("streamer info record unreadable: {e:?}")))?;
    let Ok(mut list) = v.downcast::<ReaderList>() else {
        return Err(damaged(format!("streamer info record is a {}, not a TList", key.class_name())));
    };
    let mut out = Vec::new();
    while !list.is_empty() {
        let obj = list.remove(0);
        if obj.class() == "TStreamerInfo" {
            if let Ok(si) = obj.downcast::<StreamerInfo>() {
                // A clone: what was read carries no object ids, and the writer would take
                // every element for a reference to the first one written.
                out.push((*si).clone());
            }
        }
    }
    Ok(out)
}

/// Whether this crate can write `si` again (some element kinds are read but not written).
fn writable(si: &StreamerInfo) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| si.marshal(&mut WBuffer::new(0)).is_ok())).unwrap_or(false)
}

/// The class versions ("TClass v3") of a streamer info record that `add_streamer_infos_from`
/// leaves out because this crate cannot write them again.
pub fn unwritable_streamer_infos(bytes: &[u8]) -> Result<Vec<String>> {
    Ok(foreign_infos(bytes)?
        .iter()
        .filter(|si| !writable(si))
        .map(|si| format!("{} v{}", si.name(), si.clsver()))
        .collect())
}
