//! Scaled dot-product attention bindings. The Python layer flattens the batch dimensions
//! to `bh = g1 * heads`, broadcasts the mask to `(m1, m2, l, s)` and picks the dtype.

use crate::guard::run_kernel;
use numpy::{PyReadonlyArray2, PyReadonlyArray3, PyReadonlyArray4, PyReadwriteArray2, PyReadwriteArray3};
use oxinet_kernels::attention::{self, Grads, Mask, Options};
use pyo3::prelude::*;

macro_rules! attention_bindings {
    ($fwd:ident, $bwd:ident, $t:ty) => {
        /// Fills out (bh, l, dv), lse (bh, l) and, when given, weights (bh, l, s).
        #[pyfunction]
        #[pyo3(signature = (q, k, v, mask_bool, mask_add, causal, scale, heads, out, lse, weights))]
        #[allow(clippy::too_many_arguments)]
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
            mut out: PyReadwriteArray3<'py, $t>,
            mut lse: PyReadwriteArray2<'py, $t>,
            mut weights: Option<PyReadwriteArray3<'py, $t>>,
        ) -> PyResult<()> {
            let (q, k, v) = (q.as_array(), k.as_array(), v.as_array());
            let mb = mask_bool.as_ref().map(|m| m.as_array());
            let ma = mask_add.as_ref().map(|m| m.as_array());
            let (mut o, mut l) = (out.as_array_mut(), lse.as_array_mut());
            let w = weights.as_mut().map(|w| w.as_array_mut());
            run_kernel(py, move || {
                let mask = Mask::from_parts(mb, ma);
                let opts = Options { mask, causal, scale, heads };
                attention::forward(q, k, v, opts, o.view_mut(), l.view_mut())?;
                if let Some(w) = w {
                    attention::weights(q, k, opts, l.view(), w)?;
                }
                Ok(())
            })
        }

        /// Fills (dq, dk, dv) from dout and the forward's out and lse.
        #[pyfunction]
        #[pyo3(signature = (dout, q, k, v, out, lse, mask_bool, mask_add, causal, scale, heads, dq, dk, dv))]
        #[allow(clippy::too_many_arguments)]
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
            mut dq: PyReadwriteArray3<'py, $t>,
            mut dk: PyReadwriteArray3<'py, $t>,
            mut dv: PyReadwriteArray3<'py, $t>,
        ) -> PyResult<()> {
            let (dout, q, k, v, out, lse) =
                (dout.as_array(), q.as_array(), k.as_array(), v.as_array(), out.as_array(), lse.as_array());
            let mb = mask_bool.as_ref().map(|m| m.as_array());
            let ma = mask_add.as_ref().map(|m| m.as_array());
            let grads = Grads { dq: dq.as_array_mut(), dk: dk.as_array_mut(), dv: dv.as_array_mut() };
            run_kernel(py, move || {
                let mask = Mask::from_parts(mb, ma);
                let opts = Options { mask, causal, scale, heads };
                attention::backward(dout, q, k, v, out, lse, opts, grads)
            })
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
