//! Softmax, log-softmax and cross-entropy (forward and backward).
//!
//! Arrays are C-contiguous slices viewed as `(outer, c, inner)`: the softmax runs over
//! the middle axis. `inner == 1` (the last axis) is the fast path: one pass for the
//! maximum, one fused pass for `exp` and the sum, one for the output; all of a row
//! stays in L1/L2. Other axes vectorise over `inner`. Every row is reduced with the
//! fixed-lane reductions of [`crate::vmath`] (results do not depend on threads).
//!
//! Numerics: the maximum is subtracted before `exp`, so logits of +/-1e4 are exact.
//! A row whose entries are all `-inf` gives NaN (as PyTorch and NumPy do).

use crate::error::{KernelError, KernelResult};
use crate::multiversion;
use crate::parallel;
use crate::vmath::{row_dot, row_exp_store, row_max, row_sum, row_sum_exp, Real};
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;

/// True when the float32 AVX-512 row kernels of [`avx512`] apply to `T` on this CPU.
#[inline]
fn fast_f32<T: 'static>() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx512::available::<T>()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn check_len(name: &str, op: &str, got: usize, want: usize) -> KernelResult<()> {
    if got != want {
        return Err(KernelError::shape(format!("{op}: '{name}' has {got} elements, expected {want}")));
    }
    Ok(())
}

/// `max(x)`, through the AVX-512 float32 kernel when it applies.
#[inline(always)]
fn fast_max<T: Real>(x: &[T]) -> T {
    #[cfg(target_arch = "x86_64")]
    if fast_f32::<T>() {
        // SAFETY: fast_f32 checked AVX-512 and T == f32.
        let m = unsafe { avx512::row_max(avx512::f32s(x)) };
        return T::from_f32(m).unwrap_or_else(T::nan);
    }
    row_max(x)
}

/// `y = exp(x - m)` (or only the sum when `y` is `None`), returning the sum.
#[inline(always)]
fn fast_exp<T: Real>(x: &[T], m: T, y: Option<&mut [T]>) -> T {
    #[cfg(target_arch = "x86_64")]
    if fast_f32::<T>() {
        let mf = m.to_f32().unwrap_or(f32::NAN);
        // SAFETY: fast_f32 checked AVX-512 and T == f32.
        let s = unsafe { avx512::exp_store(avx512::f32s(x), mf, y.map(avx512::f32s_mut)) };
        return T::from_f32(s).unwrap_or_else(T::nan);
    }
    match y {
        Some(y) => row_exp_store(x, m, y),
        None => row_sum_exp(x, m),
    }
}

/// Rows per parallel task so that each task touches at least ~16k elements.
fn min_rows(c: usize) -> usize {
    (16384 / c.max(1)).max(1)
}

// ---------------------------------------------------------------- rows (inner == 1)

#[inline(always)]
fn softmax_row_body<T: Real>(x: &[T], y: &mut [T], log: bool) {
    let m = row_max(x);
    if log {
        // (x - m) - log(s): exact for the largest logits even when |m| is huge.
        let ls = row_sum_exp(x, m).ln();
        for (yi, &xi) in y.iter_mut().zip(x) {
            *yi = (xi - m) - ls;
        }
    } else {
        let s = row_exp_store(x, m, y);
        let inv = T::one() / s;
        for yi in y.iter_mut() {
            *yi = *yi * inv;
        }
    }
}
multiversion!(fn softmax_row<T: Real>(x: &[T], y: &mut [T], log: bool) -> () => softmax_row_body);

#[inline(always)]
fn softmax_bwd_row_body<T: Real>(y: &[T], dy: &[T], dx: &mut [T], log: bool) {
    if log {
        let s = row_sum(dy);
        for ((d, &g), &yi) in dx.iter_mut().zip(dy).zip(y) {
            *d = g - yi.fexp() * s;
        }
    } else {
        let dot = row_dot(y, dy);
        for ((d, &g), &yi) in dx.iter_mut().zip(dy).zip(y) {
            *d = yi * (g - dot);
        }
    }
}
multiversion!(fn softmax_bwd_row<T: Real>(y: &[T], dy: &[T], dx: &mut [T], log: bool) -> () => softmax_bwd_row_body);

// ------------------------------------------------------- strided (inner > 1) blocks

