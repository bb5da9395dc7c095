//! The data as the user means it, for every source: 2-D float arrays read as tables where they
//! are tables (io::table), and each float variable's missing-value rule declared from its CF
//! attributes (crate::missing), before a model trains on it or pack ranges it.

use std::ops::Range;
use std::path::Path;

use super::table::{LayoutChoice, LayoutSpec};
use super::{Source, SourceLayout};
use crate::error::{Error, Result};
use crate::header::DatasetKind;

/// Applies the layout specs (`--layout`) and declares missing values. Returns the choices made
/// about 2-D arrays, for the user to see. A missing-value declaration that cannot be honoured
/// (a string `_FillValue`, a reversed `valid_range`) is an error naming the file and dataset.
pub fn as_meant(
    src: Box<dyn Source>,
    path: &Path,
    layouts: &[LayoutSpec],
    fills: &[FillSpec],
) -> Result<(Box<dyn Source>, Vec<LayoutChoice>)> {
    let (src, choices) = super::table::apply(src, path, layouts)?;
    let mut layout = src.layout().clone();
    apply_fill_specs(&mut layout, path, fills)?;
    declare_missing(&mut layout, path)?;
    Ok((Box::new(Declared { inner: src, layout }), choices))
}

/// Records in each float variable of a plain array or columns dataset the missing-value rule
/// its CF attributes declare (`_FillValue`, `missing_value`, `valid_*`), unless one is set.
pub fn declare_missing(layout: &mut SourceLayout, path: &Path) -> Result<()> {
    for ds in layout.datasets.iter_mut().filter(|d| d.kind != DatasetKind::Compound) {
        // A compound's fill value is a whole record, not a per-field marker.
        // A rule from HDF5's fill value property gives way to the attributes': netCDF writes
        // both, and its attributes may add a missing_value or a valid range.
        let from_fill_property = |v: &crate::header::VariableInfo| v.missing.as_ref().is_some_and(|m| m.from == [crate::missing::HDF5_FILL]);
        for var in ds.variables.iter_mut().filter(|v| v.missing.is_none() || from_fill_property(v)) {
            match crate::missing::from_attributes(var.dtype, &ds.attributes) {
                Ok(Some((rule, from))) => var.missing = Some(rule.to_info(from)),
                Ok(None) => {}
                Err(e) => return Err(Error::input(path, format!("dataset {}: {e}", ds.path))),
            }
        }
    }
    Ok(())
}

/// A source whose layout says more than the inner one's (the same rows).
struct Declared {
    inner: Box<dyn Source>,
    layout: SourceLayout,
}

impl Source for Declared {
    fn layout(&self) -> &SourceLayout {
        &self.layout
    }

    fn read_rows(&mut self, dataset: usize, rows: Range<u64>) -> Result<Vec<Vec<u8>>> {
        self.inner.read_rows(dataset, rows)
    }

    fn carried(&mut self) -> Result<Vec<(crate::header::RootObject, Vec<u8>)>> {
        self.inner.carried()
    }
}

/// `--fill-value [VARIABLE:]VALUE|none`: the user's own missing-value marker for float variables
/// (files without CF attributes: .npy, Baler's .npz), or `none` to take a variable's declared
/// fill values as ordinary values. NaN is missing whatever is said.
#[derive(Clone, Debug, PartialEq)]
pub struct FillSpec {
    pub variable: Option<String>,
    /// None: no fill value (`none`).
    pub value: Option<f64>,
}

impl std::str::FromStr for FillSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (variable, v) = crate::bound::split_target(s).map_err(|e| Error::Usage(format!("fill value {s}: {e}")))?;
        let variable = variable.map(str::to_string);
        let value = match v.trim() {
            "none" => None,
            t => Some(t.parse::<f64>().map_err(|_| Error::Usage(format!("fill value {s}: '{t}' is not a number or 'none'")))?),
        };
        Ok(FillSpec { variable, value })
    }
}

fn apply_fill_specs(layout: &mut SourceLayout, path: &Path, fills: &[FillSpec]) -> Result<()> {
    for f in fills {
        if let Some(n) = &f.variable {
            let known = layout.datasets.iter().any(|d| d.name() == n || d.variables.iter().any(|v| &v.name == n || v.field.as_deref() == Some(n)));
            if !known {
                return Err(Error::input(path, format!("fill value for {n}: no variable or dataset named '{n}'")));
            }
        }
    }
    for ds in layout.datasets.iter_mut() {
        let dname = ds.name().to_string();
        for var in ds.variables.iter_mut().filter(|v| v.dtype.is_float()) {
            // Every value declared for the variable is a marker (a file may use two); `none`
            // drops those before it.
            let mut matched = false;
            let mut values: Vec<f64> = Vec::new();
            for f in fills.iter().filter(|f| f.variable.as_deref().is_none_or(|n| n == dname || n == var.name || var.field.as_deref() == Some(n))) {
                matched = true;
                match f.value {
                    None => values.clear(),
                    Some(v) if !values.iter().any(|&w| w.to_bits() == v.to_bits()) => values.push(v),
                    Some(_) => {}
                }
            }
            if !matched {
                continue;
            }
            let fills = values;
            let rule = crate::missing::MissingRule::new(var.dtype, &fills, None, None).map_err(|e| Error::input(path, e))?;
            var.missing = Some(rule.to_info(vec!["--fill-value".into()]));
        }
    }
    Ok(())
}
