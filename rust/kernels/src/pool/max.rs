//! Max pooling: forward with optional argmax indices, and the index scatter shared by
//! every max-style backward pass (max_pool1d/2d, adaptive and global max pooling).
//!
//! Semantics are PyTorch's CPU kernel: windows are scanned row-major, a value replaces
//! the running maximum when it is strictly greater or NaN (so NaN propagates and the
//! last NaN of a window wins), padding never wins, and an all `-inf` window reports
//! its first in-bounds position. Indices are flat `h * W + w` offsets in each plane.

use super::{
    check_pooled, chunk, chunk_mut, contiguous, lanes, contiguous_mut, dispatch, for_each_plane, for_each_plane2, prefetch, shape_str, tap_descs, Axis,
    Phases, Pool2d, SimdJob, TapDesc, LANES,
};
use crate::error::{KernelError, KernelResult};
use crate::gemm::Scalar;
use crate::parallel;
use ndarray::{ArrayView3, ArrayViewMut3};

struct Scratch<T> {
    ph: Phases<T>,
    best: Vec<T>,
    arg: Vec<i32>,
    arg64: Vec<i64>,
    first_col: Vec<i32>,
}

struct Plane<'a, T> {
    x: &'a [T],
    out: &'a mut [T],
    idx: Option<&'a mut [i64]>,
    ah: Axis,
    aw: Axis,
    desc: &'a [TapDesc],
    scr: &'a mut Scratch<T>,
}

impl<T: Scalar> SimdJob for Plane<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run(self, avx512: bool) {
        plane(self, avx512)
    }
}

#[inline(always)]
fn plane<T: Scalar>(job: Plane<'_, T>, avx: bool) {
    let Plane { x, out, mut idx, ah, aw, desc, scr } = job;
    #[cfg(target_arch = "x86_64")]
    if avx && lanes::is_f32::<T>() && !desc.is_empty() {
        let idx = idx.as_deref_mut();
        // SAFETY: avx is only true on CPUs with AVX-512F; T is f32.
        unsafe { super::direct::max_plane(lanes::f32s(x), lanes::f32s_mut(out), idx, &ah, &aw, &scr.first_col, desc) };
        return;
    }
    let (w, ow) = (aw.n_in, aw.n_out);
    let owc = aw.out_chunks() * LANES;
    let ninf = T::neg_infinity();
    for oh in 0..ah.n_out {
        let ahead = ((oh * ah.s).saturating_sub(ah.p) * w) * std::mem::size_of::<T>() + 4096;
        prefetch((x.as_ptr() as *const u8).wrapping_add(ahead), ah.s * w * std::mem::size_of::<T>());
        let best = &mut scr.best[..owc];
        best.fill(ninf);
        if idx.is_some() {
            let r0 = (ah.first_valid(oh) * w) as i32;
            for c in 0..owc / LANES {
                let (a, f) = (chunk_mut(&mut scr.arg, c), chunk(&scr.first_col, c));
                for t in 0..LANES {
                    a[t] = r0 + f[t];
                }
            }
        }
        let rs = ah.start(oh);
        for i in 0..ah.k {
            let r = rs + (i * ah.d) as isize;
            if r < 0 {
                continue;
            }
            let r = r as usize;
            if r >= ah.n_in {
                break;
            }
            scr.ph.fill(&x[r * w..(r + 1) * w], aw.p, ninf, avx);
            for j in 0..aw.k {
                let c = j * aw.d;
                let src = &scr.ph.phase(c % aw.s)[c / aw.s..];
                if idx.is_some() {
                    let base = (r * w + c) as i32 - aw.p as i32;
                    lanes::max_idx_into(avx, best, &mut scr.arg[..owc], src, base, aw.s as i32);
                } else {
                    lanes::max_into(avx, best, src);
                }
            }
        }
        out[oh * ow..(oh + 1) * ow].copy_from_slice(&best[..ow]);
        if let Some(idx) = idx.as_deref_mut() {
            for c in 0..owc / LANES {
                let (d, a) = (chunk_mut(&mut scr.arg64, c), chunk(&scr.arg, c));
                for t in 0..LANES {
                    d[t] = a[t] as i64;
                }
            }
            idx[oh * ow..(oh + 1) * ow].copy_from_slice(&scr.arg64[..ow]);
        }
    }
}

