//! Bindings of softmax / log-softmax, cross-entropy, activations, binary cross-entropy
//! with logits and embeddings. Inputs and outputs must be C-contiguous; the Python layer
//! allocates the outputs with NumPy (whose large allocations use huge pages: a fresh
//! Rust `Vec` per call would pay a page fault per 4 KiB).

use crate::guard::run_kernel;
use numpy::{
    PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArrayDyn, PyReadwriteArray1, PyReadwriteArray2, PyReadwriteArrayDyn,
};
use oxinet_kernels::activation::{self, Act};
use oxinet_kernels::softmax::{self, CrossEntropy, Target};
use oxinet_kernels::embedding;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn act_from<T: Copy>(kind: &str, p1: T, p2: T) -> PyResult<Act<T>> {
    Ok(match kind {
        "sigmoid" => Act::Sigmoid,
        "tanh" => Act::Tanh,
        "relu" => Act::Relu,
        "leaky_relu" => Act::LeakyRelu(p1),
        "elu" => Act::Elu(p1),
        "selu" => Act::Selu,
        "gelu" => Act::Gelu,
        "gelu_tanh" => Act::GeluTanh,
        "silu" => Act::Silu,
        "softplus" => Act::Softplus(p1, p2),
        _ => return Err(PyValueError::new_err(format!("unknown activation {kind:?}"))),
    })
}

fn not_contiguous(name: &str) -> PyErr {
    PyValueError::new_err(format!("'{name}' must be C-contiguous"))
}

