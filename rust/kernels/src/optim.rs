//! Fused optimizer updates: one pass over a parameter, its gradient and its state
//! instead of one NumPy pass (and temporary) per arithmetic operation.
//!
//! SGD in PyTorch's form, per element, with `g` the gradient:
//! `g' = (maximize ? -g : g) + weight_decay * p`; with momentum,
//! `buf = g'` on the first step, else `buf = momentum * buf + (1 - dampening) * g'`, and
//! `d = nesterov ? g' + momentum * buf : buf` (without momentum `d = g'`); `p -= lr * d`.
//! Each product and sum is rounded separately in the element type (no fused multiply-add),
//! in the order NumPy's `buf *= m; buf += g; p -= lr * buf` evaluates, so the result is
//! the same, bit for bit, as the NumPy expressions in `oxinet.optim.SGD`. Elementwise and
//! parallel over fixed chunks: results do not depend on the thread count.

use crate::error::{KernelError, KernelResult};
use crate::gemm::Scalar;
use crate::parallel;
use rayon::prelude::*;

/// Hyperparameters of one SGD step (already in the element type).
#[derive(Debug, Clone, Copy)]
pub struct Sgd<T> {
    pub lr: T,
    pub momentum: T,
    /// `1 - dampening` (computed by the caller, as NumPy would in float64 then rounded),
    /// used only when `dampened`
    pub keep: T,
    pub dampened: bool,
    pub weight_decay: T,
    pub nesterov: bool,
    pub maximize: bool,
}

/// Values per parallel task.
const TASK: usize = 1 << 15;

