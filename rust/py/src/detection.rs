//! Detection bindings: box IoU, NMS (plain, class-aware, soft), RoIAlign and RoIPool.
//! The Python layer (`oxinet.ops.boxes`) checks dtypes and shapes and makes arrays
//! C-contiguous; kernels re-check shapes and report errors naming the argument.

use crate::guard::run_kernel;
use numpy::{
    IntoPyArray, PyArray1, PyArray4, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray4, PyReadwriteArray2,
    PyReadwriteArray4,
};
use numpy::PyArrayMethods;
use oxinet_kernels::detection::{iou, nms, roi, soft_nms};
use pyo3::prelude::*;

macro_rules! pairwise_binding {
    ($t:ty, $name:ident, $kernel:path, $doc:literal) => {
        #[doc = $doc]
        #[pyfunction]
        fn $name<'py>(
            py: Python<'py>,
            a: PyReadonlyArray2<'py, $t>,
            b: PyReadonlyArray2<'py, $t>,
            mut out: PyReadwriteArray2<'py, $t>,
        ) -> PyResult<()> {
            let (a, b, o) = (a.as_array(), b.as_array(), out.as_array_mut());
            run_kernel(py, move || $kernel(a, b, o))
        }
    };
}
// The caller allocates `out` (N, M), C-contiguous: NumPy backs large arrays with huge pages.
pairwise_binding!(f32, box_iou_f32, iou::box_iou, "Pairwise IoU of boxes1 (N, 4) and boxes2 (M, 4) into `out` (N, M).");
pairwise_binding!(f64, box_iou_f64, iou::box_iou, "Pairwise IoU of boxes1 (N, 4) and boxes2 (M, 4) into `out` (N, M).");
pairwise_binding!(
    f32,
    generalized_box_iou_f32,
    iou::generalized_box_iou,
    "Pairwise generalized IoU of boxes1 (N, 4) and boxes2 (M, 4) into `out` (N, M)."
);
pairwise_binding!(
    f64,
    generalized_box_iou_f64,
    iou::generalized_box_iou,
    "Pairwise generalized IoU of boxes1 (N, 4) and boxes2 (M, 4) into `out` (N, M)."
);

