//! ROOT files (TTrees) as a source and a sink, through oxyroot (vendored with the fixes in
//! vendor/oxyroot/PATCHES.md).
//!
//! A tree becomes a group `/TREE` holding:
//! - `/TREE/entries`: one row per entry, one variable per flat numeric branch (counters of
//!   jagged arrays included, so the event structure is kept exactly, as integers are);
//! - one per-object table per jagged group, `/TREE/GROUP`: the C-array branches that share a
//!   counter (`Jet_Px[NJet]`, `Jet_Py[NJet]`, ...: group `Jet`), or one `std::vector` branch,
//!   whose per-entry sizes go into `entries` as the added variable `BRANCH.size`.
//!
//! oxyroot panics on much that it does not support, so every call into it runs under
//! `guarded`, which turns a panic into an error naming the file; and it reads whole branches,
//! so the source holds a tree's selected branches in memory (bounded memory for ROOT input is
//! work left for later).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use oxyroot::{Named, RootFile, Slice, UnmarshalerInto, WriterTree};

use super::{rntuple, RootSelect, Sink, Source, SourceLayout};
use crate::atomic::AtomicOutput;
use crate::bound::ErrorBound;
use crate::dtype::{ByteOrder, DType};
use crate::error::{Error, Result};
use crate::header::{
    Attribute, Attributes, Container, DatasetInfo, DatasetKind, GroupInfo, Header, Jagged, RootObject, RootObjectKind,
    Skipped, SourceKind, VariableInfo,
};

pub const MAGIC: &[u8; 4] = b"root";
/// The event table of each tree.
pub const ENTRIES: &str = "entries";
/// The attribute of an event table listing the tree's branches in their order.
const BRANCHES_ATTR: &str = "root_branches";

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (oxyroot code), turning a panic into an error about `path`. The panic's default
/// message is not printed: the user gets one line.
fn guarded<T>(path: &Path, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    quietly(f).unwrap_or_else(|msg| Err(Error::input(path, format!("the ROOT reader failed {what}: {msg} (damaged file, or a layout it does not support)"))))
}

/// Runs `f` (oxyroot code), giving a panic's message as `Err` and printing nothing. Calls nest
/// (a branch read inside the file's `guarded`).
fn quietly<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                default(info);
            }
        }));
    });
    let before = QUIET.with(|q| q.replace(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(before));
    r.map_err(|p| crate::error::panic_message(p.as_ref()))
}

/// A branch the reader failed on: the whole file is refused, as for damage (which a panic
/// cannot be told from), but the branch is named.
fn unreadable_branch(panic: &str) -> String {
    format!("the ROOT reader failed reading it: {panic} (damaged, or a basket layout it does not support)")
}

/// `*` and `?` globs, matched against the whole name.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(&pattern.chars().collect::<Vec<_>>(), &name.chars().collect::<Vec<_>>())
}

/// What a branch holds, as far as balerfile codes it.
#[derive(Clone, Debug, PartialEq)]
enum Shape {
    Flat(DType),
    /// A C array whose length is the value of the counter branch.
    CArray(DType, String),
    Vector(DType),
    Unsupported(String),
}

fn shape_of(b: &oxyroot::Branch) -> Shape {
    let ty = b.item_type_name();
    if let Some(d) = DType::from_cpp(&ty) {
        return Shape::Flat(d);
    }
    if let Some(inner) = ty.strip_suffix("[]") {
        let counter = b.leaf_titles().first().and_then(|t| {
            let open = t.find('[')?;
            let close = t[open..].find(']')? + open;
            Some(t[open + 1..close].to_string())
        });
        return match (DType::from_cpp(inner), counter) {
            (Some(d), Some(c)) if !c.is_empty() && !c.chars().all(|ch| ch.is_ascii_digit()) => Shape::CArray(d, c),
            _ => Shape::Unsupported(format!("{ty} (an array without a counter branch)")),
        };
    }
    if let Some(inner) = ty.strip_prefix("vector<").and_then(|r| r.strip_suffix('>')) {
        if let Some(d) = DType::from_cpp(inner.trim()) {
            return Shape::Vector(d);
        }
    }
    let leaves = b.leaf_titles();
    let why = match ty.as_str() {
        "char*" | "string" | "TString" => format!("a {ty} (text) branch"),
        t if t.ends_with(']') => format!("a fixed-size array ({t})"),
        // A leaf list ("x/D:y/I:z/B") holds a struct of several leaves in one branch.
        _ if leaves.len() > 1 => format!("a leaf list of {} leaves ({}), which balerfile does not split into columns yet", leaves.len(), leaves.join(", ")),
        t => format!("of type {t}"),
    };
    Shape::Unsupported(why)
}

macro_rules! per_dtype {
    ($dtype:expr, $f:ident, $($arg:expr),*) => {
        match $dtype {
            DType::Bool => $f::<bool>($($arg),*),
            DType::I8 => $f::<i8>($($arg),*),
            DType::I16 => $f::<i16>($($arg),*),
            DType::I32 => $f::<i32>($($arg),*),
            DType::I64 => $f::<i64>($($arg),*),
            DType::U8 => $f::<u8>($($arg),*),
            DType::U16 => $f::<u16>($($arg),*),
            DType::U32 => $f::<u32>($($arg),*),
            DType::U64 => $f::<u64>($($arg),*),
            DType::F32 => $f::<f32>($($arg),*),
            DType::F64 => $f::<f64>($($arg),*),
        }
    };
}

/// Little-endian bytes of the values, the codec's layout.
trait LeBytes: Sized + Copy + 'static {
    fn put(self, out: &mut Vec<u8>);
    fn get(b: &[u8]) -> Self;
}

