//! Step 3 of the tiled plan: `O_tile += P · V_block`, the weights of a tile times a block of
//! values, by tiles ([`accumulate_values`]) or, for problems of fewer rows than a tile, row
//! by row ([`accumulate_values_by_row`]).

use super::prefetch::{fetch_lines, fetched_by_row};
use super::softmax::Output;
use super::tile::{TILE_ROWS, pass_vectors};
use crate::simd::Simd;
use crate::simd::elements::Element;

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
    values_rows::<S, f32, TILE_ROWS, KB, DV>(simd, weights, values, &[], tile_out, state);
    if let Some((_, padded_out)) = &padded {
        out[..rows].copy_from_slice(&padded_out[..rows]);
    }
}

/// [`accumulate_values`] one row at a time, for kernels with fewer query rows than a tile
/// (decoding): padding one row to a tile would multiply its work by [`TILE_ROWS`]. The
/// values are read as stored (16-bit ones widened in registers).
///
/// ```
/// use attn_runtime::__private::{Output, accumulate_values_by_row};
/// use attn_runtime::simd::Portable;
/// let weights = [[0.25f32, 0.75]];
/// let values = [[4.0f32, 8.0], [8.0, 0.0]];
/// let mut out = [[1.0f32, 1.0]];
/// accumulate_values_by_row(Portable, &weights, &values, &[], &mut out, Output::Accumulated);
/// assert_eq!(out, [[8.0, 3.0]]);
/// // Fetching the next block's values changes nothing that is computed.
/// accumulate_values_by_row(Portable, &weights, &values, &values[..1], &mut out, Output::Fresh);
/// assert_eq!(out, [[7.0, 2.0]]);
/// ```
///
/// `next` is the next block's values (or none), each row fetched into the L2 cache by
/// software beside the same row of this block, the first row's pass only.
#[inline(always)]
pub fn accumulate_values_by_row<S: Simd, T: Element, const KB: usize, const DV: usize>(
    simd: S,
    weights: &[[f32; KB]],
    values: &[[T; DV]],
    next: &[[T; DV]],
    out: &mut [[f32; DV]],
    state: Output,
) {
    let values = &values[..values.len().min(KB)];
    for (r, (weights, out_row)) in weights.iter().zip(out).enumerate() {
        let (weights, out_row) = (std::slice::from_ref(weights), std::slice::from_mut(out_row));
        let next = fetched_by_row(next, r);
        values_rows::<S, T, 1, KB, DV>(simd, weights, values, next, out_row, state);
    }
}

#[inline(always)]
fn values_rows<S: Simd, T: Element, const MR: usize, const KB: usize, const DV: usize>(
    simd: S,
    weights: &[[f32; KB]],
    values: &[[T; DV]],
    next: &[[T; DV]],
    out: &mut [[f32; DV]],
    state: Output,
) {
    let full = DV / S::LANES;
    let mut first = 0;
    // A single row (decoding) has registers for 8 vectors of accumulators on any
    // instruction set, and takes them: with AVX-512 a pass then spans a whole value row of
    // depth 128, so the values stream from memory in order rather than half of each row
    // per pass (on an AMD EPYC, 73-83% of the read speed against 61-68% on one thread).
    if MR == 1 {
        while first + 8 <= full {
            values_pass::<S, T, MR, 8, KB, DV>(simd, weights, values, next, first, out, state);
            first += 8;
        }
    }
    if pass_vectors::<S>() == 4 {
        while first + 4 <= full {
            values_pass::<S, T, MR, 4, KB, DV>(simd, weights, values, next, first, out, state);
            first += 4;
        }
    }
    while first + 2 <= full {
        values_pass::<S, T, MR, 2, KB, DV>(simd, weights, values, next, first, out, state);
        first += 2;
    }
    if first < full {
        values_pass::<S, T, MR, 1, KB, DV>(simd, weights, values, next, first, out, state);
    }
    // The last DV % LANES columns, one at a time.
    for r in 0..MR {
        for e in full * S::LANES..DV {
            let mut acc = match state {
                Output::Fresh => 0.0,
                Output::Accumulated => out[r][e],
            };
            for (j, value) in values.iter().enumerate() {
                acc += weights[r][j] * value[e].widen();
            }
            out[r][e] = acc;
        }
    }
}

/// One pass: `N` vectors of output columns, starting at vector `first`, for `MR` rows.
#[inline(always)]
fn values_pass<
    S: Simd,
    T: Element,
    const MR: usize,
    const N: usize,
    const KB: usize,
    const DV: usize,
>(
    simd: S,
    weights: &[[f32; KB]],
    values: &[[T; DV]],
    next: &[[T; DV]],
    first: usize,
    out: &mut [[f32; DV]],
    state: Output,
) {
    let weights = &weights[..MR];
    let columns = first * S::LANES..(first + N) * S::LANES;
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
        if let Some(next) = next.get(j) {
            fetch_lines(&next[columns.clone()]);
        }
        let mut row = [simd.splat(0.0); N];
        for (c, slot) in row.iter_mut().enumerate() {
            *slot = T::load(simd, &value[(first + c) * S::LANES..]);
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
