//! The GEMM paths: forward, input gradient and weight gradient.

use super::depthwise;
use super::im2col::{col2im_tile, col2im_tile_par, im2col_tile, im2col_tile_par, SendPtr};
use super::{check_bias, shape5, ConvParams, Geom};
use crate::error::{KernelError, KernelResult};
use crate::gemm::{gemm, Scalar, Threads};
use crate::parallel;
use ndarray::{s, Array2, Array5, ArrayView1, ArrayView2, ArrayView5, ArrayViewMut2, ShapeBuilder};
use rayon::prelude::*;

/// Bytes of column buffer per tile: a tile of the column matrix stays in L2 between
/// im2col writing it and the GEMM reading it.
const TILE_BYTES: usize = 768 * 1024;
/// Fewest output positions per tile (narrower GEMMs waste time re-packing the weights).
const MIN_TILE: usize = 192;

/// Output positions per tile, a function of the shape only (so results never depend on
/// the thread count).
pub(crate) fn tile_len(g: &Geom, elem: usize) -> usize {
    let l = g.l().max(1);
    if g.pointwise() {
        return l;
    }
    let want = (TILE_BYTES / elem / g.k_rows().max(1)).max(MIN_TILE);
    if want >= l {
        return l;
    }
    let tiles = l.div_ceil(want);
    l.div_ceil(tiles)
}

/// Whether to run independent tasks in parallel with single-threaded GEMMs (true), or
/// one after another with multi-threaded GEMMs (false). Either gives the same bits.
fn spread(tasks: usize) -> bool {
    let t = parallel::num_threads();
    t > 1 && tasks >= 2 * t
}

fn gemm_ok(r: KernelResult<()>) {
    r.expect("conv: internal GEMM shapes are consistent");
}

/// Forward convolution of `x (N, C_in, D, H, W)` with `w (C_out, C_in / groups, kd, kh, kw)`
/// plus an optional bias `(C_out,)`. Returns `(N, C_out, OD, OH, OW)`.
pub fn conv_forward<T: Scalar>(
    x: ArrayView5<'_, T>,
    w: ArrayView5<'_, T>,
    bias: Option<ArrayView1<'_, T>>,
    p: ConvParams,
) -> KernelResult<Array5<T>> {
    let g = Geom::new("conv", shape5(&x), shape5(&w), p)?;
    check_bias("conv", bias.as_ref(), g.c_out)?;
    let [od, oh, ow] = g.output;
    let mut out = Array5::<T>::zeros([g.n, g.c_out, od, oh, ow]);
    if out.is_empty() {
        return Ok(out);
    }
    let x = x.as_standard_layout();
    let w = w.as_standard_layout();
    let bias = bias.map(|b| b.to_vec());
    let xs = x.as_slice().expect("standard layout");
    let ws = w.as_slice().expect("standard layout");
    if g.depthwise() {
        depthwise::forward(&g, xs, ws, bias.as_deref(), out.as_slice_mut().unwrap());
        return Ok(out);
    }
    let (l, k) = (g.l(), g.k_rows());
    let lt = tile_len(&g, std::mem::size_of::<T>());
    let ntiles = l.div_ceil(lt);
    let tasks = g.n * g.groups * ntiles;
    let w2 = ArrayView2::from_shape((g.c_out, k), ws).expect("weight shape");
    let plane = g.in_plane();
    let optr = SendPtr(out.as_mut_ptr());
    let body = |t: usize, buf: &mut Vec<T>, threads: Threads| {
        let tile = t % ntiles;
        let gi = (t / ntiles) % g.groups;
        let ni = t / (ntiles * g.groups);
        let (l0, l1) = (tile * lt, ((tile + 1) * lt).min(l));
        let xg = &xs[(ni * g.c_in + gi * g.cg) * plane..(ni * g.c_in + (gi + 1) * g.cg) * plane];
        let col = if g.pointwise() {
            ArrayView2::from_shape((g.cg, l), xg).expect("image").slice_move(s![.., l0..l1])
        } else {
            let buf = &mut buf[..k * (l1 - l0)];
            if threads == Threads::Auto {
                im2col_tile_par(&g, xg, l0, l1, buf, l1 - l0);
            } else {
                im2col_tile(&g, xg, l0, l1, buf, l1 - l0);
            }
            ArrayView2::from_shape((k, l1 - l0), &*buf).expect("tile")
        };
        let wg = w2.slice(s![gi * g.og..(gi + 1) * g.og, ..]);
        let row0 = ni * g.c_out + gi * g.og;
        // SAFETY: task (ni, gi, tile) alone writes rows row0..row0+og, columns l0..l1.
        let mut o = unsafe {
            ArrayViewMut2::from_shape_ptr((g.og, l1 - l0).strides((l, 1)), optr.get().add(row0 * l + l0))
        };
        gemm_ok(gemm(T::one(), wg, col, T::zero(), o.view_mut(), threads));
        if let Some(b) = bias.as_deref() {
            for (r, mut row) in o.outer_iter_mut().enumerate() {
                let bv = b[gi * g.og + r];
                row.mapv_inplace(|v| v + bv);
            }
        }
    };
    let buf_len = if g.pointwise() { 0 } else { k * lt };
    if spread(tasks) {
        parallel::run(g.macs(), || {
            (0..tasks)
                .into_par_iter()
                .for_each_init(|| vec![T::zero(); buf_len], |buf, t| body(t, buf, Threads::Single));
        });
    } else {
        let mut buf = vec![T::zero(); buf_len];
        for t in 0..tasks {
            body(t, &mut buf, Threads::Auto);
        }
    }
    Ok(out)
}

