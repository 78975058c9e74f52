//! Convolution bindings. Everything is 3-D here: the Python layer views 1-D and 2-D
//! convolutions as `(N, C, 1, H, W)` / `(N, C, 1, 1, L)` arrays, resolves padding
//! modes into low/high amounts per axis and picks the dtype.

use crate::guard::run_kernel;
use numpy::{IntoPyArray, PyArray1, PyArray3, PyArray5, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray3, PyReadonlyArray5};
use oxinet_kernels::conv::{self, ConvParams};
use pyo3::prelude::*;

fn params(
    stride: [usize; 3],
    dilation: [usize; 3],
    pad_lo: [usize; 3],
    pad_hi: [usize; 3],
    groups: usize,
) -> ConvParams {
    ConvParams {
        stride,
        dilation,
        pad_lo,
        pad_hi,
        groups,
    }
}

macro_rules! conv_bindings {
    ($t:ty, $fwd:ident, $dx:ident, $dw:ident, $db:ident, $unfold:ident, $fold:ident) => {
        /// y = conv(x, w) + b on (N, C, D, H, W) arrays.
        #[pyfunction]
        #[allow(clippy::too_many_arguments)]
        fn $fwd<'py>(
            py: Python<'py>,
            x: PyReadonlyArray5<'py, $t>,
            w: PyReadonlyArray5<'py, $t>,
            bias: Option<PyReadonlyArray1<'py, $t>>,
            stride: [usize; 3],
            dilation: [usize; 3],
            pad_lo: [usize; 3],
            pad_hi: [usize; 3],
            groups: usize,
        ) -> PyResult<Bound<'py, PyArray5<$t>>> {
            let p = params(stride, dilation, pad_lo, pad_hi, groups);
            let (x, w) = (x.as_array(), w.as_array());
            let b = bias.as_ref().map(|b| b.as_array());
            let y = run_kernel(py, move || conv::conv_forward(x, w, b, p))?;
            Ok(y.into_pyarray(py))
        }

        /// Input gradient of conv for an input of shape `input_shape`.
        #[pyfunction]
        #[allow(clippy::too_many_arguments)]
        fn $dx<'py>(
            py: Python<'py>,
            dy: PyReadonlyArray5<'py, $t>,
            w: PyReadonlyArray5<'py, $t>,
            input_shape: [usize; 5],
            stride: [usize; 3],
            dilation: [usize; 3],
            pad_lo: [usize; 3],
            pad_hi: [usize; 3],
            groups: usize,
        ) -> PyResult<Bound<'py, PyArray5<$t>>> {
            let p = params(stride, dilation, pad_lo, pad_hi, groups);
            let (dy, w) = (dy.as_array(), w.as_array());
            let dx = run_kernel(py, move || conv::conv_input_grad(dy, w, input_shape, p))?;
            Ok(dx.into_pyarray(py))
        }

        /// Weight gradient of conv for a kernel of spatial size `kernel`.
        #[pyfunction]
        #[allow(clippy::too_many_arguments)]
        fn $dw<'py>(
            py: Python<'py>,
            dy: PyReadonlyArray5<'py, $t>,
            x: PyReadonlyArray5<'py, $t>,
            kernel: [usize; 3],
            stride: [usize; 3],
            dilation: [usize; 3],
            pad_lo: [usize; 3],
            pad_hi: [usize; 3],
            groups: usize,
        ) -> PyResult<Bound<'py, PyArray5<$t>>> {
            let p = params(stride, dilation, pad_lo, pad_hi, groups);
            let (dy, x) = (dy.as_array(), x.as_array());
            let dims = |a: &[usize]| [a[0], a[1], a[2], a[3], a[4]];
            let shape = conv::conv_weight_grad_shape(dims(dy.shape()), dims(x.shape()), kernel, groups);
            // Recycled memory: a weight gradient is dropped every step (zero_grad), and a
            // fresh one pays a page fault per page (9 MB for a 512-channel 3x3 layer).
            let dw = crate::recycle::empty::<$t>(py, &shape)?;
            {
                let mut dww = dw.readwrite();
                let view = dww.as_array_mut().into_dimensionality::<numpy::ndarray::Ix5>().expect("5-D");
                run_kernel(py, move || conv::conv_weight_grad_into(dy, x, kernel, p, view))?;
            }
            Ok(dw.cast_into::<PyArray5<$t>>()?)
        }

        /// Bias gradient: sum of dy (N, C, L) over N and L.
        #[pyfunction]
        fn $db<'py>(py: Python<'py>, dy: PyReadonlyArray3<'py, $t>) -> PyResult<Bound<'py, PyArray1<$t>>> {
            let dy = dy.as_array();
            let db = run_kernel(py, move || Ok(conv::conv_bias_grad(dy)))?;
            Ok(db.into_pyarray(py))
        }

        /// PyTorch's unfold on (N, C, D, H, W): returns (N, C * kd * kh * kw, L).
        #[pyfunction]
        fn $unfold<'py>(
            py: Python<'py>,
            x: PyReadonlyArray5<'py, $t>,
            kernel: [usize; 3],
            stride: [usize; 3],
            dilation: [usize; 3],
            pad_lo: [usize; 3],
            pad_hi: [usize; 3],
        ) -> PyResult<Bound<'py, PyArray3<$t>>> {
            let p = params(stride, dilation, pad_lo, pad_hi, 1);
            let x = x.as_array();
            let cols = run_kernel(py, move || conv::im2col(x, kernel, p))?;
            Ok(cols.into_pyarray(py))
        }

        /// PyTorch's fold: (N, C * kvol, L) summed into (N, C, D, H, W).
        #[pyfunction]
        #[allow(clippy::too_many_arguments)]
        fn $fold<'py>(
            py: Python<'py>,
            cols: PyReadonlyArray3<'py, $t>,
            channels: usize,
            size: [usize; 3],
            kernel: [usize; 3],
            stride: [usize; 3],
            dilation: [usize; 3],
            pad_lo: [usize; 3],
            pad_hi: [usize; 3],
        ) -> PyResult<Bound<'py, PyArray5<$t>>> {
            let p = params(stride, dilation, pad_lo, pad_hi, 1);
            let cols = cols.as_array();
            let x = run_kernel(py, move || conv::col2im(cols, channels, size, kernel, p))?;
            Ok(x.into_pyarray(py))
        }
    };
}

