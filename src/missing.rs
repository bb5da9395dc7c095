//! Missing values: the elements a user's data marks as "no value here" (CF `_FillValue`,
//! `missing_value`, `valid_min`/`valid_max`/`valid_range`, a user-set HDF5 fill value, NaN).
//!
//! One rule everywhere (pack, `h5 compress`, the filter, eval): a missing element is stored bit
//! for bit, and it is left out of every range a `rel` bound is relative to, of the error
//! statistics, of the model's inputs and of the predictors (its code repeats its neighbour's, so
//! no predictor ever jumps to 1e34). The decoder needs nothing of this: a missing element is one
//! of the block's exact values.

use serde::{Deserialize, Serialize};

use crate::dtype::{round_to, DType};
use crate::header::{float_from_json, float_to_json, Attributes};

/// The most fill values one variable may declare (`_FillValue` plus a `missing_value` list).
pub const MAX_FILLS: usize = 4;

/// What marks an element missing, for one float variable. `Copy`, so every coder can hold one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MissingRule {
    fills: [f64; MAX_FILLS],
    nfills: usize,
    /// Values below or above these are missing (CF valid_min / valid_max / valid_range).
    pub valid_min: Option<f64>,
    pub valid_max: Option<f64>,
}

impl MissingRule {
    /// The rule of a variable with these fill values and valid range (fills rounded to `dtype`,
    /// as the data holds them; NaN fills are dropped: NaN is always missing).
    pub fn new(dtype: DType, fills: &[f64], valid_min: Option<f64>, valid_max: Option<f64>) -> Result<MissingRule, String> {
        let mut rule = MissingRule { fills: [0.0; MAX_FILLS], nfills: 0, valid_min, valid_max };
        for &f in fills.iter().filter(|f| !f.is_nan()) {
            let f = round_to(dtype, f);
            if rule.fills().contains(&f) {
                continue;
            }
            if rule.nfills == MAX_FILLS {
                return Err(format!("more than {MAX_FILLS} distinct fill/missing values"));
            }
            rule.fills[rule.nfills] = f;
            rule.nfills += 1;
        }
        if let (Some(lo), Some(hi)) = (valid_min, valid_max) {
            if lo > hi {
                return Err(format!("the valid range is reversed (valid_min {lo} > valid_max {hi})"));
            }
        }
        Ok(rule)
    }

    pub fn fills(&self) -> &[f64] {
        &self.fills[..self.nfills]
    }

    /// Whether `x` (a value of the variable, widened to f64) is missing. NaN always is;
    /// infinities are values (kept exactly, outside every range), unless a valid range excludes
    /// them.
    #[inline]
    pub fn is_missing(&self, x: f64) -> bool {
        x.is_nan()
            || self.fills().contains(&x)
            || self.valid_min.is_some_and(|m| x < m)
            || self.valid_max.is_some_and(|m| x > m)
    }

    /// Per element: missing or not.
    pub fn mask(&self, values: &[f64]) -> Vec<bool> {
        values.iter().map(|&x| self.is_missing(x)).collect()
    }

    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.fills().iter().map(|f| format!("{f:e}")).collect();
        parts.push("NaN".into());
        let mut s = format!("missing = {}", parts.join(", "));
        match (self.valid_min, self.valid_max) {
            (None, None) => {}
            (lo, hi) => s += &format!("; valid {}..{}", lo.map_or("".into(), |v| format!("{v:e}")), hi.map_or("".into(), |v| format!("{v:e}"))),
        }
        s
    }

    pub fn to_info(&self, from: Vec<String>) -> MissingInfo {
        MissingInfo {
            fill: self.fills().iter().map(|&f| float_to_json(f)).collect(),
            valid_min: self.valid_min,
            valid_max: self.valid_max,
            from,
        }
    }
}

/// The header's record of a variable's missing-value rule (schemas/baler-header.schema.json).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissingInfo {
    /// Values that mark a missing element (besides NaN, which always does).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fill: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_max: Option<f64>,
    /// Where the rule came from: attribute names, or "hdf5 fill value", "user".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
}

impl MissingInfo {
    pub fn rule(&self, dtype: DType) -> Result<MissingRule, String> {
        let fills: Vec<f64> = self
            .fill
            .iter()
            .map(|v| float_from_json(v).ok_or_else(|| format!("fill value {v} is not a number")))
            .collect::<Result<_, _>>()?;
        MissingRule::new(dtype, &fills, self.valid_min, self.valid_max)
    }
}

/// The numbers an attribute holds (a scalar or a list), or an error saying why it cannot mark
/// missing values of a numeric variable.
fn numbers(name: &str, a: &crate::header::Attribute) -> Result<Vec<f64>, String> {
    if DType::from_name(&a.dtype).is_none_or(|d| d == DType::Bool) {
        return Err(format!("attribute {name} is of type {}, not a number like the variable", a.dtype));
    }
    let vals: Vec<&serde_json::Value> = match &a.value {
        serde_json::Value::Array(v) => v.iter().collect(),
        v => vec![v],
    };
    vals.into_iter()
        .map(|v| float_from_json(v).ok_or_else(|| format!("attribute {name} holds {v}, not a number")))
        .collect()
}

