//! The filter's parameters as HDF5 stores them: an array of `unsigned int` (cd_values) in the
//! dataset's filter pipeline. The layouts are specified in `schemas/h5-filter.md`; this is the
//! only code that reads or writes them.
//!
//! Two layout versions, both read forever: version 1 (18 words, one field per word; files
//! written before version 2, and short arrays C programs pass, e.g. `{1, 1, 0, 0, 0, 1, lo, hi}`
//! is "f32, abs bound") and version 2 (15 words: the small fields packed into one word, room for
//! the fill value). Version 2 exists because h5py 3.7 (Debian bookworm) reads at most 16 words
//! of a filter's parameters and shows the rest as the filter name's bytes. set_local and every
//! writer here write version 2.
//!
//! Every field has a default, so a writer may pass a short array and set_local fills in what
//! the dataset says.

use crate::codec::model_stage::LatentCoding;
use crate::dtype::DType;

/// The version writers use.
pub const LAYOUT_VERSION: u32 = 2;
/// The zstd level when cd_values leave it 0.
pub const DEFAULT_LEVEL: i32 = 3;
/// The widest row a table may have.
pub const MAX_FEATURES: u32 = 1 << 20;
/// cd_values of layout 2 are this many words: under the 16 h5py 3.7 reads (and the 20 of
/// h5dump's buffer, the 32 of hdf5-metno's).
pub const CD_WORDS: usize = 15;
/// cd_values of layout 1 are this many words.
pub const CD_WORDS_V1: usize = 18;
/// The longest array any version has: what a reader must make room for to see (and refuse) a
/// longer one rather than cut it.
pub const CD_WORDS_MAX: usize = CD_WORDS_V1;

/// Version 1: one field per word.
mod v1 {
    pub const DTYPE: usize = 1;
    pub const ORDER: usize = 2;
    pub const LAYOUT: usize = 3;
    pub const FEATURES: usize = 4;
    pub const BOUND: usize = 5;
    pub const VALUE: usize = 6;
    pub const LEVEL: usize = 8;
    pub const LATENT: usize = 9;
    pub const MODEL: usize = 10;
}

/// Version 2: word 1 packs the small fields (bit ranges below), then one field per word.
mod v2 {
    pub const FLAGS: usize = 1;
    pub const FEATURES: usize = 2;
    pub const VALUE: usize = 3;
    pub const FILL: usize = 5;
    pub const MODEL: usize = 7;
    /// (first bit, bit count) of each field of word 1.
    pub const DTYPE: (u32, u32) = (0, 4);
    pub const ORDER: (u32, u32) = (4, 1);
    pub const LAYOUT: (u32, u32) = (5, 2);
    pub const BOUND: (u32, u32) = (7, 2);
    pub const LATENT: (u32, u32) = (9, 5);
    /// Six-bit two's complement.
    pub const LEVEL: (u32, u32) = (14, 6);
    pub const HAS_FILL: (u32, u32) = (20, 1);
    /// log2 of the piece size in bytes (0 = the default).
    pub const PIECE: (u32, u32) = (21, 5);
    /// Bits 26..31 are reserved (0).
    pub const USED_BITS: u32 = 26;
}

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
    /// Table or field by the dataset's shape (`crate::layout::default_layout`), as `pack` and
    /// `h5 compress` choose: set_local resolves it. A writer that cannot see the shape (the h5py
    /// helper) asks for it; where set_local cannot reach HDF5 it codes a field.
    Auto,
}

impl Layout {
    fn code(self) -> u32 {
        match self {
            Layout::Field => 0,
            Layout::Table => 1,
            Layout::Wedge => 2,
            Layout::Auto => 3,
        }
    }

    /// What the codec does with a chunk of this layout: `Auto` left unresolved is a field.
    pub fn coded(self) -> Layout {
        if self == Layout::Auto {
            Layout::Field
        } else {
            self
        }
    }
}

/// Element type codes (0: set by set_local).
const DTYPE_CODES: [(u32, DType); 7] =
    [(1, DType::F32), (2, DType::F64), (3, DType::U16), (4, DType::U8), (5, DType::I16), (6, DType::U32), (7, DType::I32)];

/// The largest wedge (elements per row) the wedge layout takes.
pub const MAX_WEDGE: u32 = 1 << 26;

