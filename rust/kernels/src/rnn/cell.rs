//! Direct backward of a single cell step (`lstm_cell_backward` etc.), for step-by-step
//! decoders that call a cell once per step and per layer.
//!
//! Before, a cell backward ran the sequence path with T = 1: a training forward (the
//! sequence forward's setup, gate/state buffers for BPTT), then the sequence backward
//! with its chunked time loop, scratch recycling and three trailing GEMMs, each of the
//! small products mostly on one thread (below the GEMM's parallel threshold). Here the
//! step is recomputed and differentiated in one call:
//! - `gi = x W_ih^T + b_ih` and `gh = h W_hh^T + b_hh` as two products run side by side;
//! - one pass over the rows turns them into the pre-activation gradients, in place;
//! - `dx = dGi W_ih`, `dh = dGh W_hh` on one side and `dW_ih = dGi^T x`,
//!   `dW_hh = dGh^T h` on the other, each product on a single thread, so the split (and
//!   so every result bit) is the same for any thread count.

use super::rows;
use super::{check_state, check_weights, CellKind, Grads, RnnFloat, Weights};
use crate::error::KernelResult;
use crate::gemm::{gemm, Threads};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};

fn bias_rows<T: RnnFloat>(b: usize, n: usize, bias: Option<ArrayView1<'_, T>>) -> Array2<T> {
    match bias {
        Some(v) => v.broadcast((b, n)).expect("bias length checked").to_owned(),
        None => Array2::zeros((b, n)),
    }
}

fn col_sums<T: RnnFloat>(a: ArrayView2<'_, T>) -> Array1<T> {
    let mut s = Array1::zeros(a.ncols());
    for row in a.axis_iter(Axis(0)) {
        s.zip_mut_with(&row, |acc, &v| *acc = *acc + v);
    }
    s
}

/// What a training forward of one step keeps for [`cell_backward_saved`]: the activated
/// gates `(B, G*H)` (LSTM i, f, g, o; GRU r, z, n; Elman the output) and one `(B, H)`
/// state: the new cell state `c'` (LSTM), `W_hn h + b_hn` (GRU) or the new `h'` (Elman)
/// — `gates[0]` and `cs[1]` / `hn[0]` / `hs[1]` of a T = 1 [`super::forward`] with `train`.
#[derive(Debug, Clone, Copy)]
pub struct StepSaved<'a, T> {
    pub gates: ArrayView2<'a, T>,
    pub state: ArrayView2<'a, T>,
}

/// Gradients of one cell step `(x (B, D), h (B, H), c (B, H))` given `dh_next`, `dc_next`
/// (`None` for zero; `h`, `c` `None` for zeros). Returns [`Grads`] with `dx` shaped
/// `(1, B, D)` (or `None` without `need_dx`), `dh0`, `dc0` (LSTM) the gradients of `h`, `c`.
#[allow(clippy::too_many_arguments)]
pub fn cell_backward<T: RnnFloat>(
    kind: CellKind,
    x: ArrayView2<'_, T>,
    h: Option<ArrayView2<'_, T>>,
    c: Option<ArrayView2<'_, T>>,
    w: &Weights<'_, T>,
    dh_next: Option<ArrayView2<'_, T>>,
    dc_next: Option<ArrayView2<'_, T>>,
    need_dx: bool,
) -> KernelResult<Grads<T>> {
    cell_backward_impl(kind, x, h, c, w, None, dh_next, dc_next, need_dx)
}

/// [`cell_backward`] from the forward's saved gates and state instead of recomputing
/// the step: the two input products (a third of the arithmetic) and the forward gate
/// pass are skipped. `saved` must come from the forward of this very step (same `x`,
/// `h`, `c` and weights); only its shapes can be checked.
#[allow(clippy::too_many_arguments)]
pub fn cell_backward_saved<T: RnnFloat>(
    kind: CellKind,
    x: ArrayView2<'_, T>,
    h: Option<ArrayView2<'_, T>>,
    c: Option<ArrayView2<'_, T>>,
    w: &Weights<'_, T>,
    saved: StepSaved<'_, T>,
    dh_next: Option<ArrayView2<'_, T>>,
    dc_next: Option<ArrayView2<'_, T>>,
    need_dx: bool,
) -> KernelResult<Grads<T>> {
    cell_backward_impl(kind, x, h, c, w, Some(saved), dh_next, dc_next, need_dx)
}

