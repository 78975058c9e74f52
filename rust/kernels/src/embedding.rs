//! Embedding lookup and its gradient (a deterministic scatter-add).
//!
//! The backward pass sorts the positions by index with a counting sort (stable: each
//! row's positions stay in input order), then reduces each row of the weight gradient
//! on its own, in parallel over rows. Every row is summed in input order whatever the
//! thread count, so the result is bitwise reproducible, and repeated indices add up.

use crate::error::{KernelError, KernelResult};
use crate::gemm::Scalar;
use crate::parallel;
use ndarray::parallel::prelude::*;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};

fn check_indices(op: &str, indices: &[i64], num: usize) -> KernelResult<()> {
    if let Some((pos, &bad)) = indices.iter().enumerate().find(|(_, &i)| i < 0 || i as u64 >= num as u64) {
        return Err(KernelError::param(format!(
            "{op}: 'input' contains index {bad} (at flat position {pos}), out of range for {num} embeddings"
        )));
    }
    Ok(())
}

/// `out[i] = weight[indices[i]]`; `out` is `(indices.len(), d)`.
pub fn forward<T: Scalar>(indices: &[i64], weight: ArrayView2<'_, T>, mut out: ArrayViewMut2<'_, T>) -> KernelResult<()> {
    let op = "embedding";
    let (num, d) = weight.dim();
    check_indices(op, indices, num)?;
    if out.dim() != (indices.len(), d) {
        return Err(KernelError::shape(format!(
            "{op}: 'out' has shape {:?}, expected ({}, {d})",
            out.shape(),
            indices.len()
        )));
    }
    parallel::run(indices.len() * d, || {
        out.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(indices.par_iter())
            .with_min_len((4096 / d.max(1)).max(1))
            .for_each(|(mut row, &i)| row.assign(&weight.row(i as usize)));
    });
    Ok(())
}

/// `dweight[r] = sum of dout[p] over positions p with indices[p] == r` (in order of p),
/// 0 for rows never referenced and for `padding_idx`. `dweight` is `(num_embeddings, d)`.
pub fn backward<T: Scalar>(
    dout: ArrayView2<'_, T>,
    indices: &[i64],
    padding_idx: Option<usize>,
    mut dweight: ArrayViewMut2<'_, T>,
) -> KernelResult<()> {
    let op = "embedding_backward";
    let (num, d) = dweight.dim();
    check_indices(op, indices, num)?;
    if dout.dim() != (indices.len(), d) {
        return Err(KernelError::shape(format!(
            "{op}: 'grad_output' has shape {:?}, expected ({}, {d})",
            dout.shape(),
            indices.len()
        )));
    }
    // Counting sort of positions by index (stable).
    let mut start = vec![0usize; num + 1];
    for &i in indices {
        start[i as usize + 1] += 1;
    }
    for r in 0..num {
        start[r + 1] += start[r];
    }
    let mut fill = start.clone();
    let mut order = vec![0usize; indices.len()];
    for (p, &i) in indices.iter().enumerate() {
        order[fill[i as usize]] = p;
        fill[i as usize] += 1;
    }
    parallel::run(indices.len() * d + num * d, || {
        dweight
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .with_min_len((4096 / d.max(1)).max(1))
            .for_each(|(r, mut row)| {
                row.fill(T::zero());
                if Some(r) == padding_idx {
                    return;
                }
                for &p in &order[start[r]..start[r + 1]] {
                    row.zip_mut_with(&dout.row(p), |a, &b| *a = *a + b);
                }
            });
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn repeated_indices_accumulate_and_padding_is_zero() {
        let idx = [3i64, 1, 3, 0, 3, 1];
        let dout = Array2::from_shape_fn((6, 4), |(p, j)| (p * 10 + j) as f64);
        let mut dw = Array2::from_elem((5, 4), f64::NAN);
        backward(dout.view(), &idx, Some(1), dw.view_mut()).unwrap();
        for j in 0..4 {
            assert_eq!(dw[[3, j]], dout[[0, j]] + dout[[2, j]] + dout[[4, j]]);
            assert_eq!(dw[[0, j]], dout[[3, j]]);
            assert_eq!(dw[[1, j]], 0.0);
            assert_eq!(dw[[2, j]], 0.0);
            assert_eq!(dw[[4, j]], 0.0);
        }
        let w = Array2::from_shape_fn((5, 4), |(r, j)| (r * 4 + j) as f64);
        let mut out = Array2::zeros((6, 4));
        forward(&idx, w.view(), out.view_mut()).unwrap();
        assert_eq!(out.row(2), w.row(3));
        let e = forward(&[5], w.view(), Array2::zeros((1, 4)).view_mut()).unwrap_err();
        assert!(e.to_string().contains("'input'") && e.to_string().contains('5'), "{e}");
    }
}
