//! `libh5z_baler.so`: the HDF5 dynamic filter plugin. HDF5 finds it on HDF5_PLUGIN_PATH and
//! calls the two `H5PL*` entry points; everything else lives in `balerfile::h5filter`.

use std::ffi::{c_char, c_int, c_void};

/// The codec allocates and frees buffers of a few bytes an element for every chunk. Through
/// glibc's malloc, those over its mmap threshold came as fresh mappings each time, and a quarter
/// of a write's time went to the kernel faulting in and zeroing pages; mimalloc keeps freed pages
/// for reuse. Only the plugin's Rust allocations: the buffers handed to HDF5 are the host's
/// `malloc`'s (h5filter::capi).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// H5PL_TYPE_FILTER.
#[no_mangle]
pub extern "C" fn H5PLget_plugin_type() -> c_int {
    0
}

#[no_mangle]
pub extern "C" fn H5PLget_plugin_info() -> *const c_void {
    balerfile::h5filter::capi::class_ptr()
}

/// hdf5plugin's convention: Python calls this with `h5py.h5z.__file__` so the filter registers
/// with, and calls into, h5py's private copy of HDF5.
///
/// # Safety
/// `libpath` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn init_filter(libpath: *const c_char) -> c_int {
    balerfile::h5filter::capi::init_filter(libpath)
}
