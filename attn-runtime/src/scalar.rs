//! The `dtype = f64` kernels: every step in f64, one query row at a time.
//!
//! The vector layer is f32 (16 lanes of AVX-512 are what the tiled kernels are built on), so
//! f64 kernels, which users pick for accuracy rather than speed, run this plain path: per
//! query row, its scores over the keys it sees, their max, `exp(s - max)`, the sum, and the
//! weighted values, all in f64. The options mean what they mean for f32 kernels.
//!
//! The description of a call here ([`Problem`]) is also what the f32 backward pass
//! (`tiled/backward.rs`) takes, and [`seen_keys`] the rule both apply to each row.

use std::ops::Range;

/// A structural mask: query `i` sees keys up to its position, aligned to the first keys or
/// to the last ones, and with a sliding window only its `window` most recent keys.
#[derive(Clone, Copy, Debug)]
pub struct Causal {
    /// The queries are the last positions (`causal(bottom_right)`).
    pub bottom_right: bool,
    /// The most recent keys each query sees (`usize::MAX` for no window).
    pub window: usize,
}

/// A mask or bias argument, flat, with the stride of each of its axes `[batch, heads,
/// queries, keys]`: 0 for an axis it is broadcast over (declared 1).
#[derive(Clone, Copy, Debug)]
pub struct Broadcast<'a, T> {
    values: &'a [T],
    strides: [usize; 4],
}

impl<'a, T: Copy> Broadcast<'a, T> {
    /// `values`, row-major, of the declared `sizes` `[batch, heads, queries, keys]` (1 for
    /// the heads of a rank-3 kernel). An axis of size 1 gets the stride 0, so every index
    /// along it reads its one element: broadcast.
    ///
    /// ```
    /// use attn_runtime::__private::scalar::Broadcast;
    /// let bias = Broadcast::new(&[1.0, 2.0], [1, 1, 1, 2]);
    /// assert_eq!(bias.at(5, 3, 7, 1), 2.0);
    /// ```
    pub fn new(values: &'a [T], sizes: [usize; 4]) -> Self {
        let mut strides = [0; 4];
        let mut stride = 1;
        for axis in (0..4).rev() {
            strides[axis] = if sizes[axis] == 1 { 0 } else { stride };
            stride *= sizes[axis];
        }
        Broadcast { values, strides }
    }

    /// The element for batch entry `b`, head `h`, query `i` and key `j`.
    pub fn at(&self, b: usize, h: usize, i: usize, j: usize) -> T {
        let [sb, sh, si, sj] = self.strides;
        self.values[b * sb + h * sh + i * si + j * sj]
    }

    /// The row of batch entry `b`, head `h` and query `i` over `keys` keys: one element when
    /// it is broadcast over the keys.
    ///
    /// ```
    /// use attn_runtime::__private::scalar::Broadcast;
    /// let mask = Broadcast::new(&[true, false, false], [1, 1, 3, 1]);
    /// assert_eq!(mask.row(0, 0, 1, 5), [false]);
    /// ```
    pub fn row(&self, b: usize, h: usize, i: usize, keys: usize) -> &'a [T] {
        let [sb, sh, si, sj] = self.strides;
        let start = b * sb + h * sh + i * si;
        let len = if sj == 0 { 1 } else { keys };
        &self.values[start..start + len]
    }
}

