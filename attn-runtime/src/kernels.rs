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

use crate::simd::{
    Isa, Lane, Simd, WithSimd, dispatch, exp_of_nonpositive, exp_of_nonpositive_in_bulk, prefetch,
    tanh,
};

/// Query rows per micro-kernel tile: 6, the most rows whose accumulators (6 x 4 vectors),
/// with a pass's 4 loads and a broadcast, fit AVX-512's 32 registers. Each load of keys or
/// values then serves 6 rows: measured against tiles of 4, W3 and W4 are about 10% faster on
/// AVX-512 and on AVX2 (A/B runs of bench/examples/profile_w3.rs).
pub const TILE_ROWS: usize = 6;

/// Vectors per row in one pass of a micro-kernel, for `S`: with AVX-512's 32 registers, 6
/// rows x 4 vectors of accumulators (more than twice the FMA latency times the two FMA
/// ports, so the ports never wait) plus 4 loads and a broadcast; with 16 registers, 6 rows x
/// 2 vectors.
#[inline(always)]
const fn pass_vectors<S: Simd>() -> usize {
    if S::LANES >= 16 { 4 } else { 2 }
}

/// Copies up to `KB` keys into `packed` as `[depth][key]`, zero past the last key, by
/// [`Simd::pack_keys`].
///
/// ```
/// use attn_runtime::simd::Portable;
/// let keys = [[1.0, 2.0], [3.0, 4.0]];
/// let mut packed = [[9.0; 16]; 2];
/// attn_runtime::__private::pack_keys(Portable, &keys, &mut packed);
/// assert_eq!(&packed[1][..3], &[2.0, 4.0, 0.0]);
/// ```
#[inline(always)]
pub fn pack_keys<S: Simd, const DEPTH: usize, const KB: usize>(
    simd: S,
    keys: &[[f32; DEPTH]],
    packed: &mut [[f32; KB]; DEPTH],
) {
    let count = keys.len().min(KB);
    simd.pack_keys(
        keys[..count].as_flattened(),
        DEPTH,
        count,
        packed.as_flattened_mut(),
        KB,
    );
}

/// [`Simd::pack_keys`] one element at a time: the portable instruction sets' packing, and
/// the edges of the others'.
pub(crate) fn pack_keys_by_element(
    keys: &[f32],
    depth: usize,
    count: usize,
    packed: &mut [f32],
    block: usize,
) {
    pack_edges(keys, depth, count, packed, block, 0, 0);
}

/// [`Simd::pack_keys`] by squares of `lanes x lanes`, which `transpose(src, dst)` moves from
/// `keys[i * depth + j]` to `packed[j * block + i]` (`src` and `dst` start at the square's
/// first element), and the edges element by element.
#[inline(always)]
pub(crate) fn pack_keys_by_squares(
    keys: &[f32],
    depth: usize,
    count: usize,
    packed: &mut [f32],
    block: usize,
    lanes: usize,
    transpose: impl Fn(&[f32], &mut [f32]),
) {
    let (whole_keys, whole_depth) = (count / lanes * lanes, depth / lanes * lanes);
    for j in (0..whole_keys).step_by(lanes) {
        for d in (0..whole_depth).step_by(lanes) {
            transpose(&keys[j * depth + d..], &mut packed[d * block + j..]);
        }
    }
    pack_edges(keys, depth, count, packed, block, whole_keys, whole_depth);
}

/// The elements of a packing that the squares (`whole_keys` keys by `whole_depth`) left:
/// for `d < whole_depth` the columns from `whole_keys` on, for the deeper rows all of them.
fn pack_edges(
    keys: &[f32],
    depth: usize,
    count: usize,
    packed: &mut [f32],
    block: usize,
    whole_keys: usize,
    whole_depth: usize,
) {
    assert!(count <= block && keys.len() >= count * depth && packed.len() >= depth * block);
    // Key by key, each read along its depth (the squares covered the first `whole_depth`
    // of the first `whole_keys` keys).
    for (j, key) in keys.chunks_exact(depth.max(1)).take(count).enumerate() {
        let from = if j < whole_keys { whole_depth } else { 0 };
        for (d, &x) in key.iter().enumerate().skip(from) {
            packed[d * block + j] = x;
        }
    }
    for row in packed.chunks_exact_mut(block.max(1)).take(depth) {
        row[count..].fill(0.0);
    }
}

/// A block of packed keys or values, on a 64-byte boundary: a cache line, so that no vector
/// load of a micro-kernel straddles two lines. One that does costs a second access: the
/// micro-kernels run about 10% slower with their operands 16 bytes off a line (run
/// `bench/examples/micro.rs`), and W3 gained 8% from this alignment (A/B of `profile_w3`).
///
/// ```
/// let block = attn_runtime::__private::Aligned([[0.0f32; 16]; 4]);
/// assert_eq!(&block.0 as *const _ as usize % 64, 0);
/// ```
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct Aligned<T>(pub T);

/// Copies a block of value rows into `packed`, rows past the block left as they are: the
/// values micro-kernel then loads whole cache lines (see [`Aligned`]).
///
/// ```
/// let values = [[1.0f32, 2.0], [3.0, 4.0]];
/// let mut packed = [[9.0f32; 2]; 3];
/// attn_runtime::__private::pack_values(&values, &mut packed);
/// assert_eq!(packed, [[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]);
/// ```
#[inline(always)]
pub fn pack_values<const DV: usize>(values: &[[f32; DV]], packed: &mut [[f32; DV]]) {
    let rows = values.len().min(packed.len());
    packed[..rows].copy_from_slice(&values[..rows]);
}

