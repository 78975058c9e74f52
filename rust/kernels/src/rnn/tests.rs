//! Unit tests against naive per-step loops (float64), finite differences and
//! thread-count invariance.

use super::*;
use ndarray::{s, Array1, Array2, Array3};

fn filled(shape: &[usize], seed: u64, scale: f64) -> Vec<f64> {
    let n: usize = shape.iter().product();
    let mut st = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            st = st
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (((st >> 33) as f64 / (1u64 << 31) as f64) - 0.5) * 2.0 * scale
        })
        .collect()
}

struct Case {
    kind: CellKind,
    x: Array3<f64>,
    h0: Array2<f64>,
    c0: Array2<f64>,
    w_ih: Array2<f64>,
    w_hh: Array2<f64>,
    b_ih: Array1<f64>,
    b_hh: Array1<f64>,
    lens: Vec<usize>,
}

fn case(kind: CellKind, t: usize, b: usize, d: usize, h: usize, seed: u64) -> Case {
    let g = kind.gates();
    Case {
        kind,
        x: Array3::from_shape_vec((t, b, d), filled(&[t, b, d], seed, 1.0)).unwrap(),
        h0: Array2::from_shape_vec((b, h), filled(&[b, h], seed + 1, 0.5)).unwrap(),
        c0: Array2::from_shape_vec((b, h), filled(&[b, h], seed + 2, 0.5)).unwrap(),
        w_ih: Array2::from_shape_vec((g * h, d), filled(&[g * h, d], seed + 3, 0.5)).unwrap(),
        w_hh: Array2::from_shape_vec((g * h, h), filled(&[g * h, h], seed + 4, 0.5)).unwrap(),
        b_ih: Array1::from_vec(filled(&[g * h], seed + 5, 0.3)),
        b_hh: Array1::from_vec(filled(&[g * h], seed + 6, 0.3)),
        lens: (0..b).map(|i| t - (i * 3) % t).collect(),
    }
}

fn sig(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// Naive reference: returns (y (T,B,H), h_n, c_n).
fn naive(c: &Case) -> (Array3<f64>, Array2<f64>, Array2<f64>) {
    let (t, b, _) = c.x.dim();
    let h = c.w_hh.ncols();
    let mut y = Array3::zeros((t, b, h));
    let mut hn = c.h0.clone();
    let mut cn = c.c0.clone();
    for bi in 0..b {
        let mut hv = c.h0.row(bi).to_owned();
        let mut cv = c.c0.row(bi).to_owned();
        for s in 0..c.lens[bi] {
            let gx = c.w_ih.dot(&c.x.slice(s![s, bi, ..])) + &c.b_ih;
            let gh = c.w_hh.dot(&hv) + &c.b_hh;
            let mut nh = Array1::zeros(h);
            match c.kind {
                CellKind::Lstm => {
                    let pre = &gx + &gh;
                    for j in 0..h {
                        let (i, f, g, o) = (
                            sig(pre[j]),
                            sig(pre[h + j]),
                            pre[2 * h + j].tanh(),
                            sig(pre[3 * h + j]),
                        );
                        cv[j] = f * cv[j] + i * g;
                        nh[j] = o * cv[j].tanh();
                    }
                }
                CellKind::Gru => {
                    for j in 0..h {
                        let r = sig(gx[j] + gh[j]);
                        let z = sig(gx[h + j] + gh[h + j]);
                        let n = (gx[2 * h + j] + r * gh[2 * h + j]).tanh();
                        nh[j] = (1.0 - z) * n + z * hv[j];
                    }
                }
                CellKind::RnnTanh => nh = (&gx + &gh).mapv(f64::tanh),
                CellKind::RnnRelu => nh = (&gx + &gh).mapv(|v| v.max(0.0)),
            }
            hv = nh;
            y.slice_mut(s![s, bi, ..]).assign(&hv);
        }
        hn.row_mut(bi).assign(&hv);
        cn.row_mut(bi).assign(&cv);
    }
    (y, hn, cn)
}

fn run(c: &Case, lengths: bool, train: bool) -> Forward<f64> {
    let w = Weights {
        w_ih: c.w_ih.view(),
        w_hh: c.w_hh.view(),
        b_ih: Some(c.b_ih.view()),
        b_hh: Some(c.b_hh.view()),
    };
    let c0 = if c.kind == CellKind::Lstm {
        Some(c.c0.view())
    } else {
        None
    };
    forward(
        c.kind,
        c.x.view(),
        Some(c.h0.view()),
        c0,
        &w,
        if lengths { Some(&c.lens[..]) } else { None },
        train,
    )
    .unwrap()
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
    }
}