/// One kernel call as the runtime's plain paths take it: the shape, the options, and the
/// inputs flat and row-major, of `T` (f64 for the f64 kernels; f32 for the backward pass,
/// which is compiled once in the runtime for every kernel).
#[derive(Clone, Copy, Debug)]
pub struct Problem<'a, T = f64> {
    /// Batch entries.
    pub batch: usize,
    /// Query heads per entry (1 for rank 3).
    pub heads: usize,
    /// Key/value heads per entry: query head `h` reads key/value head `h / (heads / kv_heads)`.
    pub kv_heads: usize,
    /// Query rows per head.
    pub queries: usize,
    /// Key rows per head.
    pub keys: usize,
    /// Depth of queries and keys.
    pub depth: usize,
    /// Depth of values and of the output.
    pub value_depth: usize,
    /// The factor applied to each score.
    pub scale: f64,
    /// A causal mask, if any.
    pub causal: Option<Causal>,
    /// `c` of a soft cap, if any.
    pub softcap: Option<f64>,
    /// `[B, H, Nq, Dk]`.
    pub q: &'a [T],
    /// `[B, Hkv, Nk, Dk]`.
    pub k: &'a [T],
    /// `[B, Hkv, Nk, Dv]`.
    pub v: &'a [T],
    /// A keep-mask (true = attend), if any.
    pub mask: Option<Broadcast<'a, bool>>,
    /// An additive bias, if any.
    pub bias: Option<Broadcast<'a, T>>,
    /// Each batch entry's number of valid keys, if given (already checked against `keys`).
    pub valid_keys: Option<&'a [usize]>,
    /// Each batch entry's number of valid query rows, if given (checked against `queries`):
    /// the rows past it are 0, their weights 0 and their log-sum-exp -inf.
    pub valid_queries: Option<&'a [usize]>,
}

impl<T> Problem<'_, T> {
    /// Batch entry `b`'s valid keys and valid query rows: all of them where the counts are
    /// not given, and never more than the kernel has.
    ///
    /// ```
    /// use attn_runtime::__private::scalar::Problem;
    /// let problem = Problem {
    ///     batch: 2, heads: 1, kv_heads: 1, queries: 3, keys: 4, depth: 1, value_depth: 1,
    ///     scale: 1.0, causal: None, softcap: None, q: &[0.0; 6], k: &[0.0; 8], v: &[0.0; 8],
    ///     mask: None, bias: None, valid_keys: Some(&[2, 4]), valid_queries: None,
    /// };
    /// assert_eq!(problem.valid_counts(0), (2, 3));
    /// ```
    pub fn valid_counts(&self, b: usize) -> (usize, usize) {
        (
            self.valid_keys
                .map_or(self.keys, |valid| valid[b].min(self.keys)),
            self.valid_queries
                .map_or(self.queries, |valid| valid[b].min(self.queries)),
        )
    }
}

