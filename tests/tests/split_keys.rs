//! Kernels with fewer query rows than a tile and at least 2,048 keys (decoding) split each
//! problem's keys into chunks of 1,024, computed apart and merged: every option against the
//! f64 reference, on every instruction set, and the same bits on any number of threads.
//! The kernels walk at least 4 MFLOP of keys (but the one of three queries aligned top left),
//! so that two threads are used where the tests allow them.

use attn_runtime::simd::{Isa, with_isa};
use attn_runtime::threads::with_threads;
use attn_runtime::{Array, KernelInfo, Tensor, attention};
use attn_tests::{
    Mask, Problem, Rng, assert_accurate, assert_lse_accurate, assert_weights_accurate, repeat_heads,
};

attention! {
    /// One query per head over 4,100 keys: five chunks, the last of four keys.
    #[attn(return_lse, return_weights)]
    fn decode<q: [2, 3, 1, 64], k: [2, 3, 4100, 64], v: [2, 3, 4100, 64]>;
    /// Three queries aligned bottom right over each entry's valid keys: the chunks past a
    /// short entry's length are empty.
    #[attn(valid_lengths, causal(bottom_right), return_lse)]
    fn decode_valid<q: [2, 2, 3, 64], k: [2, 2, 4100, 64], v: [2, 2, 4100, 64]>;
    /// Aligned top left, three queries see only the first keys: every later chunk is empty.
    #[attn(valid_lengths, causal(top_left), return_weights)]
    fn decode_top_left<q: [2, 1, 3, 16], k: [2, 1, 3000, 16], v: [2, 1, 3000, 8]>;
    /// A sliding window of 1,500 keys, soft-capped: the first chunks are not walked.
    #[attn(causal(bottom_right), window = 1500, softcap = 5.0, return_lse)]
    fn decode_window<q: [1, 4, 4, 64], k: [1, 4, 5000, 64], v: [1, 4, 5000, 64]>;
    /// A mask and a bias over grouped heads: eight query heads share two key/value heads.
    #[attn(mask = [1, 1, 1, 2500], bias = [1, 8, 1, 2500], return_weights)]
    fn decode_grouped<q: [1, 8, 1, 64], k: [1, 2, 2500, 64], v: [1, 2, 2500, 64]>;
    /// Below two chunks' worth of keys: one walk, no split. Value rows of 136: a whole
    /// single-row pass of 8 vectors (128 columns with AVX-512, 64 twice with AVX2) and 8
    /// columns over.
    fn decode_short<q: [1, 1, 1, 16], k: [1, 1, 2047, 16], v: [1, 1, 2047, 136]>;
}

/// Runs `run` on every instruction set on 1, 2 and 3 threads; asserts each result is the
/// same bits as on one thread, and returns the one-thread results.
fn same_on_any_threads<T: PartialEq>(what: &str, run: impl Fn() -> T) -> Vec<(Isa, T)> {
    attn_tests::instruction_sets()
        .map(|isa| {
            let on = |threads| with_isa(isa, || with_threads(threads, &run)).unwrap();
            let one = on(1);
            for threads in [2, 3] {
                assert!(on(threads) == one, "{what} on {isa}, {threads} threads");
            }
            (isa, one)
        })
        .collect()
}

/// Random q, k and v for a kernel's array types.
fn operands<Q: Array<Element = f32>, K: Array<Element = f32>, V: Array<Element = f32>>(
    seed: u64,
) -> (Tensor<Q>, Tensor<K>, Tensor<V>) {
    let mut rng = Rng::new(seed);
    (rng.tensor(2.0), rng.tensor(2.0), rng.tensor(1.0))
}

#[test]
fn the_keys_of_long_decoding_kernels_are_split_by_their_shape() {
    let chunks = |info: KernelInfo| info.key_chunks();
    assert_eq!(chunks(decode::INFO), 5);
    assert_eq!(chunks(decode_valid::INFO), 5);
    assert_eq!(chunks(decode_top_left::INFO), 3);
    assert_eq!(chunks(decode_window::INFO), 5);
    assert_eq!(chunks(decode_grouped::INFO), 3);
    assert_eq!(chunks(decode_short::INFO), 1);
    assert!(decode::INFO.to_string().ends_with("the keys in 5 chunks"));
}

