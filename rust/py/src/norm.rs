//! Bindings of the fused batch-normalisation kernels. Inputs and outputs must be
//! C-contiguous; the Python layer (`oxinet.ops.norm`) allocates the outputs and passes the
//! `(N, C, inner)` view of the input as three integers.

use crate::guard::run_kernel;
use numpy::{PyReadonlyArray1, PyReadonlyArrayDyn, PyReadwriteArray1, PyReadwriteArrayDyn};
use oxinet_kernels::norm::{self, NormAct, NormGrads, NormSaved, NormStats};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn not_contiguous(name: &str) -> PyErr {
    PyValueError::new_err(format!("batch_norm: '{name}' must be C-contiguous"))
}

fn act_from<T: Copy>(kind: &str, lo: T, hi: T) -> PyResult<NormAct<T>> {
    Ok(match kind {
        "identity" => NormAct::Identity,
        "relu" => NormAct::Relu,
        "hardtanh" => NormAct::Hardtanh(lo, hi),
        _ => {
            return Err(PyValueError::new_err(format!(
                "batch_norm: unknown activation {kind:?}"
            )))
        }
    })
}

macro_rules! slice_opt {
    ($a:expr, $name:expr) => {
        match &$a {
            Some(a) => Some(a.as_slice().map_err(|_| not_contiguous($name))?),
            None => None,
        }
    };
}

macro_rules! norm_bindings {
    ($t:ty, $fwd:ident, $bwd:ident) => {
        /// Forward: writes `y`, and the per-channel `mean`, `invstd` and biased `var` used.
        /// Batch statistics unless `running_mean`/`running_var` are given.
        #[pyfunction]
        #[pyo3(signature = (x, n, c, inner, weight, bias, running_mean, running_var, eps, act, lo, hi, y, mean, invstd, var))]
        #[allow(clippy::too_many_arguments)]
        fn $fwd<'py>(
            py: Python<'py>,
            x: PyReadonlyArrayDyn<'py, $t>,
            n: usize,
            c: usize,
            inner: usize,
            weight: Option<PyReadonlyArray1<'py, $t>>,
            bias: Option<PyReadonlyArray1<'py, $t>>,
            running_mean: Option<PyReadonlyArray1<'py, $t>>,
            running_var: Option<PyReadonlyArray1<'py, $t>>,
            eps: $t,
            act: &str,
            lo: $t,
            hi: $t,
            mut y: PyReadwriteArrayDyn<'py, $t>,
            mut mean: PyReadwriteArray1<'py, $t>,
            mut invstd: PyReadwriteArray1<'py, $t>,
            mut var: PyReadwriteArray1<'py, $t>,
        ) -> PyResult<()> {
            let act = act_from(act, lo, hi)?;
            let xs = x.as_slice().map_err(|_| not_contiguous("input"))?;
            let ws = slice_opt!(weight, "weight");
            let bs = slice_opt!(bias, "bias");
            let rm = slice_opt!(running_mean, "running_mean");
            let rv = slice_opt!(running_var, "running_var");
            let stats = match (rm, rv) {
                (Some(mean), Some(var)) => NormStats::Given { mean, var },
                (None, None) => NormStats::Batch,
                _ => return Err(PyValueError::new_err("batch_norm: give both running_mean and running_var, or neither")),
            };
            let ys = y.as_slice_mut().map_err(|_| not_contiguous("output"))?;
            let ms = mean.as_slice_mut().map_err(|_| not_contiguous("save_mean"))?;
            let is = invstd.as_slice_mut().map_err(|_| not_contiguous("save_invstd"))?;
            let vs = var.as_slice_mut().map_err(|_| not_contiguous("save_var"))?;
            run_kernel(py, move || {
                norm::batch_norm_forward(xs, (n, c, inner), ws, bs, stats, eps, act, ys,
                    NormSaved { mean: ms, invstd: is, var: vs })
            })
        }

        /// Backward: writes whichever of `dx`, `dweight`, `dbias` are given.
        #[pyfunction]
        #[pyo3(signature = (dy, x, n, c, inner, weight, bias, mean, invstd, training, act, lo, hi, dx, dweight, dbias))]
        #[allow(clippy::too_many_arguments)]
        fn $bwd<'py>(
            py: Python<'py>,
            dy: PyReadonlyArrayDyn<'py, $t>,
            x: PyReadonlyArrayDyn<'py, $t>,
            n: usize,
            c: usize,
            inner: usize,
            weight: Option<PyReadonlyArray1<'py, $t>>,
            bias: Option<PyReadonlyArray1<'py, $t>>,
            mean: PyReadonlyArray1<'py, $t>,
            invstd: PyReadonlyArray1<'py, $t>,
            training: bool,
            act: &str,
            lo: $t,
            hi: $t,
            mut dx: Option<PyReadwriteArrayDyn<'py, $t>>,
            mut dweight: Option<PyReadwriteArray1<'py, $t>>,
            mut dbias: Option<PyReadwriteArray1<'py, $t>>,
        ) -> PyResult<()> {
            let act = act_from(act, lo, hi)?;
            let gs = dy.as_slice().map_err(|_| not_contiguous("grad_output"))?;
            let xs = x.as_slice().map_err(|_| not_contiguous("input"))?;
            let ws = slice_opt!(weight, "weight");
            let bs = slice_opt!(bias, "bias");
            let ms = mean.as_slice().map_err(|_| not_contiguous("save_mean"))?;
            let is = invstd.as_slice().map_err(|_| not_contiguous("save_invstd"))?;
            let dxs = match &mut dx {
                Some(a) => Some(a.as_slice_mut().map_err(|_| not_contiguous("grad_input"))?),
                None => None,
            };
            let dws = match &mut dweight {
                Some(a) => Some(a.as_slice_mut().map_err(|_| not_contiguous("grad_weight"))?),
                None => None,
            };
            let dbs = match &mut dbias {
                Some(a) => Some(a.as_slice_mut().map_err(|_| not_contiguous("grad_bias"))?),
                None => None,
            };
            run_kernel(py, move || {
                norm::batch_norm_backward(gs, xs, (n, c, inner), ws, bs, ms, is, training, act,
                    NormGrads { dx: dxs, dweight: dws, dbias: dbs })
            })
        }
    };
}

norm_bindings!(f32, batch_norm_forward_f32, batch_norm_backward_f32);
norm_bindings!(f64, batch_norm_forward_f64, batch_norm_backward_f64);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(batch_norm_forward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(batch_norm_forward_f64, m)?)?;
    m.add_function(wrap_pyfunction!(batch_norm_backward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(batch_norm_backward_f64, m)?)?;
    Ok(())
}
