//! Elementwise activations (forward and backward from the input) and the binary
//! cross-entropy with logits, one fused pass each, parallel over fixed chunks.
//!
//! `exp`, `expm1` and `log1p` come from [`crate::vmath`] and vectorise. The exact GELU
//! needs `erf`: float32 uses a vectorisable Chebyshev fit (relative error ~1e-7),
//! float64 a scalar double-precision `erfc` (a series below 1.5, a continued fraction above).

use crate::error::{KernelError, KernelResult};
use crate::multiversion;
use crate::parallel;
use crate::vmath::Real;
use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 16384;

/// An activation and its parameters (PyTorch's names and defaults live in Python).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Act<T> {
    Sigmoid,
    Tanh,
    Relu,
    /// Negative slope.
    LeakyRelu(T),
    /// alpha.
    Elu(T),
    Selu,
    /// Exact: `x * Phi(x)`.
    Gelu,
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`, evaluated as `x sigmoid(2 u)`.
    GeluTanh,
    Silu,
    /// (beta, threshold)
    Softplus(T, T),
}

const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
const SELU_SCALE: f64 = 1.050_700_987_355_480_5;
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_C: f64 = 0.044_715;

/// Chebyshev expansions of the scaled complementary error function
/// `erfcx(z) = exp(z^2) erfc(z)` on `[a, b]` (coefficients of T_0, T_1, ... in
/// `t = (2z - a - b) / (b - a)`), fitted at Chebyshev nodes to high-precision values
/// (`math.erfc` times an exact `exp(z^2)` below 2, Laplace's continued fraction in
/// 50-digit decimals above); relative error <= 5e-15 on every interval.
const ERFCX_CHEB: [(f64, f64, &[f64]); 7] = [
    (0.0, 0.5, &[0.788974204329832, -0.19054959076559186, 0.01874876641404654, -0.001596738539519463, 0.00012165370853879903, -8.465560708015752e-06, 5.457634580437647e-07, -3.2936085339316755e-08, 1.875346909506931e-09, -1.0137361047763529e-10, 5.2285011870348495e-12, -2.5833978771922545e-13, 1.2470637456062909e-14]),
    (0.5, 1.0, &[0.5142540300448141, -0.09353436157631642, 0.007349543567965998, -0.000517028768317105, 3.3274891810453976e-05, -1.987760941897808e-06, 1.1137198398098388e-07, -5.898649605081951e-09, 2.9712995389731095e-10, -1.430492035461925e-11, 6.608435887851815e-13, -2.938423085127165e-14, 1.3008370673179887e-15, -8.392497208503151e-17]),
    (1.0, 2.0, &[0.331427281639452, -0.08500213770674324, 0.009951127341466168, -0.0010810888102208746, 0.00011023243631198063, -1.0636830518167344e-05, 9.775012681164542e-07, -8.597922862494338e-08, 7.267708440350816e-09, -5.923543856479806e-10, 4.668402529055168e-11, -3.566158518536709e-12, 2.646901515156205e-13, -1.910438509521917e-14, 1.403921655977216e-15, -6.170807577884348e-17, 8.234820792881318e-17]),
    (2.0, 3.5, &[0.1994307816968119, -0.04938002535992734, 0.005840496381892694, -0.0006632226933018223, 7.259178935513418e-05, -7.682952765955768e-06, 7.883915794854862e-07, -7.861599621003739e-08, 7.632681903560684e-09, -7.227220851954417e-10, 6.683961211731349e-11, -6.045503372785338e-12, 5.35447394525117e-13, -4.647279773409054e-14, 3.9870090645600336e-15, -3.069796979476065e-16, 8.042507221123074e-17]),
    (3.5, 6.0, &[0.12011119518612724, -0.03077508367843977, 0.0038653971628057047, -0.00047649553104628806, 5.770371528145526e-05, -6.870638037530468e-06, 8.049536979216769e-07, -9.2859571231891e-08, 1.055453759116777e-08, -1.1826607783204016e-09, 1.3071368950934081e-10, -1.425722660746183e-11, 1.5353146336070965e-12, -1.6332381900424867e-13, 1.715379046870711e-14, -1.7858571478560168e-15, 1.7489595318981038e-16, -1.503427012513232e-17]),
    (6.0, 12.0, &[0.06595751740567128, -0.022317105822831296, 0.0037510216489236204, -0.0006264480624745729, 0.00010396751634724295, -1.7148985723425226e-05, 2.811618330322512e-06, -4.582457913735405e-07, 7.425231456042242e-08, -1.1962842207611746e-08, 1.9165205142199698e-09, -3.0534274315029126e-10, 4.838331136265064e-11, -7.62561632445755e-12, 1.1955310039429576e-12, -1.8645796920391731e-13, 2.8939171544263915e-14, -4.464796375266445e-15, 6.847091803316287e-16, -9.89054113106086e-17, 2.2183453213441653e-17]),
    (12.0, 27.0, &[0.03128334093506087, -0.012472693822544014, 0.0024826606200502714, -0.000493420989507491, 9.791838312823806e-05, -1.9402618335272533e-05, 3.838919909800732e-06, -7.584264009705461e-07, 1.4961548909316897e-07, -2.947144330808069e-08, 5.7968353744794914e-09, -1.138539738741914e-09, 2.2329345280329292e-10, -4.372977965900133e-11, 8.551751492075164e-12, -1.669998352085955e-12, 3.2563877361119093e-13, -6.341251151547689e-14, 1.232642040224606e-14, -2.376003932675933e-15, 4.617450265587802e-16, -8.45116152904108e-17, 2.171806873384859e-17, -1.466559804446025e-17, 2.360659644983541e-18, 2.832791573980248e-18, -1.0386902437927576e-17]),
];

/// `exp(-z^2)`; from z = 4 on with `z^2` split exactly (`z = hi + lo`, `hi` of 26 bits so
/// `hi^2` is exact), which keeps full relative precision for large z.
#[inline]
fn exp_neg_sq(z: f64) -> f64 {
    if z < 4.0 {
        // rounding z*z costs at most 16 * 1.1e-16 relative here: one exp is enough
        return (-(z * z)).exp();
    }
    let hi = f64::from_bits(z.to_bits() & 0xffff_ffff_f800_0000);
    let lo = z - hi;
    (-(hi * hi)).exp() * (-(lo * (2.0 * hi + lo))).exp()
}

/// `erfc(z)` in double precision (relative error a few 1e-15 at most) as
/// `exp(-z^2) * erfcx(z)`, erfcx from the Chebyshev tables above (a short Clenshaw sum:
/// ~20 multiply-adds and two `exp`, instead of a long series or continued fraction).
pub fn erfc_f64(z: f64) -> f64 {
    if z.is_nan() {
        return z;
    }
    if z < 0.0 {
        return 2.0 - erfc_f64(-z);
    }
    if z > 27.0 {
        return 0.0;
    }
    let i = if z < 0.5 {
        0
    } else if z < 1.0 {
        1
    } else if z < 2.0 {
        2
    } else if z < 3.5 {
        3
    } else if z < 6.0 {
        4
    } else if z < 12.0 {
        5
    } else {
        6
    };
    let (a, b, c) = ERFCX_CHEB[i];
    let t = (2.0 * z - (a + b)) / (b - a);
    let (mut b1, mut b2) = (0.0, 0.0);
    for &ck in c[1..].iter().rev() {
        let tmp = 2.0 * t * b1 - b2 + ck;
        b2 = b1;
        b1 = tmp;
    }
    (t * b1 - b2 + c[0]) * exp_neg_sq(z)
}

/// `Phi(x) = erfc(-x / sqrt 2) / 2` in the working precision, vectorisable: the
/// Chebyshev-fitted `erfc(z) = t exp(-z^2 + P(t))`, `t = 1 / (1 + z/2)` (Numerical Recipes'
/// `erfcc`, fractional error below 1.2e-7 for every z): enough for float32 only.
#[inline(always)]
fn phi_cdf_fast<T: Real>(x: T) -> T {
    let z = -x * c::<T>(std::f64::consts::FRAC_1_SQRT_2);
    let a = z.abs();
    let t = T::one() / (T::one() + c::<T>(0.5) * a);
    let mut p = c::<T>(0.170_872_77);
    for k in [-0.822_152_23, 1.488_515_87, -1.135_203_98, 0.278_868_07, -0.186_288_06, 0.096_784_18, 0.374_091_96, 1.000_023_68, -1.265_512_23] {
        p = p * t + c::<T>(k);
    }
    let e = t * (p - a * a).fexp();
    let erfc = if z >= T::zero() { e } else { c::<T>(2.0) - e };
    c::<T>(0.5) * erfc
}

/// Whether `T` is single precision (the fast GELU path).
#[inline(always)]
fn is_f32<T>() -> bool {
    std::mem::size_of::<T>() == 4
}

/// Standard normal CDF `Phi(x) = erfc(-x / sqrt 2) / 2`.
#[inline]
fn phi_cdf(x: f64) -> f64 {
    0.5 * erfc_f64(-x * std::f64::consts::FRAC_1_SQRT_2)
}

#[inline(always)]
fn c<T: Real>(v: f64) -> T {
    T::from_f64(v).unwrap_or_else(T::zero)
}

#[inline(always)]
fn sigmoid<T: Real>(x: T) -> T {
    let e = (-x.abs()).fexp();
    let r = T::one() / (T::one() + e);
    if x >= T::zero() {
        r
    } else {
        e * r
    }
}

#[inline(always)]
fn tanh<T: Real>(x: T) -> T {
    let em = (c::<T>(-2.0) * x.abs()).fexpm1();
    let t = -em / (c::<T>(2.0) + em);
    if x < T::zero() {
        -t
    } else {
        t
    }
}

#[inline(always)]
fn forward_body<T: Real>(act: Act<T>, x: &[T], y: &mut [T]) {
    let zero = T::zero();
    let it = y.iter_mut().zip(x);
    match act {
        Act::Sigmoid => it.for_each(|(y, &x)| *y = sigmoid(x)),
        Act::Tanh => it.for_each(|(y, &x)| *y = tanh(x)),
        Act::Relu => it.for_each(|(y, &x)| *y = if x > zero || x.is_nan() { x } else { zero }),
        Act::LeakyRelu(s) => it.for_each(|(y, &x)| *y = if x > zero { x } else { s * x }),
        Act::Elu(a) => it.for_each(|(y, &x)| *y = if x > zero { x } else { a * x.fexpm1() }),
        Act::Selu => {
            let (a, sc) = (c::<T>(SELU_ALPHA), c::<T>(SELU_SCALE));
            it.for_each(|(y, &x)| *y = sc * if x > zero { x } else { a * x.fexpm1() })
        }
        Act::Gelu if is_f32::<T>() => it.for_each(|(y, &x)| *y = x * phi_cdf_fast(x)),
        Act::Gelu => it.for_each(|(y, &x)| {
            let xf = x.to_f64().unwrap_or(f64::NAN);
            *y = c::<T>(xf * phi_cdf(xf))
        }),
        Act::GeluTanh => {
            let (k, g) = (c::<T>(SQRT_2_OVER_PI), c::<T>(GELU_C));
            // 0.5 (1 + tanh(u)) = sigmoid(2u): no cancellation for very negative x.
            let two = c::<T>(2.0);
            it.for_each(|(y, &x)| *y = x * sigmoid(two * k * (x + g * x * x * x)))
        }
        Act::Silu => it.for_each(|(y, &x)| *y = x * sigmoid(x)),
        Act::Softplus(beta, thr) => it.for_each(|(y, &x)| {
            let bx = beta * x;
            let sp = (if bx > zero { bx } else { zero } + (-bx.abs()).fexp().log1p_unit()) / beta;
            *y = if bx > thr { x } else { sp }
        }),
    }
}
multiversion!(fn forward_chunk<T: Real>(act: Act<T>, x: &[T], y: &mut [T]) -> () => forward_body);

#[inline(always)]
fn backward_body<T: Real>(act: Act<T>, x: &[T], dy: &[T], dx: &mut [T]) {
    let (zero, one) = (T::zero(), T::one());
    let it = dx.iter_mut().zip(x.iter().zip(dy));
    match act {
        Act::Sigmoid => it.for_each(|(d, (&x, &g))| {
            let s = sigmoid(x);
            *d = g * s * (one - s)
        }),
        Act::Tanh => it.for_each(|(d, (&x, &g))| {
            let t = tanh(x);
            *d = g * (one - t * t)
        }),
        Act::Relu => it.for_each(|(d, (&x, &g))| *d = if x > zero { g } else { zero }),
        Act::LeakyRelu(s) => it.for_each(|(d, (&x, &g))| *d = if x > zero { g } else { g * s }),
        Act::Elu(a) => it.for_each(|(d, (&x, &g))| *d = if x > zero { g } else { g * a * x.fexp() }),
        Act::Selu => {
            let (a, sc) = (c::<T>(SELU_ALPHA), c::<T>(SELU_SCALE));
            it.for_each(|(d, (&x, &g))| *d = g * sc * if x > zero { one } else { a * x.fexp() })
        }
        Act::Gelu if is_f32::<T>() => {
            let k = c::<T>(1.0 / (2.0 * std::f64::consts::PI).sqrt());
            let mh = c::<T>(-0.5);
            it.for_each(|(d, (&x, &g))| *d = g * (phi_cdf_fast(x) + x * k * (mh * x * x).fexp()))
        }
        Act::Gelu => it.for_each(|(d, (&x, &g))| {
            let xf = x.to_f64().unwrap_or(f64::NAN);
            let pdf = (-0.5 * xf * xf).exp() / (2.0 * std::f64::consts::PI).sqrt();
            *d = g * c::<T>(phi_cdf(xf) + xf * pdf)
        }),
        Act::GeluTanh => {
            let (k, gc) = (c::<T>(SQRT_2_OVER_PI), c::<T>(GELU_C));
            let (two, three) = (c::<T>(2.0), c::<T>(3.0));
            it.for_each(|(d, (&x, &g))| {
                // y = x s, s = sigmoid(2u): dy/dx = s + 2 x s (1 - s) u'
                let s = sigmoid(two * k * (x + gc * x * x * x));
                let du = k * (one + three * gc * x * x);
                *d = g * (s + two * x * s * (one - s) * du)
            })
        }
        Act::Silu => it.for_each(|(d, (&x, &g))| {
            let s = sigmoid(x);
            *d = g * s * (one + x * (one - s))
        }),
        Act::Softplus(beta, thr) => it.for_each(|(d, (&x, &g))| {
            let bx = beta * x;
            *d = if bx > thr { g } else { g * sigmoid(bx) }
        }),
    }
}
multiversion!(fn backward_chunk<T: Real>(act: Act<T>, x: &[T], dy: &[T], dx: &mut [T]) -> () => backward_body);

fn check(op: &str, name: &str, got: usize, want: usize) -> KernelResult<()> {
    if got != want {
        return Err(KernelError::shape(format!("{op}: '{name}' has {got} elements, expected {want}")));
    }
    Ok(())
}

fn cost<T>(act: &Act<T>) -> usize {
    match act {
        Act::Relu | Act::LeakyRelu(_) => 1,
        Act::Gelu => 100,
        _ => 20,
    }
}

/// `y = act(x)` elementwise.
pub fn forward<T: Real>(act: Act<T>, x: &[T], y: &mut [T]) -> KernelResult<()> {
    check("activation", "out", y.len(), x.len())?;
    parallel::run(x.len() * cost(&act), || {
        y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(yc, xc)| forward_chunk(act, xc, yc));
    });
    Ok(())
}

/// `dx = dy * act'(x)` elementwise.
pub fn backward<T: Real>(act: Act<T>, x: &[T], dy: &[T], dx: &mut [T]) -> KernelResult<()> {
    check("activation_backward", "grad_output", dy.len(), x.len())?;
    check("activation_backward", "grad_input", dx.len(), x.len())?;
    parallel::run(x.len() * cost(&act), || {
        dx.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
            .for_each(|(d, (xc, g))| backward_chunk(act, xc, g, d));
    });
    Ok(())
}

