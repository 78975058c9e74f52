//! Depthwise 2-D convolution (`groups == C_in`, one input channel per group): direct
//! loops over rows, vectorised along the width, parallel over (image, channel) planes.

use super::im2col::{valid_range, SendPtr};
use super::Geom;
use crate::gemm::Scalar;
use crate::parallel;
use rayon::prelude::*;

/// Input row for output row `o` and kernel row `k`, if inside the image.
#[inline]
fn in_row(o: usize, k: usize, s: usize, d: usize, pad: usize, n: usize) -> Option<usize> {
    let pos = o * s + k * d;
    (pos >= pad && pos - pad < n).then(|| pos - pad)
}

/// `dst[j] += wv * src[base + j * s]` for `j` in `0..dst.len()`.
#[inline(always)]
fn axpy_strided<T: Scalar>(dst: &mut [T], src: &[T], base: usize, s: usize, wv: T) {
    if s == 1 {
        let n = dst.len();
        for (d, &v) in dst.iter_mut().zip(&src[base..base + n]) {
            *d = *d + wv * v;
        }
    } else {
        for (j, d) in dst.iter_mut().enumerate() {
            *d = *d + wv * src[base + j * s];
        }
    }
}

pub(crate) fn forward<T: Scalar>(g: &Geom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    let [_, ih, iw] = g.input;
    let [_, oh, ow] = g.output;
    let [_, kh, kw] = g.kernel;
    let (sh, sw) = (g.p.stride[1], g.p.stride[2]);
    let (dh, dw) = (g.p.dilation[1], g.p.dilation[2]);
    let (ph, pw) = (g.p.pad_lo[1], g.p.pad_lo[2]);
    let (iplane, oplane) = (ih * iw, oh * ow);
    let ranges: Vec<(usize, usize)> = (0..kw).map(|kx| valid_range(ow, iw, kx, sw, dw, pw)).collect();
    parallel::run(g.macs(), || {
        out.par_chunks_mut(oplane).enumerate().for_each(|(plane, o)| {
            let ni = plane / g.c_out;
            let co = plane % g.c_out;
            let ci = co / g.og;
            let xin = &x[(ni * g.c_in + ci) * iplane..][..iplane];
            let wk = &w[co * kh * kw..(co + 1) * kh * kw];
            o.fill(bias.map_or(T::zero(), |b| b[co]));
            for y in 0..oh {
                let orow = &mut o[y * ow..(y + 1) * ow];
                for ky in 0..kh {
                    let Some(iy) = in_row(y, ky, sh, dh, ph, ih) else { continue };
                    let xrow = &xin[iy * iw..(iy + 1) * iw];
                    for kx in 0..kw {
                        let (lo, hi) = ranges[kx];
                        if hi > lo {
                            let base = lo * sw + kx * dw - pw;
                            axpy_strided(&mut orow[lo..hi], xrow, base, sw, wk[ky * kw + kx]);
                        }
                    }
                }
            }
        });
    });
}

