//! Detection kernels: pairwise IoU, non-maximum suppression (plain, class-aware, soft)
//! and RoI pooling (RoIPool, RoIAlign) with their backward passes.
//!
//! Boxes are `(N, 4)` arrays of corners `(x1, y1, x2, y2)`, as in torchvision. A box
//! with `x2 < x1` or `y2 < y1` keeps its (possibly negative) area, and intersections
//! are clamped at zero, exactly as torchvision computes them.

pub mod iou;
pub mod nms;
pub mod roi;
pub mod soft_nms;

use crate::error::{KernelError, KernelResult};
use crate::gemm::Scalar;
use ndarray::ArrayView2;

/// `max` written as a compare-and-select, so loops over it vectorise to one instruction.
#[inline(always)]
pub(crate) fn fmax<T: PartialOrd>(a: T, b: T) -> T {
    if a > b {
        a
    } else {
        b
    }
}

/// `min` written as a compare-and-select.
#[inline(always)]
pub(crate) fn fmin<T: PartialOrd>(a: T, b: T) -> T {
    if a < b {
        a
    } else {
        b
    }
}

/// Boxes as structure-of-arrays with precomputed areas (the layout the inner loops want).
#[derive(Debug, Clone, Default)]
pub(crate) struct BoxesSoa<T> {
    pub x1: Vec<T>,
    pub y1: Vec<T>,
    pub x2: Vec<T>,
    pub y2: Vec<T>,
    pub area: Vec<T>,
}

impl<T: Scalar> BoxesSoa<T> {
    pub fn with_capacity(n: usize) -> Self {
        BoxesSoa {
            x1: Vec::with_capacity(n),
            y1: Vec::with_capacity(n),
            x2: Vec::with_capacity(n),
            y2: Vec::with_capacity(n),
            area: Vec::with_capacity(n),
        }
    }

    /// The rows `order` of `boxes`, in that order.
    pub fn gather(boxes: &ArrayView2<'_, T>, order: impl Iterator<Item = usize>) -> Self {
        let mut s = BoxesSoa::with_capacity(boxes.nrows());
        for i in order {
            s.push(boxes[[i, 0]], boxes[[i, 1]], boxes[[i, 2]], boxes[[i, 3]]);
        }
        s
    }

    #[inline]
    pub fn push(&mut self, x1: T, y1: T, x2: T, y2: T) {
        self.x1.push(x1);
        self.y1.push(y1);
        self.x2.push(x2);
        self.y2.push(y2);
        self.area.push((x2 - x1) * (y2 - y1));
    }

    #[inline]
    pub fn push_from(&mut self, other: &BoxesSoa<T>, i: usize) {
        self.x1.push(other.x1[i]);
        self.y1.push(other.y1[i]);
        self.x2.push(other.x2[i]);
        self.y2.push(other.y2[i]);
        self.area.push(other.area[i]);
    }

    pub fn len(&self) -> usize {
        self.x1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.x1.is_empty()
    }
}

/// Intersection area of two boxes (clamped at zero in each dimension, as torchvision).
#[inline(always)]
pub(crate) fn intersection<T: Scalar>(a: [T; 4], b: [T; 4]) -> T {
    let zero = T::zero();
    let w = fmax(fmin(a[2], b[2]) - fmax(a[0], b[0]), zero);
    let h = fmax(fmin(a[3], b[3]) - fmax(a[1], b[1]), zero);
    w * h
}

/// Check that `boxes` is `(N, 4)`.
pub(crate) fn check_boxes<T>(op: &str, name: &str, boxes: &ArrayView2<'_, T>) -> KernelResult<()> {
    if boxes.ncols() != 4 {
        return Err(KernelError::shape(format!(
            "{op}: '{name}' must have shape (N, 4), got {:?}",
            boxes.shape()
        )));
    }
    Ok(())
}
