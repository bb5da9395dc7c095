//! `balerfile h5`: rewriting HDF5 files with the balerfile filter (like h5repack), and checking
//! that what HDF5 stored really went through it.

pub mod compress;
pub mod verify;

use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::h5filter::{capi, FILTER_ID};

/// Registers the filter with the HDF5 this program links, so it writes and reads filtered
/// datasets without HDF5_PLUGIN_PATH.
pub fn register() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let r = hdf5::sync::sync(|| unsafe { hdf5_sys::h5z::H5Zregister(capi::class_ptr()) });
        if r < 0 {
            Err(format!("HDF5 refused to register the balerfile filter (id {FILTER_ID})"))
        } else {
            Ok(())
        }
    })
    .clone()
    .map_err(Error::Usage)
}

/// Every dataset path of an HDF5 file, depth first, following hard links only.
pub(crate) fn dataset_paths(file: &hdf5::File) -> std::result::Result<Vec<String>, hdf5::Error> {
    fn walk(g: &hdf5::Group, prefix: &str, out: &mut Vec<String>) -> std::result::Result<(), hdf5::Error> {
        for name in g.member_names()? {
            let path = if prefix == "/" { format!("/{name}") } else { format!("{prefix}/{name}") };
            if let Ok(sub) = g.group(&name) {
                walk(&sub, &path, out)?;
            } else if g.dataset(&name).is_ok() {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(&file.group("/")?, "/", &mut out)?;
    Ok(out)
}