fn check_dy(op: &str, dy: [usize; 5], n: usize, c_out: usize) -> KernelResult<()> {
    if dy[0] != n || dy[1] != c_out {
        return Err(KernelError::shape(format!(
            "{op}: 'grad_output' has shape {dy:?}, expected batch {n} and {c_out} channels"
        )));
    }
    Ok(())
}

/// Input gradient: `dx (input_shape)` from `dy (N, C_out, OD, OH, OW)` and the weight.
/// The output size of `dy` may be smaller than the formula gives for `input_shape`
/// (absent trailing positions contribute nothing; transposed convolutions use this).
pub fn conv_input_grad<T: Scalar>(
    dy: ArrayView5<'_, T>,
    w: ArrayView5<'_, T>,
    input_shape: [usize; 5],
    p: ConvParams,
) -> KernelResult<Array5<T>> {
    let op = "conv_backward";
    let dys = shape5(&dy);
    let g = Geom::with_output(op, input_shape, shape5(&w), [dys[2], dys[3], dys[4]], p)?;
    check_dy(op, dys, g.n, g.c_out)?;
    let mut dx = Array5::<T>::zeros(input_shape);
    if dx.is_empty() {
        return Ok(dx);
    }
    let dy = dy.as_standard_layout();
    let w = w.as_standard_layout();
    let dys_ = dy.as_slice().expect("standard layout");
    let ws = w.as_slice().expect("standard layout");
    if g.depthwise() {
        depthwise::input_grad(&g, dys_, ws, dx.as_slice_mut().unwrap());
        return Ok(dx);
    }
    let (l, k) = (g.l(), g.k_rows());
    if l == 0 || g.c_out == 0 {
        return Ok(dx);
    }
    let lt = tile_len(&g, std::mem::size_of::<T>());
    let ntiles = l.div_ceil(lt);
    let tasks = g.n * g.groups;
    let w2 = ArrayView2::from_shape((g.c_out, k), ws).expect("weight shape");
    let plane = g.in_plane();
    let xptr = SendPtr(dx.as_mut_ptr());
    let body = |t: usize, buf: &mut Vec<T>, threads: Threads| {
        let gi = t % g.groups;
        let ni = t / g.groups;
        let x0 = (ni * g.c_in + gi * g.cg) * plane;
        // SAFETY: task (ni, gi) alone writes this group's channels of image ni.
        let dxg = unsafe { std::slice::from_raw_parts_mut(xptr.get().add(x0), g.cg * plane) };
        let wgt = w2.slice(s![gi * g.og..(gi + 1) * g.og, ..]).reversed_axes();
        let dyi = ArrayView2::from_shape((g.c_out, l), &dys_[ni * g.c_out * l..(ni + 1) * g.c_out * l])
            .expect("grad shape");
        for tile in 0..ntiles {
            let (l0, l1) = (tile * lt, ((tile + 1) * lt).min(l));
            let dyt = dyi.slice(s![gi * g.og..(gi + 1) * g.og, l0..l1]);
            if g.pointwise() {
                let dst = ArrayViewMut2::from_shape((g.cg, l), &mut dxg[..]).expect("image");
                let dst = dst.slice_move(s![.., l0..l1]);
                gemm_ok(gemm(T::one(), wgt, dyt, T::zero(), dst, threads));
            } else {
                let buf = &mut buf[..k * (l1 - l0)];
                let dcol = ArrayViewMut2::from_shape((k, l1 - l0), &mut buf[..]).expect("tile");
                gemm_ok(gemm(T::one(), wgt, dyt, T::zero(), dcol, threads));
                if threads == Threads::Auto {
                    col2im_tile_par(&g, buf, l1 - l0, l0, l1, dxg);
                } else {
                    col2im_tile(&g, buf, l1 - l0, l0, l1, dxg);
                }
            }
        }
    };
    let buf_len = if g.pointwise() { 0 } else { k * lt };
    if spread(tasks) {
        parallel::run(g.macs(), || {
            (0..tasks)
                .into_par_iter()
                .for_each_init(|| vec![T::zero(); buf_len], |buf, t| body(t, buf, Threads::Single));
        });
    } else {
        let mut buf = vec![T::zero(); buf_len];
        for t in 0..tasks {
            body(t, &mut buf, Threads::Auto);
        }
    }
    Ok(dx)
}

/// Largest per-chunk weight-gradient buffer (elements) for which the batch is split
/// into independent chunks summed at the end; larger weights accumulate image by image
/// with multi-threaded GEMMs.
const CHUNK_MAX_WEIGHT: usize = 1 << 18;
const MAX_CHUNKS: usize = 8;

