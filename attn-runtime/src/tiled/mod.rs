//! The micro-kernels of the tiled plan and the driver that runs a kernel's blocks.
//!
//! A tiled kernel splits each attention problem (one batch entry and head) into blocks of
//! query rows. For each block it walks the keys in blocks of `KB`, and for each tile of up to
//! [`TILE_ROWS`] query rows:
//!
//! 1. [`scores`]: `S = Q_tile · K_blockᵀ · scale`, the tile's scores, from keys packed as
//!    `[depth][key]` by [`pack_keys`] so that a vector of scores is one fused multiply-add
//!    per depth step (register-blocked: 6 rows x 4 vectors of accumulators on AVX-512, 6 x 2
//!    with 16 registers); the packed keys, a copy of the block's values ([`pack_values`]) and
//!    the tile's scores sit on cache line boundaries ([`Aligned`]);
//! 2. [`online_softmax`]: per row, the running max `m` and sum `l` advance over the block:
//!    `m' = max(m, max_j S_j)`, `P_j = exp(S_j - m')`, `l' = l · exp(m - m') + Σ_j P_j`, and
//!    the output row, which is the accumulator, is rescaled by `exp(m - m')`; `m` moves
//!    only when the block exceeds it by more than 4 (`m' = m` otherwise: any reference
//!    gives the same softmax, and this one spares most rescalings);
//! 3. [`accumulate_values`]: `O_tile += P · V_block`, blocked the same way (`O_tile =` for
//!    the first block the tile sees: the output is never zeroed first, see [`Output`]);
//!
//! and at the end [`normalize`] divides each output row by its sum. No score matrix larger
//! than one tile is ever stored. Each row's arithmetic is the same whatever tile or thread
//! it falls in, so results do not depend on the number of threads.
//!
//! Each step has its file: `scores.rs` (1), `masks.rs` (the causal mask, the bias, the `mask`
//! option and the soft cap, applied to the scores before 2), `softmax.rs` (2, and the end:
//! [`normalize`], the log-sum-exp and the attention weights) and `values.rs` (3);
//! `prefetch.rs` fetches the next problem's operands ahead ([`Ahead`]); `tile.rs` holds the
//! tile's shape. `loop_nest.rs` writes the loop nest once for every kernel ([`Tiled`]).
//! `driver.rs`, above them, splits a kernel's rows into blocks and runs them ([`Kernel`],
//! [`run`]); `chunks.rs` splits the keys of decoding kernels into chunks run apart and
//! merged ([`merge_partials`]). The packing of keys and values is in the vector layer,
//! `simd/pack.rs`, whose transposes do it.
//!
//! [`scores`]: fn@scores
//! [`pack_keys`]: crate::simd::pack::pack_keys
//! [`pack_values`]: crate::simd::pack::pack_values
//! [`Aligned`]: crate::simd::pack::Aligned

mod backward;
mod chunks;
mod driver;
mod gradients;
mod loop_nest;
mod masks;
mod prefetch;
mod scores;
mod softmax;
mod tile;
mod values;

pub use backward::backward;
pub use chunks::{PartialRow, merge_partials};
pub use driver::{Kernel, Rows, block_length, is_direct, run};
pub use gradients::{row_dots, rows_on_lines};
pub use loop_nest::{Alignment, Operands, Problems, Tiled, default_scale};
pub use masks::{add_bias, keep_only, mask_causal, softcap_scores, visible_keys};
pub use prefetch::{Ahead, fetched_by_row, next_block};
pub use scores::{scores, scores_direct};
pub use softmax::{
    MAX_LANES, Output, inverse_sums, log_sum_exp, normalize, online_softmax, write_weights,
};
pub use tile::TILE_ROWS;
pub(crate) use tile::pass_vectors;
pub use values::{accumulate_values, accumulate_values_by_row};
