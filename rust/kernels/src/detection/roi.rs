//! RoI pooling with torchvision's semantics: `roi_align` (Mask R-CNN, bilinear samples
//! averaged per bin) and `roi_pool` (Fast R-CNN, max over integer bins), forward and
//! backward.
//!
//! `input` is `(N, C, H, W)` and C-contiguous; `rois` is `(K, 5)` rows
//! `(batch_index, x1, y1, x2, y2)` in input-image coordinates, scaled by
//! `spatial_scale`. Outputs are `(K, C, pooled_h, pooled_w)`.
//!
//! Parallel work is split over channels (each thread owns whole channels), rois are
//! visited in order, so results do not depend on the thread count.

use crate::error::{KernelError, KernelResult};
use crate::gemm::Scalar;
use crate::parallel;
use ndarray::{Array4, ArrayView2, ArrayView4, ArrayViewMut4, Axis};
use rayon::prelude::*;

/// RoIAlign parameters (torchvision names).
#[derive(Debug, Clone, Copy)]
pub struct RoiAlignParams<T> {
    pub pooled_h: usize,
    pub pooled_w: usize,
    pub spatial_scale: T,
    /// Samples per bin side; <= 0 means adaptive: `ceil(roi_size / pooled_size)`.
    pub sampling_ratio: i64,
    /// Shift box coordinates by -0.5 pixel (pixel centres at integer + 0.5).
    pub aligned: bool,
}

/// Adaptive sampling grids are capped at this many samples per bin side.
const MAX_GRID: i64 = 1 << 10;
/// Samples precomputed at once (bounds the scratch memory for huge boxes).
const SAMPLE_CHUNK: usize = 1 << 16;

fn check_rois<T: Scalar>(op: &str, rois: &ArrayView2<'_, T>, n: usize) -> KernelResult<Vec<usize>> {
    if rois.ncols() != 5 {
        return Err(KernelError::shape(format!(
            "{op}: 'boxes' must have shape (K, 5) rows (batch_index, x1, y1, x2, y2), got {:?}",
            rois.shape()
        )));
    }
    let mut idx = Vec::with_capacity(rois.nrows());
    for k in 0..rois.nrows() {
        let b = rois[[k, 0]].to_f64().unwrap_or(f64::NAN).trunc();
        if !(b >= 0.0 && b < n as f64) {
            return Err(KernelError::param(format!(
                "{op}: 'boxes' row {k} has batch index {:?}, but the input batch has {n} images",
                rois[[k, 0]]
            )));
        }
        idx.push(b as usize);
    }
    Ok(idx)
}

fn check_params(op: &str, ph: usize, pw: usize) -> KernelResult<()> {
    if ph == 0 || pw == 0 {
        return Err(KernelError::param(format!(
            "{op}: 'output_size' must be positive, got ({ph}, {pw})"
        )));
    }
    Ok(())
}

/// One bilinear sample: four plane offsets and their weights.
#[derive(Clone, Copy)]
struct Sample<T> {
    off: [usize; 4],
    w: [T; 4],
}

/// torchvision's bilinear_interpolate: `None` for a point outside [-1, H] x [-1, W].
#[inline]
fn bilinear<T: Scalar>(y: T, x: T, h: usize, w: usize) -> Option<Sample<T>> {
    let (fh, fw) = (T::from_usize(h).unwrap(), T::from_usize(w).unwrap());
    let m1 = -T::one();
    if h == 0 || w == 0 || y < m1 || y > fh || x < m1 || x > fw {
        return None;
    }
    let mut y = if y <= T::zero() { T::zero() } else { y };
    let mut x = if x <= T::zero() { T::zero() } else { x };
    let mut yl = y.to_usize().unwrap_or(0);
    let mut xl = x.to_usize().unwrap_or(0);
    let (yh, xh);
    if yl >= h - 1 {
        yl = h - 1;
        yh = h - 1;
        y = T::from_usize(yl).unwrap();
    } else {
        yh = yl + 1;
    }
    if xl >= w - 1 {
        xl = w - 1;
        xh = w - 1;
        x = T::from_usize(xl).unwrap();
    } else {
        xh = xl + 1;
    }
    let ly = y - T::from_usize(yl).unwrap();
    let lx = x - T::from_usize(xl).unwrap();
    let (hy, hx) = (T::one() - ly, T::one() - lx);
    Some(Sample {
        off: [yl * w + xl, yl * w + xh, yh * w + xl, yh * w + xh],
        w: [hy * hx, hy * lx, ly * hx, ly * lx],
    })
}

