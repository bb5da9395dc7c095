//! The C ABI HDF5 calls: the filter class and its three callbacks. Every callback catches
//! panics (one escaping into C would abort the host, h5py included), reports failure the way
//! HDF5 expects, and prints one line to stderr saying why.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use super::host::{self, Api, Hid, H5D_FILL_VALUE_USER_DEFINED, H5T_FLOAT, H5T_INTEGER, H5T_ORDER_BE, H5T_SGN_2};
use super::params::{FilterParams, Layout, CD_WORDS_MAX, MAX_FEATURES};
use super::FILTER_ID;
use crate::dtype::DType;

/// H5Z_FLAG_REVERSE: the callback is asked to decode.
const FLAG_REVERSE: c_uint = 0x0100;

/// HDF5's `H5Z_class2_t`, declared by hand so nothing here links libhdf5.
#[repr(C)]
pub struct H5ZClass2 {
    pub version: c_int,
    pub id: c_int,
    pub encoder_present: c_uint,
    pub decoder_present: c_uint,
    pub name: *const c_char,
    pub can_apply: Option<unsafe extern "C" fn(Hid, Hid, Hid) -> c_int>,
    pub set_local: Option<unsafe extern "C" fn(Hid, Hid, Hid) -> c_int>,
    pub filter: Option<unsafe extern "C" fn(c_uint, usize, *const c_uint, usize, *mut usize, *mut *mut c_void) -> usize>,
}

// SAFETY: the class is immutable and its name points to a static string.
unsafe impl Sync for H5ZClass2 {}

static NAME: &CStr = {
    const N: &str = concat!(super::filter_name!(), "\0");
    match CStr::from_bytes_with_nul(N.as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("filter name"),
    }
};

pub static CLASS: H5ZClass2 = H5ZClass2 {
    version: 1,
    id: FILTER_ID,
    encoder_present: 1,
    decoder_present: 1,
    name: NAME.as_ptr(),
    can_apply: Some(can_apply),
    set_local: Some(set_local),
    filter: Some(filter),
};

/// What `H5PLget_plugin_info` returns.
pub fn class_ptr() -> *const c_void {
    host::prepare_caller_lookup();
    &CLASS as *const H5ZClass2 as *const c_void
}

/// Tells the caller why a callback failed: on the host's HDF5 error stack, where h5py's
/// exception and HDF5's own error report show it, and to stderr when that stack cannot be
/// reached. The per-chunk filter's reasons go to stderr as well: HDF5 2.0 (h5py 3.16's) drops
/// what that callback pushes (seen: its read error ends at "filter returned failure during
/// read"), while HDF5 1.10 keeps it. HDF5 calls the filter per chunk, so stderr gets each
/// message once, not once per chunk.
fn report(func: &str, msg: &str) {
    let pushed = host::api_for_caller().and_then(|a| a.errors.as_ref()).is_some_and(|e| e.push(func, msg));
    if pushed && func != "filter" {
        return;
    }
    static LAST: Mutex<String> = Mutex::new(String::new());
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if *last != msg {
        eprintln!("balerfile filter: {msg}");
        *last = msg.to_string();
    }
}

/// Runs `f` for the callback `func`, turning an error or a panic into `fail` after reporting it.
fn guard<T>(func: &str, fail: T, f: impl FnOnce() -> Result<T, String>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(msg)) => {
            report(func, &msg);
            fail
        }
        Err(panic) => {
            let what = crate::error::panic_message(panic.as_ref());
            report(func, &format!("internal error (a bug; please report it): {what}"));
            fail
        }
    }
}

/// The filter itself: encode, or decode when HDF5 sets H5Z_FLAG_REVERSE. On success the old
/// buffer is freed and replaced by a malloc'ed one; on failure both are left alone and 0 is
/// returned.
unsafe extern "C" fn filter(
    flags: c_uint,
    cd_nelmts: usize,
    cd_values: *const c_uint,
    nbytes: usize,
    buf_size: *mut usize,
    buf: *mut *mut c_void,
) -> usize {
    guard("filter", 0, || {
        if buf.is_null() || buf_size.is_null() || (*buf).is_null() && nbytes > 0 {
            return Err("HDF5 passed no buffer".into());
        }
        let cd = if cd_nelmts == 0 || cd_values.is_null() { &[][..] } else { std::slice::from_raw_parts(cd_values, cd_nelmts) };
        let input = if nbytes == 0 { &[][..] } else { std::slice::from_raw_parts(*buf as *const u8, nbytes) };
        let out = run_filter(flags & FLAG_REVERSE != 0, cd, input)?;
        let new = libc::malloc(out.len().max(1)) as *mut u8;
        if new.is_null() {
            return Err(format!("out of memory ({} bytes)", out.len()));
        }
        populate(new, out.len());
        std::ptr::copy_nonoverlapping(out.as_ptr(), new, out.len());
        libc::free(*buf);
        *buf = new as *mut c_void;
        *buf_size = out.len();
        Ok(out.len())
    })
}

