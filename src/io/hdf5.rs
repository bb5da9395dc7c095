//! HDF5 files as sources and sinks. Navigation and attributes go through hdf5-metno; row-range
//! reads and writes use raw calls with a packed little-endian memory type, so one call moves a
//! whole chunk of every field of a compound (table) dataset. Every raw call runs under
//! hdf5-metno's library lock, as its own calls do.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::ops::Range;
use std::os::raw::{c_char, c_void};
use std::path::{Path, PathBuf};

use hdf5::types::{FloatSize, IntSize, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::plist::file_create::{AttrCreationOrder, LinkCreationOrder};
use hdf5_sys::h5::{herr_t, hsize_t};
use hdf5_sys::h5i::hid_t;
use hdf5_sys::h5p::H5P_DEFAULT;
use hdf5_sys::{h5a, h5d, h5s, h5t};

use super::{SourceLayout, Sink, Source};
use crate::atomic::AtomicOutput;
use crate::bound::ErrorBound;
use crate::dtype::{ByteOrder, DType};
use crate::error::{Error, Result};
use crate::header::{
    float_from_json, float_to_json, Attribute, Attributes, DatasetInfo, DatasetKind, GroupInfo, Header, Skipped,
    Chars, SourceFilter, SourceKind, StringEncoding, StringPad, StringType, VariableInfo,
};

/// An HDF5 identifier closed when dropped.
struct Hid(hid_t, unsafe extern "C" fn(hid_t) -> herr_t);

impl Hid {
    fn new(id: hid_t, close: unsafe extern "C" fn(hid_t) -> herr_t, what: &str) -> Result<Self, String> {
        if id < 0 {
            Err(format!("HDF5 could not {what}"))
        } else {
            Ok(Hid(id, close))
        }
    }
}

impl Drop for Hid {
    fn drop(&mut self) {
        hdf5::sync::sync(|| unsafe { (self.1)(self.0) });
    }
}

fn check(ret: herr_t, what: &str) -> Result<(), String> {
    if ret < 0 {
        Err(format!("HDF5 could not {what}"))
    } else {
        Ok(())
    }
}

/// `what` went wrong writing `file`, and that its disk is full where it is: HDF5 says only that
/// a write failed (its own stack holds the errno, which the message does not carry), where the
/// other formats' writers say "No space left on device".
fn with_space(what: String, file: &Path) -> String {
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else { return what };
    // SAFETY: statvfs writes one struct statvfs into `st`, which is zeroed and ours; `c` is a
    // NUL-terminated path.
    let free = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c.as_ptr(), &mut st) == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
    };
    match free {
        Some(b) if b < 1 << 20 => format!("{what}: no space left on the disk holding {} ({b} bytes free)", dir.display()),
        _ => what,
    }
}

/// The HDF5 file type for a dtype in a byte order (bools are h5py's FALSE/TRUE enum).
fn h5_type(dtype: DType, order: ByteOrder) -> Result<Hid, String> {
    use hdf5::globals::*;
    hdf5::sync::sync(|| unsafe {
        if dtype == DType::Bool {
            let t = Hid::new(h5t::H5Tenum_create(*H5T_STD_I8LE), h5t::H5Tclose, "create the bool enum")?;
            for (name, v) in [(c"FALSE", 0i8), (c"TRUE", 1i8)] {
                check(h5t::H5Tenum_insert(t.0, name.as_ptr(), (&v as *const i8).cast()), "build the bool enum")?;
            }
            return Ok(t);
        }
        let le = match dtype {
            DType::I8 => *H5T_STD_I8LE,
            DType::I16 => *H5T_STD_I16LE,
            DType::I32 => *H5T_STD_I32LE,
            DType::I64 => *H5T_STD_I64LE,
            DType::U8 => *H5T_STD_U8LE,
            DType::U16 => *H5T_STD_U16LE,
            DType::U32 => *H5T_STD_U32LE,
            DType::U64 => *H5T_STD_U64LE,
            DType::F32 => *H5T_IEEE_F32LE,
            DType::F64 => *H5T_IEEE_F64LE,
            DType::Bool => unreachable!(),
        };
        let t = Hid::new(h5t::H5Tcopy(le), h5t::H5Tclose, "copy a type")?;
        if order == ByteOrder::Be {
            check(h5t::H5Tset_order(t.0, h5t::H5T_order_t::H5T_ORDER_BE), "set big-endian order")?;
        }
        Ok(t)
    })
}

fn dtype_of(desc: &TypeDescriptor) -> Option<DType> {
    Some(match desc {
        TypeDescriptor::Boolean => DType::Bool,
        TypeDescriptor::Integer(s) => match s {
            IntSize::U1 => DType::I8,
            IntSize::U2 => DType::I16,
            IntSize::U4 => DType::I32,
            IntSize::U8 => DType::I64,
        },
        TypeDescriptor::Unsigned(s) => match s {
            IntSize::U1 => DType::U8,
            IntSize::U2 => DType::U16,
            IntSize::U4 => DType::U32,
            IntSize::U8 => DType::U64,
        },
        TypeDescriptor::Float(FloatSize::U4) => DType::F32,
        TypeDescriptor::Float(FloatSize::U8) => DType::F64,
        _ => return None,
    })
}

fn order_of(type_id: hid_t) -> ByteOrder {
    match hdf5::sync::sync(|| unsafe { h5t::H5Tget_order(type_id) }) {
        h5t::H5T_order_t::H5T_ORDER_BE => ByteOrder::Be,
        _ => ByteOrder::Le,
    }
}

/// A fixed-length string type of one byte (netCDF's char): the dataset is its bytes.
fn chars_of(type_id: hid_t) -> Option<Chars> {
    // SAFETY: plain queries of an open type id, under hdf5-metno's lock.
    hdf5::sync::sync(|| unsafe {
        if h5t::H5Tget_class(type_id) != h5t::H5T_class_t::H5T_STRING || h5t::H5Tis_variable_str(type_id) != 0 || h5t::H5Tget_size(type_id) != 1 {
            return None;
        }
        let encoding = match h5t::H5Tget_cset(type_id) {
            h5t::H5T_cset_t::H5T_CSET_UTF8 => StringEncoding::Utf8,
            _ => StringEncoding::Ascii,
        };
        let pad = match h5t::H5Tget_strpad(type_id) {
            h5t::H5T_str_t::H5T_STR_NULLPAD => StringPad::Nullpad,
            h5t::H5T_str_t::H5T_STR_SPACEPAD => StringPad::Spacepad,
            _ => StringPad::Nullterm,
        };
        Some(Chars { encoding, pad })
    })
}

/// HDF5's string type of one byte for `chars`.
fn chars_type(chars: Chars) -> Result<Hid, String> {
    // SAFETY: a copy of the predefined C string type, changed and closed by its guard.
    hdf5::sync::sync(|| unsafe {
        let t = Hid::new(h5t::H5Tcopy(*hdf5::globals::H5T_C_S1), h5t::H5Tclose, "copy the string type")?;
        check(h5t::H5Tset_size(t.0, 1), "set the string size")?;
        let cset = match chars.encoding {
            StringEncoding::Ascii => h5t::H5T_cset_t::H5T_CSET_ASCII,
            StringEncoding::Utf8 => h5t::H5T_cset_t::H5T_CSET_UTF8,
        };
        check(h5t::H5Tset_cset(t.0, cset), "set the character set")?;
        let pad = match chars.pad {
            StringPad::Nullterm => h5t::H5T_str_t::H5T_STR_NULLTERM,
            StringPad::Nullpad => h5t::H5T_str_t::H5T_STR_NULLPAD,
            StringPad::Spacepad => h5t::H5T_str_t::H5T_STR_SPACEPAD,
        };
        check(h5t::H5Tset_strpad(t.0, pad), "set the string padding")?;
        Ok(t)
    })
}

/// A packed compound (or, for a plain array, the element type) laying out one element of every
/// variable back to back: the memory type of row-range reads and writes.
struct RowType {
    mem: Hid,
    sizes: Vec<usize>,
    item: usize,
}

fn row_type(ds: &DatasetInfo, order_in_file: bool) -> Result<RowType, String> {
    let sizes: Vec<usize> = ds.variables.iter().map(|v| v.dtype.size()).collect();
    let item = sizes.iter().sum();
    let order = |v: &VariableInfo| if order_in_file { v.byte_order } else { ByteOrder::Le };
    if ds.kind == DatasetKind::Array {
        let v = &ds.variables[0];
        // Characters are read and written as the one-byte strings they are: HDF5 converts no
        // string to an integer, and the bytes are the same.
        let mem = match ds.chars {
            Some(c) if v.dtype == DType::U8 => chars_type(c)?,
            Some(_) => return Err(format!("{}: characters held as {}", ds.path, v.dtype)),
            None => h5_type(v.dtype, order(v))?,
        };
        return Ok(RowType { mem, sizes, item });
    }
    hdf5::sync::sync(|| unsafe {
        let t = Hid::new(h5t::H5Tcreate(h5t::H5T_class_t::H5T_COMPOUND, item), h5t::H5Tclose, "create a compound type")?;
        let mut off = 0;
        for v in &ds.variables {
            let field = v.field.as_deref().ok_or("compound variable without a field name")?;
            let name = CString::new(field).map_err(|_| format!("field name {field:?} holds a NUL"))?;
            let ft = h5_type(v.dtype, order(v))?;
            check(h5t::H5Tinsert(t.0, name.as_ptr(), off, ft.0), &format!("add field {field}"))?;
            off += v.dtype.size();
        }
        Ok(RowType { mem: t, sizes, item })
    })
}

