//! The driver of the tiled plan: a [`Kernel`] computes one block of query rows; [`run`]
//! splits the output rows of every problem into blocks ([`block_length`]) and runs them on
//! the active instruction set and, with the `threads` feature, on several threads.

use super::tile::TILE_ROWS;
use crate::simd::{Isa, Simd, WithSimd, dispatch};

/// Whether a kernel with `queries` query rows per problem reads its keys and values in place
/// rather than packing them: fewer rows than a tile ([`Kernel::DIRECT`]). [`crate::KernelInfo`]
/// counts its scratch by the same rule, and the macro plans by it: attn's shared rule,
/// `attn_rules::is_direct`.
///
/// ```
/// assert!(attn_runtime::__private::is_direct(1));
/// assert!(!attn_runtime::__private::is_direct(6));
/// ```
pub const fn is_direct(queries: u64) -> bool {
    queries <= usize::MAX as u64 && attn_rules::is_direct(queries as usize)
}

/// A tiled kernel, as the macro emits it: the rows of its output and how to compute a block.
pub trait Kernel: Sync {
    /// One output row, `[f32; Dv]`.
    type Row: Send;
    /// One row of attention weights, `[f32; Nk]`.
    type WeightsRow: Send;
    /// Query rows per problem (one batch entry and head).
    const QUERIES: usize;
    /// The most query rows per block, a whole number of tiles: a block packs its keys once
    /// for all its rows. A run of rows is split into equal blocks no longer than this.
    const QUERY_BLOCK: usize;
    /// Floating-point operations per query row, to decide whether threads pay.
    const FLOPS_PER_ROW: u64;
    /// Floating-point operations per query row and key: the work of a chunk of keys.
    const FLOPS_PER_KEY: u64;
    /// Whether a problem has fewer query rows than a tile (decoding has one): its keys are
    /// then read as stored, by [`scores_direct`], rather than packed for each block by
    /// [`pack_keys`] for [`scores`], and its values in place. A property of the kernel, so
    /// every row of a problem takes the same path whatever the threads. See [`is_direct`].
    ///
    /// [`scores_direct`]: super::scores_direct
    /// [`pack_keys`]: crate::simd::pack::pack_keys
    /// [`scores`]: fn@super::scores
    const DIRECT: bool = is_direct(Self::QUERIES as u64);
    /// The chunks each problem's keys are split into, computed apart and merged
    /// ([`chunks`](Kernel::chunks), [`merge`](Kernel::merge)): more than 1 for kernels whose
    /// problems have too few query rows to share out (decoding), by the shape alone
    /// (`attn_rules::key_chunks`), so that results do not depend on the threads.
    const KEY_CHUNKS: usize = 1;
    /// Whether [`merge`](Kernel::merge) walks the keys again (to write the attention weights),
    /// and so is worth sharing among threads; otherwise it is a few multiply-adds per row.
    const MERGE_WALKS_KEYS: bool = false;
    /// One query row's partial result over one chunk of keys.
    type PartialRow: Send + Sync;
    /// The partial result of a row over no keys.
    const NO_KEYS: Self::PartialRow;
    /// What a block works in besides its rows (packed keys and values, a tile of scores).
    type Scratch;
    /// A scratch for a thread's blocks, set up once for all of them.
    fn scratch() -> Self::Scratch;
    /// Computes the rows `first_query..first_query + out.len()` of problem `problem`, their
    /// attention weights into `weights` and their log-sum-exp into `lse`, each when it is not
    /// empty (then it is as long as `out`), in `scratch`, whatever it holds.
    fn block<S: Simd>(
        &self,
        simd: S,
        scratch: &mut Self::Scratch,
        problem: usize,
        first_query: usize,
        rows: Rows<'_, Self>,
    );
    /// The keys that the valid query rows of problem `problem` walk (all its rows at once):
    /// the work of its chunks, by which the driver shares them out.
    fn keys_walked(&self, problem: usize) -> std::ops::Range<usize>;
    /// The floating-point operations of problem `problem`'s valid query rows over the keys
    /// they walk: the work by which the driver decides whether threads pay, so that rows past
    /// a valid count neither cost work nor wake threads.
    fn problem_flops(&self, problem: usize) -> u64;
    /// Computes, for each `(problem, chunk, partial)` of `chunks`, the partial results of
    /// every query row of `problem` over its chunk `chunk` of keys into `partial`, one per
    /// row ([`QUERIES`](Kernel::QUERIES)). One call for a thread's chunks, so that their
    /// scratch is set up once.
    fn chunks<'a, S: Simd>(
        &self,
        simd: S,
        chunks: impl Iterator<Item = (usize, usize, &'a mut [Self::PartialRow])>,
    ) where
        Self::PartialRow: 'a;
    /// Merges the partial results of problem `problem`, chunk by chunk ([`KEY_CHUNKS`] times
    /// [`QUERIES`] rows), into its rows, weights and log-sum-exp, as [`block`] would have
    /// written them.
    ///
    /// [`KEY_CHUNKS`]: Kernel::KEY_CHUNKS
    /// [`QUERIES`]: Kernel::QUERIES
    /// [`block`]: Kernel::block
    fn merge<S: Simd>(
        &self,
        simd: S,
        problem: usize,
        partials: &[Self::PartialRow],
        rows: Rows<'_, Self>,
    );
}

