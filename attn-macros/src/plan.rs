//! How a checked kernel is computed: straight-line code or a tiled loop nest.

use crate::check::{Kernel, Size};

/// The largest kernel, in multiply-adds over all batches and heads, that is fully unrolled.
/// Above it the code would grow with the shape; the tiled loop nest does not.
pub const UNROLL_LIMIT: u64 = 1024;

/// The most query rows per block: a block packs each block of keys once for all its rows, so
/// longer blocks read the keys less often (W3, 2,048 queries: 516 rows are 5-8% faster than
/// 132 in A/B runs of bench/examples/profile_w3.rs), while 516 rows of output and queries of
/// depth 64 (260 KiB) still sit in the core's L2 cache. The runtime splits a thread's run of
/// rows into equal blocks of at most this many, so the length costs no balance. 86 tiles.
const QUERY_BLOCK: u64 = 516;

/// Query rows per micro-kernel tile (the runtime's `TILE_ROWS`): a block is a multiple.
pub const TILE_ROWS: u64 = 6;

/// Keys per block: 64 is 4 vectors of AVX-512 (16 lanes) and 8 of AVX2 (8 lanes), so one
/// block size serves every instruction set the runtime dispatches to. A block is always a
/// whole number of 16-lane vectors.
const KEY_BLOCK: u64 = 64;
const WIDEST_LANES: u64 = 16;

/// The most f32 a block of packed keys, or of packed values, may hold (64 KiB each), so that
/// the scratch stays small on any thread's stack: deep keys or values get shorter key
/// blocks, down to one vector of 16.
const PACKED_BLOCK: u64 = 16 * 1024;

/// The strategy chosen for one kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Every score, exponential and product written out: for shapes known and tiny.
    Unrolled,
    /// Blocks of `query_block` query rows, each walking the keys in blocks of `key_block`
    /// with an online softmax, so no `queries x keys` score matrix is ever stored.
    Tiled { query_block: u64, key_block: u64 },
    /// One query row at a time in plain f64 arithmetic, for `dtype = f64`: the vector layer
    /// is f32.
    Scalar,
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
    // Valid lengths, masks and biases are known only at run time, while an unrolled kernel's
    // key lists are fixed at expansion: those kernels are tiled, whatever their size.
    let runtime_keys =
        kernel.options.valid_lengths.is_some() || kernel.mask.is_some() || kernel.bias.is_some();
    if let Some((crate::options::Dtype::F64, _)) = kernel.options.dtype {
        return Plan::Scalar;
    }
    match multiply_adds() {
        Some(n) if n <= UNROLL_LIMIT && !runtime_keys => Plan::Unrolled,
        _ => Plan::Tiled {
            // Short sequences get smaller blocks (and scratch), rounded up to whole tiles.
            query_block: known(kernel.queries()).map_or(QUERY_BLOCK, |n| {
                n.next_multiple_of(TILE_ROWS).min(QUERY_BLOCK)
            }),
            key_block: {
                let deepest = [kernel.depth(), kernel.value_depth()]
                    .into_iter()
                    .filter_map(known)
                    .max();
                let by_depth = deepest.map_or(KEY_BLOCK, |depth| {
                    (PACKED_BLOCK / depth.max(1) / WIDEST_LANES * WIDEST_LANES)
                        .clamp(WIDEST_LANES, KEY_BLOCK)
                });
                known(kernel.keys())
                    .map_or(by_depth, |n| n.next_multiple_of(WIDEST_LANES).min(by_depth))
            },
        },
    }
}