/// The sampling geometry of one roi.
struct AlignGeom<T> {
    start_h: T,
    start_w: T,
    bin_h: T,
    bin_w: T,
    grid_h: usize,
    grid_w: usize,
    inv_count: T,
}

fn align_geom<T: Scalar>(roi: [T; 4], p: &RoiAlignParams<T>) -> AlignGeom<T> {
    let off = if p.aligned {
        T::from_f64(0.5).unwrap()
    } else {
        T::zero()
    };
    let s = p.spatial_scale;
    let (sw, sh, ew, eh) = (roi[0] * s - off, roi[1] * s - off, roi[2] * s - off, roi[3] * s - off);
    let (mut rw, mut rh) = (ew - sw, eh - sh);
    if !p.aligned {
        rw = if rw > T::one() { rw } else { T::one() };
        rh = if rh > T::one() { rh } else { T::one() };
    }
    let (fph, fpw) = (T::from_usize(p.pooled_h).unwrap(), T::from_usize(p.pooled_w).unwrap());
    let (bin_h, bin_w) = (rh / fph, rw / fpw);
    let grid = |size: T, pooled: T| -> i64 {
        if p.sampling_ratio > 0 {
            p.sampling_ratio.min(MAX_GRID)
        } else {
            let g = (size / pooled).ceil().to_f64().unwrap_or(0.0);
            if g.is_nan() {
                0
            } else {
                g.clamp(0.0, MAX_GRID as f64) as i64
            }
        }
    };
    let (gh, gw) = (grid(rh, fph), grid(rw, fpw));
    let count = (gh * gw).max(1);
    AlignGeom {
        start_h: sh,
        start_w: sw,
        bin_h,
        bin_w,
        grid_h: gh as usize,
        grid_w: gw as usize,
        inv_count: T::one() / T::from_i64(count).unwrap(),
    }
}

/// Samples of bins `bins` (flattened ph * pooled_w + pw), with `starts[b]` the first
/// sample of each bin (len = bins.len() + 1).
fn align_samples<T: Scalar>(
    g: &AlignGeom<T>,
    pooled_w: usize,
    bins: std::ops::Range<usize>,
    h: usize,
    w: usize,
    samples: &mut Vec<Sample<T>>,
    starts: &mut Vec<usize>,
) {
    samples.clear();
    starts.clear();
    let half = T::from_f64(0.5).unwrap();
    let (fgh, fgw) = (
        T::from_usize(g.grid_h.max(1)).unwrap(),
        T::from_usize(g.grid_w.max(1)).unwrap(),
    );
    for b in bins {
        starts.push(samples.len());
        let (ph, pw) = (b / pooled_w, b % pooled_w);
        let by = g.start_h + T::from_usize(ph).unwrap() * g.bin_h;
        let bx = g.start_w + T::from_usize(pw).unwrap() * g.bin_w;
        for iy in 0..g.grid_h {
            let y = by + (T::from_usize(iy).unwrap() + half) * g.bin_h / fgh;
            for ix in 0..g.grid_w {
                let x = bx + (T::from_usize(ix).unwrap() + half) * g.bin_w / fgw;
                if let Some(s) = bilinear(y, x, h, w) {
                    samples.push(s);
                }
            }
        }
    }
    starts.push(samples.len());
}

/// Bins per precomputed chunk, so a chunk holds at most about SAMPLE_CHUNK samples.
fn bins_per_chunk<T>(g: &AlignGeom<T>, nbins: usize) -> usize {
    let per_bin = (g.grid_h * g.grid_w).max(1);
    (SAMPLE_CHUNK / per_bin).clamp(1, nbins)
}

fn roi_coords<T: Scalar>(rois: &ArrayView2<'_, T>, k: usize) -> [T; 4] {
    [rois[[k, 1]], rois[[k, 2]], rois[[k, 3]], rois[[k, 4]]]
}

