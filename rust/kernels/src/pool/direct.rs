//! AVX-512 `f32` forward kernels for the common horizontal geometry stride 2,
//! dilation 1 (any kernel width and padding; any vertical parameters).
//!
//! Each chunk of 16 outputs of a row reads the taps straight from the input row:
//! column `2*o + m` (`m = j - pad`) of 16 consecutive outputs is the even or odd half
//! of 32 consecutive input columns, loaded with masks (so the padding and the row end
//! need no copies) and split with one `vpermt2ps`. Values, argmax and the scan order
//! are exactly those of the portable path.

#![cfg(target_arch = "x86_64")]

use super::Axis;
use std::arch::x86_64::*;

/// Lanes `[start, start + 16)` of a row of `w` floats, `pad` outside `[0, w)`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_masked(row: *const f32, w: usize, start: isize, pad: __m512) -> __m512 {
    let a = (-start).clamp(0, 16) as u32;
    let b = (w as isize - start).clamp(0, 16) as u32;
    let mask = if b > a { (((1u32 << b) - 1) & !((1u32 << a) - 1)) as u16 } else { 0 };
    // Masked-off lanes are not read, so an out-of-range address there is harmless.
    _mm512_mask_loadu_ps(pad, mask, row.wrapping_offset(start))
}

/// Store the first `n` lanes of `v` at `dst`: a plain store for whole chunks, else via
/// a stack buffer (masked stores to memory that is not in cache are very slow on
/// some CPUs).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store_head(dst: *mut f32, n: usize, v: __m512) {
    if n >= 16 {
        _mm512_storeu_ps(dst, v);
    } else {
        let mut buf = [0f32; 16];
        _mm512_storeu_ps(buf.as_mut_ptr(), v);
        std::ptr::copy_nonoverlapping(buf.as_ptr(), dst, n);
    }
}

/// As [`store_head`] for 8 lanes of i64.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store_head_i64(dst: *mut i64, n: usize, v: __m512i) {
    if n >= 8 {
        _mm512_storeu_si512(dst as *mut __m512i, v);
    } else {
        let mut buf = [0i64; 8];
        _mm512_storeu_si512(buf.as_mut_ptr() as *mut __m512i, v);
        std::ptr::copy_nonoverlapping(buf.as_ptr(), dst, n);
    }
}

/// Software prefetch of the input `PREFETCH_AHEAD` bytes past the rows output row
/// `oh` reads (the next planes included: they follow in memory). Without it this
/// access pattern (two or three rows in 32-column segments) streams from memory at a
/// fraction of the copy bandwidth.
const PREFETCH_AHEAD: usize = 4096;

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn prefetch_rows(x: &[f32], ah: &Axis, w: usize, oh: usize) {
    let first = (oh * ah.s).saturating_sub(ah.p) * w;
    let bytes = ah.s * w * 4;
    let base = (x.as_ptr().wrapping_add(first) as *const i8).wrapping_add(PREFETCH_AHEAD);
    let mut off = 0;
    while off < bytes {
        _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(off));
        off += 64;
    }
}

/// How tap `j` of output chunk `c` reads its input row: the 32-column segment at
/// `base` (loaded with masks `m_lo`, `m_hi` for the padding and the row end) and its
/// even or odd half. `load` is false when the previous tap used the same segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TapDesc {
    base: isize,
    m_lo: u16,
    m_hi: u16,
    odd: bool,
    load: bool,
}

fn lane_mask(w: usize, start: isize) -> u16 {
    let a = (-start).clamp(0, 16) as u32;
    let b = (w as isize - start).clamp(0, 16) as u32;
    if b > a { (((1u32 << b) - 1) & !((1u32 << a) - 1)) as u16 } else { 0 }
}

/// Tap descriptors (index `c * k + j`) of a horizontal axis with stride 2, dilation 1;
/// empty for any other geometry.
pub(crate) fn tap_descs(aw: &Axis) -> Vec<TapDesc> {
    if aw.s != 2 || aw.d != 1 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(aw.n_out.div_ceil(16) * aw.k);
    for c in 0..aw.n_out.div_ceil(16) {
        let mut prev = isize::MIN;
        for j in 0..aw.k {
            let c0 = (32 * c + j) as isize - aw.p as isize;
            let odd = c0.rem_euclid(2) == 1;
            let base = c0 - odd as isize;
            out.push(TapDesc {
                base,
                m_lo: lane_mask(aw.n_in, base),
                m_hi: lane_mask(aw.n_in, base + 16),
                odd,
                load: base != prev,
            });
            prev = base;
        }
    }
    out
}

