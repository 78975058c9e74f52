//! Bindings of softmax / log-softmax, cross-entropy, activations, binary cross-entropy
//! with logits and embeddings. Inputs must be C-contiguous (the Python layer makes them
//! so); outputs are new arrays.

use crate::guard::run_kernel;
use ndarray::{Array1, Array2, ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayDyn, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArrayDyn};
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
            outer: usize,
            c: usize,
            inner: usize,
            log: bool,
        ) -> PyResult<Bound<'py, PyArrayDyn<$t>>> {
            let xs = x.as_slice().map_err(|_| not_contiguous("input"))?;
            let mut y = ArrayD::<$t>::zeros(IxDyn(x.as_array().shape()));
            {
                let ys = y.as_slice_mut().expect("new array");
                run_kernel(py, move || softmax::softmax(xs, ys, (outer, c, inner), log))?;
            }
            Ok(y.into_pyarray(py))
        }

        /// Gradient of softmax / log_softmax from its output y.
        #[pyfunction]
        fn $softmax_bwd<'py>(
            py: Python<'py>,
            y: PyReadonlyArrayDyn<'py, $t>,
            dy: PyReadonlyArrayDyn<'py, $t>,
            outer: usize,
            c: usize,
            inner: usize,
            log: bool,
        ) -> PyResult<Bound<'py, PyArrayDyn<$t>>> {
            let ys = y.as_slice().map_err(|_| not_contiguous("output"))?;
            let gs = dy.as_slice().map_err(|_| not_contiguous("grad_output"))?;
            let mut dx = ArrayD::<$t>::zeros(IxDyn(y.as_array().shape()));
            {
                let ds = dx.as_slice_mut().expect("new array");
                run_kernel(py, move || softmax::softmax_backward(ys, gs, ds, (outer, c, inner), log))?;
            }
            Ok(dx.into_pyarray(py))
        }

        /// (per-row loss, gradient or None) for logits (n, c) and class-index or probability targets.
        #[pyfunction]
        #[pyo3(signature = (logits, target_index, target_prob, weight, ignore_index, label_smoothing, gscale))]
        #[allow(clippy::too_many_arguments, clippy::type_complexity)]
        fn $ce<'py>(
            py: Python<'py>,
            logits: PyReadonlyArray2<'py, $t>,
            target_index: Option<PyReadonlyArray1<'py, i64>>,
            target_prob: Option<PyReadonlyArray2<'py, $t>>,
            weight: Option<PyReadonlyArray1<'py, $t>>,
            ignore_index: i64,
            label_smoothing: $t,
            gscale: Option<PyReadonlyArray1<'py, $t>>,
        ) -> PyResult<(Bound<'py, PyArray1<$t>>, Option<Bound<'py, PyArray2<$t>>>)> {
            let (n, c) = logits.as_array().dim();
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
            let mut loss = Array1::<$t>::zeros(n);
            let mut grad = gsl.map(|_| Array2::<$t>::zeros((n, c)));
            {
                let ls = loss.as_slice_mut().expect("new array");
                let gpair = match (&mut grad, gsl) {
                    (Some(g), Some(s)) => Some((s, g.as_slice_mut().expect("new array"))),
                    _ => None,
                };
                run_kernel(py, move || softmax::cross_entropy(xs, c, target, params, ls, gpair))?;
            }
            Ok((loss.into_pyarray(py), grad.map(|g| g.into_pyarray(py))))
        }

        /// Elementwise activation `kind` with parameters (p1, p2).
        #[pyfunction]
        fn $act<'py>(
            py: Python<'py>,
            x: PyReadonlyArrayDyn<'py, $t>,
            kind: &str,
            p1: $t,
            p2: $t,
        ) -> PyResult<Bound<'py, PyArrayDyn<$t>>> {
            let act = act_from(kind, p1, p2)?;
            let xs = x.as_slice().map_err(|_| not_contiguous("input"))?;
            let mut y = ArrayD::<$t>::zeros(IxDyn(x.as_array().shape()));
            {
                let ys = y.as_slice_mut().expect("new array");
                run_kernel(py, move || activation::forward(act, xs, ys))?;
            }
            Ok(y.into_pyarray(py))
        }

        /// Gradient of the activation `kind` from its input x.
        #[pyfunction]
        fn $act_bwd<'py>(
            py: Python<'py>,
            x: PyReadonlyArrayDyn<'py, $t>,
            dy: PyReadonlyArrayDyn<'py, $t>,
            kind: &str,
            p1: $t,
            p2: $t,
        ) -> PyResult<Bound<'py, PyArrayDyn<$t>>> {
            let act = act_from(kind, p1, p2)?;
            let xs = x.as_slice().map_err(|_| not_contiguous("input"))?;
            let gs = dy.as_slice().map_err(|_| not_contiguous("grad_output"))?;
            let mut dx = ArrayD::<$t>::zeros(IxDyn(x.as_array().shape()));
            {
                let ds = dx.as_slice_mut().expect("new array");
                run_kernel(py, move || activation::backward(act, xs, gs, ds))?;
            }
            Ok(dx.into_pyarray(py))
        }

        /// (elementwise loss, gradient or None) of BCE with logits; all inputs have x's size.
        #[pyfunction]
        #[pyo3(signature = (x, y, weight, pos_weight, gscale))]
        #[allow(clippy::type_complexity)]
        fn $bce<'py>(
            py: Python<'py>,
            x: PyReadonlyArrayDyn<'py, $t>,
            y: PyReadonlyArrayDyn<'py, $t>,
            weight: Option<PyReadonlyArrayDyn<'py, $t>>,
            pos_weight: Option<PyReadonlyArrayDyn<'py, $t>>,
            gscale: Option<PyReadonlyArrayDyn<'py, $t>>,
        ) -> PyResult<(Bound<'py, PyArrayDyn<$t>>, Option<Bound<'py, PyArrayDyn<$t>>>)> {
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
            let mut loss = ArrayD::<$t>::zeros(IxDyn(x.as_array().shape()));
            let mut grad = gsl.map(|_| ArrayD::<$t>::zeros(IxDyn(x.as_array().shape())));
            {
                let ls = loss.as_slice_mut().expect("new array");
                let gpair = match (&mut grad, gsl) {
                    (Some(g), Some(s)) => Some((s, g.as_slice_mut().expect("new array"))),
                    _ => None,
                };
                run_kernel(py, move || {
                    if let Some((s, g)) = &gpair {
                        activation::check_bce_grad(xs.len(), s, g)?;
                    }
                    activation::bce_with_logits(xs, ys, w, pw, ls, gpair)
                })?;
            }
            Ok((loss.into_pyarray(py), grad.map(|g| g.into_pyarray(py))))
        }

        /// weight[indices] for flat int64 indices: (n, d).
        #[pyfunction]
        fn $emb<'py>(
            py: Python<'py>,
            indices: PyReadonlyArray1<'py, i64>,
            weight: PyReadonlyArray2<'py, $t>,
        ) -> PyResult<Bound<'py, PyArray2<$t>>> {
            let idx = indices.as_slice().map_err(|_| not_contiguous("input"))?;
            let w = weight.as_array();
            let mut out = Array2::<$t>::zeros((idx.len(), w.ncols()));
            {
                let ov = out.view_mut();
                run_kernel(py, move || embedding::forward(idx, w, ov))?;
            }
            Ok(out.into_pyarray(py))
        }

        /// Weight gradient (num_embeddings, d) of an embedding lookup.
        #[pyfunction]
        #[pyo3(signature = (dout, indices, num_embeddings, padding_idx))]
        fn $emb_bwd<'py>(
            py: Python<'py>,
            dout: PyReadonlyArray2<'py, $t>,
            indices: PyReadonlyArray1<'py, i64>,
            num_embeddings: usize,
            padding_idx: Option<usize>,
        ) -> PyResult<Bound<'py, PyArray2<$t>>> {
            let idx = indices.as_slice().map_err(|_| not_contiguous("input"))?;
            let g = dout.as_array();
            let mut dw = Array2::<$t>::zeros((num_embeddings, g.ncols()));
            {
                let dv = dw.view_mut();
                run_kernel(py, move || embedding::backward(g, idx, padding_idx, dv))?;
            }
            Ok(dw.into_pyarray(py))
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
