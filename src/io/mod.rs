//! Sources the data comes from and sinks it goes back to. Both move whole chunks (a row range of
//! every variable of a dataset) as little-endian bytes, so the codec never sees file formats.

#[cfg(feature = "hdf5")]
pub mod hdf5;
pub mod netcdf3;
pub mod npy;
pub mod npz;
#[cfg(feature = "root")]
pub mod root;
#[cfg(feature = "root")]
pub mod rntuple;
pub mod table;
pub mod view;
mod zip;

use std::ops::Range;
use std::path::Path;

use crate::error::{Error, Result};
use crate::header::{DatasetInfo, GroupInfo, Header, SourceKind, Skipped};

/// What a source holds. Variables carry no bound or stats yet: `pack` fills those in.
#[derive(Clone, Debug)]
pub struct SourceLayout {
    pub kind: SourceKind,
    pub name: String,
    pub groups: Vec<GroupInfo>,
    pub datasets: Vec<DatasetInfo>,
    pub skipped: Vec<Skipped>,
}

pub trait Source {
    fn layout(&self) -> &SourceLayout;
    /// Rows `rows` of dataset `dataset`: one little-endian buffer per variable.
    fn read_rows(&mut self, dataset: usize, rows: Range<u64>) -> Result<Vec<Vec<u8>>>;
    /// Objects carried through unchanged (a ROOT file's histograms, ...): what the header
    /// lists, with each one's attachment bytes (empty for a directory).
    fn carried(&mut self) -> Result<Vec<(crate::header::RootObject, Vec<u8>)>> {
        Ok(Vec::new())
    }
}

pub trait Sink {
    /// Rows must arrive in order per dataset; datasets one after another.
    fn write_rows(&mut self, dataset: usize, rows: Range<u64>, vars: &[Vec<u8>]) -> Result<()>;
    /// Writes objects carried through from the source (the header's `root_objects`, with their
    /// attachments); false when this output cannot hold them.
    fn write_carried(&mut self, _objects: Vec<(crate::header::RootObject, Vec<u8>)>) -> Result<bool> {
        Ok(false)
    }
    /// What of the source this output does not keep as the source had it, one line each (the
    /// command warns with them).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
    /// Completes the file and moves it to its name; dropping a sink without finishing removes it.
    fn finish(self: Box<Self>) -> Result<()>;
}

const HDF5_MAGIC: [u8; 8] = *b"\x89HDF\r\n\x1a\n";

fn sniff(path: &Path) -> Result<[u8; 8]> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    if f.metadata().map_err(|e| Error::io(path, e))?.is_dir() {
        return Err(Error::input(path, "is a directory"));
    }
    let mut magic = [0u8; 8];
    let n = f.read(&mut magic).map_err(|e| Error::io(path, e))?;
    if n < 8 {
        return Err(Error::input(path, "too short to be an HDF5, netCDF-3, ROOT, .npy or .npz file"));
    }
    Ok(magic)
}

/// Opens INPUT by what its bytes say it is (HDF5, netCDF-3, ROOT, .npy or .npz), keeping only
/// the named datasets when `datasets` is not empty.
pub fn open_source(path: &Path, datasets: &[String]) -> Result<Box<dyn Source>> {
    open_source_with(path, datasets, &Default::default(), false)
}

/// Which trees and branches of a ROOT file to read.
#[derive(Clone, Debug, Default)]
pub struct RootSelect {
    /// Tree names; all trees when empty.
    pub trees: Vec<String>,
    /// Globs (`*`, `?`) of branch names; all branches when empty.
    pub branches: Vec<String>,
    /// Refuse (instead of skip with a warning) branches balerfile cannot code.
    pub strict: bool,
}

