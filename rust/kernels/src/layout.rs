//! Memory-layout changes that NumPy does slowly: swapping the two leading axes of an
//! `(a, b, k)` array, i.e. `(N, C, H*W) <-> (C, N, H*W)` for batched 1x1 convolutions.
//! A plain parallel copy, so results never depend on the thread count.

use crate::error::{KernelError, KernelResult};
use crate::parallel;
use rayon::prelude::*;

/// Rows of the output copied per task: their source pieces share cache lines, and at most
/// 8 write streams (output rows are often a multiple of 4 KiB apart, so they map to the
/// same L1 set, which has 12 ways).
const ROWS: usize = 8;

/// Copies output rows `b0..b0 + rows` (`dst` holds exactly those rows), `K` values per
/// piece (`K == 0`: `k` values, not known at compile time).
#[inline(always)]
fn block_impl<T: Copy, const K: usize>(dst: &mut [T], src: &[T], a: usize, b: usize, k: usize, b0: usize) {
    let rows = dst.len() / (a * k);
    // every read and write below stays inside these two ranges
    let s_lo = b0 * k;
    let s_hi = ((a - 1) * b + b0 + rows) * k;
    assert!(s_hi <= src.len() && s_lo <= s_hi && rows * a * k == dst.len());
    let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
    for i in 0..a {
        for r in 0..rows {
            // SAFETY: source piece (i, b0 + r) and destination piece (r, i) lie inside the
            // checked ranges; the two slices do not overlap (one is borrowed mutably).
            unsafe {
                let s = sp.add((i * b + b0 + r) * k);
                let d = dp.add((r * a + i) * k);
                if K > 0 {
                    std::ptr::copy_nonoverlapping(s, d, K);
                } else {
                    std::ptr::copy_nonoverlapping(s, d, k);
                }
            }
        }
    }
}

#[inline(always)]
fn block_any<T: Copy>(dst: &mut [T], src: &[T], a: usize, b: usize, k: usize, b0: usize) {
    match k {
        1 => block_impl::<T, 1>(dst, src, a, b, k, b0),
        2 => block_impl::<T, 2>(dst, src, a, b, k, b0),
        4 => block_impl::<T, 4>(dst, src, a, b, k, b0),
        8 => block_impl::<T, 8>(dst, src, a, b, k, b0),
        16 => block_impl::<T, 16>(dst, src, a, b, k, b0),
        32 => block_impl::<T, 32>(dst, src, a, b, k, b0),
        64 => block_impl::<T, 64>(dst, src, a, b, k, b0),
        _ => block_impl::<T, 0>(dst, src, a, b, k, b0),
    }
}

/// [`block_any`] compiled for the widest vector moves the CPU has.
fn block<T: Copy>(dst: &mut [T], src: &[T], a: usize, b: usize, k: usize, b0: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512vl,avx2")]
        unsafe fn v4<T: Copy>(dst: &mut [T], src: &[T], a: usize, b: usize, k: usize, b0: usize) {
            block_any(dst, src, a, b, k, b0)
        }
        #[target_feature(enable = "avx2")]
        unsafe fn v3<T: Copy>(dst: &mut [T], src: &[T], a: usize, b: usize, k: usize, b0: usize) {
            block_any(dst, src, a, b, k, b0)
        }
        match crate::simd::level() {
            // SAFETY: the CPU supports the features these versions were compiled for.
            crate::simd::SimdLevel::Avx512 => return unsafe { v4(dst, src, a, b, k, b0) },
            crate::simd::SimdLevel::Avx2Fma => return unsafe { v3(dst, src, a, b, k, b0) },
            _ => {}
        }
    }
    block_any(dst, src, a, b, k, b0)
}

/// `dst[j][i][:] = src[i][j][:]` for `src` viewed as `(a, b, k)` and `dst` as `(b, a, k)`
/// (both C-contiguous).
pub fn swap_leading_axes<T: Copy + Send + Sync>(src: &[T], shape: (usize, usize, usize), dst: &mut [T]) -> KernelResult<()> {
    let (a, b, k) = shape;
    let n = a.checked_mul(b).and_then(|v| v.checked_mul(k));
    if n != Some(src.len()) {
        return Err(KernelError::shape(format!(
            "swap_leading_axes: 'src' has {} elements, which does not match the shape {shape:?}",
            src.len()
        )));
    }
    if dst.len() != src.len() {
        return Err(KernelError::shape(format!(
            "swap_leading_axes: 'dst' has {} elements, expected {} (shape {shape:?})",
            dst.len(),
            src.len()
        )));
    }
    if src.is_empty() {
        return Ok(());
    }
    let chunk = ROWS * a * k;
    parallel::run(src.len(), || {
        dst.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(t, d)| block(d, src, a, b, k, t * ROWS));
    });
    Ok(())
}