/// `o[b] = inv * sum of the samples of bin b` for the bins `bins` (samples from `starts`).
#[inline]
fn gather_bins<T: Scalar>(
    plane: &[T],
    samples: &[Sample<T>],
    starts: &[usize],
    bins: std::ops::Range<usize>,
    inv: T,
    o: &mut [T],
) {
    for (bi, b) in bins.enumerate() {
        let mut acc = T::zero();
        for s in &samples[starts[bi]..starts[bi + 1]] {
            acc = acc
                + s.w[0] * plane[s.off[0]]
                + s.w[1] * plane[s.off[1]]
                + s.w[2] * plane[s.off[2]]
                + s.w[3] * plane[s.off[3]];
        }
        o[b] = acc * inv;
    }
}

/// RoIAlign forward: `(K, C, pooled_h, pooled_w)`.
///
/// Many rois: parallel over rois (each computes its samples once, then all channels).
/// Few rois: parallel over channels within each roi.
pub fn roi_align<T: Scalar>(
    input: ArrayView4<'_, T>,
    rois: ArrayView2<'_, T>,
    p: RoiAlignParams<T>,
) -> KernelResult<Array4<T>> {
    let op = "roi_align";
    check_params(op, p.pooled_h, p.pooled_w)?;
    let (n, c, h, w) = input.dim();
    let batch = check_rois(op, &rois, n)?;
    let k = rois.nrows();
    let nbins = p.pooled_h * p.pooled_w;
    let mut out = Array4::<T>::zeros((k, c, p.pooled_h, p.pooled_w));
    let Some(data) = input.as_slice() else {
        return Err(KernelError::shape(format!("{op}: 'input' must be C-contiguous")));
    };
    let hw = h * w;
    let Some(out_flat) = out.as_slice_mut() else {
        unreachable!("fresh array is contiguous")
    };
    if k == 0 || c == 0 {
        return Ok(out);
    }
    let per_roi = |r: usize, out_k: &mut [T], samples: &mut Vec<Sample<T>>, starts: &mut Vec<usize>| {
        let g = align_geom(roi_coords(&rois, r), &p);
        let per = bins_per_chunk(&g, nbins);
        let base = &data[batch[r] * c * hw..(batch[r] + 1) * c * hw];
        let mut b0 = 0;
        while b0 < nbins {
            let b1 = (b0 + per).min(nbins);
            align_samples(&g, p.pooled_w, b0..b1, h, w, samples, starts);
            for (ch, o) in out_k.chunks_mut(nbins).enumerate() {
                gather_bins(&base[ch * hw..(ch + 1) * hw], samples, starts, b0..b1, g.inv_count, o);
            }
            b0 = b1;
        }
    };
    let work = k * c * nbins * 16;
    if k >= 4 * parallel::num_threads() {
        parallel::run(work, || {
            out_flat.par_chunks_mut(c * nbins).enumerate().for_each_init(
                || (Vec::new(), Vec::new()),
                |(samples, starts), (r, out_k)| per_roi(r, out_k, samples, starts),
            );
        });
        return Ok(out);
    }
    let (mut samples, mut starts) = (Vec::new(), Vec::new());
    for (r, out_k) in out_flat.chunks_mut(c * nbins).enumerate() {
        let g = align_geom(roi_coords(&rois, r), &p);
        let per = bins_per_chunk(&g, nbins);
        let base = &data[batch[r] * c * hw..(batch[r] + 1) * c * hw];
        let mut b0 = 0;
        while b0 < nbins {
            let b1 = (b0 + per).min(nbins);
            align_samples(&g, p.pooled_w, b0..b1, h, w, &mut samples, &mut starts);
            let (samples, starts) = (&samples, &starts);
            parallel::run(c * samples.len() * 4 + c, || {
                out_k.par_chunks_mut(nbins).enumerate().for_each(|(ch, o)| {
                    gather_bins(&base[ch * hw..(ch + 1) * hw], samples, starts, b0..b1, g.inv_count, o);
                });
            });
            b0 = b1;
        }
    }
    Ok(out)
}

/// Samples precomputed per backward pass (bounds its scratch memory).
const BACKWARD_SAMPLES: usize = 1 << 18;