/// Every gradient of two cell backwards agrees to `tol` (dx and dc0 where both have one).
fn grads_close(got: &super::Grads<f64>, want: &super::Grads<f64>, tol: f64) {
    let sl = |a: &Array2<f64>| a.iter().copied().collect::<Vec<_>>();
    assert_eq!(got.dx.is_some(), want.dx.is_some());
    if let (Some(g), Some(w)) = (&got.dx, &want.dx) {
        close(&g.iter().copied().collect::<Vec<_>>(), &w.iter().copied().collect::<Vec<_>>(), tol);
    }
    for (g, w) in [(&got.dh0, &want.dh0), (&got.dw_ih, &want.dw_ih), (&got.dw_hh, &want.dw_hh)] {
        close(&sl(g), &sl(w), tol);
    }
    close(got.db_ih.as_slice().unwrap(), want.db_ih.as_slice().unwrap(), tol);
    close(got.db_hh.as_slice().unwrap(), want.db_hh.as_slice().unwrap(), tol);
    assert_eq!(got.dc0.is_some(), want.dc0.is_some());
    if let (Some(g), Some(w)) = (&got.dc0, &want.dc0) {
        close(&sl(g), &sl(w), tol);
    }
}

const KINDS: [CellKind; 4] = [
    CellKind::Lstm,
    CellKind::Gru,
    CellKind::RnnTanh,
    CellKind::RnnRelu,
];

#[test]
fn forward_matches_naive_with_and_without_lengths() {
    // B = 3 uses the small product, B = 40 the GEMM path with several chunks.
    for kind in KINDS {
        for &(t, b, d, h) in &[(5, 3, 4, 6), (4, 40, 7, 9), (1, 1, 1, 1)] {
            let mut c = case(kind, t, b, d, h, 7);
            for lengths in [false, true] {
                if !lengths {
                    c.lens = vec![t; b];
                }
                let f = run(&c, lengths, true);
                let (y, hn, cn) = naive(&c);
                close(
                    f.hs.slice(s![1.., .., ..]).to_owned().as_slice().unwrap(),
                    y.as_slice().unwrap(),
                    1e-12,
                );
                close(f.h_n.as_slice().unwrap(), hn.as_slice().unwrap(), 1e-12);
                if kind == CellKind::Lstm {
                    close(
                        f.c_n.as_ref().unwrap().as_slice().unwrap(),
                        cn.as_slice().unwrap(),
                        1e-12,
                    );
                }
                c = case(kind, t, b, d, h, 7);
            }
        }
    }
}

fn loss(c: &Case, wy: &Array3<f64>, wh: &Array2<f64>, wc: &Array2<f64>) -> f64 {
    let f = run(c, true, false);
    let mut l = (&f.hs.slice(s![1.., .., ..]) * wy).sum() + (&f.h_n * wh).sum();
    if let Some(cn) = &f.c_n {
        l += (cn * wc).sum();
    }
    l
}