#[inline(always)]
fn bce_body<T: Real>(x: &[T], y: &[T], w: &[T], pw: &[T], gs: T, loss: &mut [T], grad: Option<&mut [T]>) {
    let (one, zero) = (T::one(), T::zero());
    let n = x.len();
    let (y, w, pw, loss) = (&y[..n], &w[..n], &pw[..n], &mut loss[..n]);
    // loss = w ((1 - y) x + lw softplus(-x)), lw = 1 + (pw - 1) y,
    // softplus(-x) = log1p(exp(-|x|)) + max(-x, 0); dloss/dx = w (lw sigmoid(x) - pw y).
    match grad {
        None => {
            for ((((l, &xi), &yi), &wi), &pwi) in loss.iter_mut().zip(x).zip(y).zip(w).zip(pw) {
                let lw = one + (pwi - one) * yi;
                let e = (-xi.abs()).fexp();
                let sp = e.log1p_unit() + if xi < zero { -xi } else { zero };
                *l = wi * ((one - yi) * xi + lw * sp);
            }
        }
        Some(g) => {
            let g = &mut g[..n];
            for (((((l, gi), &xi), &yi), &wi), &pwi) in loss.iter_mut().zip(g.iter_mut()).zip(x).zip(y).zip(w).zip(pw) {
                let lw = one + (pwi - one) * yi;
                let e = (-xi.abs()).fexp();
                let sp = e.log1p_unit() + if xi < zero { -xi } else { zero };
                *l = wi * ((one - yi) * xi + lw * sp);
                let r = one / (one + e);
                let sig = if xi >= zero { r } else { e * r };
                *gi = gs * wi * (lw * sig - pwi * yi);
            }
        }
    }
}
multiversion!(fn bce_chunk<T: Real>(x: &[T], y: &[T], w: &[T], pw: &[T], gs: T, loss: &mut [T], grad: Option<&mut [T]>) -> () => bce_body);

