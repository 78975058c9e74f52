//! Recycled memory for large kernel outputs (`oxinet._core.empty`).
//!
//! A fresh large NumPy array costs one page fault per page on its first write, and on
//! this kind of virtual machine those faults are serialised by the host: a fresh 51 MB
//! pooling gradient spent more time faulting (1.9 ms) than the kernel that fills it
//! (1.6 ms), whichever threads touch it first. Ops that return a large new array take
//! it from here instead: the memory of a dropped output goes back into a small cache
//! and the next output of about the same size reuses it (already mapped, often still
//! in cache), the way ONNX Runtime's arena and PyTorch's caching allocators do.
//!
//! The arrays are ordinary writeable, C-contiguous NumPy arrays whose `base` is a
//! `RecycledBuffer`; their contents are uninitialised (like `np.empty`). The cache
//! keeps at most `OXINET_BUFFER_CACHE_MB` MiB (default 512; 0 disables it) of blocks
//! of at least 1 MiB; `release_buffers()` empties it. Blocks are only reused when no
//! array refers to them any more (the base object's refcount owns the block).

use numpy::ndarray::{ArrayViewD, IxDyn};
use numpy::{Element, PyArrayDyn};
use pyo3::prelude::*;
use std::alloc::{alloc, dealloc, Layout};
use std::ptr::NonNull;
use std::sync::{Mutex, OnceLock};

/// Blocks smaller than this come from NumPy's own allocator.
const MIN_BYTES: usize = 1 << 20;
const ALIGN: usize = 64;
/// Sizes are rounded up to whole 2 MiB huge pages, so outputs of similar size share blocks.
const GRAIN: usize = 2 << 20;

struct Block {
    ptr: NonNull<u8>,
    bytes: usize,
}

// SAFETY: a Block is the unique owner of its allocation (like a Box<[u8]>).
unsafe impl Send for Block {}
unsafe impl Sync for Block {}

impl Block {
    fn new(bytes: usize) -> Option<Block> {
        let layout = Layout::from_size_align(bytes, ALIGN).ok()?;
        // SAFETY: bytes >= MIN_BYTES > 0.
        let ptr = NonNull::new(unsafe { alloc(layout) })?;
        oxinet_kernels::memory::advise_huge_pages(ptr.as_ptr(), bytes);
        Some(Block { ptr, bytes })
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: allocated in Block::new with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), Layout::from_size_align_unchecked(self.bytes, ALIGN)) };
    }
}

struct Cache {
    blocks: Vec<Block>,
    bytes: usize,
}

static CACHE: Mutex<Cache> = Mutex::new(Cache { blocks: Vec::new(), bytes: 0 });

fn limit() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("OXINET_BUFFER_CACHE_MB")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(512)
            .saturating_mul(1 << 20)
    })
}

/// A block of at least `bytes` (rounded to the grain): the smallest cached one that is
/// not more than 25% larger, else a new allocation.
fn take(bytes: usize) -> Option<Block> {
    let want = bytes.div_ceil(GRAIN).checked_mul(GRAIN)?;
    {
        let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        let best = c
            .blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| b.bytes >= want && b.bytes - want <= want / 4)
            .min_by_key(|(_, b)| b.bytes)
            .map(|(i, _)| i);
        if let Some(i) = best {
            let b = c.blocks.remove(i);
            c.bytes -= b.bytes;
            return Some(b);
        }
    }
    Block::new(want)
}

/// Return a block to the cache, evicting the oldest ones beyond the limit.
fn give(block: Block) {
    let lim = limit();
    if block.bytes > lim {
        return;
    }
    let evicted: Vec<Block> = {
        let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        c.bytes += block.bytes;
        c.blocks.push(block);
        let mut n = 0;
        let mut total = c.bytes;
        while total > lim {
            total -= c.blocks[n].bytes;
            n += 1;
        }
        c.bytes = total;
        c.blocks.drain(..n).collect()
    };
    drop(evicted); // freed outside the lock
}

/// Owner of a recycled block: the `base` of the arrays made by [`empty`].
#[pyclass(frozen, module = "oxinet._core")]
pub struct RecycledBuffer {
    block: Mutex<Option<Block>>,
}

impl Drop for RecycledBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.block.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            give(b);
        }
    }
}

#[pymethods]
impl RecycledBuffer {
    /// Size of the block in bytes.
    #[getter]
    fn nbytes(&self) -> usize {
        self.block.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, |b| b.bytes)
    }
}

/// An uninitialised C-contiguous array of `shape`; large ones reuse recycled memory.
pub fn empty<'py, T: Element>(py: Python<'py>, shape: &[usize]) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let bytes = n.and_then(|n| n.checked_mul(std::mem::size_of::<T>()));
    let block = match bytes {
        Some(b) if b >= MIN_BYTES && limit() > 0 => take(b),
        _ => None,
    };
    let Some(block) = block else {
        // SAFETY: the caller's kernel writes every element (np.empty semantics).
        return Ok(unsafe { PyArrayDyn::<T>::new(py, IxDyn(shape), false) });
    };
    let ptr = block.ptr.as_ptr() as *const T;
    // SAFETY: the block holds at least n elements, aligned to 64 bytes; it is owned by
    // the container, which is the new array's base and so outlives every view of it.
    let view = unsafe { ArrayViewD::from_shape_ptr(IxDyn(shape), ptr) };
    let owner = Bound::new(py, RecycledBuffer { block: Mutex::new(Some(block)) })?;
    Ok(unsafe { PyArrayDyn::borrow_from_array(&view, owner.into_any()) })
}

/// `empty(shape, dtype)`: uninitialised C-contiguous float32/float64/int64 array.
#[pyfunction(name = "empty")]
fn py_empty<'py>(py: Python<'py>, shape: Vec<usize>, dtype: &str) -> PyResult<Bound<'py, PyAny>> {
    Ok(match dtype {
        "float32" => empty::<f32>(py, &shape)?.into_any(),
        "float64" => empty::<f64>(py, &shape)?.into_any(),
        "int64" => empty::<i64>(py, &shape)?.into_any(),
        _ => return Err(pyo3::exceptions::PyTypeError::new_err(format!("empty: unsupported dtype {dtype}"))),
    })
}

/// Free every cached block; returns the number of bytes released.
#[pyfunction]
fn release_buffers() -> usize {
    let blocks = {
        let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        c.bytes = 0;
        std::mem::take(&mut c.blocks)
    };
    blocks.iter().map(|b| b.bytes).sum()
}

/// Bytes currently held by the cache (not counting blocks in use).
#[pyfunction]
fn cached_buffer_bytes() -> usize {
    CACHE.lock().unwrap_or_else(|e| e.into_inner()).bytes
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RecycledBuffer>()?;
    m.add_function(wrap_pyfunction!(py_empty, m)?)?;
    m.add_function(wrap_pyfunction!(release_buffers, m)?)?;
    m.add_function(wrap_pyfunction!(cached_buffer_bytes, m)?)?;
    Ok(())
}
