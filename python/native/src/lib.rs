//! `balerfile._native`: the Rust library called in process from Python. Arrays cross as their
//! `.npy` image (numpy writes and reads it, byte order and structured dtypes included), archives
//! as bytes; the GIL is released while coding, so threads of one process code in parallel.
//! The Python package (`python/balerfile`) wraps these in `compress`/`decompress` and the codecs.

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use balerfile::bound::ErrorSpec;
use balerfile::io::table::LayoutSpec;
use balerfile::memory::{self, CompressOptions};
use balerfile::unpack::UnpackOptions;

/// The module's own allocations from mimalloc, as the filter plugin's (filter-plugin/src/lib.rs
/// says why); arrays and archives cross to Python as copies in Python's memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

create_exception!(_native, BalerfileError, PyValueError, "Bad input or a damaged stream: the message names what is wrong.");

fn fail(e: balerfile::error::Error) -> PyErr {
    BalerfileError::new_err(e.to_string())
}

fn parse<T: std::str::FromStr>(what: &str, specs: &[String]) -> PyResult<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    specs.iter().map(|s| s.parse::<T>().map_err(|e| BalerfileError::new_err(format!("{what} {s:?}: {e}")))).collect()
}

/// Packs the array whose `.npy` image is `npy` into a `.baler` stream. Returns the stream and
/// how each dataset was read (table or field).
#[pyfunction]
#[pyo3(signature = (npy, errors, layouts=Vec::new(), level=None, threads=0, chunk_bytes=None, model=None, embed_model=false, fill_values=Vec::new()))]
fn compress<'py>(
    py: Python<'py>,
    npy: &[u8],
    errors: Vec<String>,
    layouts: Vec<String>,
    level: Option<i32>,
    threads: usize,
    chunk_bytes: Option<u64>,
    model: Option<String>,
    embed_model: bool,
    fill_values: Vec<String>,
) -> PyResult<(Bound<'py, PyBytes>, Vec<String>)> {
    let mut opts = CompressOptions {
        errors: parse::<ErrorSpec>("error", &errors)?,
        layouts: parse::<LayoutSpec>("layout", &layouts)?,
        fill_values: parse::<balerfile::io::view::FillSpec>("fill_value", &fill_values)?,
        threads,
        model,
        embed_model,
        ..Default::default()
    };
    if let Some(l) = level {
        opts.level = l;
    }
    if let Some(c) = chunk_bytes {
        opts.chunk_bytes = c.max(1);
    }
    let out = py.detach(|| memory::compress(npy.to_vec(), &opts)).map_err(fail)?;
    Ok((PyBytes::new(py, &out.bytes), out.choices))
}

/// The `.npy` image of the array a `.baler` stream holds (`dataset`: which one, when it holds
/// several).
#[pyfunction]
#[pyo3(signature = (data, threads=0, dataset=None))]
fn decompress<'py>(py: Python<'py>, data: &[u8], threads: usize, dataset: Option<String>) -> PyResult<Bound<'py, PyBytes>> {
    let opts = UnpackOptions { threads, datasets: dataset.into_iter().collect(), ..Default::default() };
    let npy = py.detach(|| memory::decompress(data.to_vec(), &opts)).map_err(fail)?;
    Ok(PyBytes::new(py, &npy))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(compress, m)?)?;
    m.add_function(wrap_pyfunction!(decompress, m)?)?;
    m.add("BalerfileError", m.py().get_type::<BalerfileError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
