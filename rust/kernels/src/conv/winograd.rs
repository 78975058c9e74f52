//! Winograd F(4x4, 3x3): 3x3 convolutions with stride 1, dilation 1 and one group.
//!
//! Each 4x4 block of outputs ("tile") is computed from the 6x6 input patch under it
//! with 36 multiplications per (output channel, input channel) pair instead of 144:
//!
//! - weights: `U = G g G^T` (6x6) for every (O, C) pair, once per call, stored as 36
//!   matrices `U[xi]` of shape (O, C);
//! - inputs: `V = B^T d B` (6x6) for every tile and channel, stored per block of tiles
//!   as 36 matrices `V[xi]` of shape (C, tiles);
//! - 36 products `M[xi] = U[xi] @ V[xi]` (O, tiles);
//! - outputs: `Y = A^T M A` (4x4) plus the bias, written to the tile's place (partial
//!   tiles at the bottom/right edges write only their in-range part).
//!
//! Tiles are numbered over the whole batch (image, tile row, tile column) and processed
//! in blocks of a fixed size that depends on the shapes only, so the transforms of a
//! block stay in cache and the result is the same for any thread count. The transforms
//! are vectorised over 16 tiles at a time: chunks of 4 consecutive tiles of a tile row,
//! so narrow images (14x14: 4 tiles per row) still fill the lanes. With f32 on AVX-512
//! the 6x6 patches are gathered with masked loads and permutes; elsewhere by plain
//! copies (same bits: the gather only moves data, and the arithmetic is written
//! without FMA contraction, identical in every SIMD variant).
//!
//! The difference from the direct sum users may notice is float32 rounding (see below).
//! The transforms would spread a NaN or infinity over whole 4x4 output tiles (and turn
//! infinities into NaN), so each block's transformed inputs are checked while in cache
//! and a convolution with non-finite values is handed back to the direct path, which
//! propagates them exactly. `OXINET_WINOGRAD=0` turns the path off.
//!
//! Padding is given as signed offsets of the first tile's input window, so the input
//! gradient (a 3x3 convolution of `dy` with the flipped, transposed weights and padding
//! `2 - p`, possibly negative) uses the same code.
//!
//! Accuracy: the transforms scale values by up to ~100 before the channel sum, so float32
//! results carry an error of 2e-6 to 8e-6 of the output's largest magnitude (measured
//! against float64 references at 16 to 256 channels), several times that of the direct
//! sum; float64 about 1e-14. Tests allow 2e-5 (Rust) / 3e-5 (pytest) for float32.

use super::im2col::SendPtr;
use super::{all_finite, Geom};
use crate::gemm::{gemm, Scalar, Threads};
use crate::parallel;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// Tiles transformed together (the SIMD width of the transforms).
const LANES: usize = 16;
/// Transform positions per tile (6x6).
const NPOS: usize = 36;

type Lanes<T> = [[T; LANES]; NPOS];

/// One Winograd convolution: `x (n, c, h, w)` to `out (n, o, oh, ow)` where output
/// `(y, x)` reads input rows `y - top .. y - top + 3` and columns likewise.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub n: usize,
    pub c: usize,
    pub o: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    /// padding before the first row / column (may be negative: rows skipped)
    pub top: isize,
    pub left: isize,
    /// tile rows and columns per image
    pub th: usize,
    pub tw: usize,
    /// tiles per block (a multiple of LANES)
    pub tb: usize,
}

/// Bytes of transformed inputs and products per block. Measured (fwd ms, N32 C64 56x56 /
/// N32 C256 14x14): 1 MB 16.2 / 12.0, 2 MB 14.9 / 11.7, 4 MB 15.3 / 11.3, 8 MB 15.0 / 12.8.
const BLOCK_BYTES: usize = 2 << 20;
const MIN_BLOCK: usize = 32;
const MAX_BLOCK: usize = 128;

impl Plan {
    pub fn new(n: usize, c: usize, o: usize, hw: [usize; 2], out: [usize; 2], pad: [isize; 2], elem: usize) -> Plan {
        let (th, tw) = (out[0].div_ceil(4), out[1].div_ceil(4));
        let per_tile = NPOS * (c + o) * elem;
        let tiles = n * th * tw;
        let mut tb = (BLOCK_BYTES / per_tile.max(1)) / LANES * LANES;
        tb = tb.clamp(MIN_BLOCK, MAX_BLOCK);
        // at least 4 blocks (work for every thread) where that keeps blocks >= MIN_BLOCK
        tb = tb.min(tiles.div_ceil(4).div_ceil(LANES) * LANES).max(MIN_BLOCK);
        // no larger than needed, in whole lane groups
        tb = tb.min(tiles.div_ceil(LANES) * LANES).max(LANES);
        Plan {
            n,
            c,
            o,
            h: hw[0],
            w: hw[1],
            oh: out[0],
            ow: out[1],
            top: pad[0],
            left: pad[1],
            th,
            tw,
            tb,
        }
    }

    /// Row stride of the per-block `V` and `M` matrices: the block plus one lane group
    /// of slack, so a run of tiles may store all its lanes.
    pub fn ld(&self) -> usize {
        self.tb + LANES
    }

    pub fn tiles(&self) -> usize {
        self.n * self.th * self.tw
    }

    /// Multiply-adds of the products (for the parallel work estimate).
    fn work(&self) -> usize {
        NPOS.saturating_mul(self.o)
            .saturating_mul(self.c)
            .saturating_mul(self.tiles())
    }
}

/// Whether the Winograd path handles this forward convolution (and should, by speed).
pub(crate) fn forward_applies(g: &Geom, elem: usize) -> bool {
    family(g) && worth_it(g.n, g.c_in, g.c_out, [g.output[1], g.output[2]], elem)
}

