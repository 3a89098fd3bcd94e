//! The gradients the backward kernels are held to: the attention's derivative written out
//! plainly, with the full softmax of each row, in f64 (the reference) and in f32 (the naive
//! backward whose error sets the tolerance).

use crate::problem::Problem;
use crate::reference::{Float, softmax_statistics};

/// The gradients of q, k and v, flat and shaped like them (`[problems][..]`: with grouped
/// heads, per query head, before [`sum_groups`]).
#[derive(Clone, Debug)]
pub struct Gradients {
    /// With respect to the queries.
    pub dq: Vec<f64>,
    /// With respect to the keys.
    pub dk: Vec<f64>,
    /// With respect to the values.
    pub dv: Vec<f64>,
}

/// The f64 reference of the gradients of a loss whose gradient with respect to the output is
/// `d_out`, from f32 inputs.
///
/// ```
/// use attn_tests::{Problem, reference_gradients};
/// // One query over two keys with equal scores: each value gets half of d_out.
/// let problem = Problem::with_default_scale(1, 1, 2, 1, 1);
/// let g = reference_gradients(&problem, &[0.0], &[1.0, 1.0], &[2.0, 4.0], &[1.0]);
/// assert_eq!(g.dv, [0.5, 0.5]);
/// assert_eq!(g.dq, [0.0]);
/// ```
pub fn reference_gradients(
    problem: &Problem,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d_out: &[f32],
) -> Gradients {
    backward::<f64>(problem, q, k, v, d_out)
}

/// The same gradients computed plainly in f32: the naive backward.
pub fn naive_gradients_f32(
    problem: &Problem,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d_out: &[f32],
) -> Gradients {
    backward::<f32>(problem, q, k, v, d_out)
}

/// The derivative of attention, row by row in `T`: the row's softmax `P` from its scores,
/// `out = P · V`, `D = dO · out`, `dS_j = P_j (dO · v_j - D) · scale`, times the soft cap's
/// derivative `1 - tanh²`; then `dq += dS_j k_j`, `dk_j += dS_j q`, `dv_j += P_j dO`.
fn backward<T: Float>(
    problem: &Problem,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d_out: &[f32],
) -> Gradients
where
    f64: From<T>,
{
    let Problem {
        problems,
        queries,
        keys,
        depth,
        value_depth,
        ..
    } = *problem;
    let from = T::of;
    let zero = from(0.0);
    let mut dq = vec![zero; problems * queries * depth];
    let mut dk = vec![zero; problems * keys * depth];
    let mut dv = vec![zero; problems * keys * value_depth];
    for p in 0..problems {
        for i in 0..queries {
            let scores = problem.row_scores::<T>(p, i, q, k);
            if scores.is_empty() {
                continue;
            }
            let (max, sum) = softmax_statistics(&scores);
            let row = p * queries + i;
            let g = &d_out[row * value_depth..][..value_depth];
            let value = |j: usize, e: usize| from(v[(p * keys + j) * value_depth + e]);
            let weights: Vec<T> = scores.iter().map(|&(_, s)| (s - max).exp() / sum).collect();
            let mut d = zero;
            for (e, &g) in g.iter().enumerate() {
                let mut out = zero;
                for (&(j, _), &w) in scores.iter().zip(&weights) {
                    out = out + w * value(j, e);
                }
                d = d + from(g) * out;
            }
            for (&(j, s), &w) in scores.iter().zip(&weights) {
                let mut dp = zero;
                for (e, &g) in g.iter().enumerate() {
                    dp = dp + from(g) * value(j, e);
                }
                // The soft cap's derivative, from the capped score (the score before its bias).
                let derivative = match problem.softcap {
                    Some(cap) => {
                        let at = row * keys + j;
                        let bias = problem.bias.as_ref().map_or(zero, |bias| from(bias[at]));
                        let t = (s - bias) / from(cap);
                        from(1.0) - t * t
                    }
                    None => from(1.0),
                };
                let ds = w * (dp - d) * derivative * from(problem.scale);
                for e in 0..depth {
                    let (qi, kj) = (row * depth + e, (p * keys + j) * depth + e);
                    dq[qi] = dq[qi] + ds * from(k[kj]);
                    dk[kj] = dk[kj] + ds * from(q[qi]);
                }
                let dv = &mut dv[(p * keys + j) * value_depth..][..value_depth];
                for (dv, &g) in dv.iter_mut().zip(g) {
                    *dv = *dv + w * from(g);
                }
            }
        }
    }
    let wide = |x: Vec<T>| x.into_iter().map(f64::from).collect();
    Gradients {
        dq: wide(dq),
        dk: wide(dk),
        dv: wide(dv),
    }
}

