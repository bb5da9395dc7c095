//! Progress reporting hook: the library counts bytes, the CLI draws the bar.

pub trait Progress: Sync {
    fn start(&self, _what: &str, _total_bytes: u64) {}
    fn advance(&self, _bytes: u64) {}
    /// A short status shown beside the bar (the training loss).
    fn message(&self, _msg: &str) {}
    fn finish(&self) {}
}

/// No progress output (library use, tests).
pub struct Silent;
impl Progress for Silent {}