/// The field layout's features word: the chunk's last two dimensions as `(d1 << 16) | d2`, so
/// the codec can predict each value from its neighbours in 3-D (Lorenzo); 0 when unknown, a
/// 1-D chunk, or a dimension of 65536 or more (the chunk is then coded as one sequence).
pub fn field_grid_word(chunk: &[u64]) -> u32 {
    match chunk {
        [.., d1, d2] if *d1 < 1 << 16 && *d2 < 1 << 16 => ((*d1 as u32) << 16) | *d2 as u32,
        _ => 0,
    }
}

/// The grid a field chunk's codes lie on, from the features word (see `field_grid_word`).
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
    /// Within this fraction of the value range (over the elements that are not missing) of the
    /// chunk (of each column, in a table). A chunk's range is at most the dataset's, so the
    /// bound also holds against the dataset's.
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
    /// The value that marks an element missing (the dataset's user-set HDF5 fill value, or one
    /// the writer names): such elements are stored exactly and left out of every range, error
    /// and prediction (`crate::missing`). NaN is missing without it.
    pub fill: Option<f64>,
    /// log2 of the raw bytes of a piece: a chunk at least twice that size is cut into pieces
    /// of about it along its first dimension, coded independently and in parallel (`chunk`).
    /// 0 = `DEFAULT_PIECE_LOG2`.
    pub piece_log2: u8,
}

/// Pieces of 4 MiB: measured on real 3-D and 4-D fields (CLI chunks of that size against one
/// chunk), cutting there cost at most 1.4 % of size, where 1 MiB pieces cost 0.3-8 % (the most
/// on GloSea4's ensemble, whose walk interpolates across members).
pub const DEFAULT_PIECE_LOG2: u8 = 22;
/// Piece sizes a writer may ask for: 64 KiB to 1 GiB.
pub const PIECE_LOG2: std::ops::RangeInclusive<u8> = 16..=30;

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
            fill: None,
            piece_log2: 0,
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

fn get_bits(word: u32, (at, n): (u32, u32)) -> u32 {
    (word >> at) & ((1 << n) - 1)
}

fn put_bits(word: &mut u32, (at, n): (u32, u32), v: u32) {
    *word |= (v & ((1 << n) - 1)) << at;
}

/// The fields of either version as numbers, before they are checked; `at` names where each
/// came from, so a refusal says which word (or bits) to fix.
struct Codes {
    version: u32,
    dtype: u32,
    order: u32,
    layout: u32,
    features: u32,
    bound: u32,
    value: f64,
    level: i32,
    latent: u32,
    model: [u8; 32],
    fill: Option<f64>,
    piece: u32,
    at: Places,
}

struct Places {
    dtype: &'static str,
    order: &'static str,
    layout: &'static str,
    bound: &'static str,
    value: &'static str,
    level: &'static str,
    latent: &'static str,
}

