//! The time loops (forward and BPTT) over batch chunks. Shapes are checked by the caller.

use super::math::RnnFloat;
use super::panel;
use super::rows;
use crate::scratch::Scratch;
use super::{CellKind, Dims, Forward, Grads, Saved, Weights};
use crate::gemm::{gemm, Threads};
use crate::parallel;
use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2};
use rayon::prelude::*;

/// Chunks of at most this many rows use oxinet's own small product instead of the GEMM.
const SMALL_M: usize = 4;

/// A buffer that several chunks write through at disjoint offsets.
#[derive(Clone, Copy)]
struct Shared<T> {
    ptr: *mut T,
    len: usize,
}
// SAFETY: chunks only touch disjoint row ranges (see `slice`), and T is plain data.
unsafe impl<T: Send> Send for Shared<T> {}
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn new(v: &mut [T]) -> Self {
        Shared {
            ptr: v.as_mut_ptr(),
            len: v.len(),
        }
    }
    /// SAFETY: no two live slices from concurrent callers may overlap.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.len, "rnn: internal index out of range");
        std::slice::from_raw_parts_mut(self.ptr.add(start), len)
    }
}

/// A zero-filled buffer, on huge pages when large (see [`crate::memory`]).
pub(crate) fn zeroed<T: RnnFloat>(n: usize) -> Vec<T> {
    crate::memory::zeroed_vec(n)
}

/// Fixed batch chunks: a function of B only, so results never depend on thread count.
pub(crate) fn chunk_ranges(b: usize) -> Vec<(usize, usize)> {
    if b == 0 {
        return Vec::new();
    }
    let n = if b == 1 {
        1
    } else {
        (2 * b.div_ceil(32)).min(b)
    };
    let rows = b.div_ceil(n);
    (0..b)
        .step_by(rows)
        .map(|s| (s, (s + rows).min(b)))
        .collect()
}

/// Chunks of at least this many rows compute their input projections inside the loop.
const FUSE_MIN_ROWS: usize = 8;

/// The most rows of any chunk of a batch of `b`.
fn max_rows(b: usize) -> usize {
    chunk_ranges(b).iter().map(|&(s, e)| e - s).max().unwrap_or(0)
}

/// Products whose left operand is at most this many elements (it stays in L1 while
/// the packed kernel streams the weight panels) use the packed kernel even for many rows.
const PACKED_MAX_LHS: usize = 16 * 512;

/// The recurrent weight of the per-step products, `W (k, n)` row-major, plus its packed
/// panels when the hand-written kernel applies (float32 on AVX-512).
struct StepWeight<T> {
    plain: Vec<T>,
    packed: Option<Vec<T>>,
    k: usize,
    n: usize,
}

impl<T: RnnFloat> StepWeight<T> {
    /// From `w (k, n)` (any strides) used for `steps` products. Packing the panels costs
    /// about as much as one product, so a single step (a cell) skips it. `rows` is the
    /// most rows a product will take; panels are only packed when
    /// [`StepWeight::product`] would use them, and then (as [`StepWeight::packed_for`]
    /// holds for every smaller row count too) the row-major copy is never needed.
    fn new(w: ArrayView2<'_, T>, steps: usize, rows: usize) -> Self {
        let (k, n) = w.dim();
        let packed = if T::packed_kernel() && steps > 1 && Self::packed_for(rows, k) {
            // Straight from the caller's layout (usually W^T of a row-major weight): no
            // intermediate transposed copy.
            let (s0, s1) = (w.strides()[0], w.strides()[1]);
            let ptr = w.as_ptr();
            // SAFETY: `pack` only asks for kk < k and c < n, inside the view.
            Some(panel::pack(k, n, |kk, c| unsafe {
                *ptr.offset(kk as isize * s0 + c as isize * s1)
            }))
        } else {
            None
        };
        let w = if packed.is_some() { Vec::new() } else { to_vec2(w) };
        StepWeight {
            plain: w,
            packed,
            k,
            n,
        }
    }

    /// Whether a product of `m` rows by `k` takes the packed kernel.
    fn packed_for(m: usize, k: usize) -> bool {
        m <= 8 || m * k <= PACKED_MAX_LHS
    }

