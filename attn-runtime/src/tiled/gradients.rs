//! The steps of the backward pass that the forward has no counterpart for: each row's
//! `D = dO · O` ([`row_dots`]); a tile's weights recomputed from the saved log-sum-exp and
//! the gradient of its scores ([`score_gradients`]); and the products by a tile's columns,
//! `acc_j += Σ_r W[r][j] · X[r]` ([`accumulate_transposed`]), which give `dV += Pᵀ · dO` and
//! `dK += dSᵀ · Q`. The other products of the backward are the forward's micro-kernels:
//! `S = Q · Kᵀ` and `dP = dO · Vᵀ` are [`scores`](fn@super::scores), `dQ += dS · K` is
//! [`accumulate_values`](super::accumulate_values).

use super::tile::{TILE_ROWS, pass_vectors};
use crate::simd::{Simd, exp_in_bulk};

/// `d[r] = Σ_e d_out[r][e] · out[r][e]` for each row: the term every weight's gradient is
/// measured from (`dS = P ∘ (dP - D)`), since the weights of a row sum to 1.
///
/// ```
/// use attn_runtime::simd::Portable;
/// let mut d = [0.0f32; 1];
/// attn_runtime::__private::row_dots(Portable, &[[1.0f32, 2.0]], &[[3.0, 4.0]], &mut d);
/// assert_eq!(d, [11.0]);
/// ```
#[inline(always)]
pub fn row_dots<S: Simd, const DV: usize>(
    simd: S,
    d_out: &[[f32; DV]],
    out: &[[f32; DV]],
    d: &mut [f32],
) {
    let full = DV / S::LANES * S::LANES;
    for ((d_out, out), d) in d_out.iter().zip(out).zip(d) {
        let mut acc = simd.splat(0.0);
        for e in (0..full).step_by(S::LANES) {
            acc = simd.mul_add(simd.load(&d_out[e..]), simd.load(&out[e..]), acc);
        }
        let mut dot = simd.reduce_sum(acc);
        for e in full..DV {
            dot += d_out[e] * out[e];
        }
        *d = dot;
    }
}

/// One tile's weights and score gradients, in place: each row's scores `S` (with every
/// option applied, `-inf` where a key is hidden) become the weights `P = exp(S - lse)`, and
/// its `dP = dO · Vᵀ` becomes `dS = P ∘ (dP - D) · scale`, times the soft cap's derivative
/// `1 - (c / cap)²` where `capped` holds the capped scores `c` (before any bias). The
/// scale is folded in here so that `dQ` and `dK` need no pass of their own. A row whose
/// log-sum-exp is `-inf` saw no key: its weights and gradients are 0. The columns past
/// `keys` (a short last block) and the rows past `rows` are set to 0, so that the products
/// by the tile's columns may run over a whole tile.
///
/// ```
/// use attn_runtime::simd::Portable;
/// // One row over one key whose score equals the log-sum-exp: P = 1, dS = 1 · (3 - 1) · 0.5.
/// let mut p = [[0.0f32; 16]; 6];
/// let mut ds = [[3.0f32; 16]; 6];
/// attn_runtime::__private::score_gradients(
///     Portable, &mut p, &mut ds, None, &[0.0], &[1.0], 1, 1, 0.5,
/// );
/// assert_eq!((p[0][0], ds[0][0], p[0][1], ds[0][1], ds[1][0]), (1.0, 1.0, 0.0, 0.0, 0.0));
/// ```
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn score_gradients<S: Simd, const KB: usize>(
    simd: S,
    scores: &mut [[f32; KB]; TILE_ROWS],
    d_scores: &mut [[f32; KB]; TILE_ROWS],
    capped: Option<(&[[f32; KB]; TILE_ROWS], f32)>,
    lse: &[f32],
    d: &[f32],
    rows: usize,
    keys: usize,
    scale: f32,
) {
    let keys = keys.min(KB);
    for r in 0..rows.min(TILE_ROWS) {
        let (p_row, ds_row) = (&mut scores[r], &mut d_scores[r]);
        if lse[r] == f32::NEG_INFINITY {
            p_row.fill(0.0);
            ds_row.fill(0.0);
            continue;
        }
        let (lse, d) = (simd.splat(lse[r]), simd.splat(d[r]));
        let scale = simd.splat(scale);
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
        // Past the block's keys the scores and `dP` were -inf: no weight, no gradient.
        p_row[keys..].fill(0.0);
        ds_row[keys..].fill(0.0);
    }
    for r in rows.min(TILE_ROWS)..TILE_ROWS {
        scores[r].fill(0.0);
        d_scores[r].fill(0.0);
    }
}

