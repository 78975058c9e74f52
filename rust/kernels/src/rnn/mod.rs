//! Recurrent networks: Elman RNN, GRU and LSTM layers over whole sequences, forward
//! and backward (BPTT), with PyTorch's weight shapes and gate orders.
//!
//! Layout: `x` is time-major `(T, B, D)`; weights are `w_ih (G*H, D)`, `w_hh (G*H, H)`,
//! biases `(G*H,)`, with G = 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n) or 1 (RNN).
//!
//! How the work is organised (see `seq.rs`):
//! - the input projections of all T steps are one large GEMM `(T*B, D) @ W_ih^T`, except
//!   on float32 with AVX-512 for chunks of 8 rows or more, where each chunk computes
//!   `x_t @ W_ih^T` for its rows inside the time loop with the packed kernel (`panel.rs`);
//! - a single step (a cell, T = 1) is `W_ih @ x^T + W_hh @ h^T` over the whole batch on
//!   the weights as laid out (packed kernel with x^T/h^T packed, or the GEMM);
//! - the batch is cut into fixed chunks of rows (a function of B only, never of the
//!   thread count, so results are identical for any number of threads); each chunk
//!   runs the whole time loop independently on one thread: per step only
//!   `h @ W_hh^T` for its rows and one fused pass of gate nonlinearities;
//! - the backward pass mirrors it: per step the gate gradients and `dh @ W_hh`, then
//!   `dx`, `dW_ih` and `dW_hh` as three large GEMMs over all steps at the end (`dx`
//!   skipped when the caller needs none); the gate-gradient buffer is recycled between
//!   calls (`scratch.rs`).
//!
//! Where the backward's time goes (LSTM T100 B32 D128 H256, float32, 2 threads, best of
//! 15, dev-fast build, `speed.rs`): forward 6.9 ms; backward 12.6-13.4 ms = time loop
//! ~5 ms (per 16-row chunk: the step products 3.5-3.7 ms, about 230 GFLOP/s per core,
//! and the gate gradients 0.6-1.0 ms) + dx 1.6-1.7 ms (~500 GFLOP/s) + dW_ih 1.9-2.1 ms
//! and dW_hh 4.0-4.4 ms (~400-440 GFLOP/s). Tried and measured slower, so not kept:
//! splitting the per-step product over hidden units instead of batch rows (each thread
//! keeping its half of W_hh in L2, one spin barrier per step: loop 5.5 -> 8-9 ms, its
//! products ran at ~165 GFLOP/s per core on the other thread's freshly written half of
//! dG and its gate pass doubled); the packed kernel instead of the GEMM for the
//! backward's 16 x 4H x H step product (equal); one GEMM for dW_ih and dW_hh over the
//! concatenated [x, h_prev] (6.5 -> 6.7-7.3 ms) or the transposed orientation (slower);
//! prefetching the next step's saved gates during the product (no change).
//! What helped: recycling the 13 MB gate-gradient buffer (no page faults and kernel
//! zeroing per call when the allocator had returned it to the system) and FMA-evaluated
//! exp/tanh polynomials in the gate loops: LSTM B32 H256 fwd+bwd 21.5-23.1 -> 18.7-19.7
//! ms wall (CPU 41-44 -> 36-38 ms) in a loop that frees each step's results; no change
//! where the allocator already reused the memory (the char-LM training step).
//!
//! Single-step cell backward (`cell.rs`, used by `lstm_cell_backward` & co., which get
//! x, h, c rather than a saved state): recomputes the step and differentiates it in one
//! call instead of a T = 1 training forward plus BPTT; at the date decoder's cell (B100
//! D160 H128 f32) 452-559 -> 273-282 us. A direct cell forward with the same layout
//! measured equal to the T = 1 layer forward, so cell forwards still use `forward`.
//! When the caller kept that forward's activated gates and state (`StepSaved`, the cells'
//! `return_cache` in Python), `cell_backward_saved` skips the recomputation (the two
//! input products and the gate pass): LSTM cell fwd+bwd at that shape 579 -> 439 us.
//!
//! Variable lengths (`lengths[b]` in 1..=T): a sequence's state stops changing after
//! its last step, its outputs there are zero, and its final state is the one at its
//! own end, as with PyTorch's packed sequences.

