//! A whole self-attention layer: its shape, its weights, and its accuracy check.

use crate::accuracy::assert_within;
use crate::problem::Mask;
use crate::reference::{Float, softmax_statistics};

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
