//! Memory-layout changes that NumPy does slowly: swapping the two leading axes of an
//! `(a, b, k)` array, i.e. `(N, C, H*W) <-> (C, N, H*W)` for batched 1x1 convolutions.
//! A plain parallel copy, so results never depend on the thread count.

use crate::error::{KernelError, KernelResult};
use crate::parallel;
use rayon::prelude::*;

/// Rows of the output copied per task: their source pieces share cache lines, and at most
/// 8 write streams (output rows are often a multiple of 4 KiB apart, so they map to the
/// same L1 set, which has 12 ways).
const ROWS: usize = 8;

/// Copies output rows `b0..b0 + rows` (`dst` holds exactly those rows), `K` values per
/// piece (`K == 0`: `k` values, not known at compile time).
#[inline(always)]
fn block_impl<T: Copy, const K: usize>(dst: &mut [T], src: &[T], a: usize, b: usize, k: usize, b0: usize) {
    let rows = dst.len() / (a * k);
    // every read and write below stays inside these two ranges
    let s_lo = b0 * k;
    let s_hi = ((a - 1) * b + b0 + rows) * k;
    assert!(s_hi <= src.len() && s_lo <= s_hi && rows * a * k == dst.len());
    let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
    for i in 0..a {
        for r in 0..rows {
            // SAFETY: source piece (i, b0 + r) and destination piece (r, i) lie inside the
            // checked ranges; the two slices do not overlap (one is borrowed mutably).
            unsafe {
                let s = sp.add((i * b + b0 + r) * k);
                let d = dp.add((r * a + i) * k);
                if K > 0 {
                    std::ptr::copy_nonoverlapping(s, d, K);
                } else {
                    std::ptr::copy_nonoverlapping(s, d, k);
                }
            }
        }
    }
}

#[inline(always)]
fn block_any<T: Copy>(dst: &mut [T], src: &[T], a: usize, b: usize, k: usize, b0: usize) {
    match k {
        1 => block_impl::<T, 1>(dst, src, a, b, k, b0),
        2 => block_impl::<T, 2>(dst, src, a, b, k, b0),
        4 => block_impl::<T, 4>(dst, src, a, b, k, b0),
        8 => block_impl::<T, 8>(dst, src, a, b, k, b0),
        16 => block_impl::<T, 16>(dst, src, a, b, k, b0),
        32 => block_impl::<T, 32>(dst, src, a, b, k, b0),
        64 => block_impl::<T, 64>(dst, src, a, b, k, b0),
        _ => block_impl::<T, 0>(dst, src, a, b, k, b0),
    }
}

/// [`block_any`] compiled for the widest vector moves the CPU has.
fn block<T: Copy>(dst: &mut [T], src: &[T], a: usize, b: usize, k: usize, b0: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512vl,avx2")]
        unsafe fn v4<T: Copy>(dst: &mut [T], src: &[T], a: usize, b: usize, k: usize, b0: usize) {
            block_any(dst, src, a, b, k, b0)
        }
        #[target_feature(enable = "avx2")]
        unsafe fn v3<T: Copy>(dst: &mut [T], src: &[T], a: usize, b: usize, k: usize, b0: usize) {
            block_any(dst, src, a, b, k, b0)
        }
        match crate::simd::level() {
            // SAFETY: the CPU supports the features these versions were compiled for.
            crate::simd::SimdLevel::Avx512 => return unsafe { v4(dst, src, a, b, k, b0) },
            crate::simd::SimdLevel::Avx2Fma => return unsafe { v3(dst, src, a, b, k, b0) },
            _ => {}
        }
    }
    block_any(dst, src, a, b, k, b0)
}

/// `dst[j][i][:] = src[i][j][:]` for `src` viewed as `(a, b, k)` and `dst` as `(b, a, k)`
/// (both C-contiguous).
pub fn swap_leading_axes<T: Copy + Send + Sync>(src: &[T], shape: (usize, usize, usize), dst: &mut [T]) -> KernelResult<()> {
    let (a, b, k) = shape;
    let n = a.checked_mul(b).and_then(|v| v.checked_mul(k));
    if n != Some(src.len()) {
        return Err(KernelError::shape(format!(
            "swap_leading_axes: 'src' has {} elements, which does not match the shape {shape:?}",
            src.len()
        )));
    }
    if dst.len() != src.len() {
        return Err(KernelError::shape(format!(
            "swap_leading_axes: 'dst' has {} elements, expected {} (shape {shape:?})",
            dst.len(),
            src.len()
        )));
    }
    if src.is_empty() {
        return Ok(());
    }
    let chunk = ROWS * a * k;
    parallel::run(src.len(), || {
        dst.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(t, d)| block(d, src, a, b, k, t * ROWS));
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_index_arithmetic_for_many_shapes() {
        for &(a, b, k) in &[(1, 1, 1), (3, 5, 4), (64, 17, 16), (2, 40, 3), (7, 33, 64), (5, 3, 2), (4, 20, 8), (9, 2, 1)] {
            let src: Vec<f32> = (0..a * b * k).map(|v| v as f32).collect();
            let mut dst = vec![0f32; src.len()];
            swap_leading_axes(&src, (a, b, k), &mut dst).unwrap();
            for i in 0..a {
                for j in 0..b {
                    for q in 0..k {
                        assert_eq!(dst[(j * a + i) * k + q], src[(i * b + j) * k + q], "{a} {b} {k}");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut dst = vec![0f64; 6];
        assert!(swap_leading_axes(&[0f64; 5], (2, 3, 1), &mut dst).unwrap_err().to_string().contains("'src'"));
        assert!(swap_leading_axes(&[0f64; 6], (2, 3, 1), &mut dst[..4]).unwrap_err().to_string().contains("'dst'"));
    }
}