/// Whether the input gradient of this convolution goes through the Winograd path.
pub(crate) fn input_grad_applies(g: &Geom, elem: usize) -> bool {
    family(g) && worth_it(g.n, g.c_out, g.c_in, [g.input[1], g.input[2]], elem)
}

/// Whether the path is switched on: `OXINET_WINOGRAD=0` in the environment turns it off
/// (read once), for users who want the direct sum's rounding and for benchmarking.
fn enabled() -> bool {
    use std::sync::OnceLock;
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("OXINET_WINOGRAD").map_or(true, |v| v.trim() != "0"))
}

/// 2-D, 3x3, stride 1, dilation 1, one group.
fn family(g: &Geom) -> bool {
    enabled()
        && g.groups == 1
        && g.kernel == [1, 3, 3]
        && g.p.stride == [1, 1, 1]
        && g.p.dilation == [1, 1, 1]
        && g.input[0] == 1
        && g.output[0] == 1
        && g.p.pad_lo[0] == 0
        && g.p.pad_hi[0] == 0
}

/// Shapes on which Winograd beats im2col + GEMM (measured, 2 threads, f32, forward ms
/// Winograd / im2col in the same run): N32 C16 O16 14x14 0.12 / 0.55; N64 C32 O32 8x8
/// 0.60 / 1.04; N8 and N32 C32 O32 14x14 0.12 / 0.32 and 0.31 / 0.70; N8 C16 O32 56x56
/// 0.56 / 0.83; N32 C64 56x56 and C256 14x14 1.6x faster. It loses where few lanes
/// carry tiles and the channel sums are short: N8 C32 O32 28x28 (7 tiles per row, 7 of
/// 16 lanes) 0.55 / 0.47, N8 C16 O16 28x28 0.26 / 0.18; and where the transformed
/// weights (36 * O * C values) outgrow the L3 cache: N32 C512 O512 7x7 32 / 22.
/// (N32 C16 56x56, 1.44 / 2.04, and N32 C64 7x7, 1.0 / 1.24, are left out by the score
/// below to keep the rule simple and safe.)
fn worth_it(n: usize, c_in: usize, c_out: usize, out: [usize; 2], elem: usize) -> bool {
    if c_in.min(c_out) < 16 || out[0] < 4 || out[1] < 4 {
        return false;
    }
    let pl = Plan::new(n, c_in, c_out, out, out, [1, 1], elem);
    let u_bytes = NPOS * c_in * c_out * elem;
    // GEMM savings per tile grow with C*O, transform costs with (C+O) / lane use
    let (c, o) = (c_in as f64, c_out as f64);
    let score = c * o / (c + o) * lane_use(pl.tw);
    pl.tiles() >= 4 * MIN_BLOCK && u_bytes <= U_MAX_BYTES && score >= 7.5
}

/// Fraction of the 16 transform lanes that carry tiles, for `tw` tiles per tile row.
fn lane_use(tw: usize) -> f64 {
    if tw.is_multiple_of(CHUNK) {
        return 1.0; // full chunks: groups continue across tile rows
    }
    let (mut tx, mut groups) = (0, 0);
    while tx < tw {
        groups += 1;
        let mut n = 0;
        loop {
            let len = CHUNK.min(tw - tx);
            tx += len;
            n += 1;
            if len < CHUNK || n == 4 || tx >= tw {
                break;
            }
        }
    }
    tw as f64 / (LANES * groups) as f64
}

/// Largest transformed weight array (bytes) for which Winograd is used.
const U_MAX_BYTES: usize = 16 << 20;

/// Forward convolution through Winograd: `x (n, c, h, w)`, `w (o, c, 3, 3)`. Returns
/// false, with `out` partly written, when the input or weights hold Inf or NaN (see
/// [`conv3x3`]); the caller then runs the direct path.
pub(crate) fn forward<T: Scalar>(g: &Geom, xs: &[T], ws: &[T], bias: Option<&[T]>, out: &mut [T]) -> bool {
    let pl = Plan::new(
        g.n,
        g.c_in,
        g.c_out,
        [g.input[1], g.input[2]],
        [g.output[1], g.output[2]],
        [g.p.pad_lo[1] as isize, g.p.pad_lo[2] as isize],
        std::mem::size_of::<T>(),
    );
    conv3x3(&pl, xs, ws, bias, out)
}

/// Input gradient through Winograd: `dx (n, c, h, w)` from `dy (n, o, oh, ow)` is the
/// 3x3 convolution of `dy` with `w'[c, o] = w[o, c]` flipped in both axes, its window
/// starting `2 - pad_lo` rows/columns before the first `dy` row/column. Returns false
/// on non-finite values, like [`forward`].
pub(crate) fn input_grad<T: Scalar>(g: &Geom, dys: &[T], ws: &[T], dx: &mut [T]) -> bool {
    let (o, c) = (g.c_out, g.c_in);
    let mut wt = vec![T::zero(); c * o * 9];
    for oi in 0..o {
        for ci in 0..c {
            let src = &ws[(oi * c + ci) * 9..][..9];
            let dst = &mut wt[(ci * o + oi) * 9..][..9];
            for k in 0..9 {
                dst[k] = src[8 - k];
            }
        }
    }
    let pl = Plan::new(
        g.n,
        o,
        c,
        [g.output[1], g.output[2]],
        [g.input[1], g.input[2]],
        [2 - g.p.pad_lo[1] as isize, 2 - g.p.pad_lo[2] as isize],
        std::mem::size_of::<T>(),
    );
    conv3x3(&pl, dys, &wt, None, dx)
}