#[test]
fn backward_matches_finite_differences() {
    for kind in KINDS {
        let (t, b, d, h) = (4, 3, 3, 2);
        let mut c = case(kind, t, b, d, h, 11);
        let wy = Array3::from_shape_vec((t, b, h), filled(&[t, b, h], 21, 1.0)).unwrap();
        let wh = Array2::from_shape_vec((b, h), filled(&[b, h], 22, 1.0)).unwrap();
        let wc = Array2::from_shape_vec((b, h), filled(&[b, h], 23, 1.0)).unwrap();
        let f = run(&c, true, true);
        let saved = Saved {
            hs: f.hs.view(),
            cs: f.cs.as_ref().map(|a| a.view()),
            gates: f.gates.as_ref().map(|a| a.view()),
            hn: f.hn.as_ref().map(|a| a.view()),
        };
        let lstm = kind == CellKind::Lstm;
        let gr = backward(
            kind,
            c.x.view(),
            c.w_ih.view(),
            c.w_hh.view(),
            Some(&c.lens[..]),
            &saved,
            Some(wy.view()),
            Some(wh.view()),
            if lstm { Some(wc.view()) } else { None },
            true,
        )
        .unwrap();
        let eps = 1e-6;
        macro_rules! fd {
            ($field:ident, $grad:expr) => {{
                let n = c.$field.len();
                for i in 0..n {
                    let old = c.$field.as_slice().unwrap()[i];
                    c.$field.as_slice_mut().unwrap()[i] = old + eps;
                    let lp = loss(&c, &wy, &wh, &wc);
                    c.$field.as_slice_mut().unwrap()[i] = old - eps;
                    let lm = loss(&c, &wy, &wh, &wc);
                    c.$field.as_slice_mut().unwrap()[i] = old;
                    let num = (lp - lm) / (2.0 * eps);
                    let got = $grad.as_slice().unwrap()[i];
                    assert!(
                        (num - got).abs() < 1e-6 * (1.0 + num.abs()),
                        "{:?} {} [{i}]: {got} vs {num}",
                        kind,
                        stringify!($field)
                    );
                }
            }};
        }
        fd!(x, gr.dx.as_ref().unwrap());
        fd!(h0, gr.dh0);
        if lstm {
            fd!(c0, gr.dc0.as_ref().unwrap());
        }
        fd!(w_ih, gr.dw_ih);
        fd!(w_hh, gr.dw_hh);
        fd!(b_ih, gr.db_ih);
        fd!(b_hh, gr.db_hh);
    }
}

#[test]
fn thread_count_does_not_change_bits() {
    let c32 = |v: &Array3<f64>| v.mapv(|x| x as f32);
    let c = case(CellKind::Lstm, 6, 70, 20, 24, 3);
    let x = c32(&c.x);
    let w_ih = c.w_ih.mapv(|x| x as f32);
    let w_hh = c.w_hh.mapv(|x| x as f32);
    let go = || {
        let w = Weights {
            w_ih: w_ih.view(),
            w_hh: w_hh.view(),
            b_ih: None,
            b_hh: None,
        };
        let f = forward(
            CellKind::Lstm,
            x.view(),
            None,
            None,
            &w,
            Some(&c.lens[..]),
            true,
        )
        .unwrap();
        let saved = Saved {
            hs: f.hs.view(),
            cs: f.cs.as_ref().map(|a| a.view()),
            gates: f.gates.as_ref().map(|a| a.view()),
            hn: None,
        };
        let g = backward(
            CellKind::Lstm,
            x.view(),
            w_ih.view(),
            w_hh.view(),
            Some(&c.lens[..]),
            &saved,
            Some(f.hs.slice(s![1.., .., ..])),
            None,
            None,
            true,
        )
        .unwrap();
        (f.hs.clone(), g.dx.unwrap(), g.dw_hh, g.db_ih)
    };
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|i| format!("oxinet-t{i}"))
        .build()
        .unwrap();
    let three = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .thread_name(|i| format!("oxinet-t{i}"))
        .build()
        .unwrap();
    let a = one.install(go);
    let b = three.install(go);
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
    assert_eq!(a.2, b.2);
    assert_eq!(a.3, b.3);
}

#[test]
fn bad_shapes_name_the_argument() {
    let c = case(CellKind::Gru, 3, 2, 4, 5, 1);
    let w = Weights {
        w_ih: c.w_ih.view(),
        w_hh: c.w_hh.view(),
        b_ih: None,
        b_hh: None,
    };
    let bad_h0 = Array2::<f64>::zeros((2, 4));
    let e = forward(
        CellKind::Gru,
        c.x.view(),
        Some(bad_h0.view()),
        None,
        &w,
        None,
        false,
    )
    .unwrap_err();
    assert!(e.to_string().contains("'h0'"), "{e}");
    let w2 = Weights {
        w_ih: c.w_hh.view(),
        ..w
    };
    let e = forward(CellKind::Gru, c.x.view(), None, None, &w2, None, false).unwrap_err();
    assert!(e.to_string().contains("'w_ih'"), "{e}");
    let e = forward(CellKind::Lstm, c.x.view(), None, None, &w, None, false).unwrap_err();
    assert!(e.to_string().contains("'w_hh'"), "{e}");
    let e = forward(
        CellKind::Gru,
        c.x.view(),
        None,
        None,
        &w,
        Some(&[1, 4]),
        false,
    )
    .unwrap_err();
    assert!(e.to_string().contains("'lengths'"), "{e}");
    let e = forward(
        CellKind::Gru,
        c.x.view(),
        None,
        None,
        &w,
        Some(&[0, 1]),
        false,
    )
    .unwrap_err();
    assert!(e.to_string().contains("'lengths'"), "{e}");
}

