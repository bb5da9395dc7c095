//! Which table of the input a reused dense model codes, and which element each of its features
//! is. A model is trained on one table (`A/entries`) and names its features after that table's
//! variables (`A/entries.jet_pt`); another file's table with the same columns (`B/entries`)
//! must fit it too, so features match by their name within the table, not by the file's
//! dataset or tree prefix. An explicit map (`--feature-map MODEL=VARIABLE`) covers names that
//! differ.

use std::collections::HashMap;
use std::path::Path;

use super::Bundle;
use crate::error::{Error, Result};
use crate::header::DatasetInfo;

/// Model feature name -> input variable (full name or name within its table, `[j]` for element
/// `j` of a multi-element row), in the order given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeatureMap {
    pub pairs: Vec<(String, String)>,
}

impl FeatureMap {
    /// Each item is `MODELNAME=VARIABLE`, or the path of a text file of such lines (blank lines
    /// and `#` comments ignored).
    pub fn parse(items: &[String]) -> Result<FeatureMap> {
        let mut pairs = Vec::new();
        for item in items {
            if let Some(pair) = split_pair(item) {
                pairs.push(pair.map_err(|e| Error::Usage(format!("--feature-map '{item}': {e}")))?);
                continue;
            }
            let path = Path::new(item);
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::Usage(format!("--feature-map '{item}': neither MODELNAME=VARIABLE nor a readable file ({e})"))
            })?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                match split_pair(line) {
                    Some(Ok(pair)) => pairs.push(pair),
                    Some(Err(e)) => return Err(Error::input(path, format!("line {}: {e}", n + 1))),
                    None => return Err(Error::input(path, format!("line {}: '{line}' is not MODELNAME=VARIABLE", n + 1))),
                }
            }
        }
        let mut seen = HashMap::new();
        for (m, v) in &pairs {
            if let Some(prev) = seen.insert(m.as_str(), v.as_str()) {
                return Err(Error::Usage(format!("--feature-map maps model feature '{m}' twice ('{prev}' and '{v}')")));
            }
        }
        Ok(FeatureMap { pairs })
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

fn split_pair(s: &str) -> Option<std::result::Result<(String, String), String>> {
    let (m, v) = s.split_once('=')?;
    let (m, v) = (m.trim(), v.trim());
    if m.is_empty() || v.is_empty() {
        return Some(Err("both sides of '=' must name something (MODELNAME=VARIABLE)".into()));
    }
    Some(Ok((m.to_string(), v.to_string())))
}

/// How a table's elements were found for a model's features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchHow {
    /// Every feature is a variable of the same full name (the table it was trained on).
    FullName,
    /// By name within the table, and the map where given.
    WithinTable,
}

/// One table a model codes.
#[derive(Clone, Debug)]
pub struct TableMatch {
    pub dataset: usize,
    /// `[variable index, element within a row]` per model feature, in the model's order.
    pub features: Vec<[u64; 2]>,
    pub how: MatchHow,
    /// (model feature, input element) wherever the two names differ, for the report.
    pub renamed: Vec<(String, String)>,
}

/// The name of variable `v` within its table: the compound field or ROOT branch, else its name
/// without the dataset's (`""` for a plain array, which is its dataset).
pub fn local_name<'a>(ds: &DatasetInfo, v: &'a crate::header::VariableInfo) -> &'a str {
    if let Some(f) = &v.field {
        return f;
    }
    let d = ds.name();
    match v.name.trim_start_matches('/').strip_prefix(d) {
        Some("") => "",
        Some(rest) => rest.strip_prefix('.').unwrap_or(&v.name),
        None => &v.name,
    }
}

/// A feature's name within the table the model was trained on (its manifest records that
/// table); the full name when the model does not say or the name does not start with it.
fn feature_local<'a>(bundle: &Bundle, name: &'a str) -> &'a str {
    let trained_on = bundle.manifest.provenance["training"]["source"]["dataset"].as_str().unwrap_or("");
    if trained_on.is_empty() {
        return name;
    }
    match name.trim_start_matches('/').strip_prefix(trained_on.trim_start_matches('/')) {
        Some(rest) if rest.starts_with('[') => rest,
        Some(rest) => rest.strip_prefix('.').unwrap_or(name),
        None => name,
    }
}