macro_rules! functional_bindings {
    ($t:ty, $softmax:ident, $softmax_bwd:ident, $ce:ident, $act:ident, $act_bwd:ident, $bce:ident, $emb:ident, $emb_bwd:ident) => {
        /// softmax (or log_softmax) over the middle axis of x viewed as (outer, c, inner).
        #[pyfunction]
        fn $softmax<'py>(
            py: Python<'py>,
            x: PyReadonlyArrayDyn<'py, $t>,
            mut out: PyReadwriteArrayDyn<'py, $t>,
            outer: usize,
            c: usize,
            inner: usize,
            log: bool,
        ) -> PyResult<()> {
            let xs = x.as_slice().map_err(|_| not_contiguous("input"))?;
            let ys = out.as_slice_mut().map_err(|_| not_contiguous("out"))?;
            run_kernel(py, move || softmax::softmax(xs, ys, (outer, c, inner), log))
        }

        /// Gradient of softmax / log_softmax from its output y.
        #[pyfunction]
        #[allow(clippy::too_many_arguments)]
        fn $softmax_bwd<'py>(
            py: Python<'py>,
            y: PyReadonlyArrayDyn<'py, $t>,
            dy: PyReadonlyArrayDyn<'py, $t>,
            mut dx: PyReadwriteArrayDyn<'py, $t>,
            outer: usize,
            c: usize,
            inner: usize,
            log: bool,
        ) -> PyResult<()> {
            let ys = y.as_slice().map_err(|_| not_contiguous("output"))?;
            let gs = dy.as_slice().map_err(|_| not_contiguous("grad_output"))?;
            let ds = dx.as_slice_mut().map_err(|_| not_contiguous("grad_input"))?;
            run_kernel(py, move || softmax::softmax_backward(ys, gs, ds, (outer, c, inner), log))
        }

        /// Per-row losses into `loss` (n,), and `gscale * dloss/dlogits` into `grad` (n, c) when given.
        #[pyfunction]
        #[pyo3(signature = (logits, target_index, target_prob, weight, ignore_index, label_smoothing, loss, gscale, grad))]
        #[allow(clippy::too_many_arguments)]
        fn $ce<'py>(
            py: Python<'py>,
            logits: PyReadonlyArray2<'py, $t>,
            target_index: Option<PyReadonlyArray1<'py, i64>>,
            target_prob: Option<PyReadonlyArray2<'py, $t>>,
            weight: Option<PyReadonlyArray1<'py, $t>>,
            ignore_index: i64,
            label_smoothing: $t,
            mut loss: PyReadwriteArray1<'py, $t>,
            gscale: Option<PyReadonlyArray1<'py, $t>>,
            mut grad: Option<PyReadwriteArray2<'py, $t>>,
        ) -> PyResult<()> {
            let c = logits.as_array().dim().1;
            let xs = logits.as_slice().map_err(|_| not_contiguous("input"))?;
            let target = match (&target_index, &target_prob) {
                (Some(t), _) => Target::Index(t.as_slice().map_err(|_| not_contiguous("target"))?),
                (None, Some(p)) => Target::Prob(p.as_slice().map_err(|_| not_contiguous("target"))?),
                _ => return Err(PyValueError::new_err("cross_entropy: 'target' is missing")),
            };
            let w = match &weight {
                Some(w) => Some(w.as_slice().map_err(|_| not_contiguous("weight"))?),
                None => None,
            };
            let gsl = match &gscale {
                Some(g) => Some(g.as_slice().map_err(|_| not_contiguous("grad_output"))?),
                None => None,
            };
            let params = CrossEntropy { weight: w, ignore_index, label_smoothing };
            let ls = loss.as_slice_mut().map_err(|_| not_contiguous("loss"))?;
            let gpair = match (&mut grad, gsl) {
                (Some(g), Some(s)) => Some((s, g.as_slice_mut().map_err(|_| not_contiguous("grad"))?)),
                _ => None,
            };
            run_kernel(py, move || softmax::cross_entropy(xs, c, target, params, ls, gpair))
        }

        /// Elementwise activation `kind` with parameters (p1, p2).
        #[pyfunction]
        fn $act<'py>(
            py: Python<'py>,
            x: PyReadonlyArrayDyn<'py, $t>,
            mut out: PyReadwriteArrayDyn<'py, $t>,
            kind: &str,
            p1: $t,
            p2: $t,
        ) -> PyResult<()> {
            let act = act_from(kind, p1, p2)?;
            let xs = x.as_slice().map_err(|_| not_contiguous("input"))?;
            let ys = out.as_slice_mut().map_err(|_| not_contiguous("out"))?;
            run_kernel(py, move || activation::forward(act, xs, ys))
        }

        /// Gradient of the activation `kind` from its input x.
        #[pyfunction]
        fn $act_bwd<'py>(
            py: Python<'py>,
            x: PyReadonlyArrayDyn<'py, $t>,
            dy: PyReadonlyArrayDyn<'py, $t>,
            mut dx: PyReadwriteArrayDyn<'py, $t>,
            kind: &str,
            p1: $t,
            p2: $t,
        ) -> PyResult<()> {
            let act = act_from(kind, p1, p2)?;
            let xs = x.as_slice().map_err(|_| not_contiguous("input"))?;
            let gs = dy.as_slice().map_err(|_| not_contiguous("grad_output"))?;
            let ds = dx.as_slice_mut().map_err(|_| not_contiguous("grad_input"))?;
            run_kernel(py, move || activation::backward(act, xs, gs, ds))
        }

        /// Elementwise BCE-with-logits losses into `loss`, and `gscale * dloss/dx` into `grad` when given.
        #[pyfunction]
        #[pyo3(signature = (x, y, weight, pos_weight, loss, gscale, grad))]
        #[allow(clippy::too_many_arguments)]
        fn $bce<'py>(
            py: Python<'py>,
            x: PyReadonlyArrayDyn<'py, $t>,
            y: PyReadonlyArrayDyn<'py, $t>,
            weight: Option<PyReadonlyArrayDyn<'py, $t>>,
            pos_weight: Option<PyReadonlyArrayDyn<'py, $t>>,
            mut loss: PyReadwriteArrayDyn<'py, $t>,
            gscale: Option<PyReadonlyArrayDyn<'py, $t>>,
            mut grad: Option<PyReadwriteArrayDyn<'py, $t>>,
        ) -> PyResult<()> {
            let xs = x.as_slice().map_err(|_| not_contiguous("input"))?;
            let ys = y.as_slice().map_err(|_| not_contiguous("target"))?;
            let w = match &weight {
                Some(a) => Some(a.as_slice().map_err(|_| not_contiguous("weight"))?),
                None => None,
            };
            let pw = match &pos_weight {
                Some(a) => Some(a.as_slice().map_err(|_| not_contiguous("pos_weight"))?),
                None => None,
            };
            let gsl = match &gscale {
                Some(a) => Some(a.as_slice().map_err(|_| not_contiguous("grad_output"))?),
                None => None,
            };
            let ls = loss.as_slice_mut().map_err(|_| not_contiguous("loss"))?;
            let gpair = match (&mut grad, gsl) {
                (Some(g), Some(s)) => Some((s, g.as_slice_mut().map_err(|_| not_contiguous("grad"))?)),
                _ => None,
            };
            run_kernel(py, move || {
                if let Some((s, g)) = &gpair {
                    activation::check_bce_grad(xs.len(), s, g)?;
                }
                activation::bce_with_logits(xs, ys, w, pw, ls, gpair)
            })
        }

        /// weight[indices] for flat int64 indices: (n, d).
        #[pyfunction]
        fn $emb<'py>(
            py: Python<'py>,
            indices: PyReadonlyArray1<'py, i64>,
            weight: PyReadonlyArray2<'py, $t>,
            mut out: PyReadwriteArray2<'py, $t>,
        ) -> PyResult<()> {
            let idx = indices.as_slice().map_err(|_| not_contiguous("input"))?;
            let w = weight.as_array();
            let ov = out.as_array_mut();
            run_kernel(py, move || embedding::forward(idx, w, ov))
        }

        /// Weight gradient (num_embeddings, d) of an embedding lookup.
        #[pyfunction]
        #[pyo3(signature = (dout, indices, padding_idx, dweight))]
        fn $emb_bwd<'py>(
            py: Python<'py>,
            dout: PyReadonlyArray2<'py, $t>,
            indices: PyReadonlyArray1<'py, i64>,
            padding_idx: Option<usize>,
            mut dweight: PyReadwriteArray2<'py, $t>,
        ) -> PyResult<()> {
            let idx = indices.as_slice().map_err(|_| not_contiguous("input"))?;
            let g = dout.as_array();
            let dv = dweight.as_array_mut();
            run_kernel(py, move || embedding::backward(g, idx, padding_idx, dv))
        }
    };
}