/// Rows of a kernel's outputs: the output itself and, when the kernel returns them, the
/// attention weights and the log-sum-exp (empty slices otherwise), all starting at one row.
pub struct Rows<'a, K: Kernel + ?Sized> {
    /// Output rows, `[f32; Dv]` each.
    pub out: &'a mut [K::Row],
    /// Attention weight rows, `[f32; Nk]` each, or empty.
    pub weights: &'a mut [K::WeightsRow],
    /// Log-sum-exp of each row, or empty.
    pub lse: &'a mut [f32],
}

impl<'a, K: Kernel + ?Sized> Rows<'a, K> {
    /// The first `len` rows, and the rest.
    pub(super) fn split_at(self, len: usize) -> (Self, Self) {
        let (out, out_rest) = self.out.split_at_mut(len);
        let (weights, weights_rest) = self.weights.split_at_mut(len.min(self.weights.len()));
        let (lse, lse_rest) = self.lse.split_at_mut(len.min(self.lse.len()));
        (
            Rows { out, weights, lse },
            Rows {
                out: out_rest,
                weights: weights_rest,
                lse: lse_rest,
            },
        )
    }
}

/// The blocks of a range of output rows, run on one instruction set.
struct Blocks<'a, K: Kernel> {
    kernel: &'a K,
    /// Rows starting at a tile boundary of their problem.
    rows: Rows<'a, K>,
    /// The index, among all output rows, of `rows.out[0]`.
    first_row: usize,
}

/// The length of each block that `rows` query rows (a run of one problem, starting at a tile
/// boundary) are split into: as few blocks as `query_block` allows, of equal length in whole
/// tiles, so that a run never ends in a block of a few rows that pays for packing every key.
///
/// ```
/// use attn_runtime::__private::block_length;
/// assert_eq!(block_length(2048, 516), 516);
/// assert_eq!(block_length(1026, 516), 516);
/// assert_eq!(block_length(600, 516), 300);
/// assert_eq!(block_length(100, 516), 100);
/// ```
pub fn block_length(rows: usize, query_block: usize) -> usize {
    let tiles = rows.div_ceil(TILE_ROWS);
    let blocks = tiles.div_ceil((query_block / TILE_ROWS).max(1));
    (tiles.div_ceil(blocks.max(1)) * TILE_ROWS).min(rows)
}

impl<K: Kernel> WithSimd for Blocks<'_, K> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let mut row = self.first_row;
        let mut rest = self.rows;
        let mut scratch = K::scratch();
        while !rest.out.is_empty() {
            let (problem, first_query) = (row / K::QUERIES, row % K::QUERIES);
            let run = (K::QUERIES - first_query).min(rest.out.len());
            // Every block starts at a tile boundary of its problem, wherever the run starts,
            // so each tile holds the same rows whatever the blocks and threads.
            let len = block_length(run, K::QUERY_BLOCK);
            let (block, tail) = rest.split_at(len);
            self.kernel
                .block(simd, &mut scratch, problem, first_query, block);
            row += len;
            rest = tail;
        }
    }
}

/// Runs `kernel` over all of `rows.out`, the output rows of every problem in order, and
/// writes their weights and log-sum-exp where those are not empty, on the active instruction
/// set (and, with the `threads` feature, on several threads when it pays).
pub fn run<K: Kernel>(kernel: &K, rows: Rows<'_, K>) {
    // The kernel's checks of its constants (a depth left to a const generic that needs too
    // much scratch), here, in the function the kernel calls: a failure then names the
    // kernel's `attention!` invocation, not a function of the driver.
    let _ = K::QUERY_BLOCK;
    (Driver::<K>::RUN)(kernel, rows)
}

/// The driver of a kernel, chosen when it is compiled: kernels whose keys are split into
/// chunks ([`Kernel::KEY_CHUNKS`] above 1: decoding over long caches) by [`run_split`], the
/// others by [`run_unsplit`]. As a constant, only the chosen function is compiled: a
/// branch on `KEY_CHUNKS` at run time compiled the loop nest over chunks into every kernel,
/// which took its release build from 0.53 s to 0.85 s (`--bench build_cost`).
struct Driver<K>(std::marker::PhantomData<K>);

impl<K: Kernel> Driver<K> {
    const RUN: for<'a, 'b> fn(&'a K, Rows<'b, K>) = if K::KEY_CHUNKS > 1 {
        run_split::<K>
    } else {
        run_unsplit::<K>
    };
}

