//! Scaled dot-product attention, forward and backward, tiled with an online softmax.
//!
//! Shapes: `q (bh, l, d)`, `k (bh, s, d)`, `v (bh, s, dv)`, `out (bh, l, dv)`, and the
//! log-sum-exp of every score row `lse (bh, l)` (saved for the backward pass).
//! The score of query `i` and key `j` is `scale * q_i . k_j` plus the additive mask, or
//! `-inf` where a boolean mask is `false` or (causal) where `j > i`.
//!
//! Forward: one task per (batch*head, tile of [`Q_TILE`] queries), run in parallel; each
//! walks the keys in tiles of [`KV_TILE`] rows, computing the score tile with a GEMM,
//! updating the running row maximum and sum (online softmax) and accumulating
//! `P @ V` with a second GEMM. The `l x s` score matrix is never materialised; when
//! `s <= KV_TILE` there is one key tile and this is the direct path (score tile, one
//! softmax, one GEMM). Causal masking skips key tiles entirely above the diagonal.
//!
//! Backward (FlashAttention-2 style): `delta_i = dout_i . out_i`; per key tile and
//! query tile, recompute `P = exp(S - lse)`, then `dV += P^T dO`, `dP = dO V^T`,
//! `dS = P * (dP - delta)`, `dK += scale dS^T Q`, `dQ += scale dS K`. Tasks are
//! (batch*head, chunk of key tiles); with several chunks per head, each chunk writes a
//! private partial `dQ` and the partials are added in chunk order. The number of chunks
//! depends only on the shapes, so results do not depend on the thread count.
//!
//! A row whose keys are all masked out has no softmax: its output is 0 (not NaN),
//! its `lse` is `-inf`, and it contributes no gradient. A NaN score, by contrast, makes
//! its row's output and `lse` NaN (NaN propagates as in NumPy).

use crate::error::{KernelError, KernelResult};
use crate::gemm::{gemm, Threads};
use crate::multiversion;
use crate::parallel;
#[cfg(target_arch = "x86_64")]
use crate::softmax::avx512;
use crate::vmath::{fmax, row_dot, row_exp_inplace, row_max, Real};
use ndarray::parallel::prelude::*;
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, ArrayView4, ArrayViewMut2, ArrayViewMut3, Axis};

/// Query rows per task.
pub const Q_TILE: usize = 128;
/// Key/value rows per inner step (a 128 x 512 float32 score tile is 256 KiB: L2-sized).
pub const KV_TILE: usize = 512;

/// (query rows, key rows) per tile. The backward pass keeps two score-sized tiles
/// (P and dS) live, so its key tiles are half as long. Measured on the development
/// machine (one core, float32, D = 32..64): 64 x 256 tiles ran 8-12% slower.
fn tiles(l: usize, s: usize, bwd: bool) -> (usize, usize) {
    let kt = if bwd { KV_TILE / 2 } else { KV_TILE };
    (Q_TILE.min(l.max(1)), kt.min(s.max(1)))
}

/// The attention mask, shaped `(m1, m2, l, s)` where `bh = g1 * g2` batch*heads are
/// indexed as `(bh / g2, bh % g2)`; `m1` is 1 or `g1`, `m2` is 1 or `g2` (broadcast).
/// Any strides (zero strides broadcast).
#[derive(Debug, Clone, Copy)]
pub enum Mask<'a, T> {
    None,
    /// `true` = attend (PyTorch's convention).
    Bool(ArrayView4<'a, bool>),
    /// Added to the scaled scores.
    Add(ArrayView4<'a, T>),
}

impl<'a, T> Mask<'a, T> {
    /// The boolean mask if given, else the additive one, else none.
    pub fn from_parts(boolean: Option<ArrayView4<'a, bool>>, additive: Option<ArrayView4<'a, T>>) -> Self {
        match (boolean, additive) {
            (Some(m), _) => Mask::Bool(m),
            (None, Some(m)) => Mask::Add(m),
            (None, None) => Mask::None,
        }
    }
}

/// Options shared by the forward and backward passes.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a, T> {
    pub mask: Mask<'a, T>,
    /// Lower-triangular (top-left aligned) causal mask: key `j` visible from query `i` iff `j <= i`.
    pub causal: bool,
    pub scale: T,
    /// `g2` in the mask's `(bh / g2, bh % g2)` indexing (the number of heads); >= 1.
    pub heads: usize,
}