    /// `out (m, n) (+)= a (m, k) @ W`, row-major contiguous, on the calling thread.
    fn product(&self, a: &[T], out: &mut [T], m: usize, accumulate: bool) {
        let (k, n) = (self.k, self.n);
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if !accumulate {
                out[..m * n].fill(T::zero());
            }
            return;
        }
        match &self.packed {
            // The packed kernel streams `a` once per column panel: use it for few rows
            // or while `a` fits in L1; the GEMM's k-blocking wins on long products.
            Some(wp) if Self::packed_for(m, k) => {
                T::packed_product(a, m, k, wp, n, out, accumulate)
            }
            _ if m <= SMALL_M => rows::small_matmul(a, &self.plain, out, m, k, n, accumulate),
            _ => {
                let av = ArrayView2::from_shape((m, k), &a[..m * k]).expect("rnn: product shape");
                let wv =
                    ArrayView2::from_shape((k, n), &self.plain[..]).expect("rnn: product shape");
                let ov = ArrayViewMut2::from_shape((m, n), &mut out[..m * n])
                    .expect("rnn: product shape");
                let beta = if accumulate { T::one() } else { T::zero() };
                gemm(T::one(), av, wv, beta, ov, Threads::Single)
                    .expect("rnn: product shapes agree");
            }
        }
    }
}

/// 1 + the last row of chunk b0..b1 whose sequence is still running at step s (0 if none).
fn active_rows(lens: &[usize], b0: usize, b1: usize, s: usize) -> usize {
    lens[b0..b1]
        .iter()
        .rposition(|&l| s < l)
        .map_or(0, |r| r + 1)
}

fn to_vec2<T: RnnFloat>(a: ArrayView2<'_, T>) -> Vec<T> {
    match a.as_slice() {
        Some(s) => s.to_vec(),
        None => a.iter().copied().collect(),
    }
}

/// Rows of the weights per work item of [`single_step_packed`] (fixed: results do not
/// depend on the thread count).
const SINGLE_ROWS: usize = 64;