/// Weight gradient `dw (C_out, C_in / groups, kd, kh, kw)` from `dy` and the input `x`.
/// The batch is split into a number of chunks fixed by the shapes; each chunk's partial
/// sum is added in chunk order, so the result does not depend on the thread count.
pub fn conv_weight_grad<T: Scalar>(
    dy: ArrayView5<'_, T>,
    x: ArrayView5<'_, T>,
    kernel: [usize; 3],
    p: ConvParams,
) -> KernelResult<Array5<T>> {
    let op = "conv_backward";
    let dys = shape5(&dy);
    let xs = shape5(&x);
    if p.groups == 0 || xs[1] % p.groups != 0 || dys[1] % p.groups != 0 {
        return Err(KernelError::param(format!(
            "{op}: 'groups'={} must divide both the input channels ({}) and the output channels ({})",
            p.groups, xs[1], dys[1]
        )));
    }
    let wshape = [dys[1], xs[1] / p.groups, kernel[0], kernel[1], kernel[2]];
    let g = Geom::with_output(op, xs, wshape, [dys[2], dys[3], dys[4]], p)?;
    check_dy(op, dys, g.n, g.c_out)?;
    let mut dw = Array5::<T>::zeros(wshape);
    if dw.is_empty() || g.n == 0 || g.l() == 0 {
        return Ok(dw);
    }
    let dy = dy.as_standard_layout();
    let x = x.as_standard_layout();
    let dys_ = dy.as_slice().expect("standard layout");
    let xs_ = x.as_slice().expect("standard layout");
    if g.depthwise() {
        depthwise::weight_grad(&g, dys_, xs_, dw.as_slice_mut().unwrap());
        return Ok(dw);
    }
    let (l, k) = (g.l(), g.k_rows());
    let lt = tile_len(&g, std::mem::size_of::<T>());
    let ntiles = l.div_ceil(lt);
    let plane = g.in_plane();
    // Accumulate the images `n0..n1` into `acc (C_out, K)`.
    let accumulate = |n0: usize, n1: usize, acc: &mut Array2<T>, buf: &mut Vec<T>, threads: Threads| {
        for ni in n0..n1 {
            let dyi = ArrayView2::from_shape((g.c_out, l), &dys_[ni * g.c_out * l..(ni + 1) * g.c_out * l])
                .expect("grad shape");
            for gi in 0..g.groups {
                let xg = &xs_[(ni * g.c_in + gi * g.cg) * plane..(ni * g.c_in + (gi + 1) * g.cg) * plane];
                for tile in 0..ntiles {
                    let (l0, l1) = (tile * lt, ((tile + 1) * lt).min(l));
                    let col = if g.pointwise() {
                        ArrayView2::from_shape((g.cg, l), xg).expect("image").slice_move(s![.., l0..l1])
                    } else {
                        let buf = &mut buf[..k * (l1 - l0)];
                        if threads == Threads::Auto {
                            im2col_tile_par(&g, xg, l0, l1, buf, l1 - l0);
                        } else {
                            im2col_tile(&g, xg, l0, l1, buf, l1 - l0);
                        }
                        ArrayView2::from_shape((k, l1 - l0), &*buf).expect("tile")
                    };
                    let dyt = dyi.slice(s![gi * g.og..(gi + 1) * g.og, l0..l1]);
                    let a = acc.slice_mut(s![gi * g.og..(gi + 1) * g.og, ..]);
                    gemm_ok(gemm(T::one(), dyt, col.reversed_axes(), T::one(), a, threads));
                }
            }
        }
    };
    let buf_len = if g.pointwise() { 0 } else { k * lt };
    let chunks = if g.c_out * k <= CHUNK_MAX_WEIGHT { g.n.min(MAX_CHUNKS) } else { 1 };
    let dw2 = dw.view_mut().into_shape_with_order((g.c_out, k)).expect("contiguous");
    if chunks <= 1 {
        let mut acc = Array2::<T>::zeros((g.c_out, k));
        let mut buf = vec![T::zero(); buf_len];
        accumulate(0, g.n, &mut acc, &mut buf, Threads::Auto);
        let mut dw2 = dw2;
        dw2.assign(&acc);
    } else {
        let bounds: Vec<(usize, usize)> =
            (0..chunks).map(|c| (c * g.n / chunks, (c + 1) * g.n / chunks)).collect();
        let partials: Vec<Array2<T>> = parallel::run(g.macs(), || {
            bounds
                .par_iter()
                .map(|&(n0, n1)| {
                    let mut acc = Array2::<T>::zeros((g.c_out, k));
                    let mut buf = vec![T::zero(); buf_len];
                    accumulate(n0, n1, &mut acc, &mut buf, Threads::Single);
                    acc
                })
                .collect()
        });
        let mut dw2 = dw2;
        for part in &partials {
            dw2.zip_mut_with(part, |a, &b| *a = *a + b);
        }
    }
    Ok(dw)
}
