//! Compile-time facts about a kernel: its shape, its cost and how it is computed.

use std::fmt;

/// The sizes of a kernel's axes. `heads` is 1 for a rank-3 kernel.
///
/// ```
/// use attn_runtime::attention;
/// attention! { fn heads<q: [2, 8, 16, 4], k: [2, 8, 32, 4], v: [2, 8, 32, 6]>; }
/// let shape = heads::INFO.shape;
/// assert_eq!((shape.rank, shape.heads, shape.keys, shape.value_depth), (4, 8, 32, 6));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelShape {
    /// 3 for `[batch, sequence, depth]`, 4 for `[batch, heads, sequence, depth]`.
    pub rank: u64,
    /// `B`: independent attention problems.
    pub batch: u64,
    /// `H`: query heads per batch entry (1 for rank 3).
    pub heads: u64,
    /// Key/value heads per batch entry: `heads` for multi-head attention, a divisor of it for
    /// grouped-query attention, 1 for multi-query attention (and for rank 3).
    pub kv_heads: u64,
    /// `Nq`: query rows.
    pub queries: u64,
    /// `Nk`: key and value rows.
    pub keys: u64,
    /// `Dk`: the depth shared by queries and keys.
    pub depth: u64,
    /// `Dv`: the depth of values and of the output.
    pub value_depth: u64,
    /// Bytes of one stored element: 4 for f32, 8 for f64, 2 for f16 and bf16.
    pub element_bytes: u64,
}

/// How the macro chose to compute a kernel.
///
/// ```
/// use attn_runtime::{Plan, attention};
/// attention! {
///     fn tiny<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;
///     fn long<q: [1, N, 64], k: [1, N, 64], v: [1, N, 64]>;
/// }
/// assert_eq!(tiny::INFO.plan, Plan::Unrolled);
/// assert_eq!(long::info::<4096>().plan, Plan::Tiled { query_block: 516, key_block: 64 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Straight-line code: every score, weight and product written out.
    Unrolled,
    /// One query row at a time in plain f64 arithmetic (`dtype = f64`), without vectors.
    Scalar,
    /// Blocks of `query_block` query rows, each walking the keys in blocks of `key_block`
    /// with the softmax computed online, in micro-kernel tiles of 6 rows.
    Tiled {
        /// The most query rows per block: the runtime cuts each run of rows into equal
        /// blocks of whole tiles no longer than this (threads share rows, not blocks).
        query_block: u64,
        /// Keys per block.
        key_block: u64,
    },
}

/// The shape, cost and plan of one kernel, as the facts module of every kernel gives it.
///
/// ```
/// use attn_runtime::attention;
/// attention! {
///     fn textbook<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;
/// }
/// let info = textbook::INFO;
/// assert_eq!(info.flops, 2 * 2 * 4 * (3 + 3));
/// assert_eq!(info.bytes_written, 4 * 2 * 3);
/// assert_eq!(info.plan, attn_runtime::Plan::Unrolled);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelInfo {
    /// The kernel's name as declared.
    pub name: &'static str,
    /// The sizes of its axes.
    pub shape: KernelShape,
    /// How it is computed.
    pub plan: Plan,
    /// Floating-point operations of the two products: `2·B·H·Nq·Nk·(Dk + Dv)`.
    pub flops: u64,
    /// Bytes of q, k and v (not of a mask or bias).
    pub bytes_read: u64,
    /// Bytes of the output (not of the weights or log-sum-exp, when returned).
    pub bytes_written: u64,
    /// Bytes of scratch memory beyond the output, on the stack of each thread: for a tiled
    /// kernel one block of packed keys, one of values (none with fewer queries than a tile,
    /// whose values are read in place), one tile of scores, a running max, partial sums and
    /// an inverse sum per row of a query block, and padded copies of a tile's last rows,
    /// whatever the sequence lengths (`attn_rules::tiled_scratch_bytes`; the macro refuses a
    /// kernel past 256 KiB); none for an unrolled one.
    pub scratch_bytes: u64,
}