/// Gradients per query head, `[batch][kv_heads · group][per_head]`, summed over each group
/// of `group` query heads that share a key/value head: the gradient of the shared head.
///
/// ```
/// let per_query_head = [1.0, 2.0, 3.0, 4.0]; // one batch entry, two heads of two values
/// assert_eq!(attn_tests::sum_groups(&per_query_head, 1, 1, 2, 2), [4.0, 6.0]);
/// ```
pub fn sum_groups(
    flat: &[f64],
    batch: usize,
    kv_heads: usize,
    group: usize,
    per_head: usize,
) -> Vec<f64> {
    let mut out = vec![0.0; batch * kv_heads * per_head];
    for b in 0..batch {
        for h in 0..kv_heads * group {
            let from = &flat[(b * kv_heads * group + h) * per_head..][..per_head];
            let to = &mut out[(b * kv_heads + h / group) * per_head..][..per_head];
            for (sum, x) in to.iter_mut().zip(from) {
                *sum += x;
            }
        }
    }
    out
}

/// The largest difference of `actual` from `reference`, relative to 1 + the largest
/// `|reference|` (infinite where `actual` is NaN): the measure the gradients are held to.
///
/// ```
/// assert_eq!(attn_tests::relative_error(&[1.0, 2.5], &[1.0, 3.0]), 0.125);
/// ```
pub fn relative_error(actual: &[f64], reference: &[f64]) -> f64 {
    assert_eq!(actual.len(), reference.len(), "lengths");
    let scale = 1.0 + reference.iter().fold(0.0f64, |m, r| m.max(r.abs()));
    actual
        .iter()
        .zip(reference)
        .map(|(x, r)| {
            if x.is_nan() {
                f64::INFINITY
            } else {
                (x - r).abs() / scale
            }
        })
        .fold(0.0, f64::max)
}

/// Holds each of `actual`'s gradients (`dq`, `dk`, `dv`, as f32) to `reference`: every value
/// within `max(1e-5, 4 · e_naive)` of the reference, relative to 1 + the largest reference
/// value of its tensor, where `e_naive` is the same error of `naive` (the naive f32
/// backward). Returns, per tensor, the error and `e_naive`, for reports.
pub fn assert_gradients_within(
    what: &str,
    reference: &Gradients,
    naive: &Gradients,
    actual: [&[f32]; 3],
) -> [(f64, f64); 3] {
    let tensors = [
        ("dq", &reference.dq, &naive.dq),
        ("dk", &reference.dk, &naive.dk),
        ("dv", &reference.dv, &naive.dv),
    ];
    let mut errors = [(0.0, 0.0); 3];
    for (((name, reference, naive), actual), slot) in
        tensors.into_iter().zip(actual).zip(&mut errors)
    {
        let e_naive = relative_error(naive, reference);
        let tolerance = f64::max(1e-5, 4.0 * e_naive);
        let actual: Vec<f64> = actual.iter().map(|&x| x.into()).collect();
        let e = relative_error(&actual, reference);
        assert!(
            e <= tolerance,
            "{what}: {name} is off the reference by {e:e} (relative to 1 + its largest \
             value) > {tolerance:e} (e_naive {e_naive:e})"
        );
        *slot = (e, e_naive);
    }
    errors
}