pub(crate) fn input_grad<T: Scalar>(g: &Geom, dy: &[T], w: &[T], dx: &mut [T]) {
    let [_, ih, iw] = g.input;
    let [_, oh, ow] = g.output;
    let [_, kh, kw] = g.kernel;
    let (sh, sw) = (g.p.stride[1], g.p.stride[2]);
    let (dh, dw) = (g.p.dilation[1], g.p.dilation[2]);
    let (ph, pw) = (g.p.pad_lo[1], g.p.pad_lo[2]);
    let (iplane, oplane) = (ih * iw, oh * ow);
    let ranges: Vec<(usize, usize)> = (0..kw).map(|kx| valid_range(ow, iw, kx, sw, dw, pw)).collect();
    parallel::run(g.macs(), || {
        dx.par_chunks_mut(iplane).enumerate().for_each(|(plane, d)| {
            let ni = plane / g.c_in;
            let ci = plane % g.c_in;
            for m in 0..g.og {
                let co = ci * g.og + m;
                let dyp = &dy[(ni * g.c_out + co) * oplane..][..oplane];
                let wk = &w[co * kh * kw..(co + 1) * kh * kw];
                for y in 0..oh {
                    let dyrow = &dyp[y * ow..(y + 1) * ow];
                    for ky in 0..kh {
                        let Some(iy) = in_row(y, ky, sh, dh, ph, ih) else { continue };
                        let drow = &mut d[iy * iw..(iy + 1) * iw];
                        for kx in 0..kw {
                            let (lo, hi) = ranges[kx];
                            if hi <= lo {
                                continue;
                            }
                            let base = lo * sw + kx * dw - pw;
                            let wv = wk[ky * kw + kx];
                            let src = &dyrow[lo..hi];
                            if sw == 1 {
                                for (a, &v) in drow[base..base + (hi - lo)].iter_mut().zip(src) {
                                    *a = *a + wv * v;
                                }
                            } else {
                                for (j, &v) in src.iter().enumerate() {
                                    let a = &mut drow[base + j * sw];
                                    *a = *a + wv * v;
                                }
                            }
                        }
                    }
                }
            }
        });
    });
}

/// Each output channel's kernel is summed over the batch in a fixed order (images, then
/// rows, lanes reduced at the end), parallel only over channels.
pub(crate) fn weight_grad<T: Scalar>(g: &Geom, dy: &[T], x: &[T], dwt: &mut [T]) {
    let [_, ih, iw] = g.input;
    let [_, oh, ow] = g.output;
    let [_, kh, kw] = g.kernel;
    let (sh, sw) = (g.p.stride[1], g.p.stride[2]);
    let (dh, dw) = (g.p.dilation[1], g.p.dilation[2]);
    let (ph, pw) = (g.p.pad_lo[1], g.p.pad_lo[2]);
    let (iplane, oplane) = (ih * iw, oh * ow);
    let ranges: Vec<(usize, usize)> = (0..kw).map(|kx| valid_range(ow, iw, kx, sw, dw, pw)).collect();
    let kk = kh * kw;
    let ptr = SendPtr(dwt.as_mut_ptr());
    parallel::run(g.macs(), || {
        (0..g.c_out).into_par_iter().for_each_init(
            || vec![T::zero(); kk * ow],
            |acc, co| {
                acc.fill(T::zero());
                let ci = co / g.og;
                for ni in 0..g.n {
                    let dyp = &dy[(ni * g.c_out + co) * oplane..][..oplane];
                    let xin = &x[(ni * g.c_in + ci) * iplane..][..iplane];
                    for y in 0..oh {
                        let dyrow = &dyp[y * ow..(y + 1) * ow];
                        for ky in 0..kh {
                            let Some(iy) = in_row(y, ky, sh, dh, ph, ih) else { continue };
                            let xrow = &xin[iy * iw..(iy + 1) * iw];
                            for kx in 0..kw {
                                let (lo, hi) = ranges[kx];
                                if hi <= lo {
                                    continue;
                                }
                                let base = lo * sw + kx * dw - pw;
                                let a = &mut acc[(ky * kw + kx) * ow + lo..(ky * kw + kx) * ow + hi];
                                if sw == 1 {
                                    for ((a, &d), &v) in a.iter_mut().zip(&dyrow[lo..hi]).zip(&xrow[base..]) {
                                        *a = *a + d * v;
                                    }
                                } else {
                                    for (j, (a, &d)) in a.iter_mut().zip(&dyrow[lo..hi]).enumerate() {
                                        *a = *a + d * xrow[base + j * sw];
                                    }
                                }
                            }
                        }
                    }
                }
                for t in 0..kk {
                    let lane = &acc[t * ow..(t + 1) * ow];
                    let total = super::sum_lanes(ndarray::ArrayView1::from(lane));
                    // SAFETY: channel co alone writes dw[co, ...].
                    unsafe { *ptr.get().add(co * kk + t) = total };
                }
            },
        );
    });
}
