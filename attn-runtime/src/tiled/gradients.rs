//! One tile of the backward pass ([`tile_gradients`]): a tile of up to 6 query rows against
//! one block of `KB` keys, from the products `S = Q · Kᵀ · scale` and `dP = dO · Vᵀ`, through
//! the weights recomputed from the saved log-sum-exp and the gradient of the scores, to the
//! product that accumulates `dQ += dS · K`; and, a pair of tiles at a time
//! ([`key_gradients`]), the two that accumulate `dV += Pᵀ · dO` and `dK += dSᵀ · Q`.
//!
//! Unlike the forward's stages, these take the depths at run time (the key block is a
//! constant): the backward is compiled once, in this crate, for every kernel, rather than
//! once per kernel (docs/DESIGN.md section 8). The register blocking is the forward's:
//! passes of `N` vectors (4 with AVX-512's 32 registers, 2 with 16) over a whole tile of 6
//! rows. A pass walks its operands zipped or in arrays of known length (a tile's six rows,
//! the packed keys `[depth][KB]`), so that no index in a loop is checked.

use super::masks::{add_bias, keep_only, mask_causal_row, softcap_row};
use super::tile::{TILE_ROWS, pass_vectors};
use crate::simd::pack::Aligned;
use crate::simd::{Simd, exp_in_bulk};

/// A causal mask (and its window) as one tile applies it: the problem's valid queries and
/// keys, the alignment, and the window (`usize::MAX` for none).
#[derive(Clone, Copy, Debug)]
pub struct CausalTile {
    /// The problem's valid query rows.
    pub queries: usize,
    /// The problem's valid keys.
    pub keys: usize,
    /// Whether the queries are the last positions of the keys.
    pub bottom_right: bool,
    /// The most recent keys each query sees.
    pub window: usize,
}