fn model_from(words: impl Iterator<Item = u32>) -> [u8; 32] {
    let mut id = [0u8; 32];
    for (i, w) in words.take(8).enumerate() {
        id[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    id
}

impl Codes {
    fn v1(cd: &[u32]) -> Codes {
        let w = |i: usize| cd.get(i).copied().unwrap_or(0);
        Codes {
            version: 1,
            dtype: w(v1::DTYPE),
            order: w(v1::ORDER),
            layout: w(v1::LAYOUT),
            features: w(v1::FEATURES),
            bound: w(v1::BOUND),
            value: f64_from(w(v1::VALUE), w(v1::VALUE + 1)),
            level: w(v1::LEVEL) as i32,
            latent: w(v1::LATENT),
            model: model_from((v1::MODEL..v1::MODEL + 8).map(w)),
            fill: None,
            piece: 0,
            at: Places {
                dtype: "cd_values[1]",
                order: "cd_values[2]",
                layout: "cd_values[3]",
                bound: "cd_values[5]",
                value: "cd_values[6..8]",
                level: "cd_values[8]",
                latent: "cd_values[9]",
            },
        }
    }

    fn v2(cd: &[u32]) -> Result<Codes, String> {
        let w = |i: usize| cd.get(i).copied().unwrap_or(0);
        let flags = w(v2::FLAGS);
        if flags >> v2::USED_BITS != 0 {
            return Err(format!("reserved bits {}..31 of cd_values[1] are set ({flags:#010x})", v2::USED_BITS));
        }
        let level = get_bits(flags, v2::LEVEL) as i32;
        Ok(Codes {
            version: 2,
            dtype: get_bits(flags, v2::DTYPE),
            order: get_bits(flags, v2::ORDER),
            layout: get_bits(flags, v2::LAYOUT),
            features: w(v2::FEATURES),
            bound: get_bits(flags, v2::BOUND),
            value: f64_from(w(v2::VALUE), w(v2::VALUE + 1)),
            level: if level >= 32 { level - 64 } else { level },
            latent: get_bits(flags, v2::LATENT),
            model: model_from((v2::MODEL..v2::MODEL + 8).map(w)),
            fill: (get_bits(flags, v2::HAS_FILL) == 1).then(|| f64_from(w(v2::FILL), w(v2::FILL + 1))),
            piece: get_bits(flags, v2::PIECE),
            at: Places {
                dtype: "cd_values[1] bits 0..3",
                order: "cd_values[1] bit 4",
                layout: "cd_values[1] bits 5..6",
                bound: "cd_values[1] bits 7..8",
                value: "cd_values[3..5]",
                level: "cd_values[1] bits 14..19",
                latent: "cd_values[1] bits 9..13",
            },
        })
    }

    fn params(self) -> Result<FilterParams, String> {
        let at = &self.at;
        let dtype = match self.dtype {
            0 => None,
            k => Some(dtype_of_code(k).ok_or_else(|| {
                format!("element type code {k} in {} (1 f32, 2 f64; integers for wedges: 3 u16, 4 u8, 5 i16, 6 u32, 7 i32)", at.dtype)
            })?),
        };
        let big_endian = match self.order {
            0 => false,
            1 => true,
            k => return Err(format!("byte order code {k} in {} (0 = little, 1 = big)", at.order)),
        };
        let layout = match self.layout {
            0 => Layout::Field,
            1 => Layout::Table,
            2 => Layout::Wedge,
            3 if self.version >= 2 => Layout::Auto,
            k if self.version >= 2 => return Err(format!("layout code {k} in {} (0 = field, 1 = table, 2 = wedge, 3 = auto)", at.layout)),
            k => return Err(format!("layout code {k} in {} (0 = field, 1 = table, 2 = wedge)", at.layout)),
        };
        let most = match layout {
            Layout::Wedge => MAX_WEDGE,
            Layout::Table => MAX_FEATURES,
            Layout::Field | Layout::Auto => u32::MAX,
        };
        if self.features > most {
            return Err(format!("{} values per row (at most {most})", self.features));
        }
        let positive = |e: f64| {
            if e.is_finite() && e > 0.0 {
                Ok(e)
            } else {
                Err(format!("error bound {e} in {} (a finite number > 0)", at.value))
            }
        };
        let bound = match self.bound {
            0 => FilterBound::Lossless,
            1 => FilterBound::Abs(positive(self.value)?),
            2 => FilterBound::Rel(positive(self.value)?),
            3 => FilterBound::None,
            k => return Err(format!("bound mode {k} in {} (0 lossless, 1 abs, 2 rel, 3 none)", at.bound)),
        };
        let level = match self.level {
            0 => DEFAULT_LEVEL,
            l if (-7..=22).contains(&l) => l,
            l => return Err(format!("zstd level {l} in {} (-7..22, 0 = default)", at.level)),
        };
        let latent = match self.latent {
            0 => LatentCoding::F16,
            b @ 2..=16 => LatentCoding::Bits(b as u8),
            b => return Err(format!("latent coding {b} in {} (0 = f16, 2..16 bits)", at.latent)),
        };
        let model = (self.model != [0u8; 32]).then_some(self.model);
        // A 5-bit field: check() refuses what is outside PIECE_LOG2.
        let piece_log2 = self.piece as u8;
        let p = FilterParams { dtype, big_endian, layout, features: self.features, bound, level, latent, model, fill: self.fill, piece_log2 };
        p.check()?;
        Ok(p)
    }
}

impl FilterParams {
    /// The parameters in layout version 2 (`CD_WORDS` words).
    pub fn to_cd_values(&self) -> Vec<u32> {
        let mut cd = vec![0u32; CD_WORDS];
        cd[0] = LAYOUT_VERSION;
        let (mode, value) = match self.bound {
            FilterBound::Lossless => (0, 0.0),
            FilterBound::Abs(e) => (1, e),
            FilterBound::Rel(e) => (2, e),
            FilterBound::None => (3, 0.0),
        };
        let mut flags = 0;
        put_bits(&mut flags, v2::DTYPE, self.dtype.and_then(dtype_code).unwrap_or(0));
        put_bits(&mut flags, v2::ORDER, self.big_endian as u32);
        put_bits(&mut flags, v2::LAYOUT, self.layout.code());
        put_bits(&mut flags, v2::BOUND, mode);
        put_bits(
            &mut flags,
            v2::LATENT,
            match self.latent {
                LatentCoding::F16 => 0,
                LatentCoding::Bits(b) => b as u32,
            },
        );
        put_bits(&mut flags, v2::LEVEL, self.level as u32);
        put_bits(&mut flags, v2::HAS_FILL, self.fill.is_some() as u32);
        put_bits(&mut flags, v2::PIECE, self.piece_log2 as u32);
        cd[v2::FLAGS] = flags;
        cd[v2::FEATURES] = self.features;
        cd[v2::VALUE..v2::VALUE + 2].copy_from_slice(&f64_words(value));
        cd[v2::FILL..v2::FILL + 2].copy_from_slice(&f64_words(self.fill.unwrap_or(0.0)));
        if let Some(id) = &self.model {
            for (i, w) in id.chunks_exact(4).enumerate() {
                cd[v2::MODEL + i] = u32::from_le_bytes(w.try_into().unwrap());
            }
        }
        cd
    }

    /// Reads cd_values of either layout version, refusing what this version cannot honour (an
    /// unknown layout version, a dtype it does not code, a bound that is not a finite positive
    /// number).
    pub fn from_cd_values(cd: &[u32]) -> Result<FilterParams, String> {
        let (codes, words) = match cd.first().copied().unwrap_or(0) {
            1 => (Codes::v1(cd), CD_WORDS_V1),
            2 => (Codes::v2(cd)?, CD_WORDS),
            version => {
                return Err(format!(
                    "filter parameters of layout version {version}; this balerfile reads versions 1 and 2 (cd_values[0])"
                ))
            }
        };
        if cd.len() > words {
            return Err(format!("{} filter parameters; layout {} has {words}", cd.len(), codes.version));
        }
        codes.params()
    }

    /// The raw bytes of a piece (`piece_log2`).
    pub fn piece_bytes(&self) -> usize {
        1 << if self.piece_log2 == 0 { DEFAULT_PIECE_LOG2 } else { self.piece_log2 }
    }

    /// What must hold between the fields whoever set them.
    pub fn check(&self) -> Result<(), String> {
        if self.piece_log2 != 0 && !PIECE_LOG2.contains(&self.piece_log2) {
            return Err(format!(
                "piece size 2^{} bytes (cd_values[1] bits 21..25: 0 = default, {}..{} = 64 KiB to 1 GiB)",
                self.piece_log2,
                PIECE_LOG2.start(),
                PIECE_LOG2.end()
            ));
        }
        if self.bound == FilterBound::None && self.model.is_none() {
            return Err("bound 'none' keeps only the model's output, and no model is named".into());
        }
        if self.model.is_some() && matches!(self.layout, Layout::Field | Layout::Auto) {
            return Err("a model codes tables (rows x features) or wedges: set the table or wedge layout".into());
        }
        if self.dtype.is_some_and(|d| !d.is_float()) && self.layout != Layout::Wedge {
            return Err("integer element types go through the filter only as wedges (the wedge layout, with a bcae2d model)".into());
        }
        Ok(())
    }

    /// The missing-value rule the encoder codes with (None: only NaN is missing).
    pub fn missing_rule(&self, dtype: DType) -> Result<Option<crate::missing::MissingRule>, String> {
        self.fill.map(|f| crate::missing::MissingRule::new(dtype, &[f], None, None)).transpose()
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
        match self.layout.coded() {
            Layout::Field | Layout::Auto => 1,
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
            Layout::Auto => "field (layout auto, not resolved by set_local)".to_string(),
            Layout::Table => format!("table of {} features", self.features),
            Layout::Wedge => format!("wedges of {} values", self.features),
        };
        let fill = self.fill.map(|f| format!(", fill value {f:e} kept exactly")).unwrap_or_default();
        let model = self.model_id().map(|m| format!(", model {}", &m[..12])).unwrap_or_default();
        let piece = if self.piece_log2 == 0 { String::new() } else { format!(", pieces of {} KiB", self.piece_bytes() >> 10) };
        format!("{layout}, {bound}{fill}, zstd {}{model}{piece}", self.level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FilterParams {
        let mut p = FilterParams {
            dtype: Some(DType::F64),
            big_endian: true,
            layout: Layout::Table,
            features: 3,
            bound: FilterBound::Abs(0.25),
            level: 9,
            latent: LatentCoding::Bits(8),
            model: None,
            fill: Some(-1e10),
            piece_log2: 20,
        };
        p.set_model_id(&"ab".repeat(32)).unwrap();
        p
    }

    #[test]
    fn cd_values_round_trip_in_under_16_words() {
        let p = sample();
        let cd = p.to_cd_values();
        assert_eq!(cd.len(), CD_WORDS);
        assert!(CD_WORDS <= 16, "h5py 3.7 reads 16 words");
        assert_eq!(cd[0], 2);
        assert_eq!(FilterParams::from_cd_values(&cd).unwrap(), p);
        for (level, layout, fill, latent) in [
            (-7, Layout::Auto, None, LatentCoding::F16),
            (22, Layout::Field, Some(f64::from(1e20f32)), LatentCoding::Bits(16)),
            (-1, Layout::Wedge, Some(f64::NEG_INFINITY), LatentCoding::Bits(2)),
        ] {
            let q = FilterParams { level, layout, fill, latent, model: None, dtype: Some(DType::F32), ..p.clone() };
            assert_eq!(FilterParams::from_cd_values(&q.to_cd_values()).unwrap(), q, "{q:?}");
        }
    }

    #[test]
    fn a_piece_size_out_of_range_is_refused_whoever_set_it() {
        for k in [1u8, 15, 31, 64, 200] {
            let p = FilterParams { piece_log2: k, ..Default::default() };
            assert!(p.check().unwrap_err().contains("piece size"), "2^{k}");
        }
        let p = FilterParams { piece_log2: 16, ..Default::default() };
        assert_eq!(p.piece_bytes(), 65536);
        assert_eq!(FilterParams::default().piece_bytes(), 4 << 20);
    }

    #[test]
    fn version_1_arrays_are_read_as_ever() {
        // An 18-word array as set_local wrote them before version 2: f64, big endian, table of 3,
        // abs 0.25, zstd 9, 8-bit latent, model ab...ab.
        let [lo, hi] = f64_words(0.25);
        let mut cd = vec![1, 2, 1, 1, 3, 1, lo, hi, 9, 8];
        cd.extend([u32::from_le_bytes([0xab; 4]); 8]);
        assert_eq!(cd.len(), CD_WORDS_V1);
        assert_eq!(FilterParams::from_cd_values(&cd).unwrap(), FilterParams { fill: None, piece_log2: 0, ..sample() });
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
        assert_eq!(FilterParams::from_cd_values(&[2]).unwrap(), FilterParams::default());
        // Version 2, f32 with a rel bound and fill value -1e10, the rest by default.
        let [lo, hi] = f64_words(1e-3);
        let [flo, fhi] = f64_words(-1e10);
        let flags = 1 | 2 << 7 | 1 << 20;
        let p = FilterParams::from_cd_values(&[2, flags, 0, lo, hi, flo, fhi]).unwrap();
        assert_eq!((p.dtype, p.bound, p.fill, p.layout), (Some(DType::F32), FilterBound::Rel(1e-3), Some(-1e10), Layout::Field));
    }

    #[test]
    fn bad_values_are_refused_with_the_word_they_are_in() {
        let [lo, hi] = f64_words(-1.0);
        for (cd, want) in [
            (vec![], "layout version 0"),
            (vec![3], "layout version 3"),
            (vec![1, 9], "cd_values[1]"),
            (vec![1, 7], "only as wedges"),
            (vec![1, 1, 0, 3], "cd_values[3]"),
            (vec![1, 1, 0, 0, 0, 2, lo, hi], "error bound -1"),
            (vec![1, 1, 0, 0, 0, 9], "cd_values[5]"),
            (vec![1, 1, 0, 0, 0, 3], "no model"),
            (vec![1, 1, 0, 0, 0, 0, 0, 0, 0, 17], "cd_values[9]"),
            (vec![1; 19], "19 filter parameters"),
            (vec![2, 9], "cd_values[1] bits 0..3"),
            (vec![2, 1 | 2 << 7, 0, lo, hi], "cd_values[3..5]"),
            (vec![2, 3 << 7], "no model"),
            (vec![2, 17 << 9], "bits 9..13"),
            (vec![2, 25 << 14], "zstd level 25"),
            (vec![2, 1 << 26], "reserved bits"),
            (vec![2, 3 << 21], "piece size"),
            (vec![2; 16], "16 filter parameters; layout 2 has 15"),
        ] {
            let e = FilterParams::from_cd_values(&cd).unwrap_err();
            assert!(e.contains(want), "{cd:?}: {e}");
        }
    }
}
