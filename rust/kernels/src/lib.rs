//! oxinet's compute kernels.
//!
//! Plain functions over `ndarray` views and slices, returning `Result<_, KernelError>`.
//! Nothing here knows about Python: the `oxinet-py` crate wraps these functions, and
//! the Python layer decides dtype, shape and contiguity policy.

pub mod activation;
pub mod attention;
pub mod conv;
pub mod detection;
pub mod embedding;
pub mod error;
pub mod gemm;
pub mod interpolate;
pub mod layout;
pub mod memory;
pub mod norm;
pub mod optim;
pub mod parallel;
pub mod pool;
pub mod rnn;
mod scratch;
pub mod simd;
pub mod softmax;
pub mod vmath;

pub use error::KernelError;
