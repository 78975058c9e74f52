//! Depthwise 2-D convolution (`groups == C_in`, one input channel per group): direct
//! loops over rows, vectorised along the width, parallel over (image, channel) planes.

use super::im2col::valid_range;
use super::{all_finite, Geom};
use crate::gemm::Scalar;
use crate::parallel;
use rayon::prelude::*;

/// Input row for output row `o` and kernel row `k`, if inside the image.
#[inline]
fn in_row(o: usize, k: usize, s: usize, d: usize, pad: usize, n: usize) -> Option<usize> {
    let pos = o * s + k * d;
    (pos >= pad && pos - pad < n).then(|| pos - pad)
}

/// `acc + a * b`, fused when the code is compiled for a CPU with FMA.
#[inline(always)]
fn madd<T: Scalar, const FMA: bool>(acc: T, a: T, b: T) -> T {
    if FMA {
        a.mul_add(b, acc)
    } else {
        acc + a * b
    }
}

/// `dst[j] += wv * src[base + j * s]` for `j` in `0..dst.len()`.
#[inline(always)]
fn axpy_strided<T: Scalar, const FMA: bool>(dst: &mut [T], src: &[T], base: usize, s: usize, wv: T) {
    if s == 1 {
        let n = dst.len();
        for (d, &v) in dst.iter_mut().zip(&src[base..base + n]) {
            *d = madd::<T, FMA>(*d, wv, v);
        }
    } else {
        for (j, d) in dst.iter_mut().enumerate() {
            *d = madd::<T, FMA>(*d, wv, src[base + j * s]);
        }
    }
}

/// Defines `$name(args)` that runs `$body::<T, FMA>(args)` compiled for the widest SIMD
/// level the CPU has (AVX-512, AVX2+FMA, or portable code), chosen at run time.
macro_rules! dispatch {
    ($name:ident, $body:ident, ($($arg:ident: $ty:ty),*)) => {
        #[allow(clippy::too_many_arguments)]
        fn $name<T: Scalar>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v4<T: Scalar>($($arg: $ty),*) {
                    $body::<T, true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v3<T: Scalar>($($arg: $ty),*) {
                    $body::<T, true>($($arg),*)
                }
                match crate::simd::level() {
                    // SAFETY: the CPU supports the features these versions were compiled for.
                    crate::simd::SimdLevel::Avx512 => return unsafe { v4::<T>($($arg),*) },
                    crate::simd::SimdLevel::Avx2Fma => return unsafe { v3::<T>($($arg),*) },
                    _ => {}
                }
            }
            $body::<T, false>($($arg),*)
        }
    };
}

/// Plane geometry shared by the per-plane kernels.
#[derive(Clone, Copy)]
struct Plane<'a> {
    ih: usize,
    iw: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    ph: usize,
    pw: usize,
    /// valid output columns per kernel column
    ranges: &'a [(usize, usize)],
}

