//! Batch normalisation over `(N, C, inner)` arrays (NCHW images have `inner = H * W`),
//! per channel C, forward and backward, with an optional fused ReLU / hardtanh after the
//! affine transform.
//!
//! Training forward: one streaming pass gathers per-channel sums of `x - k` and
//! `(x - k)^2`, `k` being one value of the channel (close to its mean, so the biased
//! variance `E[(x-k)^2] - E[x-k]^2` does not cancel badly; partial sums are kept in f64),
//! then a second pass writes `y = act((x - mean) * invstd * weight + bias)` with
//! `invstd = 1 / sqrt(var + eps)`. Evaluation uses given (running) statistics instead.
//!
//! Backward, per channel, with `g` the output gradient masked by the activation:
//! `sg = sum g`, `sgx = sum g * (x - mean)`, then
//! `dx = w * invstd * (g - sg / M - (x - mean) * invstd^2 * sgx / M)` in training mode
//! (the statistics depend on x; `M = N * inner`) or `dx = w * invstd * g` in evaluation
//! mode; `dweight = sgx * invstd`, `dbias = sg`.
//!
//! Both passes walk memory in order (NCHW rows of one channel lie a whole image apart:
//! visiting a channel at a time defeats the prefetchers and maps every row to the same L2
//! set). Sums are taken over fixed chunks of whole images (the split depends only on the
//! shape: 16 lanes per long row, or per-position lanes for short rows, folded into f64)
//! and the chunk partials are added in chunk order, so results do not depend on the
//! thread count.

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

#[inline(always)]
fn f64_of<T: Scalar>(v: T) -> f64 {
    v.to_f64().unwrap_or(f64::NAN)
}

