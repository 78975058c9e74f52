//! Scaled dot-product attention bindings. The Python layer flattens the batch dimensions
//! to `bh = g1 * heads`, broadcasts the mask to `(m1, m2, l, s)` and picks the dtype.

use crate::guard::run_kernel;
use ndarray::{Array2, Array3};
use numpy::{IntoPyArray, PyArray2, PyArray3, PyReadonlyArray2, PyReadonlyArray3, PyReadonlyArray4};
use oxinet_kernels::attention::{self, Grads, Mask, Options};
use pyo3::prelude::*;

macro_rules! attention_bindings {
    ($fwd:ident, $bwd:ident, $t:ty) => {
        /// (out, lse, weights or None) for q (bh, l, d), k (bh, s, d), v (bh, s, dv).
        #[pyfunction]
        #[pyo3(signature = (q, k, v, mask_bool, mask_add, causal, scale, heads, return_weights))]
        #[allow(clippy::too_many_arguments, clippy::type_complexity)]
        fn $fwd<'py>(
            py: Python<'py>,
            q: PyReadonlyArray3<'py, $t>,
            k: PyReadonlyArray3<'py, $t>,
            v: PyReadonlyArray3<'py, $t>,
            mask_bool: Option<PyReadonlyArray4<'py, bool>>,
            mask_add: Option<PyReadonlyArray4<'py, $t>>,
            causal: bool,
            scale: $t,
            heads: usize,
            return_weights: bool,
        ) -> PyResult<(Bound<'py, PyArray3<$t>>, Bound<'py, PyArray2<$t>>, Option<Bound<'py, PyArray3<$t>>>)> {
            let (q, k, v) = (q.as_array(), k.as_array(), v.as_array());
            let mb = mask_bool.as_ref().map(|m| m.as_array());
            let ma = mask_add.as_ref().map(|m| m.as_array());
            let (bh, l, _) = q.dim();
            let (s, dv) = (k.dim().1, v.dim().2);
            let (out, lse, w) = run_kernel(py, move || {
                let mask = match (mb, ma) {
                    (Some(m), _) => Mask::Bool(m),
                    (None, Some(m)) => Mask::Add(m),
                    _ => Mask::None,
                };
                let opts = Options { mask, causal, scale, heads };
                let mut out = Array3::<$t>::zeros((bh, l, dv));
                let mut lse = Array2::<$t>::zeros((bh, l));
                attention::forward(q, k, v, opts, out.view_mut(), lse.view_mut())?;
                let w = if return_weights {
                    let mut w = Array3::<$t>::zeros((bh, l, s));
                    attention::weights(q, k, opts, lse.view(), w.view_mut())?;
                    Some(w)
                } else {
                    None
                };
                Ok((out, lse, w))
            })?;
            Ok((out.into_pyarray(py), lse.into_pyarray(py), w.map(|w| w.into_pyarray(py))))
        }

        /// (dq, dk, dv) from dout and the forward's out and lse.
        #[pyfunction]
        #[pyo3(signature = (dout, q, k, v, out, lse, mask_bool, mask_add, causal, scale, heads))]
        #[allow(clippy::too_many_arguments, clippy::type_complexity)]
        fn $bwd<'py>(
            py: Python<'py>,
            dout: PyReadonlyArray3<'py, $t>,
            q: PyReadonlyArray3<'py, $t>,
            k: PyReadonlyArray3<'py, $t>,
            v: PyReadonlyArray3<'py, $t>,
            out: PyReadonlyArray3<'py, $t>,
            lse: PyReadonlyArray2<'py, $t>,
            mask_bool: Option<PyReadonlyArray4<'py, bool>>,
            mask_add: Option<PyReadonlyArray4<'py, $t>>,
            causal: bool,
            scale: $t,
            heads: usize,
        ) -> PyResult<(Bound<'py, PyArray3<$t>>, Bound<'py, PyArray3<$t>>, Bound<'py, PyArray3<$t>>)> {
            let (dout, q, k, v, out, lse) =
                (dout.as_array(), q.as_array(), k.as_array(), v.as_array(), out.as_array(), lse.as_array());
            let mb = mask_bool.as_ref().map(|m| m.as_array());
            let ma = mask_add.as_ref().map(|m| m.as_array());
            let (dq, dk, dv) = run_kernel(py, move || {
                let mask = match (mb, ma) {
                    (Some(m), _) => Mask::Bool(m),
                    (None, Some(m)) => Mask::Add(m),
                    _ => Mask::None,
                };
                let opts = Options { mask, causal, scale, heads };
                let mut dq = Array3::<$t>::zeros(q.dim());
                let mut dk = Array3::<$t>::zeros(k.dim());
                let mut dv = Array3::<$t>::zeros(v.dim());
                attention::backward(
                    dout,
                    q,
                    k,
                    v,
                    out,
                    lse,
                    opts,
                    Grads { dq: dq.view_mut(), dk: dk.view_mut(), dv: dv.view_mut() },
                )?;
                Ok((dq, dk, dv))
            })?;
            Ok((dq.into_pyarray(py), dk.into_pyarray(py), dv.into_pyarray(py)))
        }
    };
}

attention_bindings!(sdpa_forward_f32, sdpa_backward_f32, f32);
attention_bindings!(sdpa_forward_f64, sdpa_backward_f64, f64);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sdpa_forward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(sdpa_forward_f64, m)?)?;
    m.add_function(wrap_pyfunction!(sdpa_backward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(sdpa_backward_f64, m)?)?;
    Ok(())
}