/// Computes `problem` into `out` (`[B, H, Nq, Dv]`), and into `weights` (`[B, H, Nq, Nk]`)
/// and `lse` (`[B, H, Nq]`) unless they are empty. A row that sees no key gives 0, weights 0
/// and a log-sum-exp of -inf.
///
/// ```
/// use attn_runtime::__private::scalar::{Problem, run};
/// // One query over two keys with equal scores: the mean of the values.
/// let problem = Problem {
///     batch: 1, heads: 1, kv_heads: 1, queries: 1, keys: 2, depth: 1, value_depth: 1,
///     scale: 1.0, causal: None, softcap: None,
///     q: &[0.0], k: &[1.0, 1.0], v: &[2.0, 4.0],
///     mask: None, bias: None, valid_keys: None, valid_queries: None,
/// };
/// let (mut out, mut weights, mut lse) = ([0.0], [0.0; 2], [0.0]);
/// run(&problem, &mut out, &mut weights, &mut lse);
/// assert_eq!((out, weights), ([3.0], [0.5, 0.5]));
/// assert!((lse[0] - 2f64.ln()).abs() < 1e-15);
/// ```
pub fn run(problem: &Problem, out: &mut [f64], weights: &mut [f64], lse: &mut [f64]) {
    let Problem {
        batch,
        heads,
        kv_heads,
        queries,
        keys,
        depth,
        value_depth,
        ..
    } = *problem;
    let group = heads / kv_heads.max(1);
    let mut scores = vec![f64::NEG_INFINITY; keys];
    for b in 0..batch {
        let (valid, valid_queries) = problem.valid_counts(b);
        for h in 0..heads {
            let kv = b * kv_heads + h / group.max(1);
            let (k, v) = (
                &problem.k[kv * keys * depth..][..keys * depth],
                &problem.v[kv * keys * value_depth..][..keys * value_depth],
            );
            for i in 0..queries {
                let row = (b * heads + h) * queries + i;
                if i >= valid_queries {
                    // A padding row: computed not at all.
                    out[row * value_depth..][..value_depth].fill(0.0);
                    if !weights.is_empty() {
                        weights[row * keys..][..keys].fill(0.0);
                    }
                    if !lse.is_empty() {
                        lse[row] = f64::NEG_INFINITY;
                    }
                    continue;
                }
                let query = &problem.q[row * depth..][..depth];
                let Range {
                    start: from,
                    end: to,
                } = seen_keys(problem.causal, i, valid_queries, valid);
                scores.fill(f64::NEG_INFINITY);
                for j in from..to {
                    let key = &k[j * depth..][..depth];
                    let mut s =
                        query.iter().zip(key).map(|(a, c)| a * c).sum::<f64>() * problem.scale;
                    if let Some(cap) = problem.softcap {
                        s = cap * (s / cap).tanh();
                    }
                    if let Some(bias) = &problem.bias {
                        s += bias.at(b, h, i, j);
                    }
                    if problem.mask.is_some_and(|mask| !mask.at(b, h, i, j)) {
                        s = f64::NEG_INFINITY;
                    }
                    scores[j] = s;
                }
                // The max ignores NaN (which still reaches the sum); a row of -inf shifts by 0.
                let max = scores
                    .iter()
                    .fold(f64::NEG_INFINITY, |m, &s| if s > m { s } else { m });
                let shift = if max == f64::NEG_INFINITY { 0.0 } else { max };
                // Each score becomes its exponential once, for the sum, the output and the
                // weights alike.
                for s in scores.iter_mut() {
                    *s = (*s - shift).exp();
                }
                let sum: f64 = scores.iter().sum();
                let inverse = if sum == 0.0 { 0.0 } else { 1.0 / sum };
                let out_row = &mut out[row * value_depth..][..value_depth];
                out_row.fill(0.0);
                for (j, &e) in scores.iter().enumerate().take(to).skip(from) {
                    let weight = e * inverse;
                    for (o, &x) in out_row.iter_mut().zip(&v[j * value_depth..][..value_depth]) {
                        *o += weight * x;
                    }
                }
                if !weights.is_empty() {
                    for (w, &e) in weights[row * keys..][..keys].iter_mut().zip(&scores) {
                        *w = e * inverse;
                    }
                }
                if !lse.is_empty() {
                    lse[row] = if sum == 0.0 {
                        f64::NEG_INFINITY
                    } else {
                        shift + sum.ln()
                    };
                }
            }
        }
    }
}

