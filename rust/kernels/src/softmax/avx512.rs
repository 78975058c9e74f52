//! AVX-512 float32 row primitives for softmax, cross-entropy and attention.
//!
//! The portable bodies in [`crate::vmath`] compile to separate multiplies and adds (Rust
//! never contracts `a * b + c`), and keep one accumulator register, so the `exp` pass
//! of a float32 softmax row ran at ~25 cycles per 16 elements. These versions use FMA,
//! `vscalefps` for the `2^n` step, four independent accumulators and masked tails.
//! Same range reduction and polynomial as [`crate::vmath::exp_f32`] (results agree to
//! an ulp or two; they do not depend on the thread count: every row is reduced in a
//! fixed order).
//!
//! Every function requires a CPU with AVX-512F (callers check [`available`]).

#![allow(clippy::missing_safety_doc)]

use std::arch::x86_64::*;

/// True when these kernels may run (AVX-512 detected) and `T` is `f32`.
#[inline]
pub fn available<T: 'static>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && crate::simd::level() == crate::simd::SimdLevel::Avx512
}

#[inline(always)]
pub fn f32s<T: 'static>(s: &[T]) -> &[f32] {
    debug_assert!(std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>());
    // SAFETY: only called when T is f32 (checked by the caller through `available`).
    unsafe { std::slice::from_raw_parts(s.as_ptr() as *const f32, s.len()) }
}

#[inline(always)]
pub fn f32s_mut<T: 'static>(s: &mut [T]) -> &mut [f32] {
    debug_assert!(std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>());
    // SAFETY: only called when T is f32 (checked by the caller through `available`).
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr() as *mut f32, s.len()) }
}

#[inline(always)]
fn tail_mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// `exp(x)` on 16 lanes for `x <= 88` (the callers pass `x - max <= 0`): -inf and
/// x < -87 give 0 (as [`crate::vmath::exp_f32`]), NaN stays NaN, overflow gives +inf
/// (`vscalefps` saturates) but `x = +inf` gives NaN.
#[inline]
#[target_feature(enable = "avx512f")]
#[allow(clippy::excessive_precision)]
pub unsafe fn exp16(x: __m512) -> __m512 {
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
        x,
        _mm512_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_375), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm512_set1_ps(1.987_569_2e-4);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.398_199_9e-3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.333_452e-3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.166_579_6e-2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.666_666_5e-1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0));
    let y = _mm512_scalef_ps(p, n);
    // Lanes below -87 (and -inf) are 0; "not less than" is true for NaN, which stays.
    _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, _mm512_set1_ps(-87.0)), y)
}

/// Largest element (`-inf` for an empty row), ignoring NaN (as [`crate::vmath::row_max`]:
/// the sums that follow propagate a NaN instead).
#[target_feature(enable = "avx512f")]
pub unsafe fn row_max(x: &[f32]) -> f32 {
    let n = x.len();
    let p = x.as_ptr();
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    let (mut a0, mut a1, mut a2, mut a3) = (ninf, ninf, ninf, ninf);
    // max_ps returns its second operand when one is NaN: the accumulator never takes a NaN.
    let mut i = 0;
    while i + 64 <= n {
        a0 = _mm512_max_ps(_mm512_loadu_ps(p.add(i)), a0);
        a1 = _mm512_max_ps(_mm512_loadu_ps(p.add(i + 16)), a1);
        a2 = _mm512_max_ps(_mm512_loadu_ps(p.add(i + 32)), a2);
        a3 = _mm512_max_ps(_mm512_loadu_ps(p.add(i + 48)), a3);
        i += 64;
    }
    while i + 16 <= n {
        a0 = _mm512_max_ps(_mm512_loadu_ps(p.add(i)), a0);
        i += 16;
    }
    if i < n {
        a1 = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, tail_mask(n - i), p.add(i)), a1);
    }
    _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(a0, a1), _mm512_max_ps(a2, a3)))
}

