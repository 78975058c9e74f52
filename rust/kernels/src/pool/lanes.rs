//! Element-wise loops over whole [`LANES`]-wide chunks, shared by the pooling kernels.
//!
//! Each helper has a portable version (plain loops, whatever the compiler makes of
//! them) and, for `f32` on CPUs with AVX-512, an intrinsics version. The `avx512`
//! flag is a constant inside each `#[target_feature]` instantiation of a job (see
//! [`super::dispatch`]), so the choice costs nothing at run time. All slices hold
//! whole chunks (`len % LANES == 0`); sources may be longer than destinations.

use super::LANES;
use crate::gemm::Scalar;
use std::any::TypeId;

#[inline(always)]
pub(crate) fn is_f32<T: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<f32>()
}

#[inline(always)]
pub(crate) fn f32s<T: 'static>(s: &[T]) -> &[f32] {
    debug_assert!(is_f32::<T>());
    // SAFETY: only called when T is f32 (checked by the caller via is_f32).
    unsafe { std::slice::from_raw_parts(s.as_ptr() as *const f32, s.len()) }
}

#[inline(always)]
pub(crate) fn f32s_mut<T: 'static>(s: &mut [T]) -> &mut [f32] {
    debug_assert!(is_f32::<T>());
    // SAFETY: only called when T is f32 (checked by the caller via is_f32).
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr() as *mut f32, s.len()) }
}

/// `best = max(best, src)`, a NaN in `src` winning (PyTorch's `v > best || isnan(v)`).
#[inline(always)]
pub(crate) fn max_into<T: Scalar>(avx512: bool, best: &mut [T], src: &[T]) {
    assert!(src.len() >= best.len() && best.len().is_multiple_of(LANES));
    #[cfg(target_arch = "x86_64")]
    if avx512 && is_f32::<T>() {
        // SAFETY: avx512 is only true on CPUs with AVX-512F; lengths checked above.
        unsafe { x86::max_into(f32s_mut(best), f32s(src)) };
        return;
    }
    let _ = avx512;
    for (b, &v) in best.iter_mut().zip(src) {
        #[allow(clippy::eq_op)]
        if v > *b || v != v {
            *b = v;
        }
    }
}

/// As [`max_into`], also setting `arg[o] = base + o * step` where `src` won.
#[inline(always)]
pub(crate) fn max_idx_into<T: Scalar>(avx512: bool, best: &mut [T], arg: &mut [i32], src: &[T], base: i32, step: i32) {
    assert!(src.len() >= best.len() && arg.len() == best.len() && best.len().is_multiple_of(LANES));
    #[cfg(target_arch = "x86_64")]
    if avx512 && is_f32::<T>() {
        // SAFETY: as in max_into.
        unsafe { x86::max_idx_into(f32s_mut(best), arg, f32s(src), base, step) };
        return;
    }
    let _ = avx512;
    for (o, ((b, a), &v)) in best.iter_mut().zip(arg.iter_mut()).zip(src).enumerate() {
        #[allow(clippy::eq_op)]
        if v > *b || v != v {
            *b = v;
            *a = base + o as i32 * step;
        }
    }
}

/// `acc += src`.
#[inline(always)]
pub(crate) fn add_into<T: Scalar>(avx512: bool, acc: &mut [T], src: &[T]) {
    assert!(src.len() >= acc.len() && acc.len().is_multiple_of(LANES));
    #[cfg(target_arch = "x86_64")]
    if avx512 && is_f32::<T>() {
        // SAFETY: as in max_into.
        unsafe { x86::add_into(f32s_mut(acc), f32s(src)) };
        return;
    }
    let _ = avx512;
    for (a, &v) in acc.iter_mut().zip(src) {
        *a = *a + v;
    }
}

/// `acc /= d` element-wise.
#[inline(always)]
pub(crate) fn div_into<T: Scalar>(avx512: bool, acc: &mut [T], d: &[T]) {
    assert!(d.len() >= acc.len() && acc.len().is_multiple_of(LANES));
    #[cfg(target_arch = "x86_64")]
    if avx512 && is_f32::<T>() {
        // SAFETY: as in max_into.
        unsafe { x86::div_into(f32s_mut(acc), f32s(d)) };
        return;
    }
    let _ = avx512;
    for (a, &v) in acc.iter_mut().zip(d) {
        *a = *a / v;
    }
}

/// `even[t] = row[2t]`, `odd[t] = row[2t+1]`.
#[inline(always)]
pub(crate) fn deinterleave2<T: Scalar>(avx512: bool, row: &[T], even: &mut [T], odd: &mut [T]) {
    assert!(even.len() == odd.len() && row.len() >= 2 * even.len() && even.len().is_multiple_of(LANES));
    #[cfg(target_arch = "x86_64")]
    if avx512 && is_f32::<T>() {
        // SAFETY: as in max_into.
        unsafe { x86::deinterleave2(f32s(row), f32s_mut(even), f32s_mut(odd)) };
        return;
    }
    let _ = avx512;
    for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(row.chunks_exact(2)) {
        *e = pair[0];
        *o = pair[1];
    }
}

