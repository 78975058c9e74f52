//! Resizing of image planes (`interpolate` / upsample), forward and backward, with
//! PyTorch's coordinate rules.
//!
//! Arrays are `(P, H, W)` C-contiguous planes; 1-D resizing is the case `H == 1`.
//! `scales[a]` is the user's `scale_factor` for axis `a` when the output size came from
//! it (PyTorch then maps coordinates with `1/scale_factor`, not `in/out`).
//!
//! - nearest: `src = min(floor(dst * scale), in - 1)` computed in float32, with
//!   PyTorch's exact shortcuts for `out == in` and `out == 2 * in`.
//! - bilinear, `align_corners=True`: `src = dst * (in - 1) / (out - 1)`.
//! - bilinear, `align_corners=False`: `src = max(scale * (dst + 0.5) - 0.5, 0)`.

use crate::error::{KernelError, KernelResult};
use crate::gemm::Scalar;
use crate::parallel;
use crate::pool::{contiguous, contiguous_mut, for_each_plane, shape_str};
use ndarray::{ArrayView3, ArrayViewMut3};

/// Interpolation mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Nearest,
    /// Bilinear (linear when `H == 1`).
    Bilinear { align_corners: bool },
}

/// PyTorch's `compute_scales_value`: `1/scale` when a positive scale was given.
fn scale_value(scale: Option<f64>, n_in: usize, n_out: usize) -> f64 {
    match scale {
        Some(s) if s > 0.0 => 1.0 / s,
        _ => n_in as f64 / n_out as f64,
    }
}

/// Source index of output `o` in nearest mode.
pub fn nearest_source(o: usize, n_in: usize, n_out: usize, scale: Option<f64>) -> usize {
    if n_out == n_in {
        return o;
    }
    if n_out == 2 * n_in {
        return o >> 1;
    }
    // float32 arithmetic, as PyTorch's kernel does for every dtype
    let s = match scale {
        Some(s) if s > 0.0 => (1.0 / s) as f32,
        _ => n_in as f32 / n_out as f32,
    };
    ((o as f32 * s).floor() as usize).min(n_in - 1)
}

/// Linear taps of output `o`: `(i0, i1, lambda0, lambda1)`.
pub fn linear_taps<T: Scalar>(
    o: usize,
    n_in: usize,
    n_out: usize,
    align_corners: bool,
    scale: Option<f64>,
) -> (usize, usize, T) {
    let t = |v: f64| T::from_f64(v).unwrap_or_else(T::zero);
    let src: T = if align_corners {
        let s = if n_out > 1 { t((n_in - 1) as f64) / t((n_out - 1) as f64) } else { T::zero() };
        s * t(o as f64)
    } else {
        let s: T = match scale {
            Some(v) if v > 0.0 => t(scale_value(scale, n_in, n_out)),
            _ => t(n_in as f64) / t(n_out as f64),
        };
        // PyTorch evaluates this expression in double and rounds it to the dtype.
        let v = t(s.to_f64().unwrap_or(0.0) * (o as f64 + 0.5) - 0.5);
        if v < T::zero() { T::zero() } else { v }
    };
    let i0 = (src.floor().to_usize().unwrap_or(0)).min(n_in - 1);
    let lam = src - t(i0 as f64);
    let lam = if lam < T::zero() { T::zero() } else if lam > T::one() { T::one() } else { lam };
    let i1 = if i0 + 1 < n_in { i0 + 1 } else { i0 };
    (i0, i1, lam)
}

struct Taps<T> {
    i0: Vec<usize>,
    i1: Vec<usize>,
    l0: Vec<T>,
    l1: Vec<T>,
}

fn taps<T: Scalar>(mode: Mode, n_in: usize, n_out: usize, scale: Option<f64>) -> Taps<T> {
    let mut tp = Taps { i0: vec![], i1: vec![], l0: vec![], l1: vec![] };
    for o in 0..n_out {
        match mode {
            Mode::Nearest => {
                let i = nearest_source(o, n_in, n_out, scale);
                tp.i0.push(i);
                tp.i1.push(i);
                tp.l0.push(T::one());
                tp.l1.push(T::zero());
            }
            Mode::Bilinear { align_corners } => {
                let (i0, i1, lam) = linear_taps::<T>(o, n_in, n_out, align_corners, scale);
                tp.i0.push(i0);
                tp.i1.push(i1);
                tp.l0.push(T::one() - lam);
                tp.l1.push(lam);
            }
        }
    }
    tp
}

fn check(op: &str, small: &[usize], big: &[usize], small_name: &str, big_name: &str) -> KernelResult<()> {
    if small[0] != big[0] {
        return Err(KernelError::shape(format!(
            "{op}: '{big_name}' has shape {} but '{small_name}' has shape {} (plane counts differ)",
            shape_str(big),
            shape_str(small)
        )));
    }
    if small[0] > 0 && (small[1] == 0 || small[2] == 0) && big[1] * big[2] > 0 {
        return Err(KernelError::shape(format!("{op}: '{small_name}' has empty planes (shape {})", shape_str(small))));
    }
    Ok(())
}