/// `y = exp(x - m)` (or only the sum when `y` is `None`), returning `sum(exp(x - m))`.
#[target_feature(enable = "avx512f")]
pub unsafe fn exp_store(x: &[f32], m: f32, y: Option<&mut [f32]>) -> f32 {
    let n = x.len();
    let p = x.as_ptr();
    let mv = _mm512_set1_ps(m);
    let zero = _mm512_setzero_ps();
    let (mut s0, mut s1, mut s2, mut s3) = (zero, zero, zero, zero);
    let q = match y {
        Some(y) => {
            assert!(y.len() >= n);
            y.as_mut_ptr()
        }
        None => std::ptr::null_mut(),
    };
    let store = !q.is_null();
    let mut i = 0;
    while i + 64 <= n {
        let e0 = exp16(_mm512_sub_ps(_mm512_loadu_ps(p.add(i)), mv));
        let e1 = exp16(_mm512_sub_ps(_mm512_loadu_ps(p.add(i + 16)), mv));
        let e2 = exp16(_mm512_sub_ps(_mm512_loadu_ps(p.add(i + 32)), mv));
        let e3 = exp16(_mm512_sub_ps(_mm512_loadu_ps(p.add(i + 48)), mv));
        if store {
            _mm512_storeu_ps(q.add(i), e0);
            _mm512_storeu_ps(q.add(i + 16), e1);
            _mm512_storeu_ps(q.add(i + 32), e2);
            _mm512_storeu_ps(q.add(i + 48), e3);
        }
        s0 = _mm512_add_ps(s0, e0);
        s1 = _mm512_add_ps(s1, e1);
        s2 = _mm512_add_ps(s2, e2);
        s3 = _mm512_add_ps(s3, e3);
        i += 64;
    }
    while i + 16 <= n {
        let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(p.add(i)), mv));
        if store {
            _mm512_storeu_ps(q.add(i), e);
        }
        s0 = _mm512_add_ps(s0, e);
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        let e = _mm512_maskz_mov_ps(k, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, p.add(i)), mv)));
        if store {
            _mm512_mask_storeu_ps(q.add(i), k, e);
        }
        s1 = _mm512_add_ps(s1, e);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)))
}

/// `x = exp(x - m)` in place, returning the sum of the new values.
#[target_feature(enable = "avx512f")]
pub unsafe fn exp_inplace(x: &mut [f32], m: f32) -> f32 {
    let n = x.len();
    let q = x.as_mut_ptr();
    let mv = _mm512_set1_ps(m);
    let zero = _mm512_setzero_ps();
    let (mut s0, mut s1, mut s2, mut s3) = (zero, zero, zero, zero);
    let mut i = 0;
    while i + 64 <= n {
        let e0 = exp16(_mm512_sub_ps(_mm512_loadu_ps(q.add(i)), mv));
        let e1 = exp16(_mm512_sub_ps(_mm512_loadu_ps(q.add(i + 16)), mv));
        let e2 = exp16(_mm512_sub_ps(_mm512_loadu_ps(q.add(i + 32)), mv));
        let e3 = exp16(_mm512_sub_ps(_mm512_loadu_ps(q.add(i + 48)), mv));
        _mm512_storeu_ps(q.add(i), e0);
        _mm512_storeu_ps(q.add(i + 16), e1);
        _mm512_storeu_ps(q.add(i + 32), e2);
        _mm512_storeu_ps(q.add(i + 48), e3);
        s0 = _mm512_add_ps(s0, e0);
        s1 = _mm512_add_ps(s1, e1);
        s2 = _mm512_add_ps(s2, e2);
        s3 = _mm512_add_ps(s3, e3);
        i += 64;
    }
    while i + 16 <= n {
        let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(q.add(i)), mv));
        _mm512_storeu_ps(q.add(i), e);
        s0 = _mm512_add_ps(s0, e);
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        let e = _mm512_maskz_mov_ps(k, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, q.add(i)), mv)));
        _mm512_mask_storeu_ps(q.add(i), k, e);
        s1 = _mm512_add_ps(s1, e);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)))
}

