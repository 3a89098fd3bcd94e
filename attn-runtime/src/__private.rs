//! What generated kernels call. Not a public API: names and signatures change with the
//! macro, which is always the same version as this crate.

pub use crate::kernels::{
    Kernel, TILE_ROWS, accumulate_values, normalize, online_softmax, pack_keys, run, scores,
};
pub use crate::simd::Simd;

/// `1 / sqrt(depth)`, the default scale, for kernels whose depth is a const generic.
///
/// ```
/// assert_eq!(attn_runtime::__private::default_scale(4), 0.5);
/// ```
#[inline]
pub fn default_scale(depth: usize) -> f32 {
    (1.0 / (depth as f64).sqrt()) as f32
}

/// The weights of one row of an unrolled kernel: `exp` of each shifted score. Written over
/// an array so that the compiler computes the exponentials of a row in one vector.
///
/// ```
/// let weights = attn_runtime::__private::exp_row([0.0, -1.0]);
/// assert_eq!(weights[0], 1.0);
/// ```
#[inline(always)]
pub fn exp_row<const N: usize>(shifted: [f32; N]) -> [f32; N] {
    shifted.map(crate::simd::exp_f32)
}