/// `row[2t] = even[t]`, `row[2t+1] = odd[t]`.
#[inline(always)]
pub(crate) fn interleave2<T: Scalar>(avx512: bool, even: &[T], odd: &[T], row: &mut [T]) {
    assert!(even.len() == odd.len() && row.len() >= 2 * even.len() && even.len().is_multiple_of(LANES));
    #[cfg(target_arch = "x86_64")]
    if avx512 && is_f32::<T>() {
        // SAFETY: as in max_into.
        unsafe { x86::interleave2(f32s(even), f32s(odd), f32s_mut(row)) };
        return;
    }
    let _ = avx512;
    for ((&e, &o), pair) in even.iter().zip(odd).zip(row.chunks_exact_mut(2)) {
        pair[0] = e;
        pair[1] = o;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn max_into(best: &mut [f32], src: &[f32]) {
        let (b, s) = (best.as_mut_ptr(), src.as_ptr());
        for i in (0..best.len()).step_by(16) {
            let bv = _mm512_loadu_ps(b.add(i));
            let v = _mm512_loadu_ps(s.add(i));
            let take = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, bv) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            _mm512_storeu_ps(b.add(i), _mm512_mask_mov_ps(bv, take, v));
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn max_idx_into(best: &mut [f32], arg: &mut [i32], src: &[f32], base: i32, step: i32) {
        let (b, a, s) = (best.as_mut_ptr(), arg.as_mut_ptr(), src.as_ptr());
        let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let mut cand = _mm512_add_epi32(_mm512_set1_epi32(base), _mm512_mullo_epi32(iota, _mm512_set1_epi32(step)));
        let inc = _mm512_set1_epi32(16 * step);
        for i in (0..best.len()).step_by(16) {
            let bv = _mm512_loadu_ps(b.add(i));
            let v = _mm512_loadu_ps(s.add(i));
            let take = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, bv) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            _mm512_storeu_ps(b.add(i), _mm512_mask_mov_ps(bv, take, v));
            _mm512_mask_storeu_epi32(a.add(i), take, cand);
            cand = _mm512_add_epi32(cand, inc);
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn add_into(acc: &mut [f32], src: &[f32]) {
        let (a, s) = (acc.as_mut_ptr(), src.as_ptr());
        for i in (0..acc.len()).step_by(16) {
            _mm512_storeu_ps(a.add(i), _mm512_add_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(s.add(i))));
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn div_into(acc: &mut [f32], d: &[f32]) {
        let (a, s) = (acc.as_mut_ptr(), d.as_ptr());
        for i in (0..acc.len()).step_by(16) {
            _mm512_storeu_ps(a.add(i), _mm512_div_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(s.add(i))));
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn deinterleave2(row: &[f32], even: &mut [f32], odd: &mut [f32]) {
        let ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let (r, e, o) = (row.as_ptr(), even.as_mut_ptr(), odd.as_mut_ptr());
        for i in (0..even.len()).step_by(16) {
            let lo = _mm512_loadu_ps(r.add(2 * i));
            let hi = _mm512_loadu_ps(r.add(2 * i + 16));
            _mm512_storeu_ps(e.add(i), _mm512_permutex2var_ps(lo, ie, hi));
            _mm512_storeu_ps(o.add(i), _mm512_permutex2var_ps(lo, io, hi));
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn interleave2(even: &[f32], odd: &[f32], row: &mut [f32]) {
        let ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let ihi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        let (r, e, o) = (row.as_mut_ptr(), even.as_ptr(), odd.as_ptr());
        for i in (0..even.len()).step_by(16) {
            let ev = _mm512_loadu_ps(e.add(i));
            let ov = _mm512_loadu_ps(o.add(i));
            _mm512_storeu_ps(r.add(2 * i), _mm512_permutex2var_ps(ev, ilo, ov));
            _mm512_storeu_ps(r.add(2 * i + 16), _mm512_permutex2var_ps(ev, ihi, ov));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(f: impl Fn(bool)) {
        f(false);
        #[cfg(target_arch = "x86_64")]
        if crate::simd::level() == crate::simd::SimdLevel::Avx512 {
            f(true);
        }
    }

    #[test]
    fn helpers_agree_with_scalar_definitions() {
        both(|avx| {
            let src: Vec<f32> = (0..48).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            let mut src_nan = src.clone();
            src_nan[3] = f32::NAN;
            let mut best = vec![0.0f32; 32];
            let mut arg = vec![-1i32; 32];
            max_idx_into(avx, &mut best, &mut arg, &src_nan, 100, 2);
            for o in 0..32 {
                let v = src_nan[o];
                if v.is_nan() || v > 0.0 {
                    assert!(best[o].is_nan() || best[o] == v);
                    assert_eq!(arg[o], 100 + 2 * o as i32);
                } else {
                    assert_eq!((best[o], arg[o]), (0.0, -1));
                }
            }
            let mut b2 = vec![0.0f32; 32];
            max_into(avx, &mut b2, &src_nan);
            assert!(b2[3].is_nan());
            let mut acc = vec![1.0f32; 16];
            add_into(avx, &mut acc, &src);
            div_into(avx, &mut acc, &[2.0f32; 16]);
            assert_eq!(acc[5], (1.0 + src[5]) / 2.0);
            let (mut e, mut o) = (vec![0.0f32; 16], vec![0.0f32; 16]);
            deinterleave2(avx, &src, &mut e, &mut o);
            assert_eq!((e[7], o[7]), (src[14], src[15]));
            let mut back = vec![0.0f32; 32];
            interleave2(avx, &e, &o, &mut back);
            assert_eq!(&back[..], &src[..32]);
        });
    }
}