#[test]
fn chunks_cover_the_batch() {
    for b in 0..200 {
        let ch = super::seq::chunk_ranges(b);
        let mut next = 0;
        for &(s, e) in &ch {
            assert_eq!(s, next);
            assert!(e > s);
            next = e;
        }
        assert_eq!(next, b);
    }
}

/// float32 through the fast paths (one step: the transposed packed product; long
/// sequences: per-chunk input projections) against the float64 naive loop.
#[test]
fn float32_fast_paths_match_naive() {
    for kind in KINDS {
        for &(t, b, d, h) in &[
            (1, 37, 5, 20),
            (1, 1, 3, 70),
            (1, 70, 33, 16),
            (5, 40, 7, 9),
        ] {
            let mut c = case(kind, t, b, d, h, 21);
            c.lens = vec![t; b];
            let (y, hn, cn) = naive(&c);
            let f = |a: &Array2<f64>| a.mapv(|v| v as f32);
            let x = c.x.mapv(|v| v as f32);
            let (w_ih, w_hh, h0, c0) = (f(&c.w_ih), f(&c.w_hh), f(&c.h0), f(&c.c0));
            let (b_ih, b_hh) = (c.b_ih.mapv(|v| v as f32), c.b_hh.mapv(|v| v as f32));
            let w = Weights {
                w_ih: w_ih.view(),
                w_hh: w_hh.view(),
                b_ih: Some(b_ih.view()),
                b_hh: Some(b_hh.view()),
            };
            let lstm = kind == CellKind::Lstm;
            let out = forward(
                kind,
                x.view(),
                Some(h0.view()),
                if lstm { Some(c0.view()) } else { None },
                &w,
                None,
                false,
            )
            .unwrap();
            let to64 = |v: Vec<f32>| v.into_iter().map(|q| q as f64).collect::<Vec<_>>();
            let got_y = to64(out.hs.slice(s![1.., .., ..]).iter().copied().collect());
            close(&got_y, y.as_slice().unwrap(), 1e-4);
            close(
                &to64(out.h_n.iter().copied().collect()),
                hn.as_slice().unwrap(),
                1e-4,
            );
            if lstm {
                let cgot = to64(out.c_n.unwrap().iter().copied().collect());
                close(&cgot, cn.as_slice().unwrap(), 1e-4);
            }
        }
    }
}

/// The backward's recycled scratch buffers hold stale values from earlier calls: poison
/// them with NaN and check that results (with lengths, so rows past the end matter) are
/// unchanged for every kind and both float types.
#[test]
fn recycled_scratch_never_leaks_into_results() {
    fn grads<T: RnnFloat>(c: &Case, conv: impl Fn(f64) -> T) -> Vec<Vec<T>> {
        let m3 = |a: &Array3<f64>| a.mapv(&conv);
        let m2 = |a: &Array2<f64>| a.mapv(&conv);
        let (x, w_ih, w_hh) = (m3(&c.x), m2(&c.w_ih), m2(&c.w_hh));
        let w = Weights {
            w_ih: w_ih.view(),
            w_hh: w_hh.view(),
            b_ih: None,
            b_hh: None,
        };
        let f = forward(c.kind, x.view(), None, None, &w, Some(&c.lens[..]), true).unwrap();
        let saved = Saved {
            hs: f.hs.view(),
            cs: f.cs.as_ref().map(|a| a.view()),
            gates: f.gates.as_ref().map(|a| a.view()),
            hn: f.hn.as_ref().map(|a| a.view()),
        };
        let dy = f.hs.slice(s![1.., .., ..]).to_owned();
        let g = backward(
            c.kind,
            x.view(),
            w_ih.view(),
            w_hh.view(),
            Some(&c.lens[..]),
            &saved,
            Some(dy.view()),
            None,
            None,
            true,
        )
        .unwrap();
        vec![
            g.dx.unwrap().iter().copied().collect(),
            g.dh0.iter().copied().collect(),
            g.dw_ih.iter().copied().collect(),
            g.dw_hh.iter().copied().collect(),
            g.db_ih.to_vec(),
            g.db_hh.to_vec(),
        ]
    }
    fn poison() {
        for n in [1usize << 16, 1 << 18] {
            let mut a = crate::scratch::Scratch::<f64>::take(n);
            a.as_mut_slice().fill(f64::NAN);
            let mut b = crate::scratch::Scratch::<f64>::take(n);
            b.as_mut_slice().fill(f64::NAN);
        }
    }
    for kind in KINDS {
        let c = case(kind, 9, 37, 6, 20, 11);
        let a64 = grads::<f64>(&c, |v| v);
        let a32 = grads::<f32>(&c, |v| v as f32);
        for _ in 0..3 {
            poison();
            assert_eq!(grads::<f64>(&c, |v| v), a64, "{kind:?} f64");
            poison();
            assert_eq!(grads::<f32>(&c, |v| v as f32), a32, "{kind:?} f32");
        }
    }
}

