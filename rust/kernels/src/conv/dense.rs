//! Convolutions over planes smaller than the kernel, as one dense product over the batch.
//!
//! A 3x3 kernel over a 2x2 or 1x1 plane (ResNet's last stages on 32x32 images) reads
//! mostly padding: im2col spends 9 multiply-adds per input channel and output position
//! where 4 (2x2) or 1 (1x1) are real. Here the weights are unfolded instead of the
//! input, into the matrix that maps a whole input image (C_in * L_in values) to a whole
//! output image (C_out * L_out values):
//!
//! `T[(o, q), (c, r)] = w[o, c, tap(q, r)]`, where output position `q` reads input
//! position `r` through the kernel tap `tap(q, r)`.
//!
//! With `x` and `y` viewed as `(N, C * L)` matrices (their NCHW layout as it is):
//! `y = x @ T^T + b`, `dx = dy @ T`, and `dT = dy^T @ x`, which is folded back onto the
//! taps for `dw`. `T` is the only unfolding built (it reads `w` in order). That is `C_out * C_in * L_out * L_in` multiply-adds per image
//! against im2col's `C_out * C_in * taps * L_out`.
//!
//! The path is taken only when every output position reads every input position (so
//! `T` has no structural zeros: a NaN or infinity in `x` reaches exactly the outputs a
//! direct sum would reach) and `L_in` is at most half the taps. Products with padding
//! are never formed, so the caller sends non-finite weights (forward, input gradient) or
//! output gradients (weight gradient) to im2col, whose `0 * inf` gives NaN as NumPy's
//! zero-padded sum does. Each product is one GEMM, whose result does not depend on the
//! thread count. `OXINET_DENSE_CONV=0` turns the path off.

use super::{all_finite, Geom};
use crate::gemm::{gemm, Scalar, Threads};
use crate::parallel;
use crate::scratch::Scratch;
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

/// Largest unfolded weight matrix (entries) built; C512 over 2x2 planes is 1 << 22.
const MAX_ENTRIES: usize = 1 << 22;

fn enabled() -> bool {
    use std::sync::OnceLock;
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("OXINET_DENSE_CONV").map_or(true, |v| v.trim() != "0"))
}

/// One connection of the unfolded matrix: output position `q` reads input position `r`
/// through kernel tap `tap` (flat indices).
#[derive(Clone, Copy)]
struct Link {
    q: usize,
    r: usize,
    tap: usize,
}