/// A run of bins of one roi whose samples are in the shared scratch buffers.
struct Segment<T> {
    roi: usize,
    bins: std::ops::Range<usize>,
    /// Index in `starts` of the segment's first bin.
    first: usize,
    inv: T,
}

/// RoIAlign backward: adds the gradient w.r.t. the input into `grad_input` (N, C, H, W).
///
/// The samples of many rois are computed once, then each thread takes whole channels
/// and scatters every roi into them in roi order (deterministic for any thread count).
pub fn roi_align_backward<T: Scalar>(
    grad_output: ArrayView4<'_, T>,
    rois: ArrayView2<'_, T>,
    grad_input: ArrayViewMut4<'_, T>,
    p: RoiAlignParams<T>,
) -> KernelResult<()> {
    let op = "roi_align_backward";
    check_params(op, p.pooled_h, p.pooled_w)?;
    let (n, c, h, w) = grad_input.dim();
    let batch = check_rois(op, &rois, n)?;
    let k = rois.nrows();
    if grad_output.dim() != (k, c, p.pooled_h, p.pooled_w) {
        return Err(KernelError::shape(format!(
            "{op}: 'grad_output' has shape {:?}, expected ({k}, {c}, {}, {})",
            grad_output.shape(),
            p.pooled_h,
            p.pooled_w
        )));
    }
    let nbins = p.pooled_h * p.pooled_w;
    let Some(go) = grad_output.as_slice() else {
        return Err(KernelError::shape(format!("{op}: 'grad_output' must be C-contiguous")));
    };
    let hw = h * w;
    if !grad_input.is_standard_layout() {
        return Err(KernelError::shape(format!("{op}: 'grad_input' must be C-contiguous")));
    }
    if k == 0 || c == 0 || hw == 0 {
        return Ok(());
    }
    let Ok(mut gi) = grad_input.into_shape_with_order((n, c, hw)) else {
        return Err(KernelError::shape(format!("{op}: 'grad_input' must be C-contiguous")));
    };
    let mut samples: Vec<Sample<T>> = Vec::new();
    let mut starts: Vec<usize> = Vec::new();
    let mut segs: Vec<Segment<T>> = Vec::new();
    let (mut tmp_s, mut tmp_b) = (Vec::new(), Vec::new());
    let mut flush = |samples: &mut Vec<Sample<T>>, starts: &mut Vec<usize>, segs: &mut Vec<Segment<T>>| {
        if segs.is_empty() {
            return;
        }
        starts.push(samples.len());
        let (sm, st, sg) = (&*samples, &*starts, &*segs);
        parallel::run(c * sm.len() * 4 + c, || {
            gi.axis_iter_mut(Axis(1))
                .into_par_iter()
                .enumerate()
                .for_each(|(ch, mut planes)| {
                    for seg in sg {
                        let mut row = planes.row_mut(batch[seg.roi]);
                        let plane = row.as_slice_mut().expect("rows of a C-contiguous array are contiguous");
                        let gch = &go[(seg.roi * c + ch) * nbins..(seg.roi * c + ch + 1) * nbins];
                        for (bi, b) in seg.bins.clone().enumerate() {
                            let gv = gch[b] * seg.inv;
                            for s in &sm[st[seg.first + bi]..st[seg.first + bi + 1]] {
                                for q in 0..4 {
                                    plane[s.off[q]] = plane[s.off[q]] + gv * s.w[q];
                                }
                            }
                        }
                    }
                });
        });
        samples.clear();
        starts.clear();
        segs.clear();
    };
    for r in 0..k {
        let g = align_geom(roi_coords(&rois, r), &p);
        let per = bins_per_chunk(&g, nbins);
        let mut b0 = 0;
        while b0 < nbins {
            let b1 = (b0 + per).min(nbins);
            align_samples(&g, p.pooled_w, b0..b1, h, w, &mut tmp_s, &mut tmp_b);
            if samples.len() + tmp_s.len() > BACKWARD_SAMPLES {
                flush(&mut samples, &mut starts, &mut segs);
            }
            let base = samples.len();
            segs.push(Segment {
                roi: r,
                bins: b0..b1,
                first: starts.len(),
                inv: g.inv_count,
            });
            starts.extend(tmp_b[..tmp_b.len() - 1].iter().map(|&x| x + base));
            samples.extend_from_slice(&tmp_s);
            b0 = b1;
        }
    }
    flush(&mut samples, &mut starts, &mut segs);
    Ok(())
}

