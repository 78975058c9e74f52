//! Pooling kernels over batches of image planes.
//!
//! Every kernel here sees its input as `(P, H, W)`: `P = N * C` independent planes
//! (1-D pooling is the case `H == 1`). Arrays must be in standard (C-contiguous)
//! layout; the Python layer makes them so. Work is split over planes only, so results
//! never depend on the thread count.
//!
//! - [`max`]: `max_pool2d` forward (optionally with PyTorch's flat argmax indices) and
//!   the index scatter used by every max-style backward pass.
//! - [`avg`]: `avg_pool2d` forward and backward.
//! - [`adaptive`]: adaptive average/max pooling (PyTorch's window rule
//!   `start = floor(i*H/out)`, `end = ceil((i+1)*H/out)`).
//! - [`unpool`]: `max_unpool2d` forward and backward.
//!
//! The regular pools (fixed kernel, stride, padding, dilation) share one scheme: each
//! padded input row is split into `stride` phases (`phase[q][t] = row[t*stride + q]`),
//! after which every kernel column is a unit-stride slice of one phase, and the
//! reduction over the window is a sequence of contiguous element-wise max/add loops
//! that the compiler vectorises (compiled for AVX-512, AVX2 and the portable baseline,
//! picked at run time).

pub mod adaptive;
pub mod avg;
mod direct;
mod lanes;
pub mod max;
pub mod unpool;

use crate::error::{KernelError, KernelResult};
use crate::gemm::Scalar;

/// Parameters of a regular 2-D pooling window, `[height, width]` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2d {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub ceil_mode: bool,
}

/// PyTorch's pooling output size for one axis (may be <= 0 for impossible shapes).
pub fn pooling_output_size(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    ceil_mode: bool,
) -> i64 {
    let (n, k, s, p, d) = (input as i64, kernel as i64, stride as i64, pad as i64, dilation as i64);
    let num = n + 2 * p - d * (k - 1) - 1 + if ceil_mode { s - 1 } else { 0 };
    let mut out = num.div_euclid(s) + 1;
    // The last window must start inside the input or the left padding.
    if ceil_mode && (out - 1) * s >= n + p {
        out -= 1;
    }
    out
}

impl Pool2d {
    /// Check the parameters against an `h x w` plane and return the output size.
    pub fn output_shape(&self, op: &str, h: usize, w: usize) -> KernelResult<[usize; 2]> {
        for a in 0..2 {
            if self.kernel[a] == 0 {
                return Err(KernelError::param(format!(
                    "{op}: 'kernel_size' must be positive, got {:?}",
                    self.kernel
                )));
            }
            if self.stride[a] == 0 {
                return Err(KernelError::param(format!(
                    "{op}: 'stride' must be positive, got {:?}",
                    self.stride
                )));
            }
            if self.dilation[a] == 0 {
                return Err(KernelError::param(format!(
                    "{op}: 'dilation' must be positive, got {:?}",
                    self.dilation
                )));
            }
            if self.padding[a] > self.kernel[a] / 2 {
                return Err(KernelError::param(format!(
                    "{op}: 'padding' {:?} must be at most half of 'kernel_size' {:?}",
                    self.padding, self.kernel
                )));
            }
        }
        if h == 0 || w == 0 {
            return Err(KernelError::shape(format!("{op}: input planes are empty ({h}x{w})")));
        }
        let oh = pooling_output_size(h, self.kernel[0], self.stride[0], self.padding[0], self.dilation[0], self.ceil_mode);
        let ow = pooling_output_size(w, self.kernel[1], self.stride[1], self.padding[1], self.dilation[1], self.ceil_mode);
        if oh < 1 || ow < 1 {
            return Err(KernelError::param(format!(
                "{op}: 'kernel_size' {:?} (dilation {:?}) is larger than the padded input {}x{} \
                 (padding {:?}): output size would be {oh}x{ow}",
                self.kernel,
                self.dilation,
                h + 2 * self.padding[0],
                w + 2 * self.padding[1],
                self.padding
            )));
        }
        Ok([oh as usize, ow as usize])
    }

