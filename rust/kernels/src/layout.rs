//! Memory-layout changes that NumPy does slowly: swapping the two leading axes of an
//! `(a, b, k)` array, i.e. `(N, C, H*W) <-> (C, N, H*W)` for batched 1x1 convolutions.
//! A plain parallel copy, so results never depend on the thread count.

use crate::error::{KernelError, KernelResult};
use crate::parallel;
use rayon::prelude::*;

/// Rows of the output copied per task: their source pieces share cache lines.
const ROWS: usize = 16;

#[inline(always)]
fn copy_piece<T: Copy, const K: usize>(dst: &mut [T], src: &[T]) {
    let d: &mut [T; K] = (&mut dst[..K]).try_into().expect("K values");
    let s: &[T; K] = (&src[..K]).try_into().expect("K values");
    *d = *s;
}

/// Copies rows `b0..b0 + rows` of the output from `src`.
#[inline(always)]
fn block<T: Copy>(dst: &mut [T], src: &[T], a: usize, b: usize, k: usize, b0: usize) {
    let rows = dst.len() / (a * k);
    for i in 0..a {
        let s = &src[(i * b + b0) * k..(i * b + b0 + rows) * k];
        for r in 0..rows {
            let d = &mut dst[(r * a + i) * k..(r * a + i + 1) * k];
            let s = &s[r * k..(r + 1) * k];
            match k {
                1 => d[0] = s[0],
                2 => copy_piece::<T, 2>(d, s),
                4 => copy_piece::<T, 4>(d, s),
                8 => copy_piece::<T, 8>(d, s),
                16 => copy_piece::<T, 16>(d, s),
                _ => d.copy_from_slice(s),
            }
        }
    }
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
