//! oxinet's compute kernels.
//!
//! Plain functions over `ndarray` views and slices, returning `Result<_, KernelError>`.
//! Nothing here knows about Python: the `oxinet-py` crate wraps these functions, and
//! the Python layer decides dtype, shape and contiguity policy.

pub mod detection;
pub mod error;
pub mod gemm;
pub mod parallel;
pub mod simd;

pub use error::KernelError;
