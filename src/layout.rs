//! Table or field: how a plain 2-D float array is read, the same way in `pack`, `h5 compress`,
//! the filter and the h5py helper.
//!
//! A table (events x features, Baler's own layout) gets one variable per column, each with its
//! own bound, range, statistics and model feature; a field (an image, a grid) gets one variable
//! and one bound. Per-column bounds are never looser than one bound over the whole array (each
//! column's range lies within the array's), so when in doubt the table reading is the safe one
//! for the promise; the rule below still keeps images and grids as fields.

/// How a dataset is read, when the user says (`--layout table|field`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArrayLayout {
    Table,
    Field,
}

impl std::str::FromStr for ArrayLayout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(ArrayLayout::Table),
            "field" => Ok(ArrayLayout::Field),
            other => Err(format!("unknown layout '{other}' (use table or field)")),
        }
    }
}

/// The widest table (columns) a 2-D array is taken for by default.
pub const MAX_TABLE_COLUMNS: u64 = 1024;
/// A 2-D array is a table by default when it has at least this many rows per column.
pub const ROWS_PER_COLUMN: u64 = 8;

/// The rule, in words, for messages that print the choice.
pub fn rule() -> String {
    format!("a 2-D float array of 2 to {MAX_TABLE_COLUMNS} columns and at least {ROWS_PER_COLUMN} rows per column is a table")
}

/// The default reading of a float array of this shape.
pub fn default_layout(shape: &[u64]) -> ArrayLayout {
    match shape {
        [rows, cols] if (2..=MAX_TABLE_COLUMNS).contains(cols) && *rows >= ROWS_PER_COLUMN * cols => ArrayLayout::Table,
        _ => ArrayLayout::Field,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tall_narrow_arrays_are_tables() {
        assert_eq!(default_layout(&[9812, 141]), ArrayLayout::Table);
        assert_eq!(default_layout(&[100000, 24]), ArrayLayout::Table);
        assert_eq!(default_layout(&[180, 360]), ArrayLayout::Field, "a lat-lon grid");
        assert_eq!(default_layout(&[1000, 200]), ArrayLayout::Field, "an image");
        assert_eq!(default_layout(&[1000, 1]), ArrayLayout::Field, "one column is one variable anyway");
        assert_eq!(default_layout(&[240, 37, 49]), ArrayLayout::Field);
        assert_eq!(default_layout(&[5000]), ArrayLayout::Field);
    }
}
