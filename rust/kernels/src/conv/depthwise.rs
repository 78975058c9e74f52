//! Depthwise 2-D convolution (`groups == C_in`, one input channel per group): direct
//! loops over rows, vectorised along the width, parallel over (image, channel) planes.

use super::im2col::valid_range;
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
        fn $name<T: Scalar>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn v4<T: Scalar>($($arg: $ty),*) {
                    $body::<T, true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
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

/// Like `dispatch!` for kernels that return a value.
macro_rules! dispatch_ret {
    ($name:ident, $body:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        fn $name<T: Scalar>($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn v4<T: Scalar>($($arg: $ty),*) -> $ret {
                    $body::<T, true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3<T: Scalar>($($arg: $ty),*) -> $ret {
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

/// Planes at most this wide use the stacked path of [`forward_stacked`] (stride 1).
const STACK_MAX_W: usize = 14;

/// `o[j] = init + sum over taps t of w[t] * src[offs[t] + j]` (`o[j] +=` the sum when `init`
/// is None) over a whole flat range: the
/// same tap order and fused multiply-adds as [`fwd_fast_impl`], so results are identical.
#[inline(always)]
fn flat_taps_impl<T: Scalar, const FMA: bool>(o: &mut [T], src: &[T], offs: &[usize], wk: &[T], init: Option<T>) {
    if let Some(v) = init {
        o.fill(v);
    }
    let n = o.len();
    for (&off, &wv) in offs.iter().zip(wk) {
        let s = &src[off..off + n];
        for (d, &v) in o.iter_mut().zip(s) {
            *d = madd::<T, FMA>(*d, wv, v);
        }
    }
}
dispatch!(flat_taps, flat_taps_impl, (o: &mut [T], src: &[T], offs: &[usize], wk: &[T], init: Option<T>));

/// A pointer shared by the tasks of one parallel loop, each writing its own elements.
#[derive(Clone, Copy)]
struct SharedOut<T>(*mut T);
// SAFETY: only used to write disjoint elements from different tasks (see forward_stacked).
unsafe impl<T> Send for SharedOut<T> {}
unsafe impl<T> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    fn get(&self) -> *mut T {
        self.0
    }
}

/// Stride-1 forward for small planes: per output channel, the zero-padded input planes of
/// all images are stacked into one tall plane of width `pc`, and every tap is one long
/// vectorised axpy over the flattened stack (rows that straddle two images and the
/// columns past the output width are computed and dropped). Per-plane overhead, which
/// dominates 2x2..8x8 planes, is paid once per channel instead of once per image.
fn forward_stacked<T: Scalar>(g: &Geom, pl: &Plane<'_>, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    let (iplane, oplane, kk) = (pl.ih * pl.iw, pl.oh * pl.ow, pl.kh * pl.kw);
    let prows = pl.ih + g.p.pad_lo[1] + g.p.pad_hi[1];
    let pc = pl.iw + g.p.pad_lo[2] + g.p.pad_hi[2];
    let n = g.n;
    let offs: Vec<usize> = (0..kk).map(|t| (t / pl.kw) * pl.dh * pc + (t % pl.kw) * pl.dw).collect();
    let slack = (pl.kw - 1) * pl.dw;
    let len = ((n - 1) * prows + pl.oh) * pc;
    let outp = SharedOut(out.as_mut_ptr());
    parallel::run(g.macs(), || {
        (0..g.c_out).into_par_iter().for_each_init(
            || (vec![T::zero(); n * prows * pc + slack], vec![T::zero(); len]),
            |(tall, res), co| {
                let ci = co / g.og;
                for ni in 0..n {
                    let xin = &x[(ni * g.c_in + ci) * iplane..][..iplane];
                    for y in 0..pl.ih {
                        let o = (ni * prows + pl.ph + y) * pc + pl.pw;
                        tall[o..o + pl.iw].copy_from_slice(&xin[y * pl.iw..(y + 1) * pl.iw]);
                    }
                }
                let b = bias.map_or(T::zero(), |b| b[co]);
                flat_taps(res, tall, &offs, &w[co * kk..(co + 1) * kk], Some(b));
                for ni in 0..n {
                    let base = (ni * g.c_out + co) * oplane;
                    for y in 0..pl.oh {
                        let src = &res[(ni * prows + y) * pc..][..pl.ow];
                        // SAFETY: output plane (ni, co) is written by this task only, inside `out`.
                        let dst = unsafe { std::slice::from_raw_parts_mut(outp.get().add(base + y * pl.ow), pl.ow) };
                        dst.copy_from_slice(src);
                    }
                }
            },
        );
    });
}

pub(crate) fn forward<T: Scalar>(g: &Geom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    let mut ranges = Vec::new();
    let pl = Plane::new(g, &mut ranges);
    let (iplane, oplane, kk) = (pl.ih * pl.iw, pl.oh * pl.ow, pl.kh * pl.kw);
    let fast = pl.sh == 1 && pl.sw == 1;
    if fast && pl.iw <= STACK_MAX_W && g.n > 1 {
        return forward_stacked(g, &pl, x, w, bias, out);
    }
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

/// Stride-1 input gradient for small planes, stacked like [`forward_stacked`]: per input
/// channel, the output-gradient planes of all images (zero-padded by the kernel's extent)
/// are stacked and correlated with the flipped kernel as long axpys; same tap order as
/// [`dx_fast_impl`].
fn input_grad_stacked<T: Scalar>(g: &Geom, pl: &Plane<'_>, dy: &[T], w: &[T], dx: &mut [T]) {
    let (iplane, oplane, kk) = (pl.ih * pl.iw, pl.oh * pl.ow, pl.kh * pl.kw);
    let (a, b) = (pl.dh * (pl.kh - 1), pl.dw * (pl.kw - 1));
    let qh = (pl.ih + pl.ph + a).max(pl.oh + a);
    let qw = (pl.iw + pl.pw + b).max(pl.ow + b);
    let n = g.n;
    let offs: Vec<usize> = (0..kk)
        .map(|t| {
            let (ky, kx) = (t / pl.kw, t % pl.kw);
            (pl.ph + a - ky * pl.dh) * qw + (pl.pw + b - kx * pl.dw)
        })
        .collect();
    let slack = pl.pw + b;
    let len = ((n - 1) * qh + pl.ih) * qw;
    let dxp = SharedOut(dx.as_mut_ptr());
    parallel::run(g.macs(), || {
        (0..g.c_in).into_par_iter().for_each_init(
            || (vec![T::zero(); n * qh * qw + slack], vec![T::zero(); len]),
            |(tall, res), ci| {
                for (m, co) in (ci * g.og..(ci + 1) * g.og).enumerate() {
                    for ni in 0..n {
                        let dyp = &dy[(ni * g.c_out + co) * oplane..][..oplane];
                        for y in 0..pl.oh {
                            let o = (ni * qh + y + a) * qw + b;
                            tall[o..o + pl.ow].copy_from_slice(&dyp[y * pl.ow..(y + 1) * pl.ow]);
                        }
                    }
                    let init = if m == 0 { Some(T::zero()) } else { None };
                    flat_taps(res, tall, &offs, &w[co * kk..(co + 1) * kk], init);
                }
                for ni in 0..n {
                    let base = (ni * g.c_in + ci) * iplane;
                    for y in 0..pl.ih {
                        let src = &res[(ni * qh + y) * qw..][..pl.iw];
                        // SAFETY: input plane (ni, ci) is written by this task only, inside `dx`.
                        let dst = unsafe { std::slice::from_raw_parts_mut(dxp.get().add(base + y * pl.iw), pl.iw) };
                        dst.copy_from_slice(src);
                    }
                }
            },
        );
    });
}

pub(crate) fn input_grad<T: Scalar>(g: &Geom, dy: &[T], w: &[T], dx: &mut [T]) {
    let mut ranges = Vec::new();
    let pl = Plane::new(g, &mut ranges);
    let (iplane, oplane, kk) = (pl.ih * pl.iw, pl.oh * pl.ow, pl.kh * pl.kw);
    let fast = pl.sh == 1 && pl.sw == 1;
    if fast && pl.iw <= STACK_MAX_W && g.n > 1 {
        return input_grad_stacked(g, &pl, dy, w, dx);
    }
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
    let (iplane, oplane, kk, ow) = (pl.ih * pl.iw, pl.oh * pl.ow, pl.kh * pl.kw, pl.ow);
    let fast = pl.sh == 1 && pl.sw == 1;
    let (prows, pcols) = (
        pl.ih + g.p.pad_lo[1] + g.p.pad_hi[1],
        pl.iw + g.p.pad_lo[2] + g.p.pad_hi[2],
    );
    let width = ow;
    let stacked = fast && pl.iw <= STACK_MAX_W && g.n > 1;
    let n = g.n;
    // stacked layout (see weight_grad_stacked): planes of prows x pcols, one per image
    let offs: Vec<usize> = (0..kk).map(|t| (t / pl.kw) * pl.dh * pcols + (t % pl.kw) * pl.dw).collect();
    let slack = (pl.kw - 1) * pl.dw;
    let len = if stacked { ((n - 1) * prows + pl.oh) * pcols } else { 0 };
    parallel::run(g.macs(), || {
        dwt.par_chunks_mut(kk).enumerate().for_each_init(
            || {
                let pads = fast.then(|| Padded::<T>::new(prows, pcols));
                let tall = if stacked {
                    (vec![T::zero(); n * prows * pcols + slack], vec![T::zero(); len])
                } else {
                    (Vec::new(), Vec::new())
                };
                (vec![T::zero(); kk * width], pads, tall)
            },
            |(acc, pads, (tx, td)), (co, out)| {
                let ci = co / g.og;
                if stacked && weight_grad_stacked(g, &pl, dy, x, co, ci, &offs, tx, td, out) {
                    return;
                }
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
                    *o = super::sum_lanes(ndarray::ArrayView1::from(&acc[t * width..(t + 1) * width]));
                }
            },
        );
    });
}

/// `sum(a[j] * b[j])` with 16 lanes reduced in a fixed order.
#[inline(always)]
fn dot_lanes_impl<T: Scalar, const FMA: bool>(a: &[T], b: &[T]) -> T {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [T::zero(); 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (u, v) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] = madd::<T, FMA>(acc[i], u[i], v[i]);
        }
    }
    for i in 0..ra.len() {
        acc[i] = madd::<T, FMA>(acc[i], ra[i], rb[i]);
    }
    let mut h = [T::zero(); 8];
    for i in 0..8 {
        h[i] = acc[i] + acc[i + 8];
    }
    ((h[0] + h[4]) + (h[1] + h[5])) + ((h[2] + h[6]) + (h[3] + h[7]))
}
dispatch_ret!(dot_lanes, dot_lanes_impl, (a: &[T], b: &[T]) -> T);

/// Stride-1 weight gradient of output channel `co` for small planes: the padded input
/// planes of all images stacked (`tx`, rows `prows` x `pcols` each) and the output-gradient
/// planes embedded at the same row stride with zeros around them (`td`), so each tap's
/// gradient is one long dot product `td . tx[off..]`. Returns false (nothing written) when
/// the input holds a non-finite value: the zero-padded products `0 * x` would then not be 0.
#[allow(clippy::too_many_arguments)]
fn weight_grad_stacked<T: Scalar>(
    g: &Geom,
    pl: &Plane<'_>,
    dy: &[T],
    x: &[T],
    co: usize,
    ci: usize,
    offs: &[usize],
    tx: &mut [T],
    td: &mut [T],
    out: &mut [T],
) -> bool {
    let (iplane, oplane) = (pl.ih * pl.iw, pl.oh * pl.ow);
    let prows = pl.ih + g.p.pad_lo[1] + g.p.pad_hi[1];
    let pc = pl.iw + g.p.pad_lo[2] + g.p.pad_hi[2];
    let mut finite = true;
    for ni in 0..g.n {
        let xin = &x[(ni * g.c_in + ci) * iplane..][..iplane];
        finite &= xin.iter().all(|v| v.is_finite());
        for y in 0..pl.ih {
            let o = (ni * prows + pl.ph + y) * pc + pl.pw;
            tx[o..o + pl.iw].copy_from_slice(&xin[y * pl.iw..(y + 1) * pl.iw]);
        }
        let dyp = &dy[(ni * g.c_out + co) * oplane..][..oplane];
        for y in 0..pl.oh {
            let o = (ni * prows + y) * pc;
            if o + pl.ow <= td.len() {
                td[o..o + pl.ow].copy_from_slice(&dyp[y * pl.ow..(y + 1) * pl.ow]);
            }
        }
    }
    if !finite {
        return false;
    }
    for (t, o) in out.iter_mut().enumerate() {
        *o = dot_lanes(td, &tx[offs[t]..]);
    }
    true
}