/// Without `need_dx` the backward skips the dx product: dx is None and every other
/// gradient keeps its bits.
#[test]
fn skipping_dx_keeps_the_other_gradients() {
    for kind in KINDS {
        let c = case(kind, 7, 19, 5, 18, 4);
        let w = Weights {
            w_ih: c.w_ih.view(),
            w_hh: c.w_hh.view(),
            b_ih: None,
            b_hh: None,
        };
        let f = forward(kind, c.x.view(), None, None, &w, Some(&c.lens[..]), true).unwrap();
        let saved = Saved {
            hs: f.hs.view(),
            cs: f.cs.as_ref().map(|a| a.view()),
            gates: f.gates.as_ref().map(|a| a.view()),
            hn: f.hn.as_ref().map(|a| a.view()),
        };
        let dy = f.hs.slice(s![1.., .., ..]).to_owned();
        let run = |need_dx| {
            backward(
                kind,
                c.x.view(),
                c.w_ih.view(),
                c.w_hh.view(),
                Some(&c.lens[..]),
                &saved,
                Some(dy.view()),
                None,
                None,
                need_dx,
            )
            .unwrap()
        };
        let (all, some) = (run(true), run(false));
        assert!(all.dx.is_some() && some.dx.is_none());
        assert_eq!(all.dh0, some.dh0);
        assert_eq!(all.dc0, some.dc0);
        assert_eq!(all.dw_ih, some.dw_ih);
        assert_eq!(all.dw_hh, some.dw_hh);
        assert_eq!(all.db_ih, some.db_ih);
        assert_eq!(all.db_hh, some.db_hh);
    }
}

#[test]
fn cell_backward_matches_sequence_backward_t1() {
    // Batch sizes: 1, odd (uneven halves), and one more than a sequence chunk.
    for kind in KINDS {
        for &b in &[1usize, 5, 17] {
            let c = case(kind, 1, b, 7, 6, 40 + b as u64);
            let dh = Array2::from_shape_vec((b, 6), filled(&[b, 6], 90, 1.0)).unwrap();
            let dc = Array2::from_shape_vec((b, 6), filled(&[b, 6], 91, 1.0)).unwrap();
            let lstm = kind == CellKind::Lstm;
            let f = run(&c, false, true);
            let saved = Saved {
                hs: f.hs.view(),
                cs: f.cs.as_ref().map(|a| a.view()),
                gates: f.gates.as_ref().map(|a| a.view()),
                hn: f.hn.as_ref().map(|a| a.view()),
            };
            let want = backward(
                kind,
                c.x.view(),
                c.w_ih.view(),
                c.w_hh.view(),
                None,
                &saved,
                None,
                Some(dh.view()),
                lstm.then(|| dc.view()),
                true,
            )
            .unwrap();
            let w = Weights {
                w_ih: c.w_ih.view(),
                w_hh: c.w_hh.view(),
                b_ih: Some(c.b_ih.view()),
                b_hh: Some(c.b_hh.view()),
            };
            let got = cell_backward(
                kind,
                c.x.slice(s![0, .., ..]),
                Some(c.h0.view()),
                lstm.then(|| c.c0.view()),
                &w,
                Some(dh.view()),
                lstm.then(|| dc.view()),
                true,
            )
            .unwrap();
            assert!(got.dx.is_some());
            assert_eq!(got.dc0.is_some(), lstm);
            grads_close(&got, &want, 1e-12);
            // Bad shapes name the argument.
            let e = cell_backward(
                kind,
                c.x.slice(s![0, .., ..]),
                Some(c.h0.slice(s![.., 1..])),
                None,
                &w,
                None,
                None,
                true,
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("'h'"), "{e}");
        }
    }
}