/// A block of value rows as the values micro-kernel reads them: in place when every row
/// already starts on a cache line (the block does, and a row is a whole number of lines, as
/// in a [`crate::Tensor`] of rows of 16 f32 or a multiple), else copied into `packed` by
/// [`pack_values`].
///
/// ```
/// use attn_runtime::__private::{Aligned, values_on_lines};
/// let values = Aligned([[1.0f32; 16]; 3]);
/// let mut packed = [[0.0f32; 16]; 3];
/// let read = values_on_lines(&values.0[1..], &mut packed);
/// assert!(std::ptr::eq(read, &values.0[1..])); // 64 bytes in: still on a line
/// let narrow = Aligned([[1.0f32; 4]; 3]);
/// let mut packed = [[0.0f32; 4]; 3];
/// let read = values_on_lines(&narrow.0, &mut packed);
/// assert_eq!(read.as_ptr(), packed.as_ptr()); // rows of 16 bytes: copied
/// ```
#[inline(always)]
pub fn values_on_lines<'a, const DV: usize>(
    values: &'a [[f32; DV]],
    packed: &'a mut [[f32; DV]],
) -> &'a [[f32; DV]] {
    let row_bytes = DV * size_of::<f32>();
    if values.as_ptr().addr().is_multiple_of(64) && row_bytes.is_multiple_of(64) {
        return values;
    }
    pack_values(values, packed);
    &packed[..values.len()]
}

/// `scores[r][j] = (q[r] · key_j) · scale` for the first `rows` rows of `q` and the keys of
/// `packed`; `-inf` for `j >= keys` (the padding of a short last block), so that those keys
/// get no weight.
#[inline(always)]
pub fn scores<S: Simd, const DEPTH: usize, const KB: usize>(
    simd: S,
    q: &[[f32; DEPTH]],
    packed: &[[f32; KB]; DEPTH],
    keys: usize,
    scale: f32,
    scores: &mut [[f32; KB]; TILE_ROWS],
) {
    let rows = q.len().min(TILE_ROWS);
    // The tail of a block goes through the same micro-kernel, its rows padded with zeros to
    // a whole tile: a row's arithmetic does not depend on the other rows, so results do not
    // depend on where the tiles fall. One call site, so the micro-kernel is inlined once:
    // a second one for single rows cost 0.15 s of each kernel's release build.
    let mut padded = None;
    let q = if rows == TILE_ROWS {
        q
    } else {
        let padded = padded.insert([[0.0f32; DEPTH]; TILE_ROWS]);
        padded[..rows].copy_from_slice(&q[..rows]);
        &padded[..]
    };
    scores_rows::<S, DEPTH, KB>(simd, q, packed, scale, scores);
    for row in scores.iter_mut().take(rows) {
        row[keys.min(KB)..].fill(f32::NEG_INFINITY);
    }
}

/// A whole tile's scores, in passes over the key vectors: the tile is the only shape they are
/// computed in (a block's tail is padded to one), so the micro-kernel exists once.
#[inline(always)]
fn scores_rows<S: Simd, const DEPTH: usize, const KB: usize>(
    simd: S,
    q: &[[f32; DEPTH]],
    packed: &[[f32; KB]; DEPTH],
    scale: f32,
    scores: &mut [[f32; KB]],
) {
    let vectors = KB / S::LANES;
    let scale = simd.splat(scale);
    let mut first = 0;
    // Whole passes, then what is left: the pass width is a constant in each call, so the
    // accumulators stay in registers.
    if pass_vectors::<S>() == 4 {
        while first + 4 <= vectors {
            scores_pass::<S, 4, DEPTH, KB>(simd, q, packed, scale, first, scores);
            first += 4;
        }
    }
    while first + 2 <= vectors {
        scores_pass::<S, 2, DEPTH, KB>(simd, q, packed, scale, first, scores);
        first += 2;
    }
    if first < vectors {
        scores_pass::<S, 1, DEPTH, KB>(simd, q, packed, scale, first, scores);
    }
}

/// One pass: `N` vectors of keys, starting at vector `first`, for the tile's rows.
#[inline(always)]
fn scores_pass<S: Simd, const N: usize, const DEPTH: usize, const KB: usize>(
    simd: S,
    q: &[[f32; DEPTH]],
    packed: &[[f32; KB]; DEPTH],
    scale: S::V,
    first: usize,
    scores: &mut [[f32; KB]],
) {
    let q = &q[..TILE_ROWS];
    let mut acc = [[simd.splat(0.0); N]; TILE_ROWS];
    for d in 0..DEPTH {
        let mut keys = [simd.splat(0.0); N];
        for (c, key) in keys.iter_mut().enumerate() {
            *key = simd.load(&packed[d][(first + c) * S::LANES..]);
        }
        for r in 0..TILE_ROWS {
            let query = simd.splat(q[r][d]);
            for c in 0..N {
                acc[r][c] = simd.mul_add(query, keys[c], acc[r][c]);
            }
        }
    }
    for r in 0..TILE_ROWS {
        for c in 0..N {
            simd.store(
                &mut scores[r][(first + c) * S::LANES..],
                simd.mul(acc[r][c], scale),
            );
        }
    }
}

/// `scores` for a problem of fewer query rows than a tile, straight from the keys as they are
/// stored: `scores[r][j] = (q[r] · keys[j]) · scale`, `-inf` for `j >= keys.len()`. With so
/// few rows, packing the keys would cost more than the products (one query of depth 128
/// against 4,096 keys: 3.3 ms packed, see `bench/examples/decode.rs`); each key is read once,
/// along its depth.
///
/// ```
/// use attn_runtime::simd::Portable;
/// let q = [[1.0f32, 2.0]];
/// let keys = [[3.0f32, 4.0], [5.0, 6.0]];
/// let mut scores = [[0.0f32; 16]; 6];
/// attn_runtime::__private::scores_direct(Portable, &q, &keys, 0.5, &mut scores);
/// assert_eq!(&scores[0][..3], &[5.5, 8.5, f32::NEG_INFINITY]);
/// ```
#[inline(always)]
pub fn scores_direct<S: Simd, const DEPTH: usize, const KB: usize>(
    simd: S,
    q: &[[f32; DEPTH]],
    keys: &[[f32; DEPTH]],
    scale: f32,
    scores: &mut [[f32; KB]; TILE_ROWS],
) {
    let keys = &keys[..keys.len().min(KB)];
    for (query, row) in q.iter().zip(scores.iter_mut()) {
        // Four keys at a time: four independent chains of multiply-adds keep the FMA units
        // busy while each waits on its last result.
        let mut groups = keys.chunks_exact(4);
        let mut j = 0;
        for group in &mut groups {
            let dots = dot_products(simd, query, [&group[0], &group[1], &group[2], &group[3]]);
            for dot in dots {
                row[j] = dot * scale;
                j += 1;
            }
        }
        for key in groups.remainder() {
            row[j] = dot_products(simd, query, [key])[0] * scale;
            j += 1;
        }
        row[j..].fill(f32::NEG_INFINITY);
    }
}

