//! 2-D float arrays read as tables: one variable per column (`DatasetKind::Columns`), each with
//! its own bound, range, statistics and model feature, while files keep the plain array.
//!
//! Sources and sinks never see a columns dataset: `ColumnsSource` splits the rows an array source
//! reads into columns, `ColumnsSink` joins them back before the array sink writes them. So every
//! format (HDF5, netCDF, .npy, .npz) gets tables the same way.

use std::ops::Range;
use std::path::Path;

use super::{Sink, Source, SourceLayout};
use crate::error::{Error, Result};
use crate::header::{DatasetInfo, DatasetKind, VariableInfo};
use crate::layout::{default_layout, ArrayLayout};

/// Attributes that may name a 2-D array's columns (a string list as long as the row):
/// Baler's `.npz` `names` becomes `names`; pandas and others write `columns`.
pub const NAME_ATTRIBUTES: [&str; 4] = ["names", "columns", "column_names", "feature_names"];

/// Whether a dataset can be read as a table at all: a 2-D float array of 2 or more columns.
fn can_be_table(ds: &DatasetInfo) -> bool {
    ds.kind == DatasetKind::Array
        && ds.shape.len() == 2
        && ds.shape[1] >= 2
        && ds.variables.len() == 1
        && ds.variables[0].dtype.is_float()
        && ds.jagged.is_none()
}

/// The columns' names: from a name attribute when one lists exactly one per column, else
/// `NAME[j]`. Each is `(variable name, field)`, as a compound's fields are.
fn column_names(ds: &DatasetInfo) -> Vec<(String, Option<String>)> {
    let n = ds.shape[1] as usize;
    let named: Option<Vec<String>> = NAME_ATTRIBUTES.iter().find_map(|a| {
        let list = ds.attributes.get(*a)?.value.as_array()?;
        let names: Vec<String> = list.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<_>>()?;
        let unique = names.iter().collect::<std::collections::BTreeSet<_>>().len() == names.len();
        (names.len() == n && unique && names.iter().all(|s| !s.is_empty())).then_some(names)
    });
    match named {
        Some(names) => names.into_iter().map(|c| (format!("{}.{c}", ds.name()), Some(c))).collect(),
        None => (0..n).map(|j| (format!("{}[{j}]", ds.name()), None)).collect(),
    }
}

/// The table view of a 2-D array dataset.
pub fn to_columns(ds: &DatasetInfo) -> DatasetInfo {
    let v = &ds.variables[0];
    let variables = column_names(ds)
        .into_iter()
        .map(|(name, field)| VariableInfo { name, field, ..v.clone() })
        .collect();
    DatasetInfo { kind: DatasetKind::Columns, variables, ..ds.clone() }
}

/// The array a columns dataset is stored as in files.
pub fn to_array(ds: &DatasetInfo) -> DatasetInfo {
    let v = &ds.variables[0];
    let var = VariableInfo { name: ds.name().to_string(), field: None, ..v.clone() };
    DatasetInfo { kind: DatasetKind::Array, variables: vec![var], ..ds.clone() }
}

/// How the user asked datasets to be read: `table`/`field` for all, or `NAME:table` for one
/// (later wins).
#[derive(Clone, Debug, PartialEq)]
pub struct LayoutSpec {
    pub dataset: Option<String>,
    pub layout: ArrayLayout,
}

impl std::str::FromStr for LayoutSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (dataset, l) = crate::bound::split_target(s).map_err(|e| Error::Usage(format!("--layout {s}: {e}")))?;
        let dataset = dataset.map(|d| d.trim_start_matches('/').to_string());
        let layout = l.parse().map_err(|e| Error::Usage(format!("--layout {s}: {e}")))?;
        Ok(LayoutSpec { dataset, layout })
    }
}

/// What `apply` decided for one dataset, for the user to see.
#[derive(Clone, Debug)]
pub struct LayoutChoice {
    pub dataset: String,
    pub table: bool,
    pub by_default: bool,
    pub columns: usize,
}

