//! Shared helpers of attn's integration tests: seeded inputs, an f64 reference, a plain f32
//! implementation, and the accuracy rule of docs/DESIGN.md section 6.
//!
//! ```
//! use attn_tests::{Problem, Rng, reference};
//! let problem = Problem::with_default_scale(1, 1, 2, 1, 1);
//! let out = reference(&problem, &[0.0], &[1.0, 1.0], &[2.0, 4.0]);
//! // Equal scores: the mean of the values.
//! assert!((out[0] - 3.0).abs() < 1e-12);
//! let mut rng = Rng::new(1);
//! assert!(rng.uniform(2.0).abs() <= 2.0);
//! ```

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
    fn row_scores<T: Float>(&self, p: usize, row: usize, q: &[f32], k: &[f32]) -> Vec<(usize, T)> {
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

/// splitmix64: seeded, so a failing case reproduces.
pub struct Rng(u64);

impl Rng {
    /// A generator with this seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value uniform in `[-magnitude, magnitude]`.
    pub fn uniform(&mut self, magnitude: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (unit * 2.0 - 1.0) * magnitude
    }

    /// `n` values uniform in `[-magnitude, magnitude]`.
    pub fn values(&mut self, n: usize, magnitude: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(magnitude)).collect()
    }

    /// A tensor of shape `A` of values uniform in `[-magnitude, magnitude]`.
    pub fn tensor<A: attn_runtime::Array<Element = f32>>(
        &mut self,
        magnitude: f32,
    ) -> attn_runtime::Tensor<A> {
        let values = self.values(A::LEN, magnitude);
        attn_runtime::Tensor::from_vec(values).expect("A::LEN values")
    }

    /// A random index below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The textbook example's q `[1, 2, 3]`, k `[1, 4, 3]` and v `[1, 4, 3]`.
pub type Textbook = ([[[f32; 3]; 2]; 1], [[[f32; 3]; 4]; 1], [[[f32; 3]; 4]; 1]);

/// The textbook example's inputs: two queries over four tokens, depth three.
///
/// ```
/// let (q, k, v) = attn_tests::textbook();
/// assert_eq!((q[0][1], k[0][3], v[0][0]), ([0.0, 2.0, 0.0], [1.0; 3], [1.0, 2.0, 3.0]));
/// ```
pub fn textbook() -> Textbook {
    let q = [[[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]]];
    let k = [[
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [1.0, 1.0, 1.0],
    ]];
    let v = [[
        [1.0, 2.0, 3.0],
        [4.0, 5.0, 6.0],
        [7.0, 8.0, 9.0],
        [10.0, 11.0, 12.0],
    ]];
    (q, k, v)
}

/// softmax(q kᵀ · scale) v in f64, from f32 inputs: the reference every kernel is held to.
pub fn reference(problem: &Problem, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f64> {
    attend::<f64>(problem, q, k, v)
}

/// The same computation in plain f32 (scores stored, max subtracted, then normalized): the
/// "naive" implementation whose error sets the tolerance of docs/DESIGN.md section 6.
pub fn naive_f32(problem: &Problem, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f64> {
    attend::<f32>(problem, q, k, v)
        .into_iter()
        .map(|x| x as f64)
        .collect()
}

/// The float types the reference computes in.
trait Float:
    Copy
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
    fn of(x: f32) -> Self;
    fn exp(self) -> Self;
    fn tanh(self) -> Self;
}

impl Float for f32 {
    fn of(x: f32) -> Self {
        x
    }
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn tanh(self) -> Self {
        f32::tanh(self)
    }
}

impl Float for f64 {
    fn of(x: f32) -> Self {
        x as f64
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
}

/// A row's max (ignoring NaN, as the kernels' does; a NaN still reaches the sum) and
/// `Σ exp(s - max)`.
fn softmax_statistics<T: Float>(scores: &[(usize, T)]) -> (T, T) {
    let max = scores
        .iter()
        .fold(None, |max: Option<T>, &(_, s)| {
            let is_nan = s.partial_cmp(&s).is_none();
            match max {
                _ if is_nan => max,
                Some(m) if m >= s => Some(m),
                _ => Some(s),
            }
        })
        .unwrap_or(T::of(0.0));
    let sum = scores
        .iter()
        .fold(T::of(0.0), |acc, &(_, s)| acc + (s - max).exp());
    (max, sum)
}

/// One implementation of attention, generic over the float type it computes in.
fn attend<T: Float>(problem: &Problem, q: &[f32], k: &[f32], v: &[f32]) -> Vec<T> {
    let from = T::of;
    let Problem {
        problems,
        queries,
        keys,
        value_depth,
        ..
    } = *problem;
    let zero = from(0.0);
    let mut out = Vec::with_capacity(problems * queries * value_depth);
    for p in 0..problems {
        for i in 0..queries {
            let scores = problem.row_scores::<T>(p, i, q, k);
            let v = &v[p * keys * value_depth..];
            if scores.is_empty() {
                // Every key is masked: the output row is 0.
                out.extend((0..value_depth).map(|_| zero));
                continue;
            }
            let (max, sum) = softmax_statistics(&scores);
            for e in 0..value_depth {
                let mut acc = zero;
                for &(j, s) in &scores {
                    acc = acc + (s - max).exp() * from(v[j * value_depth + e]);
                }
                out.push(acc / sum);
            }
        }
    }
    out
}

/// Runs `run` on every instruction set this CPU supports, each time into an output full of
/// NaN (so that a value it fails to write shows), and holds each result to the reference
/// with [`assert_accurate`]; `q`, `k` and `v` are the reference's inputs (key/value heads
/// repeated for grouped-query attention). Returns each instruction set's output.
///
/// ```
/// use attn_runtime::{Tensor, attention};
/// attention! { fn small<q: [1, 2, 4], k: [1, N, 4], v: [1, N, 2]>; }
/// let (q, k, v) = ([[[1.0; 4]; 2]], [[[0.5; 4]; 3]], [[[1.0, -1.0]; 3]]);
/// let problem = attn_tests::Problem::with_default_scale(1, 2, 3, 4, 2);
/// let flat = [q.as_flattened().as_flattened(), k.as_flattened().as_flattened(), v.as_flattened().as_flattened()];
/// let outputs = attn_tests::accurate_on_every_isa("small", &problem, flat, |out: &mut Tensor<[[[f32; 2]; 2]; 1]>| {
///     small_into(&q, &k, &v, out)
/// });
/// assert_eq!(outputs[0].1[0][1], [1.0, -1.0]);
/// ```
pub fn accurate_on_every_isa<O: attn_runtime::Array<Element = f32>>(
    what: &str,
    problem: &Problem,
    [q, k, v]: [&[f32]; 3],
    run: impl Fn(&mut attn_runtime::Tensor<O>),
) -> Vec<(attn_runtime::simd::Isa, attn_runtime::Tensor<O>)> {
    use attn_runtime::simd::{Isa, with_isa};
    Isa::supported()
        .map(|isa| {
            let mut out =
                attn_runtime::Tensor::<O>::from_vec(vec![f32::NAN; O::LEN]).expect("O::LEN values");
            with_isa(isa, || run(&mut out)).expect("a supported instruction set");
            assert_accurate(&format!("{what} on {isa}"), problem, q, k, v, out.as_flat());
            (isa, out)
        })
        .collect()
}

/// Holds `actual` to docs/DESIGN.md section 6: every output within `max(1e-6, 4 · e_naive)` of the
/// f64 reference, relative to `1 + |reference|`, where `e_naive` is the largest such error
/// of the plain f32 implementation on the same input. NaN must match NaN exactly.
///
/// Returns the largest relative error of `actual` and `e_naive`, for reports.
pub fn assert_accurate(
    what: &str,
    problem: &Problem,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    actual: &[f32],
) -> (f64, f64) {
    let what = format!(
        "{what} ({} problems of {} queries x {} keys, depth {}/{}, {:?}, window {:?}, cap {:?})",
        problem.problems,
        problem.queries,
        problem.keys,
        problem.depth,
        problem.value_depth,
        problem.mask,
        problem.window,
        problem.softcap
    );
    let naive = naive_f32(problem, q, k, v);
    assert_within(
        &what,
        "output",
        &reference(problem, q, k, v),
        &naive,
        actual,
    )
}
/// Holds `actual` to docs/DESIGN.md section 6 against `reference` (f64) and `naive` (the same
/// computed plainly in f32): every value within `max(1e-6, 4 · e_naive)` of the reference,
/// relative to `1 + |reference|`, where `e_naive` is the largest such error of `naive`; NaN
/// and infinities must match exactly. Returns the largest error of `actual` and `e_naive`.
fn assert_within(
    what: &str,
    item: &str,
    reference: &[f64],
    naive: &[f64],
    actual: &[f32],
) -> (f64, f64) {
    assert_eq!(actual.len(), reference.len(), "{what}: number of {item}s");
    let relative = |x: f64, r: f64| (x - r).abs() / (1.0 + r.abs());
    let e_naive = naive
        .iter()
        .zip(reference)
        .filter(|(_, r)| r.is_finite())
        .map(|(&x, &r)| relative(x, r))
        .fold(0.0, f64::max);
    let tolerance = f64::max(1e-6, 4.0 * e_naive);
    let mut worst = 0.0f64;
    for (index, (&x, &r)) in actual.iter().zip(reference).enumerate() {
        if r.is_nan() {
            assert!(
                x.is_nan(),
                "{what}: {item} {index} is {x}, the reference NaN"
            );
            continue;
        }
        if r.is_infinite() {
            assert_eq!(x as f64, r, "{what}: {item} {index}");
            continue;
        }
        assert!(
            !x.is_nan(),
            "{what}: {item} {index} is NaN, the reference {r}"
        );
        let error = relative(x as f64, r);
        worst = worst.max(error);
        assert!(
            error <= tolerance,
            "{what}: {item} {index} is {x}, the reference {r}: relative error {error:e} > \
             {tolerance:e} (e_naive {e_naive:e})"
        );
    }
    (worst, e_naive)
}

/// The log-sum-exp of each query row's (scaled, capped, masked) scores, `max + ln Σ exp(s -
/// max)`, computed in `T`; `-inf` for a row that sees no key.
fn log_sum_exp<T: Float>(problem: &Problem, q: &[f32], k: &[f32]) -> Vec<f64>
where
    f64: From<T>,
{
    let mut out = Vec::new();
    for p in 0..problem.problems {
        for i in 0..problem.queries {
            let scores = problem.row_scores::<T>(p, i, q, k);
            if scores.is_empty() {
                out.push(f64::NEG_INFINITY);
                continue;
            }
            let (max, sum) = softmax_statistics(&scores);
            out.push(f64::from(max) + f64::from(sum).ln());
        }
    }
    out
}

/// The attention weights `[problems][queries][keys]` computed in `T`: 0 for hidden keys.
fn weights<T: Float>(problem: &Problem, q: &[f32], k: &[f32]) -> Vec<f64>
where
    f64: From<T>,
{
    let keys = problem.keys;
    let mut out = vec![0.0; problem.problems * problem.queries * keys];
    for p in 0..problem.problems {
        for i in 0..problem.queries {
            let scores = problem.row_scores::<T>(p, i, q, k);
            let (max, sum) = softmax_statistics(&scores);
            for (j, s) in scores {
                out[(p * problem.queries + i) * keys + j] = f64::from((s - max).exp() / sum);
            }
        }
    }
    out
}

/// Holds a kernel's attention weights to the rule of docs/DESIGN.md section 6, as
/// [`assert_accurate`] does its output; NaN must match NaN.
///
/// ```
/// use attn_tests::{Problem, assert_weights_accurate};
/// let problem = Problem::with_default_scale(1, 1, 2, 1, 1);
/// assert_weights_accurate("two equal scores", &problem, &[0.0], &[1.0, 1.0], &[0.5, 0.5]);
/// ```
pub fn assert_weights_accurate(
    what: &str,
    problem: &Problem,
    q: &[f32],
    k: &[f32],
    actual: &[f32],
) {
    let naive = weights::<f32>(problem, q, k);
    assert_within(
        what,
        "weight",
        &weights::<f64>(problem, q, k),
        &naive,
        actual,
    );
}

/// Holds a kernel's log-sum-exp to the rule of docs/DESIGN.md section 6, as [`assert_accurate`] does
/// its output: within `max(1e-6, 4 · e_naive)` of the f64 value, relative to `1 + |value|`.
///
/// ```
/// use attn_tests::{Problem, assert_lse_accurate};
/// let problem = Problem::with_default_scale(1, 1, 2, 1, 1);
/// assert_lse_accurate("two equal scores", &problem, &[0.0], &[1.0, 1.0], &[2f32.ln()]);
/// ```
pub fn assert_lse_accurate(what: &str, problem: &Problem, q: &[f32], k: &[f32], lse: &[f32]) {
    let naive = log_sum_exp::<f32>(problem, q, k);
    assert_within(what, "lse", &log_sum_exp::<f64>(problem, q, k), &naive, lse);
}

/// The shape of a self-attention layer: `x` `[batch, tokens, width]` projected to `heads`
/// query heads and `kv_heads` key/value heads, attended, merged, and projected to
/// `out_width` when there is an output projection.
#[derive(Clone, Debug)]
pub struct LayerShape {
    /// Batch entries.
    pub batch: usize,
    /// Tokens per entry: queries and keys.
    pub tokens: usize,
    /// The model width of `x`.
    pub width: usize,
    /// Query heads.
    pub heads: usize,
    /// Key and value heads (a divisor of `heads`).
    pub kv_heads: usize,
    /// The depth of query and key heads.
    pub depth: usize,
    /// The depth of value heads.
    pub value_depth: usize,
    /// The scale of the scores.
    pub scale: f32,
    /// A causal mask, or none.
    pub mask: Mask,
}

/// A linear map's weight `[out, in]` and optional bias `[out]`, as PyTorch stores them.
pub type LinearRef<'a> = (&'a [f32], Option<&'a [f32]>);

/// The weights of a layer: the projections of q, k, v and the optional output projection.
#[derive(Clone, Copy, Debug)]
pub struct LayerWeights<'a> {
    /// `[heads·depth, width]`.
    pub query: LinearRef<'a>,
    /// `[kv_heads·depth, width]`.
    pub key: LinearRef<'a>,
    /// `[kv_heads·value_depth, width]`.
    pub value: LinearRef<'a>,
    /// `[out_width, heads·value_depth]`, or none.
    pub output: Option<LinearRef<'a>>,
}

/// `W·x + b` over rows of `x`, in `T`.
fn linear<T: Float>(x: &[T], inputs: usize, (weight, bias): LinearRef) -> Vec<T> {
    let outputs = weight.len() / inputs;
    let mut y = Vec::with_capacity(x.len() / inputs * outputs);
    for row in x.chunks_exact(inputs) {
        for o in 0..outputs {
            let mut acc = bias.map_or(T::of(0.0), |b| T::of(b[o]));
            for (i, &xi) in row.iter().enumerate() {
                acc = acc + xi * T::of(weight[o * inputs + i]);
            }
            y.push(acc);
        }
    }
    y
}

/// The whole layer in `T`: projections, heads, attention, merge, output projection.
fn layer<T: Float>(shape: &LayerShape, weights: &LayerWeights, x: &[f32]) -> Vec<f64>
where
    f64: From<T>,
{
    let LayerShape {
        batch,
        tokens: n,
        width,
        heads,
        kv_heads,
        depth,
        value_depth,
        ..
    } = *shape;
    let x: Vec<T> = x.iter().map(|&v| T::of(v)).collect();
    let (q, k, v) = (
        linear(&x, width, weights.query),
        linear(&x, width, weights.key),
        linear(&x, width, weights.value),
    );
    let mut merged = vec![T::of(0.0); batch * n * heads * value_depth];
    for b in 0..batch {
        for h in 0..heads {
            let g = h / (heads / kv_heads);
            for i in 0..n {
                let query = &q[(b * n + i) * heads * depth + h * depth..][..depth];
                let seen = shape.mask.visible(i, n, n);
                let scores: Vec<(usize, T)> = (0..seen)
                    .map(|j| {
                        let key = &k[(b * n + j) * kv_heads * depth + g * depth..][..depth];
                        let dot = query
                            .iter()
                            .zip(key)
                            .fold(T::of(0.0), |acc, (&a, &c)| acc + a * c);
                        (j, dot * T::of(shape.scale))
                    })
                    .collect();
                let (max, sum) = softmax_statistics(&scores);
                for e in 0..value_depth {
                    let mut acc = T::of(0.0);
                    for &(j, s) in &scores {
                        let value = v[(b * n + j) * kv_heads * value_depth + g * value_depth + e];
                        acc = acc + (s - max).exp() * value;
                    }
                    merged[(b * n + i) * heads * value_depth + h * value_depth + e] = acc / sum;
                }
            }
        }
    }
    let out = match weights.output {
        Some(output) => linear(&merged, heads * value_depth, output),
        None => merged,
    };
    out.into_iter().map(f64::from).collect()
}

/// Holds a layer's output to the rule of docs/DESIGN.md section 6, end to end: within
/// `max(1e-6, 4 · e_naive)` of the layer computed in f64, relative to `1 + |reference|`,
/// where `e_naive` is the error of the same layer computed plainly in f32.
///
/// ```
/// use attn_tests::{LayerShape, LayerWeights, Mask, assert_layer_accurate};
/// let shape = LayerShape { batch: 1, tokens: 1, width: 1, heads: 1, kv_heads: 1, depth: 1,
///     value_depth: 1, scale: 1.0, mask: Mask::None };
/// let identity = (&[1.0f32][..], None);
/// let weights = LayerWeights { query: identity, key: identity, value: identity, output: None };
/// assert_layer_accurate("one token", &shape, &weights, &[3.0], &[3.0]);
/// ```
pub fn assert_layer_accurate(
    what: &str,
    shape: &LayerShape,
    weights: &LayerWeights,
    x: &[f32],
    actual: &[f32],
) {
    let naive = layer::<f32>(shape, weights, x);
    assert_within(
        what,
        "output",
        &layer::<f64>(shape, weights, x),
        &naive,
        actual,
    );
}
