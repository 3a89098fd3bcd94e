//! The tiled plan's loop nest, written once for every kernel: the macro describes a kernel's
//! problems and options ([`Problems`]) and chooses its block sizes; [`Tiled`] runs them.
//!
//! For one block of query rows `Q_b` of one problem (a batch entry and head), with the keys
//! `K` and values `V` it sees, in blocks `K_j`, `V_j` of `KEY_BLOCK` keys:
//!
//! ```text
//! for each key block j:                                     'key_blocks
//!     pack K_j as [depth][key]                              (skipped when read in place)
//!     for each tile T of 6 query rows:                      'query_tiles
//!         S   = Q_T · K_jᵀ · scale                          scores
//!         S   = cap · tanh(S / cap); S += bias; S = -inf where masked or not visible
//!         m'  = max(m, rowmax S)  (moved only past m + 4), P = exp(S - m')
//!         l   = l · exp(m - m') + rowsum P                  online softmax
//!         O_T = O_T · exp(m - m') + P · V_j                 values
//! O = O / l;  lse = m + ln l
//! ```
//!
//! No score matrix larger than one tile is stored. Each row's arithmetic is the same whatever
//! tile, block or thread it falls in, so results do not depend on the number of threads.

use super::driver::{Kernel, Rows};
use super::masks::{add_bias, keep_only, mask_causal, softcap_scores, visible_keys};
use super::prefetch::Ahead;
use super::scores::{scores, scores_direct};
use super::softmax::{
    MAX_LANES, inverse_sums, log_sum_exp, normalize, online_softmax, write_weights,
};
use super::tile::TILE_ROWS;
use super::values::{accumulate_values, accumulate_values_by_row};
use crate::simd::Simd;
use crate::simd::pack::{Aligned, pack_keys, values_on_lines};

/// `1 / sqrt(depth)`, the default scale.
///
/// ```
/// assert_eq!(attn_runtime::__private::default_scale(4), 0.5);
/// ```
#[inline]
pub fn default_scale(depth: usize) -> f32 {
    (1.0 / (depth as f64).sqrt()) as f32
}

/// How a causal mask lines the queries up with the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alignment {
    /// Query `i` sees keys `0..=i` (`causal` and `causal(top_left)`).
    TopLeft,
    /// The queries are the last `Nq` positions: query `i` sees keys `0..=i + Nk - Nq`
    /// (`causal(bottom_right)`).
    BottomRight,
}

/// One problem's operands: its query rows, and the keys and values they attend over.
pub struct Operands<'a, const DEPTH: usize, const VALUE_DEPTH: usize> {
    /// `[queries][depth]`.
    pub queries: &'a [[f32; DEPTH]],
    /// `[keys][depth]`.
    pub keys: &'a [[f32; DEPTH]],
    /// `[keys][value depth]`.
    pub values: &'a [[f32; VALUE_DEPTH]],
}

/// A tiled kernel's problems, as the macro describes them: where each problem's operands
/// are, and the options that shape its scores. Every option is a constant, so that the loop
/// nest specialized to a kernel keeps only the branches its options take.
pub trait Problems<const DEPTH: usize, const VALUE_DEPTH: usize, const KEYS: usize>: Sync {
    /// Query rows per problem.
    const QUERIES: usize;
    /// The `scale` option; `None` for `1 / sqrt(depth)`.
    const SCALE: Option<f32> = None;
    /// The `causal` option's alignment; `None` without a causal mask.
    const CAUSAL: Option<Alignment> = None;
    /// The `window` option: each query sees only its last this many visible keys.
    const WINDOW: Option<usize> = None;
    /// The `softcap` option's cap `c`: each score `s` becomes `c · tanh(s / c)`.
    const SOFTCAP: Option<f32> = None;
    /// Whether the kernel returns the attention weights.
    const RETURN_WEIGHTS: bool = false;
    /// Whether the kernel returns each row's log-sum-exp.
    const RETURN_LSE: bool = false;