impl KernelInfo {
    /// Derives the costs from the shape and the plan. Saturates rather than overflowing.
    ///
    /// ```
    /// use attn_runtime::{KernelInfo, KernelShape, Plan};
    /// let shape = KernelShape { rank: 3, batch: 1, heads: 1, kv_heads: 1, queries: 2, keys: 4, depth: 3, value_depth: 3, element_bytes: 4 };
    /// let info = KernelInfo::new("textbook", shape, Plan::Unrolled);
    /// assert_eq!(info.bytes_read, 4 * (2 * 3 + 4 * 3 + 4 * 3));
    /// ```
    pub const fn new(name: &'static str, shape: KernelShape, plan: Plan) -> Self {
        let problems = shape.batch.saturating_mul(shape.heads);
        let pairs = problems
            .saturating_mul(shape.queries)
            .saturating_mul(shape.keys);
        let flops = pairs
            .saturating_mul(2)
            .saturating_mul(shape.depth.saturating_add(shape.value_depth));
        let q = problems.saturating_mul(shape.queries.saturating_mul(shape.depth));
        let kv_problems = shape.batch.saturating_mul(shape.kv_heads);
        let k = kv_problems.saturating_mul(shape.keys.saturating_mul(shape.depth));
        let v = kv_problems.saturating_mul(shape.keys.saturating_mul(shape.value_depth));
        let read = q.saturating_add(k).saturating_add(v);
        let written = problems
            .saturating_mul(shape.queries)
            .saturating_mul(shape.value_depth);
        // A tiled block keeps its keys packed, a copy of its values (unless it has fewer
        // queries than a tile), one tile of scores, running statistics per query row and
        // padded copies of a tile's last rows: attn's shared rule, which the macro bounds.
        let scratch_bytes = match plan {
            Plan::Unrolled => 0,
            // One row of scores, in f64.
            Plan::Scalar => shape.keys.saturating_mul(8),
            Plan::Tiled {
                query_block,
                key_block,
            } => attn_rules::tiled_scratch_bytes(
                query_block,
                key_block,
                shape.depth,
                shape.value_depth,
                !crate::tiled::is_direct(shape.queries),
            ),
        };
        KernelInfo {
            name,
            shape,
            plan,
            flops,
            bytes_read: read.saturating_mul(shape.element_bytes),
            bytes_written: written.saturating_mul(shape.element_bytes),
            scratch_bytes,
        }
    }
}

impl KernelInfo {
    /// The chunks each problem's keys are split into, computed apart (on any thread) and
    /// merged: more than 1 for a tiled kernel with fewer query rows than a tile (decoding) and
    /// at least 2,048 keys, whose rows are too few to share out among threads; 1 otherwise.
    /// A rule of the shape (`attn_rules::key_chunks`), so results are the same bits on any
    /// number of threads.
    ///
    /// ```
    /// use attn_runtime::attention;
    /// attention! {
    ///     fn step<q: [1, 8, 1, 128], k: [1, 8, N, 128], v: [1, 8, N, 128]>;
    /// }
    /// assert_eq!(step::info::<16384>().key_chunks(), 16);
    /// assert_eq!(step::info::<1000>().key_chunks(), 1);
    /// ```
    pub const fn key_chunks(&self) -> u64 {
        let (queries, keys) = (self.shape.queries, self.shape.keys);
        match self.plan {
            Plan::Tiled { .. } if queries <= usize::MAX as u64 && keys <= usize::MAX as u64 => {
                attn_rules::key_chunks(queries as usize, keys as usize) as u64
            }
            _ => 1,
        }
    }
}

impl fmt::Display for KernelInfo {
    /// One line: the shapes, the cost and the plan.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shape;
        let (heads, kv_heads) = if s.rank == 4 {
            (format!("{}, ", s.heads), format!("{}, ", s.kv_heads))
        } else {
            (String::new(), String::new())
        };
        write!(
            f,
            "{}: q [{b}, {heads}{}, {}], k [{b}, {kv_heads}{}, {}], v [{b}, {kv_heads}{}, {}]; {} FLOPs, {} bytes read, {} written, {} scratch; ",
            self.name,
            s.queries,
            s.depth,
            s.keys,
            s.depth,
            s.keys,
            s.value_depth,
            self.flops,
            self.bytes_read,
            self.bytes_written,
            self.scratch_bytes,
            b = s.batch,
        )?;
        match self.plan {
            Plan::Unrolled => write!(f, "unrolled"),
            Plan::Scalar => write!(f, "row by row in f64"),
            Plan::Tiled {
                query_block,
                key_block,
            } => {
                write!(
                    f,
                    "tiled, blocks of {query_block} queries x {key_block} keys"
                )?;
                match self.key_chunks() {
                    1 => Ok(()),
                    chunks => write!(f, ", the keys in {chunks} chunks"),
                }
            }
        }
    }
}