/// One tile of the backward pass against one block of `KB` keys: what it reads (for `'a`)
/// and the gradient of its queries, which it adds to (for `'o`).
pub struct Tile<'a, 'o, const KB: usize> {
    /// Keys in this block (at most `KB`), and the index of its first.
    pub keys: usize,
    pub first_key: usize,
    /// The tile's query rows (at most 6), and the index of its first in the problem.
    pub rows: usize,
    pub first_row: usize,
    pub scale: f32,
    pub softcap: Option<f32>,
    /// Each row's bias over the problem's keys (one value when broadcast), or empty.
    pub bias: [&'a [f32]; TILE_ROWS],
    /// Each row's keep-mask over the problem's keys (one value when broadcast), or empty.
    pub keep: [&'a [bool]; TILE_ROWS],
    pub causal: Option<CausalTile>,
    /// The tile's query rows and its rows of the output's gradient, six of each (rows of
    /// zeros past `rows`), each as long as its depth.
    pub query_rows: Rows<'a>,
    pub d_out_rows: Rows<'a>,
    /// Each row's log-sum-exp and `D = dO · O`.
    pub lse: &'a [f32],
    pub d: &'a [f32],
    /// The block's keys and values packed as `[depth][KB]`, and its keys as stored (`keys x
    /// depth`).
    pub packed_keys: &'a [[f32; KB]],
    pub packed_values: &'a [[f32; KB]],
    pub key_rows: &'a [f32],
    /// The rows' gradient (`rows x depth`), added to.
    pub dq: &'o mut [f32],
}

/// A tile's weights `P` and score gradients `dS` (zeros past its rows and keys), which
/// [`tile_gradients`] leaves for [`key_gradients`].
pub struct Weights<const KB: usize> {
    p: Aligned<[[f32; KB]; TILE_ROWS]>,
    ds: Aligned<[[f32; KB]; TILE_ROWS]>,
}

impl<const KB: usize> Weights<KB> {
    /// All zeros: the weights of a tile with no rows.
    pub fn new() -> Self {
        Weights {
            p: Aligned([[0.0; KB]; TILE_ROWS]),
            ds: Aligned([[0.0; KB]; TILE_ROWS]),
        }
    }

    /// Sets every weight and score gradient to zero.
    pub fn clear(&mut self) {
        *self = Self::new();
    }
}

/// A thread's room for one tile: the capped scores, and the queries' gradient padded to a
/// whole tile.
pub struct TileScratch<const KB: usize> {
    capped: Aligned<[[f32; KB]; TILE_ROWS]>,
    dq: Vec<f32>,
}

impl<const KB: usize> TileScratch<KB> {
    /// Room for tiles of depth up to `depth`.
    pub fn new(depth: usize) -> Self {
        TileScratch {
            capped: Aligned([[0.0; KB]; TILE_ROWS]),
            dq: vec![0.0; TILE_ROWS * depth],
        }
    }
}

/// One tile of the backward pass (see the module): the scores with every option applied,
/// the weights and score gradients into `weights`, and the product into `dq`; the products
/// into `dk` and `dv` wait for the tile's pair ([`key_gradients`]).
#[inline(always)]
pub fn tile_gradients<S: Simd, const KB: usize>(
    simd: S,
    tile: Tile<'_, '_, KB>,
    scratch: &mut TileScratch<KB>,
    weights: &mut Weights<KB>,
) {
    let Tile {
        keys,
        first_key,
        rows,
        first_row,
        scale,
        softcap,
        bias,
        keep,
        causal,
        query_rows,
        d_out_rows,
        lse,
        d,
        packed_keys,
        packed_values,
        key_rows,
        dq,
    } = tile;
    let depth = query_rows[0].len();
    let TileScratch {
        capped: Aligned(capped),
        dq: padded_dq,
    } = scratch;
    let Weights {
        p: Aligned(scores),
        ds: Aligned(d_scores),
    } = weights;
    products(simd, query_rows, packed_keys, scale, scores);
    products(simd, d_out_rows, packed_values, 1.0, d_scores);
    // The options on the scores, in the forward's order: the soft cap bends them before any
    // bias or mask.
    for (r, row) in scores.iter_mut().take(rows).enumerate() {
        row[keys..].fill(f32::NEG_INFINITY);
        if let Some(cap) = softcap {
            softcap_row(simd, row, keys, cap);
            capped[r] = *row;
        }
        if !bias[r].is_empty() {
            add_bias(simd, row, bias[r], first_key, keys);
        }
        if !keep[r].is_empty() {
            keep_only(row, keep[r], first_key, keys);
        }
        if let Some(c) = causal {
            let query = first_row + r;
            mask_causal_row(
                row,
                query,
                first_key,
                c.queries,
                c.keys,
                c.bottom_right,
                c.window,
            );
        }
    }
    let capped = softcap.map(|cap| (&*capped, cap));
    score_gradients(simd, scores, d_scores, capped, lse, d, (rows, keys), scale);
    let dq_tile = if rows == TILE_ROWS {
        &mut dq[..TILE_ROWS * depth]
    } else {
        let padded = &mut padded_dq[..TILE_ROWS * depth];
        padded[..rows * depth].copy_from_slice(&dq[..rows * depth]);
        padded
    };
    accumulate_rows(simd, d_scores, key_rows, dq_tile, (keys, depth));
    if rows < TILE_ROWS {
        dq[..rows * depth].copy_from_slice(&padded_dq[..rows * depth]);
    }
}

/// The products of a pair of tiles, each given by its query rows and its rows of the
/// output's gradient, with their [`Weights`], into a block's gradients kept transposed
/// (`[depth][KB]` and `[value depth][KB]`, as its keys are packed): `dVᵀ += Σ dO_tileᵀ · P`
/// and `dKᵀ += Σ Q_tileᵀ · dS`, written rather than added to when `fresh` (the block's
/// first pair). Two tiles at a time, so that each accumulator is loaded and stored once per
/// twelve rows rather than six (1-3% faster on W3 and W4 in A/B runs of the backward
/// benchmark); a tile of no rows, all zeros, pairs an odd one.
#[inline(always)]
pub fn key_gradients<S: Simd, const KB: usize>(
    simd: S,
    [(q0, d_out0), (q1, d_out1)]: [(Rows<'_>, Rows<'_>); 2],
    [weights0, weights1]: &[Weights<KB>; 2],
    dk_columns: &mut [[f32; KB]],
    dv_columns: &mut [[f32; KB]],
    fresh: bool,
) {
    let values = [(d_out0, &weights0.p.0), (d_out1, &weights1.p.0)];
    let keys = [(q0, &weights0.ds.0), (q1, &weights1.ds.0)];
    // One loop rather than two calls: one copy of the products' code.
    for (tiles, columns) in [(values, dv_columns), (keys, dk_columns)] {
        accumulate_columns(simd, tiles, columns, fresh);
    }
}

/// `d[r] = Σ_e d_out[r][e] · out[r][e]` for each row of `width` values: the term every
/// weight's gradient is measured from (`dS = P ∘ (dP - D)`), since a row's weights sum to 1.
///
/// ```
/// use attn_runtime::simd::Portable;
/// let mut d = [0.0f32; 1];
/// attn_runtime::__private::row_dots(Portable, &[1.0, 2.0], &[3.0, 4.0], 2, &mut d);
/// assert_eq!(d, [11.0]);
/// ```
#[inline(always)]
pub fn row_dots<S: Simd>(simd: S, d_out: &[f32], out: &[f32], width: usize, d: &mut [f32]) {
    let full = width / S::LANES * S::LANES;
    let rows = d_out.chunks_exact(width).zip(out.chunks_exact(width));
    for ((d_out, out), d) in rows.zip(d) {
        let mut acc = simd.splat(0.0);
        for e in (0..full).step_by(S::LANES) {
            acc = simd.mul_add(simd.load(&d_out[e..]), simd.load(&out[e..]), acc);
        }
        let mut dot = simd.reduce_sum(acc);
        for e in full..width {
            dot += d_out[e] * out[e];
        }
        *d = dot;
    }
}

/// `rows` rows of `KB` values in `storage`, from its first element on a cache line
/// (`storage` holds 15 values more than the rows for that): blocks that micro-kernels load
/// and store whole vectors of, so that no vector straddles two lines.
///
/// ```
/// let mut storage = vec![0.0f32; 4 * 16 + 15];
/// let rows = attn_runtime::__private::rows_on_lines::<16>(&mut storage, 4);
/// assert_eq!((rows.len(), rows.as_ptr() as usize % 64), (4, 0));
/// ```
pub fn rows_on_lines<const KB: usize>(storage: &mut [f32], rows: usize) -> &mut [[f32; KB]] {
    let offset = storage.as_ptr().align_offset(64).min(15);
    storage[offset..offset + rows * KB].as_chunks_mut::<KB>().0
}

/// The six rows of a tile, each as long as its depth.
pub type Rows<'a> = [&'a [f32]; TILE_ROWS];

/// The six rows' values at each depth in turn, `[rows[0][d], .., rows[5][d]]`: the rows
/// zipped, so that no index is checked.
#[inline(always)]
fn at_each_depth(rows: Rows<'_>) -> impl Iterator<Item = [f32; TILE_ROWS]> + '_ {
    let [r0, r1, r2, r3, r4, r5] = rows;
    let zipped = r0.iter().zip(r1).zip(r2).zip(r3).zip(r4).zip(r5);
    zipped.map(|(((((&a, &b), &c), &d), &e), &f)| [a, b, c, d, e, f])
}

/// The six rows' `D` values from depth `first` on, or `None` past their end.
#[inline(always)]
fn depths_from<const D: usize>(rows: Rows<'_>, first: usize) -> Option<[&[f32; D]; TILE_ROWS]> {
    let [a, b, c, d, e, f] = rows.map(|row| row.get(first..)?.first_chunk::<D>());
    Some([a?, b?, c?, d?, e?, f?])
}

/// `out[r][j] = (rows[r] · packed[..][j]) · scale` for a whole tile of rows and the `KB`
/// columns of `packed` (`[depth][KB]`): the scores of a tile, or `dP`.
#[inline(always)]
fn products<S: Simd, const KB: usize>(
    simd: S,
    rows: Rows<'_>,
    packed: &[[f32; KB]],
    scale: f32,
    out: &mut [[f32; KB]; TILE_ROWS],
) {
    let vectors = KB / S::LANES;
    let mut first = 0;
    if pass_vectors::<S>() == 4 {
        while first + 4 <= vectors {
            products_pass::<S, 4, KB>(simd, rows, packed, scale, first, out);
            first += 4;
        }
    }
    while first + 2 <= vectors {
        products_pass::<S, 2, KB>(simd, rows, packed, scale, first, out);
        first += 2;
    }
    if first < vectors {
        products_pass::<S, 1, KB>(simd, rows, packed, scale, first, out);
    }
}

/// One pass of [`products`]: `N` vectors of columns from vector `first`.
#[inline(always)]
fn products_pass<S: Simd, const N: usize, const KB: usize>(
    simd: S,
    rows: Rows<'_>,
    packed: &[[f32; KB]],
    scale: f32,
    first: usize,
    out: &mut [[f32; KB]; TILE_ROWS],
) {
    let mut acc = [[simd.splat(0.0); N]; TILE_ROWS];
    for (keys_at_depth, rows_at_depth) in packed.iter().zip(at_each_depth(rows)) {
        let mut keys = [simd.splat(0.0); N];
        for (c, key) in keys.iter_mut().enumerate() {
            *key = simd.load(&keys_at_depth[(first + c) * S::LANES..]);
        }
        for (acc, row) in acc.iter_mut().zip(rows_at_depth) {
            let row = simd.splat(row);
            for c in 0..N {
                acc[c] = simd.mul_add(row, keys[c], acc[c]);
            }
        }
    }
    let scale = simd.splat(scale);
    for (acc, out) in acc.iter().zip(out) {
        for (c, &sum) in acc.iter().enumerate() {
            simd.store(&mut out[(first + c) * S::LANES..], simd.mul(sum, scale));
        }
    }
}

/// One tile's weights and score gradients, in place, for its first `rows` rows over `keys`
/// columns: each row's scores `S` (every option applied, `-inf` where a key is hidden)
/// become the weights `P = exp(S - lse)`, and its `dP` becomes `dS = P ∘ (dP - D) · scale`,
/// times the soft cap's derivative `1 - (c / cap)²` where `capped` holds the capped scores
/// `c` (before any bias). The scale is folded in here so that `dQ` and `dK` need no pass of
/// their own. A row whose log-sum-exp is `-inf` saw no key: its weights and gradients are
/// 0. The columns past `keys` and the rows past `rows` are set to 0, so that the products
/// by the tile's columns may run over a whole tile.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn score_gradients<S: Simd, const KB: usize>(
    simd: S,
    scores: &mut [[f32; KB]; TILE_ROWS],
    d_scores: &mut [[f32; KB]; TILE_ROWS],
    capped: Option<(&[[f32; KB]; TILE_ROWS], f32)>,
    lse: &[f32],
    d: &[f32],
    (rows, keys): (usize, usize),
    scale: f32,
) {
    let tile = scores.iter_mut().zip(d_scores.iter_mut());
    for (r, (p_row, ds_row)) in tile.enumerate() {
        if r >= rows || lse[r] == f32::NEG_INFINITY {
            p_row.fill(0.0);
            ds_row.fill(0.0);
            continue;
        }
        let (lse, d, scale) = (simd.splat(lse[r]), simd.splat(d[r]), simd.splat(scale));
        for j in (0..KB).step_by(S::LANES) {
            // The scores never exceed the log-sum-exp, but for rounding: `exp_in_bulk`
            // clamps from above, so that a log-sum-exp from other inputs gives large
            // gradients rather than an overflow of the range reduction.
            let p = exp_in_bulk(simd, simd.sub(simd.load(&p_row[j..]), lse));
            let mut ds = simd.mul(p, simd.mul(simd.sub(simd.load(&ds_row[j..]), d), scale));
            if let Some((capped, cap)) = capped {
                let c = simd.mul(simd.load(&capped[r][j..]), simd.splat(1.0 / cap));
                ds = simd.mul(ds, simd.sub(simd.splat(1.0), simd.mul(c, c)));
            }
            simd.store(&mut p_row[j..], p);
            simd.store(&mut ds_row[j..], ds);
        }
        // Past the block's keys the scores were -inf and dP is not a key's: no weight, no
        // gradient.
        p_row[keys..].fill(0.0);
        ds_row[keys..].fill(0.0);
    }
}

/// Two tiles' rows, each with its weights (`[row][KB]`).
type Pair<'a, R, const KB: usize> = [(R, &'a [[f32; KB]; TILE_ROWS]); 2];