/// Every (output position, tap) that lands inside the input, in a fixed order.
fn links(g: &Geom) -> Vec<Link> {
    let [od, oh, ow] = g.output;
    let [kd, kh, kw] = g.kernel;
    let [id, ih, iw] = g.input;
    let p = &g.p;
    let at = |o: usize, k: usize, a: usize, len: usize| -> Option<usize> {
        let pos = (o * p.stride[a] + k * p.dilation[a]).checked_sub(p.pad_lo[a])?;
        (pos < len).then_some(pos)
    };
    let mut out = Vec::new();
    for z in 0..od {
        for y in 0..oh {
            for x in 0..ow {
                let q = (z * oh + y) * ow + x;
                for a in 0..kd {
                    for b in 0..kh {
                        for c in 0..kw {
                            if let (Some(rz), Some(ry), Some(rx)) = (at(z, a, 0, id), at(y, b, 1, ih), at(x, c, 2, iw)) {
                                out.push(Link { q, r: (rz * ih + ry) * iw + rx, tap: (a * kh + b) * kw + c });
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// Whether this convolution runs through the dense path.
pub(crate) fn applies(g: &Geom) -> bool {
    let (li, lo) = (g.in_plane(), g.l());
    if !enabled() || g.groups != 1 || li == 0 || lo == 0 || 2 * li > g.kvol() {
        return false;
    }
    let entries = (g.c_in * li).saturating_mul(g.c_out * lo);
    // links never repeat a (q, r) pair, so lo * li of them means every pair is connected
    entries <= MAX_ENTRIES && links(g).len() == lo * li
}

/// The tap joining output position `q` to input position `r`, at `q * L_in + r` (every
/// pair has one: [`applies`] demands full connection).
fn tap_table(g: &Geom) -> Vec<usize> {
    let li = g.in_plane();
    let mut table = vec![0; g.l() * li];
    for l in links(g) {
        table[l.q * li + l.r] = l.tap;
    }
    table
}

/// `T` into `t`, shaped (C_out * L_out, C_in * L_in), row-major; every entry written.
/// Returns whether every weight is finite (checked while each output channel's weights
/// are in cache; the caller discards `t` otherwise).
fn unfold<T: Scalar>(g: &Geom, w: &[T], table: &[usize], t: &mut [T]) -> bool {
    let (li, lo, taps) = (g.in_plane(), g.l(), g.kvol());
    let cols = g.c_in * li;
    parallel::run(t.len(), || {
        t.par_chunks_mut(lo * cols)
            .enumerate()
            .map(|(o, rows)| {
                let wo = &w[o * g.c_in * taps..(o + 1) * g.c_in * taps];
                if !all_finite(wo) {
                    return false;
                }
                for (row, tq) in rows.chunks_exact_mut(cols).zip(table.chunks_exact(li)) {
                    for (dst, wc) in row.chunks_exact_mut(li).zip(wo.chunks_exact(taps)) {
                        for (d, &tap) in dst.iter_mut().zip(tq) {
                            *d = wc[tap];
                        }
                    }
                }
                true
            })
            .reduce(|| true, |a, b| a && b)
    })
}

fn gemm_ok(r: crate::error::KernelResult<()>) {
    r.expect("dense conv: internal GEMM shapes are consistent");
}

/// `dst (cols, rows) = src (rows, cols)^T`, both row-major.
fn transpose<T: Scalar>(src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    crate::layout::swap_leading_axes(src, (rows, cols, 1), dst).expect("dense conv: transposed shapes are consistent");
}

/// `out (N, C_out * L_out) = (T @ x^T)^T + bias`; false (and `out` unwritten) when a
/// weight is not finite: the product runs with the unfolded
/// weights as its row-major left operand and `x^T` copied out (small: one value per
/// input element), a layout the GEMM reads in place; the weights' unfolding then reads
/// `w` in order.
pub(crate) fn forward<T: Scalar>(g: &Geom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) -> bool {
    let (li, lo) = (g.in_plane(), g.l());
    let (rows, cols) = (g.c_out * lo, g.c_in * li);
    let mut t = Scratch::<T>::take(rows * cols);
    if !unfold(g, w, &tap_table(g), t.as_mut_slice()) {
        return false;
    }
    let mut xt = Scratch::<T>::take(cols * g.n);
    transpose(x, g.n, cols, xt.as_mut_slice());
    let mut yt = Scratch::<T>::take(rows * g.n);
    {
        let tv = ArrayView2::from_shape((rows, cols), t.as_slice()).expect("unfolded shape");
        let xv = ArrayView2::from_shape((cols, g.n), xt.as_slice()).expect("input shape");
        let yv = ArrayViewMut2::from_shape((rows, g.n), yt.as_mut_slice()).expect("output shape");
        gemm_ok(gemm(T::one(), tv, xv, T::zero(), yv, Threads::Auto));
    }
    transpose(yt.as_slice(), rows, g.n, out);
    if let Some(b) = bias {
        for row in out.chunks_mut(rows) {
            for (plane, &bo) in row.chunks_mut(lo).zip(b) {
                plane.iter_mut().for_each(|v| *v = *v + bo);
            }
        }
    }
    true
}

/// `dx (N, C_in * L_in) = dy (N, C_out * L_out) @ T`; false (and `dx` unwritten) when a
/// weight is not finite.
pub(crate) fn input_grad<T: Scalar>(g: &Geom, dy: &[T], w: &[T], dx: &mut [T]) -> bool {
    let (li, lo) = (g.in_plane(), g.l());
    let mut t = Scratch::<T>::take(g.c_out * lo * g.c_in * li);
    if !unfold(g, w, &tap_table(g), t.as_mut_slice()) {
        return false;
    }
    let dyv = ArrayView2::from_shape((g.n, g.c_out * lo), dy).expect("gradient shape");
    let tv = ArrayView2::from_shape((g.c_out * lo, g.c_in * li), t.as_slice()).expect("unfolded shape");
    let dxv = ArrayViewMut2::from_shape((g.n, g.c_in * li), dx).expect("input shape");
    gemm_ok(gemm(T::one(), dyv, tv, T::zero(), dxv, Threads::Auto));
    true
}

/// `dw`: `dT = dy^T @ x`, (C_out * L_out, C_in * L_in), folded onto the taps (the
/// links of each tap summed in a fixed order). `dw` must be zero on entry.
pub(crate) fn weight_grad<T: Scalar>(g: &Geom, dy: &[T], x: &[T], dw: &mut [T]) {
    let (li, lo, taps) = (g.in_plane(), g.l(), g.kvol());
    let (rows, cols) = (g.c_out * lo, g.c_in * li);
    let mut dt = Scratch::<T>::take(rows * cols);
    {
        let dyt = ArrayView2::from_shape((g.n, rows), dy).expect("gradient shape").reversed_axes();
        let xv = ArrayView2::from_shape((g.n, cols), x).expect("input shape");
        let dv = ArrayViewMut2::from_shape((rows, cols), dt.as_mut_slice()).expect("unfolded shape");
        gemm_ok(gemm(T::one(), dyt, xv, T::zero(), dv, Threads::Auto));
    }
    let dt = dt.as_slice();
    let table = tap_table(g);
    parallel::run(dw.len() * li, || {
        dw.par_chunks_mut(g.c_in * taps).enumerate().for_each(|(o, dwo)| {
            let block = &dt[o * lo * cols..(o + 1) * lo * cols];
            // q outermost: each tap's sum runs over q in order, the same for any threads
            for (row, tq) in block.chunks_exact(cols).zip(table.chunks_exact(li)) {
                for (src, dwc) in row.chunks_exact(li).zip(dwo.chunks_exact_mut(taps)) {
                    for (&v, &tap) in src.iter().zip(tq) {
                        dwc[tap] = dwc[tap] + v;
                    }
                }
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::ConvParams;

    fn geom(x: [usize; 5], w: [usize; 5], p: ConvParams) -> Geom {
        Geom::new("test", x, w, p).unwrap()
    }

    /// Direct sum over the taps that land in the input, float64.
    fn naive(g: &Geom, x: &[f64], w: &[f64]) -> Vec<f64> {
        let (li, lo, taps) = (g.in_plane(), g.l(), g.kvol());
        let mut y = vec![0.0; g.n * g.c_out * lo];
        for n in 0..g.n {
            for o in 0..g.c_out {
                for c in 0..g.c_in {
                    for l in links(g) {
                        y[(n * g.c_out + o) * lo + l.q] += w[(o * g.c_in + c) * taps + l.tap] * x[(n * g.c_in + c) * li + l.r];
                    }
                }
            }
        }
        y
    }

    fn values(len: usize, seed: u64) -> Vec<f64> {
        (0..len).map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f64) / 500.0 - 1.0).collect()
    }

    #[test]
    fn applies_only_to_fully_connected_small_planes() {
        let p1 = ConvParams::planar([1, 1], [1, 1], [1, 1], [1, 1], 1);
        assert!(applies(&geom([4, 8, 1, 2, 2], [8, 8, 1, 3, 3], p1)));
        assert!(applies(&geom([4, 8, 1, 1, 1], [8, 8, 1, 3, 3], p1)));
        // 4x4: more input positions than half the taps
        assert!(!applies(&geom([4, 8, 1, 4, 4], [8, 8, 1, 3, 3], p1)));
        // 3x1 plane with a 3x3 kernel, padding 1: output row 0 never reads input row 2
        assert!(!applies(&geom([4, 8, 1, 3, 1], [8, 8, 1, 3, 3], p1)));
        let grouped = ConvParams::planar([1, 1], [1, 1], [1, 1], [1, 1], 2);
        assert!(!applies(&geom([4, 8, 1, 2, 2], [8, 4, 1, 3, 3], grouped)));
        let s2 = ConvParams::planar([2, 2], [1, 1], [1, 1], [1, 1], 1);
        assert!(applies(&geom([4, 8, 1, 2, 2], [16, 8, 1, 3, 3], s2)));
    }

    #[test]
    fn forward_and_gradients_match_the_direct_sum() {
        for (x, w, p) in [
            ([3, 5, 1, 2, 2], [7, 5, 1, 3, 3], ConvParams::planar([1, 1], [1, 1], [1, 1], [1, 1], 1)),
            ([2, 4, 1, 1, 1], [6, 4, 1, 3, 3], ConvParams::planar([1, 1], [1, 1], [1, 1], [1, 1], 1)),
            ([3, 5, 1, 2, 2], [4, 5, 1, 3, 3], ConvParams::planar([2, 2], [1, 1], [1, 1], [1, 1], 1)),
            ([2, 3, 1, 1, 2], [5, 3, 1, 1, 5], ConvParams::planar([1, 1], [1, 1], [0, 2], [0, 2], 1)),
        ] {
            let g = geom(x, w, p);
            assert!(applies(&g), "{x:?} {w:?}");
            // parked scratch buffers hold stale values: every entry read must be written
            for _ in 0..4 {
                Scratch::<f64>::take(1 << 12).as_mut_slice().fill(f64::NAN);
            }
            let xs = values(x.iter().product(), 1);
            let ws = values(w.iter().product(), 2);
            let bias = values(g.c_out, 3);
            let mut y = vec![f64::NAN; g.n * g.c_out * g.l()];
            assert!(forward(&g, &xs, &ws, Some(&bias), &mut y));
            let want = naive(&g, &xs, &ws);
            for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                let o = (i / g.l()) % g.c_out;
                assert!((a - b - bias[o]).abs() < 1e-12, "forward {i}: {a} vs {}", b + bias[o]);
            }
            // adjoint identities against the direct sum: <dy, conv(x, w)> is linear in x and in w
            let dy = values(y.len(), 4);
            let mut dx = vec![f64::NAN; xs.len()];
            assert!(input_grad(&g, &dy, &ws, &mut dx));
            let mut dw = vec![0.0; ws.len()];
            weight_grad(&g, &dy, &xs, &mut dw);
            let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
            for i in 0..xs.len() {
                let mut e = vec![0.0; xs.len()];
                e[i] = 1.0;
                assert!((dot(&dy, &naive(&g, &e, &ws)) - dx[i]).abs() < 1e-12, "dx {i}");
            }
            for i in 0..ws.len() {
                let mut e = vec![0.0; ws.len()];
                e[i] = 1.0;
                assert!((dot(&dy, &naive(&g, &xs, &e)) - dw[i]).abs() < 1e-12, "dw {i}");
            }
        }
    }
}
