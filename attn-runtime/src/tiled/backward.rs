//! The tiled plan's backward pass, FlashAttention-2's: the gradients `dQ`, `dK` and `dV` of
//! a loss whose gradient with respect to the output is `dO`, from the forward's output `O`
//! and log-sum-exp, with no score matrix stored.
//!
//! For one key/value head of one batch entry and one chunk of its keys
//! ([`attn_rules::BACKWARD_KEY_CHUNK`]), in blocks `K_j`, `V_j` of 64 keys, against
//! the query rows of every query head that reads it (grouped-query attention sums their
//! gradients):
//!
//! ```text
//! D = rowsum(dO ∘ O)                                          row_dots, once per row
//! for each key block j:                                       'key_blocks
//!     pack K_j and V_j as [depth][key]
//!     the tiles of 6 query rows that see it, of every query head sharing it
//!     for each pair of those tiles:                           'tile_pairs
//!         for each tile T of the pair:                        'pair_tiles
//!             S    = Q_T · K_jᵀ · scale, every option applied  tile_gradients
//!             dP   = dO_T · V_jᵀ
//!             P    = exp(S - lse_T)
//!             dS   = P ∘ (dP - D_T) · scale  (· cap' with a soft cap)
//!             dQ_T += dS · K_j
//!         dV_j += Pᵀ · dO, dK_j += dSᵀ · Q over the pair's rows   key_gradients
//! ```
//!
//! `dK_j` and `dV_j` are the chunk's own rows of the outputs: a chunk is one unit of work,
//! on one thread, and no two units write the same row. `dQ` is written straight into the
//! output when a problem's keys are one chunk; otherwise each chunk sums its share into
//! rows of its own and the shares are added in chunk order at the end. The chunks are a
//! rule of the shape ([`attn_rules::backward_key_chunks`]), so the gradients are the same
//! bits on any number of threads, with no atomics.
//!
//! While a unit runs, what the thread's next unit reads is fetched into the L2 cache, a part
//! per tile ([`Ahead`], as the forward does for its next problem).
//!
//! The backward takes its kernel's shape and options at run time ([`Problem`], as the f64
//! path does): it is compiled once, in this crate, rather than once per kernel, which kept
//! a kernel with its backward at the build cost of the kernel alone (docs/PERFORMANCE.md).
//! Its arithmetic is compiled once per instruction set; the bookkeeping around it (the keys
//! a unit walks, the tiles that see a block, a tile's rows) once for all of them.

use super::gradients::{
    CausalTile, Tile, TileScratch, Weights, key_gradients, row_dots, rows_on_lines, tile_gradients,
};
use super::prefetch::Ahead;
use super::tile::TILE_ROWS;
use crate::scalar::{Causal, Problem, seen_keys};
use crate::simd::{Isa, Simd, WithSimd, dispatch};
use attn_rules::{BACKWARD_KEY_CHUNK, backward_key_chunks};
use std::ops::Range;

/// The forward's results and `d_out`, flat, which every unit reads.
#[derive(Clone, Copy)]
struct Inputs<'a> {
    problem: &'a Problem<'a, f32>,
    out: &'a [f32],
    lse: &'a [f32],
    d_out: &'a [f32],
}

/// Keys per block of the backward: attn's widest, whatever the depth. The forward shortens
/// its blocks for deep heads to keep its scratch on the stack small; the backward's is on
/// the heap, and one block size keeps one copy of its loops per instruction set (three
/// sizes took the backward's machine code from about 100 KiB to 306).
const KB: usize = attn_rules::KEY_BLOCK;

/// One unit of work: chunk `chunk` of the keys of key/value head `kv_head` of batch entry
/// `batch`, against the query rows of every query head that reads it, with the rows it
/// writes.
struct Unit<'a> {
    batch: usize,
    kv_head: usize,
    chunk: usize,
    /// The chunk's share of `dq`, for the query rows of each query head of the group.
    dq: &'a mut [f32],
    /// The chunk's rows of `dk` and `dv`.
    dk: &'a mut [f32],
    dv: &'a mut [f32],
    /// Query-key pairs the unit computes: its share of the threads' work.
    pairs: u64,
}