enum MaskRows<'a, T> {
    None,
    Bool(ArrayView2<'a, bool>),
    Add(ArrayView2<'a, T>),
}

impl<'a, T: Real> Options<'a, T> {
    fn rows(&self, bh: usize) -> MaskRows<'a, T> {
        let g2 = self.heads.max(1);
        let (b1, b2) = (bh / g2, bh % g2);
        match self.mask {
            Mask::None => MaskRows::None,
            Mask::Bool(m) => {
                let (m1, m2) = (m.len_of(Axis(0)), m.len_of(Axis(1)));
                MaskRows::Bool(m.index_axis_move(Axis(0), b1.min(m1 - 1)).index_axis_move(Axis(0), b2.min(m2 - 1)))
            }
            Mask::Add(m) => {
                let (m1, m2) = (m.len_of(Axis(0)), m.len_of(Axis(1)));
                MaskRows::Add(m.index_axis_move(Axis(0), b1.min(m1 - 1)).index_axis_move(Axis(0), b2.min(m2 - 1)))
            }
        }
    }

    fn check(&self, op: &str, bh: usize, l: usize, s: usize) -> KernelResult<()> {
        let heads = self.heads.max(1);
        if !bh.is_multiple_of(heads) {
            return Err(KernelError::param(format!("{op}: heads={heads} does not divide batch*heads={bh}")));
        }
        let g1 = bh / heads;
        let dims = match self.mask {
            Mask::None => return Ok(()),
            Mask::Bool(m) => m.dim(),
            Mask::Add(m) => m.dim(),
        };
        let (m1, m2, ml, ms) = dims;
        if !(m1 == 1 || m1 == g1) || !(m2 == 1 || m2 == heads) || ml != l || ms != s || m1 == 0 || m2 == 0 {
            return Err(KernelError::shape(format!(
                "{op}: 'attn_mask' has shape ({m1}, {m2}, {ml}, {ms}), expected ({g1} or 1, {heads} or 1, {l}, {s})"
            )));
        }
        Ok(())
    }
}

/// Apply the mask and causal rule to a score tile whose top-left entry is (query i0, key j0).
fn apply_mask<T: Real>(st: &mut ArrayViewMut2<'_, T>, mask: &MaskRows<'_, T>, causal: bool, i0: usize, j0: usize) {
    let (rows, cols) = st.dim();
    let ninf = T::neg_infinity();
    match mask {
        MaskRows::None => {}
        MaskRows::Bool(m) => {
            for r in 0..rows {
                let mr = m.slice(s![i0 + r, j0..j0 + cols]);
                for (x, &keep) in st.row_mut(r).iter_mut().zip(mr.iter()) {
                    if !keep {
                        *x = ninf;
                    }
                }
            }
        }
        MaskRows::Add(m) => {
            for r in 0..rows {
                let mr = m.slice(s![i0 + r, j0..j0 + cols]);
                for (x, &a) in st.row_mut(r).iter_mut().zip(mr.iter()) {
                    *x = *x + a;
                }
            }
        }
    }
    if causal {
        for r in 0..rows {
            let i = i0 + r;
            // keys j > i are hidden: columns c with j0 + c > i
            let first_hidden = (i + 1).saturating_sub(j0).min(cols);
            let mut row = st.row_mut(r);
            for c in first_hidden..cols {
                row[c] = ninf;
            }
        }
    }
}

/// A score row with no finite maximum contributes nothing, unless it holds a NaN: then the
/// row's running sum becomes NaN so that its output and log-sum-exp are NaN, as in NumPy.
#[inline]
fn mark_nan_row<S: Real, T: Real>(s: &[S], l: &mut T) {
    if s.iter().any(|x| x.is_nan()) {
        *l = T::nan();
    }
}

/// Online-softmax update of one score row: replaces `s` by `exp(s - m_new)`, updates the
/// running max `m` and sum `l`, and returns the factor to rescale the row's accumulator.
#[inline(always)]
fn online_row_body<T: Real>(s: &mut [T], m: &mut T, l: &mut T) -> T {
    let mnew = fmax(row_max(s), *m);
    if mnew == T::neg_infinity() {
        // Everything so far is masked out, or NaN (which the max skips): NaN must survive.
        mark_nan_row(s, l);
        s.fill(T::zero());
        return T::zero();
    }
    let alpha = if *m == T::neg_infinity() { T::zero() } else { (*m - mnew).fexp() };
    let sum = row_exp_inplace(s, mnew);
    *l = *l * alpha + sum;
    *m = mnew;
    alpha
}
multiversion!(fn online_row_generic<T: Real>(s: &mut [T], m: &mut T, l: &mut T) -> T => online_row_body);

