//! Results do not depend on the number of threads: bit for bit, on every instruction set.

use attn_runtime::simd::{Isa, with_isa};
use attn_runtime::threads::with_threads;
use attn_runtime::{Linear, Tensor, attention};
use attn_tests::Rng;

attention! {
    /// Enough work to be split: 6 problems of 300 queries, which threads split within problems.
    fn split<q: [2, 3, 300, 40], k: [2, 3, N, 40], v: [2, 3, N, 24]>;
    /// The same with a mask, the weights and the log-sum-exp: every output split alike.
    #[attn(mask = [2, 1, 300, N], return_weights, return_lse)]
    fn split_weights<q: [2, 3, 300, 40], k: [2, 3, N, 40], v: [2, 3, N, 24]>;
    /// A causal mask with a sliding window: which key blocks a tile walks depends on its
    /// rows, never on where a block or a thread's share begins.
    #[attn(causal(bottom_right), window = 70)]
    fn split_window<q: [2, 3, 301, 40], k: [2, 3, 333, 40], v: [2, 3, 333, 24]>;
    /// A layer whose projections are large enough to be split too.
    fn layer<x: [1, 300, 128], q: [1, 4, 300, 32], k: [1, 4, 300, 32], v: [1, 4, 300, 32], out: [1, 300, 128]>;
}

/// Asserts that `run(isa, threads)` gives on each of `threads` threads, bit for bit, what it
/// gives on one, on every instruction set this machine has.
fn assert_same_on_any_threads<T: PartialEq>(threads: &[usize], run: impl Fn(Isa, usize) -> T) {
    for isa in attn_tests::instruction_sets() {
        let one = run(isa, 1);
        for &threads in threads {
            assert!(run(isa, threads) == one, "{isa}, {threads} threads");
        }
    }
}

#[test]
fn threads_give_bit_identical_results() {
    let mut rng = Rng::new(7);
    let q = rng.tensor::<[[[[f32; 40]; 300]; 3]; 2]>(1.0);
    let k = rng.tensor::<[[[[f32; 40]; 517]; 3]; 2]>(1.0);
    let v = rng.tensor::<[[[[f32; 24]; 517]; 3]; 2]>(1.0);
    assert_same_on_any_threads(&[2, 3, 5, 8], |isa, threads| {
        let mut out = Tensor::<[[[[f32; 24]; 300]; 3]; 2]>::zeros();
        with_isa(isa, || {
            with_threads(threads, || split_into(&q, &k, &v, &mut out))
        })
        .unwrap();
        out.as_flat().to_vec()
    });
}

#[test]
fn causal_windows_give_bit_identical_results() {
    let mut rng = Rng::new(9);
    let q = rng.tensor::<[[[[f32; 40]; 301]; 3]; 2]>(1.0);
    let k = rng.tensor::<[[[[f32; 40]; 333]; 3]; 2]>(1.0);
    let v = rng.tensor::<[[[[f32; 24]; 333]; 3]; 2]>(1.0);
    assert_same_on_any_threads(&[2, 3, 4, 7], |isa, threads| {
        let mut out = Tensor::<[[[[f32; 24]; 301]; 3]; 2]>::zeros();
        with_isa(isa, || {
            with_threads(threads, || split_window_into(&q, &k, &v, &mut out))
        })
        .unwrap();
        out.as_flat().to_vec()
    });
}

#[test]
fn weights_and_log_sum_exp_are_bit_identical_on_any_number_of_threads() {
    let mut rng = Rng::new(8);
    let q = rng.tensor::<[[[[f32; 40]; 300]; 3]; 2]>(1.0);
    let k = rng.tensor::<[[[[f32; 40]; 200]; 3]; 2]>(1.0);
    let v = rng.tensor::<[[[[f32; 24]; 200]; 3]; 2]>(1.0);
    let mut mask = Box::new([[[[true; 200]; 300]; 1]; 2]);
    for (i, keep) in mask
        .as_flattened_mut()
        .as_flattened_mut()
        .as_flattened_mut()
        .iter_mut()
        .enumerate()
    {
        *keep = i % 7 != 3;
    }
    let run = |threads: usize| {
        let mut out = Tensor::<[[[[f32; 24]; 300]; 3]; 2]>::zeros();
        let mut weights = Tensor::<[[[[f32; 200]; 300]; 3]; 2]>::zeros();
        let mut lse = Box::new([[[0.0f32; 300]; 3]; 2]);
        with_threads(threads, || {
            split_weights_into(&q, &k, &v, &mask, &mut out, &mut weights, &mut lse)
        });
        (out, weights, lse)
    };
    let (out, weights, lse) = run(1);
    for threads in [2, 3] {
        let (o, w, l) = run(threads);
        assert!(o.as_flat() == out.as_flat(), "out on {threads} threads");
        assert!(
            w.as_flat() == weights.as_flat(),
            "weights on {threads} threads"
        );
        assert!(l == lse, "lse on {threads} threads");
    }
}

#[test]
fn a_layer_is_bit_identical_on_any_number_of_threads() {
    let mut rng = Rng::new(9);
    let x = rng.tensor::<[[[f32; 128]; 300]; 1]>(1.0);
    let linears: Vec<Linear<128, 128>> = (0..4)
        .map(|i| {
            let weight = rng.values(128 * 128, 0.1);
            let bias = rng.values(128, 0.1);
            Linear::from_slices(&format!("w{i}"), &weight, Some(&bias)).unwrap()
        })
        .collect();
    let run = |threads: usize| {
        let mut out = Tensor::<[[[f32; 128]; 300]; 1]>::zeros();
        with_threads(threads, || {
            layer_into(
                &x,
                &linears[0],
                &linears[1],
                &linears[2],
                &linears[3],
                &mut out,
            )
        });
        out
    };
    let one = run(1);
    for threads in [2, 3] {
        assert!(run(threads).as_flat() == one.as_flat(), "{threads} threads");
    }
}
