//! Convolution: 1-D, 2-D and 3-D, grouped and dilated, forward and backward.
//!
//! Every convolution is handled as a 3-D one on `(N, C, D, H, W)` arrays (a 2-D
//! convolution has `D == 1`, a 1-D one `D == H == 1`), weights shaped like PyTorch's
//! `(C_out, C_in / groups, kd, kh, kw)`. Padding may differ between the low and high
//! side of each axis (PyTorch's `padding='same'` with even kernels).
//!
//! Paths:
//! - general: im2col of one tile of output positions (sized to stay in L2) fed straight
//!   into the GEMM; the input gradient is a GEMM followed by col2im, the weight gradient
//!   a GEMM accumulated over images;
//! - pointwise (1x1, stride 1, no padding): the image itself is the column matrix;
//! - depthwise 2-D (`groups == C_in`): a direct kernel vectorised over the width;
//! - direct ("implicit GEMM") 2-D forward and weight gradient for few taps per output
//!   (`C_in * kh * kw <= 256`, first layers), no column matrix;
//! - Winograd F(4x4, 3x3) for 3x3 stride-1 2-D convolutions with enough channels
//!   (forward and input gradient);
//! - dense: planes smaller than the kernel (3x3 over 2x2 or 1x1) as one product over the
//!   batch with the weights unfolded into an image-to-image matrix.

mod dense;
mod depthwise;
mod direct;
mod general;
mod im2col;
mod winograd;

use crate::error::{KernelError, KernelResult};
use crate::gemm::Scalar;
use ndarray::{Array1, Array5, ArrayView1, ArrayView3, ArrayView5};

pub use general::{conv_forward, conv_input_grad, conv_weight_grad, conv_weight_grad_into, conv_weight_grad_shape};

/// Whether every value is finite. The dense and direct input-gradient paths skip the
/// products with padding that im2col forms, so an infinite or NaN weight (forward, input
/// gradient) or output gradient (weight gradient) must take the im2col path, where
/// `0 * inf` gives NaN as in NumPy; Winograd and depthwise check their transformed values.
#[inline(always)]
fn all_finite_body<T: Scalar>(v: &[T]) -> bool {
    // x * 0 is 0 for finite x and NaN for NaN or infinity; 16 independent sums and no
    // early exit, so the loop vectorises
    let mut acc = [T::zero(); 16];
    let chunks = v.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = *a + x * T::zero();
        }
    }
    rest.iter().all(|x| x.is_finite()) && acc.iter().all(|&a| a == T::zero())
}
crate::multiversion!(pub(crate) fn all_finite<T: Scalar>(v: &[T]) -> bool => all_finite_body);

/// Whether a convolution of `x (N, C_in, D, H, W)` with `w (C_out, C_in / groups, kd, kh,
/// kw)` runs through the dense path (forward and both gradients alike); false for
/// shapes the convolution would reject.
pub fn uses_dense_path(x: [usize; 5], w: [usize; 5], p: ConvParams) -> bool {
    Geom::new("conv", x, w, p).is_ok_and(|g| dense::applies(&g))
}
pub use im2col::{col2im, im2col};

/// Stride, dilation, padding (low and high side per axis, order D, H, W) and groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvParams {
    pub stride: [usize; 3],
    pub dilation: [usize; 3],
    pub pad_lo: [usize; 3],
    pub pad_hi: [usize; 3],
    pub groups: usize,
}

impl ConvParams {
    /// 2-D parameters (the depth axis has size one): per-axis (H, W) stride, dilation
    /// and low/high padding.
    pub fn planar(stride: [usize; 2], dilation: [usize; 2], lo: [usize; 2], hi: [usize; 2], groups: usize) -> Self {
        ConvParams {
            stride: [1, stride[0], stride[1]],
            dilation: [1, dilation[0], dilation[1]],
            pad_lo: [0, lo[0], lo[1]],
            pad_hi: [0, hi[0], hi[1]],
            groups,
        }
    }

    /// Stride 1, no padding, no dilation, one group.
    pub fn unit() -> Self {
        ConvParams {
            stride: [1; 3],
            dilation: [1; 3],
            pad_lo: [0; 3],
            pad_hi: [0; 3],
            groups: 1,
        }
    }

