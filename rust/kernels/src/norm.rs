//! Batch normalisation over `(N, C, inner)` arrays (NCHW images have `inner = H * W`),
//! per channel C, forward and backward, with an optional fused ReLU / hardtanh after the
//! affine transform.
//!
//! Training forward, per channel over its `M = N * inner` values: the mean, then the biased
//! variance as the mean of squared deviations (two passes, exact even when the mean is
//! large), then `y = act((x - mean) * invstd * weight + bias)` with
//! `invstd = 1 / sqrt(var + eps)`. Evaluation uses given (running) statistics instead.
//!
//! Backward, per channel, with `g` the output gradient masked by the activation:
//! `sg = sum g`, `sgx = sum g * (x - mean)`, then
//! `dx = w * invstd * (g - sg / M - (x - mean) * invstd^2 * sgx / M)` in training mode
//! (the statistics depend on x) or `dx = w * invstd * g` in evaluation mode;
//! `dweight = sgx * invstd`, `dbias = sg`.
//!
//! Work is split over channels only, and each channel is reduced in a fixed order (16
//! lanes per row of `inner` values, rows added in order in f64), so results do not depend
//! on the thread count. A channel's data is visited a second and third time right after
//! the first, while it is still in cache.

use crate::error::{KernelError, KernelResult};
use crate::gemm::Scalar;
use crate::parallel;
use rayon::prelude::*;

/// What is applied after the affine transform (fused, so no extra pass over memory).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NormAct<T> {
    /// Nothing.
    Identity,
    /// `max(v, 0)`; the gradient passes where `v > 0`.
    Relu,
    /// `min(max(v, lo), hi)` (ReLU6 is `(0, 6)`); the gradient passes where `lo < v < hi`,
    /// as in PyTorch's hardtanh.
    Hardtanh(T, T),
}

/// Which statistics normalise the input.
#[derive(Debug, Clone, Copy)]
pub enum NormStats<'a, T> {
    /// The batch's own mean and biased variance (training).
    Batch,
    /// Given per-channel mean and variance (evaluation with running statistics).
    Given { mean: &'a [T], var: &'a [T] },
}

/// Per-channel outputs of the forward pass, each of length C: the mean and `invstd`
/// used (needed by the backward pass) and the variance (biased, for the running update).
pub struct NormSaved<'a, T> {
    pub mean: &'a mut [T],
    pub invstd: &'a mut [T],
    pub var: &'a mut [T],
}

/// Gradients the backward pass should produce (each optional).
pub struct NormGrads<'a, T> {
    pub dx: Option<&'a mut [T]>,
    pub dweight: Option<&'a mut [T]>,
    pub dbias: Option<&'a mut [T]>,
}

const LANES: usize = 16;

/// A pointer that may be shared by the tasks of one parallel loop; each task writes only
/// its own channel's elements.
#[derive(Clone, Copy)]
struct SharedMut<T>(*mut T);
// SAFETY: used only to write disjoint elements from different threads (see call sites).
unsafe impl<T> Send for SharedMut<T> {}
unsafe impl<T> Sync for SharedMut<T> {}

#[inline(always)]
fn f64_of<T: Scalar>(v: T) -> f64 {
    v.to_f64().unwrap_or(f64::NAN)
}

#[inline(always)]
fn of_f64<T: Scalar>(v: f64) -> T {
    T::from_f64(v).unwrap_or_else(T::nan)
}

/// Values added into a set of lanes before they are folded into the f64 total.
const FLUSH: usize = 1024;

#[inline(always)]
fn fold_lanes<T: Scalar>(acc: &[T; LANES]) -> f64 {
    let mut h = [0f64; LANES / 2];
    for i in 0..LANES / 2 {
        h[i] = f64_of(acc[i]) + f64_of(acc[i + LANES / 2]);
    }
    ((h[0] + h[4]) + (h[1] + h[5])) + ((h[2] + h[6]) + (h[3] + h[7]))
}