/// [`online_row_body`], through the AVX-512 float32 exp kernels when they apply.
#[inline]
fn online_row<T: Real>(s: &mut [T], m: &mut T, l: &mut T) -> T {
    #[cfg(target_arch = "x86_64")]
    if avx512::available::<T>() {
        let sf = avx512::f32s_mut(s);
        let (mf, lf) = (m.to_f32().unwrap_or(f32::NAN), l.to_f32().unwrap_or(f32::NAN));
        // SAFETY: available() checked AVX-512 and T == f32.
        let mnew = fmax(unsafe { avx512::row_max(sf) }, mf);
        if mnew == f32::NEG_INFINITY {
            mark_nan_row(sf, l);
            sf.fill(0.0);
            return T::zero();
        }
        let alpha = if mf == f32::NEG_INFINITY { 0.0 } else { (mf - mnew).fexp() };
        // SAFETY: as above.
        let sum = unsafe { avx512::exp_inplace(sf, mnew) };
        *l = T::from_f32(lf * alpha + sum).unwrap_or_else(T::nan);
        *m = T::from_f32(mnew).unwrap_or_else(T::nan);
        return T::from_f32(alpha).unwrap_or_else(T::nan);
    }
    online_row_generic(s, m, l)
}

#[inline(always)]
fn scale_row_body<T: Real>(x: &mut [T], a: T) {
    for v in x.iter_mut() {
        *v = *v * a;
    }
}
multiversion!(fn scale_row<T: Real>(x: &mut [T], a: T) -> () => scale_row_body);

/// `s = exp(s - lse)` (0 for a fully masked row, `lse == -inf`).
#[inline(always)]
fn probs_row_body<T: Real>(s: &mut [T], lse: T) {
    if lse == T::neg_infinity() {
        s.fill(T::zero());
    } else {
        row_exp_inplace(s, lse);
    }
}
multiversion!(fn probs_row_generic<T: Real>(s: &mut [T], lse: T) -> () => probs_row_body);

/// [`probs_row_body`], through the AVX-512 float32 exp kernel when it applies.
#[inline]
fn probs_row<T: Real>(s: &mut [T], lse: T) {
    #[cfg(target_arch = "x86_64")]
    if avx512::available::<T>() && lse != T::neg_infinity() {
        let lf = lse.to_f32().unwrap_or(f32::NAN);
        // SAFETY: available() checked AVX-512 and T == f32.
        unsafe { avx512::exp_inplace(avx512::f32s_mut(s), lf) };
        return;
    }
    probs_row_generic(s, lse)
}

/// `dp = p * (dp - delta)`.
#[inline(always)]
fn dscore_row_body<T: Real>(dp: &mut [T], p: &[T], delta: T) {
    for (d, &pj) in dp.iter_mut().zip(p) {
        *d = pj * (*d - delta);
    }
}
multiversion!(fn dscore_row<T: Real>(dp: &mut [T], p: &[T], delta: T) -> () => dscore_row_body);

fn check_qkv<T>(op: &str, q: &ArrayView3<'_, T>, k: &ArrayView3<'_, T>, v: &ArrayView3<'_, T>) -> KernelResult<()> {
    let (bh, _l, d) = q.dim();
    let (bk, s, dk) = k.dim();
    let (bv, sv, _dv) = v.dim();
    if bk != bh || bv != bh {
        return Err(KernelError::shape(format!(
            "{op}: batch*heads differ: 'query' {:?}, 'key' {:?}, 'value' {:?}",
            q.shape(),
            k.shape(),
            v.shape()
        )));
    }
    if dk != d {
        return Err(KernelError::shape(format!(
            "{op}: 'key' has shape {:?} but 'query' has shape {:?} (last dimensions differ)",
            k.shape(),
            q.shape()
        )));
    }
    if sv != s {
        return Err(KernelError::shape(format!(
            "{op}: 'value' has shape {:?} but 'key' has shape {:?} (sequence lengths differ)",
            v.shape(),
            k.shape()
        )));
    }
    Ok(())
}

struct FwdBuf<T> {
    sc: Array2<T>,
    m: Vec<T>,
    l: Vec<T>,
}

