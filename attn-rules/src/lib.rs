//! The rules of attn's plans, written once for the two crates that apply them: the
//! `attention!` macro decides with them at expansion (how large a kernel's blocks are, whether
//! it reads its keys in place, which rows see which keys), and `attn-runtime` applies the same
//! rules at run time to the kernels the macro emitted. A proc-macro crate can export nothing
//! but macros, so the rules live here, below both.
//!
//! Every function is a `const fn` over plain sizes.
//!
//! ```
//! use attn_rules::{key_block, query_block, visible_keys};
//! // 2,048 queries of depth 64: blocks of 516 query rows over blocks of 64 keys.
//! assert_eq!((query_block(Some(2048)), key_block(Some(2048), Some(64))), (516, 64));
//! // Under a causal mask aligned bottom right, the first of 2 queries over 4 keys sees 3.
//! assert_eq!(visible_keys(0, 2, 4, true), 3);
//! ```

#![no_std]

/// Query rows per micro-kernel tile: the rows whose scores, and whose products with the
/// values, one register-blocked micro-kernel computes together (6 rows x 4 vectors of
/// accumulators fill 24 of AVX-512's 32 registers). A query block is a whole number of tiles.
///
/// ```
/// assert_eq!(attn_rules::TILE_ROWS, 6);
/// ```
pub const TILE_ROWS: usize = 6;

/// Lanes of the widest vector of any instruction set the runtime dispatches to (AVX-512's
/// 16 f32): a key block is a whole number of such vectors.
///
/// ```
/// assert_eq!(attn_rules::WIDEST_LANES, 16);
/// ```
pub const WIDEST_LANES: usize = 16;

/// The most query rows per block: a block packs each block of keys once for all its rows,
/// so longer blocks read the keys less often (W3, 2,048 queries: 516 rows are 5-8% faster
/// than 132), while 516 rows of output and queries of depth 64 (260 KiB) still sit in the
/// core's L2 cache. 86 tiles.
///
/// ```
/// assert_eq!(attn_rules::QUERY_BLOCK % attn_rules::TILE_ROWS, 0);
/// ```
pub const QUERY_BLOCK: usize = 516;

/// Keys per block: 64 is 4 vectors of AVX-512 and 8 of AVX2, so one block size serves every
/// instruction set (blocks of 128 overflowed the 48 KiB L1 cache with keys and values).
///
/// ```
/// assert_eq!(attn_rules::KEY_BLOCK % attn_rules::WIDEST_LANES, 0);
/// ```
pub const KEY_BLOCK: usize = 64;

/// The most f32 that a block of packed keys, or of packed values, may hold (64 KiB each), so
/// that the scratch stays small on any thread's stack: deep keys or values get shorter key
/// blocks, down to one vector of 16.
///
/// ```
/// assert_eq!(attn_rules::PACKED_BLOCK * 4, 64 * 1024);
/// ```
pub const PACKED_BLOCK: usize = 16 * 1024;

/// The query rows of a block, for a kernel of `queries` query rows per problem (`None` when
/// the count is a const generic): short sequences get smaller blocks (and scratch), rounded
/// up to whole tiles; the runtime then splits a run of rows into equal blocks of at most this
/// many, so the length costs no balance.
///
/// ```
/// use attn_rules::query_block;
/// assert_eq!((query_block(Some(2)), query_block(Some(600)), query_block(None)), (6, 516, 516));
/// ```
#[inline]
pub const fn query_block(queries: Option<usize>) -> usize {
    match queries {
        Some(n) => match n.checked_next_multiple_of(TILE_ROWS) {
            Some(rows) if rows < QUERY_BLOCK => rows,
            _ => QUERY_BLOCK,
        },
        None => QUERY_BLOCK,
    }
}