/// Adds `row - k` and `(row - k)^2` into two sets of 16 lanes.
#[inline(always)]
fn row_shifted<T: Scalar>(row: &[T], k: T, sums: ([T; LANES], [T; LANES])) -> ([T; LANES], [T; LANES]) {
    let (mut s, mut q) = sums;
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            let d = c[i] - k;
            s[i] = s[i] + d;
            q[i] = q[i] + d * d;
        }
    }
    for (i, &v) in rest.iter().enumerate() {
        let d = v - k;
        s[i] = s[i] + d;
        q[i] = q[i] + d * d;
    }
    (s, q)
}

#[inline(always)]
fn activate<T: Scalar>(v: T, act: NormAct<T>) -> T {
    match act {
        NormAct::Identity => v,
        NormAct::Relu => {
            if v < T::zero() {
                T::zero()
            } else {
                v
            }
        }
        NormAct::Hardtanh(lo, hi) => {
            if v < lo {
                lo
            } else if v > hi {
                hi
            } else {
                v
            }
        }
    }
}

/// `y = act(x * scale + shift)` over one row.
#[inline(always)]
fn row_apply<T: Scalar>(x: &[T], y: &mut [T], scale: T, shift: T, act: NormAct<T>) {
    match act {
        NormAct::Identity => {
            for (o, &v) in y.iter_mut().zip(x) {
                *o = v * scale + shift;
            }
        }
        NormAct::Relu => {
            for (o, &v) in y.iter_mut().zip(x) {
                *o = activate(v * scale + shift, NormAct::Relu);
            }
        }
        NormAct::Hardtanh(lo, hi) => {
            for (o, &v) in y.iter_mut().zip(x) {
                *o = activate(v * scale + shift, NormAct::Hardtanh(lo, hi));
            }
        }
    }
}

/// The activation's gradient mask at pre-activation `v`: `g` where it passes, else 0.
#[inline(always)]
fn masked<T: Scalar>(g: T, v: T, act: NormAct<T>) -> T {
    let pass = match act {
        NormAct::Identity => true,
        NormAct::Relu => v > T::zero(),
        NormAct::Hardtanh(lo, hi) => v > lo && v < hi,
    };
    if pass {
        g
    } else {
        T::zero()
    }
}

/// Adds `g'` and `g' * (x - mean)` of one row into the lanes `a`, `b`, `g'` being `g`
/// masked by the activation evaluated at `x * scale + shift`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row_grad_sums<T: Scalar>(
    g: &[T],
    x: &[T],
    mean: T,
    scale: T,
    shift: T,
    act: NormAct<T>,
    sums: ([T; LANES], [T; LANES]),
) -> ([T; LANES], [T; LANES]) {
    let (mut a, mut b) = sums;
    let n = g.len().min(x.len());
    let (g, x) = (&g[..n], &x[..n]);
    let gc = g.chunks_exact(LANES);
    let xc = x.chunks_exact(LANES);
    let (gr, xr) = (gc.remainder(), xc.remainder());
    match act {
        NormAct::Identity => {
            for (gv, xv) in gc.zip(xc) {
                for i in 0..LANES {
                    a[i] = a[i] + gv[i];
                    b[i] = b[i] + gv[i] * (xv[i] - mean);
                }
            }
        }
        _ => {
            for (gv, xv) in gc.zip(xc) {
                for i in 0..LANES {
                    let gm = masked(gv[i], xv[i] * scale + shift, act);
                    a[i] = a[i] + gm;
                    b[i] = b[i] + gm * (xv[i] - mean);
                }
            }
        }
    }
    for i in 0..gr.len() {
        let gm = masked(gr[i], xr[i] * scale + shift, act);
        a[i] = a[i] + gm;
        b[i] = b[i] + gm * (xr[i] - mean);
    }
    (a, b)
}

/// `dx = ga * g' + gb * x + gc` over one row (`g'` masked as in [`row_grad_sums`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row_dx<T: Scalar>(g: &[T], x: &[T], dx: &mut [T], scale: T, shift: T, act: NormAct<T>, k: [T; 3]) {
    let [ga, gb, gc] = k;
    match act {
        NormAct::Identity => {
            for ((d, &gv), &xv) in dx.iter_mut().zip(g).zip(x) {
                *d = ga * gv + (gb * xv + gc);
            }
        }
        _ => {
            for ((d, &gv), &xv) in dx.iter_mut().zip(g).zip(x) {
                let gm = masked(gv, xv * scale + shift, act);
                *d = ga * gm + (gb * xv + gc);
            }
        }
    }
}

