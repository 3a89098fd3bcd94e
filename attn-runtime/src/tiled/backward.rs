//! The tiled plan's backward pass, FlashAttention-2's: the gradients `dQ`, `dK` and `dV` of
//! a loss whose gradient with respect to the output is `dO`, from the forward's output `O`
//! and log-sum-exp, with no score matrix stored.
//!
//! For one key/value problem, one chunk of its keys ([`attn_rules::BACKWARD_KEY_CHUNK`]),
//! in blocks `K_j`, `V_j` of `KEY_BLOCK` keys, against the query rows of every query head
//! that reads it (grouped-query attention sums their gradients):
//!
//! ```text
//! D = rowsum(dO ∘ O)                                          row_dots, once per row
//! for each key block j:                                       'key_blocks
//!     pack K_j and V_j as [depth][key]; K_j on cache lines
//!     for each query head h sharing the block:                'query_heads
//!         for each tile T of 6 query rows:                    'query_tiles
//!             S    = Q_T · K_jᵀ · scale, every option applied  tile_scores (the forward's)
//!             dP   = dO_T · V_jᵀ                               scores
//!             P    = exp(S - lse_T)                            score_gradients
//!             dS   = P ∘ (dP - D_T) · scale  (· cap' with a soft cap)
//!             dV_j += Pᵀ · dO_T                                accumulate_transposed
//!             dK_j += dSᵀ · Q_T                                accumulate_transposed
//!             dQ_T += dS · K_j                                 accumulate_values
//! ```
//!
//! `dK_j` and `dV_j` are the chunk's own rows of the outputs: a chunk is one unit of work,
//! on one thread, and no two units write the same row. `dQ` is written straight into the
//! output when a problem's keys are one chunk; otherwise each chunk sums its share into
//! rows of its own and the shares are added in chunk order at the end. The chunks are a
//! rule of the shape ([`attn_rules::backward_key_chunks`]), so the gradients are the same
//! bits on any number of threads, with no atomics.

use super::gradients::{accumulate_transposed, row_dots, score_gradients};
use super::loop_nest::{Problems, Walk, tile_scores};
use super::softmax::Output;
use super::tile::TILE_ROWS;
use super::values::accumulate_values;
use crate::simd::pack::{Aligned, pack_keys, values_on_lines};
use crate::simd::{Isa, Simd, WithSimd, dispatch};
use attn_rules::{BACKWARD_KEY_CHUNK, backward_key_chunks};
use std::ops::Range;

/// A kernel's backward pass, as the macro emits it: its [`Problems`] (q, k and v in f32)
/// with the forward's key block.
pub struct Backward<
    P,
    const DEPTH: usize,
    const VALUE_DEPTH: usize,
    const KEYS: usize,
    const KEY_BLOCK: usize,
>(pub P);

/// What the backward pass reads beside q, k and v, and the gradients it writes, each as one
/// slice of rows over every problem in order: the forward's `out` and `lse` (which must come
/// from the forward on the same inputs), the loss's gradient `d_out` with respect to `out`,
/// and `dq`, `dk`, `dv`, shaped like q, k and v.
pub struct Gradients<'a, const DEPTH: usize, const VALUE_DEPTH: usize> {
    /// The forward's output rows.
    pub out: &'a [[f32; VALUE_DEPTH]],
    /// The forward's log-sum-exp of each query row.
    pub lse: &'a [f32],
    /// The gradient of the loss with respect to each output row.
    pub d_out: &'a [[f32; VALUE_DEPTH]],
    /// The gradient with respect to each query row (overwritten).
    pub dq: &'a mut [[f32; DEPTH]],
    /// The gradient with respect to each key row (overwritten).
    pub dk: &'a mut [[f32; DEPTH]],
    /// The gradient with respect to each value row (overwritten).
    pub dv: &'a mut [[f32; VALUE_DEPTH]],
}

/// The forward's results and `d_out`, which every unit reads.
struct Inputs<'a, const VALUE_DEPTH: usize> {
    out: &'a [[f32; VALUE_DEPTH]],
    lse: &'a [f32],
    d_out: &'a [[f32; VALUE_DEPTH]],
}

