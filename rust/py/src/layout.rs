//! Bindings of the layout kernels (`oxinet.nn` batched 1x1 convolutions). Arrays must be
//! C-contiguous; `dst` is written in place.

use crate::guard::run_kernel;
use numpy::{PyReadonlyArrayDyn, PyReadwriteArrayDyn};
use oxinet_kernels::layout;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn not_contiguous(name: &str) -> PyErr {
    PyValueError::new_err(format!("swap_leading_axes: '{name}' must be C-contiguous"))
}

macro_rules! layout_bindings {
    ($t:ty, $swap:ident) => {
        /// `dst (b, a, k)[j, i, :] = src (a, b, k)[i, j, :]`.
        #[pyfunction]
        fn $swap<'py>(
            py: Python<'py>,
            src: PyReadonlyArrayDyn<'py, $t>,
            a: usize,
            b: usize,
            k: usize,
            mut dst: PyReadwriteArrayDyn<'py, $t>,
        ) -> PyResult<()> {
            let s = src.as_slice().map_err(|_| not_contiguous("src"))?;
            let d = dst.as_slice_mut().map_err(|_| not_contiguous("dst"))?;
            run_kernel(py, move || layout::swap_leading_axes(s, (a, b, k), d))
        }
    };
}

layout_bindings!(f32, swap_leading_axes_f32);
layout_bindings!(f64, swap_leading_axes_f64);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(swap_leading_axes_f32, m)?)?;
    m.add_function(wrap_pyfunction!(swap_leading_axes_f64, m)?)?;
    Ok(())
}
