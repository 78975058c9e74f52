//! Adaptive average and max pooling: output `i` of an axis of length `n` pooled to
//! `out` covers `[floor(i*n/out), ceil((i+1)*n/out))` (PyTorch's rule). Global pooling
//! is the case `out = 1`. The max gradient goes through [`super::max::max_pool_backward`].

use super::{contiguous, contiguous_mut, for_each_plane, for_each_plane2, shape_str};
use crate::error::{KernelError, KernelResult};
use crate::gemm::Scalar;
use crate::parallel;
use ndarray::{ArrayView3, ArrayViewMut3};

/// Window `[start, end)` of output `i` for an axis of `n` inputs pooled to `out`.
pub fn adaptive_window(i: usize, n: usize, out: usize) -> (usize, usize) {
    let start = (i * n) / out;
    let end = ((i + 1) * n).div_ceil(out);
    (start, end)
}

fn windows(n: usize, out: usize) -> Vec<(usize, usize)> {
    (0..out).map(|i| adaptive_window(i, n, out)).collect()
}

fn check_shapes(op: &str, big: &[usize], small: &[usize], big_name: &str, small_name: &str) -> KernelResult<()> {
    if big[0] != small[0] {
        return Err(KernelError::shape(format!(
            "{op}: '{small_name}' has shape {} but '{big_name}' has shape {} (plane counts differ)",
            shape_str(small),
            shape_str(big)
        )));
    }
    if (big[1] == 0 || big[2] == 0) && big[0] > 0 && small[1] * small[2] > 0 {
        return Err(KernelError::shape(format!(
            "{op}: '{big_name}' has empty planes (shape {})",
            shape_str(big)
        )));
    }
    Ok(())
}

/// Adaptive average pooling `x: (P, H, W)` -> `out: (P, OH, OW)`; the output size is
/// taken from `out`.
pub fn adaptive_avg_pool2d<T: Scalar>(x: ArrayView3<'_, T>, mut out: ArrayViewMut3<'_, T>) -> KernelResult<()> {
    let op = "adaptive_avg_pool2d";
    check_shapes(op, x.shape(), out.shape(), "x", "out")?;
    let (p, h, w) = x.dim();
    let (_, oh, ow) = out.dim();
    let xs = contiguous(op, "x", &x)?;
    let os = contiguous_mut(op, "out", &mut out)?;
    if p == 0 || oh * ow == 0 {
        return Ok(());
    }
    let (wh, ww) = (windows(h, oh), windows(w, ow));
    parallel::run(p * h * w, || {
        for_each_plane(os, oh * ow, || (), |_, k, out| {
            let x = &xs[k * h * w..(k + 1) * h * w];
            for (i, &(h0, h1)) in wh.iter().enumerate() {
                for (j, &(w0, w1)) in ww.iter().enumerate() {
                    let mut sum = T::zero();
                    for r in h0..h1 {
                        for &v in &x[r * w + w0..r * w + w1] {
                            sum = sum + v;
                        }
                    }
                    let area = T::from_usize((h1 - h0) * (w1 - w0)).unwrap_or_else(T::one);
                    out[i * ow + j] = sum / area;
                }
            }
            None
        })
    });
    Ok(())
}

/// Gradient of [`adaptive_avg_pool2d`]: `dy: (P, OH, OW)` -> `dx: (P, H, W)`.
pub fn adaptive_avg_pool2d_backward<T: Scalar>(
    dy: ArrayView3<'_, T>,
    mut dx: ArrayViewMut3<'_, T>,
) -> KernelResult<()> {
    let op = "adaptive_avg_pool2d_backward";
    check_shapes(op, dx.shape(), dy.shape(), "input", "dy")?;
    let (p, h, w) = dx.dim();
    let (_, oh, ow) = dy.dim();
    let dys = contiguous(op, "dy", &dy)?;
    let dxs = contiguous_mut(op, "dx", &mut dx)?;
    if p == 0 || h * w == 0 {
        return Ok(());
    }
    let (wh, ww) = (windows(h, oh), windows(w, ow));
    parallel::run(p * h * w, || {
        for_each_plane(dxs, h * w, || (), |_, k, dx| {
            let dy = &dys[k * oh * ow..(k + 1) * oh * ow];
            dx.fill(T::zero());
            for (i, &(h0, h1)) in wh.iter().enumerate() {
                for (j, &(w0, w1)) in ww.iter().enumerate() {
                    let area = T::from_usize((h1 - h0) * (w1 - w0)).unwrap_or_else(T::one);
                    let g = dy[i * ow + j] / area;
                    for r in h0..h1 {
                        for v in &mut dx[r * w + w0..r * w + w1] {
                            *v = *v + g;
                        }
                    }
                }
            }
            None
        })
    });
    Ok(())
}

