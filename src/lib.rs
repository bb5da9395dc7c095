//! balerfile: error-bounded compression of scientific data into self-describing `.baler`
//! archives, built so an autoencoder model stage plugs into the codec.
//!
//! Data flows one way: a [`io::Source`] (HDF5, .npy) yields chunks, the [`codec`] encodes them,
//! the [`container`] stores them; `unpack` runs it backwards into an [`io::Sink`].

pub mod atomic;
pub mod bound;
pub mod codec;
pub mod container;
pub mod dtype;
pub mod error;
#[cfg(feature = "report")]
pub mod eval;
#[doc(hidden)] pub mod fuzzing;
pub mod h5filter;
#[cfg(all(feature = "hdf5", feature = "runtime"))]
pub mod h5tools;
pub mod header;
pub mod inspect;
pub mod io;
pub mod layout;
pub mod loaded_objects;
pub mod memory;
pub mod missing;
pub mod model;
#[cfg(feature = "train")]
pub mod onnx;
pub mod ordered;
pub mod pack;
pub mod parallel;
pub mod progress;
pub mod pyenv;
#[cfg(feature = "runtime")]
pub mod runtime;
#[cfg(feature = "train")]
pub mod train;
pub mod unpack;
pub mod wire;

pub use error::{Error, Result};
