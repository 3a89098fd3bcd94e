//! Step 1 of the tiled plan: `S = Q_tile · K_blockᵀ · scale`, the scores of a tile, from keys
//! packed by [`pack_keys`](crate::simd::pack::pack_keys) ([`scores`]), or from the keys as
//! stored for problems of fewer rows than a tile ([`scores_direct`]).

use super::prefetch::{fetch_lines, fetched_by_row};
use super::tile::{TILE_ROWS, pass_vectors};
use crate::simd::Simd;
use crate::simd::elements::{Element, widen_into};

/// `scores[r][j] = (q[r] · key_j) · scale` for the first `rows` rows of `q` and the keys of
/// `packed`; `-inf` for `j >= keys` (the padding of a short last block), so that those keys
/// get no weight.
#[inline(always)]
pub fn scores<S: Simd, T: Element, const DEPTH: usize, const KB: usize>(
    simd: S,
    q: &[[T; DEPTH]],
    packed: &[[f32; KB]; DEPTH],
    keys: usize,
    scale: f32,
    scores: &mut [[f32; KB]; TILE_ROWS],
) {
    let rows = q.len().min(TILE_ROWS);
    // The tail of a block goes through the same micro-kernel, its rows padded with zeros to
    // a whole tile: a row's arithmetic does not depend on the other rows, so results do not
    // depend on where the tiles fall. One call site, so the micro-kernel is inlined once:
    // a second one for single rows cost 0.15 s of each kernel's release build. 16-bit
    // queries are widened into the same copy.
    let mut padded = None;
    let q = match T::as_f32(q) {
        Some(q) if rows == TILE_ROWS => q,
        _ => {
            let padded = padded.insert([[0.0f32; DEPTH]; TILE_ROWS]);
            widen_into(simd, &q[..rows], padded);
            &padded[..]
        }
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
/// stored (16-bit keys widened in registers): `scores[r][j] = (q[r] · keys[j]) · scale`,
/// `-inf` for `j >= keys.len()`. With so
/// few rows, packing the keys would cost more than the products (one query of depth 128
/// against 4,096 keys: 3.3 ms packed, see `bench/examples/decode.rs`); each key is read once,
/// along its depth. `next` is the next block's keys (or none), each fetched into the L2 cache
/// by software beside the same key of this block.
///
/// ```
/// use attn_runtime::simd::Portable;
/// let q = [[1.0f32, 2.0]];
/// let keys = [[3.0f32, 4.0], [5.0, 6.0]];
/// let mut scores = [[0.0f32; 16]; 6];
/// attn_runtime::__private::scores_direct(Portable, &q, &keys, &[], 0.5, &mut scores);
/// assert_eq!(&scores[0][..3], &[5.5, 8.5, f32::NEG_INFINITY]);
/// // Fetching the next block's keys changes nothing that is computed.
/// let next = [[0.0f32; 2]; 7];
/// attn_runtime::__private::scores_direct(Portable, &q, &keys, &next, 0.5, &mut scores);
/// assert_eq!(&scores[0][..3], &[5.5, 8.5, f32::NEG_INFINITY]);
/// ```
#[inline(always)]
pub fn scores_direct<S: Simd, T: Element, const DEPTH: usize, const KB: usize>(
    simd: S,
    q: &[[T; DEPTH]],
    keys: &[[T; DEPTH]],
    next: &[[T; DEPTH]],
    scale: f32,
    scores: &mut [[f32; KB]; TILE_ROWS],
) {
    let keys = &keys[..keys.len().min(KB)];
    let rows = q.len().min(TILE_ROWS);
    let mut wide = None;
    let q = match T::as_f32(q) {
        Some(q) => q,
        None => {
            let wide = wide.insert([[0.0f32; DEPTH]; TILE_ROWS]);
            widen_into(simd, &q[..rows], wide);
            &wide[..rows]
        }
    };
    for (r, (query, row)) in q.iter().zip(scores.iter_mut()).enumerate() {
        let next = fetched_by_row(next, r);
        // Four keys at a time: four independent chains of multiply-adds keep the FMA units
        // busy while each waits on its last result.
        let mut groups = keys.chunks_exact(4);
        let mut j = 0;
        for group in &mut groups {
            for key in next.get(j..j + 4).unwrap_or(&[]) {
                fetch_lines(key);
            }
            let dots = dot_products(simd, query, [&group[0], &group[1], &group[2], &group[3]]);
            for dot in dots {
                row[j] = dot * scale;
                j += 1;
            }
        }
        for key in groups.remainder() {
            if let Some(key) = next.get(j) {
                fetch_lines(key);
            }
            row[j] = dot_products(simd, query, [key])[0] * scale;
            j += 1;
        }
        row[j..].fill(f32::NEG_INFINITY);
    }
}

/// `query · key` for each of `N` keys: vectors along the depth, then the lanes summed, then
/// the last `DEPTH % LANES` products one at a time.
#[inline(always)]
fn dot_products<S: Simd, T: Element, const DEPTH: usize, const N: usize>(
    simd: S,
    query: &[f32; DEPTH],
    keys: [&[T; DEPTH]; N],
) -> [f32; N] {
    let full = DEPTH / S::LANES * S::LANES;
    let mut acc = [simd.splat(0.0); N];
    for d in (0..full).step_by(S::LANES) {
        let q = simd.load(&query[d..]);
        for (acc, key) in acc.iter_mut().zip(keys) {
            *acc = simd.mul_add(q, T::load(simd, &key[d..]), *acc);
        }
    }
    let mut dots = [0.0f32; N];
    for ((dot, acc), key) in dots.iter_mut().zip(acc).zip(keys) {
        *dot = simd.reduce_sum(acc);
        for d in full..DEPTH {
            *dot += query[d] * key[d].widen();
        }
    }
    dots
}
