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

/// Output size above which rows are written with streaming stores.
const STREAM_BYTES: usize = 24 << 20;

/// `out[j] = IoU(a, b[j0 + j])`.
#[inline(always)]
fn iou_row_from<T: Scalar>(a: [T; 4], b: &BoxesSoa<T>, j0: usize, out: &mut [T]) {
    let r = j0..j0 + out.len();
    let zero = T::zero();
    let area_a = (a[2] - a[0]) * (a[3] - a[1]);
    let (bx1, by1, bx2, by2, ba) = (
        &b.x1[r.clone()],
        &b.y1[r.clone()],
        &b.x2[r.clone()],
        &b.y2[r.clone()],
        &b.area[r],
    );
    let m = out.len();
    for j in 0..m {
        let w = fmax(fmin(a[2], bx2[j]) - fmax(a[0], bx1[j]), zero);
        let h = fmax(fmin(a[3], by2[j]) - fmax(a[1], by1[j]), zero);
        let inter = w * h;
        out[j] = inter / (area_a + ba[j] - inter);
    }
}

#[inline(always)]
fn iou_row<T: Scalar>(a: [T; 4], b: &BoxesSoa<T>, out: &mut [T]) {
    iou_row_from(a, b, 0, out)
}

crate::multiversion!(fn iou_row_dispatch<T: Scalar>(a: [T; 4], b: &BoxesSoa<T>, out: &mut [T]) -> () => iou_row);

/// Rows written with non-temporal (streaming) stores: for outputs far larger than the
/// caches this skips reading every output line before overwriting it.
#[cfg(target_arch = "x86_64")]
mod stream {
    use super::{iou_row_from, BoxesSoa};
    use std::arch::x86_64::*;

    macro_rules! stream_row {
        ($name:ident, $t:ty, $lanes:expr, $set1:ident, $loadu:ident, $max:ident, $min:ident, $sub:ident,
         $mul:ident, $add:ident, $div:ident, $stream:ident, $zero:ident) => {
            #[target_feature(enable = "avx512f")]
            pub unsafe fn $name(a: [$t; 4], b: &BoxesSoa<$t>, out: &mut [$t]) {
                let m = out.len();
                // Scalar head up to a 64-byte boundary of `out`.
                let misalign = (out.as_ptr() as usize % 64) / std::mem::size_of::<$t>();
                let head = if misalign == 0 {
                    0
                } else {
                    ($lanes - misalign).min(m)
                };
                iou_row_from(a, b, 0, &mut out[..head]);
                let (ax1, ay1, ax2, ay2) = ($set1(a[0]), $set1(a[1]), $set1(a[2]), $set1(a[3]));
                let aa = $set1((a[2] - a[0]) * (a[3] - a[1]));
                let zero = $zero();
                let mut j = head;
                while j + $lanes <= m {
                    let bx1 = $loadu(b.x1.as_ptr().add(j));
                    let by1 = $loadu(b.y1.as_ptr().add(j));
                    let bx2 = $loadu(b.x2.as_ptr().add(j));
                    let by2 = $loadu(b.y2.as_ptr().add(j));
                    let ba = $loadu(b.area.as_ptr().add(j));
                    // Same operation order and NaN behaviour (second operand) as `iou_row`.
                    let w = $max($sub($min(ax2, bx2), $max(ax1, bx1)), zero);
                    let h = $max($sub($min(ay2, by2), $max(ay1, by1)), zero);
                    let inter = $mul(w, h);
                    let union = $sub($add(aa, ba), inter);
                    $stream(out.as_mut_ptr().add(j), $div(inter, union));
                    j += $lanes;
                }
                // Tail: the scalar kernel on the remaining columns of `b`.
                iou_row_from(a, b, j, &mut out[j..]);
            }
        };
    }

    stream_row!(
        row_f32,
        f32,
        16,
        _mm512_set1_ps,
        _mm512_loadu_ps,
        _mm512_max_ps,
        _mm512_min_ps,
        _mm512_sub_ps,
        _mm512_mul_ps,
        _mm512_add_ps,
        _mm512_div_ps,
        _mm512_stream_ps,
        _mm512_setzero_ps
    );
    stream_row!(
        row_f64,
        f64,
        8,
        _mm512_set1_pd,
        _mm512_loadu_pd,
        _mm512_max_pd,
        _mm512_min_pd,
        _mm512_sub_pd,
        _mm512_mul_pd,
        _mm512_add_pd,
        _mm512_div_pd,
        _mm512_stream_pd,
        _mm512_setzero_pd
    );

