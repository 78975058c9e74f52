//! Vectorisable elementary functions and row reductions for the softmax, loss,
//! activation and attention kernels.
//!
//! Everything here is branch-free scalar code marked `#[inline(always)]`, so that the
//! callers' loops auto-vectorise. The callers compile their hot loops several times
//! (portable, AVX2+FMA, AVX-512) with [`multiversion!`](crate::multiversion) and pick
//! one at run time with [`crate::simd::level`]. Reductions use a fixed number of
//! accumulator lanes ([`LANES`]), so their result does not depend on the SIMD level
//! or the thread count.

use crate::gemm::Scalar;

/// Accumulator lanes of every reduction (a fixed summation order).
pub const LANES: usize = 16;

/// Float types with a fast vectorisable `exp` and `log(1 + e)` for `e` in `[0, 1]`.
pub trait Real: Scalar {
    /// `exp(self)`, accurate to a few ulp; `-inf` gives 0, `NaN` gives `NaN`, results
    /// below the smallest normal number are flushed to 0.
    fn fexp(self) -> Self;
    /// `ln(1 + self)` for `self` in `[0, 1]` (no cancellation for small values).
    fn log1p_unit(self) -> Self;
    /// `exp(self) - 1`, accurate near 0 (a Taylor polynomial for `|self| < 0.35`).
    fn fexpm1(self) -> Self;
}

impl Real for f32 {
    #[inline(always)]
    fn fexp(self) -> f32 {
        exp_f32(self)
    }
    #[inline(always)]
    fn log1p_unit(self) -> f32 {
        // ln(1 + e) = 2 atanh(u), u = e / (2 + e) in [0, 1/3].
        let u = self / (2.0 + self);
        let z = u * u;
        let p = ((((((1.0 / 13.0) * z + 1.0 / 11.0) * z + 1.0 / 9.0) * z + 1.0 / 7.0) * z + 1.0 / 5.0) * z
            + 1.0 / 3.0)
            * z
            + 1.0;
        2.0 * u * p
    }
    #[inline(always)]
    fn fexpm1(self) -> f32 {
        let x = self;
        let mut p = 1.0 / 40_320.0;
        p = p * x + 1.0 / 5_040.0;
        p = p * x + 1.0 / 720.0;
        p = p * x + 1.0 / 120.0;
        p = p * x + 1.0 / 24.0;
        p = p * x + 1.0 / 6.0;
        p = p * x + 0.5;
        p = p * x + 1.0;
        let small = p * x;
        let big = exp_f32(x) - 1.0;
        if x.abs() < 0.35 {
            small
        } else {
            big
        }
    }
}

impl Real for f64 {
    #[inline(always)]
    fn fexp(self) -> f64 {
        exp_f64(self)
    }
    #[inline(always)]
    fn log1p_unit(self) -> f64 {
        let u = self / (2.0 + self);
        let z = u * u;
        // 2 atanh(u) = 2 u sum_k z^k / (2k + 1); (1/3)^(2k) / (2k+1) < 1e-17 for k >= 17.
        let mut p = 1.0 / 37.0;
        let mut k = 17;
        while k >= 0 {
            p = p * z + 1.0 / (2 * k + 1) as f64;
            k -= 1;
        }
        2.0 * u * p
    }
    #[inline(always)]
    fn fexpm1(self) -> f64 {
        let x = self;
        let mut p = 1.0 / 6_227_020_800.0;
        p = p * x + 1.0 / 479_001_600.0;
        p = p * x + 1.0 / 39_916_800.0;
        p = p * x + 1.0 / 3_628_800.0;
        p = p * x + 1.0 / 362_880.0;
        p = p * x + 1.0 / 40_320.0;
        p = p * x + 1.0 / 5_040.0;
        p = p * x + 1.0 / 720.0;
        p = p * x + 1.0 / 120.0;
        p = p * x + 1.0 / 24.0;
        p = p * x + 1.0 / 6.0;
        p = p * x + 0.5;
        p = p * x + 1.0;
        let small = p * x;
        let big = exp_f64(x) - 1.0;
        if x.abs() < 0.35 {
            small
        } else {
            big
        }
    }
}

