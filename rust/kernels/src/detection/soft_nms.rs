//! Soft-NMS (Bodla et al., 2017): instead of dropping the boxes that overlap a
//! selected box, decay their scores, linearly (`s *= 1 - IoU` when IoU > threshold) or
//! with a Gaussian (`s *= exp(-IoU^2 / sigma)`), and drop boxes whose score falls below
//! `score_threshold`.

use super::{check_boxes, intersection};
use crate::error::{KernelError, KernelResult};
use crate::gemm::Scalar;
use ndarray::{ArrayView1, ArrayView2};

/// How overlapping boxes' scores decay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decay<T> {
    /// `s *= 1 - IoU` when `IoU > iou_threshold`.
    Linear { iou_threshold: T },
    /// `s *= exp(-IoU^2 / sigma)`.
    Gaussian { sigma: T },
}

/// Soft-NMS. Returns the selected indices in selection order (decreasing decayed
/// score, ties broken by the lower index) and each one's decayed score.
///
/// IoU is `inter / union`, taken as 0 when the boxes do not intersect (so degenerate
/// boxes decay nothing and are never decayed).
pub fn soft_nms<T: Scalar>(
    boxes: ArrayView2<'_, T>,
    scores: ArrayView1<'_, T>,
    decay: Decay<T>,
    score_threshold: T,
) -> KernelResult<(Vec<i64>, Vec<T>)> {
    let op = "soft_nms";
    check_boxes(op, "boxes", &boxes)?;
    let n = boxes.nrows();
    if scores.len() != n {
        return Err(KernelError::shape(format!(
            "{op}: 'scores' has {} elements but 'boxes' has {n} rows (shape {:?})",
            scores.len(),
            boxes.shape()
        )));
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(KernelError::param(format!("{op}: 'scores' contains NaN")));
    }
    match decay {
        Decay::Linear { iou_threshold: t } if t.is_nan() || t < T::zero() => {
            return Err(KernelError::param(format!(
                "{op}: 'iou_threshold' must be >= 0, got {t:?}"
            )))
        }
        Decay::Gaussian { sigma } if sigma.is_nan() || sigma <= T::zero() => {
            return Err(KernelError::param(format!("{op}: 'sigma' must be > 0, got {sigma:?}")))
        }
        _ => {}
    }
    if score_threshold.is_nan() {
        return Err(KernelError::param(format!("{op}: 'score_threshold' is NaN")));
    }
    let b: Vec<[T; 4]> = (0..n)
        .map(|i| [boxes[[i, 0]], boxes[[i, 1]], boxes[[i, 2]], boxes[[i, 3]]])
        .collect();
    let area: Vec<T> = b.iter().map(|r| (r[2] - r[0]) * (r[3] - r[1])).collect();
    // Live boxes in index order, so the first maximum found is the lowest index.
    let mut live: Vec<usize> = (0..n).filter(|&i| scores[i] >= score_threshold).collect();
    let mut s: Vec<T> = scores.to_vec();
    let mut keep = Vec::new();
    let mut kept_scores = Vec::new();
    while !live.is_empty() {
        let mut best = 0;
        for (p, &i) in live.iter().enumerate() {
            if s[i] > s[live[best]] {
                best = p;
            }
        }
        let m = live.remove(best);
        keep.push(m as i64);
        kept_scores.push(s[m]);
        live.retain(|&i| {
            let inter = intersection(b[m], b[i]);
            let iou = if inter > T::zero() {
                inter / (area[m] + area[i] - inter)
            } else {
                T::zero()
            };
            let w = match decay {
                Decay::Linear { iou_threshold } => {
                    if iou > iou_threshold {
                        T::one() - iou
                    } else {
                        T::one()
                    }
                }
                Decay::Gaussian { sigma } => (-(iou * iou) / sigma).exp(),
            };
            s[i] = s[i] * w;
            s[i] >= score_threshold
        });
    }
    Ok((keep, kept_scores))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn linear_and_gaussian_by_hand() {
        // Box 1 overlaps box 0 with IoU 0.5 (half of it), box 2 is apart.
        let b = array![[0.0, 0.0, 2.0, 1.0], [1.0, 0.0, 3.0, 1.0], [10.0, 10.0, 11.0, 11.0]];
        let iou: f64 = 1.0 / 3.0;
        let s = array![0.9, 0.8, 0.7];
        let (k, v) = soft_nms(b.view(), s.view(), Decay::Linear { iou_threshold: 0.3 }, 0.0).unwrap();
        assert_eq!(k, vec![0, 2, 1]);
        assert!((v[2] - 0.8 * (1.0 - iou)).abs() < 1e-12);
        let (k, v) = soft_nms(b.view(), s.view(), Decay::Gaussian { sigma: 0.5 }, 0.0).unwrap();
        assert_eq!(k, vec![0, 2, 1]);
        assert!((v[2] - 0.8 * (-iou * iou / 0.5f64).exp()).abs() < 1e-12);
        let (k, _) = soft_nms(b.view(), s.view(), Decay::Linear { iou_threshold: 0.3 }, 0.6).unwrap();
        assert_eq!(k, vec![0, 2]);
    }
}