    pub(crate) fn axis(&self, a: usize, input: usize, output: usize) -> Axis {
        Axis {
            n_in: input,
            n_out: output,
            k: self.kernel[a],
            s: self.stride[a],
            p: self.padding[a],
            d: self.dilation[a],
        }
    }
}

/// One axis of a regular pooling window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Axis {
    pub n_in: usize,
    pub n_out: usize,
    pub k: usize,
    pub s: usize,
    pub p: usize,
    pub d: usize,
}

impl Axis {
    /// Start of window `o` in unpadded coordinates.
    #[inline]
    pub fn start(&self, o: usize) -> isize {
        (o * self.s) as isize - self.p as isize
    }

    /// First in-bounds tap of window `o` (PyTorch's initial argmax position).
    #[inline]
    pub fn first_valid(&self, o: usize) -> usize {
        let mut c = self.start(o);
        while c < 0 {
            c += self.d as isize;
        }
        (c as usize).min(self.n_in.saturating_sub(1))
    }

    /// Length of each phase of a padded row: a multiple of [`LANES`] that holds every
    /// tap of every window (rounded up to whole chunks) and every input column.
    pub fn phase_len(&self) -> usize {
        let taps = self.n_out.div_ceil(LANES) * LANES + (self.k - 1) * self.d / self.s;
        let cols = (self.n_in + self.p) / self.s + 1;
        taps.max(cols).div_ceil(LANES) * LANES
    }

    /// Number of outputs rounded up to whole chunks.
    pub fn out_chunks(&self) -> usize {
        self.n_out.div_ceil(LANES)
    }
}

/// Width of the fixed-size chunks the inner loops work on: fixed-size arrays let the
/// compiler vectorise them completely (16 f32 = one AVX-512 register), with no scalar
/// remainder loop (scratch rows are padded to whole chunks instead).
pub(crate) const LANES: usize = 16;

#[inline(always)]
pub(crate) fn chunk<T>(s: &[T], c: usize) -> &[T; LANES] {
    s[c * LANES..(c + 1) * LANES].try_into().unwrap()
}

#[inline(always)]
pub(crate) fn chunk_mut<T>(s: &mut [T], c: usize) -> &mut [T; LANES] {
    (&mut s[c * LANES..(c + 1) * LANES]).try_into().unwrap()
}

/// A padded row split into `s` phases: `phase(q)[t] = padded_row[t*s + q]`.
/// For stride 1 the padded row itself is the only phase.
pub(crate) struct Phases<T> {
    pub s: usize,
    pub len: usize,
    /// Phase `q` at `data[q*len..(q+1)*len]` (the accumulator in backward passes).
    pub data: Vec<T>,
    /// The padded row, `s * len` long.
    pub row: Vec<T>,
}

impl<T: Scalar> Phases<T> {
    pub fn new(ax: &Axis) -> Self {
        let len = ax.phase_len();
        Phases { s: ax.s, len, data: vec![T::zero(); len * ax.s], row: vec![T::zero(); len * ax.s] }
    }

    #[inline(always)]
    pub fn phase(&self, q: usize) -> &[T] {
        if self.s == 1 {
            &self.row[..self.len]
        } else {
            &self.data[q * self.len..(q + 1) * self.len]
        }
    }

    /// Fill from one unpadded row with `p` columns of `pad` on the left and `pad`
    /// wherever the phases run past the row on the right.
    #[inline(always)]
    pub fn fill(&mut self, row: &[T], p: usize, pad: T, avx512: bool) {
        let (s, len) = (self.s, self.len);
        let rb = &mut self.row[..s * len];
        let n = row.len().min(s * len - p);
        rb[..p].fill(pad);
        rb[p..p + n].copy_from_slice(&row[..n]);
        rb[p + n..].fill(pad);
        match s {
            1 => {}
            2 => {
                let (even, odd) = self.data.split_at_mut(len);
                lanes::deinterleave2(avx512, rb, even, odd);
            }
            _ => {
                for q in 0..s {
                    for t in 0..len {
                        self.data[q * len + t] = rb[t * s + q];
                    }
                }
            }
        }
    }

