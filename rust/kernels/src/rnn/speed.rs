//! Manual timing probes (ignored): `cargo test -p oxinet-kernels --profile dev-fast
//! rnn_speed -- --ignored --nocapture`. Wall time, best of several runs, on oxinet's pool.

use super::*;
use crate::gemm::{gemm, Threads};
use ndarray::{s, Array2, Array3};
use std::time::Instant;

fn fill(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    let mut st = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            st = st.wrapping_mul(1664525).wrapping_add(1013904223);
            ((st >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 2.0 * scale
        })
        .collect()
}

fn best<R>(reps: usize, mut f: impl FnMut() -> R) -> f64 {
    let mut b = f64::INFINITY;
    for _ in 0..reps {
        let t0 = Instant::now();
        std::hint::black_box(f());
        b = b.min(t0.elapsed().as_secs_f64());
    }
    b * 1e3
}

fn probe(kind: CellKind, t: usize, b: usize, d: usize, h: usize) {
    let g = kind.gates();
    let gh = g * h;
    let s = 1.0 / (h as f32).sqrt();
    let x = Array3::from_shape_vec((t, b, d), fill(t * b * d, 1, 1.0)).unwrap();
    let w_ih = Array2::from_shape_vec((gh, d), fill(gh * d, 2, s)).unwrap();
    let w_hh = Array2::from_shape_vec((gh, h), fill(gh * h, 3, s)).unwrap();
    let dy = Array3::from_shape_vec((t, b, h), fill(t * b * h, 4, 1.0)).unwrap();
    let w = Weights {
        w_ih: w_ih.view(),
        w_hh: w_hh.view(),
        b_ih: None,
        b_hh: None,
    };
    let reps = 15;
    let fwd = || forward(kind, x.view(), None, None, &w, None, true).unwrap();
    let tf = crate::parallel::run(usize::MAX, || best(reps, fwd));
    let f = fwd();
    let saved = Saved {
        hs: f.hs.view(),
        cs: f.cs.as_ref().map(|a| a.view()),
        gates: f.gates.as_ref().map(|a| a.view()),
        hn: f.hn.as_ref().map(|a| a.view()),
    };
    let bwd = || {
        backward(
            kind,
            x.view(),
            w_ih.view(),
            w_hh.view(),
            None,
            &saved,
            Some(dy.view()),
            None,
            None,
            true,
        )
        .unwrap()
    };
    let tb = crate::parallel::run(usize::MAX, || best(reps, bwd));
    // The after-loop products on data of the same shapes.
    let dg = Array2::from_shape_vec((t * b, gh), fill(t * b * gh, 5, 0.1)).unwrap();
    let x2 = x.view().into_shape_with_order((t * b, d)).unwrap();
    let hp =
        f.hs.slice(s![..t, .., ..])
            .to_owned()
            .into_shape_with_order((t * b, h))
            .unwrap();
    let mut dx = Array2::<f32>::zeros((t * b, d));
    let mut dwi = Array2::<f32>::zeros((gh, d));
    let mut dwh = Array2::<f32>::zeros((gh, h));
    let tdx = best(reps, || {
        gemm(
            1.0,
            dg.view(),
            w_ih.view(),
            0.0,
            dx.view_mut(),
            Threads::Auto,
        )
    });
    let tdwi = best(reps, || {
        gemm(1.0, dg.t(), x2, 0.0, dwi.view_mut(), Threads::Auto)
    });
    let tdwh = best(reps, || {
        gemm(1.0, dg.t(), hp.view(), 0.0, dwh.view_mut(), Threads::Auto)
    });
    // dW_ih and dW_hh as two products, or as one over the concatenated [x, h_prev].
    let mut xh = Array2::<f32>::zeros((t * b, d + h));
    let mut dwc = Array2::<f32>::zeros((gh, d + h));
    let (mut tcat, mut tsep) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..reps {
        tsep = tsep.min(best(1, || {
            gemm(1.0, dg.t(), x2, 0.0, dwi.view_mut(), Threads::Auto).unwrap();
            gemm(1.0, dg.t(), hp.view(), 0.0, dwh.view_mut(), Threads::Auto)
        }));
        tcat = tcat.min(best(1, || {
            xh.slice_mut(s![.., ..d]).assign(&x2);
            xh.slice_mut(s![.., d..]).assign(&hp);
            gemm(1.0, dg.t(), xh.view(), 0.0, dwc.view_mut(), Threads::Auto).unwrap();
            dwi.assign(&dwc.slice(s![.., ..d]));
            dwh.assign(&dwc.slice(s![.., d..]));
        }));
    }
    let mut dwit = Array2::<f32>::zeros((d, gh));
    let mut dwht = Array2::<f32>::zeros((h, gh));
    let mut ttr = f64::INFINITY;
    for _ in 0..reps {
        ttr = ttr.min(best(1, || {
            gemm(1.0, x2.t(), dg.view(), 0.0, dwit.view_mut(), Threads::Auto).unwrap();
            gemm(1.0, hp.t(), dg.view(), 0.0, dwht.view_mut(), Threads::Auto).unwrap();
            dwi.assign(&dwit.t());
            dwh.assign(&dwht.t());
        }));
    }
    println!("  dW separate {tsep:.2} ms, concatenated {tcat:.2} ms, transposed {ttr:.2} ms");
    let n = t * b * gh;
    let tz = best(reps, || {
        let mut v = super::seq::zeroed::<f32>(n);
        for i in (0..n).step_by(1024) {
            v[i] = 1.0;
        }
        v
    });
    let mut keep = vec![0f32; n];
    let tw = best(reps, || {
        for i in (0..n).step_by(1024) {
            keep[i] = 1.0;
        }
    });
    println!("  fresh zeroed dgx buffer touched: {tz:.2} ms (reused: {tw:.2} ms)");
    let gf = |m: usize, n: usize, k: usize, ms: f64| 2.0 * (m * n * k) as f64 / ms / 1e6;
    println!(
        "{} T{t} B{b} D{d} H{h}: fwd {tf:.2} ms, bwd {tb:.2} ms | dx {tdx:.2} ms ({:.0} GF/s), dW_ih {tdwi:.2} ({:.0}), dW_hh {tdwh:.2} ({:.0}) | loop ~{:.2} ms",
        kind.name(),
        gf(t * b, d, gh, tdx),
        gf(gh, d, t * b, tdwi),
        gf(gh, h, t * b, tdwh),
        tb - tdx - tdwi - tdwh
    );
}

#[test]
#[ignore]
fn rnn_speed() {
    probe(CellKind::Lstm, 100, 32, 128, 256);
    probe(CellKind::Lstm, 100, 64, 128, 128);
    probe(CellKind::Gru, 100, 32, 128, 256);
    probe(CellKind::Gru, 100, 64, 128, 128);
    probe(CellKind::Lstm, 500, 1, 64, 128);
}