functional_bindings!(
    f32,
    softmax_f32,
    softmax_backward_f32,
    cross_entropy_f32,
    activation_f32,
    activation_backward_f32,
    bce_with_logits_f32,
    embedding_f32,
    embedding_backward_f32
);
functional_bindings!(
    f64,
    softmax_f64,
    softmax_backward_f64,
    cross_entropy_f64,
    activation_f64,
    activation_backward_f64,
    bce_with_logits_f64,
    embedding_f64,
    embedding_backward_f64
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(softmax_f32, m)?)?;
    m.add_function(wrap_pyfunction!(softmax_f64, m)?)?;
    m.add_function(wrap_pyfunction!(softmax_backward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(softmax_backward_f64, m)?)?;
    m.add_function(wrap_pyfunction!(cross_entropy_f32, m)?)?;
    m.add_function(wrap_pyfunction!(cross_entropy_f64, m)?)?;
    m.add_function(wrap_pyfunction!(activation_f32, m)?)?;
    m.add_function(wrap_pyfunction!(activation_f64, m)?)?;
    m.add_function(wrap_pyfunction!(activation_backward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(activation_backward_f64, m)?)?;
    m.add_function(wrap_pyfunction!(bce_with_logits_f32, m)?)?;
    m.add_function(wrap_pyfunction!(bce_with_logits_f64, m)?)?;
    m.add_function(wrap_pyfunction!(embedding_f32, m)?)?;
    m.add_function(wrap_pyfunction!(embedding_f64, m)?)?;
    m.add_function(wrap_pyfunction!(embedding_backward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(embedding_backward_f64, m)?)?;
    Ok(())
}