    /// Inverse of [`fill`](Self::fill) for accumulators: write the in-bounds columns
    /// of the phases in `data` to `row`.
    #[inline(always)]
    pub fn scatter_to(&mut self, row: &mut [T], p: usize, avx512: bool) {
        let (s, len, w) = (self.s, self.len, row.len());
        match s {
            1 => {
                row.copy_from_slice(&self.data[p..p + w]);
                return;
            }
            2 => {
                let (even, odd) = self.data.split_at(len);
                lanes::interleave2(avx512, even, odd, &mut self.row);
            }
            _ => {
                for q in 0..s {
                    for t in 0..len {
                        self.row[t * s + q] = self.data[q * len + t];
                    }
                }
            }
        }
        row.copy_from_slice(&self.row[p..p + w]);
    }
}

/// Run `f(scratch, plane_index, out_plane)` for every plane of `out` (planes of
/// `plane` elements): in parallel over planes when running on oxinet's pool, else
/// sequentially on this thread. Returns the first `Some` any call returned.
pub(crate) fn for_each_plane<T, S, F, I>(out: &mut [T], plane: usize, init: I, f: F) -> Option<i64>
where
    T: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, usize, &mut [T]) -> Option<i64> + Sync + Send,
{
    use rayon::prelude::*;
    if plane == 0 {
        return None;
    }
    if rayon::current_thread_index().is_some() {
        out.par_chunks_mut(plane)
            .enumerate()
            .map_init(&init, |s, (i, o)| f(s, i, o))
            .find_any(|r| r.is_some())
            .flatten()
    } else {
        let mut s = init();
        let mut bad = None;
        for (i, o) in out.chunks_mut(plane).enumerate() {
            bad = bad.or(f(&mut s, i, o));
        }
        bad
    }
}

/// As [`for_each_plane`] with a second output (e.g. argmax indices) split alongside.
pub(crate) fn for_each_plane2<T, U, S, F, I>(
    out: &mut [T],
    out2: &mut [U],
    plane: usize,
    init: I,
    f: F,
) where
    T: Send,
    U: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, usize, &mut [T], &mut [U]) + Sync + Send,
{
    use rayon::prelude::*;
    if plane == 0 {
        return;
    }
    if rayon::current_thread_index().is_some() {
        out.par_chunks_mut(plane)
            .zip(out2.par_chunks_mut(plane))
            .enumerate()
            .for_each_init(&init, |s, (i, (o, o2))| f(s, i, o, o2));
    } else {
        let mut s = init();
        for (i, (o, o2)) in out.chunks_mut(plane).zip(out2.chunks_mut(plane)).enumerate() {
            f(&mut s, i, o, o2);
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use direct::TapDesc;

/// Placeholder where the AVX-512 direct kernels do not exist.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct TapDesc;

/// Load descriptors of the AVX-512 direct kernels (empty when they do not apply).
pub(crate) fn tap_descs(aw: &Axis) -> Vec<TapDesc> {
    #[cfg(target_arch = "x86_64")]
    {
        direct::tap_descs(aw)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = aw;
        Vec::new()
    }
}

/// Hint the CPU to fetch `[ptr, ptr + bytes)` into cache (no effect on other targets;
/// never faults, so the range may run past the end of an array).
#[inline(always)]
pub(crate) fn prefetch<T>(ptr: *const T, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let p = ptr as *const i8;
        let mut off = 0;
        while off < bytes {
            // SAFETY: prefetch instructions never fault.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.wrapping_add(off)) };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ptr, bytes);
    }
}

/// Shape of a `(P, H, W)` array as a string for messages.
pub(crate) fn shape_str(s: &[usize]) -> String {
    format!("{s:?}")
}

/// Error unless the pooled-side array `name` (output or its gradient) has the shape
/// `expected` that the input-side shape `input` pools to.
pub(crate) fn check_pooled(op: &str, name: &str, got: &[usize], input: &[usize], expected: [usize; 3]) -> KernelResult<()> {
    if got == expected {
        return Ok(());
    }
    Err(KernelError::shape(format!(
        "{op}: '{name}' has shape {} but input {} pools to {:?}",
        shape_str(got),
        shape_str(input),
        (expected[0], expected[1], expected[2])
    )))
}

/// `(P, H, W)` slice of a standard-layout 3-D view, or an error naming the argument.
pub(crate) fn contiguous<'a, T>(
    op: &str,
    name: &str,
    a: &'a ndarray::ArrayView3<'a, T>,
) -> KernelResult<&'a [T]> {
    a.as_slice().ok_or_else(|| {
        KernelError::shape(format!("{op}: '{name}' must be C-contiguous (shape {:?})", a.shape()))
    })
}

/// Mutable variant of [`contiguous`].
pub(crate) fn contiguous_mut<'a, 'b, T>(
    op: &str,
    name: &str,
    a: &'b mut ndarray::ArrayViewMut3<'a, T>,
) -> KernelResult<&'b mut [T]> {
    let shape = a.shape().to_vec();
    a.as_slice_mut().ok_or_else(|| {
        KernelError::shape(format!("{op}: '{name}' must be C-contiguous (shape {shape:?})"))
    })
}