/// The convolution itself: `x (n, c, h, w)`, `w (o, c, 3, 3)`, `out (n, o, oh, ow)`
/// fully overwritten. Returns false when a transformed weight or input holds Inf or NaN:
/// the transforms mix the 6x6 patch, so a non-finite input would spread NaN over whole
/// 4x4 output tiles (and turn Inf into NaN) where the direct sum confines it to the
/// outputs that read it. The check runs on each block's transformed inputs while they are
/// in cache.
pub(crate) fn conv3x3<T: Scalar>(pl: &Plan, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) -> bool {
    let spread = parallel::num_threads() > 1 && pl.tiles() > pl.tb;
    conv3x3_with(pl, x, w, bias, out, spread)
}

/// [`conv3x3`] with the blocks spread over the pool (`spread`) or run in order; both
/// give the same bits.
fn conv3x3_with<T: Scalar>(pl: &Plan, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T], spread: bool) -> bool {
    let tiles = pl.tiles();
    if tiles == 0 || pl.o == 0 {
        return true;
    }
    let u = weight_transform(pl, w);
    if !all_finite(&u) {
        return false;
    }
    let non_finite = AtomicBool::new(false);
    let blocks = tiles.div_ceil(pl.tb);
    let optr = SendPtr(out.as_mut_ptr());
    let (vlen, mlen) = (NPOS * pl.c * pl.ld(), NPOS * pl.o * pl.ld());
    let body = |b: usize, bufs: &mut (Vec<T>, Vec<T>)| {
        if non_finite.load(Ordering::Relaxed) {
            return;
        }
        let t0 = b * pl.tb;
        let nt = pl.tb.min(tiles - t0);
        let (v, m) = (&mut bufs.0, &mut bufs.1);
        // SAFETY: the variant is chosen for the running CPU's features.
        unsafe { dispatch_input(pl, x, t0, nt, v) };
        if !all_finite(v) {
            non_finite.store(true, Ordering::Relaxed);
            return;
        }
        for xi in 0..NPOS {
            let uv = ArrayView2::from_shape((pl.o, pl.c), &u[xi * pl.o * pl.c..][..pl.o * pl.c]).expect("U");
            let ld = pl.ld();
            let vv = ArrayView2::from_shape((pl.c, nt).strides((ld, 1)), &v[xi * pl.c * ld..]).expect("V");
            let mv = ArrayViewMut2::from_shape((pl.o, nt).strides((ld, 1)), &mut m[xi * pl.o * ld..]).expect("M");
            gemm(T::one(), uv, vv, T::zero(), mv, Threads::Single).expect("winograd: GEMM shapes are consistent");
        }
        // SAFETY: block b alone writes the output tiles t0..t0+nt.
        unsafe { dispatch_output(pl, m, pl.o, 0, pl.o, t0, nt, bias, optr.get()) };
    };
    run_blocks(blocks, vlen, mlen, spread && blocks > 1, pl.work(), body);
    !non_finite.load(Ordering::Relaxed)
}

/// Runs `body(block, scratch)` for every block, spread over the pool or in order.
fn run_blocks<T: Scalar>(
    blocks: usize,
    vlen: usize,
    mlen: usize,
    spread: bool,
    work: usize,
    body: impl Fn(usize, &mut (Vec<T>, Vec<T>)) + Sync,
) {
    if spread {
        parallel::run(work, || {
            (0..blocks).into_par_iter().for_each_init(
                || (vec![T::zero(); vlen], vec![T::zero(); mlen]),
                |bufs, b| body(b, bufs),
            );
        });
    } else {
        parallel::with_flushed_denormals(|| {
            let mut bufs = (vec![T::zero(); vlen], vec![T::zero(); mlen]);
            for b in 0..blocks {
                body(b, &mut bufs);
            }
        });
    }
}

// ---------------------------------------------------------------- 1-D transforms

/// `B^T d` along one axis of a 6x6 lane block: reads `src[si[k]]`, writes `dst[di[k]]`.
#[inline(always)]
fn bt_1d<T: Scalar>(src: &Lanes<T>, si: [usize; 6], dst: &mut Lanes<T>, di: [usize; 6]) {
    let (c2, c4, c5) = (
        T::from_f64(2.0).unwrap(),
        T::from_f64(4.0).unwrap(),
        T::from_f64(5.0).unwrap(),
    );
    for l in 0..LANES {
        let (d0, d1, d2) = (src[si[0]][l], src[si[1]][l], src[si[2]][l]);
        let (d3, d4, d5) = (src[si[3]][l], src[si[4]][l], src[si[5]][l]);
        let a = d4 - c4 * d2;
        let b = d3 - c4 * d1;
        let c = d4 - d2;
        let e = c2 * (d3 - d1);
        dst[di[0]][l] = (c4 * d0 - c5 * d2) + d4;
        dst[di[1]][l] = a + b;
        dst[di[2]][l] = a - b;
        dst[di[3]][l] = c + e;
        dst[di[4]][l] = c - e;
        dst[di[5]][l] = (c4 * d1 - c5 * d3) + d5;
    }
}

/// `A^T m` along one axis: 6 values in, 4 out.
#[inline(always)]
fn at_1d<T: Scalar>(src: &Lanes<T>, si: [usize; 6], dst: &mut Lanes<T>, di: [usize; 4]) {
    let (c2, c4, c8) = (
        T::from_f64(2.0).unwrap(),
        T::from_f64(4.0).unwrap(),
        T::from_f64(8.0).unwrap(),
    );
    for l in 0..LANES {
        let (m0, m1, m2) = (src[si[0]][l], src[si[1]][l], src[si[2]][l]);
        let (m3, m4, m5) = (src[si[3]][l], src[si[4]][l], src[si[5]][l]);
        let s12 = m1 + m2;
        let d12 = m1 - m2;
        let s34 = m3 + m4;
        let d34 = m3 - m4;
        dst[di[0]][l] = (m0 + s12) + s34;
        dst[di[1]][l] = d12 + c2 * d34;
        dst[di[2]][l] = s12 + c4 * s34;
        dst[di[3]][l] = (d12 + c8 * d34) + m5;
    }
}