/// One unit of work: chunk `chunk` of key/value problem `kv_problem`'s keys, against the
/// query rows of every query problem that reads it, with the rows it writes.
struct Unit<'a, const DEPTH: usize, const VALUE_DEPTH: usize> {
    kv_problem: usize,
    chunk: usize,
    /// The chunk's share of `dq`, for the query rows of each query problem of the group.
    dq: &'a mut [[f32; DEPTH]],
    /// The chunk's rows of `dk` and `dv`.
    dk: &'a mut [[f32; DEPTH]],
    dv: &'a mut [[f32; VALUE_DEPTH]],
    /// Query-key pairs the unit computes: its share of the threads' work.
    pairs: u64,
}

/// A thread's scratch: a block of keys and one of values packed as `[depth][key]` (the
/// large ones on the heap, allocated once per thread), the keys on cache lines, and a
/// tile's scores, their gradients and the soft-capped scores.
struct Scratch<const DEPTH: usize, const VALUE_DEPTH: usize, const KEY_BLOCK: usize> {
    packed_keys: Box<Aligned<[[f32; KEY_BLOCK]; DEPTH]>>,
    packed_values: Box<Aligned<[[f32; KEY_BLOCK]; VALUE_DEPTH]>>,
    key_rows: Box<Aligned<[[f32; DEPTH]; KEY_BLOCK]>>,
    scores: Aligned<[[f32; KEY_BLOCK]; TILE_ROWS]>,
    d_scores: Aligned<[[f32; KEY_BLOCK]; TILE_ROWS]>,
    capped: Aligned<[[f32; KEY_BLOCK]; TILE_ROWS]>,
}

impl<const DEPTH: usize, const VALUE_DEPTH: usize, const KEY_BLOCK: usize>
    Scratch<DEPTH, VALUE_DEPTH, KEY_BLOCK>
{
    fn new() -> Self {
        Scratch {
            packed_keys: Box::new(Aligned([[0.0; KEY_BLOCK]; DEPTH])),
            packed_values: Box::new(Aligned([[0.0; KEY_BLOCK]; VALUE_DEPTH])),
            key_rows: Box::new(Aligned([[0.0; DEPTH]; KEY_BLOCK])),
            scores: Aligned([[0.0; KEY_BLOCK]; TILE_ROWS]),
            d_scores: Aligned([[0.0; KEY_BLOCK]; TILE_ROWS]),
            capped: Aligned([[0.0; KEY_BLOCK]; TILE_ROWS]),
        }
    }
}

impl<
    P: Problems<DEPTH, VALUE_DEPTH, KEYS, Stored = f32>,
    const DEPTH: usize,
    const VALUE_DEPTH: usize,
    const KEYS: usize,
    const KEY_BLOCK: usize,