/// Runs `$body` compiled for the widest SIMD level the CPU has (chosen at run time).
macro_rules! simd_dispatch {
    ($name:ident, $body:ident, <$t:ident>, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        fn $name<$t: Scalar>($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn v4<$t: Scalar>($($arg: $ty),*) -> $ret {
                    $body::<$t>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3<$t: Scalar>($($arg: $ty),*) -> $ret {
                    $body::<$t>($($arg),*)
                }
                match crate::simd::level() {
                    // SAFETY: the CPU supports the features these versions were compiled for.
                    crate::simd::SimdLevel::Avx512 => return unsafe { v4::<$t>($($arg),*) },
                    crate::simd::SimdLevel::Avx2Fma => return unsafe { v3::<$t>($($arg),*) },
                    _ => {}
                }
            }
            $body::<$t>($($arg),*)
        }
    };
}

/// Geometry of one call: `n` images, `c` channels, `inner` values per (image, channel).
#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    inner: usize,
}

impl Dims {
    #[inline(always)]
    fn row(&self, i: usize, ch: usize) -> std::ops::Range<usize> {
        let s = (i * self.c + ch) * self.inner;
        s..s + self.inner
    }
}

/// Forward for one channel; returns (mean, var, invstd) and writes its rows of `y`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn fwd_channel_impl<T: Scalar>(
    d: Dims,
    ch: usize,
    x: &[T],
    y: SharedMut<T>,
    given: Option<(T, T)>,
    w: T,
    b: T,
    eps: T,
    act: NormAct<T>,
) -> (T, T, T) {
    let (mean, var) = match given {
        Some(mv) => mv,
        None => {
            // one pass over data shifted by one of its values (close to the mean, so the
            // variance E[(x-k)^2] - E[x-k]^2 does not cancel badly), lanes folded into f64
            let m = (d.n * d.inner) as f64;
            let k = x[d.row(0, ch).start];
            let (mut st, mut qt) = (0f64, 0f64);
            let mut sums = ([T::zero(); LANES], [T::zero(); LANES]);
            let mut pending = 0;
            for i in 0..d.n {
                sums = row_shifted(&x[d.row(i, ch)], k, sums);
                pending += d.inner;
                if pending >= FLUSH || i + 1 == d.n {
                    st += fold_lanes(&sums.0);
                    qt += fold_lanes(&sums.1);
                    sums = ([T::zero(); LANES], [T::zero(); LANES]);
                    pending = 0;
                }
            }
            let dm = st / m;
            let mean = f64_of(k) + dm;
            let var = (qt / m - dm * dm).max(0.0);
            (of_f64(mean), of_f64(var))
        }
    };
    let invstd = T::one() / (var + eps).sqrt();
    let scale = w * invstd;
    let shift = b - mean * scale;
    for i in (0..d.n).rev() {
        let r = d.row(i, ch);
        // SAFETY: rows of channel `ch` are written by this task only; `y` has x's length.
        let yr = unsafe { std::slice::from_raw_parts_mut(y.0.add(r.start), d.inner) };
        row_apply(&x[r], yr, scale, shift, act);
    }
    (mean, var, invstd)
}
simd_dispatch!(fwd_channel, fwd_channel_impl, <T>,
    (d: Dims, ch: usize, x: &[T], y: SharedMut<T>, given: Option<(T, T)>, w: T, b: T, eps: T, act: NormAct<T>) -> (T, T, T));