/// Selects rows `rows` of a dataset's file space; returns (file space, memory space).
fn select_rows(dset: hid_t, shape: &[u64], rows: &Range<u64>) -> Result<(Hid, Hid), String> {
    hdf5::sync::sync(|| unsafe {
        let fs = Hid::new(h5d::H5Dget_space(dset), h5s::H5Sclose, "get a dataspace")?;
        if shape.is_empty() {
            let ms = Hid::new(h5s::H5Screate(h5s::H5S_class_t::H5S_SCALAR), h5s::H5Sclose, "create a dataspace")?;
            return Ok((fs, ms));
        }
        let mut start: Vec<hsize_t> = vec![0; shape.len()];
        let mut count: Vec<hsize_t> = shape.to_vec();
        start[0] = rows.start;
        count[0] = rows.end - rows.start;
        check(
            h5s::H5Sselect_hyperslab(fs.0, h5s::H5S_seloper_t::H5S_SELECT_SET, start.as_ptr(), std::ptr::null(), count.as_ptr(), std::ptr::null()),
            "select rows",
        )?;
        let ms = Hid::new(h5s::H5Screate_simple(count.len() as i32, count.as_ptr(), std::ptr::null()), h5s::H5Sclose, "create a dataspace")?;
        Ok((fs, ms))
    })
}

fn elements(shape: &[u64], rows: &Range<u64>) -> usize {
    ((rows.end - rows.start) * shape.iter().skip(1).product::<u64>()) as usize
}

pub struct Hdf5Source {
    path: PathBuf,
    _file: hdf5::File,
    /// Each chosen dataset, its memory row type, and whether a read writes every byte of its
    /// buffer (`writes_every_byte`).
    handles: Vec<(hdf5::Dataset, RowType, bool)>,
    layout: SourceLayout,
}

/// Whether HDF5's read of `ds` writes every byte of the buffer, so that `read_rows` need not zero
/// it first (zeroing a chunk's 4 MiB, memory the allocator had handed out before, was 2.5 % of a
/// level-1 `pack`): a plain array, one number an element with no padding, whose unwritten parts
/// read as its fill value. Where its fill time is "never" or its fill value undefined, HDF5 skips
/// unwritten chunks (and a virtual dataset's unmapped regions), leaving those bytes as they were;
/// a compound's records are zeroed whatever HDF5 does with their members.
fn writes_every_byte(ds: &hdf5::Dataset, info: &DatasetInfo) -> bool {
    use hdf5::plist::dataset_create::{FillTime, FillValue};
    info.kind == DatasetKind::Array && ds.dcpl().is_ok_and(|p| p.fill_time() != FillTime::Never && p.fill_value_defined() != FillValue::Undefined)
}

/// True when an HDF5 signature sits at 512, 1024, 2048, ... (a file with a user block).
pub fn has_signature(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else { return false };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut off = 512u64;
    while off + 8 <= len {
        let mut m = [0u8; 8];
        if f.seek(SeekFrom::Start(off)).is_err() || f.read_exact(&mut m).is_err() {
            return false;
        }
        if m == super::HDF5_MAGIC {
            return true;
        }
        off *= 2;
    }
    false
}

impl Hdf5Source {
    /// The datasets `names` name (all when empty), with their coordinates when `coordinates`.
    pub fn open(path: &Path, names: &[String], coordinates: bool) -> Result<Self> {
        let h5err = |e: hdf5::Error| Error::Hdf5 { path: path.into(), what: e.to_string() };
        let file = hdf5::File::open(path).map_err(h5err)?;
        let mut walk = Walk { groups: Vec::new(), datasets: Vec::new(), skipped: Vec::new(), seen: Vec::new() };
        walk.group(&file, "/").map_err(h5err)?;
        let Walk { groups, datasets, mut skipped, .. } = walk;

        // A dataset the user named must be packable; unnamed unpackable ones are only skipped.
        for n in names {
            let want = format!("/{}", n.trim_start_matches('/'));
            if let Some(s) = skipped.iter().find(|s| s.path == want) {
                return Err(Error::input(path, format!("dataset '{n}' cannot be packed: {}", s.reason)));
            }
        }
        let infos: Vec<DatasetInfo> = datasets.iter().map(|(_, d)| d.clone()).collect();
        let selected = if coordinates { super::select_with_coordinates(path, &infos, names)? } else { super::select(path, &infos, names)? };
        if !names.is_empty() {
            // Keep what was not kept of the selected datasets and the groups; drop the rest,
            // which the user did not ask for.
            let about = |s: &Skipped, obj: &str| {
                s.path == obj || s.path.starts_with(&format!("{obj} attribute ")) || s.path.starts_with(&format!("{obj}."))
            };
            skipped.retain(|s| {
                selected.iter().any(|&i| about(s, &infos[i].path))
                    || groups.iter().any(|g| s.path.starts_with(&format!("{} attribute ", g.path)))
            });
        }
        let mut handles = Vec::new();
        let mut chosen = Vec::new();
        for (i, (ds, info)) in datasets.into_iter().enumerate() {
            if selected.contains(&i) {
                let rt = row_type(&info, false).map_err(|what| Error::Hdf5 { path: path.into(), what })?;
                let whole = writes_every_byte(&ds, &info);
                handles.push((ds, rt, whole));
                chosen.push(info);
            }
        }
        if chosen.is_empty() {
            let why: Vec<String> = skipped.iter().map(|s| format!("{} ({})", s.path, s.reason)).collect();
            return Err(Error::input(path, format!("holds no numeric dataset to pack{}", if why.is_empty() { String::new() } else { format!("; skipped: {}", why.join("; ")) })));
        }
        let layout = SourceLayout {
            kind: SourceKind::Hdf5,
            name: path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            groups,
            datasets: chosen,
            skipped,
        };
        Ok(Hdf5Source { path: path.into(), _file: file, handles, layout })
    }
}

struct Walk {
    groups: Vec<GroupInfo>,
    datasets: Vec<(hdf5::Dataset, DatasetInfo)>,
    skipped: Vec<Skipped>,
    /// Each object reached so far and the path it was first reached by: a second hard link
    /// to it (a cycle among them) is named, not walked again.
    seen: Vec<(hdf5::LocationToken, String)>,
}

/// A link `h5 compress` makes again in its output, as h5repack does: it names a path, another
/// file's object, or an object of this file first reached by another path.
#[derive(Clone, Debug, PartialEq)]
pub enum Link {
    Soft(String),
    External { file: String, object: String },
    Hard(String),
}