/// Integer bin bounds of RoIPool (torchvision): `(hstart, hend, wstart, wend)` per bin.
fn pool_bins<T: Scalar>(roi: [T; 4], scale: T, ph: usize, pw: usize, h: usize, w: usize) -> Vec<[i64; 4]> {
    let rnd = |v: T| -> i64 {
        let f = (v * scale).to_f64().unwrap_or(0.0).round();
        if f.is_nan() {
            0
        } else {
            f.clamp(-(1i64 << 40) as f64, (1i64 << 40) as f64) as i64
        }
    };
    let (sw, sh, ew, eh) = (rnd(roi[0]), rnd(roi[1]), rnd(roi[2]), rnd(roi[3]));
    let rw = (ew - sw + 1).max(1);
    let rh = (eh - sh + 1).max(1);
    let bh = T::from_i64(rh).unwrap() / T::from_usize(ph).unwrap();
    let bw = T::from_i64(rw).unwrap() / T::from_usize(pw).unwrap();
    let (h, w) = (h as i64, w as i64);
    let mut out = Vec::with_capacity(ph * pw);
    for i in 0..ph {
        for j in 0..pw {
            let fi = T::from_usize(i).unwrap();
            let fj = T::from_usize(j).unwrap();
            let hs = (fi * bh).floor().to_i64().unwrap_or(0);
            let he = ((fi + T::one()) * bh).ceil().to_i64().unwrap_or(0);
            let ws = (fj * bw).floor().to_i64().unwrap_or(0);
            let we = ((fj + T::one()) * bw).ceil().to_i64().unwrap_or(0);
            out.push([
                (hs + sh).clamp(0, h),
                (he + sh).clamp(0, h),
                (ws + sw).clamp(0, w),
                (we + sw).clamp(0, w),
            ]);
        }
    }
    out
}

/// RoIPool forward: `(output, argmax)`, both `(K, C, pooled_h, pooled_w)`; `argmax`
/// holds the flat `h * W + w` index of each maximum within its plane, -1 for an empty bin
/// (whose output is 0).
pub fn roi_pool<T: Scalar>(
    input: ArrayView4<'_, T>,
    rois: ArrayView2<'_, T>,
    pooled_h: usize,
    pooled_w: usize,
    spatial_scale: T,
) -> KernelResult<(Array4<T>, Array4<i64>)> {
    let k = rois.nrows();
    let c = input.len_of(Axis(1));
    let mut out = Array4::<T>::zeros((k, c, pooled_h, pooled_w));
    let mut arg = Array4::<i64>::zeros((k, c, pooled_h, pooled_w));
    roi_pool_into(input, rois, spatial_scale, out.view_mut(), arg.view_mut())?;
    Ok((out, arg))
}

/// One bin of every channel at once: `m[ch] = max` over the bin's pixels of the
/// channels-last plane set `xt (H, W, C)`, `mi[ch]` the flat index of the first pixel
/// strictly greater than all before it (torchvision's rule: starting from the lowest
/// finite value, NaN never wins; -1 when no pixel beats it). Vectorised over channels.
#[inline(always)]
fn pool_bin_body<T: Scalar>(xt: &[T], c: usize, w: usize, bin: [i64; 4], m: &mut [T], mi: &mut [i32]) {
    m.fill(T::min_value());
    mi.fill(-1);
    let (m, mi) = (&mut m[..c], &mut mi[..c]);
    for y in bin[0] as usize..bin[1] as usize {
        for x in bin[2] as usize..bin[3] as usize {
            let p = y * w + x;
            let px = &xt[p * c..(p + 1) * c];
            let idx = p as i32;
            for ((mv, ix), &v) in m.iter_mut().zip(mi.iter_mut()).zip(px) {
                let gt = v > *mv;
                *mv = if gt { v } else { *mv };
                *ix = if gt { idx } else { *ix };
            }
        }
    }
}
crate::multiversion!(fn pool_bin<T: Scalar>(xt: &[T], c: usize, w: usize, bin: [i64; 4], m: &mut [T], mi: &mut [i32]) -> () => pool_bin_body);