struct Taps {
    ie: __m512i,
    io: __m512i,
    lo: __m512,
    hi: __m512,
}

impl Taps {
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn new() -> Self {
        Taps {
            ie: _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30),
            io: _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31),
            lo: _mm512_setzero_ps(),
            hi: _mm512_setzero_ps(),
        }
    }

    /// The 16 values tap `d` reads from `row` (`pad` outside the row).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn tap(&mut self, plane: &[f32], row_off: usize, d: &TapDesc, pad: __m512) -> __m512 {
        if d.load {
            let start = row_off as isize + d.base;
            if start >= 0 && start + 32 <= plane.len() as isize {
                // Plain loads (inside the plane) and a blend with the padding: masked
                // loads stream from memory far more slowly on this CPU.
                let p = plane.as_ptr().offset(start);
                self.lo = _mm512_mask_blend_ps(d.m_lo, pad, _mm512_loadu_ps(p));
                self.hi = _mm512_mask_blend_ps(d.m_hi, pad, _mm512_loadu_ps(p.add(16)));
            } else {
                // Masked-off lanes are not read, so out-of-range addresses there are harmless.
                let row = plane.as_ptr().wrapping_add(row_off);
                self.lo = _mm512_mask_loadu_ps(pad, d.m_lo, row.wrapping_offset(d.base));
                self.hi = _mm512_mask_loadu_ps(pad, d.m_hi, row.wrapping_offset(d.base + 16));
            }
        }
        _mm512_permutex2var_ps(self.lo, if d.odd { self.io } else { self.ie }, self.hi)
    }
}

/// Max pooling of one plane (`aw.s == 2`, `aw.d == 1`). `first_col` holds, per output
/// column (padded to whole chunks), the first in-bounds column of its window.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn max_plane(
    x: &[f32],
    out: &mut [f32],
    mut idx: Option<&mut [i64]>,
    ah: &Axis,
    aw: &Axis,
    first_col: &[i32],
    desc: &[TapDesc],
) {
    let (h, w, ow) = (ah.n_in, aw.n_in, aw.n_out);
    assert!(x.len() == h * w && out.len() == ah.n_out * ow && first_col.len() >= ow.div_ceil(16) * 16);
    assert!(desc.len() == ow.div_ceil(16) * aw.k && aw.s == 2 && aw.d == 1);
    if let Some(ix) = idx.as_deref() {
        assert!(ix.len() == out.len());
    }
    let mut taps = Taps::new();
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    let two_iota = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for oh in 0..ah.n_out {
        prefetch_rows(x, ah, w, oh);
        let r0 = (ah.first_valid(oh) * w) as i32;
        let rs = ah.start(oh);
        for c in 0..ow.div_ceil(16) {
            let mut best = ninf;
            let mut arg = _mm512_add_epi32(_mm512_set1_epi32(r0), _mm512_loadu_si512(first_col.as_ptr().add(16 * c) as *const __m512i));
            for i in 0..ah.k {
                let r = rs + (i * ah.d) as isize;
                if r < 0 {
                    continue;
                }
                if r as usize >= h {
                    break;
                }
                for d in &desc[c * aw.k..(c + 1) * aw.k] {
                    let v = taps.tap(x, r as usize * w, d, ninf);
                    let take = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                    best = _mm512_mask_mov_ps(best, take, v);
                    if idx.is_some() {
                        let c0 = d.base + d.odd as isize;
                        let cand = _mm512_add_epi32(_mm512_set1_epi32((r * w as isize + c0) as i32), two_iota);
                        arg = _mm512_mask_mov_epi32(arg, take, cand);
                    }
                }
            }
            let n = (ow - 16 * c).min(16);
            let o = oh * ow + 16 * c;
            store_head(out.as_mut_ptr().add(o), n, best);
            if let Some(ix) = idx.as_deref_mut() {
                let lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(arg));
                let hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(arg));
                store_head_i64(ix.as_mut_ptr().add(o), n.min(8), lo);
                if n > 8 {
                    store_head_i64(ix.as_mut_ptr().add(o + 8), n - 8, hi);
                }
            }
        }
    }
}