/// `query · key` for each of `N` keys: vectors along the depth, then the lanes summed, then
/// the last `DEPTH % LANES` products one at a time.
#[inline(always)]
fn dot_products<S: Simd, const DEPTH: usize, const N: usize>(
    simd: S,
    query: &[f32; DEPTH],
    keys: [&[f32; DEPTH]; N],
) -> [f32; N] {
    let full = DEPTH / S::LANES * S::LANES;
    let mut acc = [simd.splat(0.0); N];
    for d in (0..full).step_by(S::LANES) {
        let q = simd.load(&query[d..]);
        for (acc, key) in acc.iter_mut().zip(keys) {
            *acc = simd.mul_add(q, simd.load(&key[d..]), *acc);
        }
    }
    let mut dots = [0.0f32; N];
    for ((dot, acc), key) in dots.iter_mut().zip(acc).zip(keys) {
        *dot = simd.reduce_sum(acc);
        for d in full..DEPTH {
            *dot += query[d] * key[d];
        }
    }
    dots
}

/// How far a block's scores may exceed a row's reference (its "running max") before the
/// reference moves up to them: the softmax is the same for any reference, as long as the
/// sum and the output use the same one, and a reference that moves only for a jump of more
/// than 4 spares most rescalings (a row's max tends to creep up block after block: in W4's
/// four key blocks, most tiles rescaled some row in each). Weights stay at most
/// `e^4 ≈ 55`, so a row's sum and output grow at most that much past their values with the
/// exact max: no overflow short of values near 10^36.
const HEADROOM: f32 = 4.0;

/// The widest vector of any instruction set, in lanes: a row's running sum is kept as this
/// many partial sums, reduced once at the end rather than once per block.
pub const MAX_LANES: usize = 16;

/// What a tile's output rows hold before a block's values are added: nothing yet, or sums
/// of earlier blocks.
///
/// A kernel does not zero its output first: for operands larger than the cache, zeroing
/// fetched every output line from memory before the first product (5% of W4's time). The
/// first block a tile sees writes its rows instead; rows that see no key at all are zeroed
/// by [`normalize`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// No earlier block gave any row of the tile a weight: the rows hold whatever the caller
    /// left there, or zeros, and are overwritten.
    Fresh,
    /// The rows hold the sums of earlier blocks, which the next products add to.
    Accumulated,
}

/// Advances each row's running max and sum over one block of scores, turns the scores into
/// weights `exp(s - max)`, and rescales the row's output accumulator when the max grows. The
/// "max" is a reference that may lag the true maximum by up to 4 (see `HEADROOM`): it moves
/// only when a block's scores exceed it by more, so most blocks rescale nothing.
/// Returns whether the tile's output rows are [`Output::Fresh`]: every row's max was still
/// `-inf`, so no earlier block wrote a weight into them.
///
/// The rows of a tile go through each step together, so that their dependency chains (a
/// reduction, then the exponentials that wait for it) overlap.
///
/// ```
/// use attn_runtime::__private::{MAX_LANES, Output, online_softmax};
/// use attn_runtime::simd::Portable;
/// let mut scores = [[0.0f32; 16]; 1];
/// let (mut max, mut sum) = ([f32::NEG_INFINITY], [[0.0f32; MAX_LANES]]);
/// let mut out = [[f32::NAN; 4]; 1];
/// let state = online_softmax(Portable, &mut scores, &mut max, &mut sum, &mut out);
/// assert_eq!((state, max[0], scores[0][0]), (Output::Fresh, 0.0, 1.0));
/// let state = online_softmax(Portable, &mut [[0.0f32; 16]], &mut max, &mut sum, &mut out);
/// assert_eq!(state, Output::Accumulated);
/// ```
#[inline(always)]
pub fn online_softmax<S: Simd, const KB: usize, const DV: usize>(
    simd: S,
    scores: &mut [[f32; KB]],
    running_max: &mut [f32],
    running_sum: &mut [[f32; MAX_LANES]],
    out: &mut [[f32; DV]],
) -> Output {
    let rows = scores.len().min(TILE_ROWS);
    let fresh = running_max[..rows]
        .iter()
        .all(|&max| max == f32::NEG_INFINITY);
    // Per row: the new max, and `old - new` for the rescaling factor `exp(old - new)`.
    let mut shift = [0.0f32; TILE_ROWS];
    let mut decrease = [0.0f32; MAX_LANES];
    let mut rescale = [false; TILE_ROWS];
    let mut any_change = false;
    for r in 0..rows {
        let mut block_max = simd.load(&scores[r]);
        for chunk in scores[r].chunks_exact(S::LANES).skip(1) {
            block_max = simd.max(block_max, simd.load(chunk));
        }
        let old = running_max[r];
        // The row's reference stays put while no score exceeds it by more than `HEADROOM`
        // (one comparison, no reduction across the lanes): the weights then reach
        // `e^HEADROOM` at most, and neither the sum nor the output needs rescaling.
        let new = if simd.all_at_most(block_max, simd.splat(old + HEADROOM)) {
            old
        } else {
            old.max(simd.reduce_max(block_max))
        };
        running_max[r] = new;
        shift[r] = shift_of(new);
        if new != old {
            decrease[r] = old - new;
            // Before the first key the sum and the output row are still zero: the factor
            // is 0 and needs no exponential, and there is nothing to rescale.
            rescale[r] = old != f32::NEG_INFINITY;
            any_change |= rescale[r];
        }
    }
    // Once the max has settled, most blocks leave it unchanged and skip this; otherwise the
    // rows' factors are one vector exponential (rows whose max held get exp(0) = 1, rows
    // seeing their first keys exp(-inf) = 0).
    let mut correction = [1.0f32; MAX_LANES];
    for (factor, &first) in correction.iter_mut().zip(&decrease) {
        if first == f32::NEG_INFINITY {
            *factor = 0.0;
        }
    }
    if any_change {
        if S::LANES >= TILE_ROWS {
            simd.store(
                &mut correction,
                exp_of_nonpositive(simd, simd.load(&decrease)),
            );
        } else {
            for (factor, &d) in correction.iter_mut().zip(&decrease).take(rows) {
                *factor = exp_of_nonpositive(Lane, d);
            }
        }
    }
    for r in 0..rows {
        let shift = simd.splat(shift[r]);
        let mut block_sum = simd.splat(0.0);
        for chunk in scores[r].chunks_exact_mut(S::LANES) {
            let weights = exp_of_nonpositive_in_bulk(simd, simd.sub(simd.load(chunk), shift));
            simd.store(chunk, weights);
            block_sum = simd.add(block_sum, weights);
        }
        // The running sum stays a vector of partial sums: S::LANES of the MAX_LANES slots.
        let sum = simd.load(&running_sum[r]);
        let sum = simd.mul_add(sum, simd.splat(correction[r]), block_sum);
        simd.store(&mut running_sum[r], sum);
        if rescale[r] {
            scale_row(simd, &mut out[r], correction[r]);
        }
    }
    if fresh {
        Output::Fresh
    } else {
        Output::Accumulated
    }
}