/// `acc[d][j] += Σ_t Σ_r rows_t[r][d] · weights_t[r][j]` (`=` when `fresh`): two tiles'
/// columns times their rows (rows past a tile's last are zeros, as their weights).
///
/// Register-blocked as the forward's products, with the depth in the place of the query
/// rows: `6 x N` accumulator vectors (six depths, `N` vectors of keys) advance over the
/// tiles' 12 rows, so that 24 independent multiply-adds are in flight; the depths past a
/// whole number of sixes go one at a time.
#[inline(always)]
fn accumulate_columns<S: Simd, const KB: usize>(
    simd: S,
    tiles: Pair<'_, Rows<'_>, KB>,
    acc: &mut [[f32; KB]],
    fresh: bool,
) {
    let depth = acc.len();
    let mut first = 0;
    while first + 6 <= depth {
        depths_over_keys::<S, 6, KB>(simd, tiles, acc, (first, fresh));
        first += 6;
    }
    while first < depth {
        depths_over_keys::<S, 1, KB>(simd, tiles, acc, (first, fresh));
        first += 1;
    }
}

/// [`accumulate_columns`] for the `D` depths from `first`.
#[inline(always)]
fn depths_over_keys<S: Simd, const D: usize, const KB: usize>(
    simd: S,
    [(rows0, weights0), (rows1, weights1)]: Pair<'_, Rows<'_>, KB>,
    acc: &mut [[f32; KB]],
    (first, fresh): (usize, bool),
) {
    let rows = (
        depths_from::<D>(rows0, first),
        depths_from::<D>(rows1, first),
    );
    if let ((Some(rows0), Some(rows1)), Some(acc)) = (rows, acc.get_mut(first..)) {
        let tiles = [(rows0, weights0), (rows1, weights1)];
        columns_over_keys::<S, D, KB>(simd, tiles, acc, fresh);
    }
}