/// Maps the whole pages of a fresh buffer of `len` bytes at `p` in one call, where the kernel
/// can (Linux 5.14 and later; elsewhere, or on failure, they fault in one by one as the copy
/// writes them). Reading into a new array each time, glibc gives a decoded chunk's buffer fresh
/// pages on most reads (it trims its heap top when the array before is freed): 100 such h5py
/// reads of the 0.5 MB winds faulted 213 pages a read, 92 with this.
fn populate(p: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf reads a value the C library holds; it touches no memory of ours.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            k if k > 0 => k as usize,
            _ => return,
        };
        if len < 16 * page {
            return;
        }
        let (start, end) = ((p as usize).div_ceil(page) * page, (p as usize + len) / page * page);
        if end > start {
            // Memory glibc hands out again is mapped already, and populating it costs a walk of
            // its pages (2-3 % of a 1.7 MB decode); fresh memory is mapped nowhere: its first
            // page says which.
            let mut first = 0u8;
            // SAFETY: [start, end) is whole pages (of the system's size) inside the `len` bytes
            // malloc just returned at `p`, which this filter alone owns. mincore writes one
            // byte, into `first`, for the one page asked about. MADV_POPULATE_WRITE maps the
            // pages as a write would, changing no byte, and fails without effect where
            // unsupported (before Linux 5.14; its result is not needed).
            unsafe {
                if libc::mincore(start as *mut c_void, page, &mut first) == 0 && first & 1 == 0 {
                    libc::madvise(start as *mut c_void, end - start, libc::MADV_POPULATE_WRITE);
                }
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (p, len);
}

/// The filter's work in plain Rust, under the C shell above: read the parameters, then decode
/// (`reverse`) or encode one chunk. The fuzz target `filter_decode` calls this directly.
pub fn run_filter(reverse: bool, cd: &[c_uint], input: &[u8]) -> Result<Vec<u8>, String> {
    let p = FilterParams::from_cd_values(cd)?;
    if reverse {
        let out = super::decode_chunk(&p, input).map_err(|e| format!("cannot decode a chunk: {e}"))?;
        super::recoding::decoded(cd, &p, &out);
        Ok(out)
    } else {
        if super::recoding::is_rewrite(cd, &p, input) {
            static TOLD: std::sync::Once = std::sync::Once::new();
            TOLD.call_once(|| eprintln!("balerfile filter: warning: {}", super::recoding::WARNING));
        }
        super::encode_chunk(&p, input).map_err(|e| format!("cannot encode a chunk: {e}"))
    }
}

/// What the dataset being created looks like, read through the host's HDF5.
struct Dataset {
    params: FilterParams,
    flags: c_uint,
    class: c_int,
    size: usize,
    signed: bool,
    big_endian: bool,
    chunk: Vec<u64>,
}

unsafe fn inspect(api: &Api, dcpl: Hid, type_id: Hid) -> Result<Dataset, String> {
    let mut flags: c_uint = 0;
    // Room for more than any layout uses, so a longer array is seen (and refused), not cut.
    let mut cd = vec![0 as c_uint; 2 * CD_WORDS_MAX];
    let mut n = cd.len();
    let mut config: c_uint = 0;
    if (api.pget_filter_by_id2)(dcpl, FILTER_ID, &mut flags, &mut n, cd.as_mut_ptr(), 0, std::ptr::null_mut(), &mut config) < 0 {
        return Err("cannot read the filter's parameters from the dataset creation property list".into());
    }
    cd.truncate(n.min(2 * CD_WORDS_MAX + 1));
    let params = FilterParams::from_cd_values(&cd)?;
    let mut chunk = vec![0u64; 32];
    let crank = (api.pget_chunk)(dcpl, 32, chunk.as_mut_ptr());
    chunk.truncate(crank.max(0) as usize);
    Ok(Dataset {
        params,
        flags,
        class: (api.tget_class)(type_id),
        size: (api.tget_size)(type_id),
        signed: (api.tget_sign)(type_id) == H5T_SGN_2,
        big_endian: (api.tget_order)(type_id) == H5T_ORDER_BE,
        chunk,
    })
}

/// The fill value the dataset's writer set (None for HDF5's default, 0, which marks nothing),
/// for float datasets. Only for set_local: HDF5 also calls can_apply when a dataset opened
/// again is first written, with a property list whose fill value has no type, and
/// H5Pget_fill_value then crashes inside HDF5 (seen with h5py 3.16's HDF5 2.0 under xarray's
/// h5netcdf engine).
unsafe fn user_fill_value(api: &Api, dcpl: Hid, type_id: Hid, ds: &Dataset) -> Result<Option<f64>, String> {
    let mut state: c_int = 0;
    if ds.class != H5T_FLOAT || !(ds.size == 4 || ds.size == 8) || (api.pfill_value_defined)(dcpl, &mut state) < 0 || state != H5D_FILL_VALUE_USER_DEFINED {
        return Ok(None);
    }
    let mut b = [0u8; 8];
    // SAFETY: H5Pget_fill_value writes one element of `type_id`: `ds.size` (4 or 8) bytes.
    if (api.pget_fill_value)(dcpl, type_id, b.as_mut_ptr() as *mut c_void) < 0 {
        return Err("cannot read the dataset's fill value from the dataset creation property list".into());
    }
    Ok(Some(float_of(&b[..ds.size], ds.big_endian)))
}

/// An f32 or f64 element as HDF5 stores it, widened to f64.
pub(super) fn float_of(b: &[u8], big_endian: bool) -> f64 {
    match (b.len(), big_endian) {
        (4, false) => f32::from_le_bytes(b.try_into().unwrap()) as f64,
        (4, true) => f32::from_be_bytes(b.try_into().unwrap()) as f64,
        (_, false) => f64::from_le_bytes(b[..8].try_into().unwrap()),
        (_, true) => f64::from_be_bytes(b[..8].try_into().unwrap()),
    }
}

impl Dataset {
    fn dtype(&self) -> Result<DType, String> {
        let wedge = self.params.layout == Layout::Wedge;
        match (self.class, self.size, self.signed) {
            (H5T_FLOAT, 4, _) => Ok(DType::F32),
            (H5T_FLOAT, 8, _) => Ok(DType::F64),
            (H5T_INTEGER, 1, false) if wedge => Ok(DType::U8),
            (H5T_INTEGER, 2, false) if wedge => Ok(DType::U16),
            (H5T_INTEGER, 2, true) if wedge => Ok(DType::I16),
            (H5T_INTEGER, 4, false) if wedge => Ok(DType::U32),
            (H5T_INTEGER, 4, true) if wedge => Ok(DType::I32),
            (c, s, _) => Err(format!(
                "the dataset's type is {} of {s} bytes: the filter codes 32- and 64-bit float arrays, and 8- to 32-bit integer wedges (layout 2)",
                if c == H5T_FLOAT { "a float" } else if c == H5T_INTEGER { "an integer" } else { "neither float nor integer" }
            )),
        }
    }

    /// Elements per row: everything after the first dimension of the chunk. (HDF5 shows a
    /// filter the chunk's shape as the dataspace, never the dataset's, so "a row" is what the
    /// chunk says; a model or tolerance list of another width means the chunk splits rows.)
    fn row_elems(&self) -> u64 {
        self.chunk.iter().skip(1).product()
    }

    /// What makes a table chunk usable: whole rows, of the width the parameters expect.
    fn check_table(&self, model_features: Option<u64>) -> Result<(), String> {
        if self.params.layout == Layout::Wedge {
            let f = self.row_elems();
            return match model_features {
                Some(n) if n != f => Err(format!(
                    "chunk shape {:?} gives rows of {f} values, but the model takes wedges of {n}: chunk whole wedges (e.g. chunks=(1, layers, height, width))",
                    self.chunk
                )),
                _ => Ok(()),
            };
        }
        if self.params.layout != Layout::Table {
            return Ok(());
        }
        if self.chunk.is_empty() {
            return Err("a table needs a chunked dataset (rows x features)".into());
        }
        let f = self.row_elems();
        let split = |what: String, want: u64| {
            format!(
                "chunk shape {:?} gives rows of {f} values, but {what}: a table's chunks must hold whole rows (e.g. chunks=({}, {want}))",
                self.chunk, self.chunk[0]
            )
        };
        if f > MAX_FEATURES as u64 {
            return Err(format!("{f} values per row: more than the {MAX_FEATURES} features a table may have"));
        }
        if self.params.features != 0 && self.params.features as u64 != f {
            return Err(split(format!("cd_values[4] says {}", self.params.features), self.params.features as u64));
        }
        if let Some(n) = model_features.filter(|&n| n != f) {
            return Err(split(format!("the model takes {n} features"), n));
        }
        Ok(())
    }
}

/// The number of features of the model the parameters name (loading it checks it is there).
fn model_features(p: &FilterParams) -> Result<Option<u64>, String> {
    let Some(id) = p.model_id() else { return Ok(None) };
    #[cfg(feature = "runtime")]
    {
        let m = super::models::get(&id, true)?;
        let manifest = &m.bundle.manifest;
        if let (Some(shape), false) = (manifest.row_shape(), p.layout == Layout::Wedge) {
            return Err(format!(
                "model {} ({}) takes whole rows of shape {shape:?}: set the row layout (cd_values[3] = 2; balerfile_h5.Baler picks it)",
                &id[..12],
                manifest.kind
            ));
        }
        Ok(Some(manifest.input_width() as u64))
    }
    #[cfg(not(feature = "runtime"))]
    Err(super::no_runtime(&id))
}

/// Refuses, at dataset creation, what the filter could not code. Returning -1 (not 0) makes
/// HDF5 fail even for an optional filter, so h5py raises instead of storing raw data.
unsafe extern "C" fn can_apply(dcpl: Hid, type_id: Hid, _chunk_space: Hid) -> c_int {
    guard("can_apply", -1, || {
        let Some(api) = host::api_for_caller() else { return Ok(1) };
        let ds = inspect(api, dcpl, type_id)?;
        ds.dtype()?;
        ds.check_table(model_features(&ds.params)?)?;
        Ok(1)
    })
}

/// Fills in what the dataset says: element type, byte order, layout (resolving "auto"), row
/// width, chunk grid, and the fill value as the missing-value marker. Writes layout version 2.
unsafe extern "C" fn set_local(dcpl: Hid, type_id: Hid, _chunk_space: Hid) -> c_int {
    guard("set_local", -1, || {
        let Some(api) = host::api_for_caller() else { return Ok(0) };
        let ds = inspect(api, dcpl, type_id)?;
        let mut p = ds.params.clone();
        p.dtype = Some(ds.dtype()?);
        p.big_endian = ds.big_endian;
        if p.layout == Layout::Auto {
            p.layout = auto_layout(&ds.chunk);
        }
        if p.layout != Layout::Field {
            ds.check_table(None)?;
            p.features = ds.row_elems() as u32;
        } else {
            p.features = super::params::field_grid_word(&ds.chunk);
        }
        // A fill value the writer put in cd_values is theirs to choose; else the dataset's.
        if p.fill.is_none() {
            p.fill = user_fill_value(api, dcpl, type_id, &ds)?;
        }
        p.check()?;
        // At creation only: a dataset an earlier release wrote so must still read.
        if let super::FilterBound::Rel(e) = p.bound {
            if e >= 1.0 {
                return Err(crate::bound::rel_keeps_nothing(e));
            }
        }
        let cd = p.to_cd_values();
        if (api.pmodify_filter)(dcpl, FILTER_ID, ds.flags, cd.len(), cd.as_ptr()) < 0 {
            return Err("cannot store the filter's parameters in the dataset creation property list".into());
        }
        Ok(0)
    })
}

/// "auto": `pack`'s table-or-field rule (`crate::layout::default_layout`), applied to the
/// chunk's shape, the only shape HDF5 shows a filter (set_local gets the chunk's dataspace,
/// never the dataset's). A chunk has the dataset's rank; h5py's automatic chunks halve each
/// dimension in turn, so they keep roughly the dataset's proportions. A table chunked in whole
/// rows but fewer than 8 rows per column reads as a field here: its writer says table=True.
fn auto_layout(chunk: &[u64]) -> Layout {
    match crate::layout::default_layout(chunk) {
        crate::layout::ArrayLayout::Table => Layout::Table,
        crate::layout::ArrayLayout::Field => Layout::Field,
    }
}

/// hdf5plugin's `init_filter(libpath)`: use the HDF5 reached through `libpath` and register the
/// filter with it. Returns what H5Zregister returns (negative on failure).
///
/// # Safety
/// `libpath` must be NULL or a NUL-terminated string.
pub unsafe fn init_filter(libpath: *const c_char) -> c_int {
    guard("init_filter", -1, || {
        if libpath.is_null() {
            return Err("init_filter: no library path".into());
        }
        let api = host::use_library(CStr::from_ptr(libpath))?;
        let r = (api.zregister)(class_ptr());
        if r < 0 {
            return Err(format!("H5Zregister failed in {}", api.origin));
        }
        Ok(r)
    })
}
