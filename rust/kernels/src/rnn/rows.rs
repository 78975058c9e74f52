//! The per-step inner loops: small matrix products for a few batch rows, and the
//! fused gate nonlinearities (forward) and gate gradients (backward) of one batch row.
//!
//! Each loop is written once as plain generic Rust and compiled three times (AVX-512,
//! AVX2+FMA, portable); [`crate::simd::level`] picks the version at run time. The
//! `FMA` flag turns `a * b + c` into a fused multiply-add where the CPU has one.

use super::math::RnnFloat;

#[inline(always)]
fn madd<T: RnnFloat, const FMA: bool>(a: T, b: T, c: T) -> T {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Generates a dispatcher `$name` over three compiled versions of `$body::<T, FMA>`.
macro_rules! multiversion {
    ($(#[$doc:meta])* pub fn $name:ident($($a:ident : $ty:ty),* $(,)?) => $body:ident) => {
        $(#[$doc])*
        #[inline]
        pub fn $name<T: RnnFloat>($($a: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                unsafe fn v512<T: RnnFloat>($($a: $ty),*) {
                    $body::<T, true>($($a),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v256<T: RnnFloat>($($a: $ty),*) {
                    $body::<T, true>($($a),*)
                }
                match crate::simd::level() {
                    // SAFETY: the running CPU has these features (detected at run time).
                    crate::simd::SimdLevel::Avx512 => return unsafe { v512::<T>($($a),*) },
                    crate::simd::SimdLevel::Avx2Fma => return unsafe { v256::<T>($($a),*) },
                    _ => {}
                }
            }
            $body::<T, { cfg!(target_arch = "aarch64") }>($($a),*)
        }
    };
}

/// Column block of the small product: 64 floats = four AVX-512 registers.
const NB: usize = 64;

#[inline(always)]
fn small_matmul_body<T: RnnFloat, const FMA: bool>(
    a: &[T],
    w: &[T],
    out: &mut [T],
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) {
    let a = &a[..m * k];
    let w = &w[..k * n];
    let out = &mut out[..m * n];
    let mut nb = 0;
    while nb + NB <= n {
        for r in 0..m {
            let arow = &a[r * k..(r + 1) * k];
            let mut acc = [T::zero(); NB];
            if accumulate {
                acc.copy_from_slice(&out[r * n + nb..r * n + nb + NB]);
            }
            for (kk, &s) in arow.iter().enumerate() {
                let wrow: &[T; NB] = w[kk * n + nb..kk * n + nb + NB].try_into().unwrap();
                for j in 0..NB {
                    acc[j] = madd::<T, FMA>(s, wrow[j], acc[j]);
                }
            }
            out[r * n + nb..r * n + nb + NB].copy_from_slice(&acc);
        }
        nb += NB;
    }
    if nb < n {
        let width = n - nb;
        for r in 0..m {
            let arow = &a[r * k..(r + 1) * k];
            let orow = &mut out[r * n + nb..r * n + n];
            if !accumulate {
                orow.fill(T::zero());
            }
            for (kk, &s) in arow.iter().enumerate() {
                let wrow = &w[kk * n + nb..kk * n + nb + width];
                for (o, &wv) in orow.iter_mut().zip(wrow) {
                    *o = madd::<T, FMA>(s, wv, *o);
                }
            }
        }
    }
}

multiversion! {
    /// `out (m, n) (+)= a (m, k) @ w (k, n)`, all row-major and contiguous; for the few
    /// batch rows where a general GEMM's packing and dispatch would dominate.
    pub fn small_matmul(a: &[T], w: &[T], out: &mut [T], m: usize, k: usize, n: usize, accumulate: bool)
        => small_matmul_body
}

// ---------------------------------------------------------------------------------
// LSTM (gate order i, f, g, o)

#[inline(always)]
fn lstm_fwd_body<T: RnnFloat, const FMA: bool>(g: &mut [T], bias: &[T], c: &mut [T], h: &mut [T]) {
    let hsz = h.len();
    let (gi, rest) = g.split_at_mut(hsz);
    let (gf, rest) = rest.split_at_mut(hsz);
    let (gg, go) = rest.split_at_mut(hsz);
    let go = &mut go[..hsz];
    let (bi, rest) = bias.split_at(hsz);
    let (bf, rest) = rest.split_at(hsz);
    let (bg, bo) = rest.split_at(hsz);
    let bo = &bo[..hsz];
    let c = &mut c[..hsz];
    for j in 0..hsz {
        let i = T::sigmoid_k::<FMA>(gi[j] + bi[j]);
        let f = T::sigmoid_k::<FMA>(gf[j] + bf[j]);
        let gc = T::tanh_k::<FMA>(gg[j] + bg[j]);
        let o = T::sigmoid_k::<FMA>(go[j] + bo[j]);
        let cn = madd::<T, FMA>(f, c[j], i * gc);
        c[j] = cn;
        h[j] = o * T::tanh_k::<FMA>(cn);
        gi[j] = i;
        gf[j] = f;
        gg[j] = gc;
        go[j] = o;
    }
}

multiversion! {
    /// One LSTM row: `g` (4H) holds the pre-activations without bias on entry and the
    /// activated gates (i, f, g, o) on exit; `c`, `h` (H) are updated in place.
    pub fn lstm_fwd_row(g: &mut [T], bias: &[T], c: &mut [T], h: &mut [T]) => lstm_fwd_body
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn lstm_bwd_body<T: RnnFloat, const FMA: bool>(
    g: &[T],
    c: &[T],
    c_prev: &[T],
    dh: &[T],
    dc: &mut [T],
    dg: &mut [T],
) {
    let hsz = dh.len();
    let (gi, rest) = g.split_at(hsz);
    let (gf, rest) = rest.split_at(hsz);
    let (gg, go) = rest.split_at(hsz);
    let go = &go[..hsz];
    let (di, rest) = dg.split_at_mut(hsz);
    let (df, rest) = rest.split_at_mut(hsz);
    let (dgg, dgo) = rest.split_at_mut(hsz);
    let dgo = &mut dgo[..hsz];
    let (c, c_prev, dc) = (&c[..hsz], &c_prev[..hsz], &mut dc[..hsz]);
    let one = T::one();
    for j in 0..hsz {
        let (i, f, gc, o) = (gi[j], gf[j], gg[j], go[j]);
        let tc = T::tanh_k::<FMA>(c[j]);
        let dcj = madd::<T, FMA>(dh[j] * o, one - tc * tc, dc[j]);
        dgo[j] = dh[j] * tc * (o * (one - o));
        di[j] = dcj * gc * (i * (one - i));
        df[j] = dcj * c_prev[j] * (f * (one - f));
        dgg[j] = dcj * i * (one - gc * gc);
        dc[j] = dcj * f;
    }
}

multiversion! {
    /// LSTM gate gradients of one row: from the saved activated gates `g` (4H), the cell
    /// states `c` (this step) and `c_prev`, the incoming `dh` and `dc` (H). Writes the
    /// pre-activation gradients `dg` (4H) and replaces `dc` by the gradient for `c_prev`.
    pub fn lstm_bwd_row(g: &[T], c: &[T], c_prev: &[T], dh: &[T], dc: &mut [T], dg: &mut [T])
        => lstm_bwd_body
}

// ---------------------------------------------------------------------------------
// GRU (gate order r, z, n; n = tanh(W_in x + b_in + r * (W_hn h + b_hn)))

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gru_fwd_body<T: RnnFloat, const FMA: bool>(
    g: &mut [T],
    hh: &[T],
    bias: &[T],
    b_hn: &[T],
    h: &mut [T],
    hn_out: &mut [T],
) {
    let hsz = h.len();
    let (gr, rest) = g.split_at_mut(hsz);
    let (gz, gn) = rest.split_at_mut(hsz);
    let gn = &mut gn[..hsz];
    let (hr, rest) = hh.split_at(hsz);
    let (hz, hn) = rest.split_at(hsz);
    let hn = &hn[..hsz];
    let (br, rest) = bias.split_at(hsz);
    let (bz, bn) = rest.split_at(hsz);
    let bn = &bn[..hsz];
    let (b_hn, hn_out) = (&b_hn[..hsz], &mut hn_out[..hsz]);
    for j in 0..hsz {
        let r = T::sigmoid_k::<FMA>(gr[j] + hr[j] + br[j]);
        let z = T::sigmoid_k::<FMA>(gz[j] + hz[j] + bz[j]);
        let hnj = hn[j] + b_hn[j];
        let n = T::tanh_k::<FMA>(madd::<T, FMA>(r, hnj, gn[j] + bn[j]));
        h[j] = madd::<T, FMA>(z, h[j] - n, n);
        gr[j] = r;
        gz[j] = z;
        gn[j] = n;
        hn_out[j] = hnj;
    }
}

multiversion! {
    /// One GRU row: `g` (3H) holds the input projections without bias on entry and the
    /// activated (r, z, n) on exit; `hh` (3H) is `h @ W_hh^T` without bias; `bias` (3H)
    /// is (b_ir + b_hr, b_iz + b_hz, b_in) and `b_hn` (H). Updates `h` in place and
    /// writes `W_hn h + b_hn` to `hn_out` (needed by the backward pass).
    pub fn gru_fwd_row(g: &mut [T], hh: &[T], bias: &[T], b_hn: &[T], h: &mut [T], hn_out: &mut [T])
        => gru_fwd_body
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gru_bwd_body<T: RnnFloat, const FMA: bool>(
    g: &[T],
    hn: &[T],
    h_prev: &[T],
    dh: &[T],
    dgx: &mut [T],
    dgh: &mut [T],
    direct: &mut [T],
) {
    let hsz = dh.len();
    let (gr, rest) = g.split_at(hsz);
    let (gz, gn) = rest.split_at(hsz);
    let gn = &gn[..hsz];
    let (dxr, rest) = dgx.split_at_mut(hsz);
    let (dxz, dxn) = rest.split_at_mut(hsz);
    let dxn = &mut dxn[..hsz];
    let (dhr, rest) = dgh.split_at_mut(hsz);
    let (dhz, dhn) = rest.split_at_mut(hsz);
    let dhn = &mut dhn[..hsz];
    let (hn, h_prev, direct) = (&hn[..hsz], &h_prev[..hsz], &mut direct[..hsz]);
    let one = T::one();
    for j in 0..hsz {
        let (r, z, n) = (gr[j], gz[j], gn[j]);
        let d = dh[j];
        let dnp = d * (one - z) * (one - n * n);
        let dzp = d * (h_prev[j] - n) * (z * (one - z));
        let drp = dnp * hn[j] * (r * (one - r));
        dxr[j] = drp;
        dxz[j] = dzp;
        dxn[j] = dnp;
        dhr[j] = drp;
        dhz[j] = dzp;
        dhn[j] = dnp * r;
        direct[j] = d * z;
    }
}

multiversion! {
    /// GRU gate gradients of one row from the saved (r, z, n) `g`, `hn` = W_hn h + b_hn,
    /// the previous state and the incoming `dh`: writes the input-side pre-activation
    /// gradients `dgx` (3H), the hidden-side ones `dgh` (3H, the n part times r) and the
    /// direct path `dh * z` to `direct` (H).
    pub fn gru_bwd_row(g: &[T], hn: &[T], h_prev: &[T], dh: &[T], dgx: &mut [T], dgh: &mut [T], direct: &mut [T])
        => gru_bwd_body
}

// ---------------------------------------------------------------------------------
// Elman RNN

#[inline(always)]
fn rnn_fwd_body<T: RnnFloat, const FMA: bool>(g: &[T], bias: &[T], h: &mut [T], relu: bool) {
    let hsz = h.len();
    let (g, bias) = (&g[..hsz], &bias[..hsz]);
    if relu {
        for j in 0..hsz {
            let v = g[j] + bias[j];
            // NaN stays NaN (as NumPy's maximum would give).
            h[j] = if v < T::zero() { T::zero() } else { v };
        }
    } else {
        for j in 0..hsz {
            h[j] = T::tanh_k::<FMA>(g[j] + bias[j]);
        }
    }
}

multiversion! {
    /// One Elman RNN row: `h = act(g + bias)` with `g` (H) the summed projections.
    pub fn rnn_fwd_row(g: &[T], bias: &[T], h: &mut [T], relu: bool) => rnn_fwd_body
}

#[inline(always)]
fn rnn_bwd_body<T: RnnFloat, const FMA: bool>(h: &[T], dh: &[T], dg: &mut [T], relu: bool) {
    let hsz = dh.len();
    let (h, dg) = (&h[..hsz], &mut dg[..hsz]);
    let one = T::one();
    if relu {
        for j in 0..hsz {
            dg[j] = if h[j] > T::zero() { dh[j] } else { T::zero() };
        }
    } else {
        for j in 0..hsz {
            dg[j] = dh[j] * (one - h[j] * h[j]);
        }
    }
}

multiversion! {
    /// Elman RNN pre-activation gradient of one row from its output `h` and `dh`.
    pub fn rnn_bwd_row(h: &[T], dh: &[T], dg: &mut [T], relu: bool) => rnn_bwd_body
}

/// `acc += rows`, summing `rows` (r, n) into `acc` (n) row by row in order.
pub fn add_rows<T: RnnFloat>(acc: &mut [T], rows: &[T]) {
    let n = acc.len();
    if n == 0 {
        return;
    }
    for row in rows.chunks_exact(n) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a = *a + v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_matmul_matches_naive() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (1, 7, 64),
            (3, 5, 130),
            (4, 33, 200),
            (2, 128, 512),
        ] {
            let a: Vec<f64> = (0..m * k)
                .map(|i| ((i * 7 % 11) as f64) * 0.1 - 0.5)
                .collect();
            let w: Vec<f64> = (0..k * n)
                .map(|i| ((i * 5 % 13) as f64) * 0.07 - 0.4)
                .collect();
            let base: Vec<f64> = (0..m * n).map(|i| (i % 3) as f64).collect();
            for &accumulate in &[false, true] {
                let mut out = base.clone();
                small_matmul(&a, &w, &mut out, m, k, n, accumulate);
                for r in 0..m {
                    for c in 0..n {
                        let mut s = if accumulate { base[r * n + c] } else { 0.0 };
                        for p in 0..k {
                            s += a[r * k + p] * w[p * n + c];
                        }
                        assert!((out[r * n + c] - s).abs() < 1e-12, "{m} {k} {n}");
                    }
                }
            }
        }
    }

    /// The generic bodies (as compiled for the portable and FMA paths) agree with each
    /// other and with the dispatched version on float32.
    #[test]
    fn compiled_variants_agree() {
        let h = 37;
        let g0: Vec<f32> = (0..4 * h)
            .map(|i| ((i * 13 % 17) as f32) * 0.3 - 2.4)
            .collect();
        let bias: Vec<f32> = (0..4 * h).map(|i| ((i % 5) as f32) * 0.1 - 0.2).collect();
        let c0: Vec<f32> = (0..h).map(|i| (i as f32) * 0.05 - 0.9).collect();
        let mut outs = Vec::new();
        for variant in 0..3 {
            let (mut g, mut c, mut hh) = (g0.clone(), c0.clone(), vec![0f32; h]);
            match variant {
                0 => lstm_fwd_body::<f32, false>(&mut g, &bias, &mut c, &mut hh),
                1 => lstm_fwd_body::<f32, true>(&mut g, &bias, &mut c, &mut hh),
                _ => lstm_fwd_row(&mut g, &bias, &mut c, &mut hh),
            }
            let mut dc = vec![0.3f32; h];
            let mut dg = vec![0f32; 4 * h];
            let dh: Vec<f32> = (0..h).map(|i| (i % 3) as f32 - 1.0).collect();
            match variant {
                0 => lstm_bwd_body::<f32, false>(&g, &c, &c0, &dh, &mut dc, &mut dg),
                1 => lstm_bwd_body::<f32, true>(&g, &c, &c0, &dh, &mut dc, &mut dg),
                _ => lstm_bwd_row(&g, &c, &c0, &dh, &mut dc, &mut dg),
            }
            let mut gg = g0[..3 * h].to_vec();
            let mut hg = c0.clone();
            let mut hn = vec![0f32; h];
            let hhv = &g0[h..4 * h];
            match variant {
                0 => gru_fwd_body::<f32, false>(
                    &mut gg,
                    hhv,
                    &bias[..3 * h],
                    &bias[..h],
                    &mut hg,
                    &mut hn,
                ),
                1 => gru_fwd_body::<f32, true>(
                    &mut gg,
                    hhv,
                    &bias[..3 * h],
                    &bias[..h],
                    &mut hg,
                    &mut hn,
                ),
                _ => gru_fwd_row(&mut gg, hhv, &bias[..3 * h], &bias[..h], &mut hg, &mut hn),
            }
            let a: Vec<f32> = g0[..3 * 40].to_vec();
            let w: Vec<f32> = g0[..40 * 100 % (4 * h)]
                .iter()
                .cycle()
                .take(40 * 100)
                .copied()
                .collect();
            let mut mm = vec![1f32; 3 * 100];
            match variant {
                0 => small_matmul_body::<f32, false>(&a, &w, &mut mm, 3, 40, 100, true),
                1 => small_matmul_body::<f32, true>(&a, &w, &mut mm, 3, 40, 100, true),
                _ => small_matmul(&a, &w, &mut mm, 3, 40, 100, true),
            }
            outs.push([hh, c, dg, dc, hg, hn, mm].concat());
        }
        for v in &outs[1..] {
            for (x, y) in v.iter().zip(&outs[0]) {
                assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
            }
        }
    }
}
