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

use super::chunks::{PartialRow, merge_partials};
use super::driver::{Kernel, Rows, is_direct};
use super::masks::{add_bias, keep_only, mask_causal, softcap_scores, visible_keys};
use super::prefetch::{Ahead, next_block};
use super::scores::{scores, scores_direct};
use super::softmax::{
    MAX_LANES, inverse_sums, log_sum_exp, normalize, online_softmax, write_weights,
};
use super::tile::TILE_ROWS;
use super::values::{accumulate_values, accumulate_values_by_row};
use crate::simd::Simd;
use crate::simd::elements::Element;
use crate::simd::pack::{Aligned, pack_keys, values_on_lines};
use std::ops::Range;

/// A block of keys as a tile's scores read it: the keys, the index of the first, and the next
/// block's keys, which kernels reading their keys as stored fetch beside them (else none).
type KeyBlock<'a, T, const DEPTH: usize> = (&'a [[T; DEPTH]], usize, &'a [[T; DEPTH]]);

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

/// One problem's operands, of the element type they are stored in: its query rows, and the
/// keys and values they attend over.
pub struct Operands<'a, T, const DEPTH: usize, const VALUE_DEPTH: usize> {
    /// `[queries][depth]`.
    pub queries: &'a [[T; DEPTH]],
    /// `[keys][depth]`.
    pub keys: &'a [[T; DEPTH]],
    /// `[keys][value depth]`.
    pub values: &'a [[T; VALUE_DEPTH]],
}

/// A tiled kernel's problems, as the macro describes them: where each problem's operands
/// are, and the options that shape its scores. Every option is a constant, so that the loop
/// nest specialized to a kernel keeps only the branches its options take.
pub trait Problems<const DEPTH: usize, const VALUE_DEPTH: usize, const KEYS: usize>: Sync {
    /// The element type q, k and v are stored in: f32, or f16 or bf16, which the
    /// micro-kernels widen in registers as they read them.
    type Stored: Element;
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
    fn operands(&self, problem: usize) -> Operands<'_, Self::Stored, DEPTH, VALUE_DEPTH>;
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
    /// The first query row of `problem` from which its output already holds zeros: the
    /// padding rows before it are written as zeros, those from it on are left as they are.
    /// `QUERIES` (nothing known) unless the caller's output is an `attn_runtime::ZeroPadded`,
    /// which records the rows its last call wrote.
    #[inline(always)]
    fn zeros_from(&self, problem: usize) -> usize {
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

/// The scratch of a walk over the keys, on the stack: a block of packed keys, one of packed
/// values (none when `PACKED_VALUE_ROWS` is 0) and a tile's scores, each on cache lines.
/// Set up once for a thread's blocks ([`Kernel::scratch`]) or chunks, not for each: a
/// decode step over 8 heads of 512 positions zeroed 32 KiB of packed keys it never reads
/// for every head, 5.5% of its samples in `perf`.
pub struct Scratch<
    const DEPTH: usize,
    const VALUE_DEPTH: usize,
    const KEY_BLOCK: usize,
    const PACKED_VALUE_ROWS: usize,
> {
    packed_keys: Aligned<[[f32; KEY_BLOCK]; DEPTH]>,
    packed_values: Aligned<[[f32; VALUE_DEPTH]; PACKED_VALUE_ROWS]>,
    scores_tile: Aligned<[[f32; KEY_BLOCK]; TILE_ROWS]>,
}

impl<
    const DEPTH: usize,
    const VALUE_DEPTH: usize,
    const KEY_BLOCK: usize,
    const PACKED_VALUE_ROWS: usize,
> Scratch<DEPTH, VALUE_DEPTH, KEY_BLOCK, PACKED_VALUE_ROWS>
{
    /// A scratch of zeros.
    #[inline(always)]
    fn new() -> Self {
        Scratch {
            packed_keys: Aligned([[0.0; KEY_BLOCK]; DEPTH]),
            packed_values: Aligned([[0.0; VALUE_DEPTH]; PACKED_VALUE_ROWS]),
            scores_tile: Aligned([[0.0; KEY_BLOCK]; TILE_ROWS]),
        }
    }
}

/// One problem seen from its query row `first_query` on: its operands and the counts its
/// options read.
struct Walk<'a, T, const DEPTH: usize, const VALUE_DEPTH: usize> {
    problem: usize,
    first_query: usize,
    operands: Operands<'a, T, DEPTH, VALUE_DEPTH>,
    /// The problem's valid keys (its batch entry's valid length, or all of them).
    keys_valid: usize,
    /// The problem's computed query rows; the rest are padding.
    queries_valid: usize,
    scale: f32,
}

/// Each query row's running statistics over the keys walked so far: its reference max `m`
/// and its sum `l`, kept as a vector of partial sums.
struct Statistics<'a> {
    max: &'a mut [f32],
    sum: &'a mut [[f32; MAX_LANES]],
}