/// Backward for one channel; returns (sum g', sum g' (x - mean)) and writes its rows of dx.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bwd_channel_impl<T: Scalar>(
    d: Dims,
    ch: usize,
    g: &[T],
    x: &[T],
    dx: Option<SharedMut<T>>,
    mean: T,
    invstd: T,
    w: T,
    b: T,
    training: bool,
    act: NormAct<T>,
) -> (f64, f64) {
    let scale = w * invstd;
    let shift = b - mean * scale;
    let (mut sg, mut sgx) = (0f64, 0f64);
    let mut a = [T::zero(); LANES];
    let mut b2 = [T::zero(); LANES];
    let mut pending = 0;
    for i in 0..d.n {
        let r = d.row(i, ch);
        (a, b2) = row_grad_sums(&g[r.clone()], &x[r], mean, scale, shift, act, (a, b2));
        pending += d.inner;
        if pending >= FLUSH || i + 1 == d.n {
            sg += fold_lanes(&a);
            sgx += fold_lanes(&b2);
            a = [T::zero(); LANES];
            b2 = [T::zero(); LANES];
            pending = 0;
        }
    }
    if let Some(dx) = dx {
        let m = (d.n * d.inner) as f64;
        let (ga, gb, gc) = if training {
            let s = f64_of(scale);
            let is = f64_of(invstd);
            let gb = -s * is * is * sgx / m;
            let gc = -s * sg / m - gb * f64_of(mean);
            (scale, of_f64::<T>(gb), of_f64::<T>(gc))
        } else {
            (scale, T::zero(), T::zero())
        };
        for i in (0..d.n).rev() {
            let r = d.row(i, ch);
            // SAFETY: rows of channel `ch` are written by this task only; dx has x's length.
            let dr = unsafe { std::slice::from_raw_parts_mut(dx.0.add(r.start), d.inner) };
            row_dx(&g[r.clone()], &x[r], dr, scale, shift, act, [ga, gb, gc]);
        }
    }
    (sg, sgx)
}
simd_dispatch!(bwd_channel, bwd_channel_impl, <T>,
    (d: Dims, ch: usize, g: &[T], x: &[T], dx: Option<SharedMut<T>>, mean: T, invstd: T, w: T, b: T,
     training: bool, act: NormAct<T>) -> (f64, f64));

/// Channels per parallel task: enough that a task has some 16k values to visit.
fn min_len(d: Dims) -> usize {
    (16384 / (d.n * d.inner).max(1)).max(1)
}

fn check_len<T>(name: &str, v: &[T], want: usize, what: &str) -> KernelResult<()> {
    if v.len() != want {
        return Err(KernelError::shape(format!(
            "batch_norm: '{name}' has {} elements, expected {want} ({what})",
            v.len()
        )));
    }
    Ok(())
}

fn check_dims(shape: (usize, usize, usize), len: usize) -> KernelResult<Dims> {
    let (n, c, inner) = shape;
    let total = n.checked_mul(c).and_then(|v| v.checked_mul(inner));
    if total != Some(len) {
        return Err(KernelError::shape(format!(
            "batch_norm: 'input' has {len} elements, which does not match the shape (N={n}, C={c}, inner={inner})"
        )));
    }
    Ok(Dims { n, c, inner })
}

fn check_act<T: Scalar>(act: NormAct<T>) -> KernelResult<()> {
    if let NormAct::Hardtanh(lo, hi) = act {
        if !(lo <= hi) {
            return Err(KernelError::param(format!(
                "batch_norm: activation bounds must satisfy min <= max, got min={lo:?}, max={hi:?}"
            )));
        }
    }
    Ok(())
}