impl<'a> Inputs<'a> {
    /// What the unit of `batch`, `kv_head` and `chunk` reads: the chunk's keys and values,
    /// and the query rows, output rows and output gradient rows of the query heads that
    /// read them.
    fn read_by(&self, batch: usize, kv_head: usize, chunk: usize) -> [&'a [f32]; 5] {
        let problem = self.problem;
        let (queries, keys) = (problem.queries, problem.keys);
        let (depth, value_depth) = (problem.depth, problem.value_depth);
        let chunk = chunk_keys(chunk, keys);
        let kv = batch * problem.kv_heads + kv_head;
        let heads = group(problem, kv_head);
        let rows = (batch * problem.heads + heads.start) * queries
            ..(batch * problem.heads + heads.end) * queries;
        [
            &problem.k[(kv * keys + chunk.start) * depth..(kv * keys + chunk.end) * depth],
            &problem.v
                [(kv * keys + chunk.start) * value_depth..(kv * keys + chunk.end) * value_depth],
            &problem.q[rows.start * depth..rows.end * depth],
            &self.out[rows.start * value_depth..rows.end * value_depth],
            &self.d_out[rows.start * value_depth..rows.end * value_depth],
        ]
    }
}

/// The keys of chunk `chunk` of `keys`.
fn chunk_keys(chunk: usize, keys: usize) -> Range<usize> {
    let start = chunk * BACKWARD_KEY_CHUNK;
    start.min(keys)..(start + BACKWARD_KEY_CHUNK).min(keys)
}

/// One query head of one batch entry, seen by the backward: its index among all query
/// heads and among those that read its key/value head, and the keys its valid rows see.
#[derive(Clone, Copy)]
struct Head {
    /// `batch · heads + head`.
    index: usize,
    /// The head's place among the query heads that read its key/value head.
    in_group: usize,
    /// The entry's valid keys and valid query rows.
    keys_valid: usize,
    queries_valid: usize,
    causal: Option<Causal>,
}

impl Head {
    fn of(problem: &Problem<'_, f32>, batch: usize, head: usize) -> Head {
        let (keys_valid, queries_valid) = problem.valid_counts(batch);
        Head {
            index: batch * problem.heads + head,
            in_group: head % group_size(problem).max(1),
            keys_valid,
            queries_valid,
            causal: problem.causal,
        }
    }

    /// The keys query row `query` sees: `from..to`.
    fn visible(&self, query: usize) -> Range<usize> {
        seen_keys(self.causal, query, self.queries_valid, self.keys_valid)
    }

    /// The causal mask as a tile of this head applies it.
    fn causal_tile(&self) -> Option<CausalTile> {
        self.causal.map(|causal| CausalTile {
            queries: self.queries_valid,
            keys: self.keys_valid,
            bottom_right: causal.bottom_right,
            window: causal.window,
        })
    }

    /// The keys some valid row sees, from the first row's first key to the last row's last.
    fn keys_walked(&self) -> Range<usize> {
        match self.queries_valid {
            0 => 0..0,
            rows => {
                let (first, last) = (self.visible(0), self.visible(rows - 1));
                first.start..last.end.max(first.start)
            }
        }
    }
}

/// How many query heads read each key/value head.
fn group_size(problem: &Problem<'_, f32>) -> usize {
    problem.heads / problem.kv_heads.max(1)
}

/// The query heads that read key/value head `kv_head`.
fn group(problem: &Problem<'_, f32>, kv_head: usize) -> Range<usize> {
    let group = group_size(problem);
    kv_head * group..(kv_head + 1) * group
}

/// The query-key pairs of `unit`'s chunk that some option leaves visible.
fn pairs(problem: &Problem<'_, f32>, batch: usize, kv_head: usize, keys: &Range<usize>) -> u64 {
    let mut pairs = 0u64;
    for h in group(problem, kv_head) {
        let head = Head::of(problem, batch, h);
        for query in 0..head.queries_valid {
            let seen = head.visible(query);
            pairs += seen
                .end
                .min(keys.end)
                .saturating_sub(seen.start.max(keys.start)) as u64;
        }
    }
    pairs
}

/// The keys of `chunk` that some valid row of `heads` sees, from a block boundary. Not
/// inlined, as [`tiles_seeing`].
#[inline(never)]
fn keys_seen(heads: &[Head], chunk: Range<usize>) -> Range<usize> {
    let (mut from, mut to) = (usize::MAX, 0);
    for head in heads {
        let walked = head.keys_walked();
        if !walked.is_empty() {
            (from, to) = (from.min(walked.start), to.max(walked.end));
        }
    }
    let from = (from.max(chunk.start) / KB * KB).max(chunk.start);
    let to = to.min(chunk.end).max(from.min(chunk.end));
    from.min(to)..to
}