/// Forward pass: writes `out (bh, l, dv)` and `lse (bh, l)`.
pub fn forward<T: Real>(
    q: ArrayView3<'_, T>,
    k: ArrayView3<'_, T>,
    v: ArrayView3<'_, T>,
    opts: Options<'_, T>,
    mut out: ArrayViewMut3<'_, T>,
    mut lse: ArrayViewMut2<'_, T>,
) -> KernelResult<()> {
    let op = "scaled_dot_product_attention";
    check_qkv(op, &q, &k, &v)?;
    let (bh, l, d) = q.dim();
    let s = k.len_of(Axis(1));
    let dv = v.len_of(Axis(2));
    opts.check(op, bh, l, s)?;
    if out.dim() != (bh, l, dv) || lse.dim() != (bh, l) {
        return Err(KernelError::shape(format!(
            "{op}: 'out' has shape {:?} and 'lse' {:?}, expected ({bh}, {l}, {dv}) and ({bh}, {l})",
            out.shape(),
            lse.shape()
        )));
    }
    if bh == 0 || l == 0 {
        return Ok(());
    }
    let work = bh * l * s.max(1) * (d + dv).max(1);
    let (q_tile, kv_tile) = tiles(l, s, false);
    // One flat list of (batch*head, query tile) tasks: scratch is made once per rayon
    // job, not once per head (short sequences have one tile per head).
    let mut tasks = Vec::with_capacity(bh * l.div_ceil(q_tile));
    for (b, (ob, lb)) in out.outer_iter_mut().zip(lse.outer_iter_mut()).enumerate() {
        let (mut ob, mut lb, mut i0) = (ob, lb, 0);
        while i0 < l {
            let rows = q_tile.min(l - i0);
            let (ot, orest) = ob.split_at(Axis(0), rows);
            let (lt, lrest) = lb.split_at(Axis(0), rows);
            tasks.push((b, i0, ot, lt));
            (ob, lb) = (orest, lrest);
            i0 += rows;
        }
    }
    parallel::run(work, || {
        tasks.into_par_iter().for_each_init(
            || FwdBuf {
                sc: Array2::zeros((q_tile, kv_tile)),
                m: vec![T::zero(); q_tile],
                l: vec![T::zero(); q_tile],
            },
            |buf, (b, i0, ot, mut lt)| {
                let mask = opts.rows(b);
                let (qb, kb, vb) = (q.index_axis(Axis(0), b), k.index_axis(Axis(0), b), v.index_axis(Axis(0), b));
                let qt = qb.slice(s![i0..i0 + ot.nrows(), ..]);
                forward_tile(qt, kb, vb, &mask, &opts, i0, buf, ot, lt.as_slice_mut());
            },
        );
    });
    Ok(())
}

/// `x *= a` on a row (contiguous or not).
fn scale_view<T: Real>(mut row: ndarray::ArrayViewMut1<'_, T>, a: T) {
    match row.as_slice_mut() {
        Some(sl) => scale_row(sl, a),
        None => row.mapv_inplace(|x| x * a),
    }
}

#[allow(clippy::too_many_arguments)]
fn forward_tile<T: Real>(
    qt: ArrayView2<'_, T>,
    kb: ArrayView2<'_, T>,
    vb: ArrayView2<'_, T>,
    mask: &MaskRows<'_, T>,
    opts: &Options<'_, T>,
    i0: usize,
    buf: &mut FwdBuf<T>,
    mut ot: ArrayViewMut2<'_, T>,
    lt: Option<&mut [T]>,
) {
    let rows = qt.nrows();
    let s = kb.nrows();
    let dv = vb.ncols();
    let m = &mut buf.m[..rows];
    let l = &mut buf.l[..rows];
    m.fill(T::neg_infinity());
    l.fill(T::zero());
    // The output tile itself is the accumulator of P @ V.
    let mut first = true;
    // Keys visible to the last query row of this tile.
    let s_end = if opts.causal { s.min(i0 + rows) } else { s };
    let tile = buf.sc.ncols().max(1);
    let mut j0 = 0;
    while j0 < s_end {
        let cols = tile.min(s_end - j0);
        let mut st = buf.sc.slice_mut(s![..rows, ..cols]);
        let kt = kb.slice(s![j0..j0 + cols, ..]);
        let vt = vb.slice(s![j0..j0 + cols, ..]);
        // Shapes are consistent by construction; gemm cannot fail here.
        let _ = gemm(opts.scale, qt, kt.t(), T::zero(), st.view_mut(), Threads::Single);
        apply_mask(&mut st, mask, opts.causal, i0, j0);
        for r in 0..rows {
            let mut srow = st.row_mut(r);
            let alpha = online_row(srow.as_slice_mut().expect("contiguous tile row"), &mut m[r], &mut l[r]);
            if !first && alpha != T::one() {
                scale_view(ot.row_mut(r), alpha);
            }
        }
        // The first tile overwrites the output (beta = 0), later ones add to it.
        let beta = if first { T::zero() } else { T::one() };
        let _ = gemm(T::one(), st.view(), vt, beta, ot.view_mut(), Threads::Single);
        first = false;
        j0 += cols;
    }
    for (r, &lr) in l.iter().enumerate() {
        if !first && lr > T::zero() {
            scale_view(ot.row_mut(r), T::one() / lr);
        } else if lr.is_nan() {
            ot.row_mut(r).fill(T::nan());
        } else {
            ot.row_mut(r).fill(T::zero());
        }
    }
    let _ = dv;
    if let Some(lt) = lt {
        for r in 0..rows {
            lt[r] = if l[r] > T::zero() || l[r].is_nan() { m[r] + l[r].ln() } else { T::neg_infinity() };
        }
    }
}