/// The soft cap of a tile's scores: `s = cap · tanh(s / cap)` for the first `keys` columns
/// (the later ones are the padding of a short key block and stay `-inf`).
///
/// ```
/// use attn_runtime::simd::Portable;
/// let mut scores = [[100.0f32; 16]; 1];
/// attn_runtime::__private::softcap_scores(Portable, &mut scores, 15, 30.0);
/// assert!((scores[0][0] - 30.0 * (100.0f32 / 30.0).tanh()).abs() < 1e-5);
/// assert_eq!(scores[0][15], f32::NEG_INFINITY);
/// ```
#[inline(always)]
pub fn softcap_scores<S: Simd, const KB: usize>(
    simd: S,
    scores: &mut [[f32; KB]],
    keys: usize,
    cap: f32,
) {
    let (cap_v, inverse) = (simd.splat(cap), simd.splat(1.0 / cap));
    for row in scores.iter_mut() {
        for chunk in row.chunks_exact_mut(S::LANES) {
            let capped = simd.mul(cap_v, tanh(simd, simd.mul(simd.load(chunk), inverse)));
            simd.store(chunk, capped);
        }
        row[keys.min(KB)..].fill(f32::NEG_INFINITY);
    }
}

/// How many keys query `row` sees under a causal mask: the keys up to its position, with the
/// queries aligned to the first keys (`top_left`, query `i` sees `0..=i`) or to the last ones
/// (`bottom_right`, query `i` sees `0..=i + keys - queries`, none when that is negative).
///
/// ```
/// use attn_runtime::__private::visible_keys;
/// assert_eq!(visible_keys(0, 2, 4, false), 1);
/// assert_eq!(visible_keys(0, 2, 4, true), 3);
/// assert_eq!(visible_keys(0, 4, 2, true), 0);
/// ```
#[inline(always)]
pub fn visible_keys(row: usize, queries: usize, keys: usize, bottom_right: bool) -> usize {
    let seen = if bottom_right {
        (row + 1 + keys).saturating_sub(queries)
    } else {
        row + 1
    };
    seen.min(keys)
}

/// Sets to `-inf` the scores of a tile that its rows do not see under a causal mask: row `r`
/// is query `first_row + r`, column `j` is key `first_key + j`. With a sliding `window`
/// (`usize::MAX` for none), a row sees only the last `window` of its visible keys.
///
/// ```
/// let mut scores = [[1.0f32; 16]; 2];
/// attn_runtime::__private::mask_causal(&mut scores, 0, 0, 4, 4, false, 1);
/// assert_eq!(&scores[1][..3], &[f32::NEG_INFINITY, 1.0, f32::NEG_INFINITY]);
/// ```
#[inline(always)]
pub fn mask_causal<const KB: usize>(
    scores: &mut [[f32; KB]],
    first_row: usize,
    first_key: usize,
    queries: usize,
    keys: usize,
    bottom_right: bool,
    window: usize,
) {
    for (r, row) in scores.iter_mut().enumerate() {
        let seen = visible_keys(first_row + r, queries, keys, bottom_right);
        let from = seen.saturating_sub(first_key).min(KB);
        row[from..].fill(f32::NEG_INFINITY);
        let before = seen
            .saturating_sub(window)
            .saturating_sub(first_key)
            .min(KB);
        row[..before].fill(f32::NEG_INFINITY);
    }
}

/// Adds a row of the `bias = [..]` option to one row of a tile's scores: `row[j] +=
/// bias[first_key + j]` for the block's first `keys` columns, or `bias[0]` to each when the
/// bias is broadcast over the keys (a row of one). The padding past `keys` stays `-inf`.
///
/// ```
/// use attn_runtime::simd::Portable;
/// let mut row = [1.0f32; 16];
/// let bias: Vec<f32> = (0..20).map(|j| j as f32).collect();
/// attn_runtime::__private::add_bias(Portable, &mut row, &bias, 4, 3);
/// assert_eq!(&row[..4], &[5.0, 6.0, 7.0, 1.0]);
/// ```
#[inline(always)]
pub fn add_bias<S: Simd, const KB: usize>(
    simd: S,
    row: &mut [f32; KB],
    bias: &[f32],
    first_key: usize,
    keys: usize,
) {
    let keys = keys.min(KB);
    let row = &mut row[..keys];
    if let [all] = bias {
        row.iter_mut().for_each(|s| *s += all);
        return;
    }
    let bias = &bias[first_key..first_key + keys];
    let mut scores = row.chunks_exact_mut(S::LANES);
    let mut terms = bias.chunks_exact(S::LANES);
    for (chunk, term) in (&mut scores).zip(&mut terms) {
        simd.store(chunk, simd.add(simd.load(chunk), simd.load(term)));
    }
    for (s, b) in scores.into_remainder().iter_mut().zip(terms.remainder()) {
        *s += b;
    }
}