/// The step's saved gates and state from a T = 1 training forward, as the cell binding
/// hands them to `cell_backward_saved`.
fn step_saved(kind: CellKind, f: &Forward<f64>) -> (Array2<f64>, Array2<f64>) {
    let hs1 = f.hs.slice(s![1, .., ..]).to_owned();
    match kind {
        CellKind::Lstm => (
            f.gates.as_ref().unwrap().slice(s![0, .., ..]).to_owned(),
            f.cs.as_ref().unwrap().slice(s![1, .., ..]).to_owned(),
        ),
        CellKind::Gru => (
            f.gates.as_ref().unwrap().slice(s![0, .., ..]).to_owned(),
            f.hn.as_ref().unwrap().slice(s![0, .., ..]).to_owned(),
        ),
        _ => (hs1.clone(), hs1),
    }
}

#[test]
fn cell_backward_saved_matches_recomputing() {
    // Batch 1, odd (uneven halves), larger than a chunk; with and without h, c, dc_next.
    for kind in KINDS {
        let lstm = kind == CellKind::Lstm;
        for &b in &[1usize, 5, 17] {
            for with_state in [true, false] {
                let c = case(kind, 1, b, 7, 6, 60 + b as u64);
                let w = Weights {
                    w_ih: c.w_ih.view(),
                    w_hh: c.w_hh.view(),
                    b_ih: Some(c.b_ih.view()),
                    b_hh: Some(c.b_hh.view()),
                };
                let h = with_state.then(|| c.h0.view());
                let c0 = (with_state && lstm).then(|| c.c0.view());
                let f = forward(kind, c.x.view(), h, c0, &w, None, true).unwrap();
                let (g, st) = step_saved(kind, &f);
                let dh = Array2::from_shape_vec((b, 6), filled(&[b, 6], 92, 1.0)).unwrap();
                let dc = Array2::from_shape_vec((b, 6), filled(&[b, 6], 93, 1.0)).unwrap();
                let dcn = (with_state && lstm).then(|| dc.view());
                let x = c.x.slice(s![0, .., ..]);
                for need_dx in [true, false] {
                    let want =
                        cell_backward(kind, x, h, c0, &w, Some(dh.view()), dcn, need_dx).unwrap();
                    let saved = StepSaved {
                        gates: g.view(),
                        state: st.view(),
                    };
                    let got = cell_backward_saved(
                        kind,
                        x,
                        h,
                        c0,
                        &w,
                        saved,
                        Some(dh.view()),
                        dcn,
                        need_dx,
                    )
                    .unwrap();
                    assert_eq!(got.dx.is_some(), need_dx);
                    assert_eq!(got.dc0.is_some(), lstm);
                    grads_close(&got, &want, 1e-12);
                }
                // A transposed (non-standard) saved state gives the same result.
                let st_t = st.t().to_owned();
                let saved = StepSaved {
                    gates: g.view(),
                    state: st_t.t(),
                };
                let a = cell_backward_saved(kind, x, h, c0, &w, saved, Some(dh.view()), dcn, true)
                    .unwrap();
                let want = cell_backward(kind, x, h, c0, &w, Some(dh.view()), dcn, true).unwrap();
                close(
                    a.dh0.as_slice().unwrap(),
                    want.dh0.as_slice().unwrap(),
                    1e-12,
                );
                // Saved arrays of the wrong shape name what is wrong.
                let bad_g = Array2::<f64>::zeros((b, g.ncols() + 1));
                let saved = StepSaved {
                    gates: bad_g.view(),
                    state: st.view(),
                };
                let e = cell_backward_saved(kind, x, h, c0, &w, saved, None, None, true)
                    .unwrap_err()
                    .to_string();
                assert!(e.contains("'gates'"), "{e}");
                let bad_s = Array2::<f64>::zeros((b + 1, 6));
                let saved = StepSaved {
                    gates: g.view(),
                    state: bad_s.view(),
                };
                let e = cell_backward_saved(kind, x, h, c0, &w, saved, None, None, true)
                    .unwrap_err()
                    .to_string();
                assert!(e.contains("saved state"), "{e}");
            }
        }
    }
}
