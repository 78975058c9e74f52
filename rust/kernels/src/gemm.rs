//! The one matrix-multiply wrapper every oxinet kernel uses (convolution, recurrent
//! nets and attention included), over the `gemm` crate.
//!
//! BLAS semantics: `c = alpha * a @ b + beta * c`, on strided views (any row/column
//! strides, transposes are just swapped strides). When `beta == 0`, `c` is not read,
//! so garbage or NaN already in `c` does not leak into the result (as in BLAS).

use crate::error::{KernelError, KernelResult};
use crate::parallel;
use gemm::Parallelism;
use ndarray::{ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis};
use rayon::prelude::*;

/// Element types the GEMM (and so every kernel built on it) supports.
pub trait Scalar:
    num_traits::Float + num_traits::FromPrimitive + Default + Send + Sync + std::fmt::Debug + 'static
{
}
impl Scalar for f32 {}
impl Scalar for f64 {}

/// Products smaller than this many multiply-adds (about 35 us on one core) run on the
/// calling thread.
const PARALLEL_MIN_WORK: usize = 1 << 23;

/// How a single GEMM may use threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// Use oxinet's pool when the product is large enough.
    Auto,
    /// Stay on the current thread (for callers already running in parallel).
    Single,
}

fn work(m: usize, n: usize, k: usize) -> usize {
    m.saturating_mul(n).saturating_mul(k)
}

/// `c = alpha * a @ b + beta * c` for `a: (m, k)`, `b: (k, n)`, `c: (m, n)`.
pub fn gemm<T: Scalar>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    c: ArrayViewMut2<'_, T>,
    threads: Threads,
) -> KernelResult<()> {
    let (m, k) = a.dim();
    let (kb, n) = b.dim();
    if k != kb {
        return Err(KernelError::shape(format!(
            "gemm: inner dimensions differ: a is {m}x{k}, b is {kb}x{n}"
        )));
    }
    if c.dim() != (m, n) {
        return Err(KernelError::shape(format!(
            "gemm: c is {}x{} but a @ b is {m}x{n}",
            c.nrows(),
            c.ncols()
        )));
    }
    let w = work(m, n, k);
    match threads {
        Threads::Single => {
            gemm_unchecked(alpha, a, b, beta, c, Parallelism::None);
        }
        Threads::Auto if w < PARALLEL_MIN_WORK => {
            // Waking a second thread costs more than it saves on products this small.
            parallel::with_flushed_denormals(|| {
                gemm_unchecked(alpha, a, b, beta, c, Parallelism::None)
            });
        }
        Threads::Auto if k >= m.max(n) && split_blocks(m.max(n)) > 1 => {
            // Deep products: the gemm crate's own split leaves threads idle here.
            parallel::run(w, move || gemm_split(alpha, a, b, beta, c));
        }
        Threads::Auto => {
            parallel::run(w, move || {
                // Outside oxinet's pool (the inline path) there is exactly one thread.
                let par = if rayon::current_thread_index().is_some() && rayon::current_num_threads() > 1 {
                    Parallelism::Rayon(rayon::current_num_threads())
                } else {
                    Parallelism::None
                };
                gemm_unchecked(alpha, a, b, beta, c, par);
            });
        }
    }
    Ok(())
}

/// How many blocks [`gemm_split`] cuts a dimension of length `len` into: a power of two
/// up to 4, each block at least 128 long. It depends on the shape only, never on the
/// thread count, and the blocks stay longer than 64 so the gemm crate treats each block
/// exactly as it treats the whole product (same K blocking, no GEMV path): the result
/// has the same bits for any number of threads.
fn split_blocks(len: usize) -> usize {
    match len / 128 {
        0 | 1 => 1,
        2 | 3 => 2,
        _ => 4,
    }
}

/// Cut `c` along its longer dimension into [`split_blocks`] blocks and run a
/// single-threaded product per block, in parallel when there are threads to use.
fn gemm_split<T: Scalar>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    mut c: ArrayViewMut2<'_, T>,
) {
    let (m, n) = c.dim();
    let len = m.max(n);
    // Multiples of 16 keep whole AVX-512 register tiles in each block.
    let block = len.div_ceil(split_blocks(len)).div_ceil(16) * 16;
    if m >= n {
        c.axis_chunks_iter_mut(Axis(0), block)
            .into_par_iter()
            .zip(a.axis_chunks_iter(Axis(0), block).into_par_iter())
            .for_each(|(ci, ai)| gemm_unchecked(alpha, ai, b, beta, ci, Parallelism::None));
    } else {
        c.axis_chunks_iter_mut(Axis(1), block)
            .into_par_iter()
            .zip(b.axis_chunks_iter(Axis(1), block).into_par_iter())
            .for_each(|(ci, bi)| gemm_unchecked(alpha, a, bi, beta, ci, Parallelism::None));
    }
}