macro_rules! le_bytes {
    ($($t:ty),*) => {$(
        impl LeBytes for $t {
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b.try_into().unwrap())
            }
        }
    )*};
}
le_bytes!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

impl LeBytes for bool {
    fn put(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn get(b: &[u8]) -> Self {
        b[0] != 0
    }
}

fn read_flat<T>(b: &oxyroot::Branch) -> Result<Vec<u8>, String>
where
    T: UnmarshalerInto<Item = T> + LeBytes,
{
    let mut out = Vec::new();
    for v in b.as_iter::<T>().map_err(|e| e.to_string())? {
        v.put(&mut out);
    }
    Ok(out)
}

/// Values, then per-entry lengths, of a jagged branch read as `C` (a C array as `Slice<T>`, a
/// `std::vector` as `Vec<T>`).
fn read_jagged<C, T>(b: &oxyroot::Branch) -> Result<(Vec<u8>, Vec<u64>), String>
where
    C: UnmarshalerInto<Item = C> + Into<Vec<T>>,
    T: LeBytes,
{
    let (mut out, mut counts) = (Vec::new(), Vec::new());
    for entry in b.as_iter::<C>().map_err(|e| e.to_string())? {
        let v: Vec<T> = entry.into();
        counts.push(v.len() as u64);
        v.into_iter().for_each(|x| x.put(&mut out));
    }
    Ok((out, counts))
}

fn read_carray<T: LeBytes>(b: &oxyroot::Branch) -> Result<(Vec<u8>, Vec<u64>), String>
where
    Slice<T>: UnmarshalerInto<Item = Slice<T>>,
{
    read_jagged::<Slice<T>, T>(b)
}

fn read_vector<T: LeBytes>(b: &oxyroot::Branch) -> Result<(Vec<u8>, Vec<u64>), String>
where
    Vec<T>: UnmarshalerInto<Item = Vec<T>>,
{
    read_jagged::<Vec<T>, T>(b)
}

fn variable(dataset: &str, branch: &str, dtype: DType) -> VariableInfo {
    VariableInfo {
        name: format!("{}.{branch}", dataset.trim_start_matches('/')),
        field: Some(branch.to_string()),
        dtype,
        byte_order: ByteOrder::Le,
        error: ErrorBound::LOSSLESS,
        stats: None,
        missing: None,
    }
}


fn table(path: String, rows: u64, variables: Vec<VariableInfo>, attributes: Attributes, jagged: Option<Jagged>) -> DatasetInfo {
    DatasetInfo {
        path,
        kind: DatasetKind::Compound,
        shape: vec![rows],
        chunk_rows: 1,
        attributes,
        variables,
        model: None,
        jagged,
        maxshape: None,
        chunks: None,
        filters: Vec::new(),
        fill_value: None,
        chars: None,
    }
}

pub struct RootSource {
    layout: SourceLayout,
    /// Per dataset, per variable: every row's little-endian bytes.
    columns: Vec<Vec<Vec<u8>>>,
    /// The objects besides the packed trees, with their keys' bytes.
    carried: Vec<(RootObject, Vec<u8>)>,
}

/// Why the ROOT reader could not open a file, in words: a streamer element class it does not
/// know (its factory's error names it) is a limit of the reader, not damage to the file.
fn unreadable(e: &str) -> String {
    const UNKNOWN: &str = "ClassNameNotRegisteredInFactory(\"";
    match e.find(UNKNOWN).map(|i| &e[i + UNKNOWN.len()..]).and_then(|r| r.split('"').next()) {
        Some(class) => format!(
            "its streamer infos use {class}, which balerfile's ROOT reader cannot read yet, so the file cannot be opened (the file itself may be sound)"
        ),
        None => format!("not a readable ROOT file: {e}"),
    }
}

/// Classes whose objects point at other records of their file (a tree's baskets, an RNTuple's
/// pages), so their key's bytes alone are not the object: they cannot be carried.
fn points_elsewhere(class: &str) -> bool {
    matches!(class, "TTree" | "TNtuple" | "TNtupleD" | "TChain")
        || class.starts_with("ROOT::Experimental::RNTuple")
        || class.starts_with("ROOT::RNTuple")
}

/// What `carry` found besides the top-level trees.
struct Carried {
    objects: Vec<(RootObject, Vec<u8>)>,
    skipped: Vec<Skipped>,
    /// The paths of the trees and RNTuples inside directories, for the message when `--tree`
    /// names one of them.
    nested: Vec<String>,
}

/// The source's keys besides its top-level trees, as objects to carry (each with its bytes),
/// and what cannot be carried. The streamer info record comes along when any object does.
/// `only_trees`: `--tree` named the trees to pack, so the trees and RNTuples inside directories
/// are left out as the other unnamed trees are, not reported as skipped.
fn carry(file: &mut RootFile, only_trees: bool, err: &dyn Fn(String) -> Error) -> Result<Carried> {
    let keys = file.raw_keys().map_err(|e| err(format!("reading its directories: {e}")))?;
    let mut carried = Vec::new();
    let mut skipped = Vec::new();
    let mut nested = Vec::new();
    for k in &keys {
        let packed = k.dir.is_empty() && (k.class == "TTree" || k.class == rntuple::ANCHOR_CLASS);
        if packed {
            continue;
        }
        let mut o = RootObject {
            kind: RootObjectKind::Key,
            dir: k.dir.clone(),
            name: k.name.clone(),
            class: k.class.clone(),
            title: k.title.clone(),
            cycle: k.cycle,
            bytes: 0,
        };
        if points_elsewhere(&k.class) {
            if k.class == "TTree" || k.class == rntuple::ANCHOR_CLASS {
                nested.push(o.path().trim_start_matches('/').to_string());
                if only_trees {
                    continue;
                }
            }
            let why = match (k.class.as_str(), k.dir.is_empty()) {
                ("TTree", _) => "a TTree inside a directory (balerfile packs the trees at the top of the file)".to_string(),
                (rntuple::ANCHOR_CLASS, _) => "an RNTuple inside a directory (balerfile packs the RNTuples at the top of the file)".to_string(),
                (c, _) => format!("a {c}, whose data lies outside its key (balerfile packs TTrees and RNTuples of format 1.0)"),
            };
            skipped.push(Skipped { path: format!("{};{}", o.path(), k.cycle), reason: why });
            continue;
        }
        if k.is_dir() {
            o.kind = RootObjectKind::Directory;
            carried.push((o, Vec::new()));
            continue;
        }
        let bytes = file.raw_bytes(k).map_err(|e| err(format!("object {}: {e}", o.path())))?;
        o.bytes = bytes.len() as u64;
        carried.push((o, bytes));
    }
    if carried.iter().any(|(o, _)| o.kind == RootObjectKind::Key) {
        let si = file.raw_streamer_info().map_err(|e| err(format!("its streamer infos: {e}")))?;
        if let Some(bytes) = si {
            let (class, name, title, cycle) = oxyroot::raw_key_names(&bytes).map_err(|e| err(format!("its streamer infos: {e}")))?;
            let lost = oxyroot::unwritable_streamer_infos(&bytes).map_err(|e| err(format!("its streamer infos: {e}")))?;
            for v in lost {
                let reason = "a streamer info balerfile's ROOT writer cannot write again (readers fall back on their own description of the class)";
                skipped.push(Skipped { path: format!("/{name}:{}", v.replace(' ', ";")), reason: reason.into() });
            }
            let o = RootObject { kind: RootObjectKind::Streamers, dir: Vec::new(), name, class, title, cycle, bytes: bytes.len() as u64 };
            carried.push((o, bytes));
        }
    }
    Ok(Carried { objects: carried, skipped, nested })
}

impl RootSource {
    pub fn open(path: &Path, select: &RootSelect) -> Result<Self> {
        guarded(path, "opening the file", || Self::read(path, select))
    }