    #[target_feature(enable = "avx512f")]
    pub unsafe fn fence() {
        _mm_sfence();
    }
}

/// `iou_row` with streaming stores (AVX-512 only; otherwise the plain row).
fn iou_row_stream<T: Scalar>(simd: SimdLevel, a: [T; 4], b: &BoxesSoa<T>, out: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if simd == SimdLevel::Avx512 {
        use std::any::TypeId;
        if TypeId::of::<T>() == TypeId::of::<f32>() {
            // SAFETY: T is f32 (checked above), so these casts are identities; AVX-512F is present.
            unsafe {
                let a = *(&a as *const [T; 4] as *const [f32; 4]);
                let b = &*(b as *const BoxesSoa<T> as *const BoxesSoa<f32>);
                let out = std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut f32, out.len());
                stream::row_f32(a, b, out);
            }
            return;
        }
        if TypeId::of::<T>() == TypeId::of::<f64>() {
            // SAFETY: as above with f64.
            unsafe {
                let a = *(&a as *const [T; 4] as *const [f64; 4]);
                let b = &*(b as *const BoxesSoa<T> as *const BoxesSoa<f64>);
                let out = std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut f64, out.len());
                stream::row_f64(a, b, out);
            }
            return;
        }
    }
    iou_row_dispatch(a, b, out)
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
    // Outputs much larger than the last-level cache go out with streaming stores.
    let stream = n.saturating_mul(m).saturating_mul(std::mem::size_of::<T>()) > STREAM_BYTES;
    parallel::run(n.saturating_mul(m).saturating_mul(8), || {
        // Blocks of rows: enough tasks to balance, few enough to keep overhead low.
        let rows_per_task = (16384 / m).clamp(1, 64);
        flat.par_chunks_mut(m * rows_per_task)
            .enumerate()
            .for_each(|(t, chunk)| {
                for (r, out_row) in chunk.chunks_mut(m).enumerate() {
                    if stream {
                        iou_row_stream(simd, rows[t * rows_per_task + r], &soa, out_row);
                    } else {
                        iou_row_dispatch(rows[t * rows_per_task + r], &soa, out_row);
                    }
                }
                #[cfg(target_arch = "x86_64")]
                if stream && simd == SimdLevel::Avx512 {
                    // SAFETY: AVX-512F present; orders this task's streaming stores.
                    unsafe { stream::fence() };
                }
            });
    });
    Ok(())
}

/// `out[j] = GIoU(a, b[j])` with the operation order of the NumPy/torchvision formula:
/// `iou - (c - union) / c`, `c` the area of the smallest enclosing box.
#[inline(always)]
fn giou_row<T: Scalar>(a: [T; 4], b: &BoxesSoa<T>, out: &mut [T]) {
    let m = out.len();
    let zero = T::zero();
    let area_a = (a[2] - a[0]) * (a[3] - a[1]);
    let (bx1, by1, bx2, by2, ba) = (&b.x1[..m], &b.y1[..m], &b.x2[..m], &b.y2[..m], &b.area[..m]);
    for j in 0..m {
        let w = fmax(fmin(a[2], bx2[j]) - fmax(a[0], bx1[j]), zero);
        let h = fmax(fmin(a[3], by2[j]) - fmax(a[1], by1[j]), zero);
        let inter = w * h;
        let union = area_a + ba[j] - inter;
        let iou = inter / union;
        let cw = fmax(fmax(a[2], bx2[j]) - fmin(a[0], bx1[j]), zero);
        let ch = fmax(fmax(a[3], by2[j]) - fmin(a[1], by1[j]), zero);
        let c = cw * ch;
        out[j] = iou - (c - union) / c;
    }
}

crate::multiversion!(fn giou_row_dispatch<T: Scalar>(a: [T; 4], b: &BoxesSoa<T>, out: &mut [T]) -> () => giou_row);