/// [`roi_pool`] into caller-provided `out` and `argmax` (both `(K, C, ph, pw)`,
/// C-contiguous, fully overwritten).
///
/// The input is first copied channels-last (`(N, H, W, C)`, one pass), so that each
/// bin is a max over a few pixels of whole channel vectors; tasks are rois (independent
/// outputs: the result does not depend on the thread count).
pub fn roi_pool_into<T: Scalar>(
    input: ArrayView4<'_, T>,
    rois: ArrayView2<'_, T>,
    spatial_scale: T,
    mut out: ArrayViewMut4<'_, T>,
    mut arg: ArrayViewMut4<'_, i64>,
) -> KernelResult<()> {
    let op = "roi_pool";
    let (k, oc, pooled_h, pooled_w) = out.dim();
    check_params(op, pooled_h, pooled_w)?;
    let (n, c, h, w) = input.dim();
    let batch = check_rois(op, &rois, n)?;
    if rois.nrows() != k || oc != c || arg.dim() != out.dim() {
        return Err(KernelError::shape(format!(
            "{op}: 'out' {:?} and 'argmax' {:?} must both be ({}, {c}, ph, pw)",
            out.shape(),
            arg.shape(),
            rois.nrows()
        )));
    }
    let Some(data) = input.as_slice() else {
        return Err(KernelError::shape(format!("{op}: 'input' must be C-contiguous")));
    };
    if h.checked_mul(w).is_none_or(|hw| hw > i32::MAX as usize) {
        return Err(KernelError::shape(format!("{op}: planes of {h}x{w} are too large")));
    }
    let (Some(of), Some(af)) = (out.as_slice_mut(), arg.as_slice_mut()) else {
        return Err(KernelError::shape(format!("{op}: 'out' and 'argmax' must be C-contiguous")));
    };
    if k == 0 || c == 0 {
        return Ok(());
    }
    let hw = h * w;
    let nbins = pooled_h * pooled_w;
    let bins: Vec<Vec<[i64; 4]>> = (0..k)
        .map(|r| pool_bins(roi_coords(&rois, r), spatial_scale, pooled_h, pooled_w, h, w))
        .collect();
    // Only the images some roi refers to are transposed.
    let mut used = vec![false; n];
    for &b in &batch {
        used[b] = true;
    }
    let mut xt = vec![T::zero(); n * hw * c];
    let visits: usize = bins.iter().flatten().map(|b| ((b[1] - b[0]).max(0) * (b[3] - b[2]).max(0)) as usize).sum();
    parallel::run(n * hw * c + visits.saturating_mul(c) + k * c * nbins, || {
        xt.par_chunks_mut(w * c).enumerate().for_each(|(ny, dst)| {
            let (img, y) = (ny / h, ny % h);
            if !used[img] {
                return;
            }
            for ch in 0..c {
                let src = &data[(img * c + ch) * hw + y * w..(img * c + ch) * hw + (y + 1) * w];
                for (x, &v) in src.iter().enumerate() {
                    dst[x * c + ch] = v;
                }
            }
        });
        let xt = &xt;
        of.par_chunks_mut(c * nbins).zip(af.par_chunks_mut(c * nbins)).enumerate().for_each_init(
            || (vec![T::zero(); c], vec![0i32; c]),
            |(m, mi), (r, (o, a))| {
                let planes = &xt[batch[r] * hw * c..(batch[r] + 1) * hw * c];
                for (b, &bin) in bins[r].iter().enumerate() {
                    if bin[1] <= bin[0] || bin[3] <= bin[2] {
                        for ch in 0..c {
                            o[ch * nbins + b] = T::zero();
                            a[ch * nbins + b] = -1;
                        }
                        continue;
                    }
                    pool_bin(planes, c, w, bin, m, mi);
                    for ch in 0..c {
                        o[ch * nbins + b] = m[ch];
                        a[ch * nbins + b] = mi[ch] as i64;
                    }
                }
            },
        );
    });
    Ok(())
}

