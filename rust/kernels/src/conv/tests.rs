use super::*;
use ndarray::Array5;

fn filled(shape: [usize; 5], seed: u64) -> Array5<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    Array5::from_shape_fn(shape, |_| {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
    })
}

/// Direct loops over every output and kernel position.
fn naive(x: &Array5<f64>, w: &Array5<f64>, p: ConvParams) -> Array5<f64> {
    let g = Geom::new("t", shape5(&x.view()), shape5(&w.view()), p).unwrap();
    let [od, oh, ow] = g.output;
    let mut out = Array5::zeros([g.n, g.c_out, od, oh, ow]);
    for n in 0..g.n {
        for co in 0..g.c_out {
            let gi = co / g.og;
            for z in 0..od {
                for y in 0..oh {
                    for xo in 0..ow {
                        let mut acc = 0.0;
                        for c in 0..g.cg {
                            for kz in 0..g.kernel[0] {
                                for ky in 0..g.kernel[1] {
                                    for kx in 0..g.kernel[2] {
                                        let iz = (z * p.stride[0] + kz * p.dilation[0]) as isize - p.pad_lo[0] as isize;
                                        let iy = (y * p.stride[1] + ky * p.dilation[1]) as isize - p.pad_lo[1] as isize;
                                        let ix =
                                            (xo * p.stride[2] + kx * p.dilation[2]) as isize - p.pad_lo[2] as isize;
                                        if iz < 0 || iy < 0 || ix < 0 {
                                            continue;
                                        }
                                        let (iz, iy, ix) = (iz as usize, iy as usize, ix as usize);
                                        if iz >= g.input[0] || iy >= g.input[1] || ix >= g.input[2] {
                                            continue;
                                        }
                                        acc += x[[n, gi * g.cg + c, iz, iy, ix]] * w[[co, c, kz, ky, kx]];
                                    }
                                }
                            }
                        }
                        out[[n, co, z, y, xo]] = acc;
                    }
                }
            }
        }
    }
    out
}

fn close(a: &Array5<f64>, b: &Array5<f64>) {
    assert_eq!(a.shape(), b.shape());
    for (p, q) in a.iter().zip(b.iter()) {
        assert!((p - q).abs() < 1e-10 * (1.0 + q.abs()), "{p} vs {q}");
    }
}

fn dot(a: &Array5<f64>, b: &Array5<f64>) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| x * y).sum()
}

fn cases() -> Vec<([usize; 5], [usize; 5], ConvParams)> {
    let mut v = Vec::new();
    let p = |s: usize, d: usize, lo: usize, hi: usize, g: usize| ConvParams::planar([s; 2], [d; 2], [lo; 2], [hi; 2], g);
    v.push(([2, 3, 1, 7, 6], [4, 3, 1, 3, 3], p(1, 1, 1, 1, 1)));
    v.push(([2, 4, 1, 9, 8], [6, 2, 1, 3, 2], p(2, 1, 1, 2, 2)));
    v.push(([1, 4, 1, 8, 8], [4, 1, 1, 3, 3], p(1, 1, 1, 1, 4))); // depthwise
    v.push(([2, 3, 1, 9, 9], [6, 1, 1, 3, 3], p(2, 2, 2, 1, 3))); // depthwise x2, strided, dilated
    v.push(([3, 5, 1, 6, 7], [3, 5, 1, 1, 1], p(1, 1, 0, 0, 1))); // pointwise
    v.push(([2, 2, 1, 1, 1], [3, 2, 1, 1, 1], p(1, 1, 0, 0, 1))); // 1x1 image
    v.push(([1, 2, 1, 5, 5], [2, 2, 1, 2, 2], p(1, 2, 1, 2, 1))); // 'same'-like even kernel
    v.push((
        [2, 2, 4, 5, 3],
        [3, 2, 2, 3, 2],
        ConvParams {
            stride: [2, 1, 2],
            dilation: [1, 2, 1],
            pad_lo: [1, 2, 0],
            pad_hi: [0, 1, 1],
            groups: 1,
        },
    ));
    v
}

#[test]
fn forward_matches_naive() {
    for (xs, ws, p) in cases() {
        let x = filled(xs, 1);
        let w = filled(ws, 2);
        let y = conv_forward(x.view(), w.view(), None, p).unwrap();
        close(&y, &naive(&x, &w, p));
    }
}

