//! The one error type every kernel returns.

use thiserror::Error;

/// A kernel refused its arguments. The message names the argument and the shapes,
/// so the binding layer can pass it to Python unchanged as a `ValueError`.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// Two arguments whose shapes must agree do not.
    #[error("{0}")]
    Shape(String),
    /// A parameter (stride, padding, threshold, ...) is out of its domain.
    #[error("{0}")]
    Param(String),
}

impl KernelError {
    pub fn shape(msg: impl Into<String>) -> Self {
        KernelError::Shape(msg.into())
    }
    pub fn param(msg: impl Into<String>) -> Self {
        KernelError::Param(msg.into())
    }
}

pub type KernelResult<T> = Result<T, KernelError>;
