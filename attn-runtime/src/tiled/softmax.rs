//! Step 2 of the tiled plan, the online softmax: each row's running max `m` and sum `l`
//! advance block by block ([`online_softmax`]), and at the end the output rows are divided
//! by their sums ([`normalize`]); the log-sum-exp ([`log_sum_exp`]) and the attention
//! weights ([`inverse_sums`], [`write_weights`]) come from the same statistics.

use super::tile::TILE_ROWS;
use crate::simd::{Lane, Simd, exp_of_nonpositive, exp_of_nonpositive_in_bulk};

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
