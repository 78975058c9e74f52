//! Recurrent-layer bindings: one fused forward and one BPTT backward per dtype, for
//! every cell kind ("lstm", "gru", "rnn_tanh", "rnn_relu"). The Python layer
//! (`oxinet.ops.rnn`) validates, makes inputs time-major and contiguous, and keeps the
//! saved state between the two calls.

use crate::guard::run_kernel;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArray3, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3,
};
use oxinet_kernels::rnn::{self, CellKind, Saved, Weights};
use oxinet_kernels::KernelError;
use pyo3::prelude::*;

fn lengths_vec(lengths: Option<PyReadonlyArray1<'_, i64>>) -> PyResult<Option<Vec<usize>>> {
    match lengths {
        None => Ok(None),
        Some(l) => {
            let mut out = Vec::with_capacity(l.len()?);
            for &v in l.as_array().iter() {
                if v < 0 {
                    return Err(pyo3::exceptions::PyValueError::new_err(format!(
                        "rnn: 'lengths' must be positive, got {v}"
                    )));
                }
                out.push(v as usize);
            }
            Ok(Some(out))
        }
    }
}

fn kind_of(kind: &str) -> PyResult<CellKind> {
    CellKind::from_name(kind)
        .map_err(|e: KernelError| pyo3::exceptions::PyValueError::new_err(e.to_string()))
}

type FwdOut<'py, T> = (
    Bound<'py, PyArray3<T>>,
    Bound<'py, PyArray2<T>>,
    Option<Bound<'py, PyArray2<T>>>,
    Option<Bound<'py, PyArray3<T>>>,
    Option<Bound<'py, PyArray3<T>>>,
    Option<Bound<'py, PyArray3<T>>>,
);

type BwdOut<'py, T> = (
    Option<Bound<'py, PyArray3<T>>>,
    Bound<'py, PyArray2<T>>,
    Option<Bound<'py, PyArray2<T>>>,
    Bound<'py, PyArray2<T>>,
    Bound<'py, PyArray2<T>>,
    Bound<'py, PyArray1<T>>,
    Bound<'py, PyArray1<T>>,
);

macro_rules! rnn_bindings {
    ($fwd:ident, $bwd:ident, $t:ty) => {
        /// Forward over a time-major sequence. Returns (hs, h_n, c_n, gates, cs, hn);
        /// the last three only when `train` (see oxinet_kernels::rnn::Forward).
        #[pyfunction]
        #[allow(clippy::too_many_arguments)]
        #[pyo3(signature = (kind, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, train))]
        fn $fwd<'py>(
            py: Python<'py>,
            kind: &str,
            x: PyReadonlyArray3<'py, $t>,
            h0: Option<PyReadonlyArray2<'py, $t>>,
            c0: Option<PyReadonlyArray2<'py, $t>>,
            w_ih: PyReadonlyArray2<'py, $t>,
            w_hh: PyReadonlyArray2<'py, $t>,
            b_ih: Option<PyReadonlyArray1<'py, $t>>,
            b_hh: Option<PyReadonlyArray1<'py, $t>>,
            lengths: Option<PyReadonlyArray1<'py, i64>>,
            train: bool,
        ) -> PyResult<FwdOut<'py, $t>> {
            let kind = kind_of(kind)?;
            let lens = lengths_vec(lengths)?;
            let (x, w_ih, w_hh) = (x.as_array(), w_ih.as_array(), w_hh.as_array());
            let h0 = h0.as_ref().map(|a| a.as_array());
            let c0 = c0.as_ref().map(|a| a.as_array());
            let b_ih = b_ih.as_ref().map(|a| a.as_array());
            let b_hh = b_hh.as_ref().map(|a| a.as_array());
            let f = run_kernel(py, move || {
                let w = Weights {
                    w_ih,
                    w_hh,
                    b_ih,
                    b_hh,
                };
                rnn::forward(kind, x, h0, c0, &w, lens.as_deref(), train)
            })?;
            Ok((
                f.hs.into_pyarray(py),
                f.h_n.into_pyarray(py),
                f.c_n.map(|a| a.into_pyarray(py)),
                f.gates.map(|a| a.into_pyarray(py)),
                f.cs.map(|a| a.into_pyarray(py)),
                f.hn.map(|a| a.into_pyarray(py)),
            ))
        }

        /// BPTT. Returns (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh) (dc0 only for lstm;
        /// dx None when `need_dx` is false).
        #[pyfunction]
        #[allow(clippy::too_many_arguments)]
        #[pyo3(signature = (kind, x, w_ih, w_hh, lengths, hs, cs, gates, hn, dy, dh_n, dc_n, need_dx=true))]
        fn $bwd<'py>(
            py: Python<'py>,
            kind: &str,
            x: PyReadonlyArray3<'py, $t>,
            w_ih: PyReadonlyArray2<'py, $t>,
            w_hh: PyReadonlyArray2<'py, $t>,
            lengths: Option<PyReadonlyArray1<'py, i64>>,
            hs: PyReadonlyArray3<'py, $t>,
            cs: Option<PyReadonlyArray3<'py, $t>>,
            gates: Option<PyReadonlyArray3<'py, $t>>,
            hn: Option<PyReadonlyArray3<'py, $t>>,
            dy: Option<PyReadonlyArray3<'py, $t>>,
            dh_n: Option<PyReadonlyArray2<'py, $t>>,
            dc_n: Option<PyReadonlyArray2<'py, $t>>,
            need_dx: bool,
        ) -> PyResult<BwdOut<'py, $t>> {
            let kind = kind_of(kind)?;
            let lens = lengths_vec(lengths)?;
            let (x, w_ih, w_hh, hs) = (
                x.as_array(),
                w_ih.as_array(),
                w_hh.as_array(),
                hs.as_array(),
            );
            let cs = cs.as_ref().map(|a| a.as_array());
            let gates = gates.as_ref().map(|a| a.as_array());
            let hn = hn.as_ref().map(|a| a.as_array());
            let dy = dy.as_ref().map(|a| a.as_array());
            let dh_n = dh_n.as_ref().map(|a| a.as_array());
            let dc_n = dc_n.as_ref().map(|a| a.as_array());
            let g = run_kernel(py, move || {
                let saved = Saved { hs, cs, gates, hn };
                rnn::backward(kind, x, w_ih, w_hh, lens.as_deref(), &saved, dy, dh_n, dc_n, need_dx)
            })?;
            Ok((
                g.dx.map(|a| a.into_pyarray(py)),
                g.dh0.into_pyarray(py),
                g.dc0.map(|a| a.into_pyarray(py)),
                g.dw_ih.into_pyarray(py),
                g.dw_hh.into_pyarray(py),
                g.db_ih.into_pyarray(py),
                g.db_hh.into_pyarray(py),
            ))
        }
    };
}

