//! Model bundles: a folder with `manifest.json`, `encoder.onnx` and `decoder.onnx`
//! (schemas/model-manifest.schema.json). A bundle's id is the SHA-256 of its canonical manifest,
//! and the manifest holds the SHA-256 of each ONNX file, so the id names the exact bytes that
//! will run.

pub mod bcae2d;
pub mod conv;
#[cfg(feature = "runtime")]
pub mod loaded;
#[cfg(feature = "runtime")]
pub mod prepare;
pub mod select;
pub mod store;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub const MANIFEST_FORMAT: &str = "balerfile-model";
pub const MANIFEST_VERSION: u32 = 1;
pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// `dense` (rows x features tables), `bcae2d` (sparse wedges) or `conv` (tiles of fields).
    pub kind: String,
    pub name: String,
    /// The model's input, in order: one entry per column of the encoder's input.
    pub features: Vec<Feature>,
    /// x_model = (x - offset) / scale, per feature; the decoder's output is mapped back.
    pub normalisation: Normalisation,
    pub latent: Latent,
    pub encoder: OnnxPart,
    pub decoder: OnnxPart,
    pub onnx: OnnxInfo,
    /// How the model was made: architecture, training settings and metrics, or the import.
    #[serde(default)]
    pub provenance: serde_json::Value,
    /// Kind `bcae2d`: the network's shape, which the runtime needs to run it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bcae2d: Option<bcae2d::Bcae2dArch>,
    /// Kind `conv`: the tiles and network shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv: Option<conv::ConvArch>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    pub name: String,
    pub dtype: String,
    /// A feature that is a whole block of a row (a BCAE-2D wedge): its shape. None: one value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<u64>>,
}

impl Feature {
    pub fn scalar(name: impl Into<String>, dtype: impl Into<String>) -> Self {
        Feature { name: name.into(), dtype: dtype.into(), shape: None }
    }