/// `exp` in single precision: Cody-Waite range reduction and a degree-6 polynomial.
#[inline(always)]
#[allow(clippy::excessive_precision)] // 0.693359375 = 355/512 is exact: the Cody-Waite split
pub fn exp_f32(x: f32) -> f32 {
    const LO: f32 = -87.0;
    const HI: f32 = 88.3;
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let xc = x.clamp(LO, HI); // NaN stays NaN
    let t = xc * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = xc - n * 0.693_359_375 - n * -2.121_944_4e-4;
    let z = r * r;
    let p = (((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5)
        * z
        + r
        + 1.0;
    let scale = f32::from_bits((ni.wrapping_add(127) as u32) << 23);
    let y = p * scale;
    if x < LO {
        0.0
    } else if x > HI {
        f32::INFINITY
    } else {
        y
    }
}

/// `exp` in double precision: Cody-Waite range reduction and a degree-13 Taylor polynomial
/// on `|r| <= ln(2)/2` (truncation error below 1e-17 relative).
#[inline(always)]
pub fn exp_f64(x: f64) -> f64 {
    const LO: f64 = -708.0;
    const HI: f64 = 709.0;
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    let xc = x.clamp(LO, HI); // NaN stays NaN
    let t = xc * std::f64::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let ni = (t.to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64);
    let r = xc - n * 6.931_457_519_531_25e-1 - n * 1.428_606_820_309_417_2e-6;
    let mut p = 1.0 / 6_227_020_800.0; // 1/13!
    p = p * r + 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let scale = f64::from_bits((ni.wrapping_add(1023) as u64) << 52);
    let y = p * scale;
    if x < LO {
        0.0
    } else if x > HI {
        f64::INFINITY
    } else {
        y
    }
}

/// `a > b ? a : b` (ignores a NaN in `a`; callers' sums propagate NaN anyway).
#[inline(always)]
pub fn fmax<T: Real>(a: T, b: T) -> T {
    if a > b {
        a
    } else {
        b
    }
}

/// Largest element (`-inf` for an empty slice).
#[inline(always)]
pub fn row_max<T: Real>(x: &[T]) -> T {
    let mut acc = [T::neg_infinity(); LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] = fmax(c[i], acc[i]);
        }
    }
    let mut m = lane_max(acc);
    for &v in chunks.remainder() {
        m = fmax(v, m);
    }
    m
}

/// Sum of a fixed-lane accumulator, as a fixed pairwise tree (vectorises as shuffles).
#[inline(always)]
pub fn lane_sum<T: Real>(mut acc: [T; LANES], tail: T) -> T {
    let mut w = LANES / 2;
    while w > 0 {
        for i in 0..w {
            acc[i] = acc[i] + acc[i + w];
        }
        w /= 2;
    }
    acc[0] + tail
}

/// Maximum of a fixed-lane accumulator, as a pairwise tree.
#[inline(always)]
fn lane_max<T: Real>(mut acc: [T; LANES]) -> T {
    let mut w = LANES / 2;
    while w > 0 {
        for i in 0..w {
            acc[i] = fmax(acc[i], acc[i + w]);
        }
        w /= 2;
    }
    acc[0]
}

/// `sum(x)`.
#[inline(always)]
pub fn row_sum<T: Real>(x: &[T]) -> T {
    let mut acc = [T::zero(); LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] = acc[i] + c[i];
        }
    }
    let mut t = T::zero();
    for &v in chunks.remainder() {
        t = t + v;
    }
    lane_sum(acc, t)
}

/// `sum(x * y)`.
#[inline(always)]
pub fn row_dot<T: Real>(x: &[T], y: &[T]) -> T {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mut acc = [T::zero(); LANES];
    let mut cx = x.chunks_exact(LANES);
    let mut cy = y.chunks_exact(LANES);
    for (a, b) in (&mut cx).zip(&mut cy) {
        for i in 0..LANES {
            acc[i] = acc[i] + a[i] * b[i];
        }
    }
    let mut t = T::zero();
    for (&a, &b) in cx.remainder().iter().zip(cy.remainder()) {
        t = t + a * b;
    }
    lane_sum(acc, t)
}

/// `sum(exp(x - m))`.
#[inline(always)]
pub fn row_sum_exp<T: Real>(x: &[T], m: T) -> T {
    let mut acc = [T::zero(); LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] = acc[i] + (c[i] - m).fexp();
        }
    }
    let mut t = T::zero();
    for &v in chunks.remainder() {
        t = t + (v - m).fexp();
    }
    lane_sum(acc, t)
}

/// `y = exp(x - m)`, returning `sum(y)`.
#[inline(always)]
pub fn row_exp_store<T: Real>(x: &[T], m: T, y: &mut [T]) -> T {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &mut y[..n]);
    let mut acc = [T::zero(); LANES];
    let mut cx = x.chunks_exact(LANES);
    let mut cy = y.chunks_exact_mut(LANES);
    for (a, b) in (&mut cx).zip(&mut cy) {
        for i in 0..LANES {
            let e = (a[i] - m).fexp();
            b[i] = e;
            acc[i] = acc[i] + e;
        }
    }
    let mut t = T::zero();
    for (&a, b) in cx.remainder().iter().zip(cy.into_remainder()) {
        let e = (a - m).fexp();
        *b = e;
        t = t + e;
    }
    lane_sum(acc, t)
}