    fn read(path: &Path, select: &RootSelect) -> Result<Self> {
        let err = |what: String| Error::input(path, what);
        let mut file = RootFile::open(path).map_err(|e| err(unreadable(&e.to_string())))?;
        let Carried { objects: carried, skipped, nested } = carry(&mut file, !select.trees.is_empty(), &err)?;
        if select.strict {
            if let Some(s) = skipped.first() {
                return Err(err(format!("{}: {} cannot be packed (without --strict it is skipped with a warning)", s.path, s.reason)));
            }
        }
        // One name per tree, in file order (a tree saved twice has two cycles, one name).
        let mut names: Vec<String> = Vec::new();
        for k in file.keys().iter().filter(|k| k.class_name() == "TTree") {
            if !names.iter().any(|n| n == k.name()) {
                names.push(k.name().to_string());
            }
        }
        let anchors: Vec<oxyroot::RawKey> = file
            .raw_keys()
            .map_err(|e| err(format!("reading its directories: {e}")))?
            .into_iter()
            .filter(|k| k.dir.is_empty() && k.class == rntuple::ANCHOR_CLASS)
            .collect();
        let mut ntuples: Vec<oxyroot::RawKey> = Vec::new();
        for k in anchors {
            if !ntuples.iter().any(|n| n.name == k.name) && !names.contains(&k.name) {
                ntuples.push(k);
            }
        }
        if names.is_empty() && ntuples.is_empty() && carried.is_empty() {
            let why: Vec<String> = skipped.iter().map(|s| format!("{} ({})", s.path, s.reason)).collect();
            return Err(err(format!("holds no TTree, no RNTuple and no other object to carry{}", if why.is_empty() { String::new() } else { format!("; skipped: {}", why.join("; ")) })));
        }
        if !select.trees.is_empty() {
            for t in &select.trees {
                if !names.contains(t) && !ntuples.iter().any(|n| &n.name == t) {
                    if nested.iter().any(|n| n == t.trim_start_matches('/')) {
                        return Err(err(format!("'{t}' lies inside a directory, and balerfile packs the trees and RNTuples at the top of the file")));
                    }
                    let all: Vec<&str> = names.iter().map(String::as_str).chain(ntuples.iter().map(|n| n.name.as_str())).collect();
                    return Err(err(format!("no tree or RNTuple '{t}' (it holds: {})", all.join(", "))));
                }
            }
            names.retain(|n| select.trees.contains(n));
            ntuples.retain(|n| select.trees.contains(&n.name));
        }
        let mut layout = SourceLayout {
            kind: SourceKind::Root,
            name: path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            groups: vec![GroupInfo { path: "/".into(), attributes: Attributes::new() }],
            datasets: Vec::new(),
            skipped,
        };
        let mut columns = Vec::new();
        let mut matched_any = select.branches.is_empty();
        for name in &names {
            let tree = match file.get_tree(name) {
                Ok(t) => t,
                // A tree whose branch types the reader does not know fails whole, not branch by
                // branch: the tree is named and skipped, the rest of the file packed.
                Err(e) => {
                    let e = e.to_string();
                    let why = match ["TLeafD32", "TLeafF16"].iter().find(|c| e.contains(*c)) {
                        Some(_) => "a tree with Double32_t or Float16_t branches, which the ROOT reader cannot read yet".to_string(),
                        None => format!("a tree the ROOT reader cannot read ({e})"),
                    };
                    if select.strict {
                        return Err(err(format!("tree '{name}': {why} (without --strict it is skipped with a warning)")));
                    }
                    layout.skipped.push(Skipped { path: format!("/{name}"), reason: why });
                    continue;
                }
            };
            let entries = tree.entries().max(0) as u64;
            let group = format!("/{name}");
            let events = format!("{group}/{ENTRIES}");
            let mut flat: Vec<(VariableInfo, Vec<u8>)> = Vec::new();
            // Jagged groups in order of first appearance: (group name, container, counter, members).
            let mut groups: Vec<(String, Container, String, Vec<(String, DType)>)> = Vec::new();
            let mut order = Vec::new();
            let all: Vec<&oxyroot::Branch> = tree.branches().collect();
            let wanted = |n: &str| select.branches.is_empty() || select.branches.iter().any(|g| glob_match(g, n));
            // A selected C array brings its counter: the event structure needs it.
            let counters: Vec<String> = all
                .iter()
                .filter(|b| wanted(b.name()))
                .filter_map(|b| match shape_of(b) {
                    Shape::CArray(_, c) => Some(c),
                    _ => None,
                })
                .collect();
            for b in &all {
                let bname = b.name().to_string();
                if !wanted(&bname) && !counters.contains(&bname) {
                    continue;
                }
                matched_any = true;
                let shape = shape_of(b);
                let bad = |what: String| err(format!("tree '{name}', branch '{bname}': {what}"));
                match shape {
                    Shape::Flat(d) => {
                        let bytes = quietly(|| per_dtype!(d, read_flat, b)).unwrap_or_else(|p| Err(unreadable_branch(&p))).map_err(bad)?;
                        if bytes.len() as u64 != entries * d.size() as u64 {
                            return Err(bad(format!("{} values for {entries} entries", bytes.len() / d.size())));
                        }
                        flat.push((variable(&events, &bname, d), bytes));
                        order.push(bname);
                    }
                    Shape::CArray(d, counter) => {
                        let g = match groups.iter().position(|g| g.1 == Container::Carray && g.2 == counter) {
                            Some(i) => i,
                            None => {
                                groups.push((String::new(), Container::Carray, counter.clone(), Vec::new()));
                                groups.len() - 1
                            }
                        };
                        groups[g].3.push((bname.clone(), d));
                        order.push(bname);
                    }
                    Shape::Vector(d) => {
                        groups.push((bname.clone(), Container::Vector, format!("{bname}.size"), vec![(bname.clone(), d)]));
                        order.push(bname);
                    }
                    Shape::Unsupported(why) => {
                        if select.strict {
                            return Err(bad(format!("{why} cannot be packed (without --strict it is skipped with a warning)")));
                        }
                        layout.skipped.push(Skipped { path: format!("{group}:{bname}"), reason: format!("branch {why}") });
                    }
                }
            }
            // Per-object tables.
            let mut objects: Vec<(DatasetInfo, Vec<Vec<u8>>)> = Vec::new();
            for (gname, container, counter, members) in &groups {
                let mut cols = Vec::new();
                let mut vars = Vec::new();
                let mut counts: Option<Vec<u64>> = None;
                for (bname, d) in members {
                    let b = tree.branch(bname).ok_or_else(|| err(format!("tree '{name}': branch '{bname}' vanished")))?;
                    let bad = |what: String| err(format!("tree '{name}', branch '{bname}': {what}"));
                    let read = quietly(|| match container {
                        Container::Carray => per_dtype!(*d, read_carray, b),
                        Container::Vector => per_dtype!(*d, read_vector, b),
                    });
                    let (bytes, c) = read.unwrap_or_else(|p| Err(unreadable_branch(&p))).map_err(bad)?;
                    if c.len() as u64 != entries {
                        return Err(bad(format!("{} entries, the tree has {entries}", c.len())));
                    }
                    match &counts {
                        Some(prev) if *prev != c => return Err(bad(format!("lengths differ from the other branches counted by {counter}"))),
                        _ => counts = Some(c),
                    }
                    cols.push(bytes);
                    vars.push((bname.clone(), *d));
                }
                let counts = counts.unwrap_or_default();
                let objects_n: u64 = counts.iter().sum();
                match container {
                    Container::Carray => {
                        // The counter branch holds the same numbers: check, so a disagreement is
                        // an error here rather than a broken tree after unpack.
                        let Some((cv, cbytes)) = flat.iter().find(|(v, _)| v.field.as_deref() == Some(counter.as_str())) else {
                            return Err(err(format!("tree '{name}': counter branch '{counter}' of {} is not a flat integer branch", members[0].0)));
                        };
                        let stored = crate::dtype::ints_to_i64(cv.dtype, cbytes);
                        if stored.iter().zip(&counts).any(|(&a, &b)| a < 0 || a as u64 != b) || cv.dtype.is_float() {
                            return Err(err(format!("tree '{name}': counter branch '{counter}' disagrees with the lengths of {}", members[0].0)));
                        }
                    }
                    Container::Vector => {
                        let mut bytes = Vec::with_capacity(counts.len() * 4);
                        for &c in &counts {
                            bytes.extend_from_slice(&u32::try_from(c).map_err(|_| err(format!("tree '{name}': a vector of {c} elements")))?.to_le_bytes());
                        }
                        flat.push((variable(&events, counter, DType::U32), bytes));
                    }
                }
                let gpath = format!("{group}/{}", unique_name(gname, counter, members, &objects, container));
                let dvars = vars.iter().map(|(b, d)| variable(&gpath, b, *d)).collect();
                let jagged = Jagged { events: events.clone(), counts: counter.clone(), container: *container };
                objects.push((table(gpath, objects_n, dvars, Attributes::new(), Some(jagged)), cols));
            }
            if flat.is_empty() && objects.is_empty() {
                // Skipped branches are named already and unselected ones were not asked for; a
                // tree with no branch at all would otherwise vanish without a word.
                if all.is_empty() {
                    layout.skipped.push(Skipped { path: group, reason: format!("a tree with no branches ({entries} entries): nothing to pack, and unpack does not recreate it") });
                }
                continue;
            }
            let mut attrs = Attributes::new();
            attrs.insert(BRANCHES_ATTR.into(), Attribute::strings(&order));
            layout.groups.push(GroupInfo { path: group.clone(), attributes: Attributes::new() });
            // Not empty: every per-object table's counts (its counter, or the sizes added above)
            // are variables of the event table.
            let (vars, cols): (Vec<_>, Vec<_>) = flat.into_iter().unzip();
            layout.datasets.push(table(events.clone(), entries, vars, attrs, None));
            columns.push(cols);
            for (d, c) in objects {
                layout.datasets.push(d);
                columns.push(c);
            }
        }
        for k in &ntuples {
            let wanted = |n: &str| select.branches.is_empty() || select.branches.iter().any(|g| glob_match(g, n));
            let (tables, any) = rntuple_tables(&file, path, k, select, &wanted, &mut layout.skipped)?;
            matched_any |= any;
            if let Some((group, tables)) = tables {
                layout.groups.push(group);
                for (d, c) in tables {
                    layout.datasets.push(d);
                    columns.push(c);
                }
            }
        }
        if !matched_any {
            return Err(err(format!("no branch or field matches {}", select.branches.join(", "))));
        }
        if layout.datasets.is_empty() && carried.is_empty() {
            let why: Vec<String> = layout.skipped.iter().map(|s| format!("{} ({})", s.path, s.reason)).collect();
            return Err(err(format!("holds no numeric branch to pack; skipped: {}", why.join("; "))));
        }
        Ok(RootSource { layout, columns, carried })
    }
}

/// An RNTuple anchor key's object (its bytes as on disk: key header, then the object, which
/// ROOT 6.38 compresses).
pub fn anchor_payload(key: &[u8]) -> Result<Vec<u8>, String> {
    let be = |o: usize, n: usize| key.get(o..o + n).map(|b| b.iter().fold(0u64, |a, &x| a << 8 | x as u64));
    let (obj_len, key_len) = be(6, 4).zip(be(14, 2)).ok_or("its anchor key is truncated")?;
    let payload = key.get(key_len as usize..).ok_or("its anchor key is truncated")?.to_vec();
    rntuple::read::inflate(payload, obj_len, "its anchor")
}

/// The attribute of an event table whose source was an RNTuple (the sink writes one back).
pub const RNTUPLE_ATTR: &str = "root_rntuple";

/// The tables of RNTuple `k`: its event table (the flat fields, and each collection's sizes)
/// and a per-object table per collection; None when no field was selected or could be kept.
/// Also whether any field matched the selection.
#[allow(clippy::type_complexity)]
fn rntuple_tables(
    file: &RootFile,
    path: &Path,
    k: &oxyroot::RawKey,
    select: &RootSelect,
    wanted: &dyn Fn(&str) -> bool,
    skipped: &mut Vec<Skipped>,
) -> Result<(Option<(GroupInfo, Vec<(DatasetInfo, Vec<Vec<u8>>)>)>, bool)> {
    let name = &k.name;
    let err = |what: String| Error::input(path, format!("RNTuple '{name}': {what}"));
    let bytes = file.raw_bytes(k).map_err(|e| err(format!("its anchor: {e}")))?;
    let anchor = anchor_payload(&bytes).map_err(err)?;
    let nt = rntuple::RNTuple::open(path, name, &anchor).map_err(err)?;
    let mut matched = false;
    let (parts, left) = nt.parts(wanted).map_err(err)?;
    for (f, why) in left {
        if select.strict {
            return Err(err(format!("field '{f}' is {why} and cannot be packed (without --strict it is skipped with a warning)")));
        }
        skipped.push(Skipped { path: format!("/{name}:{f}"), reason: format!("field {why}") });
    }
    let group = format!("/{name}");
    let events = format!("{group}/{ENTRIES}");
    let mut flat: Vec<(VariableInfo, Vec<u8>)> = Vec::new();
    let mut objects: Vec<(DatasetInfo, Vec<Vec<u8>>)> = Vec::new();
    let mut order = Vec::new();
    for p in parts {
        matched = true;
        match p {
            rntuple::Part::Flat { name: f, dtype, bytes } => {
                order.push(f.clone());
                flat.push((variable(&events, &f, dtype), bytes));
            }
            rntuple::Part::Jagged { name: f, members, counts } => {
                order.push(f.clone());
                let counter = format!("{f}.size");
                let mut cb = Vec::with_capacity(counts.len() * 4);
                for &c in &counts {
                    cb.extend_from_slice(&u32::try_from(c).map_err(|_| err(format!("field '{f}': an entry of {c} items")))?.to_le_bytes());
                }
                flat.push((variable(&events, &counter, DType::U32), cb));
                let dtypes: Vec<(String, DType)> = members.iter().map(|(m, d, _)| (m.clone(), *d)).collect();
                let gpath = format!("{group}/{}", unique_name(&f, &counter, &dtypes, &objects, &Container::Vector));
                let rows: u64 = counts.iter().sum();
                let vars = members.iter().map(|(m, d, _)| variable(&gpath, m, *d)).collect();
                let jagged = Jagged { events: events.clone(), counts: counter, container: Container::Vector };
                objects.push((table(gpath, rows, vars, Attributes::new(), Some(jagged)), members.into_iter().map(|m| m.2).collect()));
            }
        }
    }
    if flat.is_empty() {
        return Ok((None, matched));
    }
    let mut attrs = Attributes::new();
    attrs.insert(BRANCHES_ATTR.into(), Attribute::strings(&order));
    attrs.insert(RNTUPLE_ATTR.into(), Attribute::strings(&[name.clone()]));
    let (vars, cols): (Vec<_>, Vec<_>) = flat.into_iter().unzip();
    let mut tables = vec![(table(events, nt.entries, vars, attrs, None), cols)];
    tables.extend(objects);
    Ok((Some((GroupInfo { path: group, attributes: Attributes::new() }, tables)), matched))
}

/// The name of a per-object table: the branches' common prefix (`Jet_Px`, `Jet_Py` -> `Jet`),
/// else the counter's name, made unique in the tree.
fn unique_name(
    gname: &str,
    counter: &str,
    members: &[(String, DType)],
    taken: &[(DatasetInfo, Vec<Vec<u8>>)],
    container: &Container,
) -> String {
    let base = if *container == Container::Vector {
        gname.to_string()
    } else {
        let first = &members[0].0;
        let mut n = first.chars().count();
        for (m, _) in &members[1..] {
            n = n.min(first.chars().zip(m.chars()).take_while(|(a, b)| a == b).count());
        }
        let common: String = first.chars().take(n).collect();
        let prefix = common.trim_end_matches(|c: char| c == '_' || c == '.');
        if members.len() > 1 && !prefix.is_empty() {
            prefix.to_string()
        } else {
            counter.to_string()
        }
    };
    let mut name = base.clone();
    let mut k = 1;
    while name == ENTRIES || taken.iter().any(|(d, _)| d.name().rsplit('/').next() == Some(name.as_str())) {
        k += 1;
        name = format!("{base}_{k}");
    }
    name.replace('/', "_")
}

impl RootSource {
    /// Keeps only these datasets (indices into the layout), in the layout's order.
    pub fn keep(&mut self, keep: &[usize]) {
        let mut i = 0;
        self.layout.datasets.retain(|_| (keep.contains(&i), i += 1).0);
        let mut i = 0;
        self.columns.retain(|_| (keep.contains(&i), i += 1).0);
    }
}

impl Source for RootSource {
    fn layout(&self) -> &SourceLayout {
        &self.layout
    }