> Backward<P, DEPTH, VALUE_DEPTH, KEYS, KEY_BLOCK>
{
    /// The chunks each problem's keys are split into.
    const CHUNKS: usize = {
        assert!(KEY_BLOCK > 0 && BACKWARD_KEY_CHUNK.is_multiple_of(KEY_BLOCK));
        backward_key_chunks(KEYS)
    };

    /// The keys of chunk `chunk`.
    fn chunk_keys(chunk: usize) -> Range<usize> {
        let start = chunk * BACKWARD_KEY_CHUNK;
        start.min(KEYS)..(start + BACKWARD_KEY_CHUNK).min(KEYS)
    }

    /// The query problems that read key/value problem `kv_problem`.
    fn group(kv_problem: usize) -> Range<usize> {
        let group = P::GROUP.max(1);
        kv_problem * group..(kv_problem + 1) * group
    }

    /// The query-key pairs of chunk `chunk` of `kv_problem` that some option leaves
    /// visible: the unit's work, by which the threads share the units.
    fn pairs(&self, kv_problem: usize, chunk: usize) -> u64 {
        let keys = Self::chunk_keys(chunk);
        let mut pairs = 0u64;
        for problem in Self::group(kv_problem) {
            let walk = Walk::of(&self.0, problem, 0);
            for query in 0..walk.queries_valid {
                let seen = walk.window_start(query).max(keys.start)..walk.visible(query);
                pairs += seen.end.min(keys.end).saturating_sub(seen.start) as u64;
            }
        }
        pairs
    }

    /// The keys of `chunk` that some query row of the group sees, from a key block boundary.
    fn keys_walked(&self, kv_problem: usize, chunk: usize) -> Range<usize> {
        let chunk_keys = Self::chunk_keys(chunk);
        let (mut start, mut end) = (usize::MAX, 0);
        for problem in Self::group(kv_problem) {
            let walk = Walk::of(&self.0, problem, 0);
            if walk.queries_valid == 0 {
                continue;
            }
            let keys = walk.keys_for_rows(walk.queries_valid, KEY_BLOCK);
            start = start.min(keys.start);
            end = end.max(keys.end);
        }
        let start = start.max(chunk_keys.start);
        start..end.min(chunk_keys.end).max(start)
    }

    /// Computes one unit: the chunk's rows of `dk` and `dv`, and its share of `dq`.
    // The loops are labelled by what they block, whether or not a `continue` names them.
    #[allow(unused_labels)]
    #[inline(always)]
    fn unit<S: Simd>(
        &self,
        simd: S,
        scratch: &mut Scratch<DEPTH, VALUE_DEPTH, KEY_BLOCK>,
        inputs: &Inputs<'_, VALUE_DEPTH>,
        unit: Unit<'_, DEPTH, VALUE_DEPTH>,
    ) {
        let Unit {
            kv_problem,
            chunk,
            dq,
            dk,
            dv,
            ..
        } = unit;
        dq.fill([0.0; DEPTH]);
        dk.fill([0.0; DEPTH]);
        dv.fill([0.0; VALUE_DEPTH]);
        let group = Self::group(kv_problem);
        let rows = |problem: usize| problem * P::QUERIES..(problem + 1) * P::QUERIES;
        // D = rowsum(dO ∘ O) of every row of the group, once.
        let mut row_d = vec![0.0f32; group.len() * P::QUERIES];
        for (problem, d) in group.clone().zip(row_d.chunks_exact_mut(P::QUERIES.max(1))) {
            let rows = rows(problem);
            row_dots(simd, &inputs.d_out[rows.clone()], &inputs.out[rows], d);
        }
        let chunk_start = Self::chunk_keys(chunk).start;
        let keys = self.keys_walked(kv_problem, chunk);
        let Scratch {
            packed_keys,
            packed_values,
            key_rows,
            scores: Aligned(scores),
            d_scores: Aligned(d_scores),
            capped: Aligned(capped),
        } = scratch;
        let operands = self.0.operands(group.start);
        'key_blocks: for first_key in keys.clone().step_by(KEY_BLOCK) {
            let last_key = (first_key + KEY_BLOCK).min(keys.end);
            let block_keys = &operands.keys[first_key..last_key];
            let block_values = &operands.values[first_key..last_key];
            let count = block_keys.len();
            pack_keys(simd, block_keys, &mut packed_keys.0);
            pack_keys(simd, block_values, &mut packed_values.0);
            let key_rows = values_on_lines(simd, block_keys, &mut key_rows.0[..count]);
            let dk_block = &mut dk[first_key - chunk_start..last_key - chunk_start];
            let dv_block = &mut dv[first_key - chunk_start..last_key - chunk_start];
            'query_heads: for (g, problem) in group.clone().enumerate() {
                let walk = Walk::of(&self.0, problem, 0);
                let rows = rows(problem);
                let (q, d_out) = (walk.operands.queries, &inputs.d_out[rows.clone()]);
                let lse = &inputs.lse[rows];
                let row_d = &row_d[g * P::QUERIES..][..P::QUERIES];
                let dq_rows = &mut dq[g * P::QUERIES..][..P::QUERIES];
                'query_tiles: for first in (0..walk.queries_valid).step_by(TILE_ROWS) {
                    let last = (first + TILE_ROWS).min(walk.queries_valid);
                    let keep_capped = P::SOFTCAP.map(|_| &mut *capped);
                    let block = (block_keys, first_key);
                    if !tile_scores(
                        simd,
                        &self.0,
                        &walk,
                        false,
                        &packed_keys.0,
                        scores,
                        block,
                        first..last,
                        keep_capped,
                    ) {
                        continue 'query_tiles;
                    }
                    super::scores(
                        simd,
                        &d_out[first..last],
                        &packed_values.0,
                        count,
                        1.0,
                        d_scores,
                    );
                    score_gradients(
                        simd,
                        scores,
                        d_scores,
                        P::SOFTCAP.map(|cap| (&*capped, cap)),
                        &lse[first..last],
                        &row_d[first..last],
                        last - first,
                        count,
                        walk.scale,
                    );
                    accumulate_transposed(simd, scores, &d_out[first..last], dv_block, count);
                    accumulate_transposed(simd, d_scores, &q[first..last], dk_block, count);
                    accumulate_values(
                        simd,
                        &d_scores[..last - first],
                        key_rows,
                        &mut dq_rows[first..last],
                        Output::Accumulated,
                    );
                }
            }
        }
    }
}