/// `y = a * y + b` in place.
#[target_feature(enable = "avx512f")]
pub unsafe fn affine_inplace(y: &mut [f32], a: f32, b: f32) {
    let n = y.len();
    let q = y.as_mut_ptr();
    let (av, bv) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
    let mut i = 0;
    while i + 16 <= n {
        _mm512_storeu_ps(q.add(i), _mm512_fmadd_ps(_mm512_loadu_ps(q.add(i)), av, bv));
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        _mm512_mask_storeu_ps(q.add(i), k, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, q.add(i)), av, bv));
    }
}

/// `y = (x - m) - c`.
#[target_feature(enable = "avx512f")]
pub unsafe fn shift_store(x: &[f32], m: f32, c: f32, y: &mut [f32]) {
    let n = x.len().min(y.len());
    let (p, q) = (x.as_ptr(), y.as_mut_ptr());
    let (mv, cv) = (_mm512_set1_ps(m), _mm512_set1_ps(c));
    let mut i = 0;
    while i + 16 <= n {
        _mm512_storeu_ps(q.add(i), _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(p.add(i)), mv), cv));
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        let v = _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, p.add(i)), mv), cv);
        _mm512_mask_storeu_ps(q.add(i), k, v);
    }
}

/// Softmax (or log-softmax) of one row.
#[target_feature(enable = "avx512f")]
pub unsafe fn softmax_row(x: &[f32], y: &mut [f32], log: bool) {
    let m = row_max(x);
    if log {
        let ls = exp_store(x, m, None).ln();
        shift_store(x, m, ls, y);
    } else {
        let s = exp_store(x, m, Some(y));
        affine_inplace(y, 1.0 / s, 0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_rows_match_the_portable_versions() {
        if !available::<f32>() {
            return;
        }
        let mut worst = 0.0f64;
        let mut x = -90.0f32;
        let mut xs = Vec::new();
        while x < 88.0 {
            xs.push(x);
            x += 0.0173;
        }
        xs.extend([f32::NEG_INFINITY, f32::NAN, 0.0, -87.0, 88.3, 88.0, -1e-30]);
        let mut got = vec![0.0f32; xs.len()];
        for (c, g) in xs.chunks(16).zip(got.chunks_mut(16)) {
            let mut buf = [0.0f32; 16];
            buf[..c.len()].copy_from_slice(c);
            let mut out = [0.0f32; 16];
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), exp16(_mm512_loadu_ps(buf.as_ptr()))) };
            g.copy_from_slice(&out[..c.len()]);
        }
        for (&x, &e) in xs.iter().zip(&got) {
            let r = crate::vmath::exp_f32(x);
            if r.is_nan() {
                assert!(e.is_nan(), "{x}");
            } else if r == 0.0 || r.is_infinite() {
                assert_eq!(e, r, "{x}");
            } else {
                worst = worst.max(((e as f64 - r as f64) / r as f64).abs());
            }
        }
        assert!(worst < 4e-7, "{worst}");
        for n in [0usize, 1, 15, 16, 17, 63, 64, 65, 100, 1000] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 37) % 101) as f32 * 0.1 - 5.0).collect();
            let m = unsafe { row_max(&x) };
            assert_eq!(m, crate::vmath::row_max(&x));
            let mut y = vec![0.0f32; n];
            let s = unsafe { exp_store(&x, m, Some(&mut y)) };
            let mut xi = x.clone();
            assert_eq!(unsafe { exp_inplace(&mut xi, m) }, s);
            assert_eq!(xi, y);
            let s0: f64 = x.iter().map(|&v| ((v - m) as f64).exp()).sum();
            assert!((s as f64 - s0).abs() <= 1e-6 * s0.max(1e-30), "{n}");
            for (a, b) in x.iter().zip(&y) {
                assert!((((a - m) as f64).exp() - *b as f64).abs() < 1e-6);
            }
            if n > 0 {
                // A NaN may be dropped by the maximum, never by the sum.
                let mut xn = x.clone();
                xn[n / 2] = f32::NAN;
                let m = unsafe { row_max(&xn) };
                assert_eq!(m, crate::vmath::row_max(&xn));
                assert!(unsafe { exp_store(&xn, m, None) }.is_nan());
            }
        }
    }
}
