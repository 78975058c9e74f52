//! `oxinet._core`: the Python extension module.
//!
//! One thin file per kernel family. Each binding extracts NumPy arrays, releases the
//! GIL, runs the kernel on oxinet's pool and turns a `KernelError` into `ValueError`.
//! Dtype, rank and contiguity policy lives in the Python layer (`oxinet.ops`).

use pyo3::prelude::*;

mod conv;
mod detection;
mod guard;
mod linalg;
mod pool;
mod recycle;
mod rnn;
mod attention;
mod nn_functional;
mod norm;
mod optim;
mod layout;
mod runtime;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    runtime::register(m)?;
    linalg::register(m)?;
    conv::register(m)?;
    pool::register(m)?;
    rnn::register(m)?;
    attention::register(m)?;
    nn_functional::register(m)?;
    norm::register(m)?;
    optim::register(m)?;
    layout::register(m)?;
    detection::register(m)?;
    recycle::register(m)?;
    Ok(())
}