/// `acc[j] += Σ_r weights[r][j] · rows[r]` for the first `keys` rows of `acc`: a tile's
/// columns times its rows, `dV_block += Pᵀ · dO_tile` and `dK_block += dSᵀ · Q_tile`. The
/// weights of rows past `rows.len()` must be 0 (as [`score_gradients`] leaves them): the
/// tile is always whole, its missing rows zeros.
///
/// Register-blocked the other way round from the forward's products: a pass holds a tile's
/// `TILE_ROWS` rows of `N` vectors in registers and walks the keys, each key's `N`
/// accumulator vectors loaded, advanced by `TILE_ROWS` multiply-adds each, and stored.
///
/// ```
/// use attn_runtime::simd::Portable;
/// let mut weights = [[0.0f32; 16]; 6];
/// weights[0][1] = 2.0;
/// weights[1][1] = 1.0;
/// let rows = [[1.0f32, 0.0], [0.0, 3.0]];
/// let mut acc = [[1.0f32; 2]; 16];
/// attn_runtime::__private::accumulate_transposed(Portable, &weights, &rows, &mut acc, 2);
/// assert_eq!((acc[0], acc[1]), ([1.0, 1.0], [3.0, 4.0]));
/// ```
#[inline(always)]
pub fn accumulate_transposed<S: Simd, const KB: usize, const D: usize>(
    simd: S,
    weights: &[[f32; KB]; TILE_ROWS],
    rows: &[[f32; D]],
    acc: &mut [[f32; D]],
    keys: usize,
) {
    let keys = keys.min(KB).min(acc.len());
    let acc = &mut acc[..keys];
    // A tile's last rows, padded with zeros to a whole tile, as in `scores`.
    let mut padded = None;
    let rows: &[[f32; D]] = if rows.len() >= TILE_ROWS {
        &rows[..TILE_ROWS]
    } else {
        let padded = padded.insert([[0.0f32; D]; TILE_ROWS]);
        padded[..rows.len()].copy_from_slice(rows);
        &padded[..]
    };
    let full = D / S::LANES;
    let mut first = 0;
    if pass_vectors::<S>() == 4 {
        while first + 4 <= full {
            transposed_pass::<S, 4, KB, D>(simd, weights, rows, acc, first);
            first += 4;
        }
    }
    while first + 2 <= full {
        transposed_pass::<S, 2, KB, D>(simd, weights, rows, acc, first);
        first += 2;
    }
    if first < full {
        transposed_pass::<S, 1, KB, D>(simd, weights, rows, acc, first);
    }
    // The last D % LANES columns, one at a time.
    for (j, acc_row) in acc.iter_mut().enumerate() {
        for e in full * S::LANES..D {
            let mut sum = acc_row[e];
            for r in 0..TILE_ROWS {
                sum += weights[r][j] * rows[r][e];
            }
            acc_row[e] = sum;
        }
    }
}

/// One pass: `N` vectors of columns, starting at vector `first`, for every key of `acc`.
#[inline(always)]
fn transposed_pass<S: Simd, const N: usize, const KB: usize, const D: usize>(
    simd: S,
    weights: &[[f32; KB]; TILE_ROWS],
    rows: &[[f32; D]],
    acc: &mut [[f32; D]],
    first: usize,
) {
    let mut tile = [[simd.splat(0.0); N]; TILE_ROWS];
    for (r, row) in tile.iter_mut().enumerate() {
        for (c, slot) in row.iter_mut().enumerate() {
            *slot = simd.load(&rows[r][(first + c) * S::LANES..]);
        }
    }
    for (j, acc_row) in acc.iter_mut().enumerate() {
        let mut sums = [simd.splat(0.0); N];
        for (c, sum) in sums.iter_mut().enumerate() {
            *sum = simd.load(&acc_row[(first + c) * S::LANES..]);
        }
        for r in 0..TILE_ROWS {
            let weight = simd.splat(weights[r][j]);
            for c in 0..N {
                sums[c] = simd.mul_add(weight, tile[r][c], sums[c]);
            }
        }
        for (c, sum) in sums.iter().enumerate() {
            simd.store(&mut acc_row[(first + c) * S::LANES..], *sum);
        }
    }
}