/// `G g` along one axis: 3 values in, 6 out.
#[inline(always)]
fn g_1d<T: Scalar>(src: &Lanes<T>, si: [usize; 3], dst: &mut Lanes<T>, di: [usize; 6]) {
    let f = |v: f64| T::from_f64(v).unwrap();
    let (q4, q6, q12, q24) = (f(0.25), f(1.0 / 6.0), f(1.0 / 12.0), f(1.0 / 24.0));
    for l in 0..LANES {
        let (g0, g1, g2) = (src[si[0]][l], src[si[1]][l], src[si[2]][l]);
        let q = g0 + g2;
        let r = q24 * g0 + q6 * g2;
        let s = q12 * g1;
        dst[di[0]][l] = q4 * g0;
        dst[di[1]][l] = -(q6 * (q + g1));
        dst[di[2]][l] = -(q6 * (q - g1));
        dst[di[3]][l] = r + s;
        dst[di[4]][l] = r - s;
        dst[di[5]][l] = g2;
    }
}

/// `V = B^T d B` of 16 tiles at once, `d` and `v` indexed `row * 6 + col`.
#[inline(always)]
fn input_tf<T: Scalar>(d: &Lanes<T>, tmp: &mut Lanes<T>, v: &mut Lanes<T>) {
    for s in 0..6 {
        bt_1d(
            d,
            [s, 6 + s, 12 + s, 18 + s, 24 + s, 30 + s],
            tmp,
            [s, 6 + s, 12 + s, 18 + s, 24 + s, 30 + s],
        );
    }
    for r in 0..6 {
        let i = [r * 6, r * 6 + 1, r * 6 + 2, r * 6 + 3, r * 6 + 4, r * 6 + 5];
        bt_1d(tmp, i, v, i);
    }
}

/// `Y = A^T M A` of 16 tiles: `m` indexed `row * 6 + col`, `y` indexed `row * 4 + col`.
#[inline(always)]
fn output_tf<T: Scalar>(m: &Lanes<T>, tmp: &mut Lanes<T>, y: &mut Lanes<T>) {
    for s in 0..6 {
        at_1d(
            m,
            [s, 6 + s, 12 + s, 18 + s, 24 + s, 30 + s],
            tmp,
            [s, 6 + s, 12 + s, 18 + s],
        );
    }
    for r in 0..4 {
        let i = [r * 6, r * 6 + 1, r * 6 + 2, r * 6 + 3, r * 6 + 4, r * 6 + 5];
        at_1d(tmp, i, y, [r * 4, r * 4 + 1, r * 4 + 2, r * 4 + 3]);
    }
}

/// `U = G g G^T` of 16 kernels: `g` indexed `row * 3 + col`, `u` indexed `row * 6 + col`.
#[inline(always)]
fn weight_tf<T: Scalar>(g: &Lanes<T>, tmp: &mut Lanes<T>, u: &mut Lanes<T>) {
    for s in 0..3 {
        g_1d(g, [s, 3 + s, 6 + s], tmp, [s, 3 + s, 6 + s, 9 + s, 12 + s, 15 + s]);
    }
    for r in 0..6 {
        g_1d(
            tmp,
            [r * 3, r * 3 + 1, r * 3 + 2],
            u,
            [r * 6, r * 6 + 1, r * 6 + 2, r * 6 + 3, r * 6 + 4, r * 6 + 5],
        );
    }
}

// ---------------------------------------------------------------- block passes

/// `U[xi] (o, c)` for all 36 positions, from `w (o, c, 3, 3)`.
fn weight_transform<T: Scalar>(pl: &Plan, w: &[T]) -> Vec<T> {
    /// (O, C) pairs per parallel task (a multiple of LANES).
    const PAIRS_PER_TASK: usize = 2048;
    let pairs = pl.o * pl.c;
    let mut u = vec![T::zero(); NPOS * pairs];
    let uptr = SendPtr(u.as_mut_ptr());
    let tasks = pairs.div_ceil(PAIRS_PER_TASK);
    let task = |t: usize| {
        let (p0, p1) = (t * PAIRS_PER_TASK, ((t + 1) * PAIRS_PER_TASK).min(pairs));
        // SAFETY: the variant is chosen for the running CPU's features; task t alone
        // writes columns p0..p1 of every U[xi] (each pair is transformed on its own, so
        // the split does not change any value).
        unsafe { dispatch_weight(w, pairs, p0, p1, uptr.get()) };
    };
    if tasks > 1 && parallel::num_threads() > 1 {
        parallel::run(pairs.saturating_mul(NPOS * 8), || {
            (0..tasks).into_par_iter().for_each(task)
        });
    } else {
        (0..tasks).for_each(task);
    }
    u
}

/// `U[xi][p] = (G g_p G^T)[xi]` for the pairs `p0 .. p1` of `w (pairs, 3, 3)`, into `u`
/// laid out `[36][pairs]`.
///
/// # Safety
/// `u` holds `36 * pairs` values; no one else accesses columns `p0 .. p1` meanwhile.
#[inline(always)]
unsafe fn weight_pass<T: Scalar>(w: &[T], pairs: usize, p0: usize, p1: usize, u: *mut T) {
    let mut g = [[T::zero(); LANES]; NPOS];
    let mut tmp = [[T::zero(); LANES]; NPOS];
    let mut ut = [[T::zero(); LANES]; NPOS];
    let mut p = p0;
    while p < p1 {
        let np = LANES.min(p1 - p);
        for lane in 0..np {
            let src = &w[(p + lane) * 9..][..9];
            for k in 0..9 {
                g[k][lane] = src[k];
            }
        }
        weight_tf(&g, &mut tmp, &mut ut);
        for (xi, row) in ut.iter().enumerate().take(NPOS) {
            std::ptr::copy_nonoverlapping(row.as_ptr(), u.add(xi * pairs + p), np);
        }
        p += np;
    }
}

