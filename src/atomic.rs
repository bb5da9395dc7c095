//! Output files appear whole or not at all: everything is written to a temporary name in the
//! destination folder and renamed over the destination only when complete. A failed or
//! interrupted write leaves the destination untouched (a killed process may leave the hidden
//! temporary file, never a partial file at the output name).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub struct AtomicOutput {
    dest: PathBuf,
    tmp: PathBuf,
    committed: bool,
}

impl AtomicOutput {
    /// Reserves a temporary path beside `dest`; the caller creates the file there.
    pub fn new(dest: &Path) -> Result<Self> {
        let name = dest
            .file_name()
            .ok_or_else(|| Error::Usage(format!("{}: not a file name", dest.display())))?
            .to_string_lossy()
            .into_owned();
        let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if dest.is_dir() {
            return Err(Error::input(dest, "is a directory"));
        }
        if !dir.is_dir() {
            return Err(Error::input(dest, format!("folder {} does not exist", dir.display())));
        }
        let tmp = dir.join(format!(".{name}.balerfile-tmp-{}", std::process::id()));
        Ok(AtomicOutput { dest: dest.to_path_buf(), tmp, committed: false })
    }

    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
