//! Average pooling, forward and backward, with PyTorch's divisor rules:
//! the window is clipped to `[-pad, n + pad)`; with `count_include_pad` the divisor is
//! the clipped window's area (padding included), otherwise the number of in-bounds
//! elements; `divisor_override` replaces both. Sums run row-major over the window.

use super::{
    check_pooled, contiguous, contiguous_mut, dispatch, for_each_plane, lanes, prefetch, tap_descs, Axis, Phases, Pool2d,
    SimdJob, TapDesc, LANES,
};
use crate::error::{KernelError, KernelResult};
use crate::gemm::Scalar;
use crate::parallel;
use ndarray::{ArrayView3, ArrayViewMut3};

/// How average pooling divides the window sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgOptions {
    pub count_include_pad: bool,
    pub divisor_override: Option<i64>,
}

/// Per-axis factors of the divisor: `(area extent, in-bounds count)` for each output.
fn axis_counts(ax: &Axis) -> Vec<(usize, usize)> {
    (0..ax.n_out)
        .map(|o| {
            let start = ax.start(o);
            let end = (start + ax.k as isize).min((ax.n_in + ax.p) as isize);
            let ext = (end - start).max(0) as usize;
            let valid = (end.min(ax.n_in as isize) - start.max(0)).max(0) as usize;
            (ext, valid)
        })
        .collect()
}

/// Divisors of one output row (padded with ones to whole chunks).
fn divisors<T: Scalar>(opt: &AvgOptions, hc: (usize, usize), wc: &[(usize, usize)]) -> Vec<T> {
    let padded = wc.len().div_ceil(LANES) * LANES;
    wc.iter()
        .chain(std::iter::repeat_n(&(1, 1), padded - wc.len()))
        .map(|&(ext_w, valid_w)| {
            if hc.1 * valid_w == 0 {
                return T::one(); // empty window: sum 0 -> output 0 (PyTorch)
            }
            let d = match opt.divisor_override {
                Some(d) => d as f64,
                None if opt.count_include_pad => (hc.0 * ext_w) as f64,
                None => (hc.1 * valid_w) as f64,
            };
            T::from_f64(d).unwrap_or_else(T::one)
        })
        .collect()
}

fn check(op: &str, params: &Pool2d, opt: &AvgOptions, h: usize, w: usize) -> KernelResult<[usize; 2]> {
    if params.dilation != [1, 1] {
        return Err(KernelError::param(format!("{op}: 'dilation' must be 1, got {:?}", params.dilation)));
    }
    if opt.divisor_override == Some(0) {
        return Err(KernelError::param(format!("{op}: 'divisor_override' must not be zero")));
    }
    params.output_shape(op, h, w)
}

struct Fwd<'a, T> {
    x: &'a [T],
    out: &'a mut [T],
    ah: Axis,
    aw: Axis,
    div: &'a [Vec<T>],
    desc: &'a [TapDesc],
    ph: &'a mut Phases<T>,
    acc: &'a mut [T],
}

impl<T: Scalar> SimdJob for Fwd<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run(self, avx: bool) {
        let Fwd { x, out, ah, aw, div, desc, ph, acc } = self;
        #[cfg(target_arch = "x86_64")]
        if avx && lanes::is_f32::<T>() && !desc.is_empty() {
            // SAFETY: avx is only true on CPUs with AVX-512F; T is f32, so Vec<T> is Vec<f32>.
            let div32 = unsafe { &*(div as *const [Vec<T>] as *const [Vec<f32>]) };
            unsafe { super::direct::avg_plane(lanes::f32s(x), lanes::f32s_mut(out), &ah, &aw, div32, desc) };
            return;
        }
        let (w, ow) = (aw.n_in, aw.n_out);
        for oh in 0..ah.n_out {
            let ahead = ((oh * ah.s).saturating_sub(ah.p) * w) * std::mem::size_of::<T>() + 4096;
            prefetch((x.as_ptr() as *const u8).wrapping_add(ahead), ah.s * w * std::mem::size_of::<T>());
            acc.fill(T::zero());
            let rs = ah.start(oh);
            for i in 0..ah.k {
                let r = rs + i as isize;
                if r < 0 {
                    continue;
                }
                let r = r as usize;
                if r >= ah.n_in {
                    break;
                }
                ph.fill(&x[r * w..(r + 1) * w], aw.p, T::zero(), avx);
                for j in 0..aw.k {
                    lanes::add_into(avx, acc, &ph.phase(j % aw.s)[j / aw.s..]);
                }
            }
            lanes::div_into(avx, acc, &div[oh]);
            out[oh * ow..(oh + 1) * ow].copy_from_slice(&acc[..ow]);
        }
    }
}

struct Bwd<'a, T> {
    dy: &'a [T],
    dx: &'a mut [T],
    ah: Axis,
    aw: Axis,
    div: &'a [Vec<T>],
    ph: &'a mut Phases<T>,
    g: &'a mut [T],
}