/// Batch normalisation forward over `x` viewed as `(n, c, inner)` (C-contiguous).
///
/// `weight`/`bias` (length c) default to 1/0. With `NormStats::Batch` the batch statistics
/// are computed (training mode; needs `n * inner >= 1`); with `NormStats::Given` the given
/// mean and variance are used. `saved` receives the mean, `1 / sqrt(var + eps)` and the
/// (biased) variance per channel.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward<T: Scalar>(
    x: &[T],
    shape: (usize, usize, usize),
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    stats: NormStats<'_, T>,
    eps: T,
    act: NormAct<T>,
    y: &mut [T],
    saved: NormSaved<'_, T>,
) -> KernelResult<()> {
    let d = check_dims(shape, x.len())?;
    check_len("output", y, x.len(), "one per input element")?;
    check_act(act)?;
    let c = d.c;
    for (name, v) in [("weight", weight), ("bias", bias)] {
        if let Some(v) = v {
            check_len(name, v, c, "one per channel")?;
        }
    }
    check_len("save_mean", saved.mean, c, "one per channel")?;
    check_len("save_invstd", saved.invstd, c, "one per channel")?;
    check_len("save_var", saved.var, c, "one per channel")?;
    if let NormStats::Given { mean, var } = stats {
        check_len("running_mean", mean, c, "one per channel")?;
        check_len("running_var", var, c, "one per channel")?;
    } else if d.n * d.inner == 0 && c > 0 {
        return Err(KernelError::shape(format!(
            "batch_norm: cannot compute batch statistics of an empty input (N={}, C={c}, inner={})",
            d.n, d.inner
        )));
    }
    if c == 0 {
        return Ok(());
    }
    let yp = SharedMut(y.as_mut_ptr());
    let mut per: Vec<(T, T, T)> = vec![(T::zero(), T::zero(), T::zero()); c];
    let work = x.len().saturating_mul(3);
    parallel::run(work, || {
        let body = |(ch, out): (usize, &mut (T, T, T))| {
            let given = match stats {
                NormStats::Given { mean, var } => Some((mean[ch], var[ch])),
                NormStats::Batch => None,
            };
            let w = weight.map_or(T::one(), |w| w[ch]);
            let b = bias.map_or(T::zero(), |b| b[ch]);
            *out = fwd_channel(d, ch, x, yp, given, w, b, eps, act);
        };
        if work < parallel::INLINE_WORK {
            per.iter_mut().enumerate().for_each(body);
        } else {
            per.par_iter_mut().enumerate().with_min_len(min_len(d)).for_each(body);
        }
    });
    for (ch, &(m, v, is)) in per.iter().enumerate() {
        saved.mean[ch] = m;
        saved.var[ch] = v;
        saved.invstd[ch] = is;
    }
    Ok(())
}