/// `x = exp(x - m)` in place, returning the new `sum(x)`.
#[inline(always)]
pub fn row_exp_inplace<T: Real>(x: &mut [T], m: T) -> T {
    let mut acc = [T::zero(); LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            let e = (c[i] - m).fexp();
            c[i] = e;
            acc[i] = acc[i] + e;
        }
    }
    let mut t = T::zero();
    for v in chunks.into_remainder() {
        let e = (*v - m).fexp();
        *v = e;
        t = t + e;
    }
    lane_sum(acc, t)
}

/// Compile a generic function (with an `#[inline(always)]` body) three times — portable,
/// AVX2+FMA and AVX-512 — and dispatch on [`crate::simd::level`] at run time.
///
/// `multiversion!(pub fn name<T: Real>(a: A, b: B) -> R => body_fn);` defines `name`,
/// calling `body_fn::<T>(a, b)` compiled for the best available instruction set.
#[macro_export]
macro_rules! multiversion {
    ($vis:vis fn $name:ident<$T:ident: $bound:path>($($arg:ident : $ty:ty),* $(,)?) -> $ret:ty => $body:ident) => {
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<$T: $bound>($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v512<$T: $bound>($($arg: $ty),*) -> $ret {
                    $body::<$T>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v256<$T: $bound>($($arg: $ty),*) -> $ret {
                    $body::<$T>($($arg),*)
                }
                match $crate::simd::level() {
                    // SAFETY: the running CPU supports the enabled features (detected).
                    $crate::simd::SimdLevel::Avx512 => return unsafe { v512::<$T>($($arg),*) },
                    $crate::simd::SimdLevel::Avx2Fma => return unsafe { v256::<$T>($($arg),*) },
                    _ => {}
                }
            }
            $body::<$T>($($arg),*)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        let mut worst32 = 0.0f64;
        let mut worst64 = 0.0f64;
        let mut x = -86.0f64;
        while x < 88.0 {
            let e32 = exp_f32(x as f32) as f64;
            let r32 = (x as f32).exp() as f64;
            worst32 = worst32.max(((e32 - r32) / r32).abs());
            let r64 = x.exp();
            worst64 = worst64.max(((exp_f64(x) - r64) / r64).abs());
            x += 0.0137;
        }
        assert!(worst32 < 4e-7, "f32 exp rel err {worst32}");
        assert!(worst64 < 1e-15, "f64 exp rel err {worst64}");
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f64(f64::NEG_INFINITY), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f64(f64::NAN).is_nan());
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f64(0.0), 1.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert!(exp_f64(-700.0) > 0.0 && exp_f64(-750.0) == 0.0);
    }

    #[test]
    fn log1p_unit_matches_std() {
        for i in 0..=1000 {
            let e = i as f64 / 1000.0 * if i % 7 == 0 { 1e-6 } else { 1.0 };
            let r = e.ln_1p();
            assert!((e.log1p_unit() - r).abs() <= 5e-16 * r.max(1e-300) + 1e-300, "{e} {} {r}", e.log1p_unit());
            let r32 = (e as f32).ln_1p();
            assert!(((e as f32).log1p_unit() - r32).abs() <= 3e-7 * r32 + 1e-38, "{e}");
        }
    }

    #[test]
    fn expm1_matches_std() {
        let mut x = -5.0f64;
        while x < 5.0 {
            let r = x.exp_m1();
            assert!((x.fexpm1() - r).abs() <= 4e-16 * r.abs() + 1e-300, "{x}");
            let r32 = (x as f32).exp_m1();
            assert!(((x as f32).fexpm1() - r32).abs() <= 4e-7 * r32.abs() + 1e-38, "{x}");
            x += 0.00731;
        }
    }

    fn reductions_body<T: Real>(x: &[T]) -> (T, T) {
        (row_max(x), row_sum_exp(x, row_max(x)))
    }
    multiversion!(fn reductions<T: Real>(x: &[T]) -> (T, T) => reductions_body);

    #[test]
    fn reductions_agree_with_naive() {
        let x: Vec<f64> = (0..103).map(|i| ((i * 37) % 101) as f64 * 0.1 - 5.0).collect();
        let (m, s) = reductions(&x);
        let m0 = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s0: f64 = x.iter().map(|v| (v - m0).exp()).sum();
        assert_eq!(m, m0);
        assert!((s - s0).abs() < 1e-13 * s0);
        assert!((row_dot(&x, &x) - x.iter().map(|v| v * v).sum::<f64>()).abs() < 1e-10);
        assert!((row_sum(&x) - x.iter().sum::<f64>()).abs() < 1e-10);
    }
}