/// The attention weights `softmax(scores)` as a `(bh, l, s)` array, from the `lse` saved
/// by [`forward`] (fully masked rows are 0).
pub fn weights<T: Real>(
    q: ArrayView3<'_, T>,
    k: ArrayView3<'_, T>,
    opts: Options<'_, T>,
    lse: ArrayView2<'_, T>,
    mut w: ArrayViewMut3<'_, T>,
) -> KernelResult<()> {
    let op = "scaled_dot_product_attention";
    let (bh, l, d) = q.dim();
    let (bk, s, dk) = k.dim();
    if bk != bh || dk != d || lse.dim() != (bh, l) || w.dim() != (bh, l, s) {
        return Err(KernelError::shape(format!(
            "{op}: inconsistent shapes: 'query' {:?}, 'key' {:?}, 'lse' {:?}, 'weights' {:?}",
            q.shape(),
            k.shape(),
            lse.shape(),
            w.shape()
        )));
    }
    opts.check(op, bh, l, s)?;
    if w.is_empty() {
        return Ok(());
    }
    if !w.is_standard_layout() {
        return Err(KernelError::shape(format!("{op}: 'weights' must be C-contiguous")));
    }
    parallel::run(bh * l * s * d.max(1), || {
        w.outer_iter_mut().into_par_iter().enumerate().for_each(|(b, mut wb)| {
            let mask = opts.rows(b);
            let (qb, kb) = (q.index_axis(Axis(0), b), k.index_axis(Axis(0), b));
            wb.axis_chunks_iter_mut(Axis(0), Q_TILE).into_par_iter().enumerate().for_each(|(t, mut wt)| {
                let i0 = t * Q_TILE;
                let rows = wt.nrows();
                let _ = gemm(opts.scale, qb.slice(s![i0..i0 + rows, ..]), kb.t(), T::zero(), wt.view_mut(), Threads::Single);
                apply_mask(&mut wt, &mask, opts.causal, i0, 0);
                for r in 0..rows {
                    let lr = lse[[b, i0 + r]];
                    probs_row(wt.row_mut(r).into_slice().expect("contiguous"), lr);
                }
            });
        });
    });
    Ok(())
}

/// Gradients written by [`backward`].
pub struct Grads<'a, T> {
    pub dq: ArrayViewMut3<'a, T>,
    pub dk: ArrayViewMut3<'a, T>,
    pub dv: ArrayViewMut3<'a, T>,
}

/// Key tiles per backward task: enough tasks per call (>= 16) when there are few heads.
/// Depends only on the shapes (never on the thread count).
fn chunks_per_head(bh: usize, kv_tiles: usize) -> usize {
    let want = 16usize.div_ceil(bh.max(1));
    want.clamp(1, kv_tiles.max(1))
}

struct BwdBuf<T> {
    sc: Array2<T>,
    dp: Array2<T>,
}

