//! Quick single-thread timing of the pooling kernels on cache-resident planes:
//! `cargo run -p oxinet-kernels --profile dev-fast --example pool_speed`.
use ndarray::Array3;
use oxinet_kernels::pool::{avg, max, Pool2d};
use std::time::Instant;

fn time(name: &str, outputs: usize, mut f: impl FnMut()) {
    if let Ok(only) = std::env::var("ONLY") {
        if !name.contains(&only) {
            return;
        }
    }
    let reps = (800_000 / outputs).clamp(1, 50);
    f();
    let mut best = f64::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    println!("{name:16} {:8.1} us {:6.2} ns/output", best * 1e6, best * 1e9 / outputs as f64);
}

fn main() {
    let p: usize = std::env::args().nth(1).map_or(16, |a| a.parse().unwrap());
    let (h, w) = (56, 56);
    let x = Array3::from_shape_fn((p, h, w), |(a, b, c)| ((a * 7919 + b * 104729 + c * 31) % 1000) as f32);
    let src = vec![1.0f32; p * h * w];
    let mut dst = vec![0.0f32; p * h * w];
    time("memcpy input", p * h * w / 4, || dst.copy_from_slice(std::hint::black_box(&src)));
    for (name, k, s, pd) in [("k2s2", 2, 2, 0), ("k3s2p1", 3, 2, 1)] {
        let prm = Pool2d { kernel: [k, k], stride: [s, s], padding: [pd, pd], dilation: [1, 1], ceil_mode: false };
        let [oh, ow] = prm.output_shape("t", h, w).unwrap();
        let n = p * oh * ow;
        let mut out = Array3::<f32>::zeros((p, oh, ow));
        let mut ix = Array3::<i64>::zeros((p, oh, ow));
        let mut dx = Array3::<f32>::zeros((p, h, w));
        time(&format!("max {name}"), n, || max::max_pool2d(x.view(), &prm, out.view_mut(), None).unwrap());
        time(&format!("max idx {name}"), n, || max::max_pool2d(x.view(), &prm, out.view_mut(), Some(ix.view_mut())).unwrap());
        time(&format!("max bwd {name}"), n, || max::max_pool_backward("t", out.view(), ix.view(), dx.view_mut()).unwrap());
        let o = avg::AvgOptions { count_include_pad: true, divisor_override: None };
        time(&format!("avg {name}"), n, || avg::avg_pool2d(x.view(), &prm, &o, out.view_mut()).unwrap());
        time(&format!("avg bwd {name}"), n, || avg::avg_pool2d_backward(out.view(), &prm, &o, dx.view_mut()).unwrap());
    }
}