#[test]
fn backward_is_the_adjoint() {
    // <dy, conv(x, w)> = <conv_input_grad(dy, w), x> = <conv_weight_grad(dy, x), w>
    for (xs, ws, p) in cases() {
        let x = filled(xs, 3);
        let w = filled(ws, 4);
        let y = conv_forward(x.view(), w.view(), None, p).unwrap();
        let dy = filled(y.shape().try_into().unwrap(), 5);
        let lhs = dot(&dy, &y);
        let dx = conv_input_grad(dy.view(), w.view(), xs, p).unwrap();
        let dw = conv_weight_grad(dy.view(), x.view(), [ws[2], ws[3], ws[4]], p).unwrap();
        assert!(
            (lhs - dot(&dx, &x)).abs() < 1e-10 * (1.0 + lhs.abs()),
            "dx {xs:?} {ws:?}"
        );
        assert!(
            (lhs - dot(&dw, &w)).abs() < 1e-10 * (1.0 + lhs.abs()),
            "dw {xs:?} {ws:?}"
        );
    }
}

#[test]
fn im2col_then_gemm_is_the_convolution_and_col2im_is_its_adjoint() {
    let x = filled([2, 3, 1, 6, 5], 6);
    let p = ConvParams {
        stride: [1, 2, 1],
        dilation: [1, 1, 2],
        pad_lo: [0, 1, 2],
        pad_hi: [0, 0, 1],
        groups: 1,
    };
    let cols = im2col(x.view(), [1, 3, 2], p).unwrap();
    let c = filled(
        cols.shape()
            .try_into()
            .map(|s: [usize; 3]| [1, s[0], s[1], s[2], 1])
            .unwrap(),
        7,
    );
    let c3 = c.view().into_shape_with_order(cols.dim()).unwrap();
    let back = col2im(c3, 3, [1, 6, 5], [1, 3, 2], p).unwrap();
    let lhs: f64 = cols.iter().zip(c3.iter()).map(|(a, b)| a * b).sum();
    assert!((lhs - dot(&back, &x)).abs() < 1e-10);
    let w = filled([1, 3, 1, 3, 2], 8);
    let y = naive(&x, &w, p);
    for n in 0..2 {
        for l in 0..cols.dim().2 {
            let v: f64 = (0..cols.dim().1)
                .map(|r| cols[[n, r, l]] * w.as_slice().unwrap()[r])
                .sum();
            assert!((v - y.as_slice().unwrap()[n * cols.dim().2 + l]).abs() < 1e-12);
        }
    }
}

#[test]
fn larger_shapes_tiles_and_threads_agree() {
    // Big enough for several tiles and the parallel paths; bits must not depend on threads.
    let x = filled([5, 40, 1, 30, 31], 9).mapv(|v| v as f32);
    let w = filled([24, 20, 1, 3, 3], 10).mapv(|v| v as f32);
    let p = ConvParams {
        stride: [1, 1, 1],
        dilation: [1, 1, 1],
        pad_lo: [0, 1, 1],
        pad_hi: [0, 1, 1],
        groups: 2,
    };
    let run = || {
        let y = conv_forward(x.view(), w.view(), None, p).unwrap();
        let dx = conv_input_grad(y.view(), w.view(), [5, 40, 1, 30, 31], p).unwrap();
        let dw = conv_weight_grad(y.view(), x.view(), [1, 3, 3], p).unwrap();
        (y, dx, dw)
    };
    let a = crate::parallel::set_num_threads(1).map(|_| run()).unwrap();
    let b = crate::parallel::set_num_threads(3).map(|_| run()).unwrap();
    assert_eq!(a, b);
    let y64 = naive(&x.mapv(|v| v as f64), &w.mapv(|v| v as f64), p);
    for (p, q) in a.0.iter().zip(y64.iter()) {
        assert!((*p as f64 - q).abs() < 1e-4, "{p} vs {q}");
    }
}

