//! Max unpooling (SegNet-style): each input value is placed at its saved flat index
//! in a zero output plane; the gradient gathers back from those positions.

use super::{contiguous, contiguous_mut, for_each_plane, shape_str};
use crate::error::{KernelError, KernelResult};
use crate::gemm::Scalar;
use crate::parallel;
use ndarray::{ArrayView3, ArrayViewMut3};

fn check(op: &str, small: &[usize], indices: &[usize], big: &[usize], small_name: &str, big_name: &str) -> KernelResult<()> {
    if small != indices {
        return Err(KernelError::shape(format!(
            "{op}: 'indices' has shape {} but '{small_name}' has shape {}",
            shape_str(indices),
            shape_str(small)
        )));
    }
    if small[0] != big[0] {
        return Err(KernelError::shape(format!(
            "{op}: '{big_name}' has shape {} but '{small_name}' has shape {} (plane counts differ)",
            shape_str(big),
            shape_str(small)
        )));
    }
    Ok(())
}

fn bad_index(op: &str, i: i64, oh: usize, ow: usize) -> KernelError {
    KernelError::param(format!(
        "{op}: 'indices' contains {i}, outside the output plane of {oh}x{ow} (valid: 0..{})",
        oh * ow
    ))
}

/// `out[p] = 0; out[p, indices[p, k]] = x[p, k]` for `x, indices: (P, h, w)` and
/// `out: (P, OH, OW)`. Later entries win when indices repeat (PyTorch's CPU order).
pub fn max_unpool2d<T: Scalar>(
    x: ArrayView3<'_, T>,
    indices: ArrayView3<'_, i64>,
    mut out: ArrayViewMut3<'_, T>,
) -> KernelResult<()> {
    let op = "max_unpool2d";
    check(op, x.shape(), indices.shape(), out.shape(), "x", "out")?;
    let (p, h, w) = x.dim();
    let (_, oh, ow) = out.dim();
    let xs = contiguous(op, "x", &x)?;
    let is = contiguous(op, "indices", &indices)?;
    let os = contiguous_mut(op, "out", &mut out)?;
    let (n, m) = (h * w, oh * ow);
    if p == 0 || m == 0 {
        if n > 0 && p > 0 {
            return Err(bad_index(op, is[0], oh, ow));
        }
        return Ok(());
    }
    if n == 0 {
        os.fill(T::zero());
        return Ok(());
    }
    let bad = parallel::run(p * (n + m), || {
        for_each_plane(os, m, || (), |_, k, out| {
                let (x, ix) = (&xs[k * n..(k + 1) * n], &is[k * n..(k + 1) * n]);
                out.fill(T::zero());
                let mut bad = None;
                for (&v, &i) in x.iter().zip(ix) {
                    if (i as u64) < m as u64 {
                        out[i as usize] = v;
                    } else {
                        bad = Some(i);
                    }
                }
                bad
            })
    });
    match bad {
        Some(i) => Err(bad_index(op, i, oh, ow)),
        None => Ok(()),
    }
}

/// Gradient of [`max_unpool2d`]: `dx[p, k] = dy[p, indices[p, k]]`.
pub fn max_unpool2d_backward<T: Scalar>(
    dy: ArrayView3<'_, T>,
    indices: ArrayView3<'_, i64>,
    mut dx: ArrayViewMut3<'_, T>,
) -> KernelResult<()> {
    let op = "max_unpool2d_backward";
    check(op, dx.shape(), indices.shape(), dy.shape(), "dx", "dy")?;
    let (p, h, w) = dx.dim();
    let (_, oh, ow) = dy.dim();
    let dys = contiguous(op, "dy", &dy)?;
    let is = contiguous(op, "indices", &indices)?;
    let dxs = contiguous_mut(op, "dx", &mut dx)?;
    let (n, m) = (h * w, oh * ow);
    if p == 0 || n == 0 {
        return Ok(());
    }
    if m == 0 {
        return Err(bad_index(op, is[0], oh, ow));
    }
    let bad = parallel::run(p * n, || {
        for_each_plane(dxs, n, || (), |_, k, dx| {
                let (dy, ix) = (&dys[k * m..(k + 1) * m], &is[k * n..(k + 1) * n]);
                let mut bad = None;
                for (d, &i) in dx.iter_mut().zip(ix) {
                    if (i as u64) < m as u64 {
                        *d = dy[i as usize];
                    } else {
                        *d = T::zero();
                        bad = Some(i);
                    }
                }
                bad
            })
    });
    match bad {
        Some(i) => Err(bad_index(op, i, oh, ow)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn unpool_roundtrip() {
        let x = Array3::from_shape_vec((1, 1, 2), vec![5.0f32, 7.0]).unwrap();
        let ix = Array3::from_shape_vec((1, 1, 2), vec![3i64, 0]).unwrap();
        let mut out = Array3::from_elem((1, 2, 2), 1.0f32);
        max_unpool2d(x.view(), ix.view(), out.view_mut()).unwrap();
        assert_eq!(out.iter().copied().collect::<Vec<_>>(), vec![7.0, 0.0, 0.0, 5.0]);
        let mut dx = Array3::zeros((1, 1, 2));
        max_unpool2d_backward(out.view(), ix.view(), dx.view_mut()).unwrap();
        assert_eq!(dx, x);
        let bad = Array3::from_shape_vec((1, 1, 2), vec![4i64, 0]).unwrap();
        assert!(max_unpool2d(x.view(), bad.view(), out.view_mut()).is_err());
        assert!(max_unpool2d_backward(out.view(), bad.view(), dx.view_mut()).is_err());
    }
}
