//! Bindings of the layout kernels (`oxinet.nn` batched 1x1 convolutions). Arrays must be
//! C-contiguous; `dst` is written in place.

use crate::guard::run_kernel;
use numpy::{PyReadonlyArrayDyn, PyReadwriteArrayDyn};
use oxinet_kernels::layout::{self, BatchCols};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn not_contiguous(name: &str) -> PyErr {
    PyValueError::new_err(format!("layout: '{name}' must be C-contiguous"))
}

#[allow(clippy::too_many_arguments)]
fn geom(c: usize, n: usize, h: usize, w: usize, kernel: [usize; 2], stride: [usize; 2], dilation: [usize; 2], padding: [usize; 2]) -> BatchCols {
    BatchCols { c, n, h, w, kernel, stride, dilation, padding }
}

macro_rules! layout_bindings {
    ($t:ty, $swap:ident, $im2col:ident, $col2im:ident) => {
        /// Columns `(c*kh*kw, n*oh*ow)` of the image `(c, n, h, w)` into `cols`.
        #[pyfunction]
        #[allow(clippy::too_many_arguments)]
        fn $im2col<'py>(
            py: Python<'py>,
            img: PyReadonlyArrayDyn<'py, $t>,
            c: usize,
            n: usize,
            h: usize,
            w: usize,
            kernel: [usize; 2],
            stride: [usize; 2],
            dilation: [usize; 2],
            padding: [usize; 2],
            mut cols: PyReadwriteArrayDyn<'py, $t>,
        ) -> PyResult<()> {
            let s = img.as_slice().map_err(|_| not_contiguous("img"))?;
            let d = cols.as_slice_mut().map_err(|_| not_contiguous("cols"))?;
            let g = geom(c, n, h, w, kernel, stride, dilation, padding);
            run_kernel(py, move || layout::im2col_batched(s, g, d))
        }

        /// The adjoint: columns `(c*kh*kw, n*oh*ow)` summed into the image `(c, n, h, w)`.
        #[pyfunction]
        #[allow(clippy::too_many_arguments)]
        fn $col2im<'py>(
            py: Python<'py>,
            cols: PyReadonlyArrayDyn<'py, $t>,
            c: usize,
            n: usize,
            h: usize,
            w: usize,
            kernel: [usize; 2],
            stride: [usize; 2],
            dilation: [usize; 2],
            padding: [usize; 2],
            mut img: PyReadwriteArrayDyn<'py, $t>,
        ) -> PyResult<()> {
            let s = cols.as_slice().map_err(|_| not_contiguous("cols"))?;
            let d = img.as_slice_mut().map_err(|_| not_contiguous("img"))?;
            let g = geom(c, n, h, w, kernel, stride, dilation, padding);
            run_kernel(py, move || layout::col2im_batched(s, g, d))
        }

        /// `dst (b, a, k)[j, i, :] = src (a, b, k)[i, j, :]`.
        #[pyfunction]
        fn $swap<'py>(
            py: Python<'py>,
            src: PyReadonlyArrayDyn<'py, $t>,
            a: usize,
            b: usize,
            k: usize,
            mut dst: PyReadwriteArrayDyn<'py, $t>,
        ) -> PyResult<()> {
            let s = src.as_slice().map_err(|_| not_contiguous("src"))?;
            let d = dst.as_slice_mut().map_err(|_| not_contiguous("dst"))?;
            run_kernel(py, move || layout::swap_leading_axes(s, (a, b, k), d))
        }
    };
}

layout_bindings!(f32, swap_leading_axes_f32, im2col_batched_f32, col2im_batched_f32);
layout_bindings!(f64, swap_leading_axes_f64, im2col_batched_f64, col2im_batched_f64);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(swap_leading_axes_f32, m)?)?;
    m.add_function(wrap_pyfunction!(swap_leading_axes_f64, m)?)?;
    m.add_function(wrap_pyfunction!(im2col_batched_f32, m)?)?;
    m.add_function(wrap_pyfunction!(im2col_batched_f64, m)?)?;
    m.add_function(wrap_pyfunction!(col2im_batched_f32, m)?)?;
    m.add_function(wrap_pyfunction!(col2im_batched_f64, m)?)?;
    Ok(())
}