/// [`run`] for kernels whose keys are never split: blocks of query rows.
fn run_unsplit<K: Kernel>(kernel: &K, rows: Rows<'_, K>) {
    if let Some((isa, threads)) = setup(kernel, &rows) {
        run_blocks(kernel, rows, isa, threads);
    }
}

/// [`run`] for kernels whose keys are split into chunks computed apart (on any thread) and
/// merged, unless every problem walks keys of one chunk.
fn run_split<K: Kernel>(kernel: &K, rows: Rows<'_, K>) {
    let Some((isa, mut threads)) = setup(kernel, &rows) else {
        return;
    };
    let walked: Vec<_> = (0..rows.out.len() / K::QUERIES)
        .map(|problem| kernel.keys_walked(problem))
        .collect();
    let flops_per_key = (K::QUERIES as u64).saturating_mul(K::FLOPS_PER_KEY);
    threads = threads.min(super::chunks::threads_for(&walked, flops_per_key));
    if !super::chunks::within_one_chunk(&walked) {
        return super::chunks::run(kernel, rows, isa, threads, &walked);
    }
    // Every problem walks keys of one chunk: split, each row would merge one partial result
    // with a factor of exactly 1, the bits of one walk, which the blocks compute without the
    // partial results (a decoding loop's steps over a short context in a large cache).
    run_blocks(kernel, rows, isa, threads);
}

/// The instruction set and the threads a call of `kernel` over `rows` runs on, or `None`
/// when there is nothing to compute.
fn setup<K: Kernel>(kernel: &K, rows: &Rows<'_, K>) -> Option<(Isa, usize)> {
    #[cfg(not(feature = "threads"))]
    let _ = kernel;
    let out_rows = rows.out.len();
    if K::QUERIES == 0 || K::QUERY_BLOCK == 0 || out_rows == 0 {
        return None;
    }
    #[cfg(feature = "threads")]
    let threads = crate::threads::for_work(
        (0..out_rows / K::QUERIES)
            .map(|problem| kernel.problem_flops(problem))
            .fold(0, u64::saturating_add),
    );
    #[cfg(not(feature = "threads"))]
    let threads = 1;
    Some((Isa::active(), threads))
}

/// The rows in blocks, on `threads` threads.
fn run_blocks<K: Kernel>(kernel: &K, rows: Rows<'_, K>, isa: Isa, threads: usize) {
    #[cfg(feature = "threads")]
    if threads > 1 {
        return run_threads(kernel, rows, isa, threads);
    }
    #[cfg(not(feature = "threads"))]
    let _ = threads;
    dispatch(
        isa,
        Blocks {
            kernel,
            rows,
            first_row: 0,
        },
    );
}

/// The work, in FLOPs, that the calling thread does beyond its equal share: it starts at
/// once, while a pool thread asleep since the last call first has to be woken (`cargo run
/// --release -p attn-bench --example spawn`: 81-89 us for a job there and back, two
/// wake-ups; 4 MFLOP are about 25 us at 160 GFLOP/s). In two runs of the benchmark each,
/// W4 on two threads reached 1.92-1.94x its single-thread speed with it and 1.89-1.92x
/// without; W3 1.93-1.94x either way.
#[cfg(feature = "threads")]
const HEAD_START_FLOPS: u64 = 1 << 22;

/// Splits the rows into `threads` runs of about equal length, each starting at a tile
/// boundary of its problem, the last (the calling thread's) a little longer; each thread
/// then splits its run into blocks.
#[cfg(feature = "threads")]
fn run_threads<K: Kernel>(kernel: &K, rows: Rows<'_, K>, isa: Isa, threads: usize) {
    let total = rows.out.len();
    let head_start = usize::try_from(HEAD_START_FLOPS / K::FLOPS_PER_ROW.max(1)).unwrap_or(0);
    // The row where share `t` starts: `total · t / threads` (the last share's moved up by
    // the head start), moved to its problem's nearest tile boundary (or the problem's end).
    let start = |t: usize| {
        let row = total * t / threads;
        let row = if t == threads - 1 {
            row.saturating_sub(head_start)
                .max(total * (t - 1) / threads)
        } else {
            row
        };
        let (problem, query) = (row / K::QUERIES, row % K::QUERIES);
        let query = ((query + TILE_ROWS / 2) / TILE_ROWS * TILE_ROWS).min(K::QUERIES);
        (problem * K::QUERIES + query).min(total)
    };
    let mut shares = Vec::with_capacity(threads);
    let mut rest = rows;
    let mut taken = 0;
    for t in 0..threads {
        let end_row = start(t + 1);
        let (mine, tail) = rest.split_at(end_row - taken);
        if !mine.out.is_empty() {
            shares.push(Blocks {
                kernel,
                rows: mine,
                first_row: taken,
            });
        }
        taken = end_row;
        rest = tail;
    }
    crate::threads::run_shares(shares, |blocks| dispatch(isa, blocks));
}
