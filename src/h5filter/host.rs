//! The host process's HDF5, found at run time: the filter links no libhdf5, yet set_local and
//! can_apply need a few of its calls. Three ways, tried in order:
//! 1. the library handed to `init_filter(path)` (hdf5plugin's convention: Python passes
//!    `h5py.h5z.__file__`, whose dependencies include h5py's private HDF5);
//! 2. `dlsym(RTLD_DEFAULT)`: C programs and tools linked to a shared libhdf5;
//! 3. a scan of the loaded objects for one whose path mentions "hdf5" and exports the calls
//!    (h5py loads its HDF5 privately, so 2 finds nothing there).
//! Without any of them the filter still works from explicit cd_values.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::{Mutex, OnceLock};

pub type Hid = i64;

/// The HDF5 calls the filter makes, all from one library.
pub struct Api {
    pub pget_chunk: unsafe extern "C" fn(Hid, c_int, *mut u64) -> c_int,
    pub pget_filter_by_id2:
        unsafe extern "C" fn(Hid, c_int, *mut c_uint, *mut usize, *mut c_uint, usize, *mut c_char, *mut c_uint) -> c_int,
    pub pmodify_filter: unsafe extern "C" fn(Hid, c_int, c_uint, usize, *const c_uint) -> c_int,
    pub tget_class: unsafe extern "C" fn(Hid) -> c_int,
    pub tget_size: unsafe extern "C" fn(Hid) -> usize,
    pub tget_order: unsafe extern "C" fn(Hid) -> c_int,
    pub tget_sign: unsafe extern "C" fn(Hid) -> c_int,
    pub zregister: unsafe extern "C" fn(*const c_void) -> c_int,
    /// H5Pfill_value_defined(dcpl, *H5D_fill_value_t).
    pub pfill_value_defined: unsafe extern "C" fn(Hid, *mut c_int) -> c_int,
    /// H5Pget_fill_value(dcpl, type, *value): the fill value converted to `type`.
    pub pget_fill_value: unsafe extern "C" fn(Hid, Hid, *mut c_void) -> c_int,
    /// The error stack, so a refusal's reason reaches the caller (h5py puts the innermost
    /// message in its exception). Optional: without it the reason goes to stderr only.
    pub errors: Option<ErrorApi>,
    /// Where the calls came from, for messages.
    pub origin: String,
}

/// H5Eregister_class, H5Ecreate_msg, H5Epush2, and the messages registered with them (once per
/// host library).
pub struct ErrorApi {
    register_class: unsafe extern "C" fn(*const c_char, *const c_char, *const c_char) -> Hid,
    create_msg: unsafe extern "C" fn(Hid, c_int, *const c_char) -> Hid,
    push2: unsafe extern "C" fn(Hid, *const c_char, *const c_char, c_uint, Hid, Hid, Hid, *const c_char, ...) -> c_int,
    ids: OnceLock<Option<[Hid; 3]>>,
}

/// H5D_FILL_VALUE_USER_DEFINED in H5D_fill_value_t: a fill value the writer set (HDF5's own
/// default, 0, is H5D_FILL_VALUE_DEFAULT and marks nothing missing).
pub const H5D_FILL_VALUE_USER_DEFINED: c_int = 2;
/// H5E_DEFAULT (the thread's current error stack), H5E_MAJOR and H5E_MINOR in H5E_type_t.
const H5E_DEFAULT: Hid = 0;
const H5E_MAJOR: c_int = 0;
const H5E_MINOR: c_int = 1;

