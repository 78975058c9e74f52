//! im2col / col2im over one image and one group of channels, for any tile of output
//! positions. Column matrix rows are ordered (channel, kz, ky, kx) and its columns are
//! the output positions (z, y, x) in row-major order, as in PyTorch's `unfold`.

use super::{shape5, ConvParams, Geom};
use crate::error::{KernelError, KernelResult};
use crate::gemm::Scalar;
use crate::parallel;
use ndarray::{Array3, Array5, ArrayView3, ArrayView5};
use rayon::prelude::*;

/// For kernel offset `k` along an axis: the output positions `[lo, hi)` whose input
/// coordinate `o * stride + k * dilation - pad` falls inside `[0, input)`.
#[inline]
pub(crate) fn valid_range(
    out: usize,
    input: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
) -> (usize, usize) {
    let shift = k * dilation;
    // o * stride >= pad - shift
    let lo = if pad > shift { (pad - shift).div_ceil(stride) } else { 0 };
    // o * stride + shift - pad <= input - 1
    let hi = if input + pad > shift {
        ((input - 1 + pad - shift) / stride + 1).min(out)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// A run of output positions sharing (z, y): x in `[x0, x1)`, at `off` in the tile.
#[derive(Clone, Copy)]
struct Run {
    z: usize,
    y: usize,
    x0: usize,
    x1: usize,
    off: usize,
}

/// The runs of output positions within `[l0, l1)` (divisions done once per tile).
fn runs(g: &Geom, l0: usize, l1: usize) -> Vec<Run> {
    let [_, oh, ow] = g.output;
    let mut out = Vec::with_capacity((l1 - l0) / ow.max(1) + 2);
    if l1 <= l0 {
        return out;
    }
    let mut x = l0 % ow;
    let zy = l0 / ow;
    let (mut z, mut y) = (zy / oh, zy % oh);
    let mut l = l0;
    while l < l1 {
        let x1 = (x + (l1 - l)).min(ow);
        out.push(Run {
            z,
            y,
            x0: x,
            x1,
            off: l - l0,
        });
        l += x1 - x;
        x = 0;
        y += 1;
        if y == oh {
            y = 0;
            z += 1;
        }
    }
    out
}

/// `dst.copy_from_slice(&src[..dst.len()])`. Runs are often short (4-16 elements),
/// where a call to the library `memcpy` costs more than the copy: up to 16 elements
/// are moved with two possibly overlapping fixed-size copies, and no loop (a loop would
/// be turned back into a `memcpy` call by the compiler).
#[inline(always)]
fn copy_short<T: Copy>(dst: &mut [T], src: &[T]) {
    let n = dst.len();
    let src = &src[..n];
    if n > 16 {
        dst.copy_from_slice(src);
    } else if n >= 8 {
        copy_n::<T, 8>(&mut dst[..8], &src[..8]);
        copy_n::<T, 8>(&mut dst[n - 8..], &src[n - 8..]);
    } else if n >= 4 {
        copy_n::<T, 4>(&mut dst[..4], &src[..4]);
        copy_n::<T, 4>(&mut dst[n - 4..], &src[n - 4..]);
    } else if n >= 2 {
        copy_n::<T, 2>(&mut dst[..2], &src[..2]);
        copy_n::<T, 2>(&mut dst[n - 2..], &src[n - 2..]);
    } else if n == 1 {
        dst[0] = src[0];
    }
}

/// Copy exactly `N` elements as one array move.
#[inline(always)]
fn copy_n<T: Copy, const N: usize>(dst: &mut [T], src: &[T]) {
    let d: &mut [T; N] = dst.try_into().expect("length N");
    let s: &[T; N] = src.try_into().expect("length N");
    *d = *s;
}

/// Copy a kernel row of `dst.len()` elements: the common widths as fixed-size moves.
#[inline(always)]
fn copy_kernel_row<T: Copy>(dst: &mut [T], src: &[T]) {
    match dst.len() {
        1 => dst[0] = src[0],
        2 => copy_n::<T, 2>(dst, &src[..2]),
        3 => copy_n::<T, 3>(dst, &src[..3]),
        4 => copy_n::<T, 4>(dst, &src[..4]),
        5 => copy_n::<T, 5>(dst, &src[..5]),
        7 => copy_n::<T, 7>(dst, &src[..7]),
        _ => copy_short(dst, src),
    }
}

/// `dst.fill(v)`, short lengths without a library call (see [`copy_short`]).
#[inline(always)]
fn fill_short<T: Copy>(dst: &mut [T], v: T) {
    let n = dst.len();
    if n > 16 {
        dst.fill(v);
    } else if n >= 8 {
        dst[..8].copy_from_slice(&[v; 8]);
        dst[n - 8..].copy_from_slice(&[v; 8]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&[v; 4]);
        dst[n - 4..].copy_from_slice(&[v; 4]);
    } else if n >= 2 {
        dst[..2].copy_from_slice(&[v; 2]);
        dst[n - 2..].copy_from_slice(&[v; 2]);
    } else if n == 1 {
        dst[0] = v;
    }
}

/// Per-row description: channel and kernel offsets.
#[inline]
fn row_parts(g: &Geom, r: usize) -> (usize, usize, usize, usize) {
    let [kd, kh, kw] = g.kernel;
    let _ = kd;
    let kx = r % kw;
    let ky = (r / kw) % kh;
    let kz = (r / (kw * kh)) % g.kernel[0];
    let c = r / g.kvol();
    (c, kz, ky, kx)
}

/// Input row index for output coordinate `o` and kernel offset `k` along axis `a`, if inside.
#[inline]
fn in_coord(g: &Geom, a: usize, o: usize, k: usize) -> Option<usize> {
    let p = &g.p;
    let pos = o * p.stride[a] + k * p.dilation[a];
    if pos < p.pad_lo[a] {
        return None;
    }
    let i = pos - p.pad_lo[a];
    (i < g.input[a]).then_some(i)
}

/// Fill `col[r * ld + (l - l0)]` for rows `0..k_rows` and output positions `l0..l1`.
/// `x` holds the group's `cg` input channels, contiguous.
pub(crate) fn im2col_tile<T: Scalar>(g: &Geom, x: &[T], l0: usize, l1: usize, col: &mut [T], ld: usize) {
    im2col_rows(g, x, 0, g.k_rows(), l0, l1, col, ld)
}

/// [`im2col_tile`] for rows `r0..r1` only; `col` starts at row `r0`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn im2col_rows<T: Scalar>(
    g: &Geom,
    x: &[T],
    r0: usize,
    r1: usize,
    l0: usize,
    l1: usize,
    col: &mut [T],
    ld: usize,
) {
    let [_, ih, iw] = g.input;
    let ow = g.output[2];
    let (sw, dw, pw) = (g.p.stride[2], g.p.dilation[2], g.p.pad_lo[2]);
    let plane = g.in_plane();
    if sw == 1 && l0.is_multiple_of(ow) && (l1 - l0).is_multiple_of(ow) {
        // Whole output rows at unit stride: per row a zero prefix, a copy, a zero suffix.
        let oh = g.output[1];
        let nrows = (l1 - l0) / ow;
        let (z0, y0) = ((l0 / ow) / oh, (l0 / ow) % oh);
        for r in r0..r1 {
            let (c, kz, ky, kx) = row_parts(g, r);
            let (lo, hi) = valid_range(ow, iw, kx, 1, dw, pw);
            let first = (lo + kx * dw).saturating_sub(pw); // input column of output lo
            let dst_row = &mut col[(r - r0) * ld..(r - r0) * ld + (l1 - l0)];
            let src_c = &x[c * plane..(c + 1) * plane];
            let (mut z, mut y) = (z0, y0);
            for dst in dst_row.chunks_exact_mut(ow).take(nrows) {
                match (in_coord(g, 0, z, kz), in_coord(g, 1, y, ky)) {
                    (Some(iz), Some(iy)) => {
                        fill_short(&mut dst[..lo], T::zero());
                        if hi > lo {
                            copy_short(&mut dst[lo..hi], &src_c[(iz * ih + iy) * iw + first..]);
                        }
                        fill_short(&mut dst[hi..], T::zero());
                    }
                    _ => fill_short(dst, T::zero()),
                }
                y += 1;
                if y == oh {
                    y = 0;
                    z += 1;
                }
            }
        }
        return;
    }
    let runs = runs(g, l0, l1);
    for r in r0..r1 {
        let (c, kz, ky, kx) = row_parts(g, r);
        let (lo, hi) = valid_range(ow, iw, kx, sw, dw, pw);
        let dst_row = &mut col[(r - r0) * ld..(r - r0) * ld + (l1 - l0)];
        let src_c = &x[c * plane..(c + 1) * plane];
        for run in &runs {
            let (xs, xe) = (run.x0, run.x1);
            let dst = &mut dst_row[run.off..run.off + (xe - xs)];
            let (Some(iz), Some(iy)) = (in_coord(g, 0, run.z, kz), in_coord(g, 1, run.y, ky)) else {
                fill_short(dst, T::zero());
                continue;
            };
            let src = &src_c[(iz * ih + iy) * iw..(iz * ih + iy + 1) * iw];
            let a = lo.clamp(xs, xe);
            let b = hi.clamp(a, xe);
            fill_short(&mut dst[..a - xs], T::zero());
            fill_short(&mut dst[b - xs..], T::zero());
            if b > a {
                let base = a * sw + kx * dw - pw;
                let d = &mut dst[a - xs..b - xs];
                if sw == 1 {
                    copy_short(d, &src[base..]);
                } else {
                    for (j, v) in d.iter_mut().enumerate() {
                        *v = src[base + j * sw];
                    }
                }
            }
        }
    }
}

/// The transposed column matrix ("im2row"): `rowm[(l - l0) * k_rows + r]`, one output
/// position's patch contiguous. The weight gradient wants this layout: the GEMM then
/// reads it in place instead of repacking a row-major column matrix.
pub(crate) fn im2row_tile<T: Scalar>(g: &Geom, x: &[T], l0: usize, l1: usize, rowm: &mut [T]) {
    if g.kernel[0] == 1 && g.input[0] == 1 && g.output[0] == 1 {
        return im2row_tile_2d(g, x, l0, l1, rowm);
    }
    let [_, ih, iw] = g.input;
    let [kd, kh, kw] = g.kernel;
    let ow = g.output[2];
    let (sw, dw, pw) = (g.p.stride[2], g.p.dilation[2], g.p.pad_lo[2]);
    let plane = g.in_plane();
    let k = g.k_rows();
    let ranges: Vec<(usize, usize)> = (0..kw).map(|kx| valid_range(ow, iw, kx, sw, dw, pw)).collect();
    // output columns where every kernel column lands inside the input
    let inner_lo = ranges.iter().map(|r| r.0).max().unwrap_or(0);
    let inner_hi = ranges.iter().map(|r| r.1).min().unwrap_or(0);
    // per run: the input row offset of each (channel, kz, ky) triple, or none (padding)
    let mut rows_of: Vec<Option<usize>> = vec![None; g.cg * kd * kh];
    for run in runs(g, l0, l1) {
        for (t, slot) in rows_of.iter_mut().enumerate() {
            let (c, kz, ky) = (t / (kd * kh), (t / kh) % kd, t % kh);
            *slot = match (in_coord(g, 0, run.z, kz), in_coord(g, 1, run.y, ky)) {
                (Some(iz), Some(iy)) => Some(c * plane + (iz * ih + iy) * iw),
                _ => None,
            };
        }
        for j in 0..run.x1 - run.x0 {
            let xo = run.x0 + j;
            let dst = &mut rowm[(run.off + j) * k..(run.off + j + 1) * k];
            let inner = dw == 1 && xo >= inner_lo && xo < inner_hi;
            for (seg, slot) in dst.chunks_exact_mut(kw).zip(&rows_of) {
                match *slot {
                    None => fill_short(seg, T::zero()),
                    Some(row) if inner => {
                        let b = row + xo * sw - pw;
                        copy_kernel_row(seg, &x[b..b + kw]);
                    }
                    Some(row) => {
                        for (kx, v) in seg.iter_mut().enumerate() {
                            let (lo, hi) = ranges[kx];
                            *v = if xo >= lo && xo < hi { x[row + xo * sw + kx * dw - pw] } else { T::zero() };
                        }
                    }
                }
            }
        }
    }
}

/// [`im2row_tile`] for 2-D convolutions. The image is copied once into a zero-padded
/// buffer (one row copy per input row); each output position's row of the matrix is
/// then `C * kh` copies of `kw` values from it, with no bounds tests (profiled: the
/// general loop's per-segment tests were half the weight gradient of a C64 8x8 3x3
/// layer).
fn im2row_tile_2d<T: Scalar>(g: &Geom, x: &[T], l0: usize, l1: usize, rowm: &mut [T]) {
    let [_, ih, iw] = g.input;
    let [_, kh, kw] = g.kernel;
    let [_, oh, ow] = g.output;
    let (sh, sw) = (g.p.stride[1], g.p.stride[2]);
    let (dh, dw) = (g.p.dilation[1], g.p.dilation[2]);
    let (ph, pw) = (g.p.pad_lo[1], g.p.pad_lo[2]);
    let k = g.k_rows();
    let segs = g.cg * kh;
    // padded extent: every row and column an output position can read
    let hp = (oh - 1) * sh + (kh - 1) * dh + 1;
    let wp = (ow - 1) * sw + (kw - 1) * dw + 1;
    let mut padded = vec![T::zero(); g.cg * hp * wp];
    let (rows_in, cols_in) = (ih.min(hp.saturating_sub(ph)), iw.min(wp.saturating_sub(pw)));
    for c in 0..g.cg {
        for iy in 0..rows_in {
            let dst = &mut padded[(c * hp + ph + iy) * wp + pw..][..cols_in];
            dst.copy_from_slice(&x[(c * ih + iy) * iw..][..cols_in]);
        }
    }
    let mut offs = vec![0usize; segs];
    for run in runs(g, l0, l1) {
        for c in 0..g.cg {
            for ky in 0..kh {
                offs[c * kh + ky] = (c * hp + run.y * sh + ky * dh) * wp;
            }
        }
        for xo in run.x0..run.x1 {
            let out = &mut rowm[(run.off + xo - run.x0) * k..(run.off + xo - run.x0 + 1) * k];
            let start = xo * sw;
            match (kw, dw) {
                (3, 1) => copy_segments::<T, 3>(out, &padded, &offs, start),
                (1, _) => copy_segments::<T, 1>(out, &padded, &offs, start),
                (5, 1) => copy_segments::<T, 5>(out, &padded, &offs, start),
                (7, 1) => copy_segments::<T, 7>(out, &padded, &offs, start),
                _ => {
                    for (seg, &off) in out.chunks_exact_mut(kw).zip(&offs) {
                        for (kx, v) in seg.iter_mut().enumerate() {
                            *v = padded[off + start + kx * dw];
                        }
                    }
                }
            }
        }
    }
}

/// `out[s * KW + kx] = src[offs[s] + start + kx]` for every segment `s`.
#[inline]
fn copy_segments<T: Scalar, const KW: usize>(out: &mut [T], src: &[T], offs: &[usize], start: usize) {
    for (seg, &off) in out.chunks_exact_mut(KW).zip(offs) {
        let from: &[T; KW] = src[off + start..off + start + KW].try_into().expect("padded row reaches every column");
        let to: &mut [T; KW] = seg.try_into().expect("segment of KW values");
        *to = *from;
    }
}

/// Adjoint of [`im2col_tile`]: `x[...] += col[r * ld + (l - l0)]` for every entry that
/// maps inside the input.
pub(crate) fn col2im_tile<T: Scalar>(g: &Geom, col: &[T], ld: usize, l0: usize, l1: usize, x: &mut [T]) {
    col2im_channels(g, col, ld, l0, l1, 0, g.cg, x)
}

/// [`col2im_tile`] for channels `c0..c1` only: `col` starts at row `c0 * kvol` and `x`
/// at channel `c0`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn col2im_channels<T: Scalar>(
    g: &Geom,
    col: &[T],
    ld: usize,
    l0: usize,
    l1: usize,
    c0: usize,
    c1: usize,
    x: &mut [T],
) {
    let [_, ih, iw] = g.input;
    let ow = g.output[2];
    let (sw, dw, pw) = (g.p.stride[2], g.p.dilation[2], g.p.pad_lo[2]);
    let plane = g.in_plane();
    let kvol = g.kvol();
    let runs = runs(g, l0, l1);
    for r in c0 * kvol..c1 * kvol {
        let (c, kz, ky, kx) = row_parts(g, r);
        let c = c - c0;
        let (lo, hi) = valid_range(ow, iw, kx, sw, dw, pw);
        let rr = r - c0 * kvol;
        let src_row = &col[rr * ld..rr * ld + (l1 - l0)];
        let dst_c = &mut x[c * plane..(c + 1) * plane];
        for run in &runs {
            let (xs, xe, off) = (run.x0, run.x1, run.off);
            let (Some(iz), Some(iy)) = (in_coord(g, 0, run.z, kz), in_coord(g, 1, run.y, ky)) else {
                continue;
            };
            let a = lo.clamp(xs, xe);
            let b = hi.clamp(a, xe);
            if b <= a {
                continue;
            }
            let dst = &mut dst_c[(iz * ih + iy) * iw..(iz * ih + iy + 1) * iw];
            let base = a * sw + kx * dw - pw;
            let s = &src_row[off + (a - xs)..off + (b - xs)];
            if sw == 1 {
                for (d, &v) in dst[base..base + (b - a)].iter_mut().zip(s) {
                    *d = *d + v;
                }
            } else {
                for (j, &v) in s.iter().enumerate() {
                    let d = &mut dst[base + j * sw];
                    *d = *d + v;
                }
            }
        }
    }
}

