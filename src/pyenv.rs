//! Python environments on disk: where `pip install` put the command, the filter plugin and
//! onnxruntime, for code that must find them without a Python interpreter.

use std::path::{Path, PathBuf};

/// `lib/pythonX.Y/site-packages` folders of a Python environment, in name order.
pub fn site_packages(env: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for lib in ["lib", "lib64"] {
        if let Ok(rd) = std::fs::read_dir(env.join(lib)) {
            let mut pythons: Vec<PathBuf> = rd.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("python")).map(|e| e.path()).collect();
            pythons.sort();
            out.extend(pythons.into_iter().map(|p| p.join("site-packages")));
        }
    }
    out
}

/// Whether `dir` is a virtualenv's or a conda env's root (not an interpreter's prefix such as
/// /usr, whose packages must not win over the active environment's).
pub fn is_env(dir: &Path) -> bool {
    dir.join("pyvenv.cfg").is_file() || dir.join("conda-meta").is_dir()
}