    fn carried(&mut self) -> Result<Vec<(RootObject, Vec<u8>)>> {
        Ok(std::mem::take(&mut self.carried))
    }

    fn read_rows(&mut self, dataset: usize, rows: Range<u64>) -> Result<Vec<Vec<u8>>> {
        let ds = &self.layout.datasets[dataset];
        Ok(ds
            .variables
            .iter()
            .zip(&self.columns[dataset])
            .map(|(v, col)| {
                let s = v.dtype.size();
                col[rows.start as usize * s..rows.end as usize * s].to_vec()
            })
            .collect())
    }
}

/// Writes the archive's tables back as TTrees, compressed as asked (ZSTD by default, as ROOT).
/// Jagged tables come back as `std::vector` branches (oxyroot writes no C arrays), next to
/// their counter branch.
pub struct RootSink {
    header: Header,
    datasets: Vec<usize>,
    data: BTreeMap<usize, Vec<Vec<u8>>>,
    output: AtomicOutput,
    carried: Vec<(RootObject, Vec<u8>)>,
    compression: super::RootCompression,
}

impl RootSink {
    pub fn create(path: &Path, header: &Header, datasets: &[usize], compression: super::RootCompression) -> Result<Self> {
        for &d in datasets {
            let ds = &header.datasets[d];
            if ds.shape.len() != 1 {
                return Err(Error::Usage(format!(
                    "{}: dataset {} has shape {:?}; a TTree holds tables (one row per entry)",
                    path.display(),
                    ds.path,
                    ds.shape
                )));
            }
            if let Some(j) = &ds.jagged {
                if !datasets.iter().any(|&e| header.datasets[e].path == j.events) {
                    return Err(Error::Usage(format!("{}: {} needs its event table {}: unpack both", path.display(), ds.path, j.events)));
                }
            }
        }
        let output = AtomicOutput::new(path)?;
        Ok(RootSink { header: header.clone(), datasets: datasets.to_vec(), data: BTreeMap::new(), output, carried: Vec::new(), compression })
    }