macro_rules! detection_bindings {
    ($t:ty, $nms:ident, $batched:ident, $soft:ident, $align:ident, $align_bw:ident,
     $pool:ident, $pool_bw:ident) => {
        /// Greedy NMS: int64 indices of kept boxes by decreasing score.
        #[pyfunction]
        #[pyo3(signature = (boxes, scores, iou_threshold, score_threshold=None, max_output=None))]
        fn $nms<'py>(
            py: Python<'py>,
            boxes: PyReadonlyArray2<'py, $t>,
            scores: PyReadonlyArray1<'py, $t>,
            iou_threshold: $t,
            score_threshold: Option<$t>,
            max_output: Option<usize>,
        ) -> PyResult<Bound<'py, PyArray1<i64>>> {
            let (b, s) = (boxes.as_array(), scores.as_array());
            let p = nms::NmsParams {
                iou_threshold,
                score_threshold,
                max_output,
            };
            let keep = run_kernel(py, move || nms::nms(b, s, p))?;
            Ok(PyArray1::from_vec(py, keep))
        }

        /// Class-aware NMS over int64 class ids `idxs`.
        #[pyfunction]
        #[pyo3(signature = (boxes, scores, idxs, iou_threshold, score_threshold=None, max_output=None))]
        fn $batched<'py>(
            py: Python<'py>,
            boxes: PyReadonlyArray2<'py, $t>,
            scores: PyReadonlyArray1<'py, $t>,
            idxs: PyReadonlyArray1<'py, i64>,
            iou_threshold: $t,
            score_threshold: Option<$t>,
            max_output: Option<usize>,
        ) -> PyResult<Bound<'py, PyArray1<i64>>> {
            let (b, s, c) = (boxes.as_array(), scores.as_array(), idxs.as_array());
            let p = nms::NmsParams {
                iou_threshold,
                score_threshold,
                max_output,
            };
            let keep = run_kernel(py, move || nms::batched_nms(b, s, c, p))?;
            Ok(PyArray1::from_vec(py, keep))
        }

        /// Soft-NMS: (kept indices, their decayed scores).
        #[pyfunction]
        fn $soft<'py>(
            py: Python<'py>,
            boxes: PyReadonlyArray2<'py, $t>,
            scores: PyReadonlyArray1<'py, $t>,
            gaussian: bool,
            iou_threshold: $t,
            sigma: $t,
            score_threshold: $t,
        ) -> PyResult<(Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<$t>>)> {
            let (b, s) = (boxes.as_array(), scores.as_array());
            let decay = if gaussian {
                soft_nms::Decay::Gaussian { sigma }
            } else {
                soft_nms::Decay::Linear { iou_threshold }
            };
            let (k, v) = run_kernel(py, move || soft_nms::soft_nms(b, s, decay, score_threshold))?;
            Ok((PyArray1::from_vec(py, k), PyArray1::from_vec(py, v)))
        }

        /// RoIAlign forward (K, C, ph, pw).
        #[pyfunction]
        #[allow(clippy::too_many_arguments)]
        fn $align<'py>(
            py: Python<'py>,
            input: PyReadonlyArray4<'py, $t>,
            rois: PyReadonlyArray2<'py, $t>,
            pooled_h: usize,
            pooled_w: usize,
            spatial_scale: $t,
            sampling_ratio: i64,
            aligned: bool,
        ) -> PyResult<Bound<'py, PyArray4<$t>>> {
            let (x, r) = (input.as_array(), rois.as_array());
            let p = roi::RoiAlignParams {
                pooled_h,
                pooled_w,
                spatial_scale,
                sampling_ratio,
                aligned,
            };
            let out = run_kernel(py, move || roi::roi_align(x, r, p))?;
            Ok(out.into_pyarray(py))
        }

        /// RoIAlign backward: accumulates into grad_input (N, C, H, W).
        #[pyfunction]
        #[allow(clippy::too_many_arguments)]
        fn $align_bw<'py>(
            py: Python<'py>,
            grad_output: PyReadonlyArray4<'py, $t>,
            rois: PyReadonlyArray2<'py, $t>,
            mut grad_input: PyReadwriteArray4<'py, $t>,
            pooled_h: usize,
            pooled_w: usize,
            spatial_scale: $t,
            sampling_ratio: i64,
            aligned: bool,
        ) -> PyResult<()> {
            let (g, r, gi) = (grad_output.as_array(), rois.as_array(), grad_input.as_array_mut());
            let p = roi::RoiAlignParams {
                pooled_h,
                pooled_w,
                spatial_scale,
                sampling_ratio,
                aligned,
            };
            run_kernel(py, move || roi::roi_align_backward(g, r, gi, p))
        }

        /// RoIPool forward: (output, argmax).
        #[pyfunction]
        fn $pool<'py>(
            py: Python<'py>,
            input: PyReadonlyArray4<'py, $t>,
            rois: PyReadonlyArray2<'py, $t>,
            pooled_h: usize,
            pooled_w: usize,
            spatial_scale: $t,
        ) -> PyResult<(Bound<'py, PyArray4<$t>>, Bound<'py, PyArray4<i64>>)> {
            let (x, r) = (input.as_array(), rois.as_array());
            let shape = [r.nrows(), x.shape()[1], pooled_h, pooled_w];
            // Recycled memory: no page faults of fresh (K, C, ph, pw) outputs.
            let o = crate::recycle::empty::<$t>(py, &shape)?;
            let a = crate::recycle::empty::<i64>(py, &shape)?;
            {
                let (mut ow, mut aw) = (o.readwrite(), a.readwrite());
                let (ov, av) = (ow.as_array_mut(), aw.as_array_mut());
                let (ov, av) = (
                    ov.into_dimensionality::<numpy::ndarray::Ix4>().expect("4-D"),
                    av.into_dimensionality::<numpy::ndarray::Ix4>().expect("4-D"),
                );
                run_kernel(py, move || roi::roi_pool_into(x, r, spatial_scale, ov, av))?;
            }
            Ok((o.cast_into::<PyArray4<$t>>()?, a.cast_into::<PyArray4<i64>>()?))
        }

        /// RoIPool backward: accumulates into grad_input (N, C, H, W).
        #[pyfunction]
        fn $pool_bw<'py>(
            py: Python<'py>,
            grad_output: PyReadonlyArray4<'py, $t>,
            rois: PyReadonlyArray2<'py, $t>,
            argmax: PyReadonlyArray4<'py, i64>,
            mut grad_input: PyReadwriteArray4<'py, $t>,
        ) -> PyResult<()> {
            let (g, r, a, gi) = (
                grad_output.as_array(),
                rois.as_array(),
                argmax.as_array(),
                grad_input.as_array_mut(),
            );
            run_kernel(py, move || roi::roi_pool_backward(g, r, a, gi))
        }
    };
}

detection_bindings!(
    f32,
    nms_f32,
    batched_nms_f32,
    soft_nms_f32,
    roi_align_f32,
    roi_align_backward_f32,
    roi_pool_f32,
    roi_pool_backward_f32
);
detection_bindings!(
    f64,
    nms_f64,
    batched_nms_f64,
    soft_nms_f64,
    roi_align_f64,
    roi_align_backward_f64,
    roi_pool_f64,
    roi_pool_backward_f64
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(box_iou_f32, m)?)?;
    m.add_function(wrap_pyfunction!(box_iou_f64, m)?)?;
    m.add_function(wrap_pyfunction!(generalized_box_iou_f32, m)?)?;
    m.add_function(wrap_pyfunction!(generalized_box_iou_f64, m)?)?;
    m.add_function(wrap_pyfunction!(nms_f32, m)?)?;
    m.add_function(wrap_pyfunction!(nms_f64, m)?)?;
    m.add_function(wrap_pyfunction!(batched_nms_f32, m)?)?;
    m.add_function(wrap_pyfunction!(batched_nms_f64, m)?)?;
    m.add_function(wrap_pyfunction!(soft_nms_f32, m)?)?;
    m.add_function(wrap_pyfunction!(soft_nms_f64, m)?)?;
    m.add_function(wrap_pyfunction!(roi_align_f32, m)?)?;
    m.add_function(wrap_pyfunction!(roi_align_f64, m)?)?;
    m.add_function(wrap_pyfunction!(roi_align_backward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(roi_align_backward_f64, m)?)?;
    m.add_function(wrap_pyfunction!(roi_pool_f32, m)?)?;
    m.add_function(wrap_pyfunction!(roi_pool_f64, m)?)?;
    m.add_function(wrap_pyfunction!(roi_pool_backward_f32, m)?)?;
    m.add_function(wrap_pyfunction!(roi_pool_backward_f64, m)?)?;
    Ok(())
}
