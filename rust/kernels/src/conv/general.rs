//! The GEMM paths: forward, input gradient and weight gradient.

use super::dense;
use super::depthwise;
use super::direct;
use super::winograd;
use super::im2col::{col2im_tile, col2im_tile_par, im2col_tile, im2col_tile_par, im2row_tile, SendPtr};
use super::{check_bias, shape5, zeros5, ConvParams, Geom};
use crate::error::{KernelError, KernelResult};
use crate::gemm::{gemm, Scalar, Threads};
use crate::parallel;
use crate::scratch::Scratch;
use ndarray::{s, Array2, Array5, ArrayView1, ArrayView2, ArrayView5, ArrayViewMut2, ArrayViewMut5, ShapeBuilder};
use rayon::prelude::*;

/// Bytes of column buffer per tile. Measured on Zen 5 (1 MB L2, 32 MB L3): tiles of
/// 2-4 MB (in L3) beat L2-sized ones by 5-20%, because every GEMM call repacks the
/// weights and narrow tiles mean many calls; whole-image buffers of 16 MB lose again.
const TILE_BYTES: usize = 3 << 20;
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
/// Measured (2 threads): spreading is as fast or up to 1.4x faster (small first layers)
/// whenever there are at least two tasks per thread.
fn spread(tasks: usize) -> bool {
    let t = parallel::num_threads();
    t > 1 && tasks >= 2 * t
}

/// Runs `body(task, scratch, threads)` for every (image block, group) task: spread over
/// the pool with single-threaded GEMMs when there are enough tasks, else in order with
/// the GEMM free to use every thread. `lens` sizes the two scratch buffers.
fn run_image_blocks<T: Scalar>(
    g: &Geom,
    tasks: usize,
    lens: (usize, usize),
    body: impl Fn(usize, &mut (Vec<T>, Vec<T>), Threads) + Sync,
) {
    if spread(tasks) {
        parallel::run(g.macs(), || {
            (0..tasks).into_par_iter().for_each_init(
                || (vec![T::zero(); lens.0], vec![T::zero(); lens.1]),
                |bufs, t| body(t, bufs, Threads::Single),
            );
        });
    } else {
        let mut bufs = (vec![T::zero(); lens.0], vec![T::zero(); lens.1]);
        for t in 0..tasks {
            body(t, &mut bufs, Threads::Auto);
        }
    }
}

/// Output positions per image below which several images share one GEMM.
const SMALL_L: usize = 256;
/// Columns such a shared GEMM aims for.
const BLOCK_COLS: usize = 512;

/// Images per GEMM: 1, or several when images are small (LeNet/CIFAR-sized layers), so
/// each GEMM call has enough columns to amortise its fixed costs. Shape-only.
fn images_per_block(g: &Geom, elem: usize) -> usize {
    let l = g.l().max(1);
    if l >= SMALL_L || g.n < 2 {
        return 1;
    }
    let by_cols = BLOCK_COLS.div_ceil(l);
    let by_buf = (TILE_BYTES / elem / (g.k_rows() * l).max(1)).max(1);
    by_cols.min(by_buf).min(g.n).max(1)
}

/// Image `ni`, group `gi` of a contiguous (N, C, spatial) buffer with `c` channels of
/// which each group has `cg`.
#[inline]
fn group_slice<T>(a: &[T], ni: usize, c: usize, gi: usize, cg: usize, plane: usize) -> &[T] {
    &a[(ni * c + gi * cg) * plane..(ni * c + (gi + 1) * cg) * plane]
}

/// Column matrix of images `n0..n1`, group `gi`, side by side: `(K, m)` with image `i`
/// in columns `i*L..(i+1)*L`, or its transpose `(m, K)` when `rows`.
fn fill_block<T: Scalar>(g: &Geom, xs: &[T], n0: usize, n1: usize, gi: usize, buf: &mut [T], rows: bool) {
    let (l, k, plane) = (g.l(), g.k_rows(), g.in_plane());
    let m = (n1 - n0) * l;
    for (i, ni) in (n0..n1).enumerate() {
        let xg = group_slice(xs, ni, g.c_in, gi, g.cg, plane);
        if rows {
            im2row_tile(g, xg, 0, l, &mut buf[i * l * k..(i + 1) * l * k]);
        } else {
            im2col_tile(g, xg, 0, l, &mut buf[i * l..k * m], m);
        }
    }
}