/// `open_source`, also reading ROOT files (their trees and branches as `root` selects); with
/// `coordinates`, the HDF5 and netCDF datasets named bring their coordinates
/// (`select_with_coordinates`).
pub fn open_source_with(path: &Path, datasets: &[String], root: &RootSelect, coordinates: bool) -> Result<Box<dyn Source>> {
    let magic = sniff(path)?;
    if magic[..4] == *b"root" {
        #[cfg(feature = "root")]
        {
            let mut src = root::RootSource::open(path, root)?;
            if !datasets.is_empty() {
                let keep = select(path, &src.layout().datasets, datasets)?;
                src.keep(&keep);
            }
            return Ok(Box::new(src));
        }
        #[cfg(not(feature = "root"))]
        return Err(Error::input(path, "a ROOT file, but this balerfile was built without ROOT support"));
    }
    let _ = root;
    if magic[..6] == npy::MAGIC {
        return Ok(Box::new(npy::NpySource::open(path, datasets)?));
    }
    // A zip archive (an empty one is only its end record): an .npz, or an error saying why not.
    if magic[..4] == *b"PK\x03\x04" || magic[..4] == *b"PK\x05\x06" {
        return Ok(Box::new(npz::NpzSource::open(path, datasets)?));
    }
    if netcdf3::is_magic(&magic) {
        return Ok(Box::new(netcdf3::Netcdf3Source::open(path, datasets, coordinates)?));
    }
    // HDF5 files may carry a user block, so the signature can also sit at 512, 1024, ...
    #[cfg(feature = "hdf5")]
    if magic == HDF5_MAGIC || hdf5::has_signature(path) {
        return Ok(Box::new(hdf5::Hdf5Source::open(path, datasets, coordinates)?));
    }
    #[cfg(not(feature = "hdf5"))]
    if magic == HDF5_MAGIC {
        return Err(Error::input(path, "an HDF5 file, but this balerfile was built without HDF5 support"));
    }
    Err(Error::input(path, "neither an HDF5, netCDF-3, ROOT, .npy nor .npz file"))
}

/// ROOT's compression setting for what a ROOT output holds: algorithm x 100 + level 1-9 (1xx
/// zlib, 2xx LZMA, 4xx LZ4, 5xx ZSTD, whose level n is zstd's 2n as in ROOT; 0 stores). 505,
/// ROOT's own default since 6.30, unless asked otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootCompression(pub i32);

impl Default for RootCompression {
    fn default() -> Self {
        RootCompression(505)
    }
}

impl std::str::FromStr for RootCompression {
    type Err = String;
    /// `zstd`, `zlib`, `lz4`, `lzma` with an optional `:LEVEL` (ROOT's 1-9), `none`, or ROOT's
    /// number (505).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("'{s}': use zstd, zlib, lz4 or lzma, each with an optional :LEVEL (zstd:5), none, or ROOT's number (505)");
        let s = s.trim().to_ascii_lowercase();
        if s == "none" || s == "0" {
            return Ok(RootCompression(0));
        }
        if let Ok(n) = s.parse::<i32>() {
            let (algo, level) = (n / 100, n % 100);
            return if [1, 2, 4, 5].contains(&algo) && (1..=9).contains(&level) { Ok(RootCompression(n)) } else { Err(bad()) };
        }
        let (name, level) = s.split_once(':').map_or((s.as_str(), None), |(a, l)| (a, Some(l)));
        let (algo, default) = match name {
            "zlib" => (1, 1),
            "lzma" => (2, 7),
            "lz4" => (4, 4),
            "zstd" => (5, 5),
            _ => return Err(bad()),
        };
        let level = match level {
            None => default,
            Some(l) => l.parse::<i32>().ok().filter(|l| (1..=9).contains(l)).ok_or_else(bad)?,
        };
        Ok(RootCompression(algo * 100 + level))
    }
}

/// How a sink writes what it could write in more than one way.
#[derive(Clone, Copy, Debug, Default)]
pub struct SinkOptions {
    pub root_compression: RootCompression,
}

/// Creates the output for `unpack` by its extension: .npy, .npz, .root, or HDF5 (.h5, .hdf5,
/// .he5, .nc, .nc4).
pub fn create_sink(path: &Path, header: &Header, datasets: &[usize]) -> Result<Box<dyn Sink>> {
    create_sink_as(path, None, header, datasets, &SinkOptions::default())
}

/// `create_sink` for the named format (`h5`, `root`, `npy`, `npz`) whatever the output's extension.
pub fn create_sink_as(path: &Path, format: Option<&str>, header: &Header, datasets: &[usize], opts: &SinkOptions) -> Result<Box<dyn Sink>> {
    let ext = output_format(path, format);
    table::ColumnsSink::wrap(header, |header| create_array_sink(path, &ext, header, datasets, opts))
}

/// The output's format: `format`, else the output's extension.
fn output_format(path: &Path, format: Option<&str>) -> String {
    format.map(str::to_string).unwrap_or_else(|| path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase())
}

/// Whether the output is HDF5 (netCDF-4 included), where dimension scales link variables to
/// their coordinates.
pub fn is_hdf5_output(path: &Path, format: Option<&str>) -> bool {
    HDF5_EXTENSIONS.contains(&output_format(path, format).as_str())
}

