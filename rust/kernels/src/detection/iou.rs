//! Pairwise IoU of two box sets in one fused pass: areas precomputed, the second set
//! laid out as structure-of-arrays, each output row written by one vectorised loop,
//! rows shared between threads.

use super::{check_boxes, fmax, fmin, BoxesSoa};
use crate::error::{KernelError, KernelResult};
use crate::gemm::Scalar;
use crate::parallel;
use crate::simd::{level, SimdLevel};
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

#[inline(always)]
fn iou_row<T: Scalar>(a: [T; 4], b: &BoxesSoa<T>, out: &mut [T]) {
    let m = out.len();
    let zero = T::zero();
    let area_a = (a[2] - a[0]) * (a[3] - a[1]);
    let (bx1, by1, bx2, by2, ba) = (&b.x1[..m], &b.y1[..m], &b.x2[..m], &b.y2[..m], &b.area[..m]);
    for j in 0..m {
        let w = fmax(fmin(a[2], bx2[j]) - fmax(a[0], bx1[j]), zero);
        let h = fmax(fmin(a[3], by2[j]) - fmax(a[1], by1[j]), zero);
        let inter = w * h;
        out[j] = inter / (area_a + ba[j] - inter);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq")]
unsafe fn iou_row_avx512<T: Scalar>(a: [T; 4], b: &BoxesSoa<T>, out: &mut [T]) {
    iou_row(a, b, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn iou_row_avx2<T: Scalar>(a: [T; 4], b: &BoxesSoa<T>, out: &mut [T]) {
    iou_row(a, b, out)
}

fn iou_row_dispatch<T: Scalar>(simd: SimdLevel, a: [T; 4], b: &BoxesSoa<T>, out: &mut [T]) {
    match simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the level was detected on this CPU.
        SimdLevel::Avx512 => unsafe { iou_row_avx512(a, b, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        SimdLevel::Avx2Fma => unsafe { iou_row_avx2(a, b, out) },
        _ => iou_row(a, b, out),
    }
}

/// `out[i, j] = IoU(a[i], b[j])` for `a: (N, 4)`, `b: (M, 4)`, `out: (N, M)` (C-contiguous).
///
/// Same arithmetic as torchvision's `box_iou`: `inter / (area_a + area_b - inter)`, so
/// two zero-area boxes give NaN (0 / 0) as there.
pub fn box_iou<T: Scalar>(
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    mut out: ArrayViewMut2<'_, T>,
) -> KernelResult<()> {
    check_boxes("box_iou", "boxes1", &a)?;
    check_boxes("box_iou", "boxes2", &b)?;
    let (n, m) = (a.nrows(), b.nrows());
    if out.dim() != (n, m) {
        return Err(KernelError::shape(format!(
            "box_iou: 'out' has shape {:?}, expected ({n}, {m})",
            out.shape()
        )));
    }
    if n == 0 || m == 0 {
        return Ok(());
    }
    let soa = BoxesSoa::gather(&b, 0..m);
    let rows: Vec<[T; 4]> = (0..n).map(|i| [a[[i, 0]], a[[i, 1]], a[[i, 2]], a[[i, 3]]]).collect();
    let simd = level();
    let Some(flat) = out.as_slice_mut() else {
        return Err(KernelError::shape("box_iou: 'out' must be C-contiguous"));
    };
    parallel::run(n.saturating_mul(m).saturating_mul(8), || {
        // Blocks of rows: enough tasks to balance, few enough to keep overhead low.
        let rows_per_task = (16384 / m).clamp(1, 64);
        flat.par_chunks_mut(m * rows_per_task).enumerate().for_each(|(t, chunk)| {
            for (r, out_row) in chunk.chunks_mut(m).enumerate() {
                iou_row_dispatch(simd, rows[t * rows_per_task + r], &soa, out_row);
            }
        });
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn naive(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
        let mut o = Array2::zeros((a.nrows(), b.nrows()));
        for i in 0..a.nrows() {
            for j in 0..b.nrows() {
                let iw = (a[[i, 2]].min(b[[j, 2]]) - a[[i, 0]].max(b[[j, 0]])).max(0.0);
                let ih = (a[[i, 3]].min(b[[j, 3]]) - a[[i, 1]].max(b[[j, 1]])).max(0.0);
                let inter = iw * ih;
                let aa = (a[[i, 2]] - a[[i, 0]]) * (a[[i, 3]] - a[[i, 1]]);
                let ab = (b[[j, 2]] - b[[j, 0]]) * (b[[j, 3]] - b[[j, 1]]);
                o[[i, j]] = inter / (aa + ab - inter);
            }
        }
        o
    }

    fn boxes(n: usize, seed: u64) -> Array2<f64> {
        let mut s = seed;
        let mut r = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f64) / (1u64 << 31) as f64
        };
        let mut b = Array2::zeros((n, 4));
        for i in 0..n {
            let (x, y) = (r() * 100.0, r() * 100.0);
            b[[i, 0]] = x;
            b[[i, 1]] = y;
            b[[i, 2]] = x + r() * 40.0 - 5.0;
            b[[i, 3]] = y + r() * 40.0 - 5.0;
        }
        b
    }

    #[test]
    fn matches_naive() {
        let (a, b) = (boxes(37, 1), boxes(300, 2));
        let mut out = Array2::zeros((37, 300));
        box_iou(a.view(), b.view(), out.view_mut()).unwrap();
        let r = naive(&a, &b);
        for (x, y) in out.iter().zip(r.iter()) {
            assert!((x - y).abs() <= 1e-12 || (x.is_nan() && y.is_nan()), "{x} vs {y}");
        }
    }

    #[test]
    fn bad_shapes() {
        let a = Array2::<f32>::zeros((3, 5));
        let b = Array2::<f32>::zeros((3, 4));
        let mut out = Array2::zeros((3, 3));
        assert!(box_iou(a.view(), b.view(), out.view_mut()).unwrap_err().to_string().contains("'boxes1'"));
        assert!(box_iou(b.view(), b.view(), Array2::zeros((2, 3)).view_mut()).is_err());
    }
}