/// Average pooling of one plane (`aw.s == 2`, `aw.d == 1`); `div[oh]` holds the
/// divisors of output row `oh` (padded to whole chunks).
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avg_plane(x: &[f32], out: &mut [f32], ah: &Axis, aw: &Axis, div: &[Vec<f32>], desc: &[TapDesc]) {
    let (h, w, ow) = (ah.n_in, aw.n_in, aw.n_out);
    assert!(x.len() == h * w && out.len() == ah.n_out * ow && div.len() == ah.n_out);
    assert!(desc.len() == ow.div_ceil(16) * aw.k && aw.s == 2 && aw.d == 1);
    let mut taps = Taps::new();
    let zero = _mm512_setzero_ps();
    for (oh, dv) in div.iter().enumerate() {
        assert!(dv.len() >= ow.div_ceil(16) * 16);
        prefetch_rows(x, ah, w, oh);
        let rs = ah.start(oh);
        for c in 0..ow.div_ceil(16) {
            let mut acc = zero;
            for i in 0..ah.k {
                let r = rs + i as isize;
                if r < 0 {
                    continue;
                }
                if r as usize >= h {
                    break;
                }
                for d in &desc[c * aw.k..(c + 1) * aw.k] {
                    acc = _mm512_add_ps(acc, taps.tap(x, r as usize * w, d, zero));
                }
            }
            let y = _mm512_div_ps(acc, _mm512_loadu_ps(dv.as_ptr().add(16 * c)));
            let n = (ow - 16 * c).min(16);
            store_head(out.as_mut_ptr().add(oh * ow + 16 * c), n, y);
        }
    }
}

/// Gradient of [`avg_plane`]: every `dx` element written once. Input row `r` gathers
/// `g = dy / divisor` of the output rows whose windows cover it; even and odd input
/// columns are summed separately (column `2*o + m` receives `g[o]` for tap offset
/// `m = j - pad`) and interleaved on the store. `g` is scratch of `OH` rows of `OW`
/// floats rounded up to whole chunks.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avg_backward_plane(
    dy: &[f32],
    dx: &mut [f32],
    ah: &Axis,
    aw: &Axis,
    div: &[Vec<f32>],
    g: &mut [f32],
) {
    let (h, w, ow, oh_n) = (ah.n_in, aw.n_in, aw.n_out, ah.n_out);
    let owc = ow.div_ceil(16) * 16;
    assert!(dy.len() == oh_n * ow && dx.len() == h * w && div.len() == oh_n && g.len() >= oh_n * owc);
    // dy of the next plane follows this one in memory
    super::prefetch(dy.as_ptr().wrapping_add(dy.len()), dy.len() * 4);
    for (oh, dv) in div.iter().enumerate() {
        assert!(dv.len() >= owc);
        let (src, dst) = (dy.as_ptr().add(oh * ow), g.as_mut_ptr().add(oh * owc));
        for c in 0..owc / 16 {
            let v = load_masked(src, ow, (16 * c) as isize, _mm512_setzero_ps());
            _mm512_storeu_ps(dst.add(16 * c), _mm512_div_ps(v, _mm512_loadu_ps(dv.as_ptr().add(16 * c))));
        }
    }
    let zero = _mm512_setzero_ps();
    let ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let ihi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for r in 0..h {
        let rp = r + ah.p;
        let drow = dx.as_mut_ptr().add(r * w);
        super::prefetch(drow.wrapping_add(PREFETCH_AHEAD / 4), w * 4);
        for c in 0..w.div_ceil(32) {
            let (mut even, mut odd) = (zero, zero);
            for i in 0..ah.k {
                if i > rp || !(rp - i).is_multiple_of(ah.s) {
                    continue;
                }
                let oh = (rp - i) / ah.s;
                if oh >= oh_n {
                    continue;
                }
                let grow = g.as_ptr().add(oh * owc);
                for j in 0..aw.k {
                    let m = j as isize - aw.p as isize;
                    let shift = m.div_euclid(2);
                    let start = (16 * c) as isize - shift;
                    // g rows are zero-padded to whole chunks: no mask needed inside them
                    let v = if start >= 0 && start + 16 <= owc as isize {
                        _mm512_loadu_ps(grow.offset(start))
                    } else {
                        load_masked(grow, ow, start, zero)
                    };
                    if m.rem_euclid(2) == 0 {
                        even = _mm512_add_ps(even, v);
                    } else {
                        odd = _mm512_add_ps(odd, v);
                    }
                }
            }
            let n = w - 32 * c;
            store_head(drow.add(32 * c), n.min(16), _mm512_permutex2var_ps(even, ilo, odd));
            if n > 16 {
                store_head(drow.add(32 * c + 16), n - 16, _mm512_permutex2var_ps(even, ihi, odd));
            }
        }
    }
}
