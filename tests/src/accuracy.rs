//! The accuracy rule of docs/DESIGN.md section 6, for outputs, weights and log-sum-exp.

use crate::problem::Problem;
use crate::reference::{log_sum_exp, naive_f32, reference, weights};

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
    use attn_runtime::simd::with_isa;
    crate::instruction_sets()
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
pub(crate) fn assert_within(
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
