//! What the options do to a tile's scores between step 1 and the softmax: the causal mask
//! and its sliding window ([`mask_causal`], [`visible_keys`]), the `bias` option
//! ([`add_bias`]), the `mask` option ([`keep_only`]) and the soft cap ([`softcap_scores`]).
//! A score set to `-inf` gets no weight.

use crate::simd::{Simd, tanh};

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
    for row in scores.iter_mut() {
        softcap_row(simd, row, keys, cap);
    }
}

/// [`softcap_scores`] of one row, of any whole number of vectors.
#[inline(always)]
pub fn softcap_row<S: Simd>(simd: S, row: &mut [f32], keys: usize, cap: f32) {
    let (cap_v, inverse) = (simd.splat(cap), simd.splat(1.0 / cap));
    for chunk in row.chunks_exact_mut(S::LANES) {
        let capped = simd.mul(cap_v, tanh(simd, simd.mul(simd.load(chunk), inverse)));
        simd.store(chunk, capped);
    }
    let keys = keys.min(row.len());
    row[keys..].fill(f32::NEG_INFINITY);
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
///
/// The rule is attn's shared one, `attn_rules::visible_keys`, which unrolled kernels apply at
/// expansion.
#[inline(always)]
pub fn visible_keys(row: usize, queries: usize, keys: usize, bottom_right: bool) -> usize {
    attn_rules::visible_keys(row, queries, keys, bottom_right)
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
        mask_causal_row(
            row,
            first_row + r,
            first_key,
            queries,
            keys,
            bottom_right,
            window,
        );
    }
}

/// [`mask_causal`] of one row, query `query`, of any length.
#[inline(always)]
pub fn mask_causal_row(
    row: &mut [f32],
    query: usize,
    first_key: usize,
    queries: usize,
    keys: usize,
    bottom_right: bool,
    window: usize,
) {
    let seen = visible_keys(query, queries, keys, bottom_right);
    let from = seen.saturating_sub(first_key).min(row.len());
    row[from..].fill(f32::NEG_INFINITY);
    let before = seen
        .saturating_sub(window)
        .saturating_sub(first_key)
        .min(row.len());
    row[..before].fill(f32::NEG_INFINITY);
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
pub fn add_bias<S: Simd>(simd: S, row: &mut [f32], bias: &[f32], first_key: usize, keys: usize) {
    let keys = keys.min(row.len());
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
pub fn keep_only(row: &mut [f32], keep: &[bool], first_key: usize, keys: usize) {
    let keys = keys.min(row.len());
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
