//! The model store: bundle folders named by id, found along a search path.
//!
//! BALER_MODEL_PATH is a colon-separated list of folders, searched in order; new models go into
//! the first. Unset (or empty), the store is the per-user data folder
//! `$XDG_DATA_HOME/balerfile/models` (default `~/.local/share/balerfile/models`).

use std::path::{Path, PathBuf};

use super::{Bundle, Manifest, MANIFEST_FILE};
use crate::error::{Error, Result};

pub const PATH_VAR: &str = "BALER_MODEL_PATH";

#[derive(Clone, Debug)]
pub struct Store {
    pub dirs: Vec<PathBuf>,
}

impl Store {
    pub fn from_env() -> Store {
        let dirs: Vec<PathBuf> = std::env::var_os(PATH_VAR)
            .map(|v| std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect())
            .unwrap_or_default();
        if dirs.is_empty() {
            return Store { dirs: vec![default_dir()] };
        }
        Store { dirs }
    }

    /// Where new bundles are written.
    pub fn primary(&self) -> &Path {
        &self.dirs[0]
    }

    pub fn searched(&self) -> String {
        self.dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
    }

    /// Stores a bundle under its id and returns the id.
    pub fn put(&self, manifest: &Manifest, encoder: &[u8], decoder: &[u8]) -> Result<String> {
        let id = manifest.id();
        Bundle::write_dir(manifest, encoder, decoder, &self.primary().join(&id))?;
        Ok(id)
    }

    /// Finds a bundle by full id. An archive's reference names a full id; a prefix would let a
    /// different model answer.
    pub fn get(&self, id: &str) -> Result<Bundle> {
        for d in &self.dirs {
            let dir = d.join(id);
            if dir.join(MANIFEST_FILE).is_file() {
                let b = Bundle::load_dir(&dir)?;
                if b.id != id {
                    return Err(Error::Model {
                        path: dir,
                        what: format!("manifest hashes to {}, not to its folder's name: the bundle was modified", b.id),
                    });
                }
                return Ok(b);
            }
        }
        Err(Error::ModelNotFound { id: id.into(), searched: self.searched() })
    }

    /// What a user may type for `--model`: a bundle folder, a full id, or a unique id prefix
    /// of at least 8 hex digits.
    pub fn resolve(&self, what: &str) -> Result<Bundle> {
        let p = Path::new(what);
        if p.join(MANIFEST_FILE).is_file() {
            return Bundle::load_dir(p);
        }
        let hex = what.len() >= 8 && what.len() <= 64 && what.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            return Err(Error::ModelNotFound {
                id: what.into(),
                searched: format!("{} (not a bundle folder, nor an id of 8 to 64 hex digits)", self.searched()),
            });
        }
        if what.len() == 64 {
            return self.get(what);
        }
        let mut found: Vec<String> = self.list()?.into_iter().map(|e| e.id).filter(|id| id.starts_with(what)).collect();
        found.dedup();
        match found.len() {
            0 => Err(Error::ModelNotFound { id: what.into(), searched: self.searched() }),
            1 => self.get(&found[0]),
            n => Err(Error::Usage(format!("model id prefix {what} matches {n} models: give more digits"))),
        }
    }

    /// Every bundle in the store, in search-path order; folders that are not bundles are skipped.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        for d in &self.dirs {
            let rd = match std::fs::read_dir(d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(d, e)),
            };
            let mut here: Vec<Listed> = Vec::new();
            for entry in rd.flatten() {
                let dir = entry.path();
                let m = dir.join(MANIFEST_FILE);
                let Ok(text) = std::fs::read(&m) else { continue };
                let Ok(manifest) = serde_json::from_slice::<Manifest>(&text) else { continue };
                let id = manifest.id();
                let intact = dir.file_name().is_some_and(|n| n.to_string_lossy() == id);
                here.push(Listed { id, dir, manifest, intact });
            }
            here.sort_by(|a, b| a.id.cmp(&b.id));
            out.extend(here);
        }
        Ok(out)
    }
}

#[derive(Clone, Debug)]
pub struct Listed {
    pub id: String,
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The folder's name is the manifest's hash (a renamed or edited bundle is not).
    pub intact: bool,
}

pub fn default_dir() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("balerfile").join("models")
}