/// Tiles per chunk: a chunk is up to 4 consecutive tiles of one tile row (18 input
/// columns), and fills 4 of the 16 lanes.
const CHUNK: usize = 4;

/// Up to 4 chunks that fill consecutive lanes (and consecutive block columns from `p`):
/// a group continues to its next chunk only after a full chunk, so a wide tile row
/// makes one group of up to 16 tiles and narrow images (4 tiles per row) put 4 tile
/// rows side by side.
#[derive(Clone, Copy)]
struct Group {
    p: usize,
    n: usize,
    /// (image, tile row, first tile column, tiles) per chunk
    ch: [(usize, usize, usize, usize); 4],
}

/// The groups of tiles `t0 .. t0 + nt`. (An iterator rather than a closure-taking
/// helper: closures do not inherit the caller's `target_feature`s.)
struct Groups {
    per_image: usize,
    tw: usize,
    t0: usize,
    nt: usize,
    p: usize,
}

impl Groups {
    #[inline(always)]
    fn new(pl: &Plan, t0: usize, nt: usize) -> Groups {
        Groups {
            per_image: pl.th * pl.tw,
            tw: pl.tw,
            t0,
            nt,
            p: 0,
        }
    }
}

impl Iterator for Groups {
    type Item = Group;
    #[inline(always)]
    fn next(&mut self) -> Option<Group> {
        if self.p >= self.nt {
            return None;
        }
        let mut g = Group {
            p: self.p,
            n: 0,
            ch: [(0, 0, 0, 0); 4],
        };
        loop {
            let t = self.t0 + self.p;
            let (ni, r) = (t / self.per_image, t % self.per_image);
            let (ty, tx) = (r / self.tw, r % self.tw);
            let len = CHUNK.min(self.tw - tx).min(self.nt - self.p);
            g.ch[g.n] = (ni, ty, tx, len);
            g.n += 1;
            self.p += len;
            if len < CHUNK || g.n == 4 || self.p >= self.nt {
                return Some(g);
            }
        }
    }
}

/// See [`chunk_geometry`].
type ChunkGeo = (isize, isize, usize, usize);

/// Per chunk: offset of its first window row's first column in image `ni`, channel 0
/// (may be negative), first window row, and the segment columns `[zl, zr)` that lie
/// inside the image (columns past the chunk's `4 * len + 2` count as outside).
#[inline(always)]
fn chunk_geometry(pl: &Plan, ch: (usize, usize, usize, usize)) -> ChunkGeo {
    let (ni, ty, tx, len) = ch;
    let w = pl.w as isize;
    let oy = (ty * 4) as isize - pl.top;
    let ox = (tx * 4) as isize - pl.left;
    let ncols = (4 * len + 2) as isize;
    let zl = (-ox).clamp(0, ncols) as usize;
    let zr = (w - ox).clamp(0, ncols) as usize;
    let base = (ni * pl.c * pl.h * pl.w) as isize + oy * w + ox;
    (base, oy, zl, zr)
}

/// Input transform of tiles `t0 .. t0 + nt` into `v`, laid out `[36][c][ld]`.
#[inline(always)]
fn input_pass<T: Scalar>(pl: &Plan, x: &[T], t0: usize, nt: usize, v: &mut [T]) {
    let (h, w, c, ld) = (pl.h as isize, pl.w as isize, pl.c, pl.ld());
    let plane = (pl.h * pl.w) as isize;
    let mut d = [[T::zero(); LANES]; NPOS];
    let mut tmp = [[T::zero(); LANES]; NPOS];
    let mut vt = [[T::zero(); LANES]; NPOS];
    let f32_avx512 = is_f32::<T>() && crate::simd::level() == crate::simd::SimdLevel::Avx512 && !force_portable();
    let groups: Vec<(usize, usize, [ChunkGeo; 4])> = Groups::new(pl, t0, nt)
        .map(|g| {
            let mut geo = [(0isize, 0isize, 0usize, 0usize); 4];
            for (dst, &ch) in geo.iter_mut().zip(&g.ch[..g.n]) {
                *dst = chunk_geometry(pl, ch);
            }
            (g.p, g.n, geo)
        })
        .collect();
    // channel-major, so each channel plane is read front to back
    for ci in 0..c {
        for &(p, nch, geo) in &groups {
            #[cfg(target_arch = "x86_64")]
            if f32_avx512 {
                // SAFETY: T is f32 (TypeId), the CPU has AVX-512F; the masked loads touch
                // only in-image columns of in-image rows.
                unsafe {
                    gather_avx512(
                        x.as_ptr() as *const f32,
                        ci as isize * plane,
                        w,
                        h,
                        &geo[..nch],
                        &mut *(&mut d as *mut Lanes<T> as *mut Lanes<f32>),
                    );
                }
                input_tf(&d, &mut tmp, &mut vt);
                for xi in 0..NPOS {
                    let dst: &mut [T; LANES] = (&mut v[(xi * c + ci) * ld + p..][..LANES]).try_into().unwrap();
                    *dst = vt[xi];
                }
                continue;
            }
            for row in d.iter_mut() {
                *row = [T::zero(); LANES];
            }
            for (j, &(base, oy, zl, zr)) in geo[..nch].iter().enumerate() {
                for r in 0..6 {
                    let y = oy + r as isize;
                    if y < 0 || y >= h {
                        continue;
                    }
                    let mut seg = [T::zero(); 4 * CHUNK + 2];
                    if zr > zl {
                        let s0 = (base + ci as isize * plane + r as isize * w + zl as isize) as usize;
                        seg[zl..zr].copy_from_slice(&x[s0..s0 + (zr - zl)]);
                    }
                    for l in 0..CHUNK {
                        for s in 0..6 {
                            d[r * 6 + s][CHUNK * j + l] = seg[4 * l + s];
                        }
                    }
                }
            }
            input_tf(&d, &mut tmp, &mut vt);
            for xi in 0..NPOS {
                let dst: &mut [T; LANES] = (&mut v[(xi * c + ci) * ld + p..][..LANES]).try_into().unwrap();
                *dst = vt[xi];
            }
        }
    }
}