    fn check(&self, op: &str) -> KernelResult<()> {
        if self.stride.contains(&0) {
            return Err(KernelError::param(format!(
                "{op}: 'stride' must be >= 1, got {:?}",
                self.stride
            )));
        }
        if self.dilation.contains(&0) {
            return Err(KernelError::param(format!(
                "{op}: 'dilation' must be >= 1, got {:?}",
                self.dilation
            )));
        }
        if self.groups == 0 {
            return Err(KernelError::param(format!("{op}: 'groups' must be >= 1, got 0")));
        }
        Ok(())
    }
}

/// Output length along one axis, or `None` when the dilated kernel is longer than the
/// padded input.
pub fn output_len(input: usize, kernel: usize, stride: usize, dilation: usize, lo: usize, hi: usize) -> Option<usize> {
    let padded = input + lo + hi;
    let span = dilation * (kernel.max(1) - 1) + 1;
    if kernel == 0 || stride == 0 || padded < span {
        None
    } else {
        Some((padded - span) / stride + 1)
    }
}

/// Everything a convolution needs to know about its shapes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geom {
    pub n: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub groups: usize,
    /// input channels per group
    pub cg: usize,
    /// output channels per group
    pub og: usize,
    pub input: [usize; 3],
    pub kernel: [usize; 3],
    pub output: [usize; 3],
    pub p: ConvParams,
}

impl Geom {
    /// Checks channel/group/kernel consistency; the output size is computed from the input.
    pub fn new(op: &str, x: [usize; 5], w: [usize; 5], p: ConvParams) -> KernelResult<Geom> {
        p.check(op)?;
        let [n, c_in, id, ih, iw] = x;
        let [c_out, cg, kd, kh, kw] = w;
        let groups = p.groups;
        if c_in % groups != 0 || c_out % groups != 0 {
            return Err(KernelError::param(format!(
                "{op}: 'groups'={groups} must divide both the input channels ({c_in}) and the output channels ({c_out})"
            )));
        }
        if cg * groups != c_in {
            return Err(KernelError::shape(format!(
                "{op}: 'weight' has shape {w:?}, expected {} input channels per group for an input of shape {x:?} with groups={groups}",
                c_in / groups
            )));
        }
        let kernel = [kd, kh, kw];
        let input = [id, ih, iw];
        let mut output = [0; 3];
        for a in 0..3 {
            output[a] = output_len(input[a], kernel[a], p.stride[a], p.dilation[a], p.pad_lo[a], p.pad_hi[a])
                .ok_or_else(|| {
                    KernelError::shape(format!(
                        "{op}: kernel {kernel:?} (dilation {:?}) is larger than the padded input {:?} (input {input:?}, padding {:?}/{:?})",
                        p.dilation,
                        [0, 1, 2].map(|i| input[i] + p.pad_lo[i] + p.pad_hi[i]),
                        p.pad_lo,
                        p.pad_hi
                    ))
                })?;
        }
        Ok(Geom {
            n,
            c_in,
            c_out,
            groups,
            cg,
            og: c_out / groups,
            input,
            kernel,
            output,
            p,
        })
    }

    /// Like [`Geom::new`] but with a given output size, which may be smaller than the
    /// formula's (trailing output positions that are absent contribute nothing; used
    /// by transposed convolutions with `output_padding`).
    pub fn with_output(op: &str, x: [usize; 5], w: [usize; 5], out: [usize; 3], p: ConvParams) -> KernelResult<Geom> {
        let mut g = Geom::new(op, x, w, p)?;
        for a in 0..3 {
            if out[a] > g.output[a] {
                return Err(KernelError::shape(format!(
                    "{op}: output spatial size {out:?} is larger than the input {:?} produces ({:?})",
                    g.input, g.output
                )));
            }
        }
        g.output = out;
        Ok(g)
    }

