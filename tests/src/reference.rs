//! The attention the kernels are held to, computed in f64 and plainly in f32.

use crate::problem::Problem;

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
pub(crate) trait Float:
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
pub(crate) fn softmax_statistics<T: Float>(scores: &[(usize, T)]) -> (T, T) {
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

/// The f64 reference of the attention weights, `[problems][queries][keys]`: 0 for hidden
/// keys.
pub fn reference_weights(problem: &Problem, q: &[f32], k: &[f32]) -> Vec<f64> {
    weights::<f64>(problem, q, k)
}

/// The f64 reference of each query row's log-sum-exp: `-inf` for a row that sees no key.
pub fn reference_lse(problem: &Problem, q: &[f32], k: &[f32]) -> Vec<f64> {
    log_sum_exp::<f64>(problem, q, k)
}

/// The log-sum-exp of each query row's (scaled, capped, masked) scores, `max + ln Σ exp(s -
/// max)`, computed in `T`; `-inf` for a row that sees no key.
pub(crate) fn log_sum_exp<T: Float>(problem: &Problem, q: &[f32], k: &[f32]) -> Vec<f64>
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
pub(crate) fn weights<T: Float>(problem: &Problem, q: &[f32], k: &[f32]) -> Vec<f64>
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