rnn_bindings!(rnn_forward_f32, rnn_backward_f32, f32);
rnn_bindings!(rnn_forward_f64, rnn_backward_f64, f64);

macro_rules! cell_bindings {
    ($name:ident, $t:ty) => {
        /// Direct backward of one cell step. Returns (dx (1, B, D) or None, dh, dc or
        /// None, dw_ih, dw_hh, db_ih, db_hh); see oxinet_kernels::rnn::cell_backward.
        /// With `gates` and `state` (both or neither) the forward's saved step is used
        /// instead of recomputing it (oxinet_kernels::rnn::cell_backward_saved).
        #[pyfunction]
        #[allow(clippy::too_many_arguments)]
        #[pyo3(signature = (kind, x, h, c, w_ih, w_hh, b_ih, b_hh, dh_next, dc_next, need_dx=true, gates=None, state=None))]
        fn $name<'py>(
            py: Python<'py>,
            kind: &str,
            x: PyReadonlyArray2<'py, $t>,
            h: Option<PyReadonlyArray2<'py, $t>>,
            c: Option<PyReadonlyArray2<'py, $t>>,
            w_ih: PyReadonlyArray2<'py, $t>,
            w_hh: PyReadonlyArray2<'py, $t>,
            b_ih: Option<PyReadonlyArray1<'py, $t>>,
            b_hh: Option<PyReadonlyArray1<'py, $t>>,
            dh_next: Option<PyReadonlyArray2<'py, $t>>,
            dc_next: Option<PyReadonlyArray2<'py, $t>>,
            need_dx: bool,
            gates: Option<PyReadonlyArray2<'py, $t>>,
            state: Option<PyReadonlyArray2<'py, $t>>,
        ) -> PyResult<BwdOut<'py, $t>> {
            let kind = kind_of(kind)?;
            if gates.is_some() != state.is_some() {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "rnn_cell_backward: 'gates' and 'state' must be given together",
                ));
            }
            let gates = gates.as_ref().map(|a| a.as_array());
            let state = state.as_ref().map(|a| a.as_array());
            let (x, w_ih, w_hh) = (x.as_array(), w_ih.as_array(), w_hh.as_array());
            let h = h.as_ref().map(|a| a.as_array());
            let c = c.as_ref().map(|a| a.as_array());
            let b_ih = b_ih.as_ref().map(|a| a.as_array());
            let b_hh = b_hh.as_ref().map(|a| a.as_array());
            let dh_next = dh_next.as_ref().map(|a| a.as_array());
            let dc_next = dc_next.as_ref().map(|a| a.as_array());
            let g = run_kernel(py, move || {
                let w = Weights {
                    w_ih,
                    w_hh,
                    b_ih,
                    b_hh,
                };
                match (gates, state) {
                    (Some(gates), Some(state)) => {
                        let saved = rnn::StepSaved { gates, state };
                        rnn::cell_backward_saved(kind, x, h, c, &w, saved, dh_next, dc_next, need_dx)
                    }
                    _ => rnn::cell_backward(kind, x, h, c, &w, dh_next, dc_next, need_dx),
                }
            })?;
            Ok((
                g.dx.map(|a| a.into_pyarray(py)),
                g.dh0.into_pyarray(py),
                g.dc0.map(|a| a.into_pyarray(py)),
                g.dw_ih.into_pyarray(py),
                g.dw_hh.into_pyarray(py),
                g.db_ih.into_pyarray(py),
                g.db_hh.into_pyarray(py),
            ))
        }
    };
}

cell_bindings!(rnn_cell_backward_f32, f32);
cell_bindings!(rnn_cell_backward_f64, f64);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rnn_forward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(rnn_forward_f64, m)?)?;
    m.add_function(wrap_pyfunction!(rnn_backward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(rnn_backward_f64, m)?)?;
    m.add_function(wrap_pyfunction!(rnn_cell_backward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(rnn_cell_backward_f64, m)?)?;
    Ok(())
}