/// Max pooling of `x: (P, H, W)` into `out: (P, OH, OW)`, with the argmax of each
/// output written to `indices: (P, OH, OW)` when given. All arrays C-contiguous.
pub fn max_pool2d<T: Scalar>(
    x: ArrayView3<'_, T>,
    params: &Pool2d,
    mut out: ArrayViewMut3<'_, T>,
    indices: Option<ArrayViewMut3<'_, i64>>,
) -> KernelResult<()> {
    let op = "max_pool2d";
    let (p, h, w) = x.dim();
    let [oh, ow] = params.output_shape(op, h, w)?;
    check_pooled(op, "out", out.shape(), x.shape(), [p, oh, ow])?;
    if h.checked_mul(w).is_none_or(|hw| hw > i32::MAX as usize / 2) {
        return Err(KernelError::shape(format!("{op}: planes of {h}x{w} are too large (max 2^30 elements)")));
    }
    let mut indices = indices;
    if let Some(ix) = &indices {
        if ix.dim() != (p, oh, ow) {
            return Err(KernelError::shape(format!(
                "{op}: 'indices' has shape {} but the output is {:?}",
                shape_str(ix.shape()),
                (p, oh, ow)
            )));
        }
    }
    let xs = contiguous(op, "x", &x)?;
    let os = contiguous_mut(op, "out", &mut out)?;
    let is = match indices.as_mut() {
        Some(ix) => Some(contiguous_mut(op, "indices", ix)?),
        None => None,
    };
    if p == 0 {
        return Ok(());
    }
    let ah = params.axis(0, h, oh);
    let aw = params.axis(1, w, ow);
    let owc = aw.out_chunks() * LANES;
    let first_col: Vec<i32> = (0..owc).map(|o| aw.first_valid(o.min(ow - 1)) as i32).collect();
    let new_scratch = || Scratch {
        ph: Phases::new(&aw),
        best: vec![T::zero(); owc],
        arg: vec![0; owc],
        arg64: vec![0; owc],
        first_col: first_col.clone(),
    };
    let hw = h * w;
    let desc = tap_descs(&aw);
    let desc = &desc[..];
    let work = p * oh * ow * params.kernel[0] * params.kernel[1] + p * hw;
    parallel::run(work, || match is {
        Some(is) => for_each_plane2(os, is, oh * ow, new_scratch, |scr, i, out, idx| {
            dispatch(Plane { x: &xs[i * hw..(i + 1) * hw], out, idx: Some(idx), ah, aw, desc, scr })
        }),
        None => {
            for_each_plane(os, oh * ow, new_scratch, |scr, i, out| {
                dispatch(Plane { x: &xs[i * hw..(i + 1) * hw], out, idx: None, ah, aw, desc, scr });
                None
            });
        }
    });
    Ok(())
}

