//! `cargo bench -p oxinet-kernels --bench gemm`: the GEMM wrapper on the shapes the
//! issue names (square, im2col-shaped, small, batched).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::{Array2, Array3};
use oxinet_kernels::gemm::{gemm, gemm_batched, Threads};

fn matrix(m: usize, n: usize) -> Array2<f32> {
    Array2::from_shape_fn((m, n), |(i, j)| ((i * 31 + j * 17) % 97) as f32 / 97.0 - 0.5)
}

fn bench_gemm(cr: &mut Criterion) {
    let mut group = cr.benchmark_group("sgemm");
    group.sample_size(10);
    for &(m, n, k) in &[(1024, 1024, 1024), (64, 3136, 576), (256, 196, 2304), (32, 128, 1024)] {
        let a = matrix(m, k);
        let b = matrix(k, n);
        let mut c = Array2::<f32>::zeros((m, n));
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.bench_function(BenchmarkId::from_parameter(format!("{m}x{n}x{k}")), |bch| {
            bch.iter(|| gemm(1.0, a.view(), b.view(), 0.0, c.view_mut(), Threads::Auto).unwrap())
        });
    }
    let a = Array3::from_shape_fn((256, 128, 64), |(i, j, k)| ((i + j * 3 + k * 7) % 13) as f32 * 0.1);
    let b = Array3::from_shape_fn((256, 64, 128), |(i, j, k)| ((i + j * 5 + k * 11) % 17) as f32 * 0.1);
    let mut c = Array3::<f32>::zeros((256, 128, 128));
    group.throughput(Throughput::Elements(2 * 256 * 128 * 128 * 64));
    group.bench_function("batched 256x(128x64@64x128)", |bch| {
        bch.iter(|| gemm_batched(1.0, a.view(), b.view(), 0.0, c.view_mut()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_gemm);
criterion_main!(benches);