impl LayoutChoice {
    pub fn describe(&self) -> String {
        // By default the rule is given either way, with what overrides it: a field is read so
        // because the rule does not call it a table.
        let how = match (self.by_default, self.table) {
            (false, _) => "--layout".into(),
            (true, true) => format!("{} (--layout field to override)", crate::layout::rule()),
            (true, false) => format!("not a table by the rule ({}; --layout table to override)", crate::layout::rule()),
        };
        if self.table {
            format!("{}: read as a table of {} columns, each with its own bound: {how}", self.dataset, self.columns)
        } else {
            format!("{}: read as one field with one bound: {how}", self.dataset)
        }
    }
}

/// Reads the source's 2-D float arrays as tables where the specs (or, for datasets they do not
/// name, the default rule) say so. Returns the choices made about 2-D arrays; naming a dataset
/// that cannot be a table is an error.
pub fn apply(src: Box<dyn Source>, path: &Path, specs: &[LayoutSpec]) -> Result<(Box<dyn Source>, Vec<LayoutChoice>)> {
    let layout = src.layout();
    for s in specs {
        if let Some(name) = &s.dataset {
            let ds = layout.datasets.iter().find(|d| d.name() == name).ok_or_else(|| {
                Error::input(path, format!("--layout {name}:...: no dataset '{name}'"))
            })?;
            if s.layout == ArrayLayout::Table && !can_be_table(ds) {
                return Err(Error::input(path, format!("--layout {name}:table: {name} is not a 2-D float array")));
            }
        }
    }
    let mut choices = Vec::new();
    let tables: Vec<bool> = layout
        .datasets
        .iter()
        .map(|ds| {
            if !can_be_table(ds) {
                return false;
            }
            let asked = specs.iter().rev().find(|s| s.dataset.as_deref().is_none_or(|n| n == ds.name()));
            let table = asked.map_or(default_layout(&ds.shape), |s| s.layout) == ArrayLayout::Table;
            choices.push(LayoutChoice { dataset: ds.name().into(), table, by_default: asked.is_none(), columns: ds.shape[1] as usize });
            table
        })
        .collect();
    if !tables.contains(&true) {
        return Ok((src, choices));
    }
    Ok((Box::new(ColumnsSource::new(src, tables, |ds| to_columns(ds))), choices))
}

/// Reads datasets as tables exactly where `header` (an archive's) says they were packed as
/// tables, so a file lines up with its archive (eval).
pub fn apply_as_in(src: Box<dyn Source>, header_datasets: &[DatasetInfo]) -> Box<dyn Source> {
    let tables: Vec<bool> = src
        .layout()
        .datasets
        .iter()
        .map(|ds| can_be_table(ds) && header_datasets.iter().any(|h| h.path == ds.path && h.kind == DatasetKind::Columns))
        .collect();
    if !tables.contains(&true) {
        return src;
    }
    let by_path: Vec<DatasetInfo> = header_datasets.to_vec();
    Box::new(ColumnsSource::new(src, tables, move |ds| {
        // The archive's own column names, so variables match by name.
        by_path.iter().find(|h| h.path == ds.path).map_or_else(|| to_columns(ds), |h| DatasetInfo { variables: h.variables.clone(), ..to_columns(ds) })
    }))
}

struct ColumnsSource {
    inner: Box<dyn Source>,
    layout: SourceLayout,
    tables: Vec<bool>,
}

impl ColumnsSource {
    fn new(inner: Box<dyn Source>, tables: Vec<bool>, view: impl Fn(&DatasetInfo) -> DatasetInfo) -> Self {
        let mut layout = inner.layout().clone();
        for (ds, &t) in layout.datasets.iter_mut().zip(&tables) {
            if t {
                *ds = view(ds);
            }
        }
        ColumnsSource { inner, layout, tables }
    }
}