/// Runs a job compiled for the widest SIMD level the CPU has. The job's `run` and
/// everything it calls must be `#[inline(always)]` so that it is compiled inside the
/// `#[target_feature]` wrappers below.
pub(crate) trait SimdJob {
    type Out;
    /// `avx512`: the job runs compiled for AVX-512 and may use its intrinsics.
    fn run(self, avx512: bool) -> Self::Out;
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
unsafe fn run_avx512<J: SimdJob>(job: J) -> J::Out {
    job.run(true)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<J: SimdJob>(job: J) -> J::Out {
    job.run(false)
}

#[inline]
pub(crate) fn dispatch<J: SimdJob>(job: J) -> J::Out {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::simd::{level, SimdLevel};
        match level() {
            // SAFETY: level() detected these features on the running CPU.
            SimdLevel::Avx512 => return unsafe { run_avx512(job) },
            SimdLevel::Avx2Fma => return unsafe { run_avx2(job) },
            _ => {}
        }
    }
    job.run(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_follows_pytorch() {
        assert_eq!(pooling_output_size(56, 2, 2, 0, 1, false), 28);
        assert_eq!(pooling_output_size(56, 3, 2, 1, 1, false), 28);
        assert_eq!(pooling_output_size(5, 2, 2, 0, 1, false), 2);
        assert_eq!(pooling_output_size(5, 2, 2, 0, 1, true), 3);
        // ceil mode window that would start in the right padding is dropped
        assert_eq!(pooling_output_size(6, 3, 3, 1, 1, true), 3);
        assert_eq!(pooling_output_size(5, 2, 2, 1, 1, true), 3); // 4 without the rule
        assert_eq!(pooling_output_size(1, 2, 1, 0, 1, false), 0);
    }

    #[test]
    fn phases_roundtrip() {
        for s in 1..4 {
            for p in 0..3 {
                for w in [1, 2, 3, 5, 8, 17, 33, 40] {
                    let ax = Axis { n_in: w, n_out: (w + 2 * p) / s + 1, k: 2 * p + 1, s, p, d: 1 };
                    let mut ph = Phases::<f64>::new(&ax);
                    let row: Vec<f64> = (0..w).map(|i| i as f64 + 1.0).collect();
                    ph.fill(&row, p, -1.0, false);
                    for q in 0..s {
                        for t in 0..ph.len {
                            let c = (t * s + q) as isize - p as isize;
                            let want = if c >= 0 && (c as usize) < w { row[c as usize] } else { -1.0 };
                            assert_eq!(ph.phase(q)[t], want, "s={s} p={p} w={w} q={q} t={t}");
                        }
                    }
                    if s == 1 {
                        let r = ph.row.clone();
                        ph.data.copy_from_slice(&r);
                    }
                    let mut back = vec![0.0; w];
                    ph.scatter_to(&mut back, p, false);
                    assert_eq!(back, row);
                }
            }
        }
    }
}
