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

/// The gate passes alone on hot (L1/L2-resident) rows: 16 rows x H = 256, as one
/// chunk's share of a step of LSTM B32 H256.
#[test]
#[ignore]
fn rnn_gate_speed() {
    use super::rows;
    let (r, h) = (16usize, 256usize);
    let g0 = fill(r * 4 * h, 7, 2.0);
    let bias = fill(4 * h, 8, 0.1);
    let mut g = g0.clone();
    let mut c = fill(r * h, 9, 1.0);
    let mut hh = vec![0f32; r * h];
    let reps = 2000;
    let t = best(5, || {
        for _ in 0..reps {
            g.copy_from_slice(&g0);
            for i in 0..r {
                rows::lstm_fwd_row(
                    &mut g[i * 4 * h..(i + 1) * 4 * h],
                    &bias,
                    &mut c[i * h..(i + 1) * h],
                    &mut hh[i * h..(i + 1) * h],
                );
            }
        }
    }) / reps as f64;
    let tc = best(5, || {
        for _ in 0..reps {
            g.copy_from_slice(&g0);
        }
    }) / reps as f64;
    let cp = fill(r * h, 10, 1.0);
    let dhv = fill(r * h, 11, 1.0);
    let mut dc = vec![0f32; r * h];
    let mut dg = vec![0f32; r * 4 * h];
    let tb = best(5, || {
        for _ in 0..reps {
            for i in 0..r {
                rows::lstm_bwd_row(
                    &g0[i * 4 * h..(i + 1) * 4 * h],
                    &c[i * h..(i + 1) * h],
                    &cp[i * h..(i + 1) * h],
                    &dhv[i * h..(i + 1) * h],
                    &mut dc[i * h..(i + 1) * h],
                    &mut dg[i * 4 * h..(i + 1) * 4 * h],
                );
            }
        }
    }) / reps as f64;
    println!(
        "per step-chunk (16 x 256 units): fwd gates {:.2} us (copy {:.2} us), bwd gates {:.2} us; x100 steps: fwd {:.2} ms, bwd {:.2} ms",
        (t - tc) * 1e3, tc * 1e3, tb * 1e3, (t - tc) * 1e2, tb * 1e2
    );
}

#[test]
#[ignore]
fn rnn_speed_cell_backward() {
    let (b, d, h) = (100usize, 160usize, 128usize);
    let x = Array2::from_shape_vec((b, d), fill(b * d, 1, 1.0)).unwrap();
    let hh = Array2::from_shape_vec((b, h), fill(b * h, 2, 0.5)).unwrap();
    let c = Array2::from_shape_vec((b, h), fill(b * h, 3, 0.5)).unwrap();
    let wi = Array2::from_shape_vec((4 * h, d), fill(4 * h * d, 4, 0.1)).unwrap();
    let wh = Array2::from_shape_vec((4 * h, h), fill(4 * h * h, 5, 0.1)).unwrap();
    let dh = Array2::from_shape_vec((b, h), fill(b * h, 6, 1.0)).unwrap();
    let w = Weights {
        w_ih: wi.view(),
        w_hh: wh.view(),
        b_ih: None,
        b_hh: None,
    };
    let full = best(50, || {
        cell_backward(
            CellKind::Lstm,
            x.view(),
            Some(hh.view()),
            Some(c.view()),
            &w,
            Some(dh.view()),
            Some(dh.view()),
            true,
        )
        .unwrap()
    });
    let dg = Array2::from_shape_vec((b, 4 * h), fill(b * 4 * h, 7, 1.0)).unwrap();
    let mut out = Array2::<f32>::zeros((b, 4 * h));
    let fwd_i = best(50, || {
        gemm(1.0, x.view(), wi.t(), 0.0, out.view_mut(), Threads::Single).unwrap()
    });
    let mut dx = Array2::<f32>::zeros((b, d));
    let bx = best(50, || {
        gemm(
            1.0,
            dg.view(),
            wi.view(),
            0.0,
            dx.view_mut(),
            Threads::Single,
        )
        .unwrap()
    });
    let mut dwi = Array2::<f32>::zeros((4 * h, d));
    let bw = best(50, || {
        gemm(1.0, dg.t(), x.view(), 0.0, dwi.view_mut(), Threads::Single).unwrap()
    });
    eprintln!("cell bwd full {full:.3} ms; single-thread x@Wih^T {fwd_i:.3}, dx {bx:.3}, dW_ih {bw:.3} ms");
}