/// A group's member names, sorted, each with the kind of link it is. Only hard links name an
/// object of this file; a soft link names a path (which may lead back up: walking it can
/// loop forever), an external one another file.
pub(crate) fn member_links(g: &hdf5::Group) -> hdf5::Result<Vec<(String, hdf5::LinkType)>> {
    let mut out = Vec::new();
    g.iter_visit_default(|name, info| {
        out.push((name.to_string(), info.link_type));
        Ok(())
    })?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

impl Walk {
    fn group(&mut self, g: &hdf5::Group, path: &str) -> hdf5::Result<()> {
        let attributes = read_attrs(g, path, &mut self.skipped);
        self.groups.push(GroupInfo { path: path.to_string(), attributes });
        for (name, link) in member_links(g)? {
            let child = join(path, &name);
            let why = match link {
                hdf5::LinkType::Hard => None,
                hdf5::LinkType::Soft => Some("a soft link: links are not kept (what it names is packed under its own path)".to_string()),
                hdf5::LinkType::External => Some("an external link (to another file): not followed, not kept".to_string()),
            };
            if let Some(reason) = why {
                self.skipped.push(Skipped { path: child, reason });
                continue;
            }
            if let Ok(info) = g.loc_info_by_name(&name) {
                if let Some((_, first)) = self.seen.iter().find(|(t, _)| *t == info.token) {
                    let reason = format!("a second hard link to {first}: packed once, as {first}");
                    self.skipped.push(Skipped { path: child, reason });
                    continue;
                }
                self.seen.push((info.token, child.clone()));
            }
            match g.loc_type_by_name(&name) {
                Ok(hdf5::LocationType::Group) => self.group(&g.group(&name)?, &child)?,
                Ok(hdf5::LocationType::Dataset) => {
                    let ds = g.dataset(&name)?;
                    match describe(&ds, &child, &mut self.skipped) {
                        Ok(info) => self.datasets.push((ds, info)),
                        Err(reason) => self.skipped.push(Skipped { path: child, reason }),
                    }
                }
                Ok(_) => {}
                Err(e) => self.skipped.push(Skipped { path: child, reason: format!("cannot open: {e}") }),
            }
        }
        Ok(())
    }
}

/// The fill value a float dataset's writer set on it (`fill`, its `user_fill`: h5py's
/// `fillvalue=`), as a missing-value rule: what HDF5 hands back for the elements never
/// written, and what the filter takes as missing (`h5filter::params`). A CF `_FillValue` or
/// `missing_value` attribute, where there is one, says more and takes its place
/// (`io::view::declare_missing`).
fn fill_property(fill: Option<&serde_json::Value>, dtype: DType) -> Option<crate::missing::MissingRule> {
    if !dtype.is_float() {
        return None;
    }
    crate::missing::MissingRule::new(dtype, &[float_from_json(fill?)?], None, None).ok()
}

/// The fill value set on a dataset (not HDF5's default 0), as the header's `fill_value`: an
/// integer dataset's as a JSON integer (read as one: int64 fills lie beyond a double's 53
/// bits), a float's as `float_to_json`.
fn user_fill(ds: &hdf5::Dataset, dtype: DType) -> Option<serde_json::Value> {
    use hdf5::plist::dataset_create::FillValue;
    let p = ds.dcpl().ok()?;
    if p.fill_value_defined() != FillValue::UserDefined {
        return None;
    }
    match dtype {
        DType::U8 | DType::U16 | DType::U32 | DType::U64 => p.fill_value_as::<u64>().map(Into::into),
        d if d.is_float() => p.fill_value_as::<f64>().map(float_to_json),
        _ => p.fill_value_as::<i64>().map(Into::into),
    }
}

/// A fill value to set, in the type that holds it exactly.
enum Fill {
    Float(f64),
    Int(i64),
    Uint(u64),
}

impl Fill {
    fn from_json(v: &serde_json::Value) -> Option<Fill> {
        match v {
            serde_json::Value::Number(n) if n.is_i64() => n.as_i64().map(Fill::Int),
            serde_json::Value::Number(n) if n.is_u64() => n.as_u64().map(Fill::Uint),
            v => float_from_json(v).map(Fill::Float),
        }
    }
}

/// The filters of a chunked dataset, in pipeline order (none for other layouts).
fn source_filters(ds: &hdf5::Dataset) -> Vec<SourceFilter> {
    use hdf5_sys::h5p;
    hdf5::sync::sync(|| {
        // SAFETY: an open dataset; its creation property list is closed by `Hid`; each
        // H5Pget_filter2 call gets a `cd` buffer of `n` elements and a name buffer of its
        // length, and writes no more than that; under hdf5-metno's lock.
        unsafe {
            let Ok(dcpl) = Hid::new(h5d::H5Dget_create_plist(ds.id()), h5p::H5Pclose, "get creation properties") else { return Vec::new() };
            let count = h5p::H5Pget_nfilters(dcpl.0).max(0) as u32;
            let mut out = Vec::with_capacity(count as usize);
            for i in 0..count {
                let mut flags = 0;
                let mut cd = vec![0u32; 32];
                let mut n = cd.len();
                let mut name = [0 as c_char; 256];
                let mut config = 0;
                let id = h5p::H5Pget_filter2(dcpl.0, i, &mut flags, &mut n, cd.as_mut_ptr(), name.len(), name.as_mut_ptr(), &mut config);
                if id < 0 {
                    continue;
                }
                cd.truncate(n.min(cd.len()));
                let name = std::ffi::CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned();
                out.push(SourceFilter { id, name, cd_values: cd });
            }
            out
        }
    })
}

/// The source files of a virtual dataset that are not there: HDF5 reads their parts as the fill
/// value, and they were packed so, unsaid. Found as HDF5 looks: beside the virtual dataset's
/// file, else from the current folder.
fn missing_vds_sources(ds: &hdf5::Dataset) -> Vec<String> {
    let here = ds.filename();
    let here = Path::new(&here).parent().map(Path::to_path_buf).unwrap_or_default();
    let names: Vec<String> = hdf5::sync::sync(|| {
        // SAFETY: `ds` is open and the property list id is closed by its guard; each name is
        // read into a buffer as long as the length HDF5 gave for it, NUL included; under
        // hdf5-metno's lock.
        unsafe {
            let Ok(dcpl) = Hid::new(h5d::H5Dget_create_plist(ds.id()), hdf5_sys::h5p::H5Pclose, "get the creation properties") else { return Vec::new() };
            if hdf5_sys::h5p::H5Pget_layout(dcpl.0) != hdf5_sys::h5d::H5D_layout_t::H5D_VIRTUAL {
                return Vec::new();
            }
            let mut count = 0usize;
            if hdf5_sys::h5p::H5Pget_virtual_count(dcpl.0, &mut count) < 0 {
                return Vec::new();
            }
            (0..count)
                .filter_map(|i| {
                    let n = hdf5_sys::h5p::H5Pget_virtual_filename(dcpl.0, i, std::ptr::null_mut(), 0);
                    if n <= 0 {
                        return None;
                    }
                    let mut buf = vec![0u8; n as usize + 1];
                    hdf5_sys::h5p::H5Pget_virtual_filename(dcpl.0, i, buf.as_mut_ptr().cast(), buf.len());
                    Some(String::from_utf8_lossy(&buf[..n as usize]).into_owned())
                })
                .collect()
        }
    });
    // A printf pattern (`%b`: unlimited mappings) names no one file; HDF5_VDS_PREFIX is where
    // HDF5 looks first.
    let prefix = std::env::var_os("HDF5_VDS_PREFIX").map(std::path::PathBuf::from);
    let found = |n: &str| prefix.as_ref().is_some_and(|p| p.join(n).exists()) || here.join(n).exists() || Path::new(n).exists();
    let mut gone: Vec<String> = names.into_iter().filter(|n| n != "." && !n.contains('%') && !found(n)).collect();
    gone.sort();
    gone.dedup();
    gone
}

fn describe(ds: &hdf5::Dataset, path: &str, skipped: &mut Vec<Skipped>) -> Result<DatasetInfo, String> {
    let gone = missing_vds_sources(ds);
    if !gone.is_empty() {
        return Err(format!("a virtual dataset whose source file {} is not there: HDF5 would read its part as the fill value", gone.join(", ")));
    }
    if ds.space().is_ok_and(|s| s.is_null()) {
        // h5py.Empty: a dataset that holds no values at all (its attributes are what it carries).
        return Err("a null dataspace (h5py.Empty): it holds no values, and the archive keeps none for it".into());
    }
    let dt = ds.dtype().map_err(|e| e.to_string())?;
    let half = hdf5::sync::sync(|| unsafe { h5t::H5Tget_class(dt.id()) == h5t::H5T_class_t::H5T_FLOAT && h5t::H5Tget_size(dt.id()) == 2 });
    if half {
        return Err("float16 (half precision), which balerfile does not code: store it as float32 to pack it".into());
    }
    let desc = dt.to_descriptor().map_err(|e| format!("not numeric ({e})"))?;
    let shape: Vec<u64> = ds.shape().iter().map(|&s| s as u64).collect();
    let name = path.trim_start_matches('/').to_string();
    let variable = |name: String, field: Option<String>, dtype, byte_order| VariableInfo {
        name,
        field,
        dtype,
        byte_order,
        error: ErrorBound::LOSSLESS,
        stats: None,
        missing: None,
    };
    let chars = chars_of(dt.id());
    let (kind, variables) = if let Some(dtype) = dtype_of(&desc) {
        (DatasetKind::Array, vec![variable(name, None, dtype, order_of(dt.id()))])
    } else if chars.is_some() {
        (DatasetKind::Array, vec![variable(name, None, DType::U8, ByteOrder::Le)])
    } else if let TypeDescriptor::Compound(ct) = &desc {
        let mut vars = Vec::new();
        for f in &ct.fields {
            match dtype_of(&f.ty) {
                Some(dtype) => {
                    let order = hdf5::sync::sync(|| unsafe {
                        let mt = h5t::H5Tget_member_type(dt.id(), f.index as u32);
                        let o = if mt >= 0 { order_of(mt) } else { ByteOrder::Le };
                        if mt >= 0 {
                            h5t::H5Tclose(mt);
                        }
                        o
                    });
                    vars.push(variable(format!("{name}.{}", f.name), Some(f.name.clone()), dtype, order))
                }
                None => skipped.push(Skipped {
                    path: format!("{path}.{}", f.name),
                    reason: format!("field is not numeric ({})", type_name(&f.ty)),
                }),
            }
        }
        if vars.is_empty() {
            return Err("compound dataset with no numeric field".into());
        }
        (DatasetKind::Compound, vars)
    } else {
        return Err(format!("not numeric ({})", type_name(&desc)));
    };
    let mut attributes = read_attrs(ds, path, skipped);
    dimscales::keep_dimension_ids(ds, shape.len(), &mut attributes);
    let mut variables = variables;
    let fill_value = (kind == DatasetKind::Array && chars.is_none()).then(|| user_fill(ds, variables[0].dtype)).flatten();
    if let Some(rule) = fill_property(fill_value.as_ref(), variables[0].dtype) {
        variables[0].missing = Some(rule.to_info(vec![crate::missing::HDF5_FILL.into()]));
    }
    // An axis that may grow (netCDF's unlimited dimension, h5py's `maxshape=None`) stays
    // growable in what unpack and h5 compress write, so appending to it works as before.
    let maxshape: Vec<Option<u64>> = ds.space().map_err(|e| e.to_string())?.maxdims().iter().map(|m| m.map(|m| m as u64)).collect();
    let grows = maxshape.iter().zip(&shape).any(|(m, &n)| *m != Some(n));
    Ok(DatasetInfo {
        path: path.to_string(),
        kind,
        chunks: ds.chunk().map(|c| c.iter().map(|&c| c as u64).collect()),
        filters: source_filters(ds),
        fill_value,
        chars,
        maxshape: grows.then_some(maxshape),
        shape,
        chunk_rows: 1,
        attributes,
        variables,
        model: None,
        jagged: None,
    })
}

fn type_name(desc: &TypeDescriptor) -> String {
    fn has_reference(d: &TypeDescriptor) -> bool {
        match d {
            TypeDescriptor::Reference(_) => true,
            TypeDescriptor::Compound(c) => c.fields.iter().any(|f| has_reference(&f.ty)),
            TypeDescriptor::FixedArray(t, _) | TypeDescriptor::VarLenArray(t) => has_reference(t),
            _ => false,
        }
    }
    if has_reference(desc) {
        return "object references (e.g. netCDF dimension links) are not kept".into();
    }
    match desc {
        TypeDescriptor::FixedAscii(_) | TypeDescriptor::FixedUnicode(_) => "fixed-length string".into(),
        TypeDescriptor::VarLenAscii | TypeDescriptor::VarLenUnicode => "variable-length string".into(),
        TypeDescriptor::Enum(_) => "enum".into(),
        TypeDescriptor::Compound(_) => "compound".into(),
        TypeDescriptor::FixedArray(..) => "array-typed elements".into(),
        TypeDescriptor::VarLenArray(_) => "variable-length sequence".into(),
        other => format!("{other:?}"),
    }
}

fn read_attrs(loc: &hdf5::Location, path: &str, skipped: &mut Vec<Skipped>) -> Attributes {
    let mut out = BTreeMap::new();
    // Listing fails as a whole where the file's format is newer than the library reads (an enum
    // attribute in an HDF5 2.0 file written with libver='latest', read by 1.10): every attribute
    // of the object was dropped unsaid, and is now named skipped.
    let names = match loc.attr_names() {
        Ok(n) => n,
        Err(_) => {
            let (a, b, c) = hdf5::library_version();
            let reason = format!("the HDF5 library here ({a}.{b}.{c}) cannot list them (h5dump of that version cannot either): a file format newer than it reads, such as an HDF5 2.0 file written with libver='latest'");
            skipped.push(Skipped { path: format!("{path} attributes"), reason });
            Vec::new()
        }
    };
    for name in names {
        match loc.attr(&name).map_err(|e| e.to_string()).and_then(|a| read_attr(&a)) {
            Ok(a) => {
                out.insert(name, a);
            }
            Err(reason) => skipped.push(Skipped { path: format!("{path} attribute {name}"), reason }),
        }
    }
    out
}

fn read_attr(attr: &hdf5::Attribute) -> Result<Attribute, String> {
    let dt = attr.dtype().map_err(|e| e.to_string())?;
    let desc = dt.to_descriptor().map_err(|_| "unsupported attribute type".to_string())?;
    let shape: Vec<u64> = attr.shape().iter().map(|&s| s as u64).collect();
    // A null dataspace (h5py.Empty, netCDF's zero-length attributes) holds no value: read as
    // none (shape [], value null; `write_attr` makes it so again), not as one 0.
    let null = attr.space().is_ok_and(|s| s.is_null());
    let count: usize = if null { 0 } else { attr.shape().iter().product() };
    let scalar = shape.is_empty();
    let pack = |vals: Vec<serde_json::Value>| {
        if scalar {
            vals.into_iter().next().unwrap_or(serde_json::Value::Null)
        } else {
            serde_json::Value::Array(vals)
        }
    };
    if let Some(dtype) = dtype_of(&desc) {
        let mem = h5_type(dtype, ByteOrder::Le)?;
        let mut buf = vec![0u8; count * dtype.size()];
        if !null {
            check(hdf5::sync::sync(|| unsafe { h5a::H5Aread(attr.id(), mem.0, buf.as_mut_ptr().cast()) }), "read an attribute")?;
        }
        let vals = buf
            .chunks_exact(dtype.size())
            .map(|b| {
                let mut w = [0u8; 8];
                w[..b.len()].copy_from_slice(b);
                match dtype {
                    DType::F32 => float_to_json(f32::from_le_bytes(b.try_into().unwrap()) as f64),
                    DType::F64 => float_to_json(f64::from_le_bytes(w)),
                    d if d.is_signed() => {
                        let shift = 64 - 8 * b.len() as u32;
                        ((i64::from_le_bytes(w) << shift) >> shift).into()
                    }
                    _ => u64::from_le_bytes(w).into(),
                }
            })
            .collect();
        return Ok(Attribute {
            dtype: dtype.name().into(),
            byte_order: (dtype.size() > 1).then(|| order_of(dt.id())),
            string: None,
            shape,
            value: pack(vals),
        });
    }
    let string = |encoding, fixed_size, vals: Vec<String>| Attribute {
        dtype: "string".into(),
        byte_order: None,
        string: Some(StringType { encoding, fixed_size }),
        shape: shape.clone(),
        value: pack(vals.into_iter().map(Into::into).collect()),
    };
    match desc {
        TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) => {
            let mut buf = vec![0u8; count * n];
            check(hdf5::sync::sync(|| unsafe { h5a::H5Aread(attr.id(), dt.id(), buf.as_mut_ptr().cast()) }), "read an attribute")?;
            let vals = buf
                .chunks_exact(n.max(1))
                .map(|s| {
                    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
                    String::from_utf8_lossy(&s[..end]).into_owned()
                })
                .collect();
            let enc = if matches!(desc, TypeDescriptor::FixedAscii(_)) { StringEncoding::Ascii } else { StringEncoding::Utf8 };
            Ok(string(enc, Some(n as u64), vals))
        }
        TypeDescriptor::VarLenAscii => {
            let v: Vec<VarLenAscii> = attr.read_raw().map_err(|e| e.to_string())?;
            Ok(string(StringEncoding::Ascii, None, v.iter().map(|s| s.as_str().to_string()).collect()))
        }
        TypeDescriptor::VarLenUnicode => {
            let v: Vec<VarLenUnicode> = attr.read_raw().map_err(|e| e.to_string())?;
            Ok(string(StringEncoding::Utf8, None, v.iter().map(|s| s.as_str().to_string()).collect()))
        }
        other => Err(type_name(&other)),
    }
}