/// A raw pointer that parallel tasks writing disjoint parts of one buffer may share.
pub(crate) struct SendPtr<T>(pub *mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    /// Through a method, so closures capture the wrapper (Send + Sync), not the field.
    #[inline]
    pub(crate) fn get(&self) -> *mut T {
        self.0
    }
}

/// [`im2col_tile`] spread over the pool by blocks of rows (for callers not already in
/// a parallel loop).
pub(crate) fn im2col_tile_par<T: Scalar>(g: &Geom, x: &[T], l0: usize, l1: usize, col: &mut [T], ld: usize) {
    let rows = g.k_rows();
    let work = rows * (l1 - l0);
    if work < 1 << 16 || rows < 2 {
        return im2col_tile(g, x, l0, l1, col, ld);
    }
    let block = rows.div_ceil(16).max(1);
    parallel::run(work, || {
        col[..rows * ld]
            .par_chunks_mut(block * ld)
            .enumerate()
            .for_each(|(i, chunk)| {
                let r0 = i * block;
                let r1 = (r0 + block).min(rows);
                im2col_rows(g, x, r0, r1, l0, l1, chunk, ld);
            });
    });
}

/// [`col2im_tile`] spread over the pool by blocks of channels.
pub(crate) fn col2im_tile_par<T: Scalar>(g: &Geom, col: &[T], ld: usize, l0: usize, l1: usize, x: &mut [T]) {
    let work = g.k_rows() * (l1 - l0);
    if work < 1 << 16 || g.cg < 2 {
        return col2im_tile(g, col, ld, l0, l1, x);
    }
    let block = g.cg.div_ceil(16).max(1);
    let plane = g.in_plane();
    let kvol = g.kvol();
    parallel::run(work, || {
        x[..g.cg * plane]
            .par_chunks_mut(block * plane)
            .enumerate()
            .for_each(|(i, xc)| {
                let c0 = i * block;
                let c1 = (c0 + block).min(g.cg);
                col2im_channels(g, &col[c0 * kvol * ld..], ld, l0, l1, c0, c1, xc);
            });
    });
}