/// RoIPool backward: adds `grad_output` at the saved `argmax` positions of `grad_input`.
pub fn roi_pool_backward<T: Scalar>(
    grad_output: ArrayView4<'_, T>,
    rois: ArrayView2<'_, T>,
    argmax: ArrayView4<'_, i64>,
    mut grad_input: ArrayViewMut4<'_, T>,
) -> KernelResult<()> {
    let op = "roi_pool_backward";
    let (n, c, h, w) = grad_input.dim();
    let batch = check_rois(op, &rois, n)?;
    let k = rois.nrows();
    let gdim = grad_output.dim();
    if gdim.0 != k || gdim.1 != c || argmax.dim() != gdim {
        return Err(KernelError::shape(format!(
            "{op}: 'grad_output' has shape {:?} and 'argmax' {:?}; expected both ({k}, {c}, ph, pw)",
            grad_output.shape(),
            argmax.shape()
        )));
    }
    let hw = (h * w) as i64;
    if argmax.iter().any(|&a| a < -1 || a >= hw) {
        return Err(KernelError::param(format!(
            "{op}: 'argmax' has entries outside [-1, {hw})"
        )));
    }
    parallel::run(grad_output.len() + 1, || {
        grad_input
            .axis_iter_mut(Axis(1))
            .into_par_iter()
            .enumerate()
            .for_each(|(ch, mut gplane)| {
                for r in 0..k {
                    let mut dst = gplane.index_axis_mut(Axis(0), batch[r]);
                    for ((y, x), &a) in argmax.index_axis(Axis(0), r).index_axis(Axis(0), ch).indexed_iter() {
                        if a >= 0 {
                            let (yy, xx) = ((a / w as i64) as usize, (a % w as i64) as usize);
                            dst[[yy, xx]] = dst[[yy, xx]] + grad_output[[r, ch, y, x]];
                        }
                    }
                }
            });
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    fn input(n: usize, c: usize, h: usize, w: usize) -> Array4<f64> {
        Array4::from_shape_fn((n, c, h, w), |(a, b, y, x)| {
            ((a * 7 + b * 3 + y * 5 + x * 11) % 13) as f64 - 6.0
        })
    }

    #[test]
    fn align_of_whole_aligned_box_is_mean_of_pixel_centres() {
        // aligned=True, one bin over pixels [0,2)x[0,2), sampling 2: samples land on pixel
        // centres 0.5 - 0.5 = 0 and 1, so the output is the mean of the 4 pixels.
        let x = input(1, 2, 4, 4);
        let rois = array![[0.0, 0.0, 0.0, 2.0, 2.0]];
        let p = RoiAlignParams {
            pooled_h: 1,
            pooled_w: 1,
            spatial_scale: 1.0,
            sampling_ratio: 2,
            aligned: true,
        };
        let o = roi_align(x.view(), rois.view(), p).unwrap();
        for ch in 0..2 {
            let want = (x[[0, ch, 0, 0]] + x[[0, ch, 0, 1]] + x[[0, ch, 1, 0]] + x[[0, ch, 1, 1]]) / 4.0;
            assert!((o[[0, ch, 0, 0]] - want).abs() < 1e-12);
        }
    }

    #[test]
    fn align_backward_is_adjoint() {
        let x = input(2, 3, 6, 7);
        let rois: Array2<f64> = array![
            [1.0, 0.3, 0.7, 5.2, 4.9],
            [0.0, -1.5, 2.0, 3.0, 8.0],
            [1.0, 2.0, 2.0, 2.5, 1.0]
        ];
        for &aligned in &[false, true] {
            for &sr in &[-1i64, 2] {
                let p = RoiAlignParams {
                    pooled_h: 2,
                    pooled_w: 3,
                    spatial_scale: 0.9,
                    sampling_ratio: sr,
                    aligned,
                };
                let o = roi_align(x.view(), rois.view(), p).unwrap();
                let go = Array4::from_shape_fn(o.dim(), |(a, b, c, d)| (a + 2 * b + 3 * c + 5 * d) as f64 * 0.1 - 1.0);
                let mut gi = Array4::zeros(x.dim());
                roi_align_backward(go.view(), rois.view(), gi.view_mut(), p).unwrap();
                let lhs: f64 = (&o * &go).sum();
                let rhs: f64 = (&x * &gi).sum();
                assert!((lhs - rhs).abs() < 1e-9, "{lhs} vs {rhs}");
            }
        }
    }

    /// The old single-loop scan (torchvision's CPU kernel) as the reference.
    fn pool_scan(x: &Array4<f64>, rois: &ndarray::Array2<f64>, ph: usize, pw: usize, scale: f64) -> (Array4<f64>, Array4<i64>) {
        let (_, c, h, w) = x.dim();
        let k = rois.nrows();
        let mut out = Array4::zeros((k, c, ph, pw));
        let mut arg = Array4::from_elem((k, c, ph, pw), -1i64);
        for r in 0..k {
            let b = rois[[r, 0]] as usize;
            let bins = pool_bins([rois[[r, 1]], rois[[r, 2]], rois[[r, 3]], rois[[r, 4]]], scale, ph, pw, h, w);
            for ch in 0..c {
                for (i, &[hs, he, ws, we]) in bins.iter().enumerate() {
                    if he <= hs || we <= ws {
                        continue;
                    }
                    let (mut m, mut mi) = (f64::MIN, -1i64);
                    for y in hs..he {
                        for xx in ws..we {
                            let v = x[[b, ch, y as usize, xx as usize]];
                            if v > m {
                                m = v;
                                mi = y * w as i64 + xx;
                            }
                        }
                    }
                    out[[r, ch, i / pw, i % pw]] = m;
                    arg[[r, ch, i / pw, i % pw]] = mi;
                }
            }
        }
        (out, arg)
    }

    #[test]
    fn pool_matches_the_sequential_scan_with_ties_nan_and_lowest() {
        let mut x = Array4::from_shape_fn((2, 3, 9, 11), |(a, b, c, d)| ((a * 7 + b * 5 + c * 3 + d * 11) % 6) as f64);
        x[[0, 0, 2, 3]] = f64::NAN;
        x[[1, 2, 4, 4]] = f64::NAN;
        for y in 0..4 {
            for xx in 0..4 {
                x[[0, 1, y, xx]] = f64::MIN; // a bin of only the lowest value: argmax -1
            }
        }
        x[[1, 1, 0, 0]] = -0.0;
        x[[1, 1, 0, 1]] = 0.0;
        let rois = ndarray::array![
            [0.0, 0.0, 0.0, 3.0, 3.0],
            [1.0, 0.5, 0.2, 10.0, 8.0],
            [0.0, -3.0, -2.0, 20.0, 15.0],
            [1.0, 4.0, 4.0, 4.0, 4.0],
            [0.0, 2.0, 1.0, 9.0, 7.0]
        ];
        for (ph, pw, scale) in [(1, 1, 1.0), (2, 2, 1.0), (3, 2, 0.5), (4, 5, 1.0)] {
            let (o, a) = roi_pool(x.view(), rois.view(), ph, pw, scale).unwrap();
            let (ro, ra) = pool_scan(&x, &rois, ph, pw, scale);
            assert_eq!(a, ra, "{ph}x{pw} {scale}");
            for (p, q) in o.iter().zip(ro.iter()) {
                assert!(p.to_bits() == q.to_bits(), "{p} vs {q}");
            }
        }
    }

    #[test]
    fn pool_and_backward() {
        let x = input(1, 1, 5, 5);
        let rois = array![[0.0, 0.0, 0.0, 4.0, 4.0]];
        let (o, a) = roi_pool(x.view(), rois.view(), 1, 1, 1.0).unwrap();
        let m = x.iter().cloned().fold(f64::MIN, f64::max);
        assert_eq!(o[[0, 0, 0, 0]], m);
        let mut gi = Array4::zeros(x.dim());
        roi_pool_backward(
            Array4::from_elem((1, 1, 1, 1), 2.0).view(),
            rois.view(),
            a.view(),
            gi.view_mut(),
        )
        .unwrap();
        assert_eq!(gi.sum(), 2.0);
        let bad = array![[3.0, 0.0, 0.0, 4.0, 4.0]];
        assert!(roi_pool(x.view(), bad.view(), 1, 1, 1.0)
            .unwrap_err()
            .to_string()
            .contains("'boxes'"));
    }
}