/// Every float element of a table by its full name and by its name within the table.
struct Elements {
    full: HashMap<String, [u64; 2]>,
    local: HashMap<String, [u64; 2]>,
    /// Local names, longest first, for the suffix rule.
    by_length: Vec<String>,
}

impl Elements {
    fn of(ds: &DatasetInfo) -> Elements {
        let epr = ds.row_elems();
        let (mut full, mut local) = (HashMap::new(), HashMap::new());
        for (vi, v) in ds.variables.iter().enumerate() {
            if !v.dtype.is_float() {
                continue;
            }
            let l = local_name(ds, v);
            for e in 0..epr {
                let at = [vi as u64, e];
                let suffix = if epr == 1 { String::new() } else { format!("[{e}]") };
                full.insert(format!("{}{suffix}", v.name.trim_start_matches('/')), at);
                local.insert(format!("{l}{suffix}"), at);
            }
        }
        let mut by_length: Vec<String> = local.keys().filter(|k| !k.is_empty()).cloned().collect();
        by_length.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        Elements { full, local, by_length }
    }

    /// A name the user or a model gives: a full name, else a name within the table.
    fn find(&self, name: &str) -> Option<[u64; 2]> {
        let name = name.trim_start_matches('/');
        self.full.get(name).or_else(|| self.local.get(name)).copied()
    }

    fn name_of(&self, at: [u64; 2]) -> String {
        self.full.iter().find(|(_, a)| **a == at).map(|(n, _)| n.clone()).unwrap_or_default()
    }
}

/// The tables `bundle` (a dense model) codes. Tables whose variables carry the features' full
/// names are taken as before; otherwise features match by name within the table and through
/// `map`, and exactly one table may match.
pub fn match_tables(datasets: &[DatasetInfo], bundle: &Bundle, map: &FeatureMap) -> Result<Vec<TableMatch>> {
    let features = &bundle.manifest.features;
    let short = &bundle.id[..12.min(bundle.id.len())];
    let elements: Vec<Elements> = datasets.iter().map(Elements::of).collect();
    check_map(datasets, &elements, bundle, map)?;

    if map.is_empty() {
        let exact: Vec<TableMatch> = elements
            .iter()
            .enumerate()
            .filter_map(|(d, el)| {
                let at: Option<Vec<[u64; 2]>> = features.iter().map(|f| el.full.get(f.name.trim_start_matches('/')).copied()).collect();
                at.map(|features| TableMatch { dataset: d, features, how: MatchHow::FullName, renamed: Vec::new() })
            })
            .collect();
        if !exact.is_empty() {
            return Ok(exact);
        }
    }

    let mut found = Vec::new();
    let mut misses: Vec<(usize, Vec<String>)> = Vec::new();
    for (d, el) in elements.iter().enumerate() {
        match within_table(el, bundle, map) {
            Ok((features, renamed)) => found.push(TableMatch { dataset: d, features, how: MatchHow::WithinTable, renamed }),
            Err(missing) => misses.push((d, missing)),
        }
    }
    match found.len() {
        1 => Ok(found),
        0 => {
            let (d, missing) = misses.iter().min_by_key(|m| m.1.len()).cloned().unwrap_or_default();
            let table = datasets.get(d).map_or("", |ds| ds.name());
            let shown: Vec<_> = missing.iter().take(5).cloned().collect();
            Err(Error::Usage(format!(
                "model {short} does not fit {}: {} of its {} features are not float variables of table {table}, by full name or by name within the table ({}{}); map them with --feature-map MODELNAME=VARIABLE",
                if datasets.len() == 1 { "the input".to_string() } else { format!("any of the input's {} tables", datasets.len()) },
                missing.len(),
                features.len(),
                shown.join(", "),
                if missing.len() > 5 { ", ..." } else { "" }
            )))
        }
        _ => {
            let names: Vec<&str> = found.iter().map(|m| datasets[m.dataset].name()).collect();
            Err(Error::Usage(format!(
                "model {short} fits {} tables by name ({}): choose one with --dataset (or --tree), or map its features to one table's full variable names with --feature-map MODELNAME=VARIABLE",
                found.len(),
                names.join(", ")
            )))
        }
    }
}

