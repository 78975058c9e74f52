//! Large scratch buffers kept between calls instead of being freed and faulted in again.
//!
//! A training step allocates, say, the recurrent backward's gate-gradient buffer (13 MB
//! for LSTM T100 B32 H256) or a convolution's unfolded weights (4 MB for C256 over 2x2
//! planes) and frees it before the next step; the allocator often hands such blocks back
//! to the kernel, so every step paid page faults and the kernel's zeroing of fresh pages
//! for memory whose contents are overwritten anyway. Here a few buffers are parked in a
//! pool and reused. Their contents are stale: users must write every element they read.

use crate::gemm::Scalar;
use std::sync::Mutex;

/// Buffers parked at most (the GRU's backward uses two at a time; a model mixes several
/// users).
const KEEP: usize = 4;
/// Buffers larger than this are freed, not parked.
const KEEP_MAX_BYTES: usize = 64 << 20;

static POOL: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

/// `n` elements of uninitialised-in-meaning (stale but valid) float storage.
pub(crate) struct Scratch<T> {
    buf: Vec<u64>,
    len: usize,
    _t: std::marker::PhantomData<T>,
}

impl<T: Scalar> Scratch<T> {
    pub(crate) fn take(n: usize) -> Self {
        debug_assert!(std::mem::size_of::<T>() <= 8 && 8 % std::mem::size_of::<T>() == 0);
        let words = (n * std::mem::size_of::<T>()).div_ceil(8);
        let reused = if words * 8 <= KEEP_MAX_BYTES && words > 0 {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            // The smallest parked buffer that is large enough.
            let pick = pool
                .iter()
                .enumerate()
                .filter(|(_, v)| v.len() >= words)
                .min_by_key(|(_, v)| v.len())
                .map(|(i, _)| i);
            pick.map(|i| pool.swap_remove(i))
        } else {
            None
        };
        let buf = reused.unwrap_or_else(|| crate::memory::zeroed_vec::<u64>(words));
        Scratch {
            buf,
            len: n,
            _t: std::marker::PhantomData,
        }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: the buffer holds at least `len * size_of::<T>()` bytes, u64 storage is
        // aligned for f32 and f64 (the only Scalar types), and every bit pattern is a
        // valid value of either.
        unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().cast::<T>(), self.len) }
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        // SAFETY: as in `as_mut_slice`.
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr().cast::<T>(), self.len) }
    }
}

impl<T> Drop for Scratch<T> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if buf.is_empty() || buf.len() * 8 > KEEP_MAX_BYTES {
            return;
        }
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < KEEP {
            pool.push(buf);
        } else if let Some(small) = pool.iter_mut().min_by_key(|v| v.len()) {
            // Keep the larger buffers.
            if small.len() < buf.len() {
                *small = buf;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_sized() {
        let a = Scratch::<f32>::take(1000);
        assert_eq!(a.as_slice().len(), 1000);
        drop(a);
        let mut b = Scratch::<f64>::take(10);
        assert_eq!(b.as_mut_slice().len(), 10);
        b.as_mut_slice().fill(1.5);
        assert!(b.as_slice().iter().all(|&v| v == 1.5));
        let c = Scratch::<f32>::take(0);
        assert!(c.as_slice().is_empty());
    }
}
