//! Bindings of the fused optimizer updates (`oxinet.optim`). Arrays must be C-contiguous
//! and are updated in place; the Python layer falls back to NumPy for anything else.

use crate::guard::run_kernel;
use numpy::{PyReadonlyArrayDyn, PyReadwriteArrayDyn};
use oxinet_kernels::optim::{self, Sgd};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn not_contiguous(name: &str) -> PyErr {
    PyValueError::new_err(format!("sgd_step: '{name}' must be C-contiguous"))
}

macro_rules! optim_bindings {
    ($t:ty, $sgd:ident) => {
        /// One SGD step in place on `param` (and `momentum_buffer` when momentum != 0;
        /// `first`: the buffer is uninitialised and receives the first gradient).
        /// `keep` is `1 - dampening`.
        #[pyfunction]
        #[pyo3(signature = (param, grad, momentum_buffer, first, lr, momentum, keep, dampened, weight_decay, nesterov, maximize))]
        #[allow(clippy::too_many_arguments)]
        fn $sgd<'py>(
            py: Python<'py>,
            mut param: PyReadwriteArrayDyn<'py, $t>,
            grad: PyReadonlyArrayDyn<'py, $t>,
            momentum_buffer: Option<PyReadwriteArrayDyn<'py, $t>>,
            first: bool,
            lr: f64,
            momentum: f64,
            keep: f64,
            dampened: bool,
            weight_decay: f64,
            nesterov: bool,
            maximize: bool,
        ) -> PyResult<()> {
            let h = Sgd {
                lr: lr as $t,
                momentum: momentum as $t,
                keep: keep as $t,
                dampened,
                weight_decay: weight_decay as $t,
                nesterov,
                maximize,
            };
            let mut momentum_buffer = momentum_buffer;
            let ps = param.as_slice_mut().map_err(|_| not_contiguous("param"))?;
            let gs = grad.as_slice().map_err(|_| not_contiguous("grad"))?;
            let bs = match momentum_buffer.as_mut() {
                Some(b) => Some(b.as_slice_mut().map_err(|_| not_contiguous("momentum_buffer"))?),
                None => None,
            };
            run_kernel(py, move || optim::sgd_step(ps, gs, bs, first, h))
        }
    };
}

optim_bindings!(f32, sgd_step_f32);
optim_bindings!(f64, sgd_step_f64);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sgd_step_f32, m)?)?;
    m.add_function(wrap_pyfunction!(sgd_step_f64, m)?)?;
    Ok(())
}