impl ErrorApi {
    /// Pushes `msg` onto the current error stack, under an error class of balerfile's own
    /// (registered on first use). False when HDF5 refused.
    pub fn push(&self, func: &str, msg: &str) -> bool {
        let ids = *self.ids.get_or_init(|| {
            // SAFETY: plain HDF5 calls with NUL-terminated static strings; the ids stay
            // registered for the process (HDF5 releases them at exit).
            unsafe {
                let cls = (self.register_class)(c"balerfile".as_ptr(), c"balerfile HDF5 filter".as_ptr(), c"1".as_ptr());
                let maj = (self.create_msg)(cls, H5E_MAJOR, c"balerfile filter (id 442)".as_ptr());
                let min = (self.create_msg)(cls, H5E_MINOR, c"the filter refused".as_ptr());
                (cls >= 0 && maj >= 0 && min >= 0).then_some([cls, maj, min])
            }
        });
        let Some([cls, maj, min]) = ids else { return false };
        let (Ok(func), Ok(msg)) = (CString::new(func), CString::new(format!("balerfile filter: {msg}").replace('\0', " "))) else {
            return false;
        };
        // SAFETY: "%s" with one C string argument; the message is never read as a format, so a
        // '%' in it is harmless. The strings outlive the call (HDF5 copies them).
        unsafe { (self.push2)(H5E_DEFAULT, c"balerfile".as_ptr(), func.as_ptr(), 0, cls, maj, min, c"%s".as_ptr(), msg.as_ptr()) >= 0 }
    }
}

/// H5T_INTEGER and H5T_FLOAT in H5T_class_t.
pub const H5T_INTEGER: c_int = 0;
pub const H5T_FLOAT: c_int = 1;
/// H5T_SGN_2 in H5T_sign_t (two's complement; H5T_SGN_NONE = 0 is unsigned).
pub const H5T_SGN_2: c_int = 1;
/// H5T_ORDER_BE in H5T_order_t.
pub const H5T_ORDER_BE: c_int = 1;

static GIVEN: Mutex<Option<&'static Api>> = Mutex::new(None);
static FOUND: OnceLock<Option<&'static Api>> = OnceLock::new();

/// The host's HDF5 calls, if any way reaches them.
pub fn api() -> Option<&'static Api> {
    if let Some(a) = *GIVEN.lock().unwrap_or_else(|e| e.into_inner()) {
        return Some(a);
    }
    *FOUND.get_or_init(|| {
        // SAFETY: RTLD_DEFAULT searches the global scope; the symbols, if there, are HDF5's.
        unsafe { resolve(libc::RTLD_DEFAULT, "the process's global symbols".into()) }.or_else(scan_loaded)
    })
}

/// The HDF5 calls of the library that called the filter's callback now: a process can hold
/// two (h5py and netCDF4-python each bring their own), and ids are only good in the library
/// that made them, so set_local given netCDF's ids and h5py's calls failed ("NetCDF: HDF
/// error"). The caller is the first frame of the stack outside this object; else `api()`.
pub fn api_for_caller() -> Option<&'static Api> {
    static BY_PATH: Mutex<Vec<(CString, Option<&'static Api>)>> = Mutex::new(Vec::new());
    caller_library()
        .and_then(|path| {
            let known = |path: &CString| BY_PATH.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|(p, _)| p == path).map(|(_, a)| *a);
            if let Some(a) = known(&path) {
                return a;
            }
            // Looked up outside the lock (dlopen takes the loader's); two threads that race
            // here resolve the same calls, and the first entry stays.
            // SAFETY: RTLD_NOLOAD only returns an object already loaded (the caller's); never
            // closed, so the leaked Api's pointers stay valid.
            let a = unsafe {
                let h = libc::dlopen(path.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD);
                if h.is_null() {
                    None
                } else {
                    resolve(h, path.to_string_lossy().into_owned())
                }
            };
            let mut list = BY_PATH.lock().unwrap_or_else(|e| e.into_inner());
            match list.iter().find(|(p, _)| *p == path) {
                Some((_, first)) => *first,
                None => {
                    list.push((path, a));
                    a
                }
            }
        })
        .or_else(api)
}

/// Loads what glibc's `backtrace` needs (it opens libgcc_s on its first call) when the plugin
/// is loaded, not first inside an HDF5 callback, which may run in a child forked from a
/// threaded parent (Dask, multiprocessing), where opening a library can hang.
pub fn prepare_caller_lookup() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let mut frames = [std::ptr::null_mut::<c_void>(); 2];
            // SAFETY: writes at most two addresses into the array.
            unsafe { libc::backtrace(frames.as_mut_ptr(), 2) };
        });
    }
}