impl Source for Hdf5Source {
    fn layout(&self) -> &SourceLayout {
        &self.layout
    }

    fn read_rows(&mut self, dataset: usize, rows: Range<u64>) -> Result<Vec<Vec<u8>>> {
        let info = &self.layout.datasets[dataset];
        let (ds, rt, whole) = &self.handles[dataset];
        let n = elements(&info.shape, &rows);
        let mut buf = if *whole { Vec::with_capacity(n * rt.item) } else { vec![0u8; n * rt.item] };
        let res = select_rows(ds.id(), &info.shape, &rows).and_then(|(fs, ms)| {
            check(
                hdf5::sync::sync(|| unsafe { h5d::H5Dread(ds.id(), rt.mem.0, ms.0, fs.0, H5P_DEFAULT, buf.as_mut_ptr().cast()) }),
                &format!("read rows {}..{} of {}", rows.start, rows.end, info.path),
            )
        });
        res.map_err(|what| Error::Hdf5 { path: self.path.clone(), what })?;
        if *whole {
            // SAFETY: the capacity is n * item bytes, and a successful H5Dread of n elements
            // (`ms` selects all n of the memory space) of the memory type, item bytes each with
            // no padding (one number), has written every one of them: stored values, or the
            // fill value (defined, and its fill time not "never": `writes_every_byte`).
            unsafe { buf.set_len(n * rt.item) };
        }
        Ok(split_rows(buf, &rt.sizes, rt.item))
    }
}

/// Packed records to one buffer per field (a plain array's buffer is passed through).
fn split_rows(buf: Vec<u8>, sizes: &[usize], item: usize) -> Vec<Vec<u8>> {
    if sizes.len() == 1 {
        return vec![buf];
    }
    let mut out: Vec<Vec<u8>> = sizes.iter().map(|s| Vec::with_capacity(buf.len() / item * s)).collect();
    for rec in buf.chunks_exact(item) {
        let mut off = 0;
        for (o, &s) in out.iter_mut().zip(sizes) {
            o.extend_from_slice(&rec[off..off + s]);
            off += s;
        }
    }
    out
}

fn join_rows<'a>(vars: &'a [Vec<u8>], sizes: &[usize], item: usize) -> std::borrow::Cow<'a, [u8]> {
    if sizes.len() == 1 {
        return std::borrow::Cow::Borrowed(&vars[0]);
    }
    let n = vars[0].len() / sizes[0];
    let mut out = vec![0u8; n * item];
    let mut off = 0;
    for (v, &s) in vars.iter().zip(sizes) {
        for (i, rec) in out.chunks_exact_mut(item).enumerate() {
            rec[off..off + s].copy_from_slice(&v[i * s..(i + 1) * s]);
        }
        off += s;
    }
    std::borrow::Cow::Owned(out)
}

/// Fields drop in order: datasets, then the file, then the temporary output (removed when the
/// sink is dropped unfinished), so HDF5 never writes to a file already unlinked.
pub struct Hdf5Sink {
    /// Per archive dataset index: the created dataset, its memory row type and shape.
    open: BTreeMap<usize, (hdf5::Dataset, RowType, Vec<u64>)>,
    file: Option<hdf5::File>,
    output: AtomicOutput,
    /// What of the source's storage the file does not have (see `Sink::notes`).
    notes: Vec<String>,
}

/// How the sink stores a dataset instead of contiguously: its chunk shape and one filter
/// (HDF5 filter id, cd_values), applied as mandatory so a failing filter is an error.
#[derive(Clone, Debug)]
pub struct Storage {
    pub chunk: Vec<u64>,
    pub filter: Option<(i32, Vec<u32>)>,
}

impl Hdf5Sink {
    pub fn create(path: &Path, header: &Header, datasets: &[usize]) -> Result<Self> {
        Self::create_with(path, &header.groups, datasets.iter().map(|&d| (d, &header.datasets[d], None)))
    }