/// `MissingInfo::from` of a rule taken from an HDF5 dataset's fill value property.
pub const HDF5_FILL: &str = "hdf5 fill value";

/// The CF missing-value rule a float variable's attributes declare, with the attribute names it
/// came from; None when it declares none (NaN is still missing: see `MissingRule::is_missing`).
/// A declaration that cannot be honoured (a string `_FillValue`, a reversed `valid_range`) is an
/// error naming the attribute.
pub fn from_attributes(dtype: DType, attrs: &Attributes) -> Result<Option<(MissingRule, Vec<String>)>, String> {
    if !dtype.is_float() {
        return Ok(None);
    }
    let mut fills = Vec::new();
    let mut from = Vec::new();
    for name in ["_FillValue", "missing_value"] {
        if let Some(a) = attrs.get(name) {
            fills.extend(numbers(name, a)?);
            from.push(name.to_string());
        }
    }
    let (mut lo, mut hi) = (None, None);
    if let Some(a) = attrs.get("valid_range") {
        let v = numbers("valid_range", a)?;
        let [a0, a1] = v[..] else {
            return Err(format!("attribute valid_range holds {} values, not 2", v.len()));
        };
        if a0 > a1 {
            return Err(format!("attribute valid_range is reversed ({a0} > {a1})"));
        }
        (lo, hi) = (Some(a0), Some(a1));
        from.push("valid_range".into());
    }
    for (name, slot) in [("valid_min", &mut lo), ("valid_max", &mut hi)] {
        if let Some(a) = attrs.get(name) {
            let v = numbers(name, a)?;
            let [x] = v[..] else {
                return Err(format!("attribute {name} holds {} values, not 1", v.len()));
            };
            *slot = Some(x);
            from.push(name.into());
        }
    }
    if from.is_empty() {
        return Ok(None);
    }
    let rule = MissingRule::new(dtype, &fills, lo, hi).map_err(|e| format!("{e} (attributes {})", from.join(", ")))?;
    Ok(Some((rule, from)))
}

/// Codes for missing elements that cost nothing and steer no predictor: each repeats the code
/// before it, 0 for leading ones. It looks only backwards, so a decoder that was not sent them
/// (a block's FLAG_OMIT) rebuilds them in the order it decodes.
pub fn fill_codes(codes: &mut [i64], missing: &[bool]) {
    let mut last = 0;
    for (c, &m) in codes.iter_mut().zip(missing) {
        if m {
            *c = last;
        } else {
            last = *c;
        }
    }
}

/// Values for missing elements a model may read: each repeats the valid value before it (the
/// first valid one for leading ones; 0 when none is valid), so normalised inputs stay in range.
pub fn fill_values(values: &mut [f64], rule: &MissingRule) {
    let first = values.iter().copied().find(|&x| !rule.is_missing(x) && x.is_finite()).unwrap_or(0.0);
    let mut last = first;
    for x in values.iter_mut() {
        if rule.is_missing(*x) || !x.is_finite() {
            *x = last;
        } else {
            last = *x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::Attribute;

    fn attr(dtype: &str, value: serde_json::Value) -> Attribute {
        Attribute { dtype: dtype.into(), byte_order: None, string: None, shape: vec![], value }
    }

    #[test]
    fn cf_attributes_make_the_rule() {
        let mut a = Attributes::new();
        a.insert("_FillValue".into(), attr("f32", serde_json::json!(-1e34)));
        a.insert("missing_value".into(), attr("f64", serde_json::json!([1e20, -999.0])));
        a.insert("valid_range".into(), attr("f32", serde_json::json!([-5.0, 40.0])));
        let (r, from) = from_attributes(DType::F32, &a).unwrap().unwrap();
        assert_eq!(from, ["_FillValue", "missing_value", "valid_range"]);
        assert!(r.is_missing(-1e34f32 as f64));
        assert!(r.is_missing(1e20f32 as f64));
        assert!(r.is_missing(-999.0));
        assert!(r.is_missing(41.0) && r.is_missing(-6.0) && r.is_missing(f64::NAN));
        assert!(!r.is_missing(10.0) && !r.is_missing(40.0));
        assert!(from_attributes(DType::I32, &a).unwrap().is_none(), "integers are lossless: no rule");
    }

    #[test]
    fn bad_declarations_are_refused_by_name() {
        let mut a = Attributes::new();
        a.insert("_FillValue".into(), attr("string", serde_json::json!("n/a")));
        assert!(from_attributes(DType::F64, &a).unwrap_err().contains("_FillValue"));
        let mut a = Attributes::new();
        a.insert("valid_range".into(), attr("f64", serde_json::json!([3.0, 1.0])));
        assert!(from_attributes(DType::F64, &a).unwrap_err().contains("reversed"));
    }

    #[test]
    fn fill_codes_repeat_the_neighbour() {
        let mut c = vec![9, 1, 9, 9, 2, 9];
        fill_codes(&mut c, &[true, false, true, true, false, true]);
        assert_eq!(c, [0, 1, 1, 1, 2, 2]);
    }
}