impl Source for ColumnsSource {
    fn layout(&self) -> &SourceLayout {
        &self.layout
    }

    fn read_rows(&mut self, dataset: usize, rows: Range<u64>) -> Result<Vec<Vec<u8>>> {
        let data = self.inner.read_rows(dataset, rows)?;
        if !self.tables[dataset] {
            return Ok(data);
        }
        let ds = &self.layout.datasets[dataset];
        Ok(split_columns(&data[0], ds.variables.len(), ds.variables[0].dtype.size()))
    }

    fn carried(&mut self) -> Result<Vec<(crate::header::RootObject, Vec<u8>)>> {
        self.inner.carried()
    }
}

/// Row-major elements of `cols` columns to one buffer per column.
pub fn split_columns(rows: &[u8], cols: usize, size: usize) -> Vec<Vec<u8>> {
    let n = rows.len() / (cols * size).max(1);
    let mut out: Vec<Vec<u8>> = (0..cols).map(|_| Vec::with_capacity(n * size)).collect();
    for row in rows.chunks_exact(cols * size) {
        for (j, o) in out.iter_mut().enumerate() {
            o.extend_from_slice(&row[j * size..(j + 1) * size]);
        }
    }
    out
}

/// One buffer per column back to row-major elements.
pub fn join_columns(cols: &[Vec<u8>], size: usize) -> Vec<u8> {
    let k = cols.len();
    let n = cols.first().map_or(0, |c| c.len() / size);
    let mut out = vec![0u8; n * k * size];
    for (j, c) in cols.iter().enumerate() {
        for (i, v) in c.chunks_exact(size).enumerate() {
            let at = (i * k + j) * size;
            out[at..at + size].copy_from_slice(v);
        }
    }
    out
}

/// A sink for an archive whose header may hold columns datasets: the inner sink is made for the
/// header with those turned back into arrays, and gets each chunk's columns joined into rows.
pub struct ColumnsSink {
    inner: Box<dyn Sink>,
    /// Element size of each columns dataset (by archive index), None for the rest.
    sizes: Vec<Option<usize>>,
}

impl ColumnsSink {
    /// `make` creates the inner sink for the array view of the header.
    pub fn wrap(
        header: &crate::header::Header,
        make: impl FnOnce(&crate::header::Header) -> Result<Box<dyn Sink>>,
    ) -> Result<Box<dyn Sink>> {
        if !header.datasets.iter().any(|d| d.kind == DatasetKind::Columns) {
            return make(header);
        }
        let mut arrays = header.clone();
        let mut sizes = Vec::with_capacity(header.datasets.len());
        for ds in arrays.datasets.iter_mut() {
            if ds.kind == DatasetKind::Columns {
                sizes.push(Some(ds.variables[0].dtype.size()));
                *ds = to_array(ds);
            } else {
                sizes.push(None);
            }
        }
        let inner = make(&arrays)?;
        Ok(Box::new(ColumnsSink { inner, sizes }))
    }
}

impl Sink for ColumnsSink {
    fn write_rows(&mut self, dataset: usize, rows: Range<u64>, vars: &[Vec<u8>]) -> Result<()> {
        match self.sizes.get(dataset).copied().flatten() {
            Some(size) => self.inner.write_rows(dataset, rows, &[join_columns(vars, size)]),
            None => self.inner.write_rows(dataset, rows, vars),
        }
    }

    fn write_carried(&mut self, objects: Vec<(crate::header::RootObject, Vec<u8>)>) -> Result<bool> {
        self.inner.write_carried(objects)
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.inner.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_split_and_join_back() {
        let rows: Vec<u8> = (0..4 * 3 * 5).map(|i| i as u8).collect();
        let cols = split_columns(&rows, 3, 4);
        assert_eq!(cols.len(), 3);
        assert_eq!(&cols[1][..4], &rows[4..8]);
        assert_eq!(join_columns(&cols, 4), rows);
    }
}