/// `out[i, j] = GIoU(a[i], b[j])` for `a: (N, 4)`, `b: (M, 4)`, `out: (N, M)` (C-contiguous):
/// `IoU - (C - union) / C` with `C` the area of the smallest box enclosing both, computed
/// in the same order as torchvision's `generalized_box_iou` (degenerate pairs give NaN
/// where it does). One fused pass, parallel over rows.
pub fn generalized_box_iou<T: Scalar>(
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    mut out: ArrayViewMut2<'_, T>,
) -> KernelResult<()> {
    let op = "generalized_box_iou";
    check_boxes(op, "boxes1", &a)?;
    check_boxes(op, "boxes2", &b)?;
    let (n, m) = (a.nrows(), b.nrows());
    if out.dim() != (n, m) {
        return Err(KernelError::shape(format!("{op}: 'out' has shape {:?}, expected ({n}, {m})", out.shape())));
    }
    if n == 0 || m == 0 {
        return Ok(());
    }
    let soa = BoxesSoa::gather(&b, 0..m);
    let rows: Vec<[T; 4]> = (0..n).map(|i| [a[[i, 0]], a[[i, 1]], a[[i, 2]], a[[i, 3]]]).collect();
    let Some(flat) = out.as_slice_mut() else {
        return Err(KernelError::shape(format!("{op}: 'out' must be C-contiguous")));
    };
    parallel::run(n.saturating_mul(m).saturating_mul(16), || {
        let rows_per_task = (16384 / m).clamp(1, 64);
        flat.par_chunks_mut(m * rows_per_task).enumerate().for_each(|(t, chunk)| {
            for (r, out_row) in chunk.chunks_mut(m).enumerate() {
                giou_row_dispatch(rows[t * rows_per_task + r], &soa, out_row);
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
    fn streaming_path_matches_naive() {
        let (a, b) = (boxes(2600, 3), boxes(2601, 4));
        let mut out = Array2::zeros((2600, 2601));
        box_iou(a.view(), b.view(), out.view_mut()).unwrap();
        let (sa, sb) = (a.slice(ndarray::s![..40, ..]).to_owned(), b);
        let r = naive(&sa, &sb);
        for (x, y) in out.slice(ndarray::s![..40, ..]).iter().zip(r.iter()) {
            assert!(x == y || (x.is_nan() && y.is_nan()), "{x} vs {y}");
        }
    }

    #[test]
    fn giou_matches_naive() {
        let (a, b) = (boxes(37, 5), boxes(301, 6));
        let mut out = Array2::zeros((37, 301));
        generalized_box_iou(a.view(), b.view(), out.view_mut()).unwrap();
        let iou = naive(&a, &b);
        for i in 0..37 {
            for j in 0..301 {
                let cw = (a[[i, 2]].max(b[[j, 2]]) - a[[i, 0]].min(b[[j, 0]])).max(0.0);
                let ch = (a[[i, 3]].max(b[[j, 3]]) - a[[i, 1]].min(b[[j, 1]])).max(0.0);
                let iw = (a[[i, 2]].min(b[[j, 2]]) - a[[i, 0]].max(b[[j, 0]])).max(0.0);
                let ih = (a[[i, 3]].min(b[[j, 3]]) - a[[i, 1]].max(b[[j, 1]])).max(0.0);
                let aa = (a[[i, 2]] - a[[i, 0]]) * (a[[i, 3]] - a[[i, 1]]);
                let ab = (b[[j, 2]] - b[[j, 0]]) * (b[[j, 3]] - b[[j, 1]]);
                let union = aa + ab - iw * ih;
                let want = iou[[i, j]] - (cw * ch - union) / (cw * ch);
                let got = out[[i, j]];
                assert!(got == want || (got - want).abs() <= 1e-12 || (got.is_nan() && want.is_nan()), "{got} vs {want}");
            }
        }
        assert!(generalized_box_iou(a.view(), b.view(), Array2::zeros((2, 3)).view_mut()).is_err());
    }

    #[test]
    fn bad_shapes() {
        let a = Array2::<f32>::zeros((3, 5));
        let b = Array2::<f32>::zeros((3, 4));
        let mut out = Array2::zeros((3, 3));
        assert!(box_iou(a.view(), b.view(), out.view_mut())
            .unwrap_err()
            .to_string()
            .contains("'boxes1'"));
        assert!(box_iou(b.view(), b.view(), Array2::zeros((2, 3)).view_mut()).is_err());
    }
}