/// The keys of a block, for a kernel of `keys` keys (`None` when a const generic) whose
/// deepest of keys and values is `deepest` (likewise): [`KEY_BLOCK`], halved while a packed
/// block would hold more than [`PACKED_BLOCK`] values (down to one widest vector), and
/// shortened to the keys there are. Always 16, 32 or 64: a divisor of [`KEY_BLOCK`], so that
/// the chunks the keys are split into ([`KEY_CHUNK`], [`BACKWARD_KEY_CHUNK`]) are whole
/// blocks.
///
/// ```
/// use attn_rules::key_block;
/// assert_eq!(key_block(Some(4096), Some(64)), 64);
/// assert_eq!(key_block(Some(4096), Some(512)), 32);
/// assert_eq!(key_block(Some(4096), Some(300)), 32);
/// assert_eq!(key_block(Some(20), Some(64)), 32);
/// assert_eq!(key_block(Some(40), Some(64)), 64);
/// assert_eq!(key_block(None, None), 64);
/// assert_eq!(key_block(Some(usize::MAX), Some(usize::MAX)), 16); // no overflow
/// ```
#[inline]
pub const fn key_block(keys: Option<usize>, deepest: Option<usize>) -> usize {
    let mut block = KEY_BLOCK;
    if let Some(depth) = deepest {
        while block > WIDEST_LANES && block.saturating_mul(depth) > PACKED_BLOCK {
            block /= 2;
        }
    }
    if let Some(keys) = keys {
        while block > WIDEST_LANES && block / 2 >= keys {
            block /= 2;
        }
    }
    block
}

/// Whether a kernel with `queries` query rows per problem reads its keys and values where
/// they are stored rather than packing them for each block: fewer rows than a tile (decoding
/// has one), where packing would cost more than the rows save.
///
/// ```
/// assert!(attn_rules::is_direct(1));
/// assert!(!attn_rules::is_direct(6));
/// ```
#[inline]
pub const fn is_direct(queries: usize) -> bool {
    queries < TILE_ROWS
}

/// Keys per chunk when a problem's keys are split ([`key_chunks`]): a multiple of every key
/// block, and long enough that a chunk's partial result (one row of output, a max and a sum
/// per query row) is small beside the keys and values it reads (1,024 keys of depth 128 are
/// 1 MiB of f32 keys and values against 580 bytes).
///
/// ```
/// assert_eq!(attn_rules::KEY_CHUNK % attn_rules::KEY_BLOCK, 0);
/// ```
pub const KEY_CHUNK: usize = 1024;

/// Keys per chunk of the backward pass ([`backward_key_chunks`]): each chunk's gradients of
/// the keys and values are computed by one thread, which also sums the chunk's share of the
/// queries' gradients apart; the chunks' shares are then added in order. Short enough that
/// a single long problem (one head of 2,048 positions) gives four chunks to share among
/// threads, long enough that the shares of the queries' gradients (one row per query per
/// chunk) are small beside the work of a chunk (512 keys per row).
///
/// ```
/// assert_eq!(attn_rules::BACKWARD_KEY_CHUNK % attn_rules::KEY_BLOCK, 0);
/// ```
pub const BACKWARD_KEY_CHUNK: usize = 512;

/// How many chunks of [`BACKWARD_KEY_CHUNK`] keys the backward pass splits each problem's
/// keys into: a rule of the shape alone, never of the threads, so that the gradients are
/// the same bits on any number of threads.
///
/// ```
/// use attn_rules::backward_key_chunks;
/// assert_eq!((backward_key_chunks(256), backward_key_chunks(2048)), (1, 4));
/// assert_eq!((backward_key_chunks(513), backward_key_chunks(0)), (2, 1));
/// ```
#[inline]
pub const fn backward_key_chunks(keys: usize) -> usize {
    if keys <= BACKWARD_KEY_CHUNK {
        1
    } else {
        keys.div_ceil(BACKWARD_KEY_CHUNK)
    }
}

/// How many chunks of [`KEY_CHUNK`] keys each problem's keys are split into, to be computed
/// apart (on any thread) and merged: more than one for a kernel whose problems have too few
/// query rows to share out among threads ([`is_direct`]: decoding) and at least two chunks'
/// worth of keys; 1 otherwise. A rule of the shape alone, never of the threads, so that a
/// kernel's results are the same bits on any number of threads.
///
/// ```
/// use attn_rules::key_chunks;
/// assert_eq!(key_chunks(1, 16384), 16);
/// assert_eq!(key_chunks(1, 2500), 3);
/// assert_eq!(key_chunks(1, 2047), 1);
/// assert_eq!(key_chunks(64, 16384), 1);
/// ```
#[inline]
pub const fn key_chunks(queries: usize, keys: usize) -> usize {
    if is_direct(queries) && keys >= 2 * KEY_CHUNK {
        keys.div_ceil(KEY_CHUNK)
    } else {
        1
    }
}

