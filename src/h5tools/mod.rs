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
    for sp in beside.parent().map(crate::pyenv::site_packages).unwrap_or_default() {
        let d = sp.join("balerfile").join("plugins");
        if holds_plugin(&d) {
            return Ok(d);
        }
        looked.push(d);
    }
    let looked: Vec<String> = looked.iter().map(|d| d.display().to_string()).collect();
    Err(Error::Usage(format!(
        "the filter plugin (libh5z_baler*.so) is not in {}: build it (cargo build --release -p h5z-baler) or install the Python package (pip install balerfile, then python -c 'import balerfile; print(balerfile.PLUGIN_PATH)')",
        looked.join(" or ")
    )))
}

use crate::io::hdf5::Link;

/// Every dataset path of an HDF5 file, depth first, following hard links only, each object
/// once (soft links can lead back up, and hard links can form cycles too).
pub(crate) fn dataset_paths(file: &hdf5::File) -> std::result::Result<Vec<String>, hdf5::Error> {
    walk_file(file).map(|w| w.datasets)
}

/// What `walk_file` found: the dataset paths, and the links it did not follow (by path), each
/// with what it links to.
pub(crate) struct FileWalk {
    pub datasets: Vec<String>,
    pub links: Vec<(String, Link)>,
}

/// `dataset_paths`, and the links it does not follow.
pub(crate) fn walk_file(file: &hdf5::File) -> std::result::Result<FileWalk, hdf5::Error> {
    type Seen = Vec<(hdf5::LocationToken, String)>;
    fn walk(g: &hdf5::Group, prefix: &str, seen: &mut Seen, out: &mut Vec<String>, links: &mut Vec<(String, Link)>) -> hdf5::Result<()> {
        for (name, link) in crate::io::hdf5::member_links(g)? {
            let path = if prefix == "/" { format!("/{name}") } else { format!("{prefix}/{name}") };
            if link != hdf5::LinkType::Hard {
                links.push((path, link_value(g, &name, link)?));
                continue;
            }
            let token = g.loc_info_by_name(&name)?.token;
            if let Some((_, first)) = seen.iter().find(|(t, _)| *t == token) {
                links.push((path, Link::Hard(first.clone())));
                continue;
            }
            seen.push((token, path.clone()));
            if let Ok(sub) = g.group(&name) {
                walk(&sub, &path, seen, out, links)?;
            } else if g.dataset(&name).is_ok() {
                out.push(path);
            }
        }
        Ok(())
    }
    let (mut datasets, mut links) = (Vec::new(), Vec::new());
    walk(&file.group("/")?, "/", &mut Vec::new(), &mut datasets, &mut links)?;
    Ok(FileWalk { datasets, links })
}

/// What soft or external link `name` of `g` holds.
fn link_value(g: &hdf5::Group, name: &str, kind: hdf5::LinkType) -> hdf5::Result<Link> {
    use hdf5_sys::h5l;
    let cname = std::ffi::CString::new(name).map_err(|_| hdf5::Error::from("a link name holds a NUL"))?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: `buf` is writable for its length, which is what HDF5 is told; `cname` is a
        // NUL-terminated name of a link of `g`, an open group.
        let r = hdf5::sync::sync(|| unsafe { h5l::H5Lget_val(g.id(), cname.as_ptr(), buf.as_mut_ptr().cast(), buf.len(), hdf5_sys::h5p::H5P_DEFAULT) });
        if r < 0 {
            return Err(hdf5::Error::from(format!("cannot read link {name}")));
        }
        // A value that filled the buffer may have been cut: ask again with more room.
        if buf.len() >= 1 << 20 || buf[buf.len() - 2..].iter().all(|&b| b == 0) {
            break;
        }
        buf.resize(buf.len() * 4, 0);
    }
    let cstr = |b: &[u8]| String::from_utf8_lossy(b.split(|&c| c == 0).next().unwrap_or_default()).into_owned();
    Ok(match kind {
        hdf5::LinkType::External => {
            // An external link's value is a flags byte, the file name, then the object path,
            // each NUL-terminated (H5Lunpack_elink_val's layout).
            let rest = buf.get(1..).unwrap_or_default();
            let file = cstr(rest);
            let object = cstr(rest.get(file.len() + 1..).unwrap_or_default());
            Link::External { file, object }
        }
        _ => Link::Soft(cstr(&buf)),
    })
}