const HDF5_EXTENSIONS: [&str; 6] = ["h5", "hdf5", "he5", "nc", "nc4", "cdf"];

fn create_array_sink(path: &Path, ext: &str, header: &Header, datasets: &[usize], opts: &SinkOptions) -> Result<Box<dyn Sink>> {
    let _ = opts;
    match ext {
        "npy" => Ok(Box::new(npy::NpySink::create(path, header, datasets)?)),
        "npz" => Ok(Box::new(npz::NpzSink::create(path, header, datasets)?)),
        #[cfg(feature = "hdf5")]
        e if HDF5_EXTENSIONS.contains(&e) => Ok(Box::new(hdf5::Hdf5Sink::create(path, header, datasets)?)),
        #[cfg(feature = "root")]
        "root" => Ok(Box::new(root::RootSink::create(path, header, datasets, opts.root_compression)?)),
        _ => Err(Error::Usage(format!(
            "{}: unknown output type '.{ext}': use .h5 (HDF5), .nc (netCDF-4), .root (ROOT), .npz or .npy",
            path.display()
        ))),
    }
}

/// netCDF-4's list of a variable's dimension ids.
pub(crate) const NC_COORDINATES: &str = "_Netcdf4Coordinates";
/// The dimension ids of a dataset whose file linked it to its dimension scales only by
/// DIMENSION_LIST (object references, which the header cannot hold; h5netcdf and iris write
/// no `_Netcdf4Coordinates`): read from the scales' `_Netcdf4Dimid`, used as
/// `_Netcdf4Coordinates` is, and never written out.
pub(crate) const LINKED_DIMIDS: &str = "_balerfile_dimids";

/// An integer attribute's values (one for a scalar).
pub(crate) fn attr_ints(a: &crate::header::Attribute) -> Option<Vec<i64>> {
    match &a.value {
        serde_json::Value::Array(v) => v.iter().map(|x| x.as_i64()).collect(),
        v => v.as_i64().map(|x| vec![x]),
    }
}

/// The datasets `names` select, with what they are read by: their dimension scales (time,
/// latitude: netCDF's, by dimension id, in their group or one above it, as netCDF looks) and
/// the variables CF names in their attributes (`coordinates`, `bounds`, `climatology`,
/// `grid_mapping`), and so on for those. `pack --dataset tas` had written a `tas` over
/// phony dimensions, without its times. In file order; all of them when `names` is empty.
pub fn select_with_coordinates(path: &Path, available: &[DatasetInfo], names: &[String]) -> Result<Vec<usize>> {
    let mut chosen = select(path, available, names)?;
    if names.is_empty() {
        return Ok(chosen);
    }
    use crate::header::parent_group as group;
    let mut at = 0;
    while at < chosen.len() {
        let d = &available[chosen[at]];
        at += 1;
        let g = group(&d.path);
        let mut wanted: Vec<usize> = Vec::new();
        let dimids = d.attributes.get(NC_COORDINATES).or(d.attributes.get(LINKED_DIMIDS)).and_then(attr_ints).unwrap_or_default();
        for id in dimids {
            // The nearest group, going up, with a scale of that id.
            let mut look = g;
            loop {
                let found = available.iter().position(|s| {
                    s.is_dimension_scale() && group(&s.path) == look && s.attributes.get("_Netcdf4Dimid").and_then(attr_ints).as_deref() == Some(&[id])
                });
                if let Some(i) = found {
                    wanted.push(i);
                    break;
                }
                if look.is_empty() {
                    break;
                }
                look = group(look);
            }
        }
        for p in d.cf_named(&["coordinates", "bounds", "climatology", "grid_mapping"]) {
            wanted.extend(available.iter().position(|s| s.path == p));
        }
        for i in wanted {
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
    }
    chosen.sort_unstable();
    Ok(chosen)
}

/// Resolves user dataset names ("/a/b", "a/b") to indices; all when `names` is empty.
pub fn select(path: &Path, available: &[DatasetInfo], names: &[String]) -> Result<Vec<usize>> {
    if names.is_empty() {
        return Ok((0..available.len()).collect());
    }
    names
        .iter()
        .map(|n| {
            let want = n.trim_start_matches('/');
            available.iter().position(|d| d.name() == want).ok_or_else(|| {
                let have: Vec<&str> = available.iter().map(|d| d.name()).collect();
                Error::input(path, format!("no dataset '{n}' (it holds: {})", have.join(", ")))
            })
        })
        .collect()
}
