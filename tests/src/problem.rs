//! The sizes of an attention problem: its mask, its `Problem` description, and grouped heads.

use crate::reference::Float;

/// A causal mask, as the kernels' `#[attn(causal(..))]` option.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mask {
    /// Every query sees every key.
    #[default]
    None,
    /// Query `i` sees keys `0..=i`.
    TopLeft,
    /// Query `i` sees keys `0..=i + keys - queries`.
    BottomRight,
}

impl Mask {
    /// How many keys (a prefix) query `row` sees.
    pub fn visible(self, row: usize, queries: usize, keys: usize) -> usize {
        match self {
            Mask::None => keys,
            Mask::TopLeft => (row + 1).min(keys),
            Mask::BottomRight => (row + 1 + keys).saturating_sub(queries).min(keys),
        }
    }
}

/// The sizes of an attention computation, with batch and heads folded into `problems`.
#[derive(Clone, Debug)]
pub struct Problem {
    /// Batch entries times heads: independent attention problems, one after another.
    pub problems: usize,
    /// Query rows per problem.
    pub queries: usize,
    /// Key and value rows per problem.
    pub keys: usize,
    /// Depth of queries and keys.
    pub depth: usize,
    /// Depth of values and of the output.
    pub value_depth: usize,
    /// The factor applied to each score.
    pub scale: f32,
    /// Which keys each query sees.
    pub mask: Mask,
    /// With a mask, at most this many of the most recent keys (a sliding window).
    pub window: Option<usize>,
    /// A soft cap `c`: each scaled score `s` becomes `c · tanh(s / c)`.
    pub softcap: Option<f32>,
    /// Per problem, its number of valid keys (the rest are padding); all keys when `None`.
    pub valid_keys: Option<Vec<usize>>,
    /// A keep-mask `[problems][queries][keys]` (true = attend), broadcast axes expanded.
    pub keep: Option<Vec<bool>>,
    /// An additive bias `[problems][queries][keys]`, broadcast axes expanded.
    pub bias: Option<Vec<f32>>,
}

impl Problem {
    /// The default scale, `1 / sqrt(depth)`, as the macro computes it.
    pub fn with_default_scale(
        problems: usize,
        queries: usize,
        keys: usize,
        depth: usize,
        value_depth: usize,
    ) -> Self {
        Problem {
            problems,
            queries,
            keys,
            depth,
            value_depth,
            scale: (1.0 / (depth as f64).sqrt()) as f32,
            mask: Mask::None,
            window: None,
            softcap: None,
            valid_keys: None,
            keep: None,
            bias: None,
        }
    }

    /// The same problem with a keep-mask, `[problems][queries][keys]`.
    pub fn with_keep(self, keep: Vec<bool>) -> Self {
        Problem {
            keep: Some(keep),
            ..self
        }
    }

    /// The same problem with an additive bias, `[problems][queries][keys]`.
    pub fn with_bias(self, bias: Vec<f32>) -> Self {
        Problem {
            bias: Some(bias),
            ..self
        }
    }

    /// The scores of query `row` of problem `p` that take part in its softmax, computed in
    /// `T` from the problem's `q` and `k`, each with its key: scaled, soft-capped, biased,
    /// and without the keys that a causal mask, a window, the valid length, the keep-mask or
    /// a `-inf` score hides.
    pub(crate) fn row_scores<T: Float>(
        &self,
        p: usize,
        row: usize,
        q: &[f32],
        k: &[f32],
    ) -> Vec<(usize, T)> {
        let (queries, keys, depth) = (self.queries, self.keys, self.depth);
        let (q, k) = (
            &q[(p * queries + row) * depth..][..depth],
            &k[p * keys * depth..],
        );
        let at = (p * queries + row) * keys;
        self.visible(p, row)
            .filter(|&j| self.keep.as_ref().is_none_or(|keep| keep[at + j]))
            .map(|j| {
                let mut dot = T::of(0.0);
                for d in 0..depth {
                    dot = dot + T::of(q[d]) * T::of(k[j * depth + d]);
                }
                let scaled = dot * T::of(self.scale);
                let capped = match self.softcap {
                    Some(cap) => T::of(cap) * (scaled / T::of(cap)).tanh(),
                    None => scaled,
                };
                let biased = match &self.bias {
                    Some(bias) => capped + T::of(bias[at + j]),
                    None => capped,
                };
                (j, biased)
            })
            .filter(|&(_, s)| s != T::of(f32::NEG_INFINITY))
            .collect()
    }