/// Each feature's element in this table, or the features that have none.
fn within_table(el: &Elements, bundle: &Bundle, map: &FeatureMap) -> std::result::Result<(Vec<[u64; 2]>, Vec<(String, String)>), Vec<String>> {
    let mut out = Vec::new();
    let mut renamed = Vec::new();
    let mut missing = Vec::new();
    for f in &bundle.manifest.features {
        let local = feature_local(bundle, &f.name);
        let mapped = map.pairs.iter().find(|(m, _)| m == &f.name || m == local).map(|(_, v)| v);
        let at = match mapped {
            Some(v) => el.find(v),
            None => el.find(&f.name).or_else(|| el.local.get(local).copied()).or_else(|| {
                // A model that does not record its table (imported): its feature is named
                // `...TABLE.NAME`; the longest name within the table that ends it wins.
                el.by_length.iter().find(|l| f.name.ends_with(&format!(".{l}"))).and_then(|l| el.local.get(l).copied())
            }),
        };
        match at {
            Some(at) => {
                let name = el.name_of(at);
                if name != f.name.trim_start_matches('/') {
                    renamed.push((f.name.clone(), name));
                }
                out.push(at);
            }
            None => missing.push(f.name.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(missing);
    }
    let mut seen = std::collections::HashSet::new();
    let twice: Vec<String> = out.iter().zip(&bundle.manifest.features).filter(|(a, _)| !seen.insert(**a)).map(|(_, f)| f.name.clone()).collect();
    if !twice.is_empty() {
        return Err(twice.into_iter().map(|n| format!("{n} (its element is another feature's too)")).collect());
    }
    Ok((out, renamed))
}

/// A map that names something the model or the input does not have is a mistake to report,
/// not to ignore.
fn check_map(datasets: &[DatasetInfo], elements: &[Elements], bundle: &Bundle, map: &FeatureMap) -> Result<()> {
    if map.is_empty() {
        return Ok(());
    }
    let short = &bundle.id[..12.min(bundle.id.len())];
    let features = &bundle.manifest.features;
    if bundle.manifest.row_shape().is_some() {
        return Err(Error::Usage(format!(
            "--feature-map: model {short} ({}) takes whole rows of one variable and has no named features to map",
            bundle.manifest.kind
        )));
    }
    for (m, v) in &map.pairs {
        if !features.iter().any(|f| &f.name == m || feature_local(bundle, &f.name) == m) {
            let names: Vec<&str> = features.iter().take(5).map(|f| f.name.as_str()).collect();
            return Err(Error::Usage(format!(
                "--feature-map {m}={v}: model {short} has no feature '{m}' (its {} features: {}{})",
                features.len(),
                names.join(", "),
                if features.len() > 5 { ", ..." } else { "" }
            )));
        }
        if !elements.iter().any(|el| el.find(v).is_some()) {
            let tables: Vec<&str> = datasets.iter().map(|d| d.name()).collect();
            return Err(Error::Usage(format!(
                "--feature-map {m}={v}: the input has no float variable '{v}' (by full name or name within a table; tables: {})",
                tables.join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bound::ErrorBound;
    use crate::dtype::{ByteOrder, DType};
    use crate::header::{Attributes, DatasetKind, VariableInfo};
    use crate::model::{Feature, Latent, Manifest, Normalisation, OnnxInfo, OnnxPart};

    fn table(path: &str, fields: &[&str]) -> DatasetInfo {
        let name = path.trim_start_matches('/');
        DatasetInfo {
            path: path.into(),
            kind: DatasetKind::Compound,
            shape: vec![10],
            chunk_rows: 10,
            attributes: Attributes::default(),
            variables: fields
                .iter()
                .map(|f| VariableInfo {
                    name: format!("{name}.{f}"),
                    field: Some(f.to_string()),
                    dtype: DType::F32,
                    byte_order: ByteOrder::Le,
                    error: ErrorBound::LOSSLESS,
                    stats: None,
                    missing: None,
                })
                .collect(),
            model: None,
            jagged: None,
            maxshape: None,
            chunks: None,
            filters: Vec::new(),
            fill_value: None,
            chars: None,
        }
    }

    fn model(features: &[&str], trained_on: Option<&str>) -> Bundle {
        let part = |f: &str| OnnxPart { file: f.into(), sha256: "0".repeat(64), input: "x".into(), output: "y".into() };
        let n = features.len();
        let manifest = Manifest {
            format: super::super::MANIFEST_FORMAT.into(),
            format_version: super::super::MANIFEST_VERSION,
            kind: "dense".into(),
            name: "t".into(),
            features: features.iter().map(|f| Feature::scalar(*f, "f32")).collect(),
            normalisation: Normalisation { offset: vec![0.0; n], scale: vec![1.0; n] },
            latent: Latent { size: 2 },
            encoder: part("encoder.onnx"),
            decoder: part("decoder.onnx"),
            onnx: OnnxInfo { ir_version: 8, opset: 17 },
            provenance: trained_on.map_or(serde_json::Value::Null, |d| serde_json::json!({"training": {"source": {"dataset": d}}})),
            bcae2d: None,
            conv: None,
        };
        Bundle { id: manifest.id(), manifest, dir: None, encoder: None, decoder: Vec::new() }
    }

    fn map(pairs: &[&str]) -> FeatureMap {
        FeatureMap::parse(&pairs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn full_names_match_as_before_and_other_trees_match_by_branch_name() {
        let a = table("/A/entries", &["px", "py", "pz"]);
        let b = table("/B/entries", &["pz", "px", "py"]);
        let m = model(&["A/entries.px", "A/entries.py"], Some("A/entries"));
        let got = match_tables(&[a.clone(), b.clone()], &m, &FeatureMap::default()).unwrap();
        assert_eq!((got.len(), got[0].dataset, got[0].how), (1, 0, MatchHow::FullName));
        let got = match_tables(&[b], &m, &FeatureMap::default()).unwrap();
        assert_eq!(got[0].features, vec![[1, 0], [2, 0]]);
        assert_eq!(got[0].renamed[0], ("A/entries.px".to_string(), "B/entries.px".to_string()));
    }

    #[test]
    fn two_tables_that_fit_by_name_are_an_error_that_asks_for_a_choice() {
        let b = table("/B/entries", &["px", "py"]);
        let c = table("/C/entries", &["px", "py"]);
        let m = model(&["A/entries.px", "A/entries.py"], Some("A/entries"));
        let e = match_tables(&[b.clone(), c.clone()], &m, &FeatureMap::default()).unwrap_err().to_string();
        assert!(e.contains("B/entries, C/entries") && e.contains("--dataset") && e.contains("--feature-map"), "{e}");
        // A map to full names pins the table.
        let got = match_tables(&[b, c], &m, &map(&["px=C/entries.px", "py=C/entries.py"])).unwrap();
        assert_eq!(got[0].dataset, 1);
    }

    #[test]
    fn a_map_renames_and_a_bad_map_is_a_clear_error() {
        let b = table("/B/entries", &["mu_px", "mu_py"]);
        let m = model(&["A/entries.px", "A/entries.py"], Some("A/entries"));
        let e = match_tables(&[b.clone()], &m, &FeatureMap::default()).unwrap_err().to_string();
        assert!(e.contains("does not fit") && e.contains("--feature-map"), "{e}");
        let got = match_tables(&[b.clone()], &m, &map(&["px=mu_px", "A/entries.py=B/entries.mu_py"])).unwrap();
        assert_eq!(got[0].features, vec![[0, 0], [1, 0]]);
        let e = match_tables(&[b.clone()], &m, &map(&["pt=mu_px"])).unwrap_err().to_string();
        assert!(e.contains("no feature 'pt'"), "{e}");
        let e = match_tables(&[b.clone()], &m, &map(&["px=nope"])).unwrap_err().to_string();
        assert!(e.contains("no float variable 'nope'"), "{e}");
        let e = match_tables(&[b], &m, &map(&["px=mu_px", "py=mu_px"])).unwrap_err().to_string();
        assert!(e.contains("another feature's"), "{e}");
        assert!(FeatureMap::parse(&["px=".into()]).is_err());
        assert!(FeatureMap::parse(&["px=a".into(), "px=b".into()]).unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn a_model_that_does_not_name_its_table_matches_by_the_longest_suffix() {
        let b = table("/B/entries", &["pt", "mu.pt"]);
        let m = model(&["X/t.mu.pt", "X/t.pt"], None);
        let got = match_tables(&[b], &m, &FeatureMap::default()).unwrap();
        assert_eq!(got[0].features, vec![[1, 0], [0, 0]]);
    }
}
