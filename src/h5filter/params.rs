//! The filter's parameters as HDF5 stores them: an array of `unsigned int` (cd_values) in the
//! dataset's filter pipeline. The layout is specified in `schemas/h5-filter.md`; this is the only
//! code that reads or writes it.
//!
//! Every word has a default, so a C program may pass a short array (`{1, 1, 0, 0, 0, 1, lo, hi}`
//! is "f32, abs bound") and set_local fills in what the dataset says.

use crate::codec::model_stage::LatentCoding;
use crate::dtype::DType;

pub const LAYOUT_VERSION: u32 = 1;
/// The zstd level when cd_values leave it 0.
pub const DEFAULT_LEVEL: i32 = 3;
/// The widest row a table may have.
pub const MAX_FEATURES: u32 = 1 << 20;
/// cd_values of layout 1 are this many words. Tools read a filter's parameters into small
/// fixed buffers (h5dump 20 words, hdf5-metno 32), so the layout stays under 20.
pub const CD_WORDS: usize = 18;

const W_VERSION: usize = 0;
const W_DTYPE: usize = 1;
const W_ORDER: usize = 2;
const W_LAYOUT: usize = 3;
const W_FEATURES: usize = 4;
const W_BOUND: usize = 5;
const W_VALUE: usize = 6;
const W_LEVEL: usize = 8;
const W_LATENT: usize = 9;
const W_MODEL: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// An N-D array coded as one sequence of values with one tolerance.
    Field,
    /// Rows x features: each column coded on its own (its own tolerance), the dense model over
    /// whole rows. A chunk must hold whole rows.
    Table,
    /// Wedges: each row (everything after the first dimension, e.g. 16 x 192 x 249 ADC counts)
    /// is one input of a BCAE-2D model. A chunk must hold whole wedges.
    Wedge,
}

/// Element type codes of cd_values[1] (0: set by set_local).
const DTYPE_CODES: [(u32, DType); 7] =
    [(1, DType::F32), (2, DType::F64), (3, DType::U16), (4, DType::U8), (5, DType::I16), (6, DType::U32), (7, DType::I32)];

/// The largest wedge (elements per row) the wedge layout takes.
pub const MAX_WEDGE: u32 = 1 << 26;

/// The field layout's cd_values[4]: the chunk's last two dimensions as `(d1 << 16) | d2`, so
/// the codec can predict each value from its neighbours in 3-D (Lorenzo); 0 when unknown, a
/// 1-D chunk, or a dimension of 65536 or more (the chunk is then coded as one sequence).
pub fn field_grid_word(chunk: &[u64]) -> u32 {
    match chunk {
        [.., d1, d2] if *d1 < 1 << 16 && *d2 < 1 << 16 => ((*d1 as u32) << 16) | *d2 as u32,
        _ => 0,
    }
}

/// The grid a field chunk's codes lie on, from cd_values[4] (see `field_grid_word`).
pub fn field_grid(word: u32) -> Option<[usize; 2]> {
    let (d1, d2) = ((word >> 16) as usize, (word & 0xffff) as usize);
    (d1 > 0 && d2 > 0).then_some([d1, d2])
}

pub fn dtype_code(d: DType) -> Option<u32> {
    DTYPE_CODES.iter().find(|(_, t)| *t == d).map(|(c, _)| *c)
}