#[test]
fn split_keys_give_the_reference_with_weights_and_log_sum_exp() {
    let (q, k, v) = operands(1);
    let results = same_on_any_threads("decode", || {
        let mut out = Tensor::<[[[[f32; 64]; 1]; 3]; 2]>::zeros();
        let mut weights = Tensor::<[[[[f32; 4100]; 1]; 3]; 2]>::zeros();
        let mut lse = [[[0.0f32; 1]; 3]; 2];
        decode_into(&q, &k, &v, &mut out, &mut weights, &mut lse);
        (out, weights, lse)
    });
    let problem = Problem::with_default_scale(6, 1, 4100, 64, 64);
    let (q, k, v) = (q.as_flat(), k.as_flat(), v.as_flat());
    for (isa, (out, weights, lse)) in results {
        let what = format!("decode on {isa}");
        assert_accurate(&what, &problem, q, k, v, out.as_flat());
        assert_weights_accurate(&what, &problem, q, k, weights.as_flat());
        assert_lse_accurate(&what, &problem, q, k, lse.as_flattened().as_flattened());
    }
}

#[test]
fn one_walk_of_wide_value_rows_gives_the_reference() {
    let (q, k, v) = operands(7);
    let results = same_on_any_threads("decode_short", || {
        let mut out = [[[[0.0f32; 136]; 1]; 1]; 1];
        decode_short_into(&q, &k, &v, &mut out);
        out
    });
    let problem = Problem::with_default_scale(1, 1, 2047, 16, 136);
    let (q, k, v) = (q.as_flat(), k.as_flat(), v.as_flat());
    for (isa, out) in results {
        let out = out.as_flattened().as_flattened().as_flattened();
        assert_accurate(&format!("decode_short on {isa}"), &problem, q, k, v, out);
    }
}

#[test]
fn split_keys_respect_valid_lengths_and_both_alignments() {
    let (q, k, v) = operands(2);
    for valid in [[4100, 1500], [0, 2049], [3, 1024]] {
        let results = same_on_any_threads("decode_valid", || {
            let mut out = Tensor::<[[[[f32; 64]; 3]; 2]; 2]>::zeros();
            let mut lse = [[[0.0f32; 3]; 2]; 2];
            decode_valid_into(&q, &k, &v, &valid, &mut out, &mut lse).unwrap();
            (out, lse)
        });
        let problem = Problem::with_default_scale(4, 3, 4100, 64, 64)
            .masked(Mask::BottomRight)
            .with_valid_keys(vec![valid[0], valid[0], valid[1], valid[1]]);
        let (q, k, v) = (q.as_flat(), k.as_flat(), v.as_flat());
        for (isa, (out, lse)) in results {
            let what = format!("decode_valid {valid:?} on {isa}");
            assert_accurate(&what, &problem, q, k, v, out.as_flat());
            assert_lse_accurate(&what, &problem, q, k, lse.as_flattened().as_flattened());
        }
    }
    let (q, k, v) = operands(3);
    let valid = [3000, 2];
    let results = same_on_any_threads("decode_top_left", || {
        let mut out = Tensor::<[[[[f32; 8]; 3]; 1]; 2]>::zeros();
        let mut weights = Tensor::<[[[[f32; 3000]; 3]; 1]; 2]>::zeros();
        decode_top_left_into(&q, &k, &v, &valid, &mut out, &mut weights).unwrap();
        (out, weights)
    });
    let problem = Problem::with_default_scale(2, 3, 3000, 16, 8)
        .masked(Mask::TopLeft)
        .with_valid_keys(valid.to_vec());
    let (q, k, v) = (q.as_flat(), k.as_flat(), v.as_flat());
    for (isa, (out, weights)) in results {
        let what = format!("decode_top_left on {isa}");
        assert_accurate(&what, &problem, q, k, v, out.as_flat());
        assert_weights_accurate(&what, &problem, q, k, weights.as_flat());
    }
}