/// Binary cross-entropy with logits, elementwise (PyTorch's `reduction='none'` values):
/// `loss = w * ((1 - y) x + (1 + (pw - 1) y) softplus(-x))`, computed stably. `w` and `pw`
/// (weight and pos_weight) are already broadcast to the length of `x`. With
/// `grad = Some((gscale, dx))`, also writes `gscale * dloss/dx` (`gscale` of length 1 or n).
pub fn bce_with_logits<T: Real>(
    x: &[T],
    y: &[T],
    w: Option<&[T]>,
    pw: Option<&[T]>,
    loss: &mut [T],
    grad: Option<(&[T], &mut [T])>,
) -> KernelResult<()> {
    let op = "binary_cross_entropy_with_logits";
    let n = x.len();
    check(op, "target", y.len(), n)?;
    check(op, "loss", loss.len(), n)?;
    if let Some(w) = w {
        check(op, "weight", w.len(), n)?;
    }
    if let Some(p) = pw {
        check(op, "pos_weight", p.len(), n)?;
    }
    // Absent weights read a chunk of ones (L1/L2-resident), so one loop serves every case.
    let ones = vec![T::one(); CHUNK.min(n.max(1))];
    fn part<'a, T>(s: Option<&'a [T]>, ones: &'a [T], k: usize, len: usize) -> &'a [T] {
        match s {
            Some(s) => &s[k * CHUNK..k * CHUNK + len],
            None => &ones[..len],
        }
    }
    let ones = &ones[..];
    parallel::run(n * 30, || match grad {
        None => loss.par_chunks_mut(CHUNK).enumerate().for_each(|(k, l)| {
            let len = l.len();
            let r = k * CHUNK..k * CHUNK + len;
            bce_chunk(&x[r.clone()], &y[r], part(w, ones, k, len), part(pw, ones, k, len), T::zero(), l, None)
        }),
        Some((gscale, g)) => {
            let one_scale = gscale.len() == 1;
            loss.par_chunks_mut(CHUNK).zip(g.par_chunks_mut(CHUNK)).enumerate().for_each(|(k, (l, gc))| {
                let len = l.len();
                let r = k * CHUNK..k * CHUNK + len;
                let (wk, pk) = (part(w, ones, k, len), part(pw, ones, k, len));
                if one_scale {
                    bce_chunk(&x[r.clone()], &y[r], wk, pk, gscale[0], l, Some(gc))
                } else {
                    // Per-element upstream gradient: scale afterwards.
                    bce_chunk(&x[r.clone()], &y[r.clone()], wk, pk, T::one(), l, Some(&mut *gc));
                    for (gi, &s) in gc.iter_mut().zip(&gscale[r]) {
                        *gi = *gi * s;
                    }
                }
            })
        }
    });
    Ok(())
}

