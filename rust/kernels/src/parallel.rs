//! oxinet's own rayon thread pool.
//!
//! Every kernel that is worth parallelising runs inside [`run`], which executes it on
//! this pool (never rayon's global pool, so oxinet does not fight a host application
//! over it). Worker threads flush subnormal floats to zero; small kernels that run
//! inline on the caller's thread get the same floating-point mode for their duration
//! only, so results never depend on which path was taken.
//!
//! The pool remembers the process id that built it: after `fork()` the child has no
//! worker threads, so the first kernel call in the child builds a fresh pool.

use rayon::{ThreadPool, ThreadPoolBuilder};
use std::sync::{Arc, RwLock};

/// Work (in multiply-adds or element visits) below which a kernel runs inline on the
/// calling thread: handing a job to the pool costs a few microseconds.
pub const INLINE_WORK: usize = 1 << 15;

struct PoolState {
    pool: Arc<ThreadPool>,
    pid: u32,
    threads: usize,
}

static POOL: RwLock<Option<PoolState>> = RwLock::new(None);
static REQUESTED: RwLock<Option<usize>> = RwLock::new(None);

fn default_threads() -> usize {
    if let Some(n) = REQUESTED.read().ok().and_then(|g| *g) {
        return n;
    }
    std::env::var("OXINET_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn build(threads: usize) -> PoolState {
    let pool = ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("oxinet-{i}"))
        .start_handler(|_| set_flush_denormals())
        .build()
        .expect("oxinet: cannot start worker threads");
    PoolState { pool: Arc::new(pool), pid: std::process::id(), threads }
}

/// The pool for this process, built on first use (and again after `fork`).
pub fn pool() -> Arc<ThreadPool> {
    let pid = std::process::id();
    if let Ok(guard) = POOL.read() {
        if let Some(state) = guard.as_ref() {
            if state.pid == pid {
                return state.pool.clone();
            }
        }
    }
    let mut guard = POOL.write().unwrap_or_else(|e| e.into_inner());
    match guard.as_ref() {
        Some(state) if state.pid == pid => state.pool.clone(),
        _ => {
            if let Some(stale) = guard.take() {
                // Inherited from the parent across fork(): its threads do not exist here,
                // so it must not be dropped (that would signal threads that are gone).
                std::mem::forget(stale);
            }
            let state = build(default_threads());
            let pool = state.pool.clone();
            *guard = Some(state);
            pool
        }
    }
}

/// Number of threads kernels use.
pub fn num_threads() -> usize {
    let pid = std::process::id();
    if let Ok(guard) = POOL.read() {
        if let Some(state) = guard.as_ref() {
            if state.pid == pid {
                return state.threads;
            }
        }
    }
    default_threads()
}

/// Rebuild the pool with `n` threads (n >= 1). Calls already running keep the old pool.
pub fn set_num_threads(n: usize) -> Result<(), crate::KernelError> {
    if n == 0 {
        return Err(crate::KernelError::param("num_threads must be >= 1, got 0"));
    }
    *REQUESTED.write().unwrap_or_else(|e| e.into_inner()) = Some(n);
    let mut guard = POOL.write().unwrap_or_else(|e| e.into_inner());
    let stale = guard.take();
    *guard = Some(build(n));
    if let Some(stale) = stale {
        if stale.pid != std::process::id() {
            std::mem::forget(stale);
        }
    }
    Ok(())
}

/// Run `f` on oxinet's pool, or inline on the calling thread (with subnormals flushed)
/// when `work` is small. `work` is a rough count of multiply-adds.
///
/// With one thread configured, `f` always runs on the pool's single worker, so that
/// rayon parallel iterators inside `f` stay on that worker instead of falling through
/// to rayon's global pool; inline calls (small `work`, several threads) run in the
/// calling thread's own one-thread pool for the same reason.
pub fn run<R: Send>(work: usize, f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() && in_oxinet_pool() {
        return f();
    }
    if num_threads() == 1 {
        return pool().install(f);
    }
    if work < INLINE_WORK {
        return with_flushed_denormals(|| inline(f));
    }
    pool().install(f)
}