#[test]
fn bad_arguments_are_errors() {
    let x = filled([1, 3, 1, 5, 5], 1);
    let w = filled([2, 2, 1, 3, 3], 1);
    let e = conv_forward(x.view(), w.view(), None, ConvParams::unit()).unwrap_err();
    assert!(e.to_string().contains("'weight'"), "{e}");
    let w = filled([2, 3, 1, 7, 3], 1);
    let e = conv_forward(x.view(), w.view(), None, ConvParams::unit()).unwrap_err();
    assert!(e.to_string().contains("larger than the padded input"), "{e}");
    let w = filled([2, 3, 1, 3, 3], 1);
    let p = ConvParams {
        stride: [1, 0, 1],
        ..ConvParams::unit()
    };
    assert!(conv_forward(x.view(), w.view(), None, p).is_err());
    let p = ConvParams {
        groups: 2,
        ..ConvParams::unit()
    };
    assert!(conv_forward(x.view(), w.view(), None, p).is_err());
}

#[test]
fn image_blocks_im2row_and_depthwise_agree_across_threads_and_with_naive() {
    // small images (several per GEMM), few output channels (im2row weight gradient),
    // and a stride-1 depthwise layer
    let p = ConvParams {
        stride: [1, 1, 1],
        dilation: [1, 1, 1],
        pad_lo: [0, 1, 1],
        pad_hi: [0, 2, 2],
        groups: 1,
    };
    let pd = ConvParams { groups: 6, ..p };
    let x = filled([13, 6, 1, 9, 10], 11);
    let w = filled([4, 6, 1, 4, 4], 12);
    let wd = filled([12, 1, 1, 4, 3], 13);
    let run = || {
        let y = conv_forward(x.view(), w.view(), None, p).unwrap();
        let dx = conv_input_grad(y.view(), w.view(), [13, 6, 1, 9, 10], p).unwrap();
        let dw = conv_weight_grad(y.view(), x.view(), [1, 4, 4], p).unwrap();
        let yd = conv_forward(x.view(), wd.view(), None, pd).unwrap();
        let dxd = conv_input_grad(yd.view(), wd.view(), [13, 6, 1, 9, 10], pd).unwrap();
        let dwd = conv_weight_grad(yd.view(), x.view(), [1, 4, 3], pd).unwrap();
        (y, dx, dw, yd, dxd, dwd)
    };
    let a = crate::parallel::set_num_threads(1).map(|_| run()).unwrap();
    let b = crate::parallel::set_num_threads(2).map(|_| run()).unwrap();
    assert_eq!(a, b);
    close(&a.0, &naive(&x, &w, p));
    close(&a.3, &naive(&x, &wd, pd));
    let lhs = dot(&a.0, &a.0);
    assert!((lhs - dot(&a.2, &w)).abs() < 1e-9 * lhs.abs());
    assert!((lhs - dot(&a.1, &x)).abs() < 1e-9 * lhs.abs());
    let lhs = dot(&a.3, &a.3);
    assert!((lhs - dot(&a.5, &wd)).abs() < 1e-9 * lhs.abs());
    assert!((lhs - dot(&a.4, &x)).abs() < 1e-9 * lhs.abs());
}

#[test]
fn weight_grad_into_writes_every_element_and_rejects_a_wrong_out() {
    let p = ConvParams::planar([1, 1], [1, 1], [1, 1], [1, 1], 1);
    let x = filled([3, 4, 1, 6, 5], 1);
    let dy = filled([3, 7, 1, 6, 5], 2);
    let want = conv_weight_grad(dy.view(), x.view(), [1, 3, 3], p).unwrap();
    // stale contents (NaN) must not reach the result
    let mut out = Array5::from_elem([7, 4, 1, 3, 3], f64::NAN);
    conv_weight_grad_into(dy.view(), x.view(), [1, 3, 3], p, out.view_mut()).unwrap();
    assert_eq!(out, want);
    let mut wrong = Array5::<f64>::zeros([7, 4, 1, 3, 2]);
    let e = conv_weight_grad_into(dy.view(), x.view(), [1, 3, 3], p, wrong.view_mut()).unwrap_err().to_string();
    assert!(e.contains("'out'") && e.contains("[7, 4, 1, 3, 3]"), "{e}");
    let mut strided = Array5::<f64>::zeros([7, 4, 1, 3, 6]);
    let view = strided.slice_mut(ndarray::s![.., .., .., .., ..;2]);
    let e = conv_weight_grad_into(dy.view(), x.view(), [1, 3, 3], p, view).unwrap_err().to_string();
    assert!(e.contains("C-contiguous"), "{e}");
}