/// Resize `x: (P, H, W)` to `out: (P, OH, OW)` (the size is taken from `out`).
pub fn interpolate<T: Scalar>(
    x: ArrayView3<'_, T>,
    mode: Mode,
    scales: [Option<f64>; 2],
    mut out: ArrayViewMut3<'_, T>,
) -> KernelResult<()> {
    let op = "interpolate";
    check(op, x.shape(), out.shape(), "x", "out")?;
    let (p, h, w) = x.dim();
    let (_, oh, ow) = out.dim();
    let xs = contiguous(op, "x", &x)?;
    let os = contiguous_mut(op, "out", &mut out)?;
    if p == 0 || oh * ow == 0 {
        return Ok(());
    }
    let th = taps::<T>(mode, h, oh, scales[0]);
    let tw = taps::<T>(mode, w, ow, scales[1]);
    let nearest = mode == Mode::Nearest;
    parallel::run(p * oh * ow * 4, || {
        for_each_plane(os, oh * ow, || (), |_, k, out| {
            let x = &xs[k * h * w..(k + 1) * h * w];
            for (i, orow) in out.chunks_mut(ow).enumerate() {
                let r0 = &x[th.i0[i] * w..][..w];
                if nearest {
                    for (o, &c) in orow.iter_mut().zip(&tw.i0) {
                        *o = r0[c];
                    }
                    continue;
                }
                let r1 = &x[th.i1[i] * w..][..w];
                let (h0, h1) = (th.l0[i], th.l1[i]);
                for (j, o) in orow.iter_mut().enumerate() {
                    let (c0, c1, w0, w1) = (tw.i0[j], tw.i1[j], tw.l0[j], tw.l1[j]);
                    *o = h0 * (w0 * r0[c0] + w1 * r0[c1]) + h1 * (w0 * r1[c0] + w1 * r1[c1]);
                }
            }
            None
        })
    });
    Ok(())
}

/// Gradient of [`interpolate`]: `dy: (P, OH, OW)` -> `dx: (P, H, W)` (size from `dx`).
pub fn interpolate_backward<T: Scalar>(
    dy: ArrayView3<'_, T>,
    mode: Mode,
    scales: [Option<f64>; 2],
    mut dx: ArrayViewMut3<'_, T>,
) -> KernelResult<()> {
    let op = "interpolate_backward";
    check(op, dx.shape(), dy.shape(), "input", "dy")?;
    let (p, h, w) = dx.dim();
    let (_, oh, ow) = dy.dim();
    let dys = contiguous(op, "dy", &dy)?;
    let dxs = contiguous_mut(op, "dx", &mut dx)?;
    if p == 0 || h * w == 0 {
        return Ok(());
    }
    if oh * ow == 0 {
        dxs.fill(T::zero());
        return Ok(());
    }
    let th = taps::<T>(mode, h, oh, scales[0]);
    let tw = taps::<T>(mode, w, ow, scales[1]);
    let nearest = mode == Mode::Nearest;
    parallel::run(p * oh * ow * 4, || {
        for_each_plane(dxs, h * w, || (), |_, k, dx| {
            let dy = &dys[k * oh * ow..(k + 1) * oh * ow];
            dx.fill(T::zero());
            for (i, grow) in dy.chunks(ow).enumerate() {
                let (b0, b1) = (th.i0[i] * w, th.i1[i] * w);
                if nearest {
                    for (&g, &c) in grow.iter().zip(&tw.i0) {
                        dx[b0 + c] = dx[b0 + c] + g;
                    }
                    continue;
                }
                let (h0, h1) = (th.l0[i], th.l1[i]);
                for (j, &g) in grow.iter().enumerate() {
                    let (c0, c1, w0, w1) = (tw.i0[j], tw.i1[j], tw.l0[j], tw.l1[j]);
                    dx[b0 + c0] = dx[b0 + c0] + h0 * w0 * g;
                    dx[b0 + c1] = dx[b0 + c1] + h0 * w1 * g;
                    dx[b1 + c0] = dx[b1 + c0] + h1 * w0 * g;
                    dx[b1 + c1] = dx[b1 + c1] + h1 * w1 * g;
                }
            }
            None
        })
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn nearest_and_bilinear_small() {
        let x = Array3::from_shape_vec((1, 2, 2), vec![1.0f64, 2.0, 3.0, 4.0]).unwrap();
        let mut out = Array3::zeros((1, 4, 4));
        interpolate(x.view(), Mode::Nearest, [None, None], out.view_mut()).unwrap();
        assert_eq!(out.slice(ndarray::s![0, 0, ..]).to_vec(), vec![1.0, 1.0, 2.0, 2.0]);
        interpolate(x.view(), Mode::Bilinear { align_corners: true }, [None, None], out.view_mut()).unwrap();
        assert!((out[[0, 0, 1]] - (1.0 + 1.0 / 3.0)).abs() < 1e-12);
        assert_eq!(out[[0, 3, 3]], 4.0);
        interpolate(x.view(), Mode::Bilinear { align_corners: false }, [None, None], out.view_mut()).unwrap();
        // src of column 1 = 0.5*1.5-0.5 = 0.25 -> 1*0.75 + 2*0.25
        assert!((out[[0, 0, 1]] - 1.25).abs() < 1e-12);
        assert_eq!(out[[0, 0, 0]], 1.0);
        // adjoint
        let dy = Array3::from_shape_fn((1, 4, 4), |(_, i, j)| (i * 4 + j) as f64);
        let mut dx = Array3::zeros((1, 2, 2));
        interpolate_backward(dy.view(), Mode::Bilinear { align_corners: false }, [None, None], dx.view_mut()).unwrap();
        assert!(((&dy * &out).sum() - (&dx * &x).sum()).abs() < 1e-9);
    }

    #[test]
    fn nearest_uses_given_scale() {
        // in 4, scale 1.7 -> out 6; PyTorch maps with 1/1.7, not 4/6
        let with: Vec<usize> = (0..6).map(|o| nearest_source(o, 4, 6, Some(1.7))).collect();
        assert_eq!(with, vec![0, 0, 1, 1, 2, 2]);
        let without: Vec<usize> = (0..6).map(|o| nearest_source(o, 4, 6, None)).collect();
        assert_eq!(without, vec![0, 0, 1, 2, 2, 3]);
        assert_eq!(nearest_source(4, 3, 5, None), 2);
    }
}