/// A tile of up to [`TILE_ROWS`] valid query rows of one head, `first..last`.
#[derive(Clone, Copy)]
struct QueryTile {
    head: Head,
    first: usize,
    last: usize,
}

/// Into `tiles`, the tiles of every head of `heads` that see some of `keys`: a causal mask
/// or window may hide a block of keys from some. Not inlined, as [`UnitTiles::tile`]: the
/// bookkeeping around the arithmetic is compiled once rather than once per instruction set.
#[inline(never)]
fn tiles_seeing(heads: &[Head], keys: Range<usize>, tiles: &mut Vec<QueryTile>) {
    tiles.clear();
    for head in heads {
        for first in (0..head.queries_valid).step_by(TILE_ROWS) {
            let last = (first + TILE_ROWS).min(head.queries_valid);
            let visible = (head.visible(first).start, head.visible(last - 1).end);
            if visible.0 < keys.end && visible.1 > keys.start {
                tiles.push(QueryTile {
                    head: *head,
                    first,
                    last,
                });
            }
        }
    }
}

/// A block of keys as the tiles read it: the index of its first key, how many it holds,
/// the keys as stored, and the keys and values packed as `[depth][KB]`.
struct KeyBlock<'a> {
    first_key: usize,
    keys: usize,
    key_rows: &'a [f32],
    packed_keys: &'a [[f32; KB]],
    packed_values: &'a [[f32; KB]],
}

/// What the tiles of one unit read besides their block of keys: the unit's inputs and batch
/// entry, each row's `D` (the group's rows, head after head), and a row of zeros.
struct UnitTiles<'a> {
    inputs: Inputs<'a>,
    batch: usize,
    row_d: &'a [f32],
    zeros: &'a [f32],
}

impl<'a> UnitTiles<'a> {
    /// The [`Tile`] of `tile`'s rows against `block`, adding to its rows of `dq` (the unit's
    /// rows of the group, head after head): its rows, zeros past the last, and each row's
    /// bias, keep-mask, log-sum-exp and `D`.
    #[inline(never)]
    fn tile<'o>(
        &self,
        tile: QueryTile,
        block: &KeyBlock<'a>,
        dq: &'o mut [f32],
    ) -> Tile<'a, 'o, KB> {
        let Inputs {
            problem,
            lse,
            d_out,
            ..
        } = self.inputs;
        let QueryTile { head, first, last } = tile;
        let (queries, keys) = (problem.queries, problem.keys);
        let (depth, value_depth) = (problem.depth, problem.value_depth);
        let h = head.index % problem.heads;
        let row = |i: usize| head.index * queries + i;
        let mut bias = [&[][..]; TILE_ROWS];
        let mut keep = [&[][..]; TILE_ROWS];
        let (mut query_rows, mut d_out_rows) = (
            [&self.zeros[..depth]; TILE_ROWS],
            [&self.zeros[..value_depth]; TILE_ROWS],
        );
        for (r, i) in (first..last).enumerate() {
            if let Some(b) = &problem.bias {
                bias[r] = b.row(self.batch, h, i, keys);
            }
            if let Some(m) = &problem.mask {
                keep[r] = m.row(self.batch, h, i, keys);
            }
            query_rows[r] = &problem.q[row(i) * depth..][..depth];
            d_out_rows[r] = &d_out[row(i) * value_depth..][..value_depth];
        }
        let in_group = head.in_group * queries;
        Tile {
            keys: block.keys,
            first_key: block.first_key,
            rows: last - first,
            first_row: first,
            scale: problem.scale as f32,
            softcap: problem.softcap.map(|cap| cap as f32),
            bias,
            keep,
            causal: head.causal_tile(),
            query_rows,
            d_out_rows,
            lse: &lse[row(first)..row(last)],
            d: &self.row_d[in_group + first..in_group + last],
            packed_keys: block.packed_keys,
            packed_values: block.packed_values,
            key_rows: block.key_rows,
            dq: &mut dq[(in_group + first) * depth..(in_group + last) * depth],
        }
    }
}