/// The gradients of `problem`'s attention for a loss whose gradient with respect to its
/// output is `d_out`, into `dq`, `dk` and `dv` (flat, shaped like q, k and v; overwritten),
/// from the forward's `out` and `lse` on the same inputs: FlashAttention-2's steps in f64,
/// row by row. Per query row, `D = d_out · out`; per key it sees, the score again (scaled,
/// soft-capped, biased), `P = exp(s - lse)`, `dS = P (d_out · v - D) · scale` (times the soft
/// cap's derivative), then `dv += P d_out`, `dk += dS q` and `dq += dS k`. Rows past the
/// valid queries, and rows that see no key (log-sum-exp -inf), contribute nothing.
///
/// ```
/// use attn_runtime::__private::scalar::{Problem, backward};
/// // One query over two keys with equal scores: each value gets half of d_out.
/// let problem = Problem {
///     batch: 1, heads: 1, kv_heads: 1, queries: 1, keys: 2, depth: 1, value_depth: 1,
///     scale: 1.0, causal: None, softcap: None,
///     q: &[0.0], k: &[1.0, 1.0], v: &[2.0, 4.0],
///     mask: None, bias: None, valid_keys: None, valid_queries: None,
/// };
/// let (mut dq, mut dk, mut dv) = ([9.0], [9.0; 2], [9.0; 2]);
/// backward(&problem, &[3.0], &[2f64.ln()], &[1.0], &mut dq, &mut dk, &mut dv);
/// assert_eq!((dq, dv), ([0.0], [0.5, 0.5]));
/// assert_eq!(dk, [0.0, 0.0]);
/// ```
pub fn backward(
    problem: &Problem,
    out: &[f64],
    lse: &[f64],
    d_out: &[f64],
    dq: &mut [f64],
    dk: &mut [f64],
    dv: &mut [f64],
) {
    let Problem {
        batch,
        heads,
        kv_heads,
        queries,
        keys,
        depth,
        value_depth,
        scale,
        ..
    } = *problem;
    dq.fill(0.0);
    dk.fill(0.0);
    dv.fill(0.0);
    let group = heads / kv_heads.max(1);
    for b in 0..batch {
        let (valid, valid_queries) = problem.valid_counts(b);
        for h in 0..heads {
            let kv = b * kv_heads + h / group.max(1);
            for i in 0..valid_queries {
                let row = (b * heads + h) * queries + i;
                if lse[row] == f64::NEG_INFINITY {
                    continue;
                }
                let query = &problem.q[row * depth..][..depth];
                let (out_row, d_out_row) = (
                    &out[row * value_depth..][..value_depth],
                    &d_out[row * value_depth..][..value_depth],
                );
                let d: f64 = d_out_row.iter().zip(out_row).map(|(g, o)| g * o).sum();
                let Range {
                    start: from,
                    end: to,
                } = seen_keys(problem.causal, i, valid_queries, valid);
                for j in from..to {
                    if problem.mask.is_some_and(|mask| !mask.at(b, h, i, j)) {
                        continue;
                    }
                    let key_row = (kv * keys + j) * depth;
                    let value_row = (kv * keys + j) * value_depth;
                    let key = &problem.k[key_row..][..depth];
                    let value = &problem.v[value_row..][..value_depth];
                    let raw = query.iter().zip(key).map(|(a, c)| a * c).sum::<f64>() * scale;
                    let (mut s, derivative) = match problem.softcap {
                        Some(cap) => {
                            let t = (raw / cap).tanh();
                            (cap * t, 1.0 - t * t)
                        }
                        None => (raw, 1.0),
                    };
                    if let Some(bias) = &problem.bias {
                        s += bias.at(b, h, i, j);
                    }
                    let p = (s - lse[row]).exp();
                    let dp: f64 = d_out_row.iter().zip(value).map(|(g, x)| g * x).sum();
                    let ds = p * (dp - d) * derivative * scale;
                    for (g, &x) in dv[value_row..][..value_depth].iter_mut().zip(d_out_row) {
                        *g += p * x;
                    }
                    for (g, &x) in dk[key_row..][..depth].iter_mut().zip(query) {
                        *g += ds * x;
                    }
                    for (g, &x) in dq[row * depth..][..depth].iter_mut().zip(key) {
                        *g += ds * x;
                    }
                }
            }
        }
    }
}

/// The keys query row `query` sees, `from..to`, among `keys` valid keys, the `queries`
/// valid query rows lined up with them by the causal mask, if any (the window starting
/// them): the rule of the f64 path and of the backward pass alike.
///
/// ```
/// use attn_runtime::__private::scalar::{Causal, seen_keys};
/// let causal = Causal { bottom_right: true, window: 2 };
/// assert_eq!(seen_keys(Some(causal), 0, 2, 4), 1..3);
/// assert_eq!(seen_keys(None, 0, 2, 4), 0..4);
/// ```
pub fn seen_keys(
    causal: Option<Causal>,
    query: usize,
    queries: usize,
    keys: usize,
) -> Range<usize> {
    match causal {
        None => 0..keys,
        Some(causal) => {
            let to = crate::tiled::visible_keys(query, queries, keys, causal.bottom_right);
            to.saturating_sub(causal.window)..to
        }
    }
}