/// [`accumulate_columns`] for `D` depths, in passes of `N` vectors of keys.
#[inline(always)]
fn columns_over_keys<S: Simd, const D: usize, const KB: usize>(
    simd: S,
    tiles: Pair<'_, [&[f32; D]; TILE_ROWS], KB>,
    acc: &mut [[f32; KB]],
    fresh: bool,
) {
    let vectors = KB / S::LANES;
    let mut first = 0;
    if pass_vectors::<S>() == 4 {
        while first + 4 <= vectors {
            columns_pass::<S, 4, D, KB>(simd, tiles, acc, (first, fresh));
            first += 4;
        }
    }
    while first + 2 <= vectors {
        columns_pass::<S, 2, D, KB>(simd, tiles, acc, (first, fresh));
        first += 2;
    }
    if first < vectors {
        columns_pass::<S, 1, D, KB>(simd, tiles, acc, (first, fresh));
    }
}

/// One pass of [`accumulate_columns`]: `D` depths, `N` vectors of keys from vector `first`.
#[inline(always)]
fn columns_pass<S: Simd, const N: usize, const D: usize, const KB: usize>(
    simd: S,
    tiles: Pair<'_, [&[f32; D]; TILE_ROWS], KB>,
    acc: &mut [[f32; KB]],
    (first, fresh): (usize, bool),
) {
    let acc = &mut acc[..D];
    let mut sums = [[simd.splat(0.0); N]; D];
    if !fresh {
        for (sums, acc_row) in sums.iter_mut().zip(acc.iter()) {
            for (c, sum) in sums.iter_mut().enumerate() {
                *sum = simd.load(&acc_row[(first + c) * S::LANES..]);
            }
        }
    }
    for (rows, weights) in tiles {
        for (weights, row) in weights.iter().zip(rows) {
            let mut keys = [simd.splat(0.0); N];
            for (c, slot) in keys.iter_mut().enumerate() {
                *slot = simd.load(&weights[(first + c) * S::LANES..]);
            }
            for (sums, &value) in sums.iter_mut().zip(row) {
                let value = simd.splat(value);
                for c in 0..N {
                    sums[c] = simd.mul_add(value, keys[c], sums[c]);
                }
            }
        }
    }
    for (sums, acc_row) in sums.iter().zip(acc.iter_mut()) {
        for (c, &sum) in sums.iter().enumerate() {
            simd.store(&mut acc_row[(first + c) * S::LANES..], sum);
        }
    }
}

