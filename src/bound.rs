//! Error bounds: what the user asks for (`--error` specs) and what each variable is held to.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::header::{DatasetInfo, Stats};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoundMode {
    Lossless,
    Abs,
    Rel,
    /// Pure autoencoder output with no residual (Baler's behaviour): needs a model.
    None,
}

/// A variable's bound as stored in the header: the mode and value the user gave, and the
/// resolved absolute tolerance every element is held to.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBound {
    pub mode: BoundMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abs: Option<f64>,
}

impl ErrorBound {
    pub const LOSSLESS: ErrorBound = ErrorBound { mode: BoundMode::Lossless, value: None, abs: None };

    /// The absolute tolerance the codec quantises to, or None to code losslessly.
    pub fn tolerance(&self) -> Option<f64> {
        match self.mode {
            BoundMode::Abs | BoundMode::Rel => self.abs.filter(|&a| a > 0.0 && a.is_finite()),
            BoundMode::Lossless | BoundMode::None => None,
        }
    }

    pub fn describe(&self) -> String {
        match (self.mode, self.value) {
            (BoundMode::Abs, Some(v)) => format!("abs={v:.3e}"),
            (BoundMode::Rel, Some(v)) => format!("rel={v:.0e} (abs={:.3e})", self.abs.unwrap_or(0.0)),
            (BoundMode::None, _) => "none".into(),
            _ => "lossless".into(),
        }
    }
}

/// What the user asked for, before it is resolved against a variable's range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    Lossless,
    /// The model's output, no residual: Baler's pure autoencoder mode.
    None,
    Abs(f64),
    Rel(f64),
}

/// `NAME:VALUE` or `VALUE`, as every per-variable option takes it (`--error`, `--layout`,
/// `--fill-value`): the value never holds a ':', so the last one separates a name that may.
pub fn split_target(spec: &str) -> std::result::Result<(Option<&str>, &str), String> {
    match spec.rsplit_once(':') {
        Some((n, v)) if !n.is_empty() => Ok((Some(n), v)),
        Some(_) => Err("empty variable name before ':'".into()),
        None => Ok((None, spec)),
    }
}

/// One `--error` argument: `rel=1e-3`, `abs=0.5`, `lossless`, or `VARIABLE:rel=1e-4`.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorSpec {
    pub variable: Option<String>,
    pub bound: Bound,
}

impl std::str::FromStr for ErrorSpec {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self> {
        let bad = |what: &str| Error::ErrorSpec { spec: spec.to_string(), what: what.to_string() };
        let (variable, bound) = split_target(spec).map_err(|e| bad(&e))?;
        let variable = variable.map(str::to_string);
        let bound = bound.trim();
        let bound = if bound == "lossless" {
            Bound::Lossless
        } else if bound == "none" {
            Bound::None
        } else {
            let (mode, value) = bound
                .split_once('=')
                .ok_or_else(|| bad("expected rel=E, abs=E, lossless or none, optionally after VARIABLE:"))?;
            let value: f64 =
                value.trim().parse().map_err(|_| bad(&format!("'{}' is not a number", value.trim())))?;
            if !(value.is_finite() && value > 0.0) {
                return Err(bad("the tolerance must be a finite number > 0"));
            }
            match mode.trim() {
                "rel" if value >= 1.0 => return Err(bad(&rel_keeps_nothing(value))),
                "rel" => Bound::Rel(value),
                "abs" => Bound::Abs(value),
                other => return Err(bad(&format!("unknown mode '{other}' (use rel, abs, lossless or none)"))),
            }
        };
        Ok(ErrorSpec { variable, bound })
    }
}

/// Datasets a global spec leaves lossless, because a lossy coordinate misplaces every value
/// on it: dimension scales (time, latitude), and the variables CF names, in another's
/// attributes, as cell bounds (`bounds`, `climatology`: a month's first and last day) or
/// auxiliary coordinates (`coordinates`: a forecast reference time). Names are of the same group.
fn coordinates(datasets: &[DatasetInfo]) -> Vec<bool> {
    let named: Vec<String> = datasets.iter().flat_map(|d| d.cf_named(&["bounds", "climatology", "coordinates"])).collect();
    datasets.iter().map(|d| d.is_dimension_scale() || named.contains(&d.path)).collect()
}

/// For each dataset and variable, the bound the specs ask for: the last spec that names the
/// variable wins, then the last global spec (except on coordinates: `coordinates`), then
/// lossless. A spec naming no variable is an error.
pub fn assign(specs: &[ErrorSpec], datasets: &[DatasetInfo]) -> Result<Vec<Vec<Bound>>> {
    for spec in specs {
        if let Some(name) = &spec.variable {
            if !datasets.iter().any(|d| in_group(name, d) || d.variables.iter().any(|v| matches(name, d, v))) {
                let known: Vec<&str> =
                    datasets.iter().flat_map(|d| d.variables.iter().map(|v| v.name.as_str())).collect();
                return Err(Error::Usage(format!(
                    "--error {name}:...: no variable, dataset or group named '{name}' (variables: {})",
                    abbreviate(&known)
                )));
            }
        }
    }
    let global = specs.iter().rev().find(|s| s.variable.is_none()).map(|s| s.bound);
    let coordinate = coordinates(datasets);
    Ok(datasets
        .iter()
        .zip(coordinate)
        .map(|(d, coordinate)| {
            d.variables
                .iter()
                .map(|v| {
                    // A group's spec is a global one inside it: coordinates stay lossless.
                    specs
                        .iter()
                        .rev()
                        .find(|s| s.variable.as_deref().is_some_and(|n| matches(n, d, v) || (!coordinate && in_group(n, d))))
                        .map(|s| s.bound)
                        .or(if coordinate { None } else { global })
                        .unwrap_or(Bound::Lossless)
                })
                .collect()
        })
        .collect())
}