/// How many keys query `row` sees under a causal mask: the keys up to its position, with the
/// queries aligned to the first keys (`top_left`, query `i` sees `0..=i`) or to the last ones
/// (`bottom_right`, query `i` sees `0..=i + keys - queries`, none when that is negative).
///
/// ```
/// use attn_rules::visible_keys;
/// assert_eq!(visible_keys(0, 2, 4, false), 1);
/// assert_eq!(visible_keys(0, 2, 4, true), 3);
/// assert_eq!(visible_keys(0, 4, 2, true), 0);
/// ```
#[inline]
pub const fn visible_keys(row: usize, queries: usize, keys: usize, bottom_right: bool) -> usize {
    let seen = if bottom_right {
        (row + 1 + keys).saturating_sub(queries)
    } else {
        row + 1
    };
    if seen < keys { seen } else { keys }
}

/// The most bytes of scratch a tiled kernel may keep on the stack of each thread that runs
/// it: 256 KiB. Rust gives a new thread (and attn's pool its threads) 2 MiB of stack, and an
/// unoptimized build keeps several copies of the scratch in its frames: in a debug build on
/// two threads, 366 KB of scratch ran and 534 KB overflowed a pool thread's stack (optimized,
/// 918 KB ran). Keys and values of depth 1,024 each keep 213 KiB.
///
/// ```
/// assert_eq!(attn_rules::MAX_SCRATCH_BYTES, 256 << 10);
/// ```
pub const MAX_SCRATCH_BYTES: u64 = 256 << 10;

/// The bytes of scratch a tiled kernel keeps on the stack of each thread, for blocks of
/// `query_block` query rows over `key_block` keys of depth `depth` and value depth
/// `value_depth`, with a block of packed values or without one (`packs_values`): the packed
/// keys, the packed values, one tile of scores, a running max, 16 partial sums and (for the
/// weights) an inverse sum per row of a query block, and the zero-padded copies of a tile's
/// last rows of queries, weights and output. Saturates rather than overflowing.
///
/// ```
/// use attn_rules::tiled_scratch_bytes;
/// // Depth 64, blocks of 516 query rows over 64 keys.
/// assert_eq!(tiled_scratch_bytes(516, 64, 64, 64, true), 76_064);
/// assert!(tiled_scratch_bytes(516, 16, 1024, 1024, true) <= attn_rules::MAX_SCRATCH_BYTES);
/// assert!(tiled_scratch_bytes(516, 16, 2048, 2048, true) > attn_rules::MAX_SCRATCH_BYTES);
/// ```
pub const fn tiled_scratch_bytes(
    query_block: u64,
    key_block: u64,
    depth: u64,
    value_depth: u64,
    packs_values: bool,
) -> u64 {
    let tile = TILE_ROWS as u64;
    let packed_values = if packs_values {
        key_block.saturating_mul(value_depth)
    } else {
        0
    };
    let f32s = key_block
        .saturating_mul(depth)
        .saturating_add(packed_values)
        .saturating_add(key_block.saturating_mul(tile))
        .saturating_add(query_block.saturating_mul(2 + WIDEST_LANES as u64))
        .saturating_add(
            tile.saturating_mul(depth.saturating_add(key_block).saturating_add(value_depth)),
        );
    f32s.saturating_mul(4)
}

/// Lanes of the registers of the in-register path for tiny problems (AVX-512VL's 256-bit
/// registers).
///
/// ```
/// assert_eq!(attn_rules::REGISTER_LANES, 8);
/// ```
pub const REGISTER_LANES: usize = 8;

/// Whether one problem of `queries` x `keys` with depths `depth` and `value_depth` fits the
/// in-register path: its `queries x keys` scores, and its `queries x (value_depth + 1)`
/// outputs with their row sums, one register of [`REGISTER_LANES`] each; its queries, keys
/// and values two registers each.
///
/// ```
/// use attn_rules::fits_in_registers;
/// assert!(fits_in_registers(2, 4, 3, 3)); // the textbook example
/// assert!(!fits_in_registers(4, 4, 3, 3));
/// assert!(!fits_in_registers(1, 1, 1, usize::MAX)); // no overflow
/// ```
#[inline]
pub const fn fits_in_registers(
    queries: usize,
    keys: usize,
    depth: usize,
    value_depth: usize,
) -> bool {
    let table = 2 * REGISTER_LANES;
    // Each size is at most 16 before any product is taken, so none overflows.
    within(queries, table)
        && within(keys, table)
        && within(depth, table)
        && within(value_depth, table)
        && queries * keys <= REGISTER_LANES
        && queries * (value_depth + 1) <= REGISTER_LANES
        && queries * depth <= table
        && keys * depth <= table
        && keys * value_depth <= table
}

/// Whether `size` is between 1 and `most`.
#[inline]
const fn within(size: usize, most: usize) -> bool {
    size >= 1 && size <= most
}