/// One `(c, inner)` block: softmax over the `c` rows, vectorised along `inner`.
#[inline(always)]
fn softmax_block_body<T: Real>(x: &[T], y: &mut [T], c: usize, inner: usize, log: bool, buf: &mut [T]) {
    let (m, s) = buf.split_at_mut(inner);
    m.fill(T::neg_infinity());
    s.fill(T::zero());
    for r in 0..c {
        for (mi, &xi) in m.iter_mut().zip(&x[r * inner..(r + 1) * inner]) {
            *mi = if xi > *mi { xi } else { *mi };
        }
    }
    if log {
        for r in 0..c {
            for ((si, &mi), &xi) in s.iter_mut().zip(m.iter()).zip(&x[r * inner..(r + 1) * inner]) {
                *si = *si + (xi - mi).fexp();
            }
        }
        for si in s.iter_mut() {
            *si = si.ln();
        }
        for r in 0..c {
            let xr = &x[r * inner..(r + 1) * inner];
            let it = y[r * inner..(r + 1) * inner].iter_mut().zip(xr).zip(s.iter()).zip(m.iter());
            for (((yi, &xi), &l), &mi) in it {
                *yi = (xi - mi) - l;
            }
        }
    } else {
        for r in 0..c {
            let xr = &x[r * inner..(r + 1) * inner];
            let yr = &mut y[r * inner..(r + 1) * inner];
            for (((yi, &xi), si), &mi) in yr.iter_mut().zip(xr).zip(s.iter_mut()).zip(m.iter()) {
                let e = (xi - mi).fexp();
                *yi = e;
                *si = *si + e;
            }
        }
        for si in s.iter_mut() {
            *si = T::one() / *si;
        }
        for r in 0..c {
            for (yi, &inv) in y[r * inner..(r + 1) * inner].iter_mut().zip(s.iter()) {
                *yi = *yi * inv;
            }
        }
    }
}
multiversion!(fn softmax_block<T: Real>(x: &[T], y: &mut [T], c: usize, inner: usize, log: bool, buf: &mut [T]) -> () => softmax_block_body);

#[inline(always)]
fn softmax_bwd_block_body<T: Real>(y: &[T], dy: &[T], dx: &mut [T], c: usize, inner: usize, log: bool, buf: &mut [T]) {
    let acc = &mut buf[..inner];
    acc.fill(T::zero());
    for r in 0..c {
        let rr = r * inner..(r + 1) * inner;
        if log {
            for (a, &g) in acc.iter_mut().zip(&dy[rr]) {
                *a = *a + g;
            }
        } else {
            for ((a, &g), &yi) in acc.iter_mut().zip(&dy[rr.clone()]).zip(&y[rr]) {
                *a = *a + g * yi;
            }
        }
    }
    for r in 0..c {
        let rr = r * inner..(r + 1) * inner;
        let it = dx[rr.clone()].iter_mut().zip(&dy[rr.clone()]).zip(&y[rr]).zip(acc.iter());
        if log {
            for (((d, &g), &yi), &a) in it {
                *d = g - yi.fexp() * a;
            }
        } else {
            for (((d, &g), &yi), &a) in it {
                *d = yi * (g - a);
            }
        }
    }
}
multiversion!(fn softmax_bwd_block<T: Real>(y: &[T], dy: &[T], dx: &mut [T], c: usize, inner: usize, log: bool, buf: &mut [T]) -> () => softmax_bwd_block_body);