/// Shapes already checked by the caller.
fn gemm_unchecked<T: Scalar>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    mut c: ArrayViewMut2<'_, T>,
    par: Parallelism,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == T::zero() {
        if beta == T::zero() {
            c.fill(T::zero());
        } else if beta != T::one() {
            c.mapv_inplace(|x| x * beta);
        }
        return;
    }
    if k == 1 {
        if matches!(par, Parallelism::None) || m < 2 {
            outer_product(alpha, a, b, beta, c);
        } else {
            // Large (the caller chose threads): blocks of rows in parallel. Every element
            // is computed on its own, so the split does not change any bit.
            let rows = m.div_ceil(16);
            c.axis_chunks_iter_mut(Axis(0), rows)
                .into_par_iter()
                .zip(a.axis_chunks_iter(Axis(0), rows).into_par_iter())
                .for_each(|(ci, ai)| outer_product(alpha, ai, b, beta, ci));
        }
        return;
    }
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    let read_dst = beta != T::zero();
    // SAFETY: the views guarantee that every (row, col) reached through these strides is
    // in bounds; `c` is a unique mutable view, so it does not alias `a` or `b`.
    // The gemm crate computes dst = alpha' * dst + beta' * lhs @ rhs, hence the swap.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs,
            c_rs,
            read_dst,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            beta,
            alpha,
            false,
            false,
            false,
            par,
        );
    }
}

/// `c = alpha * a @ b + beta * c` for K = 1 (a rank-1 update), row by row: the gemm
/// crate's set-up costs more than the product itself here (a batch of 100 outer products
/// of 30 x 128, as in the backward pass of an attention context). Each
/// element is `(alpha * a[r]) * b[j]` (plus `beta * c`): one rounding when alpha is 1.
fn outer_product<T: Scalar>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    mut c: ArrayViewMut2<'_, T>,
) {
    let brow = b.row(0);
    let brow = brow.as_standard_layout();
    let bs = brow.as_slice().expect("standard layout is contiguous");
    for (mut crow, &ar) in c.rows_mut().into_iter().zip(a.column(0)) {
        let s = alpha * ar;
        match crow.as_slice_mut() {
            Some(cs) if beta == T::zero() => {
                cs.iter_mut().zip(bs).for_each(|(o, &v)| *o = s * v);
            }
            Some(cs) => {
                cs.iter_mut().zip(bs).for_each(|(o, &v)| *o = s * v + beta * *o);
            }
            None if beta == T::zero() => {
                crow.iter_mut().zip(bs).for_each(|(o, &v)| *o = s * v);
            }
            None => {
                crow.iter_mut().zip(bs).for_each(|(o, &v)| *o = s * v + beta * *o);
            }
        }
    }
}