/// Tests switch the AVX-512 gather off to compare it with the portable one (both only
/// move data, so results are identical and other tests running meanwhile are unaffected).
#[cfg(test)]
static FORCE_PORTABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[inline(always)]
fn force_portable() -> bool {
    #[cfg(test)]
    {
        FORCE_PORTABLE.load(std::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(not(test))]
    {
        false
    }
}

fn is_f32<T: Scalar>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
}

/// The 6x6 patches of a group's tiles side by side (f32, AVX-512): chunk `j` fills lanes
/// `4j .. 4j + 4` from 16 + 4 columns at `x + off + geo[j].0 + r * w`; rows outside
/// `0 .. h` and columns outside the chunk's `[zl, zr)` read as zero (masked off, never
/// accessed). Each phase `k` (elements `4 * lane + k`) is gathered by two two-source
/// permutes and one block shuffle.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn gather_avx512(
    x: *const f32,
    off: isize,
    w: isize,
    h: isize,
    geo: &[(isize, isize, usize, usize)],
    d: &mut Lanes<f32>,
) {
    use std::arch::x86_64::*;
    let idx = [0, 1, 2, 3].map(|k| {
        _mm512_setr_epi32(
            k,
            4 + k,
            8 + k,
            12 + k,
            16 + k,
            20 + k,
            24 + k,
            28 + k,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        )
    });
    // per chunk: column masks of the plain (columns 0..16) and shifted (4..20) loads
    let mut cm = [(0u16, 0u16); 4];
    for (j, &(_, _, zl, zr)) in geo.iter().enumerate() {
        let cols: u32 = if zr > zl {
            ((1u32 << zr) - 1) & !((1u32 << zl) - 1)
        } else {
            0
        };
        cm[j] = ((cols & 0xFFFF) as u16, ((cols >> 4) & 0xFFFF) as u16);
    }
    for r in 0..6 {
        let mut ptr = [x; 4];
        let mut m = [(0u16, 0u16); 4];
        for (j, &(base, oy, _, _)) in geo.iter().enumerate() {
            let y = oy + r as isize;
            if y >= 0 && y < h {
                ptr[j] = x.wrapping_offset(off + base + r as isize * w);
                m[j] = cm[j];
            }
        }
        for (shift, ks) in [(0usize, 0..4), (4, 0..2)] {
            let ld = |j: usize| {
                let mask = if shift == 0 { m[j].0 } else { m[j].1 };
                _mm512_maskz_loadu_ps(mask, ptr[j].wrapping_add(shift))
            };
            let (a, b, c, e) = (ld(0), ld(1), ld(2), ld(3));
            for k in ks {
                let lo = _mm512_permutex2var_ps(a, idx[k], b);
                let hi = _mm512_permutex2var_ps(c, idx[k], e);
                let v = _mm512_shuffle_f32x4::<0b01_00_01_00>(lo, hi);
                _mm512_storeu_ps(d[r * 6 + shift + k].as_mut_ptr(), v);
            }
        }
    }
}