    /// The same problem with `valid_keys[p]` valid keys in problem `p`.
    pub fn with_valid_keys(self, valid_keys: Vec<usize>) -> Self {
        Problem {
            valid_keys: Some(valid_keys),
            ..self
        }
    }

    /// The same problem with a soft cap `cap`.
    pub fn capped(self, cap: f32) -> Self {
        Problem {
            softcap: Some(cap),
            ..self
        }
    }

    /// The same problem with a sliding window of `window` keys.
    pub fn windowed(self, window: usize) -> Self {
        Problem {
            window: Some(window),
            ..self
        }
    }

    /// The keys query `row` of problem `p` sees: `from..to`.
    pub fn visible(&self, p: usize, row: usize) -> std::ops::Range<usize> {
        let keys = self.valid_keys.as_ref().map_or(self.keys, |valid| valid[p]);
        let to = self.mask.visible(row, self.queries, keys);
        let from = self.window.map_or(0, |w| to.saturating_sub(w));
        from..to
    }

    /// The same problem under `mask`.
    pub fn masked(self, mask: Mask) -> Self {
        Problem { mask, ..self }
    }

    /// Lengths of q, k, v and the output, flat.
    pub fn lens(&self) -> [usize; 4] {
        let p = self.problems;
        [
            p * self.queries * self.depth,
            p * self.keys * self.depth,
            p * self.keys * self.value_depth,
            p * self.queries * self.value_depth,
        ]
    }
}

/// Key or value heads laid out `[batch][kv_heads][per_head]`, each repeated `group` times, so
/// that query head `h` finds its key/value head `h / group` at index `h`: grouped-query
/// attention as the reference computes it.
///
/// ```
/// let kv = [1.0, 2.0, 3.0, 4.0]; // one batch entry, two heads of two values
/// let repeated = attn_tests::repeat_heads(&kv, 1, 2, 2, 2);
/// assert_eq!(repeated, [1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0]);
/// ```
pub fn repeat_heads(
    flat: &[f32],
    batch: usize,
    kv_heads: usize,
    group: usize,
    per_head: usize,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(flat.len() * group);
    for b in 0..batch {
        for h in 0..kv_heads * group {
            let from = (b * kv_heads + h / group) * per_head;
            out.extend_from_slice(&flat[from..from + per_head]);
        }
    }
    out
}

/// `declared` broadcast to `[batch][heads][queries][keys]`: an axis of size 1 in `shape`
/// is repeated to the full size.
///
/// ```
/// // A mask over the keys, [1, 1, 1, 2], for 2 queries.
/// let full = attn_tests::expand(&[true, false], [1, 1, 1, 2], [1, 1, 2, 2]);
/// assert_eq!(full, [true, false, true, false]);
/// ```
pub fn expand<T: Copy>(declared: &[T], shape: [usize; 4], full: [usize; 4]) -> Vec<T> {
    let mut out = Vec::with_capacity(full.iter().product());
    for b in 0..full[0] {
        for h in 0..full[1] {
            for i in 0..full[2] {
                for j in 0..full[3] {
                    let at = [b, h, i, j];
                    let index = (0..4).fold(0, |index, axis| {
                        let here = if shape[axis] == 1 { 0 } else { at[axis] };
                        index * shape[axis] + here
                    });
                    out.push(declared[index]);
                }
            }
        }
    }
    out
}