    pub fn kvol(&self) -> usize {
        self.kernel.iter().product()
    }
    /// Rows of a group's column matrix: cg * kd * kh * kw.
    pub fn k_rows(&self) -> usize {
        self.cg * self.kvol()
    }
    /// Output positions per image.
    pub fn l(&self) -> usize {
        self.output.iter().product()
    }
    pub fn in_plane(&self) -> usize {
        self.input.iter().product()
    }
    /// 1x1x1 kernel, stride 1, no padding: the image is its own column matrix.
    pub fn pointwise(&self) -> bool {
        self.kernel == [1, 1, 1]
            && self.p.stride == [1, 1, 1]
            && self.p.pad_lo == [0; 3]
            && self.p.pad_hi == [0; 3]
            && self.output == self.input
    }
    /// Depthwise 2-D: one input channel per group, no depth axis.
    pub fn depthwise(&self) -> bool {
        self.cg == 1
            && self.groups == self.c_in
            && self.groups > 1
            && self.kernel[0] == 1
            && self.input[0] == 1
            && self.output[0] == 1
            && self.p.pad_lo[0] == 0
            && self.p.pad_hi[0] == 0
    }
    /// Multiply-adds of the forward pass.
    pub fn macs(&self) -> usize {
        self.n
            .saturating_mul(self.c_out)
            .saturating_mul(self.l())
            .saturating_mul(self.k_rows())
    }
}

/// A zero-filled array for a kernel's output, on huge pages when large
/// (see [`crate::memory`]).
pub(crate) fn zeros5<T: Scalar>(shape: [usize; 5]) -> Array5<T> {
    let n: usize = shape.iter().product();
    Array5::from_shape_vec(shape, crate::memory::zeroed_vec(n)).expect("shape matches length")
}

fn shape5<T>(a: &ArrayView5<'_, T>) -> [usize; 5] {
    let s = a.shape();
    [s[0], s[1], s[2], s[3], s[4]]
}

/// Checks the bias length against the output channels.
fn check_bias<T>(op: &str, b: Option<&ArrayView1<'_, T>>, c_out: usize) -> KernelResult<()> {
    if let Some(b) = b {
        if b.len() != c_out {
            return Err(KernelError::shape(format!(
                "{op}: 'bias' has shape ({},) but the weight has {c_out} output channels",
                b.len()
            )));
        }
    }
    Ok(())
}

/// Bias gradient: `db[c] = sum over n and positions of dy[n, c, ...]`, for dy viewed as
/// `(N, C, positions)`. Each channel is summed in a fixed order.
pub fn conv_bias_grad<T: Scalar>(dy: ArrayView3<'_, T>) -> Array1<T> {
    let (n, c, _) = dy.dim();
    let mut db = Array1::zeros(c);
    crate::parallel::run(dy.len(), || {
        use rayon::prelude::*;
        db.as_slice_mut()
            .unwrap()
            .par_iter_mut()
            .enumerate()
            .for_each(|(ch, out)| {
                let mut total = T::zero();
                for i in 0..n {
                    let row = dy.slice(ndarray::s![i, ch, ..]);
                    total = total + sum_lanes(row);
                }
                *out = total;
            });
    });
    db
}

/// Sum with 8 independent partial sums (vectorisable, fixed order).
fn sum_lanes<T: Scalar>(v: ArrayView1<'_, T>) -> T {
    let mut acc = [T::zero(); 8];
    if let Some(s) = v.as_slice() {
        let chunks = s.chunks_exact(8);
        let rest = chunks.remainder();
        for c in chunks {
            for i in 0..8 {
                acc[i] = acc[i] + c[i];
            }
        }
        for (i, &x) in rest.iter().enumerate() {
            acc[i] = acc[i] + x;
        }
    } else {
        for (i, &x) in v.iter().enumerate() {
            acc[i % 8] = acc[i % 8] + x;
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Convenience for 3-D (N, C, L) views of 5-D gradients.
pub fn flatten_spatial<'a, T>(a: &'a Array5<T>) -> ArrayView3<'a, T> {
    let s = a.shape();
    a.view()
        .into_shape_with_order((s[0], s[1], s[2] * s[3] * s[4]))
        .expect("contiguous")
}

#[cfg(test)]
mod tests;