/// `out[r] += Σ_j weights[r][j] · values[j]` for a whole tile of rows (each `width` wide)
/// over `keys` rows of `values`: `dQ_tile += dS · K_block`.
#[inline(always)]
fn accumulate_rows<S: Simd, const KB: usize>(
    simd: S,
    weights: &[[f32; KB]; TILE_ROWS],
    values: &[f32],
    out: &mut [f32],
    (keys, width): (usize, usize),
) {
    let full = width / S::LANES;
    let mut first = 0;
    if pass_vectors::<S>() == 4 {
        while first + 4 <= full {
            rows_pass::<S, 4, KB>(simd, weights, values, out, (keys, width), first);
            first += 4;
        }
    }
    while first + 2 <= full {
        rows_pass::<S, 2, KB>(simd, weights, values, out, (keys, width), first);
        first += 2;
    }
    if first < full {
        rows_pass::<S, 1, KB>(simd, weights, values, out, (keys, width), first);
    }
    // The last `width % LANES` columns, one at a time.
    for (out_row, weights) in out.chunks_exact_mut(width).zip(weights) {
        for e in full * S::LANES..width {
            let mut sum = out_row[e];
            for (value, j) in values.chunks_exact(width).take(keys).zip(0..KB) {
                sum += weights[j] * value[e];
            }
            out_row[e] = sum;
        }
    }
}

