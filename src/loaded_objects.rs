//! The shared objects loaded in this process, for code that must find its host's libraries
//! (the HDF5 filter finding h5py's private HDF5, the runtime finding a Python host's
//! onnxruntime package).

use std::ffi::CString;

/// The paths of the loaded objects (the executable's own entry, which has no path, left out).
#[cfg(target_os = "linux")]
pub fn paths() -> Vec<CString> {
    use std::ffi::{c_int, c_void, CStr};
    unsafe extern "C" fn visit(info: *mut libc::dl_phdr_info, _size: usize, data: *mut c_void) -> c_int {
        let out = &mut *(data as *mut Vec<CString>);
        let name = (*info).dlpi_name;
        if !name.is_null() {
            let n = CStr::from_ptr(name);
            if !n.is_empty() {
                out.push(n.to_owned());
            }
        }
        0
    }
    let mut out: Vec<CString> = Vec::new();
    // SAFETY: the callback only reads the entries it is given and pushes to our Vec.
    unsafe { libc::dl_iterate_phdr(Some(visit), &mut out as *mut _ as *mut c_void) };
    out
}

#[cfg(not(target_os = "linux"))]
pub fn paths() -> Vec<CString> {
    Vec::new()
}