mod cell;
mod math;
mod panel;
mod rows;
mod seq;

pub use cell::{cell_backward, cell_backward_saved, StepSaved};
pub use math::RnnFloat;

use crate::error::{KernelError, KernelResult};
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3};

/// Which recurrence a layer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`
    RnnTanh,
    /// `h' = relu(W_ih x + b_ih + W_hh h + b_hh)`
    RnnRelu,
    /// PyTorch's GRU: gates r, z, n; `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`,
    /// `h' = (1 - z) * n + z * h`.
    Gru,
    /// PyTorch's LSTM: gates i, f, g, o; `c' = f * c + i * g`, `h' = o * tanh(c')`.
    Lstm,
}

impl CellKind {
    /// Number of stacked gate blocks in the weights (G).
    pub fn gates(self) -> usize {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
            CellKind::Gru => 3,
            CellKind::Lstm => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CellKind::RnnTanh => "rnn_tanh",
            CellKind::RnnRelu => "rnn_relu",
            CellKind::Gru => "gru",
            CellKind::Lstm => "lstm",
        }
    }

    pub fn from_name(name: &str) -> KernelResult<Self> {
        match name {
            "rnn_tanh" => Ok(CellKind::RnnTanh),
            "rnn_relu" => Ok(CellKind::RnnRelu),
            "gru" => Ok(CellKind::Gru),
            "lstm" => Ok(CellKind::Lstm),
            _ => Err(KernelError::param(format!(
                "rnn: unknown cell kind '{name}' (expected rnn_tanh, rnn_relu, gru or lstm)"
            ))),
        }
    }
}

/// The parameters of one layer and direction.
#[derive(Debug, Clone, Copy)]
pub struct Weights<'a, T> {
    pub w_ih: ArrayView2<'a, T>,
    pub w_hh: ArrayView2<'a, T>,
    pub b_ih: Option<ArrayView1<'a, T>>,
    pub b_hh: Option<ArrayView1<'a, T>>,
}

/// What a forward pass returns: outputs plus, when asked to train, the state the
/// backward pass needs.
#[derive(Debug)]
pub struct Forward<T> {
    /// `(T+1, B, H)`: `hs[0]` is h0, `hs[t+1]` the output at step t (zero past a
    /// sequence's length). The layer output `y` is `hs[1..]`.
    pub hs: Array3<T>,
    /// Final hidden state `(B, H)`, each row at its own sequence's end.
    pub h_n: Array2<T>,
    /// Final cell state `(B, H)` (LSTM only).
    pub c_n: Option<Array2<T>>,
    /// Training only: activated gates `(T, B, G*H)` (LSTM: i, f, g, o; GRU: r, z, n).
    pub gates: Option<Array3<T>>,
    /// Training only, LSTM: cell states `(T+1, B, H)`, `cs[0]` = c0.
    pub cs: Option<Array3<T>>,
    /// Training only, GRU: `W_hn h + b_hn` of every step `(T, B, H)`.
    pub hn: Option<Array3<T>>,
}

/// The saved forward state handed back to [`backward`].
#[derive(Debug, Clone, Copy)]
pub struct Saved<'a, T> {
    pub hs: ArrayView3<'a, T>,
    pub cs: Option<ArrayView3<'a, T>>,
    pub gates: Option<ArrayView3<'a, T>>,
    pub hn: Option<ArrayView3<'a, T>>,
}

