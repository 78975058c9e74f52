//! Direct ("implicit GEMM") convolution for few taps per output: 2-D, one group,
//! `K = C_in * kh * kw` small (first layers: RGB stems, LeNet), where im2col would write
//! and read a column matrix K times the input's size for a skinny GEMM. Forward pass and
//! weight gradient; the input gradient stays with im2col/col2im.
//!
//! Forward, per task (a block of images, or a band of output rows of one image):
//! - the input rows the band reads are copied into a zero-padded scratch, split into
//!   `stride_y * stride_x` phase planes per channel, so that consecutive output pixels of
//!   a row read consecutive scratch elements for every tap, whatever the stride, and no
//!   bounds are checked in the inner loop;
//! - every tap `(c, ky, kx)` is one offset into the scratch (dilation and phase folded
//!   in), precomputed once per call;
//! - the weights are packed once as `K x C_out` with the output channels padded to whole
//!   vectors (`W` lanes: 16 f32 or 8 f64), in blocks of at most 4 vectors;
//! - a register block of `P` consecutive pixels of an output row times `V` vectors of
//!   output channels runs over the K taps: broadcast the input value of each pixel and
//!   multiply-add it with the weight vectors. Rows are cut into equal chunks of at most
//!   `P_max(V)` pixels; the last chunk of a row may compute a few pixels past its end
//!   (reading scratch columns) whose results land in the tile slots the next row then
//!   overwrites. The blocks of a few rows are gathered in a small tile and written into
//!   the NCHW output by 16 x 16 transposes (plus the bias); outputs much larger than the
//!   caches are written with streaming stores into a 64-byte aligned array that is not
//!   zero-filled first.
//!
//! Weight gradient, see [`weight_grad`]: the same scratch; `dy` rows and shifted scratch
//! rows are both contiguous, so blocks of 4 channels x 6 taps are sums of products of
//! vectors along the output rows.
//!
//! Every forward output is the same fixed-order sum over the K taps whatever the tiling,
//! so the result does not depend on the thread count or on how the work is cut (with
//! AVX-512 it even equals the im2col + GEMM path bit for bit on the shapes measured); the
//! weight gradient's cut is a function of the shapes only. AVX-512 kernels (f32 and f64,
//! fused multiply-adds) are chosen at run time; the portable kernels (plain multiply then
//! add) give the same results up to rounding and serve as their reference. On CPUs
//! without AVX-512 the im2col + GEMM path (with the gemm crate's own AVX2 kernels) stays
//! in charge. `OXINET_DIRECT_CONV=0` turns these paths off, `OXINET_DIRECT_CONV=portable`
//! forces the portable kernels (tests); read once per process.

use super::im2col::SendPtr;
use super::Geom;
use crate::gemm::Scalar;
use crate::parallel;
use crate::simd::{level, SimdLevel};
use rayon::prelude::*;
use std::any::TypeId;

/// Most vectors of output channels per register block.
const MAX_V: usize = 4;
/// Most pixel pairs per register block in pair mode (f32, at most 8 output channels).
const PAIRS_MAX: usize = 14;
/// Most pixels per register block for `V` channel vectors (`P * V` accumulators of the
/// 32 vector registers, leaving room for the weights and the broadcast).
const fn p_max(v: usize) -> usize {
    match v {
        1 => 14,
        2 => 12,
        3 => 8,
        _ => 6,
    }
}

/// Multiply-adds per task aimed for (about 10-20 us on one core).
const TASK_WORK: usize = 1 << 23;

/// Outputs of at least this many bytes are written with streaming stores.
const STREAM_BYTES: usize = 16 << 20;

/// Bytes of register-block results gathered before they are written out transposed.
const TILE_BYTES: usize = 32 << 10;

/// Largest `K = C_in * kh * kw` of a forward (or stride-1 input gradient) sent here;
/// see [`forward_applies`]. Larger ones were not measured.
const MAX_K: usize = 4608;

/// Largest `K` of a weight gradient sent here (measured crossover, see
/// [`weight_grad_applies`]).
const MAX_K_WGRAD: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Off,
    Auto,
    Portable,
}

fn mode() -> Mode {
    use std::sync::OnceLock;
    static MODE: OnceLock<Mode> = OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("OXINET_DIRECT_CONV").as_deref().map(str::trim) {
        Ok("0") => Mode::Off,
        Ok("portable") => Mode::Portable,
        _ => Mode::Auto,
    })
}

fn is<T: 'static, U: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<U>()
}

/// Vector lanes of `T` in a 512-bit register.
fn lanes<T>() -> usize {
    64 / std::mem::size_of::<T>()
}

/// 2-D (no depth), one group.
fn family(g: &Geom) -> bool {
    g.groups == 1 && g.kernel[0] == 1 && g.input[0] == 1 && g.output[0] == 1 && g.p.pad_lo[0] == 0 && g.p.pad_hi[0] == 0
}

/// Whether the forward convolution goes through this path (and should, by speed).
///
/// Measured (2 threads, f32, ms direct / im2col + GEMM in the same run): N256 C6 14x14
/// k5 O16 0.38 / 1.19; N8 C3 224x224 k7 s2 O64 4.6 / 15.4; N64 C3 64x64 k4 O8 1.21 /
/// 1.46; N32 C8 32x32 k5 O32 1.92 / 3.10; N8 C64 28x28 k2 s2 O64 (K = 256) 0.30 / 0.53;
/// N64 C1 28x28 k5 O6 0.149 / 0.176; N64 C3 32x32 k3 O8 0.26 / 0.33. With fewer taps
/// and more channels the output's transposed write dominates and im2col wins or ties:
/// N64 C3 32x32 k3 O16 (K = 27) 0.48 / 0.40, N32 C4 64x64 k3 O64 (K = 36) 6.5 / 6.1.
/// Shapes Winograd takes stay there (ties or better: N32 C28 28x28 k3 O64 3.8 / 3.7).
/// float64 (AVX-512 kernel, 8 lanes) gains as well: N256 C6 k5 O16 0.66 / 1.62, N8 C3 224
/// k7 s2 O64 11.1 / 15.8, N64 C3 64x64 k4 O8 1.46 / 2.41.
/// Many taps on small planes and stride 2, where im2col's per-image products are short:
/// N64 C64 8x8 k3 O64 (K = 576) 0.90 / 1.49, N64 C128 4x4 k3 O128 1.00 / 2.29, N64 C512
/// 4x4 k3 O128 (K = 4608) 4.9 / 6.4, N32 C64 56x56 k3 s2 O128 11.3 / 13.9, N64 C256 8x8
/// k3 s2 O128 2.65 / 5.3, N8 C64 27x27 k5 O128 6.1 / 7.3.
pub(crate) fn forward_applies(g: &Geom, elem: usize) -> bool {
    let m = mode();
    if m == Mode::Off || !family(g) || g.pointwise() {
        return false;
    }
    if m == Mode::Auto && level() != SimdLevel::Avx512 {
        return false;
    }
    let k = g.k_rows();
    k <= MAX_K && g.c_out <= 128 && (k >= 32 || g.c_out <= 8) && !super::winograd::forward_applies(g, elem)
}

/// Everything the tasks share: scratch geometry, tap offsets, packed weights.
struct Plan<T> {
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    oh: usize,
    ow: usize,
    sy: usize,
    sx: usize,
    top: usize,
    left: usize,
    /// phase-plane rows beyond the band's output rows (kernel reach / stride)
    extra_rows: usize,
    /// phase-plane width (chunks * p + kernel reach / stride)
    wq: usize,
    /// vectors per channel block, lanes per vector, channel blocks
    v: usize,
    lanes: usize,
    blocks: usize,
    /// pixels per chunk, chunks per output row
    p: usize,
    chunks: usize,
    /// per tap: (channel * sy + phase_y) * sx + phase_x, row offset, column offset
    taps: Vec<(usize, usize, usize)>,
    /// `blocks` packed weight blocks of `K x (v * lanes)`
    wpk: Vec<T>,
}