    /// Values of a row this feature spans.
    pub fn width(&self) -> usize {
        self.shape.as_ref().map_or(1, |s| s.iter().product::<u64>() as usize)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Normalisation {
    pub offset: Vec<f64>,
    pub scale: Vec<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Latent {
    pub size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OnnxPart {
    pub file: String,
    pub sha256: String,
    pub input: String,
    pub output: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OnnxInfo {
    pub ir_version: i64,
    pub opset: i64,
}

/// What an archive (or an HDF5 filter) records of the model it was packed with.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub decoder_sha256: String,
    /// Bytes a reader must keep beside the archive to read it: the decoder ONNX file plus the
    /// manifest (counted in "ratio with the decoder").
    pub decoder_bytes: u64,
    /// Set when the manifest and decoder travel inside the archive (`--embed-model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<Box<Manifest>>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl Manifest {
    /// Compact JSON with keys sorted at every level: the bytes the id is the hash of.
    pub fn canonical(&self) -> Vec<u8> {
        // serde_json::Value keeps objects in a BTreeMap (no preserve_order feature), so a round
        // trip through it sorts every key.
        let v = serde_json::to_value(self).expect("manifest serialises");
        serde_json::to_vec(&v).expect("manifest serialises")
    }

    pub fn id(&self) -> String {
        sha256_hex(&self.canonical())
    }

    /// The shape of a row the model takes whole (bcae2d: a wedge, conv: a field's slices);
    /// None for dense models, whose features are single values.
    pub fn row_shape(&self) -> Option<Vec<u64>> {
        match (&self.bcae2d, &self.conv) {
            (Some(a), _) => Some(a.wedge.to_vec()),
            (_, Some(c)) => Some(c.row.clone()),
            _ => None,
        }
    }

    pub fn n_features(&self) -> usize {
        self.features.len()
    }

    /// Values per row the encoder takes: the features' widths summed.
    pub fn input_width(&self) -> usize {
        self.features.iter().map(Feature::width).sum()
    }

    /// Checks the manifest's own consistency; `path` names it in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |what: String| Error::Model { path: path.into(), what };
        if self.format != MANIFEST_FORMAT || self.format_version != MANIFEST_VERSION {
            return Err(bad(format!(
                "not a version-{MANIFEST_VERSION} {MANIFEST_FORMAT} manifest (says {} {})",
                self.format, self.format_version
            )));
        }
        if self.kind != "conv" && self.conv.is_some() {
            return Err(bad(format!("a {} model has no 'conv' architecture", self.kind)));
        }
        match (self.kind.as_str(), &self.bcae2d) {
            ("conv", None) => {
                let a = self.conv.as_ref().ok_or_else(|| bad("a conv manifest needs its 'conv' architecture".into()))?;
                a.check().map_err(bad)?;
                if self.features.len() != 1 || self.features[0].shape.as_ref() != Some(&a.row) {
                    return Err(bad(format!("a conv model has one feature of shape {:?}", a.row)));
                }
                if self.latent.size != a.latent_len() as u64 {
                    return Err(bad(format!("latent size {} is not {} tiles of code {:?}", self.latent.size, a.tiles_per_row(), a.code_shape())));
                }
            }
            ("dense", None) => {
                if self.features.iter().any(|f| f.shape.is_some()) {
                    return Err(bad("a dense model's features are single values".into()));
                }
            }
            ("bcae2d", Some(a)) => {
                a.check().map_err(bad)?;
                let wedge = Some(a.wedge.to_vec());
                if self.features.len() != 1 || self.features[0].shape != wedge {
                    return Err(bad(format!("a bcae2d model has one feature of shape {:?}", a.wedge)));
                }
                if self.latent.size != a.code_len() as u64 {
                    return Err(bad(format!("latent size {} is not the code's {:?}", self.latent.size, a.code_shape())));
                }
            }
            ("bcae2d", None) => return Err(bad("a bcae2d manifest needs its 'bcae2d' architecture".into())),
            (k, _) => return Err(bad(format!("model kind '{k}' is not supported by this balerfile (dense, bcae2d, conv)"))),
        }
        let n = self.features.len();
        if n == 0 || self.latent.size == 0 {
            return Err(bad("a model needs at least one feature and a latent size".into()));
        }
        if self.normalisation.offset.len() != n || self.normalisation.scale.len() != n {
            return Err(bad(format!("normalisation has {}/{} values for {n} features", self.normalisation.offset.len(), self.normalisation.scale.len())));
        }
        if self.normalisation.scale.iter().chain(&self.normalisation.offset).any(|v| !v.is_finite())
            || self.normalisation.scale.iter().any(|&s| s <= 0.0)
        {
            return Err(bad("normalisation scales must be finite and positive, offsets finite".into()));
        }
        for part in [&self.encoder, &self.decoder] {
            if part.file.contains('/') || part.file.contains('\\') || part.file.starts_with('.') {
                return Err(bad(format!("ONNX file name '{}' must be a plain file name", part.file)));
            }
            if part.sha256.len() != 64 || !part.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(format!("'{}' has no valid sha256", part.file)));
            }
        }
        Ok(())
    }
}

/// A model bundle found on disk (or embedded in an archive), checked against its id.
#[derive(Clone, Debug)]
pub struct Bundle {
    pub id: String,
    pub manifest: Manifest,
    /// The folder; None for a bundle embedded in an archive.
    pub dir: Option<PathBuf>,
    /// Encoder bytes, when present (embedded bundles carry only the decoder).
    pub encoder: Option<Vec<u8>>,
    pub decoder: Vec<u8>,
}

impl Bundle {
    /// Loads a bundle folder, checking the manifest and both ONNX files' hashes.
    pub fn load_dir(dir: &Path) -> Result<Bundle> {
        let mpath = dir.join(MANIFEST_FILE);
        let text = std::fs::read(&mpath).map_err(|e| Error::io(&mpath, e))?;
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|e| Error::Model { path: mpath.clone(), what: format!("not a valid model manifest: {e}") })?;
        manifest.validate(&mpath)?;
        let read_part = |part: &OnnxPart| -> Result<Vec<u8>> {
            let p = dir.join(&part.file);
            let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
            let got = sha256_hex(&bytes);
            if got != part.sha256 {
                return Err(Error::Model {
                    path: p,
                    what: format!("SHA-256 {got} differs from the manifest's {}: the file was modified", part.sha256),
                });
            }
            Ok(bytes)
        };
        let encoder = read_part(&manifest.encoder)?;
        let decoder = read_part(&manifest.decoder)?;
        Ok(Bundle { id: manifest.id(), manifest, dir: Some(dir.into()), encoder: Some(encoder), decoder })
    }