impl<
    P: Problems<DEPTH, VALUE_DEPTH, KEYS>,
    const DEPTH: usize,
    const VALUE_DEPTH: usize,
    const KEYS: usize,
    const QUERY_BLOCK: usize,
    const KEY_BLOCK: usize,
    const PACKED_VALUE_ROWS: usize,
> Tiled<P, DEPTH, VALUE_DEPTH, KEYS, QUERY_BLOCK, KEY_BLOCK, PACKED_VALUE_ROWS>
{
    /// Whether the keys and values are read where they are stored (see [`Kernel::DIRECT`]).
    const DIRECT: bool = is_direct(P::QUERIES as u64);

    /// The rows of `problem` past its valid queries, from its row `first_row` on: 0, their
    /// weights 0 and their log-sum-exp -inf (the weights and log-sum-exp are empty when the
    /// kernel does not return them). Output rows known to hold zeros already are left alone:
    /// a short prompt in a large kernel would otherwise spend most of its time on them.
    fn fill_padding(&self, problem: usize, first_row: usize, padding: Rows<'_, Self>) {
        let stale = (self.0.zeros_from(problem))
            .saturating_sub(first_row)
            .min(padding.out.len());
        padding.out[..stale].fill([0.0; VALUE_DEPTH]);
        padding.weights.fill([0.0; KEYS]);
        padding.lse.fill(f32::NEG_INFINITY);
    }

    #[inline(always)]
    fn walk(&self, problem: usize, first_query: usize) -> Walk<'_, P::Stored, DEPTH, VALUE_DEPTH> {
        let problems = &self.0;
        Walk {
            problem,
            first_query,
            operands: problems.operands(problem),
            keys_valid: problems.valid_keys(problem),
            queries_valid: problems.valid_queries(problem).min(P::QUERIES),
            scale: P::SCALE.unwrap_or_else(|| default_scale(DEPTH)),
        }
    }

    /// The keys `query` sees: under a causal mask, aligned bottom right, the valid queries
    /// are the last positions of the valid keys.
    #[inline(always)]
    fn visible(walk: &Walk<'_, P::Stored, DEPTH, VALUE_DEPTH>, query: usize) -> usize {
        match P::CAUSAL {
            None => walk.keys_valid,
            Some(alignment) => visible_keys(
                query,
                walk.queries_valid,
                walk.keys_valid,
                alignment == Alignment::BottomRight,
            ),
        }
    }

    /// The first key `query` sees in its window.
    #[inline(always)]
    fn window_start(walk: &Walk<'_, P::Stored, DEPTH, VALUE_DEPTH>, query: usize) -> usize {
        match (P::CAUSAL, P::WINDOW) {
            (Some(_), Some(window)) => Self::visible(walk, query).saturating_sub(window),
            _ => 0,
        }
    }

    /// The keys that `rows` rows from the walk's first walk: a causal mask ends them at the
    /// last one the last row sees; a window starts them at the first the first row sees,
    /// rounded down to a whole key block so that keys fall into the same blocks whichever
    /// block of queries (and thread) walks them.
    #[inline(always)]
    fn keys_for_rows(walk: &Walk<'_, P::Stored, DEPTH, VALUE_DEPTH>, rows: usize) -> Range<usize> {
        let from = Self::window_start(walk, walk.first_query) / KEY_BLOCK * KEY_BLOCK;
        let seen = Self::visible(walk, walk.first_query + rows.max(1) - 1);
        from..seen.max(from)
    }

    /// One key block's scores (its keys and the index of the first) for the tile of rows
    /// `first..last` (counted from the walk's first row), with every option applied; false
    /// (and nothing computed) when a causal mask or window hides the block from the whole
    /// tile.
    #[inline(always)]
    fn tile_scores<S: Simd>(
        &self,
        simd: S,
        walk: &Walk<'_, P::Stored, DEPTH, VALUE_DEPTH>,
        packed_keys: &[[f32; KEY_BLOCK]; DEPTH],
        scores_tile: &mut [[f32; KEY_BLOCK]; TILE_ROWS],
        (keys, first_key, next): KeyBlock<'_, P::Stored, DEPTH>,
        Range {
            start: first,
            end: last,
        }: Range<usize>,
    ) -> bool {
        let first_query = walk.first_query;
        let last_key = first_key + keys.len();
        if P::CAUSAL.is_some()
            && (Self::visible(walk, first_query + last - 1) <= first_key
                || Self::window_start(walk, first_query + first) >= last_key)
        {
            return false;
        }
        let queries = &walk.operands.queries[first_query + first..first_query + last];
        if Self::DIRECT {
            scores_direct(simd, queries, keys, next, walk.scale, scores_tile);
        } else {
            scores(
                simd,
                queries,
                packed_keys,
                keys.len(),
                walk.scale,
                scores_tile,
            );
        }
        let tile = &mut scores_tile[..last - first];
        // A soft cap bends the scores before any mask sets some to -inf.
        if let Some(cap) = P::SOFTCAP {
            softcap_scores(simd, tile, keys.len(), cap);
        }
        let problems = &self.0;
        for (r, row) in tile.iter_mut().enumerate() {
            let query = first_query + first + r;
            if let Some(bias) = problems.bias(walk.problem, query) {
                add_bias(simd, row, bias, first_key, keys.len());
            }
            if let Some(keep) = problems.mask(walk.problem, query) {
                keep_only(row, keep, first_key, keys.len());
            }
        }
        if let Some(alignment) = P::CAUSAL {
            mask_causal(
                tile,
                first_query + first,
                first_key,
                walk.queries_valid,
                walk.keys_valid,
                alignment == Alignment::BottomRight,
                P::WINDOW.unwrap_or(usize::MAX),
            );
        }
        true
    }

    /// Steps 1-3 of the loop nest for the rows `out` (from the walk's first) over `keys`,
    /// advancing their statistics. With `normalize_at_end`, rows are normalized at the last
    /// key block when every row sees it (no causal mask), while they are in the cache.
    // The loops are labelled by what they block, whether or not a `continue` names them.
    #[allow(unused_labels, clippy::too_many_arguments)]
    #[inline(always)]
    fn accumulate<S: Simd>(
        &self,
        simd: S,
        walk: &Walk<'_, P::Stored, DEPTH, VALUE_DEPTH>,
        scratch: &mut Scratch<DEPTH, VALUE_DEPTH, KEY_BLOCK, PACKED_VALUE_ROWS>,
        keys: Range<usize>,
        out: &mut [[f32; VALUE_DEPTH]],
        statistics: Statistics<'_>,
        ahead: &Ahead<'_, P::Stored>,
        normalize_at_end: bool,
    ) {
        let Operands {
            keys: k, values: v, ..
        } = walk.operands;
        let Statistics { max, sum } = statistics;
        let Scratch {
            packed_keys: Aligned(packed_keys),
            packed_values: Aligned(packed_values),
            scores_tile: Aligned(scores_tile),
        } = scratch;
        // The keys the rows walk, of which `keys` may be one chunk: a chunk's last block
        // fetches the next chunk's first, which a thread's run of chunks reads next.
        let walked = Self::keys_for_rows(walk, out.len());
        'key_blocks: for first_key in keys.clone().step_by(KEY_BLOCK) {
            let last_key = (first_key + KEY_BLOCK).min(keys.end);
            let (block_keys, values) = (&k[first_key..last_key], &v[first_key..last_key]);
            // Kernels that read their keys as stored fetch the next block's beside them.
            let next = if Self::DIRECT {
                next_block(first_key..last_key, walked.clone())
            } else {
                pack_keys(simd, block_keys, packed_keys);
                last_key..last_key
            };
            let block = (block_keys, first_key, &k[next.clone()]);
            // Kernels with fewer rows than a tile read the values as stored; the others read
            // them on cache lines, in f32 (see `values_on_lines`).
            let values_on_lines = if Self::DIRECT {
                &[]
            } else {
                values_on_lines(simd, values, packed_values)
            };
            'query_tiles: for first in (0..out.len()).step_by(TILE_ROWS) {
                let last = (first + TILE_ROWS).min(out.len());
                let rows = first..last;
                if !self.tile_scores(simd, walk, packed_keys, scores_tile, block, rows) {
                    continue 'query_tiles;
                }
                let tile = &mut scores_tile[..last - first];
                let rows = &mut out[first..last];
                let state = online_softmax(
                    simd,
                    tile,
                    &mut max[first..last],
                    &mut sum[first..last],
                    rows,
                );
                if Self::DIRECT {
                    accumulate_values_by_row(simd, tile, values, &v[next.clone()], rows, state);
                } else {
                    accumulate_values(simd, tile, values_on_lines, rows, state);
                }
                // Without a causal mask every tile sees the last key block: its rows are
                // final there, and normalized while they are in the cache.
                if normalize_at_end && P::CAUSAL.is_none() && last_key == keys.end {
                    normalize(simd, rows, &sum[first..last]);
                }
                ahead.fetch((first_key - keys.start) / KEY_BLOCK, first / TILE_ROWS);
            }
        }
    }

    /// The attention weights of the rows `weights` (from the walk's first) once their
    /// statistics are final: the scores again, block by block (the same arithmetic, so the
    /// same scores), each `exp(s - max) / sum`.
    #[allow(unused_labels)]
    #[inline(always)]
    fn weights<S: Simd>(
        &self,
        simd: S,
        walk: &Walk<'_, P::Stored, DEPTH, VALUE_DEPTH>,
        scratch: &mut Scratch<DEPTH, VALUE_DEPTH, KEY_BLOCK, PACKED_VALUE_ROWS>,
        keys: Range<usize>,
        weights: &mut [[f32; KEYS]],
        statistics: Statistics<'_>,
    ) {
        weights.fill([0.0f32; KEYS]);
        let mut inverse = [0.0f32; QUERY_BLOCK];
        inverse_sums(simd, statistics.sum, &mut inverse);
        let k = walk.operands.keys;
        let Scratch {
            packed_keys: Aligned(packed_keys),
            scores_tile: Aligned(scores_tile),
            ..
        } = scratch;
        'key_blocks: for first_key in keys.clone().step_by(KEY_BLOCK) {
            let last_key = (first_key + KEY_BLOCK).min(keys.end);
            let block_keys = &k[first_key..last_key];
            let block = (block_keys, first_key, &[][..]);
            if !Self::DIRECT {
                pack_keys(simd, block_keys, packed_keys);
            }
            'query_tiles: for first in (0..weights.len()).step_by(TILE_ROWS) {
                let last = (first + TILE_ROWS).min(weights.len());
                let rows = first..last;
                if !self.tile_scores(simd, walk, packed_keys, scores_tile, block, rows) {
                    continue 'query_tiles;
                }
                write_weights(
                    simd,
                    &mut scores_tile[..last - first],
                    &statistics.max[first..last],
                    &inverse[first..last],
                    &mut weights[first..last],
                    first_key,
                    block_keys.len(),
                );
            }
        }
    }
}

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
    type PartialRow = PartialRow<VALUE_DEPTH>;
    type Scratch = Scratch<DEPTH, VALUE_DEPTH, KEY_BLOCK, PACKED_VALUE_ROWS>;
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
    const FLOPS_PER_KEY: u64 = 2 * ((DEPTH + VALUE_DEPTH) as u64);
    const KEY_CHUNKS: usize = {
        assert!(attn_rules::KEY_CHUNK.is_multiple_of(KEY_BLOCK));
        attn_rules::key_chunks(P::QUERIES, KEYS)
    };
    const NO_KEYS: PartialRow<VALUE_DEPTH> = PartialRow::NO_KEYS;
    const MERGE_WALKS_KEYS: bool = P::RETURN_WEIGHTS;

    #[inline(always)]
    fn scratch() -> Self::Scratch {
        Scratch::new()
    }

    #[inline(always)]
    fn block<S: Simd>(
        &self,
        simd: S,
        scratch: &mut Self::Scratch,
        problem: usize,
        first_query: usize,
        rows: Rows<'_, Self>,
    ) {
        const {
            assert!(KEY_BLOCK > 0 && KEY_BLOCK.is_multiple_of(attn_rules::WIDEST_LANES));
            // Only kernels that read their values as stored keep no block of them.
            assert!(
                PACKED_VALUE_ROWS == KEY_BLOCK
                    || (PACKED_VALUE_ROWS == 0 && attn_rules::is_direct(P::QUERIES))
            );
        }
        let problems = &self.0;
        let walk = self.walk(problem, first_query);
        // Rows past the problem's valid queries are padding, and computed not at all.
        let rows_valid = walk
            .queries_valid
            .saturating_sub(first_query)
            .min(rows.out.len());
        let (rows, padding) = rows.split_at(rows_valid);
        self.fill_padding(problem, first_query + rows_valid, padding);
        let Rows { out, weights, lse } = rows;
        if out.is_empty() {
            return;
        }
        let mut running_max = [f32::NEG_INFINITY; QUERY_BLOCK];
        let mut running_sum = [[0.0f32; MAX_LANES]; QUERY_BLOCK];
        let keys = Self::keys_for_rows(&walk, out.len());
        // While the last block of a problem runs, the next problem's operands are fetched
        // into the cache, a part per tile.
        let next: [&[P::Stored]; 3] = match problem + 1 {
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
        let key_blocks = keys.len().div_ceil(KEY_BLOCK);
        let ahead = Ahead::new(next, key_blocks, out.len());
        let statistics = Statistics {
            max: &mut running_max,
            sum: &mut running_sum,
        };
        self.accumulate(
            simd,
            &walk,
            scratch,
            keys.clone(),
            out,
            statistics,
            &ahead,
            true,
        );
        // Rows that no key block normalized: all of them under a causal mask (a tile may skip
        // the last blocks), or when there were no keys at all.
        if P::CAUSAL.is_some() || key_blocks == 0 {
            normalize(simd, out, &running_sum);
        }
        if P::RETURN_LSE {
            log_sum_exp(simd, &running_max, &running_sum, lse);
        }
        if P::RETURN_WEIGHTS {
            let statistics = Statistics {
                max: &mut running_max,
                sum: &mut running_sum,
            };
            self.weights(simd, &walk, scratch, keys, weights, statistics);
        }
    }

    fn keys_walked(&self, problem: usize) -> Range<usize> {
        let walk = self.walk(problem, 0);
        match walk.queries_valid {
            0 => 0..0,
            rows => Self::keys_for_rows(&walk, rows),
        }
    }

    fn problem_flops(&self, problem: usize) -> u64 {
        let valid = self.0.valid_queries(problem).min(P::QUERIES);
        let rows = valid as u64;
        let keys = self.keys_walked(problem).len() as u64;
        // Every row's output is written but those known to hold zeros, the rows past the
        // valid count as zeros: counted as 16 FLOPs a value, so that a batch of short
        // sentences in a large capacity (32 x 12 problems of 8 valid rows in 128, 1.7 ms a
        // call on one thread) is shared out and one sentence (12 such problems) is not.
        let written = valid.max(self.0.zeros_from(problem).min(P::QUERIES));
        let writes = (written * VALUE_DEPTH * 16) as u64;
        rows.saturating_mul(keys)
            .saturating_mul(Self::FLOPS_PER_KEY)
            .saturating_add(writes)
    }

    #[inline(always)]
    fn chunks<'a, S: Simd>(
        &self,
        simd: S,
        chunks: impl Iterator<Item = (usize, usize, &'a mut [PartialRow<VALUE_DEPTH>])>,
    ) {
        // One scratch for all the chunks: setting it up for each cost 2-3% of a decode step
        // over 16,384 keys in chunks of 1,024 (32 KiB of packed keys zeroed, and the L1
        // cache with them, each time).
        let mut scratch = Scratch::new();
        let ahead = Ahead::new([&[]; 3], 0, 0);
        for (problem, chunk, partial) in chunks {
            let walk = self.walk(problem, 0);
            let rows = walk.queries_valid.min(partial.len()).min(TILE_ROWS);
            let all = Self::keys_for_rows(&walk, rows);
            let chunk_keys = chunk * attn_rules::KEY_CHUNK..(chunk + 1) * attn_rules::KEY_CHUNK;
            let keys = all.start.max(chunk_keys.start)..all.end.min(chunk_keys.end);
            let mut out = [[0.0f32; VALUE_DEPTH]; TILE_ROWS];
            let mut running_max = [f32::NEG_INFINITY; TILE_ROWS];
            let mut running_sum = [[0.0f32; MAX_LANES]; TILE_ROWS];
            if rows > 0 && !keys.is_empty() {
                let statistics = Statistics {
                    max: &mut running_max,
                    sum: &mut running_sum,
                };
                let rows_out = &mut out[..rows];
                self.accumulate(
                    simd,
                    &walk,
                    &mut scratch,
                    keys,
                    rows_out,
                    statistics,
                    &ahead,
                    false,
                );
            }
            for (r, row) in partial.iter_mut().take(rows).enumerate() {
                *row = PartialRow {
                    out: out[r],
                    max: running_max[r],
                    sum: running_sum[r],
                };
            }
        }
    }

    #[inline(always)]
    fn merge<S: Simd>(
        &self,
        simd: S,
        problem: usize,
        partials: &[PartialRow<VALUE_DEPTH>],
        rows: Rows<'_, Self>,
    ) {
        let walk = self.walk(problem, 0);
        let rows_valid = walk.queries_valid.min(rows.out.len()).min(TILE_ROWS);
        let (rows, padding) = rows.split_at(rows_valid);
        self.fill_padding(problem, rows_valid, padding);
        let Rows { out, weights, lse } = rows;
        let mut running_max = [f32::NEG_INFINITY; TILE_ROWS];
        let mut running_sum = [[0.0f32; MAX_LANES]; TILE_ROWS];
        for (r, row) in out.iter_mut().enumerate() {
            let chunks = partials.iter().skip(r).step_by(P::QUERIES.max(1));
            merge_partials(simd, chunks, row, &mut running_max[r], &mut running_sum[r]);
        }
        normalize(simd, out, &running_sum);
        if P::RETURN_LSE {
            log_sum_exp(simd, &running_max, &running_sum, lse);
        }
        if P::RETURN_WEIGHTS {
            let keys = Self::keys_for_rows(&walk, out.len());
            let statistics = Statistics {
                max: &mut running_max,
                sum: &mut running_sum,
            };
            self.weights(simd, &walk, &mut Scratch::new(), keys, weights, statistics);
        }
    }
}