conv_bindings!(
    f32,
    conv_forward_f32,
    conv_input_grad_f32,
    conv_weight_grad_f32,
    conv_bias_grad_f32,
    im2col_f32,
    col2im_f32
);
conv_bindings!(
    f64,
    conv_forward_f64,
    conv_input_grad_f64,
    conv_weight_grad_f64,
    conv_bias_grad_f64,
    im2col_f64,
    col2im_f64
);

/// Whether conv_forward / conv_input_grad / conv_weight_grad take the dense path for
/// these shapes (the `nn` layer then leaves the convolution to them).
#[pyfunction]
fn conv_uses_dense_path(
    x_shape: [usize; 5],
    w_shape: [usize; 5],
    stride: [usize; 3],
    dilation: [usize; 3],
    pad_lo: [usize; 3],
    pad_hi: [usize; 3],
    groups: usize,
) -> bool {
    conv::uses_dense_path(x_shape, w_shape, params(stride, dilation, pad_lo, pad_hi, groups))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(conv_uses_dense_path, m)?)?;
    m.add_function(wrap_pyfunction!(conv_forward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(conv_forward_f64, m)?)?;
    m.add_function(wrap_pyfunction!(conv_input_grad_f32, m)?)?;
    m.add_function(wrap_pyfunction!(conv_input_grad_f64, m)?)?;
    m.add_function(wrap_pyfunction!(conv_weight_grad_f32, m)?)?;
    m.add_function(wrap_pyfunction!(conv_weight_grad_f64, m)?)?;
    m.add_function(wrap_pyfunction!(conv_bias_grad_f32, m)?)?;
    m.add_function(wrap_pyfunction!(conv_bias_grad_f64, m)?)?;
    m.add_function(wrap_pyfunction!(im2col_f32, m)?)?;
    m.add_function(wrap_pyfunction!(im2col_f64, m)?)?;
    m.add_function(wrap_pyfunction!(col2im_f32, m)?)?;
    m.add_function(wrap_pyfunction!(col2im_f64, m)?)?;
    Ok(())
}