/// Applies a row of the `mask = [..]` option (true = attend, as PyTorch) to one row of a
/// tile's scores: `row[j] = -inf` where `keep[first_key + j]` is false, for the block's first
/// `keys` columns; a row of one is broadcast over the keys.
///
/// ```
/// let mut row = [1.0f32; 16];
/// attn_runtime::__private::keep_only(&mut row, &[true, false, true], 1, 2);
/// assert_eq!(&row[..3], &[f32::NEG_INFINITY, 1.0, 1.0]);
/// ```
#[inline(always)]
pub fn keep_only<const KB: usize>(
    row: &mut [f32; KB],
    keep: &[bool],
    first_key: usize,
    keys: usize,
) {
    let keys = keys.min(KB);
    if let [all] = keep {
        if !all {
            row[..keys].fill(f32::NEG_INFINITY);
        }
        return;
    }
    for (s, &kept) in row[..keys]
        .iter_mut()
        .zip(&keep[first_key..first_key + keys])
    {
        if !kept {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// The shift that turns a row's scores into the arguments of its exponentials: its max, or 0
/// for a row that has seen only masked keys (all -inf), whose weights are then exp(-inf) = 0
/// where exp(-inf - -inf) would be NaN.
#[inline(always)]
fn shift_of(max: f32) -> f32 {
    if max == f32::NEG_INFINITY { 0.0 } else { max }
}

/// A row's softmax sum: the total of its partial sums.
#[inline(always)]
fn row_sum<S: Simd>(simd: S, partial: &[f32; MAX_LANES]) -> f32 {
    simd.reduce_sum(simd.load(partial))
}

/// `1 / sum`, or 0 for a row that saw no key (sum 0); a NaN sum gives NaN.
#[inline(always)]
fn reciprocal(sum: f32) -> f32 {
    if sum == 0.0 { 0.0 } else { 1.0 / sum }
}

/// Each row's `1 / sum` (0 for a row that saw no key), once its statistics are final: what
/// [`write_weights`] scales by, computed once per row rather than once per key block.
///
/// ```
/// use attn_runtime::simd::Portable;
/// let mut sums = [[0.0f32; 16]; 2];
/// sums[0][0] = 4.0;
/// let mut inverse = [9.0f32; 2];
/// attn_runtime::__private::inverse_sums(Portable, &sums, &mut inverse);
/// assert_eq!(inverse, [0.25, 0.0]);
/// ```
#[inline(always)]
pub fn inverse_sums<S: Simd>(simd: S, running_sum: &[[f32; MAX_LANES]], inverse: &mut [f32]) {
    for (inverse, partial) in inverse.iter_mut().zip(running_sum) {
        *inverse = reciprocal(row_sum(simd, partial));
    }
}

/// The attention weights of a tile, once its rows' softmax statistics are final:
/// `weights[r][first_key + j] = exp(scores[r][j] - max_r) · inverse_r` for the block's first
/// `keys` columns, `inverse_r` from [`inverse_sums`]. A row that saw no key (max `-inf`,
/// inverse 0) gets weights 0.
///
/// ```
/// use attn_runtime::simd::Portable;
/// let mut scores = [[0.0f32; 16]; 1];
/// let mut weights = [[9.0f32; 4]; 1];
/// attn_runtime::__private::write_weights(Portable, &mut scores, &[0.0], &[0.25], &mut weights, 0, 4);
/// assert_eq!(weights, [[0.25; 4]]);
/// ```
#[inline(always)]
pub fn write_weights<S: Simd, const KB: usize, const NK: usize>(
    simd: S,
    scores: &mut [[f32; KB]],
    running_max: &[f32],
    inverse_sums: &[f32],
    weights: &mut [[f32; NK]],
    first_key: usize,
    keys: usize,
) {
    let keys = keys.min(KB);
    for (((row, &max), &inverse), dest) in scores
        .iter_mut()
        .zip(running_max)
        .zip(inverse_sums)
        .zip(weights)
    {
        let inverse = simd.splat(inverse);
        let shift = simd.splat(shift_of(max));
        for chunk in row.chunks_exact_mut(S::LANES) {
            let weight = simd.mul(
                exp_of_nonpositive_in_bulk(simd, simd.sub(simd.load(chunk), shift)),
                inverse,
            );
            simd.store(chunk, weight);
        }
        dest[first_key..first_key + keys].copy_from_slice(&row[..keys]);
    }
}

/// The next problem's queries, keys and values, fetched into the L2 cache a part per tile
/// while the last block of this problem runs, so that the next problem's first tiles do not
/// wait on memory: with operands larger than the cache (W4, 96 problems of 192 KiB), 4-6%
/// faster in A/B runs of bench/examples/profile_w3.rs.
///
/// ```
/// let keys = [1.0f32; 64];
/// let ahead = attn_runtime::__private::Ahead::new([&keys[..], &[], &[]], 2, 12);
/// ahead.fetch(1, 1);
/// ```
pub struct Ahead<'a> {
    operands: [&'a [f32]; 3],
    tiles: usize,
    steps: usize,
    /// Cache lines of each operand per step: computed once, so that a step multiplies
    /// rather than divides (with six divisions a tile, the steps took 2.1% of the samples of
    /// `profile_w3 w4s` in `perf`; with none, 1.1%).
    lines_per_step: [usize; 3],
}

impl<'a> Ahead<'a> {
    /// Spreads `operands` (empty slices when there is no next problem) over the tiles of
    /// `key_blocks` blocks of keys times `rows` query rows.
    #[inline(always)]
    pub fn new(operands: [&'a [f32]; 3], key_blocks: usize, rows: usize) -> Self {
        let tiles = rows.div_ceil(TILE_ROWS);
        // Nothing to fetch without a next problem; and a next problem larger than this would
        // push the current one out of the L2 cache before it is read (decoding over a long
        // context streams each key once anyway). Then no step fetches anything.
        let values: usize = operands.iter().map(|data| data.len()).sum();
        let steps = if values == 0 || values > AHEAD_MOST {
            0
        } else {
            key_blocks * tiles
        };
        Ahead {
            operands,
            tiles,
            steps,
            lines_per_step: operands.map(|data| lines_per_step(data.len(), steps)),
        }
    }

    /// Fetches the part of the operands that belongs to tile `tile` of key block `key_block`:
    /// inline, so that a tile with nothing to fetch (most of them) costs one comparison
    /// rather than a call.
    #[inline(always)]
    pub fn fetch(&self, key_block: usize, tile: usize) {
        if self.steps != 0 {
            self.fetch_step(key_block * self.tiles + tile);
        }
    }

    /// Not inlined: one copy in this crate serves every kernel and instruction set, at the
    /// cost of a call per tile that fetches.
    #[inline(never)]
    fn fetch_step(&self, step: usize) {
        for (data, lines) in self.operands.into_iter().zip(self.lines_per_step) {
            for at in part(data.len(), step, lines).step_by(CACHE_LINE) {
                prefetch(&data[at..]);
            }
        }
    }
}

/// f32 per cache line.
const CACHE_LINE: usize = 16;

/// The most f32 of a next problem's operands that [`Ahead`] fetches: 512 KiB, a quarter of a
/// core's L2 cache on the machines measured (W4's problems hold 192 KiB).
const AHEAD_MOST: usize = 128 * 1024;

/// The cache lines of `len` values that each of `steps` steps fetches, the last steps
/// fewer (or none): enough that all of them cover the values.
fn lines_per_step(len: usize, steps: usize) -> usize {
    len.div_ceil(CACHE_LINE).div_ceil(steps.max(1))
}

/// Part `step` of `len` values split in parts of `lines` cache lines (from
/// [`lines_per_step`]): the parts of all steps cover `0..len` once.
fn part(len: usize, step: usize, lines: usize) -> std::ops::Range<usize> {
    let at = |step: usize| (step * lines * CACHE_LINE).min(len);
    at(step)..at(step + 1)
}

/// `out[r] += Σ_j weights[r][j] · values[j]` for each row of a tile (up to [`TILE_ROWS`]
/// rows, as many as both `weights` and `out` have); `out[r] = Σ_j ..` when `out` is
/// [`Output::Fresh`].
///
/// ```
/// use attn_runtime::__private::{Output, accumulate_values};
/// use attn_runtime::simd::Portable;
/// let weights = [[0.25f32, 0.75]];
/// let values = [[4.0f32, 8.0], [8.0, 0.0]];
/// let mut out = [[1.0f32, 1.0]];
/// accumulate_values(Portable, &weights, &values, &mut out, Output::Accumulated);
/// assert_eq!(out, [[8.0, 3.0]]);
/// accumulate_values(Portable, &weights, &values, &mut out, Output::Fresh);
/// assert_eq!(out, [[7.0, 2.0]]);
/// ```
#[inline(always)]
pub fn accumulate_values<S: Simd, const KB: usize, const DV: usize>(
    simd: S,
    weights: &[[f32; KB]],
    values: &[[f32; DV]],
    out: &mut [[f32; DV]],
    state: Output,
) {
    let values = &values[..values.len().min(KB)];
    let rows = out.len().min(weights.len()).min(TILE_ROWS);
    // The tail of a block, padded to a whole tile as in `scores`, with one call site.
    let mut padded = None;
    let (weights, tile_out): (&[[f32; KB]], &mut [[f32; DV]]) = if rows == TILE_ROWS {
        (weights, &mut *out)
    } else {
        let (padded_weights, padded_out) =
            padded.insert(([[0.0f32; KB]; TILE_ROWS], [[0.0f32; DV]; TILE_ROWS]));
        padded_weights[..rows].copy_from_slice(&weights[..rows]);
        if state == Output::Accumulated {
            padded_out[..rows].copy_from_slice(&out[..rows]);
        }
        (&padded_weights[..], &mut padded_out[..])
    };
    values_rows::<S, TILE_ROWS, KB, DV>(simd, weights, values, tile_out, state);
    if let Some((_, padded_out)) = &padded {
        out[..rows].copy_from_slice(&padded_out[..rows]);
    }
}

/// [`accumulate_values`] one row at a time, for kernels with fewer query rows than a tile
/// (decoding): padding one row to a tile would multiply its work by [`TILE_ROWS`].
///
/// ```
/// use attn_runtime::__private::{Output, accumulate_values_by_row};
/// use attn_runtime::simd::Portable;
/// let weights = [[0.25f32, 0.75]];
/// let values = [[4.0f32, 8.0], [8.0, 0.0]];
/// let mut out = [[1.0f32, 1.0]];
/// accumulate_values_by_row(Portable, &weights, &values, &mut out, Output::Accumulated);
/// assert_eq!(out, [[8.0, 3.0]]);
/// ```
#[inline(always)]
pub fn accumulate_values_by_row<S: Simd, const KB: usize, const DV: usize>(
    simd: S,
    weights: &[[f32; KB]],
    values: &[[f32; DV]],
    out: &mut [[f32; DV]],
    state: Output,
) {
    let values = &values[..values.len().min(KB)];
    for (weights, out_row) in weights.iter().zip(out) {
        let (weights, out_row) = (std::slice::from_ref(weights), std::slice::from_mut(out_row));
        values_rows::<S, 1, KB, DV>(simd, weights, values, out_row, state);
    }
}

#[inline(always)]
fn values_rows<S: Simd, const MR: usize, const KB: usize, const DV: usize>(
    simd: S,
    weights: &[[f32; KB]],
    values: &[[f32; DV]],
    out: &mut [[f32; DV]],
    state: Output,
) {
    let full = DV / S::LANES;
    let mut first = 0;
    if pass_vectors::<S>() == 4 {
        while first + 4 <= full {
            values_pass::<S, MR, 4, KB, DV>(simd, weights, values, first, out, state);
            first += 4;
        }
    }
    while first + 2 <= full {
        values_pass::<S, MR, 2, KB, DV>(simd, weights, values, first, out, state);
        first += 2;
    }
    if first < full {
        values_pass::<S, MR, 1, KB, DV>(simd, weights, values, first, out, state);
    }
    // The last DV % LANES columns, one at a time.
    for r in 0..MR {
        for e in full * S::LANES..DV {
            let mut acc = match state {
                Output::Fresh => 0.0,
                Output::Accumulated => out[r][e],
            };
            for (j, value) in values.iter().enumerate() {
                acc += weights[r][j] * value[e];
            }
            out[r][e] = acc;
        }
    }
}

/// One pass: `N` vectors of output columns, starting at vector `first`, for `MR` rows.
#[inline(always)]
fn values_pass<S: Simd, const MR: usize, const N: usize, const KB: usize, const DV: usize>(
    simd: S,
    weights: &[[f32; KB]],
    values: &[[f32; DV]],
    first: usize,
    out: &mut [[f32; DV]],
    state: Output,
) {
    let weights = &weights[..MR];
    // `std::array::from_fn` is avoided here and above: its closures are not always inlined,
    // and a call out of a `#[target_feature]` function costs a `vzeroupper` and a spill.
    let mut acc = [[simd.splat(0.0); N]; MR];
    if state == Output::Accumulated {
        for (r, row) in acc.iter_mut().enumerate() {
            for (c, slot) in row.iter_mut().enumerate() {
                *slot = simd.load(&out[r][(first + c) * S::LANES..]);
            }
        }
    }
    for (j, value) in values.iter().enumerate() {
        let mut row = [simd.splat(0.0); N];
        for (c, slot) in row.iter_mut().enumerate() {
            *slot = simd.load(&value[(first + c) * S::LANES..]);
        }
        let value = row;
        for r in 0..MR {
            let weight = simd.splat(weights[r][j]);
            for c in 0..N {
                acc[r][c] = simd.mul_add(weight, value[c], acc[r][c]);
            }
        }
    }
    for r in 0..MR {
        for c in 0..N {
            simd.store(&mut out[r][(first + c) * S::LANES..], acc[r][c]);
        }
    }
}

/// `row *= factor`.
#[inline(always)]
fn scale_row<S: Simd, const N: usize>(simd: S, row: &mut [f32; N], factor: f32) {
    let factor_v = simd.splat(factor);
    let mut chunks = row.chunks_exact_mut(S::LANES);
    for chunk in &mut chunks {
        simd.store(chunk, simd.mul(simd.load(chunk), factor_v));
    }
    for x in chunks.into_remainder() {
        *x *= factor;
    }
}

/// Divides each output row by its softmax sum, the total of its partial sums. A row that saw
/// no key (zero keys, or all masked) has the sum 0 and becomes 0, whatever it held: its tile
/// may never have been written (see [`Output`]). A NaN sum gives NaN.
///
/// ```
/// use attn_runtime::__private::{MAX_LANES, normalize};
/// use attn_runtime::simd::Portable;
/// let mut sums = [[0.0f32; MAX_LANES]; 2];
/// sums[0][0] = 4.0;
/// let mut out = [[2.0f32; 4], [f32::NAN; 4]];
/// normalize(Portable, &mut out, &sums);
/// assert_eq!(out, [[0.5; 4], [0.0; 4]]);
/// ```
#[inline(always)]
pub fn normalize<S: Simd, const DV: usize>(
    simd: S,
    out: &mut [[f32; DV]],
    running_sum: &[[f32; MAX_LANES]],
) {
    for (row, partial) in out.iter_mut().zip(running_sum) {
        let sum = row_sum(simd, partial);
        if sum == 0.0 {
            row.fill(0.0);
        } else {
            scale_row(simd, row, 1.0 / sum);
        }
    }
}

/// The log-sum-exp of each row's scores, `max + ln(sum)`, from its running statistics:
/// `-inf` for a row that saw no key.
///
/// ```
/// use attn_runtime::simd::Portable;
/// let mut sums = [[0.0f32; 16]; 1];
/// sums[0][0] = 1.0;
/// let mut lse = [0.0f32; 1];
/// attn_runtime::__private::log_sum_exp(Portable, &[2.0], &sums, &mut lse);
/// assert_eq!(lse, [2.0]);
/// ```
#[inline(always)]
pub fn log_sum_exp<S: Simd>(
    simd: S,
    running_max: &[f32],
    running_sum: &[[f32; MAX_LANES]],
    lse: &mut [f32],
) {
    for ((out, &max), partial) in lse.iter_mut().zip(running_max).zip(running_sum) {
        let sum = row_sum(simd, partial);
        *out = if sum == 0.0 {
            f32::NEG_INFINITY
        } else {
            max + sum.ln()
        };
    }
}

/// Whether a kernel with `queries` query rows per problem reads its keys and values in place
/// rather than packing them: fewer rows than a tile ([`Kernel::DIRECT`]). [`crate::KernelInfo`]
/// counts its scratch by the same rule.
///
/// ```
/// assert!(attn_runtime::__private::is_direct(1));
/// assert!(!attn_runtime::__private::is_direct(6));
/// ```
pub const fn is_direct(queries: u64) -> bool {
    queries < TILE_ROWS as u64
}

/// A tiled kernel, as the macro emits it: the rows of its output and how to compute a block.
pub trait Kernel: Sync {
    /// One output row, `[f32; Dv]`.
    type Row: Send;
    /// One row of attention weights, `[f32; Nk]`.
    type WeightsRow: Send;
    /// Query rows per problem (one batch entry and head).
    const QUERIES: usize;
    /// The most query rows per block, a whole number of tiles: a block packs its keys once
    /// for all its rows. A run of rows is split into equal blocks no longer than this.
    const QUERY_BLOCK: usize;
    /// Floating-point operations per query row, to decide whether threads pay.
    const FLOPS_PER_ROW: u64;
    /// Whether a problem has fewer query rows than a tile (decoding has one): its keys are
    /// then read as stored, by [`scores_direct`], rather than packed for each block by
    /// [`pack_keys`] for [`scores`], and its values in place. A property of the kernel, so
    /// every row of a problem takes the same path whatever the threads. See [`is_direct`].
    const DIRECT: bool = is_direct(Self::QUERIES as u64);
    /// Computes the rows `first_query..first_query + out.len()` of problem `problem`, their
    /// attention weights into `weights` and their log-sum-exp into `lse`, each when it is not
    /// empty (then it is as long as `out`).
    fn block<S: Simd>(&self, simd: S, problem: usize, first_query: usize, rows: Rows<'_, Self>);
}

/// Rows of a kernel's outputs: the output itself and, when the kernel returns them, the
/// attention weights and the log-sum-exp (empty slices otherwise), all starting at one row.
pub struct Rows<'a, K: Kernel + ?Sized> {
    /// Output rows, `[f32; Dv]` each.
    pub out: &'a mut [K::Row],
    /// Attention weight rows, `[f32; Nk]` each, or empty.
    pub weights: &'a mut [K::WeightsRow],
    /// Log-sum-exp of each row, or empty.
    pub lse: &'a mut [f32],
}

impl<'a, K: Kernel + ?Sized> Rows<'a, K> {
    /// The first `len` rows, and the rest.
    fn split_at(self, len: usize) -> (Self, Self) {
        let (out, out_rest) = self.out.split_at_mut(len);
        let (weights, weights_rest) = self.weights.split_at_mut(len.min(self.weights.len()));
        let (lse, lse_rest) = self.lse.split_at_mut(len.min(self.lse.len()));
        (
            Rows { out, weights, lse },
            Rows {
                out: out_rest,
                weights: weights_rest,
                lse: lse_rest,
            },
        )
    }
}

/// The blocks of a range of output rows, run on one instruction set.
struct Blocks<'a, K: Kernel> {
    kernel: &'a K,
    /// Rows starting at a tile boundary of their problem.
    rows: Rows<'a, K>,
    /// The index, among all output rows, of `rows.out[0]`.
    first_row: usize,
}

/// The length of each block that `rows` query rows (a run of one problem, starting at a tile
/// boundary) are split into: as few blocks as `query_block` allows, of equal length in whole
/// tiles, so that a run never ends in a block of a few rows that pays for packing every key.
///
/// ```
/// use attn_runtime::__private::block_length;
/// assert_eq!(block_length(2048, 516), 516);
/// assert_eq!(block_length(1026, 516), 516);
/// assert_eq!(block_length(600, 516), 300);
/// assert_eq!(block_length(100, 516), 100);
/// ```
pub fn block_length(rows: usize, query_block: usize) -> usize {
    let tiles = rows.div_ceil(TILE_ROWS);
    let blocks = tiles.div_ceil((query_block / TILE_ROWS).max(1));
    (tiles.div_ceil(blocks.max(1)) * TILE_ROWS).min(rows)
}

impl<K: Kernel> WithSimd for Blocks<'_, K> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let mut row = self.first_row;
        let mut rest = self.rows;
        while !rest.out.is_empty() {
            let (problem, first_query) = (row / K::QUERIES, row % K::QUERIES);
            let run = (K::QUERIES - first_query).min(rest.out.len());
            // Every block starts at a tile boundary of its problem, wherever the run starts,
            // so each tile holds the same rows whatever the blocks and threads.
            let len = block_length(run, K::QUERY_BLOCK);
            let (block, tail) = rest.split_at(len);
            self.kernel.block(simd, problem, first_query, block);
            row += len;
            rest = tail;
        }
    }
}

/// Runs `kernel` over all of `rows.out`, the output rows of every problem in order, and
/// writes their weights and log-sum-exp where those are not empty, on the active instruction
/// set (and, with the `threads` feature, on several threads when it pays).
pub fn run<K: Kernel>(kernel: &K, rows: Rows<'_, K>) {
    let out_rows = rows.out.len();
    if K::QUERIES == 0 || K::QUERY_BLOCK == 0 || out_rows == 0 {
        return;
    }
    let isa = Isa::active();
    #[cfg(feature = "threads")]
    {
        let threads = crate::threads::for_work(out_rows as u64 * K::FLOPS_PER_ROW);
        if threads > 1 {
            return run_threads(kernel, rows, isa, threads);
        }
    }
    dispatch(
        isa,
        Blocks {
            kernel,
            rows,
            first_row: 0,
        },
    );
}

/// The work, in FLOPs, that the calling thread does beyond its equal share: it starts at
/// once, while a pool thread asleep since the last call first has to be woken (`cargo run
/// --release -p attn-bench --example spawn`: 81-89 us for a job there and back, two
/// wake-ups; 4 MFLOP are about 25 us at 160 GFLOP/s). In two runs of the benchmark each,
/// W4 on two threads reached 1.92-1.94x its single-thread speed with it and 1.89-1.92x
/// without; W3 1.93-1.94x either way.
#[cfg(feature = "threads")]
const HEAD_START_FLOPS: u64 = 1 << 22;

/// Splits the rows into `threads` runs of about equal length, each starting at a tile
/// boundary of its problem, the last (the calling thread's) a little longer; each thread
/// then splits its run into blocks.
#[cfg(feature = "threads")]
fn run_threads<K: Kernel>(kernel: &K, rows: Rows<'_, K>, isa: Isa, threads: usize) {
    let total = rows.out.len();
    let head_start = usize::try_from(HEAD_START_FLOPS / K::FLOPS_PER_ROW.max(1)).unwrap_or(0);
    // The row where share `t` starts: `total · t / threads` (the last share's moved up by
    // the head start), moved to its problem's nearest tile boundary (or the problem's end).
    let start = |t: usize| {
        let row = total * t / threads;
        let row = if t == threads - 1 {
            row.saturating_sub(head_start)
                .max(total * (t - 1) / threads)
        } else {
            row
        };
        let (problem, query) = (row / K::QUERIES, row % K::QUERIES);
        let query = ((query + TILE_ROWS / 2) / TILE_ROWS * TILE_ROWS).min(K::QUERIES);
        (problem * K::QUERIES + query).min(total)
    };
    let mut shares = Vec::with_capacity(threads);
    let mut rest = rows;
    let mut taken = 0;
    for t in 0..threads {
        let end_row = start(t + 1);
        let (mine, tail) = rest.split_at(end_row - taken);
        if !mine.out.is_empty() {
            shares.push(Blocks {
                kernel,
                rows: mine,
                first_row: taken,
            });
        }
        taken = end_row;
        rest = tail;
    }
    crate::threads::run_shares(shares, |blocks| dispatch(isa, blocks));
}

#[cfg(test)]
mod tests {
    use super::{CACHE_LINE, lines_per_step, part};

    #[test]
    fn the_parts_of_a_prefetch_cover_every_line_once() {
        for len in [0, 1, 15, 16, 17, 1000, 16384] {
            for steps in [1, 2, 7, 43, 172, 5000] {
                let mut next = 0;
                let lines = lines_per_step(len, steps);
                for step in 0..steps {
                    let range = part(len, step, lines);
                    assert_eq!(range.start, next, "len {len}, step {step} of {steps}");
                    assert!(range.start.is_multiple_of(CACHE_LINE) || range.is_empty());
                    next = range.end;
                }
                assert_eq!(next, len, "len {len}, {steps} steps");
            }
        }
    }
}