/// Geometry of a batched im2col: input `(c, n, h, w)` (the batch behind the channels),
/// kernel `kh x kw`, stride, dilation, symmetric zero padding, output plane `oh x ow`.
#[derive(Debug, Clone, Copy)]
pub struct BatchCols {
    pub c: usize,
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub padding: [usize; 2],
}

impl BatchCols {
    /// Output plane size, or None when the dilated kernel does not fit the padded input.
    pub fn out(&self) -> Option<(usize, usize)> {
        let o = |i: usize, k: usize, s: usize, d: usize, p: usize| {
            let span = d * (k - 1) + 1;
            (k >= 1 && s >= 1 && d >= 1 && i + 2 * p >= span).then(|| (i + 2 * p - span) / s + 1)
        };
        let [kh, kw] = self.kernel;
        Some((
            o(self.h, kh, self.stride[0], self.dilation[0], self.padding[0])?,
            o(self.w, kw, self.stride[1], self.dilation[1], self.padding[1])?,
        ))
    }

    /// Per kernel tap, per output position: the input offset in the plane, or -1 (padding).
    fn maps(&self, oh: usize, ow: usize) -> Vec<Vec<isize>> {
        let [kh, kw] = self.kernel;
        let mut maps = Vec::with_capacity(kh * kw);
        for ky in 0..kh {
            for kx in 0..kw {
                let mut m = Vec::with_capacity(oh * ow);
                for y in 0..oh {
                    for x in 0..ow {
                        let iy = (y * self.stride[0] + ky * self.dilation[0]) as isize - self.padding[0] as isize;
                        let ix = (x * self.stride[1] + kx * self.dilation[1]) as isize - self.padding[1] as isize;
                        let inside = iy >= 0 && ix >= 0 && (iy as usize) < self.h && (ix as usize) < self.w;
                        m.push(if inside { iy * self.w as isize + ix } else { -1 });
                    }
                }
                maps.push(m);
            }
        }
        maps
    }

    fn check<T>(&self, op: &str, img: &[T], cols: &[T]) -> KernelResult<(usize, usize)> {
        let (oh, ow) = self.out().ok_or_else(|| {
            KernelError::shape(format!("{op}: the kernel does not fit the padded input ({self:?})"))
        })?;
        let want_img = [self.c, self.n, self.h, self.w].iter().try_fold(1usize, |a, &v| a.checked_mul(v));
        if want_img != Some(img.len()) {
            return Err(KernelError::shape(format!(
                "{op}: the image has {} elements, expected c*n*h*w for {self:?}",
                img.len()
            )));
        }
        let want_cols = [self.c, self.kernel[0], self.kernel[1], self.n, oh, ow]
            .iter()
            .try_fold(1usize, |a, &v| a.checked_mul(v));
        if want_cols != Some(cols.len()) {
            return Err(KernelError::shape(format!(
                "{op}: 'cols' has {} elements, expected (c*kh*kw) x (n*{oh}*{ow}) for {self:?}",
                cols.len()
            )));
        }
        Ok((oh, ow))
    }
}

/// `cols[(ci*kh + ky)*kw + kx][img*L + pos]` = the input value under tap `(ky, kx)` of output
/// position `pos` of image `img` (0 in the padding), for `img (c, n, h, w)`: PyTorch's
/// unfold of the whole batch with the images side by side along the columns.
pub fn im2col_batched<T: Copy + Send + Sync + num_traits::Zero>(img: &[T], g: BatchCols, cols: &mut [T]) -> KernelResult<()> {
    let (oh, ow) = g.check("im2col_batched", img, cols)?;
    let (l, plane, kk) = (oh * ow, g.h * g.w, g.kernel[0] * g.kernel[1]);
    let row = g.n * l;
    if cols.is_empty() {
        return Ok(());
    }
    let maps = g.maps(oh, ow);
    parallel::run(cols.len(), || {
        cols.par_chunks_mut(row).enumerate().for_each(|(r, out)| {
            let (ci, t) = (r / kk, r % kk);
            let m = &maps[t];
            for (ni, o) in out.chunks_exact_mut(l).enumerate() {
                let src = &img[(ci * g.n + ni) * plane..(ci * g.n + ni + 1) * plane];
                for (d, &off) in o.iter_mut().zip(m) {
                    *d = if off >= 0 { src[off as usize] } else { T::zero() };
                }
            }
        });
    });
    Ok(())
}