    /// A sink for these datasets (keyed by the caller's index), each stored as `Storage` says.
    pub fn create_with<'a>(
        path: &Path,
        groups: &[GroupInfo],
        datasets: impl IntoIterator<Item = (usize, &'a DatasetInfo, Option<&'a Storage>)>,
    ) -> Result<Self> {
        let output = AtomicOutput::new(path)?;
        let fail = |what: String| Error::Hdf5 { path: path.into(), what };
        // HDF5 1.8's object formats at the least, as netCDF-4 writes: attributes over 64 KiB
        // (dense attribute storage) need them, and a source that held one gave an archive whose
        // unpack to HDF5 failed ("could not create the attribute").
        // Links and attributes in creation order, as netCDF-4 makes them: the netCDF library
        // opens a file whose groups do not track it for reading only ("NetCDF: Can't write
        // file"), so no variable or time step could be added to an unpacked file.
        let file = hdf5::File::with_options()
            .with_fapl(|p| p.libver_v18())
            .with_fcpl(|p| p.link_creation_order(LinkCreationOrder::Indexed).attr_creation_order(AttrCreationOrder::Indexed))
            .create(output.tmp_path())
            .map_err(|e| fail(e.to_string()))?;
        for g in groups {
            let group = group_at(&file, &g.path);
            let group = group.map_err(|e| fail(format!("group {}: {e}", g.path)))?;
            write_attrs(&group, &g.attributes).map_err(|e| fail(format!("{}: {e}", g.path)))?;
        }
        let mut open = BTreeMap::new();
        let mut created = Vec::new();
        let mut notes = Vec::new();
        for (d, info, storage) in datasets {
            let lost: Vec<String> = info.filters.iter().filter(|f| !f.is_reapplied()).map(|f| format!("{} ({})", f.id, f.name)).collect();
            if storage.is_none() && !lost.is_empty() {
                notes.push(format!("{}: written without its source's filters {} (unpack applies deflate, shuffle and fletcher32 again, no other)", info.path, lost.join(", ")));
            }
            let ds = create_dataset(&file, info, storage).map_err(|e| fail(format!("{}: {e}", info.path)))?;
            write_attrs(&ds, &info.attributes).map_err(|e| fail(format!("{}: {e}", info.path)))?;
            let rt = row_type(info, false).map_err(fail)?;
            created.push((info, ds.clone()));
            open.insert(d, (ds, rt, info.shape.clone()));
        }
        dimscales::attach(&created).map_err(fail)?;
        Ok(Hdf5Sink { open, file: Some(file), output, notes })
    }

    /// Copies object `path` of `src` (a dataset or group, with its attributes, storage and
    /// filters) into this file at the same path, as h5repack does for what it does not change.
    /// Makes link `path` (its groups exist: made or copied before).
    pub fn link(&self, path: &str, link: &Link) -> Result<()> {
        let file = self.file.as_ref().expect("sink open");
        let r = match link {
            Link::Soft(target) => file.link_soft(target, path),
            Link::Hard(target) => file.link_hard(target, path),
            Link::External { file: f, object } => file.link_external(f, object, path),
        };
        r.map_err(|e| Error::Hdf5 { path: self.output.dest().into(), what: format!("link {path}: {e}") })
    }

    /// After `copy_object` of `copied` (of `all`, the source's datasets that are in this file):
    /// their dimension links made again (`dimscales::relink`).
    pub fn relink_dimensions(&self, src: &hdf5::File, copied: &[String], all: &[String]) -> Result<Vec<String>> {
        let file = self.file.as_ref().expect("sink open");
        dimscales::relink(src, file, copied, all).map_err(|what| Error::Hdf5 { path: self.output.dest().into(), what })
    }

    /// What the copy could not keep comes back (attributes of a dataset made afresh).
    pub fn copy_object(&self, src: &hdf5::File, path: &str) -> Result<Vec<Skipped>> {
        let file = self.file.as_ref().expect("sink open");
        let fail = |what: String| Error::Hdf5 { path: self.output.dest().into(), what: format!("copy {path}: {what}") };
        let cpath = CString::new(path).map_err(|_| fail("path holds a NUL".into()))?;
        if let Ok(ds) = src.dataset(path) {
            if vlen_with_fill(&ds) {
                copy_afresh(&ds, file, &cpath).map_err(fail)?;
                let mut skipped = Vec::new();
                let attrs = read_attrs(&ds, path, &mut skipped);
                let out = file.dataset(path).map_err(|e| fail(e.to_string()))?;
                // Dimension links (object references) are skipped here and made again by
                // `relink_dimensions`.
                skipped.retain(|s| !s.is_dimension_link());
                write_attrs(&out, &attrs).map_err(fail)?;
                return Ok(skipped);
            }
        }
        hdf5::sync::sync(|| unsafe {
            let lcpl = Hid::new(hdf5_sys::h5p::H5Pcreate(*hdf5::globals::H5P_LINK_CREATE), hdf5_sys::h5p::H5Pclose, "create a link property list")?;
            check(hdf5_sys::h5p::H5Pset_create_intermediate_group(lcpl.0, 1), "set intermediate group creation")?;
            check(hdf5_sys::h5o::H5Ocopy(src.id(), cpath.as_ptr(), file.id(), cpath.as_ptr(), H5P_DEFAULT, lcpl.0), "copy the object")
        })
        .map_err(fail)?;
        // H5Ocopy into another file leaves a reference attribute null (it read back as "(null)"
        // and could not be followed, unsaid): such attributes are removed and named. Dimension
        // links are made again by `relink_dimensions`.
        let mut lost = Vec::new();
        if let (Some(from), Some(to)) = (object_at(src, path), object_at(file, path)) {
            for name in reference_attributes(&from) {
                let gone = Skipped { path: format!("{path} attribute {name}"), reason: "object or region references, which point into the input".into() };
                if !gone.is_dimension_link() {
                    remove_attribute(&to, &name, path).map_err(fail)?;
                    lost.push(gone);
                }
            }
        }
        Ok(lost)
    }
}

/// Dataset or group `path` of `file`.
fn object_at(file: &hdf5::File, path: &str) -> Option<hdf5::Location> {
    let loc = |l: &hdf5::Location| l.clone();
    file.dataset(path).map(|d| loc(&d)).or_else(|_| file.group(path).map(|g| loc(&g))).ok()
}

/// The attributes of `obj` whose type holds object or region references.
fn reference_attributes(obj: &hdf5::Location) -> Vec<String> {
    let Ok(names) = obj.attr_names() else { return Vec::new() };
    names
        .into_iter()
        .filter(|name| {
            let Ok(cname) = CString::new(name.as_str()) else { return false };
            // SAFETY: an open object and a NUL-terminated name; the attribute and type ids are
            // closed by their guards; under hdf5-metno's lock.
            hdf5::sync::sync(|| unsafe {
                let Ok(a) = Hid::new(h5a::H5Aopen(obj.id(), cname.as_ptr(), H5P_DEFAULT), h5a::H5Aclose, "open") else { return false };
                Hid::new(h5a::H5Aget_type(a.0), h5t::H5Tclose, "type").is_ok_and(|t| h5t::H5Tdetect_class(t.0, h5t::H5T_class_t::H5T_REFERENCE) > 0)
            })
        })
        .collect()
}

fn remove_attribute(obj: &hdf5::Location, name: &str, path: &str) -> Result<(), String> {
    let cname = CString::new(name).map_err(|_| format!("attribute name {name:?} holds a NUL"))?;
    // SAFETY: an open object and a NUL-terminated name, under the library lock.
    let ret = hdf5::sync::sync(|| unsafe { h5a::H5Adelete(obj.id(), cname.as_ptr()) });
    check(ret, &format!("remove {name} of {path}"))
}

/// Whether dataset `path` of `file` holds object or region references (which point into its
/// own file, so a copy into another holds references to nothing).
pub fn holds_references(file: &hdf5::File, path: &str) -> bool {
    let Ok(ds) = file.dataset(path) else { return false };
    // SAFETY: `ds` is open; the type id is closed by its guard; under hdf5-metno's lock.
    hdf5::sync::sync(|| unsafe {
        Hid::new(h5d::H5Dget_type(ds.id()), h5t::H5Tclose, "get the type").is_ok_and(|t| h5t::H5Tdetect_class(t.0, h5t::H5T_class_t::H5T_REFERENCE) > 0)
    })
}

/// Whether `ds` holds variable-length values (netCDF-4 string variables) and has a fill value
/// set: H5Ocopy to another file writes such a fill value's reference into a global heap of the
/// source, so the copy's creation properties cannot be read ("bad global heap collection
/// signature": h5py, h5dump and netCDF fail on it; h5py's own copy does the same with HDF5 2.0).
fn vlen_with_fill(ds: &hdf5::Dataset) -> bool {
    use hdf5_sys::h5d::H5D_fill_value_t;
    // SAFETY: `ds` is open; the type and property list ids are closed by their guards; the
    // fill state is written into a local; under hdf5-metno's lock.
    hdf5::sync::sync(|| unsafe {
        let Ok(t) = Hid::new(h5d::H5Dget_type(ds.id()), h5t::H5Tclose, "get the type") else { return false };
        let vlen = h5t::H5Tis_variable_str(t.0) > 0 || h5t::H5Tdetect_class(t.0, h5t::H5T_class_t::H5T_VLEN) > 0;
        let Ok(dcpl) = Hid::new(h5d::H5Dget_create_plist(ds.id()), hdf5_sys::h5p::H5Pclose, "get the creation properties") else { return false };
        let mut state = H5D_fill_value_t::H5D_FILL_VALUE_UNDEFINED;
        vlen && hdf5_sys::h5p::H5Pfill_value_defined(dcpl.0, &mut state) >= 0 && state == H5D_fill_value_t::H5D_FILL_VALUE_USER_DEFINED
    })
}

