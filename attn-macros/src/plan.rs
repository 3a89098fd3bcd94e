//! How a checked kernel is computed: straight-line code, a tiled loop nest, or f64 rows. The
//! block sizes and the choice to read keys in place are attn's shared rules (`attn-rules`),
//! which the runtime applies to the same kernels.

use crate::model::{Dtype, Kernel, Size};

/// The largest kernel, in multiply-adds over all batches and heads, that is fully unrolled.
/// Above it the code would grow with the shape; the tiled loop nest does not.
pub const UNROLL_LIMIT: u64 = 1024;

/// The strategy chosen for one kernel, with the sizes its code is built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Every score, exponential and product written out: for shapes known and tiny.
    Unrolled(UnrolledSizes),
    /// Blocks of query rows, each walking the keys in blocks with an online softmax, so no
    /// `queries x keys` score matrix is ever stored.
    Tiled(Blocks),
    /// One query row at a time in plain f64 arithmetic, for `dtype = f64`: the vector layer
    /// is f32.
    Scalar,
}

/// An unrolled kernel's sizes, every one known (the planner unrolls only such kernels); one
/// batch entry, head or key/value head where the shape has no such axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnrolledSizes {
    pub batch: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub queries: usize,
    pub keys: usize,
    pub depth: usize,
    pub value_depth: usize,
}

/// A tiled kernel's blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocks {
    /// The most query rows that share each packing of a key block: a whole number of tiles.
    pub query_block: usize,
    /// Keys per block: a whole number of the widest vectors.
    pub key_block: usize,
    /// Whether the keys and values are read where they are stored, not packed: known to
    /// have fewer query rows than a tile (`attn_rules::is_direct`).
    pub direct: bool,
}

impl Blocks {
    /// The blocks of a tiled kernel of `queries` queries and `keys` keys whose deepest of
    /// keys and values is `deepest` (`None` for a size left to a const generic), by attn's
    /// shared rules. `check` sizes a kernel's scratch by the same blocks.
    pub fn of(queries: Option<usize>, keys: Option<usize>, deepest: Option<usize>) -> Blocks {
        Blocks {
            query_block: attn_rules::query_block(queries),
            key_block: attn_rules::key_block(keys, deepest),
            direct: queries.is_some_and(attn_rules::is_direct),
        }
    }
}

/// Chooses the plan of `kernel` from its shape.
pub fn plan(kernel: &Kernel) -> Plan {
    if let Some((Dtype::F64, _)) = kernel.options.dtype {
        return Plan::Scalar;
    }
    let known = |size: &Size| match size {
        Size::Known(n) => usize::try_from(*n).ok(),
        Size::Generic(_) => None,
    };
    let sizes = || -> Option<UnrolledSizes> {
        Some(UnrolledSizes {
            batch: known(kernel.batch())?,
            heads: kernel.heads().map_or(Some(1), known)?,
            kv_heads: kernel.kv_heads().map_or(Some(1), known)?,
            queries: known(kernel.queries())?,
            keys: known(kernel.keys())?,
            depth: known(kernel.depth())?,
            value_depth: known(kernel.value_depth())?,
        })
    };
    let multiply_adds = |s: &UnrolledSizes| -> Option<u64> {
        let rows = [s.batch, s.heads, s.queries, s.keys]
            .into_iter()
            .try_fold(1u64, |n, size| n.checked_mul(size as u64))?;
        rows.checked_mul((s.depth as u64).checked_add(s.value_depth as u64)?)
    };
    // Valid lengths and query counts, masks and biases are known only at run time, while an unrolled kernel's
    // key lists are fixed at expansion: those kernels are tiled, whatever their size.
    let runtime_keys = kernel.options.valid_lengths.is_some()
        || kernel.options.valid_queries.is_some()
        || kernel.mask.is_some()
        || kernel.bias.is_some();
    match sizes() {
        Some(sizes)
            if !runtime_keys && multiply_adds(&sizes).is_some_and(|n| n <= UNROLL_LIMIT) =>
        {
            Plan::Unrolled(sizes)
        }
        _ => {
            let deepest = known(kernel.depth()).zip(known(kernel.value_depth()));
            Plan::Tiled(Blocks::of(
                known(kernel.queries()),
                known(kernel.keys()),
                deepest.map(|(d, dv)| d.max(dv)),
            ))
        }
    }
}