/// Output transform of tiles `t0 .. t0 + nt`, output channels `o0 .. o1`, from `m`
/// laid out `[36][rows][ld]` with channel `o0 + i` in row `i`; adds the bias and
/// writes the in-range part of each tile.
///
/// # Safety
/// `out` points to the `(n, o, oh, ow)` output; no other thread writes these tiles'
/// elements of channels `o0 .. o1`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn output_pass<T: Scalar>(
    pl: &Plan,
    m: &[T],
    rows: usize,
    o0: usize,
    o1: usize,
    t0: usize,
    nt: usize,
    bias: Option<&[T]>,
    out: *mut T,
) {
    let (oh, ow, ld) = (pl.oh, pl.ow, pl.ld());
    let plane = oh * ow;
    let mut mt = [[T::zero(); LANES]; NPOS];
    let mut tmp = [[T::zero(); LANES]; NPOS];
    let mut y = [[T::zero(); LANES]; NPOS];
    let mut seg = [T::zero(); 4 * LANES];
    for g in Groups::new(pl, t0, nt) {
        // per run of chunks in one tile row: output offset in channel 0, valid rows,
        // valid columns, first lane
        let mut geo = [(0usize, 0usize, 0usize, 0usize); 4];
        let mut nruns = 0;
        let mut lane0 = 0;
        let mut prev: Option<(usize, usize, usize, usize)> = None; // (ni, ty, tx, tiles)
        for j in 0..g.n {
            let (ni, ty, tx, len) = g.ch[j];
            match prev {
                Some((pn, pty, ptx, plen)) if pn == ni && pty == ty => {
                    let tiles = plen + len;
                    geo[nruns - 1].2 = (4 * tiles).min(ow - ptx * 4);
                    prev = Some((pn, pty, ptx, tiles));
                }
                _ => {
                    geo[nruns] = (
                        ni * pl.o * plane + ty * 4 * ow + tx * 4,
                        4.min(oh - ty * 4),
                        (4 * len).min(ow - tx * 4),
                        lane0,
                    );
                    nruns += 1;
                    prev = Some((ni, ty, tx, len));
                }
            }
            lane0 += len;
        }
        let p = g.p;
        for oi in o0..o1 {
            for xi in 0..NPOS {
                let src: &[T; LANES] = (&m[(xi * rows + oi - o0) * ld + p..][..LANES]).try_into().unwrap();
                mt[xi] = *src;
            }
            output_tf(&mt, &mut tmp, &mut y);
            let bv = bias.map_or(T::zero(), |b| b[oi]);
            for i in 0..4 {
                for lane in 0..LANES {
                    for j in 0..4 {
                        seg[4 * lane + j] = y[i * 4 + j][lane] + bv;
                    }
                }
                for &(base, nrows, ncols, first) in &geo[..nruns] {
                    if i < nrows {
                        // SAFETY: row i of this run's tile row is < oh and its columns
                        // < ow, in this image and channel, owned by the caller.
                        std::ptr::copy_nonoverlapping(
                            seg.as_ptr().add(4 * first),
                            out.add(base + oi * plane + i * ow),
                            ncols,
                        );
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- run-time SIMD choice

/// Defines `$name`, which calls `$inner` compiled for the widest SIMD level the CPU
/// offers. The variants do the same operations in the same order (Rust never contracts
/// `a * b + c` into an FMA by itself), so they agree bitwise.
macro_rules! simd_variants {
    ($name:ident, $inner:ident, ($($arg:ident : $ty:ty),*)) => {
        #[allow(clippy::too_many_arguments)]
        unsafe fn $name<T: Scalar>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v512<T: Scalar>($($arg: $ty),*) {
                    $inner($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v256<T: Scalar>($($arg: $ty),*) {
                    $inner($($arg),*)
                }
                match crate::simd::level() {
                    crate::simd::SimdLevel::Avx512 => return v512($($arg),*),
                    crate::simd::SimdLevel::Avx2Fma => return v256($($arg),*),
                    _ => {}
                }
            }
            $inner($($arg),*)
        }
    };
}

simd_variants!(dispatch_weight, weight_pass, (w: &[T], pairs: usize, p0: usize, p1: usize, u: *mut T));
simd_variants!(dispatch_input, input_pass, (pl: &Plan, x: &[T], t0: usize, nt: usize, v: &mut [T]));
simd_variants!(
    dispatch_output,
    output_pass,
    (pl: &Plan, m: &[T], rows: usize, o0: usize, o1: usize, t0: usize, nt: usize, bias: Option<&[T]>, out: *mut T)
);

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(len: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
            })
            .collect()
    }

    /// Direct 3x3 correlation in float64 with signed padding.
    fn naive(pl: &Plan, x: &[f64], w: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
        let mut out = vec![0.0; pl.n * pl.o * pl.oh * pl.ow];
        for n in 0..pl.n {
            for o in 0..pl.o {
                for y in 0..pl.oh {
                    for xo in 0..pl.ow {
                        let mut acc = bias.map_or(0.0, |b| b[o]);
                        for c in 0..pl.c {
                            for i in 0..3 {
                                for j in 0..3 {
                                    let iy = y as isize + i as isize - pl.top;
                                    let ix = xo as isize + j as isize - pl.left;
                                    if iy < 0 || ix < 0 || iy >= pl.h as isize || ix >= pl.w as isize {
                                        continue;
                                    }
                                    acc += x[((n * pl.c + c) * pl.h + iy as usize) * pl.w + ix as usize]
                                        * w[((o * pl.c + c) * 3 + i) * 3 + j];
                                }
                            }
                        }
                        out[((n * pl.o + o) * pl.oh + y) * pl.ow + xo] = acc;
                    }
                }
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn plan(n: usize, c: usize, o: usize, h: usize, w: usize, lo: [isize; 2], hi: [isize; 2], elem: usize) -> Plan {
        let oh = (h as isize + lo[0] + hi[0] - 2) as usize;
        let ow = (w as isize + lo[1] + hi[1] - 2) as usize;
        Plan::new(n, c, o, [h, w], [oh, ow], lo, elem)
    }

    /// Largest |a - b| over the largest |b| (errors relative to the output's scale).
    fn rel_err(a: &[f64], b: &[f64]) -> f64 {
        let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
        a.iter().zip(b).fold(0.0f64, |m, (p, q)| m.max((p - q).abs())) / scale
    }

    type Case = (usize, usize, usize, usize, usize, [isize; 2], [isize; 2]);
    const CASES: &[Case] = &[
        (2, 3, 4, 5, 5, [1, 1], [1, 1]),
        (1, 17, 16, 7, 9, [1, 1], [1, 1]),
        (3, 16, 17, 14, 14, [1, 1], [1, 1]),
        (1, 16, 16, 1, 1, [1, 1], [1, 1]),   // 1x1 image, output 1x1
        (2, 5, 3, 9, 7, [0, 0], [0, 0]),     // no padding
        (1, 4, 6, 6, 11, [2, 2], [2, 2]),    // padding 2
        (2, 3, 5, 8, 6, [0, 1], [2, 1]),     // asymmetric
        (1, 2, 3, 10, 10, [-1, 2], [0, -1]), // negative (input gradient with padding 3)
        (5, 16, 16, 3, 3, [1, 1], [1, 1]),   // several images per block
    ];

    #[test]
    fn forward_matches_direct_sum_f64_and_f32() {
        for (k, &(n, c, o, h, w, lo, hi)) in CASES.iter().enumerate() {
            let pl = plan(n, c, o, h, w, lo, hi, 8);
            let x = filled(n * c * h * w, 1 + k as u64);
            let wt = filled(o * c * 9, 100 + k as u64);
            let b = filled(o, 200 + k as u64);
            let expect = naive(&pl, &x, &wt, Some(&b));
            let mut got = vec![f64::NAN; expect.len()];
            assert!(conv3x3(&pl, &x, &wt, Some(&b), &mut got));
            let e64 = rel_err(&got, &expect);
            assert!(e64 < 1e-13, "case {k}: f64 error {e64}");

            let pl32 = plan(n, c, o, h, w, lo, hi, 4);
            let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let mut got32 = vec![f32::NAN; expect.len()];
            assert!(conv3x3(&pl32, &f(&x), &f(&wt), Some(&f(&b)), &mut got32));
            let got32: Vec<f64> = got32.iter().map(|&a| a as f64).collect();
            let e32 = rel_err(&got32, &expect);
            eprintln!("case {k}: f64 error {e64:.1e}, f32 error {e32:.1e}");
            assert!(e32 < 2e-5, "case {k}: f32 error {e32}");
        }
    }

    #[test]
    fn f32_error_on_a_wide_layer_stays_small() {
        // 256 input channels: the sum the transforms feed is long
        let (n, c, o, h, w) = (1, 256, 8, 14, 14);
        let pl = plan(n, c, o, h, w, [1, 1], [1, 1], 4);
        let x = filled(n * c * h * w, 5);
        let wt = filled(o * c * 9, 6);
        let expect = naive(&pl, &x, &wt, None);
        let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let mut got = vec![0f32; expect.len()];
        assert!(conv3x3(&pl, &f(&x), &f(&wt), None, &mut got));
        let got: Vec<f64> = got.iter().map(|&a| a as f64).collect();
        let e = rel_err(&got, &expect);
        eprintln!("C256 f32 error {e:.1e}");
        assert!(e < 2e-5, "f32 error {e}");
    }

    #[test]
    fn spread_and_sequential_blocks_agree_bitwise() {
        let (n, c, o, h, w) = (10, 20, 24, 23, 19);
        let pl = plan(n, c, o, h, w, [1, 1], [1, 1], 4);
        assert!(pl.tiles() > 2 * pl.tb, "several blocks");
        let x: Vec<f32> = filled(n * c * h * w, 7).iter().map(|&a| a as f32).collect();
        let wt: Vec<f32> = filled(o * c * 9, 8).iter().map(|&a| a as f32).collect();
        let mut a = vec![0f32; n * o * h * w];
        let mut b = vec![0f32; n * o * h * w];
        conv3x3_with(&pl, &x, &wt, None, &mut a, false);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        pool.install(|| conv3x3_with(&pl, &x, &wt, None, &mut b, true));
        assert_eq!(a, b);
    }

    #[test]
    fn avx512_and_portable_gathers_agree_bitwise() {
        use std::sync::atomic::Ordering;
        for (k, &(n, c, o, h, w, lo, hi)) in CASES.iter().enumerate() {
            let pl = plan(n, c, o, h, w, lo, hi, 4);
            let x: Vec<f32> = filled(n * c * h * w, 50 + k as u64).iter().map(|&a| a as f32).collect();
            let wt: Vec<f32> = filled(o * c * 9, 60 + k as u64).iter().map(|&a| a as f32).collect();
            let mut a = vec![0f32; pl.n * pl.o * pl.oh * pl.ow];
            let mut b = a.clone();
            conv3x3_with(&pl, &x, &wt, None, &mut a, false);
            FORCE_PORTABLE.store(true, Ordering::Relaxed);
            conv3x3_with(&pl, &x, &wt, None, &mut b, false);
            FORCE_PORTABLE.store(false, Ordering::Relaxed);
            assert_eq!(a, b, "case {k}");
        }
    }

    #[test]
    fn input_gradient_matches_adjoint_of_direct_sum() {
        use crate::conv::{ConvParams, Geom};
        for (k, &(n, c, o, h, w, lo, hi)) in CASES.iter().enumerate() {
            if lo.iter().chain(&hi).any(|&p| p < 0) {
                continue;
            }
            let p = ConvParams {
                stride: [1; 3],
                dilation: [1; 3],
                pad_lo: [0, lo[0] as usize, lo[1] as usize],
                pad_hi: [0, hi[0] as usize, hi[1] as usize],
                groups: 1,
            };
            let g = Geom::new("t", [n, c, 1, h, w], [o, c, 1, 3, 3], p).unwrap();
            let [_, oh, ow] = g.output;
            let dy = filled(n * o * oh * ow, 300 + k as u64);
            let wt = filled(o * c * 9, 400 + k as u64);
            let mut expect = vec![0.0; n * c * h * w];
            for ni in 0..n {
                for oi in 0..o {
                    for y in 0..oh {
                        for xo in 0..ow {
                            let d = dy[((ni * o + oi) * oh + y) * ow + xo];
                            for ci in 0..c {
                                for i in 0..3 {
                                    for j in 0..3 {
                                        let iy = y as isize + i as isize - lo[0];
                                        let ix = xo as isize + j as isize - lo[1];
                                        if iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize {
                                            expect[((ni * c + ci) * h + iy as usize) * w + ix as usize] +=
                                                d * wt[((oi * c + ci) * 3 + i) * 3 + j];
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let mut got = vec![f64::NAN; expect.len()];
            input_grad(&g, &dy, &wt, &mut got);
            let e = rel_err(&got, &expect);
            assert!(e < 1e-13, "case {k}: error {e}");
        }
    }
}