/// Gather `dy` of images `n0..n1`, channels of group `gi`, into `(og, m)`.
fn gather_dy<T: Scalar>(g: &Geom, dys: &[T], n0: usize, n1: usize, gi: usize, out: &mut [T]) {
    let l = g.l();
    let m = (n1 - n0) * l;
    for (i, ni) in (n0..n1).enumerate() {
        for o in 0..g.og {
            let src = &dys[((ni * g.c_out) + gi * g.og + o) * l..][..l];
            out[o * m + i * l..o * m + (i + 1) * l].copy_from_slice(src);
        }
    }
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
    let shape = [g.n, g.c_out, od, oh, ow];
    if shape.contains(&0) {
        return Ok(zeros5::<T>(shape));
    }
    let x = x.as_standard_layout();
    let w = w.as_standard_layout();
    let bias = bias.map(|b| b.to_vec());
    let xs = x.as_slice().expect("standard layout");
    let ws = w.as_slice().expect("standard layout");
    if dense::applies(&g) {
        let mut out = zeros5::<T>(shape);
        if dense::forward(&g, xs, ws, bias.as_deref(), out.as_slice_mut().unwrap()) {
            return Ok(out);
        }
    }
    if direct::forward_applies(&g, std::mem::size_of::<T>()) {
        return Ok(direct::forward_new(&g, xs, ws, bias.as_deref()));
    }
    let mut out = zeros5::<T>(shape);
    if g.depthwise() {
        depthwise::forward(&g, xs, ws, bias.as_deref(), out.as_slice_mut().unwrap());
        return Ok(out);
    }
    if winograd::forward_applies(&g, std::mem::size_of::<T>()) {
        if winograd::forward(&g, xs, ws, bias.as_deref(), out.as_slice_mut().unwrap()) {
            return Ok(out);
        }
        out.fill(T::zero()); // non-finite values: the direct path propagates them exactly
    }
    let (l, k) = (g.l(), g.k_rows());
    let w2 = ArrayView2::from_shape((g.c_out, k), ws).expect("weight shape");
    let nb = images_per_block(&g, std::mem::size_of::<T>());
    if nb > 1 {
        let blocks = g.n.div_ceil(nb);
        let tasks = blocks * g.groups;
        let optr = SendPtr(out.as_mut_ptr());
        let body = |t: usize, bufs: &mut (Vec<T>, Vec<T>), threads: Threads| {
            let (gi, b) = (t % g.groups, t / g.groups);
            let (n0, n1) = (b * nb, ((b + 1) * nb).min(g.n));
            let m = (n1 - n0) * l;
            let (col, tmp) = (&mut bufs.0[..k * m], &mut bufs.1[..g.og * m]);
            fill_block(&g, xs, n0, n1, gi, col, false);
            let colv = ArrayView2::from_shape((k, m), &*col).expect("block");
            let tv = ArrayViewMut2::from_shape((g.og, m), &mut *tmp).expect("block");
            gemm_ok(gemm(
                T::one(),
                w2.slice(s![gi * g.og..(gi + 1) * g.og, ..]),
                colv,
                T::zero(),
                tv,
                threads,
            ));
            for (i, ni) in (n0..n1).enumerate() {
                for o in 0..g.og {
                    let co = gi * g.og + o;
                    let bv = bias.as_deref().map_or(T::zero(), |b| b[co]);
                    // SAFETY: block (n0..n1, gi) alone writes these output rows.
                    let dst = unsafe { std::slice::from_raw_parts_mut(optr.get().add((ni * g.c_out + co) * l), l) };
                    for (d, &v) in dst.iter_mut().zip(&tmp[o * m + i * l..o * m + (i + 1) * l]) {
                        *d = v + bv;
                    }
                }
            }
        };
        run_image_blocks(&g, tasks, (k * nb * l, g.og * nb * l), body);
        return Ok(out);
    }
    let lt = tile_len(&g, std::mem::size_of::<T>());
    let ntiles = l.div_ceil(lt);
    let tasks = g.n * g.groups * ntiles;
    let plane = g.in_plane();
    let optr = SendPtr(out.as_mut_ptr());
    let body = |t: usize, buf: &mut Vec<T>, threads: Threads| {
        let tile = t % ntiles;
        let gi = (t / ntiles) % g.groups;
        let ni = t / (ntiles * g.groups);
        let (l0, l1) = (tile * lt, ((tile + 1) * lt).min(l));
        let xg = &xs[(ni * g.c_in + gi * g.cg) * plane..(ni * g.c_in + (gi + 1) * g.cg) * plane];
        let col = if g.pointwise() {
            ArrayView2::from_shape((g.cg, l), xg)
                .expect("image")
                .slice_move(s![.., l0..l1])
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
        let mut o =
            unsafe { ArrayViewMut2::from_shape_ptr((g.og, l1 - l0).strides((l, 1)), optr.get().add(row0 * l + l0)) };
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
    if input_shape.contains(&0) {
        return Ok(zeros5::<T>(input_shape));
    }
    let dy = dy.as_standard_layout();
    let w = w.as_standard_layout();
    let dys_ = dy.as_slice().expect("standard layout");
    let ws = w.as_slice().expect("standard layout");
    if !dense::applies(&g) && direct::input_grad_applies(&g, std::mem::size_of::<T>()) {
        if let Some(dx) = direct::input_grad(&g, dys_, ws) {
            return Ok(dx);
        }
    }
    let mut dx = zeros5::<T>(input_shape);
    if dense::applies(&g) && dense::input_grad(&g, dys_, ws, dx.as_slice_mut().unwrap()) {
        return Ok(dx);
    }
    if g.depthwise() {
        depthwise::input_grad(&g, dys_, ws, dx.as_slice_mut().unwrap());
        return Ok(dx);
    }
    if winograd::input_grad_applies(&g, std::mem::size_of::<T>()) {
        if winograd::input_grad(&g, dys_, ws, dx.as_slice_mut().unwrap()) {
            return Ok(dx);
        }
        dx.fill(T::zero()); // non-finite values: the direct path propagates them exactly
    }
    let (l, k) = (g.l(), g.k_rows());
    if l == 0 || g.c_out == 0 {
        return Ok(dx);
    }
    let nb = images_per_block(&g, std::mem::size_of::<T>());
    if nb > 1 {
        let w2 = ArrayView2::from_shape((g.c_out, k), ws).expect("weight shape");
        let plane = g.in_plane();
        let blocks = g.n.div_ceil(nb);
        let tasks = blocks * g.groups;
        let xptr = SendPtr(dx.as_mut_ptr());
        let body = |t: usize, bufs: &mut (Vec<T>, Vec<T>), threads: Threads| {
            let (gi, b) = (t % g.groups, t / g.groups);
            let (n0, n1) = (b * nb, ((b + 1) * nb).min(g.n));
            let m = (n1 - n0) * l;
            let (dcol, dyb) = (&mut bufs.0[..k * m], &mut bufs.1[..g.og * m]);
            gather_dy(&g, dys_, n0, n1, gi, dyb);
            let wgt = w2.slice(s![gi * g.og..(gi + 1) * g.og, ..]).reversed_axes();
            let dyv = ArrayView2::from_shape((g.og, m), &*dyb).expect("block");
            let dcv = ArrayViewMut2::from_shape((k, m), &mut *dcol).expect("block");
            gemm_ok(gemm(T::one(), wgt, dyv, T::zero(), dcv, threads));
            for (i, ni) in (n0..n1).enumerate() {
                let x0 = (ni * g.c_in + gi * g.cg) * plane;
                // SAFETY: block (n0..n1, gi) alone writes this group's channels of its images.
                let dxg = unsafe { std::slice::from_raw_parts_mut(xptr.get().add(x0), g.cg * plane) };
                col2im_tile(&g, &dcol[i * l..], m, 0, l, dxg);
            }
        };
        run_image_blocks(&g, tasks, (k * nb * l, g.og * nb * l), body);
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
        let dyi =
            ArrayView2::from_shape((g.c_out, l), &dys_[ni * g.c_out * l..(ni + 1) * g.c_out * l]).expect("grad shape");
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
    let mut dw = Array5::<T>::zeros(conv_weight_grad_shape(shape5(&dy), shape5(&x), kernel, p.groups));
    conv_weight_grad_into(dy, x, kernel, p, dw.view_mut())?;
    Ok(dw)
}

/// The shape of the weight gradient for `dy` and `x` of these shapes: `(C_out, C_in /
/// groups, kd, kh, kw)` (groups of 0 count as 1 here; the gradient call rejects them).
pub fn conv_weight_grad_shape(dy: [usize; 5], x: [usize; 5], kernel: [usize; 3], groups: usize) -> [usize; 5] {
    [dy[1], x[1] / groups.max(1), kernel[0], kernel[1], kernel[2]]
}

/// [`conv_weight_grad`] into a given C-contiguous `dw` of the weight's shape (for
/// callers that own recycled memory); every element is written.
pub fn conv_weight_grad_into<T: Scalar>(
    dy: ArrayView5<'_, T>,
    x: ArrayView5<'_, T>,
    kernel: [usize; 3],
    p: ConvParams,
    mut dw: ArrayViewMut5<'_, T>,
) -> KernelResult<()> {
    let op = "conv_backward";
    let dys = shape5(&dy);
    let xs = shape5(&x);
    if p.groups == 0 || !xs[1].is_multiple_of(p.groups) || !dys[1].is_multiple_of(p.groups) {
        return Err(KernelError::param(format!(
            "{op}: 'groups'={} must divide both the input channels ({}) and the output channels ({})",
            p.groups, xs[1], dys[1]
        )));
    }
    let wshape = conv_weight_grad_shape(dys, xs, kernel, p.groups);
    let g = Geom::with_output(op, xs, wshape, [dys[2], dys[3], dys[4]], p)?;
    check_dy(op, dys, g.n, g.c_out)?;
    if dw.shape() != wshape || !dw.is_standard_layout() {
        return Err(KernelError::shape(format!(
            "{op}: 'out' has shape {:?} (standard layout: {}), expected a C-contiguous {wshape:?}",
            dw.shape(),
            dw.is_standard_layout()
        )));
    }
    dw.fill(T::zero());
    if dw.is_empty() || g.n == 0 || g.l() == 0 {
        return Ok(());
    }
    let dy = dy.as_standard_layout();
    let x = x.as_standard_layout();
    let dys_ = dy.as_slice().expect("standard layout");
    let xs_ = x.as_slice().expect("standard layout");
    if dense::applies(&g) && super::all_finite(dys_) {
        dense::weight_grad(&g, dys_, xs_, dw.as_slice_mut().unwrap());
        return Ok(());
    }
    if g.depthwise() {
        depthwise::weight_grad(&g, dys_, xs_, dw.as_slice_mut().unwrap());
        return Ok(());
    }
    if direct::weight_grad_applies(&g, std::mem::size_of::<T>()) {
        direct::weight_grad(&g, dys_, xs_, dw.as_slice_mut().unwrap());
        return Ok(());
    }
    let (l, k) = (g.l(), g.k_rows());
    let lt = tile_len(&g, std::mem::size_of::<T>());
    let ntiles = l.div_ceil(lt);
    let plane = g.in_plane();
    // The GEMM reads the transposed column matrix (im2row) in place but repacks a
    // row-major one, and that repacking is slow when the contraction (positions) is long
    // and C_out short. Measured (2 threads): im2row wins 1.15-1.5x for K <= 150 or og <= 8
    // (first layers) and 1.4-1.7x when several small images share a GEMM (N64 C64 8x8:
    // 2.2 -> 1.6 ms; 8x8 -> 4x4 stride 2: 1.25 -> 0.74 ms); im2col + repacking wins
    // 1.1-1.2x on large planes with K of 576 and more (C64 56x56 25 vs 32 ms).
    let nb = images_per_block(&g, std::mem::size_of::<T>());
    let use_rows = g.og <= 8 || k <= 256 || nb > 1;
    // Accumulate the images `n0..n1` into `acc (C_out, K)`.
    // `buf`: stale scratch; every element read is written first (fill_block, gather_dy,
    // im2row_tile/im2col_tile write their whole ranges).
    let accumulate = |n0: usize, n1: usize, acc: &mut Array2<T>, buf: &mut [T], threads: Threads| {
        if nb > 1 {
            let mut b0 = n0;
            while b0 < n1 {
                let b1 = (b0 + nb).min(n1);
                let m = (b1 - b0) * l;
                let (col, rest) = buf.split_at_mut(k * nb * l);
                let (col, dyb) = (&mut col[..k * m], &mut rest[..g.og * m]);
                for gi in 0..g.groups {
                    fill_block(&g, xs_, b0, b1, gi, col, use_rows);
                    gather_dy(&g, dys_, b0, b1, gi, dyb);
                    let dyv = ArrayView2::from_shape((g.og, m), &*dyb).expect("block");
                    let colt = if use_rows {
                        ArrayView2::from_shape((m, k), &*col).expect("block")
                    } else {
                        ArrayView2::from_shape((k, m), &*col).expect("block").reversed_axes()
                    };
                    let a = acc.slice_mut(s![gi * g.og..(gi + 1) * g.og, ..]);
                    gemm_ok(gemm(T::one(), dyv, colt, T::one(), a, threads));
                }
                b0 = b1;
            }
            return;
        }
        for ni in n0..n1 {
            let dyi = ArrayView2::from_shape((g.c_out, l), &dys_[ni * g.c_out * l..(ni + 1) * g.c_out * l])
                .expect("grad shape");
            for gi in 0..g.groups {
                let xg = &xs_[(ni * g.c_in + gi * g.cg) * plane..(ni * g.c_in + (gi + 1) * g.cg) * plane];
                for tile in 0..ntiles {
                    let (l0, l1) = (tile * lt, ((tile + 1) * lt).min(l));
                    let dyt = dyi.slice(s![gi * g.og..(gi + 1) * g.og, l0..l1]);
                    let a = acc.slice_mut(s![gi * g.og..(gi + 1) * g.og, ..]);
                    if g.pointwise() {
                        let colt = ArrayView2::from_shape((g.cg, l), xg)
                            .expect("image")
                            .slice_move(s![.., l0..l1])
                            .reversed_axes();
                        gemm_ok(gemm(T::one(), dyt, colt, T::one(), a, threads));
                    } else if use_rows {
                        // (lt x K), read in place by the GEMM
                        let buf = &mut buf[..k * (l1 - l0)];
                        im2row_tile(&g, xg, l0, l1, buf);
                        let colt = ArrayView2::from_shape((l1 - l0, k), &*buf).expect("tile");
                        gemm_ok(gemm(T::one(), dyt, colt, T::one(), a, threads));
                    } else {
                        let buf = &mut buf[..k * (l1 - l0)];
                        if threads == Threads::Auto {
                            im2col_tile_par(&g, xg, l0, l1, buf, l1 - l0);
                        } else {
                            im2col_tile(&g, xg, l0, l1, buf, l1 - l0);
                        }
                        let col = ArrayView2::from_shape((k, l1 - l0), &*buf).expect("tile");
                        gemm_ok(gemm(T::one(), dyt, col.reversed_axes(), T::one(), a, threads));
                    }
                }
            }
        }
    };
    let buf_len = if nb > 1 {
        (k + g.og) * nb * l
    } else if g.pointwise() {
        0
    } else {
        k * lt
    };
    let chunks = if g.c_out * k <= CHUNK_MAX_WEIGHT {
        g.n.min(MAX_CHUNKS)
    } else {
        1
    };
    let dw2 = dw.view_mut().into_shape_with_order((g.c_out, k)).expect("contiguous");
    if chunks <= 1 {
        let mut acc = Array2::<T>::zeros((g.c_out, k));
        let mut buf = Scratch::<T>::take(buf_len);
        accumulate(0, g.n, &mut acc, buf.as_mut_slice(), Threads::Auto);
        let mut dw2 = dw2;
        dw2.assign(&acc);
    } else {
        let bounds: Vec<(usize, usize)> = (0..chunks)
            .map(|c| (c * g.n / chunks, (c + 1) * g.n / chunks))
            .collect();
        let partials: Vec<Array2<T>> = parallel::run(g.macs(), || {
            bounds
                .par_iter()
                .map(|&(n0, n1)| {
                    let mut acc = Array2::<T>::zeros((g.c_out, k));
                    let mut buf = Scratch::<T>::take(buf_len);
                    accumulate(n0, n1, &mut acc, buf.as_mut_slice(), Threads::Single);
                    acc
                })
                .collect()
        });
        let mut dw2 = dw2;
        for part in &partials {
            dw2.zip_mut_with(part, |a, &b| *a = *a + b);
        }
    }
    Ok(())
}