/// The file of the shared object that called into this one (the nearest frame of the stack
/// in another object). glibc's `backtrace` walks the frames by their unwind tables, which
/// libhdf5's C code has (x86-64 and aarch64 emit them by default).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn caller_library() -> Option<CString> {
    let mut frames = [std::ptr::null_mut::<c_void>(); 32];
    // SAFETY: `backtrace` writes at most `frames.len()` addresses into the array; `dladdr`
    // only reads the address and fills `info`, whose `dli_fname` points into the loader's
    // list of objects (alive while the object is loaded: it called us, so it is).
    unsafe {
        let n = libc::backtrace(frames.as_mut_ptr(), frames.len() as c_int).max(0) as usize;
        let file_of = |addr: *const c_void| {
            let mut info: libc::Dl_info = std::mem::zeroed();
            (libc::dladdr(addr, &mut info) != 0 && !info.dli_fname.is_null()).then(|| CStr::from_ptr(info.dli_fname).to_owned())
        };
        let own = file_of(caller_library as *const c_void)?;
        frames[..n].iter().filter_map(|&f| file_of(f)).find(|f| *f != own)
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn caller_library() -> Option<CString> {
    None
}

/// `init_filter`'s half: takes HDF5 from the object at `path` (or its dependencies).
pub fn use_library(path: &CStr) -> Result<&'static Api, String> {
    // SAFETY: dlopen of a path the caller names; RTLD_NOLOAD first so an object already in the
    // process (h5py's extension module) is reused, not loaded twice.
    let handle = unsafe {
        let h = libc::dlopen(path.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD);
        if h.is_null() {
            libc::dlopen(path.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL)
        } else {
            h
        }
    };
    let shown = path.to_string_lossy().into_owned();
    if handle.is_null() {
        return Err(format!("cannot open {shown}: {}", dlerror()));
    }
    // SAFETY: the handle was just opened and is never closed (the library stays for the process).
    let api = unsafe { resolve(handle, shown.clone()) }.ok_or_else(|| format!("{shown} does not lead to HDF5's API (no H5Pget_chunk)"))?;
    *GIVEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(api);
    Ok(api)
}

fn dlerror() -> String {
    // SAFETY: dlerror returns NULL or a thread-local C string.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "unknown error".into()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

/// Looks every call up through `handle`; None unless all are there.
unsafe fn resolve(handle: *mut c_void, origin: String) -> Option<&'static Api> {
    unsafe fn sym<T>(handle: *mut c_void, name: &str) -> Option<T> {
        let c = CString::new(name).ok()?;
        let p = libc::dlsym(handle, c.as_ptr());
        // SAFETY: T is always an `unsafe extern "C" fn` pointer of the C declaration's shape.
        (!p.is_null()).then(|| std::mem::transmute_copy::<*mut c_void, T>(&p))
    }
    let api = Api {
        pget_chunk: sym(handle, "H5Pget_chunk")?,
        pget_filter_by_id2: sym(handle, "H5Pget_filter_by_id2")?,
        pmodify_filter: sym(handle, "H5Pmodify_filter")?,
        tget_class: sym(handle, "H5Tget_class")?,
        tget_size: sym(handle, "H5Tget_size")?,
        tget_order: sym(handle, "H5Tget_order")?,
        tget_sign: sym(handle, "H5Tget_sign")?,
        zregister: sym(handle, "H5Zregister")?,
        pfill_value_defined: sym(handle, "H5Pfill_value_defined")?,
        pget_fill_value: sym(handle, "H5Pget_fill_value")?,
        errors: (|| {
            Some(ErrorApi {
                register_class: sym(handle, "H5Eregister_class")?,
                create_msg: sym(handle, "H5Ecreate_msg")?,
                push2: sym(handle, "H5Epush2")?,
                ids: OnceLock::new(),
            })
        })(),
        origin,
    };
    Some(Box::leak(Box::new(api)))
}

fn scan_loaded() -> Option<&'static Api> {
    crate::loaded_objects::paths().into_iter().filter(|p| p.to_bytes().windows(4).any(|w| w == b"hdf5")).find_map(|p| {
        // SAFETY: RTLD_NOLOAD only returns objects already loaded; never closed.
        let h = unsafe { libc::dlopen(p.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
        if h.is_null() {
            return None;
        }
        unsafe { resolve(h, p.to_string_lossy().into_owned()) }
    })
}
