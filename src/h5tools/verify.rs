//! `balerfile h5 verify FILE`: finds chunks HDF5 stored without the balerfile filter (h5py adds
//! user filters as optional, so a failing filter silently stores raw data) and decodes every
//! filtered chunk to prove it is whole and its model is at hand.

use std::path::Path;

use crate::error::{Error, Result};
use crate::h5filter::{self, FilterParams, FILTER_ID};

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DatasetCheck {
    pub path: String,
    pub filter: String,
    pub chunks: u64,
    /// Chunks HDF5 stored with the filter skipped (raw).
    pub unfiltered: Vec<Vec<u64>>,
    /// Chunks that did not decode: (chunk offset, why).
    pub failed: Vec<(Vec<u64>, String)>,
    pub stored_bytes: u64,
    pub raw_bytes: u64,
    /// True when later filters follow ours, so chunks were only checked for being filtered.
    pub not_decoded: bool,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub datasets: Vec<DatasetCheck>,
    /// Datasets without the balerfile filter.
    pub other: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.datasets.iter().all(|d| d.unfiltered.is_empty() && d.failed.is_empty())
    }
}

pub fn verify(path: &Path, names: &[String], decode: bool) -> Result<VerifyReport> {
    super::register()?;
    let h5 = |e: hdf5::Error| Error::Hdf5 { path: path.into(), what: e.to_string() };
    let file = hdf5::File::open(path).map_err(h5)?;
    let mut paths = super::dataset_paths(&file).map_err(h5)?;
    if !names.is_empty() {
        for n in names {
            let want = format!("/{}", n.trim_start_matches('/'));
            if !paths.contains(&want) {
                return Err(Error::input(path, format!("no dataset '{n}'")));
            }
        }
        paths.retain(|p| names.iter().any(|n| format!("/{}", n.trim_start_matches('/')) == *p));
    }
    let mut report = VerifyReport::default();
    for p in paths {
        let ds = file.dataset(&p).map_err(h5)?;
        let filters = ds.filters();
        let Some((pos, cd)) = filters.iter().enumerate().find_map(|(i, f)| match f {
            hdf5::filters::Filter::User(id, cd) if *id == FILTER_ID => Some((i, cd.clone())),
            _ => None,
        }) else {
            report.other.push(p);
            continue;
        };
        let mut check = DatasetCheck { path: p.clone(), ..Default::default() };
        let params = match FilterParams::from_cd_values(&cd) {
            Ok(params) => params,
            Err(e) => {
                check.failed.push((Vec::new(), format!("filter parameters: {e}")));
                report.datasets.push(check);
                continue;
            }
        };
        check.filter = params.describe();
        check.not_decoded = pos + 1 != filters.len();
        check.stored_bytes = ds.storage_size();
        let elem = ds.dtype().map(|t| t.size()).unwrap_or(0) as u64;
        check.raw_bytes = ds.shape().iter().product::<usize>() as u64 * elem;
        let chunk_elems: u64 = ds.chunk().map(|c| c.iter().product::<usize>() as u64).unwrap_or(0);
        let n = ds.num_chunks().unwrap_or(0);
        check.chunks = n as u64;
        for i in 0..n {
            let Some(info) = ds.chunk_info(i) else {
                check.failed.push((Vec::new(), format!("HDF5 gives no information on chunk {i}")));
                continue;
            };
            if info.filter_mask & (1 << pos) != 0 {
                check.unfiltered.push(info.offset.clone());
                continue;
            }
            if !decode || check.not_decoded {
                continue;
            }
            let result = read_chunk(&ds, &info.offset, info.size as usize).and_then(|raw| {
                let out = h5filter::decode_chunk(&params, &raw)?;
                if out.len() as u64 != chunk_elems * elem {
                    return Err(format!("decodes to {} bytes; a chunk holds {}", out.len(), chunk_elems * elem));
                }
                Ok(())
            });
            if let Err(e) = result {
                check.failed.push((info.offset.clone(), e));
            }
        }
        report.datasets.push(check);
    }
    Ok(report)
}

/// A chunk's bytes as stored (after every filter).
fn read_chunk(ds: &hdf5::Dataset, offset: &[u64], size: usize) -> std::result::Result<Vec<u8>, String> {
    let mut buf = vec![0u8; size];
    let mut mask: u32 = 0;
    let r = hdf5::sync::sync(|| unsafe {
        hdf5_sys::h5d::H5Dread_chunk(ds.id(), hdf5_sys::h5p::H5P_DEFAULT, offset.as_ptr(), &mut mask, buf.as_mut_ptr().cast())
    });
    if r < 0 {
        return Err("HDF5 could not read the chunk's stored bytes".into());
    }
    Ok(buf)
}