/// `y = softmax(x)` (or `log_softmax` when `log`) over the middle axis of the C-contiguous
/// array `x` of shape `(outer, c, inner)`.
pub fn softmax<T: Real>(x: &[T], y: &mut [T], dims: (usize, usize, usize), log: bool) -> KernelResult<()> {
    let (outer, c, inner) = dims;
    let op = if log { "log_softmax" } else { "softmax" };
    let n = outer * c * inner;
    check_len("input", op, x.len(), n)?;
    check_len("out", op, y.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    let work = n.saturating_mul(8);
    parallel::run(work, || {
        if inner == 1 && fast_f32::<T>() {
            #[cfg(target_arch = "x86_64")]
            y.par_chunks_mut(c).zip(x.par_chunks(c)).with_min_len(min_rows(c)).for_each(|(yr, xr)| {
                // SAFETY: fast_f32 checked AVX-512 and T == f32.
                unsafe { avx512::softmax_row(avx512::f32s(xr), avx512::f32s_mut(yr), log) }
            });
        } else if inner == 1 {
            y.par_chunks_mut(c)
                .zip(x.par_chunks(c))
                .with_min_len(min_rows(c))
                .for_each(|(yr, xr)| softmax_row(xr, yr, log));
        } else {
            y.par_chunks_mut(c * inner).zip(x.par_chunks(c * inner)).for_each(|(yb, xb)| {
                let mut buf = vec![T::zero(); 2 * inner];
                softmax_block(xb, yb, c, inner, log, &mut buf);
            });
        }
    });
    Ok(())
}

/// Gradient of [`softmax`] / log-softmax from its output `y` and the upstream gradient `dy`:
/// `dx = y * (dy - sum(dy * y))`, or `dx = dy - exp(y) * sum(dy)` for log-softmax.
pub fn softmax_backward<T: Real>(
    y: &[T],
    dy: &[T],
    dx: &mut [T],
    dims: (usize, usize, usize),
    log: bool,
) -> KernelResult<()> {
    let (outer, c, inner) = dims;
    let op = if log { "log_softmax_backward" } else { "softmax_backward" };
    let n = outer * c * inner;
    check_len("output", op, y.len(), n)?;
    check_len("grad_output", op, dy.len(), n)?;
    check_len("grad_input", op, dx.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    parallel::run(n.saturating_mul(4), || {
        if inner == 1 {
            dx.par_chunks_mut(c)
                .zip(dy.par_chunks(c).zip(y.par_chunks(c)))
                .with_min_len(min_rows(c))
                .for_each(|(d, (g, yr))| softmax_bwd_row(yr, g, d, log));
        } else {
            let b = c * inner;
            dx.par_chunks_mut(b).zip(dy.par_chunks(b).zip(y.par_chunks(b))).for_each(|(d, (g, yr))| {
                let mut buf = vec![T::zero(); inner];
                softmax_bwd_block(yr, g, d, c, inner, log, &mut buf);
            });
        }
    });
    Ok(())
}

// ------------------------------------------------------------------- cross-entropy

/// Parameters of [`cross_entropy`] shared by every row.
#[derive(Debug, Clone, Copy)]
pub struct CrossEntropy<'a, T> {
    /// Per-class weights (length `c`), or `None` for 1.
    pub weight: Option<&'a [T]>,
    /// Class-index targets equal to this are skipped (loss 0, gradient 0).
    pub ignore_index: i64,
    /// Label smoothing in `[0, 1]`.
    pub label_smoothing: T,
}

/// Targets of [`cross_entropy`]: one class index per row, or one probability row per row.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a, T> {
    Index(&'a [i64]),
    Prob(&'a [T]),
}

#[derive(Clone, Copy)]
struct RowCtx<'a, T> {
    weight: Option<&'a [T]>,
    wsum: T,
    eps: T,
}

/// Loss of one row with a class-index target; writes `gs * dloss/dx` into `g` when given.
#[inline(always)]
fn ce_index_row_body<T: Real>(x: &[T], t: usize, ctx: &RowCtx<'_, T>, gs: T, g: Option<&mut [T]>) -> T {
    let c = x.len();
    let ct = T::from_usize(c).unwrap_or_else(T::one);
    let m = fast_max(x);
    let wy = ctx.weight.map_or(T::one(), |w| w[t]);
    let keep = T::one() - ctx.eps;
    let smooth_c = ctx.eps / ct;
    let (s, g) = match g {
        Some(g) => {
            let s = fast_exp(x, m, Some(&mut *g));
            (s, Some(g))
        }
        None => (fast_exp(x, m, None), None),
    };
    // log p_j = (x_j - m) - ln s, kept in this form so huge logits lose nothing.
    let ls = s.ln();
    let mut loss = keep * wy * ((m - x[t]) + ls);
    if ctx.eps > T::zero() {
        // sum_c w_c (m - x_c) + W ln s
        let wx = match ctx.weight {
            Some(w) => row_dot(w, x),
            None => row_sum(x),
        };
        loss = loss + smooth_c * ((ctx.wsum * m - wx) + ctx.wsum * ls);
    }
    if let Some(g) = g {
        // dloss/dx_j = p_j ((1-eps) w_y + eps W / C) - (eps / C) w_j - (1-eps) w_y [j == t]
        let a = gs * (keep * wy + smooth_c * ctx.wsum) / s;
        let b = gs * smooth_c;
        match ctx.weight {
            Some(w) if ctx.eps > T::zero() => {
                for (gj, &wj) in g.iter_mut().zip(w) {
                    *gj = a * *gj - b * wj;
                }
            }
            _ => {
                for gj in g.iter_mut() {
                    *gj = a * *gj - b;
                }
            }
        }
        g[t] = g[t] - gs * keep * wy;
    }
    loss
}
multiversion!(fn ce_index_row<T: Real>(x: &[T], t: usize, ctx: &RowCtx<'_, T>, gs: T, g: Option<&mut [T]>) -> T => ce_index_row_body);

/// Loss of one row with a probability target.
#[inline(always)]
fn ce_prob_row_body<T: Real>(x: &[T], p: &[T], ctx: &RowCtx<'_, T>, gs: T, g: Option<&mut [T]>) -> T {
    let c = x.len();
    let ct = T::from_usize(c).unwrap_or_else(T::one);
    let keep = T::one() - ctx.eps;
    let add = ctx.eps / ct;
    let m = fast_max(x);
    // A = sum_c w_c t'_c, B = sum_c w_c t'_c (m - x_c) with t' = (1-eps) t + eps/C;
    // loss = B + A ln s.
    let (mut a, mut b) = (T::zero(), T::zero());
    match ctx.weight {
        Some(w) => {
            for ((&xi, &pi), &wi) in x.iter().zip(p).zip(w) {
                let tw = (keep * pi + add) * wi;
                a = a + tw;
                b = b + tw * (m - xi);
            }
        }
        None => {
            for (&xi, &pi) in x.iter().zip(p) {
                let tw = keep * pi + add;
                a = a + tw;
                b = b + tw * (m - xi);
            }
        }
    }
    let (s, g) = match g {
        Some(g) => (fast_exp(x, m, Some(&mut *g)), Some(g)),
        None => (fast_exp(x, m, None), None),
    };
    let ls = s.ln();
    if let Some(g) = g {
        let sc = gs * a / s;
        match ctx.weight {
            Some(w) => {
                for ((gj, &pj), &wj) in g.iter_mut().zip(p).zip(w) {
                    *gj = sc * *gj - gs * wj * (keep * pj + add);
                }
            }
            None => {
                for (gj, &pj) in g.iter_mut().zip(p) {
                    *gj = sc * *gj - gs * (keep * pj + add);
                }
            }
        }
    }
    b + a * ls
}
multiversion!(fn ce_prob_row<T: Real>(x: &[T], p: &[T], ctx: &RowCtx<'_, T>, gs: T, g: Option<&mut [T]>) -> T => ce_prob_row_body);

/// Cross-entropy of the rows of `logits` (C-contiguous `(n, c)`, classes last) with
/// PyTorch's semantics, per row (the `reduction='none'` values) into `loss` (length n).
///
/// With `grad = Some((gscale, dlogits))`, also writes `gscale[i] * dloss_i/dlogits_i` into
/// row `i` of `dlogits` (`gscale` has length `n`, or 1 to use one factor for every row):
/// the caller folds the reduction (`1/sum(w_target)` for the mean) into `gscale`.
/// Ignored rows get loss 0 and gradient 0.
pub fn cross_entropy<T: Real>(
    logits: &[T],
    c: usize,
    target: Target<'_, T>,
    params: CrossEntropy<'_, T>,
    loss: &mut [T],
    grad: Option<(&[T], &mut [T])>,
) -> KernelResult<()> {
    let op = "cross_entropy";
    if c == 0 {
        return Err(KernelError::shape(format!("{op}: 'input' has 0 classes")));
    }
    if !logits.len().is_multiple_of(c) {
        return Err(KernelError::shape(format!(
            "{op}: 'input' has {} elements, not a multiple of {c} classes",
            logits.len()
        )));
    }
    let n = logits.len() / c;
    check_len("loss", op, loss.len(), n)?;
    if let Some((gs, dl)) = grad.as_ref() {
        check_ce_grad(n, c, gs, dl)?;
    }
    if let Some(w) = params.weight {
        check_len("weight", op, w.len(), c)?;
    }
    let eps = params.label_smoothing;
    if !(eps >= T::zero() && eps <= T::one()) {
        return Err(KernelError::param(format!("{op}: 'label_smoothing' must be in [0, 1], got {eps:?}")));
    }
    match target {
        Target::Index(t) => {
            check_len("target", op, t.len(), n)?;
            if let Some(bad) = t.iter().find(|&&v| v != params.ignore_index && (v < 0 || v as u64 >= c as u64)) {
                return Err(KernelError::param(format!(
                    "{op}: 'target' contains {bad}, out of range for {c} classes (and not ignore_index={})",
                    params.ignore_index
                )));
            }
        }
        Target::Prob(p) => check_len("target", op, p.len(), n * c)?,
    }
    let wsum = params.weight.map_or(T::from_usize(c).unwrap_or_else(T::one), |w| w.iter().fold(T::zero(), |a, &b| a + b));
    let ctx = RowCtx { weight: params.weight, wsum, eps };
    if n == 0 {
        return Ok(());
    }
    let ignore = params.ignore_index;
    let row = |i: usize, x: &[T], gs: T, g: Option<&mut [T]>| -> T {
        match target {
            Target::Index(t) => {
                if t[i] == ignore {
                    if let Some(g) = g {
                        g.fill(T::zero());
                    }
                    T::zero()
                } else {
                    ce_index_row(x, t[i] as usize, &ctx, gs, g)
                }
            }
            Target::Prob(p) => ce_prob_row(x, &p[i * c..(i + 1) * c], &ctx, gs, g),
        }
    };
    let minr = min_rows(c);
    parallel::run(n.saturating_mul(c).saturating_mul(8), || match grad {
        None => loss
            .par_iter_mut()
            .zip(logits.par_chunks(c))
            .enumerate()
            .with_min_len(minr)
            .for_each(|(i, (l, x))| *l = row(i, x, T::zero(), None)),
        Some((gscale, dlogits)) => {
            let gs_len = gscale.len();
            loss.par_iter_mut()
                .zip(logits.par_chunks(c).zip(dlogits.par_chunks_mut(c)))
                .enumerate()
                .with_min_len(minr)
                .for_each(|(i, (l, (x, g)))| {
                    let gs = if gs_len == 1 { gscale[0] } else { gscale[i] };
                    *l = row(i, x, gs, Some(g));
                })
        }
    });
    Ok(())
}

/// Validate the shapes of `grad` for [`cross_entropy`] (call before it).
pub fn check_ce_grad<T>(n: usize, c: usize, gscale: &[T], dlogits: &[T]) -> KernelResult<()> {
    if gscale.len() != 1 && gscale.len() != n {
        return Err(KernelError::shape(format!(
            "cross_entropy: 'grad_output' has {} elements, expected 1 or {n}",
            gscale.len()
        )));
    }
    check_len("grad_input", "cross_entropy", dlogits.len(), n * c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_softmax(x: &[f64]) -> Vec<f64> {
        let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| v / s).collect()
    }

    fn data(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f64 / (1u64 << 31) as f64) * 8.0 - 4.0
            })
            .collect()
    }

    #[test]
    fn rows_and_strided_agree_with_naive() {
        let (outer, c, inner) = (3, 37, 5);
        let x = data(outer * c * inner, 1);
        let mut y = vec![0.0; x.len()];
        let mut yl = vec![0.0; x.len()];
        softmax(&x, &mut y, (outer, c, inner), false).unwrap();
        softmax(&x, &mut yl, (outer, c, inner), true).unwrap();
        for o in 0..outer {
            for i in 0..inner {
                let col: Vec<f64> = (0..c).map(|r| x[(o * c + r) * inner + i]).collect();
                let p = naive_softmax(&col);
                for (r, &pr) in p.iter().enumerate() {
                    let k = (o * c + r) * inner + i;
                    assert!((y[k] - pr).abs() < 1e-14);
                    assert!((yl[k] - pr.ln()).abs() < 1e-12);
                }
            }
        }
        // rows
        let mut y1 = vec![0.0; x.len()];
        softmax(&x, &mut y1, (outer * inner, c, 1), false).unwrap();
        for (r, row) in x.chunks(c).enumerate() {
            let p = naive_softmax(row);
            for j in 0..c {
                assert!((y1[r * c + j] - p[j]).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn cross_entropy_matches_log_softmax() {
        let (n, c) = (7, 11);
        let x = data(n * c, 2);
        let t: Vec<i64> = (0..n as i64).map(|i| (i * 5) % c as i64).collect();
        let mut loss = vec![0.0; n];
        let mut g = vec![0.0; n * c];
        let p = CrossEntropy { weight: None, ignore_index: -100, label_smoothing: 0.0 };
        cross_entropy(&x, c, Target::Index(&t), p, &mut loss, Some((&[1.0], &mut g))).unwrap();
        for i in 0..n {
            let s = naive_softmax(&x[i * c..(i + 1) * c]);
            assert!((loss[i] + s[t[i] as usize].ln()).abs() < 1e-12);
            for j in 0..c {
                let want = s[j] - if j == t[i] as usize { 1.0 } else { 0.0 };
                assert!((g[i * c + j] - want).abs() < 1e-14);
            }
        }
        let bad = [0i64, 1, 2, 3, 4, 5, 99];
        let e = cross_entropy(&x, c, Target::Index(&bad), p, &mut loss, None).unwrap_err();
        assert!(e.to_string().contains("'target'"), "{e}");
    }
}