/// PyTorch's `unfold` on `(N, C, D, H, W)`: returns `(N, C * kd * kh * kw, L)`.
pub fn im2col<T: Scalar>(x: ArrayView5<'_, T>, kernel: [usize; 3], p: ConvParams) -> KernelResult<Array3<T>> {
    let xs = shape5(&x);
    let p = ConvParams { groups: 1, ..p };
    let g = Geom::new("im2col", xs, [1, xs[1], kernel[0], kernel[1], kernel[2]], p)?;
    let x = x.as_standard_layout();
    let xs_ = x.as_slice().expect("standard layout");
    let (rows, l) = (g.k_rows(), g.l());
    let mut out = Array3::<T>::zeros((g.n, rows, l));
    if out.is_empty() {
        return Ok(out);
    }
    let per = g.in_plane() * g.c_in;
    parallel::run(g.n * rows * l, || {
        out.outer_iter_mut().into_par_iter().enumerate().for_each(|(i, mut o)| {
            im2col_tile(&g, &xs_[i * per..(i + 1) * per], 0, l, o.as_slice_mut().unwrap(), l);
        });
    });
    Ok(out)
}

/// PyTorch's `fold` (the adjoint of [`im2col`]): `cols (N, C * kvol, L)` summed back into
/// `(N, C, D, H, W)` with `input` the spatial size.
pub fn col2im<T: Scalar>(
    cols: ArrayView3<'_, T>,
    channels: usize,
    input: [usize; 3],
    kernel: [usize; 3],
    p: ConvParams,
) -> KernelResult<Array5<T>> {
    let (n, rows, l) = cols.dim();
    let p = ConvParams { groups: 1, ..p };
    let xs = [n, channels, input[0], input[1], input[2]];
    let g = Geom::new("col2im", xs, [1, channels, kernel[0], kernel[1], kernel[2]], p)?;
    if rows != g.k_rows() || l != g.l() {
        return Err(KernelError::shape(format!(
            "col2im: 'input' has shape ({n}, {rows}, {l}), expected ({n}, {}, {}) for {channels} channels, kernel {kernel:?} and output size {input:?}",
            g.k_rows(),
            g.l()
        )));
    }
    let cols = cols.as_standard_layout();
    let cs = cols.as_slice().expect("standard layout");
    let mut out = Array5::<T>::zeros(xs);
    if out.is_empty() || cs.is_empty() {
        return Ok(out);
    }
    let per = rows * l;
    let ptr = SendPtr(out.as_mut_ptr());
    let plane = g.in_plane() * channels;
    parallel::run(n * per, || {
        (0..n).into_par_iter().for_each(|i| {
            let ptr = &ptr;
            // SAFETY: image i owns out[i], disjoint from other images.
            let dst = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(i * plane), plane) };
            col2im_tile(&g, &cs[i * per..(i + 1) * per], l, 0, l, dst);
        });
    });
    Ok(out)
}