#[allow(clippy::too_many_arguments)]
fn cell_backward_impl<T: RnnFloat>(
    kind: CellKind,
    x: ArrayView2<'_, T>,
    h: Option<ArrayView2<'_, T>>,
    c: Option<ArrayView2<'_, T>>,
    w: &Weights<'_, T>,
    saved: Option<StepSaved<'_, T>>,
    dh_next: Option<ArrayView2<'_, T>>,
    dc_next: Option<ArrayView2<'_, T>>,
    need_dx: bool,
) -> KernelResult<Grads<T>> {
    let op = kind.name();
    let (b, d) = x.dim();
    let dims = check_weights(kind, &[1, b, d], w)?;
    let (hsz, gh) = (dims.h, dims.g * dims.h);
    check_state(op, "h", &h, b, hsz)?;
    if let Some(sv) = &saved {
        if sv.gates.dim() != (b, gh) {
            return Err(crate::error::KernelError::shape(format!(
                "{op}: saved 'gates' has shape ({}, {}) but must be ({b}, {gh}) (batch, {}*hidden_size)",
                sv.gates.nrows(),
                sv.gates.ncols(),
                dims.g
            )));
        }
        check_state(op, "saved state", &Some(sv.state), b, hsz)?;
    }
    // Standard layout, so that every row is one contiguous slice (no copy when it is).
    let saved_std = saved
        .as_ref()
        .map(|sv| (sv.gates.as_standard_layout(), sv.state.as_standard_layout()));
    if kind != CellKind::Lstm && (c.is_some() || dc_next.is_some()) {
        return Err(crate::error::KernelError::param(format!(
            "{op}: 'c' and 'dc_next' are only used by lstm"
        )));
    }
    check_state(op, "c", &c, b, hsz)?;
    check_state(op, "dh_next", &dh_next, b, hsz)?;
    check_state(op, "dc_next", &dc_next, b, hsz)?;

    let work = 2 * b * gh * (d + hsz);
    crate::parallel::run(work, || {
        let zero = T::zero();
        let one = T::one();
        // Recompute the step's pre-activations: gi = x W_ih^T, ghm = h W_hh^T (+ the
        // summed biases for LSTM and RNN, which the row kernels take as `bias`).
        let recompute = saved_std.is_none();
        // With saved gates: `gi` only holds dG for the Elman cell, `ghm` dG (LSTM) or dGh
        // (GRU), and nothing needs the biases.
        let mut gi = Array2::<T>::zeros(if recompute || kind.gates() == 1 {
            (b, gh)
        } else {
            (0, gh)
        });
        let mut ghm = if kind == CellKind::Gru || (!recompute && kind == CellKind::Lstm) {
            Array2::<T>::zeros((b, gh))
        } else if !recompute {
            Array2::<T>::zeros((0, gh))
        } else {
            let mut m = bias_rows(b, gh, w.b_ih);
            if let Some(bh) = w.b_hh {
                for mut row in m.rows_mut() {
                    row.zip_mut_with(&bh, |a, &v| *a = *a + v);
                }
            }
            m
        };
        let beta_h = if kind == CellKind::Gru { zero } else { one };
        let mut dgx = Array2::<T>::zeros(if kind == CellKind::Gru {
            (b, gh)
        } else {
            (0, gh)
        });
        let mut dc = Array2::<T>::zeros(if kind == CellKind::Lstm {
            (b, hsz)
        } else {
            (0, hsz)
        });
        let mut dd = Array2::<T>::zeros(if kind == CellKind::Gru {
            (b, hsz)
        } else {
            (0, hsz)
        });
        // GRU bias layout of the row kernels: (b_ir + b_hr, b_iz + b_hz, b_in) and b_hn.
        let bi = |k: usize| w.b_ih.as_ref().map_or(zero, |v| v[k]);
        let bhh = |k: usize| w.b_hh.as_ref().map_or(zero, |v| v[k]);
        let gbias: Vec<T> = (0..gh)
            .map(|k| if k < 2 * hsz { bi(k) + bhh(k) } else { bi(k) })
            .collect();
        let b_hn: Vec<T> = if kind == CellKind::Gru {
            (2 * hsz..gh).map(bhh).collect()
        } else {
            Vec::new()
        };
        // Two fixed halves of the batch (a function of B only), each: its rows of the
        // two products, then the per-row gate pass.
        let half = b.div_ceil(2);
        let cut = |n: usize| half.min(n);
        let (gi_a, gi_b) = {
            let n = cut(gi.nrows());
            gi.view_mut().split_at(Axis(0), n)
        };
        let (gh_a, gh_b) = {
            let n = cut(ghm.nrows());
            ghm.view_mut().split_at(Axis(0), n)
        };
        let saved_half = |lo: bool| {
            saved_std.as_ref().map(|(g, st)| {
                (
                    half_rows(Some(g.view()), half, lo).expect("some"),
                    half_rows(Some(st.view()), half, lo).expect("some"),
                )
            })
        };
        let (dgx_a, dgx_b) = {
            let n = cut(dgx.nrows());
            dgx.view_mut().split_at(Axis(0), n)
        };
        let (dc_a, dc_b) = {
            let n = cut(dc.nrows());
            dc.view_mut().split_at(Axis(0), n)
        };
        let (dd_a, dd_b) = {
            let n = cut(dd.nrows());
            dd.view_mut().split_at(Axis(0), n)
        };
        let (xa, xb) = x.split_at(Axis(0), half);
        let part = |lo: bool, xs, gi_s, gh_s, dgx_s, dc_s, dd_s| {
            let rs = RowSet {
                x: xs,
                h: half_rows(h, half, lo),
                c: half_rows(c, half, lo),
                dh: half_rows(dh_next, half, lo),
                dc_next: half_rows(dc_next, half, lo),
            };
            step_rows(
                kind,
                w,
                &rs,
                saved_half(lo),
                beta_h,
                &gbias,
                &b_hn,
                gi_s,
                gh_s,
                dgx_s,
                dc_s,
                dd_s,
            )
        };
        let (ra, rb) = rayon::join(
            || part(true, xa, gi_a, gh_a, dgx_a, dc_a, dd_a),
            || part(false, xb, gi_b, gh_b, dgx_b, dc_b, dd_b),
        );
        ra?;
        rb?;
        let dh_direct = (kind == CellKind::Gru).then_some(dd);
        let dc0 = (kind == CellKind::Lstm).then_some(dc);
        let (dgi, dgh_own) = match kind {
            CellKind::Lstm => (ghm, None),
            CellKind::Gru => (dgx, Some(ghm)),
            _ => (gi, None),
        };

        // LSTM and RNN: the hidden-side gradients are the input-side ones.
        let dgh = dgh_own.as_ref().map_or(dgi.view(), |a| a.view());
        let left = || -> KernelResult<_> {
            let dx = if need_dx {
                let mut dx = Array2::<T>::zeros((b, d));
                gemm(
                    one,
                    dgi.view(),
                    w.w_ih,
                    zero,
                    dx.view_mut(),
                    Threads::Single,
                )?;
                Some(dx)
            } else {
                None
            };
            let (mut dh, beta) = match dh_direct {
                Some(dd) => (dd, one),
                None => (Array2::<T>::zeros((b, hsz)), zero),
            };
            if h.is_some() {
                gemm(one, dgh, w.w_hh, beta, dh.view_mut(), Threads::Single)?;
            }
            Ok((dx, dh, col_sums(dgi.view()), col_sums(dgh)))
        };
        let right = || -> KernelResult<_> {
            let mut dw_ih = Array2::<T>::zeros((gh, d));
            gemm(one, dgi.t(), x, zero, dw_ih.view_mut(), Threads::Single)?;
            let mut dw_hh = Array2::<T>::zeros((gh, hsz));
            if let Some(h) = h {
                gemm(one, dgh.t(), h, zero, dw_hh.view_mut(), Threads::Single)?;
            }
            Ok((dw_ih, dw_hh))
        };
        let (l, r) = rayon::join(left, right);
        let (dx, dh0, db_ih, db_hh) = l?;
        let (dw_ih, dw_hh) = r?;
        Ok(Grads {
            dx: dx.map(|a| a.insert_axis(Axis(0))),
            dh0,
            dc0,
            dw_ih,
            dw_hh,
            db_ih,
            db_hh,
        })
    })
}