/// Gradients of one layer and direction.
#[derive(Debug)]
pub struct Grads<T> {
    /// `None` when [`backward`] was told the input needs no gradient.
    pub dx: Option<Array3<T>>,
    pub dh0: Array2<T>,
    pub dc0: Option<Array2<T>>,
    pub dw_ih: Array2<T>,
    pub dw_hh: Array2<T>,
    pub db_ih: Array1<T>,
    pub db_hh: Array1<T>,
}

fn shape_str(s: &[usize]) -> String {
    let parts: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    if parts.len() == 1 {
        format!("({},)", parts[0])
    } else {
        format!("({})", parts.join(", "))
    }
}

/// Sizes of one call, checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub t: usize,
    pub b: usize,
    pub d: usize,
    pub h: usize,
    pub g: usize,
}

fn check_weights<T>(kind: CellKind, x_shape: &[usize], w: &Weights<'_, T>) -> KernelResult<Dims> {
    let op = kind.name();
    let g = kind.gates();
    let (t, b, d) = (x_shape[0], x_shape[1], x_shape[2]);
    let (gh, h) = w.w_hh.dim();
    if h == 0 || gh != g * h {
        return Err(KernelError::shape(format!(
            "{op}: 'w_hh' has shape {} but must be ({g}*hidden_size, hidden_size) with hidden_size >= 1",
            shape_str(w.w_hh.shape())
        )));
    }
    if w.w_ih.dim() != (gh, d) {
        return Err(KernelError::shape(format!(
            "{op}: 'w_ih' has shape {} but must be ({gh}, {d}) for input size {d} and hidden size {h}",
            shape_str(w.w_ih.shape())
        )));
    }
    for (name, bias) in [("b_ih", &w.b_ih), ("b_hh", &w.b_hh)] {
        if let Some(bv) = bias {
            if bv.len() != gh {
                return Err(KernelError::shape(format!(
                    "{op}: '{name}' has shape {} but must be ({gh},) for hidden size {h}",
                    shape_str(bv.shape())
                )));
            }
        }
    }
    Ok(Dims { t, b, d, h, g })
}

fn check_state<T>(
    op: &str,
    name: &str,
    s: &Option<ArrayView2<'_, T>>,
    b: usize,
    h: usize,
) -> KernelResult<()> {
    if let Some(s) = s {
        if s.dim() != (b, h) {
            return Err(KernelError::shape(format!(
                "{op}: '{name}' has shape {} but must be ({b}, {h}) (batch, hidden_size)",
                shape_str(s.shape())
            )));
        }
    }
    Ok(())
}

fn check_lengths(
    op: &str,
    lengths: Option<&[usize]>,
    t: usize,
    b: usize,
) -> KernelResult<Vec<usize>> {
    match lengths {
        None => Ok(vec![t; b]),
        Some(l) => {
            if l.len() != b {
                return Err(KernelError::shape(format!(
                    "{op}: 'lengths' has {} entries but the batch size is {b}",
                    l.len()
                )));
            }
            if let Some(&bad) = l.iter().find(|&&v| v == 0 || v > t) {
                return Err(KernelError::param(format!(
                    "{op}: 'lengths' must lie in 1..={t} (the sequence length), got {bad}"
                )));
            }
            Ok(l.to_vec())
        }
    }
}

/// Runs one layer (one direction) over a whole sequence.
///
/// `x (T, B, D)`; `h0`, `c0` `(B, H)` or `None` for zeros (`c0` only for LSTM);
/// `lengths` (B) optional. With `train`, the returned [`Forward`] carries what
/// [`backward`] needs.
pub fn forward<T: RnnFloat>(
    kind: CellKind,
    x: ArrayView3<'_, T>,
    h0: Option<ArrayView2<'_, T>>,
    c0: Option<ArrayView2<'_, T>>,
    w: &Weights<'_, T>,
    lengths: Option<&[usize]>,
    train: bool,
) -> KernelResult<Forward<T>> {
    let op = kind.name();
    let dims = check_weights(kind, x.shape(), w)?;
    check_state(op, "h0", &h0, dims.b, dims.h)?;
    if kind != CellKind::Lstm && c0.is_some() {
        return Err(KernelError::param(format!(
            "{op}: 'c0' is only used by lstm"
        )));
    }
    check_state(op, "c0", &c0, dims.b, dims.h)?;
    let lens = check_lengths(op, lengths, dims.t, dims.b)?;
    Ok(seq::forward(kind, dims, x, h0, c0, w, &lens, train))
}

