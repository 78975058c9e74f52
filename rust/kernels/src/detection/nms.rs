//! Greedy non-maximum suppression, plain and class-aware.
//!
//! Boxes are ranked by decreasing score, ties broken by the lower index (a stable,
//! deterministic order). Each candidate is compared only with the boxes already kept
//! and dropped at the first one it overlaps with IoU > `iou_threshold` (torchvision's
//! rule), tested as `inter > thr * union` without a division. On large inputs the kept
//! boxes are indexed in a uniform grid, so a candidate looks only at the kept boxes in
//! the cells it covers.
//!
//! A box with zero or negative width or height, or a non-finite coordinate, has no
//! positive intersection with anything (or an undefined IoU), so it never suppresses
//! and is never suppressed: it is kept if its score passes, as in torchvision.

use super::{check_boxes, fmax, fmin, BoxesSoa};
use crate::error::{KernelError, KernelResult};
use crate::gemm::Scalar;
use crate::parallel;
use crate::simd::{level, SimdLevel};
use ndarray::{ArrayView1, ArrayView2};
use rayon::prelude::*;

/// Options shared by [`nms`] and [`batched_nms`].
#[derive(Debug, Clone, Copy)]
pub struct NmsParams<T> {
    /// A box is suppressed when its IoU with a kept box is strictly greater than this.
    pub iou_threshold: T,
    /// When set, only boxes with `score > score_threshold` take part.
    pub score_threshold: Option<T>,
    /// When set, at most this many indices are returned (the highest-ranked ones).
    pub max_output: Option<usize>,
}

/// Inputs below this size use a plain scan over the kept boxes instead of a grid.
const GRID_MIN: usize = 768;
/// A box covering more grid cells than this is checked by a linear scan instead.
const MAX_CELLS_PER_BOX: i64 = 16;

fn validate<T: Scalar>(
    op: &str,
    boxes: &ArrayView2<'_, T>,
    scores: &ArrayView1<'_, T>,
    p: &NmsParams<T>,
) -> KernelResult<()> {
    check_boxes(op, "boxes", boxes)?;
    if scores.len() != boxes.nrows() {
        return Err(KernelError::shape(format!(
            "{op}: 'scores' has {} elements but 'boxes' has {} rows (shape {:?})",
            scores.len(),
            boxes.nrows(),
            boxes.shape()
        )));
    }
    if p.iou_threshold.is_nan() || p.iou_threshold < T::zero() {
        return Err(KernelError::param(format!(
            "{op}: 'iou_threshold' must be >= 0, got {:?}",
            p.iou_threshold
        )));
    }
    if p.score_threshold.is_some_and(|s| s.is_nan()) {
        return Err(KernelError::param(format!("{op}: 'score_threshold' is NaN")));
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(KernelError::param(format!("{op}: 'scores' contains NaN")));
    }
    Ok(())
}

/// Indices of the boxes that pass the score filter, by decreasing score, ties by index.
fn rank<T: Scalar>(scores: &ArrayView1<'_, T>, score_threshold: Option<T>) -> Vec<usize> {
    // Sort (key, index) pairs of integers: the key maps the score (NaN excluded by the
    // caller, -0.0 folded into +0.0) to a u64 whose ascending order is the scores'
    // descending order, so equal scores fall back to the lower index.
    let key = |v: T| -> u64 {
        let bits = (v.to_f64().unwrap_or(0.0) + 0.0).to_bits();
        let ordered = if bits >> 63 == 1 { !bits } else { bits | (1 << 63) };
        !ordered
    };
    let mut pairs: Vec<(u64, usize)> = scores
        .iter()
        .enumerate()
        .filter(|(_, &v)| score_threshold.is_none_or(|t| v > t))
        .map(|(i, &v)| (key(v), i))
        .collect();
    pairs.sort_unstable();
    pairs.into_iter().map(|(_, i)| i).collect()
}

#[inline(always)]
fn active<T: Scalar>(b: &BoxesSoa<T>, i: usize) -> bool {
    b.x2[i] > b.x1[i] && b.y2[i] > b.y1[i] && b.area[i].is_finite()
}

