//! Pooling, unpooling and interpolation bindings. Arrays are `(P, H, W)` planes, C-contiguous;
//! the Python layer (`oxinet.ops.pool`, `oxinet.ops.interpolate`) reshapes, validates
//! and allocates every output, and the kernels write every element of it.

use crate::guard::run_kernel;
use numpy::{PyReadonlyArray3, PyReadwriteArray3};
use oxinet_kernels::interpolate::{self, Mode};
use oxinet_kernels::pool::{adaptive, avg, max, unpool, Pool2d};
use oxinet_kernels::KernelError;
use pyo3::prelude::*;

type Pair = (usize, usize);

fn params(kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil_mode: bool) -> Pool2d {
    Pool2d {
        kernel: [kernel.0, kernel.1],
        stride: [stride.0, stride.1],
        padding: [padding.0, padding.1],
        dilation: [dilation.0, dilation.1],
        ceil_mode,
    }
}

fn mode(name: &str, align_corners: bool) -> Result<Mode, KernelError> {
    match name {
        "nearest" => Ok(Mode::Nearest),
        "bilinear" | "linear" => Ok(Mode::Bilinear { align_corners }),
        other => Err(KernelError::param(format!("interpolate: unknown 'mode' {other:?}"))),
    }
}

macro_rules! pool_bindings {
    ($t:ty, $max:ident, $maxb:ident, $avg:ident, $avgb:ident, $aavg:ident, $aavgb:ident, $amax:ident,
     $unp:ident, $unpb:ident, $interp:ident, $interpb:ident) => {
        #[pyfunction]
        #[pyo3(signature = (x, out, indices, kernel, stride, padding, dilation, ceil_mode))]
        #[allow(clippy::too_many_arguments)]
        fn $max<'py>(
            py: Python<'py>,
            x: PyReadonlyArray3<'py, $t>,
            mut out: PyReadwriteArray3<'py, $t>,
            mut indices: Option<PyReadwriteArray3<'py, i64>>,
            kernel: Pair,
            stride: Pair,
            padding: Pair,
            dilation: Pair,
            ceil_mode: bool,
        ) -> PyResult<()> {
            let p = params(kernel, stride, padding, dilation, ceil_mode);
            let (x, out) = (x.as_array(), out.as_array_mut());
            let ix = indices.as_mut().map(|i| i.as_array_mut());
            run_kernel(py, move || max::max_pool2d(x, &p, out, ix))
        }

        #[pyfunction]
        fn $maxb<'py>(
            py: Python<'py>,
            op: String,
            dy: PyReadonlyArray3<'py, $t>,
            indices: PyReadonlyArray3<'py, i64>,
            mut dx: PyReadwriteArray3<'py, $t>,
        ) -> PyResult<()> {
            let (dy, ix, dx) = (dy.as_array(), indices.as_array(), dx.as_array_mut());
            run_kernel(py, move || max::max_pool_backward(&op, dy, ix, dx))
        }

        #[pyfunction]
        #[allow(clippy::too_many_arguments)]
        fn $avg<'py>(
            py: Python<'py>,
            x: PyReadonlyArray3<'py, $t>,
            mut out: PyReadwriteArray3<'py, $t>,
            kernel: Pair,
            stride: Pair,
            padding: Pair,
            ceil_mode: bool,
            count_include_pad: bool,
            divisor_override: Option<i64>,
        ) -> PyResult<()> {
            let p = params(kernel, stride, padding, (1, 1), ceil_mode);
            let o = avg::AvgOptions { count_include_pad, divisor_override };
            let (x, out) = (x.as_array(), out.as_array_mut());
            run_kernel(py, move || avg::avg_pool2d(x, &p, &o, out))
        }

        #[pyfunction]
        #[allow(clippy::too_many_arguments)]
        fn $avgb<'py>(
            py: Python<'py>,
            dy: PyReadonlyArray3<'py, $t>,
            mut dx: PyReadwriteArray3<'py, $t>,
            kernel: Pair,
            stride: Pair,
            padding: Pair,
            ceil_mode: bool,
            count_include_pad: bool,
            divisor_override: Option<i64>,
        ) -> PyResult<()> {
            let p = params(kernel, stride, padding, (1, 1), ceil_mode);
            let o = avg::AvgOptions { count_include_pad, divisor_override };
            let (dy, dx) = (dy.as_array(), dx.as_array_mut());
            run_kernel(py, move || avg::avg_pool2d_backward(dy, &p, &o, dx))
        }

        #[pyfunction]
        fn $aavg<'py>(py: Python<'py>, x: PyReadonlyArray3<'py, $t>, mut out: PyReadwriteArray3<'py, $t>) -> PyResult<()> {
            let (x, out) = (x.as_array(), out.as_array_mut());
            run_kernel(py, move || adaptive::adaptive_avg_pool2d(x, out))
        }

        #[pyfunction]
        fn $aavgb<'py>(py: Python<'py>, dy: PyReadonlyArray3<'py, $t>, mut dx: PyReadwriteArray3<'py, $t>) -> PyResult<()> {
            let (dy, dx) = (dy.as_array(), dx.as_array_mut());
            run_kernel(py, move || adaptive::adaptive_avg_pool2d_backward(dy, dx))
        }

        #[pyfunction]
        fn $amax<'py>(
            py: Python<'py>,
            x: PyReadonlyArray3<'py, $t>,
            mut out: PyReadwriteArray3<'py, $t>,
            mut indices: Option<PyReadwriteArray3<'py, i64>>,
        ) -> PyResult<()> {
            let (x, out) = (x.as_array(), out.as_array_mut());
            let ix = indices.as_mut().map(|i| i.as_array_mut());
            run_kernel(py, move || adaptive::adaptive_max_pool2d(x, out, ix))
        }

        #[pyfunction]
        fn $unp<'py>(
            py: Python<'py>,
            x: PyReadonlyArray3<'py, $t>,
            indices: PyReadonlyArray3<'py, i64>,
            mut out: PyReadwriteArray3<'py, $t>,
        ) -> PyResult<()> {
            let (x, ix, out) = (x.as_array(), indices.as_array(), out.as_array_mut());
            run_kernel(py, move || unpool::max_unpool2d(x, ix, out))
        }

        #[pyfunction]
        fn $unpb<'py>(
            py: Python<'py>,
            dy: PyReadonlyArray3<'py, $t>,
            indices: PyReadonlyArray3<'py, i64>,
            mut dx: PyReadwriteArray3<'py, $t>,
        ) -> PyResult<()> {
            let (dy, ix, dx) = (dy.as_array(), indices.as_array(), dx.as_array_mut());
            run_kernel(py, move || unpool::max_unpool2d_backward(dy, ix, dx))
        }

        #[pyfunction]
        fn $interp<'py>(
            py: Python<'py>,
            x: PyReadonlyArray3<'py, $t>,
            mut out: PyReadwriteArray3<'py, $t>,
            mode_name: String,
            align_corners: bool,
            scale_h: Option<f64>,
            scale_w: Option<f64>,
        ) -> PyResult<()> {
            let (x, out) = (x.as_array(), out.as_array_mut());
            run_kernel(py, move || {
                interpolate::interpolate(x, mode(&mode_name, align_corners)?, [scale_h, scale_w], out)
            })
        }

        #[pyfunction]
        fn $interpb<'py>(
            py: Python<'py>,
            dy: PyReadonlyArray3<'py, $t>,
            mut dx: PyReadwriteArray3<'py, $t>,
            mode_name: String,
            align_corners: bool,
            scale_h: Option<f64>,
            scale_w: Option<f64>,
        ) -> PyResult<()> {
            let (dy, dx) = (dy.as_array(), dx.as_array_mut());
            run_kernel(py, move || {
                interpolate::interpolate_backward(dy, mode(&mode_name, align_corners)?, [scale_h, scale_w], dx)
            })
        }
    };
}

