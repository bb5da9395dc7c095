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

/// The folder holding the filter plugin for HDF5_PLUGIN_PATH, for the program at `exe`: beside
/// it (a build, `target/release`), or, for the command a `pip install` put in ENV/bin, the
/// Python package's `balerfile/plugins` in ENV's site-packages (the wheel's plugin is named
/// as an extension module, `libh5z_baler.cpython-*.so`; HDF5 loads every library in the folder).
pub fn plugin_dir(exe: &std::path::Path) -> Result<std::path::PathBuf> {
    let is_plugin = |n: &str| n.starts_with("libh5z_baler") && n.ends_with(".so");
    let holds_plugin = |d: &std::path::Path| {
        std::fs::read_dir(d).is_ok_and(|rd| rd.flatten().any(|e| is_plugin(&e.file_name().to_string_lossy())))
    };
    let beside = exe.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let mut looked = vec![beside.clone()];
    if holds_plugin(&beside) {
        return Ok(beside);
    }
    if let Some(env) = beside.parent() {
        for lib in ["lib", "lib64"] {
            let Ok(rd) = std::fs::read_dir(env.join(lib)) else { continue };
            let mut pythons: Vec<_> = rd.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("python")).map(|e| e.path()).collect();
            pythons.sort();
            for py in pythons {
                let d = py.join("site-packages").join("balerfile").join("plugins");
                if holds_plugin(&d) {
                    return Ok(d);
                }
                looked.push(d);
            }
        }
    }
    let looked: Vec<String> = looked.iter().map(|d| d.display().to_string()).collect();
    Err(Error::Usage(format!(
        "the filter plugin (libh5z_baler*.so) is not in {}: build it (cargo build --release -p h5z-baler) or install the Python package (pip install balerfile, then python -c 'import balerfile; print(balerfile.PLUGIN_PATH)')",
        looked.join(" or ")
    )))
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