/// BPTT through one layer (one direction).
///
/// `x` and `lengths` as given to [`forward`], `saved` its training state; `dy (T, B, H)`,
/// `dh_n`, `dc_n` `(B, H)` are the gradients of the outputs (`None` for zero). Returns
/// the gradients of x, h0, c0 (LSTM) and all weights and biases. With `need_dx` false
/// the product for dx (a quarter of the backward's arithmetic when D = H) is skipped
/// and `dx` is `None` (for a first layer fed with data that needs no gradient).
#[allow(clippy::too_many_arguments)]
pub fn backward<T: RnnFloat>(
    kind: CellKind,
    x: ArrayView3<'_, T>,
    w_ih: ArrayView2<'_, T>,
    w_hh: ArrayView2<'_, T>,
    lengths: Option<&[usize]>,
    saved: &Saved<'_, T>,
    dy: Option<ArrayView3<'_, T>>,
    dh_n: Option<ArrayView2<'_, T>>,
    dc_n: Option<ArrayView2<'_, T>>,
    need_dx: bool,
) -> KernelResult<Grads<T>> {
    let op = kind.name();
    let w = Weights {
        w_ih,
        w_hh,
        b_ih: None,
        b_hh: None,
    };
    let dims = check_weights(kind, x.shape(), &w)?;
    let (t, b, h, gh) = (dims.t, dims.b, dims.h, dims.g * dims.h);
    let lens = check_lengths(op, lengths, t, b)?;
    let need = |name: &str, a: Option<&ArrayView3<'_, T>>, shape: [usize; 3]| -> KernelResult<()> {
        match a {
            None => Err(KernelError::param(format!(
                "{op}: the saved state lacks '{name}' (run the forward pass with training on)"
            ))),
            Some(a) if a.shape() != shape => Err(KernelError::shape(format!(
                "{op}: saved '{name}' has shape {} but must be {}",
                shape_str(a.shape()),
                shape_str(&shape)
            ))),
            Some(_) => Ok(()),
        }
    };
    need("hs", Some(&saved.hs), [t + 1, b, h])?;
    match kind {
        CellKind::Lstm => {
            need("gates", saved.gates.as_ref(), [t, b, gh])?;
            need("cs", saved.cs.as_ref(), [t + 1, b, h])?;
        }
        CellKind::Gru => {
            need("gates", saved.gates.as_ref(), [t, b, gh])?;
            need("hn", saved.hn.as_ref(), [t, b, h])?;
        }
        _ => {}
    }
    if let Some(dy) = &dy {
        if dy.shape() != [t, b, h] {
            return Err(KernelError::shape(format!(
                "{op}: 'dy' has shape {} but the output has shape {}",
                shape_str(dy.shape()),
                shape_str(&[t, b, h])
            )));
        }
    }
    check_state(op, "dh_n", &dh_n, b, h)?;
    if kind != CellKind::Lstm && dc_n.is_some() {
        return Err(KernelError::param(format!(
            "{op}: 'dc_n' is only used by lstm"
        )));
    }
    check_state(op, "dc_n", &dc_n, b, h)?;
    Ok(seq::backward(
        kind, dims, x, w_ih, w_hh, &lens, saved, dy, dh_n, dc_n, need_dx,
    ))
}

#[cfg(test)]
mod speed;
#[cfg(test)]
mod tests;