/// The adjoint of [`im2col_batched`]: `img` (c, n, h, w) receives the sum of every column
/// entry that reads it, taps added in order (ky, kx) per channel; parallel over channels.
pub fn col2im_batched<T: Copy + Send + Sync + num_traits::Zero + std::ops::Add<Output = T>>(
    cols: &[T],
    g: BatchCols,
    img: &mut [T],
) -> KernelResult<()> {
    let (oh, ow) = g.check("col2im_batched", img, cols)?;
    let (l, plane, kk) = (oh * ow, g.h * g.w, g.kernel[0] * g.kernel[1]);
    let row = g.n * l;
    if img.is_empty() {
        return Ok(());
    }
    let maps = g.maps(oh, ow);
    parallel::run(cols.len().max(img.len()), || {
        img.par_chunks_mut(g.n * plane).enumerate().for_each(|(ci, out)| {
            out.fill(T::zero());
            for (t, m) in maps.iter().enumerate() {
                let src = &cols[(ci * kk + t) * row..(ci * kk + t + 1) * row];
                for (ni, s) in src.chunks_exact(l).enumerate() {
                    let dst = &mut out[ni * plane..(ni + 1) * plane];
                    for (&v, &off) in s.iter().zip(m) {
                        if off >= 0 {
                            dst[off as usize] = dst[off as usize] + v;
                        }
                    }
                }
            }
        });
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_index_arithmetic_for_many_shapes() {
        for &(a, b, k) in &[(1, 1, 1), (3, 5, 4), (64, 17, 16), (2, 40, 3), (7, 33, 64), (5, 3, 2), (4, 20, 8), (9, 2, 1)] {
            let src: Vec<f32> = (0..a * b * k).map(|v| v as f32).collect();
            let mut dst = vec![0f32; src.len()];
            swap_leading_axes(&src, (a, b, k), &mut dst).unwrap();
            for i in 0..a {
                for j in 0..b {
                    for q in 0..k {
                        assert_eq!(dst[(j * a + i) * k + q], src[(i * b + j) * k + q], "{a} {b} {k}");
                    }
                }
            }
        }
    }

    fn naive_cols(img: &[f64], g: BatchCols) -> Vec<f64> {
        let (oh, ow) = g.out().unwrap();
        let [kh, kw] = g.kernel;
        let mut cols = Vec::new();
        for ci in 0..g.c {
            for ky in 0..kh {
                for kx in 0..kw {
                    for ni in 0..g.n {
                        for y in 0..oh {
                            for x in 0..ow {
                                let iy = (y * g.stride[0] + ky * g.dilation[0]) as isize - g.padding[0] as isize;
                                let ix = (x * g.stride[1] + kx * g.dilation[1]) as isize - g.padding[1] as isize;
                                let ok = iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w;
                                cols.push(if ok { img[((ci * g.n + ni) * g.h + iy as usize) * g.w + ix as usize] } else { 0.0 });
                            }
                        }
                    }
                }
            }
        }
        cols
    }

    #[test]
    fn batched_im2col_matches_naive_loops_and_col2im_is_its_adjoint() {
        let geoms = [
            BatchCols { c: 3, n: 4, h: 1, w: 1, kernel: [3, 3], stride: [1, 1], dilation: [1, 1], padding: [1, 1] },
            BatchCols { c: 2, n: 3, h: 4, w: 5, kernel: [3, 2], stride: [2, 1], dilation: [1, 2], padding: [1, 2] },
            BatchCols { c: 5, n: 2, h: 7, w: 7, kernel: [5, 5], stride: [3, 3], dilation: [1, 1], padding: [0, 0] },
            BatchCols { c: 1, n: 5, h: 2, w: 2, kernel: [1, 1], stride: [2, 2], dilation: [1, 1], padding: [0, 0] },
        ];
        for g in geoms {
            let img: Vec<f64> = (0..g.c * g.n * g.h * g.w).map(|v| (v as f64 * 0.37).sin()).collect();
            let want = naive_cols(&img, g);
            let mut cols = vec![f64::NAN; want.len()];
            im2col_batched(&img, g, &mut cols).unwrap();
            assert_eq!(cols, want, "{g:?}");
            // <cols(img), z> == <img, col2im(z)>
            let z: Vec<f64> = (0..cols.len()).map(|v| (v as f64 * 0.11).cos()).collect();
            let mut back = vec![f64::NAN; img.len()];
            col2im_batched(&z, g, &mut back).unwrap();
            let lhs: f64 = cols.iter().zip(&z).map(|(a, b)| a * b).sum();
            let rhs: f64 = img.iter().zip(&back).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-10 * (1.0 + lhs.abs()), "{g:?}");
        }
        let g = BatchCols { c: 2, n: 2, h: 3, w: 3, kernel: [3, 3], stride: [1, 1], dilation: [1, 1], padding: [1, 1] };
        let mut cols = vec![0.0; 2 * 9 * 2 * 9 - 1];
        assert!(im2col_batched(&[0.0; 36], g, &mut cols).unwrap_err().to_string().contains("'cols'"));
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut dst = vec![0f64; 6];
        assert!(swap_leading_axes(&[0f64; 5], (2, 3, 1), &mut dst).unwrap_err().to_string().contains("'src'"));
        assert!(swap_leading_axes(&[0f64; 6], (2, 3, 1), &mut dst[..4]).unwrap_err().to_string().contains("'dst'"));
    }
}