    /// The number of problems: batch entries times query heads.
    fn problems(&self) -> usize;
    /// The operands of `problem`.
    fn operands(&self, problem: usize) -> Operands<'_, DEPTH, VALUE_DEPTH>;
    /// The keys `problem` attends over (its batch entry's valid length): `KEYS` unless the
    /// kernel takes valid lengths.
    #[inline(always)]
    fn valid_keys(&self, problem: usize) -> usize {
        let _ = problem;
        KEYS
    }
    /// The query rows of `problem` that are computed (its batch entry's valid queries): all
    /// of them unless the kernel takes valid query counts. The rows past it are 0, their
    /// weights 0 and their log-sum-exp -inf.
    #[inline(always)]
    fn valid_queries(&self, problem: usize) -> usize {
        let _ = problem;
        Self::QUERIES
    }
    /// The row of the `mask` option that query `query` of `problem` reads (one entry when
    /// broadcast over the keys), if the kernel has a mask.
    #[inline(always)]
    fn mask(&self, problem: usize, query: usize) -> Option<&[bool]> {
        let _ = (problem, query);
        None
    }
    /// The row of the `bias` option that query `query` of `problem` reads, likewise.
    #[inline(always)]
    fn bias(&self, problem: usize, query: usize) -> Option<&[f32]> {
        let _ = (problem, query);
        None
    }
}

/// A kernel of the tiled plan: the macro's [`Problems`] with the plan's block sizes, as the
/// driver runs it. `QUERY_BLOCK` query rows share each packing of a key block of `KEY_BLOCK`
/// keys; `PACKED_VALUE_ROWS` is `KEY_BLOCK`, or 0 for kernels known to read values in place
/// (`attn_rules::is_direct`), which then keep no scratch for them.
pub struct Tiled<
    P,
    const DEPTH: usize,
    const VALUE_DEPTH: usize,
    const KEYS: usize,
    const QUERY_BLOCK: usize,
    const KEY_BLOCK: usize,
    const PACKED_VALUE_ROWS: usize,
>(pub P);

impl<
    P: Problems<DEPTH, VALUE_DEPTH, KEYS>,
    const DEPTH: usize,
    const VALUE_DEPTH: usize,
    const KEYS: usize,
    const QUERY_BLOCK: usize,
    const KEY_BLOCK: usize,
    const PACKED_VALUE_ROWS: usize,