#[test]
fn split_keys_respect_a_window_and_a_soft_cap() {
    let (q, k, v) = operands(4);
    let results = same_on_any_threads("decode_window", || {
        let mut out = Tensor::<[[[[f32; 64]; 4]; 4]; 1]>::zeros();
        let mut lse = [[[0.0f32; 4]; 4]; 1];
        decode_window_into(&q, &k, &v, &mut out, &mut lse);
        (out, lse)
    });
    let problem = Problem::with_default_scale(4, 4, 5000, 64, 64)
        .masked(Mask::BottomRight)
        .windowed(1500)
        .capped(5.0);
    let (q, k, v) = (q.as_flat(), k.as_flat(), v.as_flat());
    for (isa, (out, lse)) in results {
        let what = format!("decode_window on {isa}");
        assert_accurate(&what, &problem, q, k, v, out.as_flat());
        assert_lse_accurate(&what, &problem, q, k, lse.as_flattened().as_flattened());
    }
}

#[test]
fn split_keys_respect_a_mask_a_bias_and_grouped_heads() {
    let (q, k, v) = operands(5);
    let mut rng = Rng::new(6);
    let mut mask = [[[[true; 2500]; 1]; 1]; 1];
    for keep in mask[0][0][0].iter_mut() {
        *keep = rng.below(5) != 0;
    }
    // No key of the second chunk is kept: its partial result is empty.
    mask[0][0][0][1024..2048].fill(false);
    let bias: Vec<f32> = rng.values(8 * 2500, 1.0);
    let bias_array = Tensor::<[[[[f32; 2500]; 1]; 8]; 1]>::from_slice(&bias).unwrap();
    let results = same_on_any_threads("decode_grouped", || {
        let mut out = Tensor::<[[[[f32; 64]; 1]; 8]; 1]>::zeros();
        let mut weights = Tensor::<[[[[f32; 2500]; 1]; 8]; 1]>::zeros();
        decode_grouped_into(&q, &k, &v, &mask, &bias_array, &mut out, &mut weights);
        (out, weights)
    });
    let keep: Vec<bool> = (0..8).flat_map(|_| mask[0][0][0]).collect();
    let problem = Problem::with_default_scale(8, 1, 2500, 64, 64)
        .with_keep(keep)
        .with_bias(bias);
    let k = repeat_heads(k.as_flat(), 1, 2, 4, 2500 * 64);
    let v = repeat_heads(v.as_flat(), 1, 2, 4, 2500 * 64);
    for (isa, (out, weights)) in results {
        let what = format!("decode_grouped on {isa}");
        assert_accurate(&what, &problem, q.as_flat(), &k, &v, out.as_flat());
        assert_weights_accurate(&what, &problem, q.as_flat(), &k, weights.as_flat());
    }
}

#[test]
fn a_nan_in_one_chunk_makes_its_row_nan_and_no_other() {
    type Cache<const D: usize> = [[[[f32; D]; 4100]; 3]; 2];
    let (mut q, mut k, v) = operands::<[[[[f32; 64]; 1]; 3]; 2], Cache<64>, Cache<64>>(7);
    // Head 0 of entry 0 meets a NaN in the keys of its fourth chunk only; head 1 of entry 1
    // has a NaN query, so every chunk is NaN.
    k[0][0][3500][2] = f32::NAN;
    q[1][1][0][0] = f32::NAN;
    let results = same_on_any_threads("decode with NaN", || {
        let mut out = Tensor::<[[[[f32; 64]; 1]; 3]; 2]>::zeros();
        let mut weights = Tensor::<[[[[f32; 4100]; 1]; 3]; 2]>::zeros();
        let mut lse = [[[0.0f32; 1]; 3]; 2];
        decode_into(&q, &k, &v, &mut out, &mut weights, &mut lse);
        out.as_flat()
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<_>>()
    });
    for (isa, bits) in results {
        let out: Vec<f32> = bits.into_iter().map(f32::from_bits).collect();
        for (row, values) in out.chunks(64).enumerate() {
            let poisoned = row == 0 || row == 4;
            assert_eq!(
                values.iter().all(|x| x.is_nan()),
                poisoned,
                "row {row} on {isa}: {values:?}"
            );
            assert!(poisoned || values.iter().all(|x| x.is_finite()));
        }
    }
}