#[inline(always)]
fn of_f64<T: Scalar>(v: f64) -> T {
    T::from_f64(v).unwrap_or_else(T::nan)
}

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
fn row_shifted<T: Scalar>(
    row: &[T],
    k: T,
    sums: ([T; LANES], [T; LANES]),
) -> ([T; LANES], [T; LANES]) {
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
fn row_dx<T: Scalar>(
    g: &[T],
    x: &[T],
    dx: &mut [T],
    scale: T,
    shift: T,
    act: NormAct<T>,
    k: [T; 3],
) {
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

/// Rows at least this long are reduced with per-row lanes; shorter ones with lanes over the
/// positions of a whole image (per-channel constants expanded to per-position arrays).
const ROW_MIN: usize = 32;
/// Values per reduction chunk (whole images; the split depends on the shape only, so the
/// order of the additions never depends on the thread count).
const CHUNK: usize = 32768;
/// Values per parallel task of the elementwise passes.
const TASK: usize = 16384;

/// Values per reduction chunk for short rows, whose chunks end with a scalar f64 fold of
/// `c * inner` lane sums (a larger chunk spreads that fold over more work).
const CHUNK_SHORT: usize = 1 << 17;

fn images_per_chunk(d: Dims) -> usize {
    let w = (d.c * d.inner).max(1);
    if d.inner >= ROW_MIN {
        return (CHUNK / w).max(1);
    }
    // an even number of equal chunks (two tasks get the same work), from the shape only
    let chunks = (d.n * w).div_ceil(CHUNK_SHORT).max(1).next_multiple_of(2);
    d.n.div_ceil(chunks).max(1)
}

/// A per-channel value repeated `inner` times per channel (empty for long rows).
fn expand<T: Scalar>(d: Dims, v: impl Fn(usize) -> T) -> Vec<T> {
    if d.inner >= ROW_MIN {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(d.c * d.inner);
    for ch in 0..d.c {
        out.extend(std::iter::repeat_n(v(ch), d.inner));
    }
    out
}

/// Reduction pass of the forward: per-channel sums of `x - k` and `(x - k)^2` over images
/// `n0..n1` into `out` (zeroed by the caller). `kx` is `k` expanded (short rows) or empty.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `ch` indexes several per-channel arrays
fn stats_chunk_impl<T: Scalar>(
    d: Dims,
    x: &[T],
    n0: usize,
    n1: usize,
    k: &[T],
    kx: &[T],
    out: &mut [(f64, f64)],
) {
    let w = d.c * d.inner;
    if kx.is_empty() {
        for i in n0..n1 {
            for ch in 0..d.c {
                let (s, q) = row_shifted(
                    &x[d.row(i, ch)],
                    k[ch],
                    ([T::zero(); LANES], [T::zero(); LANES]),
                );
                out[ch].0 += fold_lanes(&s);
                out[ch].1 += fold_lanes(&q);
            }
        }
    } else {
        let mut s = vec![T::zero(); w];
        let mut q = vec![T::zero(); w];
        for i in n0..n1 {
            let img = &x[i * w..(i + 1) * w];
            for (((sv, qv), &xv), &kv) in s.iter_mut().zip(q.iter_mut()).zip(img).zip(kx) {
                let dv = xv - kv;
                *sv = *sv + dv;
                *qv = *qv + dv * dv;
            }
        }
        for ch in 0..d.c {
            let r = ch * d.inner..(ch + 1) * d.inner;
            out[ch].0 += s[r.clone()].iter().fold(0f64, |a, &v| a + f64_of(v));
            out[ch].1 += q[r].iter().fold(0f64, |a, &v| a + f64_of(v));
        }
    }
}
crate::multiversion!(fn stats_chunk<T: Scalar>(d: Dims, x: &[T], n0: usize, n1: usize, k: &[T], kx: &[T], out: &mut [(f64, f64)]) -> () => stats_chunk_impl);

/// Output pass of the forward over one image: `y = act(x * scale + shift)` per channel
/// (`sx`/`bx`: the expanded scale and shift for short rows, else empty).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn apply_image_impl<T: Scalar>(
    d: Dims,
    x: &[T],
    y: &mut [T],
    scale: &[T],
    shift: &[T],
    sx: &[T],
    bx: &[T],
    act: NormAct<T>,
) {
    if sx.is_empty() {
        for ch in 0..d.c {
            let r = ch * d.inner..(ch + 1) * d.inner;
            row_apply(&x[r.clone()], &mut y[r], scale[ch], shift[ch], act);
        }
        return;
    }
    let n = y.len().min(x.len()).min(sx.len()).min(bx.len());
    let (x, y, sx, bx) = (&x[..n], &mut y[..n], &sx[..n], &bx[..n]);
    match act {
        NormAct::Identity => {
            for j in 0..n {
                y[j] = x[j] * sx[j] + bx[j];
            }
        }
        _ => {
            for j in 0..n {
                y[j] = activate(x[j] * sx[j] + bx[j], act);
            }
        }
    }
}
crate::multiversion!(fn apply_image<T: Scalar>(d: Dims, x: &[T], y: &mut [T], scale: &[T], shift: &[T], sx: &[T], bx: &[T], act: NormAct<T>) -> () => apply_image_impl);

/// Per-channel constants of the backward pass, per channel and (for short rows) expanded.
struct BwdConst<T> {
    mean: Vec<T>,
    scale: Vec<T>,
    shift: Vec<T>,
    mx: Vec<T>,
    sx: Vec<T>,
    bx: Vec<T>,
}

/// Reduction pass of the backward over images `n0..n1`: per-channel `(sum g', sum g' (x - mean))`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
#[allow(clippy::needless_range_loop)] // `ch` indexes several per-channel arrays
fn grad_chunk_impl<T: Scalar>(
    d: Dims,
    g: &[T],
    x: &[T],
    n0: usize,
    n1: usize,
    k: &BwdConst<T>,
    act: NormAct<T>,
    out: &mut [(f64, f64)],
) {
    let w = d.c * d.inner;
    if k.sx.is_empty() {
        for i in n0..n1 {
            for ch in 0..d.c {
                let r = d.row(i, ch);
                let z = ([T::zero(); LANES], [T::zero(); LANES]);
                let (a, b) = row_grad_sums(
                    &g[r.clone()],
                    &x[r],
                    k.mean[ch],
                    k.scale[ch],
                    k.shift[ch],
                    act,
                    z,
                );
                out[ch].0 += fold_lanes(&a);
                out[ch].1 += fold_lanes(&b);
            }
        }
    } else {
        let mut a = vec![T::zero(); w];
        let mut b = vec![T::zero(); w];
        let (mx, sx, bx) = (&k.mx[..w], &k.sx[..w], &k.bx[..w]);
        for i in n0..n1 {
            let gi = &g[i * w..(i + 1) * w];
            let xi = &x[i * w..(i + 1) * w];
            for j in 0..w {
                let gm = masked(gi[j], xi[j] * sx[j] + bx[j], act);
                a[j] = a[j] + gm;
                b[j] = b[j] + gm * (xi[j] - mx[j]);
            }
        }
        for ch in 0..d.c {
            let r = ch * d.inner..(ch + 1) * d.inner;
            out[ch].0 += a[r.clone()].iter().fold(0f64, |s, &v| s + f64_of(v));
            out[ch].1 += b[r].iter().fold(0f64, |s, &v| s + f64_of(v));
        }
    }
}
crate::multiversion!(fn grad_chunk<T: Scalar>(d: Dims, g: &[T], x: &[T], n0: usize, n1: usize, k: &BwdConst<T>, act: NormAct<T>, out: &mut [(f64, f64)]) -> () => grad_chunk_impl);

/// Input-gradient pass over one image: `dx = ga * g' + gb * x + gc` per channel
/// (`coef` per channel; `cx` the three expanded for short rows, else empty).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
#[allow(clippy::needless_range_loop)] // `ch` indexes several per-channel arrays
fn dx_image_impl<T: Scalar>(
    d: Dims,
    g: &[T],
    x: &[T],
    dx: &mut [T],
    k: &BwdConst<T>,
    coef: &[[T; 3]],
    cx: &[Vec<T>; 3],
    act: NormAct<T>,
) {
    if k.sx.is_empty() {
        for ch in 0..d.c {
            let r = ch * d.inner..(ch + 1) * d.inner;
            row_dx(
                &g[r.clone()],
                &x[r.clone()],
                &mut dx[r],
                k.scale[ch],
                k.shift[ch],
                act,
                coef[ch],
            );
        }
        return;
    }
    let n = dx.len();
    let (g, x, sx, bx) = (&g[..n], &x[..n], &k.sx[..n], &k.bx[..n]);
    let (ga, gb, gc) = (&cx[0][..n], &cx[1][..n], &cx[2][..n]);
    match act {
        NormAct::Identity => {
            for j in 0..n {
                dx[j] = ga[j] * g[j] + (gb[j] * x[j] + gc[j]);
            }
        }
        _ => {
            for j in 0..n {
                let gm = masked(g[j], x[j] * sx[j] + bx[j], act);
                dx[j] = ga[j] * gm + (gb[j] * x[j] + gc[j]);
            }
        }
    }
}
crate::multiversion!(fn dx_image<T: Scalar>(d: Dims, g: &[T], x: &[T], dx: &mut [T], k: &BwdConst<T>, coef: &[[T; 3]], cx: &[Vec<T>; 3], act: NormAct<T>) -> () => dx_image_impl);

/// Per-channel sums over all images: chunk partials (in parallel) added in chunk order.
fn reduce_chunks(
    d: Dims,
    parallel_ok: bool,
    f: impl Fn(usize, usize, &mut [(f64, f64)]) + Sync,
) -> Vec<(f64, f64)> {
    let nb = images_per_chunk(d);
    let chunks = d.n.div_ceil(nb);
    let one = |ci: usize| {
        let mut out = vec![(0f64, 0f64); d.c];
        f(ci * nb, ((ci + 1) * nb).min(d.n), &mut out);
        out
    };
    let parts: Vec<Vec<(f64, f64)>> = if parallel_ok {
        (0..chunks).into_par_iter().map(one).collect()
    } else {
        (0..chunks).map(one).collect()
    };
    let mut total = vec![(0f64, 0f64); d.c];
    for p in &parts {
        for (t, v) in total.iter_mut().zip(p) {
            t.0 += v.0;
            t.1 += v.1;
        }
    }
    total
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
        #[allow(clippy::neg_cmp_op_on_partial_ord)] // NaN bounds must be rejected too
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
    let work = x.len().saturating_mul(3);
    let par = work >= parallel::INLINE_WORK;
    parallel::run(work, || {
        for ch in 0..c {
            if let NormStats::Given { mean, var } = stats {
                saved.mean[ch] = mean[ch];
                saved.var[ch] = var[ch];
            }
        }
        if let NormStats::Batch = stats {
            // statistics of data shifted by one of its values per channel (close to the mean,
            // so E[(x-k)^2] - E[x-k]^2 does not cancel badly)
            let k: Vec<T> = (0..c).map(|ch| x[d.row(0, ch).start]).collect();
            let kx = expand(d, |ch| k[ch]);
            let sums = reduce_chunks(d, par, |n0, n1, out| {
                stats_chunk(d, x, n0, n1, &k, &kx, out)
            });
            let m = (d.n * d.inner) as f64;
            for ch in 0..c {
                let dm = sums[ch].0 / m;
                saved.mean[ch] = of_f64(f64_of(k[ch]) + dm);
                saved.var[ch] = of_f64((sums[ch].1 / m - dm * dm).max(0.0));
            }
        }
        let mut scale = vec![T::zero(); c];
        let mut shift = vec![T::zero(); c];
        for ch in 0..c {
            let invstd = T::one() / (saved.var[ch] + eps).sqrt();
            saved.invstd[ch] = invstd;
            scale[ch] = weight.map_or(T::one(), |w| w[ch]) * invstd;
            shift[ch] = bias.map_or(T::zero(), |b| b[ch]) - saved.mean[ch] * scale[ch];
        }
        let w = c * d.inner;
        if w == 0 || x.is_empty() {
            return;
        }
        let sx = expand(d, |ch| scale[ch]);
        let bx = expand(d, |ch| shift[ch]);
        let body =
            |(yi, xi): (&mut [T], &[T])| apply_image(d, xi, yi, &scale, &shift, &sx, &bx, act);
        if par {
            y.par_chunks_mut(w)
                .zip(x.par_chunks(w))
                .with_min_len((TASK / w).max(1))
                .for_each(body);
        } else {
            y.chunks_mut(w).zip(x.chunks(w)).for_each(body);
        }
    });
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
    let work = x.len().saturating_mul(3);
    let par = work >= parallel::INLINE_WORK;
    let scale: Vec<T> = (0..c)
        .map(|ch| weight.map_or(T::one(), |w| w[ch]) * invstd[ch])
        .collect();
    let shift: Vec<T> = (0..c)
        .map(|ch| bias.map_or(T::zero(), |b| b[ch]) - mean[ch] * scale[ch])
        .collect();
    let k = BwdConst {
        mean: mean.to_vec(),
        mx: expand(d, |ch| mean[ch]),
        sx: expand(d, |ch| scale[ch]),
        bx: expand(d, |ch| shift[ch]),
        scale,
        shift,
    };
    let need_sums = dweight.is_some() || dbias.is_some() || (dx.is_some() && training);
    parallel::run(work, || {
        let sums = if need_sums && !x.is_empty() {
            reduce_chunks(d, par, |n0, n1, out| {
                grad_chunk(d, dy, x, n0, n1, &k, act, out)
            })
        } else {
            vec![(0f64, 0f64); c]
        };
        if let Some(dx) = dx {
            let m = (d.n * d.inner) as f64;
            let coef: Vec<[T; 3]> = (0..c)
                .map(|ch| {
                    let s = k.scale[ch];
                    if training {
                        let (sf, is) = (f64_of(s), f64_of(invstd[ch]));
                        let gb = -sf * is * is * sums[ch].1 / m;
                        let gc = -sf * sums[ch].0 / m - gb * f64_of(mean[ch]);
                        [s, of_f64(gb), of_f64(gc)]
                    } else {
                        [s, T::zero(), T::zero()]
                    }
                })
                .collect();
            let cx = [
                expand(d, |ch| coef[ch][0]),
                expand(d, |ch| coef[ch][1]),
                expand(d, |ch| coef[ch][2]),
            ];
            let w = c * d.inner;
            if w > 0 && !x.is_empty() {
                let body = |(di, (gi, xi)): (&mut [T], (&[T], &[T]))| {
                    dx_image(d, gi, xi, di, &k, &coef, &cx, act)
                };
                if par {
                    dx.par_chunks_mut(w)
                        .zip(dy.par_chunks(w).zip(x.par_chunks(w)))
                        .with_min_len((TASK / w).max(1))
                        .for_each(body);
                } else {
                    dx.chunks_mut(w)
                        .zip(dy.chunks(w).zip(x.chunks(w)))
                        .for_each(body);
                }
            }
        }
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
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64, len: usize) -> Vec<f64> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 1.5
            })
            .collect()
    }

    fn naive_fwd(
        x: &[f64],
        (n, c, k): (usize, usize, usize),
        w: &[f64],
        b: &[f64],
        eps: f64,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut y = vec![0.0; x.len()];
        let mut means = vec![0.0; c];
        let mut vars = vec![0.0; c];
        for ch in 0..c {
            let vals: Vec<f64> = (0..n)
                .flat_map(|i| (0..k).map(move |j| (i, j)))
                .map(|(i, j)| x[(i * c + ch) * k + j])
                .collect();
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

    fn run_fwd(
        x: &[f64],
        shape: (usize, usize, usize),
        w: &[f64],
        b: &[f64],
        act: NormAct<f64>,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let c = shape.1;
        let mut y = vec![0.0; x.len()];
        let (mut m, mut is, mut v) = (vec![0.0; c], vec![0.0; c], vec![0.0; c]);
        batch_norm_forward(
            x,
            shape,
            Some(w),
            Some(b),
            NormStats::Batch,
            1e-5,
            act,
            &mut y,
            NormSaved {
                mean: &mut m,
                invstd: &mut is,
                var: &mut v,
            },
        )
        .unwrap();
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
            for (a, r) in y
                .iter()
                .zip(&yr)
                .chain(m.iter().zip(&mr))
                .chain(v.iter().zip(&vr))
            {
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
        for act in [
            NormAct::Identity,
            NormAct::Relu,
            NormAct::Hardtanh(-0.3, 0.4),
        ] {
            let loss = |x: &[f64]| -> f64 {
                let (y, ..) = run_fwd(x, shape, &w, &b, act);
                y.iter().zip(&proj).map(|(a, p)| a * p).sum()
            };
            let (_, m, is, _) = run_fwd(&x, shape, &w, &b, act);
            let mut dx = vec![0.0; len];
            let (mut dw, mut db) = (vec![0.0; 2], vec![0.0; 2]);
            batch_norm_backward(
                &proj,
                &x,
                shape,
                Some(&w),
                Some(&b),
                &m,
                &is,
                true,
                act,
                NormGrads {
                    dx: Some(&mut dx),
                    dweight: Some(&mut dw),
                    dbias: Some(&mut db),
                },
            )
            .unwrap();
            let h = 1e-6;
            for i in 0..len {
                let mut xp = x.clone();
                xp[i] += h;
                let mut xm = x.clone();
                xm[i] -= h;
                let num = (loss(&xp) - loss(&xm)) / (2.0 * h);
                assert!(
                    (num - dx[i]).abs() < 1e-6,
                    "{act:?} dx[{i}]: {} vs {num}",
                    dx[i]
                );
            }
            // dweight/dbias of a linear-in-(w, b) output without activation
            if act == NormAct::Identity {
                let xhat: Vec<f64> = (0..len)
                    .map(|p| {
                        let ch = (p / 5) % 2;
                        (x[p] - m[ch]) * is[ch]
                    })
                    .collect();
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
        batch_norm_forward(
            &x,
            shape,
            None,
            None,
            NormStats::Given {
                mean: &rm,
                var: &rv,
            },
            1e-5,
            NormAct::Identity,
            &mut y,
            NormSaved {
                mean: &mut m,
                invstd: &mut is,
                var: &mut v,
            },
        )
        .unwrap();
        for p in 0..24 {
            let ch = (p / 4) % 3;
            assert!((y[p] - (x[p] - rm[ch]) / (rv[ch] + 1e-5f64).sqrt()).abs() < 1e-12);
        }
        let g = lcg(6, 24);
        let mut dx = vec![0.0; 24];
        batch_norm_backward(
            &g,
            &x,
            shape,
            None,
            None,
            &m,
            &is,
            false,
            NormAct::Identity,
            NormGrads {
                dx: Some(&mut dx),
                dweight: None,
                dbias: None,
            },
        )
        .unwrap();
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
            batch_norm_forward(
                &x,
                shape,
                None,
                None,
                NormStats::Batch,
                1e-5,
                NormAct::Relu,
                &mut y,
                NormSaved {
                    mean: &mut m,
                    invstd: &mut is,
                    var: &mut v,
                },
            )
            .unwrap();
            let mut dx = vec![0f32; len];
            let mut dw = vec![0f32; 40];
            batch_norm_backward(
                &g,
                &x,
                shape,
                None,
                None,
                &m,
                &is,
                true,
                NormAct::Relu,
                NormGrads {
                    dx: Some(&mut dx),
                    dweight: Some(&mut dw),
                    dbias: None,
                },
            )
            .unwrap();
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
        let err = |dims: (usize, usize, usize), w: Option<&[f32]>, act: NormAct<f32>| {
            let mut y = vec![0f32; 12];
            let (mut m, mut is, mut v) = (vec![0f32; 3], vec![0f32; 3], vec![0f32; 3]);
            let saved = NormSaved { mean: &mut m, invstd: &mut is, var: &mut v };
            batch_norm_forward(&x, dims, w, None, NormStats::Batch, 1e-5, act, &mut y, saved)
                .unwrap_err()
                .to_string()
        };
        assert!(err((2, 3, 3), None, NormAct::Identity).contains("'input'"));
        assert!(err((2, 3, 2), Some(&[1f32; 2]), NormAct::Identity).contains("'weight'"));
        assert!(err((2, 3, 2), None, NormAct::Hardtanh(1.0, 0.0)).contains("min <= max"));
    }
}
