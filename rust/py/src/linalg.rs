//! GEMM bindings. The Python layer reshapes every product to a batch of 2-D matrices
//! (batch 1 for plain 2-D), allocates the output, and chooses the dtype.

use crate::guard::run_kernel;
use numpy::{PyReadonlyArray3, PyReadwriteArray3};
use oxinet_kernels::gemm;
use pyo3::prelude::*;

macro_rules! gemm_binding {
    ($name:ident, $t:ty) => {
        /// c[i] = alpha * a[i] @ b[i] + beta * c[i] over 3-D arrays (any strides).
        #[pyfunction]
        fn $name<'py>(
            py: Python<'py>,
            a: PyReadonlyArray3<'py, $t>,
            b: PyReadonlyArray3<'py, $t>,
            mut c: PyReadwriteArray3<'py, $t>,
            alpha: $t,
            beta: $t,
        ) -> PyResult<()> {
            let (a, b, c) = (a.as_array(), b.as_array(), c.as_array_mut());
            run_kernel(py, move || gemm::gemm_batched(alpha, a, b, beta, c))
        }
    };
}

gemm_binding!(gemm_f32, f32);
gemm_binding!(gemm_f64, f64);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(gemm_f32, m)?)?;
    m.add_function(wrap_pyfunction!(gemm_f64, m)?)?;
    Ok(())
}
