mod containers;
mod ienum;

pub use containers::SizedSlice;
pub use containers::Slice;