    fn tree_name(ds: &DatasetInfo) -> String {
        match ds.path.strip_suffix(&format!("/{ENTRIES}")) {
            Some(tree) if !tree.is_empty() => tree.trim_start_matches('/').replace('/', "_"),
            _ => ds.name().replace('/', "_"),
        }
    }

    fn write_all(&mut self, path: &PathBuf) -> Result<()> {
        let fail = |what: String| Error::Input { path: self.output.dest().into(), what };
        let mut file = RootFile::create(path).map_err(|e| fail(format!("cannot create: {e}")))?;
        file.set_compression(self.compression.0);
        // Before the trees, so keys with 32-bit positions land below 2 GiB.
        write_carried(&mut file, &self.carried).map_err(fail)?;
        let events: Vec<usize> = self.datasets.iter().copied().filter(|&d| self.header.datasets[d].jagged.is_none()).collect();
        for e in events {
            let ds = &self.header.datasets[e];
            let mut tree = WriterTree::new(Self::tree_name(ds));
            let objects: Vec<usize> = self
                .datasets
                .iter()
                .copied()
                .filter(|&o| self.header.datasets[o].jagged.as_ref().is_some_and(|j| j.events == ds.path))
                .collect();
            let synthetic: Vec<&str> = objects
                .iter()
                .filter_map(|&o| self.header.datasets[o].jagged.as_ref().filter(|j| j.container == Container::Vector).map(|j| j.counts.as_str()))
                .collect();
            let cols = self.data.remove(&e).unwrap_or_else(|| vec![Vec::new(); ds.variables.len()]);
            if let Some(name) = ds.attributes.get(RNTUPLE_ATTR).and_then(|a| a.value.as_array()).and_then(|a| a.first()?.as_str().map(String::from)) {
                let fields = Self::rntuple_fields(&self.header, &mut self.data, e, &objects, cols, &synthetic).map_err(fail)?;
                let entries = self.header.datasets[e].rows();
                rntuple::write::write(&mut file, &name, entries, &fields, self.compression.0).map_err(|e| fail(format!("writing RNTuple {name}: {e}")))?;
                continue;
            }
            // Branch order as the source had it, where the archive says.
            let mut branches: Vec<(String, Box<dyn FnOnce(&mut WriterTree)>)> = Vec::new();
            let mut counts_of = BTreeMap::new();
            for &o in &objects {
                let od = &self.header.datasets[o];
                let j = od.jagged.as_ref().unwrap();
                let ci = ds.variables.iter().position(|v| v.field.as_deref() == Some(j.counts.as_str()) || v.name == j.counts);
                let ci = ci.ok_or_else(|| fail(format!("{}: count variable {} missing from {}", od.path, j.counts, ds.path)))?;
                let counts = crate::dtype::ints_to_i64(ds.variables[ci].dtype, &cols[ci]);
                let total: i64 = counts.iter().sum();
                if counts.iter().any(|&c| c < 0) || total as u64 != od.rows() {
                    return Err(fail(format!("{}: counts in {} add up to {total}, the table has {} rows", od.path, j.counts, od.rows())));
                }
                counts_of.insert(o, counts);
            }
            for (v, col) in ds.variables.iter().zip(cols) {
                let field = v.field.clone().unwrap_or_else(|| v.name.clone());
                if synthetic.contains(&field.as_str()) {
                    continue;
                }
                let (name, d) = (field.clone(), v.dtype);
                branches.push((field, Box::new(move |t: &mut WriterTree| per_dtype!(d, add_flat, t, &name, col))));
            }
            for &o in &objects {
                let od = &self.header.datasets[o];
                let counts = counts_of.remove(&o).unwrap_or_default();
                let ocols = self.data.remove(&o).unwrap_or_default();
                let j = od.jagged.as_ref().expect("a per-object table");
                for (v, col) in od.variables.iter().zip(ocols) {
                    let name = v.field.clone().unwrap_or_else(|| v.name.clone());
                    let (n, d, counts) = (name.clone(), v.dtype, counts.clone());
                    // C arrays come back as C arrays (`Jet_Px[NJet]`): values back to back, where
                    // a std::vector would add 10 bytes of header an entry.
                    if j.container == Container::Carray {
                        let counter = j.counts.clone();
                        branches.push((name, Box::new(move |t: &mut WriterTree| per_dtype!(d, add_counted, t, &n, &counter, col, &counts))));
                    } else {
                        branches.push((name, Box::new(move |t: &mut WriterTree| per_dtype!(d, add_jagged, t, &n, col, &counts))));
                    }
                }
            }
            let mut rank: BTreeMap<String, usize> = BTreeMap::new();
            if let Some(order) = ds.attributes.get(BRANCHES_ATTR).and_then(|a| a.value.as_array()) {
                for (i, o) in order.iter().enumerate() {
                    if let Some(n) = o.as_str() {
                        rank.entry(n.to_string()).or_insert(i);
                    }
                }
            }
            // A counter is written before the arrays it counts (their leaves refer to its leaf).
            for &o in &objects {
                let j = self.header.datasets[o].jagged.as_ref().expect("a per-object table");
                if j.container == Container::Carray {
                    let first = self.header.datasets[o].variables.iter().map(|v| rank.get(v.field.as_deref().unwrap_or(&v.name)).copied().unwrap_or(usize::MAX)).min();
                    if let (Some(first), Some(c)) = (first, rank.get_mut(&j.counts)) {
                        *c = (*c).min(first);
                    }
                }
            }
            branches.sort_by_key(|(n, _)| (rank.get(n).copied().unwrap_or(usize::MAX), !rank.contains_key(n) as u8));
            for (_, add) in branches {
                add(&mut tree);
            }
            tree.write(&mut file).map_err(|e| fail(format!("writing tree {}: {e}", Self::tree_name(ds))))?;
        }
        file.close().map_err(|e| fail(format!("closing: {e}")))?;
        // oxyroot flushes the file header only when the file is dropped.
        drop(file);
        Ok(())
    }
}

impl RootSink {
    /// The fields of the RNTuple that event table `e` came from: its flat variables, and a
    /// collection per per-object table (its counts are the table's `.size` variable), nested
    /// into records where a name has dots (`rec.a`), in the source's order.
    fn rntuple_fields(
        header: &Header,
        data: &mut BTreeMap<usize, Vec<Vec<u8>>>,
        e: usize,
        objects: &[usize],
        cols: Vec<Vec<u8>>,
        synthetic: &[&str],
    ) -> Result<Vec<rntuple::write::Field>, String> {
        use rntuple::write::Field;
        let ds = &header.datasets[e];
        let mut out: Vec<Field> = Vec::new();
        let mut counts_by_name: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut leaves: Vec<(String, Field)> = Vec::new();
        for (v, col) in ds.variables.iter().zip(cols) {
            let field = v.field.clone().unwrap_or_else(|| v.name.clone());
            if synthetic.contains(&field.as_str()) {
                let c = crate::dtype::ints_to_i64(v.dtype, &col);
                if c.iter().any(|&x| x < 0) {
                    return Err(format!("{}: negative sizes in {field}", ds.path));
                }
                counts_by_name.insert(field, c.into_iter().map(|x| x as u64).collect());
                continue;
            }
            leaves.push((field.clone(), Field::Leaf { name: field, dtype: v.dtype, bytes: col }));
        }
        for &o in objects {
            let od = &header.datasets[o];
            let j = od.jagged.as_ref().expect("a per-object table");
            let group = j.counts.strip_suffix(".size").unwrap_or(&j.counts).to_string();
            let counts = counts_by_name.get(&j.counts).cloned().ok_or_else(|| format!("{}: its sizes {} are missing", od.path, j.counts))?;
            let total: u64 = counts.iter().sum();
            if total != od.rows() {
                return Err(format!("{}: sizes in {} add up to {total}, the table has {} rows", od.path, j.counts, od.rows()));
            }
            let ocols = data.remove(&o).unwrap_or_default();
            let members = od
                .variables
                .iter()
                .zip(ocols)
                .map(|(v, col)| {
                    let f = v.field.clone().unwrap_or_else(|| v.name.clone());
                    let m = if f == group { String::new() } else { f.strip_prefix(&format!("{group}.")).unwrap_or(&f).to_string() };
                    (m, v.dtype, col)
                })
                .collect();
            leaves.push((group.clone(), Field::Vector { name: group, members, counts }));
        }
        if let Some(order) = ds.attributes.get(BRANCHES_ATTR).and_then(|a| a.value.as_array()) {
            let pos = |n: &str| order.iter().position(|o| o.as_str() == Some(n)).unwrap_or(usize::MAX);
            leaves.sort_by_key(|(n, _)| pos(n));
        }
        // Dotted names back into records.
        for (path, mut f) in leaves {
            let parts: Vec<&str> = path.split('.').collect();
            match &mut f {
                Field::Leaf { name, .. } | Field::Vector { name, .. } | Field::Record { name, .. } => *name = parts[parts.len() - 1].to_string(),
            }
            let mut level = &mut out;
            for p in &parts[..parts.len() - 1] {
                let i = match level.iter().position(|x| matches!(x, Field::Record { name, .. } if name == p)) {
                    Some(i) => i,
                    None => {
                        level.push(Field::Record { name: p.to_string(), children: Vec::new() });
                        level.len() - 1
                    }
                };
                let Field::Record { children, .. } = &mut level[i] else { unreachable!() };
                level = children;
            }
            level.push(f);
        }
        Ok(out)
    }
}

/// Makes the carried directories and writes the carried keys as they were, checking each
/// key's bytes against what the header says it is.
fn write_carried(file: &mut RootFile, objects: &[(RootObject, Vec<u8>)]) -> Result<(), String> {
    for (o, bytes) in objects {
        let what = |e: String| format!("carried object {} ({}): {e}", o.path(), o.class);
        if o.kind == RootObjectKind::Directory {
            file.mkdir(&o.dir, &o.name, &o.title, o.cycle, &o.class).map_err(|e| what(e.to_string()))?;
            continue;
        }
        let names = oxyroot::raw_key_names(bytes).map_err(|e| what(format!("not a ROOT key: {e}")))?;
        if names != (o.class.clone(), o.name.clone(), o.title.clone(), o.cycle) {
            return Err(what(format!("its bytes hold {} '{}';{}, not what the header lists", names.0, names.1, names.3)));
        }
        match o.kind {
            RootObjectKind::Streamers => file.add_streamer_infos_from(bytes),
            _ => file.put_raw_key(&o.dir, bytes),
        }
        .map_err(|e| what(e.to_string()))?;
    }
    Ok(())
}

fn add_flat<T: LeBytes + oxyroot::Marshaler>(t: &mut WriterTree, name: &str, col: Vec<u8>) {
    let s = std::mem::size_of::<T>().max(1);
    let vals: Vec<T> = col.chunks_exact(s).map(T::get).collect();
    t.new_branch(name, vals.into_iter());
}

fn add_jagged<T: LeBytes + oxyroot::Marshaler>(t: &mut WriterTree, name: &str, col: Vec<u8>, counts: &[i64])
where
    Vec<T>: oxyroot::Marshaler,
{
    let s = std::mem::size_of::<T>().max(1);
    let mut vals = col.chunks_exact(s).map(T::get);
    let rows: Vec<Vec<T>> = counts.iter().map(|&c| vals.by_ref().take(c as usize).collect()).collect();
    t.new_branch(name, rows.into_iter());
}

fn add_counted<T: LeBytes + oxyroot::Marshaler>(t: &mut WriterTree, name: &str, counter: &str, col: Vec<u8>, counts: &[i64]) {
    let s = std::mem::size_of::<T>().max(1);
    let mut vals = col.chunks_exact(s).map(T::get);
    let rows: Vec<Vec<T>> = counts.iter().map(|&c| vals.by_ref().take(c as usize).collect()).collect();
    t.new_counted_branch(name, counter, rows.into_iter());
}

impl Sink for RootSink {
    fn write_rows(&mut self, dataset: usize, _rows: Range<u64>, vars: &[Vec<u8>]) -> Result<()> {
        let cols = self.data.entry(dataset).or_insert_with(|| vec![Vec::new(); vars.len()]);
        for (c, v) in cols.iter_mut().zip(vars) {
            c.extend_from_slice(v);
        }
        Ok(())
    }

    fn write_carried(&mut self, objects: Vec<(RootObject, Vec<u8>)>) -> Result<bool> {
        self.carried = objects;
        Ok(true)
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        let tmp = self.output.tmp_path().to_path_buf();
        let dest = self.output.dest().to_path_buf();
        guarded(&dest, "writing the file", || self.write_all(&tmp))?;
        let RootSink { output, .. } = *self;
        output.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_whole_names() {
        for (p, n, want) in [
            ("Jet_*", "Jet_Px", true),
            ("Jet_*", "NJet", false),
            ("MET_p?", "MET_px", true),
            ("MET_p?", "MET_pxx", false),
            ("*", "", true),
            ("*_E", "Muon_E", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
        ] {
            assert_eq!(glob_match(p, n), want, "{p} vs {n}");
        }
    }
}