/// Makes dataset `cpath` of `out` afresh from `src`'s: its type, shape, creation properties
/// (chunks, filters, the fill value written into `out`'s own heap) and values.
#[allow(deprecated)] // H5Dvlen_reclaim: H5Treclaim from 1.12 only, and 1.10 is supported.
fn copy_afresh(src: &hdf5::Dataset, out: &hdf5::File, cpath: &CString) -> Result<(), String> {
    use hdf5_sys::h5p;
    // SAFETY: every id is closed by its guard; `fill` holds one element of the type (H5Tget_size
    // bytes) and `buf` `n` of them, as H5Pget_fill_value and H5Dread write; HDF5 allocated the
    // variable-length parts they point to, and H5Dvlen_reclaim frees those after their last use
    // (H5Pset_fill_value and H5Dwrite copy what they need); under hdf5-metno's lock.
    hdf5::sync::sync(|| unsafe {
        let t = Hid::new(h5d::H5Dget_type(src.id()), h5t::H5Tclose, "get the type")?;
        let space = Hid::new(h5d::H5Dget_space(src.id()), h5s::H5Sclose, "get the dataspace")?;
        let dcpl = Hid::new(h5d::H5Dget_create_plist(src.id()), h5p::H5Pclose, "get the creation properties")?;
        let size = h5t::H5Tget_size(t.0);
        // One element of the type: for a variable-length one, pointers HDF5 allocates.
        let mut fill = vec![0u8; size.max(1)];
        check(h5p::H5Pget_fill_value(dcpl.0, t.0, fill.as_mut_ptr().cast()), "read the fill value")?;
        let ndcpl = Hid::new(h5p::H5Pcopy(dcpl.0), h5p::H5Pclose, "copy the creation properties")?;
        let set = h5p::H5Pset_fill_value(ndcpl.0, t.0, fill.as_ptr().cast());
        let one = Hid::new(h5s::H5Screate(h5s::H5S_class_t::H5S_SCALAR), h5s::H5Sclose, "create a dataspace")?;
        h5d::H5Dvlen_reclaim(t.0, one.0, H5P_DEFAULT, fill.as_mut_ptr().cast());
        check(set, "set the fill value")?;
        let lcpl = Hid::new(h5p::H5Pcreate(*hdf5::globals::H5P_LINK_CREATE), h5p::H5Pclose, "create a link property list")?;
        check(h5p::H5Pset_create_intermediate_group(lcpl.0, 1), "set intermediate group creation")?;
        let d = Hid::new(h5d::H5Dcreate2(out.id(), cpath.as_ptr(), t.0, space.0, lcpl.0, ndcpl.0, H5P_DEFAULT), h5d::H5Dclose, "create the dataset")?;
        let n = h5s::H5Sget_simple_extent_npoints(space.0).max(0) as usize;
        if n > 0 {
            let mut buf = vec![0u8; n * size];
            check(h5d::H5Dread(src.id(), t.0, h5s::H5S_ALL, h5s::H5S_ALL, H5P_DEFAULT, buf.as_mut_ptr().cast()), "read the values")?;
            let w = h5d::H5Dwrite(d.0, t.0, h5s::H5S_ALL, h5s::H5S_ALL, H5P_DEFAULT, buf.as_ptr().cast());
            h5d::H5Dvlen_reclaim(t.0, space.0, H5P_DEFAULT, buf.as_mut_ptr().cast());
            check(w, "write the values")?;
        }
        Ok(())
    })
}

/// netCDF-4's links from variables to their dimensions, rebuilt from the header.
mod dimscales {
    use std::collections::HashMap;
    use std::os::raw::{c_int, c_uint, c_void};

    use hdf5_sys::h5::herr_t;
    use hdf5_sys::h5i::hid_t;

    use super::{check, h5a, remove_attribute, H5P_DEFAULT};
    use crate::header::DatasetInfo;

    // libhdf5_hl sits beside libhdf5, in the folder hdf5-metno-sys already adds to the link
    // search path. hdf5-metno-sys declares no high-level functions (and its "hl" feature would
    // put its HDF5 source build in Cargo.lock), so this is the C signature from H5DSpublic.h.
    #[link(name = "hdf5_hl")]
    extern "C" {
        fn H5DSattach_scale(did: hid_t, dsid: hid_t, idx: c_uint) -> herr_t;
        fn H5DSis_attached(did: hid_t, dsid: hid_t, idx: c_uint) -> hdf5_sys::h5::htri_t;
        fn H5DSiterate_scales(did: hid_t, dim: c_uint, idx: *mut c_int, visitor: Visitor, visitor_data: *mut c_void) -> herr_t;
    }

    /// H5DS_iterate_t.
    type Visitor = unsafe extern "C" fn(did: hid_t, dim: c_uint, dsid: hid_t, visitor_data: *mut c_void) -> herr_t;

    use crate::header::parent_group as group;
    use crate::io::{attr_ints as ints, LINKED_DIMIDS, NC_COORDINATES as COORDINATES};

    /// The `_Netcdf4Dimid` of the first scale attached to axis `dim` of `did`.
    fn scale_dimid(did: hid_t, dim: c_uint) -> Option<i64> {
        unsafe extern "C" fn first(_did: hid_t, _dim: c_uint, dsid: hid_t, data: *mut c_void) -> herr_t {
            let name = c"_Netcdf4Dimid";
            // SAFETY: `data` is the `Option<i64>` `scale_dimid` passes, alive for the call; `dsid`
            // is an open scale HDF5 hands the visitor; the attribute is read as one native int
            // into a local.
            unsafe {
                let out = &mut *(data as *mut Option<i64>);
                if h5a::H5Aexists(dsid, name.as_ptr()) > 0 {
                    let a = h5a::H5Aopen(dsid, name.as_ptr(), H5P_DEFAULT);
                    if a >= 0 {
                        let mut v: c_int = 0;
                        if h5a::H5Aread(a, *hdf5::globals::H5T_NATIVE_INT, (&mut v as *mut c_int).cast()) >= 0 {
                            *out = Some(v as i64);
                        }
                        h5a::H5Aclose(a);
                    }
                }
            }
            1 // the first scale only: a positive return stops the iteration
        }
        let mut out: Option<i64> = None;
        // SAFETY: `did` is an open dataset; the visitor writes only through the pointer to `out`,
        // which outlives the call; under hdf5-metno's lock.
        let r = hdf5::sync::sync(|| unsafe { H5DSiterate_scales(did, dim, std::ptr::null_mut(), first, (&mut out as *mut Option<i64>).cast()) });
        if r < 0 {
            return None;
        }
        out
    }

    /// The paths (in their file) of the scales attached to each of `did`'s `rank` axes.
    fn scale_paths(did: hid_t, rank: usize) -> Vec<Vec<String>> {
        unsafe extern "C" fn name(_did: hid_t, _dim: c_uint, dsid: hid_t, data: *mut c_void) -> herr_t {
            // SAFETY: `data` is the `Vec<String>` `scale_paths` passes, alive for the call; `dsid`
            // is an open scale HDF5 hands the visitor; H5Iget_name is asked the name's length
            // first (a null buffer), then writes it and its NUL into `buf`, one longer.
            unsafe {
                let out = &mut *(data as *mut Vec<String>);
                let n = hdf5_sys::h5i::H5Iget_name(dsid, std::ptr::null_mut(), 0);
                if n > 0 {
                    let mut buf = vec![0u8; n as usize + 1];
                    hdf5_sys::h5i::H5Iget_name(dsid, buf.as_mut_ptr().cast(), buf.len());
                    out.push(String::from_utf8_lossy(&buf[..n as usize]).into_owned());
                }
            }
            0
        }
        (0..rank)
            .map(|dim| {
                let mut out: Vec<String> = Vec::new();
                // SAFETY: `did` is an open dataset; the visitor writes only through the pointer
                // to `out`, which outlives the call; under hdf5-metno's lock.
                hdf5::sync::sync(|| unsafe { H5DSiterate_scales(did, dim as c_uint, std::ptr::null_mut(), name, (&mut out as *mut Vec<String>).cast()) });
                out
            })
            .collect()
    }

    fn has_attribute(ds: &hdf5::Dataset, name: &str) -> bool {
        let Ok(c) = std::ffi::CString::new(name) else { return false };
        // SAFETY: an open dataset and a NUL-terminated name, under the library lock.
        hdf5::sync::sync(|| unsafe { h5a::H5Aexists(ds.id(), c.as_ptr()) > 0 })
    }