thread_local! {
    /// A one-thread rayon pool whose only worker is this very thread (it starts no OS
    /// thread). Inline work runs inside it, so parallel iterators there run in order on
    /// this thread instead of reaching (and starting) rayon's global pool. `None` when
    /// this thread already belongs to another rayon pool. Rayon never frees such a pool's
    /// registry: one small allocation per calling thread.
    static INLINE: Option<ThreadPool> = ThreadPoolBuilder::new().num_threads(1).use_current_thread().build().ok();
}

/// `f` on the calling thread, inside its one-thread [`INLINE`] pool when there is one.
fn inline<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    INLINE.with(|p| match p {
        Some(p) => p.install(f),
        None => f(),
    })
}

fn in_oxinet_pool() -> bool {
    std::thread::current().name().is_some_and(|n| n.starts_with("oxinet-"))
}

/// Run `f` on the current thread with flush-to-zero / denormals-are-zero set,
/// restoring the caller's floating-point mode afterwards.
pub fn with_flushed_denormals<R>(f: impl FnOnce() -> R) -> R {
    let saved = fp_mode();
    set_flush_denormals();
    struct Restore(u64);
    impl Drop for Restore {
        fn drop(&mut self) {
            set_fp_mode(self.0);
        }
    }
    let _restore = Restore(saved);
    f()
}

/// True when the current thread flushes subnormal results and inputs to zero.
pub fn denormals_flushed() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        fp_mode() & 0x8040 == 0x8040
    }
    #[cfg(target_arch = "aarch64")]
    {
        fp_mode() & (1 << 24) != 0
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
fn fp_mode() -> u64 {
    let mut csr: u32 = 0;
    // SAFETY: stmxcsr only stores the SSE control/status register to the given address.
    unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack)) };
    csr as u64
}

#[cfg(target_arch = "x86_64")]
fn set_fp_mode(mode: u64) {
    let csr = mode as u32;
    // SAFETY: ldmxcsr loads a value previously read with stmxcsr (plus FTZ/DAZ bits).
    unsafe { core::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack)) };
}

#[cfg(target_arch = "x86_64")]
fn set_flush_denormals() {
    // Bit 15: flush-to-zero, bit 6: denormals-are-zero.
    set_fp_mode(fp_mode() | 0x8040);
}

#[cfg(target_arch = "aarch64")]
fn fp_mode() -> u64 {
    let fpcr: u64;
    // SAFETY: reading FPCR has no side effects.
    unsafe { core::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack)) };
    fpcr
}

#[cfg(target_arch = "aarch64")]
fn set_fp_mode(mode: u64) {
    // SAFETY: writes back a value read from FPCR, possibly with the FZ bit set.
    unsafe { core::arch::asm!("msr fpcr, {}", in(reg) mode, options(nomem, nostack)) };
}

#[cfg(target_arch = "aarch64")]
fn set_flush_denormals() {
    set_fp_mode(fp_mode() | (1 << 24));
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn fp_mode() -> u64 {
    0
}
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn set_fp_mode(_: u64) {}
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn set_flush_denormals() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_flush_denormals_and_inline_restores_mode() {
        let before = denormals_flushed();
        assert!(pool().install(denormals_flushed) || cfg!(not(any(target_arch = "x86_64", target_arch = "aarch64"))));
        let inside = with_flushed_denormals(denormals_flushed);
        assert!(inside || cfg!(not(any(target_arch = "x86_64", target_arch = "aarch64"))));
        assert_eq!(before, denormals_flushed());
    }

    #[test]
    fn one_thread_keeps_parallel_iterators_on_oxinets_pool() {
        use rayon::prelude::*;
        set_num_threads(1).unwrap();
        let names: Vec<String> = run(1, || {
            (0..64).into_par_iter().map(|_| std::thread::current().name().unwrap_or("").to_string()).collect()
        });
        assert!(names.iter().all(|n| n == "oxinet-0"), "{names:?}");
        set_num_threads(2).unwrap();
        let big: Vec<String> = run(usize::MAX, || {
            (0..64).into_par_iter().map(|_| std::thread::current().name().unwrap_or("").to_string()).collect()
        });
        assert!(big.iter().all(|n| n.starts_with("oxinet-")), "{big:?}");
    }

    #[test]
    fn zero_threads_is_refused() {
        assert!(set_num_threads(0).is_err());
    }
}