/// Backward pass from the upstream gradient `dout (bh, l, dv)` and the forward's `out`
/// and `lse`. Writes `dq`, `dk`, `dv` (overwritten).
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Real>(
    dout: ArrayView3<'_, T>,
    q: ArrayView3<'_, T>,
    k: ArrayView3<'_, T>,
    v: ArrayView3<'_, T>,
    out: ArrayView3<'_, T>,
    lse: ArrayView2<'_, T>,
    opts: Options<'_, T>,
    grads: Grads<'_, T>,
) -> KernelResult<()> {
    let op = "scaled_dot_product_attention_backward";
    check_qkv(op, &q, &k, &v)?;
    let (bh, l, d) = q.dim();
    let s = k.len_of(Axis(1));
    let dvn = v.len_of(Axis(2));
    opts.check(op, bh, l, s)?;
    if dout.dim() != (bh, l, dvn) || out.dim() != (bh, l, dvn) || lse.dim() != (bh, l) {
        return Err(KernelError::shape(format!(
            "{op}: 'grad_out' {:?}, 'out' {:?} and 'lse' {:?} do not match ({bh}, {l}, {dvn}) / ({bh}, {l})",
            dout.shape(),
            out.shape(),
            lse.shape()
        )));
    }
    let Grads { mut dq, mut dk, mut dv } = grads;
    if dq.dim() != q.dim() || dk.dim() != k.dim() || dv.dim() != v.dim() {
        return Err(KernelError::shape(format!("{op}: gradient buffers do not match query/key/value shapes")));
    }
    if bh == 0 || l == 0 || s == 0 {
        dq.fill(T::zero());
        dk.fill(T::zero());
        dv.fill(T::zero());
        return Ok(());
    }
    let (q_tile, kv_tile) = tiles(l, s, true);
    let kv_tiles = s.div_ceil(kv_tile);
    let nchunk = chunks_per_head(bh, kv_tiles);
    let tiles_per_chunk = kv_tiles.div_ceil(nchunk);
    let chunk_rows = tiles_per_chunk * kv_tile;
    let nchunk = s.div_ceil(chunk_rows);
    let work = bh * l * s * (2 * d + 3 * dvn);
    parallel::run(work, || {
        dq.outer_iter_mut()
            .into_par_iter()
            .zip(dk.outer_iter_mut().into_par_iter())
            .zip(dv.outer_iter_mut().into_par_iter())
            .enumerate()
            .for_each_init(
                || BwdBuf { sc: Array2::zeros((q_tile, kv_tile)), dp: Array2::zeros((q_tile, kv_tile)) },
                |buf, (b, ((mut dqb, mut dkb), mut dvb))| {
                // Zeroed here, in parallel, right before this head accumulates into them.
                dqb.fill(T::zero());
                dkb.fill(T::zero());
                dvb.fill(T::zero());
                let mask = opts.rows(b);
                let (qb, kb, vb) = (q.index_axis(Axis(0), b), k.index_axis(Axis(0), b), v.index_axis(Axis(0), b));
                let (gob, ob, lb) = (dout.index_axis(Axis(0), b), out.index_axis(Axis(0), b), lse.index_axis(Axis(0), b));
                let delta: Vec<T> = (0..l)
                    .map(|i| {
                        let (g, o) = (gob.row(i), ob.row(i));
                        match (g.as_slice(), o.as_slice()) {
                            (Some(g), Some(o)) => row_dot(g, o),
                            _ => g.iter().zip(o.iter()).fold(T::zero(), |a, (&x, &y)| a + x * y),
                        }
                    })
                    .collect();
                let ctx = BwdCtx { qb, kb, vb, gob, lb, delta: &delta, mask: &mask, opts: &opts, q_tile, kv_tile };
                if nchunk == 1 {
                    backward_chunk(&ctx, 0, dkb.view_mut(), dvb.view_mut(), dqb.view_mut(), buf);
                } else {
                    let mut partial = Array3::<T>::zeros((nchunk, l, d));
                    partial
                        .outer_iter_mut()
                        .into_par_iter()
                        .zip(dkb.axis_chunks_iter_mut(Axis(0), chunk_rows).into_par_iter())
                        .zip(dvb.axis_chunks_iter_mut(Axis(0), chunk_rows).into_par_iter())
                        .enumerate()
                        .for_each(|(c, ((mut pq, mut dkc), mut dvc))| {
                            let mut buf =
                                BwdBuf { sc: Array2::zeros((q_tile, kv_tile)), dp: Array2::zeros((q_tile, kv_tile)) };
                            backward_chunk(&ctx, c * chunk_rows, dkc.view_mut(), dvc.view_mut(), pq.view_mut(), &mut buf);
                        });
                    for c in 0..nchunk {
                        dqb.zip_mut_with(&partial.index_axis(Axis(0), c), |a, &b| *a = *a + b);
                    }
                }
            });
    });
    Ok(())
}

