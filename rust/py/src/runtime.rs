//! Thread-pool and CPU-feature queries.

use crate::guard::run_kernel;
use oxinet_kernels::{parallel, simd};
use pyo3::prelude::*;

/// Number of threads oxinet's kernels use.
#[pyfunction]
fn get_num_threads() -> usize {
    parallel::num_threads()
}

/// Set the number of threads oxinet's kernels use (n >= 1).
#[pyfunction]
fn set_num_threads(py: Python<'_>, n: usize) -> PyResult<()> {
    run_kernel(py, || parallel::set_num_threads(n))
}

/// Name of the widest SIMD instruction set detected on this CPU.
#[pyfunction]
fn simd_level() -> &'static str {
    simd::level().name()
}

/// Whether oxinet's worker threads flush subnormal floats to zero (for tests).
#[pyfunction]
fn workers_flush_denormals(py: Python<'_>) -> bool {
    py.detach(|| parallel::pool().install(parallel::denormals_flushed))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(simd_level, m)?)?;
    m.add_function(wrap_pyfunction!(workers_flush_denormals, m)?)?;
    Ok(())
}
