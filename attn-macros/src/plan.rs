//! How a checked kernel is computed: straight-line code or a tiled loop nest.

use crate::check::{Kernel, Size};

/// The largest kernel, in multiply-adds over all batches and heads, that is fully unrolled.
/// Above it the code would grow with the shape; the tiled loop nest does not.
pub const UNROLL_LIMIT: u64 = 1024;

/// Queries per tile in the tiled loop nest: each keeps a running max and sum.
const TILE_QUERIES: u64 = 4;

/// Keys per block: the block's scores are the only scratch the tiled kernel keeps.
const TILE_KEYS: u64 = 64;

/// The strategy chosen for one kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Every score, exponential and product written out: for shapes known and tiny.
    Unrolled,
    /// Query tiles of `tile_queries` rows; key blocks of `tile_keys` keys, through which the
    /// softmax runs online, so no `queries x keys` score matrix is ever stored.
    Tiled { tile_queries: u64, tile_keys: u64 },
}

/// Chooses the plan of `kernel` from its shape.
pub fn plan(kernel: &Kernel) -> Plan {
    let known = |size: &Size| match size {
        Size::Known(n) => Some(*n),
        Size::Generic(_) => None,
    };
    let multiply_adds = || -> Option<u64> {
        let heads = kernel.heads().map_or(Some(1), known)?;
        let rows = known(kernel.batch())?
            .checked_mul(heads)?
            .checked_mul(known(kernel.queries())?)?
            .checked_mul(known(kernel.keys())?)?;
        rows.checked_mul(known(kernel.depth())?.checked_add(known(kernel.value_depth())?)?)
    };
    match multiply_adds() {
        Some(n) if n <= UNROLL_LIMIT => Plan::Unrolled,
        _ => Plan::Tiled {
            tile_queries: known(kernel.queries()).map_or(TILE_QUERIES, |n| n.min(TILE_QUERIES)),
            tile_keys: known(kernel.keys()).map_or(TILE_KEYS, |n| n.min(TILE_KEYS)),
        },
    }
}