struct BwdCtx<'a, 'o, T> {
    qb: ArrayView2<'a, T>,
    kb: ArrayView2<'a, T>,
    vb: ArrayView2<'a, T>,
    gob: ArrayView2<'a, T>,
    lb: ndarray::ArrayView1<'a, T>,
    delta: &'a [T],
    mask: &'a MaskRows<'o, T>,
    opts: &'a Options<'o, T>,
    q_tile: usize,
    kv_tile: usize,
}

/// Keys `j0 .. j0 + dkc.nrows()` of one head: accumulates their `dk`, `dv` and adds their
/// contribution to `dq` (all queries).
fn backward_chunk<T: Real>(
    ctx: &BwdCtx<'_, '_, T>,
    j_start: usize,
    mut dkc: ArrayViewMut2<'_, T>,
    mut dvc: ArrayViewMut2<'_, T>,
    mut dq: ArrayViewMut2<'_, T>,
    buf: &mut BwdBuf<T>,
) {
    let l = ctx.qb.nrows();
    let scale = ctx.opts.scale;
    let nrows = dkc.nrows();
    let mut jj = 0;
    while jj < nrows {
        let cols = ctx.kv_tile.min(nrows - jj);
        let j0 = j_start + jj;
        let kt = ctx.kb.slice(s![j0..j0 + cols, ..]);
        let vt = ctx.vb.slice(s![j0..j0 + cols, ..]);
        let mut dkt = dkc.slice_mut(s![jj..jj + cols, ..]);
        let mut dvt = dvc.slice_mut(s![jj..jj + cols, ..]);
        // Causal: query rows i < j0 see none of these keys.
        let qt_rows = ctx.q_tile;
        let i_begin = if ctx.opts.causal { (j0 / qt_rows) * qt_rows } else { 0 };
        let mut i0 = i_begin;
        while i0 < l {
            let rows = qt_rows.min(l - i0);
            let qt = ctx.qbslice(i0, rows);
            let got = ctx.gob.slice(s![i0..i0 + rows, ..]);
            let mut st = buf.sc.slice_mut(s![..rows, ..cols]);
            let _ = gemm(scale, qt, kt.t(), T::zero(), st.view_mut(), Threads::Single);
            apply_mask(&mut st, ctx.mask, ctx.opts.causal, i0, j0);
            for r in 0..rows {
                probs_row(st.row_mut(r).into_slice().expect("contiguous"), ctx.lb[i0 + r]);
            }
            // dV += P^T dO
            let _ = gemm(T::one(), st.t(), got, T::one(), dvt.view_mut(), Threads::Single);
            // dP = dO V^T, then dS = P * (dP - delta)
            let mut dpt = buf.dp.slice_mut(s![..rows, ..cols]);
            let _ = gemm(T::one(), got, vt.t(), T::zero(), dpt.view_mut(), Threads::Single);
            for r in 0..rows {
                let prow = st.row(r);
                dscore_row(
                    dpt.row_mut(r).into_slice().expect("contiguous"),
                    prow.as_slice().expect("contiguous"),
                    ctx.delta[i0 + r],
                );
            }
            // dK += scale dS^T Q ; dQ += scale dS K
            let _ = gemm(scale, dpt.t(), qt, T::one(), dkt.view_mut(), Threads::Single);
            let _ = gemm(scale, dpt.view(), kt, T::one(), dq.slice_mut(s![i0..i0 + rows, ..]), Threads::Single);
            i0 += rows;
        }
        jj += cols;
    }
}