struct RowSet<'a, T> {
    x: ArrayView2<'a, T>,
    h: Option<ArrayView2<'a, T>>,
    c: Option<ArrayView2<'a, T>>,
    dh: Option<ArrayView2<'a, T>>,
    dc_next: Option<ArrayView2<'a, T>>,
}

/// One block of batch rows: `gi = x W_ih^T`, `gh (+)= h W_hh^T` (`gh` holds the summed
/// biases on entry for LSTM and RNN, `beta_h` = 1 then), then per row the forward gate
/// nonlinearities and the pre-activation gradients. Leaves dG in `gh` (LSTM), in `gi`
/// (RNN), or dGi in `dgx` and dGh in `gh` (GRU, with `dd` = z * dh); `dc` gets dL/dc.
/// With `saved` (these rows' activated gates and state, standard layout) the products and
/// the forward pass are skipped.
#[allow(clippy::too_many_arguments)]
fn step_rows<T: RnnFloat>(
    kind: CellKind,
    w: &Weights<'_, T>,
    rs: &RowSet<'_, T>,
    saved: Option<(ArrayView2<'_, T>, ArrayView2<'_, T>)>,
    beta_h: T,
    gbias: &[T],
    b_hn: &[T],
    mut gi: ArrayViewMut2<'_, T>,
    mut ghm: ArrayViewMut2<'_, T>,
    mut dgx: ArrayViewMut2<'_, T>,
    mut dc: ArrayViewMut2<'_, T>,
    mut dd: ArrayViewMut2<'_, T>,
) -> KernelResult<()> {
    let (zero, one) = (T::zero(), T::one());
    let rows_n = rs.x.nrows();
    if rows_n == 0 {
        return Ok(());
    }
    let hsz = w.w_hh.ncols();
    if let Some((sg, ss)) = saved {
        return saved_rows(kind, rs, sg, ss, gi, ghm, dgx, dc, dd);
    }
    gemm(one, rs.x, w.w_ih.t(), zero, gi.view_mut(), Threads::Single)?;
    if let Some(h) = rs.h {
        gemm(one, h, w.w_hh.t(), beta_h, ghm.view_mut(), Threads::Single)?;
    }
    let row_of = |a: &Option<ArrayView2<'_, T>>, r: usize, buf: &mut Vec<T>| {
        buf.clear();
        match a {
            Some(a) => buf.extend(a.row(r).iter().copied()),
            None => buf.extend(std::iter::repeat_n(zero, hsz)),
        }
    };
    let (mut hp, mut cp, mut st, mut st2, mut dh) = (
        Vec::new(),
        Vec::new(),
        vec![zero; hsz],
        vec![zero; hsz],
        Vec::new(),
    );
    match kind {
        CellKind::Lstm => {
            for r in 0..rows_n {
                row_of(&rs.c, r, &mut cp);
                row_of(&rs.dh, r, &mut dh);
                st.copy_from_slice(&cp);
                let g = gi.row_mut(r).into_slice().expect("contiguous");
                let dg = ghm.row_mut(r).into_slice().expect("contiguous");
                rows::lstm_fwd_row(g, dg, &mut st, &mut st2);
                let dcr = dc.row_mut(r).into_slice().expect("contiguous");
                if let Some(a) = &rs.dc_next {
                    dcr.iter_mut().zip(a.row(r)).for_each(|(o, &v)| *o = v);
                }
                rows::lstm_bwd_row(g, &st, &cp, &dh, dcr, dg);
            }
        }
        CellKind::Gru => {
            for r in 0..rows_n {
                row_of(&rs.h, r, &mut hp);
                row_of(&rs.dh, r, &mut dh);
                st.copy_from_slice(&hp);
                let g = gi.row_mut(r).into_slice().expect("contiguous");
                let hh = ghm.row_mut(r).into_slice().expect("contiguous");
                rows::gru_fwd_row(g, hh, gbias, b_hn, &mut st, &mut st2);
                let dx_r = dgx.row_mut(r).into_slice().expect("contiguous");
                let ddr = dd.row_mut(r).into_slice().expect("contiguous");
                rows::gru_bwd_row(g, &st2, &hp, &dh, dx_r, hh, ddr);
            }
        }
        CellKind::RnnTanh | CellKind::RnnRelu => {
            let relu = kind == CellKind::RnnRelu;
            for r in 0..rows_n {
                row_of(&rs.dh, r, &mut dh);
                let g = gi.row_mut(r).into_slice().expect("contiguous");
                let bias = ghm.row(r);
                rows::rnn_fwd_row(g, bias.as_slice().expect("contiguous"), &mut st, relu);
                rows::rnn_bwd_row(&st, &dh, g, relu);
            }
        }
    }
    Ok(())
}