/// A thread's scratch: a block of keys and one of values packed as `[depth][key]`, the
/// block's gradients of its keys and values transposed likewise (and room to transpose a
/// short block's back), a row of zeros for the rows past a tile's last, a tile's room, and
/// each row's `D`.
struct Scratch {
    /// On cache lines ([`rows_on_lines`]), as the gradients below.
    packed_keys: Vec<f32>,
    packed_values: Vec<f32>,
    dk_columns: Vec<f32>,
    dv_columns: Vec<f32>,
    key_rows: Vec<f32>,
    zeros: Vec<f32>,
    tile: TileScratch<KB>,
    /// A pair of tiles' weights.
    weights: [Weights<KB>; 2],
    /// The tiles that see a block.
    seen_by: Vec<QueryTile>,
    row_d: Vec<f32>,
}

impl Scratch {
    fn new(problem: &Problem<'_, f32>) -> Self {
        let (depth, value_depth) = (problem.depth, problem.value_depth);
        let group = group_size(problem);
        Scratch {
            packed_keys: vec![0.0; depth * KB + 15],
            packed_values: vec![0.0; value_depth * KB + 15],
            zeros: vec![0.0; depth.max(value_depth)],
            dk_columns: vec![0.0; depth * KB + 15],
            dv_columns: vec![0.0; value_depth * KB + 15],
            key_rows: vec![0.0; KB * depth.max(value_depth)],
            tile: TileScratch::new(depth),
            weights: [Weights::new(), Weights::new()],
            seen_by: Vec::new(),
            row_d: vec![0.0; group * problem.queries],
        }
    }
}