/// Validate `grad` for [`bce_with_logits`].
pub fn check_bce_grad<T>(n: usize, gscale: &[T], dx: &[T]) -> KernelResult<()> {
    if gscale.len() != 1 && gscale.len() != n {
        return Err(KernelError::shape(format!(
            "binary_cross_entropy_with_logits: 'grad_output' has {} elements, expected 1 or {n}",
            gscale.len()
        )));
    }
    check("binary_cross_entropy_with_logits", "grad_input", dx.len(), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The previous erfc (series below 1.5, Laplace's continued fraction above), kept as a
    /// reference for the table-driven one.
    fn erfc_reference(z: f64) -> f64 {
        if z.is_nan() {
            return z;
        }
        if z < 0.0 {
            return 2.0 - erfc_reference(-z);
        }
        if z < 1.5 {
            // erf(z) = 2/sqrt(pi) exp(-z^2) sum_n 2^n z^(2n+1) / (2n+1)!!  (positive terms)
            let z2 = z * z;
            let mut term = z;
            let mut sum = z;
            let mut n = 0.0;
            while term > 1e-17 * sum {
                n += 1.0;
                term *= 2.0 * z2 / (2.0 * n + 1.0);
                sum += term;
            }
            let erf = std::f64::consts::FRAC_2_SQRT_PI * (-z2).exp() * sum;
            return 1.0 - erf;
        }
        if z > 27.0 {
            return 0.0;
        }
        // erfc(z) = exp(-z^2)/sqrt(pi) / (z + (1/2)/(z + 1/(z + (3/2)/(z + ...))))
        let mut f = z;
        let mut k = if z < 2.0 { 100 } else if z < 3.0 { 50 } else { 30 };
        while k >= 1 {
            f = z + (k as f64 * 0.5) / f;
            k -= 1;
        }
        (-z * z).exp() / (std::f64::consts::PI.sqrt() * f)
    }

    #[test]
    fn erfc_matches_series_and_continued_fraction() {
        let mut z = -7.0;
        while z < 27.0 {
            let (e, r) = (erfc_f64(z), erfc_reference(z));
            // the reference rounds z*z before exp: relative error up to ~z^2 * 1.1e-16
            let tol = 1.5e-14 + 2.5e-16 * z * z;
            assert!((e - r).abs() <= tol * r, "erfc({z}) = {e}, reference {r}");
            z += 0.00731;
        }
        assert_eq!(erfc_f64(30.0), 0.0);
        assert_eq!(erfc_f64(-30.0), 2.0);
        assert!(erfc_f64(f64::NAN).is_nan());
    }

    #[test]
    fn erfc_is_accurate() {
        // Reference values of erfc.
        for &(z, r) in &[
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_13),
            (2.0, 4.677_734_981_047_266e-3),
            (3.0, 2.209_049_699_858_544e-5),
            (5.0, 1.537_459_794_428_034_8e-12),
            (-1.0, 1.842_700_792_949_715),
        ] {
            let e = erfc_f64(z);
            assert!((e - r).abs() <= 1e-14 * r, "erfc({z}) = {e}, want {r}");
        }
    }

    #[test]
    fn activations_match_scalar_formulas() {
        let x: Vec<f64> = (0..200).map(|i| (i as f64 - 100.0) * 0.173).collect();
        let mut y = vec![0.0; x.len()];
        forward(Act::Sigmoid, &x, &mut y).unwrap();
        for (a, b) in y.iter().zip(&x) {
            assert!((a - 1.0 / (1.0 + (-b).exp())).abs() < 1e-15);
        }
        forward(Act::Tanh, &x, &mut y).unwrap();
        for (a, b) in y.iter().zip(&x) {
            assert!((a - b.tanh()).abs() <= 1e-15 * b.tanh().abs().max(1e-300), "{b}");
        }
        forward(Act::Softplus(1.0, 20.0), &x, &mut y).unwrap();
        for (a, b) in y.iter().zip(&x) {
            let r = if *b > 20.0 { *b } else { b.exp().ln_1p() };
            assert!((a - r).abs() <= 1e-14 * r, "{b}");
        }
        let mut loss = vec![0.0; x.len()];
        let t: Vec<f64> = (0..200).map(|i| (i % 3) as f64 * 0.5).collect();
        bce_with_logits(&x, &t, None, None, &mut loss, None).unwrap();
        for ((l, &xi), &yi) in loss.iter().zip(&x).zip(&t) {
            let s = 1.0 / (1.0 + (-xi).exp());
            let r = -(yi * s.ln() + (1.0 - yi) * (1.0 - s).ln());
            assert!((l - r).abs() < 1e-9 * (1.0 + r), "{xi} {yi}: {l} vs {r}");
        }
    }
}
