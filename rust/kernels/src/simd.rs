//! Which SIMD instruction set the running CPU offers.
//!
//! oxinet is never compiled with `target-cpu=native`; kernels that carry their own
//! SIMD code compile several versions (`#[target_feature]`) and pick one with
//! [`level`] at run time. The `gemm` crate does the same internally.

/// SIMD levels in increasing order of width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// No vector extension oxinet uses (plain scalar code, auto-vectorised for SSE2/NEON).
    Portable,
    /// x86-64 AVX2 with FMA (8 floats per register).
    Avx2Fma,
    /// x86-64 AVX-512 F/BW/DQ/VL (16 floats per register).
    Avx512,
    /// aarch64 Advanced SIMD (4 floats per register).
    Neon,
}

impl SimdLevel {
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Portable => "portable",
            SimdLevel::Avx2Fma => "avx2+fma",
            SimdLevel::Avx512 => "avx512",
            SimdLevel::Neon => "neon",
        }
    }
}

/// The widest level the running CPU supports (detected once, then cached).
pub fn level() -> SimdLevel {
    use std::sync::OnceLock;
    static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
    *LEVEL.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> SimdLevel {
    if std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512dq")
        && std::is_x86_feature_detected!("avx512vl")
    {
        SimdLevel::Avx512
    } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        SimdLevel::Avx2Fma
    } else {
        SimdLevel::Portable
    }
}

#[cfg(target_arch = "aarch64")]
fn detect() -> SimdLevel {
    if std::arch::is_aarch64_feature_detected!("neon") {
        SimdLevel::Neon
    } else {
        SimdLevel::Portable
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detect() -> SimdLevel {
    SimdLevel::Portable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_is_stable_and_named() {
        let a = level();
        assert_eq!(a, level());
        assert!(!a.name().is_empty());
    }
}