#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn sgd_chunk<T: Scalar>(h: Sgd<T>, first: bool, p: &mut [T], g: &[T], buf: Option<&mut [T]>) {
    let n = p.len();
    let g = &g[..n];
    let grad = |i: usize, pv: T| {
        let gv = if h.maximize { -g[i] } else { g[i] };
        if h.weight_decay != T::zero() {
            gv + h.weight_decay * pv
        } else {
            gv
        }
    };
    match buf {
        None => {
            for i in 0..n {
                let d = grad(i, p[i]);
                p[i] = p[i] - h.lr * d;
            }
        }
        Some(buf) => {
            let buf = &mut buf[..n];
            for i in 0..n {
                let gv = grad(i, p[i]);
                let b = if first {
                    gv
                } else if h.dampened {
                    buf[i] * h.momentum + h.keep * gv
                } else {
                    buf[i] * h.momentum + gv
                };
                buf[i] = b;
                let d = if h.nesterov { gv + h.momentum * b } else { b };
                p[i] = p[i] - h.lr * d;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn sgd_chunk_v4<T: Scalar>(h: Sgd<T>, first: bool, p: &mut [T], g: &[T], buf: Option<&mut [T]>) {
    sgd_chunk(h, first, p, g, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sgd_chunk_v3<T: Scalar>(h: Sgd<T>, first: bool, p: &mut [T], g: &[T], buf: Option<&mut [T]>) {
    sgd_chunk(h, first, p, g, buf)
}

fn sgd_chunk_dispatch<T: Scalar>(h: Sgd<T>, first: bool, p: &mut [T], g: &[T], buf: Option<&mut [T]>) {
    #[cfg(target_arch = "x86_64")]
    match crate::simd::level() {
        // SAFETY: the CPU supports the features these versions were compiled for (Rust never
        // contracts a * b + c into an FMA, so all versions round identically).
        crate::simd::SimdLevel::Avx512 => return unsafe { sgd_chunk_v4(h, first, p, g, buf) },
        crate::simd::SimdLevel::Avx2Fma => return unsafe { sgd_chunk_v3(h, first, p, g, buf) },
        _ => {}
    }
    sgd_chunk(h, first, p, g, buf)
}

/// One SGD step in place on `param` (and `momentum_buffer`, required when
/// `h.momentum != 0`; `first` says it is uninitialised: the first step stores `g'` in it).
pub fn sgd_step<T: Scalar>(
    param: &mut [T],
    grad: &[T],
    momentum_buffer: Option<&mut [T]>,
    first: bool,
    h: Sgd<T>,
) -> KernelResult<()> {
    let n = param.len();
    if grad.len() != n {
        return Err(KernelError::shape(format!(
            "sgd_step: 'grad' has {} elements but 'param' has {n}",
            grad.len()
        )));
    }
    if let Some(b) = momentum_buffer.as_deref() {
        if b.len() != n {
            return Err(KernelError::shape(format!(
                "sgd_step: 'momentum_buffer' has {} elements but 'param' has {n}",
                b.len()
            )));
        }
    }
    if h.momentum != T::zero() && momentum_buffer.is_none() {
        return Err(KernelError::param(
            "sgd_step: 'momentum_buffer' is required when momentum != 0".to_string(),
        ));
    }
    let buf = if h.momentum != T::zero() { momentum_buffer } else { None };
    parallel::run(n.saturating_mul(4), || match buf {
        Some(buf) => param
            .par_chunks_mut(TASK)
            .zip(grad.par_chunks(TASK).zip(buf.par_chunks_mut(TASK)))
            .for_each(|(p, (g, b))| sgd_chunk_dispatch(h, first, p, g, Some(b))),
        None => param
            .par_chunks_mut(TASK)
            .zip(grad.par_chunks(TASK))
            .for_each(|(p, g)| sgd_chunk_dispatch(h, first, p, g, None)),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    #[test]
    #[allow(clippy::assign_op_pattern, clippy::needless_range_loop)] // the written-out order is the point
    fn sgd_matches_the_reference_formula_bitwise() {
        let n = 70_001; // several chunks and a remainder
        for &(mom, damp, wd, nesterov, maximize) in &[
            (0.9f32, 0.0f32, 0.0f32, false, false),
            (0.9, 0.1, 1e-4, false, true),
            (0.8, 0.0, 5e-4, true, false),
            (0.0, 0.0, 1e-2, false, false),
        ] {
            let keep = (1.0 - damp as f64) as f32;
            let h = Sgd { lr: 0.05, momentum: mom, keep, dampened: damp != 0.0, weight_decay: wd, nesterov, maximize };
            let g = vals(n, 1);
            let mut p = vals(n, 2);
            let mut b = vals(n, 3);
            let (mut rp, mut rb) = (p.clone(), b.clone());
            for first in [true, false] {
                sgd_step(&mut p, &g, Some(&mut b), first, h).unwrap();
                for i in 0..n {
                    let mut gv = if maximize { -g[i] } else { g[i] };
                    if wd != 0.0 {
                        gv = gv + wd * rp[i];
                    }
                    let d = if mom != 0.0 {
                        rb[i] = if first { gv } else if damp != 0.0 { rb[i] * mom + keep * gv } else { rb[i] * mom + gv };
                        if nesterov { gv + mom * rb[i] } else { rb[i] }
                    } else {
                        gv
                    };
                    rp[i] = rp[i] - 0.05 * d;
                }
                assert!(p == rp, "param mom={mom} first={first}");
                if mom != 0.0 {
                    assert!(b == rb, "buffer mom={mom} first={first}");
                }
            }
        }
    }

    #[test]
    fn bad_lengths_are_errors() {
        let h = Sgd { lr: 0.1f64, momentum: 0.9, keep: 1.0, dampened: false, weight_decay: 0.0, nesterov: false, maximize: false };
        let mut p = vec![0.0; 4];
        assert!(sgd_step(&mut p, &[0.0; 3], Some(&mut [0.0; 4]), false, h).unwrap_err().to_string().contains("'grad'"));
        assert!(sgd_step(&mut p, &[0.0; 4], Some(&mut [0.0; 5]), false, h).unwrap_err().to_string().contains("'momentum_buffer'"));
        assert!(sgd_step(&mut p, &[0.0; 4], None, false, h).unwrap_err().to_string().contains("'momentum_buffer'"));
    }
}
