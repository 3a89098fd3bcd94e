//! The shape of a micro-kernel's tile: its query rows, and the key or value vectors of one
//! pass, which every stage is blocked by.

use crate::simd::Simd;

/// Query rows per micro-kernel tile: attn's shared rule (`attn_rules::TILE_ROWS`), which the
/// macro sizes query blocks by.
pub const TILE_ROWS: usize = attn_rules::TILE_ROWS;

/// Vectors per row in one pass of a micro-kernel, for `S`: with AVX-512's 32 registers, 6
/// rows x 4 vectors of accumulators (more than twice the FMA latency times the two FMA
/// ports, so the ports never wait) plus 4 loads and a broadcast; with 16 registers, 6 rows x
/// 2 vectors.
#[inline(always)]
pub(crate) const fn pass_vectors<S: Simd>() -> usize {
    if S::LANES >= 16 { 4 } else { 2 }
}