/// Computes one unit: the chunk's rows of `dk` and `dv`, and its share of `dq`; and
/// fetches what the thread's next unit reads, `next`, into the L2 cache a part per tile.
// The loops are labelled by what they block, whether or not a `continue` names them.
#[allow(unused_labels)]
#[inline(always)]
fn unit<S: Simd>(
    simd: S,
    inputs: Inputs<'_>,
    scratch: &mut Scratch,
    unit: Unit<'_>,
    next: [&[f32]; 5],
) {
    let Inputs {
        problem,
        out,
        d_out,
        ..
    } = inputs;
    let Unit {
        batch,
        kv_head,
        chunk,
        dq,
        dk,
        dv,
        ..
    } = unit;
    let (queries, keys) = (problem.queries, problem.keys);
    let (depth, value_depth) = (problem.depth, problem.value_depth);
    // The queries' gradient is a sum over the key blocks; the keys' and values' are written
    // block by block below, and zeroed where no row sees them.
    dq.fill(0.0);
    let heads: Vec<Head> = group(problem, kv_head)
        .map(|h| Head::of(problem, batch, h))
        .collect();
    // D = rowsum(dO ∘ O) of every row of the group, once.
    for head in &heads {
        let rows = head.index * queries * value_depth..(head.index + 1) * queries * value_depth;
        let d = &mut scratch.row_d[head.in_group * queries..][..queries];
        row_dots(simd, &d_out[rows.clone()], &out[rows], value_depth, d);
    }
    let chunk = chunk_keys(chunk, keys);
    let Range {
        start: from,
        end: to,
    } = keys_seen(&heads, chunk.clone());
    for (gradient, width) in [(&mut *dk, depth), (&mut *dv, value_depth)] {
        gradient[..(from - chunk.start) * width].fill(0.0);
        gradient[(to - chunk.start) * width..].fill(0.0);
    }
    let kv = batch * problem.kv_heads + kv_head;
    let k = &problem.k[kv * keys * depth..][..keys * depth];
    let v = &problem.v[kv * keys * value_depth..][..keys * value_depth];
    let Scratch {
        packed_keys,
        packed_values,
        zeros,
        dk_columns,
        dv_columns,
        key_rows,
        tile: tile_scratch,
        weights,
        seen_by,
        row_d,
    } = scratch;
    let unit_tiles = UnitTiles {
        inputs,
        batch,
        row_d,
        zeros,
    };
    // With operands larger than the cache (W4, 96 problems of 320 KiB), about 2% faster in
    // A/B runs of the backward benchmark.
    let tiles = queries.div_ceil(TILE_ROWS);
    let (blocks, rows) = ((to - from).div_ceil(KB), heads.len() * tiles * TILE_ROWS);
    let [next_k, next_v, next_q, next_out, next_d_out] = next;
    let ahead = [
        Ahead::new([next_k, next_v, next_d_out], blocks, rows),
        Ahead::new([next_q, next_out, &[]], blocks, rows),
    ];
    let packed_keys = rows_on_lines::<KB>(packed_keys, depth);
    let packed_values = rows_on_lines::<KB>(packed_values, value_depth);
    let dk_columns = rows_on_lines::<KB>(dk_columns, depth);
    let dv_columns = rows_on_lines::<KB>(dv_columns, value_depth);
    'key_blocks: for (block, first_key) in (from..to).step_by(KB).enumerate() {
        let last_key = (first_key + KB).min(to);
        let count = last_key - first_key;
        let block_keys = &k[first_key * depth..last_key * depth];
        let block_values = &v[first_key * value_depth..last_key * value_depth];
        simd.pack_keys(block_keys, depth, count, packed_keys.as_flattened_mut(), KB);
        let values = packed_values.as_flattened_mut();
        simd.pack_keys(block_values, value_depth, count, values, KB);
        let key_block = KeyBlock {
            first_key,
            keys: count,
            key_rows: block_keys,
            packed_keys,
            packed_values,
        };
        tiles_seeing(&heads, first_key..last_key, seen_by);
        // Two tiles at a time: each its weights and its rows of dq, then both into the
        // block's transposed gradients (the first pair writes them). An odd last tile pairs
        // with one of no rows, whose weights are zeros.
        'tile_pairs: for (p, pair) in seen_by.chunks(2).enumerate() {
            let no_rows = (
                [&unit_tiles.zeros[..depth]; TILE_ROWS],
                [&unit_tiles.zeros[..value_depth]; TILE_ROWS],
            );
            let mut pair_rows = [no_rows; 2];
            if pair.len() < 2 {
                weights[1].clear();
            }
            'pair_tiles: for (slot, &query_tile) in pair.iter().enumerate() {
                let part = query_tile.head.in_group * tiles + query_tile.first / TILE_ROWS;
                ahead.iter().for_each(|ahead| ahead.fetch(block, part));
                let tile = unit_tiles.tile(query_tile, &key_block, dq);
                pair_rows[slot] = (tile.query_rows, tile.d_out_rows);
                tile_gradients(simd, tile, tile_scratch, &mut weights[slot]);
            }
            let fresh = p == 0;
            key_gradients(simd, pair_rows, weights, dk_columns, dv_columns, fresh);
        }
        let unseen = seen_by.is_empty();
        // The block's rows of dk and dv, its own: its transposed sums, transposed back (by
        // the packing's transposes, of `[depth][KB]` into `[KB][depth]`) and written once;
        // zeros when no tile saw the block.
        let in_chunk = first_key - chunk.start..last_key - chunk.start;
        for (columns, width, gradient) in [
            (&*dk_columns, depth, &mut *dk),
            (&*dv_columns, value_depth, &mut *dv),
        ] {
            let block = &mut gradient[in_chunk.start * width..in_chunk.end * width];
            if unseen {
                block.fill(0.0);
                continue;
            }
            let rows = &mut key_rows[..KB * width];
            simd.pack_keys(columns.as_flattened(), KB, width, rows, width);
            block.copy_from_slice(&rows[..count * width]);
        }
    }
}

/// A thread's units, run on one instruction set with one scratch.
struct Units<'a> {
    inputs: Inputs<'a>,
    units: Vec<Unit<'a>>,
}

impl Units<'_> {
    /// The units, on the instruction set of `simd`.
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) {
        let mut scratch = Scratch::new(self.inputs.problem);
        let next_reads: Vec<[&[f32]; 5]> = (self.units.iter().skip(1))
            .map(|next| self.inputs.read_by(next.batch, next.kv_head, next.chunk))
            .chain([[&[][..]; 5]])
            .collect();
        for (one, next) in self.units.into_iter().zip(next_reads) {
            unit(simd, self.inputs, &mut scratch, one, next);
        }
    }
}

impl WithSimd for Units<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        self.run(simd);
    }
}

