//! Gate nonlinearities for the recurrent kernels.
//!
//! float32 uses branch-free approximations that vectorise (no libm calls in the
//! gate loops): `exp` by range reduction to `[-ln2/2, ln2/2]` and a degree-5
//! polynomial, `tanh` by an odd polynomial near zero and `1 - 2/(e^{2|x|} + 1)`
//! elsewhere. Both stay within about 1-2 ulp of the correctly rounded value (unit
//! tests below check this against float64). float64 uses the standard library, so
//! gradient checks see exact functions.

use crate::gemm::Scalar;

/// A float type the recurrent kernels run on.
pub trait RnnFloat: Scalar {
    fn sigmoid(x: Self) -> Self;
    fn tanh_(x: Self) -> Self;
    /// [`RnnFloat::sigmoid`] for loops compiled with FMA when `FMA` is true.
    #[inline(always)]
    fn sigmoid_k<const FMA: bool>(x: Self) -> Self {
        Self::sigmoid(x)
    }
    /// [`RnnFloat::tanh_`] for loops compiled with FMA when `FMA` is true.
    #[inline(always)]
    fn tanh_k<const FMA: bool>(x: Self) -> Self {
        Self::tanh_(x)
    }
    /// Whether the per-step products use the packed-panel kernel (`panel.rs`).
    fn packed_kernel() -> bool {
        false
    }
    /// `out (m, n) (+)= a (m, k) @ W` with `W` packed by `panel::pack`, row-major
    /// contiguous `a` and `out`. Only called when [`RnnFloat::packed_kernel`] is true.
    #[allow(clippy::too_many_arguments)]
    fn packed_product(
        _a: &[Self],
        _m: usize,
        _k: usize,
        _wp: &[Self],
        _n: usize,
        _out: &mut [Self],
        _accumulate: bool,
    ) {
        unreachable!("rnn: no packed kernel for this type")
    }
}

impl RnnFloat for f64 {
    #[inline(always)]
    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }
    #[inline(always)]
    fn tanh_(x: f64) -> f64 {
        x.tanh()
    }
}

impl RnnFloat for f32 {
    #[inline(always)]
    fn sigmoid(x: f32) -> f32 {
        1.0 / (1.0 + exp_f32(-x))
    }
    #[inline(always)]
    fn tanh_(x: f32) -> f32 {
        tanh_f32(x)
    }
    #[inline(always)]
    fn sigmoid_k<const FMA: bool>(x: f32) -> f32 {
        1.0 / (1.0 + exp_f32k::<FMA>(-x))
    }
    #[inline(always)]
    fn tanh_k<const FMA: bool>(x: f32) -> f32 {
        tanh_f32k::<FMA>(x)
    }
    fn packed_kernel() -> bool {
        super::panel::available()
    }
    fn packed_product(
        a: &[f32],
        m: usize,
        k: usize,
        wp: &[f32],
        n: usize,
        out: &mut [f32],
        accumulate: bool,
    ) {
        super::panel::product_f32(a, k, m, k, wp, n, out, n, accumulate)
    }
}

/// e^x for float32, branch-free. Inputs are clamped to [-87, 88] (NaN passes through),
/// so the result never overflows to infinity; the gates only need it bounded.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    exp_f32k::<false>(x)
}

/// `a * b + c`, fused when `FMA` (the caller runs with FMA enabled).
#[inline(always)]
fn fm<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// [`exp_f32`] with the polynomial evaluated by fused multiply-adds when `FMA` (about a
/// third fewer vector operations in the gate loops; within the same error bound).
#[inline(always)]
pub fn exp_f32k<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n * LN2_HI is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = fm::<FMA>(-n, LN2_LO, fm::<FMA>(-n, LN2_HI, x));
    // e^r - 1 - r on |r| <= ln2/2, minimax coefficients (the classic Cephes set).
    let mut p = 1.987_569_1e-4_f32;
    p = fm::<FMA>(p, r, 1.398_199_9e-3);
    p = fm::<FMA>(p, r, 8.333_452e-3);
    p = fm::<FMA>(p, r, 4.166_579_6e-2);
    p = fm::<FMA>(p, r, 1.666_666_5e-1);
    p = fm::<FMA>(p, r, 0.5);
    let er = fm::<FMA>(p, r * r, r) + 1.0;
    // t = ROUND + n exactly, so its low mantissa bits are n (two's complement): 2^n by
    // integer arithmetic only (a float-to-int cast would not vectorise). NaN gives
    // garbage here, but `er` is NaN then and so is the product.
    let ni = t.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(ni.wrapping_add(127) << 23);
    er * scale
}