impl<T: Scalar> Plan<T> {
    /// `ws` (the forward's weights) is packed when given; `pair`: see the field.
    fn new(g: &Geom, ws: Option<&[T]>, pair: bool) -> Plan<T> {
        let [_, kh, kw] = g.kernel;
        let [_, sy, sx] = g.p.stride;
        let [_, dy, dx] = g.p.dilation;
        let lanes = lanes::<T>();
        let blocks = g.c_out.div_ceil(MAX_V * lanes);
        let v = g.c_out.div_ceil(blocks).div_ceil(lanes);
        let ow = g.output[2];
        let (chunks, p) = if pair {
            // an even number of pixels per chunk, up to PAIRS_MAX pairs
            let chunks = ow.div_ceil(2 * PAIRS_MAX);
            (chunks, 2 * ow.div_ceil(chunks).div_ceil(2))
        } else {
            let chunks = ow.div_ceil(p_max(v));
            (chunks, ow.div_ceil(chunks))
        };
        let extra_rows = (kh - 1) * dy / sy;
        let wq = chunks * p + (kw - 1) * dx / sx;
        let mut taps = Vec::with_capacity(g.k_rows());
        for c in 0..g.c_in {
            for ky in 0..kh {
                for kx in 0..kw {
                    let (ry, rx) = (ky * dy, kx * dx);
                    taps.push(((c * sy + ry % sy) * sx + rx % sx, ry / sy, rx / sx));
                }
            }
        }
        let k = g.k_rows();
        let vl = v * lanes;
        let mut wpk = vec![T::zero(); if ws.is_some() { blocks * k * vl } else { 0 }];
        for co in (0..g.c_out).filter(|_| ws.is_some()) {
            let ws = ws.expect("weights given");
            let (b, j) = (co / vl, co % vl);
            for t in 0..k {
                if pair {
                    // lanes 2j and 2j + 1: channel j of the pair's two pixels
                    wpk[t * vl + 2 * j] = ws[co * k + t];
                    wpk[t * vl + 2 * j + 1] = ws[co * k + t];
                } else {
                    wpk[(b * k + t) * vl + j] = ws[co * k + t];
                }
            }
        }
        Plan {
            c: g.c_in,
            h: g.input[1],
            w: g.input[2],
            o: g.c_out,
            oh: g.output[1],
            ow,
            sy,
            sx,
            top: g.p.pad_lo[1],
            left: g.p.pad_lo[2],
            extra_rows,
            wq,
            v,
            lanes,
            blocks,
            p,
            chunks,
            taps,
            wpk,
        }
    }

    fn k(&self) -> usize {
        self.taps.len()
    }

    /// Scratch elements for a band of `rows` output rows.
    fn scratch_len(&self, rows: usize) -> usize {
        self.c * self.sy * self.sx * (rows + self.extra_rows) * self.wq
    }

    /// Tap offsets into the scratch of a band of `rows` output rows.
    fn offsets(&self, rows: usize) -> Vec<usize> {
        let plane = (rows + self.extra_rows) * self.wq;
        self.taps
            .iter()
            .map(|&(ph, r, c)| ph * plane + r * self.wq + c)
            .collect()
    }