    /// Links again the dimension scales of the datasets of `out` that came from `src`, after
    /// `copied` of them were copied with H5Ocopy and the rest made afresh. DIMENSION_LIST and
    /// REFERENCE_LIST are object references, which H5Ocopy carries over as addresses in `src`:
    /// in `out` they point at nothing, and netCDF and xarray could not open the file. So the
    /// copied ones are removed, and every axis is attached to the scales at the paths its
    /// source dataset's were attached to (the datasets made afresh have those the archive's
    /// dimension ids gave them already).
    pub(super) fn relink(src: &hdf5::File, out: &hdf5::File, copied: &[String], all: &[String]) -> Result<Vec<String>, String> {
        let mut notes = Vec::new();
        for p in copied {
            let Ok(ds) = out.dataset(p) else { continue };
            for name in ["REFERENCE_LIST", "DIMENSION_LIST"] {
                if has_attribute(&ds, name) {
                    remove_attribute(&ds, name, p)?;
                }
            }
        }
        for p in all {
            let Ok(s) = src.dataset(p) else { continue };
            // HDF5 attaches no scale to a scale (`attach` leaves those out too).
            if !has_attribute(&s, "DIMENSION_LIST") || has_attribute(&s, "CLASS") {
                continue;
            }
            let o = out.dataset(p).map_err(|e| format!("{p}: {e}"))?;
            for (dim, scales) in scale_paths(s.id(), s.ndim()).iter().enumerate() {
                for sp in scales {
                    let Ok(scale) = out.dataset(sp) else {
                        notes.push(format!("{p}: dimension scale {sp} of axis {dim} is not in the output: that link is not kept"));
                        continue;
                    };
                    // SAFETY: both ids are open datasets of `out`, kept open for the calls;
                    // under hdf5-metno's lock.
                    let attached = hdf5::sync::sync(|| unsafe { H5DSis_attached(o.id(), scale.id(), dim as c_uint) });
                    if attached <= 0 {
                        let ret = hdf5::sync::sync(|| unsafe { H5DSattach_scale(o.id(), scale.id(), dim as c_uint) });
                        if ret < 0 {
                            notes.push(format!("{p}: HDF5 could not attach dimension scale {sp} to axis {dim}: that link is not kept"));
                        }
                    }
                }
            }
        }
        Ok(notes)
    }

    /// Adds `LINKED_DIMIDS` to a dataset's attributes where the file links it to its scales
    /// (DIMENSION_LIST) but says nothing of netCDF-4's own (`_Netcdf4Coordinates`).
    pub(super) fn keep_dimension_ids(ds: &hdf5::Dataset, rank: usize, attrs: &mut crate::header::Attributes) {
        if rank == 0 || attrs.contains_key(COORDINATES) || attrs.contains_key("CLASS") || !has_attribute(ds, "DIMENSION_LIST") {
            return;
        }
        let ids: Option<Vec<i64>> = (0..rank).map(|d| scale_dimid(ds.id(), d as c_uint)).collect();
        if let Some(ids) = ids {
            let shape = vec![ids.len() as u64];
            attrs.insert(LINKED_DIMIDS.into(), crate::io::netcdf3::int_attribute(ids.into_iter().map(Into::into).collect(), shape));
        }
    }


    /// Attaches to every dataset that lists its dimension ids in `_Netcdf4Coordinates` the
    /// dimension scales of its group with those `_Netcdf4Dimid`s, writing the DIMENSION_LIST
    /// and REFERENCE_LIST the netCDF library and h5netcdf find dimensions by. When one of its
    /// scales is not in this file (the archive holds a selection) the attribute is removed
    /// instead, so netCDF matches dimensions by length rather than by ids that do not exist.
    pub(super) fn attach(created: &[(&DatasetInfo, hdf5::Dataset)]) -> Result<(), String> {
        let mut scales = HashMap::new();
        for (info, ds) in created {
            if let (true, Some(id)) = (info.is_dimension_scale(), info.attributes.get("_Netcdf4Dimid").and_then(ints)) {
                if let [id] = id[..] {
                    scales.insert((group(&info.path), id), (ds, info.shape.first().copied(), info.is_extendable(0)));
                }
            }
        }
        for (info, ds) in created {
            let linked = info.attributes.get(LINKED_DIMIDS).and_then(ints);
            if linked.is_some() {
                remove_attribute(ds, LINKED_DIMIDS, &info.path)?;
            }
            let Some(dimids) = info.attributes.get(COORDINATES).and_then(ints).or(linked) else { continue };
            if info.is_dimension_scale() {
                // A multi-dimensional coordinate variable: HDF5 attaches no scale to a scale.
                continue;
            }
            // netCDF finds a dimension in the variable's group or the nearest group above it.
            let lookup = |id: i64, len: u64| {
                let mut g = group(&info.path);
                loop {
                    // An unlimited dimension is as long as its longest variable, and netCDF
                    // leaves its scale at 0 where it has no coordinate variable.
                    if let Some((s, n, grows)) = scales.get(&(g, id)) {
                        return (*n == Some(len) || (*grows && n.is_some_and(|n| n <= len))).then_some(*s);
                    }
                    if g.is_empty() {
                        return None;
                    }
                    g = group(g);
                }
            };
            let found: Option<Vec<_>> = if dimids.len() == info.shape.len() {
                dimids.iter().zip(&info.shape).map(|(&id, &len)| lookup(id, len)).collect()
            } else {
                None
            };
            match found {
                Some(found) => {
                    for (axis, scale) in found.into_iter().enumerate() {
                        // SAFETY: both ids are open datasets of the same file, kept open by
                        // `created` for the whole call; the call runs under hdf5-metno's lock.
                        let ret = hdf5::sync::sync(|| unsafe { H5DSattach_scale(ds.id(), scale.id(), axis as c_uint) });
                        check(ret, &format!("attach dimension scale {axis} of {}", info.path))?;
                    }
                }
                None if info.attributes.contains_key(COORDINATES) => remove_attribute(ds, COORDINATES, &info.path)?,
                None => {}
            }
        }
        Ok(())
    }
}

fn create_dataset(file: &hdf5::File, info: &DatasetInfo, storage: Option<&Storage>) -> Result<hdf5::Dataset, String> {
    let (parent, name) = info.path.rsplit_once('/').ok_or("dataset path without '/'")?;
    let parent = group_at(file, parent).map_err(|e| e.to_string())?;
    let ftype = row_type(info, true)?;
    let cname = CString::new(name).map_err(|_| "dataset name holds a NUL")?;
    if info.maxshape.as_ref().is_some_and(|m| m.len() != info.shape.len()) {
        return Err(format!("maxshape {:?} for shape {:?}", info.maxshape, info.shape));
    }
    // SAFETY: every id is closed by its guard; `dims` and `max` (as long as `dims`, checked
    // above), `chunk` and the fill value outlive the calls that read them; H5Pset_chunk reads
    // `chunk.len()` entries; under hdf5-metno's lock.
    hdf5::sync::sync(|| unsafe {
        let space = if info.shape.is_empty() {
            Hid::new(h5s::H5Screate(h5s::H5S_class_t::H5S_SCALAR), h5s::H5Sclose, "create a dataspace")?
        } else {
            let dims: Vec<hsize_t> = info.shape.clone();
            let max: Option<Vec<hsize_t>> = info.maxshape.as_ref().map(|m| m.iter().map(|m| m.unwrap_or(h5s::H5S_UNLIMITED)).collect());
            let max_ptr = max.as_ref().map_or(std::ptr::null(), |m| m.as_ptr());
            Hid::new(h5s::H5Screate_simple(dims.len() as i32, dims.as_ptr(), max_ptr), h5s::H5Sclose, "create a dataspace")?
        };
        // The fill value property the source dataset had (`fill_property`), set again: readers
        // get it for elements never written, and the filter and `pack` take it as missing.
        // Archives before `fill_value` say it only where it was the missing-value marker.
        let fill = match (&info.kind, info.variables.first().and_then(|v| v.missing.as_ref())) {
            _ if info.chars.is_some() => None,
            (DatasetKind::Array, _) if info.fill_value.is_some() => info.fill_value.as_ref().and_then(Fill::from_json),
            (DatasetKind::Array, Some(m)) if m.from == [crate::missing::HDF5_FILL] => m.fill.first().and_then(float_from_json).map(Fill::Float),
            _ => None,
        };
        let chunk = chunk_shape(info, storage);
        let dcpl = {
            use hdf5_sys::h5p;
            let dcpl = Hid::new(h5p::H5Pcreate(*hdf5::globals::H5P_DATASET_CREATE), h5p::H5Pclose, "create a dataset creation property list")?;
            let order = h5p::H5P_CRT_ORDER_TRACKED | h5p::H5P_CRT_ORDER_INDEXED;
            check(h5p::H5Pset_attr_creation_order(dcpl.0, order), "track attribute creation order")?;
            if let Some(chunk) = &chunk {
                check(h5p::H5Pset_chunk(dcpl.0, chunk.len() as i32, chunk.as_ptr()), &format!("set chunks {chunk:?}"))?;
            }
            if storage.is_none() && chunk.is_some() {
                // h5 compress puts its own filter in their place.
                for f in info.filters.iter().filter(|f| f.is_reapplied()) {
                    let ret = match f.id {
                        SourceFilter::DEFLATE => h5p::H5Pset_deflate(dcpl.0, f.cd_values.first().copied().unwrap_or(6).min(9)),
                        SourceFilter::SHUFFLE => h5p::H5Pset_shuffle(dcpl.0),
                        _ => h5p::H5Pset_fletcher32(dcpl.0),
                    };
                    check(ret, &format!("add the {} filter", f.name))?;
                }
            }
            if let Some(st) = storage {
                if let Some((id, cd)) = &st.filter {
                    check(
                        h5p::H5Pset_filter(dcpl.0, *id, hdf5_sys::h5z::H5Z_FLAG_MANDATORY, cd.len(), cd.as_ptr()),
                        &format!("add filter {id} (is it registered?)"),
                    )?;
                }
            }
            // HDF5 converts the value to the dataset's type, as it stored the original; an
            // integer goes as one (int64 fills such as netCDF's lie beyond a double's 53 bits).
            let set = |t: hid_t, v: *const c_void| check(h5p::H5Pset_fill_value(dcpl.0, t, v), "set the fill value");
            match fill {
                Some(Fill::Float(v)) => set(*hdf5::globals::H5T_NATIVE_DOUBLE, (&v as *const f64).cast())?,
                Some(Fill::Int(v)) => set(*hdf5::globals::H5T_NATIVE_LLONG, (&v as *const i64).cast())?,
                Some(Fill::Uint(v)) => set(*hdf5::globals::H5T_NATIVE_ULLONG, (&v as *const u64).cast())?,
                None => {}
            }
            dcpl
        };
        let id = h5d::H5Dcreate2(parent.id(), cname.as_ptr(), ftype.mem.0, space.0, H5P_DEFAULT, dcpl.0, H5P_DEFAULT);
        Hid::new(id, h5d::H5Dclose, "create the dataset").map(drop)
    })?;
    // hdf5-metno cannot adopt a raw id, so reopen what was just created through it.
    parent.dataset(name).map_err(|e| e.to_string())
}