/// Gradient of any max-style pooling: `dx = 0`, then `dx[p, indices[p, k]] += dy[p, k]`
/// for every plane `p` (indices are flat offsets into the `H x W` plane of `dx`).
/// `op` names the calling op in error messages.
pub fn max_pool_backward<T: Scalar>(
    op: &str,
    dy: ArrayView3<'_, T>,
    indices: ArrayView3<'_, i64>,
    mut dx: ArrayViewMut3<'_, T>,
) -> KernelResult<()> {
    if dy.dim() != indices.dim() {
        return Err(KernelError::shape(format!(
            "{op}: 'indices' has shape {} but 'dy' has shape {}",
            shape_str(indices.shape()),
            shape_str(dy.shape())
        )));
    }
    let (p, h, w) = dx.dim();
    if dy.dim().0 != p {
        return Err(KernelError::shape(format!(
            "{op}: 'dy' has shape {} but the input has shape {}",
            shape_str(dy.shape()),
            shape_str(dx.shape())
        )));
    }
    let hw = h * w;
    let n = dy.dim().1 * dy.dim().2;
    let dys = contiguous(op, "dy", &dy)?;
    let ixs = contiguous(op, "indices", &indices)?;
    let dxs = contiguous_mut(op, "dx", &mut dx)?;
    if p == 0 || hw == 0 {
        return Ok(());
    }
    if n == 0 {
        dxs.fill(T::zero());
        return Ok(());
    }
    let bad = parallel::run(p * (hw + n), || {
        for_each_plane(dxs, hw, || (), |_, k, dx| {
            let (dy, ix) = (&dys[k * n..(k + 1) * n], &ixs[k * n..(k + 1) * n]);
            // The next plane's inputs, while this one is scattered.
            prefetch(dys.as_ptr().wrapping_add((k + 1) * n), n * std::mem::size_of::<T>());
            prefetch(ixs.as_ptr().wrapping_add((k + 1) * n), n * 8);
            prefetch(dx.as_ptr().wrapping_add(hw), hw * std::mem::size_of::<T>());
            dx.fill(T::zero());
            let mut bad = None;
            for (&g, &i) in dy.iter().zip(ix) {
                if (i as u64) < hw as u64 {
                    dx[i as usize] = dx[i as usize] + g;
                } else {
                    bad = Some(i);
                }
            }
            bad
        })
    });
    match bad {
        Some(i) => Err(KernelError::param(format!(
            "{op}: 'indices' contains {i}, outside the input plane of {h}x{w} (valid: 0..{hw})"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn naive(x: &Array3<f64>, prm: &Pool2d) -> (Array3<f64>, Array3<i64>) {
        let (p, h, w) = x.dim();
        let [oh, ow] = prm.output_shape("t", h, w).unwrap();
        let mut out = Array3::zeros((p, oh, ow));
        let mut ix = Array3::zeros((p, oh, ow));
        for c in 0..p {
            for i in 0..oh {
                for j in 0..ow {
                    let mut best = f64::NEG_INFINITY;
                    let mut arg = -1i64;
                    for a in 0..prm.kernel[0] {
                        for b in 0..prm.kernel[1] {
                            let r = (i * prm.stride[0] + a * prm.dilation[0]) as isize - prm.padding[0] as isize;
                            let s = (j * prm.stride[1] + b * prm.dilation[1]) as isize - prm.padding[1] as isize;
                            if r < 0 || s < 0 || r >= h as isize || s >= w as isize {
                                continue;
                            }
                            let v = x[[c, r as usize, s as usize]];
                            if arg < 0 || v > best || v.is_nan() {
                                best = v;
                                arg = r as i64 * w as i64 + s as i64;
                            }
                        }
                    }
                    out[[c, i, j]] = best;
                    ix[[c, i, j]] = arg;
                }
            }
        }
        (out, ix)
    }

    #[test]
    fn matches_naive_loops() {
        let mut seed = 1u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) % 7) as f64 - 3.0 // small range: many ties
        };
        for (k, s, pd, d, ceil) in [
            ([2, 2], [2, 2], [0, 0], [1, 1], false),
            ([3, 3], [2, 2], [1, 1], [1, 1], false),
            ([3, 2], [1, 2], [1, 0], [1, 1], true),
            ([3, 3], [2, 3], [1, 1], [2, 1], true),
            ([1, 4], [1, 3], [0, 2], [1, 2], false),
        ] {
            for (h, w) in [(7, 9), (5, 5), (8, 6), (3, 70)] {
                let prm = Pool2d { kernel: k, stride: s, padding: pd, dilation: d, ceil_mode: ceil };
                let Ok([oh, ow]) = prm.output_shape("t", h, w) else { continue };
                let x = Array3::from_shape_fn((3, h, w), |_| rnd());
                let (want, want_ix) = naive(&x, &prm);
                let mut out = Array3::zeros((3, oh, ow));
                let mut ix = Array3::zeros((3, oh, ow));
                max_pool2d(x.view(), &prm, out.view_mut(), Some(ix.view_mut())).unwrap();
                assert_eq!(out, want, "{prm:?} {h}x{w}");
                assert_eq!(ix, want_ix, "{prm:?} {h}x{w}");
                let mut out2 = Array3::zeros((3, oh, ow));
                max_pool2d(x.view(), &prm, out2.view_mut(), None).unwrap();
                assert_eq!(out2, want);
                // f32 takes the SIMD paths (AVX-512 direct kernel for stride 2)
                let x32 = x.mapv(|v| v as f32);
                let mut o32 = Array3::<f32>::zeros((3, oh, ow));
                let mut i32x = Array3::zeros((3, oh, ow));
                max_pool2d(x32.view(), &prm, o32.view_mut(), Some(i32x.view_mut())).unwrap();
                assert_eq!(o32.mapv(|v| v as f64), want, "f32 {prm:?} {h}x{w}");
                assert_eq!(i32x, want_ix, "f32 {prm:?} {h}x{w}");
            }
        }
    }

    #[test]
    fn nan_wins_and_backward_scatters() {
        let mut x = Array3::from_shape_fn((1, 4, 4), |(_, i, j)| (i * 4 + j) as f32);
        x[[0, 0, 1]] = f32::NAN;
        let prm = Pool2d { kernel: [2, 2], stride: [2, 2], padding: [0, 0], dilation: [1, 1], ceil_mode: false };
        let mut out = Array3::zeros((1, 2, 2));
        let mut ix = Array3::zeros((1, 2, 2));
        max_pool2d(x.view(), &prm, out.view_mut(), Some(ix.view_mut())).unwrap();
        assert!(out[[0, 0, 0]].is_nan());
        assert_eq!(ix.iter().copied().collect::<Vec<_>>(), vec![1, 7, 13, 15]);
        let dy = Array3::from_elem((1, 2, 2), 1.0f32);
        let mut dx = Array3::from_elem((1, 4, 4), 9.0f32);
        max_pool_backward("t", dy.view(), ix.view(), dx.view_mut()).unwrap();
        assert_eq!(dx.sum(), 4.0);
        assert_eq!(dx[[0, 0, 1]], 1.0);
        ix[[0, 1, 1]] = 16;
        assert!(max_pool_backward("t", dy.view(), ix.view(), dx.view_mut()).is_err());
    }
}