pub fn dtype_of_code(c: u32) -> Option<DType> {
    DTYPE_CODES.iter().find(|(k, _)| *k == c).map(|(_, t)| *t)
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FilterBound {
    Lossless,
    /// Every element within this absolute error.
    Abs(f64),
    /// Within this fraction of the value range of the chunk (of each column, in a table). A
    /// chunk's range is at most the dataset's, so the bound also holds against the dataset's.
    Rel(f64),
    /// The model's output as is (no residual, no bound).
    None,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FilterParams {
    /// None until set_local (or the user) says.
    pub dtype: Option<DType>,
    pub big_endian: bool,
    pub layout: Layout,
    /// Elements per row of a table; 0 until set_local fills it in.
    pub features: u32,
    pub bound: FilterBound,
    pub level: i32,
    pub latent: LatentCoding,
    /// The model bundle's id (SHA-256 of its manifest).
    pub model: Option<[u8; 32]>,
}

impl Default for FilterParams {
    fn default() -> Self {
        FilterParams {
            dtype: None,
            big_endian: false,
            layout: Layout::Field,
            features: 0,
            bound: FilterBound::Lossless,
            level: DEFAULT_LEVEL,
            latent: LatentCoding::F16,
            model: None,
        }
    }
}

fn f64_words(v: f64) -> [u32; 2] {
    let b = v.to_bits();
    [b as u32, (b >> 32) as u32]
}

fn f64_from(lo: u32, hi: u32) -> f64 {
    f64::from_bits(lo as u64 | (hi as u64) << 32)
}

impl FilterParams {
    pub fn to_cd_values(&self) -> Vec<u32> {
        let mut cd = vec![0u32; CD_WORDS];
        cd[W_VERSION] = LAYOUT_VERSION;
        cd[W_DTYPE] = self.dtype.and_then(dtype_code).unwrap_or(0);
        cd[W_ORDER] = self.big_endian as u32;
        cd[W_LAYOUT] = match self.layout {
            Layout::Field => 0,
            Layout::Table => 1,
            Layout::Wedge => 2,
        };
        cd[W_FEATURES] = self.features;
        let (mode, value) = match self.bound {
            FilterBound::Lossless => (0, 0.0),
            FilterBound::Abs(e) => (1, e),
            FilterBound::Rel(e) => (2, e),
            FilterBound::None => (3, 0.0),
        };
        cd[W_BOUND] = mode;
        cd[W_VALUE..W_VALUE + 2].copy_from_slice(&f64_words(value));
        cd[W_LEVEL] = self.level as u32;
        cd[W_LATENT] = match self.latent {
            LatentCoding::F16 => 0,
            LatentCoding::Bits(b) => b as u32,
        };
        if let Some(id) = &self.model {
            for (i, w) in id.chunks_exact(4).enumerate() {
                cd[W_MODEL + i] = u32::from_le_bytes(w.try_into().unwrap());
            }
        }
        cd
    }

    /// Reads cd_values, refusing what this version cannot honour (an unknown layout version, a
    /// dtype it does not code, a bound that is not a finite positive number).
    pub fn from_cd_values(cd: &[u32]) -> Result<FilterParams, String> {
        let w = |i: usize| cd.get(i).copied().unwrap_or(0);
        if cd.len() > CD_WORDS {
            return Err(format!("{} filter parameters; layout {LAYOUT_VERSION} has {CD_WORDS}", cd.len()));
        }
        let version = w(W_VERSION);
        if version != LAYOUT_VERSION {
            return Err(format!(
                "filter parameters of layout version {version}; this balerfile reads version {LAYOUT_VERSION} (cd_values[0])"
            ));
        }
        let dtype = match w(W_DTYPE) {
            0 => None,
            k => Some(dtype_of_code(k).ok_or_else(|| {
                format!("element type code {k} in cd_values[1] (1 f32, 2 f64; integers for wedges: 3 u16, 4 u8, 5 i16, 6 u32, 7 i32)")
            })?),
        };
        let big_endian = match w(W_ORDER) {
            0 => false,
            1 => true,
            k => return Err(format!("byte order code {k} in cd_values[2] (0 = little, 1 = big)")),
        };
        let layout = match w(W_LAYOUT) {
            0 => Layout::Field,
            1 => Layout::Table,
            2 => Layout::Wedge,
            k => return Err(format!("layout code {k} in cd_values[3] (0 = field, 1 = table, 2 = wedge)")),
        };
        let features = w(W_FEATURES);
        let most = match layout {
            Layout::Wedge => MAX_WEDGE,
            Layout::Table => MAX_FEATURES,
            Layout::Field => u32::MAX,
        };
        if features > most {
            return Err(format!("{features} values per row (at most {most})"));
        }
        let value = f64_from(w(W_VALUE), w(W_VALUE + 1));
        let positive = |e: f64| {
            if e.is_finite() && e > 0.0 {
                Ok(e)
            } else {
                Err(format!("error bound {e} in cd_values[6..8] (a finite number > 0)"))
            }
        };
        let bound = match w(W_BOUND) {
            0 => FilterBound::Lossless,
            1 => FilterBound::Abs(positive(value)?),
            2 => FilterBound::Rel(positive(value)?),
            3 => FilterBound::None,
            k => return Err(format!("bound mode {k} in cd_values[5] (0 lossless, 1 abs, 2 rel, 3 none)")),
        };
        let level = match w(W_LEVEL) as i32 {
            0 => DEFAULT_LEVEL,
            l if (-7..=22).contains(&l) => l,
            l => return Err(format!("zstd level {l} in cd_values[8] (-7..22, 0 = default)")),
        };
        let latent = match w(W_LATENT) {
            0 => LatentCoding::F16,
            b @ 2..=16 => LatentCoding::Bits(b as u8),
            b => return Err(format!("latent coding {b} in cd_values[9] (0 = f16, 2..16 bits)")),
        };
        let mut id = [0u8; 32];
        for i in 0..8 {
            id[i * 4..i * 4 + 4].copy_from_slice(&w(W_MODEL + i).to_le_bytes());
        }
        let model = (id != [0u8; 32]).then_some(id);
        let p = FilterParams { dtype, big_endian, layout, features, bound, level, latent, model };
        p.check()?;
        Ok(p)
    }

    /// What must hold between the fields whoever set them.
    pub fn check(&self) -> Result<(), String> {
        if self.bound == FilterBound::None && self.model.is_none() {
            return Err("bound 'none' keeps only the model's output, and no model is named".into());
        }
        if self.model.is_some() && self.layout == Layout::Field {
            return Err("a model codes tables (rows x features) or wedges: set the table or wedge layout".into());
        }
        if self.dtype.is_some_and(|d| !d.is_float()) && self.layout != Layout::Wedge {
            return Err("integer element types (cd_values[1] = 3..7) go through the filter only as wedges (cd_values[3] = 2, with a bcae2d model)".into());
        }
        Ok(())
    }

    pub fn model_id(&self) -> Option<String> {
        self.model.map(|id| id.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Parses a 64-hex-digit model id into the bytes cd_values carry.
    pub fn set_model_id(&mut self, id: &str) -> Result<(), String> {
        let bad = || format!("model id '{id}' is not 64 hexadecimal digits");
        if id.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&id[i * 2..i * 2 + 2], 16).map_err(|_| bad())?;
        }
        self.model = Some(out);
        Ok(())
    }

    /// Elements per row the chunk is cut into (1 for a field).
    pub fn row_elems(&self) -> usize {
        match self.layout {
            Layout::Field => 1,
            Layout::Table | Layout::Wedge => self.features as usize,
        }
    }

    /// One line for people: what the filter does to this dataset.
    pub fn describe(&self) -> String {
        let bound = match self.bound {
            FilterBound::Lossless => "lossless".to_string(),
            FilterBound::Abs(e) => format!("abs={e:e}"),
            FilterBound::Rel(e) if self.layout == Layout::Table => format!("rel={e:e} of each column's range in each chunk"),
            FilterBound::Rel(e) => format!("rel={e:e} of each chunk's range"),
            FilterBound::None => "none (model output)".into(),
        };
        let layout = match self.layout {
            Layout::Field => "field".to_string(),
            Layout::Table => format!("table of {} features", self.features),
            Layout::Wedge => format!("wedges of {} values", self.features),
        };
        let model = self.model_id().map(|m| format!(", model {}", &m[..12])).unwrap_or_default();
        format!("{layout}, {bound}, zstd {}{model}", self.level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cd_values_round_trip() {
        let mut p = FilterParams {
            dtype: Some(DType::F64),
            big_endian: true,
            layout: Layout::Table,
            features: 3,
            bound: FilterBound::Abs(0.25),
            level: 9,
            latent: LatentCoding::Bits(8),
            model: None,
        };
        p.set_model_id(&"ab".repeat(32)).unwrap();
        let cd = p.to_cd_values();
        assert_eq!(cd.len(), CD_WORDS);
        assert_eq!(FilterParams::from_cd_values(&cd).unwrap(), p);
    }

    #[test]
    fn short_arrays_take_defaults() {
        let [lo, hi] = f64_words(0.5);
        let p = FilterParams::from_cd_values(&[1, 1, 0, 0, 0, 1, lo, hi]).unwrap();
        assert_eq!(p.dtype, Some(DType::F32));
        assert_eq!(p.bound, FilterBound::Abs(0.5));
        assert_eq!(p.level, DEFAULT_LEVEL);
        assert_eq!(p.model, None);
        assert_eq!(FilterParams::from_cd_values(&[1]).unwrap(), FilterParams::default());
    }

    #[test]
    fn bad_values_are_refused_with_the_word_they_are_in() {
        let [lo, hi] = f64_words(-1.0);
        for (cd, want) in [
            (vec![], "layout version 0"),
            (vec![2], "layout version 2"),
            (vec![1, 9], "cd_values[1]"),
            (vec![1, 7], "only as wedges"),
            (vec![1, 1, 0, 3], "cd_values[3]"),
            (vec![1, 1, 0, 0, 0, 2, lo, hi], "error bound -1"),
            (vec![1, 1, 0, 0, 0, 9], "cd_values[5]"),
            (vec![1, 1, 0, 0, 0, 3], "no model"),
            (vec![1, 1, 0, 0, 0, 0, 0, 0, 0, 17], "cd_values[9]"),
            (vec![1; 19], "19 filter parameters"),
        ] {
            let e = FilterParams::from_cd_values(&cd).unwrap_err();
            assert!(e.contains(want), "{cd:?}: {e}");
        }
    }
}