    /// Copy the input rows that output rows `oy0 .. oy0 + rows` of image `xi` (one
    /// image, `(C, H, W)`) read into `dst`, as zero-padded phase planes.
    fn fill(&self, xi: &[T], oy0: usize, rows: usize, dst: &mut [T]) {
        let (hq, wq) = (rows + self.extra_rows, self.wq);
        let (h, w, sy, sx, top, left) = (self.h, self.w, self.sy, self.sx, self.top, self.left);
        let mut rows_out = dst.chunks_exact_mut(wq);
        for c in 0..self.c {
            let xc = &xi[c * h * w..(c + 1) * h * w];
            for py in 0..sy {
                for px in 0..sx {
                    // columns qx with left <= qx * sx + px < left + w
                    let lo = if left > px { (left - px).div_ceil(sx) } else { 0 }.min(wq);
                    let hi = (left + w).saturating_sub(px).div_ceil(sx).clamp(lo, wq);
                    // first input column read: lo * sx + px - left
                    let s0 = (lo * sx + px).saturating_sub(left);
                    for qy in 0..hq {
                        let row = rows_out.next().expect("scratch holds every phase row");
                        let yp = (oy0 + qy) * sy + py;
                        if yp < top || yp - top >= h || hi == lo {
                            row.fill(T::zero());
                            continue;
                        }
                        let src = &xc[(yp - top) * w..(yp - top + 1) * w];
                        row[..lo].fill(T::zero());
                        row[hi..].fill(T::zero());
                        if sx == 1 {
                            row[lo..hi].copy_from_slice(&src[s0..s0 + (hi - lo)]);
                        } else if sx == 2 {
                            strided::<T, 2>(&mut row[lo..hi], &src[s0..]);
                        } else {
                            for (d, &v) in row[lo..hi].iter_mut().zip(src[s0..].iter().step_by(sx)) {
                                *d = v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `dst[i] = src[S * i]` (a fixed stride the compiler vectorises with shuffles).
#[inline]
fn strided<T: Copy, const S: usize>(dst: &mut [T], src: &[T]) {
    let n = dst.len();
    if n == 0 {
        return;
    }
    let src = &src[..S * (n - 1) + 1];
    // blocks of 16 as fixed-size arrays (vectorised), then the rest
    let blocks = (n - 1) / 16;
    for b in 0..blocks {
        let s: &[T] = &src[S * 16 * b..S * 16 * (b + 1)];
        let d: &mut [T; 16] = (&mut dst[16 * b..16 * (b + 1)]).try_into().expect("16");
        for (i, v) in d.iter_mut().enumerate() {
            *v = s[S * i];
        }
    }
    for i in 16 * blocks..n {
        dst[i] = src[S * i];
    }
}

/// One register block: `tile[p * V * W + j] = sum over taps t of
/// x[base + offs[t] + p] * wpk[t * V * W + j]`, `p < P`, `j < V * W`.
type Kern<T> = unsafe fn(*const T, &[usize], *const T, *mut T);

/// Portable kernel: plain multiply then add, in tap order.
///
/// # Safety
/// `x + offs[t] + p` must be readable for every tap and `p < P`, `w` must hold
/// `offs.len() * V * W` values and `tile` room for `P * V * W`.
unsafe fn kern_portable<T: Scalar, const P: usize, const V: usize, const W: usize>(
    x: *const T,
    offs: &[usize],
    w: *const T,
    tile: *mut T,
) {
    let mut acc = [[[T::zero(); W]; V]; P];
    let mut wp = w;
    for &off in offs {
        let xp = x.add(off);
        let wv: [[T; W]; V] = std::ptr::read_unaligned(wp as *const [[T; W]; V]);
        for (p, ap) in acc.iter_mut().enumerate() {
            let xv = *xp.add(p);
            for (av, wv) in ap.iter_mut().zip(&wv) {
                for (a, &w) in av.iter_mut().zip(wv) {
                    *a = *a + xv * w;
                }
            }
        }
        wp = wp.add(V * W);
    }
    std::ptr::write_unaligned(tile as *mut [[[T; W]; V]; P], acc);
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// f32, 16 lanes: see [`super::Kern`].
    ///
    /// # Safety
    /// AVX-512F present; pointers as for [`super::kern_portable`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn kern_f32<const P: usize, const V: usize>(
        x: *const f32,
        offs: &[usize],
        w: *const f32,
        tile: *mut f32,
    ) {
        let mut acc = [[_mm512_setzero_ps(); V]; P];
        let mut wp = w;
        for &off in offs {
            let xp = x.add(off);
            let mut wv = [_mm512_setzero_ps(); V];
            for (v, r) in wv.iter_mut().enumerate() {
                *r = _mm512_loadu_ps(wp.add(16 * v));
            }
            for (p, a) in acc.iter_mut().enumerate() {
                let xb = _mm512_set1_ps(*xp.add(p));
                for v in 0..V {
                    a[v] = _mm512_fmadd_ps(xb, wv[v], a[v]);
                }
            }
            wp = wp.add(16 * V);
        }
        for (p, a) in acc.iter().enumerate() {
            for (v, &r) in a.iter().enumerate() {
                _mm512_storeu_ps(tile.add((p * V + v) * 16), r);
            }
        }
    }

    /// 16 x 16 transpose: `r[i][j]` becomes `r[j][i]`.
    #[target_feature(enable = "avx512f")]
    unsafe fn transpose16(r: &mut [__m512; 16]) {
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // r[4g + k], lane block L: column 4L + k of rows 4g .. 4g + 4
        for g in 0..4 {
            r[4 * g] = _mm512_shuffle_ps::<0x44>(t[4 * g], t[4 * g + 2]);
            r[4 * g + 1] = _mm512_shuffle_ps::<0xee>(t[4 * g], t[4 * g + 2]);
            r[4 * g + 2] = _mm512_shuffle_ps::<0x44>(t[4 * g + 1], t[4 * g + 3]);
            r[4 * g + 3] = _mm512_shuffle_ps::<0xee>(t[4 * g + 1], t[4 * g + 3]);
        }
        for h in 0..2 {
            for k in 0..4 {
                t[8 * h + k] = _mm512_shuffle_f32x4::<0x88>(r[8 * h + k], r[8 * h + k + 4]);
                t[8 * h + k + 4] = _mm512_shuffle_f32x4::<0xdd>(r[8 * h + k], r[8 * h + k + 4]);
            }
        }
        for k in 0..8 {
            r[k] = _mm512_shuffle_f32x4::<0x88>(t[k], t[k + 8]);
            r[k + 8] = _mm512_shuffle_f32x4::<0xdd>(t[k], t[k + 8]);
        }
    }

    /// See [`super::Writer`]; `vl` is a multiple of 16.
    ///
    /// # Safety
    /// AVX-512F present; `tile` holds `(npos + 16) * vl` values, `dst + j * ld + pos` is
    /// writable for `j < nco`, `pos < npos`.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn write_f32(
        tile: &[f32],
        vl: usize,
        npos: usize,
        nco: usize,
        bias: Option<&[f32]>,
        dst: *mut f32,
        ld: usize,
        stream: bool,
    ) {
        debug_assert!(vl.is_multiple_of(16) && tile.len() >= (npos.div_ceil(16) * 16) * vl);
        let tp = tile.as_ptr();
        let mut r = [_mm512_setzero_ps(); 16];
        for j0 in (0..nco).step_by(16) {
            let nj = (nco - j0).min(16);
            for p0 in (0..npos).step_by(16) {
                let np = (npos - p0).min(16);
                for (i, v) in r.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(tp.add((p0 + i) * vl + j0));
                }
                transpose16(&mut r);
                let mask: __mmask16 = if np == 16 { 0xffff } else { (1u16 << np) - 1 };
                for (j, &v) in r[..nj].iter().enumerate() {
                    let v = match bias {
                        Some(b) => _mm512_add_ps(v, _mm512_set1_ps(b[j0 + j])),
                        None => v,
                    };
                    let d = dst.add((j0 + j) * ld + p0);
                    if stream && np == 16 && (d as usize).is_multiple_of(64) {
                        _mm512_stream_ps(d, v);
                    } else {
                        _mm512_mask_storeu_ps(d, mask, v);
                    }
                }
            }
        }
        _mm_sfence();
    }

    /// Pair mode, f32: `Q` pairs of pixels; lane `2j + e` of vector `q` is channel `j`
    /// of pixel `2q + e` (weights packed with each channel in two adjacent lanes, the
    /// input pairs broadcast as 64-bit values). See [`super::Kern`].
    ///
    /// # Safety
    /// AVX-512F present; pointers as for [`super::kern_portable`] with `P = 2 * Q`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn kern_pair_f32<const Q: usize>(x: *const f32, offs: &[usize], w: *const f32, tile: *mut f32) {
        let mut acc = [_mm512_setzero_ps(); Q];
        let mut wp = w;
        for &off in offs {
            let xp = x.add(off);
            let wv = _mm512_loadu_ps(wp);
            for (q, a) in acc.iter_mut().enumerate() {
                let pair = std::ptr::read_unaligned(xp.add(2 * q) as *const f64);
                let xb = _mm512_castpd_ps(_mm512_set1_pd(pair));
                *a = _mm512_fmadd_ps(xb, wv, *a);
            }
            wp = wp.add(16);
        }
        for (q, &a) in acc.iter().enumerate() {
            _mm512_storeu_ps(tile.add(16 * q), a);
        }
    }

    /// Pair-mode writer: the tile holds 16 values per pair of positions (lane `2j + e`:
    /// channel `j`, position `2i + e`); see [`super::Writer`] (`vl` unused, `nco <= 8`).
    ///
    /// # Safety
    /// AVX-512F present; `tile` holds `npos + 32` positions (8 values each),
    /// `dst + j * ld + pos` is writable for `j < nco`, `pos < npos`.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn write_pair_f32(
        tile: &[f32],
        _vl: usize,
        npos: usize,
        nco: usize,
        bias: Option<&[f32]>,
        dst: *mut f32,
        ld: usize,
        stream: bool,
    ) {
        debug_assert!(nco <= 8 && tile.len() >= (npos.div_ceil(32) * 32) * 8);
        let tp = tile.as_ptr();
        let lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let hi_idx = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        let mut r = [_mm512_setzero_ps(); 16];
        for p0 in (0..npos).step_by(32) {
            for (i, v) in r.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(tp.add((p0 / 2 + i) * 16));
            }
            // row 2j + e: channel j, positions p0 + 2i + e
            transpose16(&mut r);
            let n0 = (npos - p0).min(16);
            let n1 = (npos - p0).saturating_sub(16).min(16);
            for j in 0..nco {
                let mut halves = [
                    _mm512_permutex2var_ps(r[2 * j], lo_idx, r[2 * j + 1]),
                    _mm512_permutex2var_ps(r[2 * j], hi_idx, r[2 * j + 1]),
                ];
                if let Some(b) = bias {
                    let bv = _mm512_set1_ps(b[j]);
                    for h in halves.iter_mut() {
                        *h = _mm512_add_ps(*h, bv);
                    }
                }
                for (h, (&v, np)) in halves.iter().zip([n0, n1]).enumerate() {
                    if np == 0 {
                        continue;
                    }
                    let d = dst.add(j * ld + p0 + 16 * h);
                    if stream && np == 16 && (d as usize).is_multiple_of(64) {
                        _mm512_stream_ps(d, v);
                    } else {
                        let mask: __mmask16 = if np == 16 { 0xffff } else { (1u16 << np) - 1 };
                        _mm512_mask_storeu_ps(d, mask, v);
                    }
                }
            }
        }
        _mm_sfence();
    }

    /// f64, 8 lanes: see [`super::Kern`].
    ///
    /// # Safety
    /// AVX-512F present; pointers as for [`super::kern_portable`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn kern_f64<const P: usize, const V: usize>(
        x: *const f64,
        offs: &[usize],
        w: *const f64,
        tile: *mut f64,
    ) {
        let mut acc = [[_mm512_setzero_pd(); V]; P];
        let mut wp = w;
        for &off in offs {
            let xp = x.add(off);
            let mut wv = [_mm512_setzero_pd(); V];
            for (v, r) in wv.iter_mut().enumerate() {
                *r = _mm512_loadu_pd(wp.add(8 * v));
            }
            for (p, a) in acc.iter_mut().enumerate() {
                let xb = _mm512_set1_pd(*xp.add(p));
                for v in 0..V {
                    a[v] = _mm512_fmadd_pd(xb, wv[v], a[v]);
                }
            }
            wp = wp.add(8 * V);
        }
        for (p, a) in acc.iter().enumerate() {
            for (v, &r) in a.iter().enumerate() {
                _mm512_storeu_pd(tile.add((p * V + v) * 8), r);
            }
        }
    }
}

/// `$f::<P, V ...>` for the runtime `(v, p)` (p <= p_max(v)).
macro_rules! pick {
    ($v:expr, $p:expr, |$P:ident, $V:ident| $e:expr) => {{
        macro_rules! arm {
            ($pp:literal, $vv:literal) => {{
                const $P: usize = $pp;
                const $V: usize = $vv;
                $e
            }};
        }
        match ($v, $p) {
            (1, 1) => arm!(1, 1), (1, 2) => arm!(2, 1), (1, 3) => arm!(3, 1), (1, 4) => arm!(4, 1),
            (1, 5) => arm!(5, 1), (1, 6) => arm!(6, 1), (1, 7) => arm!(7, 1), (1, 8) => arm!(8, 1),
            (1, 9) => arm!(9, 1), (1, 10) => arm!(10, 1), (1, 11) => arm!(11, 1), (1, 12) => arm!(12, 1),
            (1, 13) => arm!(13, 1), (1, 14) => arm!(14, 1),
            (2, 1) => arm!(1, 2), (2, 2) => arm!(2, 2), (2, 3) => arm!(3, 2), (2, 4) => arm!(4, 2),
            (2, 5) => arm!(5, 2), (2, 6) => arm!(6, 2), (2, 7) => arm!(7, 2), (2, 8) => arm!(8, 2),
            (2, 9) => arm!(9, 2), (2, 10) => arm!(10, 2), (2, 11) => arm!(11, 2), (2, 12) => arm!(12, 2),
            (3, 1) => arm!(1, 3), (3, 2) => arm!(2, 3), (3, 3) => arm!(3, 3), (3, 4) => arm!(4, 3),
            (3, 5) => arm!(5, 3), (3, 6) => arm!(6, 3), (3, 7) => arm!(7, 3), (3, 8) => arm!(8, 3),
            (4, 1) => arm!(1, 4), (4, 2) => arm!(2, 4), (4, 3) => arm!(3, 4), (4, 4) => arm!(4, 4),
            (4, 5) => arm!(5, 4), (4, 6) => arm!(6, 4),
            _ => unreachable!("direct conv: no register block {:?}", ($v, $p)),
        }
    }};
}

/// The kernel for `T`, `v` channel vectors and `p` pixels.
fn kernel<T: Scalar>(v: usize, p: usize, simd: bool) -> Kern<T> {
    #[cfg(target_arch = "x86_64")]
    if simd {
        if is::<T, f32>() {
            let f: Kern<f32> = pick!(v, p, |P, V| avx512::kern_f32::<P, V> as Kern<f32>);
            // SAFETY: T is f32, so the two function pointer types are the same.
            return unsafe { std::mem::transmute::<Kern<f32>, Kern<T>>(f) };
        }
        if is::<T, f64>() {
            let f: Kern<f64> = pick!(v, p, |P, V| avx512::kern_f64::<P, V> as Kern<f64>);
            // SAFETY: T is f64, so the two function pointer types are the same.
            return unsafe { std::mem::transmute::<Kern<f64>, Kern<T>>(f) };
        }
    }
    let _ = simd;
    if is::<T, f32>() {
        pick!(v, p, |P, V| kern_portable::<T, P, V, 16> as Kern<T>)
    } else {
        pick!(v, p, |P, V| kern_portable::<T, P, V, 8> as Kern<T>)
    }
}

/// Pair-mode kernel for `q` pairs (T is f32, AVX-512 present).
fn pair_kernel<T: Scalar>(q: usize) -> Kern<T> {
    #[cfg(target_arch = "x86_64")]
    {
        use avx512::kern_pair_f32 as k;
        let f: Kern<f32> = match q {
            1 => k::<1>,
            2 => k::<2>,
            3 => k::<3>,
            4 => k::<4>,
            5 => k::<5>,
            6 => k::<6>,
            7 => k::<7>,
            8 => k::<8>,
            9 => k::<9>,
            10 => k::<10>,
            11 => k::<11>,
            12 => k::<12>,
            13 => k::<13>,
            14 => k::<14>,
            _ => unreachable!("direct conv: no pair block of {q}"),
        };
        assert!(is::<T, f32>());
        // SAFETY: T is f32 (checked), so the two function pointer types are the same.
        unsafe { std::mem::transmute::<Kern<f32>, Kern<T>>(f) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("direct conv: pair mode is x86-64 only ({q})")
}

fn pair_writer<T: Scalar>() -> Writer<T> {
    #[cfg(target_arch = "x86_64")]
    {
        assert!(is::<T, f32>());
        let f: Writer<f32> = avx512::write_pair_f32;
        // SAFETY: T is f32 (checked), so the two function pointer types are the same.
        unsafe { std::mem::transmute::<Writer<f32>, Writer<T>>(f) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("direct conv: pair mode is x86-64 only")
}

/// Whether the AVX-512 kernels are used (else the portable one).
fn use_simd() -> bool {
    cfg!(target_arch = "x86_64") && level() == SimdLevel::Avx512 && mode() != Mode::Portable
}

/// Forward convolution of `xs (N, C, H, W)` with `ws (O, C, kh, kw)` plus bias, into a
/// new `(N, O, 1, OH, OW)` array; `g` must be in [`forward_applies`]'s family. The output
/// is not zero-filled first: every element is written exactly once.
pub(crate) fn forward_new<T: Scalar>(g: &Geom, xs: &[T], ws: &[T], bias: Option<&[T]>) -> ndarray::Array5<T> {
    let [_, oh, ow] = g.output;
    let shape = [g.n, g.c_out, 1, oh, ow];
    let len: usize = shape.iter().product();
    // 64-byte aligned start, so whole output rows can be written with streaming stores
    let lanes = lanes::<T>();
    let mut v: Vec<T> = Vec::with_capacity(len + lanes);
    crate::memory::advise_huge_pages(v.as_ptr().cast(), (len + lanes) * std::mem::size_of::<T>());
    let skip = (v.as_ptr() as usize).wrapping_neg() % 64 / std::mem::size_of::<T>();
    // SAFETY: skip + len <= capacity.
    forward_raw(g, xs, ws, bias, unsafe { v.as_mut_ptr().add(skip) }, use_simd());
    // SAFETY: forward_raw wrote all `len` elements from `skip` on (every channel of every
    // output position of every image, see the writers); the others are set here, and T
    // is a plain float.
    unsafe {
        for i in (0..skip).chain(skip + len..len + lanes) {
            v.as_mut_ptr().add(i).write(T::zero());
        }
        v.set_len(len + lanes);
    }
    ndarray::Array1::from_vec(v)
        .slice_move(ndarray::s![skip..skip + len])
        .into_shape_with_order(shape)
        .expect("shape matches length")
}

/// [`forward_new`] into `out (N, O, OH, OW)`, with the AVX-512 kernels or the portable one.
#[cfg(test)]
pub(crate) fn forward_with<T: Scalar>(g: &Geom, xs: &[T], ws: &[T], bias: Option<&[T]>, out: &mut [T], simd: bool) {
    assert_eq!(out.len(), g.n * g.c_out * g.l());
    forward_raw(g, xs, ws, bias, out.as_mut_ptr(), simd);
}

/// Writes all `N * O * OH * OW` outputs at `out`.
fn forward_raw<T: Scalar>(g: &Geom, xs: &[T], ws: &[T], bias: Option<&[T]>, out: *mut T, simd: bool) {
    debug_assert!(family(g));
    let pair = cfg!(target_arch = "x86_64") && simd && is::<T, f32>() && g.c_out <= 8;
    let pl = Plan::new(g, Some(ws), pair);
    let (oh, ow) = (pl.oh, pl.ow);
    if g.n == 0 || oh == 0 || ow == 0 || pl.o == 0 {
        return;
    }
    let kern = if pair {
        pair_kernel::<T>(pl.p / 2)
    } else {
        kernel::<T>(pl.v, pl.p, simd)
    };
    let vl = pl.v * pl.lanes;
    // tile values per output position
    let tl = if pair { 8 } else { vl };
    // Work cut: bands of `band` rows of one image, or blocks of `imgs` whole images.
    let row_work = (pl.blocks * vl * ow * pl.k()).max(1);
    let threads = parallel::num_threads();
    let rows = (TASK_WORK / row_work).max(1);
    let (mut band, mut imgs) = if rows >= oh {
        (oh, (rows / oh).min(g.n))
    } else {
        (rows, 1)
    };
    let count = |band: usize, imgs: usize| g.n.div_ceil(imgs) * oh.div_ceil(band);
    while count(band, imgs) < 4 * threads && (imgs > 1 || band > 1) {
        if imgs > 1 {
            imgs /= 2;
        } else {
            band = band.div_ceil(2);
        }
    }
    let bands = oh.div_ceil(band);
    let tasks = g.n.div_ceil(imgs) * bands;
    let offs = pl.offsets(band);
    let plane = g.c_in * g.input[1] * g.input[2];
    let oplane = oh * ow;
    let optr = SendPtr(out);
    let elem = std::mem::size_of::<T>();
    // Output rows computed into the tile before it is written out transposed. Rows too
    // long for the tile are cut into segments of `seg` chunks (one row per flush then);
    // pairs of positions stay aligned across rows only for even widths.
    let seg = if ow * tl * elem > TILE_BYTES {
        (TILE_BYTES / (pl.p * tl * elem)).clamp(1, pl.chunks)
    } else {
        pl.chunks
    };
    let flush_rows = if seg < pl.chunks || (pair && ow % 2 == 1) {
        1
    } else {
        ((TILE_BYTES / (tl * elem)).saturating_sub(pl.p + 32) / ow).clamp(1, band)
    };
    let tile_len = (flush_rows * ow.min(seg * pl.p) + pl.p + 32) * tl;
    let flush = if pair { pair_writer::<T>() } else { writer::<T>(simd) };
    // outputs much larger than the L2 caches bypass them (streaming stores)
    let stream = g.n * pl.o * oplane * elem >= STREAM_BYTES;
    let body = |bufs: &mut (Vec<T>, Vec<T>), t: usize| {
        let (scratch, tile) = bufs;
        let (ib, bi) = (t / bands, t % bands);
        let (oy0, oy1) = (bi * band, ((bi + 1) * band).min(oh));
        let rows = oy1 - oy0;
        // a short last band keeps the full band's scratch layout (offsets unchanged)
        for ni in ib * imgs..((ib + 1) * imgs).min(g.n) {
            pl.fill(&xs[ni * plane..(ni + 1) * plane], oy0, band, scratch);
            for b in 0..pl.blocks {
                let wb = &pl.wpk[b * pl.k() * vl..(b + 1) * pl.k() * vl];
                let co0 = b * vl;
                let nco = vl.min(pl.o - co0);
                let mut r0 = 0;
                while r0 < rows {
                    let r1 = (r0 + flush_rows).min(rows);
                    let mut g0 = 0;
                    while g0 < pl.chunks {
                        let g1 = (g0 + seg).min(pl.chunks);
                        let x0 = g0 * pl.p;
                        // chunks in order: a row's last chunk spills past the row end into
                        // the next row's slots, which that row's first chunk then overwrites
                        for r in r0..r1 {
                            for ch in g0..g1 {
                                let ox0 = ch * pl.p;
                                let at = ((r - r0) * ow + ox0 - x0) * tl;
                                // SAFETY: the scratch covers every tap of every pixel of the
                                // chunk (Plan::fill: wq >= chunks * p + kernel reach), the
                                // packed weights hold K x vl values, the tile slack takes
                                // the spill.
                                unsafe {
                                    kern(
                                        scratch.as_ptr().add(r * pl.wq + ox0),
                                        &offs,
                                        wb.as_ptr(),
                                        tile.as_mut_ptr().add(at),
                                    )
                                };
                            }
                        }
                        // whole rows, or one segment of one row
                        let npos = if g1 - g0 == pl.chunks {
                            (r1 - r0) * ow
                        } else {
                            (g1 * pl.p).min(ow) - x0
                        };
                        let o0 = (ni * pl.o + co0) * oplane + (oy0 + r0) * ow + x0;
                        // SAFETY: task t alone writes output rows oy0..oy1 of its images;
                        // the writer touches npos positions of channels co0..co0 + nco.
                        unsafe {
                            flush(
                                tile,
                                vl,
                                npos,
                                nco,
                                bias.map(|b| &b[co0..co0 + nco]),
                                optr.get().add(o0),
                                oplane,
                                stream,
                            )
                        };
                        g0 = g1;
                    }
                    r0 = r1;
                }
            }
        }
    };
    let lens = (pl.scratch_len(band), tile_len);
    let work = g.macs();
    parallel::run(work, || {
        if work < parallel::INLINE_WORK {
            // run inline by parallel::run: no parallel iterator (it would reach rayon's
            // global pool)
            let mut bufs = (vec![T::zero(); lens.0], vec![T::zero(); lens.1]);
            (0..tasks).for_each(|t| body(&mut bufs, t));
        } else {
            (0..tasks)
                .into_par_iter()
                .for_each_init(|| (vec![T::zero(); lens.0], vec![T::zero(); lens.1]), body);
        }
    });
}

/// Writes `npos` positions of a tile `(positions, vl)` transposed: channel `j < nco` to
/// `dst + j * ld + pos`, plus `bias[j]`. The tile must hold 16 positions past `npos`.
type Writer<T> = unsafe fn(&[T], usize, usize, usize, Option<&[T]>, *mut T, usize, bool);

#[allow(clippy::too_many_arguments)]
unsafe fn write_portable<T: Scalar>(
    tile: &[T],
    vl: usize,
    npos: usize,
    nco: usize,
    bias: Option<&[T]>,
    dst: *mut T,
    ld: usize,
    _stream: bool,
) {
    for j in 0..nco {
        let d = std::slice::from_raw_parts_mut(dst.add(j * ld), npos);
        match bias {
            Some(b) => {
                for (pos, v) in d.iter_mut().enumerate() {
                    *v = tile[pos * vl + j] + b[j];
                }
            }
            None => {
                for (pos, v) in d.iter_mut().enumerate() {
                    *v = tile[pos * vl + j];
                }
            }
        }
    }
}

fn writer<T: Scalar>(simd: bool) -> Writer<T> {
    #[cfg(target_arch = "x86_64")]
    if simd && is::<T, f32>() {
        let f: Writer<f32> = avx512::write_f32;
        // SAFETY: T is f32, so the two function pointer types are the same.
        return unsafe { std::mem::transmute::<Writer<f32>, Writer<T>>(f) };
    }
    let _ = simd;
    write_portable::<T>
}

// ------------------------------------------------------------------ weight gradient

/// Output channels and taps per weight-gradient register block (24 accumulators).
const WO: usize = 4;
const WK: usize = 6;

/// Most partial sums the batch is split into (each summed by one task, then added in
/// order: the result does not depend on the thread count).
const W_CHUNKS: usize = 16;

/// Pixels (whole vectors) per weight-gradient item, a band of rows or a group of images:
/// each kernel call sums that many, enough to amortise its final reduction.
const W_TASK_WORK: usize = 128 * 16;

/// Whether the weight gradient goes through this path (and should, by speed).
///
/// Measured (2 threads, f32, ms direct / im2row + GEMM in the same run): N256 C6 14x14
/// k5 O16 0.95 / 1.35; N64 C3 64x64 k4 O8 0.87 / 3.7; N64 C3 32x32 k3 O8 0.35 / 1.60;
/// N64 C1 28x28 k5 O6 0.14 / 0.91; N32 C8 32x32 k5 O32 3.5 / 5.9; N32 C3 64x64 k5 O32
/// 2.7 / 4.3. With 64 output channels the GEMM's reuse of each patch wins or ties:
/// N8 C3 224x224 k7 s2 O64 9.4 / 7.8, N8 C64 28x28 k2 s2 O64 1.14 / 0.77, N32 C3 56x56
/// k5 O64 4.9 / 5.0.
pub(crate) fn weight_grad_applies(g: &Geom, _elem: usize) -> bool {
    let m = mode();
    if m == Mode::Off || !family(g) || g.pointwise() {
        return false;
    }
    if m == Mode::Auto && level() != SimdLevel::Avx512 {
        return false;
    }
    g.k_rows() <= MAX_K_WGRAD && g.c_out <= 32
}

/// The stride-1 input gradient as a forward convolution: `dx = conv(dy, w')` with
/// `w'[c, o] = w[o, c]` flipped in both spatial axes, dilation kept, and padding
/// `dilation * (k - 1) - padding` on each side. None outside the family or when that
/// padding would be negative.
fn input_grad_geom(g: &Geom) -> Option<Geom> {
    if !family(g) || g.p.stride != [1, 1, 1] {
        return None;
    }
    let mut p = g.p;
    for a in 1..3 {
        let reach = g.p.dilation[a] * (g.kernel[a] - 1);
        p.pad_lo[a] = reach.checked_sub(g.p.pad_lo[a])?;
        p.pad_hi[a] = reach.checked_sub(g.p.pad_hi[a])?;
    }
    let [_, kh, kw] = g.kernel;
    let [od, oh, ow] = g.output;
    let t = Geom::new("conv_backward", [g.n, g.c_out, od, oh, ow], [g.c_in, g.c_out, 1, kh, kw], p).ok()?;
    (t.output == g.input).then_some(t)
}

/// Whether the input gradient goes through this path (as [`forward_applies`] on the
/// equivalent forward convolution). Measured (2 threads, f32, ms direct / GEMM +
/// col2im): N64 C64 8x8 k3 O64 0.84 / 1.61, N64 C128 4x4 k3 O128 1.09 / 2.98. The
/// zero padding of `dy` meets every weight, so non-finite weights stay on the col2im
/// path (which never forms those products).
pub(crate) fn input_grad_applies(g: &Geom, elem: usize) -> bool {
    input_grad_geom(g).is_some_and(|t| forward_applies(&t, elem)) && !super::winograd::input_grad_applies(g, elem)
}

/// Input gradient `(N, C_in, 1, H, W)` of a convolution in [`input_grad_applies`]; None
/// when a weight is not finite (see there).
pub(crate) fn input_grad<T: Scalar>(g: &Geom, dys: &[T], ws: &[T]) -> Option<ndarray::Array5<T>> {
    let t = input_grad_geom(g).expect("direct conv: input gradient outside its family");
    if !super::all_finite(ws) {
        return None;
    }
    let [_, kh, kw] = g.kernel;
    let taps = kh * kw;
    let mut wt = vec![T::zero(); ws.len()];
    for o in 0..g.c_out {
        for c in 0..g.c_in {
            let src = &ws[(o * g.c_in + c) * taps..(o * g.c_in + c + 1) * taps];
            let dst = &mut wt[(c * g.c_out + o) * taps..(c * g.c_out + o + 1) * taps];
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        }
    }
    Some(forward_new(&t, dys, &wt, None))
}

/// One weight-gradient block: `out[i][j] = sum over rows (dr, xr) in the table, pixels
/// q < ow of dy[dr + och[i] + q] * x[xr + offs[j] + q]`.
type WKern<T> = unsafe fn(*const T, &[usize; WO], *const T, &[usize; WK], &[(usize, usize)], usize) -> [[T; WK]; WO];

/// Portable weight-gradient block (plain multiply then add, pixel by pixel).
///
/// # Safety
/// Every `dy` and `x` element named above must be readable.
unsafe fn wkern_portable<T: Scalar>(
    dy: *const T,
    och: &[usize; WO],
    x: *const T,
    offs: &[usize; WK],
    rows: &[(usize, usize)],
    ow: usize,
) -> [[T; WK]; WO] {
    let mut acc = [[T::zero(); WK]; WO];
    for &(dr, xr) in rows {
        for q in 0..ow {
            for (i, a) in acc.iter_mut().enumerate() {
                let d = *dy.add(dr + och[i] + q);
                for (j, v) in a.iter_mut().enumerate() {
                    *v = *v + d * *x.add(xr + offs[j] + q);
                }
            }
        }
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod wavx512 {
    use super::{WK, WO};
    use std::arch::x86_64::*;

    /// f32 weight-gradient block, 16 pixels per vector, masked row tails (masked-off
    /// lanes are neither read nor counted). See [`super::WKern`].
    ///
    /// # Safety
    /// AVX-512F present; pointers as for [`super::wkern_portable`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn wkern_f32(
        dy: *const f32,
        och: &[usize; WO],
        x: *const f32,
        offs: &[usize; WK],
        rows: &[(usize, usize)],
        ow: usize,
    ) -> [[f32; WK]; WO] {
        // written out tap by tap: a rolled loop would keep the accumulators in memory
        macro_rules! taps {
            ($acc:ident, $d:ident, $xp:ident, $q:ident, $m:ident; $($j:literal)*) => {$(
                let xv = _mm512_maskz_loadu_ps($m, $xp[$j].add($q));
                $acc[0][$j] = _mm512_fmadd_ps($d[0], xv, $acc[0][$j]);
                $acc[1][$j] = _mm512_fmadd_ps($d[1], xv, $acc[1][$j]);
                $acc[2][$j] = _mm512_fmadd_ps($d[2], xv, $acc[2][$j]);
                $acc[3][$j] = _mm512_fmadd_ps($d[3], xv, $acc[3][$j]);
            )*};
        }
        const _: () = assert!(WO == 4 && WK == 6);
        let mut acc = [[_mm512_setzero_ps(); WK]; WO];
        for &(dr, xr) in rows {
            let (dyr, xrp) = (dy.add(dr), x.add(xr));
            let dp = [dyr.add(och[0]), dyr.add(och[1]), dyr.add(och[2]), dyr.add(och[3])];
            let xp = [
                xrp.add(offs[0]),
                xrp.add(offs[1]),
                xrp.add(offs[2]),
                xrp.add(offs[3]),
                xrp.add(offs[4]),
                xrp.add(offs[5]),
            ];
            let mut q = 0;
            while q < ow {
                let m: __mmask16 = if ow - q >= 16 {
                    0xffff
                } else {
                    ((1u32 << (ow - q)) - 1) as u16
                };
                let d = [
                    _mm512_maskz_loadu_ps(m, dp[0].add(q)),
                    _mm512_maskz_loadu_ps(m, dp[1].add(q)),
                    _mm512_maskz_loadu_ps(m, dp[2].add(q)),
                    _mm512_maskz_loadu_ps(m, dp[3].add(q)),
                ];
                taps!(acc, d, xp, q, m; 0 1 2 3 4 5);
                q += 16;
            }
        }
        // stored first (a plain unrolled loop keeps `acc` in registers), then summed
        let mut lanes = [[[0f32; 16]; WK]; WO];
        for (a, l) in acc.iter().zip(lanes.iter_mut()) {
            for (&v, d) in a.iter().zip(l.iter_mut()) {
                _mm512_storeu_ps(d.as_mut_ptr(), v);
            }
        }
        lanes.map(|row| row.map(|l| super::sum16(&l)))
    }

    /// f64 version of [`wkern_f32`] (8 pixels per vector).
    ///
    /// # Safety
    /// AVX-512F present; pointers as for [`super::wkern_portable`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn wkern_f64(
        dy: *const f64,
        och: &[usize; WO],
        x: *const f64,
        offs: &[usize; WK],
        rows: &[(usize, usize)],
        ow: usize,
    ) -> [[f64; WK]; WO] {
        let mut acc = [[_mm512_setzero_pd(); WK]; WO];
        for &(dro, xro) in rows {
            let (dr, xr) = (dy.add(dro), x.add(xro));
            let mut q = 0;
            while q < ow {
                let m: __mmask8 = if ow - q >= 8 { 0xff } else { (1u8 << (ow - q)) - 1 };
                let mut d = [_mm512_setzero_pd(); WO];
                for (i, v) in d.iter_mut().enumerate() {
                    *v = _mm512_maskz_loadu_pd(m, dr.add(och[i] + q));
                }
                for j in 0..WK {
                    let xv = _mm512_maskz_loadu_pd(m, xr.add(offs[j] + q));
                    for i in 0..WO {
                        acc[i][j] = _mm512_fmadd_pd(d[i], xv, acc[i][j]);
                    }
                }
                q += 8;
            }
        }
        let mut lanes = [[[0f64; 8]; WK]; WO];
        for (a, l) in acc.iter().zip(lanes.iter_mut()) {
            for (&v, d) in a.iter().zip(l.iter_mut()) {
                _mm512_storeu_pd(d.as_mut_ptr(), v);
            }
        }
        lanes.map(|row| row.map(|l| ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))))
    }
}

/// Sum of 16 lanes in a fixed pairwise order.
fn sum16(l: &[f32; 16]) -> f32 {
    let mut h = [0f32; 8];
    for i in 0..8 {
        h[i] = l[i] + l[i + 8];
    }
    ((h[0] + h[4]) + (h[2] + h[6])) + ((h[1] + h[5]) + (h[3] + h[7]))
}

fn wkernel<T: Scalar>(simd: bool) -> WKern<T> {
    #[cfg(target_arch = "x86_64")]
    if simd {
        if is::<T, f32>() {
            let f: WKern<f32> = wavx512::wkern_f32;
            // SAFETY: T is f32, so the two function pointer types are the same.
            return unsafe { std::mem::transmute::<WKern<f32>, WKern<T>>(f) };
        }
        if is::<T, f64>() {
            let f: WKern<f64> = wavx512::wkern_f64;
            // SAFETY: T is f64, so the two function pointer types are the same.
            return unsafe { std::mem::transmute::<WKern<f64>, WKern<T>>(f) };
        }
    }
    let _ = simd;
    wkern_portable::<T>
}

/// Weight gradient `dw (O, C * kh * kw)` (overwritten) from `dys (N, O, OH, OW)` and `xs
/// (N, C, H, W)`, without a column matrix: per (image, band of output rows) the input
/// rows are copied into the forward's phase-plane scratch, and every block of 4 output
/// channels x 6 taps sums `dy` row times shifted input row over the band's pixels (both
/// contiguous). The (image, band) items are cut into at most [`W_CHUNKS`] runs fixed by
/// the shapes; each run's partial sum is added in run order.
pub(crate) fn weight_grad<T: Scalar>(g: &Geom, dys: &[T], xs: &[T], dw: &mut [T]) {
    weight_grad_with(g, dys, xs, dw, use_simd(), W_TASK_WORK);
}

/// `work`: multiply-adds per item (tests use small ones to get many items).
fn weight_grad_with<T: Scalar>(g: &Geom, dys: &[T], xs: &[T], dw: &mut [T], simd: bool, work: usize) {
    debug_assert!(family(g));
    let pl = Plan::<T>::new(g, None, false);
    let (oh, ow, o, k) = (pl.oh, pl.ow, pl.o, pl.k());
    dw.fill(T::zero());
    if g.n == 0 || oh == 0 || ow == 0 || o == 0 || k == 0 {
        return;
    }
    let kern = wkernel::<T>(simd);
    // items: a band of output rows of one image, or a group of whole images, sized by
    // the shapes only (each kernel call then sums enough pixels to amortise its end)
    let rows_per_item = (work / (ow.div_ceil(lanes::<T>()) * pl.lanes).max(1)).max(1);
    let (band, imgs) = if rows_per_item >= oh {
        (oh, (rows_per_item / oh).min(g.n))
    } else {
        (rows_per_item, 1)
    };
    let bands = oh.div_ceil(band);
    let groups = g.n.div_ceil(imgs);
    let items = groups * bands;
    let runs = items.min(W_CHUNKS);
    let offs = pl.offsets(band);
    let slot = pl.scratch_len(band);
    let plane = g.c_in * g.input[1] * g.input[2];
    let oplane = oh * ow;
    let partial = |run: usize| -> Vec<T> {
        let mut acc = vec![T::zero(); o * k];
        let mut scratch = vec![T::zero(); slot * imgs];
        let mut table = Vec::with_capacity(imgs * band);
        for item in run * items / runs..(run + 1) * items / runs {
            let (gi, bi) = (item / bands, item % bands);
            let (oy0, oy1) = (bi * band, ((bi + 1) * band).min(oh));
            table.clear();
            for (si, ni) in (gi * imgs..((gi + 1) * imgs).min(g.n)).enumerate() {
                pl.fill(
                    &xs[ni * plane..(ni + 1) * plane],
                    oy0,
                    band,
                    &mut scratch[si * slot..(si + 1) * slot],
                );
                for r in 0..oy1 - oy0 {
                    table.push((ni * o * oplane + (oy0 + r) * ow, si * slot + r * pl.wq));
                }
            }
            for o0 in (0..o).step_by(WO) {
                // channels and taps past the end repeat the last one; their sums are dropped
                let och: [usize; WO] = std::array::from_fn(|i| (o0 + i).min(o - 1) * oplane);
                for k0 in (0..k).step_by(WK) {
                    let tk: [usize; WK] = std::array::from_fn(|j| offs[(k0 + j).min(k - 1)]);
                    // SAFETY: every table row is an output row of an image in dys (och <
                    // o * oplane); every tap of every pixel of a row lies inside that
                    // image's scratch slot (see Plan::fill).
                    let s = unsafe { kern(dys.as_ptr(), &och, scratch.as_ptr(), &tk, &table, ow) };
                    for (i, row) in s.iter().enumerate().take((o - o0).min(WO)) {
                        for (j, &v) in row.iter().enumerate().take((k - k0).min(WK)) {
                            let a = &mut acc[(o0 + i) * k + k0 + j];
                            *a = *a + v;
                        }
                    }
                }
            }
        }
        acc
    };
    let work = g.macs();
    let parts: Vec<Vec<T>> = parallel::run(work, || {
        if work < parallel::INLINE_WORK {
            (0..runs).map(partial).collect() // inline: no parallel iterator
        } else {
            (0..runs).into_par_iter().map(partial).collect()
        }
    });
    for part in &parts {
        for (d, &v) in dw.iter_mut().zip(part) {
            *d = *d + v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ConvParams, Geom};
    use super::*;

    fn naive(g: &Geom, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
        let [_, h, wd] = g.input;
        let [_, kh, kw] = g.kernel;
        let [_, oh, ow] = g.output;
        let p = g.p;
        let mut out = vec![0.0; g.n * g.c_out * oh * ow];
        for n in 0..g.n {
            for o in 0..g.c_out {
                for y in 0..oh {
                    for xo in 0..ow {
                        let mut s = b.map_or(0.0, |b| b[o]);
                        for c in 0..g.c_in {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (y * p.stride[1] + ky * p.dilation[1]) as isize - p.pad_lo[1] as isize;
                                    let ix = (xo * p.stride[2] + kx * p.dilation[2]) as isize - p.pad_lo[2] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    s += x[((n * g.c_in + c) * h + iy as usize) * wd + ix as usize]
                                        * w[((o * g.c_in + c) * kh + ky) * kw + kx];
                                }
                            }
                        }
                        out[((n * g.c_out + o) * oh + y) * ow + xo] = s;
                    }
                }
            }
        }
        out
    }

    fn data(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn geom(
        n: usize,
        c: usize,
        o: usize,
        h: usize,
        w: usize,
        k: [usize; 2],
        s: [usize; 2],
        d: [usize; 2],
        lo: [usize; 2],
        hi: [usize; 2],
    ) -> Geom {
        let p = ConvParams::planar(s, d, lo, hi, 1);
        Geom::new("t", [n, c, 1, h, w], [o, c, 1, k[0], k[1]], p).unwrap()
    }

    fn cases() -> Vec<Geom> {
        vec![
            geom(2, 6, 16, 14, 14, [5, 5], [1, 1], [1, 1], [0, 0], [0, 0]),
            geom(1, 3, 64, 23, 29, [7, 7], [2, 2], [1, 1], [3, 3], [3, 3]),
            geom(3, 3, 8, 9, 11, [4, 4], [1, 1], [1, 1], [1, 1], [2, 2]),
            geom(2, 2, 17, 13, 31, [3, 3], [3, 2], [1, 1], [1, 0], [1, 2]),
            geom(2, 4, 33, 12, 15, [3, 2], [1, 1], [2, 3], [2, 1], [2, 3]),
            geom(1, 1, 100, 5, 40, [1, 3], [1, 1], [1, 1], [0, 1], [0, 1]),
            geom(2, 5, 130, 6, 7, [3, 3], [2, 1], [1, 2], [4, 3], [0, 5]),
            geom(1, 2, 5, 1, 1, [1, 1], [1, 1], [1, 1], [0, 0], [0, 0]),
        ]
    }

    fn check<T: Scalar>(simd: bool, tol: f64) {
        for (i, g) in cases().iter().enumerate() {
            let x = data(g.n * g.c_in * g.input[1] * g.input[2], 1 + i as u64);
            let w = data(g.c_out * g.k_rows(), 100 + i as u64);
            let b = data(g.c_out, 200 + i as u64);
            let want = naive(g, &x, &w, Some(&b));
            let xt: Vec<T> = x.iter().map(|&v| T::from_f64(v).unwrap()).collect();
            let wt: Vec<T> = w.iter().map(|&v| T::from_f64(v).unwrap()).collect();
            let bt: Vec<T> = b.iter().map(|&v| T::from_f64(v).unwrap()).collect();
            let mut got = vec![T::nan(); want.len()];
            forward_with(g, &xt, &wt, Some(&bt), &mut got, simd);
            for (j, (a, e)) in got.iter().zip(&want).enumerate() {
                let a = a.to_f64().unwrap();
                assert!(
                    (a - e).abs() <= tol * (1.0 + e.abs()),
                    "case {i} ({g:?}) at {j}: {a} vs {e}"
                );
            }
        }
    }

    #[test]
    fn portable_matches_naive() {
        check::<f64>(false, 1e-12);
        check::<f32>(false, 1e-5);
    }

    #[test]
    fn simd_matches_naive() {
        if level() != SimdLevel::Avx512 {
            return;
        }
        check::<f64>(true, 1e-12);
        check::<f32>(true, 1e-5);
    }

    #[test]
    fn every_register_block_matches_portable() {
        if level() != SimdLevel::Avx512 {
            return;
        }
        // output widths 1..=28 with 16/32/48/64 channels reach every (v, p) pair
        for o in [16, 32, 48, 64] {
            for ow in 1..=28 {
                let g = geom(1, 2, o, 3, ow + 2, [3, 3], [1, 1], [1, 1], [0, 0], [0, 0]);
                let x: Vec<f32> = data(2 * 3 * (ow + 2), ow as u64).iter().map(|&v| v as f32).collect();
                let w: Vec<f32> = data(o * 18, 7).iter().map(|&v| v as f32).collect();
                let mut a = vec![0f32; o * ow];
                let mut b = vec![0f32; o * ow];
                forward_with(&g, &x, &w, None, &mut a, true);
                forward_with(&g, &x, &w, None, &mut b, false);
                for (p, q) in a.iter().zip(&b) {
                    assert!((p - q).abs() <= 1e-5 * (1.0 + q.abs()), "o {o} ow {ow}: {p} vs {q}");
                }
            }
        }
    }

    fn naive_wgrad(g: &Geom, dy: &[f64], x: &[f64]) -> Vec<f64> {
        let [_, h, wd] = g.input;
        let [_, kh, kw] = g.kernel;
        let [_, oh, ow] = g.output;
        let p = g.p;
        let mut dw = vec![0.0; g.c_out * g.k_rows()];
        for n in 0..g.n {
            for o in 0..g.c_out {
                for y in 0..oh {
                    for xo in 0..ow {
                        let d = dy[((n * g.c_out + o) * oh + y) * ow + xo];
                        for c in 0..g.c_in {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (y * p.stride[1] + ky * p.dilation[1]) as isize - p.pad_lo[1] as isize;
                                    let ix = (xo * p.stride[2] + kx * p.dilation[2]) as isize - p.pad_lo[2] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    dw[((o * g.c_in + c) * kh + ky) * kw + kx] +=
                                        d * x[((n * g.c_in + c) * h + iy as usize) * wd + ix as usize];
                                }
                            }
                        }
                    }
                }
            }
        }
        dw
    }

    fn check_wgrad<T: Scalar>(simd: bool, tol: f64) {
        for (i, g) in cases().iter().enumerate() {
            let x = data(g.n * g.c_in * g.input[1] * g.input[2], 1 + i as u64);
            let dy = data(g.n * g.c_out * g.l(), 300 + i as u64);
            let want = naive_wgrad(g, &dy, &x);
            let xt: Vec<T> = x.iter().map(|&v| T::from_f64(v).unwrap()).collect();
            let dyt: Vec<T> = dy.iter().map(|&v| T::from_f64(v).unwrap()).collect();
            let mut got = vec![T::nan(); want.len()];
            weight_grad_with(g, &dyt, &xt, &mut got, simd, W_TASK_WORK);
            let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (j, (a, e)) in got.iter().zip(&want).enumerate() {
                let a = a.to_f64().unwrap();
                assert!((a - e).abs() <= tol * scale, "case {i} ({g:?}) at {j}: {a} vs {e}");
            }
        }
    }

    #[test]
    fn weight_grad_portable_matches_naive() {
        check_wgrad::<f64>(false, 1e-12);
        check_wgrad::<f32>(false, 1e-5);
    }

    #[test]
    fn weight_grad_simd_matches_naive() {
        if level() != SimdLevel::Avx512 {
            return;
        }
        check_wgrad::<f64>(true, 1e-12);
        check_wgrad::<f32>(true, 1e-5);
    }

    #[test]
    fn weight_grad_many_images_and_bands() {
        // more (image, band) items than runs, partial bands, row tails of 1..16 pixels
        for (n, h, w, o) in [(40usize, 9usize, 37usize, 13usize), (3, 70, 21, 64), (17, 4, 16, 5)] {
            let g = geom(n, 3, o, h, w, [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]);
            let x = data(n * 3 * h * w, 5);
            let dy = data(n * o * g.l(), 6);
            let want = naive_wgrad(&g, &dy, &x);
            // whole batch in one item; groups of images; bands of 3 rows; single rows
            let row = g.output[2].div_ceil(8) * 8;
            for work in [W_TASK_WORK, 5 * g.output[1] * row, 3 * row, 1] {
                for simd in [false, level() == SimdLevel::Avx512] {
                    let mut got = vec![0.0; want.len()];
                    weight_grad_with(&g, &dy, &x, &mut got, simd, work);
                    for (a, e) in got.iter().zip(&want) {
                        assert!(
                            (a - e).abs() <= 1e-11 * (1.0 + e.abs()),
                            "{n} {h} {w} {o} {work}: {a} vs {e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn forward_streams_large_outputs() {
        // 16.8 MB of f32 output: the streaming-store writer
        let g = geom(1, 1, 64, 256, 256, [1, 3], [1, 1], [1, 1], [0, 1], [0, 1]);
        assert!(g.c_out * g.l() * 4 >= STREAM_BYTES);
        let x: Vec<f32> = data(256 * 256, 9).iter().map(|&v| v as f32).collect();
        let w: Vec<f32> = data(64 * 3, 10).iter().map(|&v| v as f32).collect();
        let mut got = vec![0f32; 64 * 256 * 256];
        forward_with(&g, &x, &w, None, &mut got, level() == SimdLevel::Avx512);
        for o in [0usize, 17, 63] {
            for y in [0usize, 100, 255] {
                for xo in [0usize, 1, 128, 255] {
                    let mut s = 0f64;
                    for kx in 0..3 {
                        let ix = xo as isize + kx as isize - 1;
                        if (0..256).contains(&ix) {
                            s += x[y * 256 + ix as usize] as f64 * w[o * 3 + kx] as f64;
                        }
                    }
                    let a = got[(o * 256 + y) * 256 + xo] as f64;
                    assert!((a - s).abs() < 1e-5 * (1.0 + s.abs()), "{o} {y} {xo}: {a} vs {s}");
                }
            }
        }
    }

    #[test]
    fn pair_mode_matches_portable() {
        if level() != SimdLevel::Avx512 {
            return;
        }
        // 1..8 channels, odd and even widths up to 3 chunks of 14 pairs, with bias
        for o in [1usize, 3, 8] {
            for ow in (1..=60).chain([83, 84]) {
                for (h, pad) in [(3usize, 0usize), (6, 1)] {
                    let g = geom(
                        2,
                        2,
                        o,
                        h,
                        ow + 2 - 2 * pad,
                        [3, 3],
                        [1, 1],
                        [1, 1],
                        [pad, pad],
                        [pad, pad],
                    );
                    let nx = 2 * 2 * h * (ow + 2 - 2 * pad);
                    let x: Vec<f32> = data(nx, ow as u64).iter().map(|&v| v as f32).collect();
                    let w: Vec<f32> = data(o * 18, 7).iter().map(|&v| v as f32).collect();
                    let b: Vec<f32> = data(o, 8).iter().map(|&v| v as f32).collect();
                    let n_out = 2 * o * g.l();
                    let mut a = vec![f32::NAN; n_out];
                    let mut c = vec![f32::NAN; n_out];
                    forward_with(&g, &x, &w, Some(&b), &mut a, true);
                    forward_with(&g, &x, &w, Some(&b), &mut c, false);
                    for (i, (p, q)) in a.iter().zip(&c).enumerate() {
                        assert!(
                            (p - q).abs() <= 1e-5 * (1.0 + q.abs()),
                            "o {o} ow {ow} h {h} at {i}: {p} vs {q}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn long_rows_are_written_in_segments() {
        // rows longer than the tile (conv1d-like): 16 / 8 (pair) / 64 channels
        for (o, ow) in [(16usize, 1500usize), (8, 2999), (5, 3000), (64, 700)] {
            let g = geom(2, 2, o, 2, ow + 4, [2, 5], [1, 1], [1, 1], [0, 0], [0, 0]);
            let x = data(2 * 2 * 2 * (ow + 4), 3);
            let w = data(o * 20, 4);
            let b = data(o, 5);
            let want = naive(&g, &x, &w, Some(&b));
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let wf: Vec<f32> = w.iter().map(|&v| v as f32).collect();
            let bf: Vec<f32> = b.iter().map(|&v| v as f32).collect();
            for simd in [false, level() == SimdLevel::Avx512] {
                let mut got = vec![f32::NAN; want.len()];
                forward_with(&g, &xf, &wf, Some(&bf), &mut got, simd);
                for (i, (a, e)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (*a as f64 - e).abs() <= 1e-5 * (1.0 + e.abs()),
                        "o {o} ow {ow} at {i}: {a} vs {e}"
                    );
                }
            }
        }
    }
}