/// Adaptive max pooling `x: (P, H, W)` -> `out: (P, OH, OW)` with optional flat argmax
/// `indices: (P, OH, OW)` (NaN wins, first maximum on ties, as in PyTorch).
pub fn adaptive_max_pool2d<T: Scalar>(
    x: ArrayView3<'_, T>,
    mut out: ArrayViewMut3<'_, T>,
    mut indices: Option<ArrayViewMut3<'_, i64>>,
) -> KernelResult<()> {
    let op = "adaptive_max_pool2d";
    check_shapes(op, x.shape(), out.shape(), "x", "out")?;
    if let Some(ix) = &indices {
        if ix.dim() != out.dim() {
            return Err(KernelError::shape(format!(
                "{op}: 'indices' has shape {} but the output is {}",
                shape_str(ix.shape()),
                shape_str(out.shape())
            )));
        }
    }
    let (p, h, w) = x.dim();
    let (_, oh, ow) = out.dim();
    let xs = contiguous(op, "x", &x)?;
    let os = contiguous_mut(op, "out", &mut out)?;
    let mut is = match indices.as_mut() {
        Some(ix) => Some(contiguous_mut(op, "indices", ix)?),
        None => None,
    };
    if p == 0 || oh * ow == 0 {
        return Ok(());
    }
    let (wh, ww) = (windows(h, oh), windows(w, ow));
    let plane = |x: &[T], out: &mut [T], mut idx: Option<&mut [i64]>| {
        for (i, &(h0, h1)) in wh.iter().enumerate() {
            for (j, &(w0, w1)) in ww.iter().enumerate() {
                let mut best = T::neg_infinity();
                let mut arg = h0 * w + w0;
                for r in h0..h1 {
                    for c in w0..w1 {
                        let v = x[r * w + c];
                        if v > best || v.is_nan() {
                            best = v;
                            arg = r * w + c;
                        }
                    }
                }
                out[i * ow + j] = best;
                if let Some(idx) = idx.as_deref_mut() {
                    idx[i * ow + j] = arg as i64;
                }
            }
        }
    };
    let hw = h * w;
    parallel::run(p * hw, || match is.take() {
        Some(is) => for_each_plane2(os, is, oh * ow, || (), |_, k, out, idx| plane(&xs[k * hw..(k + 1) * hw], out, Some(idx))),
        None => {
            for_each_plane(os, oh * ow, || (), |_, k, out| {
                plane(&xs[k * hw..(k + 1) * hw], out, None);
                None
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn windows_follow_pytorch_rule() {
        assert_eq!(windows(5, 3), vec![(0, 2), (1, 4), (3, 5)]);
        assert_eq!(windows(7, 1), vec![(0, 7)]);
        assert_eq!(windows(2, 4), vec![(0, 1), (0, 1), (1, 2), (1, 2)]);
    }

    #[test]
    fn avg_and_max_small() {
        let x = Array3::from_shape_fn((1, 3, 3), |(_, i, j)| (i * 3 + j) as f64);
        let mut out = Array3::zeros((1, 2, 2));
        adaptive_avg_pool2d(x.view(), out.view_mut()).unwrap();
        assert_eq!(out.iter().copied().collect::<Vec<_>>(), vec![2.0, 3.0, 5.0, 6.0]);
        let mut ix = Array3::zeros((1, 2, 2));
        adaptive_max_pool2d(x.view(), out.view_mut(), Some(ix.view_mut())).unwrap();
        assert_eq!(out.iter().copied().collect::<Vec<_>>(), vec![4.0, 5.0, 7.0, 8.0]);
        assert_eq!(ix.iter().copied().collect::<Vec<_>>(), vec![4, 5, 7, 8]);
        let dy = Array3::from_elem((1, 2, 2), 1.0f64);
        let mut dx = Array3::zeros((1, 3, 3));
        adaptive_avg_pool2d_backward(dy.view(), dx.view_mut()).unwrap();
        assert!((dx.sum() - 4.0).abs() < 1e-12);
        assert_eq!(dx[[0, 1, 1]], 1.0);
    }
}