/// One pass of [`accumulate_rows`]: `N` vectors of columns from vector `first`.
#[inline(always)]
fn rows_pass<S: Simd, const N: usize, const KB: usize>(
    simd: S,
    weights: &[[f32; KB]; TILE_ROWS],
    values: &[f32],
    out: &mut [f32],
    (keys, width): (usize, usize),
    first: usize,
) {
    let lanes = first * S::LANES..(first + N) * S::LANES;
    let mut acc = [[simd.splat(0.0); N]; TILE_ROWS];
    for (acc, out_row) in acc.iter_mut().zip(out.chunks_exact(width)) {
        let out_row = &out_row[lanes.clone()];
        for (c, slot) in acc.iter_mut().enumerate() {
            *slot = simd.load(&out_row[c * S::LANES..]);
        }
    }
    for (value, j) in values.chunks_exact(width).take(keys).zip(0..KB) {
        let value = &value[lanes.clone()];
        let mut row = [simd.splat(0.0); N];
        for (c, slot) in row.iter_mut().enumerate() {
            *slot = simd.load(&value[c * S::LANES..]);
        }
        for (acc, weights) in acc.iter_mut().zip(weights) {
            let weight = simd.splat(weights[j]);
            for c in 0..N {
                acc[c] = simd.mul_add(weight, row[c], acc[c]);
            }
        }
    }
    for (acc, out_row) in acc.iter().zip(out.chunks_exact_mut(width)) {
        let out_row = &mut out_row[lanes.clone()];
        for (c, &sum) in acc.iter().enumerate() {
            simd.store(&mut out_row[c * S::LANES..], sum);
        }
    }
}
