//! Run-time valid lengths (padding): each batch entry's keys after its valid count are seen
//! by no query; a count past the kernel's keys is an error, and nothing is written.

use attn_runtime::simd::with_isa;
use attn_runtime::{Array, Counted, Plan, Tensor, ValidLengthError, attention};
use attn_tests::{Mask, Problem, Rng, assert_accurate};

attention! {
    /// Rank 3, tiled.
    #[attn(valid_lengths)]
    fn padded<q: [3, 20, 16], k: [3, 100, 16], v: [3, 100, 8]>;
    /// Rank 4, causal, every length left to the call.
    #[attn(valid_lengths, causal)]
    fn padded_causal<q: [2, 2, N, 16], k: [2, 2, N, 16], v: [2, 2, N, 16]>;
    /// A decode step over a cache of capacity N: the query is the last valid position.
    #[attn(valid_lengths, causal(bottom_right))]
    fn decode<q: [2, 1, 1, 32], k: [2, 1, N, 32], v: [2, 1, N, 32]>;
    /// Tiny, yet tiled: valid lengths are known only at run time.
    #[attn(valid_lengths)]
    fn tiny<q: [2, 2, 3], k: [2, 4, 3], v: [2, 4, 3]>;
}

/// A kernel's `_into` form with valid lengths.
type Padded<Q, K, V, O, const B: usize> =
    fn(&Q, &K, &V, &[usize; B], &mut O) -> Result<(), ValidLengthError>;

/// Runs `kernel` with `valid` lengths (per batch entry) on every instruction set and checks
/// it against the reference, where each of the `heads` problems of an entry has its length.
fn check<
    Q: Array<Element = f32>,
    K: Array<Element = f32>,
    V: Array<Element = f32>,
    O: Array<Element = f32>,
    const B: usize,
>(
    what: &str,
    problem: Problem,
    heads: usize,
    valid: [usize; B],
    kernel: Padded<Q, K, V, O, B>,
) {
    let mut rng = Rng::new(valid.iter().sum::<usize>() as u64);
    let q = Tensor::<Q>::from_vec(rng.values(Q::LEN, 1.0)).unwrap();
    let k = Tensor::<K>::from_vec(rng.values(K::LEN, 1.0)).unwrap();
    let v = Tensor::<V>::from_vec(rng.values(V::LEN, 1.0)).unwrap();
    let per_problem = valid
        .iter()
        .flat_map(|&n| std::iter::repeat_n(n, heads))
        .collect();
    let problem = problem.with_valid_keys(per_problem);
    for isa in attn_tests::instruction_sets() {
        let mut out = Tensor::<O>::zeros();
        with_isa(isa, || kernel(&q, &k, &v, &valid, &mut out))
            .unwrap()
            .expect("valid lengths within the keys");
        let what = format!("{what} {valid:?} on {isa}");
        assert_accurate(
            &what,
            &problem,
            q.as_flat(),
            k.as_flat(),
            v.as_flat(),
            out.as_flat(),
        );
    }
}

#[test]
fn padding_keys_are_seen_by_no_query() {
    for valid in [[100, 37, 1], [64, 65, 100], [0, 5, 99]] {
        check(
            "padded",
            Problem::with_default_scale(3, 20, 100, 16, 8),
            1,
            valid,
            padded_into,
        );
    }
    let problem = Problem::with_default_scale(4, 150, 150, 16, 16).masked(Mask::TopLeft);
    for valid in [[150, 70], [1, 129]] {
        check::<[[[[f32; 16]; 150]; 2]; 2], _, _, _, 2>(
            "padded_causal",
            problem.clone(),
            2,
            valid,
            padded_causal_into,
        );
    }
    let problem = Problem::with_default_scale(2, 1, 300, 32, 32).masked(Mask::BottomRight);
    for valid in [[300, 17], [64, 0]] {
        check::<[[[[f32; 32]; 1]; 1]; 2], [[[[f32; 32]; 300]; 1]; 2], _, _, 2>(
            "decode",
            problem.clone(),
            1,
            valid,
            decode_into,
        );
    }
    assert!(matches!(tiny::INFO.plan, Plan::Tiled { .. }));
    check(
        "tiny",
        Problem::with_default_scale(2, 2, 4, 3, 3),
        1,
        [3, 4],
        tiny_into,
    );
}

#[test]
fn a_length_past_the_keys_is_an_error_and_nothing_is_written() {
    let q = [[[0.5f32; 3]; 2]; 2];
    let kv = [[[0.5f32; 3]; 4]; 2];
    let mut out = [[[7.0f32; 3]; 2]; 2];
    let error = tiny_into(&q, &kv, &kv, &[4, 5], &mut out).unwrap_err();
    assert_eq!(
        error,
        ValidLengthError {
            batch_entry: 1,
            counted: Counted::Keys,
            valid: 5,
            capacity: 4
        }
    );
    assert_eq!(out, [[[7.0; 3]; 2]; 2], "nothing half-written");
    assert_eq!(
        tiny(&q, &kv, &kv, &[0, 4]).unwrap()[0],
        [[0.0; 3]; 2],
        "no valid key: 0"
    );
}