/// True when box `a` (area `aa`) overlaps a box of `k[range]` with IoU > thr.
#[inline(always)]
fn any_overlap_body<T: Scalar>(k: &BoxesSoa<T>, a: [T; 4], aa: T, thr: T) -> bool {
    const CHUNK: usize = 32;
    let zero = T::zero();
    let n = k.len();
    let mut start = 0;
    while start < n {
        let end = (start + CHUNK).min(n);
        let (x1, y1, x2, y2, ar) = (
            &k.x1[start..end],
            &k.y1[start..end],
            &k.x2[start..end],
            &k.y2[start..end],
            &k.area[start..end],
        );
        let mut hit = false;
        for j in 0..x1.len() {
            let w = fmax(fmin(a[2], x2[j]) - fmax(a[0], x1[j]), zero);
            let h = fmax(fmin(a[3], y2[j]) - fmax(a[1], y1[j]), zero);
            let inter = w * h;
            hit |= (inter > zero) & (inter > thr * (aa + ar[j] - inter));
        }
        if hit {
            return true;
        }
        start = end;
    }
    false
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw")]
unsafe fn any_overlap_avx512<T: Scalar>(k: &BoxesSoa<T>, a: [T; 4], aa: T, thr: T) -> bool {
    any_overlap_body(k, a, aa, thr)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn any_overlap_avx2<T: Scalar>(k: &BoxesSoa<T>, a: [T; 4], aa: T, thr: T) -> bool {
    any_overlap_body(k, a, aa, thr)
}

#[inline]
fn any_overlap<T: Scalar>(simd: SimdLevel, k: &BoxesSoa<T>, a: [T; 4], aa: T, thr: T) -> bool {
    if k.is_empty() {
        return false;
    }
    match simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the level was detected on this CPU.
        SimdLevel::Avx512 => unsafe { any_overlap_avx512(k, a, aa, thr) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        SimdLevel::Avx2Fma => unsafe { any_overlap_avx2(k, a, aa, thr) },
        _ => any_overlap_body(k, a, aa, thr),
    }
}

#[inline(always)]
fn get<T: Copy>(b: &BoxesSoa<T>, i: usize) -> [T; 4] {
    [b.x1[i], b.y1[i], b.x2[i], b.y2[i]]
}

/// Greedy suppression over boxes already in rank order: the positions kept, ascending,
/// at most `limit` of them.
pub(crate) fn greedy<T: Scalar>(b: &BoxesSoa<T>, thr: T, limit: usize) -> Vec<usize> {
    let n = b.len();
    let simd = level();
    let mut keep = Vec::new();
    if limit == 0 || n == 0 {
        return keep;
    }
    if thr >= T::one() {
        // IoU never exceeds 1 (even rounded: fl(a + b) - inter >= inter when a, b >= inter),
        // so nothing is suppressed.
        return (0..n.min(limit)).collect();
    }
    if n < GRID_MIN {
        let mut kept = BoxesSoa::with_capacity(n.min(limit));
        for i in 0..n {
            if !active(b, i) {
                keep.push(i);
            } else if !any_overlap(simd, &kept, get(b, i), b.area[i], thr) {
                keep.push(i);
                kept.push_from(b, i);
            }
            if keep.len() == limit {
                break;
            }
        }
        return keep;
    }
    Grid::new(b).run(b, thr, limit, simd)
}

/// A uniform grid over the active boxes' extent; cells hold the kept boxes covering them.
struct Grid<T> {
    x0: f64,
    y0: f64,
    inv_cw: f64,
    inv_ch: f64,
    gx: i64,
    gy: i64,
    cells: Vec<BoxesSoa<T>>,
}

impl<T: Scalar> Grid<T> {
    fn new(b: &BoxesSoa<T>) -> Self {
        let (mut x0, mut y0, mut x1, mut y1) = (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
        let (mut sw, mut sh, mut cnt) = (0.0f64, 0.0f64, 0usize);
        for i in 0..b.len() {
            if active(b, i) {
                let (a, c, d, e) = (
                    b.x1[i].to_f64().unwrap_or(0.0),
                    b.y1[i].to_f64().unwrap_or(0.0),
                    b.x2[i].to_f64().unwrap_or(0.0),
                    b.y2[i].to_f64().unwrap_or(0.0),
                );
                x0 = x0.min(a);
                y0 = y0.min(c);
                x1 = x1.max(d);
                y1 = y1.max(e);
                sw += d - a;
                sh += e - c;
                cnt += 1;
            }
        }
        if cnt == 0 {
            return Grid {
                x0: 0.0,
                y0: 0.0,
                inv_cw: 0.0,
                inv_ch: 0.0,
                gx: 1,
                gy: 1,
                cells: vec![BoxesSoa::default()],
            };
        }
        let (ew, eh) = ((x1 - x0).max(f64::MIN_POSITIVE), (y1 - y0).max(f64::MIN_POSITIVE));
        // Cells twice the size of an average box (most boxes cover 1 to 4 cells, and the
        // scan of a cell is vectorised), at most ~n/4 cells in all (few allocations).
        let (mut cw, mut ch) = (
            (2.0 * sw / cnt as f64).max(ew / 4096.0),
            (2.0 * sh / cnt as f64).max(eh / 4096.0),
        );
        let max_cells = (cnt as f64 / 4.0).max(16.0);
        let cells = (ew / cw).ceil() * (eh / ch).ceil();
        if cells > max_cells {
            let s = (cells / max_cells).sqrt();
            cw *= s;
            ch *= s;
        }
        let gx = ((ew / cw).ceil() as i64).clamp(1, 1 << 16);
        let gy = ((eh / ch).ceil() as i64).clamp(1, 1 << 16);
        let (inv_cw, inv_ch) = (gx as f64 / ew, gy as f64 / eh);
        Grid {
            x0,
            y0,
            inv_cw,
            inv_ch,
            gx,
            gy,
            cells: vec![BoxesSoa::default(); (gx * gy) as usize],
        }
    }

    #[inline]
    fn span(&self, b: &BoxesSoa<T>, i: usize) -> (i64, i64, i64, i64) {
        let cx = |x: T| (((x.to_f64().unwrap_or(0.0) - self.x0) * self.inv_cw).floor() as i64).clamp(0, self.gx - 1);
        let cy = |y: T| (((y.to_f64().unwrap_or(0.0) - self.y0) * self.inv_ch).floor() as i64).clamp(0, self.gy - 1);
        (cx(b.x1[i]), cy(b.y1[i]), cx(b.x2[i]), cy(b.y2[i]))
    }

    fn run(mut self, b: &BoxesSoa<T>, thr: T, limit: usize, simd: SimdLevel) -> Vec<usize> {
        let n = b.len();
        let mut keep = Vec::new();
        let mut all_kept = BoxesSoa::with_capacity(1024);
        let mut big_kept = BoxesSoa::with_capacity(16);
        for i in 0..n {
            if !active(b, i) {
                keep.push(i);
                if keep.len() == limit {
                    break;
                }
                continue;
            }
            let a = get(b, i);
            let aa = b.area[i];
            let (cx1, cy1, cx2, cy2) = self.span(b, i);
            let big = (cx2 - cx1 + 1) * (cy2 - cy1 + 1) > MAX_CELLS_PER_BOX;
            let suppressed = if big {
                any_overlap(simd, &all_kept, a, aa, thr)
            } else {
                let mut hit = any_overlap(simd, &big_kept, a, aa, thr);
                'cells: for cy in cy1..=cy2 {
                    for cx in cx1..=cx2 {
                        if hit {
                            break 'cells;
                        }
                        hit = any_overlap(simd, &self.cells[(cy * self.gx + cx) as usize], a, aa, thr);
                    }
                }
                hit
            };
            if suppressed {
                continue;
            }
            keep.push(i);
            if keep.len() == limit {
                break;
            }
            all_kept.push_from(b, i);
            if big {
                big_kept.push_from(b, i);
            } else {
                for cy in cy1..=cy2 {
                    for cx in cx1..=cx2 {
                        self.cells[(cy * self.gx + cx) as usize].push_from(b, i);
                    }
                }
            }
        }
        keep
    }
}

/// Greedy NMS: indices of the kept boxes, by decreasing score (ties: lower index first).
pub fn nms<T: Scalar>(
    boxes: ArrayView2<'_, T>,
    scores: ArrayView1<'_, T>,
    params: NmsParams<T>,
) -> KernelResult<Vec<i64>> {
    validate("nms", &boxes, &scores, &params)?;
    let order = rank(&scores, params.score_threshold);
    let limit = params.max_output.unwrap_or(usize::MAX);
    let soa = BoxesSoa::gather(&boxes, order.iter().copied());
    let kept = parallel::with_flushed_denormals(|| greedy(&soa, params.iou_threshold, limit));
    Ok(kept.into_iter().map(|p| order[p] as i64).collect())
}

/// Class-aware NMS: boxes suppress only boxes with the same `idxs` value. Classes run
/// independently (in parallel); the result is ordered as in [`nms`].
pub fn batched_nms<T: Scalar>(
    boxes: ArrayView2<'_, T>,
    scores: ArrayView1<'_, T>,
    idxs: ArrayView1<'_, i64>,
    params: NmsParams<T>,
) -> KernelResult<Vec<i64>> {
    validate("batched_nms", &boxes, &scores, &params)?;
    if idxs.len() != boxes.nrows() {
        return Err(KernelError::shape(format!(
            "batched_nms: 'idxs' has {} elements but 'boxes' has {} rows (shape {:?})",
            idxs.len(),
            boxes.nrows(),
            boxes.shape()
        )));
    }
    let order = rank(&scores, params.score_threshold);
    let limit = params.max_output.unwrap_or(usize::MAX);
    // Rank positions grouped by class; a stable sort keeps the score order inside each class.
    let mut by_class: Vec<usize> = (0..order.len()).collect();
    by_class.sort_by_key(|&p| idxs[order[p]]);
    let mut runs = Vec::new();
    let mut s = 0;
    while s < by_class.len() {
        let c = idxs[order[by_class[s]]];
        let mut e = s + 1;
        while e < by_class.len() && idxs[order[by_class[e]]] == c {
            e += 1;
        }
        runs.push(s..e);
        s = e;
    }
    let thr = params.iou_threshold;
    let per_class: Vec<Vec<usize>> = parallel::run(order.len().saturating_mul(256), || {
        runs.par_iter()
            .map(|r| {
                let members = &by_class[r.clone()];
                let soa = BoxesSoa::gather(&boxes, members.iter().map(|&p| order[p]));
                greedy(&soa, thr, limit).into_iter().map(|q| members[q]).collect()
            })
            .collect()
    });
    let mut kept: Vec<usize> = per_class.into_iter().flatten().collect();
    kept.sort_unstable();
    kept.truncate(limit);
    Ok(kept.into_iter().map(|p| order[p] as i64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) as f64) / (1u64 << 31) as f64
        }
    }

    fn random(n: usize, seed: u64, extent: f64) -> (Array2<f64>, Array1<f64>) {
        let mut r = Lcg(seed);
        let mut b = Array2::zeros((n, 4));
        let mut s = Array1::zeros(n);
        for i in 0..n {
            let (x, y) = (r.next() * extent, r.next() * extent);
            b[[i, 0]] = x;
            b[[i, 1]] = y;
            b[[i, 2]] = x + 2.0 + r.next() * 30.0;
            b[[i, 3]] = y + 2.0 + r.next() * 30.0;
            if i % 97 == 0 {
                b[[i, 2]] = x + 400.0; // a few large boxes
            }
            s[i] = (r.next() * 20.0).floor(); // many ties
        }
        (b, s)
    }

    /// The textbook procedure: repeatedly take the best remaining box, drop the rest that overlap.
    fn naive(b: &Array2<f64>, s: &Array1<f64>, thr: f64) -> Vec<i64> {
        let n = b.nrows();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&i, &j| s[j].partial_cmp(&s[i]).unwrap().then(i.cmp(&j)));
        let mut dead = vec![false; n];
        let mut keep = vec![];
        for (pi, &i) in order.iter().enumerate() {
            if dead[i] {
                continue;
            }
            keep.push(i as i64);
            for &j in &order[pi + 1..] {
                let bi = [b[[i, 0]], b[[i, 1]], b[[i, 2]], b[[i, 3]]];
                let bj = [b[[j, 0]], b[[j, 1]], b[[j, 2]], b[[j, 3]]];
                let inter = super::super::intersection(bi, bj);
                let ai = (bi[2] - bi[0]) * (bi[3] - bi[1]);
                let aj = (bj[2] - bj[0]) * (bj[3] - bj[1]);
                if inter > 0.0 && inter > thr * (ai + aj - inter) {
                    dead[j] = true;
                }
            }
        }
        keep
    }

    fn p(thr: f64) -> NmsParams<f64> {
        NmsParams {
            iou_threshold: thr,
            score_threshold: None,
            max_output: None,
        }
    }

    #[test]
    fn small_and_grid_paths_match_naive() {
        for &(n, extent) in &[(50usize, 100.0), (600, 300.0), (3000, 600.0), (3000, 60.0)] {
            let (b, s) = random(n, n as u64, extent);
            for &thr in &[0.0, 0.3, 0.5, 0.9, 1.0] {
                let got = nms(b.view(), s.view(), p(thr)).unwrap();
                assert_eq!(got, naive(&b, &s, thr), "n={n} thr={thr}");
            }
        }
    }

    #[test]
    fn options_and_batched() {
        let (b, s) = random(2000, 7, 400.0);
        let full = nms(b.view(), s.view(), p(0.5)).unwrap();
        let top = nms(
            b.view(),
            s.view(),
            NmsParams {
                max_output: Some(10),
                ..p(0.5)
            },
        )
        .unwrap();
        assert_eq!(&full[..10], &top[..]);
        let thr = nms(
            b.view(),
            s.view(),
            NmsParams {
                score_threshold: Some(10.0),
                ..p(0.5)
            },
        )
        .unwrap();
        let mut s2 = s.clone();
        let keep_mask: Vec<bool> = s.iter().map(|&v| v > 10.0).collect();
        let sub: Vec<usize> = (0..2000).filter(|&i| keep_mask[i]).collect();
        let bsub = b.select(ndarray::Axis(0), &sub);
        s2 = s2.select(ndarray::Axis(0), &sub);
        let want: Vec<i64> = naive(&bsub, &s2, 0.5)
            .into_iter()
            .map(|q| sub[q as usize] as i64)
            .collect();
        assert_eq!(thr, want);
        // Class-aware: same as running per class and merging by rank.
        let idxs: Array1<i64> = (0..2000).map(|i| (i % 5) as i64 - 2).collect();
        let got = batched_nms(b.view(), s.view(), idxs.view(), p(0.5)).unwrap();
        let mut want = vec![];
        for c in -2..3i64 {
            let sub: Vec<usize> = (0..2000).filter(|&i| idxs[i] == c).collect();
            let k = naive(
                &b.select(ndarray::Axis(0), &sub),
                &s.select(ndarray::Axis(0), &sub),
                0.5,
            );
            want.extend(k.into_iter().map(|q| sub[q as usize]));
        }
        want.sort_by(|&i, &j| s[j].partial_cmp(&s[i]).unwrap().then(i.cmp(&j)));
        assert_eq!(got, want.into_iter().map(|i| i as i64).collect::<Vec<_>>());
    }

    #[test]
    fn refuses_bad_input() {
        let b = Array2::<f32>::zeros((3, 4));
        let s = Array1::from(vec![1.0f32, f32::NAN, 0.0]);
        let q = NmsParams {
            iou_threshold: 0.5f32,
            score_threshold: None,
            max_output: None,
        };
        assert!(nms(b.view(), s.view(), q).unwrap_err().to_string().contains("'scores'"));
        let s = Array1::from(vec![1.0f32, 2.0]);
        assert!(nms(b.view(), s.view(), q).is_err());
        let s = Array1::from(vec![1.0f32, 2.0, 3.0]);
        let q2 = NmsParams {
            iou_threshold: f32::NAN,
            ..q
        };
        assert!(nms(b.view(), s.view(), q2)
            .unwrap_err()
            .to_string()
            .contains("'iou_threshold'"));
        // Degenerate boxes are all kept.
        assert_eq!(nms(b.view(), s.view(), q).unwrap(), vec![2, 1, 0]);
    }
}