impl<T: Scalar> SimdJob for Bwd<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run(self, avx: bool) {
        let Bwd { dy, dx, ah, aw, div, ph, g } = self;
        #[cfg(target_arch = "x86_64")]
        if avx && lanes::is_f32::<T>() && aw.s == 2 {
            // SAFETY: avx is only true on CPUs with AVX-512F; T is f32, so Vec<T> is Vec<f32>.
            let div32 = unsafe { &*(div as *const [Vec<T>] as *const [Vec<f32>]) };
            unsafe { super::direct::avg_backward_plane(lanes::f32s(dy), lanes::f32s_mut(dx), &ah, &aw, div32, lanes::f32s_mut(g)) };
            return;
        }
        let (w, ow, oh_n) = (aw.n_in, aw.n_out, ah.n_out);
        let nc = aw.out_chunks();
        let owc = nc * LANES;
        // Scaled output gradient g = dy / divisor, rows padded to whole chunks.
        for oh in 0..oh_n {
            let grow = &mut g[oh * owc..(oh + 1) * owc];
            grow[..ow].copy_from_slice(&dy[oh * ow..(oh + 1) * ow]);
            lanes::div_into(avx, grow, &div[oh]);
        }
        // Each input row gathers from the output rows whose windows cover it.
        let len = ph.len;
        for r in 0..ah.n_in {
            ph.data.fill(T::zero());
            let rp = r + ah.p;
            for i in 0..ah.k {
                if i > rp || (rp - i) % ah.s != 0 {
                    continue;
                }
                let oh = (rp - i) / ah.s;
                if oh >= oh_n {
                    continue;
                }
                let grow = &g[oh * owc..(oh + 1) * owc];
                for j in 0..aw.k {
                    let dst = &mut ph.data[(j % aw.s) * len + j / aw.s..][..owc];
                    lanes::add_into(avx, dst, grow);
                }
            }
            ph.scatter_to(&mut dx[r * w..(r + 1) * w], aw.p, avx);
        }
    }
}

/// Geometry shared by the forward and backward pass over `(P, H, W)` planes.
struct Plan<T> {
    oh: usize,
    ow: usize,
    ah: Axis,
    aw: Axis,
    /// Divisors per output row, each padded to whole chunks.
    div: Vec<Vec<T>>,
    work: usize,
}

/// Checks the parameters and that `pooled_shape` (the output or its gradient, named
/// `name`) matches what the input-side shape `(p, h, w)` pools to.
fn plan<T: Scalar>(
    op: &str,
    params: &Pool2d,
    opt: &AvgOptions,
    (p, h, w): (usize, usize, usize),
    name: &str,
    pooled_shape: &[usize],
) -> KernelResult<Plan<T>> {
    let [oh, ow] = check(op, params, opt, h, w)?;
    check_pooled(op, name, pooled_shape, &[p, h, w], [p, oh, ow])?;
    let ah = params.axis(0, h, oh);
    let aw = params.axis(1, w, ow);
    let (hc, wc) = (axis_counts(&ah), axis_counts(&aw));
    let div = hc.iter().map(|&c| divisors(opt, c, &wc)).collect();
    let work = p * oh * ow * params.kernel[0] * params.kernel[1] + p * h * w;
    Ok(Plan { oh, ow, ah, aw, div, work })
}

/// Average pooling of `x: (P, H, W)` into `out: (P, OH, OW)` (C-contiguous arrays).
pub fn avg_pool2d<T: Scalar>(
    x: ArrayView3<'_, T>,
    params: &Pool2d,
    opt: &AvgOptions,
    mut out: ArrayViewMut3<'_, T>,
) -> KernelResult<()> {
    let op = "avg_pool2d";
    let (p, h, w) = x.dim();
    let Plan { oh, ow, ah, aw, div, work } = plan(op, params, opt, (p, h, w), "out", out.shape())?;
    let xs = contiguous(op, "x", &x)?;
    let os = contiguous_mut(op, "out", &mut out)?;
    if p == 0 {
        return Ok(());
    }
    let (hw, owc) = (h * w, aw.out_chunks() * LANES);
    let desc = tap_descs(&aw);
    let desc = &desc[..];
    parallel::run(work, || {
        for_each_plane(os, oh * ow, || (Phases::new(&aw), vec![T::zero(); owc]), |(ph, acc), i, out| {
            dispatch(Fwd { x: &xs[i * hw..(i + 1) * hw], out, ah, aw, div: &div, desc, ph, acc });
            None
        })
    });
    Ok(())
}