/// The integer variables a lossy bound was asked of that CF packs (`scale_factor`,
/// `add_offset`: int16 temperatures, say). They are kept exactly, as every integer is: their
/// packing has already quantised them, and the bound applies to float variables. Named so a
/// user does not take the bound as applied.
pub fn cf_packed_kept_exact(specs: &[ErrorSpec], datasets: &[DatasetInfo]) -> Result<Vec<String>> {
    let bounds = assign(specs, datasets)?;
    let packed = |d: &DatasetInfo| d.attributes.contains_key("scale_factor") || d.attributes.contains_key("add_offset");
    Ok(datasets
        .iter()
        .zip(&bounds)
        .filter(|(d, _)| packed(d))
        .flat_map(|(d, b)| d.variables.iter().zip(b).filter(|(v, b)| !v.dtype.is_float() && matches!(b, Bound::Abs(_) | Bound::Rel(_))).map(|(v, _)| v.name.clone()))
        .collect())
}

/// Whether `name` is a group holding dataset `d` (at any depth): `--error atmos:abs=0.05`.
fn in_group(name: &str, d: &DatasetInfo) -> bool {
    let g = name.trim_matches('/');
    !g.is_empty() && d.path.strip_prefix('/').is_some_and(|p| p.strip_prefix(g).is_some_and(|rest| rest.starts_with('/')))
}

fn matches(name: &str, d: &DatasetInfo, v: &crate::header::VariableInfo) -> bool {
    name == v.name || name == d.name() || name == d.path || v.field.as_deref() == Some(name)
}

fn abbreviate(names: &[&str]) -> String {
    if names.len() <= 12 {
        names.join(", ")
    } else {
        format!("{}, ... and {} more", names[..12].join(", "), names.len() - 12)
    }
}

/// Resolves a requested bound against the variable's dtype and value range. Integers stay
/// lossless unless a model covers them (BCAE-2D's ADC counts); then their absolute bound is the
/// whole number of counts below the request (a bound under 1 count is lossless).
pub fn resolve(bound: Bound, dtype: crate::dtype::DType, modelled: bool, stats: &Stats) -> ErrorBound {
    let is_float = dtype.is_float();
    if !(is_float || (modelled && dtype != crate::dtype::DType::Bool)) {
        return ErrorBound::LOSSLESS;
    }
    let (abs, rel) = match bound {
        Bound::Lossless => return ErrorBound::LOSSLESS,
        Bound::None => return ErrorBound { mode: BoundMode::None, value: None, abs: None },
        Bound::Abs(e) => (e, (BoundMode::Abs, e)),
        Bound::Rel(e) => (e * stats.range(), (BoundMode::Rel, e)),
    };
    let abs = if is_float { abs } else { abs.floor() };
    if !is_float && abs < 1.0 {
        return ErrorBound::LOSSLESS;
    }
    ErrorBound { mode: rel.0, value: Some(rel.1), abs: Some(abs) }
}


/// Why a relative bound of `value` >= 1 is refused wherever a bound is set (`--error`, the
/// filter's parameters at dataset creation): an error of the whole range or more keeps nothing
/// of the data, almost certainly a typo for 1e-2 or an abs bound.
pub fn rel_keeps_nothing(value: f64) -> String {
    format!(
        "rel={value} allows an error of {}% of the value range, which keeps nothing; use rel < 1 (rel=1e-3 is 0.1%), or abs={value} for an absolute bound",
        value * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let s: ErrorSpec = "rel=1e-3".parse().unwrap();
        assert_eq!(s, ErrorSpec { variable: None, bound: Bound::Rel(1e-3) });
        let s: ErrorSpec = "jet.pt:abs=0.5".parse().unwrap();
        assert_eq!(s, ErrorSpec { variable: Some("jet.pt".into()), bound: Bound::Abs(0.5) });
        let s: ErrorSpec = "x:lossless".parse().unwrap();
        assert_eq!(s.bound, Bound::Lossless);
        for bad in ["rel=abc", "foo=1", "rel=-1", "rel=0", "rel=inf", "", ":rel=1", "rel", "rel=2", "x:rel=1"] {
            let e = bad.parse::<ErrorSpec>().unwrap_err().to_string();
            assert!(e.contains("bad error spec"), "{bad}: {e}");
        }
    }
}