/// Batched `c[i] = alpha * a[i] @ b[i] + beta * c[i]`. A batch stride of 0 in `a` or `b`
/// broadcasts one matrix over the batch. Small products are spread over the batch in
/// parallel; large ones run one after another, each using all threads.
pub fn gemm_batched<T: Scalar>(
    alpha: T,
    a: ArrayView3<'_, T>,
    b: ArrayView3<'_, T>,
    beta: T,
    mut c: ArrayViewMut3<'_, T>,
) -> KernelResult<()> {
    let (batch, m, k) = a.dim();
    let (bb, kb, n) = b.dim();
    if bb != batch || c.len_of(Axis(0)) != batch {
        return Err(KernelError::shape(format!(
            "gemm: batch sizes differ: a has {batch}, b has {bb}, c has {}",
            c.len_of(Axis(0))
        )));
    }
    if kb != k {
        return Err(KernelError::shape(format!(
            "gemm: inner dimensions differ: a is {m}x{k}, b is {kb}x{n}"
        )));
    }
    if c.dim() != (batch, m, n) {
        let (_, cm, cn) = c.dim();
        return Err(KernelError::shape(format!("gemm: c is {cm}x{cn} but a @ b is {m}x{n}")));
    }
    if batch == 1 {
        return gemm(
            alpha,
            a.index_axis(Axis(0), 0),
            b.index_axis(Axis(0), 0),
            beta,
            c.index_axis_mut(Axis(0), 0),
            Threads::Auto,
        );
    }
    let per = work(m, n, k);
    let total = per.saturating_mul(batch);
    if per >= PARALLEL_MIN_WORK {
        for i in 0..batch {
            gemm(
                alpha,
                a.index_axis(Axis(0), i),
                b.index_axis(Axis(0), i),
                beta,
                c.index_axis_mut(Axis(0), i),
                Threads::Auto,
            )?;
        }
        return Ok(());
    }
    parallel::run(total, || {
        c.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(i, ci)| {
            gemm_unchecked(
                alpha,
                a.index_axis(Axis(0), i),
                b.index_axis(Axis(0), i),
                beta,
                ci,
                Parallelism::None,
            );
        });
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array2, Array3};

    fn naive(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
        let (m, k) = a.dim();
        let n = b.ncols();
        Array2::from_shape_fn((m, n), |(i, j)| (0..k).map(|p| a[[i, p]] * b[[p, j]]).sum())
    }

    fn filled(m: usize, n: usize, seed: u64) -> Array2<f64> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        Array2::from_shape_fn((m, n), |_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        })
    }

    fn assert_close(x: &Array2<f64>, y: &Array2<f64>, tol: f64) {
        assert_eq!(x.dim(), y.dim());
        for (p, q) in x.iter().zip(y.iter()) {
            assert!((p - q).abs() <= tol * (1.0 + q.abs()), "{p} vs {q}");
        }
    }

    #[test]
    fn matches_naive_over_odd_shapes() {
        for &(m, n, k) in &[(1, 1, 1), (7, 13, 5), (64, 3, 129), (130, 67, 1), (3, 200, 97), (97, 97, 300)] {
            let a = filled(m, k, 1);
            let b = filled(k, n, 2);
            let mut c = Array2::zeros((m, n));
            gemm(1.0, a.view(), b.view(), 0.0, c.view_mut(), Threads::Auto).unwrap();
            assert_close(&c, &naive(&a, &b), 1e-12);
        }
    }

    #[test]
    fn alpha_beta_and_transposed_views() {
        let a = filled(40, 30, 3);
        let b = filled(50, 40, 4);
        let c0 = filled(30, 50, 5);
        let mut c = c0.clone();
        // c = 2 a^T b^T - 0.5 c
        gemm(2.0, a.t(), b.t(), -0.5, c.view_mut(), Threads::Auto).unwrap();
        let expect = naive(&a.t().to_owned(), &b.t().to_owned()) * 2.0 - &c0 * 0.5;
        assert_close(&c, &expect, 1e-12);
    }

    #[test]
    fn beta_zero_ignores_nan_in_c_and_k_zero_scales() {
        let a = filled(4, 3, 6);
        let b = filled(3, 5, 7);
        let mut c = Array2::from_elem((4, 5), f64::NAN);
        gemm(1.0, a.view(), b.view(), 0.0, c.view_mut(), Threads::Single).unwrap();
        assert!(c.iter().all(|x| x.is_finite()));
        let a0 = Array2::<f64>::zeros((4, 0));
        let b0 = Array2::<f64>::zeros((0, 5));
        let mut c = Array2::from_elem((4, 5), 2.0);
        gemm(1.0, a0.view(), b0.view(), 3.0, c.view_mut(), Threads::Auto).unwrap();
        assert!(c.iter().all(|&x| x == 6.0));
    }

    #[test]
    fn strided_slices() {
        let big = filled(60, 80, 8);
        let a = big.slice(s![..;2, 1..;3]); // 30 x 27
        let b = filled(27, 11, 9);
        let mut c = Array2::zeros((30, 11));
        gemm(1.0, a, b.view(), 0.0, c.view_mut(), Threads::Auto).unwrap();
        assert_close(&c, &naive(&a.to_owned(), &b), 1e-12);
    }

    #[test]
    fn shape_errors_name_the_shapes() {
        let a = filled(3, 4, 1);
        let b = filled(5, 2, 1);
        let mut c = Array2::zeros((3, 2));
        let e = gemm(1.0, a.view(), b.view(), 0.0, c.view_mut(), Threads::Auto).unwrap_err();
        assert!(e.to_string().contains("3x4") && e.to_string().contains("5x2"), "{e}");
    }

    #[test]
    fn batched_with_broadcast_rhs() {
        let a = Array3::from_shape_fn((6, 9, 7), |(i, j, k)| (i + 2 * j) as f64 - 0.3 * k as f64);
        let b2 = filled(7, 5, 10);
        let b = b2.broadcast((6, 7, 5)).unwrap();
        let mut c = Array3::zeros((6, 9, 5));
        gemm_batched(1.0, a.view(), b, 0.0, c.view_mut()).unwrap();
        for i in 0..6 {
            let expect = naive(&a.index_axis(Axis(0), i).to_owned(), &b2);
            assert_close(&c.index_axis(Axis(0), i).to_owned(), &expect, 1e-12);
        }
    }

    #[test]
    fn split_blocks_stay_long() {
        for len in 1..3000 {
            let nb = split_blocks(len);
            if nb > 1 {
                let block = len.div_ceil(nb).div_ceil(16) * 16;
                let last = len - (len.div_ceil(block) - 1) * block;
                assert!(block > 64 && last > 64, "len {len}: block {block}, last {last}");
            }
        }
    }

    #[test]
    fn split_and_unsplit_products_agree_bitwise() {
        for &(m, n, k) in &[(300, 40, 1000), (40, 700, 900), (257, 257, 2304)] {
            let a = filled(m, k, 13).mapv(|x| x as f32);
            let b = filled(k, n, 14).mapv(|x| x as f32);
            let mut whole = Array2::<f32>::zeros((m, n));
            let mut split = Array2::<f32>::zeros((m, n));
            gemm_unchecked(1.0, a.view(), b.view(), 0.0, whole.view_mut(), Parallelism::None);
            gemm_split(1.0, a.view(), b.view(), 0.0, split.view_mut());
            assert_eq!(whole, split, "{m}x{n}x{k}");
        }
    }

    #[test]
    fn thread_count_does_not_change_bits() {
        let a = filled(300, 257, 11).mapv(|x| x as f32);
        let b = filled(257, 190, 12).mapv(|x| x as f32);
        let mut c1 = Array2::<f32>::zeros((300, 190));
        let mut c2 = Array2::<f32>::zeros((300, 190));
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        one.install(|| gemm_unchecked(1.0, a.view(), b.view(), 0.0, c1.view_mut(), Parallelism::Rayon(1)));
        let two = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        two.install(|| gemm_unchecked(1.0, a.view(), b.view(), 0.0, c2.view_mut(), Parallelism::Rayon(3)));
        assert_eq!(c1, c2);
    }

    #[test]
    fn outer_products_k1_match_naive() {
        // alpha/beta, NaN in c with beta = 0, a non-contiguous c, batched, and a product
        // large enough to split over threads (bitwise equal to the single-thread one).
        let a = filled(37, 1, 11);
        let b = filled(1, 45, 12);
        let c0 = filled(37, 45, 13);
        for &(alpha, beta) in &[(1.0, 0.0), (2.0, 0.0), (1.0, 1.0), (-0.5, 0.25)] {
            let mut c = if beta == 0.0 { Array2::from_elem((37, 45), f64::NAN) } else { c0.clone() };
            gemm(alpha, a.view(), b.view(), beta, c.view_mut(), Threads::Auto).unwrap();
            let expect = naive(&a, &b) * alpha + &c0 * beta;
            assert_close(&c, &expect, 1e-15);
            let mut ct = Array2::from_elem((45, 37), f64::NAN);
            if beta != 0.0 {
                ct.assign(&c0.t());
            }
            gemm(alpha, a.view(), b.view(), beta, ct.view_mut().reversed_axes(), Threads::Single).unwrap();
            assert_close(&ct.t().to_owned(), &expect, 1e-15);
        }
        let a3 = Array3::from_shape_fn((5, 7, 1), |(i, j, _)| i as f64 - 0.25 * j as f64);
        let b3 = Array3::from_shape_fn((5, 1, 9), |(i, _, k)| 0.5 * k as f64 - i as f64);
        let mut c3 = Array3::zeros((5, 7, 9));
        gemm_batched(1.0, a3.view(), b3.view(), 0.0, c3.view_mut()).unwrap();
        for i in 0..5 {
            let ai = a3.index_axis(Axis(0), i).to_owned();
            let bi = b3.index_axis(Axis(0), i).to_owned();
            assert_eq!(c3.index_axis(Axis(0), i), naive(&ai, &bi));
        }
        let (m, n) = (2900, 2900);
        let a = filled(m, 1, 14);
        let b = filled(1, n, 15);
        let mut c1 = Array2::zeros((m, n));
        let mut c2 = Array2::zeros((m, n));
        gemm(1.0, a.view(), b.view(), 0.0, c1.view_mut(), Threads::Auto).unwrap();
        gemm(1.0, a.view(), b.view(), 0.0, c2.view_mut(), Threads::Single).unwrap();
        assert_eq!(c1, c2);
        assert_eq!(c1[[m - 1, n - 1]], a[[m - 1, 0]] * b[[0, n - 1]]);
    }
}