/// A thread's units, run on one instruction set with one scratch.
struct Units<
    'a,
    P,
    const DEPTH: usize,
    const VALUE_DEPTH: usize,
    const KEYS: usize,
    const KEY_BLOCK: usize,
> {
    kernel: &'a Backward<P, DEPTH, VALUE_DEPTH, KEYS, KEY_BLOCK>,
    inputs: &'a Inputs<'a, VALUE_DEPTH>,
    units: Vec<Unit<'a, DEPTH, VALUE_DEPTH>>,
}

impl<
    P: Problems<DEPTH, VALUE_DEPTH, KEYS, Stored = f32>,
    const DEPTH: usize,
    const VALUE_DEPTH: usize,
    const KEYS: usize,
    const KEY_BLOCK: usize,
> WithSimd for Units<'_, P, DEPTH, VALUE_DEPTH, KEYS, KEY_BLOCK>
{
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let mut scratch = Scratch::new();
        for unit in self.units {
            self.kernel.unit(simd, &mut scratch, self.inputs, unit);
        }
    }
}

/// Computes the gradients of `kernel`'s problems into `gradients.dq`, `.dk` and `.dv`
/// (whatever they held), on the active instruction set and, with the `threads` feature, on
/// several threads when it pays; the same bits on any number of threads.
pub fn backward<
    P: Problems<DEPTH, VALUE_DEPTH, KEYS, Stored = f32>,
    const DEPTH: usize,
    const VALUE_DEPTH: usize,
    const KEYS: usize,
    const KEY_BLOCK: usize,