> Kernel for Tiled<P, DEPTH, VALUE_DEPTH, KEYS, QUERY_BLOCK, KEY_BLOCK, PACKED_VALUE_ROWS>
{
    type Row = [f32; VALUE_DEPTH];
    type WeightsRow = [f32; KEYS];
    const QUERIES: usize = P::QUERIES;
    // The driver reads the block length once per kernel: where a depth left to a const
    // generic is checked, when the kernel is instantiated (the macro checks known depths at
    // their token).
    const QUERY_BLOCK: usize = {
        assert!(
            attn_rules::tiled_scratch_bytes(
                QUERY_BLOCK as u64,
                KEY_BLOCK as u64,
                DEPTH as u64,
                VALUE_DEPTH as u64,
                PACKED_VALUE_ROWS != 0,
            ) <= attn_rules::MAX_SCRATCH_BYTES,
            "this kernel's depth would need more than 256 KiB of scratch on each thread's stack"
        );
        QUERY_BLOCK
    };
    const FLOPS_PER_ROW: u64 = 2 * (KEYS as u64) * ((DEPTH + VALUE_DEPTH) as u64);

    // The loops are labelled by what they block, whether or not a `continue` names them.
    #[allow(unused_labels)]
    #[inline(always)]
    fn block<S: Simd>(&self, simd: S, problem: usize, first_query: usize, rows: Rows<'_, Self>) {
        const {
            assert!(KEY_BLOCK > 0 && KEY_BLOCK.is_multiple_of(attn_rules::WIDEST_LANES));
            assert!(PACKED_VALUE_ROWS == KEY_BLOCK || PACKED_VALUE_ROWS == 0);
        }
        let problems = &self.0;
        // Rows past the problem's valid queries are padding: 0, and computed not at all (the
        // weights and log-sum-exp are empty when the kernel does not return them).
        let queries_valid = problems.valid_queries(problem).min(P::QUERIES);
        let rows_valid = queries_valid
            .saturating_sub(first_query)
            .min(rows.out.len());
        let (rows, padding) = rows.split_at(rows_valid);
        padding.out.fill([0.0; VALUE_DEPTH]);
        padding.weights.fill([0.0; KEYS]);
        padding.lse.fill(f32::NEG_INFINITY);
        let Rows { out, weights, lse } = rows;
        if out.is_empty() {
            return;
        }
        let direct = Self::DIRECT;
        // Values are read in place by kernels that keep no block of them.
        let values_in_place = direct || PACKED_VALUE_ROWS == 0;
        let scale = P::SCALE.unwrap_or_else(|| default_scale(DEPTH));
        let Operands {
            queries: q,
            keys: k,
            values: v,
        } = problems.operands(problem);
        let keys_valid = problems.valid_keys(problem);
        let mut running_max = [f32::NEG_INFINITY; QUERY_BLOCK];
        let mut running_sum = [[0.0f32; MAX_LANES]; QUERY_BLOCK];
        let mut packed_keys = Aligned([[0.0f32; KEY_BLOCK]; DEPTH]);
        let packed_keys = &mut packed_keys.0;
        let mut packed_values = Aligned([[0.0f32; VALUE_DEPTH]; PACKED_VALUE_ROWS]);
        let mut scores_tile = Aligned([[0.0f32; KEY_BLOCK]; TILE_ROWS]);
        let scores_tile = &mut scores_tile.0;
        // The keys this block walks: a causal mask ends them at the last one its last row
        // sees; a window starts them at the first its first row sees, rounded down to a whole
        // key block so that keys fall into the same blocks whichever block of queries (and
        // thread) walks them.
        // Aligned bottom right, the valid queries are the last positions of the valid keys.
        let visible = |query: usize| match P::CAUSAL {
            None => keys_valid,
            Some(alignment) => visible_keys(
                query,
                queries_valid,
                keys_valid,
                alignment == Alignment::BottomRight,
            ),
        };
        let window_start = |query: usize| match (P::CAUSAL, P::WINDOW) {
            (Some(_), Some(window)) => visible(query).saturating_sub(window),
            _ => 0,
        };
        let keys_from = window_start(first_query) / KEY_BLOCK * KEY_BLOCK;
        let keys_seen = visible(first_query + out.len() - 1);
        // While the last block of a problem runs, the next problem's operands are fetched
        // into the cache, a part per tile.
        let next: [&[f32]; 3] = match problem + 1 {
            next if next < problems.problems() && first_query + out.len() == P::QUERIES => {
                let next = problems.operands(next);
                [
                    next.queries.as_flattened(),
                    next.keys.as_flattened(),
                    next.values.as_flattened(),
                ]
            }
            _ => [&[]; 3],
        };
        let key_blocks = keys_seen.saturating_sub(keys_from).div_ceil(KEY_BLOCK);
        let ahead = Ahead::new(next, key_blocks, out.len());
        // One key block's scores for the tile of rows `first..last`, with every option
        // applied; false (and nothing computed) when a causal mask or window hides the block
        // from the whole tile.
        // The first pass turns them into the online softmax, the weights' pass into weights.
        let tile_scores = |scores_tile: &mut [[f32; KEY_BLOCK]; TILE_ROWS],
                           packed_keys: &[[f32; KEY_BLOCK]; DEPTH],
                           keys: &[[f32; DEPTH]],
                           first_key: usize,
                           first: usize,
                           last: usize|
         -> bool {
            let last_key = first_key + keys.len();
            if P::CAUSAL.is_some()
                && (visible(first_query + last - 1) <= first_key
                    || window_start(first_query + first) >= last_key)
            {
                return false;
            }
            let queries = &q[first_query + first..first_query + last];
            if direct {
                scores_direct(simd, queries, keys, scale, scores_tile);
            } else {
                scores(simd, queries, packed_keys, keys.len(), scale, scores_tile);
            }
            let tile = &mut scores_tile[..last - first];
            // A soft cap bends the scores before any mask sets some to -inf.
            if let Some(cap) = P::SOFTCAP {
                softcap_scores(simd, tile, keys.len(), cap);
            }
            for (r, row) in tile.iter_mut().enumerate() {
                let query = first_query + first + r;
                if let Some(bias) = problems.bias(problem, query) {
                    add_bias(simd, row, bias, first_key, keys.len());
                }
                if let Some(keep) = problems.mask(problem, query) {
                    keep_only(row, keep, first_key, keys.len());
                }
            }
            if let Some(alignment) = P::CAUSAL {
                mask_causal(
                    tile,
                    first_query + first,
                    first_key,
                    queries_valid,
                    keys_valid,
                    alignment == Alignment::BottomRight,
                    P::WINDOW.unwrap_or(usize::MAX),
                );
            }
            true
        };
        'key_blocks: for first_key in (keys_from..keys_seen).step_by(KEY_BLOCK) {
            let last_key = (first_key + KEY_BLOCK).min(keys_seen);
            let (keys, values) = (&k[first_key..last_key], &v[first_key..last_key]);
            if !direct {
                pack_keys(simd, keys, packed_keys);
            }
            let values = if values_in_place {
                values
            } else {
                values_on_lines(values, &mut packed_values.0)
            };
            'query_tiles: for first in (0..out.len()).step_by(TILE_ROWS) {
                let last = (first + TILE_ROWS).min(out.len());
                if !tile_scores(scores_tile, packed_keys, keys, first_key, first, last) {
                    continue 'query_tiles;
                }
                let tile = &mut scores_tile[..last - first];
                let state = online_softmax(
                    simd,
                    tile,
                    &mut running_max[first..last],
                    &mut running_sum[first..last],
                    &mut out[first..last],
                );
                if direct {
                    accumulate_values_by_row(simd, tile, values, &mut out[first..last], state);
                } else {
                    accumulate_values(simd, tile, values, &mut out[first..last], state);
                }
                // Without a causal mask every tile sees the last key block: its rows are
                // final there, and normalized while they are in the cache.
                if P::CAUSAL.is_none() && last_key == keys_seen {
                    normalize(simd, &mut out[first..last], &running_sum[first..last]);
                }
                ahead.fetch((first_key - keys_from) / KEY_BLOCK, first / TILE_ROWS);
            }
        }
        // Rows that no key block normalized: all of them under a causal mask (a tile may skip
        // the last blocks), or when there were no keys at all.
        if P::CAUSAL.is_some() || key_blocks == 0 {
            normalize(simd, out, &running_sum);
        }
        if P::RETURN_LSE {
            log_sum_exp(simd, &running_max, &running_sum, lse);
        }
        if P::RETURN_WEIGHTS {
            // The weights, once each row's max and sum are final: the scores again, block by
            // block (the same arithmetic, so the same scores), each `exp(s - max) / sum`.
            weights.fill([0.0f32; KEYS]);
            let mut inverse = [0.0f32; QUERY_BLOCK];
            inverse_sums(simd, &running_sum, &mut inverse);
            'key_blocks: for first_key in (keys_from..keys_seen).step_by(KEY_BLOCK) {
                let last_key = (first_key + KEY_BLOCK).min(keys_seen);
                let keys = &k[first_key..last_key];
                if !direct {
                    pack_keys(simd, keys, packed_keys);
                }
                'query_tiles: for first in (0..out.len()).step_by(TILE_ROWS) {
                    let last = (first + TILE_ROWS).min(out.len());
                    if !tile_scores(scores_tile, packed_keys, keys, first_key, first, last) {
                        continue 'query_tiles;
                    }
                    write_weights(
                        simd,
                        &mut scores_tile[..last - first],
                        &running_max[first..last],
                        &inverse[first..last],
                        &mut weights[first..last],
                        first_key,
                        keys.len(),
                    );
                }
            }
        }
    }
}