/// The per-row gate gradients of [`step_rows`] from saved activated gates `sg` and the
/// saved state `ss` (standard layout): the backward half of its gate pass, unchanged.
#[allow(clippy::too_many_arguments)]
fn saved_rows<T: RnnFloat>(
    kind: CellKind,
    rs: &RowSet<'_, T>,
    sg: ArrayView2<'_, T>,
    ss: ArrayView2<'_, T>,
    mut gi: ArrayViewMut2<'_, T>,
    mut ghm: ArrayViewMut2<'_, T>,
    mut dgx: ArrayViewMut2<'_, T>,
    mut dc: ArrayViewMut2<'_, T>,
    mut dd: ArrayViewMut2<'_, T>,
) -> KernelResult<()> {
    let zero = T::zero();
    let hsz = ss.ncols();
    let row_of = |a: &Option<ArrayView2<'_, T>>, r: usize, buf: &mut Vec<T>| {
        buf.clear();
        match a {
            Some(a) => buf.extend(a.row(r).iter().copied()),
            None => buf.extend(std::iter::repeat_n(zero, hsz)),
        }
    };
    let (mut prev, mut dh) = (Vec::new(), Vec::new());
    for r in 0..rs.x.nrows() {
        let g = sg.row(r).to_slice().expect("standard layout");
        let st = ss.row(r).to_slice().expect("standard layout");
        row_of(&rs.dh, r, &mut dh);
        match kind {
            CellKind::Lstm => {
                row_of(&rs.c, r, &mut prev);
                let dcr = dc.row_mut(r).into_slice().expect("contiguous");
                if let Some(a) = &rs.dc_next {
                    dcr.iter_mut().zip(a.row(r)).for_each(|(o, &v)| *o = v);
                }
                let dg = ghm.row_mut(r).into_slice().expect("contiguous");
                rows::lstm_bwd_row(g, st, &prev, &dh, dcr, dg);
            }
            CellKind::Gru => {
                row_of(&rs.h, r, &mut prev);
                let dx_r = dgx.row_mut(r).into_slice().expect("contiguous");
                let hh = ghm.row_mut(r).into_slice().expect("contiguous");
                let ddr = dd.row_mut(r).into_slice().expect("contiguous");
                rows::gru_bwd_row(g, st, &prev, &dh, dx_r, hh, ddr);
            }
            CellKind::RnnTanh | CellKind::RnnRelu => {
                let dg = gi.row_mut(r).into_slice().expect("contiguous");
                rows::rnn_bwd_row(st, &dh, dg, kind == CellKind::RnnRelu);
            }
        }
    }
    Ok(())
}

fn half_rows<'a, T>(
    a: Option<ArrayView2<'a, T>>,
    half: usize,
    lo: bool,
) -> Option<ArrayView2<'a, T>> {
    a.map(|v| {
        let (p, q) = v.split_at(Axis(0), half);
        if lo {
            p
        } else {
            q
        }
    })
}