>(
    kernel: &Backward<P, DEPTH, VALUE_DEPTH, KEYS, KEY_BLOCK>,
    gradients: Gradients<'_, DEPTH, VALUE_DEPTH>,
) {
    let Gradients {
        out,
        lse,
        d_out,
        dq,
        dk,
        dv,
    } = gradients;
    let group = P::GROUP.max(1);
    let kv_problems = kernel.0.problems() / group;
    let chunks = Backward::<P, DEPTH, VALUE_DEPTH, KEYS, KEY_BLOCK>::CHUNKS;
    let rows_per_group = group * P::QUERIES;
    if kv_problems == 0 || KEYS == 0 || P::QUERIES == 0 {
        dq.fill([0.0; DEPTH]);
        dk.fill([0.0; DEPTH]);
        dv.fill([0.0; VALUE_DEPTH]);
        return;
    }
    // With one chunk per problem, each unit writes its rows of `dq`; with more, its share.
    let mut shares_of_dq = Vec::new();
    let dq_target: &mut [[f32; DEPTH]] = if chunks > 1 {
        shares_of_dq = vec![[0.0f32; DEPTH]; kv_problems * chunks * rows_per_group];
        &mut shares_of_dq
    } else {
        &mut *dq
    };
    let mut units = Vec::with_capacity(kv_problems * chunks);
    let (mut dq_rest, mut dk_rest, mut dv_rest) = (dq_target, &mut *dk, &mut *dv);
    for kv_problem in 0..kv_problems {
        for chunk in 0..chunks {
            let keys = Backward::<P, DEPTH, VALUE_DEPTH, KEYS, KEY_BLOCK>::chunk_keys(chunk).len();
            let (dq_unit, dq_tail) = dq_rest.split_at_mut(rows_per_group);
            let (dk_unit, dk_tail) = dk_rest.split_at_mut(keys);
            let (dv_unit, dv_tail) = dv_rest.split_at_mut(keys);
            (dq_rest, dk_rest, dv_rest) = (dq_tail, dk_tail, dv_tail);
            units.push(Unit {
                kv_problem,
                chunk,
                dq: dq_unit,
                dk: dk_unit,
                dv: dv_unit,
                pairs: kernel.pairs(kv_problem, chunk),
            });
        }
    }
    let inputs = Inputs { out, lse, d_out };
    let isa = Isa::active();
    let flops_per_pair = 2 * (3 * DEPTH + 2 * VALUE_DEPTH) as u64;
    let total: u64 = units.iter().map(|unit| unit.pairs * flops_per_pair).sum();
    #[cfg(feature = "threads")]
    let threads = crate::threads::for_work(total).min(units.len());
    #[cfg(not(feature = "threads"))]
    let threads = {
        let _ = total;
        1
    };
    let shares = share_out(units, threads);
    let run = |units| {
        dispatch(
            isa,
            Units {
                kernel,
                inputs: &inputs,
                units,
            },
        )
    };
    #[cfg(feature = "threads")]
    crate::threads::run_shares(shares, run);
    #[cfg(not(feature = "threads"))]
    shares.into_iter().for_each(run);
    if chunks > 1 {
        sum_shares(&shares_of_dq, dq, chunks, rows_per_group);
    }
}

/// The units shared among `threads`, each to the thread with the least work so far, the
/// largest first (a causal mask gives the first chunks of keys more rows than the last).
/// Where a unit runs changes nothing in its results.
fn share_out<const DEPTH: usize, const VALUE_DEPTH: usize>(
    mut units: Vec<Unit<'_, DEPTH, VALUE_DEPTH>>,
    threads: usize,
) -> Vec<Vec<Unit<'_, DEPTH, VALUE_DEPTH>>> {
    if threads <= 1 {
        return vec![units];
    }
    units.sort_by_key(|unit| std::cmp::Reverse(unit.pairs));
    let mut shares: Vec<(u64, Vec<_>)> = (0..threads).map(|_| (0, Vec::new())).collect();
    for unit in units {
        if let Some((work, share)) = shares.iter_mut().min_by_key(|(work, _)| *work) {
            // Every unit counts, even one with nothing visible: it still zeroes its rows.
            *work += unit.pairs.max(1);
            share.push(unit);
        }
    }
    shares
        .into_iter()
        .map(|(_, share)| share)
        .filter(|share| !share.is_empty())
        .collect()
}

/// `dq` as the sum, in chunk order, of each chunk's share: `shares` holds, per key/value
/// problem, `chunks` shares of `rows` rows each.
fn sum_shares<const DEPTH: usize>(
    shares: &[[f32; DEPTH]],
    dq: &mut [[f32; DEPTH]],
    chunks: usize,
    rows: usize,
) {
    for (dq, shares) in dq
        .chunks_exact_mut(rows)
        .zip(shares.chunks_exact(chunks * rows))
    {
        let (first, rest) = shares.split_at(rows);
        dq.copy_from_slice(first);
        for share in rest.chunks_exact(rows) {
            for (sum, term) in dq.as_flattened_mut().iter_mut().zip(share.as_flattened()) {
                *sum += term;
            }
        }
    }
}
