//! The per-step product `out (m, n) (+)= a (m, k) @ W (k, n)` for the few (<= 16) batch
//! rows of one chunk, with `W` packed once per call into column panels of 16.
//!
//! A general GEMM re-packs and re-dispatches on every one of the T small products of a
//! sequence; here the weights are packed once (panel p holds columns 16p..16p+16 of W,
//! k-major, zero-padded), and an AVX-512 micro-kernel keeps R rows x P panels of
//! accumulators in registers while it streams each panel exactly once per step.
//! Only float32 on AVX-512 CPUs takes this path; everything else uses the generic code.

/// Columns per panel (one 512-bit register of float32).
pub const PANEL: usize = 16;

/// `W (k, n)`, read through `w(kk, col)`, packed into `ceil(n/16)` panels of `k * 16`.
pub fn pack<T: Copy + Default>(k: usize, n: usize, w: impl Fn(usize, usize) -> T) -> Vec<T> {
    let panels = n.div_ceil(PANEL);
    let mut out = vec![T::default(); panels * k * PANEL];
    for p in 0..panels {
        for kk in 0..k {
            let base = (p * k + kk) * PANEL;
            for j in 0..PANEL {
                let col = p * PANEL + j;
                if col < n {
                    out[base + j] = w(kk, col);
                }
            }
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::PANEL;
    use std::arch::x86_64::*;

    /// Panels p0..p0+P for R rows. SAFETY: caller guarantees AVX-512F, `a` holds R x k
    /// entries at `r * ars + kk * aks`, `wp` the packed panels (panel stride `kst * 16`),
    /// `out` R rows of stride `ldo` with n columns.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    unsafe fn block<const R: usize, const P: usize>(
        a: *const f32,
        ars: usize,
        aks: usize,
        k: usize,
        kst: usize,
        wp: *const f32,
        p0: usize,
        n: usize,
        out: *mut f32,
        ldo: usize,
        accumulate: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        let mut wptr = [std::ptr::null::<f32>(); P];
        for (p, w) in wptr.iter_mut().enumerate() {
            *w = wp.add((p0 + p) * kst * PANEL);
        }
        for kk in 0..k {
            let mut w = [_mm512_setzero_ps(); P];
            for p in 0..P {
                w[p] = _mm512_loadu_ps(wptr[p].add(kk * PANEL));
            }
            for r in 0..R {
                let s = _mm512_set1_ps(*a.add(r * ars + kk * aks));
                for p in 0..P {
                    acc[r][p] = _mm512_fmadd_ps(s, w[p], acc[r][p]);
                }
            }
        }
        for p in 0..P {
            let col = (p0 + p) * PANEL;
            let width = (n - col).min(PANEL);
            let mask: __mmask16 = if width == PANEL {
                0xffff
            } else {
                ((1u32 << width) - 1) as __mmask16
            };
            for r in 0..R {
                let dst = out.add(r * ldo + col);
                let v = if accumulate {
                    _mm512_add_ps(acc[r][p], _mm512_maskz_loadu_ps(mask, dst))
                } else {
                    acc[r][p]
                };
                _mm512_mask_storeu_ps(dst, mask, v);
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn rows<const R: usize, const P: usize>(
        a: *const f32,
        ars: usize,
        aks: usize,
        k: usize,
        kst: usize,
        wp: *const f32,
        n: usize,
        out: *mut f32,
        ldo: usize,
        accumulate: bool,
    ) {
        let panels = n.div_ceil(PANEL);
        let mut p = 0;
        while p + P <= panels {
            block::<R, P>(a, ars, aks, k, kst, wp, p, n, out, ldo, accumulate);
            p += P;
        }
        while p < panels {
            block::<R, 1>(a, ars, aks, k, kst, wp, p, n, out, ldo, accumulate);
            p += 1;
        }
    }

    /// SAFETY: AVX-512F present; shapes as documented on [`super::product_f32`].
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn product(
        a: *const f32,
        ars: usize,
        aks: usize,
        m: usize,
        k: usize,
        kst: usize,
        wp: *const f32,
        n: usize,
        out: *mut f32,
        ldo: usize,
        accumulate: bool,
    ) {
        // Up to ~24 accumulators: fewer rows take more panels at a time, which keeps
        // enough independent FMA chains in flight.
        macro_rules! go {
            ($r:literal, $p:literal) => {
                rows::<$r, $p>(a, ars, aks, k, kst, wp, n, out, ldo, accumulate)
            };
        }
        match m {
            0 => {}
            1 => go!(1, 8),
            2 => go!(2, 8),
            3 => go!(3, 6),
            4 => go!(4, 5),
            5 => go!(5, 4),
            6 => go!(6, 3),
            7 => go!(7, 3),
            8 => go!(8, 3),
            9 => go!(9, 2),
            10 => go!(10, 2),
            11 => go!(11, 2),
            12 => go!(12, 2),
            13 => go!(13, 1),
            14 => go!(14, 1),
            15 => go!(15, 1),
            16 => go!(16, 1),
            _ => unreachable!("rnn: the packed product takes at most 16 rows at a time"),
        }
    }
}

/// Rows per call of the micro-kernels.
const GROUP: usize = 8;

/// Whether [`product_f32`] can run on this CPU.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::simd::level() == crate::simd::SimdLevel::Avx512
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out (m, n) (+)= a (m, k) @ W (k, n)` with `W` packed by [`pack`]; `a` and `out` are
/// row-major with leading dimensions `lda`, `ldo`. Panics if [`available`] is false or
/// the slices are too short (internal use only).
#[allow(clippy::too_many_arguments)]
pub fn product_f32(
    a: &[f32],
    lda: usize,
    m: usize,
    k: usize,
    wp: &[f32],
    n: usize,
    out: &mut [f32],
    ldo: usize,
    accumulate: bool,
) {
    assert!(available(), "rnn: packed product needs AVX-512");
    if m == 0 || n == 0 {
        return;
    }
    assert!(lda >= k && ldo >= n, "rnn: packed product strides");
    assert!(
        a.len() >= (m - 1) * lda + k,
        "rnn: packed product lhs too short"
    );
    assert!(
        out.len() >= (m - 1) * ldo + n,
        "rnn: packed product output too short"
    );
    assert!(
        wp.len() >= n.div_ceil(PANEL) * k * PANEL,
        "rnn: packed weights too short"
    );
    // Rows go through in groups of GROUP = 8: eight rows by three panels keep 24
    // accumulators with 11 loads per 24 FMAs (sixteen rows by one panel needed 17 loads per
    // 16 FMAs); the panels are then streamed twice per 16 rows, from L2. LSTM B32 H256 fwd
    // 15.5 -> 14.4 ms CPU (groups of 4: 16.5, of 12: 14.8).
    // Rows go through in groups. When the rows of `a` sit a multiple of 2 KB apart
    // they alias in L1 (16 lines competing for the same set), so such a group is first
    // copied k-major (`at[kk * 16 + r]`, the 16 values broadcast at step kk then share
    // one cache line); other strides are read in place.
    thread_local! {
        static AT: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let aliasing = lda.is_multiple_of(512) && m > 1;
    let mut r0 = 0;
    while r0 < m {
        let rows = (m - r0).min(GROUP);
        let dst = out[r0 * ldo..].as_mut_ptr();
        if aliasing {
            AT.with(|cell| {
                let mut at = cell.borrow_mut();
                if at.len() < k * 16 {
                    at.resize(k * 16, 0.0);
                }
                for r in 0..rows {
                    let src = &a[(r0 + r) * lda..(r0 + r) * lda + k];
                    for (kk, &v) in src.iter().enumerate() {
                        at[kk * 16 + r] = v;
                    }
                }
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX-512F checked above; `at` holds k x 16; `out`, `wp` bounds
                // checked above.
                unsafe {
                    avx512::product(
                        at.as_ptr(),
                        1,
                        16,
                        rows,
                        k,
                        k,
                        wp.as_ptr(),
                        n,
                        dst,
                        ldo,
                        accumulate,
                    )
                }
            });
        } else {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, with `a` read in place (bounds checked above).
            unsafe {
                avx512::product(
                    a[r0 * lda..].as_ptr(),
                    lda,
                    1,
                    rows,
                    k,
                    k,
                    wp.as_ptr(),
                    n,
                    dst,
                    ldo,
                    accumulate,
                )
            }
        }
        r0 += rows;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_product_matches_naive() {
        if !available() {
            return;
        }
        for &(m, k, n) in &[
            (1, 1, 1),
            (1, 37, 100),
            (3, 64, 48),
            (5, 20, 17),
            (9, 33, 200),
            (16, 64, 512),
            (20, 10, 40),
            (12, 128, 384),
            (16, 1024, 40),
            (7, 3000, 20),
            (17, 512, 33),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 11) as f32) * 0.1 - 0.5)
                .collect();
            let w: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5 % 13) as f32) * 0.07 - 0.4)
                .collect();
            let wp = pack(k, n, |kk, c| w[kk * n + c]);
            let ldo = n + 3;
            let base: Vec<f32> = (0..m * ldo).map(|i| (i % 3) as f32).collect();
            for &accumulate in &[false, true] {
                let mut out = base.clone();
                product_f32(&a, k, m, k, &wp, n, &mut out, ldo, accumulate);
                for r in 0..m {
                    for c in 0..ldo {
                        let got = out[r * ldo + c];
                        if c >= n {
                            assert_eq!(got, base[r * ldo + c], "padding column touched");
                            continue;
                        }
                        let mut s = if accumulate {
                            base[r * ldo + c] as f64
                        } else {
                            0.0
                        };
                        for p in 0..k {
                            s += a[r * k + p] as f64 * w[p * n + c] as f64;
                        }
                        assert!(
                            (got as f64 - s).abs() < 1e-4 * (1.0 + s.abs()),
                            "{m} {k} {n}: {got} vs {s}"
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    fn cpu_now() -> f64 {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
        s.split_whitespace().next().unwrap().parse::<f64>().unwrap() * 1e-9
    }

    /// Manual timing probe: `cargo test --profile dev-fast panel_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn panel_speed() {
        if !available() {
            return;
        }
        for &(m, k, n) in &[
            (16usize, 256usize, 1024usize),
            (16, 128, 512),
            (1, 128, 384),
            (16, 1024, 256),
        ] {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.01).collect();
            let w: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.01).collect();
            let wp = pack(k, n, |kk, c| w[kk * n + c]);
            let mut out = vec![0f32; m * n];
            let reps = 2000;
            let t0 = cpu_now();
            for _ in 0..reps {
                product_f32(&a, k, m, k, &wp, n, &mut out, n, true);
            }
            let dt = (cpu_now() - t0) / reps as f64;
            println!(
                "{m}x{k}x{n}: {:.2} us, {:.1} GFLOP/s",
                dt * 1e6,
                2.0 * (m * k * n) as f64 / dt / 1e9
            );
            let av = ndarray::ArrayView2::from_shape((m, k), &a[..]).unwrap();
            let wv = ndarray::ArrayView2::from_shape((k, n), &w[..]).unwrap();
            let t0 = cpu_now();
            for _ in 0..reps {
                let ov = ndarray::ArrayViewMut2::from_shape((m, n), &mut out[..]).unwrap();
                crate::gemm::gemm(1.0, av, wv, 1.0, ov, crate::gemm::Threads::Single).unwrap();
            }
            let dt = (cpu_now() - t0) / reps as f64;
            println!(
                "  gemm crate: {:.2} us, {:.1} GFLOP/s",
                dt * 1e6,
                2.0 * (m * k * n) as f64 / dt / 1e9
            );
        }
    }
}