/// The group at `path` of a file the sink makes, made (with its missing parents) tracking link
/// and attribute creation order as the file's root does (see `create_with`).
fn group_at(file: &hdf5::File, path: &str) -> hdf5::Result<hdf5::Group> {
    let mut group = file.group("/")?;
    for name in path.split('/').filter(|n| !n.is_empty()) {
        group = match group.group(name) {
            Ok(g) => g,
            Err(_) => group
                .create_group_builder()
                .with_gcpl(|p| p.link_creation_order(LinkCreationOrder::Indexed).attr_creation_order(AttrCreationOrder::Indexed))
                .create(name)?,
        };
    }
    Ok(group)
}

/// The chunk shape a dataset is made with: the caller's (h5 compress), else the source's, else,
/// for an axis that may grow (which HDF5 allows only chunked), chunks of about 1 MiB (HDF5's
/// default chunk cache) cut along the leading axes, where records are appended. `None`:
/// contiguous. Each axis is at least 1, and no longer than a fixed axis (as HDF5 requires).
fn chunk_shape(info: &DatasetInfo, storage: Option<&Storage>) -> Option<Vec<u64>> {
    const BUDGET: u64 = 1 << 20;
    if info.shape.is_empty() {
        return None;
    }
    let mut chunk = match (storage, &info.chunks) {
        (Some(st), _) => st.chunk.clone(),
        (None, Some(c)) if c.len() == info.shape.len() => c.clone(),
        _ if info.maxshape.is_some() => {
            let item: u64 = info.variables.iter().map(|v| v.dtype.size() as u64).sum::<u64>().max(1);
            let mut chunk: Vec<u64> = info.shape.iter().map(|&n| n.max(1)).collect();
            for axis in 0..chunk.len() {
                let inner: u64 = chunk[axis + 1..].iter().product::<u64>().saturating_mul(item);
                chunk[axis] = chunk[axis].min((BUDGET / inner.max(1)).max(1));
            }
            chunk
        }
        _ => return None,
    };
    for (axis, c) in chunk.iter_mut().enumerate() {
        let max = info.maxshape.as_ref().map_or(info.shape.get(axis).copied(), |m| m.get(axis).copied().flatten());
        *c = (*c).min(max.unwrap_or(u64::MAX)).max(1);
    }
    Some(chunk)
}

fn write_attrs(loc: &hdf5::Location, attrs: &Attributes) -> Result<(), String> {
    for (name, a) in attrs {
        write_attr(loc.id(), name, a).map_err(|e| format!("attribute {name}: {e}"))?;
    }
    Ok(())
}

fn write_attr(loc: hid_t, name: &str, a: &Attribute) -> Result<(), String> {
    let cname = CString::new(name).map_err(|_| "name holds a NUL")?;
    // An attribute with no value (a null dataspace: h5py.Empty, netCDF's empty attributes) is
    // made so again: its type and nothing else.
    let null = a.shape.is_empty() && a.value.is_null();
    let values: Vec<&serde_json::Value> = match &a.value {
        _ if null => Vec::new(),
        serde_json::Value::Array(v) if !a.shape.is_empty() => v.iter().collect(),
        v if a.shape.is_empty() => vec![v],
        _ => return Err("value does not match its shape".into()),
    };
    let count: u64 = a.shape.iter().product();
    if !null && values.len() as u64 != count {
        return Err(format!("{} values for shape {:?}", values.len(), a.shape));
    }
    let space = hdf5::sync::sync(|| unsafe {
        if null {
            Hid::new(h5s::H5Screate(h5s::H5S_class_t::H5S_NULL), h5s::H5Sclose, "create a null dataspace")
        } else if a.shape.is_empty() {
            Hid::new(h5s::H5Screate(h5s::H5S_class_t::H5S_SCALAR), h5s::H5Sclose, "create a dataspace")
        } else {
            Hid::new(h5s::H5Screate_simple(a.shape.len() as i32, a.shape.as_ptr(), std::ptr::null()), h5s::H5Sclose, "create a dataspace")
        }
    })?;
    let create_write = |ftype: hid_t, mtype: hid_t, buf: *const c_void| -> Result<(), String> {
        hdf5::sync::sync(|| unsafe {
            let at = Hid::new(h5a::H5Acreate2(loc, cname.as_ptr(), ftype, space.0, H5P_DEFAULT, H5P_DEFAULT), h5a::H5Aclose, "create the attribute")?;
            if null {
                return Ok(());
            }
            check(h5a::H5Awrite(at.0, mtype, buf), "write the attribute")
        })
    };
    if a.dtype == "string" {
        let st = a.string.as_ref().ok_or("string attribute without its string type")?;
        let strs: Vec<&str> = values.iter().map(|v| v.as_str().ok_or("non-string value")).collect::<Result<_, _>>()?;
        let t = hdf5::sync::sync(|| unsafe {
            let t = Hid::new(h5t::H5Tcopy(*hdf5::globals::H5T_C_S1), h5t::H5Tclose, "copy the string type")?;
            let cset = match st.encoding {
                StringEncoding::Ascii => h5t::H5T_cset_t::H5T_CSET_ASCII,
                StringEncoding::Utf8 => h5t::H5T_cset_t::H5T_CSET_UTF8,
            };
            check(h5t::H5Tset_cset(t.0, cset), "set the character set")?;
            let size = st.fixed_size.map_or(h5t::H5T_VARIABLE, |n| n as usize);
            check(h5t::H5Tset_size(t.0, size), "set the string size")?;
            Ok::<_, String>(t)
        })?;
        return match st.fixed_size {
            Some(n) => {
                let n = n as usize;
                let mut buf = vec![0u8; n * strs.len()];
                for (i, s) in strs.iter().enumerate() {
                    let b = s.as_bytes();
                    let k = b.len().min(n);
                    buf[i * n..i * n + k].copy_from_slice(&b[..k]);
                }
                create_write(t.0, t.0, buf.as_ptr().cast())
            }
            None => {
                let owned: Vec<CString> = strs.iter().map(|s| CString::new(*s).map_err(|_| "string holds a NUL")).collect::<Result<_, _>>()?;
                let ptrs: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
                create_write(t.0, t.0, ptrs.as_ptr().cast())
            }
        };
    }
    let dtype = DType::from_name(&a.dtype).ok_or_else(|| format!("unknown dtype {}", a.dtype))?;
    let mut buf = Vec::with_capacity(values.len() * dtype.size());
    for v in values {
        match dtype {
            DType::F32 | DType::F64 => {
                let f = float_from_json(v).ok_or("non-numeric value")?;
                crate::dtype::push_value(dtype, f, &mut buf);
            }
            d if d.is_signed() => buf.extend_from_slice(&v.as_i64().ok_or("non-integer value")?.to_le_bytes()[..d.size()]),
            d => buf.extend_from_slice(&v.as_u64().ok_or("non-integer value")?.to_le_bytes()[..d.size()]),
        }
    }
    let ftype = h5_type(dtype, a.byte_order.unwrap_or_default())?;
    let mtype = h5_type(dtype, ByteOrder::Le)?;
    create_write(ftype.0, mtype.0, buf.as_ptr().cast())
}

impl Sink for Hdf5Sink {
    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    fn write_rows(&mut self, dataset: usize, rows: Range<u64>, vars: &[Vec<u8>]) -> Result<()> {
        let (ds, rt, shape) = &self.open[&dataset];
        let buf = join_rows(vars, &rt.sizes, rt.item);
        let res = select_rows(ds.id(), shape, &rows).and_then(|(fs, ms)| {
            check(
                hdf5::sync::sync(|| unsafe { h5d::H5Dwrite(ds.id(), rt.mem.0, ms.0, fs.0, H5P_DEFAULT, buf.as_ptr().cast()) }),
                &format!("write rows {}..{}", rows.start, rows.end),
            )
        });
        res.map_err(|what| Error::Hdf5 { path: self.output.dest().into(), what: with_space(what, self.output.tmp_path()) })
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.open.clear();
        if let Some(f) = self.file.take() {
            f.close().map_err(|e| Error::Hdf5 { path: self.output.dest().into(), what: with_space(e.to_string(), self.output.tmp_path()) })?;
        }
        let Hdf5Sink { output, .. } = *self;
        output.commit()
    }
}