impl<'a> Plane<'a> {
    fn new(g: &Geom, ranges: &'a mut Vec<(usize, usize)>) -> Plane<'a> {
        let [_, ih, iw] = g.input;
        let [_, oh, ow] = g.output;
        let [_, kh, kw] = g.kernel;
        let (sw, dw, pw) = (g.p.stride[2], g.p.dilation[2], g.p.pad_lo[2]);
        *ranges = (0..kw).map(|kx| valid_range(ow, iw, kx, sw, dw, pw)).collect();
        Plane {
            ih,
            iw,
            oh,
            ow,
            kh,
            kw,
            sh: g.p.stride[1],
            sw,
            dh: g.p.dilation[1],
            dw,
            ph: g.p.pad_lo[1],
            pw,
            ranges,
        }
    }
}

/// One output plane: `o = bias + sum over taps of w[tap] * shifted input plane`.
#[inline(always)]
fn fwd_plane_impl<T: Scalar, const FMA: bool>(pl: &Plane<'_>, xin: &[T], wk: &[T], bias: T, o: &mut [T]) {
    o.fill(bias);
    for y in 0..pl.oh {
        let orow = &mut o[y * pl.ow..(y + 1) * pl.ow];
        for ky in 0..pl.kh {
            let Some(iy) = in_row(y, ky, pl.sh, pl.dh, pl.ph, pl.ih) else {
                continue;
            };
            let xrow = &xin[iy * pl.iw..(iy + 1) * pl.iw];
            for kx in 0..pl.kw {
                let (lo, hi) = pl.ranges[kx];
                if hi > lo {
                    let base = lo * pl.sw + kx * pl.dw - pl.pw;
                    axpy_strided::<T, FMA>(&mut orow[lo..hi], xrow, base, pl.sw, wk[ky * pl.kw + kx]);
                }
            }
        }
    }
}
dispatch!(fwd_plane, fwd_plane_impl, (pl: &Plane<'_>, xin: &[T], wk: &[T], bias: T, o: &mut [T]));

/// One input-gradient plane from the `og` output planes of its channel.
#[inline(always)]
fn dx_plane_impl<T: Scalar, const FMA: bool>(pl: &Plane<'_>, dys: &[&[T]], wks: &[&[T]], d: &mut [T]) {
    for (dyp, wk) in dys.iter().zip(wks) {
        for y in 0..pl.oh {
            let dyrow = &dyp[y * pl.ow..(y + 1) * pl.ow];
            for ky in 0..pl.kh {
                let Some(iy) = in_row(y, ky, pl.sh, pl.dh, pl.ph, pl.ih) else {
                    continue;
                };
                let drow = &mut d[iy * pl.iw..(iy + 1) * pl.iw];
                for kx in 0..pl.kw {
                    let (lo, hi) = pl.ranges[kx];
                    if hi <= lo {
                        continue;
                    }
                    let base = lo * pl.sw + kx * pl.dw - pl.pw;
                    let wv = wk[ky * pl.kw + kx];
                    let src = &dyrow[lo..hi];
                    if pl.sw == 1 {
                        for (a, &v) in drow[base..base + (hi - lo)].iter_mut().zip(src) {
                            *a = madd::<T, FMA>(*a, wv, v);
                        }
                    } else {
                        for (j, &v) in src.iter().enumerate() {
                            let a = &mut drow[base + j * pl.sw];
                            *a = madd::<T, FMA>(*a, wv, v);
                        }
                    }
                }
            }
        }
    }
}
dispatch!(dx_plane, dx_plane_impl, (pl: &Plane<'_>, dys: &[&[T]], wks: &[&[T]], d: &mut [T]));

/// Accumulate one (image, channel) pair into the per-tap lanes `acc (kh * kw, ow)`.
#[inline(always)]
fn dw_plane_impl<T: Scalar, const FMA: bool>(pl: &Plane<'_>, dyp: &[T], xin: &[T], acc: &mut [T]) {
    let ow = pl.ow;
    for y in 0..pl.oh {
        let dyrow = &dyp[y * ow..(y + 1) * ow];
        for ky in 0..pl.kh {
            let Some(iy) = in_row(y, ky, pl.sh, pl.dh, pl.ph, pl.ih) else {
                continue;
            };
            let xrow = &xin[iy * pl.iw..(iy + 1) * pl.iw];
            for kx in 0..pl.kw {
                let (lo, hi) = pl.ranges[kx];
                if hi <= lo {
                    continue;
                }
                let base = lo * pl.sw + kx * pl.dw - pl.pw;
                let t = ky * pl.kw + kx;
                let a = &mut acc[t * ow + lo..t * ow + hi];
                if pl.sw == 1 {
                    for ((a, &d), &v) in a.iter_mut().zip(&dyrow[lo..hi]).zip(&xrow[base..]) {
                        *a = madd::<T, FMA>(*a, d, v);
                    }
                } else {
                    for (j, (a, &d)) in a.iter_mut().zip(&dyrow[lo..hi]).enumerate() {
                        *a = madd::<T, FMA>(*a, d, xrow[base + j * pl.sw]);
                    }
                }
            }
        }
    }
}
dispatch!(dw_plane, dw_plane_impl, (pl: &Plane<'_>, dyp: &[T], xin: &[T], acc: &mut [T]));

/// Slack columns after each padded row.
const B: usize = 16;

/// A zero-padded copy of a plane: `top`/`left` zeros before, enough zeros after that
/// every `B`-wide read the stride-1 kernels make stays inside.
struct Padded<T> {
    buf: Vec<T>,
    cols: usize,
}

impl<T: Scalar> Padded<T> {
    fn new(rows: usize, cols: usize) -> Self {
        let cols = cols + B;
        Padded {
            buf: vec![T::zero(); (rows + 1) * cols],
            cols,
        }
    }
    /// Copy `src (h, w)` to rows `top..`, columns `left..`; the rest stays zero.
    fn fill(&mut self, src: &[T], h: usize, w: usize, top: usize, left: usize) {
        for y in 0..h {
            let o = (top + y) * self.cols + left;
            self.buf[o..o + w].copy_from_slice(&src[y * w..(y + 1) * w]);
        }
    }
    #[inline(always)]
    fn row(&self, r: usize) -> &[T] {
        &self.buf[r * self.cols..(r + 1) * self.cols]
    }
}

/// `dst[j] = dst[j] + wv * src[j]` over whole rows (the loop vectoriser's favourite form).
#[inline(always)]
fn axpy<T: Scalar, const FMA: bool>(dst: &mut [T], src: &[T], wv: T) {
    let src = &src[..dst.len()];
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = madd::<T, FMA>(*d, wv, v);
    }
}

/// `dst[j] += w0 * a[j] + w1 * b[j] + w2 * c[j]`: three taps per load/store of `dst`.
#[inline(always)]
fn axpy3<T: Scalar, const FMA: bool>(dst: &mut [T], a: &[T], b: &[T], c: &[T], w: [T; 3]) {
    let n = dst.len();
    let (a, b, c) = (&a[..n], &b[..n], &c[..n]);
    for j in 0..n {
        let t = madd::<T, FMA>(dst[j], w[0], a[j]);
        let t = madd::<T, FMA>(t, w[1], b[j]);
        dst[j] = madd::<T, FMA>(t, w[2], c[j]);
    }
}

/// All taps of one kernel row: `dst[j] += sum over kx of wrow[kx] * src[off(kx) + j]`
/// with `off(kx) = start + kx * step` (`step` may be negative).
#[inline(always)]
fn taps_row<T: Scalar, const FMA: bool>(dst: &mut [T], src: &[T], wrow: &[T], start: isize, step: isize) {
    let off = |kx: usize| (start + kx as isize * step) as usize;
    let kw = wrow.len();
    let mut kx = 0;
    while kx + 3 <= kw {
        let w = [wrow[kx], wrow[kx + 1], wrow[kx + 2]];
        axpy3::<T, FMA>(dst, &src[off(kx)..], &src[off(kx + 1)..], &src[off(kx + 2)..], w);
        kx += 3;
    }
    while kx < kw {
        axpy::<T, FMA>(dst, &src[off(kx)..], wrow[kx]);
        kx += 1;
    }
}

/// Stride-1 forward plane over a zero-padded input: every tap is a whole-row axpy.
#[inline(always)]
fn fwd_fast_impl<T: Scalar, const FMA: bool>(pl: &Plane<'_>, xp: &Padded<T>, wk: &[T], bias: T, o: &mut [T]) {
    let ow = pl.ow;
    for y in 0..pl.oh {
        let orow = &mut o[y * ow..(y + 1) * ow];
        orow.fill(bias);
        for ky in 0..pl.kh {
            let prow = xp.row(y + ky * pl.dh);
            taps_row::<T, FMA>(orow, prow, &wk[ky * pl.kw..(ky + 1) * pl.kw], 0, pl.dw as isize);
        }
    }
}
dispatch!(fwd_fast, fwd_fast_impl, (pl: &Plane<'_>, xp: &Padded<T>, wk: &[T], bias: T, o: &mut [T]));

/// Stride-1 input-gradient plane: a correlation of the zero-padded output gradient with
/// the flipped kernel; `add` accumulates into `d`.
#[inline(always)]
fn dx_fast_impl<T: Scalar, const FMA: bool>(pl: &Plane<'_>, q: &Padded<T>, wk: &[T], add: bool, d: &mut [T]) {
    let iw = pl.iw;
    let (a, b) = (pl.dh * (pl.kh - 1), pl.dw * (pl.kw - 1));
    for iy in 0..pl.ih {
        let drow = &mut d[iy * iw..(iy + 1) * iw];
        if !add {
            drow.fill(T::zero());
        }
        for ky in 0..pl.kh {
            // dy row iy + ph - ky*dh is stored at row (that + a) of q
            let qrow = q.row(iy + pl.ph + a - ky * pl.dh);
            let wrow = &wk[ky * pl.kw..(ky + 1) * pl.kw];
            taps_row::<T, FMA>(drow, qrow, wrow, (pl.pw + b) as isize, -(pl.dw as isize));
        }
    }
}
dispatch!(dx_fast, dx_fast_impl, (pl: &Plane<'_>, q: &Padded<T>, wk: &[T], add: bool, d: &mut [T]));

/// Stride-1 weight gradient of one (image, channel): per tap, lanes of partial dot
/// products between output-gradient rows and shifted rows of the padded input.
#[inline(always)]
fn dw_fast_impl<T: Scalar, const FMA: bool>(pl: &Plane<'_>, dyp: &[T], xp: &Padded<T>, acc: &mut [T]) {
    let ow = pl.ow;
    for y in 0..pl.oh {
        let drow = &dyp[y * ow..(y + 1) * ow];
        for ky in 0..pl.kh {
            let prow = xp.row(y + ky * pl.dh);
            for kx in 0..pl.kw {
                let t = ky * pl.kw + kx;
                let lane = &mut acc[t * ow..(t + 1) * ow];
                let src = &prow[kx * pl.dw..kx * pl.dw + ow];
                for ((a, &dv), &v) in lane.iter_mut().zip(drow).zip(src) {
                    *a = madd::<T, FMA>(*a, dv, v);
                }
            }
        }
    }
}
dispatch!(dw_fast, dw_fast_impl, (pl: &Plane<'_>, dyp: &[T], xp: &Padded<T>, acc: &mut [T]));

/// A pointer shared by the tasks of one parallel loop, each writing its own elements.
#[derive(Clone, Copy)]
struct SharedOut<T>(*mut T);
// SAFETY: only used to write disjoint elements from different tasks (see forward_phased).
unsafe impl<T> Send for SharedOut<T> {}
unsafe impl<T> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    fn get(&self) -> *mut T {
        self.0
    }
}

pub(crate) fn forward<T: Scalar>(g: &Geom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    let mut ranges = Vec::new();
    let pl = Plane::new(g, &mut ranges);
    if masked_applies(g, &pl) {
        return masked_apply(g, &pl, x, w, bias, 1, out);
    }
    match Phased::input(g, &pl) {
        Some(lay) => forward_phased(g, &pl, &lay, x, w, bias, out),
        None => forward_planes(g, &pl, x, w, bias, out),
    }
}

/// Forward one (image, channel) plane at a time (large planes).
fn forward_planes<T: Scalar>(g: &Geom, pl: &Plane<'_>, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    let pl = *pl;
    let (iplane, oplane, kk) = (pl.ih * pl.iw, pl.oh * pl.ow, pl.kh * pl.kw);
    let fast = pl.sh == 1 && pl.sw == 1;
    let (prows, pcols) = (
        pl.ih + g.p.pad_lo[1] + g.p.pad_hi[1],
        pl.iw + g.p.pad_lo[2] + g.p.pad_hi[2],
    );
    parallel::run(g.macs(), || {
        out.par_chunks_mut(oplane).enumerate().for_each_init(
            || {
                if fast {
                    Some(Padded::<T>::new(prows, pcols))
                } else {
                    None
                }
            },
            |xp, (plane, o)| {
                let ni = plane / g.c_out;
                let co = plane % g.c_out;
                let ci = co / g.og;
                let xin = &x[(ni * g.c_in + ci) * iplane..][..iplane];
                let b = bias.map_or(T::zero(), |b| b[co]);
                let wk = &w[co * kk..(co + 1) * kk];
                match xp {
                    Some(xp) => {
                        xp.fill(xin, pl.ih, pl.iw, pl.ph, pl.pw);
                        fwd_fast(&pl, &*xp, wk, b, o);
                    }
                    None => fwd_plane(&pl, xin, wk, b, o),
                }
            },
        );
    });
}

pub(crate) fn input_grad<T: Scalar>(g: &Geom, dy: &[T], w: &[T], dx: &mut [T]) {
    let mut ranges = Vec::new();
    let pl = Plane::new(g, &mut ranges);
    if pl.oh == 0 || pl.ow == 0 {
        return; // no output positions: the gradient stays zero
    }
    if masked_applies(g, &pl) {
        return masked_apply(g, &pl, dy, w, None, -1, dx);
    }
    match Phased::input(g, &pl) {
        Some(_) => input_grad_phased(g, &pl, dy, w, dx),
        None => input_grad_planes(g, &pl, dy, w, dx),
    }
}

/// Input gradient one (image, channel) plane at a time (large planes).
fn input_grad_planes<T: Scalar>(g: &Geom, pl: &Plane<'_>, dy: &[T], w: &[T], dx: &mut [T]) {
    let pl = *pl;
    let (iplane, oplane, kk) = (pl.ih * pl.iw, pl.oh * pl.ow, pl.kh * pl.kw);
    let fast = pl.sh == 1 && pl.sw == 1;
    let (a, b) = (pl.dh * (pl.kh - 1), pl.dw * (pl.kw - 1));
    // rows/columns of the padded dy: dy row r sits at r + a; reads reach ih + ph + a
    let (qrows, qcols) = ((pl.ih + pl.ph + a).max(pl.oh + a), (pl.iw + pl.pw + b).max(pl.ow + b));
    parallel::run(g.macs(), || {
        dx.par_chunks_mut(iplane).enumerate().for_each_init(
            || {
                if fast {
                    Some(Padded::<T>::new(qrows, qcols))
                } else {
                    None
                }
            },
            |q, (plane, d)| {
                let ni = plane / g.c_in;
                let ci = plane % g.c_in;
                let cos = ci * g.og..(ci + 1) * g.og;
                match q {
                    Some(q) => {
                        for (m, co) in cos.enumerate() {
                            q.fill(&dy[(ni * g.c_out + co) * oplane..][..oplane], pl.oh, pl.ow, a, b);
                            dx_fast(&pl, &*q, &w[co * kk..(co + 1) * kk], m > 0, d);
                        }
                    }
                    None => {
                        let dys: Vec<&[T]> = cos
                            .clone()
                            .map(|co| &dy[(ni * g.c_out + co) * oplane..][..oplane])
                            .collect();
                        let wks: Vec<&[T]> = cos.map(|co| &w[co * kk..(co + 1) * kk]).collect();
                        dx_plane(&pl, &dys, &wks, d);
                    }
                }
            },
        );
    });
}

/// Each output channel's kernel is summed over the batch in a fixed order (images, then
/// rows, lanes reduced at the end), parallel only over channels.
pub(crate) fn weight_grad<T: Scalar>(g: &Geom, dy: &[T], x: &[T], dwt: &mut [T]) {
    let mut ranges = Vec::new();
    let pl = Plane::new(g, &mut ranges);
    if masked_applies(g, &pl) {
        return masked_weight_grad(g, &pl, dy, x, dwt);
    }
    match Phased::input(g, &pl) {
        Some(lay) => weight_grad_phased(g, &pl, &lay, dy, x, dwt),
        None => weight_grad_planes(g, &pl, dy, x, dwt),
    }
}

/// Weight gradient one (image, channel) plane at a time (large planes).
fn weight_grad_planes<T: Scalar>(g: &Geom, pl: &Plane<'_>, dy: &[T], x: &[T], dwt: &mut [T]) {
    let pl = *pl;
    let (iplane, oplane, kk, ow) = (pl.ih * pl.iw, pl.oh * pl.ow, pl.kh * pl.kw, pl.ow);
    let fast = pl.sh == 1 && pl.sw == 1;
    let (prows, pcols) = (
        pl.ih + g.p.pad_lo[1] + g.p.pad_hi[1],
        pl.iw + g.p.pad_lo[2] + g.p.pad_hi[2],
    );
    parallel::run(g.macs(), || {
        dwt.par_chunks_mut(kk).enumerate().for_each_init(
            || (vec![T::zero(); kk * ow], fast.then(|| Padded::<T>::new(prows, pcols))),
            |(acc, pads), (co, out)| {
                let ci = co / g.og;
                acc.fill(T::zero());
                for ni in 0..g.n {
                    let dyp = &dy[(ni * g.c_out + co) * oplane..][..oplane];
                    let xin = &x[(ni * g.c_in + ci) * iplane..][..iplane];
                    match pads {
                        Some(xp) => {
                            xp.fill(xin, pl.ih, pl.iw, pl.ph, pl.pw);
                            dw_fast(&pl, dyp, &*xp, acc);
                        }
                        None => dw_plane(&pl, dyp, xin, acc),
                    }
                }
                for (t, o) in out.iter_mut().enumerate() {
                    *o = super::sum_lanes(ndarray::ArrayView1::from(&acc[t * ow..(t + 1) * ow]));
                }
            },
        );
    });
}

// ------------------------------------------------------------------ phase-split stacked path
//
// Any stride and dilation. The zero-padded input plane (`prows x pcols`) is split into
// `sh * sw` phase planes `P[a][b][r][c] = xpad[r * sh + a][c * sw + b]` of `rows x cols`
// (`rows = ceil(prows / sh)`, `cols = ceil(pcols / sw)`), so tap `(ky, kx)` of output
// `(y, j)` reads `P[ky*dh % sh][kx*dw % sw][y + ky*dh / sh][j + kx*dw / sw]`: a stride-1
// shifted read. The phase planes of a chunk of images are stacked (each phase its own
// region, images one below the other), and every tap becomes one flat shifted read over
// the whole stack, computed on the output grid `(image, y < rows, j < cols)`; positions
// past the output size are computed and dropped. Stride 1 is the one-phase case.

/// Values of one stacked buffer per chunk of images (the chunk fits in L2 with its result).
const PHASE_BUDGET: usize = 1 << 15;
/// Phase planes larger than this (values per image) use the per-plane paths.
const PHASE_MAX_PLANE: usize = 1 << 16;

/// `o[j] = init + sum over taps t of w[t] * src[offs[t] + j]` (`o[j] +=` the sum when `init`
/// is None), all taps of a block of outputs accumulated in registers. Per output the
/// additions run in tap order, like [`flat_taps`], so results are identical to it.
#[inline(always)]
fn flat_taps_blocked_impl<T: Scalar, const FMA: bool>(
    o: &mut [T],
    src: &[T],
    offs: &[usize],
    wk: &[T],
    init: Option<T>,
) {
    const BLK: usize = 32;
    let n = o.len();
    let mut q = 0;
    while q + BLK <= n {
        let mut acc = match init {
            Some(v) => [v; BLK],
            None => {
                let mut a = [T::zero(); BLK];
                a.copy_from_slice(&o[q..q + BLK]);
                a
            }
        };
        for (&off, &wv) in offs.iter().zip(wk) {
            let s = &src[off + q..off + q + BLK];
            for i in 0..BLK {
                acc[i] = madd::<T, FMA>(acc[i], wv, s[i]);
            }
        }
        o[q..q + BLK].copy_from_slice(&acc);
        q += BLK;
    }
    if q < n {
        let o = &mut o[q..];
        if let Some(v) = init {
            o.fill(v);
        }
        for (&off, &wv) in offs.iter().zip(wk) {
            let s = &src[off + q..off + q + o.len()];
            for (d, &v) in o.iter_mut().zip(s) {
                *d = madd::<T, FMA>(*d, wv, v);
            }
        }
    }
}
dispatch!(flat_taps_blocked, flat_taps_blocked_impl, (o: &mut [T], src: &[T], offs: &[usize], wk: &[T], init: Option<T>));


/// Lanes of the weight-gradient dot products.
const DL: usize = 16;

/// `acc[t][i] += sum over q = i (mod 16) of td[q] * src[offs[t] + q]` for every tap `t`:
/// one pass over `td` for all taps (lane `i` of tap `t` sums its products in order of `q`).
#[inline(always)]
fn multi_dot_impl<T: Scalar, const FMA: bool>(td: &[T], src: &[T], offs: &[usize], acc: &mut [[T; DL]]) {
    if offs.len() == 9 {
        let acc: &mut [[T; DL]; 9] = (&mut acc[..9]).try_into().expect("nine taps");
        let offs: &[usize; 9] = offs.try_into().expect("nine taps");
        multi_dot_fixed::<T, FMA, 9>(td, src, offs, acc);
        return;
    }
    let n = td.len();
    let full = n / DL * DL;
    let mut q = 0;
    while q < full {
        let d = &td[q..q + DL];
        for (a, &off) in acc.iter_mut().zip(offs) {
            let s = &src[off + q..off + q + DL];
            for i in 0..DL {
                a[i] = madd::<T, FMA>(a[i], d[i], s[i]);
            }
        }
        q += DL;
    }
    for (a, &off) in acc.iter_mut().zip(offs) {
        for i in 0..n - full {
            a[i] = madd::<T, FMA>(a[i], td[full + i], src[off + full + i]);
        }
    }
}
dispatch!(multi_dot, multi_dot_impl, (td: &[T], src: &[T], offs: &[usize], acc: &mut [[T; DL]]));

/// [`multi_dot_impl`] with the tap count known, so the accumulators stay in registers.
#[inline(always)]
fn multi_dot_fixed<T: Scalar, const FMA: bool, const K: usize>(
    td: &[T],
    src: &[T],
    offs: &[usize; K],
    acc_out: &mut [[T; DL]; K],
) {
    let mut acc = *acc_out;
    let n = td.len();
    let full = n / DL * DL;
    let mut q = 0;
    while q < full {
        let d = &td[q..q + DL];
        for t in 0..K {
            let s = &src[offs[t] + q..offs[t] + q + DL];
            for i in 0..DL {
                acc[t][i] = madd::<T, FMA>(acc[t][i], d[i], s[i]);
            }
        }
        q += DL;
    }
    for t in 0..K {
        for i in 0..n - full {
            acc[t][i] = madd::<T, FMA>(acc[t][i], td[full + i], src[offs[t] + full + i]);
        }
    }
    *acc_out = acc;
}

/// The 16 lanes of a dot product added in a fixed order.
fn fold_dot<T: Scalar>(a: &[T; DL]) -> T {
    let mut h = [T::zero(); 8];
    for i in 0..8 {
        h[i] = a[i] + a[i + 8];
    }
    ((h[0] + h[4]) + (h[1] + h[5])) + ((h[2] + h[6]) + (h[3] + h[7]))
}

/// Layout of the phase-split stacks of one call.
#[derive(Clone, Copy)]
struct Phased {
    sh: usize,
    sw: usize,
    /// rows and columns of one phase plane of one image
    rows: usize,
    cols: usize,
    /// images per chunk
    nb: usize,
    /// values per phase region of the stacked buffer (nb images plus read slack)
    plen: usize,
}

impl Phased {
    /// The forward / weight-gradient layout (the padded input split into phases), or None
    /// when the planes are too large for it.
    fn input(g: &Geom, pl: &Plane<'_>) -> Option<Phased> {
        let prows = pl.ih + g.p.pad_lo[1] + g.p.pad_hi[1];
        let pcols = pl.iw + g.p.pad_lo[2] + g.p.pad_hi[2];
        let (sh, sw) = (pl.sh, pl.sw);
        let (rows, cols) = (prows.div_ceil(sh), pcols.div_ceil(sw));
        let per_img = rows.checked_mul(cols)?.checked_mul(sh * sw)?;
        if per_img > PHASE_MAX_PLANE {
            return None;
        }
        let nb = (PHASE_BUDGET / per_img).clamp(1, g.n.max(1));
        let slack = (pl.kw - 1) * pl.dw / sw;
        Some(Phased { sh, sw, rows, cols, nb, plen: nb * rows * cols + slack })
    }
    fn phases(&self) -> usize {
        self.sh * self.sw
    }
    /// Flat offset of tap `(ky, kx)` in the stacked buffer.
    fn tap(&self, pl: &Plane<'_>, ky: usize, kx: usize) -> usize {
        let (vy, vx) = (ky * pl.dh, kx * pl.dw);
        let phase = (vy % self.sh) * self.sw + vx % self.sw;
        phase * self.plen + (vy / self.sh) * self.cols + vx / self.sw
    }
    /// Length of the output grid that covers the valid outputs of `nimg` images.
    fn out_len(&self, nimg: usize, oh: usize) -> usize {
        ((nimg - 1) * self.rows + oh) * self.cols
    }
}

/// Where each value of an `h x w` plane goes in a phase-split stack: value `(y, x)` sits at
/// padded position `(y + top, x + left)`, i.e. phase `((y + top) % sh, (x + left) % sw)`,
/// row `img * rows + (y + top) / sh`, column `(x + left) / sw` (other positions are never
/// touched). Narrow planes move through a per-value offset map (no per-row overhead),
/// wide ones row by row (stride 1: a copy; stride 2: a vectorised (de)interleave).
struct PlaneMap {
    h: usize,
    w: usize,
    /// per value, offset from the image's base (narrow planes; else empty)
    map: Vec<usize>,
    /// per row, offsets from the image's base of the destinations of x = 0 and x = 1
    /// (wide planes; with stride 1 the row is one run from the first)
    runs: Vec<(usize, usize)>,
}

/// Planes narrower than this move through the offset map.
const MAP_MAX_W: usize = 16;

impl PlaneMap {
    fn new(lay: &Phased, h: usize, w: usize, top: usize, left: usize) -> PlaneMap {
        let at = |y: usize, x: usize| {
            let (py, px) = (y + top, x + left);
            ((py % lay.sh) * lay.sw + px % lay.sw) * lay.plen + (py / lay.sh) * lay.cols + px / lay.sw
        };
        let (mut map, mut runs) = (Vec::new(), Vec::new());
        if w >= MAP_MAX_W && lay.sw <= 2 {
            runs = (0..h).map(|y| (at(y, 0), at(y, 1))).collect();
        } else {
            map = (0..h * w).map(|i| at(i / w, i % w)).collect();
        }
        PlaneMap { h, w, map, runs }
    }
}

/// `a[k] = row[2k]`, `b[k] = row[2k + 1]` for `k < row.len() / 2`.
#[inline(always)]
fn deinterleave<T: Scalar>(row: &[T], a: &mut [T], b: &mut [T]) {
    let n = row.len() / 2;
    let (row, a, b) = (&row[..2 * n], &mut a[..n], &mut b[..n]);
    let full = n / 16 * 16;
    for ((r, u), v) in row[..2 * full]
        .chunks_exact(32)
        .zip(a[..full].chunks_exact_mut(16))
        .zip(b[..full].chunks_exact_mut(16))
    {
        for k in 0..16 {
            u[k] = r[2 * k];
            v[k] = r[2 * k + 1];
        }
    }
    for k in full..n {
        a[k] = row[2 * k];
        b[k] = row[2 * k + 1];
    }
}

/// `row[2k] = a[k]`, `row[2k + 1] = b[k]` for `k < row.len() / 2`.
#[inline(always)]
fn interleave<T: Scalar>(row: &mut [T], a: &[T], b: &[T]) {
    let n = row.len() / 2;
    let (row, a, b) = (&mut row[..2 * n], &a[..n], &b[..n]);
    let full = n / 16 * 16;
    for ((r, u), v) in row[..2 * full]
        .chunks_exact_mut(32)
        .zip(a[..full].chunks_exact(16))
        .zip(b[..full].chunks_exact(16))
    {
        for k in 0..16 {
            r[2 * k] = u[k];
            r[2 * k + 1] = v[k];
        }
    }
    for k in full..n {
        row[2 * k] = a[k];
        row[2 * k + 1] = b[k];
    }
}

/// Two disjoint mutable runs `buf[i..i + n]` and `buf[j..j + m]` (`i != j`, not overlapping).
fn two_runs<T>(buf: &mut [T], i: usize, n: usize, j: usize, m: usize) -> (&mut [T], &mut [T]) {
    if i < j {
        let (lo, hi) = buf.split_at_mut(j);
        (&mut lo[i..i + n], &mut hi[..m])
    } else {
        let (lo, hi) = buf.split_at_mut(i);
        (&mut hi[..n], &mut lo[j..j + m])
    }
}

/// Copies plane `src (h, w)` of chunk image `img` into a phase-split stack.
#[inline(always)]
fn scatter_phases_impl<T: Scalar, const FMA: bool>(buf: &mut [T], lay: &Phased, pm: &PlaneMap, src: &[T], img: usize) {
    let w = pm.w;
    if !pm.map.is_empty() {
        let base = img * lay.rows * lay.cols;
        let dst = &mut buf[base..];
        for (&o, &v) in pm.map.iter().zip(&src[..pm.h * w]) {
            dst[o] = v;
        }
        return;
    }
    for y in 0..pm.h {
        let row = &src[y * w..(y + 1) * w];
        let base = img * lay.rows * lay.cols;
        let (i, j) = (pm.runs[y].0 + base, pm.runs[y].1 + base);
        if lay.sw == 1 {
            buf[i..i + w].copy_from_slice(row);
        } else {
            let (a, b) = two_runs(buf, i, w.div_ceil(2), j, w / 2);
            deinterleave(row, a, b);
            if w % 2 == 1 {
                a[w / 2] = row[w - 1];
            }
        }
    }
}

/// Copies plane `dst (h, w)` of chunk image `img` out of a phase-split grid (the inverse
/// of [`scatter_phases`]).
#[inline(always)]
fn gather_phases_impl<T: Scalar, const FMA: bool>(dst: &mut [T], lay: &Phased, pm: &PlaneMap, res: &[T], img: usize) {
    let w = pm.w;
    if !pm.map.is_empty() {
        let base = img * lay.rows * lay.cols;
        let src = &res[base..];
        for (&o, d) in pm.map.iter().zip(&mut dst[..pm.h * w]) {
            *d = src[o];
        }
        return;
    }
    for y in 0..pm.h {
        let row = &mut dst[y * w..(y + 1) * w];
        let base = img * lay.rows * lay.cols;
        let (i, j) = (pm.runs[y].0 + base, pm.runs[y].1 + base);
        if lay.sw == 1 {
            row.copy_from_slice(&res[i..i + w]);
        } else {
            let (a, b) = (&res[i..i + w.div_ceil(2)], &res[j..j + w / 2]);
            interleave(row, a, b);
            if w % 2 == 1 {
                row[w - 1] = a[w / 2];
            }
        }
    }
}

/// [`scatter_phases_impl`] for `count` chunk images whose planes start at
/// `src[base + i * stride]` (one SIMD dispatch for the whole chunk).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn scatter_images_impl<T: Scalar, const FMA: bool>(
    buf: &mut [T],
    lay: &Phased,
    pm: &PlaneMap,
    src: &[T],
    base: usize,
    stride: usize,
    count: usize,
) {
    let plane = pm.h * pm.w;
    for i in 0..count {
        scatter_phases_impl::<T, FMA>(buf, lay, pm, &src[base + i * stride..][..plane], i);
    }
}
dispatch!(scatter_images, scatter_images_impl, (buf: &mut [T], lay: &Phased, pm: &PlaneMap, src: &[T], base: usize, stride: usize, count: usize));

/// [`gather_phases_impl`] for `count` chunk images whose planes start at
/// `dst[base + i * stride]`.
///
/// # Safety
/// Those planes lie inside the allocation `dst` points into and no other thread touches
/// them during the call.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn gather_images_impl<T: Scalar, const FMA: bool>(
    dst: SharedOut<T>,
    lay: &Phased,
    pm: &PlaneMap,
    res: &[T],
    base: usize,
    stride: usize,
    count: usize,
) {
    let plane = pm.h * pm.w;
    for i in 0..count {
        // SAFETY: guaranteed by the caller.
        let d = unsafe { std::slice::from_raw_parts_mut(dst.get().add(base + i * stride), plane) };
        gather_phases_impl::<T, FMA>(d, lay, pm, res, i);
    }
}

/// Runs [`gather_images_impl`] compiled for the widest SIMD level the CPU has.
///
/// # Safety
/// As for [`gather_images_impl`].
#[allow(clippy::too_many_arguments)]
unsafe fn gather_images<T: Scalar>(
    dst: SharedOut<T>,
    lay: &Phased,
    pm: &PlaneMap,
    res: &[T],
    base: usize,
    stride: usize,
    count: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn v4<T: Scalar>(d: SharedOut<T>, l: &Phased, m: &PlaneMap, r: &[T], b: usize, s: usize, c: usize) {
            unsafe { gather_images_impl::<T, true>(d, l, m, r, b, s, c) }
        }
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn v3<T: Scalar>(d: SharedOut<T>, l: &Phased, m: &PlaneMap, r: &[T], b: usize, s: usize, c: usize) {
            unsafe { gather_images_impl::<T, true>(d, l, m, r, b, s, c) }
        }
        match crate::simd::level() {
            // SAFETY: the CPU supports these features; the rest is the caller's guarantee.
            crate::simd::SimdLevel::Avx512 => return unsafe { v4(dst, lay, pm, res, base, stride, count) },
            crate::simd::SimdLevel::Avx2Fma => return unsafe { v3(dst, lay, pm, res, base, stride, count) },
            _ => {}
        }
    }
    // SAFETY: the caller's guarantee.
    unsafe { gather_images_impl::<T, false>(dst, lay, pm, res, base, stride, count) }
}

/// Forward over phase-split stacks: parallel over (input channel, chunk of images).
fn forward_phased<T: Scalar>(
    g: &Geom,
    pl: &Plane<'_>,
    lay: &Phased,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    out: &mut [T],
) {
    let (iplane, oplane, kk) = (pl.ih * pl.iw, pl.oh * pl.ow, pl.kh * pl.kw);
    let offs: Vec<usize> = (0..kk).map(|t| lay.tap(pl, t / pl.kw, t % pl.kw)).collect();
    let chunks = g.n.div_ceil(lay.nb);
    let outp = SharedOut(out.as_mut_ptr());
    // output grid of a chunk: one phase (stride-1 reads), same row/column pitch
    let grid = Phased { sh: 1, sw: 1, plen: 0, ..*lay };
    let xmap = PlaneMap::new(lay, pl.ih, pl.iw, pl.ph, pl.pw);
    let omap = PlaneMap::new(&grid, pl.oh, pl.ow, 0, 0);
    parallel::run(g.macs(), || {
        (0..g.c_in * chunks).into_par_iter().for_each_init(
            || {
                (
                    vec![T::zero(); lay.phases() * lay.plen],
                    vec![T::zero(); lay.out_len(lay.nb, pl.oh)],
                )
            },
            |(tall, res), task| {
                let (ci, k) = (task / chunks, task % chunks);
                let (n0, n1) = (k * lay.nb, ((k + 1) * lay.nb).min(g.n));
                let (cin, cout) = (g.c_in * iplane, g.c_out * oplane);
                scatter_images(tall, lay, &xmap, x, (n0 * g.c_in + ci) * iplane, cin, n1 - n0);
                let len = lay.out_len(n1 - n0, pl.oh);
                for co in ci * g.og..(ci + 1) * g.og {
                    let b = bias.map_or(T::zero(), |b| b[co]);
                    flat_taps_blocked(&mut res[..len], tall, &offs, &w[co * kk..(co + 1) * kk], Some(b));
                    // SAFETY: output planes (n0..n1, co) are written by this task only, inside `out`.
                    unsafe { gather_images(outp, &grid, &omap, res, (n0 * g.c_out + co) * oplane, cout, n1 - n0) };
                }
            },
        );
    });
}

/// Input gradient over phase-split stacks. With `A = (kh-1)*dh / sh`, `B = (kw-1)*dw / sw`,
/// the output-gradient planes are stacked zero-padded (`A` rows on top, `B` columns on the
/// left, at least as many after) on a `qr x qw` grid; phase `(a, b)` of the padded input
/// gradient, `G[a][b][r][c] = dxpad[r*sh + a][c*sw + b]`, is the sum over the taps with
/// `ky*dh % sh == a`, `kx*dw % sw == b` of `w[ky][kx] * dy[r - ky*dh/sh][c - kx*dw/sw]`: flat
/// shifted reads again. Parallel over (input channel, chunk of images).
fn input_grad_phased<T: Scalar>(g: &Geom, pl: &Plane<'_>, dy: &[T], w: &[T], dx: &mut [T]) {
    let (iplane, oplane, kk) = (pl.ih * pl.iw, pl.oh * pl.ow, pl.kh * pl.kw);
    let (sh, sw) = (pl.sh, pl.sw);
    let (a, b) = ((pl.kh - 1) * pl.dh / sh, (pl.kw - 1) * pl.dw / sw);
    // phase-grid rows/columns that hold input positions
    let (rn, cn) = ((pl.ph + pl.ih - 1) / sh + 1, (pl.pw + pl.iw - 1) / sw + 1);
    let (qr, qw) = ((rn + a).max(a + pl.oh), (cn + b).max(b + pl.ow));
    let per_img = qr * qw;
    let nb = (PHASE_BUDGET / per_img).clamp(1, g.n.max(1));
    let chunks = g.n.div_ceil(nb);
    // the padded output gradients: one region (no phases); reads reach `b` past the stack
    let qlay = Phased { sh: 1, sw: 1, rows: qr, cols: qw, nb, plen: nb * qr * qw + b };
    // the result grid: sh * sw phase regions of `rn` valid rows per image at pitch `qr`
    let rlen = ((nb - 1) * qr + rn) * qw;
    let rlay = Phased { sh, sw, rows: qr, cols: qw, nb, plen: rlen };
    // taps of each phase, in tap order: (offset into the padded dy stack, tap index)
    let mut taps: Vec<Vec<(usize, usize)>> = vec![Vec::new(); sh * sw];
    for t in 0..kk {
        let (vy, vx) = ((t / pl.kw) * pl.dh, (t % pl.kw) * pl.dw);
        let off = (a - vy / sh) * qw + (b - vx / sw);
        taps[(vy % sh) * sw + vx % sw].push((off, t));
    }
    let offs: Vec<Vec<usize>> = taps.iter().map(|v| v.iter().map(|p| p.0).collect()).collect();
    let qmap = PlaneMap::new(&qlay, pl.oh, pl.ow, a, b);
    let rmap = PlaneMap::new(&rlay, pl.ih, pl.iw, pl.ph, pl.pw);
    let dxp = SharedOut(dx.as_mut_ptr());
    parallel::run(g.macs(), || {
        (0..g.c_in * chunks).into_par_iter().for_each_init(
            || {
                (
                    vec![T::zero(); qlay.plen],
                    vec![T::zero(); sh * sw * rlen],
                    vec![T::zero(); kk],
                )
            },
            |(tall, res, wsel), task| {
                let (ci, k) = (task / chunks, task % chunks);
                let (n0, n1) = (k * nb, ((k + 1) * nb).min(g.n));
                let len = ((n1 - n0 - 1) * qr + rn) * qw;
                for (m, co) in (ci * g.og..(ci + 1) * g.og).enumerate() {
                    scatter_images(tall, &qlay, &qmap, dy, (n0 * g.c_out + co) * oplane, g.c_out * oplane, n1 - n0);
                    let wk = &w[co * kk..(co + 1) * kk];
                    let init = if m == 0 { Some(T::zero()) } else { None };
                    for (ph, list) in taps.iter().enumerate() {
                        for (i, &(_, t)) in list.iter().enumerate() {
                            wsel[i] = wk[t];
                        }
                        let r = &mut res[ph * rlen..ph * rlen + len];
                        flat_taps_blocked(r, tall, &offs[ph], &wsel[..list.len()], init);
                    }
                }
                // SAFETY: input planes (n0..n1, ci) are written by this task only, inside `dx`.
                unsafe { gather_images(dxp, &rlay, &rmap, res, (n0 * g.c_in + ci) * iplane, g.c_in * iplane, n1 - n0) };
            },
        );
    });
}

/// Weight gradient over phase-split stacks: per output channel, the input stack (as in
/// the forward) and the output gradient embedded in the output grid (zeros elsewhere), all
/// taps' dot products in one pass per chunk of images, chunks in order. Parallel over
/// output channels only (fixed summation order). A channel whose input holds Inf/NaN goes
/// through the per-plane path (the grid's zeros times Inf would give NaN).
fn weight_grad_phased<T: Scalar>(g: &Geom, pl: &Plane<'_>, lay: &Phased, dy: &[T], x: &[T], dwt: &mut [T]) {
    let (iplane, oplane, kk) = (pl.ih * pl.iw, pl.oh * pl.ow, pl.kh * pl.kw);
    let offs: Vec<usize> = (0..kk).map(|t| lay.tap(pl, t / pl.kw, t % pl.kw)).collect();
    let chunks = g.n.div_ceil(lay.nb);
    let grid = Phased { sh: 1, sw: 1, plen: 0, ..*lay };
    let xmap = PlaneMap::new(lay, pl.ih, pl.iw, pl.ph, pl.pw);
    let omap = PlaneMap::new(&grid, pl.oh, pl.ow, 0, 0);
    parallel::run(g.macs(), || {
        dwt.par_chunks_mut(kk).enumerate().for_each_init(
            || {
                (
                    vec![T::zero(); lay.phases() * lay.plen],
                    vec![T::zero(); lay.out_len(lay.nb, pl.oh)],
                    vec![[T::zero(); DL]; kk],
                )
            },
            |(tall, td, acc), (co, out)| {
                let ci = co / g.og;
                acc.iter_mut().for_each(|a| *a = [T::zero(); DL]);
                for k in 0..chunks {
                    let (n0, n1) = (k * lay.nb, ((k + 1) * lay.nb).min(g.n));
                    scatter_images(tall, lay, &xmap, x, (n0 * g.c_in + ci) * iplane, g.c_in * iplane, n1 - n0);
                    // the whole stack (this chunk's inputs, zeros, and at worst stale values
                    // of an earlier chunk, which only make the check conservative)
                    if !all_finite(tall) {
                        weight_grad_one_plane_path(g, pl, dy, x, co, out);
                        return;
                    }
                    scatter_images(td, &grid, &omap, dy, (n0 * g.c_out + co) * oplane, g.c_out * oplane, n1 - n0);
                    let len = lay.out_len(n1 - n0, pl.oh);
                    multi_dot(&td[..len], tall, &offs, acc);
                }
                for (o, a) in out.iter_mut().zip(acc.iter()) {
                    *o = fold_dot(a);
                }
            },
        );
    });
}

/// Weight gradient of output channel `co` with the per-plane kernels (no padding copies
/// for strided convolutions), as in [`weight_grad`].
fn weight_grad_one_plane_path<T: Scalar>(g: &Geom, pl: &Plane<'_>, dy: &[T], x: &[T], co: usize, out: &mut [T]) {
    let (iplane, oplane, kk, ow) = (pl.ih * pl.iw, pl.oh * pl.ow, pl.kh * pl.kw, pl.ow);
    let ci = co / g.og;
    let mut acc = vec![T::zero(); kk * ow];
    for ni in 0..g.n {
        let dyp = &dy[(ni * g.c_out + co) * oplane..][..oplane];
        let xin = &x[(ni * g.c_in + ci) * iplane..][..iplane];
        dw_plane(pl, dyp, xin, &mut acc);
    }
    for (t, o) in out.iter_mut().enumerate() {
        *o = super::sum_lanes(ndarray::ArrayView1::from(&acc[t * ow..(t + 1) * ow]));
    }
}

// ------------------------------------------------------------ masked path (tiny "same" planes)
//
// Stride 1 with the output plane the size of the input ("same" padding, one output channel
// per input channel) and planes of at most MASKED_MAX_PLANE values: each channel's planes
// are copied whole and back to back (one run per plane, no padding), and tap `t` of
// position `p` reads `plane[p + off_t]` where its mask says the position lies inside the
// image, else 0 (a select, so Inf/NaN of a neighbouring row never leaks in). The same
// multiply-adds in the same order as the padded paths, without their padding waste and
// per-value scatter, which dominate 2x2..8x8 planes.

const MASKED_MAX_PLANE: usize = 64;

/// Per tap: the flat offset of its read and, per plane position, 1 where it is inside.
struct Masks<T> {
    hw: usize,
    slack: usize,
    offs: Vec<isize>,
    masks: Vec<T>,
}

impl<T: Scalar> Masks<T> {
    /// Reads of tap `(ky, kx)` at position `(y, x)`: `(y + sgn * (ky*dh - ph), x + sgn * (kx*dw - pw))`.
    fn new(pl: &Plane<'_>, sgn: isize) -> Masks<T> {
        let (h, w) = (pl.ih as isize, pl.iw as isize);
        let (mut offs, mut masks) = (Vec::new(), Vec::new());
        for ky in 0..pl.kh {
            for kx in 0..pl.kw {
                let dy = sgn * ((ky * pl.dh) as isize - pl.ph as isize);
                let dx = sgn * ((kx * pl.dw) as isize - pl.pw as isize);
                offs.push(dy * w + dx);
                for y in 0..h {
                    for x in 0..w {
                        let inside = (0..h).contains(&(y + dy)) && (0..w).contains(&(x + dx));
                        masks.push(if inside { T::one() } else { T::zero() });
                    }
                }
            }
        }
        let slack = offs.iter().map(|o| o.unsigned_abs()).max().unwrap_or(0);
        Masks { hw: pl.ih * pl.iw, slack, offs, masks }
    }
}

fn masked_applies(g: &Geom, pl: &Plane<'_>) -> bool {
    pl.sh == 1 && pl.sw == 1 && pl.oh == pl.ih && pl.ow == pl.iw && g.og == 1 && g.n > 1
        && pl.ih * pl.iw <= MASKED_MAX_PLANE
}

/// `out` planes (`hw` each) `= init + sum over taps of w[t] * masked src[p + off_t]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn masked_planes_impl<T: Scalar, const FMA: bool>(
    out: &mut [T],
    src: &[T],
    slack: usize,
    hw: usize,
    offs: &[isize],
    wk: &[T],
    masks: &[T],
    init: T,
) {
    match hw {
        4 => return masked_planes_fixed::<T, FMA, 4>(out, src, slack, offs, wk, masks, init),
        16 => return masked_planes_fixed::<T, FMA, 16>(out, src, slack, offs, wk, masks, init),
        64 => return masked_planes_fixed::<T, FMA, 64>(out, src, slack, offs, wk, masks, init),
        _ => {}
    }
    for (i, o) in out.chunks_exact_mut(hw).enumerate() {
        let base = (slack + i * hw) as isize;
        o.fill(init);
        for (t, (&off, &wv)) in offs.iter().zip(wk).enumerate() {
            let s = &src[(base + off) as usize..][..hw];
            let m = &masks[t * hw..(t + 1) * hw];
            for j in 0..hw {
                let (sv, keep) = (s[j], m[j] != T::zero());
                let v = if keep { sv } else { T::zero() };
                o[j] = madd::<T, FMA>(o[j], wv, v);
            }
        }
    }
}
/// [`masked_planes_impl`] for planes of `HW` values: one register block per plane.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn masked_planes_fixed<T: Scalar, const FMA: bool, const HW: usize>(
    out: &mut [T],
    src: &[T],
    slack: usize,
    offs: &[isize],
    wk: &[T],
    masks: &[T],
    init: T,
) {
    for (i, o) in out.chunks_exact_mut(HW).enumerate() {
        let base = (slack + i * HW) as isize;
        let mut acc = [init; HW];
        for (t, (&off, &wv)) in offs.iter().zip(wk).enumerate() {
            let s: &[T; HW] = src[(base + off) as usize..][..HW].try_into().expect("HW values");
            let m: &[T; HW] = masks[t * HW..(t + 1) * HW].try_into().expect("HW values");
            for j in 0..HW {
                let (sv, keep) = (s[j], m[j] != T::zero());
                let v = if keep { sv } else { T::zero() };
                acc[j] = madd::<T, FMA>(acc[j], wv, v);
            }
        }
        o.copy_from_slice(&acc);
    }
}

/// [`masked_dots_impl`] for planes of `HW` values.
#[inline(always)]
fn masked_dots_fixed<T: Scalar, const FMA: bool, const HW: usize>(
    dy: &[T],
    src: &[T],
    slack: usize,
    offs: &[isize],
    masks: &[T],
    acc: &mut [T],
) {
    // tap-outer: each tap's lanes stay in registers over the planes (per lane the planes
    // are still added in order)
    for (t, &off) in offs.iter().enumerate() {
        let m: &[T; HW] = masks[t * HW..(t + 1) * HW].try_into().expect("HW values");
        let a: &mut [T; HW] = (&mut acc[t * HW..(t + 1) * HW]).try_into().expect("HW values");
        let mut lanes = *a;
        for (i, d) in dy.chunks_exact(HW).enumerate() {
            let base = (slack + i * HW) as isize;
            let d: &[T; HW] = d.try_into().expect("HW values");
            let s: &[T; HW] = src[(base + off) as usize..][..HW].try_into().expect("HW values");
            for j in 0..HW {
                let (sv, keep) = (s[j], m[j] != T::zero());
                let v = if keep { sv } else { T::zero() };
                lanes[j] = madd::<T, FMA>(lanes[j], d[j], v);
            }
        }
        *a = lanes;
    }
}

dispatch!(masked_planes, masked_planes_impl, (out: &mut [T], src: &[T], slack: usize, hw: usize, offs: &[isize], wk: &[T], masks: &[T], init: T));

/// `acc[t * hw + p] += dy[p] * masked x[p + off_t]` over the planes of a chunk.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn masked_dots_impl<T: Scalar, const FMA: bool>(
    dy: &[T],
    src: &[T],
    slack: usize,
    hw: usize,
    offs: &[isize],
    masks: &[T],
    acc: &mut [T],
) {
    match hw {
        4 => return masked_dots_fixed::<T, FMA, 4>(dy, src, slack, offs, masks, acc),
        16 => return masked_dots_fixed::<T, FMA, 16>(dy, src, slack, offs, masks, acc),
        64 => return masked_dots_fixed::<T, FMA, 64>(dy, src, slack, offs, masks, acc),
        _ => {}
    }
    for (i, d) in dy.chunks_exact(hw).enumerate() {
        let base = (slack + i * hw) as isize;
        for (t, &off) in offs.iter().enumerate() {
            let s = &src[(base + off) as usize..][..hw];
            let m = &masks[t * hw..(t + 1) * hw];
            let a = &mut acc[t * hw..(t + 1) * hw];
            for j in 0..hw {
                let (sv, keep) = (s[j], m[j] != T::zero());
                let v = if keep { sv } else { T::zero() };
                a[j] = madd::<T, FMA>(a[j], d[j], v);
            }
        }
    }
}
dispatch!(masked_dots, masked_dots_impl, (dy: &[T], src: &[T], slack: usize, hw: usize, offs: &[isize], masks: &[T], acc: &mut [T]));

/// Images per chunk of the masked path.
fn masked_chunk(g: &Geom, hw: usize) -> usize {
    (PHASE_BUDGET / hw.max(1)).clamp(1, g.n.max(1))
}

/// Forward (`sgn = 1`: input planes, kernel taps) or input gradient (`sgn = -1`: output
/// gradient planes, mirrored taps) over the masked layout; parallel over (channel, chunk).
fn masked_apply<T: Scalar>(g: &Geom, pl: &Plane<'_>, src: &[T], w: &[T], bias: Option<&[T]>, sgn: isize, out: &mut [T]) {
    let mk = Masks::<T>::new(pl, sgn);
    let (hw, kk, c) = (mk.hw, pl.kh * pl.kw, g.c_in);
    let nb = masked_chunk(g, hw);
    let chunks = g.n.div_ceil(nb);
    let outp = SharedOut(out.as_mut_ptr());
    parallel::run(g.macs(), || {
        (0..c * chunks).into_par_iter().for_each_init(
            || (vec![T::zero(); nb * hw + 2 * mk.slack], vec![T::zero(); nb * hw]),
            |(buf, res), task| {
                let (ch, k) = (task / chunks, task % chunks);
                let (n0, n1) = (k * nb, ((k + 1) * nb).min(g.n));
                for ni in n0..n1 {
                    let o = mk.slack + (ni - n0) * hw;
                    buf[o..o + hw].copy_from_slice(&src[(ni * c + ch) * hw..][..hw]);
                }
                let len = (n1 - n0) * hw;
                let b = bias.map_or(T::zero(), |b| b[ch]);
                masked_planes(&mut res[..len], buf, mk.slack, hw, &mk.offs, &w[ch * kk..(ch + 1) * kk], &mk.masks, b);
                for ni in n0..n1 {
                    // SAFETY: plane (ni, ch) of `out` is written by this task only.
                    let d = unsafe { std::slice::from_raw_parts_mut(outp.get().add((ni * c + ch) * hw), hw) };
                    d.copy_from_slice(&res[(ni - n0) * hw..(ni - n0 + 1) * hw]);
                }
            },
        );
    });
}

/// Weight gradient over the masked layout: per channel, lanes per (tap, position) summed
/// over the images in order, then each tap's lanes in position order.
fn masked_weight_grad<T: Scalar>(g: &Geom, pl: &Plane<'_>, dy: &[T], x: &[T], dwt: &mut [T]) {
    let mk = Masks::<T>::new(pl, 1);
    let (hw, kk, c) = (mk.hw, pl.kh * pl.kw, g.c_in);
    let nb = masked_chunk(g, hw);
    let chunks = g.n.div_ceil(nb);
    parallel::run(g.macs(), || {
        dwt.par_chunks_mut(kk).enumerate().for_each_init(
            || (vec![T::zero(); nb * hw + 2 * mk.slack], vec![T::zero(); nb * hw], vec![T::zero(); kk * hw]),
            |(buf, dbuf, acc), (ch, out)| {
                acc.fill(T::zero());
                for k in 0..chunks {
                    let (n0, n1) = (k * nb, ((k + 1) * nb).min(g.n));
                    for ni in n0..n1 {
                        let o = mk.slack + (ni - n0) * hw;
                        buf[o..o + hw].copy_from_slice(&x[(ni * c + ch) * hw..][..hw]);
                        let o = (ni - n0) * hw;
                        dbuf[o..o + hw].copy_from_slice(&dy[(ni * c + ch) * hw..][..hw]);
                    }
                    let len = (n1 - n0) * hw;
                    masked_dots(&dbuf[..len], buf, mk.slack, hw, &mk.offs, &mk.masks, acc);
                }
                for (t, o) in out.iter_mut().enumerate() {
                    *o = acc[t * hw..(t + 1) * hw].iter().fold(T::zero(), |a, &v| a + v);
                }
            },
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::ConvParams;

    fn data<T: Scalar>(len: usize, seed: u64) -> Vec<T> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                T::from_f64(((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5).unwrap()
            })
            .collect()
    }

    /// (x shape, channel multiplier, kernel (kh, kw), stride, dilation, pad lo, pad hi) cases
    /// covering strides 1-3, dilation, asymmetric padding, odd and 1-wide planes, batch 1,
    /// widths on both sides of MAP_MAX_W and several image chunks.
    #[allow(clippy::type_complexity)]
    fn cases() -> Vec<([usize; 4], usize, [usize; 2], [usize; 2], [usize; 2], [usize; 2], [usize; 2])> {
        vec![
            ([3, 4, 7, 9], 1, [3, 3], [2, 2], [1, 1], [1, 1], [1, 1]),
            ([1, 3, 8, 8], 1, [3, 3], [2, 2], [1, 1], [1, 1], [1, 1]),
            ([2, 2, 33, 35], 2, [3, 3], [2, 2], [1, 1], [1, 1], [0, 1]),
            ([2, 3, 17, 20], 1, [3, 3], [1, 2], [1, 1], [1, 0], [1, 1]),
            ([2, 2, 19, 18], 1, [5, 3], [3, 3], [1, 2], [2, 1], [1, 2]),
            ([3, 2, 9, 16], 1, [3, 3], [2, 2], [2, 2], [2, 2], [2, 2]),
            ([4, 5, 2, 2], 1, [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
            ([2, 3, 1, 1], 2, [3, 3], [2, 2], [1, 1], [1, 1], [1, 1]),
            ([3, 2, 6, 5], 1, [2, 4], [1, 2], [1, 1], [0, 2], [1, 1]),
            ([30, 2, 32, 32], 1, [3, 3], [2, 2], [1, 1], [1, 1], [1, 1]),
            ([40, 2, 30, 30], 1, [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
        ]
    }

    fn geom(
        xs: [usize; 4],
        m: usize,
        k: [usize; 2],
        s: [usize; 2],
        d: [usize; 2],
        lo: [usize; 2],
        hi: [usize; 2],
    ) -> Geom {
        let p = ConvParams::planar(s, d, lo, hi, xs[1]);
        let g = Geom::new("t", [xs[0], xs[1], 1, xs[2], xs[3]], [xs[1] * m, 1, 1, k[0], k[1]], p).unwrap();
        assert!(g.depthwise());
        g
    }

    /// Direct loops: output value `(n, co, y, j)` of the depthwise convolution.
    fn naive(g: &Geom, x: &[f64], w: &[f64], n: usize, co: usize, y: usize, j: usize) -> f64 {
        let [_, ih, iw] = g.input;
        let [_, kh, kw] = g.kernel;
        let ci = co / g.og;
        let mut acc = 0.0;
        for ky in 0..kh {
            for kx in 0..kw {
                let iy = (y * g.p.stride[1] + ky * g.p.dilation[1]) as isize - g.p.pad_lo[1] as isize;
                let ix = (j * g.p.stride[2] + kx * g.p.dilation[2]) as isize - g.p.pad_lo[2] as isize;
                if iy < 0 || ix < 0 || iy as usize >= ih || ix as usize >= iw {
                    continue;
                }
                acc += w[(co * kh + ky) * kw + kx] * x[((n * g.c_in + ci) * ih + iy as usize) * iw + ix as usize];
            }
        }
        acc
    }

    fn close(a: &[f64], b: &[f64], what: &str) {
        assert_eq!(a.len(), b.len());
        for (i, (p, q)) in a.iter().zip(b).enumerate() {
            assert!((p - q).abs() < 1e-12 * (1.0 + q.abs()), "{what}[{i}]: {p} vs {q}");
        }
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn phased_paths_match_per_plane_paths_and_naive_loops() {
        for (xs, m, k, s, d, lo, hi) in cases() {
            let g = geom(xs, m, k, s, d, lo, hi);
            let mut ranges = Vec::new();
            let pl = Plane::new(&g, &mut ranges);
            let lay = Phased::input(&g, &pl).expect("small planes use the phased path");
            let [_, oh, ow] = g.output;
            let (xlen, ylen) = (g.n * g.c_in * g.in_plane(), g.n * g.c_out * oh * ow);
            let x: Vec<f64> = data(xlen, 1);
            let w: Vec<f64> = data(g.c_out * k[0] * k[1], 2);
            let bias: Vec<f64> = data(g.c_out, 3);
            let dy: Vec<f64> = data(ylen, 4);
            let what = format!("{xs:?} m{m} k{k:?} s{s:?} d{d:?} pad {lo:?}/{hi:?}");

            let (mut y1, mut y2) = (vec![0.0; ylen], vec![0.0; ylen]);
            forward_phased(&g, &pl, &lay, &x, &w, Some(&bias), &mut y1);
            forward_planes(&g, &pl, &x, &w, Some(&bias), &mut y2);
            // same taps in the same order (taps over padding add exact zeros)
            assert!(y1 == y2, "forward {what}");
            let mut want = Vec::with_capacity(ylen);
            for n in 0..g.n {
                for co in 0..g.c_out {
                    for y in 0..oh {
                        for j in 0..ow {
                            want.push(naive(&g, &x, &w, n, co, y, j) + bias[co]);
                        }
                    }
                }
            }
            close(&y1, &want, &format!("forward {what}"));

            let (mut d1, mut d2) = (vec![0.0; xlen], vec![0.0; xlen]);
            input_grad_phased(&g, &pl, &dy, &w, &mut d1);
            input_grad_planes(&g, &pl, &dy, &w, &mut d2);
            close(&d1, &d2, &format!("input grad {what}"));
            // adjoint: <dy, conv(x)> = <conv^T(dy), x>
            let lhs: f64 = dy.iter().zip(&want).map(|(a, b)| a * b).sum::<f64>()
                - (0..ylen).map(|i| dy[i] * bias[(i / (oh * ow)) % g.c_out]).sum::<f64>();
            let rhs: f64 = d1.iter().zip(&x).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-10 * (1.0 + lhs.abs()), "adjoint {what}");

            let kk = k[0] * k[1];
            let (mut w1, mut w2) = (vec![0.0; g.c_out * kk], vec![0.0; g.c_out * kk]);
            weight_grad_phased(&g, &pl, &lay, &dy, &x, &mut w1);
            weight_grad_planes(&g, &pl, &dy, &x, &mut w2);
            close(&w1, &w2, &format!("weight grad {what}"));
        }
    }

    #[test]
    fn masked_path_matches_the_phased_paths_bitwise_and_naive_loops() {
        // "same" stride-1 planes of at most 64 values, one output channel per input channel
        let cases = [
            ([4, 3, 4, 4], [3, 3], [1, 1], [1, 1]),
            ([3, 5, 2, 2], [3, 3], [1, 1], [1, 1]),
            ([2, 2, 8, 8], [3, 3], [1, 1], [1, 1]),
            ([3, 2, 3, 5], [5, 3], [4, 1], [2, 1]),
            ([2, 3, 7, 6], [3, 3], [2, 2], [2, 2]),
            ([5, 2, 1, 1], [3, 3], [1, 1], [1, 1]),
            ([2, 2, 1, 7], [1, 3], [0, 1], [1, 1]),
        ];
        for (xs, k, pad, d) in cases {
            let g = geom(xs, 1, k, [1, 1], d, pad, pad);
            let mut ranges = Vec::new();
            let pl = Plane::new(&g, &mut ranges);
            assert!(masked_applies(&g, &pl), "{xs:?}");
            let lay = Phased::input(&g, &pl).unwrap();
            let len = g.n * g.c_in * g.in_plane();
            let mut x: Vec<f64> = data(len, 11);
            let w: Vec<f64> = data(g.c_out * k[0] * k[1], 12);
            let bias: Vec<f64> = data(g.c_out, 13);
            let dy: Vec<f64> = data(len, 14);
            let (mut a, mut b) = (vec![0.0; len], vec![0.0; len]);
            masked_apply(&g, &pl, &x, &w, Some(&bias), 1, &mut a);
            forward_phased(&g, &pl, &lay, &x, &w, Some(&bias), &mut b);
            assert!(a == b, "forward {xs:?}");
            masked_apply(&g, &pl, &dy, &w, None, -1, &mut a);
            input_grad_phased(&g, &pl, &dy, &w, &mut b);
            assert!(a == b, "input grad {xs:?}");
            let kk = k[0] * k[1];
            let (mut wa, mut wb) = (vec![0.0; g.c_out * kk], vec![0.0; g.c_out * kk]);
            masked_weight_grad(&g, &pl, &dy, &x, &mut wa);
            weight_grad_planes(&g, &pl, &dy, &x, &mut wb);
            close(&wa, &wb, &format!("weight grad {xs:?}"));
            // a non-finite value reaches only the outputs whose windows cover it
            x[1] = f64::INFINITY;
            masked_apply(&g, &pl, &x, &w, Some(&bias), 1, &mut a);
            for n in 0..g.n {
                for co in 0..g.c_out {
                    for y in 0..g.output[1] {
                        for j in 0..g.output[2] {
                            let want = naive(&g, &x, &w, n, co, y, j) + bias[co];
                            let got = a[((n * g.c_out + co) * g.output[1] + y) * g.output[2] + j];
                            assert!(got == want || (got - want).abs() < 1e-12 * (1.0 + want.abs()), "{xs:?}: {got} vs {want}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn phased_paths_do_not_depend_on_thread_count_f32() {
        let g = geom([30, 3, 21, 18], 1, [3, 3], [2, 2], [1, 1], [1, 1], [1, 1]);
        let [_, oh, ow] = g.output;
        let x: Vec<f32> = data(g.n * g.c_in * g.in_plane(), 5);
        let w: Vec<f32> = data(g.c_out * 9, 6);
        let dy: Vec<f32> = data(g.n * g.c_out * oh * ow, 7);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("oxinet-test-{i}"))
                .build()
                .unwrap();
            pool.install(|| {
                let mut y = vec![0f32; dy.len()];
                let mut dx = vec![0f32; x.len()];
                let mut dw = vec![0f32; w.len()];
                forward(&g, &x, &w, None, &mut y);
                input_grad(&g, &dy, &w, &mut dx);
                weight_grad(&g, &dy, &x, &mut dw);
                (y, dx, dw)
            })
        };
        let a = run(1);
        let b = run(3);
        assert!(a == b);
    }

    #[test]
    fn weight_grad_with_non_finite_input_matches_per_plane_path() {
        let g = geom([3, 2, 8, 7], 1, [3, 3], [2, 2], [1, 1], [1, 1], [1, 1]);
        let mut ranges = Vec::new();
        let pl = Plane::new(&g, &mut ranges);
        let lay = Phased::input(&g, &pl).unwrap();
        let [_, oh, ow] = g.output;
        let mut x: Vec<f64> = data(g.n * g.c_in * g.in_plane(), 8);
        x[g.in_plane() + 3] = f64::INFINITY; // image 0, channel 1
        let dy: Vec<f64> = data(g.n * g.c_out * oh * ow, 9).iter().map(|v: &f64| v.abs() + 0.1).collect();
        let (mut w1, mut w2) = (vec![0.0; 18], vec![0.0; 18]);
        weight_grad_phased(&g, &pl, &lay, &dy, &x, &mut w1);
        weight_grad_planes(&g, &pl, &dy, &x, &mut w2);
        assert!(w1[..9].iter().all(|v| v.is_finite()));
        assert!(w1[9..].iter().any(|v| v.is_infinite()));
        for (a, b) in w1.iter().zip(&w2) {
            assert!(a == b || (a - b).abs() < 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}