/// Gradient of [`avg_pool2d`]: `dy: (P, OH, OW)` -> `dx: (P, H, W)`. Every element of
/// `dx` is written once (no separate zero fill).
pub fn avg_pool2d_backward<T: Scalar>(
    dy: ArrayView3<'_, T>,
    params: &Pool2d,
    opt: &AvgOptions,
    mut dx: ArrayViewMut3<'_, T>,
) -> KernelResult<()> {
    let op = "avg_pool2d_backward";
    let (p, h, w) = dx.dim();
    let Plan { oh, ow, ah, aw, div, work } = plan(op, params, opt, (p, h, w), "dy", dy.shape())?;
    let dys = contiguous(op, "dy", &dy)?;
    let dxs = contiguous_mut(op, "dx", &mut dx)?;
    if p == 0 {
        return Ok(());
    }
    let (n, owc) = (oh * ow, aw.out_chunks() * LANES);
    parallel::run(work, || {
        for_each_plane(dxs, h * w, || (Phases::new(&aw), vec![T::zero(); oh * owc]), |(ph, g), i, dx| {
            dispatch(Bwd { dy: &dys[i * n..(i + 1) * n], dx, ah, aw, div: &div, ph, g });
            None
        })
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn naive(x: &Array3<f64>, prm: &Pool2d, opt: &AvgOptions) -> Array3<f64> {
        let (p, h, w) = x.dim();
        let [oh, ow] = prm.output_shape("t", h, w).unwrap();
        let (k, s, pd) = (prm.kernel, prm.stride, prm.padding);
        Array3::from_shape_fn((p, oh, ow), |(c, i, j)| {
            let h0 = (i * s[0]) as isize - pd[0] as isize;
            let w0 = (j * s[1]) as isize - pd[1] as isize;
            let h1 = (h0 + k[0] as isize).min((h + pd[0]) as isize);
            let w1 = (w0 + k[1] as isize).min((w + pd[1]) as isize);
            let pool = (h1 - h0) * (w1 - w0);
            let (h0, w0, h1, w1) = (h0.max(0), w0.max(0), h1.min(h as isize), w1.min(w as isize));
            if h0 >= h1 || w0 >= w1 {
                return 0.0;
            }
            let mut sum = 0.0;
            for r in h0..h1 {
                for q in w0..w1 {
                    sum += x[[c, r as usize, q as usize]];
                }
            }
            let d = opt.divisor_override.unwrap_or(if opt.count_include_pad {
                pool as i64
            } else {
                ((h1 - h0) * (w1 - w0)) as i64
            });
            sum / d as f64
        })
    }

    #[test]
    fn forward_and_adjoint_match_naive() {
        let cases = [
            ([2, 2], [2, 2], [0, 0], false),
            ([3, 3], [2, 2], [1, 1], false),
            ([3, 3], [2, 2], [1, 1], true),
            ([3, 2], [1, 3], [1, 1], true),
            ([4, 1], [3, 1], [2, 0], true),
        ];
        for (k, s, pd, ceil) in cases {
            for (h, w) in [(7, 9), (5, 5), (8, 6), (1, 3), (4, 70)] {
                let prm = Pool2d { kernel: k, stride: s, padding: pd, dilation: [1, 1], ceil_mode: ceil };
                let Ok([oh, ow]) = prm.output_shape("t", h, w) else { continue };
                for opt in [
                    AvgOptions { count_include_pad: true, divisor_override: None },
                    AvgOptions { count_include_pad: false, divisor_override: None },
                    AvgOptions { count_include_pad: false, divisor_override: Some(3) },
                ] {
                    let x = Array3::from_shape_fn((2, h, w), |(c, i, j)| (c * 31 + i * 7 + j * 3) as f64 % 11.0 - 5.0);
                    let want = naive(&x, &prm, &opt);
                    let mut out = Array3::zeros((2, oh, ow));
                    avg_pool2d(x.view(), &prm, &opt, out.view_mut()).unwrap();
                    for (a, b) in out.iter().zip(want.iter()) {
                        assert!((a - b).abs() < 1e-12, "{prm:?} {opt:?} {h}x{w}");
                    }
                    // Backward is the adjoint: <dy, A x> == <A^T dy, x>.
                    let dy = Array3::from_shape_fn((2, oh, ow), |(c, i, j)| ((c + 2 * i + 5 * j) % 7) as f64 - 3.0);
                    let mut dx = Array3::from_elem((2, h, w), f64::NAN);
                    avg_pool2d_backward(dy.view(), &prm, &opt, dx.view_mut()).unwrap();
                    let lhs: f64 = (&dy * &out).sum();
                    let rhs: f64 = (&dx * &x).sum();
                    assert!((lhs - rhs).abs() < 1e-9, "{prm:?} {opt:?} {h}x{w}: {lhs} vs {rhs}");
                    // f32 (SIMD paths) against f64
                    let mut o32 = Array3::<f32>::zeros((2, oh, ow));
                    avg_pool2d(x.mapv(|v| v as f32).view(), &prm, &opt, o32.view_mut()).unwrap();
                    let mut d32 = Array3::<f32>::zeros((2, h, w));
                    avg_pool2d_backward(dy.mapv(|v| v as f32).view(), &prm, &opt, d32.view_mut()).unwrap();
                    for (a, b) in o32.iter().zip(out.iter()).chain(d32.iter().zip(dx.iter())) {
                        assert!((*a as f64 - b).abs() < 1e-5, "f32 {prm:?} {opt:?} {h}x{w}");
                    }
                }
            }
        }
    }
}