pool_bindings!(
    f32,
    max_pool2d_f32,
    max_pool_backward_f32,
    avg_pool2d_f32,
    avg_pool2d_backward_f32,
    adaptive_avg_pool2d_f32,
    adaptive_avg_pool2d_backward_f32,
    adaptive_max_pool2d_f32,
    max_unpool2d_f32,
    max_unpool2d_backward_f32,
    interpolate_f32,
    interpolate_backward_f32
);
pool_bindings!(
    f64,
    max_pool2d_f64,
    max_pool_backward_f64,
    avg_pool2d_f64,
    avg_pool2d_backward_f64,
    adaptive_avg_pool2d_f64,
    adaptive_avg_pool2d_backward_f64,
    adaptive_max_pool2d_f64,
    max_unpool2d_f64,
    max_unpool2d_backward_f64,
    interpolate_f64,
    interpolate_backward_f64
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(max_pool2d_f32, m)?)?;
    m.add_function(wrap_pyfunction!(max_pool2d_f64, m)?)?;
    m.add_function(wrap_pyfunction!(max_pool_backward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(max_pool_backward_f64, m)?)?;
    m.add_function(wrap_pyfunction!(avg_pool2d_f32, m)?)?;
    m.add_function(wrap_pyfunction!(avg_pool2d_f64, m)?)?;
    m.add_function(wrap_pyfunction!(avg_pool2d_backward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(avg_pool2d_backward_f64, m)?)?;
    m.add_function(wrap_pyfunction!(adaptive_avg_pool2d_f32, m)?)?;
    m.add_function(wrap_pyfunction!(adaptive_avg_pool2d_f64, m)?)?;
    m.add_function(wrap_pyfunction!(adaptive_avg_pool2d_backward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(adaptive_avg_pool2d_backward_f64, m)?)?;
    m.add_function(wrap_pyfunction!(adaptive_max_pool2d_f32, m)?)?;
    m.add_function(wrap_pyfunction!(adaptive_max_pool2d_f64, m)?)?;
    m.add_function(wrap_pyfunction!(max_unpool2d_f32, m)?)?;
    m.add_function(wrap_pyfunction!(max_unpool2d_f64, m)?)?;
    m.add_function(wrap_pyfunction!(max_unpool2d_backward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(max_unpool2d_backward_f64, m)?)?;
    m.add_function(wrap_pyfunction!(interpolate_f32, m)?)?;
    m.add_function(wrap_pyfunction!(interpolate_f64, m)?)?;
    m.add_function(wrap_pyfunction!(interpolate_backward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(interpolate_backward_f64, m)?)?;
    Ok(())
}