impl<'a, T: Real> BwdCtx<'a, '_, T> {
    fn qbslice(&self, i0: usize, rows: usize) -> ArrayView2<'a, T> {
        self.qb.slice_move(s![i0..i0 + rows, ..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    fn data(shape: (usize, usize, usize), seed: u64) -> Array3<f64> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(7);
        Array3::from_shape_fn(shape, |_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
        })
    }

    /// Naive attention with an optional boolean mask (bh, l, s) and causal flag.
    fn naive(q: &Array3<f64>, k: &Array3<f64>, v: &Array3<f64>, mask: Option<&Array3<bool>>, causal: bool, scale: f64) -> Array3<f64> {
        let (bh, l, d) = q.dim();
        let s = k.dim().1;
        let dv = v.dim().2;
        let mut out = Array3::zeros((bh, l, dv));
        for b in 0..bh {
            for i in 0..l {
                let mut sc: Vec<f64> = (0..s)
                    .map(|j| {
                        let mut x = scale * (0..d).map(|p| q[[b, i, p]] * k[[b, j, p]]).sum::<f64>();
                        if mask.is_some_and(|m| !m[[b, i, j]]) || (causal && j > i) {
                            x = f64::NEG_INFINITY;
                        }
                        x
                    })
                    .collect();
                let m = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                if m == f64::NEG_INFINITY {
                    continue;
                }
                sc.iter_mut().for_each(|x| *x = (*x - m).exp());
                let z: f64 = sc.iter().sum();
                for c in 0..dv {
                    out[[b, i, c]] = (0..s).map(|j| sc[j] * v[[b, j, c]]).sum::<f64>() / z;
                }
            }
        }
        out
    }

    #[test]
    fn forward_matches_naive_tiled_and_masked() {
        for &(bh, l, s, causal) in &[(2, 5, 7, false), (3, 70, 300, true), (1, 130, 600, false), (2, 600, 520, true)] {
            let (d, dv) = (8, 5);
            let q = data((bh, l, d), 1);
            let k = data((bh, s, d), 2);
            let v = data((bh, s, dv), 3);
            let mut mask = Array3::from_shape_fn((bh, l, s), |(b, i, j)| (b + 3 * i + 7 * j) % 5 != 0);
            for j in 0..s {
                mask[[0, 1, j]] = false; // a fully masked row
            }
            let m4 = mask.clone().into_shape_with_order((bh, 1, l, s)).unwrap();
            let opts = Options { mask: Mask::Bool(m4.view()), causal, scale: 0.7, heads: 1 };
            let mut out = Array3::zeros((bh, l, dv));
            let mut lse = Array2::zeros((bh, l));
            forward(q.view(), k.view(), v.view(), opts, out.view_mut(), lse.view_mut()).unwrap();
            let want = naive(&q, &k, &v, Some(&mask), causal, 0.7);
            let err = (&out - &want).mapv(f64::abs).fold(0.0f64, |a, &b| a.max(b));
            assert!(err < 1e-12, "({bh},{l},{s},{causal}) err {err}");
            assert!(out.iter().all(|&x| x.is_finite()));
            assert!(out.slice(s![0, 1, ..]).iter().all(|&x| x == 0.0));
            assert_eq!(lse[[0, 1]], f64::NEG_INFINITY);
        }
    }

    #[test]
    fn backward_is_consistent_with_finite_differences() {
        let (bh, l, s, d, dv) = (2, 70, 300, 4, 3);
        for causal in [false, true] {
            let q = data((bh, l, d), 4);
            let k = data((bh, s, d), 5);
            let v = data((bh, s, dv), 6);
            let g = data((bh, l, dv), 7);
            let madd = Array4::from_shape_fn((1, 1, l, s), |(_, _, i, j)| ((i * j) % 3) as f64 * -0.5);
            let opts = Options { mask: Mask::Add(madd.view()), causal, scale: 0.5, heads: 2 };
            let loss = |q: &Array3<f64>, k: &Array3<f64>, v: &Array3<f64>| {
                let mut out = Array3::zeros((bh, l, dv));
                let mut lse = Array2::zeros((bh, l));
                forward(q.view(), k.view(), v.view(), opts, out.view_mut(), lse.view_mut()).unwrap();
                ((&out * &g).sum(), out, lse)
            };
            let (_, out, lse) = loss(&q, &k, &v);
            let (mut gq, mut gk, mut gv) = (Array3::zeros(q.dim()), Array3::zeros(k.dim()), Array3::zeros(v.dim()));
            backward(g.view(), q.view(), k.view(), v.view(), out.view(), lse.view(), opts,
                Grads { dq: gq.view_mut(), dk: gk.view_mut(), dv: gv.view_mut() }).unwrap();
            let eps = 1e-6;
            for (which, idx) in [(0, [1, 65, 2]), (1, [0, 299, 3]), (1, [1, 3, 0]), (2, [1, 100, 2])] {
                let (mut qp, mut kp, mut vp) = (q.clone(), k.clone(), v.clone());
                let (mut qm, mut km, mut vm) = (q.clone(), k.clone(), v.clone());
                match which {
                    0 => { qp[idx] += eps; qm[idx] -= eps; }
                    1 => { kp[idx] += eps; km[idx] -= eps; }
                    _ => { vp[idx] += eps; vm[idx] -= eps; }
                }
                let num = (loss(&qp, &kp, &vp).0 - loss(&qm, &km, &vm).0) / (2.0 * eps);
                let ana = [&gq, &gk, &gv][which][idx];
                assert!((num - ana).abs() < 1e-7 * (1.0 + num.abs()), "causal {causal} {which} {idx:?}: {num} vs {ana}");
            }
        }
    }
}