/// Computes the gradients of `problem`'s attention for a loss whose gradient with respect
/// to its output is `d_out`, into `dq`, `dk` and `dv` (flat, shaped like q, k and v;
/// overwritten), from the forward's `out` and `lse` on the same inputs, on the active
/// instruction set and, with the `threads` feature, on several threads when it pays; the
/// same bits on any number of threads. Rows past the valid queries, and rows that see no
/// key, contribute nothing.
///
/// ```
/// use attn_runtime::__private::{backward, scalar::Problem};
/// // One query over two keys with equal scores: each value gets half of d_out.
/// let problem = Problem {
///     batch: 1, heads: 1, kv_heads: 1, queries: 1, keys: 2, depth: 1, value_depth: 1,
///     scale: 1.0, causal: None, softcap: None,
///     q: &[0.0f32], k: &[1.0, 1.0], v: &[2.0, 4.0],
///     mask: None, bias: None, valid_keys: None, valid_queries: None,
/// };
/// let (mut dq, mut dk, mut dv) = ([9.0], [9.0; 2], [9.0; 2]);
/// backward(&problem, &[3.0], &[2f32.ln()], &[1.0], &mut dq, &mut dk, &mut dv);
/// assert_eq!((dq, dk, dv), ([0.0], [0.0, 0.0], [0.5, 0.5]));
/// ```
pub fn backward(
    problem: &Problem<'_, f32>,
    out: &[f32],
    lse: &[f32],
    d_out: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let Problem {
        batch,
        kv_heads,
        queries,
        keys,
        depth,
        value_depth,
        ..
    } = *problem;
    let group = group_size(problem);
    if batch * kv_heads == 0 || keys == 0 || queries == 0 || group == 0 {
        dq.fill(0.0);
        dk.fill(0.0);
        dv.fill(0.0);
        return;
    }
    let chunks = backward_key_chunks(keys);
    let inputs = Inputs {
        problem,
        out,
        lse,
        d_out,
    };
    let rows_per_group = group * queries * depth;
    // With one chunk per head, each unit writes its rows of `dq`; with more, its share.
    let mut shares_of_dq = Vec::new();
    let dq_target: &mut [f32] = if chunks > 1 {
        shares_of_dq = vec![0.0f32; batch * kv_heads * chunks * rows_per_group];
        &mut shares_of_dq
    } else {
        &mut *dq
    };
    let mut units = Vec::with_capacity(batch * kv_heads * chunks);
    let (mut dq_rest, mut dk_rest, mut dv_rest) = (dq_target, &mut *dk, &mut *dv);
    for b in 0..batch {
        for kv_head in 0..kv_heads {
            for chunk in 0..chunks {
                let keys_here = chunk_keys(chunk, keys);
                let n = keys_here.len();
                let (dq_unit, dq_tail) = dq_rest.split_at_mut(rows_per_group);
                let (dk_unit, dk_tail) = dk_rest.split_at_mut(n * depth);
                let (dv_unit, dv_tail) = dv_rest.split_at_mut(n * value_depth);
                (dq_rest, dk_rest, dv_rest) = (dq_tail, dk_tail, dv_tail);
                units.push(Unit {
                    batch: b,
                    kv_head,
                    chunk,
                    dq: dq_unit,
                    dk: dk_unit,
                    dv: dv_unit,
                    pairs: pairs(problem, b, kv_head, &keys_here),
                });
            }
        }
    }
    let isa = Isa::active();
    let flops_per_pair = 2 * (3 * depth + 2 * value_depth) as u64;
    let total: u64 = units.iter().map(|unit| unit.pairs * flops_per_pair).sum();
    #[cfg(feature = "threads")]
    let threads = crate::threads::for_work(total).min(units.len());
    #[cfg(not(feature = "threads"))]
    let threads = {
        let _ = total;
        1
    };
    let shares = share_out(units, threads);
    let run = |units| dispatch(isa, Units { inputs, units });
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
fn share_out(mut units: Vec<Unit<'_>>, threads: usize) -> Vec<Vec<Unit<'_>>> {
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
/// head, `chunks` shares of `rows` values each.
fn sum_shares(shares: &[f32], dq: &mut [f32], chunks: usize, rows: usize) {
    for (dq, shares) in dq
        .chunks_exact_mut(rows)
        .zip(shares.chunks_exact(chunks * rows))
    {
        let (first, rest) = shares.split_at(rows);
        dq.copy_from_slice(first);
        for share in rest.chunks_exact(rows) {
            for (sum, term) in dq.iter_mut().zip(share) {
                *sum += term;
            }
        }
    }
}