    pub fn reference(&self, embed: bool) -> ModelRef {
        ModelRef {
            id: self.id.clone(),
            name: self.manifest.name.clone(),
            kind: self.manifest.kind.clone(),
            decoder_sha256: self.manifest.decoder.sha256.clone(),
            decoder_bytes: self.decoder_cost(),
            embedded: embed.then(|| Box::new(self.manifest.clone())),
        }
    }

    /// Bytes a reader needs beside the archive: the decoder and the manifest.
    pub fn decoder_cost(&self) -> u64 {
        self.decoder.len() as u64 + self.manifest.canonical().len() as u64
    }

    /// Whether `dir` may take a bundle `write_dir` writes: a folder that does not exist yet, or
    /// a bundle folder (a manifest and its two models, nothing else), which it replaces. A
    /// folder of anything else (the user's files, the training input, the model store) is
    /// refused: the bundle replaces the whole folder. For a folder the user names (`train -o`),
    /// before training, so nothing is trained for an output that would be refused; the store's
    /// own folders are its business.
    pub fn check_dir_target(dir: &Path) -> Result<()> {
        let Ok(meta) = std::fs::metadata(dir) else { return Ok(()) };
        let refuse = |what: &str| {
            Err(Error::Usage(format!(
                "{}: {what}; a bundle replaces the whole folder, so give -o a new folder's name (e.g. {})",
                dir.display(),
                dir.join("model").display()
            )))
        };
        if !meta.is_dir() {
            return refuse("exists and is not a folder");
        }
        let Ok(bundle) = Bundle::load_dir(dir) else {
            return refuse("is a folder that is not a model bundle");
        };
        let own = [MANIFEST_FILE, bundle.manifest.encoder.file.as_str(), bundle.manifest.decoder.file.as_str()];
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for e in entries {
            let name = e.map_err(|e| Error::io(dir, e))?.file_name();
            if !own.iter().any(|o| std::ffi::OsStr::new(o) == name) {
                return refuse(&format!("holds {} besides a model bundle", name.to_string_lossy()));
            }
        }
        Ok(())
    }

    /// Writes the bundle as a folder (a temporary sibling, then renamed): what `train` and
    /// `import` produce and the store holds.
    pub fn write_dir(manifest: &Manifest, encoder: &[u8], decoder: &[u8], dir: &Path) -> Result<()> {
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
        let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let write = |file: &str, bytes: &[u8]| -> Result<()> {
            let p = tmp.join(file);
            std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))
        };
        let result = (|| {
            write(&manifest.encoder.file, encoder)?;
            write(&manifest.decoder.file, decoder)?;
            let mut json = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
            json.push(b'\n');
            write(MANIFEST_FILE, &json)?;
            if dir.exists() {
                // Same id, same content: another process stored it first.
                if Bundle::load_dir(dir).is_ok_and(|b| b.id == manifest.id()) {
                    let _ = std::fs::remove_dir_all(&tmp);
                    return Ok(());
                }
                std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }
}

/// The copy of model `m` that travels inside the archive (`--embed-model`), checked: its
/// manifest must hash to the archive's model id and its decoder to the manifest's SHA-256, so a
/// modified copy is refused even when every CRC was recomputed.
pub fn embedded_bundle(reader: &crate::container::ArchiveReader, m: usize, r: &ModelRef) -> Result<Bundle> {
    let path = reader.path();
    let Some(manifest) = &r.embedded else {
        return Err(Error::Usage(format!("model {} is not embedded in {}", r.id, path.display())));
    };
    let decoder = reader.attachment(m)?.ok_or_else(|| Error::corrupt(path, format!("embedded model {} missing", r.id)))?;
    let bad = |what: String| Error::corrupt(path, format!("embedded model {}: {what}", r.id));
    if manifest.id() != r.id {
        return Err(bad(format!("its manifest hashes to {}", manifest.id())));
    }
    if sha256_hex(&decoder) != manifest.decoder.sha256 || manifest.decoder.sha256 != r.decoder_sha256 {
        return Err(bad("its decoder's SHA-256 does not match the manifest".into()));
    }
    manifest.validate(path)?;
    Ok(Bundle { id: r.id.clone(), manifest: (**manifest).clone(), dir: None, encoder: None, decoder })
}
