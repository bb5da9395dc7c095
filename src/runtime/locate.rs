//! Finding libonnxruntime without help where that is reasonable.
//!
//! Order: the explicit path (`--onnxruntime`), BALERFILE_ONNXRUNTIME, ORT_DYLIB_PATH, beside the
//! executable (and its ../lib), the `onnxruntime` Python package (of the Python environment the
//! executable is installed in, of an active virtualenv or conda env, of a `.venv` in a folder
//! above the executable or above the shared object this
//! code is in (the HDF5 filter plugin), of a Python environment already loaded in the process
//! (h5py's site-packages), or of `python3` on PATH), then LD_LIBRARY_PATH and the system
//! library folders.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

pub const LIBRARY_VAR: &str = "BALERFILE_ONNXRUNTIME";

const INSTALL_HINT: &str = "install it with `pip install onnxruntime` (or `onnxruntime-gpu` for CUDA), \
or point BALERFILE_ONNXRUNTIME (or --onnxruntime) at libonnxruntime.so";

/// The ONNX Runtime shared library to load.
pub fn find_library(explicit: Option<&Path>) -> Result<PathBuf> {
    let named = |p: PathBuf, how: &str| -> Result<PathBuf> {
        // ort's loader only says "dlopen failed": say which file, and why, here.
        let p = if p.is_dir() { best_in(&p).unwrap_or(p) } else { p };
        if !p.is_file() {
            return Err(Error::Runtime(format!("{} (from {how}) is not a file; {INSTALL_HINT}", p.display())));
        }
        Ok(std::fs::canonicalize(&p).unwrap_or(p))
    };
    if let Some(p) = explicit {
        return named(p.to_path_buf(), "--onnxruntime");
    }
    for var in [LIBRARY_VAR, "ORT_DYLIB_PATH"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return named(PathBuf::from(v), var);
        }
    }
    let mut looked = Vec::new();
    for dir in candidate_dirs() {
        if let Some(p) = best_in(&dir) {
            return Ok(p);
        }
        looked.push(dir.display().to_string());
    }
    looked.dedup();
    Err(Error::Runtime(format!("libonnxruntime not found (looked in {}); {INSTALL_HINT}", looked.join(", "))))
}

fn candidate_dirs() -> Vec<PathBuf> {
    let exe_dir = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf));
    candidate_dirs_for(exe_dir.as_deref())
}

fn candidate_dirs_for(exe_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = exe_dir {
        dirs.push(d.to_path_buf());
        dirs.push(d.join("..").join("lib"));
    }
    // `pip install balerfile[models]` puts the command in ENV/bin and onnxruntime in ENV's
    // site-packages; the command is often run by its path with no environment activated, so
    // the environment it lives in comes before any other. Only a virtualenv's or conda env's
    // folder counts: a Python host's (h5py's) executable lies in its interpreter's prefix, whose
    // packages must not win over the active environment's.
    let own_env = exe_dir.and_then(Path::parent).filter(|p| crate::pyenv::is_env(p));
    let mut envs: Vec<PathBuf> = own_env.map(Path::to_path_buf).into_iter().collect();
    envs.extend(
        ["VIRTUAL_ENV", "CONDA_PREFIX"].iter().filter_map(|v| std::env::var_os(v).filter(|v| !v.is_empty()).map(PathBuf::from)),
    );
    for d in exe_dir.map(Path::to_path_buf).iter().chain(own_object_dir().iter()) {
        envs.extend(d.ancestors().map(|a| a.join(".venv")).filter(|v| v.is_dir()));
    }
    for env in envs {
        dirs.extend(crate::pyenv::site_packages(&env).into_iter().map(|sp| sp.join("onnxruntime").join("capi")));
    }
    dirs.extend(loaded_site_packages().into_iter().map(|sp| sp.join("onnxruntime").join("capi")));
    if let Some(d) = python_package_dir() {
        dirs.push(d.join("capi"));
    }
    if let Some(v) = std::env::var_os("LD_LIBRARY_PATH") {
        dirs.extend(std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()));
    }
    for d in ["/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/opt/onnxruntime/lib"] {
        dirs.push(d.into());
    }
    dirs
}

/// The folder of the executable or shared object holding this code: inside a host program
/// (h5py, h5dump) that is the filter plugin's folder, not the host's.
#[cfg(target_os = "linux")]
fn own_object_dir() -> Option<PathBuf> {
    use std::ffi::CStr;
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address of a function of ours and fills `info`.
    let ok = unsafe { libc::dladdr(own_object_dir as *const () as *const libc::c_void, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated path owned by the loader.
    let path = PathBuf::from(unsafe { CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned());
    std::fs::canonicalize(&path).unwrap_or(path).parent().map(Path::to_path_buf)
}

#[cfg(not(target_os = "linux"))]
fn own_object_dir() -> Option<PathBuf> {
    None
}

/// `site-packages` folders of the objects loaded in this process (a Python host's packages).
fn loaded_site_packages() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in crate::loaded_objects::paths() {
        let n = p.to_string_lossy();
        if let Some(i) = n.find("/site-packages/") {
            let sp = PathBuf::from(&n[..i + "/site-packages".len()]);
            if !out.contains(&sp) {
                out.push(sp);
            }
        }
    }
    out
}


/// The installed `onnxruntime` package of the `python3` on PATH, if any.
fn python_package_dir() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import importlib.util as u; s = u.find_spec('onnxruntime'); print(s.submodule_search_locations[0] if s else '')"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| PathBuf::from(s))
}

/// The newest `libonnxruntime.so*` (or .dylib/.dll) in a folder.
fn best_in(dir: &Path) -> Option<PathBuf> {
    let rd = std::fs::read_dir(dir).ok()?;
    let mut found: Vec<(Vec<u32>, PathBuf)> = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let rest = name
            .strip_prefix("libonnxruntime.so")
            .or_else(|| name.strip_prefix("libonnxruntime").and_then(|r| r.strip_suffix(".dylib")))
            .or_else(|| (name == "onnxruntime.dll").then_some(""));
        let Some(rest) = rest else { continue };
        let version: Option<Vec<u32>> = rest.trim_start_matches('.').split('.').filter(|s| !s.is_empty()).map(|s| s.parse().ok()).collect();
        if let Some(v) = version {
            if e.path().is_file() {
                found.push((v, e.path()));
            }
        }
    }
    found.sort();
    found.pop().map(|(_, p)| std::fs::canonicalize(&p).unwrap_or(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_finds_onnxruntime_in_the_environment_it_is_installed_in() {
        let tmp = tempfile::tempdir().unwrap();
        let env = tmp.path().join("myenv");
        let capi = env.join("lib").join("python3.11").join("site-packages").join("onnxruntime").join("capi");
        std::fs::create_dir_all(&capi).unwrap();
        std::fs::create_dir_all(env.join("bin")).unwrap();
        std::fs::write(env.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        for v in ["1.9.0", "1.32.0"] {
            std::fs::write(capi.join(format!("libonnxruntime.so.{v}")), b"").unwrap();
        }
        // The first folder that holds a library wins, whatever VIRTUAL_ENV or a .venv above says.
        let first = || candidate_dirs_for(Some(&env.join("bin"))).iter().find_map(|d| best_in(d));
        assert_eq!(first(), Some(std::fs::canonicalize(capi.join("libonnxruntime.so.1.32.0")).unwrap()));
        // A folder that is no Python environment (an interpreter's prefix) is not taken as one.
        std::fs::remove_file(env.join("pyvenv.cfg")).unwrap();
        assert!(!candidate_dirs_for(Some(&env.join("bin"))).contains(&capi));
    }
}