/// Batch normalisation backward. `mean`/`invstd` are the values the forward used;
/// `training` says whether they were the batch's own statistics (then they depend on x).
/// `bias` matters only with a fused activation (to locate its kinks).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward<T: Scalar>(
    dy: &[T],
    x: &[T],
    shape: (usize, usize, usize),
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    mean: &[T],
    invstd: &[T],
    training: bool,
    act: NormAct<T>,
    grads: NormGrads<'_, T>,
) -> KernelResult<()> {
    let d = check_dims(shape, x.len())?;
    check_len("grad_output", dy, x.len(), "the input's shape")?;
    check_act(act)?;
    let c = d.c;
    for (name, v) in [("weight", weight), ("bias", bias)] {
        if let Some(v) = v {
            check_len(name, v, c, "one per channel")?;
        }
    }
    check_len("save_mean", mean, c, "one per channel")?;
    check_len("save_invstd", invstd, c, "one per channel")?;
    let NormGrads { dx, dweight, dbias } = grads;
    if let Some(dx) = dx.as_deref() {
        check_len("grad_input", dx, x.len(), "the input's shape")?;
    }
    if let Some(v) = dweight.as_deref() {
        check_len("grad_weight", v, c, "one per channel")?;
    }
    if let Some(v) = dbias.as_deref() {
        check_len("grad_bias", v, c, "one per channel")?;
    }
    if c == 0 {
        return Ok(());
    }
    let dxp = dx.map(|d| SharedMut(d.as_mut_ptr()));
    let mut sums: Vec<(f64, f64)> = vec![(0.0, 0.0); c];
    let work = x.len().saturating_mul(3);
    parallel::run(work, || {
        let body = |(ch, out): (usize, &mut (f64, f64))| {
            let w = weight.map_or(T::one(), |w| w[ch]);
            let b = bias.map_or(T::zero(), |b| b[ch]);
            *out = bwd_channel(d, ch, dy, x, dxp, mean[ch], invstd[ch], w, b, training, act);
        };
        if work < parallel::INLINE_WORK {
            sums.iter_mut().enumerate().for_each(body);
        } else {
            sums.par_iter_mut().enumerate().with_min_len(min_len(d)).for_each(body);
        }
    });
    if let Some(dw) = dweight {
        for (ch, o) in dw.iter_mut().enumerate() {
            *o = of_f64(sums[ch].1 * f64_of(invstd[ch]));
        }
    }
    if let Some(db) = dbias {
        for (ch, o) in db.iter_mut().enumerate() {
            *o = of_f64(sums[ch].0);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64, len: usize) -> Vec<f64> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 1.5
            })
            .collect()
    }

    fn naive_fwd(x: &[f64], (n, c, k): (usize, usize, usize), w: &[f64], b: &[f64], eps: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut y = vec![0.0; x.len()];
        let mut means = vec![0.0; c];
        let mut vars = vec![0.0; c];
        for ch in 0..c {
            let vals: Vec<f64> = (0..n).flat_map(|i| (0..k).map(move |j| (i, j))).map(|(i, j)| x[(i * c + ch) * k + j]).collect();
            let m = vals.iter().sum::<f64>() / vals.len() as f64;
            let v = vals.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / vals.len() as f64;
            means[ch] = m;
            vars[ch] = v;
            for i in 0..n {
                for j in 0..k {
                    let p = (i * c + ch) * k + j;
                    y[p] = (x[p] - m) / (v + eps).sqrt() * w[ch] + b[ch];
                }
            }
        }
        (y, means, vars)
    }

    fn run_fwd(x: &[f64], shape: (usize, usize, usize), w: &[f64], b: &[f64], act: NormAct<f64>) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let c = shape.1;
        let mut y = vec![0.0; x.len()];
        let (mut m, mut is, mut v) = (vec![0.0; c], vec![0.0; c], vec![0.0; c]);
        batch_norm_forward(x, shape, Some(w), Some(b), NormStats::Batch, 1e-5, act, &mut y,
            NormSaved { mean: &mut m, invstd: &mut is, var: &mut v }).unwrap();
        (y, m, is, v)
    }

    #[test]
    fn forward_matches_naive_over_odd_shapes() {
        for &shape in &[(1, 1, 2), (2, 3, 1), (3, 5, 17), (4, 2, 33), (64, 3, 5)] {
            let len = shape.0 * shape.1 * shape.2;
            let x = lcg(7, len);
            let w = lcg(8, shape.1);
            let b = lcg(9, shape.1);
            let (y, m, _, v) = run_fwd(&x, shape, &w, &b, NormAct::Identity);
            let (yr, mr, vr) = naive_fwd(&x, shape, &w, &b, 1e-5);
            for (a, r) in y.iter().zip(&yr).chain(m.iter().zip(&mr)).chain(v.iter().zip(&vr)) {
                assert!((a - r).abs() < 1e-10, "{a} vs {r} for {shape:?}");
            }
            let (yrelu, ..) = run_fwd(&x, shape, &w, &b, NormAct::Relu);
            let (y6, ..) = run_fwd(&x, shape, &w, &b, NormAct::Hardtanh(-0.5, 0.5));
            for i in 0..len {
                assert_eq!(yrelu[i], y[i].max(0.0));
                assert_eq!(y6[i], y[i].clamp(-0.5, 0.5));
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let shape = (3, 2, 5);
        let len = 30;
        let x = lcg(1, len);
        let w = lcg(2, 2);
        let b = lcg(3, 2);
        let proj = lcg(4, len);
        for act in [NormAct::Identity, NormAct::Relu, NormAct::Hardtanh(-0.3, 0.4)] {
            let loss = |x: &[f64]| -> f64 {
                let (y, ..) = run_fwd(x, shape, &w, &b, act);
                y.iter().zip(&proj).map(|(a, p)| a * p).sum()
            };
            let (_, m, is, _) = run_fwd(&x, shape, &w, &b, act);
            let mut dx = vec![0.0; len];
            let (mut dw, mut db) = (vec![0.0; 2], vec![0.0; 2]);
            batch_norm_backward(&proj, &x, shape, Some(&w), Some(&b), &m, &is, true, act,
                NormGrads { dx: Some(&mut dx), dweight: Some(&mut dw), dbias: Some(&mut db) }).unwrap();
            let h = 1e-6;
            for i in 0..len {
                let mut xp = x.clone();
                xp[i] += h;
                let mut xm = x.clone();
                xm[i] -= h;
                let num = (loss(&xp) - loss(&xm)) / (2.0 * h);
                assert!((num - dx[i]).abs() < 1e-6, "{act:?} dx[{i}]: {} vs {num}", dx[i]);
            }
            // dweight/dbias of a linear-in-(w, b) output without activation
            if act == NormAct::Identity {
                let xhat: Vec<f64> = (0..len).map(|p| { let ch = (p / 5) % 2; (x[p] - m[ch]) * is[ch] }).collect();
                for ch in 0..2 {
                    let mut sw = 0.0;
                    let mut sb = 0.0;
                    for p in 0..len {
                        if (p / 5) % 2 == ch {
                            sw += proj[p] * xhat[p];
                            sb += proj[p];
                        }
                    }
                    assert!((dw[ch] - sw).abs() < 1e-10 && (db[ch] - sb).abs() < 1e-10);
                }
            }
        }
    }

    #[test]
    fn eval_mode_uses_given_statistics() {
        let shape = (2, 3, 4);
        let x = lcg(5, 24);
        let rm = [0.1, -0.2, 0.3];
        let rv = [1.5, 0.5, 2.0];
        let mut y = vec![0.0; 24];
        let (mut m, mut is, mut v) = (vec![0.0; 3], vec![0.0; 3], vec![0.0; 3]);
        batch_norm_forward(&x, shape, None, None, NormStats::Given { mean: &rm, var: &rv }, 1e-5,
            NormAct::Identity, &mut y, NormSaved { mean: &mut m, invstd: &mut is, var: &mut v }).unwrap();
        for p in 0..24 {
            let ch = (p / 4) % 3;
            assert!((y[p] - (x[p] - rm[ch]) / (rv[ch] + 1e-5f64).sqrt()).abs() < 1e-12);
        }
        let g = lcg(6, 24);
        let mut dx = vec![0.0; 24];
        batch_norm_backward(&g, &x, shape, None, None, &m, &is, false, NormAct::Identity,
            NormGrads { dx: Some(&mut dx), dweight: None, dbias: None }).unwrap();
        for p in 0..24 {
            assert!((dx[p] - g[p] * is[(p / 4) % 3]).abs() < 1e-12);
        }
    }

    #[test]
    fn results_do_not_depend_on_thread_count() {
        let shape = (16, 40, 96);
        let len = shape.0 * shape.1 * shape.2;
        let x: Vec<f32> = lcg(11, len).into_iter().map(|v| v as f32).collect();
        let g: Vec<f32> = lcg(12, len).into_iter().map(|v| v as f32).collect();
        let run = || {
            let mut y = vec![0f32; len];
            let (mut m, mut is, mut v) = (vec![0f32; 40], vec![0f32; 40], vec![0f32; 40]);
            batch_norm_forward(&x, shape, None, None, NormStats::Batch, 1e-5, NormAct::Relu, &mut y,
                NormSaved { mean: &mut m, invstd: &mut is, var: &mut v }).unwrap();
            let mut dx = vec![0f32; len];
            let mut dw = vec![0f32; 40];
            batch_norm_backward(&g, &x, shape, None, None, &m, &is, true, NormAct::Relu,
                NormGrads { dx: Some(&mut dx), dweight: Some(&mut dw), dbias: None }).unwrap();
            (y, dx, dw)
        };
        crate::parallel::set_num_threads(1).unwrap();
        let a = run();
        crate::parallel::set_num_threads(2).unwrap();
        let b = run();
        assert_eq!(a, b);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let x = vec![0f32; 12];
        let mut y = vec![0f32; 12];
        let (mut m, mut is, mut v) = (vec![0f32; 3], vec![0f32; 3], vec![0f32; 3]);
        let e = batch_norm_forward(&x, (2, 3, 3), None, None, NormStats::Batch, 1e-5, NormAct::Identity, &mut y,
            NormSaved { mean: &mut m, invstd: &mut is, var: &mut v }).unwrap_err();
        assert!(e.to_string().contains("'input'"));
        let w = [1f32; 2];
        let e = batch_norm_forward(&x, (2, 3, 2), Some(&w), None, NormStats::Batch, 1e-5, NormAct::Identity, &mut y,
            NormSaved { mean: &mut m, invstd: &mut is, var: &mut v }).unwrap_err();
        assert!(e.to_string().contains("'weight'"));
        let e = batch_norm_forward(&x, (2, 3, 2), None, None, NormStats::Batch, 1e-5, NormAct::Hardtanh(1.0, 0.0), &mut y,
            NormSaved { mean: &mut m, invstd: &mut is, var: &mut v }).unwrap_err();
        assert!(e.to_string().contains("min <= max"));
    }
}