/// tanh for float32, branch-free (both halves computed, one selected).
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    tanh_f32k::<false>(x)
}

/// [`tanh_f32`] with fused multiply-adds when `FMA`.
#[inline(always)]
pub fn tanh_f32k<const FMA: bool>(x: f32) -> f32 {
    let ax = x.abs();
    // |x| < 0.625: x + x^3 P(x^2), least-squares fit weighted by relative error.
    let u = x * x;
    let mut p = 2.178_023_6e-3_f32;
    p = fm::<FMA>(p, u, -8.214_972e-3);
    p = fm::<FMA>(p, u, 2.171_555_3e-2);
    p = fm::<FMA>(p, u, -5.394_94e-2);
    p = fm::<FMA>(p, u, 1.333_322_7e-1);
    p = fm::<FMA>(p, u, -3.333_333e-1);
    let small = fm::<FMA>(x * u, p, x);
    let large = 1.0 - 2.0 / (exp_f32k::<FMA>(2.0 * ax) + 1.0);
    let large = large.copysign(x);
    if ax < 0.625 {
        small
    } else {
        large
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, exact: f64) -> f64 {
        let e = exact as f32;
        let spacing = (f32::from_bits(e.abs().to_bits() + 1) - e.abs()) as f64;
        ((a as f64) - exact).abs() / spacing
    }

    #[test]
    fn exp_tanh_sigmoid_within_two_ulp() {
        let mut worst = (0.0f64, 0.0f64, 0.0f64);
        let n = 400_000;
        for i in 0..=n {
            let x = -20.0 + 40.0 * (i as f64) / (n as f64);
            let xf = x as f32;
            let xd = xf as f64;
            let ex = xd.clamp(-80.0, 80.0).exp();
            let sg = 1.0 / (1.0 + (-xd).exp());
            worst.0 = worst.0.max(ulps(exp_f32(xf.clamp(-80.0, 80.0)), ex));
            worst.0 = worst.0.max(ulps(exp_f32k::<true>(xf.clamp(-80.0, 80.0)), ex));
            worst.1 = worst.1.max(ulps(tanh_f32(xf), xd.tanh()));
            worst.1 = worst.1.max(ulps(tanh_f32k::<true>(xf), xd.tanh()));
            worst.2 = worst.2.max(ulps(<f32 as RnnFloat>::sigmoid(xf), sg));
            worst.2 = worst.2.max(ulps(<f32 as RnnFloat>::sigmoid_k::<true>(xf), sg));
        }
        assert!(worst.0 <= 2.0, "exp worst {} ulp", worst.0);
        assert!(worst.1 <= 2.5, "tanh worst {} ulp", worst.1);
        assert!(worst.2 <= 2.5, "sigmoid worst {} ulp", worst.2);
    }

    #[test]
    fn tiny_and_special_values() {
        assert_eq!(tanh_f32(0.0), 0.0);
        assert!(tanh_f32(1e-30).to_bits() == 1e-30f32.to_bits());
        assert_eq!(tanh_f32(100.0), 1.0);
        assert_eq!(tanh_f32(-100.0), -1.0);
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(<f32 as RnnFloat>::sigmoid(f32::NAN).is_nan());
        assert_eq!(<f32 as RnnFloat>::sigmoid(100.0), 1.0);
        assert!(<f32 as RnnFloat>::sigmoid(-100.0) < 1e-37);
    }
}