/// One step (a cell) with the packed kernel (float32 on AVX-512): `G^T = W_ih @ x^T
/// (+ W_hh @ h^T)` with the small operands x^T and h^T packed, so the weights are read
/// in place, never copied or re-packed. Writes the pre-activations to `gates (B, G*H)`;
/// for the GRU the recurrent part goes to `hh_all (B, G*H)` instead.
#[allow(clippy::too_many_arguments)]
fn single_step_packed<T: RnnFloat>(
    w: &Weights<'_, T>,
    xflat: &[T],
    h0: Option<&ArrayView2<'_, T>>,
    dims: Dims,
    gru: bool,
    gates: &mut [T],
    hh_all: &mut [T],
) {
    let Dims { b, d, h, g, .. } = dims;
    let gh = g * h;
    let wih = w.w_ih.as_standard_layout();
    let wih: &[T] = wih.as_slice().expect("rnn: standard layout is contiguous");
    let whh = w.w_hh.as_standard_layout();
    let whh: &[T] = whh.as_slice().expect("rnn: standard layout is contiguous");
    // x^T (D, B) and h^T (H, B) in panels of 16 batch columns.
    let xp = panel::pack(d, b, |kk, c| xflat[c * d + kk]);
    let hp = h0.map(|h0| panel::pack(h, b, |kk, c| h0[[c, kk]]));
    let mut gt = vec![T::zero(); gh * b];
    let sg = Shared::new(gates);
    let shh = Shared::new(hh_all);
    parallel::run(gh * b * (d + h), || {
        gt.par_chunks_mut(SINGLE_ROWS * b)
            .enumerate()
            .for_each(|(i, out)| {
                let r0 = i * SINGLE_ROWS;
                let m = out.len() / b;
                let mut hh_t = Vec::new();
                T::packed_product(&wih[r0 * d..(r0 + m) * d], m, d, &xp, b, out, false);
                if let Some(hp) = &hp {
                    let a = &whh[r0 * h..(r0 + m) * h];
                    if gru {
                        hh_t = vec![T::zero(); m * b];
                        T::packed_product(a, m, h, hp, b, &mut hh_t, false);
                    } else {
                        T::packed_product(a, m, h, hp, b, out, true);
                    }
                }
                // Transpose this item's gate columns r0..r0+m into the (B, G*H) buffers, in
                // blocks of 16 columns (each source line is reused across the batch).
                let scatter = |src: &[T], dst: &Shared<T>| {
                    for j0 in (0..m).step_by(16) {
                        let j1 = (j0 + 16).min(m);
                        for r in 0..b {
                            // SAFETY: items write disjoint column ranges r0..r0+m of each row.
                            let row = unsafe { dst.slice(r * gh + r0 + j0, j1 - j0) };
                            for (j, o) in (j0..j1).zip(row.iter_mut()) {
                                *o = src[j * b + r];
                            }
                        }
                    }
                };
                scatter(out, &sg);
                if !hh_t.is_empty() {
                    scatter(&hh_t, &shh);
                }
            });
    });
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn forward<T: RnnFloat>(
    kind: CellKind,
    dims: Dims,
    x: ArrayView3<'_, T>,
    h0: Option<ArrayView2<'_, T>>,
    c0: Option<ArrayView2<'_, T>>,
    w: &Weights<'_, T>,
    lens: &[usize],
    train: bool,
) -> Forward<T> {
    let Dims { t, b, d, h, g } = dims;
    let gh = g * h;
    let zero = T::zero();
    let lstm = kind == CellKind::Lstm;
    let gru = kind == CellKind::Gru;
    let relu = kind == CellKind::RnnRelu;

    // Input projections. With the packed kernel (float32 on AVX-512) each batch chunk
    // computes x_t @ W_ih^T for its own rows just before the recurrent product, so the
    // pre-activations are still in cache when the gate pass reads them and inference
    // needs no (T, B, G*H) buffer. Otherwise one GEMM (T*B, D) @ W_ih^T for all steps.
    let keep_gates = train && (kind == CellKind::Lstm || kind == CellKind::Gru);
    // Chunks of a few rows (batch 1) would stream all of W_ih^T for each row: there the
    // single GEMM is faster.
    let fuse = T::packed_kernel() && t > 1 && d > 0 && max_rows(b) >= FUSE_MIN_ROWS;
    let xs = x.as_standard_layout();
    let xflat: &[T] = xs.as_slice().expect("rnn: standard layout is contiguous");
    let wi = if fuse {
        Some(StepWeight::new(w.w_ih.t(), t, max_rows(b))) // W_ih^T (D, G*H)
    } else {
        None
    };
    let mut gates = zeroed::<T>(if fuse && !keep_gates { 0 } else { t * b * gh });
    // One step with the packed kernel: see `single_step_packed` (after the biases).
    let direct = t == 1 && T::packed_kernel() && b > 0 && d > 0;
    if t * b > 0 && !fuse && !direct {
        let x2 = xs
            .view()
            .into_shape_with_order((t * b, d))
            .expect("rnn: x is standard layout");
        let g2 = ArrayViewMut2::from_shape((t * b, gh), &mut gates[..]).expect("rnn: gates shape");
        if t == 1 {
            // Few rows: the transposed product W_ih @ x^T takes the weight as it is laid out
            // (the GEMM re-packs a transposed right operand on every call).
            gemm(T::one(), w.w_ih, x2.t(), zero, g2.reversed_axes(), Threads::Auto)
        } else {
            gemm(T::one(), x2, w.w_ih.t(), zero, g2, Threads::Auto)
        }
        .expect("rnn: projection shapes agree");
    }

    // Biases folded per gate: GRU keeps b_hn apart (it sits inside r * (...)).
    let mut bias = vec![zero; gh];
    let mut b_hn = vec![zero; if gru { h } else { 0 }];
    if let Some(bi) = &w.b_ih {
        for (o, &v) in bias.iter_mut().zip(bi.iter()) {
            *o = *o + v;
        }
    }
    if let Some(bh) = &w.b_hh {
        for (j, &v) in bh.iter().enumerate() {
            if gru && j >= 2 * h {
                b_hn[j - 2 * h] = v;
            } else {
                bias[j] = bias[j] + v;
            }
        }
    }
    // A single step (a cell) multiplies by W_hh once: one GEMM over the whole batch on the
    // weight as given, with no transposed copy or packing (lstm_cell B64 H256 0.69 ->
    // 0.2 ms). Longer sequences copy W_hh^T once and run the per-chunk time loop.
    let single = t == 1;
    let mut hh_all = vec![zero; if single && gru { b * gh } else { 0 }];
    if direct {
        single_step_packed(w, xflat, h0.as_ref(), dims, gru, &mut gates, &mut hh_all);
    } else if single && b > 0 {
        if let Some(h0) = &h0 {
            let (dst, beta) = if gru {
                (&mut hh_all[..], zero)
            } else {
                (&mut gates[..], T::one())
            };
            let d2 = ArrayViewMut2::from_shape((b, gh), dst).expect("rnn: buffer shape");
            gemm(T::one(), w.w_hh, h0.t(), beta, d2.reversed_axes(), Threads::Auto)
                .expect("rnn: recurrent shapes agree");
        }
    }
    let wt = if single {
        None
    } else {
        Some(StepWeight::new(w.w_hh.t(), t, max_rows(b))) // W_hh^T (H, G*H)
    };

    let mut hs = zeroed::<T>((t + 1) * b * h);
    if let Some(h0) = &h0 {
        hs[..b * h].copy_from_slice(&to_vec2(h0.view()));
    }
    let c0v = c0
        .as_ref()
        .map(|c| to_vec2(c.view()))
        .unwrap_or_else(|| vec![zero; if lstm { b * h } else { 0 }]);
    let mut cs = zeroed::<T>(if lstm && train { (t + 1) * b * h } else { 0 });
    if !cs.is_empty() {
        cs[..b * h].copy_from_slice(&c0v);
    }
    let mut hn = zeroed::<T>(if gru && train { t * b * h } else { 0 });
    let mut h_n = vec![zero; b * h];
    let mut c_n = vec![zero; if lstm { b * h } else { 0 }];

    let sg = Shared::new(&mut gates);
    let shs = Shared::new(&mut hs);
    let scs = Shared::new(&mut cs);
    let shn = Shared::new(&mut hn);
    let shn_out = Shared::new(&mut h_n);
    let scn_out = Shared::new(&mut c_n);
    let chunks = chunk_ranges(b);
    let work = t * b * h * gh;
    let (bias, b_hn, wt, wi, c0v, hh_all) = (&bias, &b_hn, &wt, &wi, &c0v, &hh_all);
    let scratch_gates = gates.is_empty();

    parallel::run(work, || {
        chunks.par_iter().for_each(|&(b0, b1)| {
            let bc = b1 - b0;
            // SAFETY (all `slice` calls below): this chunk only touches rows b0..b1 of
            // each buffer, and rows of hs[0] are only read.
            let mut hrun: Vec<T> = unsafe { shs.slice(b0 * h, bc * h) }.to_vec();
            let mut crun: Vec<T> = if lstm {
                c0v[b0 * h..b1 * h].to_vec()
            } else {
                Vec::new()
            };
            let mut hh = vec![zero; if gru { bc * gh } else { 0 }];
            let mut hn_scratch = vec![zero; if gru { h } else { 0 }];
            let mut gscratch = vec![zero; if scratch_gates { bc * gh } else { 0 }];
            for s in 0..t {
                let gchunk: &mut [T] = if scratch_gates {
                    &mut gscratch
                } else {
                    unsafe { sg.slice((s * b + b0) * gh, bc * gh) }
                };
                // Rows past the chunk's last still-running sequence need no product (with
                // lengths sorted longest first, as packed sequences are, that is all the
                // finished rows).
                let m = active_rows(lens, b0, b1, s);
                if let Some(wi) = wi {
                    wi.product(&xflat[(s * b + b0) * d..(s * b + b1) * d], gchunk, m, false);
                }
                match wt {
                    Some(wt) if gru => wt.product(&hrun, &mut hh, m, false),
                    Some(wt) => wt.product(&hrun, gchunk, m, true),
                    // One step: the product is already in `gates` / `hh_all`.
                    None if gru => hh.copy_from_slice(&hh_all[b0 * gh..b1 * gh]),
                    None => {}
                }
                for r in 0..bc {
                    let bi = b0 + r;
                    let out = unsafe { shs.slice(((s + 1) * b + bi) * h, h) };
                    if s >= lens[bi] {
                        out.fill(zero);
                        continue;
                    }
                    let grow = &mut gchunk[r * gh..(r + 1) * gh];
                    let hrow = &mut hrun[r * h..(r + 1) * h];
                    match kind {
                        CellKind::Lstm => {
                            let crow = &mut crun[r * h..(r + 1) * h];
                            rows::lstm_fwd_row(grow, bias, crow, hrow);
                            if train {
                                unsafe { scs.slice(((s + 1) * b + bi) * h, h) }
                                    .copy_from_slice(crow);
                            }
                        }
                        CellKind::Gru => {
                            let hn_out: &mut [T] = if train {
                                unsafe { shn.slice((s * b + bi) * h, h) }
                            } else {
                                &mut hn_scratch
                            };
                            rows::gru_fwd_row(
                                grow,
                                &hh[r * gh..(r + 1) * gh],
                                bias,
                                b_hn,
                                hrow,
                                hn_out,
                            );
                        }
                        CellKind::RnnTanh | CellKind::RnnRelu => {
                            rows::rnn_fwd_row(grow, bias, hrow, relu);
                        }
                    }
                    out.copy_from_slice(hrow);
                }
            }
            unsafe { shn_out.slice(b0 * h, bc * h) }.copy_from_slice(&hrun);
            if lstm {
                unsafe { scn_out.slice(b0 * h, bc * h) }.copy_from_slice(&crun);
            }
        });
    });

    let arr3 = |v: Vec<T>, n0: usize, n2: usize| {
        Array3::from_shape_vec((n0, b, n2), v).expect("rnn: buffer shape")
    };
    Forward {
        hs: arr3(hs, t + 1, h),
        h_n: Array2::from_shape_vec((b, h), h_n).expect("rnn: buffer shape"),
        c_n: if lstm {
            Some(Array2::from_shape_vec((b, h), c_n).expect("rnn: buffer shape"))
        } else {
            None
        },
        gates: if keep_gates {
            Some(arr3(gates, t, gh))
        } else {
            None
        },
        cs: if lstm && train {
            Some(arr3(cs, t + 1, h))
        } else {
            None
        },
        hn: if gru && train {
            Some(arr3(hn, t, h))
        } else {
            None
        },
    }
}

/// A contiguous slice of a standard-layout view, or a copy.
fn flat<'a, T: RnnFloat>(a: &'a ArrayView3<'_, T>, store: &'a mut Vec<T>) -> &'a [T] {
    match a.as_slice() {
        Some(s) => s,
        None => {
            *store = a.iter().copied().collect();
            store
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn backward<T: RnnFloat>(
    kind: CellKind,
    dims: Dims,
    x: ArrayView3<'_, T>,
    w_ih: ArrayView2<'_, T>,
    w_hh: ArrayView2<'_, T>,
    lens: &[usize],
    saved: &Saved<'_, T>,
    dy: Option<ArrayView3<'_, T>>,
    dh_n: Option<ArrayView2<'_, T>>,
    dc_n: Option<ArrayView2<'_, T>>,
    need_dx: bool,
) -> Grads<T> {
    let Dims { t, b, d, h, g } = dims;
    let gh = g * h;
    let zero = T::zero();
    let lstm = kind == CellKind::Lstm;
    let gru = kind == CellKind::Gru;
    let relu = kind == CellKind::RnnRelu;

    let (mut st_hs, mut st_cs, mut st_g, mut st_hn, mut st_dy) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let hs = flat(&saved.hs, &mut st_hs);
    let cs: &[T] = match &saved.cs {
        Some(a) if lstm => flat(a, &mut st_cs),
        _ => &[],
    };
    let gsave: &[T] = match &saved.gates {
        Some(a) if lstm || gru => flat(a, &mut st_g),
        _ => &[],
    };
    let hnsave: &[T] = match &saved.hn {
        Some(a) if gru => flat(a, &mut st_hn),
        _ => &[],
    };
    let dyv: Option<&[T]> = dy.as_ref().map(|a| flat(a, &mut st_dy));
    let dh_init = dh_n
        .map(|a| to_vec2(a))
        .unwrap_or_else(|| vec![zero; b * h]);
    let dc_init = dc_n
        .map(|a| to_vec2(a))
        .unwrap_or_else(|| vec![zero; if lstm { b * h } else { 0 }]);
    let whh = StepWeight::new(w_hh, t, max_rows(b)); // W_hh (G*H, H)

    // Every element of these is written by the loop below (zeros past each length).
    let mut dgx = Scratch::<T>::take(t * b * gh);
    let mut dgh = Scratch::<T>::take(if gru { t * b * gh } else { 0 });
    let mut dh0 = vec![zero; b * h];
    let mut dc0 = vec![zero; if lstm { b * h } else { 0 }];
    let chunks = chunk_ranges(b);
    let mut dbx_parts = vec![zero; chunks.len() * gh];
    let mut dbh_parts = vec![zero; if gru { chunks.len() * gh } else { 0 }];

    let sdgx = Shared::new(dgx.as_mut_slice());
    let sdgh = Shared::new(dgh.as_mut_slice());
    let sdh0 = Shared::new(&mut dh0);
    let sdc0 = Shared::new(&mut dc0);
    let sdbx = Shared::new(&mut dbx_parts);
    let sdbh = Shared::new(&mut dbh_parts);
    let work = t * b * h * gh;
    let (whh, dh_init, dc_init) = (&whh, &dh_init, &dc_init);

    parallel::run(work, || {
        chunks.par_iter().enumerate().for_each(|(ci, &(b0, b1))| {
            let bc = b1 - b0;
            let mut dh = dh_init[b0 * h..b1 * h].to_vec();
            let mut dc = if lstm {
                dc_init[b0 * h..b1 * h].to_vec()
            } else {
                Vec::new()
            };
            let mut tmp = vec![zero; bc * h];
            let mut direct = vec![zero; if gru { bc * h } else { 0 }];
            // SAFETY (all `slice` calls below): this chunk touches only rows b0..b1 of
            // every step and its own partial-sum row `ci`.
            let dbx = unsafe { sdbx.slice(ci * gh, gh) };
            let dbh: &mut [T] = if gru {
                unsafe { sdbh.slice(ci * gh, gh) }
            } else {
                &mut []
            };
            for s in (0..t).rev() {
                let dgx_chunk = unsafe { sdgx.slice((s * b + b0) * gh, bc * gh) };
                let dgh_chunk: &mut [T] = if gru {
                    unsafe { sdgh.slice((s * b + b0) * gh, bc * gh) }
                } else {
                    &mut []
                };
                for r in 0..bc {
                    let bi = b0 + r;
                    let dgx_row = &mut dgx_chunk[r * gh..(r + 1) * gh];
                    if s >= lens[bi] {
                        // Past the end: no gradient flows into this step; the carried
                        // state gradient passes through unchanged.
                        dgx_row.fill(zero);
                        if gru {
                            dgh_chunk[r * gh..(r + 1) * gh].fill(zero);
                        }
                        continue;
                    }
                    let dhrow = &mut dh[r * h..(r + 1) * h];
                    if let Some(dyv) = dyv {
                        let dyrow = &dyv[(s * b + bi) * h..(s * b + bi + 1) * h];
                        for (a, &v) in dhrow.iter_mut().zip(dyrow) {
                            *a = *a + v;
                        }
                    }
                    let row_g = (s * b + bi) * gh;
                    let row_h = (s * b + bi) * h; // step s in (T, B, H); hs/cs row s is the state before step s
                    let row_h1 = ((s + 1) * b + bi) * h;
                    match kind {
                        CellKind::Lstm => rows::lstm_bwd_row(
                            &gsave[row_g..row_g + gh],
                            &cs[row_h1..row_h1 + h],
                            &cs[row_h..row_h + h],
                            dhrow,
                            &mut dc[r * h..(r + 1) * h],
                            dgx_row,
                        ),
                        CellKind::Gru => rows::gru_bwd_row(
                            &gsave[row_g..row_g + gh],
                            &hnsave[row_h..row_h + h],
                            &hs[row_h..row_h + h],
                            dhrow,
                            dgx_row,
                            &mut dgh_chunk[r * gh..(r + 1) * gh],
                            &mut direct[r * h..(r + 1) * h],
                        ),
                        CellKind::RnnTanh | CellKind::RnnRelu => {
                            rows::rnn_bwd_row(&hs[row_h1..row_h1 + h], dhrow, dgx_row, relu)
                        }
                    }
                }
                let dg_chunk: &[T] = if gru { dgh_chunk } else { dgx_chunk };
                whh.product(dg_chunk, &mut tmp, active_rows(lens, b0, b1, s), false);
                for r in 0..bc {
                    if s >= lens[b0 + r] {
                        continue;
                    }
                    let dhrow = &mut dh[r * h..(r + 1) * h];
                    dhrow.copy_from_slice(&tmp[r * h..(r + 1) * h]);
                    if gru {
                        for (a, &v) in dhrow.iter_mut().zip(&direct[r * h..(r + 1) * h]) {
                            *a = *a + v;
                        }
                    }
                }
                rows::add_rows(dbx, dgx_chunk);
                if gru {
                    rows::add_rows(dbh, dg_chunk);
                }
            }
            unsafe { sdh0.slice(b0 * h, bc * h) }.copy_from_slice(&dh);
            if lstm {
                unsafe { sdc0.slice(b0 * h, bc * h) }.copy_from_slice(&dc);
            }
        });
    });

    // Bias gradients: chunk partial sums reduced in chunk order.
    let reduce = |parts: &[T]| -> Array1<T> {
        let mut acc = vec![zero; gh];
        rows::add_rows(&mut acc, parts);
        Array1::from_vec(acc)
    };
    let db_ih = reduce(&dbx_parts);
    let db_hh = if gru {
        reduce(&dbh_parts)
    } else {
        db_ih.clone()
    };

    // The three large products over all steps.
    let mut dx = if need_dx {
        Some(Array2::from_shape_vec((t * b, d), zeroed::<T>(t * b * d)).expect("rnn: buffer shape"))
    } else {
        None
    };
    let mut dw_ih = Array2::<T>::zeros((gh, d));
    let mut dw_hh = Array2::<T>::zeros((gh, h));
    if t * b > 0 {
        let dgx2 = ArrayView2::from_shape((t * b, gh), dgx.as_slice()).expect("rnn: buffer shape");
        let dgh2 = if gru {
            ArrayView2::from_shape((t * b, gh), dgh.as_slice()).expect("rnn: buffer shape")
        } else {
            dgx2
        };
        let xs = x.as_standard_layout();
        let x2 = xs
            .view()
            .into_shape_with_order((t * b, d))
            .expect("rnn: x is standard layout");
        let hprev =
            ArrayView2::from_shape((t * b, h), &hs[..t * b * h]).expect("rnn: buffer shape");
        if let Some(dx) = &mut dx {
            gemm(T::one(), dgx2, w_ih, zero, dx.view_mut(), Threads::Auto)
                .expect("rnn: dx shapes agree");
        }
        gemm(T::one(), dgx2.t(), x2, zero, dw_ih.view_mut(), Threads::Auto)
            .expect("rnn: dw_ih shapes agree");
        gemm(T::one(), dgh2.t(), hprev, zero, dw_hh.view_mut(), Threads::Auto)
            .expect("rnn: dw_hh shapes agree");
    }
    let dx = dx.map(|dx| {
        dx.into_shape_with_order((t, b, d))
            .expect("rnn: buffer shape")
    });
    Grads {
        dx,
        dh0: Array2::from_shape_vec((b, h), dh0).expect("rnn: buffer shape"),
        dc0: if lstm {
            Some(Array2::from_shape_vec((b, h), dc0).expect("rnn: buffer shape"))
        } else {
            None
        },
        dw_ih,
        dw_hh,
        db_ih,
        db_hh,
    }
}
