//! ROOT's RNTuple, the columnar successor of TTree (binary format 1.0, frozen in ROOT 6.34;
//! what uproot 5.7 writes by default): read into the same tables as a TTree's branches, and
//! written back.

pub mod decode;
pub mod read;
pub mod wire;
pub mod write;

pub use decode::Part;
pub use read::RNTuple;

/// The class of an RNTuple's anchor key.
pub const ANCHOR_CLASS: &str = "ROOT::RNTuple";
